/*
 * cs_lock - the state_dir lock that keeps a second certsyncd (a --once run
 * from a terminal, a second unit) from renewing the same certificates and
 * writing the same files as the running one. See cs_lock.h.
 *
 * flock is tied to the open file description, so it is released by the
 * kernel whenever the holder dies, however it dies: no stale lock to clean.
 */
#include "cs_lock.h"
#include "cs_state.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* "state_dir/certsyncd.lock" into buf; -ENAMETOOLONG when it does not fit. */
static int lock_path(const char *state_dir, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", state_dir, CS_LOCK_FILE);

	return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}

int cs_lock_write_pid(const char *state_dir)
{
	char path[PATH_MAX], buf[32];
	int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid()), fd, rc = 0;

	if (lock_path(state_dir, path, sizeof(path)) < 0)
		return -ENAMETOOLONG;
	/* A short-lived descriptor: the lock's own is read-only (see below). */
	fd = open(path, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, buf, (size_t)n) != n)
		rc = errno ? -errno : -EIO;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	return rc;
}

/* The PID another process wrote into the lock file, or 0 when none is readable. */
static long holder_pid(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	char *end;
	long pid;

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	pid = strtol(buf, &end, 10);
	return (end != buf && pid > 0 && pid <= INT_MAX) ? pid : 0;
}

int cs_lock_state_dir(const char *state_dir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct stat st;
	int fd, rc;

	if (lock_path(state_dir, path, sizeof(path)) < 0) {
		snprintf(err, errlen, "%s: path too long", state_dir);
		return -ENAMETOOLONG;
	}
	if ((rc = cs_state_mkdirs(state_dir, 0700, err, errlen)) < 0)
		return rc;
	/*
	 * O_NOFOLLOW and the S_ISREG check: the lock must not be redirected onto
	 * another file. Read-only, which is all flock needs: a descriptor open
	 * for writing would keep state_dir's filesystem from being remounted
	 * read-only while the agent runs.
	 */
	fd = open(path, O_RDONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot open the lock file %s: %s", path, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "the lock file %s is not a regular file", path);
		close(fd);
		return -EINVAL;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		rc = -errno;
		if (rc == -EWOULDBLOCK) {
			long pid = holder_pid(fd);
			if (pid > 0)
				snprintf(err, errlen,
					 "another certsyncd (PID %ld) is running on state_dir %s "
					 "(it holds %s); not starting",
					 pid, state_dir, path);
			else
				snprintf(err, errlen,
					 "another certsyncd is running on state_dir %s (it holds %s); "
					 "not starting",
					 state_dir, path);
		} else {
			snprintf(err, errlen, "cannot lock %s: %s", path, strerror(-rc));
		}
		close(fd);
		return rc;
	}
	if ((rc = cs_lock_write_pid(state_dir)) < 0) {
		snprintf(err, errlen, "cannot write to the lock file %s: %s", path, strerror(-rc));
		close(fd);
		return rc;
	}
	return fd;
}
