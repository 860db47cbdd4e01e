/*
 * pl_drift - when the drift checks of pl_drift.c run: the arithmetic alone,
 * without the pipeline, so that a test can hold it to its bounds.
 */
#ifndef CS_PL_DRIFT_H
#define CS_PL_DRIFT_H

#include <stddef.h>
#include <stdint.h>

#define PL_DRIFT_JITTER_PCT 10     /* each interval is drawn within +-10% */
#define PL_DRIFT_FIRST_MIN_MS 30000 /* the first check after start: not before 30 s ... */
#define PL_DRIFT_FIRST_SPAN_MS 60000 /* ... and within a minute after that ... */
#define PL_DRIFT_FIRST_PER_CERT_MS 100 /* ... or longer: at most ten certs a second */

/*
 * Returns the milliseconds until the next check of an interval of
 * interval_s seconds (> 0), drawn from r (any 64-bit value) within
 * +-PL_DRIFT_JITTER_PCT percent of it, never less than one second.
 */
int64_t pl_drift_next_ms(int64_t interval_s, uint64_t r);

/*
 * Returns the milliseconds from start until the first check: the sooner of
 * one jittered interval and a moment drawn between 30 s and 90 s after
 * start (or over n_certs tenths of a second when that is longer), so that
 * an operator sees the served certificates within about a minute and
 * 10,000 certificates do not probe their services at once.
 */
int64_t pl_drift_first_ms(int64_t interval_s, size_t n_certs, uint64_t r);

/* Returns the next value of the generator whose state is *s (splitmix64). */
uint64_t pl_drift_random(uint64_t *s);

#endif
