/*
 * cs_clientmap - a Postfix lookup table of client-certificate fingerprints
 * (relay_clientcerts, check_ccert_access) made from a directory of client
 * certificates: one line "FINGERPRINT name" per certificate, the
 * fingerprint in Postfix's format (cs_fp.h) of the certificate or of its
 * public key, the name its subject CN or else the file name. The map is
 * replaced atomically and only when its text changes, then `postmap TYPE:MAP`
 * builds the indexed file Postfix reads.
 *
 * Every regular file of the directory not starting with a dot is read (PEM,
 * DER, PKCS#7 or PKCS#12 without password; the first certificate found is
 * the client's). Files that cannot be read, hold no certificate, or hold an
 * expired one are left out of the map and listed as problems; so is a file
 * whose fingerprint another file (earlier by name) already gave.
 *
 * Everything here blocks (file reads, fsync, waiting for postmap): call it
 * from a thread of the libuv work queue, never from the loop thread.
 */
#ifndef CS_CLIENTMAP_H
#define CS_CLIENTMAP_H

#include "cs_fp.h"

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#define CS_CLIENTMAP_NO_FSYNC 0x1 /* tests and benchmarks only */

struct cs_clientmap_opts {
	const char *dir;          /* the client certificates */
	const char *map;          /* the text map written, e.g. /etc/postfix/relay_clientcerts */
	enum cs_digest digest;    /* as smtpd_tls_fingerprint_digest */
	int pubkey;               /* 1: fingerprint of the public key, 0: of the certificate */
	const char *map_type;     /* hash, btree, lmdb, cdb, ...; "texthash" or NULL: no postmap */
	const char *postmap;      /* the postmap program; NULL: "postmap" in PATH */
	const char *config_dir;   /* postmap -c DIR; NULL: Postfix's default */
	mode_t mode;              /* of the map; 0: 0644 */
	unsigned flags;           /* CS_CLIENTMAP_* */
	time_t now;               /* for expiry; 0: the current time */
};

struct cs_clientmap_problem {
	char *file;   /* file name in dir */
	char *reason; /* for people: "expired on 2025-01-31 12:00:00 UTC" */
};

struct cs_clientmap_result {
	size_t entries;     /* lines in the map */
	int map_written;    /* 1: the map text changed and was replaced */
	int postmap_run;    /* 1: postmap ran (and succeeded when the call returned 0) */
	struct cs_clientmap_problem *problems; /* in file name order */
	size_t nproblems;
};

/*
 * Reads dir, writes the map when its text differs, and runs postmap when the
 * map was written or its indexed file is missing or older. Returns 0 (the
 * problems of single files are in res, not errors), or a negative errno with
 * a message in err naming the directory, the map or postmap's own output.
 * res is filled in either case; free it with cs_clientmap_result_free.
 */
int cs_clientmap_build(const struct cs_clientmap_opts *o, struct cs_clientmap_result *res,
		       char *err, size_t errlen);

/* Frees what res holds and empties it; accepts NULL. */
void cs_clientmap_result_free(struct cs_clientmap_result *res);

#endif
