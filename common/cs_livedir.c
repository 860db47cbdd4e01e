/*
 * cs_livedir - a set of files swapped as one through a symbolic link. See
 * cs_livedir.h.
 *
 * Every step works relative to descriptors of DIR and DIR/.gen/NAME opened
 * once (O_NOFOLLOW below DIR), as the atomic writer does. A swap and a prune
 * of the same NAME exclude each other with flock(2) on DIR/.gen/NAME, so
 * that a prune never removes a directory a swap has named but not linked yet.
 */
#include "cs_livedir.h"
#include "cs_atomic.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

static void hook(const struct cs_livedir_opts *o, enum cs_livedir_step s, int dfd,
		 const char *name)
{
	if (o != NULL && o->hook != NULL)
		o->hook(s, dfd, name, o->hook_arg);
}

static bool syncing(const struct cs_livedir_opts *o)
{
	return o == NULL || !(o->flags & CS_ATOMIC_NO_FSYNC);
}

/* A plain, non-empty file name: no '/', not "." or "..". */
static bool plain_name(const char *s)
{
	return s[0] != '\0' && strchr(s, '/') == NULL && strcmp(s, ".") != 0 &&
	       strcmp(s, "..") != 0 && strlen(s) <= NAME_MAX - 16;
}

/* ".BASE.<12 hex digits>" with fresh random digits. */
static void temp_name(char *buf, size_t len, const char *base)
{
	unsigned char r[6];

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		for (size_t i = 0; i < sizeof(r); i++)
			r[i] = (unsigned char)(rand() & 0xff);
	snprintf(buf, len, ".%s.%02x%02x%02x%02x%02x%02x", base, r[0], r[1], r[2], r[3], r[4],
		 r[5]);
}

/* True when name is "." + something + "." + 12 lowercase hex digits, something ending in base. */
static bool is_temp(const char *name, const char *base)
{
	size_t nl = strlen(name), bl = base != NULL ? strlen(base) : 1;

	if (nl < 1 + bl + 1 + 12 || name[0] != '.' || name[nl - 13] != '.')
		return false;
	for (const char *p = name + nl - 12; *p != '\0'; p++)
		if (!isxdigit((unsigned char)*p) || isupper((unsigned char)*p))
			return false;
	return base == NULL || (nl == 1 + bl + 1 + 12 && strncmp(name + 1, base, bl) == 0);
}

/* mkdir -p path with mode (existing directories are left as they are). */
static int mkdirs(const char *path, mode_t mode)
{
	char buf[PATH_MAX];

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = c;
		if (c == '\0')
			return 0;
	}
}

/* Opens (creating it 0755 when missing) the directory name in dfd, never through a link. */
static int open_sub(int dfd, const char *name, const struct cs_livedir_opts *o)
{
	int fd;

	if (mkdirat(dfd, name, 0755) == 0) {
		if (o != NULL && (o->uid != (uid_t)-1 || o->gid != (gid_t)-1) &&
		    fchownat(dfd, name, o->uid, o->gid, AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
	} else if (errno != EEXIST) {
		return -errno;
	}
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/*
 * Opens DIR (*dfd) and DIR/.gen/NAME (*gfd), creating them when create is
 * set. Returns 0 or a negative errno with err set.
 */
static int open_dirs(const char *dir, const char *name, bool create,
		     const struct cs_livedir_opts *o, int *dfd, int *gfd, char *err, size_t errlen)
{
	int rc, g = -1;

	*dfd = *gfd = -1;
	if (!plain_name(name) || name[0] == '.') {
		snprintf(err, errlen, "%s/%s: the name must not begin with '.' nor hold '/'", dir,
			 name);
		return -EINVAL;
	}
	if (create && (rc = mkdirs(dir, 0755)) < 0) {
		snprintf(err, errlen, "%s: cannot create the directory: %s", dir, strerror(-rc));
		return rc;
	}
	if ((*dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot open the directory: %s", dir, strerror(-rc));
		return rc;
	}
	if (create)
		g = open_sub(*dfd, CS_LIVEDIR_GEN, o);
	else if ((g = openat(*dfd, CS_LIVEDIR_GEN,
			     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		g = -errno;
	if (g >= 0) {
		*gfd = create ? open_sub(g, name, o)
			      : openat(g, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (*gfd < 0 && !create)
			*gfd = -errno;
		close(g);
		g = *gfd;
	}
	if (g < 0) {
		snprintf(err, errlen, "%s/%s/%s: cannot open the directory: %s", dir, CS_LIVEDIR_GEN,
			 name, strerror(-g));
		close(*dfd);
		*dfd = -1;
		*gfd = -1;
		return g;
	}
	return 0;
}

/* The generation the link name in dfd leads to; 0, -ENOENT, or -EEXIST (not ours). */
static int read_link(int dfd, const char *name, char *id, size_t len)
{
	char buf[PATH_MAX], prefix[NAME_MAX + 16];
	ssize_t n = readlinkat(dfd, name, buf, sizeof(buf) - 1);
	size_t pl;

	if (n < 0)
		return errno == ENOENT ? -ENOENT : -EEXIST;
	buf[n] = '\0';
	pl = (size_t)snprintf(prefix, sizeof(prefix), "%s/%s/", CS_LIVEDIR_GEN, name);
	if (strncmp(buf, prefix, pl) != 0 || !plain_name(buf + pl))
		return -EEXIST;
	if (snprintf(id, len, "%s", buf + pl) >= (int)len)
		return -EEXIST;
	return 0;
}

int cs_livedir_current(const char *dir, const char *name, char *id, size_t len)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

	if (dfd < 0)
		return errno == ENOENT ? -ENOENT : -errno;
	rc = read_link(dfd, name, id, len);
	close(dfd);
	return rc;
}

/* Removes the directory name in dfd and the files in it. Returns 0 or -errno. */
static int remove_tree(int dfd, const char *name)
{
	struct dirent *de;
	DIR *d;
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			(void)unlinkat(fd, de->d_name, 0);
	closedir(d);
	return unlinkat(dfd, name, AT_REMOVEDIR) < 0 ? -errno : 0;
}

/* Reads exactly len bytes of fd and compares them with data. */
static bool same_bytes(int fd, const void *data, size_t len)
{
	char buf[8192];
	size_t off = 0;
	ssize_t got;

	while ((got = read(fd, buf, sizeof(buf))) != 0) {
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		if (off + (size_t)got > len || memcmp(buf, (const char *)data + off, (size_t)got) != 0)
			return false;
		off += (size_t)got;
	}
	return off == len;
}

/* True when directory id in gfd holds exactly the files f, with their modes and owner. */
static bool holds_exactly(int gfd, const char *id, const struct cs_livedir_file *f, size_t n,
			  const struct cs_livedir_opts *o)
{
	struct dirent *de;
	size_t count = 0;
	bool same = true;
	DIR *d;
	int fd = openat(gfd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			count++;
	for (size_t i = 0; i < n && same; i++) {
		struct stat sb;
		int ffd = openat(fd, f[i].name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		same = ffd >= 0 && fstat(ffd, &sb) == 0 && S_ISREG(sb.st_mode) &&
		       (sb.st_mode & 07777) == (f[i].mode & 07777) && (size_t)sb.st_size == f[i].len &&
		       (o == NULL || o->uid == (uid_t)-1 || sb.st_uid == o->uid) &&
		       (o == NULL || o->gid == (gid_t)-1 || sb.st_gid == o->gid) &&
		       same_bytes(ffd, f[i].data, f[i].len);
		if (ffd >= 0)
			close(ffd);
	}
	closedir(d);
	return same && count == n;
}

/* Writes all of len bytes, retrying short writes and EINTR. */
static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/*
 * Builds the files f in a new directory of gfd named tmp (".ID.<hex>"),
 * mode 0700 while it fills, 0755 once complete. On failure it is removed.
 */
static int build(int gfd, const char *id, const struct cs_livedir_file *f, size_t n,
		 const struct cs_livedir_opts *o, char *tmp, size_t tmplen, const char *where,
		 char *err, size_t errlen)
{
	bool own = o != NULL && (o->uid != (uid_t)-1 || o->gid != (gid_t)-1);
	int tfd = -1, fd = -1, rc = 0;

	for (int attempt = 0;; attempt++) {
		temp_name(tmp, tmplen, id);
		if (mkdirat(gfd, tmp, 0700) == 0)
			break;
		if (errno != EEXIST || attempt > 16) {
			rc = -errno;
			snprintf(err, errlen, "%s: cannot create a temporary directory: %s", where,
				 strerror(-rc));
			return rc;
		}
	}
	if ((tfd = openat(gfd, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s/%s: %s", where, tmp, strerror(-rc));
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		const char *what = "create";
		/* 0600 from the start; owner and final mode before the first byte. */
		fd = openat(tfd, f[i].name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			    0600);
		if (fd < 0)
			goto fail_file;
		what = "set the owner of";
		if (own && fchown(fd, o->uid, o->gid) < 0)
			goto fail_file;
		what = "set the mode of";
		if (fchmod(fd, f[i].mode & 07777) < 0)
			goto fail_file;
		hook(o, CS_LIVEDIR_FILE_OPENED, tfd, f[i].name);
		what = "write";
		if ((rc = write_all(fd, f[i].data, f[i].len)) < 0) {
			errno = -rc;
			goto fail_file;
		}
		what = "sync";
		if (syncing(o) && fsync(fd) < 0)
			goto fail_file;
		if (close(fd) < 0) {
			fd = -1;
			what = "write";
			goto fail_file;
		}
		fd = -1;
		hook(o, CS_LIVEDIR_FILE_WRITTEN, tfd, f[i].name);
		continue;
fail_file:
		rc = -errno;
		snprintf(err, errlen, "%s/%s: cannot %s %s: %s", where, id, what, f[i].name,
			 strerror(-rc));
		goto fail;
	}
	if ((own && fchown(tfd, o->uid, o->gid) < 0) || fchmod(tfd, 0755) < 0 ||
	    (syncing(o) && fsync(tfd) < 0)) {
		rc = -errno;
		snprintf(err, errlen, "%s/%s: %s", where, tmp, strerror(-rc));
		goto fail;
	}
	close(tfd);
	hook(o, CS_LIVEDIR_DIR_BUILT, gfd, tmp);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	if (tfd >= 0)
		close(tfd);
	remove_tree(gfd, tmp);
	return rc;
}

/* Puts the complete directory tmp in place as id, replacing an id that is there at once. */
static int name_dir(int gfd, const char *tmp, const char *id, const char *where, char *err,
		    size_t errlen)
{
	struct stat sb;
	int rc;

	if (fstatat(gfd, id, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
		if (!S_ISDIR(sb.st_mode)) {
			snprintf(err, errlen, "%s/%s is not a directory; refusing to replace it",
				 where, id);
			remove_tree(gfd, tmp);
			return -ENOTDIR;
		}
		/* The old copy goes to the temporary name in the same step, then away. */
		if (renameat2(gfd, tmp, gfd, id, RENAME_EXCHANGE) < 0) {
			rc = -errno;
			snprintf(err, errlen, "%s/%s: cannot replace the directory: %s", where, id,
				 strerror(-rc));
			remove_tree(gfd, tmp);
			return rc;
		}
		remove_tree(gfd, tmp);
		return 0;
	}
	if (renameat2(gfd, tmp, gfd, id, RENAME_NOREPLACE) < 0 &&
	    (errno != EINVAL || renameat(gfd, tmp, gfd, id) < 0)) {
		rc = -errno;
		snprintf(err, errlen, "%s/%s: cannot rename the directory: %s", where, id,
			 strerror(-rc));
		remove_tree(gfd, tmp);
		return rc;
	}
	return 0;
}

int cs_livedir_swap(const char *dir, const char *name, const char *id,
		    const struct cs_livedir_file *f, size_t n, const struct cs_livedir_opts *o,
		    char *err, size_t errlen)
{
	char where[PATH_MAX + 64], cur[NAME_MAX + 1], tmp[NAME_MAX + 1], target[PATH_MAX];
	int dfd = -1, gfd = -1, rc;

	if (!plain_name(id) || id[0] == '.') {
		snprintf(err, errlen, "%s/%s: bad generation name '%s'", dir, name, id);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++)
		if (!plain_name(f[i].name)) {
			snprintf(err, errlen, "%s/%s: bad file name '%s'", dir, name, f[i].name);
			return -EINVAL;
		}
	snprintf(where, sizeof(where), "%s/%s/%s", dir, CS_LIVEDIR_GEN, name);
	if ((rc = open_dirs(dir, name, true, o, &dfd, &gfd, err, errlen)) < 0)
		return rc;
	if (flock(gfd, LOCK_EX) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot lock: %s", where, strerror(-rc));
		goto out;
	}
	/* Never over something an administrator put there. */
	rc = read_link(dfd, name, cur, sizeof(cur));
	if (rc == -EEXIST) {
		snprintf(err, errlen,
			 "%s/%s exists and is not a link to %s/%s/...; refusing to replace it "
			 "(move it away)",
			 dir, name, CS_LIVEDIR_GEN, name);
		goto out;
	}
	if (rc == -ENOENT)
		cur[0] = '\0';
	if (!holds_exactly(gfd, id, f, n, o)) {
		if ((rc = build(gfd, id, f, n, o, tmp, sizeof(tmp), where, err, errlen)) < 0)
			goto out;
		if ((rc = name_dir(gfd, tmp, id, where, err, errlen)) < 0)
			goto out;
		if (syncing(o) && fsync(gfd) < 0) {
			rc = -errno;
			snprintf(err, errlen, "%s: cannot sync: %s", where, strerror(-rc));
			goto out;
		}
		hook(o, CS_LIVEDIR_DIR_NAMED, gfd, id);
	}
	rc = 0;
	if (strcmp(cur, id) == 0)
		goto out;
	snprintf(target, sizeof(target), "%s/%s/%s", CS_LIVEDIR_GEN, name, id);
	for (int attempt = 0;; attempt++) {
		temp_name(tmp, sizeof(tmp), name);
		if (symlinkat(target, dfd, tmp) == 0)
			break;
		if (errno != EEXIST || attempt > 16) {
			rc = -errno;
			snprintf(err, errlen, "%s: cannot make a link: %s", dir, strerror(-rc));
			goto out;
		}
	}
	hook(o, CS_LIVEDIR_LINK_MADE, dfd, tmp);
	if (renameat(dfd, tmp, dfd, name) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s/%s: cannot replace the link: %s", dir, name, strerror(-rc));
		unlinkat(dfd, tmp, 0);
		goto out;
	}
	if (syncing(o) && fsync(dfd) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s/%s: replaced, but syncing %s failed: %s", dir, name, dir,
			 strerror(-rc));
		goto out;
	}
	hook(o, CS_LIVEDIR_LINK_SWAPPED, dfd, name);
out:
	if (gfd >= 0)
		close(gfd); /* and the lock with it */
	if (dfd >= 0)
		close(dfd);
	return rc;
}

int cs_livedir_prune(const char *dir, const char *name, const char *const *keep, size_t n_keep,
		     char *err, size_t errlen)
{
	char cur[NAME_MAX + 1] = "";
	struct dirent *de;
	int dfd, gfd, rc, removed = 0;
	DIR *d;

	rc = open_dirs(dir, name, false, NULL, &dfd, &gfd, err, errlen);
	if (rc == -ENOENT) {
		err[0] = '\0';
		return 0;
	}
	if (rc < 0)
		return rc;
	if (flock(gfd, LOCK_EX) < 0 || (d = fdopendir(gfd)) == NULL) {
		rc = -errno;
		snprintf(err, errlen, "%s/%s/%s: %s", dir, CS_LIVEDIR_GEN, name, strerror(-rc));
		close(gfd);
		close(dfd);
		return rc;
	}
	/* Read under the lock: no swap is between naming a directory and linking it. */
	if (read_link(dfd, name, cur, sizeof(cur)) < 0)
		cur[0] = '\0';
	while ((de = readdir(d)) != NULL) {
		bool wanted = strcmp(de->d_name, cur) == 0, ours = de->d_name[0] != '\0';
		for (const char *p = de->d_name; *p != '\0'; p++)
			ours &= isalnum((unsigned char)*p) != 0;
		for (size_t i = 0; i < n_keep && !wanted; i++)
			wanted = keep[i] != NULL && strcmp(keep[i], de->d_name) == 0;
		if (!ours || wanted)
			continue;
		if ((rc = remove_tree(gfd, de->d_name)) == 0)
			removed++;
		else if (rc != -ENOENT)
			snprintf(err, errlen, "%s/%s/%s/%s: %s", dir, CS_LIVEDIR_GEN, name,
				 de->d_name, strerror(-rc));
	}
	closedir(d); /* closes gfd and its lock */
	close(dfd);
	return removed;
}

int cs_livedir_sweep(const char *dir, const char *name, char *err, size_t errlen)
{
	struct dirent *de;
	struct stat sb;
	int dfd, gfd, rc, n = 0;
	DIR *d;

	rc = open_dirs(dir, name, false, NULL, &dfd, &gfd, err, errlen);
	if (rc == -ENOENT && dfd < 0 && (dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (rc < 0 && rc != -ENOENT)
		return rc;
	/* Temporary links ".NAME.<hex>" in DIR: only symbolic links. */
	int dfd2 = dup(dfd);
	if (dfd2 >= 0 && (d = fdopendir(dfd2)) != NULL) {
		while ((de = readdir(d)) != NULL)
			if (is_temp(de->d_name, name) &&
			    fstatat(dfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(sb.st_mode) && unlinkat(dfd, de->d_name, 0) == 0)
				n++;
		closedir(d);
	} else if (dfd2 >= 0) {
		close(dfd2);
	}
	/* Directories ".ID.<hex>" in DIR/.gen/NAME: being built, or replaced. */
	if (gfd >= 0 && (d = fdopendir(gfd)) != NULL) {
		while ((de = readdir(d)) != NULL)
			if (is_temp(de->d_name, NULL) &&
			    fstatat(gfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISDIR(sb.st_mode) && remove_tree(gfd, de->d_name) == 0)
				n++;
		closedir(d);
	} else if (gfd >= 0) {
		close(gfd);
	}
	close(dfd);
	err[0] = '\0';
	return n;
}
