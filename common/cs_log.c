/*
 * cs_log - leveled logging to stderr, syslog or the journal. See cs_log.h.
 */
#include "cs_log.h"

#include <errno.h>
#include <openssl/err.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static enum cs_log_sink log_sink = CS_LOG_STDERR;
static enum cs_log_level log_max = CS_LOG_INFO;
static const char *log_ident = "certsync";
static void (*log_hook)(enum cs_log_level level, const char *msg);
static cs_log_journal_fn log_journal;

/* cs_log_set_names: sorted copies, read by every thread that logs. */
static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;
static char **log_names;
static size_t log_n_names;

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
	else if (sink == CS_LOG_JOURNAL)
		openlog(ident, LOG_PID, LOG_DAEMON); /* the fallback, connected when used */
}

void cs_log_set_journal(cs_log_journal_fn fn)
{
	log_journal = fn;
}

enum cs_log_sink cs_log_get_sink(void)
{
	return log_sink;
}

bool cs_log_stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	int used = 0;

	if (env == NULL || sscanf(env, "%llu:%llu%n", &dev, &ino, &used) != 2 ||
	    env[used] != '\0')
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int cs_log_set_names(const char *const *names, size_t n)
{
	char **v = NULL, **old;
	size_t old_n;

	if (n > 0 && (v = calloc(n, sizeof(*v))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if ((v[i] = strdup(names[i])) == NULL) {
			free_names(v, i);
			return -ENOMEM;
		}
	if (n > 0)
		qsort(v, n, sizeof(*v), cmp_names);
	pthread_mutex_lock(&names_lock);
	old = log_names;
	old_n = log_n_names;
	log_names = v;
	log_n_names = n;
	pthread_mutex_unlock(&names_lock);
	free_names(old, old_n);
	return 0;
}

/* True when msg starts with "NAME: " for a registered NAME, copied into out. */
static bool name_of(const char *msg, char *out, size_t len)
{
	const char *colon = strchr(msg, ':');
	const char *key = out;
	size_t n;
	bool found;

	if (colon == NULL || colon == msg || colon[1] != ' ' || (n = (size_t)(colon - msg)) >= len)
		return false;
	memcpy(out, msg, n);
	out[n] = '\0';
	pthread_mutex_lock(&names_lock);
	found = log_n_names > 0 &&
		bsearch(&key, log_names, log_n_names, sizeof(*log_names), cmp_names) != NULL;
	pthread_mutex_unlock(&names_lock);
	return found;
}

/* One journal entry's fields, "NAME=value" each, in one buffer. */
struct fields {
	char buf[6144];
	size_t used;
	struct iovec iov[10];
	int n;
};

/* Adds NAME=value (value NULL: nothing), cut to what room is left. */
static void field_add(struct fields *f, const char *name, const char *value)
{
	size_t room = sizeof(f->buf) - f->used;
	int w;

	if (value == NULL || f->n == (int)(sizeof(f->iov) / sizeof(f->iov[0])) || room < 2)
		return;
	w = snprintf(f->buf + f->used, room, "%s=%s", name, value);
	if (w < 0)
		return;
	size_t len = (size_t)w < room ? (size_t)w : room - 1;
	f->iov[f->n++] = (struct iovec){ .iov_base = f->buf + f->used, .iov_len = len };
	f->used += len + 1;
}

/* Writes msg as one journal entry; returns the writer's answer (-ENOSYS: none). */
static int journal_write(enum cs_log_level level, const struct cs_log_ctx *ctx,
			 const char *msg)
{
	struct fields f = { .used = 0, .n = 0 };
	char prio[4], cert[256];
	const char *name = ctx != NULL ? ctx->cert : NULL;

	if (log_journal == NULL)
		return -ENOSYS;
	if (name == NULL && name_of(msg, cert, sizeof(cert)))
		name = cert;
	snprintf(prio, sizeof(prio), "%d", syslog_prio[level]);
	field_add(&f, "MESSAGE", msg);
	field_add(&f, "PRIORITY", prio);
	field_add(&f, "SYSLOG_IDENTIFIER", log_ident);
	field_add(&f, "SYSLOG_FACILITY", "3"); /* LOG_DAEMON, as the syslog sink */
	field_add(&f, "CERTSYNC_CERT", name);
	if (ctx != NULL) {
		field_add(&f, "CERTSYNC_ISSUER", ctx->issuer);
		field_add(&f, "CERTSYNC_SERIAL", ctx->serial);
		field_add(&f, "CERTSYNC_EVENT", ctx->event);
		field_add(&f, "MESSAGE_ID", ctx->message_id);
	}
	return log_journal(f.iov, f.n);
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

/* Writes one message to the hook or the sink. */
static void log_write(enum cs_log_level level, const struct cs_log_ctx *ctx, const char *fmt,
		      va_list ap)
{
	if (level > log_max)
		return;
	if (log_hook != NULL) {
		char line[4096];

		vsnprintf(line, sizeof(line), fmt, ap);
		log_hook(level, line);
		return;
	}
	if (log_sink == CS_LOG_JOURNAL) {
		char line[4096];

		vsnprintf(line, sizeof(line), fmt, ap);
		if (journal_write(level, ctx, line) < 0)
			syslog(syslog_prio[level], "%s", line);
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

void cs_log_v(enum cs_log_level level, const char *fmt, va_list ap)
{
	log_write(level, NULL, fmt, ap);
}

void cs_log_with(enum cs_log_level level, const struct cs_log_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_write(level, ctx, fmt, ap);
	va_end(ap);
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
