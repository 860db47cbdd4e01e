/*
 * cs_ctlsock - the status socket server and the metrics file writer. See
 * cs_ctlsock.h for the protocol and the rules.
 *
 * The socket is made without touching the process umask (worker threads
 * create files at the same time): it is bound in a fresh 0700 directory next
 * to its final path, given its group and mode there, and renamed into place.
 * The rename also replaces a stale socket atomically; a live one (connect()
 * succeeds) is never replaced.
 *
 * Fairness: a client's buffered requests are answered at most BATCH per loop
 * turn (the rest from an idle handle on the following turns), and a client
 * with more than MAX_QUEUED bytes of unread answers is not read from until
 * it catches up. Clients asking for `list` in the same loop turn share one
 * rendered answer (reference-counted), which is what lets hundreds of
 * clients ask about a thousand certs at once. status is answered from the
 * last rendered answer for as long as everything it is made of is the same
 * (status_key), and answers go out with uv_try_write: a small request costs
 * a read, a few comparisons and a write. A renew all starts its renewals in
 * paced slices (renew_all_turn) so that it does not hold the loop.
 *
 * Handles: the listener, the state-dir watch, the metrics timer, the idle
 * handle and two per client (pipe and idle timer). s->handles counts those
 * still open; s and each client are freed only from close callbacks.
 *
 * The last section wires the server to the agent's pipeline
 * (cs_ctlsock_for_agent), so that cs_agent.c needs three calls.
 */
#include "cs_ctlsock.h"
#include "cs_capsync.h"
#include "cs_early.h"
#include "cs_log.h"
#include "cs_metrics.h"
#include "cs_state.h"

#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_QUEUED (1024u * 1024) /* answers waiting for one client */
#define BATCH 16 /* requests of one client answered per loop turn */
#define METRICS_DEBOUNCE_MS 200
/* Reloads run up to 10 s after a renewal (debounced): write once more after that. */
#define METRICS_LATE_MS 11000
#define METRICS_FIRST_MS 2000

struct listener {
	uv_pipe_t pipe;
	struct cs_ctlsock *s;
	char *path;
	mode_t mode;
	gid_t group;
	dev_t dev;
	ino_t ino;
};

struct client {
	uv_pipe_t pipe;
	uv_timer_t timer;
	struct cs_ctlsock *s;
	struct client *prev, *next;
	int access; /* 0 none, 1 read, 2 change */
	uid_t uid;
	char *in;
	size_t len, cap;
	size_t queued; /* bytes of answers not yet written */
	uint64_t active_at; /* loop time of its last request (the idle timer looks) */
	unsigned writes;
	int handles;
	bool closing, paused, eof, close_after_write;
	bool backlogged; /* more lines buffered than one turn answers */
	bool waiting;    /* a request that waits for the agent to finish starting */
	struct client *bprev, *bnext;
	struct deferred *deferred; /* a command whose answer comes later, or NULL */
};

/*
 * A command answered when the backend calls back (revoke): until then the
 * client is not read from and its buffered requests wait, so that answers
 * keep the order of the requests. It outlives a client that goes away (c is
 * then NULL) and is freed by the callback, which never touches the server.
 */
struct deferred {
	struct client *c;
	char *name;
	const char *reason;
	/* How a revoke or adopt is answered once the backend has called back. */
	json_t *(*answer)(const struct deferred *d, int status, const char *msg);
	/* renew --wait: the results so far, and how many renewals are still running (+1 held). */
	json_t *results;
	size_t left;
	/* renew all: how many certs answered each way at once (not_due ones are not in results). */
	size_t n_started, n_not_due, n_busy, n_error;
	/* renew: its flags; renew all: the next cert to ask for, and the next such request. */
	bool all, force, wait;
	size_t next;
	struct deferred *rnext;
	/* A backend that answers before it returns: the answer is kept for the caller. */
	bool in_call, answered;
	int status;
	char msg[1024];
};

static void deferred_answer(struct deferred *d, json_t *resp, bool ok);

/* An answer line (newline included), shared by every write of it. */
struct answer {
	unsigned refs;
	size_t len;
	char data[];
};

/* The part of an answer the socket did not take at once, being written. */
struct wreq {
	uv_write_t req;
	struct client *c;
	struct answer *a;
	size_t len; /* bytes of a->data this write sends (its tail) */
};

/* Bytes that say everything a status answer is made of (see status_key). */
struct keybuf {
	unsigned char *p;
	size_t len, cap;
	bool failed; /* out of memory: the key is unusable */
};

enum mphase { M_IDLE = 0, M_DEBOUNCE, M_LATE };

struct cs_ctlsock {
	uv_loop_t *loop;
	struct cs_ctlsock_backend be;
	struct listener *lis;
	gid_t admin_group;
	size_t max_request;
	uint64_t idle_ms;
	size_t max_clients;
	char *metrics_file;
	char *state_dir;

	struct client *clients;
	unsigned n_clients;
	struct cs_metrics *metrics;
	struct cs_metrics_agent ag;

	uv_fs_event_t watch;
	bool watching;
	uv_timer_t mtimer;
	enum mphase mphase;
	uv_idle_t idle; /* runs while clients are backlogged */
	struct client *backlog, *backlog_tail; /* served in this order */
	/*
	 * renew all requests still asking for renewals, oldest first, and the
	 * timer for the next slice (renew_all_turn): as long after a slice as
	 * the slice took, so that they get at most half the loop.
	 */
	struct deferred *renew_all, *renew_all_tail;
	uv_timer_t rtimer;
	uint64_t renew_pause_ms;
	/* The last `list` answer and the loop time it was made at: clients
	   asking in the same loop turn get the same bytes. */
	struct answer *list_cache;
	uint64_t list_cache_at;
	/*
	 * The last status answer and the key it was made from: answered again
	 * as long as a new key is the same bytes (status_answer).
	 */
	struct answer *status_cache;
	struct keybuf status_key, key_new;

	/*
	 * While the agent reads its configuration and builds its pipeline:
	 * what it is doing. status answers at once with it; other requests
	 * wait (their clients are not read from) until cs_ctlsock_attach.
	 */
	const char *starting;

	int handles;
	bool closing;
	void (*close_cb)(void *arg);
	void *close_arg;
};

/* Returns the access of a peer: 0 none, 1 read, 2 read and change. */
int cs_ctlsock_access(uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups,
		      gid_t socket_group, gid_t admin_group, uid_t self)
{
	bool in_admin = false, in_sock = false;

	if (uid == 0 || uid == self)
		return 2;
	if (admin_group != (gid_t)-1 && gid == admin_group)
		in_admin = true;
	if (socket_group != (gid_t)-1 && gid == socket_group)
		in_sock = true;
	for (size_t i = 0; i < n_groups; i++) {
		if (admin_group != (gid_t)-1 && groups[i] == admin_group)
			in_admin = true;
		if (socket_group != (gid_t)-1 && groups[i] == socket_group)
			in_sock = true;
	}
	if (in_admin)
		return 2;
	if (in_sock || socket_group == (gid_t)-1)
		return 1;
	return 0;
}

/* ---- closing ---------------------------------------------------------- */

static void answer_unref(struct answer *a)
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
	free(s->state_dir);
	answer_unref(s->list_cache);
	answer_unref(s->status_cache);
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
	if (c->bprev != NULL)
		c->bprev->bnext = c->bnext;
	else
		c->s->backlog = c->bnext;
	if (c->bnext != NULL)
		c->bnext->bprev = c->bprev;
	else
		c->s->backlog_tail = c->bprev;
	c->bprev = c->bnext = NULL;
	c->backlogged = false;
}

static void close_client(struct client *c)
{
	struct cs_ctlsock *s = c->s;

	if (c->closing)
		return;
	c->closing = true;
	if (c->deferred != NULL) {
		c->deferred->c = NULL;
		c->deferred = NULL;
	}
	backlog_remove(c);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
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

static void close_listener(struct listener *l)
{
	if (l != NULL)
		uv_close((uv_handle_t *)&l->pipe, on_listener_closed);
}

static void on_plain_closed(uv_handle_t *h)
{
	struct cs_ctlsock *s = h->data;

	s->handles--;
	maybe_freed(s);
}

/* ---- answers ----------------------------------------------------------- */

/* True when nothing holds the client's next requests back. */
static bool can_read(const struct client *c)
{
	return !c->paused && !c->backlogged && !c->closing && !c->eof && !c->close_after_write &&
	       !c->waiting && c->deferred == NULL;
}

static void process(struct client *c);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void on_written(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct client *c = w->c;

	c->queued -= w->len;
	c->writes--;
	answer_unref(w->a);
	free(w);
	if (status < 0 || c->closing) {
		close_client(c);
		return;
	}
	if (c->close_after_write && c->writes == 0) {
		close_client(c);
		return;
	}
	if (c->paused && c->queued < MAX_QUEUED / 2) {
		c->paused = false;
		process(c);
		if (can_read(c))
			uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
	}
}

/*
 * Sends the answer a to the client: written at once when the socket takes
 * it all (the usual case: no request, no callback, no change to what the
 * loop polls for), else its tail is queued with one more reference taken.
 * uv_try_write refuses while earlier answers are queued, so answers keep
 * their order.
 */
static void send_answer(struct client *c, struct answer *a)
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
		close_client(c);
		return;
	}
	if (off == a->len)
		return;
	w = malloc(sizeof(*w));
	if (w == NULL) {
		close_client(c);
		return;
	}
	a->refs++;
	w->a = a;
	w->c = c;
	w->len = a->len - off;
	buf = uv_buf_init(a->data + off, (unsigned)w->len);
	if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &buf, 1, on_written) < 0) {
		answer_unref(a);
		free(w);
		close_client(c);
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
static struct answer *answer_json(json_t *j)
{
	char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	struct answer *a;

	a = answer_new(text != NULL ? text
				    : "{\"ok\":false,\"error\":\"out of memory\",\"code\":\"internal\"}");
	free(text);
	json_decref(j);
	return a;
}

static void send_json(struct client *c, json_t *j)
{
	struct answer *a = answer_json(j);

	if (a == NULL) {
		close_client(c);
		return;
	}
	send_answer(c, a);
	answer_unref(a);
}

static json_t *error_json(const char *code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static json_t *error_json(const char *code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return json_pack("{s:b,s:s,s:s}", "ok", 0, "error", msg, "code", code);
}

/* ---- commands ---------------------------------------------------------- */

static json_t *time_json(time_t t)
{
	struct tm tm;
	char buf[32];

	if (t == 0)
		return json_null();
	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(buf);
}

static json_t *str_json(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

/* The drift checks of a cert: one object per verify URL and name. */
static json_t *served_json(const struct cs_cert_status *st)
{
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && i < st->n_served; i++) {
		const struct cs_served *v = &st->served[i];
		json_t *o = json_object();

		if (o == NULL)
			break;
		json_object_set_new(o, "url", json_string(v->url));
		json_object_set_new(o, "name", json_string(v->name));
		json_object_set_new(o, "match", v->match < 0 ? json_null() : json_boolean(v->match));
		json_object_set_new(o, "sha256", v->sha256[0] ? json_string(v->sha256) : json_null());
		json_object_set_new(o, "error", str_json(v->error));
		json_object_set_new(o, "checked", time_json(v->checked));
		json_array_append_new(a, o);
	}
	return a;
}

static json_t *cert_json(const struct cs_cert_status *st, time_t now, bool full)
{
	json_t *o = json_object();
	json_t *names = json_array();

	if (o == NULL || names == NULL) {
		json_decref(o);
		json_decref(names);
		return NULL;
	}
	for (size_t i = 0; i < st->n_names; i++)
		json_array_append_new(names, json_string(st->names[i]));
	json_object_set_new(o, "name", json_string(st->name));
	json_object_set_new(o, "state", json_string(cs_cert_state_name(st->state)));
	json_object_set_new(o, "names", names);
	json_object_set_new(o, "issuer", str_json(st->issuer));
	json_object_set_new(o, "serial", str_json(st->serial));
	json_object_set_new(o, "sha256", str_json(st->sha256));
	json_object_set_new(o, "not_before", time_json(st->not_before));
	json_object_set_new(o, "not_after", time_json(st->not_after));
	if (st->not_after != 0) {
		int64_t left = (int64_t)st->not_after - (int64_t)now;
		int64_t days = left >= 0 ? left / 86400 : -((-left + 86399) / 86400);
		json_object_set_new(o, "days_left", json_integer(days));
	} else {
		json_object_set_new(o, "days_left", json_null());
	}
	json_object_set_new(o, "next_renewal", time_json(st->next_renewal));
	json_object_set_new(o, "next_renewal_reason", str_json(st->next_reason));
	json_object_set_new(o, "last_renewal", time_json(st->last_renewal));
	json_object_set_new(o, "failures", json_integer(st->failures));
	json_object_set_new(o, "last_error", str_json(st->last_error));
	json_object_set_new(o, "last_reload", str_json(st->last_reload));
	json_object_set_new(o, "last_verify", str_json(st->last_verify));
	json_object_set_new(o, "verify_ok", st->verify == CS_VERIFY_NONE
						    ? json_null()
						    : json_boolean(st->verify == CS_VERIFY_OK));
	json_object_set_new(o, "stage", str_json(st->stage));
	json_object_set_new(o, "stage_since", time_json(st->stage_since));
	json_object_set_new(o, "retry_at", time_json(st->retry_at));
	json_object_set_new(o, "retry_reason", str_json(st->retry_reason));
	json_object_set_new(o, "served", served_json(st));
	json_object_set_new(o, "drift", st->n_served > 0 ? json_string(cs_drift_name(st->drift))
							 : json_null());
	json_object_set_new(o, "pending_generation",
			    st->pending_gen > 0 ? json_integer(st->pending_gen) : json_null());
	json_object_set_new(o, "rollback_generation",
			    st->rollback_gen > 0 ? json_integer(st->rollback_gen) : json_null());
	if (full) {
		json_object_set_new(o, "deployed", json_string(cs_verdict_name(st->verdict)));
		json_object_set_new(o, "deployed_reason",
				    st->verdict != CS_EX_OK ? str_json(st->verdict_reason)
							    : json_null());
	}
	return o;
}

static bool bad_state(enum cs_cert_state st)
{
	return st == CS_CERT_FAILED || st == CS_CERT_EXPIRED || st == CS_CERT_MISSING;
}

static json_t *cmd_list(struct cs_ctlsock *s)
{
	size_t n = s->be.count(s->be.arg);
	json_t *arr = json_array();
	time_t now = time(NULL);

	if (arr == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		struct cs_cert_status st;
		s->be.status(s->be.arg, i, &st);
		if (json_array_append_new(arr, cert_json(&st, now, false)) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return json_pack("{s:b,s:o}", "ok", 1, "certs", arr);
}

static json_t *cmd_show(struct cs_ctlsock *s, const char *name)
{
	size_t n = s->be.count(s->be.arg);
	time_t now = time(NULL);
	struct cs_cert_status one;

	if (name == NULL)
		return error_json("bad_request", "show needs a \"name\"");
	if (s->be.status_of != NULL) {
		if (s->be.status_of(s->be.arg, name, &one))
			return json_pack("{s:b,s:o}", "ok", 1, "cert", cert_json(&one, now, true));
		n = 0;
	}
	for (size_t i = 0; i < n; i++) {
		struct cs_cert_status st;
		s->be.status(s->be.arg, i, &st);
		if (strcmp(st.name, name) == 0)
			return json_pack("{s:b,s:o}", "ok", 1, "cert", cert_json(&st, now, true));
	}
	return error_json("not_found", "no cert \"%s\" in the configuration", name);
}

static void add_problem(void *arg, const char *section, const char *file, const char *reason)
{
	json_array_append_new(arg, json_pack("{s:s,s:s,s:s}", "section", section, "file",
					     file ? file : "", "reason", reason ? reason : ""));
}

static void add_cert_problem(void *arg, const struct cs_cert_status *st)
{
	json_array_append_new(arg, json_pack("{s:s,s:s,s:o,s:i}", "name", st->name, "state",
					     cs_cert_state_name(st->state), "last_error",
					     str_json(st->last_error), "failures", st->failures));
}

/*
 * What status says about all certs: from the backend's summary when it
 * keeps one, else by looking at each cert. Calls problem(arg, status) for
 * each cert with a problem when problem is not NULL.
 */
static void summarize(struct cs_ctlsock *s, struct cs_pipeline_summary *sum,
		      void (*problem)(void *arg, const struct cs_cert_status *st), void *arg)
{
	memset(sum, 0, sizeof(*sum));
	if (s->starting != NULL)
		return; /* no certs yet */
	if (s->be.summary != NULL && s->be.problems != NULL) {
		s->be.summary(s->be.arg, sum);
		if (problem != NULL)
			s->be.problems(s->be.arg, problem, arg);
		return;
	}
	sum->n_certs = s->be.count(s->be.arg);
	for (size_t i = 0; i < sum->n_certs; i++) {
		struct cs_cert_status st;
		s->be.status(s->be.arg, i, &st);
		if ((unsigned)st.state < CS_CERT_N_STATES)
			sum->per_state[st.state]++;
		if (problem != NULL && bad_state(st.state))
			problem(arg, &st);
		if (st.drift != CS_DRIFT_NONE && sum->n_drifted++ == 0)
			sum->drifted_cert = st.name;
		if (st.next_renewal != 0 &&
		    (sum->next_renewal == 0 || st.next_renewal < sum->next_renewal)) {
			sum->next_renewal = st.next_renewal;
			sum->next_renewal_cert = st.name;
		}
	}
}

static json_t *cmd_status(struct cs_ctlsock *s)
{
	static const enum cs_cert_state states[] = {
		CS_CERT_VALID,   CS_CERT_DUE,     CS_CERT_RENEWING, CS_CERT_FAILED,
		CS_CERT_EXPIRED, CS_CERT_MISSING, CS_CERT_UNKNOWN,
	};
	struct cs_pipeline_summary sum;
	json_t *by = json_object(), *problems = json_array();

	summarize(s, &sum, add_cert_problem, problems);
	for (size_t k = 0; k < sizeof(states) / sizeof(states[0]); k++)
		json_object_set_new(by, cs_cert_state_name(states[k]),
				    json_integer((json_int_t)sum.per_state[states[k]]));
	json_t *cap = json_array();
	if (s->be.capath_problems != NULL && s->starting == NULL)
		s->be.capath_problems(s->be.arg, add_problem, cap);
	if (s->starting != NULL)
		return json_pack("{s:b,s:s,s:I,s:o,s:I,s:I,s:o,s:o,s:o,s:o,s:o,s:I,s:o,s:s}", "ok",
				 1, "version", CS_VERSION, "pid", (json_int_t)getpid(), "started",
				 time_json(s->ag.start_time), "uptime",
				 (json_int_t)(time(NULL) - s->ag.start_time), "certs", (json_int_t)0,
				 "states", by, "problems", problems, "next_renewal", json_null(),
				 "next_renewal_cert", json_null(), "capath_problems", cap, "drifted",
				 (json_int_t)0, "drifted_cert", json_null(), "starting", s->starting);
	return json_pack("{s:b,s:s,s:I,s:o,s:I,s:I,s:o,s:o,s:o,s:o,s:o,s:I,s:o}", "ok", 1,
			 "version", CS_VERSION, "pid", (json_int_t)getpid(), "started",
			 time_json(s->ag.start_time), "uptime",
			 (json_int_t)(time(NULL) - s->ag.start_time), "certs",
			 (json_int_t)sum.n_certs, "states", by, "problems", problems,
			 "next_renewal", time_json(sum.next_renewal), "next_renewal_cert",
			 str_json(sum.next_renewal_cert), "capath_problems", cap, "drifted",
			 (json_int_t)sum.n_drifted, "drifted_cert", str_json(sum.drifted_cert));
}

static void key_put(struct keybuf *k, const void *data, size_t n)
{
	if (k->failed)
		return;
	if (k->len + n > k->cap) {
		size_t cap = k->cap ? k->cap : 512;
		while (cap < k->len + n)
			cap *= 2;
		unsigned char *p = realloc(k->p, cap);
		if (p == NULL) {
			k->failed = true;
			return;
		}
		k->p = p;
		k->cap = cap;
	}
	memcpy(k->p + k->len, data, n);
	k->len += n;
}

/* A string (or NULL) such that no two sequences of them give the same bytes. */
static void key_str(struct keybuf *k, const char *str)
{
	unsigned char tag = str != NULL;

	key_put(k, &tag, 1);
	if (str != NULL)
		key_put(k, str, strlen(str) + 1);
}

static void key_tag(struct keybuf *k, char tag)
{
	key_put(k, &tag, 1);
}

static void key_cert_problem(void *arg, const struct cs_cert_status *st)
{
	key_tag(arg, 'P');
	key_str(arg, st->name);
	key_put(arg, &st->state, sizeof(st->state));
	key_str(arg, st->last_error);
	key_put(arg, &st->failures, sizeof(st->failures));
}

static void key_capath_problem(void *arg, const char *section, const char *file,
			       const char *reason)
{
	key_tag(arg, 'C');
	key_str(arg, section);
	key_str(arg, file);
	key_str(arg, reason);
}

/*
 * Writes into k every input of cmd_status but the constants (version,
 * pid): what the agent is doing while it starts, its start, the second now
 * (uptime), the summary, each cert problem and each CApath problem. Two
 * equal keys make the same answer. Costs a summary and a walk over the
 * problems, nothing per cert.
 */
static void status_key(struct cs_ctlsock *s, struct keybuf *k)
{
	struct cs_pipeline_summary sum;
	time_t now = time(NULL);

	k->len = 0;
	k->failed = false;
	key_str(k, s->starting);
	key_put(k, &s->ag.start_time, sizeof(s->ag.start_time));
	key_put(k, &now, sizeof(now));
	summarize(s, &sum, key_cert_problem, k);
	key_tag(k, 'E');
	key_put(k, &sum.n_certs, sizeof(sum.n_certs));
	key_put(k, sum.per_state, sizeof(sum.per_state));
	key_put(k, &sum.next_renewal, sizeof(sum.next_renewal));
	key_str(k, sum.next_renewal_cert);
	key_put(k, &sum.n_drifted, sizeof(sum.n_drifted));
	key_str(k, sum.drifted_cert);
	if (s->be.capath_problems != NULL && s->starting == NULL)
		s->be.capath_problems(s->be.arg, key_capath_problem, k);
	key_tag(k, 'E');
}

/*
 * Returns the status answer (borrowed from s->status_cache), rendered again
 * only when its key changed: hundreds of clients asking each second get the
 * same bytes without a JSON document being built for each. NULL on ENOMEM.
 */
static struct answer *status_answer(struct cs_ctlsock *s)
{
	struct keybuf swap;
	struct answer *a;
	json_t *j;

	status_key(s, &s->key_new);
	if (s->status_cache != NULL && !s->key_new.failed && !s->status_key.failed &&
	    s->key_new.len == s->status_key.len &&
	    memcmp(s->key_new.p, s->status_key.p, s->key_new.len) == 0)
		return s->status_cache;
	if ((j = cmd_status(s)) == NULL || (a = answer_json(j)) == NULL)
		return NULL;
	answer_unref(s->status_cache);
	s->status_cache = a;
	swap = s->status_key;
	s->status_key = s->key_new;
	s->key_new = swap;
	return a;
}

/* What a renew request without wait answers for one cert: NULL when there is no such cert. */
static const char *renew_result(int rc)
{
	if (rc == -ENOENT)
		return NULL;
	if (rc == -EBUSY)
		return "busy";
	if (rc < 0)
		return "error";
	return rc == 1 ? "not_due" : "started";
}

/* One cert of a renew --wait: the request it belongs to. */
struct renew_waiter {
	struct deferred *d;
	char *name;
};

static void renew_add_result(json_t *results, const char *name, const char *result,
			     const char *msg)
{
	json_t *o = json_pack("{s:s,s:s}", "name", name, "result", result);

	if (o != NULL && msg != NULL)
		json_object_set_new(o, "message", json_string(msg));
	json_array_append_new(results, o);
}

/*
 * The answer to a renew once every renewal of it has ended (at once without
 * wait). For all, results holds the certs that were not just "not due", and
 * counts says how many answered each way.
 */
static json_t *renew_wait_answer(struct deferred *d)
{
	json_t *one;

	if (strcmp(d->name, "all") == 0)
		return json_pack("{s:b,s:O,s:{s:I,s:I,s:I,s:I}}", "ok", 1, "results", d->results,
				 "counts", "started", (json_int_t)d->n_started, "not_due",
				 (json_int_t)d->n_not_due, "busy", (json_int_t)d->n_busy, "error",
				 (json_int_t)d->n_error);
	one = json_array_get(d->results, 0);
	if (one == NULL)
		return error_json("internal", "no result");
	json_t *o = json_deep_copy(one);
	json_object_set_new(o, "ok", json_true());
	return o;
}

static void on_renewal_end(void *arg, enum cs_renewal_outcome o, const char *msg)
{
	struct renew_waiter *w = arg;
	struct deferred *d = w->d;

	cs_notice("status socket: renew %s: %s%s%s", w->name, cs_renewal_outcome_name(o),
		  msg ? ": " : "", msg ? msg : "");
	renew_add_result(d->results, w->name, cs_renewal_outcome_name(o), msg);
	free(w->name);
	free(w);
	if (--d->left == 0)
		deferred_answer(d, d->c != NULL ? renew_wait_answer(d) : NULL, true);
}

/* Counts the immediate answer r of one cert of a renew all. */
static void renew_count(struct deferred *d, int rc)
{
	if (rc == 0)
		d->n_started++;
	else if (rc == 1)
		d->n_not_due++;
	else if (rc == -EBUSY)
		d->n_busy++;
	else
		d->n_error++;
}

/* The name of cert i, borrowed from the backend (its configuration outlives the request). */
static const char *cert_name(struct cs_ctlsock *s, size_t i)
{
	struct cs_cert_status st;

	if (s->be.name != NULL)
		return s->be.name(s->be.arg, i);
	s->be.status(s->be.arg, i, &st);
	return st.name;
}

/* How long one slice may spend starting the renewals of a renew all. */
#define RENEW_SLICE_NS 1000000

/*
 * Asks the backend to renew cert, one of the request d. For a single cert
 * sets *resp when there is no such cert.
 */
static void renew_cert(struct cs_ctlsock *s, struct deferred *d, const char *cert, json_t **resp)
{
	struct renew_waiter *w = NULL;
	int rc;

	if (d->wait && (w = calloc(1, sizeof(*w))) != NULL) {
		w->d = d;
		w->name = strdup(cert);
	}
	if (d->wait && (w == NULL || w->name == NULL)) {
		rc = -ENOMEM;
	} else {
		if (w != NULL)
			d->left++;
		rc = s->be.renew(s->be.arg, cert, d->force, w ? on_renewal_end : NULL, w);
		if (rc != 0 && w != NULL)
			d->left--;
	}
	if (d->all)
		renew_count(d, rc);
	if (rc != 0 || !d->wait) {
		const char *r = renew_result(rc);
		if (r == NULL && !d->all) {
			*resp = error_json("not_found", "no cert \"%s\" in the configuration",
					   d->name);
		} else if (!d->all || rc != 1) {
			renew_add_result(d->results, cert, r ? r : "error", NULL);
			if (!d->all)
				cs_notice("status socket: renew %s%s: %s", d->name,
					  d->force ? " (forced)" : "", r);
		}
	}
	if (rc != 0 && w != NULL) {
		free(w->name);
		free(w);
	}
}

/*
 * Renews the certs of a renew all from d->next on, for at most
 * RENEW_SLICE_NS (at least one cert). Returns true once every cert has
 * been asked for.
 */
static bool renew_slice(struct cs_ctlsock *s, struct deferred *d)
{
	uint64_t t0 = uv_hrtime(), until = t0 + RENEW_SLICE_NS;
	/*
	 * The count is asked again on each turn: the configuration may have
	 * changed between turns (the name of cert i is borrowed for one turn).
	 */
	size_t n = s->be.count(s->be.arg);

	while (d->next < n) {
		/*
		 * Borrowed: the backend's configuration changes only between
		 * loop turns, so the name stays valid through this iteration
		 * even when the renewal ends inside the call.
		 */
		const char *cert = cert_name(s, d->next++);
		json_t *none = NULL; /* set only for a single cert */
		if (cert != NULL)
			renew_cert(s, d, cert, &none);
		if (uv_hrtime() >= until)
			break;
	}
	s->renew_pause_ms = (uv_hrtime() - t0 + 999999) / 1000000;
	return d->next >= n;
}

/* Logs what a renew all started once every cert has been asked for. */
static void renew_all_logged(const struct deferred *d)
{
	cs_notice("status socket: renew all%s%s: %zu started, %zu not due, %zu busy%s",
		  d->force ? " (forced)" : "", d->wait ? " (waiting)" : "", d->n_started,
		  d->n_not_due, d->n_busy, d->n_error > 0 ? ", some failed to start" : "");
}

/*
 * One more slice of the oldest renew all still starting renewals. Once it
 * has asked for every cert it is answered (or waits for its renewals, with
 * wait), as cmd_renew would have answered it at once.
 */
static void renew_all_turn(uv_timer_t *t)
{
	struct cs_ctlsock *s = t->data;
	struct deferred *d = s->renew_all;

	if (d != NULL && renew_slice(s, d)) {
		s->renew_all = d->rnext;
		if (s->renew_all == NULL)
			s->renew_all_tail = NULL;
		renew_all_logged(d);
		if (--d->left == 0)
			deferred_answer(d, d->c != NULL ? renew_wait_answer(d) : NULL, true);
	}
	if (s->renew_all != NULL)
		uv_timer_start(&s->rtimer, renew_all_turn, s->renew_pause_ms, 0);
}

/*
 * renew NAME|all [force] [wait]. With wait the answer comes when every
 * renewal started has ended (NULL returned, c->deferred set); busy and
 * not_due are answered at once. Renew all lists in its results only the
 * certs that were not simply not due (the count says how many were): with
 * nothing due, the answer is a few bytes whatever the number of certs.
 *
 * Starting a renewal costs the loop a few milliseconds (the deployed key is
 * decoded), so renew all starts them in slices of at most RENEW_SLICE_NS,
 * each followed by a pause as long, and answers once it has asked for every
 * cert (NULL returned, c->deferred set until then): other clients are
 * served between the slices instead of waiting seconds behind a thousand
 * renewals.
 */
static json_t *cmd_renew(struct client *c, const char *name, bool force, bool wait)
{
	struct cs_ctlsock *s = c->s;
	struct deferred *d = NULL;
	json_t *resp = NULL;

	if (name == NULL)
		return error_json("bad_request", "renew needs a \"name\" (a cert or \"all\")");
	if ((d = calloc(1, sizeof(*d))) == NULL || (d->name = strdup(name)) == NULL ||
	    (d->results = json_array()) == NULL)
		goto out;
	d->c = c;
	d->all = strcmp(name, "all") == 0;
	d->force = force;
	d->wait = wait;
	d->left = 1; /* held until every renewal has been asked for */
	if (d->all) {
		if (!renew_slice(s, d)) {
			/* The rest on the next turns (renew_all_turn). */
			uv_read_stop((uv_stream_t *)&c->pipe);
			c->deferred = d;
			if (s->renew_all_tail != NULL)
				s->renew_all_tail->rnext = d;
			else
				s->renew_all = d;
			s->renew_all_tail = d;
			if (!uv_is_active((uv_handle_t *)&s->rtimer))
				uv_timer_start(&s->rtimer, renew_all_turn, s->renew_pause_ms, 0);
			return NULL;
		}
		renew_all_logged(d);
	} else {
		renew_cert(s, d, name, &resp);
	}
	if (--d->left > 0) {
		/* Renewals are running: answer when the last one ends. */
		uv_read_stop((uv_stream_t *)&c->pipe);
		c->deferred = d;
		d = NULL;
		goto out;
	}
	if (resp == NULL)
		resp = renew_wait_answer(d);
out:
	if (d != NULL) {
		json_decref(d->results);
		free(d->name);
		free(d);
	}
	return resp;
}

static json_t *cmd_hook(struct cs_ctlsock *s, const char *cmd, const char *name,
			int (*hook)(void *, const char *, char *, size_t))
{
	char err[512] = "";
	int rc;

	if (hook == NULL)
		return error_json("unavailable",
				  "%s is not available yet: the pipeline has no %s step this "
				  "agent can trigger",
				  cmd, cmd);
	rc = hook(s->be.arg, name, err, sizeof(err));
	if (rc == -ENOENT)
		return error_json("not_found", "%s", err[0] ? err : "no such name");
	if (rc < 0)
		return error_json("failed", "%s", err[0] ? err : strerror(-rc));
	return json_pack("{s:b}", "ok", 1);
}

/* The revocation reasons a client may give, with their RFC 5280 CRLReason codes. */
static const struct {
	const char *name;
	int code;
} revoke_reasons[] = {
	{ "unspecified", 0 }, { "keyCompromise", 1 },	     { "affiliationChanged", 3 },
	{ "superseded", 4 },  { "cessationOfOperation", 5 },
};

/* The answer to a revoke the backend has finished (NULL on ENOMEM). */
static json_t *revoke_answer(const struct deferred *d, int status, const char *msg)
{
	if (status < 0)
		return error_json("failed", "%s", msg != NULL ? msg : strerror(-status));
	cs_notice("status socket: revoke %s: revoked %s (reason %s)", d->name, msg, d->reason);
	return json_pack("{s:b,s:s,s:s,s:s}", "ok", 1, "name", d->name, "serial",
			 msg != NULL ? msg : "?", "reason", d->reason);
}

/* Sends the deferred answer resp (taken) to d's client, if it is still there, and frees d. */
static void deferred_answer(struct deferred *d, json_t *resp, bool ok)
{
	struct client *c = d->c;

	if (c != NULL) {
		struct cs_ctlsock *s = c->s;

		c->deferred = NULL;
		if (ok)
			s->ag.requests_ok++;
		else
			s->ag.requests_error++;
		send_json(c, resp != NULL ? resp : error_json("internal", "out of memory"));
		if (!c->closing) {
			uv_timer_again(&c->timer);
			process(c);
			if (can_read(c))
				uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
		}
	} else {
		json_decref(resp);
	}
	json_decref(d->results);
	free(d->name);
	free(d);
}

/* The answer to an adopt the backend has finished (NULL on ENOMEM). */
static json_t *adopt_answer(const struct deferred *d, int status, const char *msg)
{
	if (status < 0)
		return error_json("failed", "%s", msg != NULL ? msg : strerror(-status));
	cs_notice("status socket: adopt %s: %s", d->name, msg != NULL ? msg : "done");
	return json_pack("{s:b,s:s,s:s}", "ok", 1, "name", d->name, "result",
			 msg != NULL ? msg : "adopted");
}

/*
 * The backend's answer to a deferred command (revoke, adopt): kept for the
 * caller when it comes before the backend has returned, else sent with the
 * command's own answer function.
 */
static void on_deferred_done(void *arg, int status, const char *msg)
{
	struct deferred *d = arg;

	if (d->in_call) {
		d->answered = true;
		d->status = status;
		snprintf(d->msg, sizeof(d->msg), "%s", msg != NULL ? msg : strerror(-status));
		return;
	}
	deferred_answer(d, d->c != NULL ? d->answer(d, status, msg) : NULL, status == 0);
}

/*
 * Takes the deployed files of name as they are (certsyncctl adopt). Returns
 * NULL when the answer is deferred (c->deferred set), else the answer now.
 */
static json_t *cmd_adopt(struct client *c, const char *name)
{
	struct cs_ctlsock *s = c->s;
	struct deferred *d;
	int rc;

	if (name == NULL)
		return error_json("bad_request", "adopt needs a \"name\"");
	if (s->be.adopt == NULL)
		return error_json("unavailable", "adopt is not available in this agent");
	if ((d = calloc(1, sizeof(*d))) == NULL || (d->name = strdup(name)) == NULL) {
		free(d);
		return NULL;
	}
	d->c = c;
	d->answer = adopt_answer;
	d->in_call = true;
	rc = s->be.adopt(s->be.arg, name, on_deferred_done, d);
	d->in_call = false;
	if (rc == 0 && !d->answered) {
		c->deferred = d;
		uv_read_stop((uv_stream_t *)&c->pipe);
		return NULL;
	}
	json_t *resp = rc == 0		 ? adopt_answer(d, d->status, d->msg)
		       : rc == -ENOENT ? error_json("not_found", "no cert \"%s\" in the configuration",
						    name)
		       : rc == -EBUSY
			       ? error_json("failed",
					    "%s is busy (being checked, renewed, reloaded or revoked); "
					    "try again when that is done",
					    name)
			       : error_json("failed", "cannot adopt %s: %s", name, strerror(-rc));
	free(d->name);
	free(d);
	return resp;
}

/*
 * Starts a revocation. Returns NULL when the answer is deferred (c->deferred
 * set, answered by on_deferred_done), else the answer now.
 */
static json_t *cmd_revoke(struct client *c, const char *name, json_t *jreason)
{
	struct cs_ctlsock *s = c->s;
	const char *reason = "unspecified";
	struct deferred *d;
	int code = -1, rc;

	if (name == NULL)
		return error_json("bad_request", "revoke needs a \"name\"");
	if (jreason != NULL && !json_is_string(jreason))
		return error_json("bad_request", "\"reason\" is a string");
	if (jreason != NULL)
		reason = json_string_value(jreason);
	for (size_t i = 0; i < sizeof(revoke_reasons) / sizeof(revoke_reasons[0]); i++)
		if (strcasecmp(reason, revoke_reasons[i].name) == 0) {
			code = revoke_reasons[i].code;
			reason = revoke_reasons[i].name;
		}
	if (code < 0)
		return error_json("bad_request",
				  "unknown revocation reason \"%s\" (unspecified, keyCompromise, "
				  "affiliationChanged, superseded, cessationOfOperation)",
				  reason);
	if (s->be.revoke == NULL)
		return error_json("unavailable", "revoke is not available in this agent");
	if ((d = calloc(1, sizeof(*d))) == NULL || (d->name = strdup(name)) == NULL) {
		free(d);
		return NULL;
	}
	d->c = c;
	d->reason = reason; /* static: from revoke_reasons */
	d->in_call = true;
	d->answer = revoke_answer;
	rc = s->be.revoke(s->be.arg, name, code, on_deferred_done, d);
	d->in_call = false;
	if (rc == 0 && !d->answered) {
		c->deferred = d;
		uv_read_stop((uv_stream_t *)&c->pipe);
		return NULL;
	}
	if (rc == 0) {
		json_t *resp = revoke_answer(d, d->status, d->msg);
		free(d->name);
		free(d);
		return resp;
	}
	free(d->name);
	free(d);
	if (rc == -ENOENT)
		return error_json("not_found", "no cert \"%s\" in the configuration", name);
	if (rc == -EBUSY)
		return error_json("failed",
				  "%s is busy (being checked, renewed, reloaded or revoked, or the "
				  "agent is switching its configuration); try again when that is "
				  "done",
				  name);
	if (rc == -ENODATA)
		return error_json("failed", "nothing is deployed for %s: no certificate to revoke",
				  name);
	if (rc == -ENOTSUP)
		return error_json("unavailable",
				  "the issuer of %s cannot revoke: only acme and local-ca issuers can",
				  name);
	return error_json("failed", "cannot revoke %s: %s", name, strerror(-rc));
}

static json_t *cmd_metrics(struct cs_ctlsock *s)
{
	char *text;
	json_t *j;

	s->ag.clients = s->n_clients;
	s->ag.capath_problems = s->be.capath_problems != NULL
					? (long)s->be.capath_problems(s->be.arg, NULL, NULL)
					: -1;
	size_t n = s->be.count(s->be.arg);
	struct cs_cert_status *v = calloc(n ? n : 1, sizeof(*v));
	if (v == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		s->be.status(s->be.arg, i, &v[i]);
	text = cs_metrics_render(s->metrics, v, n, &s->ag, time(NULL));
	free(v);
	if (text == NULL)
		return NULL;
	j = json_pack("{s:b,s:s}", "ok", 1, "metrics", text);
	free(text);
	return j;
}

/*
 * Whether line is exactly {"cmd":"WORD"} (WORD lower-case letters, as
 * certsyncctl sends status, list and metrics): WORD is then copied to cmd.
 * Such a line means what the JSON parser would make of it, without a parse.
 */
static bool bare_command(const char *line, size_t len, char cmd[16])
{
	static const char head[] = "{\"cmd\":\"";
	size_t hl = sizeof(head) - 1, n;

	if (len < hl + 3 || len - hl - 2 >= 16 || memcmp(line, head, hl) != 0 ||
	    memcmp(line + len - 2, "\"}", 2) != 0)
		return false;
	n = len - hl - 2;
	for (size_t i = 0; i < n; i++)
		if (line[hl + i] < 'a' || line[hl + i] > 'z')
			return false;
	memcpy(cmd, line + hl, n);
	cmd[n] = '\0';
	return true;
}

/* Answers one request line. */
static void handle(struct client *c, const char *line, size_t len)
{
	struct cs_ctlsock *s = c->s;
	json_error_t jerr;
	json_t *req = NULL, *resp = NULL;
	const char *cmd = NULL, *name = NULL;
	char bare[16];
	bool change = false;

	/* req stays NULL for a bare command: json_object_get(NULL, ...) is NULL. */
	if (bare_command(line, len, bare)) {
		cmd = bare;
	} else {
		req = json_loadb(line, len, 0, &jerr);
		if (req == NULL || !json_is_object(req)) {
			s->ag.requests_error++;
			send_json(c, req == NULL
					     ? error_json("bad_request", "malformed JSON: %s", jerr.text)
					     : error_json("bad_request",
							  "a request is a JSON object with \"cmd\""));
			json_decref(req);
			return;
		}
		cmd = json_string_value(json_object_get(req, "cmd"));
		name = json_string_value(json_object_get(req, "name"));
	}
	if (cmd == NULL) {
		resp = error_json("bad_request", "a request needs \"cmd\" (a string)");
		goto out;
	}
	change = strcmp(cmd, "renew") == 0 || strcmp(cmd, "rehash") == 0 ||
		 strcmp(cmd, "reload") == 0 || strcmp(cmd, "revoke") == 0 ||
		 strcmp(cmd, "adopt") == 0;
	if (c->access < 1 || (change && c->access < 2)) {
		s->ag.requests_refused++;
		cs_notice("status socket: refused \"%s\" from uid %u", cmd, (unsigned)c->uid);
		send_json(c, error_json("refused",
					"permission denied: uid %u may not %s (%s)",
					(unsigned)c->uid, change ? "change anything" : "read the status",
					change ? "needs uid 0 or admin_group"
					       : "needs socket_group or admin_group"));
		json_decref(req);
		return;
	}
	if (change && s->list_cache != NULL) {
		answer_unref(s->list_cache); /* this may change what list says */
		s->list_cache = NULL;
	}
	if (strcmp(cmd, "list") == 0) {
		uint64_t t = uv_now(s->loop);
		if (s->list_cache == NULL || s->list_cache_at != t) {
			resp = cmd_list(s);
			if (resp == NULL)
				goto out;
			answer_unref(s->list_cache);
			s->list_cache = answer_json(resp);
			s->list_cache_at = t;
			if (s->list_cache == NULL) {
				close_client(c);
				json_decref(req);
				return;
			}
		}
		s->ag.requests_ok++;
		send_answer(c, s->list_cache);
		json_decref(req);
		return;
	} else if (strcmp(cmd, "show") == 0)
		resp = cmd_show(s, name);
	else if (strcmp(cmd, "status") == 0) {
		struct answer *a = status_answer(s);
		if (a == NULL)
			goto out;
		s->ag.requests_ok++;
		send_answer(c, a);
		json_decref(req);
		return;
	} else if (strcmp(cmd, "renew") == 0) {
		resp = cmd_renew(c, name, json_is_true(json_object_get(req, "force")),
				 json_is_true(json_object_get(req, "wait")));
		if (resp == NULL && c->deferred != NULL) {
			json_decref(req);
			return;
		}
	}
	else if (strcmp(cmd, "reload") == 0)
		resp = name == NULL ? error_json("bad_request", "reload needs a \"name\"")
				    : cmd_hook(s, "reload", name, s->be.reload);
	else if (strcmp(cmd, "rehash") == 0)
		resp = cmd_hook(s, "rehash", name, s->be.rehash);
	else if (strcmp(cmd, "metrics") == 0)
		resp = cmd_metrics(s);
	else if (strcmp(cmd, "adopt") == 0) {
		resp = cmd_adopt(c, name);
		if (resp == NULL && c->deferred != NULL) {
			json_decref(req);
			return;
		}
	} else if (strcmp(cmd, "revoke") == 0) {
		resp = cmd_revoke(c, name, json_object_get(req, "reason"));
		if (resp == NULL && c->deferred != NULL) {
			json_decref(req);
			return;
		}
	} else
		resp = error_json("bad_request", "unknown command \"%s\"", cmd);
out:
	if (resp == NULL)
		resp = error_json("internal", "out of memory");
	if (json_is_true(json_object_get(resp, "ok")))
		s->ag.requests_ok++;
	else
		s->ag.requests_error++;
	send_json(c, resp);
	json_decref(req);
}

static void on_idle_turn(uv_idle_t *h)
{
	struct cs_ctlsock *s = h->data;
	size_t n = 0;

	/* Each client waiting now gets one more batch; those it re-queues wait a turn. */
	for (struct client *c = s->backlog; c != NULL; c = c->bnext)
		n++;
	while (n-- > 0 && s->backlog != NULL) {
		struct client *c = s->backlog;
		backlog_remove(c);
		process(c);
		if (can_read(c))
			uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
	}
	if (s->backlog == NULL)
		uv_idle_stop(&s->idle);
}

static void backlog_add(struct client *c)
{
	struct cs_ctlsock *s = c->s;

	uv_read_stop((uv_stream_t *)&c->pipe);
	c->backlogged = true;
	c->bnext = NULL;
	c->bprev = s->backlog_tail;
	if (s->backlog_tail != NULL)
		s->backlog_tail->bnext = c;
	else
		s->backlog = c;
	s->backlog_tail = c;
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
	cmd = json_string_value(json_object_get(req, "cmd"));
	wait = json_is_object(req) && cmd != NULL && strcmp(cmd, "status") != 0;
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
		close_client(c);
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
static void process(struct client *c)
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
			send_json(c, error_json("too_long", "request longer than %zu bytes",
						c->s->max_request));
			c->s->ag.requests_error++;
			close_after_writes(c);
			off = c->len;
			break;
		}
		if (linelen > 0 && must_wait(c, c->in + off, linelen))
			break;
		if (linelen > 0) {
			handle(c, c->in + off, linelen);
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
		send_json(c, error_json("too_long", "request longer than %zu bytes",
					c->s->max_request));
		close_after_writes(c);
		return;
	}
	if (c->eof && !c->paused && !c->backlogged && !c->waiting && c->deferred == NULL) {
		/* A last request without its newline is still answered. */
		if (c->len > 0 && must_wait(c, c->in, c->len))
			return;
		if (c->len > 0) {
			handle(c, c->in, c->len);
			c->len = 0;
		}
		/* Closed after the deferred answer, when process runs again. */
		if (c->deferred != NULL) {
			uv_timer_stop(&c->timer);
			return;
		}
		if (c->writes == 0)
			close_client(c);
		else
			c->close_after_write = true;
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
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

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct client *c = st->data;

	(void)buf;
	if (nread == 0)
		return;
	if (nread < 0) {
		uv_read_stop(st);
		if (nread != UV_EOF) {
			close_client(c);
			return;
		}
		c->eof = true;
		process(c);
		return;
	}
	c->len += (size_t)nread;
	process(c);
}

static void on_idle(uv_timer_t *t)
{
	struct client *c = t->data;

	/* A client waiting for a renewal, a revocation or the start is not idle. */
	if (c->deferred != NULL || c->waiting)
		return;
	uint64_t quiet = uv_now(c->s->loop) - c->active_at;
	if (quiet < c->s->idle_ms) {
		/* It asked something since the timer was set: the rest of its time. */
		uv_timer_start(t, on_idle, c->s->idle_ms - quiet, c->s->idle_ms);
		return;
	}
	/* No complete request within the timeout: drop it without another word. */
	cs_debug("status socket: dropping idle client (uid %u)", (unsigned)c->uid);
	close_client(c);
}

/*
 * Whether a client without the right to change anything may stay: the last
 * CS_CTLSOCK_ADMIN_RESERVE places are kept for uid 0 and admin_group (so
 * that a flood of readers never locks root out), and one uid may hold at
 * most CS_CTLSOCK_MAX_PER_UID connections. Logged once per refusal.
 */
static bool room_for(struct cs_ctlsock *s, const struct client *c)
{
	size_t same = 0;

	if (s->n_clients + CS_CTLSOCK_ADMIN_RESERVE > s->max_clients) {
		cs_warn("status socket: %u clients; the last %d places are kept for "
			"administrators: refusing uid %u",
			s->n_clients, CS_CTLSOCK_ADMIN_RESERVE, (unsigned)c->uid);
		return false;
	}
	for (const struct client *o = s->clients; o != NULL; o = o->next)
		same += o->uid == c->uid && !o->closing;
	if (same > CS_CTLSOCK_MAX_PER_UID) {
		cs_warn("status socket: uid %u holds %zu connections (at most %d); refusing one",
			(unsigned)c->uid, same - 1, CS_CTLSOCK_MAX_PER_UID);
		return false;
	}
	return true;
}

static void peer_access(const struct listener *l, struct client *c, int fd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	gid_t groups[256], *g = groups;
	socklen_t glen = sizeof(groups);
	size_t n = 0;

	c->access = 0;
	c->uid = (uid_t)-1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return;
	c->uid = cr.uid;
#ifdef SO_PEERGROUPS
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &glen) == 0) {
		n = glen / sizeof(gid_t);
	} else if (errno == ERANGE && (g = malloc(glen)) != NULL) {
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &glen) == 0)
			n = glen / sizeof(gid_t);
	} else {
		g = groups;
	}
#endif
	c->access = cs_ctlsock_access(cr.uid, cr.gid, g, n, l->group, l->s->admin_group,
				      geteuid());
	if (g != groups)
		free(g);
}

static void on_connection(uv_stream_t *server, int status)
{
	struct listener *l = server->data;
	struct cs_ctlsock *s = l->s;
	struct client *c;
	uv_os_fd_t fd;

	if (status < 0 || s->closing)
		return;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return;
	c->s = s;
	uv_pipe_init(s->loop, &c->pipe, 0);
	uv_timer_init(s->loop, &c->timer);
	c->pipe.data = c;
	c->timer.data = c;
	c->handles = 2;
	s->handles++;
	s->n_clients++;
	c->next = s->clients;
	if (s->clients != NULL)
		s->clients->prev = c;
	s->clients = c;
	if (uv_accept(server, (uv_stream_t *)&c->pipe) < 0) {
		close_client(c);
		return;
	}
	if (s->n_clients > s->max_clients) {
		cs_warn("status socket: more than %zu clients; refusing one", s->max_clients);
		close_client(c);
		return;
	}
	if (uv_fileno((uv_handle_t *)&c->pipe, &fd) == 0)
		peer_access(l, c, fd);
	if (c->access < 2 && !room_for(s, c)) {
		close_client(c);
		return;
	}
	c->active_at = uv_now(s->loop);
	uv_timer_start(&c->timer, on_idle, s->idle_ms, s->idle_ms);
	uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
}

/* ---- the socket file ---------------------------------------------------- */

/* Is someone listening at path? 1 yes, 0 no (stale), negative errno on odd errors. */
static int socket_live(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, rc;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	int e = errno;
	close(fd);
	if (rc == 0 || e == EAGAIN || e == EINPROGRESS)
		return 1;
	if (e == ECONNREFUSED || e == ENOENT)
		return 0;
	return -e;
}

static int make_socket(const char *path, mode_t mode, gid_t group, int *out, struct stat *st,
		       char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[PATH_MAX], tmpdir[PATH_MAX], tmp[PATH_MAX + 8];
	struct stat old;
	int fd = -1, rc;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "%s: path too long for a Unix socket (at most %zu bytes)",
			 path, sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	if (lstat(path, &old) == 0) {
		if (!S_ISSOCK(old.st_mode)) {
			snprintf(err, errlen, "%s exists and is not a socket; not replacing it",
				 path);
			return -EEXIST;
		}
		rc = socket_live(path);
		if (rc > 0) {
			snprintf(err, errlen,
				 "%s: another process is listening there (is another certsyncd "
				 "running?); not taking it over",
				 path);
			return -EADDRINUSE;
		}
		if (rc < 0) {
			snprintf(err, errlen, "%s: cannot tell whether it is in use: %s", path,
				 strerror(-rc));
			return rc;
		}
		cs_notice("status socket %s is stale (nobody listening); replacing it", path);
	}
	snprintf(tmp, sizeof(tmp), "%s", path);
	snprintf(dir, sizeof(dir), "%s", dirname(tmp));
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		rc = -errno;
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return rc;
	}
	if (snprintf(tmpdir, sizeof(tmpdir), "%s/.csXXXXXX", dir) >= (int)sizeof(tmpdir) ||
	    mkdtemp(tmpdir) == NULL) {
		rc = -errno;
		snprintf(err, errlen, "cannot create a temporary directory in %s: %s", dir,
			 strerror(errno));
		return rc;
	}
	snprintf(tmp, sizeof(tmp), "%s/s", tmpdir);
	if (strlen(tmp) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "%s: directory path too long for a Unix socket", dir);
		rc = -ENAMETOOLONG;
		goto out_dir;
	}
	memcpy(sa.sun_path, tmp, strlen(tmp) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "socket: %s", strerror(errno));
		goto out_dir;
	}
	/* Nobody can reach tmp until the rename: its directory is 0700 and ours. */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    (group != (gid_t)-1 && chown(tmp, (uid_t)-1, group) < 0) || chmod(tmp, mode) < 0 ||
	    listen(fd, SOMAXCONN) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out_sock;
	}
	if (rename(tmp, path) < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot move the socket to %s: %s", path, strerror(errno));
		goto out_sock;
	}
	rmdir(tmpdir);
	if (lstat(path, st) < 0)
		memset(st, 0, sizeof(*st));
	*out = fd;
	return 0;
out_sock:
	close(fd);
	unlink(tmp);
out_dir:
	rmdir(tmpdir);
	return rc;
}

static struct listener *listener_new(struct cs_ctlsock *s, const struct cs_ctlsock_opts *o,
				     char *err, size_t errlen)
{
	struct listener *l = calloc(1, sizeof(*l));
	struct stat st;
	int fd, rc;

	if (l == NULL || (l->path = strdup(o->path)) == NULL) {
		free(l);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	l->s = s;
	l->mode = o->mode;
	l->group = o->group;
	if (make_socket(o->path, o->mode, o->group, &fd, &st, err, errlen) < 0) {
		free(l->path);
		free(l);
		return NULL;
	}
	l->dev = st.st_dev;
	l->ino = st.st_ino;
	uv_pipe_init(s->loop, &l->pipe, 0);
	l->pipe.data = l;
	s->handles++;
	if ((rc = uv_pipe_open(&l->pipe, fd)) < 0 ||
	    (rc = uv_listen((uv_stream_t *)&l->pipe, SOMAXCONN, on_connection)) < 0) {
		snprintf(err, errlen, "%s: cannot listen: %s", o->path, uv_strerror(rc));
		close_listener(l);
		return NULL;
	}
	return l;
}

/* ---- metrics file -------------------------------------------------------- */

int cs_ctlsock_write_metrics(struct cs_ctlsock *s)
{
	char err[512];
	char *text;
	size_t n;
	struct cs_cert_status *v;
	int rc;

	if (s == NULL || s->metrics_file == NULL || s->starting != NULL)
		return 0;
	n = s->be.count(s->be.arg);
	v = calloc(n ? n : 1, sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		s->be.status(s->be.arg, i, &v[i]);
	s->ag.clients = s->n_clients;
	s->ag.capath_problems = s->be.capath_problems != NULL
					? (long)s->be.capath_problems(s->be.arg, NULL, NULL)
					: -1;
	text = cs_metrics_render(s->metrics, v, n, &s->ag, time(NULL));
	free(v);
	if (text == NULL)
		return -ENOMEM;
	rc = cs_metrics_write_file(s->metrics_file, text, err, sizeof(err));
	free(text);
	if (rc < 0) {
		s->ag.metrics_writes_failed++;
		cs_err("metrics_file: %s", err);
	}
	return rc;
}

static void on_mtimer(uv_timer_t *t)
{
	struct cs_ctlsock *s = t->data;

	cs_ctlsock_write_metrics(s);
	if (s->mphase == M_DEBOUNCE) {
		s->mphase = M_LATE;
		uv_timer_start(&s->mtimer, on_mtimer, METRICS_LATE_MS, 0);
	} else {
		s->mphase = M_IDLE;
	}
}

static void metrics_soon(struct cs_ctlsock *s, uint64_t ms)
{
	if (s->metrics_file == NULL || s->closing)
		return;
	/* A write already due sooner covers this change too. */
	if (s->mphase == M_DEBOUNCE && uv_timer_get_due_in(&s->mtimer) <= ms)
		return;
	s->mphase = M_DEBOUNCE;
	uv_timer_start(&s->mtimer, on_mtimer, ms, 0);
}

/* Feeds the current status to the counters (they are derived from changes). */
static void observe(struct cs_ctlsock *s)
{
	size_t n = s->be.count(s->be.arg);
	struct cs_cert_status *v = calloc(n ? n : 1, sizeof(*v));

	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		s->be.status(s->be.arg, i, &v[i]);
	cs_metrics_observe(s->metrics, v, n);
	free(v);
}

/*
 * A state file changed: a renewal, a failure or a reload failure was
 * recorded. certs/NAME.json is one cert's: only that one is looked at (the
 * others are observed when they change, and by every render), so that a
 * start-up that writes N state files does not cost N x N.
 */
static void on_state_event(uv_fs_event_t *h, const char *name, int events, int status)
{
	struct cs_ctlsock *s = h->data;
	struct cs_cert_status one;
	char cert[NAME_MAX + 1];
	size_t len;

	(void)events;
	(void)status;
	if (s->starting != NULL)
		return; /* observed from the first render on */
	if (name == NULL || strstr(name, ".json") == NULL || name[0] == '.')
		return; /* the temp files of the atomic writer */
	len = strlen(name);
	if (s->be.status_of != NULL && len > 5 && len - 5 < sizeof(cert) &&
	    strcmp(name + len - 5, ".json") == 0) {
		memcpy(cert, name, len - 5);
		cert[len - 5] = '\0';
		if (s->be.status_of(s->be.arg, cert, &one))
			cs_metrics_observe(s->metrics, &one, 1);
	} else {
		observe(s);
	}
	metrics_soon(s, METRICS_DEBOUNCE_MS);
}

static void watch_state(struct cs_ctlsock *s)
{
	char dir[PATH_MAX], err[512];
	int rc;

	if (s->watching) {
		uv_fs_event_stop(&s->watch);
		s->watching = false;
	}
	if (s->state_dir == NULL)
		return;
	snprintf(dir, sizeof(dir), "%s/certs", s->state_dir);
	if (cs_state_mkdirs(dir, 0700, err, sizeof(err)) < 0) {
		cs_warn("metrics: %s; counters and metrics_file not updated on changes", err);
		return;
	}
	if ((rc = uv_fs_event_start(&s->watch, on_state_event, dir, 0)) < 0) {
		cs_warn("metrics: cannot watch %s: %s", dir, uv_strerror(rc));
		return;
	}
	s->watching = true;
}

/* ---- life cycle ------------------------------------------------------------ */

static int set_str(char **dst, const char *src)
{
	char *p = NULL;

	if (src != NULL && (p = strdup(src)) == NULL)
		return -ENOMEM;
	free(*dst);
	*dst = p;
	return 0;
}

/* Returns a serving status socket (free with cs_ctlsock_close), or NULL with err set. */
struct cs_ctlsock *cs_ctlsock_new(uv_loop_t *loop, const struct cs_ctlsock_opts *o,
				  const struct cs_ctlsock_backend *be, char *err, size_t errlen)
{
	struct cs_ctlsock *s = calloc(1, sizeof(*s));

	if (s == NULL || (s->metrics = cs_metrics_new(time(NULL))) == NULL) {
		free(s);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	/*
	 * libuv writes with write(): a client that hangs up before its answer
	 * would otherwise kill the agent with SIGPIPE. Children started with
	 * uv_spawn get the default disposition back.
	 */
	signal(SIGPIPE, SIG_IGN);
	s->loop = loop;
	s->be = *be;
	s->admin_group = o->admin_group;
	s->max_request = o->max_request ? o->max_request : CS_CTLSOCK_MAX_REQUEST;
	s->idle_ms = o->idle_ms ? o->idle_ms : CS_CTLSOCK_IDLE_MS;
	s->max_clients = o->max_clients ? o->max_clients : 4096;
	/* Below the descriptors the agent has, with a reserve for its own work. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		rlim_t reserve = rl.rlim_cur / 4 > 256 ? rl.rlim_cur / 4 : 256;
		size_t room = rl.rlim_cur > reserve + 32 ? (size_t)(rl.rlim_cur - reserve) : 32;
		if (s->max_clients > room)
			s->max_clients = room;
	}
	s->ag.start_time = time(NULL);
	if (set_str(&s->metrics_file, o->metrics_file) < 0 ||
	    set_str(&s->state_dir, o->state_dir) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	uv_timer_init(loop, &s->mtimer);
	s->mtimer.data = s;
	uv_fs_event_init(loop, &s->watch);
	s->watch.data = s;
	uv_idle_init(loop, &s->idle);
	s->idle.data = s;
	uv_timer_init(loop, &s->rtimer);
	s->rtimer.data = s;
	s->handles += 4;
	if (o->path != NULL && (s->lis = listener_new(s, o, err, errlen)) == NULL) {
		/* Handles are open: free through the close callbacks, without a metrics write. */
		free(s->metrics_file);
		s->metrics_file = NULL;
		cs_ctlsock_close(s, NULL, NULL);
		return NULL;
	}
	watch_state(s);
	metrics_soon(s, METRICS_FIRST_MS);
	return s;
fail:
	cs_metrics_free(s->metrics);
	free(s->metrics_file);
	free(s->state_dir);
	free(s);
	return NULL;
}

/* Takes a new configuration; returns 0 or a negative errno with err set. */
int cs_ctlsock_apply(struct cs_ctlsock *s, const struct cs_ctlsock_opts *o, char *err,
		     size_t errlen)
{
	int rc = 0;

	s->admin_group = o->admin_group;
	if (set_str(&s->metrics_file, o->metrics_file) < 0 ||
	    set_str(&s->state_dir, o->state_dir) < 0) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	watch_state(s);
	metrics_soon(s, METRICS_DEBOUNCE_MS);
	bool same = s->lis != NULL && o->path != NULL && strcmp(s->lis->path, o->path) == 0 &&
		    s->lis->mode == o->mode && s->lis->group == o->group;
	if (same || (s->lis == NULL && o->path == NULL))
		return 0;
	struct listener *old = s->lis, *nl = NULL;
	if (o->path != NULL) {
		if (old != NULL && strcmp(old->path, o->path) == 0) {
			/* Same path, new mode or group: change the file in place. */
			if ((o->group != (gid_t)-1 && chown(old->path, (uid_t)-1, o->group) < 0) ||
			    chmod(old->path, o->mode) < 0) {
				rc = -errno;
				snprintf(err, errlen, "%s: %s", old->path, strerror(errno));
				return rc;
			}
			old->mode = o->mode;
			old->group = o->group;
			return 0;
		}
		nl = listener_new(s, o, err, errlen);
		if (nl == NULL)
			return -EADDRNOTAVAIL;
	}
	s->lis = nl;
	close_listener(old);
	return rc;
}

/* Returns the served path (owned by s) or NULL. */
const char *cs_ctlsock_path(const struct cs_ctlsock *s)
{
	return s != NULL && s->lis != NULL ? s->lis->path : NULL;
}

/* Drops clients, removes the socket, frees s from the close callbacks; accepts NULL. */
void cs_ctlsock_close(struct cs_ctlsock *s, void (*close_cb)(void *arg), void *arg)
{
	if (s == NULL) {
		if (close_cb != NULL)
			close_cb(arg);
		return;
	}
	if (s->closing)
		return;
	cs_ctlsock_write_metrics(s);
	s->closing = true;
	s->close_cb = close_cb;
	s->close_arg = arg;
	while (s->clients != NULL)
		close_client(s->clients);
	/* A renew all still asking stops here; its client is gone (d->c is NULL). */
	while (s->renew_all != NULL) {
		struct deferred *d = s->renew_all;
		s->renew_all = d->rnext;
		if (--d->left == 0)
			deferred_answer(d, NULL, true);
	}
	s->renew_all_tail = NULL;
	close_listener(s->lis);
	s->lis = NULL;
	uv_close((uv_handle_t *)&s->mtimer, on_plain_closed);
	uv_close((uv_handle_t *)&s->watch, on_plain_closed);
	uv_close((uv_handle_t *)&s->idle, on_plain_closed);
	uv_close((uv_handle_t *)&s->rtimer, on_plain_closed);
}

/* ---- the agent's wiring ------------------------------------------------------ */

static size_t pl_count(void *arg)
{
	return cs_pipeline_count(arg);
}

static void pl_status(void *arg, size_t i, struct cs_cert_status *out)
{
	cs_pipeline_status(arg, i, out);
}

static bool pl_status_of(void *arg, const char *name, struct cs_cert_status *out)
{
	return cs_pipeline_status_of(arg, name, out) == 0;
}

static const char *pl_name(void *arg, size_t i)
{
	return cs_pipeline_name(arg, i);
}

static void pl_summary(void *arg, struct cs_pipeline_summary *out)
{
	cs_pipeline_summary(arg, out);
}

static size_t pl_problems(void *arg, void (*cb)(void *cbarg, const struct cs_cert_status *st),
			  void *cbarg)
{
	return cs_pipeline_problems(arg, cb, cbarg);
}

static int pl_renew(void *arg, const char *name, bool force, cs_renewal_cb cb, void *cbarg)
{
	return cs_pipeline_renew(arg, name, force, cb, cbarg);
}

static int pl_adopt(void *arg, const char *name,
		    void (*done)(void *cbarg, int status, const char *msg), void *cbarg)
{
	return cs_pipeline_adopt(arg, name, done, cbarg);
}

static int pl_revoke(void *arg, const char *name, int reason,
		     void (*done)(void *cbarg, int status, const char *msg), void *cbarg)
{
	return cs_pipeline_revoke(arg, name, reason, done, cbarg);
}

static int pl_reload(void *arg, const char *name, char *err, size_t errlen)
{
	int rc = cs_pipeline_reload(arg, name);

	if (rc == -ENOENT)
		snprintf(err, errlen, "no [cert \"%s\"] in the configuration", name);
	else if (rc == -EBUSY)
		snprintf(err, errlen, "%s is being renewed, rolled back or the agent is stopping; "
				      "try again", name);
	else if (rc == 0)
		cs_notice("status socket: reload of the services of %s requested", name);
	return rc;
}

static int pl_rehash(void *arg, const char *name, char *err, size_t errlen)
{
	struct cs_capsync *cs = cs_pipeline_capsync(arg);

	if (cs == NULL) {
		snprintf(err, errlen, "no [capath] or [clientcerts] section is configured%s",
			 name != NULL ? "" : " (or they could not be set up: see the log)");
		return -ENOENT;
	}
	if (name == NULL) {
		cs_capsync_full(cs);
		cs_notice("status socket: rehash of every [capath] and [clientcerts] requested");
		return 0;
	}
	if (cs_capsync_rehash(cs, name) < 0) {
		snprintf(err, errlen, "no [capath] or [clientcerts] \"%s\" in the configuration",
			 name);
		return -ENOENT;
	}
	cs_notice("status socket: rehash of %s requested", name);
	return 0;
}

static size_t pl_capath_problems(void *arg,
				 void (*cb)(void *, const char *, const char *, const char *),
				 void *cbarg)
{
	struct cs_capsync *cs = cs_pipeline_capsync(arg);

	return cs != NULL ? cs_capsync_problems(cs, cb, cbarg) : 0;
}

static void opts_of(const struct cs_config *cfg, bool listen, struct cs_ctlsock_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->path = listen ? cfg->agent.socket : NULL;
	o->mode = cfg->agent.socket_mode;
	o->group = cfg->agent.socket_group;
	o->admin_group = cfg->agent.admin_group;
	o->metrics_file = cfg->agent.metrics_file;
	o->state_dir = cfg->agent.state_dir;
}

static const struct cs_ctlsock_backend agent_backend = {
	.count = pl_count,   .status = pl_status, .status_of = pl_status_of,
	.name = pl_name,     .summary = pl_summary, .problems = pl_problems,
	.renew = pl_renew,
	.reload = pl_reload, .rehash = pl_rehash, .capath_problems = pl_capath_problems,
	.revoke = pl_revoke, .adopt = pl_adopt,
};

/* Returns the agent's socket and metrics writer for cfg and pl, or NULL (logged). */
struct cs_ctlsock *cs_ctlsock_for_agent(uv_loop_t *loop, const struct cs_config *cfg,
					struct cs_pipeline *pl, bool listen)
{
	struct cs_ctlsock_backend be = agent_backend;
	struct cs_ctlsock_opts o;
	struct cs_ctlsock *s;
	char err[1024];

	be.arg = pl;
	opts_of(cfg, listen, &o);
	s = cs_ctlsock_new(loop, &o, &be, err, sizeof(err));
	if (s == NULL && o.path != NULL) {
		cs_err("status socket: %s; running without it", err);
		o.path = NULL;
		s = cs_ctlsock_new(loop, &o, &be, err, sizeof(err));
	}
	if (s == NULL)
		cs_err("status socket and metrics: %s", err);
	else if (o.path != NULL)
		cs_info("status socket listening on %s (mode %04o)", o.path, (unsigned)o.mode);
	return s;
}

/* Applies a new configuration to s (errors logged); accepts NULL. */
void cs_ctlsock_apply_config(struct cs_ctlsock *s, const struct cs_config *cfg, bool listen)
{
	struct cs_ctlsock_opts o;
	char err[1024];
	const char *before;

	if (s == NULL)
		return;
	opts_of(cfg, listen, &o);
	before = cs_ctlsock_path(s);
	bool moved = (before == NULL) != (o.path == NULL) ||
		     (before != NULL && o.path != NULL && strcmp(before, o.path) != 0);
	if (cs_ctlsock_apply(s, &o, err, sizeof(err)) < 0)
		cs_err("status socket: %s; keeping the previous one", err);
	else if (moved && o.path != NULL)
		cs_notice("status socket now listening on %s", o.path);
}

/* Returns a socket at e's path that answers "starting" until attached, or NULL (logged). */
struct cs_ctlsock *cs_ctlsock_for_start(uv_loop_t *loop, const struct cs_early *e)
{
	struct cs_ctlsock_backend none = { 0 };
	struct cs_ctlsock_opts o = {
		.path = e->socket,
		.mode = e->socket_mode,
		.group = e->socket_group,
		.admin_group = e->admin_group,
	};
	struct cs_ctlsock *s;
	char err[1024];

	s = cs_ctlsock_new(loop, &o, &none, err, sizeof(err));
	if (s == NULL) {
		cs_err("status socket: %s; trying again once the configuration is read", err);
		return NULL;
	}
	s->starting = "reading the configuration";
	cs_info("status socket open on %s while the configuration is read", o.path);
	return s;
}

/* Serves pl from s (made by cs_ctlsock_for_start) under cfg; the waiting requests are answered. */
void cs_ctlsock_attach_agent(struct cs_ctlsock *s, const struct cs_config *cfg,
			     struct cs_pipeline *pl)
{
	struct client *next;

	s->be = agent_backend;
	s->be.arg = pl;
	s->starting = NULL;
	cs_ctlsock_apply_config(s, cfg, true);
	if (s->lis != NULL)
		cs_info("status socket listening on %s (mode %04o)", s->lis->path,
			(unsigned)s->lis->mode);
	for (struct client *c = s->clients; c != NULL; c = next) {
		next = c->next;
		if (!c->waiting)
			continue;
		c->waiting = false;
		uv_timer_again(&c->timer);
		process(c);
		if (can_read(c))
			uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
	}
}

/* Says what the agent is doing while it starts (a static string). */
void cs_ctlsock_set_starting(struct cs_ctlsock *s, const char *what)
{
	if (s != NULL && s->starting != NULL)
		s->starting = what;
}
