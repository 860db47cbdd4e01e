/*
 * testissuer - see testissuer.h.
 */
#include "testissuer.h"

#include <check.h>
#include <openssl/crypto.h>
#include <stdint.h>

struct cs_der cs_test_csr_der(X509_REQ *csr)
{
	unsigned char *p = NULL;
	int n = i2d_X509_REQ(csr, &p);

	ck_assert_int_gt(n, 0);
	return (struct cs_der){ p, (size_t)n };
}

static X509 *decode(const struct cs_der *d)
{
	const unsigned char *p = d->p;

	return p != NULL && d->n <= (size_t)INT32_MAX ? d2i_X509(NULL, &p, (long)d->n) : NULL;
}

int cs_test_issued(const struct cs_issue_result *res, X509 **leaf, STACK_OF(X509) **chain)
{
	X509 *l = decode(&res->leaf);
	STACK_OF(X509) *c = sk_X509_new_null();
	int rc = l != NULL && c != NULL ? 0 : -1;

	for (size_t i = 0; rc == 0 && i < res->n_chain; i++) {
		X509 *x = decode(&res->chain[i]);
		if (x == NULL || !sk_X509_push(c, x)) {
			X509_free(x);
			rc = -1;
		}
	}
	if (rc == 0 && leaf != NULL) {
		*leaf = l;
		l = NULL;
	}
	if (rc == 0 && chain != NULL) {
		*chain = c;
		c = NULL;
	}
	X509_free(l);
	sk_X509_pop_free(c, X509_free);
	return rc;
}

int cs_test_ca_material(cs_issuer *is, X509 **cacert, X509_CRL **crl)
{
	struct cs_der ca = { 0 }, cl = { 0 };
	const unsigned char *p;
	int rc = is->ops->ca_material(is, &ca, &cl);

	*cacert = NULL;
	*crl = NULL;
	if (rc == 0) {
		*cacert = decode(&ca);
		p = cl.p;
		if (cl.n > 0)
			*crl = d2i_X509_CRL(NULL, &p, (long)cl.n);
	}
	cs_issuer_der_clear(&ca);
	cs_issuer_der_clear(&cl);
	return rc;
}
