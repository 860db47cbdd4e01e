/*
 * cs_log - leveled logging to stderr (foreground) or syslog (daemon).
 *
 * The process has one log sink, chosen once at start by cs_log_open(). Messages
 * never contain key material: callers log file names, fingerprints and errors,
 * never buffers they read.
 */
#ifndef CS_LOG_H
#define CS_LOG_H

#include <stdarg.h>

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
};

/* Chooses the sink and the most verbose level that is still written. */
void cs_log_open(const char *ident, enum cs_log_sink sink, enum cs_log_level max);

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

/* Appends the OpenSSL error queue (drained) to buf as "; reason; reason". */
void cs_log_ssl_errors(char *buf, unsigned long len);

#define cs_err(...) cs_log(CS_LOG_ERR, __VA_ARGS__)
#define cs_warn(...) cs_log(CS_LOG_WARN, __VA_ARGS__)
#define cs_notice(...) cs_log(CS_LOG_NOTICE, __VA_ARGS__)
#define cs_info(...) cs_log(CS_LOG_INFO, __VA_ARGS__)
#define cs_debug(...) cs_log(CS_LOG_DEBUG, __VA_ARGS__)

#endif
