/*
 * cs_material - a set of TLS material in memory. See cs_material.h.
 */
#include "cs_material.h"

#include <stdlib.h>

cs_material *cs_material_new(void)
{
	cs_material *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->chain = sk_X509_new_null();
	m->crls = sk_X509_CRL_new_null();
	m->strays = sk_X509_new_null();
	if (m->chain == NULL || m->crls == NULL || m->strays == NULL) {
		cs_material_free(m);
		return NULL;
	}
	return m;
}

void cs_material_free(cs_material *m)
{
	if (m == NULL)
		return;
	EVP_PKEY_free(m->key);
	X509_free(m->leaf);
	sk_X509_pop_free(m->chain, X509_free);
	sk_X509_CRL_pop_free(m->crls, X509_CRL_free);
	sk_X509_pop_free(m->strays, X509_free);
	free(m);
}
