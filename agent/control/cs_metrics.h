/*
 * cs_metrics - the agent's numbers in the Prometheus text exposition format,
 * for the status socket's `metrics` command and for node_exporter's textfile
 * collector (metrics_file).
 *
 * Gauges come straight from the pipeline's per-cert status at each render.
 * Counters come from the pipeline's events (cs_events.h), each counted once
 * as it happens: a renewal by how it ended (renewed: success; failed or
 * rolled back: failure; abandoned while stopping: neither), a reload by
 * service and result. Whoever subscribes hands the events to
 * cs_metrics_count; the counters live as long as the tracker (across
 * configuration switches).
 */
#ifndef CS_METRICS_H
#define CS_METRICS_H

#include "cs_events.h"
#include "cs_pipeline.h"

#include <stddef.h>
#include <stdbool.h>
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
	bool netproc;               /* privilege separation is on */
	bool netproc_up;            /* the network process runs now */
	uint64_t netproc_restarts;  /* times it was started again after it died or was killed */
	uint64_t netproc_violations; /* protocol violations it was killed for */
};

struct cs_metrics;

/* Returns a new tracker with all counters at zero, or NULL on ENOMEM. */
struct cs_metrics *cs_metrics_new(void);

/* Frees the tracker; accepts NULL. */
void cs_metrics_free(struct cs_metrics *m);

/*
 * Counts ev (an event of the pipeline, valid during the call): the end of a
 * renewal, a service's reload. Other events count nothing. Never fails: a
 * reloader beyond the 64th is not counted.
 */
void cs_metrics_count(struct cs_metrics *m, const struct cs_event *ev);

/*
 * Renders the exposition text: gauges from the snapshot v[0..n) at now,
 * counters from m. Returns a malloc'd NUL-terminated string (the caller
 * frees it) or NULL on ENOMEM.
 */
char *cs_metrics_render(const struct cs_metrics *m, const struct cs_cert_status *v, size_t n,
			const struct cs_metrics_agent *ag, time_t now);

/*
 * Renders like cs_metrics_render from the pipeline's current status. Returns
 * a malloc'd string or NULL on ENOMEM.
 */
char *cs_metrics_render_pipeline(const struct cs_metrics *m, const struct cs_pipeline *pl,
				 const struct cs_metrics_agent *ag);

/*
 * Writes text to path atomically (mode 0644), as the textfile collector
 * wants: it never sees half a file. Returns 0 or a negative errno with err set.
 */
int cs_metrics_write_file(const char *path, const char *text, char *err, size_t errlen);

#endif
