/*
 * cs_inisect - one section of one INI file, read with inih (see
 * cs_inisect.h).
 */
#include "cs_inisect.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct inisect {
	FILE *fp;
	char *line; /* getline's buffer */
	size_t cap;
	const char *section;
	cs_inisect_fn fn;
	void *arg;
};

/*
 * inih's reader: one line at a time, trimmed, without a comment that
 * follows white space (inih alone would only know ';'). A line longer than
 * inih takes is handed over empty: a socket or a directory path is never
 * that long, and the whole read of the configuration refuses the line.
 */
static char *next_line(char *str, int num, void *stream)
{
	struct inisect *s = stream;
	char *t, *end;

	if (getline(&s->line, &s->cap, s->fp) < 0)
		return NULL;
	for (t = s->line; isspace((unsigned char)*t); t++)
		;
	end = t + strlen(t);
	if (*t != '[' && *t != '#' && *t != ';')
		for (char *q = t; *q != '\0'; q++)
			if ((*q == '#' || *q == ';') && q > t && isspace((unsigned char)q[-1])) {
				end = q;
				break;
			}
	while (end > t && isspace((unsigned char)end[-1]))
		end--;
	if (end - t + 2 > num)
		end = t;
	snprintf(str, (size_t)num, "%.*s\n", (int)(end - t), t);
	return str;
}

static int on_pair(void *arg, const char *section, const char *key, const char *value)
{
	struct inisect *s = arg;

	if (strcmp(section, s->section) == 0)
		s->fn(s->arg, key, value);
	return 1;
}

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Formats fmt into err (when given) and returns rc. */
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

int cs_inisect_read(const char *path, const char *section, cs_inisect_fn fn, void *arg,
		    char *err, size_t errlen)
{
	struct inisect s = { .section = section, .fn = fn, .arg = arg };
	struct stat st;
	int fd, rc;

	/* Never block on a FIFO put in its place. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0 || fstat(fd, &st) < 0) {
		rc = -errno;
		if (fd >= 0)
			close(fd);
		return fail(err, errlen, rc, "%s: cannot read: %s", path, strerror(-rc));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return fail(err, errlen, -EINVAL,
			    "%s: not a regular file (a FIFO, device, socket or directory); refused",
			    path);
	}
	if (st.st_size > CS_INISECT_MAX_BYTES) {
		close(fd);
		return fail(err, errlen, -EFBIG,
			    "%s: %lld bytes, larger than %d: not a configuration file", path,
			    (long long)st.st_size, CS_INISECT_MAX_BYTES);
	}
	if ((s.fp = fdopen(fd, "r")) == NULL) {
		rc = -errno;
		close(fd);
		return fail(err, errlen, rc, "%s: cannot read: %s", path, strerror(-rc));
	}
	rc = ini_parse_stream(next_line, &s, on_pair, &s);
	fclose(s.fp);
	free(s.line);
	if (rc < 0)
		return fail(err, errlen, -ENOMEM, "%s: cannot read: %s", path, strerror(ENOMEM));
	if (rc > 0)
		return fail(err, errlen, rc,
			    "%s:%d: expected 'key = value' or a [section] header "
			    "(the line is not shown)",
			    path, rc);
	return 0;
}
