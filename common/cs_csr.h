/*
 * cs_csr - certificate signing requests for the names of a [cert]: subject CN
 * is the first name, every name goes into a requested subjectAltName (DNS or
 * IP), signed with the new key.
 */
#ifndef CS_CSR_H
#define CS_CSR_H

#include <openssl/x509.h>
#include <stddef.h>

/* Returns a signed CSR (caller frees with X509_REQ_free), or NULL with err set. */
X509_REQ *cs_csr_new(EVP_PKEY *key, char *const *names, size_t n, char *err, size_t errlen);

/*
 * Builds the subjectAltName extension for names (IPv4/IPv6 literals become
 * IP entries, the rest DNS). Returns it (caller frees), or NULL with err set.
 */
X509_EXTENSION *cs_csr_san_ext(char *const *names, size_t n, char *err, size_t errlen);

/* Returns the digest to sign with key: SHA-256, or NULL for ed25519 (none). */
const EVP_MD *cs_csr_sign_md(EVP_PKEY *key);

#endif
