/*
 * cs_sched - when to renew: pure functions from a certificate's lifetime, the
 * configured policy, the issuer's window (ACME ARI) and the failure history to
 * one due moment with the reason for it. No clock is read here: the caller
 * passes `now`, so that the tests can ask about any moment.
 */
#ifndef CS_SCHED_H
#define CS_SCHED_H

#include "cs_config.h"

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define CS_SCHED_BACKOFF_MIN 60        /* default first retry after a failure, seconds */
#define CS_SCHED_BACKOFF_MAX (6 * 3600) /* default cap */
#define CS_SCHED_EXPIRED_CAP 300        /* cap while nothing valid is deployed */

struct cs_sched_in {
	time_t now;
	time_t not_before, not_after;  /* of the deployed leaf */
	struct cs_cfg_span renew_before; /* cert's or agent's; !set = default */
	bool renew_before_own;           /* renew_before is the cert's own: it wins
					    over the short-lifetime rule */
	struct cs_cfg_span jitter;       /* !set = default 5% */
	uint64_t seed;                   /* stable per leaf: spreads a fleet */
	bool has_window;                 /* issuer's suggested renewal window */
	time_t window_start, window_end;
	time_t window_asked;             /* when the issuer first gave that window
					    (0: unknown); one that had begun by then
					    is the CA asking for a renewal now */
};

/*
 * Returns the moment the leaf described by in should be renewed and sets
 * *reason to a static string saying why ("33% of lifetime left", "ARI window").
 */
time_t cs_sched_due(const struct cs_sched_in *in, const char **reason);

#define CS_SCHED_ARI_MAX (12 * 3600) /* ask for the ARI window at least twice a day */
#define CS_SCHED_ARI_MIN 60          /* never sooner than this after an answer, unless
					ari_interval is shorter */

/*
 * Returns the seconds until the issuer is asked for the renewal window again
 * after an answer: its Retry-After (retry_after > 0), else interval ([agent]
 * ari_interval), bounded to at least the shorter of CS_SCHED_ARI_MIN and
 * interval and at most CS_SCHED_ARI_MAX.
 */
int64_t cs_sched_ari_again(int64_t retry_after, int64_t interval);

/*
 * True when the window given at `asked` had already begun then: the CA asks
 * for a renewal now (a revocation), not at a moment of the client's choice.
 */
bool cs_sched_window_begun(time_t window_start, time_t asked);

struct cs_backoff {
	int64_t min, max; /* seconds: [agent] retry_min, retry_max */
};

/*
 * Returns the delay in seconds before retry number `failures` (1 = after the
 * first failure): exponential from b->min (1 minute by default) up to b->max
 * (6 hours), with up to 20% jitter from seed, never less than retry_after,
 * and shortened as the current certificate's expiry approaches (at most a
 * quarter of the time left), or, once it has expired, to at most
 * CS_SCHED_EXPIRED_CAP; never under b->min. not_after 0 means nothing valid
 * is deployed (treated as expired).
 */
int64_t cs_sched_backoff(const struct cs_backoff *b, int failures, time_t now, time_t not_after,
			 int64_t retry_after, uint64_t seed);

/* One failed renewal on an issuer, for cs_sched_failover. */
struct cs_failover_in {
	int failures;        /* failures in a row on the current issuer, this one included */
	unsigned after;      /* [cert] failover_after: that many move on (0: never by count) */
	time_t now;
	time_t renew_at;     /* when this renewal began: its first attempt after the
				last success */
	time_t not_after;    /* of the deployed leaf; 0: nothing valid is deployed */
	int64_t retry_after; /* the issuer asked to wait this long, seconds; 0: nothing */
};

/* Why cs_sched_failover moves on; CS_FAILOVER_STAY: it does not. */
enum cs_failover {
	CS_FAILOVER_STAY = 0,
	CS_FAILOVER_NOTHING_VALID, /* nothing valid is deployed: no time to wait */
	CS_FAILOVER_FAILURES,      /* `after` failures in a row */
	CS_FAILOVER_TIME_LEFT,     /* less than a third of renew_at..not_after is left */
	CS_FAILOVER_RETRY_AFTER,   /* the wait asked for ends past that point */
};

/*
 * The failover rule (certsync.conf(5), failover_after): after a failed
 * renewal on one of a cert's issuers, whether the next attempt goes to the
 * next issuer of the list. It does, whichever comes first, when nothing
 * valid is deployed (or it has expired); after `after` failures in a row on
 * the issuer; when less than a third of the time between renew_at and
 * not_after is left; or when the issuer's Retry-After would end past that
 * point. Pure: the caller passes the clock.
 */
enum cs_failover cs_sched_failover(const struct cs_failover_in *in);

/* A short text for r ("3 failures in a row"); "" for CS_FAILOVER_STAY. */
const char *cs_sched_failover_name(enum cs_failover r);

/* Returns a 64-bit seed from bytes (FNV-1a), for cs_sched_in.seed. */
uint64_t cs_sched_seed(const void *data, size_t len);

#endif
