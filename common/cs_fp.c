/*
 * cs_fp - fingerprints in Postfix's format and TLSA data. See cs_fp.h.
 */
#include "cs_fp.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

int cs_digest_parse(const char *s, enum cs_digest *out)
{
	if (strcmp(s, "sha256") == 0)
		*out = CS_DIGEST_SHA256;
	else if (strcmp(s, "sha1") == 0)
		*out = CS_DIGEST_SHA1;
	else if (strcmp(s, "md5") == 0)
		*out = CS_DIGEST_MD5;
	else
		return -1;
	return 0;
}

const char *cs_digest_name(enum cs_digest d)
{
	switch (d) {
	case CS_DIGEST_SHA1:
		return "sha1";
	case CS_DIGEST_MD5:
		return "md5";
	case CS_DIGEST_SHA256:
		break;
	}
	return "sha256";
}

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
