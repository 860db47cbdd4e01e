/*
 * cs_run - a child process with a deadline (see cs_run.h). cs_run reads the
 * pipe with poll() until it closes or the deadline passes; cs_run_start does
 * the same with libuv handles (the process, the pipe, a pseudo-terminal for
 * standard error if asked, the deadline's timer). The child is reaped in
 * every case (libuv reaps on the loop), so no zombie is left behind.
 */
#include "cs_run.h"

#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Removes trailing white space from out (len bytes); returns the new length. */
static size_t trim(char *out, size_t len)
{
	while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == ' ' || out[len - 1] == '\r'))
		out[--len] = '\0';
	return len;
}

void cs_run_one_line(char *out)
{
	for (char *q = out; *q != '\0'; q++)
		if (*q == '\n' || *q == '\r' || *q == '\t')
			*q = ' ';
}

int cs_run(char *const argv[], int timeout_ms, char *out, size_t outlen, char *err,
	   size_t errlen)
{
	return cs_run_env(argv, NULL, timeout_ms, out, outlen, err, errlen);
}

/*
 * Reads the child's output from fd into out until it closes or the deadline
 * passes (then the child is killed). Returns 1 when it was killed, else 0.
 */
static int read_output(int fd, pid_t pid, long long deadline, char *out, size_t outlen)
{
	size_t off = 0;
	int timed_out = 0;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		long long left = deadline - now_ms();
		char sink[512];
		ssize_t n;

		if (left <= 0) {
			timed_out = 1;
			kill(pid, SIGKILL);
			break;
		}
		n = poll(&pfd, 1, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		if (n == 0)
			continue; /* the deadline is checked above */
		if (off + 1 < outlen)
			n = read(fd, out + off, outlen - 1 - off);
		else
			n = read(fd, sink, sizeof(sink));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (off + 1 < outlen)
			off += (size_t)n;
	}
	out[off] = '\0';
	trim(out, off);
	return timed_out;
}

/* cs_run_env with in_fd (-1: /dev/null) as the child's standard input. */
static int run_fd(char *const argv[], char *const env[], int in_fd, int timeout_ms, char *out,
		  size_t outlen, char *err, size_t errlen)
{
	posix_spawn_file_actions_t fa;
	int p[2] = { -1, -1 }, in, rc, status = 0, timed_out;
	pid_t pid;

	out[0] = '\0';
	if (timeout_ms <= 0)
		timeout_ms = 60000;
	if (pipe2(p, O_CLOEXEC) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot make a pipe: %s", argv[0], strerror(-rc));
		return rc;
	}
	in = in_fd >= 0 ? in_fd : open("/dev/null", O_RDONLY | O_CLOEXEC);
	posix_spawn_file_actions_init(&fa);
	if (in >= 0)
		posix_spawn_file_actions_adddup2(&fa, in, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	rc = -posix_spawnp(&pid, argv[0], &fa, NULL, argv, env != NULL ? env : environ);
	posix_spawn_file_actions_destroy(&fa);
	if (in >= 0 && in != in_fd)
		close(in);
	close(p[1]);
	if (rc < 0) {
		snprintf(err, errlen, "cannot run %s: %s", argv[0], strerror(-rc));
		close(p[0]);
		return rc;
	}
	timed_out = read_output(p[0], pid, now_ms() + timeout_ms, out, outlen);
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			snprintf(err, errlen, "%s: cannot wait for it: %s", argv[0], strerror(errno));
			return -ECHILD;
		}
	if (timed_out) {
		snprintf(err, errlen, "%s: killed after %d ms without an answer", argv[0],
			 timeout_ms);
		return -ETIMEDOUT;
	}
	if (WIFSIGNALED(status)) {
		snprintf(err, errlen, "%s: killed by signal %d", argv[0], WTERMSIG(status));
		return -EINTR;
	}
	return WEXITSTATUS(status);
}

int cs_run_env(char *const argv[], char *const env[], int timeout_ms, char *out, size_t outlen,
	       char *err, size_t errlen)
{
	return run_fd(argv, env, -1, timeout_ms, out, outlen, err, errlen);
}

int cs_run_input(char *const argv[], char *const env[], const void *input, size_t inlen,
		 int timeout_ms, char *out, size_t outlen, char *err, size_t errlen)
{
	/* A memory file, not a pipe: the child reads it at its pace, nobody blocks. */
	int fd = memfd_create("certsync-input", MFD_CLOEXEC), rc;

	if (fd < 0 || write(fd, input, inlen) != (ssize_t)inlen || lseek(fd, 0, SEEK_SET) != 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot hold its input: %s", argv[0], strerror(-rc));
		if (fd >= 0)
			close(fd);
		return rc;
	}
	rc = run_fd(argv, env, fd, timeout_ms, out, outlen, err, errlen);
	close(fd);
	return rc;
}

/* ---- on the loop ---------------------------------------------------------- */

struct cs_run_job {
	uv_process_t proc;
	uv_pipe_t out;      /* standard output, and error unless tty */
	uv_pipe_t tty;      /* the master side of standard error's pseudo-terminal */
	uv_timer_t timer;
	bool has_out, has_tty;
	int open;           /* handles not closed yet */
	bool exited, timed_out, cancelled;
	int64_t exit_status;
	int term_signal;
	cs_run_cb cb;
	void *arg;
	char *prog;         /* argv[0], for messages */
	int timeout_ms;
	char err[256];
	size_t out_max, out_len;
	char buf[];         /* out_max bytes */
};

static void job_report(struct cs_run_job *j)
{
	struct cs_run_result res = { .term_signal = j->term_signal, .out = "", .err = "" };

	if (j->out_max > 0) {
		j->buf[j->out_len] = '\0';
		j->out_len = trim(j->buf, j->out_len);
		res.out = j->buf;
		res.out_len = j->out_len;
	}
	if (j->timed_out) {
		snprintf(j->err, sizeof(j->err), "%s: killed after %d ms without an answer",
			 j->prog, j->timeout_ms);
		res.status = -ETIMEDOUT;
	} else if (j->term_signal != 0) {
		snprintf(j->err, sizeof(j->err), "%s: killed by signal %d", j->prog,
			 j->term_signal);
		res.status = -EINTR;
	} else {
		res.status = (int)j->exit_status;
	}
	res.err = j->err;
	j->cb(j->arg, &res);
}

static void job_closed(uv_handle_t *h)
{
	struct cs_run_job *j = h->data;

	if (--j->open > 0)
		return;
	if (j->exited && !j->cancelled && j->cb != NULL)
		job_report(j);
	free(j->prog);
	free(j);
}

static void job_close(struct cs_run_job *j, uv_handle_t *h)
{
	if (!uv_is_closing(h))
		uv_close(h, job_closed);
}

/* The timer goes when the child has exited and its output is read. */
static void job_check_done(struct cs_run_job *j)
{
	if (j->exited && (!j->has_out || uv_is_closing((uv_handle_t *)&j->out)) &&
	    (!j->has_tty || uv_is_closing((uv_handle_t *)&j->tty)))
		job_close(j, (uv_handle_t *)&j->timer);
}

static void job_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	static char scratch[512];

	(void)h;
	(void)hint;
	*buf = uv_buf_init(scratch, sizeof(scratch));
}

static void job_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct cs_run_job *j = s->data;
	bool tty = s == (uv_stream_t *)&j->tty;

	if (n > 0) {
		for (ssize_t i = 0; i < n && j->out_len + 1 < j->out_max; i++)
			/* A terminal ends lines with CR LF: keep the LF only. */
			if (!tty || buf->base[i] != '\r')
				j->buf[j->out_len++] = buf->base[i];
		return;
	}
	/* The end of file, or EIO on a terminal's master: the child side is closed. */
	if (n < 0) {
		job_close(j, (uv_handle_t *)s);
		job_check_done(j);
	}
}

static void job_exit(uv_process_t *p, int64_t status, int sig)
{
	struct cs_run_job *j = p->data;

	j->exited = true;
	j->exit_status = status;
	j->term_signal = sig;
	if (j->has_tty && !uv_is_closing((uv_handle_t *)&j->tty)) {
		/*
		 * What the child wrote is in the terminal's buffer; a process it left
		 * behind could keep the terminal open for ever, so read what is there
		 * now and close it instead of waiting for the end of file.
		 */
		uv_os_fd_t fd;
		char b[512];
		ssize_t n;

		if (uv_fileno((uv_handle_t *)&j->tty, &fd) == 0)
			while ((n = read(fd, b, sizeof(b))) > 0) {
				uv_buf_t ub = uv_buf_init(b, (unsigned)n);
				job_read((uv_stream_t *)&j->tty, n, &ub);
			}
		job_close(j, (uv_handle_t *)&j->tty);
	}
	job_close(j, (uv_handle_t *)p);
	job_check_done(j);
}

static void job_deadline(uv_timer_t *t)
{
	struct cs_run_job *j = t->data;

	if (!j->exited) {
		j->timed_out = true;
		uv_process_kill(&j->proc, SIGKILL);
		return;
	}
	/* It has exited but something it left behind holds the pipe: stop reading. */
	if (j->has_out)
		job_close(j, (uv_handle_t *)&j->out);
	job_check_done(j);
}

/* Opens a pseudo-terminal for standard error: *child gets the child's side. */
static void job_open_tty(uv_loop_t *loop, struct cs_run_job *j, int *child)
{
	int master;

	/* Without a terminal the caller gets standard error on the pipe. */
	if (openpty(&master, child, NULL, NULL, NULL) < 0) {
		*child = -1;
		return;
	}
	fcntl(master, F_SETFD, FD_CLOEXEC);
	fcntl(*child, F_SETFD, FD_CLOEXEC);
	uv_pipe_init(loop, &j->tty, 0);
	j->tty.data = j;
	j->open++;
	j->has_tty = true;
	if (uv_pipe_open(&j->tty, master) < 0) {
		close(master);
		close(*child);
		*child = -1;
		job_close(j, (uv_handle_t *)&j->tty);
		j->has_tty = false;
	}
}

int cs_run_start(uv_loop_t *loop, const struct cs_run_opts *o, cs_run_cb cb, void *arg,
		 cs_run_job **jobp)
{
	struct cs_run_job *j = calloc(1, sizeof(*j) + o->out_max);
	uv_stdio_container_t stdio[3] = { { .flags = UV_IGNORE } };
	uv_process_options_t po = { 0 };
	uv_file fds[2] = { -1, -1 };
	int tty_child = -1, rc;

	if (j == NULL || (j->prog = strdup(o->argv[0])) == NULL) {
		free(j);
		return -ENOMEM;
	}
	j->cb = cb;
	j->arg = arg;
	j->out_max = o->out_max;
	j->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 60000;
	j->proc.data = j;
	j->timer.data = j;
	j->out.data = j;
	uv_timer_init(loop, &j->timer);
	j->open = 1;
	/* Without output kept it goes to our log stream (stderr), never to our stdout. */
	stdio[1] = (uv_stdio_container_t){ .flags = UV_INHERIT_FD, .data.fd = 2 };
	stdio[2] = stdio[1];
	if (o->out_max > 0) {
		rc = uv_pipe(fds, 0, 0);
		if (rc < 0)
			goto fail;
		uv_pipe_init(loop, &j->out, 0);
		j->open++;
		j->has_out = true;
		rc = uv_pipe_open(&j->out, fds[0]);
		if (rc < 0) {
			close(fds[0]);
			close(fds[1]);
			goto fail;
		}
		stdio[1].data.fd = fds[1];
		stdio[2].data.fd = fds[1];
		if (o->stderr_tty)
			job_open_tty(loop, j, &tty_child);
		if (tty_child >= 0)
			stdio[2].data.fd = tty_child;
	}
	po.file = o->argv[0];
	po.args = (char **)o->argv;
	po.env = (char **)o->env;
	po.stdio = stdio;
	po.stdio_count = 3;
	po.exit_cb = job_exit;
	rc = uv_spawn(loop, &j->proc, &po);
	/* The child has its copies; ours would hide its end of file. */
	if (fds[1] >= 0)
		close(fds[1]);
	if (tty_child >= 0)
		close(tty_child);
	/* A failed spawn still initialised the handle: it must be closed too. */
	j->open++;
	if (rc < 0) {
		job_close(j, (uv_handle_t *)&j->proc);
		goto fail;
	}
	if (j->has_out)
		uv_read_start((uv_stream_t *)&j->out, job_alloc, job_read);
	if (j->has_tty)
		uv_read_start((uv_stream_t *)&j->tty, job_alloc, job_read);
	uv_timer_start(&j->timer, job_deadline, (uint64_t)j->timeout_ms, 0);
	if (jobp != NULL)
		*jobp = j;
	return 0;
fail:
	/* cb never runs: job_closed frees the memory once the handles are closed. */
	j->cb = NULL;
	if (j->has_out)
		job_close(j, (uv_handle_t *)&j->out);
	if (j->has_tty)
		job_close(j, (uv_handle_t *)&j->tty);
	job_close(j, (uv_handle_t *)&j->timer);
	return rc;
}

void cs_run_cancel(cs_run_job *j)
{
	j->cancelled = true;
	if (!j->exited)
		uv_process_kill(&j->proc, SIGKILL);
}
