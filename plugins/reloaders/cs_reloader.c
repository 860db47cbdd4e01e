/*
 * cs_reloader - the built-in reloaders, each a short sequence of commands
 * run with uv_spawn (no shell) under a time limit:
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

#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
	uv_process_t proc;
	uv_pipe_t out, err;
	bool err_is_pty;         /* err reads the master side of the child's stderr */
	uv_timer_t timer;
	int open_handles;
	bool timed_out;
	int64_t exit_status;
	int term_signal;
	char output[OUT_MAX];
	size_t out_len;
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

static void step_done(struct cmd_reloader *r)
{
	char **argv = r->steps[r->step];

	/* Drop the trailing newline so that messages read as one line. */
	while (r->out_len > 0 && (r->output[r->out_len - 1] == '\n'))
		r->out_len--;
	r->output[r->out_len] = '\0';
	if (r->timed_out) {
		finish(r, -ETIMEDOUT, 0, "%s timed out after %lld s and was killed", argv[0],
		       (long long)(r->timeout_ms / 1000));
		return;
	}
	if (r->term_signal != 0) {
		finish(r, -EINTR, 0, "%s was killed by signal %d%s%s", argv[0], r->term_signal,
		       r->out_len ? ": " : "", r->output);
		return;
	}
	if (r->exit_status != 0 && r->step == r->status_step) {
		/* `postfix status` fails only when no master runs: nothing to reload. */
		finish(r, 0, 1, "%s", r->out_len ? r->output : "postfix status: no master process");
		return;
	}
	if (r->exit_status != 0) {
		int not_running = (r->kind == K_POSTFIX && strstr(r->output, "not running")) ||
				  (r->kind == K_DOVECOT && (strstr(r->output, "not running") ||
							    strstr(r->output, "connect(")));
		/* Postfix's steps are named by their verb: "postfix check". */
		const char *what = argv[1] ? argv[1] : "";
		if (r->kind == K_POSTFIX)
			for (char **a = argv; *a != NULL; a++)
				what = *a;
		finish(r, -EIO, not_running, "%s %s exited with status %lld%s%s", argv[0], what,
		       (long long)r->exit_status, r->out_len ? ": " : "", r->output);
		return;
	}
	r->step++;
	if (r->step < r->n_steps) {
		start_step(r);
		return;
	}
	finish(r, 0, 0, "%s%s%s", argv[0], r->out_len ? ": " : " ok", r->output);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void on_handle_closed(uv_handle_t *h)
{
	struct cmd_reloader *r = h->data;

	if (--r->open_handles == 0)
		step_done(r);
}

static void on_proc_exit(uv_process_t *p, int64_t status, int sig)
{
	struct cmd_reloader *r = p->data;

	r->exit_status = status;
	r->term_signal = sig;
	if (r->err_is_pty && !uv_is_closing((uv_handle_t *)&r->err)) {
		/*
		 * What the child wrote is in the terminal's buffer; a process it left
		 * behind could keep the terminal open for ever, so read what is there
		 * now and close it instead of waiting for the end of file.
		 */
		uv_os_fd_t fd;
		char buf[512];
		ssize_t n;

		if (uv_fileno((uv_handle_t *)&r->err, &fd) == 0)
			while ((n = read(fd, buf, sizeof(buf))) > 0) {
				uv_buf_t b = uv_buf_init(buf, (unsigned)n);
				on_read((uv_stream_t *)&r->err, n, &b);
			}
		uv_close((uv_handle_t *)&r->err, on_handle_closed);
	}
	uv_timer_stop(&r->timer);
	uv_close((uv_handle_t *)&r->timer, on_handle_closed);
	uv_close((uv_handle_t *)p, on_handle_closed);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	static char scratch[512];
	(void)h;
	(void)hint;
	*buf = uv_buf_init(scratch, sizeof(scratch));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct cmd_reloader *r = s->data;

	if (n > 0) {
		for (ssize_t i = 0; i < n && r->out_len < OUT_MAX - 1; i++)
			/* A terminal ends lines with CR LF: keep the LF only. */
			if (buf->base[i] != '\r')
				r->output[r->out_len++] = buf->base[i];
		return;
	}
	/* EIO on a terminal's master: the child side is closed (its end of file). */
	if (n < 0 && !uv_is_closing((uv_handle_t *)s))
		uv_close((uv_handle_t *)s, on_handle_closed);
}

static void on_timeout(uv_timer_t *t)
{
	struct cmd_reloader *r = t->data;

	r->timed_out = true;
	uv_process_kill(&r->proc, SIGKILL);
}

static void start_step(struct cmd_reloader *r)
{
	char **argv = r->steps[r->step];
	char *env[8];
	int n = 0;
	int rc;

	r->out_len = 0;
	r->timed_out = false;
	r->exit_status = 0;
	r->term_signal = 0;
	env[n++] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	env[n++] = "LC_ALL=C";
	if (r->has_ctx) {
		env[n++] = r->env_name;
		env[n++] = r->env_files;
		env[n++] = r->env_serial;
	}
	env[n] = NULL;

	uv_pipe_init(r->base.loop, &r->out, 0);
	uv_pipe_init(r->base.loop, &r->err, 0);
	r->out.data = r;
	r->err.data = r;
	/* stdout and stderr both end up in the result message. */
	uv_stdio_container_t stdio[3] = {
		{ .flags = UV_IGNORE },
		{ .flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&r->out },
		{ .flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&r->err },
	};
	int pty_child = -1;
	r->err_is_pty = false;
	if (r->kind == K_POSTFIX) {
		int master;

		/* Without a terminal Postfix's fatal messages would be lost: fall back to a pipe. */
		if (openpty(&master, &pty_child, NULL, NULL, NULL) == 0) {
			fcntl(master, F_SETFD, FD_CLOEXEC);
			fcntl(pty_child, F_SETFD, FD_CLOEXEC);
			if (uv_pipe_open(&r->err, master) == 0) {
				r->err_is_pty = true;
				stdio[2].flags = UV_INHERIT_FD;
				stdio[2].data.fd = pty_child;
			} else {
				close(master);
				close(pty_child);
				pty_child = -1;
			}
		}
	}
	uv_process_options_t o = {
		.exit_cb = on_proc_exit,
		.file = argv[0],
		.args = argv,
		.env = env,
		.stdio_count = 3,
		.stdio = stdio,
	};
	r->proc.data = r;
	rc = uv_spawn(r->base.loop, &r->proc, &o);
	if (pty_child >= 0)
		close(pty_child); /* the child has its copy; ours would hide its end of file */
	if (rc < 0) {
		r->open_handles = 3;
		r->exit_status = 127;
		snprintf(r->output, OUT_MAX, "cannot run: %s", uv_strerror(rc));
		r->out_len = strlen(r->output);
		uv_close((uv_handle_t *)&r->out, on_handle_closed);
		uv_close((uv_handle_t *)&r->err, on_handle_closed);
		uv_close((uv_handle_t *)&r->proc, on_handle_closed);
		return;
	}
	/* process, two pipes and the timer must all close before the step is done */
	r->open_handles = 4;
	uv_read_start((uv_stream_t *)&r->out, on_alloc, on_read);
	uv_read_start((uv_stream_t *)&r->err, on_alloc, on_read);
	uv_timer_init(r->base.loop, &r->timer);
	r->timer.data = r;
	uv_timer_start(&r->timer, on_timeout, (uint64_t)r->timeout_ms, 0);
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
