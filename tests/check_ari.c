/*
 * check_ari - the ACME renewal window (ARI, RFC 9773) in the schedule: the
 * pure parts (how soon to ask again, a window that had begun when given, the
 * state file with and without the kept answer) and --once passes of the
 * pipeline with a fake clock and a local CA that answers renewal_info as the
 * test says (its ops table copied with renewal_info added): the answer kept
 * across passes (no question before the kept time), Retry-After bounded to
 * 12 hours, a begun window renewing, and one that opened before the leaf was
 * put in place left alone.
 */
#include "cs_config.h"
#include "cs_log.h"
#include "cs_pipeline.h"
#include "cs_registry.h"
#include "cs_sched.h"
#include "cs_state.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOUR 3600
#define DAY 86400

static char *tmp;
static time_t fake_now;

/* What the fake renewal_info answers, and how often it was asked. */
static struct {
	time_t start, end;
	int64_t retry_after;
	int asked;
} fa;

static void setup(void)
{
	tmp = cs_test_mkdtemp();
	ck_assert_ptr_nonnull(tmp);
	cs_log_open("check_ari", CS_LOG_STDERR, CS_LOG_ERR);
	memset(&fa, 0, sizeof(fa));
	/* A minute ahead of the wall clock: the local CA stamps notBefore with the
	   real time, and a certificate issued a second after this (a tick of the
	   real clock) would otherwise be "not valid yet" at fake_now. */
	fake_now = time(NULL) + 60;
}

static void teardown(void)
{
	cs_test_rmrf(tmp);
	free(tmp);
	tmp = NULL;
}

/* ---- the pure parts ---- */

START_TEST(test_ari_again_bounded)
{
	/* No Retry-After: the configured interval. */
	ck_assert_int_eq(cs_sched_ari_again(0, 6 * HOUR), 6 * HOUR);
	/* Retry-After wins, but never beyond 12 hours (asked at least twice a day). */
	ck_assert_int_eq(cs_sched_ari_again(2 * HOUR, 6 * HOUR), 2 * HOUR);
	ck_assert_int_eq(cs_sched_ari_again(3 * DAY, 6 * HOUR), 12 * HOUR);
	/* Never sooner than a minute, unless the interval itself is shorter. */
	ck_assert_int_eq(cs_sched_ari_again(5, 6 * HOUR), 60);
	ck_assert_int_eq(cs_sched_ari_again(0, 1), 1);
	ck_assert_int_eq(cs_sched_ari_again(5, 2), 5);
}
END_TEST

START_TEST(test_ari_begun_window_due_now)
{
	const char *why = NULL;
	time_t now = 1800000000;
	struct cs_sched_in in = {
		.now = now,
		.not_before = now - 30 * DAY,
		.not_after = now + 60 * DAY,
		.seed = 42,
		.has_window = true,
		.window_start = now - HOUR,
		.window_end = now + 2 * DAY,
		.window_asked = now - 10, /* begun when given: the CA asks for it */
	};

	ck_assert_int_le(cs_sched_due(&in, &why), now);
	ck_assert_msg(strstr(why, "CA asked") != NULL, "%s", why);
	/* A past window at the point of asking too: due at once. */
	in.window_end = now - 60;
	ck_assert_int_le(cs_sched_due(&in, &why), now);
	/* The same window given before it began: a moment inside it, as before. */
	in.window_end = now + 2 * DAY;
	in.window_asked = now - 2 * HOUR;
	time_t due = cs_sched_due(&in, &why);
	ck_assert_int_ge(due, in.window_start);
	ck_assert_int_lt(due, in.window_end);
	ck_assert_msg(strstr(why, "window") != NULL && strstr(why, "CA asked") == NULL, "%s", why);
	/* Unknown (0): not taken as begun. */
	ck_assert(!cs_sched_window_begun(now - HOUR, 0));
	ck_assert(cs_sched_window_begun(now - HOUR, now - HOUR));
}
END_TEST

START_TEST(test_ari_state_round_trip)
{
	struct cs_state st, back;
	char err[512] = "";

	memset(&st, 0, sizeof(st));
	st.next_gen = 2;
	snprintf(st.ari.sha256, sizeof(st.ari.sha256), "AB:CD");
	st.ari.start = 1800000000;
	st.ari.end = 1800086400;
	snprintf(st.ari.explanation, sizeof(st.ari.explanation), "https://ca.example/why");
	st.ari.asked = 1799990000;
	st.ari.next = 1800030000;
	ck_assert_int_eq(cs_state_save(tmp, "web", &st, err, sizeof(err)), 0);
	ck_assert_int_eq(cs_state_load(tmp, "web", &back, err, sizeof(err)), 0);
	ck_assert_str_eq(back.ari.sha256, "AB:CD");
	ck_assert_int_eq(back.ari.start, 1800000000);
	ck_assert_int_eq(back.ari.end, 1800086400);
	ck_assert_str_eq(back.ari.explanation, "https://ca.example/why");
	ck_assert_int_eq(back.ari.asked, 1799990000);
	ck_assert_int_eq(back.ari.next, 1800030000);
	cs_state_clear(&st);
	cs_state_clear(&back);
}
END_TEST

/* A state file written before the ARI answer was kept loads, with none. */
START_TEST(test_ari_old_state_loads)
{
	struct cs_state st;
	char err[512] = "";
	char *dir = cs_test_path("%s/certs", tmp);

	ck_assert_int_eq(cs_state_mkdirs(dir, 0700, err, sizeof(err)), 0);
	free(cs_test_write(dir, "web.json",
			   "{\"failures\": 0, \"generations\": [{\"n\": 1, \"serial\": \"01\", "
			   "\"sha256\": \"AB:01\", \"not_after\": 1800000000, \"deployed\": 5}], "
			   "\"last_attempt\": 7, \"last_error\": null, \"last_success\": 7, "
			   "\"next_attempt\": 0, \"next_due\": 1790000000, \"next_generation\": 2, "
			   "\"retry_after\": 0}\n",
			   0600));
	ck_assert_int_eq(cs_state_load(tmp, "web", &st, err, sizeof(err)), 0);
	ck_assert_int_eq(st.next_gen, 2);
	ck_assert_uint_eq(st.n_gens, 1);
	ck_assert_str_eq(st.gens[0].sha256, "AB:01");
	ck_assert_str_eq(st.ari.sha256, "");
	ck_assert_int_eq(st.ari.next, 0);
	/* Saved again, it says nothing about ARI either. */
	ck_assert_int_eq(cs_state_save(tmp, "web", &st, err, sizeof(err)), 0);
	char *file = cs_test_path("%s/web.json", dir);
	char *text = cs_test_read(file, NULL);
	ck_assert_ptr_nonnull(text);
	free(file);
	ck_assert_ptr_null(strstr(text, "\"ari\""));
	free(text);
	free(dir);
	cs_state_clear(&st);
}
END_TEST

/* [agent] ari_interval: a duration, default 6h, at most 12h. */
START_TEST(test_ari_interval_key)
{
	static const struct {
		const char *line;
		int64_t want; /* -1: refused */
	} cases[] = {
		{ "", 6 * HOUR },
		{ "ari_interval = 1s\n", 1 },
		{ "ari_interval = 12h\n", 12 * HOUR },
		{ "ari_interval = 13h\n", -1 },
		{ "ari_interval = soon\n", -1 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cs_cfg_errors errs;
		char *text = cs_test_path("[agent]\nstate_dir = %s/state\n%s", tmp, cases[i].line);
		char *p = cs_test_write(tmp, "certsync.conf", text, 0644);
		struct cs_config *cfg = cs_config_load(p, &errs);
		if (cases[i].want < 0) {
			ck_assert_msg(cfg == NULL, "accepted: %s", cases[i].line);
			ck_assert_uint_gt(errs.n, 0);
			ck_assert_msg(strstr(errs.v[0], "ari_interval") != NULL, "%s", errs.v[0]);
		} else {
			ck_assert_msg(cfg != NULL, "refused: %s: %s", cases[i].line,
				      errs.n ? errs.v[0] : "");
			ck_assert_int_eq(cfg->agent.ari_interval, cases[i].want);
			cs_config_free(cfg);
		}
		cs_config_errors_free(&errs);
		free(p);
		free(text);
	}
}
END_TEST

/* ---- --once passes with a fake clock and a local CA that gives windows ---- */

static time_t clock_now(void *arg)
{
	(void)arg;
	return fake_now;
}

struct ari_req {
	uv_timer_t timer;
	cs_issuer_window_cb cb;
	void *arg;
};

static void ari_closed(uv_handle_t *h)
{
	free(h->data);
}

static void ari_fire(uv_timer_t *t)
{
	struct ari_req *r = t->data;
	struct cs_issuer_window w = { .start = fa.start, .end = fa.end,
				      .retry_after = fa.retry_after };

	snprintf(w.explanation, sizeof(w.explanation), "https://ca.example/ari");
	r->cb(r->arg, 0, &w, NULL);
	uv_close((uv_handle_t *)&r->timer, ari_closed);
}

/* Answers on a later loop turn, as an issuer must. */
static int fake_renewal_info(cs_issuer *is, const struct cs_der *leaf, cs_issuer_window_cb cb,
			     void *arg)
{
	struct ari_req *r = calloc(1, sizeof(*r));

	(void)leaf;
	ck_assert_ptr_nonnull(r);
	fa.asked++;
	r->cb = cb;
	r->arg = arg;
	r->timer.data = r;
	uv_timer_init(is->loop, &r->timer);
	uv_timer_start(&r->timer, ari_fire, 0, 0);
	return 0;
}

static struct cs_issuer_ops ari_ops;

/* The configured local CA, its operations copied with renewal_info added. */
static cs_issuer *issuer_new(void *arg, uv_loop_t *loop, const struct cs_cfg_issuer *ci,
			     const char *state_dir)
{
	cs_issuer *is = cs_registry_issuer_open(loop, ci, state_dir);

	(void)arg;
	ck_assert_ptr_nonnull(is);
	ari_ops = *is->ops;
	ari_ops.renewal_info = fake_renewal_info;
	is->ops = &ari_ops;
	return is;
}

struct pass {
	int done, failures, closed;
	time_t next_renewal;
	char reason[256];
	int next_gen;
};

static void on_done(void *arg, int failures)
{
	struct pass *p = arg;

	p->done++;
	p->failures = failures;
}

static void on_closed(void *arg)
{
	((struct pass *)arg)->closed++;
}

/* One --once pass at fake_now over the cert "web"; returns what it left. */
static struct pass run_once(const struct cs_config *cfg)
{
	struct cs_pipeline_drivers drv = { .now = clock_now, .issuer_new = issuer_new };
	struct pass p = { 0 };
	struct cs_cert_status cs;
	struct cs_state st;
	uv_loop_t loop;
	char err[512];

	uv_loop_init(&loop);
	struct cs_pipeline *pl = cs_pipeline_new_with(&loop, cfg, &drv, err, sizeof(err));
	ck_assert_msg(pl != NULL, "%s", err);
	ck_assert_int_eq(cs_pipeline_start(pl, true, on_done, &p), 0);
	while (p.done == 0 && uv_run(&loop, UV_RUN_ONCE))
		;
	ck_assert_int_eq(p.done, 1);
	ck_assert_int_eq(p.failures, 0);
	cs_pipeline_status(pl, 0, &cs);
	p.next_renewal = cs.next_renewal;
	snprintf(p.reason, sizeof(p.reason), "%s", cs.next_reason ? cs.next_reason : "");
	cs_pipeline_close(pl, on_closed, &p);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(p.closed, 1);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	char *sdir = cs_test_path("%s/state", tmp);
	ck_assert_int_eq(cs_state_load(sdir, "web", &st, err, sizeof(err)), 0);
	p.next_gen = st.next_gen;
	cs_state_clear(&st);
	free(sdir);
	return p;
}

static struct cs_state load_state(void)
{
	struct cs_state st;
	char err[512];
	char *sdir = cs_test_path("%s/state", tmp);

	ck_assert_int_eq(cs_state_load(sdir, "web", &st, err, sizeof(err)), 0);
	free(sdir);
	return st;
}

static struct cs_config *load_conf(void)
{
	struct cs_cfg_errors errs;
	char *text = cs_test_path("[agent]\nstate_dir = %s/state\n\n"
				  "[issuer \"ca\"]\ntype = local-ca\ndir = %s/ca\n\n"
				  "[cert \"web\"]\nissuer = ca\nnames = web.example.test\n"
				  "bundle = %s/web.pem\n",
				  tmp, tmp, tmp);
	char *p = cs_test_write(tmp, "certsync.conf", text, 0644);
	struct cs_config *cfg = cs_config_load(p, &errs);

	for (size_t i = 0; i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.v[i]);
	ck_assert_ptr_nonnull(cfg);
	free(p);
	free(text);
	return cfg;
}

START_TEST(test_ari_kept_across_passes)
{
	struct cs_config *cfg = load_conf();
	time_t t0 = fake_now;

	/* The first certificate; the question after the deploy: a window in 10 days,
	   Retry-After 3 days (bounded to 12 hours). */
	fa.start = t0 + 10 * DAY;
	fa.end = fa.start + DAY;
	fa.retry_after = 3 * DAY;
	struct pass p = run_once(cfg);
	ck_assert_int_eq(p.next_gen, 2);
	ck_assert_int_eq(fa.asked, 1);
	struct cs_state st = load_state();
	ck_assert_str_ne(st.ari.sha256, "");
	ck_assert_str_eq(st.ari.sha256, st.gens[0].sha256);
	ck_assert_int_eq(st.ari.start, fa.start);
	ck_assert_int_eq(st.ari.end, fa.end);
	ck_assert_int_eq(st.ari.next, t0 + 12 * HOUR);
	ck_assert_str_eq(st.ari.explanation, "https://ca.example/ari");
	cs_state_clear(&st);

	/* An hour later (a restart): the kept window is taken, nothing asked, nothing renewed. */
	fake_now = t0 + HOUR;
	fa.start = fake_now - 60; /* what the CA would say now: not asked */
	p = run_once(cfg);
	ck_assert_int_eq(fa.asked, 1);
	ck_assert_int_eq(p.next_gen, 2);
	ck_assert_int_ge(p.next_renewal, t0 + 10 * DAY);
	ck_assert_int_lt(p.next_renewal, t0 + 11 * DAY);
	ck_assert_msg(strstr(p.reason, "window") != NULL, "%s", p.reason);

	/* After the kept time: asked again; the window has begun, so --once renews. */
	fake_now = t0 + 13 * HOUR;
	fa.start = fake_now - 60;
	fa.end = fake_now + DAY;
	fa.retry_after = 0;
	p = run_once(cfg);
	ck_assert_int_ge(fa.asked, 2);
	ck_assert_int_eq(p.next_gen, 3);

	/*
	 * The new leaf is told the same window (the question after the deploy):
	 * it opened before this leaf was put in place, so it is not followed.
	 */
	st = load_state();
	ck_assert_str_eq(st.ari.sha256, st.gens[0].sha256);
	ck_assert_int_eq(st.ari.start, fa.start);
	ck_assert_int_eq(st.ari.next, fake_now + 6 * HOUR); /* ari_interval's default */
	cs_state_clear(&st);
	int asked = fa.asked;
	fake_now += 60;
	p = run_once(cfg);
	ck_assert_int_eq(p.next_gen, 3);
	ck_assert_int_eq(fa.asked, asked);
	ck_assert_msg(strstr(p.reason, "window") == NULL, "%s", p.reason);
	ck_assert_int_gt(p.next_renewal, fake_now + 30 * DAY);
	cs_config_free(cfg);
}
END_TEST

/* A window in the future: --once asks and renews nothing. */
START_TEST(test_ari_once_future_window)
{
	struct cs_config *cfg = load_conf();

	fa.start = fake_now + 20 * DAY;
	fa.end = fa.start + DAY;
	struct pass p = run_once(cfg);
	ck_assert_int_eq(p.next_gen, 2);
	fake_now += 7 * HOUR; /* past the kept time (6 hours) */
	int asked = fa.asked;
	p = run_once(cfg);
	ck_assert_int_eq(fa.asked, asked + 1);
	ck_assert_int_eq(p.next_gen, 2);
	ck_assert_int_ge(p.next_renewal, fa.start);
	cs_config_free(cfg);
}
END_TEST

Suite *ari_suite(void)
{
	Suite *s = suite_create("ari");
	TCase *tc = tcase_create("ari");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_ari_again_bounded);
	tcase_add_test(tc, test_ari_begun_window_due_now);
	tcase_add_test(tc, test_ari_state_round_trip);
	tcase_add_test(tc, test_ari_old_state_loads);
	tcase_add_test(tc, test_ari_interval_key);
	tcase_add_test(tc, test_ari_kept_across_passes);
	tcase_add_test(tc, test_ari_once_future_window);
	suite_add_tcase(s, tc);
	return s;
}
