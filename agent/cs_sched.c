/*
 * cs_sched - renewal timing. See cs_sched.h.
 */
#include "cs_sched.h"

#include <math.h>

uint64_t cs_sched_seed(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

/* A fraction in [0, 1) drawn from seed and a salt, stable for the same inputs. */
static double seeded_fraction(uint64_t seed, uint64_t salt)
{
	uint64_t x = seed ^ (salt * 0x9E3779B97F4A7C15ULL);

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb93f53fe1a85ULL;
	x ^= x >> 33;
	return (double)(x >> 11) / (double)(1ULL << 53);
}

time_t cs_sched_due(const struct cs_sched_in *in, const char **reason)
{
	int64_t life = (int64_t)in->not_after - (int64_t)in->not_before;
	int64_t before, jitter;
	time_t due;

	if (life <= 0) {
		*reason = "the certificate has no valid lifetime";
		return in->now;
	}
	if (in->has_window && in->window_end >= in->window_start &&
	    cs_sched_window_begun(in->window_start, in->window_asked)) {
		/* RFC 9773: a window in the past means renew now. */
		*reason = "the CA asked for it (ARI window already open when given)";
		return in->window_start < in->now ? in->window_start : in->now;
	}
	if (in->has_window && in->window_end > in->window_start) {
		/* RFC 9773: pick a uniform random moment inside the window. */
		double f = seeded_fraction(in->seed, 1);
		*reason = "inside the issuer's renewal window (ARI)";
		return in->window_start +
		       (time_t)(f * (double)(in->window_end - in->window_start));
	}
	/*
	 * Under 10 days of lifetime, half of it: a share or a duration meant for
	 * 90-day certificates ([agent] renew_before = 33% as shipped) would leave
	 * a short-lived one too little time to retry. Only the certificate's own
	 * renew_before says otherwise.
	 */
	if (life < 10 * 86400 && !(in->renew_before.set && in->renew_before_own)) {
		before = (int64_t)llround((double)life * 0.5);
		*reason = "50% of the lifetime left (short-lived certificate)";
	} else if (in->renew_before.set && !in->renew_before.is_percent) {
		before = in->renew_before.seconds;
		*reason = "renew_before before expiry";
		/* A fixed duration longer than the lifetime would renew at once, forever. */
		if (before >= life) {
			before = life / 2;
			*reason = "half of the lifetime left (renew_before exceeds the lifetime)";
		}
	} else {
		double pct;
		if (in->renew_before.set) {
			pct = in->renew_before.percent;
			*reason = "renew_before share of the lifetime left";
		} else {
			pct = 33.0;
			*reason = "33% of the lifetime left";
		}
		before = (int64_t)llround((double)life * pct / 100.0);
	}
	if (in->jitter.set && !in->jitter.is_percent)
		jitter = in->jitter.seconds;
	else
		jitter = (int64_t)llround((double)life *
					  (in->jitter.set ? in->jitter.percent : 5.0) / 100.0);
	/* Jitter only ever renews earlier, and never before half of what remains. */
	if (jitter > (life - before) / 2)
		jitter = (life - before) / 2;
	due = in->not_after - (time_t)before -
	      (time_t)(seeded_fraction(in->seed, 2) * (double)jitter);
	return due;
}

bool cs_sched_window_begun(time_t window_start, time_t asked)
{
	return asked != 0 && window_start <= asked;
}

int64_t cs_sched_ari_again(int64_t retry_after, int64_t interval)
{
	int64_t again = retry_after > 0 ? retry_after : interval;
	int64_t floor = interval > 0 && interval < CS_SCHED_ARI_MIN ? interval : CS_SCHED_ARI_MIN;

	if (again < floor)
		again = floor;
	if (again > CS_SCHED_ARI_MAX)
		again = CS_SCHED_ARI_MAX;
	return again;
}

int64_t cs_sched_backoff(const struct cs_backoff *b, int failures, time_t now, time_t not_after,
			 int64_t retry_after, uint64_t seed)
{
	double delay = (double)b->min;

	for (int i = 1; i < failures && delay < (double)b->max; i++)
		delay *= 2;
	if (delay > (double)b->max)
		delay = (double)b->max;
	/* Nothing valid is deployed: the services are down until a renewal works. */
	if (not_after <= now && delay > (double)CS_SCHED_EXPIRED_CAP)
		delay = (double)CS_SCHED_EXPIRED_CAP;
	/* Up to 20% less, so that a fleet failing together does not retry together. */
	delay -= delay * 0.2 * seeded_fraction(seed, (uint64_t)failures + 3);
	if (not_after > now) {
		double quarter = (double)(not_after - now) / 4.0;
		if (delay > quarter)
			delay = quarter;
	}
	if (delay < (double)b->min)
		delay = (double)b->min;
	if (retry_after > 0 && delay < (double)retry_after)
		delay = (double)retry_after;
	return (int64_t)delay;
}

enum cs_failover cs_sched_failover(const struct cs_failover_in *in)
{
	if (in->not_after <= in->now)
		return CS_FAILOVER_NOTHING_VALID;
	if (in->after > 0 && in->failures >= (int)in->after)
		return CS_FAILOVER_FAILURES;
	/* The point where a third of the renewal's time is left. */
	time_t from = in->renew_at > 0 && in->renew_at < in->not_after ? in->renew_at : in->now;
	time_t third = in->not_after - (in->not_after - from) / 3;
	if (in->now >= third)
		return CS_FAILOVER_TIME_LEFT;
	if (in->retry_after > 0 && in->retry_after > (int64_t)(third - in->now))
		return CS_FAILOVER_RETRY_AFTER;
	return CS_FAILOVER_STAY;
}

const char *cs_sched_failover_name(enum cs_failover r)
{
	switch (r) {
	case CS_FAILOVER_STAY:
		break;
	case CS_FAILOVER_NOTHING_VALID:
		return "nothing valid is deployed";
	case CS_FAILOVER_FAILURES:
		return "failures in a row";
	case CS_FAILOVER_TIME_LEFT:
		return "less than a third of the renewal's time left";
	case CS_FAILOVER_RETRY_AFTER:
		return "its Retry-After ends past a third of the renewal's time";
	}
	return "";
}
