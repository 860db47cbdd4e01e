/*
 * cs_log - leveled logging to stderr or syslog. See cs_log.h.
 */
#include "cs_log.h"

#include <openssl/err.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

static enum cs_log_sink log_sink = CS_LOG_STDERR;
static enum cs_log_level log_max = CS_LOG_INFO;
static const char *log_ident = "certsync";
static void (*log_hook)(enum cs_log_level level, const char *msg);

static const char *const level_names[] = {
	[CS_LOG_ERR] = "error",
	[CS_LOG_WARN] = "warning",
	[CS_LOG_NOTICE] = "notice",
	[CS_LOG_INFO] = "info",
	[CS_LOG_DEBUG] = "debug",
};

static const int syslog_prio[] = {
	[CS_LOG_ERR] = LOG_ERR,
	[CS_LOG_WARN] = LOG_WARNING,
	[CS_LOG_NOTICE] = LOG_NOTICE,
	[CS_LOG_INFO] = LOG_INFO,
	[CS_LOG_DEBUG] = LOG_DEBUG,
};

void cs_log_open(const char *ident, enum cs_log_sink sink, enum cs_log_level max)
{
	log_ident = ident;
	log_sink = sink;
	log_max = max;
	if (sink == CS_LOG_SYSLOG)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

int cs_log_level_parse(const char *s)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(s, level_names[i]) == 0)
			return (int)i;
	if (strcmp(s, "err") == 0)
		return CS_LOG_ERR;
	if (strcmp(s, "warn") == 0)
		return CS_LOG_WARN;
	return -1;
}

void cs_log_set_hook(void (*fn)(enum cs_log_level level, const char *msg))
{
	log_hook = fn;
}

void cs_log_set_level(enum cs_log_level max)
{
	log_max = max;
}

void cs_log_v(enum cs_log_level level, const char *fmt, va_list ap)
{
	if (level > log_max)
		return;
	if (log_hook != NULL) {
		char line[4096];

		vsnprintf(line, sizeof(line), fmt, ap);
		log_hook(level, line);
		return;
	}
	if (log_sink == CS_LOG_SYSLOG) {
		vsyslog(syslog_prio[level], fmt, ap);
		return;
	}
	char stamp[32];
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
	/* One fprintf per line so that concurrent writers do not interleave. */
	char msg[4096];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	fprintf(stderr, "%s.%03ld %s %s: %s\n", stamp, ts.tv_nsec / 1000000, log_ident,
		level_names[level], msg);
}

void cs_log(enum cs_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cs_log_v(level, fmt, ap);
	va_end(ap);
}

void cs_log_ssl_errors(char *buf, unsigned long len)
{
	unsigned long e;
	size_t used = strlen(buf);

	while ((e = ERR_get_error()) != 0) {
		char one[256];

		ERR_error_string_n(e, one, sizeof(one));
		if (used + 2 < len) {
			snprintf(buf + used, len - used, "; %s", one);
			used = strlen(buf);
		}
	}
}
