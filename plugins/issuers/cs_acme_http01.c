/*
 * cs_acme_http01 - built-in responder for http-01 challenges.
 *
 * It owns a listening uv_tcp_t, the client connections (each a uv_tcp_t with
 * a uv_timer_t that drops it after 10 s), and the token table. Only the
 * request line is read (up to 2 KiB): the validation server sends a plain GET
 * and everything after the request line is irrelevant to the answer. Handle
 * memory goes in close callbacks; the responder is freed when the last one
 * has run after cs_acme_http01_close.
 */
#include "cs_acme_http01.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#define PREFIX "/.well-known/acme-challenge/"
#define REQ_MAX 2048

struct token {
	LIST_ENTRY(token) link; /* in tokens */
	char *token, *keyauth;
};

struct conn {
	uv_tcp_t tcp; /* first: the handle's memory is the connection's */
	uv_timer_t timer;
	cs_acme_http01 *s;
	TAILQ_ENTRY(conn) link; /* in conns */
	char buf[REQ_MAX];
	size_t used;
	int closing; /* handles still to close */
	bool answered;
	uv_write_t wr;
	char *resp;
};

struct cs_acme_http01 {
	uv_poll_t listener; /* on fd: accept4 by hand (netproc's seccomp filter has no listen) */
	int fd;             /* the listening socket, closed after the poll handle */
	uv_loop_t *loop;
	LIST_HEAD(, token) tokens;
	TAILQ_HEAD(conn_list, conn) conns; /* newest first */
	int n_conns;        /* in conns */
	int open_handles;
	bool closing;
	void (*close_cb)(void *);
	void *close_arg;
};

static void maybe_free(cs_acme_http01 *s)
{
	if (!s->closing || s->open_handles > 0)
		return;
	void (*cb)(void *) = s->close_cb;
	void *arg = s->close_arg;
	while (!LIST_EMPTY(&s->tokens)) {
		struct token *t = LIST_FIRST(&s->tokens);
		LIST_REMOVE(t, link);
		free(t->token);
		free(t->keyauth);
		free(t);
	}
	free(s);
	if (cb != NULL)
		cb(arg);
}

static void on_listener_closed(uv_handle_t *h)
{
	cs_acme_http01 *s = h->data;

	close(s->fd);
	s->open_handles--;
	maybe_free(s);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	cs_acme_http01 *s = c->s;

	if (--c->closing > 0)
		return;
	free(c->resp);
	free(c);
	s->open_handles--;
	maybe_free(s);
}

static void conn_close(struct conn *c)
{
	cs_acme_http01 *s = c->s;

	if (c->closing > 0)
		return;
	TAILQ_REMOVE(&s->conns, c, link);
	c->closing = 2;
	s->n_conns--;
	uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
	uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

static void on_conn_timeout(uv_timer_t *t)
{
	conn_close(t->data);
}

static void on_written(uv_write_t *w, int status)
{
	conn_close(w->data);
}

static const char *lookup(cs_acme_http01 *s, const char *token)
{
	struct token *t;

	LIST_FOREACH(t, &s->tokens, link)
		if (strcmp(t->token, token) == 0)
			return t->keyauth;
	return NULL;
}

static void answer(struct conn *c)
{
	char method[8], target[REQ_MAX];
	const char *keyauth = NULL;
	int n;

	c->answered = true;
	uv_read_stop((uv_stream_t *)&c->tcp);
	if (sscanf(c->buf, "%7s %2047s HTTP/1.", method, target) == 2 &&
	    (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) &&
	    strncmp(target, PREFIX, strlen(PREFIX)) == 0)
		keyauth = lookup(c->s, target + strlen(PREFIX));
	if (keyauth != NULL)
		n = asprintf(&c->resp,
			     "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
			     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
			     strlen(keyauth), strcmp(method, "HEAD") == 0 ? "" : keyauth);
	else
		n = asprintf(&c->resp, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
				       "Connection: close\r\n\r\n");
	if (n < 0) {
		c->resp = NULL;
		conn_close(c);
		return;
	}
	uv_buf_t b = uv_buf_init(c->resp, (unsigned)n);
	c->wr.data = c;
	if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0)
		conn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;

	*buf = uv_buf_init(c->buf + c->used, (unsigned)(sizeof(c->buf) - 1 - c->used));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct conn *c = st->data;

	if (n < 0) {
		conn_close(c);
		return;
	}
	c->used += (size_t)n;
	c->buf[c->used] = '\0';
	if (strchr(c->buf, '\n') != NULL || c->used >= sizeof(c->buf) - 1)
		answer(c);
}

/* One connection accepted (cfd, non-blocking): read its request. */
static void on_connection(cs_acme_http01 *s, int cfd)
{
	struct conn *c;

	if (s->n_conns >= CS_ACME_HTTP01_MAX_CONNS) {
		/* The oldest goes: a validator's request comes on a new connection. */
		conn_close(TAILQ_LAST(&s->conns, conn_list));
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		close(cfd);
		return;
	}
	c->s = s;
	uv_tcp_init(s->loop, &c->tcp);
	uv_timer_init(s->loop, &c->timer);
	c->tcp.data = c;
	c->timer.data = c;
	s->open_handles++;
	TAILQ_INSERT_HEAD(&s->conns, c, link);
	s->n_conns++;
	if (uv_tcp_open(&c->tcp, cfd) < 0) {
		close(cfd); /* not the handle's */
		conn_close(c);
		return;
	}
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
		conn_close(c);
		return;
	}
	/* A validator sends its request at once; an idle connection is not kept long. */
	uv_timer_start(&c->timer, on_conn_timeout, 5000, 0);
}

/* The listening socket is readable: every connection waiting is accepted. */
static void on_readable(uv_poll_t *h, int status, int events)
{
	cs_acme_http01 *s = h->data;
	int cfd;

	(void)events;
	if (status < 0 || s->closing)
		return;
	while ((cfd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		on_connection(s, cfd);
		if (s->closing)
			return;
	}
}

int cs_acme_http01_conns(const cs_acme_http01 *s)
{
	return s->n_conns;
}

int cs_acme_http01_parse_addr(const char *s, struct sockaddr_storage *ss)
{
	char host[128];
	const char *colon;
	char *end;
	long port;

	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (rb == NULL || rb[1] != ':' || (size_t)(rb - s - 1) >= sizeof(host))
			return UV_EINVAL;
		memcpy(host, s + 1, (size_t)(rb - s - 1));
		host[rb - s - 1] = '\0';
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
			return UV_EINVAL;
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = '\0';
	}
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || colon[1] == '\0' || port < 0 || port > 65535)
		return UV_EINVAL;
	if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0)
		return 0;
	return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss);
}

int cs_acme_http01_listen_fd(const char *addr, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, rc, on = 1;

	rc = cs_acme_http01_parse_addr(addr, &ss);
	if (rc < 0) {
		snprintf(err, errlen, "http_listen %s: not ADDR:PORT", addr);
		return rc;
	}
	len = ss.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	/* SO_REUSEADDR as libuv sets it: a port in TIME_WAIT can be bound again. */
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0 ||
	    bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 64) < 0) {
		rc = uv_translate_sys_error(errno);
		if (fd >= 0)
			close(fd);
		snprintf(err, errlen, "http_listen %s: cannot listen: %s", addr, uv_strerror(rc));
		return rc;
	}
	return fd;
}

cs_acme_http01 *cs_acme_http01_open_fd(uv_loop_t *loop, int fd, char *err, size_t errlen)
{
	cs_acme_http01 *s;
	int rc;

	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->loop = loop;
	LIST_INIT(&s->tokens);
	TAILQ_INIT(&s->conns);
	s->fd = fd;
	rc = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ? -errno : 0;
	if (rc == 0)
		rc = uv_poll_init(loop, &s->listener, fd);
	if (rc < 0) {
		snprintf(err, errlen, "listening socket %d: %s", fd, strerror(-rc));
		close(fd);
		free(s);
		return NULL;
	}
	s->listener.data = s;
	s->open_handles = 1;
	rc = uv_poll_start(&s->listener, UV_READABLE, on_readable);
	if (rc < 0) {
		snprintf(err, errlen, "listening socket %d: %s", fd, uv_strerror(rc));
		s->closing = true;
		uv_close((uv_handle_t *)&s->listener, on_listener_closed);
		return NULL;
	}
	return s;
}

cs_acme_http01 *cs_acme_http01_new(uv_loop_t *loop, const char *listen, char *err,
				   size_t errlen)
{
	int fd = cs_acme_http01_listen_fd(listen, err, errlen);

	return fd >= 0 ? cs_acme_http01_open_fd(loop, fd, err, errlen) : NULL;
}

int cs_acme_http01_port(cs_acme_http01 *s)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(s->fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

int cs_acme_http01_add(cs_acme_http01 *s, const char *token, const char *keyauth)
{
	struct token *t = calloc(1, sizeof(*t));

	if (t == NULL || (t->token = strdup(token)) == NULL ||
	    (t->keyauth = strdup(keyauth)) == NULL) {
		if (t != NULL)
			free(t->token);
		free(t);
		return -ENOMEM;
	}
	LIST_INSERT_HEAD(&s->tokens, t, link);
	return 0;
}

void cs_acme_http01_remove(cs_acme_http01 *s, const char *token)
{
	struct token *t;

	LIST_FOREACH(t, &s->tokens, link) {
		if (strcmp(t->token, token) != 0)
			continue;
		LIST_REMOVE(t, link);
		free(t->token);
		free(t->keyauth);
		free(t);
		return;
	}
}

void cs_acme_http01_close(cs_acme_http01 *s, void (*close_cb)(void *arg), void *arg)
{
	if (s == NULL || s->closing)
		return;
	s->closing = true;
	s->close_cb = close_cb;
	s->close_arg = arg;
	while (!TAILQ_EMPTY(&s->conns))
		conn_close(TAILQ_FIRST(&s->conns));
	uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}
