/*
 * cs_output - the files certsync deploys, rendered from a cs_material set and
 * written through the atomic writer:
 *   bundle    key, leaf, chain (Postfix smtpd_tls_chain_files order)
 *   fullchain leaf, chain
 *   cert      leaf
 *   chain     chain only
 *   key       key
 */
#ifndef CS_OUTPUT_H
#define CS_OUTPUT_H

#include "cs_atomic.h"
#include "cs_material.h"

#include <stdbool.h>
#include <stddef.h>

enum cs_output_kind {
	CS_OUT_BUNDLE = 0,
	CS_OUT_FULLCHAIN,
	CS_OUT_CERT,
	CS_OUT_CHAIN,
	CS_OUT_KEY,
};

/* Parses "bundle|fullchain|cert|chain|key"; returns 0 or -1. */
int cs_output_parse(const char *s, enum cs_output_kind *out);

/* Returns the name of k ("bundle"). */
const char *cs_output_name(enum cs_output_kind k);

/* Returns true when files of kind k hold the private key. */
bool cs_output_has_key(enum cs_output_kind k);

/*
 * Renders kind k of m as PEM into a malloc'd buffer (*buf, *len; the caller
 * frees it with OPENSSL_clear_free when it may hold a key). Returns 0, or a
 * negative code with a message in err when m lacks what k needs.
 */
int cs_output_render(const cs_material *m, enum cs_output_kind k, char **buf, size_t *len,
		     char *err, size_t errlen);

/*
 * Refuses (-EPERM, a message naming path in err) a mode that would let
 * others read a file of kind k that holds the private key (group/other bits
 * beyond 0640); returns 0 otherwise.
 */
int cs_output_check_mode(enum cs_output_kind k, unsigned int mode, const char *path, char *err,
			 size_t errlen);

/* Writes the SHA-256 of len bytes at data into out. */
void cs_output_sha256(const void *data, size_t len, unsigned char out[32]);

/*
 * Renders and writes kind k of m to path atomically. For kinds holding a key,
 * the mode is checked first (cs_output_check_mode). Returns 0 or a negative
 * code with a message naming path in err.
 */
int cs_output_write(const cs_material *m, enum cs_output_kind k, const char *path,
		    const struct cs_atomic_opts *opts, char *err, size_t errlen);

/* As cs_output_write; sha256 (when not NULL) gets the digest of the bytes rendered. */
int cs_output_write_digest(const cs_material *m, enum cs_output_kind k, const char *path,
			   const struct cs_atomic_opts *opts, unsigned char sha256[32],
			   char *err, size_t errlen);

#endif
