/*
 * cs_fp - certificate and public-key fingerprints in Postfix's format
 * (uppercase hex pairs joined by colons) and DANE TLSA association data.
 */
#ifndef CS_FP_H
#define CS_FP_H

#include <openssl/x509.h>
#include <stddef.h>

enum cs_digest {
	CS_DIGEST_SHA256 = 0,
	CS_DIGEST_SHA1,
	CS_DIGEST_MD5,
};

/* Size that always holds a colon-separated fingerprint plus NUL (sha512 too). */
#define CS_FP_MAX (64 * 3 + 1)

/* Parses "sha256|sha1|md5" into *out; returns 0, or -1 for anything else. */
int cs_digest_parse(const char *s, enum cs_digest *out);

/* Returns "sha256", "sha1" or "md5". */
const char *cs_digest_name(enum cs_digest d);

/* Fingerprint of the DER certificate into out ("AB:CD:..."); returns 0 or -1. */
int cs_fp_cert(X509 *x, enum cs_digest d, char *out, size_t outlen);

/* Fingerprint of the DER SubjectPublicKeyInfo into out; returns 0 or -1. */
int cs_fp_pubkey(X509 *x, enum cs_digest d, char *out, size_t outlen);

/*
 * TLSA certificate association data as lowercase hex without separators:
 * selector 0 (full certificate) or 1 (SubjectPublicKeyInfo), matching type
 * 1 (SHA-256) or 2 (SHA-512). Returns 0, or -1 on a bad selector/matching type.
 */
int cs_tlsa_data(X509 *x, int selector, int matching, char *out, size_t outlen);

#endif
