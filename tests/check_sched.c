/*
 * check_sched - renewal timing: the default shares, configured shares and
 * durations, jitter bounds, the ARI window, and the failure backoff.
 */
#include "cs_sched.h"

#include <check.h>
#include <math.h>
#include <string.h>

#define DAY 86400

static const struct cs_backoff defaults = { CS_SCHED_BACKOFF_MIN, CS_SCHED_BACKOFF_MAX };

static const struct {
	int64_t life;                 /* lifetime in seconds */
	int rb_set, rb_pct;           /* renew_before: set?, percent? */
	int own;                      /* set in the cert's own section */
	double rb_value;              /* percent or seconds */
	int64_t want_before;          /* seconds before notAfter, without jitter */
} policies[] = {
	{ 90 * DAY, 0, 0, 0, 0, (int64_t)(90 * DAY * 0.33) },  /* default 33% */
	{ 9 * DAY, 0, 0, 0, 0, (int64_t)(9 * DAY * 0.5) },     /* short-lived: 50% */
	{ 120, 0, 0, 0, 0, 60 },                              /* 2 minutes: 50% */
	{ 90 * DAY, 1, 1, 0, 10.0, 9 * DAY },                 /* renew_before = 10% */
	{ 90 * DAY, 1, 0, 0, 30.0 * DAY, 30 * DAY },          /* renew_before = 30d */
	{ 7 * DAY, 1, 0, 1, 30.0 * DAY, (int64_t)(3.5 * DAY) }, /* duration > life: half */
	/* [agent] renew_before = 33% (as shipped) leaves the short-lived rule alone */
	{ 6 * DAY, 1, 1, 0, 33.0, 3 * DAY },
	{ 6 * DAY, 1, 0, 0, 1.0 * DAY, 3 * DAY },             /* [agent] 1d: still half */
	/* the cert's own renew_before wins */
	{ 6 * DAY, 1, 1, 1, 33.0, (int64_t)llround(6 * DAY * 0.33) },
	{ 6 * DAY, 1, 0, 1, 1.0 * DAY, 1 * DAY },
};

START_TEST(test_sched_policy)
{
	const time_t nb = 1700000000;
	struct cs_sched_in in = {
		.now = nb,
		.not_before = nb,
		.not_after = nb + policies[_i].life,
		.jitter = { .set = true, .is_percent = true, .percent = 0 },
		.seed = 42,
	};
	const char *reason = NULL;

	if (policies[_i].rb_set) {
		in.renew_before.set = true;
		in.renew_before_own = policies[_i].own;
		in.renew_before.is_percent = policies[_i].rb_pct;
		if (policies[_i].rb_pct)
			in.renew_before.percent = policies[_i].rb_value;
		else
			in.renew_before.seconds = (int64_t)policies[_i].rb_value;
	}
	time_t due = cs_sched_due(&in, &reason);
	ck_assert_int_eq(in.not_after - due, policies[_i].want_before);
	ck_assert_ptr_nonnull(reason);
}
END_TEST

/* Jitter renews earlier, by at most the configured share, differently per seed. */
START_TEST(test_sched_jitter)
{
	const time_t nb = 1700000000;
	struct cs_sched_in in = {
		.not_before = nb,
		.not_after = nb + 90 * DAY,
		.jitter = { .set = true, .is_percent = true, .percent = 5.0 },
	};
	const char *reason;
	time_t base = in.not_after - (time_t)(90 * DAY * 0.33);
	time_t first = 0;
	int distinct = 0;

	for (uint64_t seed = 1; seed <= 200; seed++) {
		in.seed = cs_sched_seed(&seed, sizeof(seed));
		time_t due = cs_sched_due(&in, &reason);
		ck_assert_int_le(due, base);
		ck_assert_int_ge(due, base - (time_t)(90 * DAY * 0.05));
		if (first == 0)
			first = due;
		else if (due != first)
			distinct++;
		/* The same seed always gives the same moment: restarts do not move it. */
		ck_assert_int_eq(cs_sched_due(&in, &reason), due);
	}
	ck_assert_int_gt(distinct, 150);
}
END_TEST

START_TEST(test_sched_ari_window)
{
	struct cs_sched_in in = {
		.not_before = 1000,
		.not_after = 1000 + 90 * DAY,
		.has_window = true,
		.window_start = 1000 + 60 * DAY,
		.window_end = 1000 + 61 * DAY,
	};
	const char *reason;

	for (uint64_t seed = 0; seed < 100; seed++) {
		in.seed = seed * 7919;
		time_t due = cs_sched_due(&in, &reason);
		ck_assert_int_ge(due, in.window_start);
		ck_assert_int_lt(due, in.window_end);
	}
	ck_assert_ptr_nonnull(strstr(reason, "ARI"));
}
END_TEST

START_TEST(test_sched_backoff_grows_to_cap)
{
	const time_t now = 1700000000;
	int64_t prev = 0;

	for (int f = 1; f <= 20; f++) {
		int64_t d = cs_sched_backoff(&defaults, f, now, now + 60 * DAY, 0, 99);
		ck_assert_int_ge(d, CS_SCHED_BACKOFF_MIN);
		ck_assert_int_le(d, CS_SCHED_BACKOFF_MAX);
		if (f <= 8)
			ck_assert_msg(d > prev, "failure %d: %lld not above %lld", f, (long long)d,
				      (long long)prev);
		prev = d;
	}
	ck_assert_int_ge(prev, CS_SCHED_BACKOFF_MAX * 8 / 10);
	ck_assert_int_eq(cs_sched_backoff(&defaults, 1, now, 0, 0, 1) >= 60, 1);
}
END_TEST

START_TEST(test_sched_backoff_near_expiry_and_retry_after)
{
	const time_t now = 1700000000;

	/* Two hours left: no retry may wait longer than half an hour. */
	ck_assert_int_le(cs_sched_backoff(&defaults, 10, now, now + 7200, 0, 5), 1800);
	/* Already expired (or nothing deployed): at most five minutes between attempts. */
	ck_assert_int_le(cs_sched_backoff(&defaults, 12, now, now - 10, 0, 5), CS_SCHED_EXPIRED_CAP);
	ck_assert_int_ge(cs_sched_backoff(&defaults, 12, now, now - 10, 0, 5), CS_SCHED_EXPIRED_CAP * 8 / 10);
	ck_assert_int_le(cs_sched_backoff(&defaults, 30, now, 0, 0, 5), CS_SCHED_EXPIRED_CAP);
	/* ... but the issuer's Retry-After still wins: no storm against a CA. */
	ck_assert_int_eq(cs_sched_backoff(&defaults, 12, now, now - 10, 3600, 5), 3600);
	/* The server's Retry-After wins over a shorter delay. */
	ck_assert_int_eq(cs_sched_backoff(&defaults, 1, now, now + 60 * DAY, 900, 5), 900);
	/* Never under a minute, even with seconds to live. */
	ck_assert_int_eq(cs_sched_backoff(&defaults, 3, now, now + 30, 0, 5), 60);
}
END_TEST

/* A configured retry_min/retry_max (here 1 s to 8 s) bounds the same curve. */
START_TEST(test_sched_backoff_configured)
{
	const struct cs_backoff fast = { 1, 8 };
	const time_t now = 1700000000;

	ck_assert_int_eq(cs_sched_backoff(&fast, 1, now, 0, 0, 7), 1);
	ck_assert_int_ge(cs_sched_backoff(&fast, 3, now, 0, 0, 7), 3);
	ck_assert_int_le(cs_sched_backoff(&fast, 3, now, 0, 0, 7), 4);
	ck_assert_int_le(cs_sched_backoff(&fast, 30, now, 0, 0, 7), 8);
	ck_assert_int_ge(cs_sched_backoff(&fast, 30, now, 0, 0, 7), 6);
}
END_TEST

Suite *sched_suite(void)
{
	Suite *s = suite_create("sched");
	TCase *tc = tcase_create("sched");

	tcase_add_loop_test(tc, test_sched_policy, 0, sizeof(policies) / sizeof(policies[0]));
	tcase_add_test(tc, test_sched_jitter);
	tcase_add_test(tc, test_sched_ari_window);
	tcase_add_test(tc, test_sched_backoff_grows_to_cap);
	tcase_add_test(tc, test_sched_backoff_near_expiry_and_retry_after);
	tcase_add_test(tc, test_sched_backoff_configured);
	suite_add_tcase(s, tc);
	return s;
}
