/*
 * cs_journal - native journald logging: the sink chosen at start, the cert
 * names, the events' structured entries. See cs_journal.h.
 */
#include "cs_journal.h"

#include <stdio.h>
#include <stdlib.h>
#ifdef CS_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#endif

/*
 * One MESSAGE_ID per event type, made once with systemd-id128 new; never
 * change one: operators' filters and the catalog use them.
 */
static const char *const message_ids[CS_EVENT_N] = {
	[CS_EVENT_RENEWAL_STARTED] = "31d51b3a446d4741aa8d9329f4311529",
	[CS_EVENT_ISSUED] = "862b720a06dc4339a893b71c447a0653",
	[CS_EVENT_DEPLOYED] = "5f2b0ab3095c44308450e4e0dd6375bb",
	[CS_EVENT_RELOADED] = "08b2e46b543a4069ace5717e11d060af",
	[CS_EVENT_VERIFIED] = "4887ce0ea6344c178223d8a3b03a4799",
	[CS_EVENT_RENEWED] = "e44168237c754367aafb3e838f6f81e3",
	[CS_EVENT_FAILED] = "f93cacfa9f0a4e94af0b8729bf0fcb49",
	[CS_EVENT_ROLLED_BACK] = "a3aa762167a44d41beeb0f34464ae433",
	[CS_EVENT_REPAIRED] = "5b45f42269374467a04f7264886c68ea",
	[CS_EVENT_ADOPTED] = "341ba655ab3748a49d478c3b4761b94e",
	[CS_EVENT_REVOKED] = "3c53c5145dfe44ca9047a38abf9fc477",
	[CS_EVENT_CHANGED] = "19282498c5334543a2e6962f5c130b6d",
};

bool cs_journal_wanted(bool foreground)
{
#ifdef CS_HAVE_SYSTEMD
	if (cs_log_stderr_is_journal())
		return true;
	/* Without -f daemon() sends stderr to /dev/null: systemd's own start says it. */
	return !foreground && getenv("INVOCATION_ID") != NULL && sd_booted() > 0;
#else
	(void)foreground;
	return false;
#endif
}

enum cs_log_sink cs_journal_log_open(const char *ident, bool foreground, enum cs_log_level max)
{
	enum cs_log_sink sink = foreground ? CS_LOG_STDERR : CS_LOG_SYSLOG;

#ifdef CS_HAVE_SYSTEMD
	if (cs_journal_wanted(foreground)) {
		cs_log_set_journal(sd_journal_sendv);
		sink = CS_LOG_JOURNAL;
	}
#endif
	cs_log_open(ident, sink, max);
	return sink;
}

void cs_journal_names(const struct cs_config *cfg)
{
	const char **names;

	if (cs_log_get_sink() != CS_LOG_JOURNAL)
		return;
	if (cfg->n_certs == 0) {
		cs_log_set_names(NULL, 0);
		return;
	}
	if ((names = calloc(cfg->n_certs, sizeof(*names))) == NULL) {
		cs_warn("out of memory: journal entries name no cert");
		return;
	}
	for (size_t i = 0; i < cfg->n_certs; i++)
		names[i] = cfg->certs[i].name;
	if (cs_log_set_names(names, cfg->n_certs) < 0)
		cs_warn("out of memory: journal entries name no cert");
	free(names);
}

const char *cs_journal_message_id(enum cs_event_type t)
{
	return (unsigned)t < CS_EVENT_N ? message_ids[t] : NULL;
}

/* Warning for what went wrong, info for the rest. */
static enum cs_log_level event_level(const struct cs_event *ev)
{
	switch (ev->type) {
	case CS_EVENT_FAILED:
	case CS_EVENT_ROLLED_BACK:
		return CS_LOG_WARN;
	case CS_EVENT_RELOADED:
	case CS_EVENT_VERIFIED:
	case CS_EVENT_REVOKED:
		return ev->result == CS_EVENT_ERROR ? CS_LOG_WARN : CS_LOG_INFO;
	default:
		return CS_LOG_INFO;
	}
}

void cs_journal_event(void *arg, const struct cs_event *ev)
{
	const char *type = cs_events_type_name(ev->type);
	struct cs_log_ctx ctx = {
		.cert = ev->cert,
		.issuer = ev->issuer,
		.serial = ev->serial,
		.event = type,
		.message_id = cs_journal_message_id(ev->type),
	};
	char d[400];
	size_t used;

	(void)arg;
	used = cs_events_describe(ev, d, sizeof(d));
	if (ev->serial != NULL && used < sizeof(d))
		used += (size_t)snprintf(d + used, sizeof(d) - used, "%sserial %s",
					 used ? ", " : "", ev->serial);
	if (ev->issuer != NULL && used < sizeof(d))
		snprintf(d + used, sizeof(d) - used, "%sissuer %s", used ? ", " : "", ev->issuer);
	cs_log_with(event_level(ev), &ctx, "%s: event %s%s%s%s%s%s", ev->cert ? ev->cert : "?",
		    type, d[0] ? " (" : "", d, d[0] ? ")" : "", ev->text ? ": " : "",
		    ev->text ? ev->text : "");
}
