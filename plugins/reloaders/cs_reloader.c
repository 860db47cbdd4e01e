/*
 * cs_reloader - the built-in reloaders, each a short sequence of commands
 * run with cs_run_start (no shell) under a time limit:
 *   postfix  postfix -c DIR check; postfix -c DIR status (a Postfix that is
 *            not running is reported as such, not reloaded); postfix -c DIR
 *            reload. Postfix writes its fatal messages to syslog or
 *            maillog_file, and to stderr only when that is a terminal: its
 *            stderr is a pseudo-terminal here, so they reach the result.
 *   dovecot  doveconf -c FILE -n; doveadm -c FILE reload (or SIGHUP to the
 *            master named in pid_file)
 *   exec     the configured command, with CERTSYNC_* in the environment
 * Output of a failing command goes into the result message.
 */
#include "cs_reloader.h"
#include "cs_argv.h"
#include "cs_log.h"
#include "cs_run.h"

#include <errno.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STEPS 3
#define OUT_MAX 2048

enum kind { K_POSTFIX, K_DOVECOT, K_EXEC, K_BROKEN };

struct cmd_reloader {
	struct cs_reloader base;
	enum kind kind;
	char **steps[MAX_STEPS]; /* argv per step */
	int n_steps;
	int status_step;         /* postfix: the step that asks whether it runs; -1 none */
	char *pid_file;          /* dovecot: signal the master instead of doveadm */
	char *broken_msg;
	int64_t timeout_ms;
	/* the run in flight */
	bool busy;
	int step;
	bool has_ctx; /* env_* hold the caller's context, copied at reload() */
	char env_name[1024], env_files[4096], env_serial[1024];
	cs_reload_cb cb;
	void *cb_arg;
};

static void finish(struct cmd_reloader *r, int status, int not_running, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void finish(struct cmd_reloader *r, int status, int not_running, const char *fmt, ...)
{
	struct cs_reload_result res = { .status = status, .not_running = not_running };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(res.message, sizeof(res.message), fmt, ap);
	va_end(ap);
	r->busy = false;
	cs_reload_cb cb = r->cb;
	r->cb = NULL;
	cb(r->cb_arg, &res);
}

static void start_step(struct cmd_reloader *r);

static void step_done(void *arg, const struct cs_run_result *res)
{
	struct cmd_reloader *r = arg;
	char **argv = r->steps[r->step];
	const char *out = res->out;
	int has_out = res->out_len > 0;

	if (res->status == -ETIMEDOUT) {
		finish(r, -ETIMEDOUT, 0, "%s timed out after %lld s and was killed", argv[0],
		       (long long)(r->timeout_ms / 1000));
		return;
	}
	if (res->status == -EINTR) {
		finish(r, -EINTR, 0, "%s was killed by signal %d%s%s", argv[0], res->term_signal,
		       has_out ? ": " : "", out);
		return;
	}
	if (res->status != 0 && r->step == r->status_step) {
		/* `postfix status` fails only when no master runs: nothing to reload. */
		finish(r, 0, 1, "%s", has_out ? out : "postfix status: no master process");
		return;
	}
	if (res->status != 0) {
		int not_running = (r->kind == K_POSTFIX && strstr(out, "not running")) ||
				  (r->kind == K_DOVECOT &&
				   (strstr(out, "not running") || strstr(out, "connect(")));
		/* Postfix's steps are named by their verb: "postfix check". */
		const char *what = argv[1] ? argv[1] : "";
		if (r->kind == K_POSTFIX)
			for (char **a = argv; *a != NULL; a++)
				what = *a;
		finish(r, -EIO, not_running, "%s %s exited with status %d%s%s", argv[0], what,
		       res->status, has_out ? ": " : "", out);
		return;
	}
	r->step++;
	if (r->step < r->n_steps) {
		start_step(r);
		return;
	}
	finish(r, 0, 0, "%s%s%s", argv[0], has_out ? ": " : " ok", out);
}

static void start_step(struct cmd_reloader *r)
{
	char *env[8];
	int n = 0;
	int rc;

	env[n++] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	env[n++] = "LC_ALL=C";
	if (r->has_ctx) {
		env[n++] = r->env_name;
		env[n++] = r->env_files;
		env[n++] = r->env_serial;
	}
	env[n] = NULL;
	/*
	 * stdout and stderr both end up in the result message. Without a
	 * terminal Postfix's fatal messages would be lost (cs_run falls back to
	 * the pipe when it has none).
	 */
	struct cs_run_opts o = {
		.argv = r->steps[r->step],
		.env = env,
		.timeout_ms = (int)r->timeout_ms,
		.out_max = OUT_MAX,
		.stderr_tty = r->kind == K_POSTFIX,
	};
	rc = cs_run_start(r->base.loop, &o, step_done, r, NULL);
	if (rc < 0) {
		char msg[256];

		snprintf(msg, sizeof(msg), "cannot run: %s", uv_strerror(rc));
		struct cs_run_result res = { .status = 127, .out = msg, .out_len = strlen(msg) };
		step_done(r, &res);
	}
}

static int cmd_reload(cs_reloader *base, const struct cs_reload_ctx *ctx, cs_reload_cb cb,
		      void *arg)
{
	struct cmd_reloader *r = (struct cmd_reloader *)base;

	if (r->busy)
		return -EBUSY;
	r->cb = cb;
	r->cb_arg = arg;
	/* Copied now: the caller's context may be gone by the second step. */
	r->has_ctx = ctx != NULL;
	if (ctx != NULL) {
		snprintf(r->env_name, sizeof(r->env_name), "CERTSYNC_NAME=%s",
			 ctx->names ? ctx->names : "");
		snprintf(r->env_files, sizeof(r->env_files), "CERTSYNC_FILES=%s",
			 ctx->files ? ctx->files : "");
		snprintf(r->env_serial, sizeof(r->env_serial), "CERTSYNC_SERIAL=%s",
			 ctx->serial ? ctx->serial : "");
	}
	r->busy = true;
	r->step = 0;
	if (r->kind == K_BROKEN) {
		finish(r, -EINVAL, 0, "%s", r->broken_msg);
		return 0;
	}
	if (r->kind == K_DOVECOT && r->pid_file != NULL && r->n_steps == 1) {
		/* Validate with doveconf (step 0), then signal the master ourselves. */
		FILE *f = fopen(r->pid_file, "r");
		long pid = 0;
		if (f == NULL || fscanf(f, "%ld", &pid) != 1 || pid <= 1) {
			if (f)
				fclose(f);
			finish(r, -ESRCH, 1, "%s: no dovecot master pid", r->pid_file);
			return 0;
		}
		fclose(f);
		if (kill((pid_t)pid, SIGHUP) < 0) {
			finish(r, -errno, errno == ESRCH, "SIGHUP to dovecot pid %ld: %s", pid,
			       strerror(errno));
			return 0;
		}
		finish(r, 0, 0, "SIGHUP sent to dovecot master pid %ld", pid);
		return 0;
	}
	start_step(r);
	return 0;
}

static void cmd_close(cs_reloader *base)
{
	struct cmd_reloader *r = (struct cmd_reloader *)base;

	for (int i = 0; i < r->n_steps; i++)
		cs_argv_free(r->steps[i]);
	free(r->pid_file);
	free(r->broken_msg);
	free(r->base.name);
	free(r);
}

static const struct cs_reloader_ops ops_postfix = { "postfix", cmd_reload, cmd_close };
static const struct cs_reloader_ops ops_dovecot = { "dovecot", cmd_reload, cmd_close };
static const struct cs_reloader_ops ops_exec = { "exec", cmd_reload, cmd_close };
static const struct cs_reloader_ops ops_broken = { "broken", cmd_reload, cmd_close };

static struct cmd_reloader *new_cmd(uv_loop_t *loop, const char *name, enum kind kind,
				    const struct cs_reloader_ops *ops, int64_t timeout_s)
{
	struct cmd_reloader *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->base.ops = ops;
	r->base.loop = loop;
	r->base.name = strdup(name);
	r->kind = kind;
	r->status_step = kind == K_POSTFIX ? 1 : -1;
	r->timeout_ms = (timeout_s > 0 ? timeout_s : 60) * 1000;
	return r;
}

/* Adds a step from a printf-formatted command line. */
static int add_step(struct cmd_reloader *r, char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int add_step(struct cmd_reloader *r, char *err, size_t errlen, const char *fmt, ...)
{
	char line[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	r->steps[r->n_steps] = cs_argv_split(line, err, errlen);
	if (r->steps[r->n_steps] == NULL)
		return -EINVAL;
	r->n_steps++;
	return 0;
}

cs_reloader *cs_reloader_postfix_new(uv_loop_t *loop, const char *name, const char *config_dir,
				     int64_t timeout_s, char *err, size_t errlen)
{
	struct cmd_reloader *r = new_cmd(loop, name, K_POSTFIX, &ops_postfix, timeout_s);

	if (r == NULL)
		return NULL;
	if (add_step(r, err, errlen, "postfix -c '%s' check", config_dir) < 0 ||
	    add_step(r, err, errlen, "postfix -c '%s' status", config_dir) < 0 ||
	    add_step(r, err, errlen, "postfix -c '%s' reload", config_dir) < 0) {
		cmd_close(&r->base);
		return NULL;
	}
	return &r->base;
}

cs_reloader *cs_reloader_dovecot_new(uv_loop_t *loop, const char *name, const char *config,
				     const char *pid_file, int64_t timeout_s, char *err,
				     size_t errlen)
{
	struct cmd_reloader *r = new_cmd(loop, name, K_DOVECOT, &ops_dovecot, timeout_s);

	if (r == NULL)
		return NULL;
	if (add_step(r, err, errlen, "doveconf -c '%s' -n", config) < 0 ||
	    (pid_file == NULL && add_step(r, err, errlen, "doveadm -c '%s' reload", config) < 0)) {
		cmd_close(&r->base);
		return NULL;
	}
	if (pid_file != NULL)
		r->pid_file = strdup(pid_file);
	return &r->base;
}

cs_reloader *cs_reloader_exec_new(uv_loop_t *loop, const char *name, const char *command,
				  int64_t timeout_s, char *err, size_t errlen)
{
	struct cmd_reloader *r = new_cmd(loop, name, K_EXEC, &ops_exec, timeout_s);

	if (r == NULL)
		return NULL;
	r->steps[0] = cs_argv_split(command, err, errlen);
	if (r->steps[0] == NULL) {
		cmd_close(&r->base);
		return NULL;
	}
	r->n_steps = 1;
	return &r->base;
}

cs_reloader *cs_reloader_broken_new(uv_loop_t *loop, const char *name, const char *msg)
{
	struct cmd_reloader *r = new_cmd(loop, name, K_BROKEN, &ops_broken, 1);

	if (r == NULL)
		return NULL;
	r->broken_msg = strdup(msg);
	return &r->base;
}

void cs_reloader_close(cs_reloader *r)
{
	if (r != NULL)
		r->ops->close(r);
}
