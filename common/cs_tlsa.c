/*
 * cs_tlsa - TLSA association data (see cs_tlsa.h).
 */
#include "cs_tlsa.h"

#include <openssl/evp.h>
#include <stdio.h>

/* The digest of der (matching 1 or 2) as lowercase hex into out. Returns 0 or -1. */
static int digest_hex(const unsigned char *der, int len, int matching, char *out, size_t outlen)
{
	unsigned char dg[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	const EVP_MD *md = matching == 1 ? EVP_sha256() : matching == 2 ? EVP_sha512() : NULL;

	if (md == NULL || len <= 0 || EVP_Digest(der, (size_t)len, dg, &dlen, md, NULL) != 1 ||
	    outlen < (size_t)dlen * 2 + 1)
		return -1;
	for (unsigned int i = 0; i < dlen; i++)
		snprintf(out + i * 2, outlen - i * 2, "%02x", dg[i]);
	return 0;
}

int cs_tlsa_key_data(EVP_PKEY *key, int matching, char *out, size_t outlen)
{
	unsigned char *der = NULL;
	int len = key != NULL ? i2d_PUBKEY(key, &der) : -1;
	int rc = digest_hex(der, len, matching, out, outlen);

	OPENSSL_free(der);
	return rc;
}

int cs_tlsa_rec_hex(const struct cs_tlsa_rec *r, char *out, size_t outlen)
{
	if (outlen < r->len * 2 + 1)
		return -1;
	for (size_t i = 0; i < r->len; i++)
		snprintf(out + i * 2, outlen - i * 2, "%02x", r->data[i]);
	out[r->len * 2] = '\0';
	return 0;
}

int cs_tlsa_data(X509 *x, int selector, int matching, char *out, size_t outlen)
{
	unsigned char *der = NULL;
	int len, rc;

	if (selector == 0)
		len = i2d_X509(x, &der);
	else if (selector == 1)
		len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	else
		return -1;
	rc = digest_hex(der, len, matching, out, outlen);
	OPENSSL_free(der);
	return rc;
}
