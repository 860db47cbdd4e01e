/*
 * check_reload - the reloaders as the pipeline drives them, one reload on a
 * real libuv loop each: the exec reloader's argv (quoting without a shell),
 * environment, exit status, output and timeout; plugins loaded through the
 * ABI header, and refused with a clear message when missing, of another ABI
 * version, without an entry point or refusing their arguments. Postfix and
 * Dovecot themselves are driven in tests/integration/reload_servers.sh.
 */
#include "cs_argv.h"
#include "cs_reloader.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	const char *cmd;
	const char *argv; /* words joined by '|', or NULL for an error */
} split_cases[] = {
	{ "systemctl reload nginx", "systemctl|reload|nginx" },
	{ "  a   b\tc  ", "a|b|c" },
	{ "/usr/bin/x 'one arg with spaces' two", "/usr/bin/x|one arg with spaces|two" },
	{ "x \"double \\\"quoted\\\" \\\\ arg\"", "x|double \"quoted\" \\ arg" },
	{ "x 'it''s' \"\"", "x|its|" },
	{ "x 'no $HOME or * expansion'", "x|no $HOME or * expansion" },
	{ "x 'unterminated", NULL },
	{ "x \"unterminated", NULL },
	{ "   ", NULL },
};

START_TEST(test_reload_argv_split)
{
	char err[256] = "", joined[512] = "";
	char **v = cs_argv_split(split_cases[_i].cmd, err, sizeof(err));

	if (split_cases[_i].argv == NULL) {
		ck_assert_ptr_null(v);
		ck_assert_msg(err[0] != '\0', "no message for '%s'", split_cases[_i].cmd);
		return;
	}
	ck_assert_ptr_nonnull(v);
	for (size_t i = 0, off = 0; v[i] != NULL; i++)
		off += (size_t)snprintf(joined + off, sizeof(joined) - off, "%s%s", i ? "|" : "",
					v[i]);
	ck_assert_str_eq(joined, split_cases[_i].argv);
	cs_argv_free(v);
}
END_TEST

struct outcome {
	bool done;
	struct cs_reload_result res;
};

static void on_done(void *arg, const struct cs_reload_result *res)
{
	struct outcome *o = arg;

	o->done = true;
	o->res = *res;
}

/* Runs one reload of r on loop to its callback; returns the result. */
static struct cs_reload_result run_one(uv_loop_t *loop, cs_reloader *r,
				       const struct cs_reload_ctx *ctx)
{
	struct outcome o = { 0 };

	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->ops->reload(r, ctx, on_done, &o), 0);
	while (!o.done)
		uv_run(loop, UV_RUN_ONCE);
	return o.res;
}

static const struct cs_reload_ctx ctx = {
	.names = "mail imap",
	.files = "/etc/postfix/mail.pem /etc/dovecot/imap.pem",
	.serial = "0A1B 0C2D",
};

START_TEST(test_reload_exec_argv_and_env)
{
	uv_loop_t loop;
	char err[256], *cmd, *out;
	size_t len;

	uv_loop_init(&loop);
	ck_assert_int_ge(asprintf(&cmd,
				  "/bin/sh -c 'printf \"[%%s] [%%s] [%%s] [%%s] [%%s]\" \"$1\" \"$2\" "
				  "\"$CERTSYNC_NAME\" \"$CERTSYNC_FILES\" \"$CERTSYNC_SERIAL\" "
				  ">%s/out' sh \"first arg\" 'it'\\''s $HOME'",
				  cs_test_tmp),
			 0);
	cs_reloader *r = cs_reloader_exec_new(&loop, "hook", cmd, 10, err, sizeof(err));
	struct cs_reload_result res = run_one(&loop, r, &ctx);

	ck_assert_msg(res.status == 0, "status %d: %s", res.status, res.message);
	free(cmd);
	ck_assert_int_ge(asprintf(&cmd, "%s/out", cs_test_tmp), 0);
	out = cs_test_read(cmd, &len);
	ck_assert_ptr_nonnull(out);
	ck_assert_str_eq(out, "[first arg] [it's $HOME] [mail imap] "
			      "[/etc/postfix/mail.pem /etc/dovecot/imap.pem] [0A1B 0C2D]");
	free(out);
	free(cmd);
	cs_reloader_close(r);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(test_reload_exec_failure_reported)
{
	uv_loop_t loop;
	char err[256];

	uv_loop_init(&loop);
	cs_reloader *r = cs_reloader_exec_new(
		&loop, "hook", "/bin/sh -c 'echo \"config error on line 3\" >&2; exit 3'", 10, err,
		sizeof(err));
	struct cs_reload_result res = run_one(&loop, r, &ctx);

	ck_assert_int_eq(res.status, -EIO);
	ck_assert_int_eq(res.not_running, 0);
	ck_assert_str_eq(res.message, "/bin/sh -c exited with status 3: config error on line 3");

	/* The same reloader works again after a failure. */
	cs_reloader_close(r);
	r = cs_reloader_exec_new(&loop, "hook", "/nonexistent/reload-me", 10, err, sizeof(err));
	res = run_one(&loop, r, &ctx);
	ck_assert_int_lt(res.status, 0);
	ck_assert_msg(strstr(res.message, "cannot run: no such file or directory") != NULL,
		      "got %s", res.message);
	cs_reloader_close(r);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(test_reload_exec_timeout)
{
	uv_loop_t loop;
	char err[256];

	uv_loop_init(&loop);
	cs_reloader *r = cs_reloader_exec_new(&loop, "slow", "/bin/sleep 30", 1, err, sizeof(err));
	uint64_t t0 = uv_hrtime();
	struct cs_reload_result res = run_one(&loop, r, &ctx);

	ck_assert_int_eq(res.status, -ETIMEDOUT);
	ck_assert_str_eq(res.message, "/bin/sleep timed out after 1 s and was killed");
	ck_assert_uint_lt(uv_hrtime() - t0, 10ULL * 1000000000ULL); /* killed, not waited for */
	cs_reloader_close(r);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(test_reload_exec_bad_command)
{
	char err[256] = "";

	ck_assert_ptr_null(cs_reloader_exec_new(uv_default_loop(), "x", "run 'oops", 10, err,
						 sizeof(err)));
	ck_assert_str_eq(err, "unterminated ' in: run 'oops");
}
END_TEST

static char *plugin_dir(void)
{
	char *d = cs_test_build_path("tests/plugins");

	ck_assert_ptr_nonnull(d);
	return d;
}

START_TEST(test_reload_plugin_loaded)
{
	uv_loop_t loop;
	char err[512], *dir = plugin_dir(), *args, *out;
	size_t len;

	uv_loop_init(&loop);
	ck_assert_int_ge(asprintf(&args, "write %s/calls", cs_test_tmp), 0);
	cs_reloader *r = cs_reloader_plugin_new(&loop, "custom", dir, "test_reloader_good.so",
						args, 10, err, sizeof(err));
	ck_assert_msg(r != NULL, "%s", err);
	struct cs_reload_result res = run_one(&loop, r, &ctx);
	ck_assert_msg(res.status == 0, "%d %s", res.status, res.message);
	res = run_one(&loop, r, &ctx);
	ck_assert_int_eq(res.status, 0);
	free(args);
	ck_assert_int_ge(asprintf(&args, "%s/calls", cs_test_tmp), 0);
	out = cs_test_read(args, &len);
	ck_assert_str_eq(out, "names=mail imap files=/etc/postfix/mail.pem /etc/dovecot/imap.pem "
			      "serial=0A1B 0C2D\n"
			      "names=mail imap files=/etc/postfix/mail.pem /etc/dovecot/imap.pem "
			      "serial=0A1B 0C2D\n");
	free(out);
	free(args);
	cs_reloader_close(r);

	/* A failing plugin: its status and message reach the caller. */
	r = cs_reloader_plugin_new(&loop, "custom", dir, "test_reloader_good.so", "fail", 10, err,
				   sizeof(err));
	res = run_one(&loop, r, &ctx);
	ck_assert_int_eq(res.status, -EIO);
	ck_assert_str_eq(res.message, "the service said no");
	cs_reloader_close(r);

	/* A plugin that blocks past its timeout is reported; the loop is not held. */
	r = cs_reloader_plugin_new(&loop, "custom", dir, "test_reloader_good.so", "sleep 3", 1,
				   err, sizeof(err));
	res = run_one(&loop, r, &ctx);
	ck_assert_int_eq(res.status, -ETIMEDOUT);
	ck_assert_str_eq(res.message, "the plugin did not return within 1 s");
	cs_reloader_close(r);
	uv_run(&loop, UV_RUN_DEFAULT); /* the late worker finishes */
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	free(dir);
}
END_TEST

static const struct {
	const char *file, *args, *msg;
} bad_plugins[] = {
	{ "missing.so", "", "missing.so cannot be loaded: " },
	{ "test_reloader_badabi.so", "",
	  "test_reloader_badabi.so was built for reloader ABI version 99; this certsyncd has "
	  "version 1" },
	{ "test_reloader_noentry.so", "",
	  "test_reloader_noentry.so has no certsync_reloader_plugin() entry point" },
	{ "test_reloader_good.so", "refuse",
	  "test_reloader_good.so refused [reload \"custom\"]: args 'refuse' given to custom" },
	{ "../plugins/test_reloader_good.so", "", "give a file name in plugin_dir" },
};

START_TEST(test_reload_plugin_refused)
{
	char err[512] = "", *dir = plugin_dir();

	ck_assert_ptr_null(cs_reloader_plugin_new(uv_default_loop(), "custom", dir,
						  bad_plugins[_i].file, bad_plugins[_i].args, 10,
						  err, sizeof(err)));
	ck_assert_msg(strstr(err, bad_plugins[_i].msg) != NULL, "got: %s", err);

	/* The surrogate that stands in reports the reason on every reload. */
	uv_loop_t loop;
	uv_loop_init(&loop);
	cs_reloader *b = cs_reloader_broken_new(&loop, "custom", err);
	struct cs_reload_result res = run_one(&loop, b, &ctx);
	ck_assert_int_lt(res.status, 0);
	ck_assert_str_eq(res.message, err);
	cs_reloader_close(b);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	free(dir);
}
END_TEST

Suite *reload_suite(void)
{
	Suite *s = suite_create("reload");
	TCase *tc = tcase_create("reloaders");

	tcase_add_checked_fixture(tc, cs_test_tmp_setup, cs_test_tmp_teardown);
	tcase_set_timeout(tc, 60);
	cs_test_add_loop(tc, test_reload_argv_split, split_cases);
	tcase_add_test(tc, test_reload_exec_argv_and_env);
	tcase_add_test(tc, test_reload_exec_failure_reported);
	tcase_add_test(tc, test_reload_exec_timeout);
	tcase_add_test(tc, test_reload_exec_bad_command);
	tcase_add_test(tc, test_reload_plugin_loaded);
	cs_test_add_loop(tc, test_reload_plugin_refused, bad_plugins);
	suite_add_tcase(s, tc);
	return s;
}
