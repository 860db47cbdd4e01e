/*
 * check_failover - the failover rule (cs_sched_failover, certsync.conf(5)
 * failover_after): from the failures in a row on one issuer, the time left
 * and the lifetime to "stay" or "move on to the next issuer", at chosen
 * moments (the function reads no clock); and the state keeping a failing
 * renewal's place in the list and the deployed certificate's fallback
 * across restarts, a state written before failover reading as none.
 */
#include "cs_sched.h"
#include "cs_state.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

#define DAY 86400

/* A 90-day certificate due at 60 days (a third left), failing since then. */
static const time_t nb = 1700000000;
#define NA (nb + 90 * DAY)
#define DUE (nb + 60 * DAY)

static struct cs_failover_in at(time_t now, int failures, int64_t retry_after)
{
	return (struct cs_failover_in){
		.failures = failures,
		.after = 3,
		.now = now,
		.renew_at = DUE,
		.not_after = NA,
		.retry_after = retry_after,
	};
}

START_TEST(test_failover_count)
{
	struct cs_failover_in in = at(DUE + 3600, 1, 0);

	/* Time enough: one and two failures stay, the third moves on. */
	ck_assert_int_eq(cs_sched_failover(&in), CS_FAILOVER_STAY);
	in.failures = 2;
	ck_assert_int_eq(cs_sched_failover(&in), CS_FAILOVER_STAY);
	in.failures = 3;
	ck_assert_int_eq(cs_sched_failover(&in), CS_FAILOVER_FAILURES);
	in.failures = 7;
	ck_assert_int_eq(cs_sched_failover(&in), CS_FAILOVER_FAILURES);
	/* failover_after = 1: the first failure moves on. */
	in.failures = 1;
	in.after = 1;
	ck_assert_int_eq(cs_sched_failover(&in), CS_FAILOVER_FAILURES);
	/* 0 (a hand-made configuration): never by count. */
	in.failures = 50;
	in.after = 0;
	ck_assert_int_eq(cs_sched_failover(&in), CS_FAILOVER_STAY);
}
END_TEST

START_TEST(test_failover_time_left)
{
	/* 30 days from the due moment to expiry: a third is 10 days. */
	struct cs_failover_in in = at(NA - 10 * DAY - 60, 1, 0);

	ck_assert_int_eq(cs_sched_failover(&in), CS_FAILOVER_STAY);
	in.now = NA - 10 * DAY;
	ck_assert_int_eq(cs_sched_failover(&in), CS_FAILOVER_TIME_LEFT);
	in.now = NA - 3600;
	ck_assert_int_eq(cs_sched_failover(&in), CS_FAILOVER_TIME_LEFT);
	/* Whichever comes first: the count before the time. */
	in.now = DUE + 60;
	in.failures = 3;
	ck_assert_int_eq(cs_sched_failover(&in), CS_FAILOVER_FAILURES);
	/* A 6-day certificate due at half its life: a third of 3 days is 1 day. */
	in = (struct cs_failover_in){ .failures = 1, .after = 3, .renew_at = nb + 3 * DAY,
				      .not_after = nb + 6 * DAY, .now = nb + 5 * DAY - 60 };
	ck_assert_int_eq(cs_sched_failover(&in), CS_FAILOVER_STAY);
	in.now = nb + 5 * DAY;
	ck_assert_int_eq(cs_sched_failover(&in), CS_FAILOVER_TIME_LEFT);
}
END_TEST

START_TEST(test_failover_nothing_valid)
{
	struct cs_failover_in in = at(NA, 1, 0);

	/* Expired, or nothing deployed at all: no reason to wait. */
	ck_assert_int_eq(cs_sched_failover(&in), CS_FAILOVER_NOTHING_VALID);
	in.now = NA + DAY;
	ck_assert_int_eq(cs_sched_failover(&in), CS_FAILOVER_NOTHING_VALID);
	in = at(DUE + 60, 1, 0);
	in.not_after = 0;
	in.renew_at = 0;
	ck_assert_int_eq(cs_sched_failover(&in), CS_FAILOVER_NOTHING_VALID);
}
END_TEST

START_TEST(test_failover_retry_after)
{
	/* Ten days to the point where a third is left. */
	struct cs_failover_in in = at(DUE + 10 * DAY, 1, 3600);

	ck_assert_int_eq(cs_sched_failover(&in), CS_FAILOVER_STAY);
	in.retry_after = 10 * DAY;
	ck_assert_int_eq(cs_sched_failover(&in), CS_FAILOVER_STAY);
	in.retry_after = 10 * DAY + 1;
	ck_assert_int_eq(cs_sched_failover(&in), CS_FAILOVER_RETRY_AFTER);
	/* An hour before that point, a Retry-After of one hour and a second. */
	in.now = NA - 10 * DAY - 3600;
	in.retry_after = 3601;
	ck_assert_int_eq(cs_sched_failover(&in), CS_FAILOVER_RETRY_AFTER);
	in.retry_after = 3600;
	ck_assert_int_eq(cs_sched_failover(&in), CS_FAILOVER_STAY);
}
END_TEST

START_TEST(test_failover_renew_at_unknown)
{
	/* No renewal moment recorded (or a later one): the span starts now. */
	struct cs_failover_in in = at(DUE, 1, 0);

	in.renew_at = 0;
	ck_assert_int_eq(cs_sched_failover(&in), CS_FAILOVER_STAY);
	in.renew_at = NA + DAY;
	ck_assert_int_eq(cs_sched_failover(&in), CS_FAILOVER_STAY);
	ck_assert_str_eq(cs_sched_failover_name(CS_FAILOVER_STAY), "");
	ck_assert_str_eq(cs_sched_failover_name(CS_FAILOVER_NOTHING_VALID),
			 "nothing valid is deployed");
}
END_TEST

START_TEST(test_failover_state)
{
	struct cs_state st = { .next_gen = 1 }, back = { 0 };
	char err[512];

	snprintf(st.issuer, sizeof(st.issuer), "ca2");
	snprintf(st.fallback, sizeof(st.fallback), "issuer ca1 failed (3 failures in a row): refused");
	st.fallbacks = 4;
	st.issuer_idx = 1;
	st.issuer_failures = 2;
	st.renew_at = nb;
	snprintf(st.failover_why, sizeof(st.failover_why), "issuer ca1 failed");
	ck_assert_int_eq(cs_state_save(cs_test_tmp, "web", &st, err, sizeof(err)), 0);
	ck_assert_int_eq(cs_state_load(cs_test_tmp, "web", &back, err, sizeof(err)), 0);
	ck_assert_str_eq(back.issuer, "ca2");
	ck_assert_str_eq(back.fallback, st.fallback);
	ck_assert_uint_eq(back.fallbacks, 4);
	ck_assert_int_eq(back.issuer_idx, 1);
	ck_assert_int_eq(back.issuer_failures, 2);
	ck_assert_int_eq(back.renew_at, nb);
	ck_assert_str_eq(back.failover_why, "issuer ca1 failed");
	cs_state_clear(&back);

	/* A state of an agent without failover: the first issuer, nothing failing. */
	free(cs_test_write(cs_test_tmp, "certs/old.json",
			   "{\"last_attempt\": 1, \"failures\": 0, \"next_generation\": 2, "
			   "\"issuer\": \"ca1\"}\n",
			   0600));
	ck_assert_int_eq(cs_state_load(cs_test_tmp, "old", &back, err, sizeof(err)), 0);
	ck_assert_str_eq(back.issuer, "ca1");
	ck_assert_str_eq(back.fallback, "");
	ck_assert_uint_eq(back.fallbacks, 0);
	ck_assert_int_eq(back.issuer_idx, 0);
	ck_assert_int_eq(back.issuer_failures, 0);
	ck_assert_int_eq(back.renew_at, 0);
	cs_state_clear(&back);
}
END_TEST

Suite *failover_suite(void)
{
	Suite *s = suite_create("failover");
	TCase *tc = tcase_create("failover");

	tcase_add_test(tc, test_failover_count);
	tcase_add_test(tc, test_failover_time_left);
	tcase_add_test(tc, test_failover_nothing_valid);
	tcase_add_test(tc, test_failover_retry_after);
	tcase_add_test(tc, test_failover_renew_at_unknown);
	tcase_add_checked_fixture(tc, cs_test_tmp_setup, cs_test_tmp_teardown);
	tcase_add_test(tc, test_failover_state);
	suite_add_tcase(s, tc);
	return s;
}
