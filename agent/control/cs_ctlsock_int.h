/*
 * cs_ctlsock_int.h - what the files of the status socket server share and
 * nothing else may use: the server, listener, client, deferred request and
 * answer structs, and the cs_ctlsock__* functions one file calls in another.
 * The interface is cs_ctlsock.h.
 */
#ifndef CS_CTLSOCK_INT_H
#define CS_CTLSOCK_INT_H

#include "cs_ctlsock.h"
#include "cs_metrics.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <uv.h>

#define MAX_QUEUED (1024u * 1024) /* answers waiting for one client */
#define BATCH 16 /* requests of one client answered per loop turn */
#define METRICS_DEBOUNCE_MS 200
#define METRICS_HEARTBEAT_MS (5 * 60 * 1000) /* metrics_file rewritten at least this often */
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
	LIST_ENTRY(client) link; /* in s->clients */
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
	TAILQ_ENTRY(client) blink; /* in s->backlog while backlogged */
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
	STAILQ_ENTRY(deferred) rlink; /* in s->renew_all */
	/* A backend that answers before it returns: the answer is kept for the caller. */
	bool in_call, answered;
	int status;
	char msg[1024];
};


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

struct cs_ctlsock {
	uv_loop_t *loop;
	struct cs_ctlsock_backend be;
	struct listener *lis;
	gid_t admin_group;
	size_t max_request;
	uint64_t idle_ms;
	size_t max_clients;
	char *metrics_file;

	LIST_HEAD(, client) clients;
	unsigned n_clients;
	struct cs_metrics *metrics;
	struct cs_metrics_agent ag;

	bool subscribed; /* to the backend's events (cs_ctlsock__subscribe) */
	uv_timer_t mtimer; /* the next write of the metrics file */
	uv_idle_t idle; /* runs while clients are backlogged */
	TAILQ_HEAD(, client) backlog; /* served in this order */
	/*
	 * renew all requests still asking for renewals, oldest first, and the
	 * timer for the next slice (renew_all_turn): as long after a slice as
	 * the slice took, so that they get at most half the loop.
	 */
	STAILQ_HEAD(, deferred) renew_all;
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

/* cs_ctlsock_conn.c: clients: closing, answers, reading and fairness */
/* Drops a reference to a (NULL accepted); the last one frees it. */
void cs_ctlsock__answer_unref(struct answer *a);
/* Closes c's handles; c is freed by the last close callback. */
void cs_ctlsock__close_client(struct client *c);
/* Closes the listener's pipe; l is freed by its close callback. */
void cs_ctlsock__close_listener(struct listener *l);
/* The close callback of the server's own handles (it counts s->handles down). */
void cs_ctlsock__on_plain_closed(uv_handle_t *h);
/* True when nothing holds the client's next requests back. */
bool cs_ctlsock__can_read(const struct client *c);
/* Sends a to c (written now, or its tail queued with a reference taken). */
void cs_ctlsock__send_answer(struct client *c, struct answer *a);
/* Returns the answer for j (consumed), or an "out of memory" one; NULL only on ENOMEM. */
struct answer *cs_ctlsock__answer_json(json_t *j);
/* Sends j (consumed) to c as one line. */
void cs_ctlsock__send_json(struct client *c, json_t *j);
/* Returns {"ok":false,"error":...,"code":code} (the caller owns it), NULL on ENOMEM. */
json_t *cs_ctlsock__error_json(const char *code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Answers the complete lines buffered, at most BATCH per loop turn. */
void cs_ctlsock__process(struct client *c);
/* The read callbacks of a client's pipe. */
void cs_ctlsock__on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
void cs_ctlsock__on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);
/* A client's idle timer: drops a client without a complete request within idle_ms. */
void cs_ctlsock__on_idle(uv_timer_t *t);

/* cs_ctlsock_listen.c: the socket file and accepting clients */
/* Returns a listener at o->path accepting into s, or NULL with err set. */
struct listener *cs_ctlsock__listener_new(struct cs_ctlsock *s, const struct cs_ctlsock_opts *o,
					  char *err, size_t errlen);

/* cs_ctlsock_show.c: list and show */
/* Returns t as an ISO 8601 UTC string, or null for 0. */
json_t *cs_ctlsock__time_json(time_t t);
/* Returns s as a string, or null for NULL. */
json_t *cs_ctlsock__str_json(const char *s);
/* show's "dane" object for st (cs_ctlsock_dane.c); JSON null without dane. */
json_t *cs_ctlsock__dane_json(const struct cs_cert_status *st);
/* True for a state status reports as a problem (failed, expired, missing). */
bool cs_ctlsock__bad_state(enum cs_cert_state st);
/* The answers to list and show (the caller owns them), NULL on ENOMEM. */
json_t *cs_ctlsock__cmd_list(struct cs_ctlsock *s);
json_t *cs_ctlsock__cmd_show(struct cs_ctlsock *s, const char *name);

/* cs_ctlsock_status.c: status and its cached answer */
/* Returns the status answer (borrowed from the cache), NULL on ENOMEM. */
struct answer *cs_ctlsock__status_answer(struct cs_ctlsock *s);

/* cs_ctlsock_renew.c: renew, reload and rehash */
/* Returns renew's answer, or NULL when it comes later (c->deferred set). */
json_t *cs_ctlsock__cmd_renew(struct client *c, const char *name, bool force, bool wait);
/* Returns the answer of a reload or rehash through hook (NULL: not available). */
json_t *cs_ctlsock__cmd_hook(struct cs_ctlsock *s, const char *cmd, const char *name,
			     int (*hook)(void *, const char *, char *, size_t));

/* cs_ctlsock_defer.c: answers that come later: adopt and revoke */
/* Sends the deferred answer resp (taken) to d's client, if it is still there, and frees d. */
void cs_ctlsock__deferred_answer(struct deferred *d, json_t *resp, bool ok);
/* Return the answer now, or NULL when it comes later (c->deferred set). */
json_t *cs_ctlsock__cmd_adopt(struct client *c, const char *name);
json_t *cs_ctlsock__cmd_revoke(struct client *c, const char *name, json_t *jreason);

/* cs_ctlsock_cmd.c: one request line answered */
/* Answers one request line of c (now, or later through c->deferred). */
void cs_ctlsock__handle(struct client *c, const char *line, size_t len);

/* cs_ctlsock_metrics.c: the metrics command and the metrics file */
/* Returns the metrics answer (the caller owns it), NULL on ENOMEM. */
json_t *cs_ctlsock__cmd_metrics(struct cs_ctlsock *s);
/* Writes the metrics file in ms (an earlier write already due stays). */
void cs_ctlsock__metrics_soon(struct cs_ctlsock *s, uint64_t ms);
/*
 * Subscribes s to its backend's events (when it has them and s is not
 * subscribed yet): each one is counted and rewrites the metrics file soon.
 * A failure is logged.
 */
void cs_ctlsock__subscribe(struct cs_ctlsock *s);
/* Takes that subscription back (before the backend changes or s closes). */
void cs_ctlsock__unsubscribe(struct cs_ctlsock *s);

#endif /* CS_CTLSOCK_INT_H */
