/*
 * cs_snimap - the per-name certificate tables of mail servers, written from
 * a list of (name, files) entries:
 *
 * - Postfix: the source file of tls_server_sni_maps ("NAME FILE[, FILE]",
 *   key first) and its indexed file, built with `postmap -F`, which embeds
 *   the files' contents. The new source and database are made in a private
 *   (0700) temp directory beside the map and renamed into place, database
 *   first: a reader (smtpd, `postmap -q`) finds the old database or the new
 *   one, never none or half of one. Both get the given mode (the database
 *   holds private keys: 0600 by default).
 * - Dovecot: an include file of `local_name NAME { ... }` blocks, with the
 *   2.3 setting names (ssl_cert = <FILE, ssl_key = <FILE) or the 2.4 ones
 *   (ssl_server_cert_file, ssl_server_key_file). It is replaced atomically,
 *   then `doveconf -n` must accept the configuration; if it does not, the
 *   previous include is put back and the error returned.
 *
 * A Postfix map is rebuilt only when its text or the contents of the files
 * it embeds changed (a digest of both is the map's first line), a Dovecot
 * include only when its text changed. Entries whose files do not exist yet
 * (a certificate not issued yet) are left out and reported.
 *
 * Calls are serialised by one process-wide lock, so that a deploy and the
 * agent's pass never build one map at once. Everything here blocks (file
 * reads, fsync, postmap, doveconf): call it from the work queue.
 */
#ifndef CS_SNIMAP_H
#define CS_SNIMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

enum cs_snimap_kind {
	CS_SNIMAP_POSTFIX = 0,
	CS_SNIMAP_DOVECOT23,
	CS_SNIMAP_DOVECOT24,
};

struct cs_snimap_entry {
	const char *name;  /* the server name as the table takes it */
	const char *key;   /* file holding the key; NULL: chain holds it first */
	const char *chain; /* the leaf and its chain (after the key when key is NULL) */
};

#define CS_SNIMAP_NO_FSYNC 0x1 /* tests only */

struct cs_snimap_opts {
	enum cs_snimap_kind kind;
	const char *path;           /* postfix: the map's source file; dovecot: the include */
	const char *map_type;       /* postfix: hash, btree, lmdb or cdb */
	const char *postmap;        /* NULL: "postmap" in PATH */
	const char *config_dir;     /* postmap -c DIR; NULL: Postfix's default */
	const char *doveconf;       /* NULL: "doveconf" in PATH */
	const char *dovecot_config; /* doveconf -c FILE; NULL: Dovecot's default */
	mode_t mode;                /* of the files written */
	unsigned flags;             /* CS_SNIMAP_* */
	const struct cs_snimap_entry *e;
	size_t n;
};

struct cs_snimap_result {
	size_t entries;  /* names in the table written (or found current) */
	bool written;    /* the table changed on disk: the server must reload */
	char **missing;  /* "NAME: FILE: reason" of each entry left out */
	size_t nmissing;
	char *note;      /* a remark for the log (NULL: none), e.g. that doveconf -n
			    does not show the names: the include is not read */
};

/*
 * Brings the table up to date. Returns 0 (entries left out are in res, not
 * errors), or a negative errno with a message in err naming the file, or
 * postmap's or doveconf's own words. res is filled in either case; free it
 * with cs_snimap_result_free.
 */
int cs_snimap_sync(const struct cs_snimap_opts *o, struct cs_snimap_result *res, char *err,
		   size_t errlen);

/* Frees what res holds and empties it; accepts NULL. */
void cs_snimap_result_free(struct cs_snimap_result *res);

/*
 * Removes what a killed writer of path left behind: temp directories
 * ".certsync-sni-*" beside it (their files first) and temp files of the
 * include. Returns the number removed or a negative errno with err set.
 */
int cs_snimap_sweep(const char *path, char *err, size_t errlen);

#endif
