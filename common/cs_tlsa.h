/*
 * cs_tlsa - DANE TLSA certificate association data (RFC 6698).
 */
#ifndef CS_TLSA_H
#define CS_TLSA_H

#include <openssl/x509.h>
#include <stddef.h>

/*
 * TLSA certificate association data as lowercase hex without separators:
 * selector 0 (full certificate) or 1 (SubjectPublicKeyInfo), matching type
 * 1 (SHA-256) or 2 (SHA-512). Returns 0, or -1 on a bad selector/matching type.
 */
int cs_tlsa_data(X509 *x, int selector, int matching, char *out, size_t outlen);

#endif
