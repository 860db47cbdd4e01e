/*
 * cs_atomic - crash-safe replacement of one file. See cs_atomic.h.
 *
 * Every step works relative to an O_DIRECTORY descriptor of the target's
 * directory, so that a directory swapped for a symlink between the steps
 * cannot redirect the write: the temp file, the rename and the fsync all
 * happen in the directory that was opened first.
 */
#include "cs_atomic.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* Splits path into its directory and final component (both copied). */
static int split_path(const char *path, char *dir, char *base)
{
	char a[PATH_MAX], b[PATH_MAX];

	if (snprintf(a, sizeof(a), "%s", path) >= (int)sizeof(a))
		return -ENAMETOOLONG;
	snprintf(b, sizeof(b), "%s", path);
	snprintf(dir, PATH_MAX, "%s", dirname(a));
	snprintf(base, NAME_MAX + 1, "%s", basename(b));
	if (base[0] == '\0' || strcmp(base, "/") == 0 || strcmp(base, ".") == 0 ||
	    strcmp(base, "..") == 0)
		return -EISDIR;
	return 0;
}

/* Writes all of len bytes, retrying short writes and EINTR. */
static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Resolves a symlink at the final component to the file it names. */
static int resolve_final(const char *path, char *out, size_t outlen)
{
	char target[PATH_MAX];
	ssize_t n = readlink(path, target, sizeof(target) - 1);

	if (n < 0)
		return -errno;
	target[n] = '\0';
	if (target[0] == '/') {
		snprintf(out, outlen, "%s", target);
	} else {
		char d[PATH_MAX];
		snprintf(d, sizeof(d), "%s", path);
		if (snprintf(out, outlen, "%s/%s", dirname(d), target) >= (int)outlen)
			return -ENAMETOOLONG;
	}
	return 0;
}

/*
 * Follows symbolic links at the final component of real (path as given) when
 * opts allow it, up to 8 of them, each owned by root or this process; real
 * then names the file to replace. 0, or a negative errno with err set.
 */
static int follow_final(const char *path, char *real, const struct cs_atomic_opts *opts,
			char *err, size_t errlen)
{
	struct stat sb;
	int depth = 0;

	/* A symlink at the final component: refused, or followed when asked to. */
	while (lstat(real, &sb) == 0 && S_ISLNK(sb.st_mode)) {
		if (!(opts->flags & CS_ATOMIC_FOLLOW_SYMLINK)) {
			snprintf(err, errlen,
				 "%s is a symbolic link; refusing to replace it (write to its "
				 "target instead)",
				 path);
			return -ELOOP;
		}
		/*
		 * Only a link root or this process made is followed: in a
		 * directory others may write to (mode 1777, or another user's),
		 * anyone else's link could name any file this process may write.
		 */
		if (sb.st_uid != 0 && sb.st_uid != geteuid()) {
			snprintf(err, errlen,
				 "%s is a symbolic link owned by uid %u (not root or uid %u); "
				 "refusing to write through it",
				 real, (unsigned)sb.st_uid, (unsigned)geteuid());
			return -EPERM;
		}
		char next[PATH_MAX];
		if (++depth > 8 || resolve_final(real, next, sizeof(next)) < 0) {
			snprintf(err, errlen, "%s: cannot follow the symbolic link", path);
			return -ELOOP;
		}
		snprintf(real, PATH_MAX, "%s", next);
	}
	return 0;
}

/* Opens real's directory (dir, base filled in): its descriptor, or a negative errno and err. */
static int open_dir_of(const char *path, const char *real, char *dir, char *base, char *err,
		       size_t errlen)
{
	struct stat sb;
	int dfd, rc;

	if ((rc = split_path(real, dir, base)) < 0) {
		snprintf(err, errlen, "%s: not a file path", path);
		return rc;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot open directory %s: %s", path, dir, strerror(-rc));
		return rc;
	}
	if (fstatat(dfd, base, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(sb.st_mode)) {
		snprintf(err, errlen, "%s is a directory", real);
		close(dfd);
		return -EISDIR;
	}
	return dfd;
}

/* Creates the temp file tmp in dfd; its descriptor, or a negative errno with err set. */
static int create_temp(int dfd, const char *path, const char *dir, const char *base, char *tmp,
		       char *err, size_t errlen)
{
	int fd, rc;

	/* A random name, created exclusively, never through a symlink. */
	for (int attempt = 0;; attempt++) {
		unsigned char r[6];
		if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
			for (size_t i = 0; i < sizeof(r); i++)
				r[i] = (unsigned char)(rand() & 0xff);
		snprintf(tmp, NAME_MAX + 1, ".%.200s.%02x%02x%02x%02x%02x%02x", base, r[0], r[1],
			 r[2], r[3], r[4], r[5]);
		/* 0600 from the start: nothing is ever readable before fchmod. */
		fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0)
			return fd;
		if (errno != EEXIST || attempt > 16) {
			rc = -errno;
			snprintf(err, errlen, "%s: cannot create a temporary file in %s: %s", path,
				 dir, strerror(-rc));
			return rc;
		}
	}
}

/* The temp file's owner, mode and bytes, synced unless told not to; 0 or a negative errno. */
static int fill_temp(int fd, const char *path, const void *data, size_t len,
		     const struct cs_atomic_opts *opts, char *err, size_t errlen)
{
	int rc;

	if ((opts->uid != (uid_t)-1 || opts->gid != (gid_t)-1) &&
	    fchown(fd, opts->uid, opts->gid) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot set owner %d:%d: %s", path, (int)opts->uid,
			 (int)opts->gid, strerror(-rc));
		return rc;
	}
	if (fchmod(fd, opts->mode & 07777) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot set mode %04o: %s", path, opts->mode & 07777,
			 strerror(-rc));
		return rc;
	}
	if ((rc = write_all(fd, data, len)) < 0) {
		snprintf(err, errlen, "%s: cannot write: %s", path, strerror(-rc));
		return rc;
	}
	if (!(opts->flags & CS_ATOMIC_NO_FSYNC) && fsync(fd) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot sync to disk: %s", path, strerror(-rc));
		return rc;
	}
	return 0;
}

int cs_atomic_write(const char *path, const void *data, size_t len,
		    const struct cs_atomic_opts *opts, char *err, size_t errlen)
{
	char dir[PATH_MAX], base[NAME_MAX + 1], tmp[NAME_MAX + 1], real[PATH_MAX];
	int dfd = -1, fd = -1, rc;

	if (strlen(path) >= PATH_MAX) {
		snprintf(err, errlen, "%.64s...: path too long", path);
		return -ENAMETOOLONG;
	}
	snprintf(real, sizeof(real), "%s", path);
	if ((rc = follow_final(path, real, opts, err, errlen)) < 0)
		return rc;
	if ((dfd = open_dir_of(path, real, dir, base, err, errlen)) < 0)
		return dfd;
	if ((fd = create_temp(dfd, path, dir, base, tmp, err, errlen)) < 0) {
		close(dfd);
		return fd;
	}
	if ((rc = fill_temp(fd, path, data, len, opts, err, errlen)) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		rc = -errno;
		snprintf(err, errlen, "%s: cannot write: %s", path, strerror(-rc));
		goto fail;
	}
	fd = -1;
	if (renameat(dfd, tmp, dfd, base) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot replace: %s", path, strerror(-rc));
		goto fail;
	}
	if (!(opts->flags & CS_ATOMIC_NO_FSYNC) && fsync(dfd) < 0) {
		/* The file is in place; only its durability across a crash is in doubt. */
		rc = -errno;
		snprintf(err, errlen, "%s: replaced, but syncing the directory failed: %s", path,
			 strerror(-rc));
		close(dfd);
		return rc;
	}
	close(dfd);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlinkat(dfd, tmp, 0);
	close(dfd);
	return rc;
}

/* True when name is ".BASE." followed by the 12 hex digits cs_atomic_write uses. */
static bool is_temp_of(const char *name, const char *base)
{
	size_t bl = strnlen(base, 200), nl = strlen(name);

	if (nl != 1 + bl + 1 + 12 || name[0] != '.' || strncmp(name + 1, base, bl) != 0 ||
	    name[1 + bl] != '.')
		return false;
	for (const char *p = name + bl + 2; *p != '\0'; p++)
		if (!isxdigit((unsigned char)*p) || isupper((unsigned char)*p))
			return false;
	return true;
}

/* True when name is "." NAME "." and 12 hex digits, NAME ending in suffix (any if NULL). */
static bool is_temp_with_suffix(const char *name, const char *suffix)
{
	size_t nl = strlen(name), sl = suffix ? strlen(suffix) : 0;

	if (nl < 1 + 1 + sl + 1 + 12 || name[0] != '.' || name[nl - 13] != '.')
		return false;
	for (const char *p = name + nl - 12; *p != '\0'; p++)
		if (!isxdigit((unsigned char)*p) || isupper((unsigned char)*p))
			return false;
	return sl == 0 || strncmp(name + nl - 13 - sl, suffix, sl) == 0;
}

/*
 * Removes the regular files of directory dir (reported as what) whose names
 * match(name, arg) and whose owner is the effective uid or owner (any with
 * any_owner). Returns the
 * number removed or a negative errno, with a message in err.
 */
static int sweep_in(const char *dir, const char *what, bool (*match)(const char *, const char *),
		    const char *arg, bool any_owner, uid_t owner, char *err, size_t errlen)
{
	struct dirent *de;
	struct stat sb;
	DIR *d;
	int dfd, rc, n = 0;

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || (d = fdopendir(dfd)) == NULL) {
		rc = -errno;
		if (dfd >= 0)
			close(dfd);
		snprintf(err, errlen, "%s: cannot open directory %s: %s", what, dir, strerror(-rc));
		return rc;
	}
	while ((de = readdir(d)) != NULL) {
		if (!match(de->d_name, arg))
			continue;
		if (fstatat(dfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(sb.st_mode))
			continue;
		if (!any_owner && sb.st_uid != geteuid() && (owner == (uid_t)-1 || sb.st_uid != owner))
			continue;
		if (unlinkat(dfd, de->d_name, 0) == 0)
			n++;
	}
	closedir(d);
	return n;
}

int cs_atomic_sweep(const char *path, char *err, size_t errlen)
{
	char dir[PATH_MAX], base[NAME_MAX + 1];
	int rc;

	if ((rc = split_path(path, dir, base)) < 0) {
		snprintf(err, errlen, "%s: not a file path", path);
		return rc;
	}
	/* Any owner: as before the owner check, for capsync, which writes as itself. */
	return sweep_in(dir, path, is_temp_of, base, true, (uid_t)-1, err, errlen);
}

int cs_atomic_sweep_owned(const char *path, uid_t owner, char *err, size_t errlen)
{
	char dir[PATH_MAX], base[NAME_MAX + 1];
	int rc;

	if ((rc = split_path(path, dir, base)) < 0) {
		snprintf(err, errlen, "%s: not a file path", path);
		return rc;
	}
	return sweep_in(dir, path, is_temp_of, base, false, owner, err, errlen);
}

int cs_atomic_sweep_dir(const char *dir, const char *suffix, char *err, size_t errlen)
{
	return sweep_in(dir, dir, is_temp_with_suffix, suffix, false, (uid_t)-1, err, errlen);
}

int cs_atomic_same(const char *path, const void *data, size_t len)
{
	FILE *fp = fopen(path, "rb");
	char buf[65536];
	size_t off = 0, n;
	int same = 1;

	if (fp == NULL)
		return 0;
	while (same && (n = fread(buf, 1, sizeof(buf), fp)) > 0) {
		if (off + n > len || memcmp(buf, (const char *)data + off, n) != 0)
			same = 0;
		off += n;
	}
	fclose(fp);
	return same && off == len;
}
