/*
 * cs_fp - certificate and public-key fingerprints in Postfix's format
 * (uppercase hex pairs joined by colons). The digests it names are in
 * cs_digest.h, DANE TLSA association data in cs_tlsa.h (both included).
 */
#ifndef CS_FP_H
#define CS_FP_H

#include "cs_digest.h"
#include "cs_tlsa.h"

#include <openssl/x509.h>
#include <stddef.h>

/* Size that always holds a colon-separated fingerprint plus NUL (sha512 too). */
#define CS_FP_MAX (64 * 3 + 1)

/* Fingerprint of the DER certificate into out ("AB:CD:..."); returns 0 or -1. */
int cs_fp_cert(X509 *x, enum cs_digest d, char *out, size_t outlen);

/* Fingerprint of the DER SubjectPublicKeyInfo into out; returns 0 or -1. */
int cs_fp_pubkey(X509 *x, enum cs_digest d, char *out, size_t outlen);

#endif
