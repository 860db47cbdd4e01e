/*
 * testissuer - what the Check suites use to talk to an issuer through its
 * plain-data interface (cs_issuer.h) with OpenSSL objects in hand: a CSR as
 * DER, an issuance's DER decoded, ca_material decoded.
 */
#ifndef CS_TESTISSUER_H
#define CS_TESTISSUER_H

#include "cs_issuer.h"

#include <openssl/x509.h>

/* The DER of csr (cs_issuer_der_clear frees it); aborts the test on failure. */
struct cs_der cs_test_csr_der(X509_REQ *csr);

/*
 * Decodes res's leaf and chain (the caller's; either out may be NULL). Returns
 * 0, or -1 when res holds no leaf or a part is not DER.
 */
int cs_test_issued(const struct cs_issue_result *res, X509 **leaf, STACK_OF(X509) **chain);

/* is->ops->ca_material decoded: its return code; *crl NULL when there is none. */
int cs_test_ca_material(cs_issuer *is, X509 **cacert, X509_CRL **crl);

#endif
