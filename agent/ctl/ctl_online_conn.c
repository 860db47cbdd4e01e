/*
 * ctl_online_conn - certsyncctl's side of the status socket: a connection
 * to the agent, one request line sent and one answer line read within a
 * deadline, and the agent's error printed.
 */
#include "ctl.h"
#include "ctl_online_int.h"
#include "cs_proto.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* How long to wait for an answer (renew --wait: --timeout). */
int ctl_online__read_timeout_ms = CTL_ONLINE_READ_TIMEOUT_MS;

struct conn {
	int fd;
	char *buf;
	size_t len, cap;
};

static const char *sock_path(void)
{
	return ctl_socket_path != NULL ? ctl_socket_path : CS_PROTO_SOCKET_PATH;
}

/* Returns 0, or EX_UNREACHABLE with a message on stderr. */
static int conn_open(struct conn *c)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = sock_path();

	memset(c, 0, sizeof(*c));
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "certsyncctl: %s: path too long for a Unix socket\n", path);
		return EX_UNREACHABLE;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		const char *hint = "";

		if (e == ENOENT || e == ECONNREFUSED)
			hint = " (is certsyncd running? -s SOCKET or -c CONFIG)";
		else if (e == EACCES)
			hint = " (not in socket_group?)";
		fprintf(stderr, "certsyncctl: cannot reach the agent at %s: %s%s\n", path,
			strerror(e), hint);
		if (c->fd >= 0)
			close(c->fd);
		c->fd = -1;
		return EX_UNREACHABLE;
	}
	return 0;
}

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	c->fd = -1;
	c->buf = NULL;
}

/*
 * Sends req (consumed) and reads one answer line into *resp (the raw line in
 * *line, valid until the next call). Returns 0 or EX_UNREACHABLE.
 */
static int conn_call(struct conn *c, json_t *req, json_t **resp, const char **line)
{
	char *text = json_dumps(req, JSON_COMPACT);
	size_t off = 0, len;
	json_error_t jerr;

	json_decref(req);
	*resp = NULL;
	if (text == NULL) {
		fprintf(stderr, "certsyncctl: out of memory\n");
		return EX_FAIL;
	}
	len = strlen(text);
	text[len++] = '\n'; /* json_dumps leaves room: the NUL becomes the newline */
	while (off < len) {
		ssize_t n = send(c->fd, text + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "certsyncctl: the agent at %s went away: %s\n", sock_path(),
				strerror(errno));
			free(text);
			return EX_UNREACHABLE;
		}
		off += (size_t)n;
	}
	free(text);
	/* Drop the previous answer, keep anything after it. */
	char *nl = c->buf ? memchr(c->buf, '\0', c->len) : NULL;
	if (nl != NULL) {
		size_t used = (size_t)(nl - c->buf) + 1;
		memmove(c->buf, c->buf + used, c->len - used);
		c->len -= used;
	}
	for (;;) {
		nl = c->buf ? memchr(c->buf, '\n', c->len) : NULL;
		if (nl != NULL)
			break;
		if (c->cap - c->len < 65536) {
			size_t cap = c->cap ? c->cap * 2 : 65536;
			char *p = realloc(c->buf, cap);
			if (p == NULL) {
				fprintf(stderr, "certsyncctl: out of memory\n");
				return EX_FAIL;
			}
			c->buf = p;
			c->cap = cap;
		}
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int pr = poll(&pfd, 1, ctl_online__read_timeout_ms);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr == 0) {
			fprintf(stderr, "certsyncctl: no answer from the agent within %d s\n",
				ctl_online__read_timeout_ms / 1000);
			return EX_UNREACHABLE;
		}
		ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "certsyncctl: the agent at %s closed the connection%s%s\n",
				sock_path(), n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
			return EX_UNREACHABLE;
		}
		c->len += (size_t)n;
	}
	*nl = '\0';
	*line = c->buf;
	*resp = json_loads(c->buf, 0, &jerr);
	if (*resp == NULL || !json_is_object(*resp)) {
		fprintf(stderr, "certsyncctl: the agent's answer is not JSON: %s\n", jerr.text);
		json_decref(*resp);
		*resp = NULL;
		return EX_FAIL;
	}
	return 0;
}

/* One request on a new connection; returns 0 or an exit status (message printed). */
static int call(json_t *req, json_t **resp, char **line)
{
	struct conn c;
	const char *l = NULL;
	int rc = conn_open(&c);

	*resp = NULL;
	*line = NULL;
	if (rc != 0) {
		json_decref(req);
		return rc;
	}
	rc = conn_call(&c, req, resp, &l);
	if (rc == 0 && (*line = strdup(l)) == NULL)
		rc = EX_FAIL;
	conn_close(&c);
	return rc;
}

/* Prints the agent's error; returns EX_FAIL. */
static int agent_error(const char *cmd, json_t *resp)
{
	const char *msg = json_string_value(json_object_get(resp, CS_PROTO_K_ERROR));

	fprintf(stderr, "certsyncctl %s: %s\n", cmd, msg ? msg : "the agent said no");
	return EX_FAIL;
}

/* Sends req; with --json prints the answer line. Returns 0 (ok) or an exit status. */
int ctl_online__simple(const char *cmd, json_t *req, json_t **resp)
{
	char *line;
	int rc = call(req, resp, &line);

	if (rc != 0)
		return rc;
	if (ctl_json)
		printf("%s\n", line);
	free(line);
	if (!json_is_true(json_object_get(*resp, CS_PROTO_K_OK))) {
		if (!ctl_json)
			agent_error(cmd, *resp);
		return EX_FAIL;
	}
	return 0;
}
