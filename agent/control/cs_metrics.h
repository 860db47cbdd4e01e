/*
 * cs_metrics - the agent's numbers in the Prometheus text exposition format,
 * for the status socket's `metrics` command and for node_exporter's textfile
 * collector (metrics_file).
 *
 * Gauges come straight from the pipeline's per-cert status. The pipeline
 * keeps no event counters, so the renewal and reload counters are derived
 * here: cs_metrics_observe compares each snapshot with the previous one (a
 * newer last_renewal is a success, a higher failure count a failure, a new
 * last_reload text one reload per service it names). Events that happen
 * between two observations and leave the same traces are counted once.
 */
#ifndef CS_METRICS_H
#define CS_METRICS_H

#include "cs_pipeline.h"

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Numbers about the agent itself, handed in by whoever renders. */
struct cs_metrics_agent {
	time_t start_time;
	unsigned clients;           /* status socket clients connected now */
	uint64_t requests_ok;       /* status socket requests answered */
	uint64_t requests_error;    /* malformed, unknown or failed requests */
	uint64_t requests_refused;  /* refused for lack of permission */
	uint64_t metrics_writes_failed;
	long capath_problems;       /* -1: no [capath]/[clientcerts] sync to ask */
};

struct cs_metrics;

/*
 * Returns a new tracker with all counters at zero, or NULL on ENOMEM. A
 * renewal at or after since (the agent's start) is counted even when the
 * cert is first seen after it; failures only when seen to increase.
 */
struct cs_metrics *cs_metrics_new(time_t since);

/* Frees the tracker; accepts NULL. */
void cs_metrics_free(struct cs_metrics *m);

/*
 * Counts what changed since the previous snapshot. A cert seen for the first
 * time (in a state other than unknown) sets the baseline. Returns 0 or -ENOMEM.
 */
int cs_metrics_observe(struct cs_metrics *m, const struct cs_cert_status *v, size_t n);

/*
 * Renders the exposition text for the snapshot v[0..n) at now (observing it
 * first). Returns a malloc'd NUL-terminated string (the caller frees it) or
 * NULL on ENOMEM.
 */
char *cs_metrics_render(struct cs_metrics *m, const struct cs_cert_status *v, size_t n,
			const struct cs_metrics_agent *ag, time_t now);

/*
 * Renders like cs_metrics_render from the pipeline's current status. Returns
 * a malloc'd string or NULL on ENOMEM.
 */
char *cs_metrics_render_pipeline(struct cs_metrics *m, const struct cs_pipeline *pl,
				 const struct cs_metrics_agent *ag);

/*
 * Writes text to path atomically (mode 0644), as the textfile collector
 * wants: it never sees half a file. Returns 0 or a negative errno with err set.
 */
int cs_metrics_write_file(const char *path, const char *text, char *err, size_t errlen);

#endif
