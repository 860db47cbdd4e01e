/*
 * check_run - cs_run_start, the child process on the loop: its exit status,
 * its output kept in a bounded buffer (both streams, trailing white space
 * removed), the environment it is given, the deadline's SIGKILL, a signal
 * that ends it, a program that does not exist, cancellation, and a child
 * that leaves its pipe open behind it. The blocking cs_run is covered where
 * postmap and doveconf use it (check_snimap, check_clientmap).
 */
#include "cs_run.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct outcome {
	int calls;
	int status, term_signal;
	char out[256];
	size_t out_len;
	char err[256];
};

static void on_done(void *arg, const struct cs_run_result *res)
{
	struct outcome *o = arg;

	o->calls++;
	o->status = res->status;
	o->term_signal = res->term_signal;
	o->out_len = res->out_len;
	snprintf(o->out, sizeof(o->out), "%s", res->out);
	snprintf(o->err, sizeof(o->err), "%s", res->err);
}

/* Runs argv on a loop of its own; returns what the callback got. */
static struct outcome run(char *const argv[], char *const env[], int timeout_ms, size_t out_max,
			  uint64_t *elapsed_ms)
{
	struct outcome o = { 0 };
	struct cs_run_opts ro = {
		.argv = argv, .env = env, .timeout_ms = timeout_ms, .out_max = out_max
	};
	uv_loop_t loop;
	uint64_t t0 = uv_hrtime();

	uv_loop_init(&loop);
	ck_assert_int_eq(cs_run_start(&loop, &ro, on_done, &o, NULL), 0);
	ck_assert_int_eq(o.calls, 0); /* never from inside cs_run_start */
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	if (elapsed_ms != NULL)
		*elapsed_ms = (uv_hrtime() - t0) / 1000000;
	ck_assert_int_eq(o.calls, 1);
	return o;
}

START_TEST(test_run_status_and_output)
{
	char *const a[] = { "/bin/sh", "-c", "echo one; echo two >&2; printf 'three  \\n\\n'; exit 3",
			    NULL };
	struct outcome o = run(a, NULL, 10000, 256, NULL);

	ck_assert_int_eq(o.status, 3);
	ck_assert_int_eq(o.term_signal, 0);
	ck_assert_str_eq(o.out, "one\ntwo\nthree");
	ck_assert_uint_eq(o.out_len, strlen("one\ntwo\nthree"));

	char *const ok[] = { "/bin/true", NULL };
	o = run(ok, NULL, 10000, 256, NULL);
	ck_assert_int_eq(o.status, 0);
	ck_assert_str_eq(o.out, "");
}
END_TEST

START_TEST(test_run_output_bounded)
{
	/* 100,000 bytes from a child: 15 are kept, the rest read and dropped. */
	char *const a[] = { "/bin/sh", "-c", "yes abcdefgh | head -c 100000", NULL };
	struct outcome o = run(a, NULL, 10000, 16, NULL);

	ck_assert_int_eq(o.status, 0);
	ck_assert_str_eq(o.out, "abcdefgh\nabcdef");
}
END_TEST

START_TEST(test_run_environment)
{
	char *const a[] = { "/bin/sh", "-c", "printf '%s|%s' \"$CERTSYNC_X\" \"${HOME-unset}\"",
			    NULL };
	char *const env[] = { "CERTSYNC_X=it's me", "PATH=/usr/bin:/bin", NULL };
	struct outcome o = run(a, env, 10000, 256, NULL);

	ck_assert_int_eq(o.status, 0);
	ck_assert_str_eq(o.out, "it's me|unset");
}
END_TEST

START_TEST(test_run_deadline_kills)
{
	char *const a[] = { "/bin/sleep", "30", NULL };
	uint64_t ms;
	struct outcome o = run(a, NULL, 200, 256, &ms);

	ck_assert_int_eq(o.status, -ETIMEDOUT);
	ck_assert_int_eq(o.term_signal, SIGKILL);
	ck_assert_str_eq(o.err, "/bin/sleep: killed after 200 ms without an answer");
	ck_assert_uint_lt(ms, 5000); /* killed, not waited for */
}
END_TEST

START_TEST(test_run_killed_by_signal)
{
	char *const a[] = { "/bin/sh", "-c", "echo bye; kill -TERM $$", NULL };
	struct outcome o = run(a, NULL, 10000, 256, NULL);

	ck_assert_int_eq(o.status, -EINTR);
	ck_assert_int_eq(o.term_signal, SIGTERM);
	ck_assert_str_eq(o.out, "bye");
	ck_assert_str_eq(o.err, "/bin/sh: killed by signal 15");
}
END_TEST

START_TEST(test_run_missing_program)
{
	char *const a[] = { "/nonexistent/prog", "x", NULL };
	struct outcome o = { 0 };
	struct cs_run_opts ro = { .argv = a, .out_max = 256 };
	uv_loop_t loop;

	/* It does not start; the callback never runs and nothing is left open. */
	uv_loop_init(&loop);
	ck_assert_int_eq(cs_run_start(&loop, &ro, on_done, &o, NULL), -ENOENT);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(o.calls, 0);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(test_run_cancel)
{
	char *const a[] = { "/bin/sleep", "30", NULL };
	struct outcome o = { 0 };
	struct cs_run_opts ro = { .argv = a, .timeout_ms = 20000, .out_max = 256 };
	cs_run_job *job = NULL;
	uv_loop_t loop;
	uint64_t t0 = uv_hrtime();

	/* Cancelled: killed and reaped at once, and the callback never runs. */
	uv_loop_init(&loop);
	ck_assert_int_eq(cs_run_start(&loop, &ro, on_done, &o, &job), 0);
	ck_assert_ptr_nonnull(job);
	cs_run_cancel(job);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(o.calls, 0);
	ck_assert_uint_lt(uv_hrtime() - t0, 5000000000ULL);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(test_run_pipe_left_open)
{
	/*
	 * The child exits at once but leaves a process holding its output: the
	 * exit status comes back at the deadline with the output read so far,
	 * instead of never.
	 */
	char *const a[] = { "/bin/sh", "-c", "echo started; sleep 5 & exit 0", NULL };
	uint64_t ms;
	struct outcome o = run(a, NULL, 300, 256, &ms);

	ck_assert_int_eq(o.status, 0);
	ck_assert_str_eq(o.out, "started");
	ck_assert_uint_lt(ms, 5000);
}
END_TEST

Suite *run_suite(void)
{
	Suite *s = suite_create("run");
	TCase *tc = tcase_create("loop");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_run_status_and_output);
	tcase_add_test(tc, test_run_output_bounded);
	tcase_add_test(tc, test_run_environment);
	tcase_add_test(tc, test_run_deadline_kills);
	tcase_add_test(tc, test_run_killed_by_signal);
	tcase_add_test(tc, test_run_missing_program);
	tcase_add_test(tc, test_run_cancel);
	tcase_add_test(tc, test_run_pipe_left_open);
	suite_add_tcase(s, tc);
	return s;
}
