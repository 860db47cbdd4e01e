/*
 * cs_tlsa - TLSA association data (see cs_tlsa.h).
 */
#include "cs_tlsa.h"

#include <openssl/evp.h>
#include <stdio.h>

int cs_tlsa_data(X509 *x, int selector, int matching, char *out, size_t outlen)
{
	unsigned char *der = NULL, dg[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	int len;
	const EVP_MD *md;

	if (matching == 1)
		md = EVP_sha256();
	else if (matching == 2)
		md = EVP_sha512();
	else
		return -1;
	if (selector == 0)
		len = i2d_X509(x, &der);
	else if (selector == 1)
		len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	else
		return -1;
	if (len <= 0 || EVP_Digest(der, (size_t)len, dg, &dlen, md, NULL) != 1 ||
	    outlen < (size_t)dlen * 2 + 1) {
		OPENSSL_free(der);
		return -1;
	}
	OPENSSL_free(der);
	for (unsigned int i = 0; i < dlen; i++)
		snprintf(out + i * 2, outlen - i * 2, "%02x", dg[i]);
	return 0;
}
