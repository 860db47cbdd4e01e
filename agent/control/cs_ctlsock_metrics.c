/*
 * cs_ctlsock_metrics - the metrics command and metrics_file: written after
 * every change of the state files (seen through a watch of the state
 * directory, debounced, and once more after the reloads), and at close.
 */
#include "cs_ctlsock_int.h"
#include "cs_log.h"
#include "cs_state.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *cs_ctlsock__cmd_metrics(struct cs_ctlsock *s)
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

void cs_ctlsock__metrics_soon(struct cs_ctlsock *s, uint64_t ms)
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
	cs_ctlsock__metrics_soon(s, METRICS_DEBOUNCE_MS);
}

void cs_ctlsock__watch_state(struct cs_ctlsock *s)
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

