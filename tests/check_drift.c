/*
 * check_drift - when the drift checks run (pl_drift.h): each interval within
 * +-10%, the first check after start soon and spread over the certs.
 */
#include "pl_drift.h"

#include <check.h>
#include <stdint.h>

/* Draws from one generator, as the pipeline does. */
static uint64_t draw(uint64_t *s)
{
	return pl_drift_random(s);
}

static const int64_t intervals[] = { 2, 60, 3600, 6 * 3600, 7 * 86400 };

START_TEST(test_drift_interval_jitter_bounds)
{
	int64_t iv = intervals[_i], lo = iv * 1000 * 9 / 10, hi = iv * 1000 * 11 / 10;
	int64_t seen_lo = INT64_MAX, seen_hi = 0;
	uint64_t s = 42;

	for (int k = 0; k < 20000; k++) {
		int64_t ms = pl_drift_next_ms(iv, draw(&s));
		ck_assert_int_ge(ms, lo);
		ck_assert_int_le(ms, hi);
		seen_lo = ms < seen_lo ? ms : seen_lo;
		seen_hi = ms > seen_hi ? ms : seen_hi;
	}
	/* Spread over the whole window, not bunched: 10,000 certs do not probe at once. */
	ck_assert_int_lt(seen_lo, lo + (hi - lo) / 20);
	ck_assert_int_gt(seen_hi, hi - (hi - lo) / 20);
	/* The extremes of the generator's range stay inside too. */
	ck_assert_int_ge(pl_drift_next_ms(iv, 0), lo);
	ck_assert_int_le(pl_drift_next_ms(iv, UINT64_MAX), hi);
}
END_TEST

/* Never less than a second, whatever the interval. */
START_TEST(test_drift_interval_floor)
{
	ck_assert_int_eq(pl_drift_next_ms(1, 0), 1000);
	ck_assert_int_ge(pl_drift_next_ms(1, UINT64_MAX), 1000);
	ck_assert_int_le(pl_drift_next_ms(1, UINT64_MAX), 1100);
}
END_TEST

/* The first check: between 30 s and 90 s after start, or one interval when that is sooner. */
START_TEST(test_drift_first_check)
{
	uint64_t s = 7;

	for (int k = 0; k < 20000; k++) {
		int64_t ms = pl_drift_first_ms(6 * 3600, 1, draw(&s));
		ck_assert_int_ge(ms, 30000);
		ck_assert_int_le(ms, 90000);
		ms = pl_drift_first_ms(2, 1, draw(&s));
		ck_assert_int_ge(ms, 1800);
		ck_assert_int_le(ms, 2200);
	}
}
END_TEST

/* 10,000 certs: the first checks are spread over 1,000 s, at most ten a second on average. */
START_TEST(test_drift_first_check_spread)
{
	enum { N = 10000 };
	static unsigned per_second[1100];
	uint64_t s = 99;
	int64_t max = 0;

	for (int k = 0; k < N; k++) {
		int64_t ms = pl_drift_first_ms(6 * 3600, N, draw(&s));
		ck_assert_int_ge(ms, 30000);
		ck_assert_int_le(ms, 30000 + N * 100);
		per_second[ms / 1000]++;
		max = ms > max ? ms : max;
	}
	ck_assert_int_gt(max, 30000 + N * 100 - 20000);
	for (size_t k = 0; k < sizeof(per_second) / sizeof(per_second[0]); k++)
		ck_assert_uint_le(per_second[k], 40);
}
END_TEST

Suite *drift_suite(void)
{
	Suite *s = suite_create("drift");
	TCase *tc = tcase_create("schedule");

	tcase_add_loop_test(tc, test_drift_interval_jitter_bounds, 0,
			    sizeof(intervals) / sizeof(intervals[0]));
	tcase_add_test(tc, test_drift_interval_floor);
	tcase_add_test(tc, test_drift_first_check);
	tcase_add_test(tc, test_drift_first_check_spread);
	suite_add_tcase(s, tc);
	return s;
}
