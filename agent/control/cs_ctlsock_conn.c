/*
 * cs_ctlsock_conn - the clients of the status socket: closing them, sending
 * answers, reading request lines, idle timeouts and fairness.
 *
 * Fairness: a client's buffered requests are answered at most BATCH per loop
 * turn (the rest from an idle handle on the following turns), and a client
 * with more than MAX_QUEUED bytes of unread answers is not read from until
 * it catches up. Answers are reference-counted lines shared by every client
 * they go to, written with uv_try_write and only their tail through
 * uv_write.
 */
#include "cs_ctlsock_int.h"
#include "cs_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cs_ctlsock__answer_unref(struct answer *a)
{
	if (a != NULL && --a->refs == 0)
		free(a);
}

static void maybe_freed(struct cs_ctlsock *s)
{
	if (!s->closing || s->handles > 0)
		return;
	void (*cb)(void *) = s->close_cb;
	void *arg = s->close_arg;
	cs_metrics_free(s->metrics);
	free(s->metrics_file);
	cs_ctlsock__answer_unref(s->list_cache);
	cs_ctlsock__answer_unref(s->status_cache);
	free(s->status_key.p);
	free(s->key_new.p);
	free(s);
	if (cb != NULL)
		cb(arg);
}

static void on_client_handle_closed(uv_handle_t *h)
{
	struct client *c = h->data;
	struct cs_ctlsock *s = c->s;

	if (--c->handles > 0)
		return;
	free(c->in);
	free(c);
	s->n_clients--;
	s->handles--;
	maybe_freed(s);
}

static void backlog_remove(struct client *c)
{
	if (!c->backlogged)
		return;
	TAILQ_REMOVE(&c->s->backlog, c, blink);
	c->backlogged = false;
}

void cs_ctlsock__close_client(struct client *c)
{
	if (c->closing)
		return;
	c->closing = true;
	if (c->deferred != NULL) {
		c->deferred->c = NULL;
		c->deferred = NULL;
	}
	backlog_remove(c);
	LIST_REMOVE(c, link);
	uv_close((uv_handle_t *)&c->pipe, on_client_handle_closed);
	uv_close((uv_handle_t *)&c->timer, on_client_handle_closed);
}

static void on_listener_closed(uv_handle_t *h)
{
	struct listener *l = h->data;
	struct cs_ctlsock *s = l->s;
	struct stat st;

	/* Remove the socket file only when it is still the one made here. */
	if (lstat(l->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino)
		unlink(l->path);
	free(l->path);
	free(l);
	s->handles--;
	maybe_freed(s);
}

void cs_ctlsock__close_listener(struct listener *l)
{
	if (l != NULL)
		uv_close((uv_handle_t *)&l->pipe, on_listener_closed);
}

void cs_ctlsock__on_plain_closed(uv_handle_t *h)
{
	struct cs_ctlsock *s = h->data;

	s->handles--;
	maybe_freed(s);
}

/* ---- answers ----------------------------------------------------------- */

/* True when nothing holds the client's next requests back. */
bool cs_ctlsock__can_read(const struct client *c)
{
	return !c->paused && !c->backlogged && !c->closing && !c->eof && !c->close_after_write &&
	       !c->waiting && c->deferred == NULL;
}


static void on_written(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct client *c = w->c;

	c->queued -= w->len;
	c->writes--;
	cs_ctlsock__answer_unref(w->a);
	free(w);
	if (status < 0 || c->closing) {
		cs_ctlsock__close_client(c);
		return;
	}
	if (c->close_after_write && c->writes == 0) {
		cs_ctlsock__close_client(c);
		return;
	}
	if (c->paused && c->queued < MAX_QUEUED / 2) {
		c->paused = false;
		cs_ctlsock__process(c);
		if (cs_ctlsock__can_read(c))
			uv_read_start((uv_stream_t *)&c->pipe, cs_ctlsock__on_alloc,
				      cs_ctlsock__on_read);
	}
}

/*
 * Sends the answer a to the client: written at once when the socket takes
 * it all (the usual case: no request, no callback, no change to what the
 * loop polls for), else its tail is queued with one more reference taken.
 * uv_try_write refuses while earlier answers are queued, so answers keep
 * their order.
 */
void cs_ctlsock__send_answer(struct client *c, struct answer *a)
{
	struct wreq *w;
	uv_buf_t buf;
	size_t off = 0;
	int r;

	if (c->closing)
		return;
	buf = uv_buf_init(a->data, (unsigned)a->len);
	r = uv_try_write((uv_stream_t *)&c->pipe, &buf, 1);
	if (r >= 0)
		off = (size_t)r;
	else if (r != UV_EAGAIN) {
		cs_ctlsock__close_client(c);
		return;
	}
	if (off == a->len)
		return;
	w = malloc(sizeof(*w));
	if (w == NULL) {
		cs_ctlsock__close_client(c);
		return;
	}
	a->refs++;
	w->a = a;
	w->c = c;
	w->len = a->len - off;
	buf = uv_buf_init(a->data + off, (unsigned)w->len);
	if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &buf, 1, on_written) < 0) {
		cs_ctlsock__answer_unref(a);
		free(w);
		cs_ctlsock__close_client(c);
		return;
	}
	c->writes++;
	c->queued += w->len;
}

/* Returns a new answer of text plus a newline (one reference), or NULL. */
static struct answer *answer_new(const char *text)
{
	size_t len = strlen(text);
	struct answer *a = malloc(sizeof(*a) + len + 1);

	if (a == NULL)
		return NULL;
	a->refs = 1;
	a->len = len + 1;
	memcpy(a->data, text, len);
	a->data[len] = '\n';
	return a;
}

/* Returns the answer for j (consumed), or an "out of memory" one; NULL only on ENOMEM. */
struct answer *cs_ctlsock__answer_json(json_t *j)
{
	char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	struct answer *a;

	a = answer_new(
		text != NULL ? text
			     : "{\"ok\":false,\"error\":\"out of memory\",\"code\":\"internal\"}");
	free(text);
	json_decref(j);
	return a;
}

void cs_ctlsock__send_json(struct client *c, json_t *j)
{
	struct answer *a = cs_ctlsock__answer_json(j);

	if (a == NULL) {
		cs_ctlsock__close_client(c);
		return;
	}
	cs_ctlsock__send_answer(c, a);
	cs_ctlsock__answer_unref(a);
}

json_t *cs_ctlsock__error_json(const char *code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return json_pack("{s:b,s:s,s:s}", CS_PROTO_K_OK, 0, CS_PROTO_K_ERROR, msg, CS_PROTO_K_CODE,
			 code);
}

static void on_idle_turn(uv_idle_t *h)
{
	struct cs_ctlsock *s = h->data;
	struct client *c;
	size_t n = 0;

	/* Each client waiting now gets one more batch; those it re-queues wait a turn. */
	TAILQ_FOREACH(c, &s->backlog, blink)
		n++;
	while (n-- > 0 && !TAILQ_EMPTY(&s->backlog)) {
		c = TAILQ_FIRST(&s->backlog);
		backlog_remove(c);
		cs_ctlsock__process(c);
		if (cs_ctlsock__can_read(c))
			uv_read_start((uv_stream_t *)&c->pipe, cs_ctlsock__on_alloc,
				      cs_ctlsock__on_read);
	}
	if (TAILQ_EMPTY(&s->backlog))
		uv_idle_stop(&s->idle);
}

static void backlog_add(struct client *c)
{
	struct cs_ctlsock *s = c->s;

	uv_read_stop((uv_stream_t *)&c->pipe);
	c->backlogged = true;
	TAILQ_INSERT_TAIL(&s->backlog, c, blink);
	uv_idle_start(&s->idle, on_idle_turn);
}

/*
 * While the agent starts, a request other than status (or a malformed one,
 * answered at once) waits: the client is not read from until the pipeline
 * is attached, and its requests are then answered in order. Returns true
 * when the request in line must wait.
 */
static bool must_wait(struct client *c, const char *line, size_t len)
{
	json_t *req;
	const char *cmd;
	bool wait;

	if (c->s->starting == NULL)
		return false;
	req = json_loadb(line, len, 0, NULL);
	cmd = json_string_value(json_object_get(req, CS_PROTO_K_CMD));
	wait = json_is_object(req) && cmd != NULL && strcmp(cmd, CS_PROTO_CMD_STATUS) != 0;
	json_decref(req);
	if (wait) {
		c->waiting = true;
		uv_read_stop((uv_stream_t *)&c->pipe);
		uv_timer_stop(&c->timer); /* not idle: waiting for the agent */
	}
	return wait;
}

/* Reads no more from c, and closes it once its answers are written. */
static void close_after_writes(struct client *c)
{
	c->close_after_write = true;
	uv_read_stop((uv_stream_t *)&c->pipe);
	if (c->writes == 0)
		cs_ctlsock__close_client(c);
}

/*
 * Notes that c has just been answered. The idle timer is not moved on each
 * request (that costs two heap operations a request): on_idle looks at
 * active_at when it fires and sets itself for the rest of the time.
 */
static void touch(struct client *c)
{
	c->active_at = uv_now(c->s->loop);
	if (!uv_is_active((uv_handle_t *)&c->timer))
		uv_timer_again(&c->timer);
}

/*
 * Answers the complete lines buffered: at most BATCH per turn (the rest on
 * the next turns, so that a client sending thousands of requests at once
 * does not hold the others up), and none while its answers pile up unread.
 */
void cs_ctlsock__process(struct client *c)
{
	size_t off = 0;
	int done = 0;

	while (!c->closing && !c->paused && !c->backlogged && !c->waiting && c->deferred == NULL) {
		char *nl = memchr(c->in + off, '\n', c->len - off);
		if (nl == NULL)
			break;
		size_t n = (size_t)(nl - (c->in + off));
		size_t linelen = n;
		if (linelen > 0 && c->in[off + linelen - 1] == '\r')
			linelen--;
		if (n > c->s->max_request) {
			cs_ctlsock__send_json(
				c, cs_ctlsock__error_json(CS_PROTO_E_TOO_LONG,
							  "request longer than %zu bytes",
							  c->s->max_request));
			c->s->ag.requests_error++;
			close_after_writes(c);
			off = c->len;
			break;
		}
		if (linelen > 0 && must_wait(c, c->in + off, linelen))
			break;
		if (linelen > 0) {
			cs_ctlsock__handle(c, c->in + off, linelen);
			/* A deferred answer may take a while: the client is not idle meanwhile. */
			if (c->deferred != NULL)
				uv_timer_stop(&c->timer);
			else
				touch(c);
			done++;
		}
		off += n + 1;
		if (c->queued >= MAX_QUEUED) {
			c->paused = true;
			uv_read_stop((uv_stream_t *)&c->pipe);
		} else if (done >= BATCH && memchr(c->in + off, '\n', c->len - off) != NULL) {
			backlog_add(c);
		}
	}
	if (off > 0) {
		memmove(c->in, c->in + off, c->len - off);
		c->len -= off;
	}
	if (c->closing || c->close_after_write)
		return;
	if (c->len > c->s->max_request) {
		c->s->ag.requests_error++;
		cs_ctlsock__send_json(c, cs_ctlsock__error_json(CS_PROTO_E_TOO_LONG,
								"request longer than %zu bytes",
								c->s->max_request));
		close_after_writes(c);
		return;
	}
	if (c->eof && !c->paused && !c->backlogged && !c->waiting && c->deferred == NULL) {
		/* A last request without its newline is still answered. */
		if (c->len > 0 && must_wait(c, c->in, c->len))
			return;
		if (c->len > 0) {
			cs_ctlsock__handle(c, c->in, c->len);
			c->len = 0;
		}
		/* Closed after the deferred answer, when process runs again. */
		if (c->deferred != NULL) {
			uv_timer_stop(&c->timer);
			return;
		}
		if (c->writes == 0)
			cs_ctlsock__close_client(c);
		else
			c->close_after_write = true;
	}
}

void cs_ctlsock__on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct client *c = h->data;
	size_t want = c->len + 16384;

	(void)suggested;
	if (want > c->cap) {
		size_t cap = c->cap ? c->cap : 16384;
		while (cap < want)
			cap *= 2;
		char *p = realloc(c->in, cap);
		if (p == NULL) {
			*buf = uv_buf_init(NULL, 0);
			return;
		}
		c->in = p;
		c->cap = cap;
	}
	*buf = uv_buf_init(c->in + c->len, (unsigned)(c->cap - c->len));
}

void cs_ctlsock__on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct client *c = st->data;

	(void)buf;
	if (nread == 0)
		return;
	if (nread < 0) {
		uv_read_stop(st);
		if (nread != UV_EOF) {
			cs_ctlsock__close_client(c);
			return;
		}
		c->eof = true;
		cs_ctlsock__process(c);
		return;
	}
	c->len += (size_t)nread;
	cs_ctlsock__process(c);
}

void cs_ctlsock__on_idle(uv_timer_t *t)
{
	struct client *c = t->data;

	/* A client waiting for a renewal, a revocation or the start is not idle. */
	if (c->deferred != NULL || c->waiting)
		return;
	uint64_t quiet = uv_now(c->s->loop) - c->active_at;
	if (quiet < c->s->idle_ms) {
		/* It asked something since the timer was set: the rest of its time. */
		uv_timer_start(t, cs_ctlsock__on_idle, c->s->idle_ms - quiet, c->s->idle_ms);
		return;
	}
	/* No complete request within the timeout: drop it without another word. */
	cs_debug("status socket: dropping idle client (uid %u)", (unsigned)c->uid);
	cs_ctlsock__close_client(c);
}

