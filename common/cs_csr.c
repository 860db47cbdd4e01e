/*
 * cs_csr - CSRs for a list of names. See cs_csr.h.
 */
#include "cs_csr.h"
#include "cs_log.h"

#include <arpa/inet.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

const EVP_MD *cs_csr_sign_md(EVP_PKEY *key)
{
	/* EdDSA signs the message itself: no separate digest. */
	if (EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448"))
		return NULL;
	return EVP_sha256();
}

X509_EXTENSION *cs_csr_san_ext(char *const *names, size_t n, char *err, size_t errlen)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	X509_EXTENSION *ext = NULL;

	if (gens == NULL)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		unsigned char ip[16];
		GENERAL_NAME *g = NULL;
		int iplen = 0;

		if (inet_pton(AF_INET, names[i], ip) == 1)
			iplen = 4;
		else if (inet_pton(AF_INET6, names[i], ip) == 1)
			iplen = 16;
		g = GENERAL_NAME_new();
		if (g == NULL)
			goto fail;
		if (iplen) {
			ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
			if (os == NULL || !ASN1_OCTET_STRING_set(os, ip, iplen)) {
				ASN1_OCTET_STRING_free(os);
				GENERAL_NAME_free(g);
				goto fail;
			}
			GENERAL_NAME_set0_value(g, GEN_IPADD, os);
		} else {
			ASN1_IA5STRING *s = ASN1_IA5STRING_new();
			if (s == NULL || !ASN1_STRING_set(s, names[i], (int)strlen(names[i]))) {
				ASN1_IA5STRING_free(s);
				GENERAL_NAME_free(g);
				goto fail;
			}
			GENERAL_NAME_set0_value(g, GEN_DNS, s);
		}
		sk_GENERAL_NAME_push(gens, g);
	}
	ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, gens);
	if (ext == NULL)
		goto fail;
	GENERAL_NAMES_free(gens);
	return ext;
fail:
	GENERAL_NAMES_free(gens);
	snprintf(err, errlen, "cannot encode the subjectAltName");
	cs_log_ssl_errors(err, errlen);
	return NULL;
}

X509_REQ *cs_csr_new(EVP_PKEY *key, char *const *names, size_t n, char *err, size_t errlen)
{
	X509_REQ *req = X509_REQ_new();
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	X509_EXTENSION *san = NULL;
	X509_NAME *subj;
	char cn[65];

	if (n == 0) {
		snprintf(err, errlen, "no names to request");
		goto fail;
	}
	if (req == NULL || exts == NULL)
		goto ssl_fail;
	/* CN holds at most 64 characters; the SAN carries the full name anyway. */
	snprintf(cn, sizeof(cn), "%s", names[0]);
	subj = X509_REQ_get_subject_name(req);
	if (!X509_REQ_set_version(req, 0) ||
	    !X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8, (unsigned char *)cn, -1, -1, 0) ||
	    !X509_REQ_set_pubkey(req, key))
		goto ssl_fail;
	san = cs_csr_san_ext(names, n, err, errlen);
	if (san == NULL)
		goto fail;
	sk_X509_EXTENSION_push(exts, san);
	san = NULL;
	if (!X509_REQ_add_extensions(req, exts) || X509_REQ_sign(req, key, cs_csr_sign_md(key)) <= 0)
		goto ssl_fail;
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return req;
ssl_fail:
	snprintf(err, errlen, "cannot build the certificate request");
	cs_log_ssl_errors(err, errlen);
fail:
	X509_EXTENSION_free(san);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	return NULL;
}
