/*
 * cs_capath_int.h - what the files of cs_capath share, and nothing outside
 * them may use: the in-memory picture of the directory (files by name,
 * buckets by type and hash, the links of each bucket by index, the cache as
 * read) and the functions one file calls in another (named cs_capath__*).
 * The interface and its rules are in cs_capath.h.
 */
#ifndef CS_CAPATH_INT_H
#define CS_CAPATH_INT_H

#include "cs_capath.h"

#include "cs_atomic.h"
#include "cs_htab.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_COLLISIONS 256 /* as openssl rehash */
#define MAX_LINK_ID 65535  /* openssl keeps indices in an unsigned short */
#define SHA1_LEN 20
#define MAX_FILE (16L << 20) /* larger files are no single certificate or CRL */
#define POLL_EVERY 32        /* files read or buckets written between two polls */
#define POLL_MAX 64          /* names taken in at one poll; the rest wait for the next */

enum kind { KIND_NONE = 0, KIND_CERT, KIND_CRL };

struct bucket;

/* What identifies a file's bytes without reading them (as git's index does). */
struct fkey {
	dev_t dev;
	ino_t ino;
	off_t size;
	int64_t mtime_ns, ctime_ns;
};

/* One line of the cache: a file's key and what reading it gave. */
struct centry {
	char *name;
	struct fkey key;
	enum kind kind;
	uint32_t hash;
	unsigned char sha1[SHA1_LEN];
	struct cs_htab_node node; /* in cp->cached, by name */
};

struct cfile {
	char *name;
	enum kind kind;
	uint32_t hash;
	unsigned char sha1[SHA1_LEN];
	unsigned char *der; /* certificates: DER, for the CAfile */
	int derlen;
	char *skip;         /* why it is not linked, or NULL */
	int skip_err;       /* the reason is an error, not a rule */
	int linked;
	int keyed;          /* the stat key below is that of the bytes read */
	struct fkey key;
	struct bucket *b;
	struct cs_htab_node node; /* in cp->files, by name */
};

struct link {
	char *target; /* NULL: no symlink at this index */
	int blocked;  /* something that is not a symlink has this name */
	int early;    /* made by this full pass for a polled file: absent for the decision */
};

struct bucket {
	int crl;
	uint32_t hash;
	struct link *links;
	int nlinks; /* indices 0..nlinks-1 are allocated */
	struct cfile **mem;
	int nmem, capmem;
	int touched; /* a polled file came or went since the pass last wrote the bucket */
	struct cs_htab_node node; /* in cp->buckets, by kind and subject hash */
};

struct cs_capath {
	char *dir;
	char *cafile;
	mode_t cafile_mode;
	unsigned flags;
	cs_capath_report_cb report;
	cs_capath_own_cb own;
	cs_capath_poll_cb poll;
	void *report_arg;
	int scanned;
	int dirfd; /* open during a call */
	unsigned tmpseq;
	int cafile_dirty;
	int wrote; /* a link was made or removed since the directory was opened */
	struct cs_htab files;   /* struct cfile by name */
	struct cs_htab buckets; /* struct bucket by kind and subject hash */
	struct cs_capath_stats *st;
	char *cache;           /* NULL: no cache */
	struct cs_htab cached; /* struct centry by name: the cache as read at the start of a full pass */
	EVP_MD *sha1;          /* fetched once: a fetch per file costs as much as the digest */
};

/* cs_capath.c */
int cs_capath__parse_link(const char *name, int *crl, uint32_t *hash, int *id);
void cs_capath__link_name(const struct bucket *b, int id, char *buf, size_t len);
void cs_capath__report(cs_capath *cp, enum cs_capath_event ev, const char *name,
		       const char *detail);
void cs_capath__own_link(cs_capath *cp, const char *name, const char *target);
void cs_capath__report_skip(cs_capath *cp, const struct cfile *f);
void cs_capath__close_dir(cs_capath *cp);

/* cs_capath_table.c */
struct cfile *cs_capath__file_find(const cs_capath *cp, const char *name);
struct cfile *cs_capath__file_next(const cs_capath *cp, const struct cfile *f);
void cs_capath__file_clear(struct cfile *f);
struct cfile *cs_capath__file_add(cs_capath *cp, const char *name);
void cs_capath__file_remove(cs_capath *cp, struct cfile *f);
struct bucket *cs_capath__bucket_get(cs_capath *cp, int crl, uint32_t hash, int create);
struct bucket *cs_capath__bucket_next(const cs_capath *cp, const struct bucket *b);
int cs_capath__bucket_set_link(struct bucket *b, int id, const char *target, int blocked);
int cs_capath__bucket_add_member(struct bucket *b, struct cfile *f);
void cs_capath__bucket_del_member(struct bucket *b, struct cfile *f);
void cs_capath__state_reset(cs_capath *cp);

/* cs_capath_cache.c */
int64_t cs_capath__ts_ns(const struct timespec *ts);
void cs_capath__key_of(const struct stat *st, struct fkey *k);
int cs_capath__key_eq(const struct fkey *a, const struct fkey *b);
void cs_capath__cache_drop(cs_capath *cp);
void cs_capath__cache_load(cs_capath *cp);
const struct centry *cs_capath__cache_find(const cs_capath *cp, const char *name);
void cs_capath__cache_save(cs_capath *cp, int64_t start_ns);

/* cs_capath_read.c */
void cs_capath__set_skip(struct cfile *f, int is_err, const char *prefix, const char *arg);
int cs_capath__file_load(cs_capath *cp, struct cfile *f, int use_cache);
int cs_capath__file_der(cs_capath *cp, struct cfile *f);

/* cs_capath_bucket.c */
int cs_capath__bucket_refresh(cs_capath *cp, struct bucket *b);
int cs_capath__bucket_sync(cs_capath *cp, struct bucket *b);

/* cs_capath_cafile.c */
int cs_capath__name_cmp(const void *a, const void *b);
int cs_capath__cafile_sync(cs_capath *cp, char *err, size_t errlen);

/* cs_capath_pass.c */
int cs_capath__stale_tmp_link(cs_capath *cp, const char *name);
int cs_capath__link_as_known(cs_capath *cp, const struct bucket *b, int id);
void cs_capath__count_linked(cs_capath *cp, struct cs_capath_stats *st);
int cs_capath__finish(cs_capath *cp, int rc, int force_cafile, char *err, size_t errlen);
void cs_capath__poll_names(cs_capath *cp, int *rc);
int cs_capath__pass_sync(cs_capath *cp, struct bucket *b);

#endif
