/*
 * cs_journal - certsyncd's native journald logging: the choice of the log
 * sink at start (the journal when systemd runs the agent, else stderr or
 * syslog as before), the cert names the log recognises in "NAME: text"
 * lines, and the pipeline's events as structured journal entries with a
 * MESSAGE_ID per event type (explained by packaging/journald/certsync.catalog).
 *
 * Fields of every entry: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER,
 * SYSLOG_FACILITY; CERTSYNC_CERT on every line that starts with the name of
 * a configured cert; an event's entry adds CERTSYNC_EVENT, CERTSYNC_ISSUER,
 * CERTSYNC_SERIAL (when known) and MESSAGE_ID. Without libsystemd at build
 * time the journal is never chosen.
 */
#ifndef CS_JOURNAL_H
#define CS_JOURNAL_H

#include "cs_config.h"
#include "cs_events.h"
#include "cs_log.h"

#include <stdbool.h>

/*
 * True when certsyncd should log to the journal: stderr is a journal stream
 * (a systemd service's, -f or --once included: $JOURNAL_STREAM names it),
 * or, without foreground, systemd started it ($INVOCATION_ID on a host
 * booted with systemd). Always false without libsystemd.
 */
bool cs_journal_wanted(bool foreground);

/*
 * Opens the log (cs_log_open): the journal when cs_journal_wanted, else
 * stderr in the foreground and syslog otherwise. Returns the sink chosen.
 */
enum cs_log_sink cs_journal_log_open(const char *ident, bool foreground, enum cs_log_level max);

/*
 * Tells the log the names of cfg's certs (cs_log_set_names), so that a
 * journal entry for "NAME: text" carries CERTSYNC_CERT=NAME. Call it with
 * each configuration taken; nothing unless the sink is the journal.
 */
void cs_journal_names(const struct cs_config *cfg);

/* The MESSAGE_ID of an event type (32 hex digits), or NULL for none. */
const char *cs_journal_message_id(enum cs_event_type t);

/*
 * A pipeline subscriber (cs_pipeline_subscribe; arg unused): one journal
 * entry per event, at info, or warning for a failure (a failed or rolled
 * back renewal, a reload, verify or revocation that failed), with the
 * fields above. certsyncd subscribes it in place of cs_events_log when the
 * sink is the journal.
 */
void cs_journal_event(void *arg, const struct cs_event *ev);

#endif
