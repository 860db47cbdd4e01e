/*
 * np_sandbox - netproc's root directory (prepared by the parent) and the
 * steps that cage netproc in it (taken by the child, right after exec).
 *
 * The seccomp filter's allowlist was found with strace on
 * tests/np_sandbox_drv (an HTTPS GET through cs_http: libcurl's multi
 * interface on libuv, curl's threaded resolver, OpenSSL, glibc's resolver on
 * /etc/hosts and DNS), plain and under ASan+UBSan, then tightened: each
 * group below says who needs it. Anything not listed kills the process
 * (SIGSYS), except where a library is known to probe and copes with a
 * refusal: those fail with an errno instead.
 */
#include "np_sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/netlink.h>
#include <linux/sched.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cs_atomic.h"

/*
 * libseccomp's SCMP_A0..SCMP_A5 leave the second datum out of their compound
 * literal for a one-value comparison; clang (the fuzz build) warns about it.
 */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

/* Sanitizer builds: the runtime needs more syscalls and maps terabytes of
   shadow memory (no RLIMIT_AS). */
#if defined(__SANITIZE_ADDRESS__)
#define NP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NP_ASAN 1
#endif
#endif
#if defined(NP_ASAN) || defined(NP_SANITIZER_BUILD)
#define NP_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(undefined_behavior_sanitizer)
#define NP_SANITIZER 1
#endif
#endif
#ifdef NP_ASAN
#include <sanitizer/lsan_interface.h>
#endif

#define NP_MAX_FILE (16u << 20) /* a CA bundle is ~200 KiB */
#define NP_NOFILE 512
#define NP_AS_MAX (2ul << 30)   /* threads' stacks and malloc arenas are reserved, not used */
#define NP_DATA_MAX (1ul << 30)
#define NP_DEFAULT_CA "/etc/ssl/certs/ca-certificates.crt"

/* What glibc's resolver reads (getaddrinfo: nsswitch, hosts, DNS, sorting). */
static const char *const host_files[] = {
	"/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf",
};

/* err (of the function using it) formatted, and rc, read before: the value. */
#define FAIL(rc, ...)                                                                         \
	({                                                                                    \
		int rc_ = (rc);                                                               \
		if (err != NULL && errlen > 0)                                                \
			snprintf(err, errlen, __VA_ARGS__);                                   \
		rc_;                                                                          \
	})

/* ---- the root, parent side ---- */

/* The CA bundle libcurl reads when no CURLOPT_CAINFO is set. */
static const char *default_ca(char *buf, size_t len)
{
#if CURL_AT_LEAST_VERSION(7, 84, 0)
	CURL *e = curl_easy_init();
	char *p = NULL;

	if (e != NULL && curl_easy_getinfo(e, CURLINFO_CAINFO, &p) == CURLE_OK && p != NULL &&
	    p[0] == '/' && strlen(p) < len) {
		strcpy(buf, p);
		curl_easy_cleanup(e);
		return buf;
	}
	curl_easy_cleanup(e);
#endif
	snprintf(buf, len, "%s", NP_DEFAULT_CA);
	return buf;
}

/* path is a directory of root's that nobody else may write (created when
   missing and create is set), and no symlink. */
static int safe_dir(const char *path, int create, char *err, size_t errlen)
{
	struct stat st;

	if (lstat(path, &st) != 0) {
		if (errno != ENOENT || !create)
			return FAIL(-errno, "%s: %s", path, strerror(errno));
		if (mkdir(path, 0755) != 0 && errno != EEXIST)
			return FAIL(-errno, "mkdir %s: %s", path, strerror(errno));
		if (lstat(path, &st) != 0)
			return FAIL(-errno, "%s: %s", path, strerror(errno));
		if (S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode) && chmod(path, 0755) != 0)
			return FAIL(-errno, "chmod %s: %s", path, strerror(errno));
		st.st_mode = (st.st_mode & ~07777u) | 0755;
	}
	if (S_ISLNK(st.st_mode))
		return FAIL(-ELOOP, "%s: a symlink, not a directory", path);
	if (!S_ISDIR(st.st_mode))
		return FAIL(-ENOTDIR, "%s: not a directory", path);
	if (st.st_uid != geteuid())
		return FAIL(-EPERM, "%s: owned by uid %u, not by root", path,
			    (unsigned)st.st_uid);
	if (st.st_mode & 022)
		return FAIL(-EPERM, "%s: writable by others (mode %03o)", path,
			    (unsigned)(st.st_mode & 0777));
	return 0;
}

/* dst is "/a/b/file": no empty, "." or ".." component, not ending in '/'. */
static int clean_dst(const char *dst)
{
	const char *p = dst;

	if (dst[0] != '/')
		return 0;
	while (*p == '/') {
		const char *c = p + 1, *e = strchr(c, '/');
		size_t n = e != NULL ? (size_t)(e - c) : strlen(c);

		if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return 0;
		p = c + n;
	}
	return 1;
}

/* The directories of dst (absolute inside root) made, each checked. */
static int make_parents(const char *root, const char *dst, char *err, size_t errlen)
{
	char path[PATH_MAX];
	const char *p = dst;
	int rc;

	while ((p = strchr(p + 1, '/')) != NULL) {
		if ((size_t)snprintf(path, sizeof(path), "%s%.*s", root, (int)(p - dst), dst) >=
		    sizeof(path))
			return FAIL(-ENAMETOOLONG, "%s%s: path too long", root, dst);
		if ((rc = safe_dir(path, 1, err, errlen)) < 0)
			return rc;
	}
	return 0;
}

/* src read whole (a regular file, at most NP_MAX_FILE bytes) into *out. */
static int slurp(const char *src, char **out, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	char *buf;
	size_t got = 0;
	int fd = open(src, O_RDONLY | O_CLOEXEC | O_NOCTTY), rc;

	if (fd < 0)
		return FAIL(-errno, "%s: %s", src, strerror(errno));
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		close(fd);
		return FAIL(rc, "%s: %s", src, strerror(-rc));
	}
	if (!S_ISREG(st.st_mode) || (size_t)st.st_size > NP_MAX_FILE) {
		close(fd);
		return FAIL(S_ISREG(st.st_mode) ? -EFBIG : -EINVAL,
			    "%s: not a regular file of at most %u bytes", src, NP_MAX_FILE);
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		close(fd);
		return FAIL(-ENOMEM, "%s: out of memory", src);
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			free(buf);
			close(fd);
			return FAIL(rc, "%s: read: %s", src,
				    n < 0 ? strerror(-rc) : "file shrank");
		}
		got += (size_t)n;
	}
	close(fd);
	*out = buf;
	*len = got;
	return 0;
}

/* A fresh copy of src at root+dst (0644, root's), unless it holds the same bytes. */
static int copy_in(const char *root, const char *src, const char *dst, char *err, size_t errlen)
{
	struct cs_atomic_opts ao = {.mode = 0644, .uid = 0, .gid = 0};
	char path[PATH_MAX];
	char *data = NULL;
	size_t len = 0;
	int rc;

	if ((size_t)snprintf(path, sizeof(path), "%s%s", root, dst) >= sizeof(path))
		return FAIL(-ENAMETOOLONG, "%s%s: path too long", root, dst);
	if ((rc = make_parents(root, dst, err, errlen)) < 0)
		return rc;
	if ((rc = slurp(src, &data, &len, err, errlen)) < 0)
		return rc;
	/* Temp files of a parent killed mid-write; nothing else writes here. */
	cs_atomic_sweep(path, NULL, 0);
	if (!cs_atomic_same(path, data, len))
		rc = cs_atomic_write(path, data, len, &ao, err, errlen);
	free(data);
	return rc < 0 ? rc : 0;
}

/* nftw has no argument: the walk's wanted list, per thread. */
static __thread const struct np_root_file *walk_extra;
static __thread size_t walk_n, walk_rootlen;

static int prune_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	const char *in = path + walk_rootlen; /* "/extra/..." */
	size_t i;

	if (ftw->level == 0)
		return 0;
	if (type == FTW_DP) {
		rmdir(path); /* fails while it holds a wanted file: kept */
		return 0;
	}
	for (i = 0; i < walk_n; i++)
		if (strcmp(walk_extra[i].dst, in) == 0 && type == FTW_F)
			return 0;
	if (unlink(path) != 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/* Everything under root/extra that extra does not name, removed. */
static int prune_extra(const char *root, const struct np_root_file *extra, size_t n_extra,
		       char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct stat st;
	int rc;

	snprintf(path, sizeof(path), "%s/extra", root);
	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : FAIL(-errno, "%s: %s", path, strerror(errno));
	if ((rc = safe_dir(path, 0, err, errlen)) < 0)
		return rc;
	walk_extra = extra;
	walk_n = n_extra;
	walk_rootlen = strlen(root);
	rc = nftw(path, prune_one, 16, FTW_PHYS | FTW_DEPTH | FTW_MOUNT);
	walk_extra = NULL;
	if (rc != 0)
		return FAIL(rc < 0 ? rc : -EIO, "pruning %s: %s", path,
			    strerror(rc < 0 ? -rc : EIO));
	return 0;
}

int np_sandbox_prepare(const char *root, const struct np_root_file *extra, size_t n_extra,
		       char *err, size_t errlen)
{
	char ca[PATH_MAX], path[PATH_MAX];
	size_t i;
	int rc;

	if (root == NULL || root[0] != '/' || strlen(root) > PATH_MAX / 2)
		return FAIL(-EINVAL, "root %s: not an absolute path",
			    root != NULL ? root : "(null)");
	for (i = 0; i < n_extra; i++)
		if (extra[i].src == NULL || extra[i].dst == NULL ||
		    strncmp(extra[i].dst, "/extra/", 7) != 0 || !clean_dst(extra[i].dst))
			return FAIL(-EINVAL, "%s: not a path under /extra/",
				    extra[i].dst != NULL ? extra[i].dst : "(null)");
	if ((rc = safe_dir(root, 1, err, errlen)) < 0)
		return rc;
	for (i = 0; i < sizeof(host_files) / sizeof(host_files[0]); i++) {
		if (access(host_files[i], F_OK) != 0 && errno == ENOENT) {
			snprintf(path, sizeof(path), "%s%s", root, host_files[i]);
			if (unlink(path) != 0 && errno != ENOENT)
				return FAIL(-errno, "%s: %s", path, strerror(errno));
			continue;
		}
		if ((rc = copy_in(root, host_files[i], host_files[i], err, errlen)) < 0)
			return rc;
	}
	default_ca(ca, sizeof(ca));
	if (!clean_dst(ca))
		return FAIL(-EINVAL, "%s: not a clean absolute path", ca);
	if ((rc = copy_in(root, ca, ca, err, errlen)) < 0)
		return rc;
	if ((rc = prune_extra(root, extra, n_extra, err, errlen)) < 0)
		return rc;
	for (i = 0; i < n_extra; i++)
		if ((rc = copy_in(root, extra[i].src, extra[i].dst, err, errlen)) < 0)
			return rc;
	return 0;
}

/* ---- the cage, child side ---- */

/* Whom to become: o->user, or certsync (nobody when it does not exist). */
static int lookup_user(const struct np_sandbox_opts *o, uid_t *uid, gid_t *gid, char *err,
		       size_t errlen)
{
	const char *names[2] = {o->user != NULL ? o->user : "certsync", o->user != NULL ? NULL : "nobody"};
	struct passwd pw, *res = NULL;
	char buf[4096];
	int i, rc = 0;

	for (i = 0; i < 2 && names[i] != NULL; i++) {
		rc = getpwnam_r(names[i], &pw, buf, sizeof(buf), &res);
		if (res != NULL)
			break;
	}
	if (res == NULL)
		return FAIL(rc > 0 ? -rc : -ENOENT, "user %s%s: not found", names[0],
			    names[1] != NULL ? " (nor nobody)" : "");
	if (pw.pw_uid == 0 || pw.pw_gid == 0)
		return FAIL(-EPERM, "user %s: uid or gid 0", pw.pw_name);
	*uid = pw.pw_uid;
	*gid = pw.pw_gid;
	return 0;
}

/* No capability left in any set, bounding and ambient included. */
static int drop_caps(char *err, size_t errlen)
{
	int cap, in;

	/* Dropping needs CAP_SETPCAP (certsyncd.service keeps it in its
	   bounding set for this); one already out is left alone. */
	for (cap = 0; (in = prctl(PR_CAPBSET_READ, cap, 0, 0, 0)) >= 0; cap++)
		if (in == 1 && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0)
			return FAIL(-errno, "dropping capability %d from the bounding set: %s",
				    cap, strerror(errno));
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
		return FAIL(-errno, "clearing ambient capabilities: %s", strerror(errno));
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0)
		return FAIL(-errno, "PR_SET_KEEPCAPS: %s", strerror(errno));
	return 0;
}

/* After the uid change: inheritable cleared too, and every set checked empty. */
static int caps_empty(char *err, size_t errlen)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2];
	int i;

	memset(d, 0, sizeof(d));
	if (syscall(SYS_capset, &h, d) != 0)
		return FAIL(-errno, "capset: %s", strerror(errno));
	if (syscall(SYS_capget, &h, d) != 0)
		return FAIL(-errno, "capget: %s", strerror(errno));
	for (i = 0; i < 2; i++)
		if (d[i].effective != 0 || d[i].permitted != 0 || d[i].inheritable != 0)
			return FAIL(-EPERM, "capabilities left after the uid change");
	return 0;
}

static int become(uid_t uid, gid_t gid, char *err, size_t errlen)
{
	uid_t r, e, s;

	if (setgroups(0, NULL) != 0)
		return FAIL(-errno, "setgroups: %s", strerror(errno));
	if (setresgid(gid, gid, gid) != 0)
		return FAIL(-errno, "setresgid(%u): %s", (unsigned)gid, strerror(errno));
	if (setresuid(uid, uid, uid) != 0)
		return FAIL(-errno, "setresuid(%u): %s", (unsigned)uid, strerror(errno));
	if (setuid(0) != -1 || setgid(0) != -1)
		return FAIL(-EPERM, "could become root again after the uid change");
	if (getresuid(&r, &e, &s) != 0 || r != uid || e != uid || s != uid)
		return FAIL(-EPERM, "uids not all %u after setresuid", (unsigned)uid);
	return caps_empty(err, errlen);
}

static int limit(int res, rlim_t v, const char *name, char *err, size_t errlen)
{
	struct rlimit rl;

	if (getrlimit(res, &rl) == 0 && rl.rlim_max != RLIM_INFINITY && rl.rlim_max < v)
		v = rl.rlim_max; /* only ever lowered */
	rl.rlim_cur = rl.rlim_max = v;
	if (setrlimit(res, &rl) != 0)
		return FAIL(-errno, "setrlimit(%s): %s", name, strerror(errno));
	return 0;
}

/* RLIMIT_NPROC is not set: it counts every process of the uid, and nobody may be shared. */
static int limits(char *err, size_t errlen)
{
	int rc;

	if ((rc = limit(RLIMIT_CORE, 0, "RLIMIT_CORE", err, errlen)) < 0 ||
	    (rc = limit(RLIMIT_FSIZE, 0, "RLIMIT_FSIZE", err, errlen)) < 0 ||
	    (rc = limit(RLIMIT_NOFILE, NP_NOFILE, "RLIMIT_NOFILE", err, errlen)) < 0)
		return rc;
#ifndef NP_SANITIZER
	if ((rc = limit(RLIMIT_AS, NP_AS_MAX, "RLIMIT_AS", err, errlen)) < 0 ||
	    (rc = limit(RLIMIT_DATA, NP_DATA_MAX, "RLIMIT_DATA", err, errlen)) < 0)
		return rc;
#endif
	return 0;
}

/*
 * The allowlist, by who needs it. Syscalls with arguments worth checking
 * (clone, openat, socket, ioctl, kill, prlimit64, mmap, mprotect) are added
 * with their conditions in add_filtered, not here.
 */
static const char *const allowed[] = {
	/* Descriptors: libuv, libcurl, OpenSSL's BIO on sockets, stderr logging
	   (write on fd 2), the socketpair to the parent (read/write, and
	   sendmsg/recvmsg for descriptors passed with SCM_RIGHTS), files read
	   by glibc's resolver and OpenSSL's CA loading. */
	"read", "write", "readv", "writev", "pread64", "close", "lseek", "fcntl", "dup", "dup3",
	"fstat", "newfstatat", "statx", "pipe2",
	/* The event loop (libuv): epoll, its async handle (eventfd), the signal
	   pipe, poll (libcurl checks a socket's state with a zero timeout). */
	"epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd2", "poll",
	"ppoll",
	/* Sockets once made (socket itself is filtered): libcurl's connections
	   and its IPv6 probe, glibc's DNS queries (sendmmsg: A and AAAA at
	   once), getaddrinfo's sorting (connect of UDP sockets,
	   getsockname), the netlink query for local addresses, the http-01
	   responder's accept on the socket the parent listens on. */
	"connect", "accept4", "getsockname", "getpeername", "setsockopt", "getsockopt", "sendto",
	"recvfrom", "sendmsg", "recvmsg", "sendmmsg", "shutdown",
	/* Threads (libuv's pool, curl's resolver threads) and their locks:
	   glibc's pthread_create (clone is filtered, clone3 fails with ENOSYS),
	   futexes, robust lists, rseq, thread exit, affinity (libuv counts the
	   CPUs it may use). */
	"futex", "set_robust_list", "rseq", "exit", "exit_group", "gettid", "getpid", "sched_yield",
	"sched_getaffinity", "madvise", "munmap", "mremap", "brk",
	/* Signals: libuv's signal handling, glibc's abort, return from a handler. */
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "restart_syscall",
	/* Time (vDSO mostly; the syscalls when it falls back) and randomness
	   (OpenSSL's seeding, glibc's resolver query ids). */
	"clock_gettime", "clock_getres", "gettimeofday", "clock_nanosleep", "nanosleep", "getrandom",
	/* Read-only facts about the process and the machine: glibc (uname in
	   getaddrinfo, sysinfo in qsort), OpenSSL's getuid checks. */
	"uname", "sysinfo", "getuid", "geteuid", "getgid", "getegid",
};

#ifdef NP_SANITIZER
/* ASan/UBSan runtimes: an alternate signal stack per thread (sigaltstack,
   set up as each thread starts), and when they report an error the path of
   the executable (readlink /proc/self/exe, absent in the root: the report
   then has addresses without file names). Their memory calls (mmap, madvise
   MADV_NOHUGEPAGE/DONTDUMP) and sched_getaffinity are allowed anyway. */
static const char *const allowed_sanitizer[] = {
	"sigaltstack", "readlink", "readlinkat",
};
#endif

static int rule(scmp_filter_ctx ctx, uint32_t act, const char *name, unsigned n,
		const struct scmp_arg_cmp *cmp, char *err, size_t errlen)
{
	int nr = seccomp_syscall_resolve_name(name), rc;

	if (nr < 0)
		return 0; /* not a syscall of this architecture */
	rc = seccomp_rule_add_array(ctx, act, nr, n, cmp);
	if (rc < 0)
		return FAIL(rc, "seccomp rule for %s: %s", name, strerror(-rc));
	return 0;
}

#define RULE(act, name, ...)                                                                  \
	do {                                                                                  \
		const struct scmp_arg_cmp c_[] = {__VA_ARGS__};                               \
		if ((rc = rule(ctx, act, name, sizeof(c_) / sizeof(c_[0]), c_, err, errlen)) < 0) \
			return rc;                                                            \
	} while (0)

/* The syscalls whose arguments are checked, each with why. */
static int add_filtered(scmp_filter_ctx ctx, char *err, size_t errlen)
{
	const unsigned wr[] = {O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND};
	const unsigned long ioctls[] = {FIONBIO, FIOCLEX, FIONCLEX, FIONREAD, TCGETS};
	const scmp_datum_t wmask = O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND;
	const scmp_datum_t pid = (scmp_datum_t)getpid();
	size_t i;
	int rc;

	/* Threads only: glibc tries clone3 first and falls back to clone when
	   it is missing; a clone without CLONE_THREAD (fork, vfork,
	   posix_spawn) kills. */
	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0)) < 0 &&
	    rc != -EDOM)
		return FAIL(rc, "seccomp rule for clone3: %s", strerror(-rc));
	RULE(SCMP_ACT_ALLOW, "clone", SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
	/* Files: read only. Opening for writing fails as on a read-only file
	   system (the root holds nothing netproc may write anyway). */
	RULE(SCMP_ACT_ALLOW, "openat", SCMP_A2(SCMP_CMP_MASKED_EQ, wmask, 0));
	RULE(SCMP_ACT_ALLOW, "open", SCMP_A1(SCMP_CMP_MASKED_EQ, wmask, 0));
	for (i = 0; i < sizeof(wr) / sizeof(wr[0]); i++) {
		RULE(SCMP_ACT_ERRNO(EACCES), "openat", SCMP_A2(SCMP_CMP_MASKED_EQ, wr[i], wr[i]));
		RULE(SCMP_ACT_ERRNO(EACCES), "open", SCMP_A1(SCMP_CMP_MASKED_EQ, wr[i], wr[i]));
	}
	/* Sockets: IPv4 and IPv6 (libcurl, DNS, probes) and a netlink route
	   socket (getaddrinfo asks which addresses are local to sort its
	   answers). AF_UNIX fails with EACCES: glibc tries nscd's socket and
	   carries on without it. Any other family kills. */
	RULE(SCMP_ACT_ALLOW, "socket", SCMP_A0(SCMP_CMP_EQ, AF_INET));
	RULE(SCMP_ACT_ALLOW, "socket", SCMP_A0(SCMP_CMP_EQ, AF_INET6));
	RULE(SCMP_ACT_ALLOW, "socket", SCMP_A0(SCMP_CMP_EQ, AF_NETLINK),
	     SCMP_A2(SCMP_CMP_EQ, NETLINK_ROUTE));
	RULE(SCMP_ACT_ERRNO(EACCES), "socket", SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
	/* A connected pair reaches nobody: libcurl's multi handle wakes itself
	   through one. */
	RULE(SCMP_ACT_ALLOW, "socketpair", SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
	/* ioctl: non-blocking and close-on-exec (libuv), bytes waiting, and
	   isatty's TCGETS (stdio on stderr); nothing that acts on a terminal. */
	for (i = 0; i < sizeof(ioctls) / sizeof(ioctls[0]); i++)
		RULE(SCMP_ACT_ALLOW, "ioctl", SCMP_A1(SCMP_CMP_EQ, ioctls[i]));
	/* Signals to itself only (raise, abort): the uid may be shared. */
	RULE(SCMP_ACT_ALLOW, "kill", SCMP_A0(SCMP_CMP_EQ, pid));
	RULE(SCMP_ACT_ALLOW, "tgkill", SCMP_A0(SCMP_CMP_EQ, pid));
	/* bind: only a netlink address (12 bytes; an IPv4 one is 16, IPv6 28, and
	   AF_UNIX sockets cannot be made): glibc's getaddrinfo with AI_ADDRCONFIG
	   (the verify probes) binds its NETLINK_ROUTE socket to ask for the
	   host's addresses. No port can be bound. */
	RULE(SCMP_ACT_ALLOW, "bind",
	     SCMP_A2(SCMP_CMP_MASKED_EQ, 0xffffffffu, sizeof(struct sockaddr_nl)));
	/* Limits read (libuv and glibc size thread stacks), never set. */
	RULE(SCMP_ACT_ALLOW, "prlimit64", SCMP_A0(SCMP_CMP_EQ, 0), SCMP_A2(SCMP_CMP_EQ, 0));
	RULE(SCMP_ACT_ALLOW, "getrlimit");
	/* Memory: malloc, thread stacks and their guard pages; never new
	   executable memory (EPERM: nothing netproc runs needs it). */
	RULE(SCMP_ACT_ALLOW, "mmap", SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	RULE(SCMP_ACT_ALLOW, "mprotect", SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	RULE(SCMP_ACT_ERRNO(EPERM), "mmap", SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC));
	RULE(SCMP_ACT_ERRNO(EPERM), "mprotect", SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC));
	return 0;
}

/*
 * A syscall outside the filter: say which (on stderr, a pipe the parent reads
 * into its log), then die of it. The default action traps rather than kills
 * at once so that the log names the call; the handler puts SIGSYS back to its
 * default and raises it again. A handler netproc installed itself would only
 * make the call fail (ENOSYS), never run it.
 */
static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
	char msg[96] = "certsync netproc: seccomp: system call ";
	size_t n = strlen(msg);
	static const char tail[] = " is not allowed; netproc dies\n";
	char digits[16];
	int nr = si->si_syscall, k = 0;

	(void)uc;
	do
		digits[k++] = (char)('0' + nr % 10);
	while ((nr /= 10) > 0 && k < (int)sizeof(digits));
	while (k > 0 && n < sizeof(msg) - 40)
		msg[n++] = digits[--k];
	memcpy(msg + n, tail, sizeof(tail) - 1);
	n += sizeof(tail) - 1;
	if (write(2, msg, n) < 0) {
		/* nothing else to tell it to */
	}
	/* The call returns ENOSYS when this handler does; the signal, raised
	   again with the default action, kills first (it is blocked until
	   then). */
	signal(sig, SIG_DFL);
	raise(sig);
}

static int load_filter(char *err, size_t errlen)
{
	struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };
	scmp_filter_ctx ctx;

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0)
		return FAIL(-errno, "sigaction SIGSYS: %s", strerror(errno));
	ctx = seccomp_init(SCMP_ACT_TRAP);
	size_t i;
	int rc = 0;

	if (ctx == NULL)
		return FAIL(-ENOMEM, "seccomp_init failed");
	for (i = 0; rc == 0 && i < sizeof(allowed) / sizeof(allowed[0]); i++)
		rc = rule(ctx, SCMP_ACT_ALLOW, allowed[i], 0, NULL, err, errlen);
#ifdef NP_SANITIZER
	for (i = 0; rc == 0 && i < sizeof(allowed_sanitizer) / sizeof(allowed_sanitizer[0]); i++)
		rc = rule(ctx, SCMP_ACT_ALLOW, allowed_sanitizer[i], 0, NULL, err, errlen);
#endif
	if (rc == 0)
		rc = add_filtered(ctx, err, errlen);
	if (rc == 0 && (rc = seccomp_load(ctx)) < 0)
		(void)FAIL(rc, "loading the seccomp filter: %s", strerror(-rc));
	seccomp_release(ctx);
	return rc;
}

int np_sandbox_enter(const struct np_sandbox_opts *o, char *err, size_t errlen)
{
	uid_t uid;
	gid_t gid;
	int rc;

	if (o == NULL || o->root == NULL || o->root[0] != '/')
		return FAIL(-EINVAL, "no absolute root directory");
	if (geteuid() != 0)
		return FAIL(-EPERM, "not running as root");
	if ((rc = lookup_user(o, &uid, &gid, err, errlen)) < 0)
		return rc;
	if ((rc = safe_dir(o->root, 0, err, errlen)) < 0)
		return rc;
#ifdef NP_ASAN
	/* LeakSanitizer cannot run in the cage (its exit check clones a
	   tracer, ptraces the threads and reads /proc): it checks now, and
	   this first check is the process's last (no check at exit). */
	__lsan_do_leak_check();
#endif
	if (chroot(o->root) != 0)
		return FAIL(-errno, "chroot %s: %s", o->root, strerror(errno));
	if (chdir("/") != 0)
		return FAIL(-errno, "chdir / in %s: %s", o->root, strerror(errno));
	if ((rc = drop_caps(err, errlen)) < 0 || (rc = become(uid, gid, err, errlen)) < 0 ||
	    (rc = limits(err, errlen)) < 0)
		return rc;
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		return FAIL(-errno, "PR_SET_DUMPABLE: %s", strerror(errno));
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return FAIL(-errno, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
	return load_filter(err, errlen);
}
