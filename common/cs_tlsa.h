/*
 * cs_tlsa - DANE TLSA certificate association data (RFC 6698).
 */
#ifndef CS_TLSA_H
#define CS_TLSA_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>

/* The largest association data: a SHA-512 digest (matching type 2). Full
   certificates or keys (matching type 0) are not kept. */
#define CS_TLSA_DATA_MAX 64

/* One TLSA record (RFC 6698 section 2.1), as published or as a resolver answered it. */
struct cs_tlsa_rec {
	unsigned char usage;    /* 2 DANE-TA, 3 DANE-EE (RFC 7672: the two SMTP uses) */
	unsigned char selector; /* 0 full certificate, 1 SubjectPublicKeyInfo */
	unsigned char mtype;    /* 1 SHA-256, 2 SHA-512 */
	unsigned char data[CS_TLSA_DATA_MAX];
	size_t len;
};

/*
 * TLSA certificate association data as lowercase hex without separators:
 * selector 0 (full certificate) or 1 (SubjectPublicKeyInfo), matching type
 * 1 (SHA-256) or 2 (SHA-512). Returns 0, or -1 on a bad selector/matching type.
 */
int cs_tlsa_data(X509 *x, int selector, int matching, char *out, size_t outlen);

/*
 * The data of a "x 1 m" record for key: the digest (m = 1 SHA-256, 2 SHA-512)
 * of its SubjectPublicKeyInfo, lowercase hex. Returns 0, or -1.
 */
int cs_tlsa_key_data(EVP_PKEY *key, int matching, char *out, size_t outlen);

/* r's association data as lowercase hex into out. Returns 0, or -1 when out is too small. */
int cs_tlsa_rec_hex(const struct cs_tlsa_rec *r, char *out, size_t outlen);

#endif
