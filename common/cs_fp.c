/*
 * cs_fp - fingerprints in Postfix's format. See cs_fp.h.
 */
#include "cs_fp.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

static const EVP_MD *md_of(enum cs_digest d)
{
	switch (d) {
	case CS_DIGEST_SHA1:
		return EVP_sha1();
	case CS_DIGEST_MD5:
		return EVP_md5();
	case CS_DIGEST_SHA256:
		break;
	}
	return EVP_sha256();
}

/* Digests the DER in der and writes "AB:CD:..." into out. */
static int fp_der(const unsigned char *der, int len, const EVP_MD *md, char *out, size_t outlen)
{
	unsigned char dg[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;

	if (len <= 0 || EVP_Digest(der, (size_t)len, dg, &dlen, md, NULL) != 1)
		return -1;
	if (outlen < (size_t)dlen * 3)
		return -1;
	for (unsigned int i = 0; i < dlen; i++)
		snprintf(out + i * 3, outlen - i * 3, "%02X%s", dg[i], i + 1 < dlen ? ":" : "");
	return 0;
}

int cs_fp_cert(X509 *x, enum cs_digest d, char *out, size_t outlen)
{
	unsigned char *der = NULL;
	int len = i2d_X509(x, &der);
	int rc = fp_der(der, len, md_of(d), out, outlen);

	OPENSSL_free(der);
	return rc;
}

int cs_fp_pubkey(X509 *x, enum cs_digest d, char *out, size_t outlen)
{
	unsigned char *der = NULL;
	int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	int rc = fp_der(der, len, md_of(d), out, outlen);

	OPENSSL_free(der);
	return rc;
}
