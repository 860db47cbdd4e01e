/*
 * cs_ctlsock_metrics - the metrics command and metrics_file: written soon
 * after each of the backend's events (debounced: one write for a burst),
 * at least every 5 minutes (a heartbeat), and at close. The events also feed the counters (cs_metrics_count).
 */
#include "cs_ctlsock_int.h"
#include "cs_log.h"
#include "cs_netproc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The agent's own numbers, taken now. */
static void fill_agent(struct cs_ctlsock *s)
{
	struct cs_netproc_stats np;

	s->ag.clients = s->n_clients;
	s->ag.capath_problems = s->be.capath_problems != NULL
					? (long)s->be.capath_problems(s->be.arg, NULL, NULL)
					: -1;
	cs_netproc_stats(&np);
	s->ag.netproc = cs_netproc_enabled();
	s->ag.netproc_up = np.pid > 0;
	s->ag.netproc_restarts = np.restarts;
	s->ag.netproc_violations = np.violations;
}

json_t *cs_ctlsock__cmd_metrics(struct cs_ctlsock *s)
{
	char *text;
	json_t *j;

	fill_agent(s);
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
	j = json_pack("{s:b,s:s}", CS_PROTO_K_OK, 1, CS_PROTO_K_METRICS, text);
	free(text);
	return j;
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
	fill_agent(s);
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
	cs_ctlsock_write_metrics(t->data);
	/* A heartbeat: metrics of a quiet agent are fresh too, so that their age
	   (node_textfile_mtime_seconds, certsync_metrics_generated_timestamp_seconds)
	   says whether the agent lives. */
	cs_ctlsock__metrics_soon(t->data, METRICS_HEARTBEAT_MS);
}

void cs_ctlsock__metrics_soon(struct cs_ctlsock *s, uint64_t ms)
{
	if (s->metrics_file == NULL || s->closing)
		return;
	/* A write already due sooner covers this change too. */
	if (uv_is_active((uv_handle_t *)&s->mtimer) && uv_timer_get_due_in(&s->mtimer) <= ms)
		return;
	uv_timer_start(&s->mtimer, on_mtimer, ms, 0);
}

/*
 * Something happened to a cert (the backend's events): counted when it is a
 * renewal's end or a reload, and the metrics file is written soon.
 */
static void on_event(void *arg, const struct cs_event *ev)
{
	struct cs_ctlsock *s = arg;

	cs_metrics_count(s->metrics, ev);
	cs_ctlsock__metrics_soon(s, METRICS_DEBOUNCE_MS);
}

void cs_ctlsock__subscribe(struct cs_ctlsock *s)
{
	int rc;

	if (s->subscribed || s->be.subscribe == NULL || s->be.unsubscribe == NULL)
		return;
	if ((rc = s->be.subscribe(s->be.arg, on_event, s)) < 0) {
		cs_warn("metrics: cannot follow the pipeline's events (%s); counters and "
			"metrics_file not updated on changes", strerror(-rc));
		return;
	}
	s->subscribed = true;
}

void cs_ctlsock__unsubscribe(struct cs_ctlsock *s)
{
	if (!s->subscribed)
		return;
	s->be.unsubscribe(s->be.arg, on_event, s);
	s->subscribed = false;
}
