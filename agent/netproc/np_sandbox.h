/*
 * np_sandbox - the cage of netproc, the unprivileged network process of
 * certsyncd (#18): the root directory it sees, prepared by the parent, and
 * the steps that lock the child in before it reads a byte (chroot, no
 * capabilities, its own uid without groups, resource limits, no new
 * privileges, a seccomp filter that kills on anything it does not need).
 *
 * What lives in the root: read-only copies (0644, root-owned) of the files
 * glibc's resolver reads (/etc/resolv.conf, hosts, nsswitch.conf, host.conf,
 * gai.conf, each when the host has it), the CA bundle libcurl trusts by
 * default (at the same path as on the host) and the extra files the caller
 * names (the ACME issuers' ca_bundle files, under /extra/). Nothing in it is
 * writable by netproc; there is no /proc, /dev or /tmp.
 */
#ifndef NP_SANDBOX_H
#define NP_SANDBOX_H

#include <stddef.h>

/* One extra file: src on the host, copied to dst inside the root. */
struct np_root_file {
	const char *src;
	const char *dst; /* absolute, under /extra/ (e.g. "/extra/le/ca.pem"), no ".." */
};

/*
 * Parent side, as root, before each start of netproc: makes root (created
 * 0755 and root-owned when missing; refused when it is a symlink, not a
 * directory, not root's or writable by others) hold fresh copies of the
 * files above and of the n_extra extra files, each written atomically and
 * only when its bytes changed. A host file that is gone is removed from the
 * root, and so is anything under root/extra/ that extra no longer names (an
 * issuer removed by a SIGHUP). Returns 0, or a negative errno with a message
 * naming the file in err. Runs on any thread (blocking file work).
 */
int np_sandbox_prepare(const char *root, const struct np_root_file *extra, size_t n_extra,
		       char *err, size_t errlen);

struct np_sandbox_opts {
	const char *root; /* prepared by np_sandbox_prepare */
	const char *user; /* NULL: "certsync", or "nobody" when that user does not exist */
};

/*
 * Child side, as root, right after exec, before reading a byte from the
 * socket or starting any thread (the process must be single-threaded: the
 * filter is installed on the calling thread only and uids are changed
 * without glibc's cross-thread broadcast). curl_global_init (which loads
 * OpenSSL and its configuration from the host) runs before it; files netproc
 * opens afterwards are those of the root.
 *
 * In order: the user looked up (before the chroot), chroot(root) and
 * chdir("/"), every capability dropped from the bounding and ambient sets,
 * setgroups(0), setresgid/setresuid to the user (then a setuid(0) that must
 * fail and capabilities that must be empty), rlimits (no core, no file
 * size, 512 descriptors; address space and data only in builds without a
 * sanitizer), PR_SET_DUMPABLE 0, PR_SET_NO_NEW_PRIVS 1, and the seccomp
 * filter (np_sandbox.c lists what it allows and why; anything else kills
 * the process with SIGSYS). Returns 0, or a negative errno with a message in
 * err; after a failure the process is half-caged and must exit.
 */
int np_sandbox_enter(const struct np_sandbox_opts *o, char *err, size_t errlen);

#endif
