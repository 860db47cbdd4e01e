/*
 * cs_capath - an OpenSSL CApath directory kept hashed: HHHHHHHH.N symbolic
 * links for certificates (subject-name hash) and HHHHHHHH.rN for CRLs
 * (issuer-name hash), the links `openssl rehash` makes, plus an optional
 * CAfile bundle of the same certificates.
 *
 * The rules are those of `openssl rehash`: only files named *.pem, *.crt,
 * *.cer or *.crl (any case) are read; a file must hold exactly one
 * certificate or CRL as PEM_X509_INFO_read_bio() counts them (a certificate
 * and its key count as one), else it is skipped; a file whose SHA-1
 * fingerprint equals one already linked is a duplicate and skipped (files
 * are taken in strcmp order of their names); links that already point at
 * the right file keep their index; new ones take the lowest free index;
 * targets are bare file names (relative links); at most 256 per bucket.
 *
 * Where `openssl rehash` 3.0 leaves a hole or a stale link, this module
 * does not: a link whose target is no longer wanted is replaced or removed
 * even when its index is below the bucket's count (openssl keeps it "as is",
 * dangling, and lookups stop there), and a second link to a file that is
 * already linked is removed. Regular files are never touched, even when
 * their name looks like a hash link (openssl would unlink one in the way).
 *
 * The state of the directory is kept in memory after a full pass so that a
 * change to one file rewrites only the buckets it was and is in. A bucket is
 * rewritten without a gap: each link is made under a temporary name and
 * renamed over its final name, lowest index first, and surplus links are
 * removed highest index first, so a lookup (which stops at the first
 * missing index) never misses a certificate that stays.
 *
 * Reading a file decodes only what the links need: the PEM body, the
 * subject name (issuer name for a CRL) and the SHA-1 of the DER, without
 * the public key. Files that are anything but one plain CERTIFICATE or X509
 * CRL block of well-formed DER go through PEM_X509_INFO_read_bio() as openssl
 * rehash reads them.
 *
 * A handle is not thread-safe; one thread at a time may use it.
 */
#ifndef CS_CAPATH_H
#define CS_CAPATH_H

#include <openssl/x509.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct cs_capath cs_capath;

enum cs_capath_event {
	CS_CAPATH_LINKED = 0, /* name: the link, detail: its target */
	CS_CAPATH_UNLINKED,   /* name: the link, detail: its old target */
	CS_CAPATH_SKIPPED,    /* name: the file, detail: why (not an error) */
	CS_CAPATH_ERROR,      /* name: file or link, detail: what failed */
	CS_CAPATH_CAFILE,     /* name: the CAfile, detail: "N certificates" */
};

/* Called for each change and problem, on the thread that made the call. */
typedef void (*cs_capath_report_cb)(void *arg, enum cs_capath_event ev, const char *name,
				    const char *detail);

/*
 * Called just before the handle creates or re-points the hash link `link`
 * to target, or removes it (target NULL), on the thread that made the call.
 * One call stands for one inotify event on the link's name (IN_CREATE,
 * IN_MOVED_TO or IN_DELETE) unless the system call then fails: a caller
 * that watches the directory can tell the events of the handle's own links
 * from those of anyone else.
 */
typedef void (*cs_capath_own_cb)(void *arg, const char *link, const char *target);

/*
 * Called by a full pass between chunks of its work (every few dozen files
 * read or buckets written), on the pass's thread. Returns 1 after copying
 * into name (len bytes) the bare name of a file created, changed or removed
 * in the directory since the pass began, which the pass then takes in at
 * once: a new certificate or CRL gets a link right away instead of when
 * the pass ends. Returns 0 when there is none. Must be cheap.
 */
typedef int (*cs_capath_poll_cb)(void *arg, char *name, size_t len);

#define CS_CAPATH_NO_FSYNC 0x1 /* skip directory and CAfile fsyncs (tests, benchmarks) */

struct cs_capath_opts {
	const char *cafile;      /* NULL: none; else the bundle to maintain */
	mode_t cafile_mode;      /* 0: 0644 */
	unsigned flags;          /* CS_CAPATH_* */
	cs_capath_report_cb report; /* may be NULL */
	void *report_arg;
	/*
	 * NULL: none. Else a file this handle owns (e.g. in the state directory)
	 * where a full pass keeps, per file, its (device, inode, size, mtime,
	 * ctime) and the hash and fingerprint read from it. The next full pass
	 * (an agent start) reads only the files whose key changed. Losing it
	 * costs only time.
	 */
	const char *cache;
	cs_capath_own_cb own;   /* may be NULL; gets report_arg */
	cs_capath_poll_cb poll; /* may be NULL; gets report_arg */
};

/* What one call changed. */
struct cs_capath_stats {
	unsigned linked;   /* links created or re-pointed */
	unsigned unlinked; /* links removed */
	unsigned skipped;  /* files skipped (newly, for an update) */
	unsigned errors;   /* files that could not be read, links that could not be made */
	unsigned certs;    /* certificates linked in the whole directory afterwards */
	unsigned crls;     /* CRLs linked afterwards */
	int cafile_written; /* 1 when the CAfile was rewritten */
};

/*
 * Creates a handle for dir (nothing is read until cs_capath_full). Returns
 * it (free with cs_capath_free) or NULL with a message in err.
 */
cs_capath *cs_capath_new(const char *dir, const struct cs_capath_opts *opts, char *err,
			 size_t errlen);

/* Frees the handle; accepts NULL. The directory is left as it is. */
void cs_capath_free(cs_capath *cp);

/* Returns the directory of the handle (owned by it). */
const char *cs_capath_dir(const cs_capath *cp);

/*
 * Full pass: forgets what it knew, reads every file and link of the
 * directory, rewrites all buckets and the CAfile. Files that opts->poll
 * names meanwhile are read again (or forgotten when gone) at once; a
 * certificate or CRL among them that has no link yet is given one at its
 * bucket's lowest free index right away (an early link), and the pass's
 * end puts the bucket where openssl rehash puts it, the early link counted
 * as not there before the pass. Returns 0, -EIO when some
 * file could not be read or some link could not be made (the rest is done;
 * each reported), or another negative errno when the directory cannot be
 * read, with a message in err. *st (may be NULL) says what changed.
 */
int cs_capath_full(cs_capath *cp, struct cs_capath_stats *st, char *err, size_t errlen);

/*
 * Incremental update after name (a bare file name in the directory) was
 * created, changed, renamed or removed: re-reads that file, or the bucket
 * when name is a hash link, and rewrites only the buckets concerned and,
 * when the set of certificates changed, the CAfile. Names that are neither
 * (other extensions, dot files) are ignored. Needs a full pass first
 * (-EINVAL otherwise). Returns as cs_capath_full.
 */
int cs_capath_update(cs_capath *cp, const char *name, struct cs_capath_stats *st, char *err,
		     size_t errlen);

/*
 * Writes x (a certificate) or, when x is NULL, crl as PEM into dir/name
 * (mode 0644, atomically, unchanged bytes not rewritten), then updates its
 * bucket. name must end in .pem, .crt, .cer or .crl. Returns as
 * cs_capath_update.
 */
int cs_capath_publish(cs_capath *cp, const char *name, X509 *x, X509_CRL *crl,
		      struct cs_capath_stats *st, char *err, size_t errlen);

/*
 * Calls cb(arg, CS_CAPATH_SKIPPED or CS_CAPATH_ERROR, file, reason) for each
 * file of the directory that is currently not linked for a reason, in file
 * name order. Returns the number of such files.
 */
size_t cs_capath_problems(const cs_capath *cp, cs_capath_report_cb cb, void *arg);

/*
 * One full pass on dir without keeping a handle (`certsyncctl rehash`).
 * Returns as cs_capath_full.
 */
int cs_capath_rehash(const char *dir, const struct cs_capath_opts *opts,
		     struct cs_capath_stats *st, char *err, size_t errlen);

/* True when name has an extension openssl rehash reads (.pem .crt .cer .crl, any case). */
int cs_capath_name_eligible(const char *name);

/* True when name is a canonical hash link name (8 lowercase hex, '.', optional 'r', index). */
int cs_capath_name_is_link(const char *name);

#endif
