/*
 * cs_log - leveled logging to stderr (foreground), syslog (daemon) or the
 * systemd journal (structured entries, through a writer the agent gives).
 *
 * The process has one log sink, chosen once at start by cs_log_open(). Messages
 * never contain key material: callers log file names, fingerprints and errors,
 * never buffers they read.
 *
 * Journal entries carry MESSAGE, PRIORITY, SYSLOG_IDENTIFIER and, when known,
 * CERTSYNC_CERT, CERTSYNC_ISSUER, CERTSYNC_SERIAL, CERTSYNC_EVENT and
 * MESSAGE_ID: given by the caller (cs_log_with), or for CERTSYNC_CERT alone
 * taken from a message that starts with "NAME: " where NAME is one of the
 * names registered with cs_log_set_names (the agent's certs: this module
 * knows nothing about the configuration).
 */
#ifndef CS_LOG_H
#define CS_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

enum cs_log_level {
	CS_LOG_ERR = 0,
	CS_LOG_WARN,
	CS_LOG_NOTICE,
	CS_LOG_INFO,
	CS_LOG_DEBUG,
};

enum cs_log_sink {
	CS_LOG_STDERR = 0,
	CS_LOG_SYSLOG,
	CS_LOG_JOURNAL, /* through the writer of cs_log_set_journal; syslog without one */
};

/*
 * What one message is about, for the journal's fields; NULL: absent. The
 * strings are borrowed for the call.
 */
struct cs_log_ctx {
	const char *cert;       /* CERTSYNC_CERT */
	const char *issuer;     /* CERTSYNC_ISSUER */
	const char *serial;     /* CERTSYNC_SERIAL */
	const char *event;      /* CERTSYNC_EVENT */
	const char *message_id; /* MESSAGE_ID: 32 hex digits */
};

/*
 * Writes one journal entry (the fields as "NAME=value" iovecs); returns 0 or
 * a negative errno. sd_journal_sendv has this shape.
 */
typedef int (*cs_log_journal_fn)(const struct iovec *iov, int n);

/* Chooses the sink and the most verbose level that is still written. */
void cs_log_open(const char *ident, enum cs_log_sink sink, enum cs_log_level max);

/*
 * The writer of the CS_LOG_JOURNAL sink (NULL: none, that sink then writes
 * to syslog). A message the writer refuses goes to syslog.
 */
void cs_log_set_journal(cs_log_journal_fn fn);

/* The sink cs_log_open chose (CS_LOG_STDERR before it is called). */
enum cs_log_sink cs_log_get_sink(void);

/*
 * True when stderr is a stream to the journal: $JOURNAL_STREAM, which
 * systemd sets for a service whose output goes to the journal, names
 * stderr's device and inode ("DEV:INO").
 */
bool cs_log_stderr_is_journal(void);

/*
 * The names a message may start with ("NAME: text") to carry
 * CERTSYNC_CERT=NAME in the journal: copied (the previous set is dropped);
 * n = 0 clears. Safe to call while other threads log. Returns 0 or -ENOMEM
 * (the previous set kept).
 */
int cs_log_set_names(const char *const *names, size_t n);

/* Parses "error|warning|notice|info|debug"; returns the level or -1. */
int cs_log_level_parse(const char *s);

/*
 * Sends every message written (after the level filter) to fn instead of the
 * sink, as one formatted line without time stamp; NULL restores the sink.
 * The network process forwards its log to the parent this way.
 */
void cs_log_set_hook(void (*fn)(enum cs_log_level level, const char *msg));

/* Changes the most verbose level written. */
void cs_log_set_level(enum cs_log_level max);

void cs_log(enum cs_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void cs_log_v(enum cs_log_level level, const char *fmt, va_list ap);

/*
 * cs_log with the fields of ctx (NULL: none) in a journal entry; the other
 * sinks write the message alone. ctx->cert NULL: taken from the message as
 * for cs_log.
 */
void cs_log_with(enum cs_log_level level, const struct cs_log_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Appends the OpenSSL error queue (drained) to buf as "; reason; reason". */
void cs_log_ssl_errors(char *buf, unsigned long len);

#define cs_err(...) cs_log(CS_LOG_ERR, __VA_ARGS__)
#define cs_warn(...) cs_log(CS_LOG_WARN, __VA_ARGS__)
#define cs_notice(...) cs_log(CS_LOG_NOTICE, __VA_ARGS__)
#define cs_info(...) cs_log(CS_LOG_INFO, __VA_ARGS__)
#define cs_debug(...) cs_log(CS_LOG_DEBUG, __VA_ARGS__)

#endif
