/*
 * cs_events - what happens to a cert, told by the pipeline to whoever listens:
 * the metrics counters, the status socket (which rewrites the metrics file)
 * and the log. The pipeline publishes each event once, at the place where
 * it happens (pl_renewal.c, the completion handlers of the stages); the
 * subscribers never look at the state directory or compare snapshots.
 *
 * Rules:
 *  - publish runs on the loop thread, synchronously, calling the subscribers
 *    in the order they subscribed;
 *  - the event and every string it points to are valid only during the call:
 *    a subscriber that wants to keep something copies it;
 *  - a subscriber must not call back into the pipeline (no renew, reload,
 *    status...) nor subscribe or unsubscribe during the call: it counts,
 *    logs or arms a timer of its own, and returns.
 */
#ifndef CS_EVENTS_H
#define CS_EVENTS_H

#include "cs_pipeline.h"

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

enum cs_event_type {
	CS_EVENT_RENEWAL_STARTED = 0, /* a renewal starts (due, forced, after a revoke) */
	CS_EVENT_ISSUED,      /* the issuer answered with a certificate */
	CS_EVENT_DEPLOYED,    /* a new generation is in the outputs (gen, serial) */
	CS_EVENT_RELOADED,    /* one service reported its reload for the cert (service, result) */
	CS_EVENT_VERIFIED,    /* the verify probes ended (result: ok, or failed with text) */
	CS_EVENT_RENEWED,     /* a renewal ended with its certificate in place (outcome
				 verified or deployed) */
	CS_EVENT_FAILED,      /* a renewal ended failed, or was abandoned (outcome, text) */
	CS_EVENT_ROLLED_BACK, /* a renewal ended rolled back to the last good generation */
	CS_EVENT_REPAIRED,    /* damaged outputs were put back from a generation (gen) */
	CS_EVENT_ADOPTED,     /* a certificate found in the outputs was taken as the agent's */
	CS_EVENT_REVOKED,     /* the issuer answered a revocation (result, serial, text) */
	CS_EVENT_CHANGED,     /* the status changed otherwise: an examination found other
				 files, a drift check other answers, the issuer another
				 renewal window */
	CS_EVENT_N
};

/* How a reload, a verify or a revocation went. */
enum cs_event_result {
	CS_EVENT_OK = 0,
	CS_EVENT_NOT_RUNNING, /* RELOADED: the service is not running (reported, not a failure) */
	CS_EVENT_ERROR,
};

struct cs_event {
	enum cs_event_type type;
	const char *cert;  /* the [cert] name */
	/* The issuer's name: the renewal's (the one ordering, after a failover
	   too; the end of a renewal names it too), else the one that issued
	   the deployed certificate, else the first of the cert's list; NULL:
	   none. */
	const char *issuer;
	time_t time;       /* when, by the pipeline's clock */
	unsigned renewal;  /* the renewal it is part of (its number), 0: none */
	/* RENEWED, FAILED, ROLLED_BACK: how the renewal ended. */
	enum cs_renewal_outcome outcome;
	/* RELOADED, VERIFIED, REVOKED: how it went. */
	enum cs_event_result result;
	int gen;             /* DEPLOYED, REPAIRED, ADOPTED: the generation, 0: none */
	const char *serial;  /* the leaf concerned, NULL: not known (RENEWED,
				FAILED, ROLLED_BACK: the renewal's new leaf once
				deployed) */
	const char *service; /* RELOADED: the reloader's name, else NULL */
	const char *text;    /* why it failed, or what the probes said; NULL: nothing */
};

/* A subscriber: called with its own arg and the event (valid during the call). */
typedef void (*cs_event_fn)(void *arg, const struct cs_event *ev);

#define CS_EVENTS_MAX 8 /* subscribers of one publisher */

/* The subscribers of one publisher. A zeroed struct is an empty list. */
struct cs_events {
	struct {
		cs_event_fn fn;
		void *arg;
	} sub[CS_EVENTS_MAX];
	unsigned n;
	bool publishing;
};

/* Returns "renewal_started", "issued", ..., "changed", or "?". */
const char *cs_events_type_name(enum cs_event_type t);

/* Returns "ok", "not_running" or "failed" (or "?"). */
const char *cs_events_result_name(enum cs_event_result r);

/*
 * Adds fn(arg) after the subscribers already there. Returns 0, -EEXIST when
 * that pair is subscribed already, or -ENOSPC when CS_EVENTS_MAX are.
 */
int cs_events_subscribe(struct cs_events *e, cs_event_fn fn, void *arg);

/* Removes fn(arg); nothing when it is not subscribed. */
void cs_events_unsubscribe(struct cs_events *e, cs_event_fn fn, void *arg);

/* Calls every subscriber with ev, in the order they subscribed. */
void cs_events_publish(struct cs_events *e, const struct cs_event *ev);

/*
 * Writes the details of ev into d (len bytes, NUL-terminated, cut when
 * longer): "renewal N, outcome O, generation G", what applies; "" when
 * nothing does. Returns the length written.
 */
size_t cs_events_describe(const struct cs_event *ev, char *d, size_t len);

/*
 * A subscriber that logs one debug line per event ("NAME: event TYPE (...)"),
 * without the texts the pipeline logs already; arg is unused.
 */
void cs_events_log(void *arg, const struct cs_event *ev);

#endif
