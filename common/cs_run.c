/*
 * cs_run - a child process with a deadline (see cs_run.h). The pipe is read
 * with poll() until it closes or the deadline passes; the child is reaped in
 * every case, so no zombie is left behind.
 */
#include "cs_run.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
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

void cs_run_one_line(char *out)
{
	for (char *q = out; *q != '\0'; q++)
		if (*q == '\n' || *q == '\r' || *q == '\t')
			*q = ' ';
}

int cs_run(char *const argv[], int timeout_ms, char *out, size_t outlen, char *err,
	   size_t errlen)
{
	posix_spawn_file_actions_t fa;
	int p[2] = { -1, -1 }, devnull, rc, status = 0;
	size_t off = 0;
	long long deadline;
	int timed_out = 0;
	pid_t pid;

	out[0] = '\0';
	if (timeout_ms <= 0)
		timeout_ms = 60000;
	if (pipe2(p, O_CLOEXEC) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot make a pipe: %s", argv[0], strerror(-rc));
		return rc;
	}
	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	posix_spawn_file_actions_init(&fa);
	if (devnull >= 0)
		posix_spawn_file_actions_adddup2(&fa, devnull, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	rc = -posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (devnull >= 0)
		close(devnull);
	close(p[1]);
	if (rc < 0) {
		snprintf(err, errlen, "cannot run %s: %s", argv[0], strerror(-rc));
		close(p[0]);
		return rc;
	}
	deadline = now_ms() + timeout_ms;
	for (;;) {
		struct pollfd pfd = { .fd = p[0], .events = POLLIN };
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
			n = read(p[0], out + off, outlen - 1 - off);
		else
			n = read(p[0], sink, sizeof(sink));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (off + 1 < outlen)
			off += (size_t)n;
	}
	close(p[0]);
	out[off] = '\0';
	while (off > 0 && (out[off - 1] == '\n' || out[off - 1] == ' ' || out[off - 1] == '\r'))
		out[--off] = '\0';
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
