/*
 * cs_localca_int.h - what the files of the local CA share, and nothing
 * outside them may use: the open CA (struct cs_localca), index.txt as read
 * (struct index) and the functions one file calls in another (named
 * cs_localca__*). The interface and the directory layout are in
 * cs_localca.h.
 */
#ifndef CS_LOCALCA_INT_H
#define CS_LOCALCA_INT_H

#include "cs_localca.h"
#include "cs_atomic.h"
#include "cs_csr.h"
#include "cs_log.h"
#include "cs_x509.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOCK_NAME ".certsync.lock"
#define CREATING_NAME ".certsync-creating"
#define INDEX_MAX (256L * 1024 * 1024)

/* A set of strings: see index_sync. */
struct sset_ent {
	SLIST_ENTRY(sset_ent) link; /* in its bucket */
	char s[];
};

SLIST_HEAD(sset_bucket, sset_ent);

struct sset {
	struct sset_bucket *t; /* size buckets, a power of two */
	size_t size, n;
};

struct cs_localca {
	char *dir;
	int64_t validity_s;
	X509 *cacert;
	EVP_PKEY *cakey;
	EVP_MD *md; /* what cakey signs with, fetched once (NULL: EdDSA, no digest) */
	X509_CRL *crl; /* latest DIR/crl.pem, or NULL; under crl_mu */
	/* newcerts/ is swept at the first issuance, on the work queue: at 10,000
	   certificates reading it takes 15 ms, and an agent opens its CAs on the loop. */
	bool newcerts_unswept;
	int lockfd;
	pthread_mutex_t mu;     /* held with the flock for every change in the directory */
	pthread_mutex_t crl_mu; /* only around ca->crl, so that readers never wait on a writer */
	/* index.txt as this process last saw it (under mu and the flock) */
	bool ix_valid;
	bool ix_nl; /* it ends with a newline (or is empty) */
	struct stat ix_stat;
	struct sset ix_serials;  /* every serial it names */
	struct sset ix_subjects; /* subjects of its valid certificates */
	atomic_uint_fast64_t commits; /* groups appended to index.txt since the open */
};

/* One line of index.txt, split in place: status, expiry, revocation, serial, file, subject. */
struct index_line {
	char *f[6];
	const char *start; /* of the line in the unsplit buffer */
	size_t len;        /* of the line, newline included */
};

struct index {
	char *raw;   /* the file as read */
	char *split; /* a copy with fields cut by NULs */
	size_t rawlen;
	struct index_line *lines;
	size_t n;
};

/* cs_localca_file.c */
char *cs_localca__path_join(const char *dir, const char *name);
int cs_localca__read_file(const char *dir, const char *name, char **buf, size_t *len, char *err,
			  size_t errlen);
int cs_localca__write_file(const char *dir, const char *name, const void *data, size_t len,
			   mode_t mode, char *err, size_t errlen);
int cs_localca__pem_of(int (*w)(BIO *, void *), void *x, char **out, size_t *len);
int cs_localca__w_x509(BIO *b, void *x);
int cs_localca__w_crl(BIO *b, void *x);
int cs_localca__w_key(BIO *b, void *x);
char *cs_localca__bn_hex(const BIGNUM *bn);
int cs_localca__lock_ca(cs_localca *ca, char *err, size_t errlen);
void cs_localca__unlock_ca(cs_localca *ca);
int cs_localca__write_all(int fd, const char *data, size_t len);
int cs_localca__fsync_dir(const char *dir, const char *sub);

/* cs_localca_setup.c */
int cs_localca__add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value);
BIGNUM *cs_localca__random_serial(void);
int cs_localca__set_validity(X509 *x, time_t now, int64_t secs);
void cs_localca__remove_stale_temps(cs_localca *ca, const char *sub);
cs_localca *cs_localca__open_ca(const struct cs_localca_opts *o, bool may_create, int *rcp, char *err,
				size_t errlen);

/* cs_localca_index.c */
void cs_localca__index_free(struct index *ix);
int cs_localca__index_read(cs_localca *ca, struct index *ix, char *err, size_t errlen);
struct index_line *cs_localca__index_find(struct index *ix, const char *serial_hex);
bool cs_localca__subjects_may_repeat(cs_localca *ca);
void cs_localca__sset_clear(struct sset *ss);
bool cs_localca__sset_has(const struct sset *ss, const char *s, bool nocase);
int cs_localca__sset_add(struct sset *ss, const char *s);
int cs_localca__index_sync(cs_localca *ca, char *err, size_t errlen);

#endif
