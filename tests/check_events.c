/*
 * check_events - the pipeline's events: the subscriber list (order, limits,
 * unsubscribe), and a real pipeline (local CA, an exec reloader) whose
 * renewals publish each step once, in order, to every subscriber. The
 * metrics counters subscribed to it are exact: two renewals between two
 * renders count two, and so do their reloads (counting from status
 * snapshots saw one renewal and no reload). The metrics file is rewritten
 * after a renewal from the events alone (nothing watches the state
 * directory).
 */
#include "cs_config.h"
#include "cs_ctlsock.h"
#include "cs_events.h"
#include "cs_log.h"
#include "cs_metrics.h"
#include "cs_pipeline.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the subscriber list ---- */

static char order[64];

static void sub_a(void *arg, const struct cs_event *ev)
{
	(void)ev;
	strncat(order, arg, sizeof(order) - strlen(order) - 1);
}

START_TEST(test_events_subscribers)
{
	struct cs_events e;
	struct cs_event ev = { .type = CS_EVENT_ISSUED, .cert = "mail" };
	static char names[CS_EVENTS_MAX + 1][2];

	memset(&e, 0, sizeof(e));
	order[0] = '\0';
	cs_events_publish(&e, &ev); /* nobody listens: nothing happens */
	ck_assert_int_eq(cs_events_subscribe(&e, sub_a, "a"), 0);
	ck_assert_int_eq(cs_events_subscribe(&e, sub_a, "b"), 0);
	ck_assert_int_eq(cs_events_subscribe(&e, sub_a, "c"), 0);
	ck_assert_int_eq(cs_events_subscribe(&e, sub_a, "b"), -EEXIST);
	cs_events_publish(&e, &ev);
	ck_assert_str_eq(order, "abc");
	/* Taken back: the others keep their order; an unknown one changes nothing. */
	cs_events_unsubscribe(&e, sub_a, "b");
	cs_events_unsubscribe(&e, sub_a, "x");
	order[0] = '\0';
	cs_events_publish(&e, &ev);
	ck_assert_str_eq(order, "ac");
	/* A full list says so. */
	for (unsigned i = e.n; i < CS_EVENTS_MAX; i++) {
		snprintf(names[i], sizeof(names[i]), "%c", 'd' + i);
		ck_assert_int_eq(cs_events_subscribe(&e, sub_a, names[i]), 0);
	}
	ck_assert_int_eq(cs_events_subscribe(&e, sub_a, "z"), -ENOSPC);

	/* Every type has a name of its own, for the log. */
	for (int t = 0; t < CS_EVENT_N; t++) {
		ck_assert_str_ne(cs_events_type_name(t), "?");
		for (int u = 0; u < t; u++)
			ck_assert_str_ne(cs_events_type_name(t), cs_events_type_name(u));
	}
	ck_assert_str_eq(cs_events_type_name(CS_EVENT_N), "?");
	ck_assert_str_eq(cs_events_type_name(CS_EVENT_RENEWAL_STARTED), "renewal_started");
	ck_assert_str_eq(cs_events_result_name(CS_EVENT_NOT_RUNNING), "not_running");
}
END_TEST

/* ---- a real pipeline ---- */

static char *tmp;

static void setup(void)
{
	tmp = cs_test_mkdtemp();
	ck_assert_ptr_nonnull(tmp);
	cs_log_open("check_events", CS_LOG_STDERR, CS_LOG_ERR);
}

static void teardown(void)
{
	cs_test_rmrf(tmp);
	free(tmp);
}

/* What a subscriber saw: the types in order (one letter each), the reloads. */
struct seen {
	char types[256];
	size_t n;
	unsigned renewal_started, renewal_ended;
	int reload_ok;
	bool bad;
};

static void record(void *arg, const struct cs_event *ev)
{
	struct seen *s = arg;

	if (s->n + 1 < sizeof(s->types))
		s->types[s->n++] = (char)('A' + ev->type);
	if (ev->cert == NULL || strcmp(ev->cert, "a") != 0 || ev->time == 0)
		s->bad = true;
	/* Every event names the cert's issuer (the journal's CERTSYNC_ISSUER). */
	if (ev->issuer == NULL || strcmp(ev->issuer, "local") != 0)
		s->bad = true;
	if (ev->type == CS_EVENT_RENEWAL_STARTED)
		s->renewal_started = ev->renewal;
	if (ev->type == CS_EVENT_RENEWED) {
		s->renewal_ended = ev->renewal;
		/* The end names the new leaf (the journal's CERTSYNC_SERIAL). */
		if (ev->serial == NULL || ev->serial[0] == '\0')
			s->bad = true;
	}
	if (ev->type == CS_EVENT_RELOADED && ev->result == CS_EVENT_OK &&
	    strcmp(ev->service, "svc") == 0)
		s->reload_ok++;
}

static void count(void *arg, const struct cs_event *ev)
{
	cs_metrics_count(arg, ev);
}

struct run {
	uv_loop_t loop;
	struct cs_pipeline *pl;
	int ends;
	enum cs_renewal_outcome o;
	int closed;
};

static void on_end(void *arg, enum cs_renewal_outcome o, const char *msg)
{
	struct run *r = arg;

	(void)msg;
	r->ends++;
	r->o = o;
}

static void on_closed(void *arg)
{
	((struct run *)arg)->closed++;
}

static bool a_valid_idle(struct run *r)
{
	struct cs_cert_status st;

	cs_pipeline_status(r->pl, 0, &st);
	return st.state == CS_CERT_VALID && strcmp(st.stage, "idle") == 0;
}

static void on_deadline(uv_timer_t *t)
{
	*(bool *)t->data = true;
}

/* Runs the loop until pred(r, arg) holds or ms pass; returns pred(r, arg). */
static bool spin(struct run *r, bool (*pred)(struct run *r, const void *arg), const void *arg,
		 uint64_t ms)
{
	uv_timer_t t;
	bool late = false;

	uv_timer_init(&r->loop, &t);
	t.data = &late;
	uv_timer_start(&t, on_deadline, ms, 0);
	while (!late && !pred(r, arg))
		uv_run(&r->loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&r->loop, UV_RUN_NOWAIT);
	return pred(r, arg);
}

static bool valid_idle(struct run *r, const void *arg)
{
	(void)arg;
	return a_valid_idle(r);
}

static bool ended(struct run *r, const void *arg)
{
	return r->ends >= *(const int *)arg && a_valid_idle(r);
}

/* The metrics file holds line (a whole line). */
static bool file_has(struct run *r, const void *arg)
{
	char *path, *text;
	size_t len;
	bool found;

	(void)r;
	ck_assert_int_ge(asprintf(&path, "%s/metrics.prom", tmp), 0);
	text = cs_test_read(path, &len);
	found = text != NULL && strstr(text, arg) != NULL;
	free(text);
	free(path);
	return found;
}

static bool has_line(const char *text, const char *line)
{
	const char *p = strstr(text, line);

	return p != NULL && (p == text || p[-1] == '\n') && p[strlen(line)] == '\n';
}

START_TEST(test_events_renewals_exact)
{
	struct run r;
	struct seen seen, late;
	struct cs_metrics *m = cs_metrics_new();
	struct cs_metrics_agent ag = { .start_time = time(NULL), .capath_problems = -1 };
	struct cs_cfg_errors errs;
	char *text, *p, err[512];

	memset(&r, 0, sizeof(r));
	memset(&seen, 0, sizeof(seen));
	memset(&late, 0, sizeof(late));
	ck_assert_int_ge(asprintf(&text,
				  "[agent]\nstate_dir = %s/state\nmetrics_file = %s/metrics.prom\n\n"
				  "[issuer \"local\"]\ntype = local-ca\ndir = %s/ca\n\n"
				  "[reload \"svc\"]\ntype = exec\ncommand = /bin/true\n\n"
				  "[cert \"a\"]\nissuer = local\nnames = a.example.test\n"
				  "bundle = %s/a.pem\nreload = svc\n",
				  tmp, tmp, tmp, tmp),
			 0);
	p = cs_test_write(tmp, "certsync.conf", text, 0644);
	struct cs_config *cfg = cs_config_load(p, &errs);
	for (size_t i = 0; i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.v[i]);
	ck_assert_ptr_nonnull(cfg);
	free(p);
	free(text);

	uv_loop_init(&r.loop);
	r.pl = cs_pipeline_new(&r.loop, cfg, err, sizeof(err));
	ck_assert_msg(r.pl != NULL, "%s", err);
	ck_assert_int_eq(cs_pipeline_subscribe(r.pl, record, &seen), 0);
	ck_assert_int_eq(cs_pipeline_subscribe(r.pl, record, &seen), -EEXIST);
	ck_assert_int_eq(cs_pipeline_subscribe(r.pl, count, m), 0);
	ck_assert_int_eq(cs_pipeline_subscribe(r.pl, count, m), -EEXIST);
	/* The status socket's metrics file (no socket), as the agent wires it. */
	struct cs_ctlsock *sock = cs_ctlsock_for_agent(&r.loop, cfg, r.pl, false);
	ck_assert_ptr_nonnull(sock);
	ck_assert_int_eq(cs_pipeline_start(r.pl, false, NULL, NULL), 0);

	/* The first issuance: started, issued, deployed, one reload, renewed; nothing else. */
	ck_assert(spin(&r, valid_idle, NULL, 20000));
	ck_assert_msg(strstr(seen.types, "ABCDF") != NULL, "%s", seen.types);
	ck_assert_int_eq(seen.reload_ok, 1);
	ck_assert_uint_gt(seen.renewal_started, 0);
	ck_assert_uint_eq(seen.renewal_ended, seen.renewal_started);
	ck_assert(!seen.bad);
	char *t0 = cs_metrics_render_pipeline(m, r.pl, &ag);
	ck_assert_msg(has_line(t0, "certsync_renewals_total{result=\"success\"} 1"), "%s", t0);
	free(t0);

	/* Two forced renewals, each to its end, and no render in between. */
	int want = 1;
	ck_assert_int_eq(cs_pipeline_renew(r.pl, "a", true, on_end, &r), 0);
	ck_assert(spin(&r, ended, &want, 20000));
	want = 2;
	ck_assert_int_eq(cs_pipeline_renew(r.pl, "a", true, on_end, &r), 0);
	ck_assert(spin(&r, ended, &want, 20000));
	ck_assert_int_eq(r.o, CS_RENEWAL_DEPLOYED);
	ck_assert_int_eq(seen.reload_ok, 3);
	ck_assert_uint_eq(seen.renewal_ended, seen.renewal_started);
	char *t1 = cs_metrics_render_pipeline(m, r.pl, &ag);
	ck_assert_msg(has_line(t1, "certsync_renewals_total{result=\"success\"} 3"), "%s", t1);
	ck_assert_msg(has_line(t1, "certsync_renewals_total{result=\"failure\"} 0"), "%s", t1);
	ck_assert_msg(has_line(t1, "certsync_reloads_total{reloader=\"svc\",result=\"ok\"} 3"),
		      "%s", t1);
	free(t1);
	/* The metrics file follows (written 200 ms after the last event). */
	ck_assert_msg(spin(&r, file_has, "certsync_renewals_total{result=\"success\"} 3\n", 3000),
		      "the metrics file was not rewritten after the renewals");
	ck_assert(file_has(&r, "certsync_reloads_total{reloader=\"svc\",result=\"ok\"} 3\n"));

	/* A subscriber taken back hears nothing more; one added late hears from then on. */
	cs_pipeline_unsubscribe(r.pl, record, &seen);
	ck_assert_int_eq(cs_pipeline_subscribe(r.pl, record, &late), 0);
	size_t before = seen.n;
	want = 3;
	ck_assert_int_eq(cs_pipeline_renew(r.pl, "a", true, on_end, &r), 0);
	ck_assert(spin(&r, ended, &want, 20000));
	ck_assert_uint_eq(seen.n, before);
	ck_assert_msg(strcmp(late.types, "ABCDF") == 0, "%s", late.types);

	cs_ctlsock_close(sock, NULL, NULL);
	cs_pipeline_close(r.pl, on_closed, &r);
	uv_run(&r.loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(r.closed, 1);
	ck_assert_int_eq(uv_loop_close(&r.loop), 0);
	cs_metrics_free(m);
	cs_config_free(cfg);
}
END_TEST

Suite *events_suite(void)
{
	Suite *s = suite_create("events");
	TCase *tc = tcase_create("events");

	tcase_add_test(tc, test_events_subscribers);
	suite_add_tcase(s, tc);
	tc = tcase_create("pipeline");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_events_renewals_exact);
	suite_add_tcase(s, tc);
	return s;
}
