/*
 * cs_x509 - human-readable facts about certificates and keys. See cs_x509.h.
 *
 * Where openssl's command line prints the same fact (serial, SANs), the same
 * spelling is used, so that people can compare our output with theirs.
 */
#include "cs_x509.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Copies what was printed into b to buf (truncated, NUL-terminated) and frees b. */
static char *bio_to_buf(BIO *b, char *buf, size_t len)
{
	char *p = NULL;
	long n;

	if (len == 0)
		goto out;
	buf[0] = '\0';
	if (b == NULL)
		goto out;
	n = BIO_get_mem_data(b, &p);
	if (n <= 0)
		goto out;
	if ((size_t)n >= len)
		n = (long)len - 1;
	memcpy(buf, p, (size_t)n);
	buf[n] = '\0';
out:
	BIO_free(b);
	return buf;
}

static char *name_oneline(const X509_NAME *name, char *buf, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());
	unsigned long flags = (XN_FLAG_SEP_CPLUS_SPC | XN_FLAG_FN_SN | ASN1_STRFLGS_RFC2253) &
			      ~ASN1_STRFLGS_ESC_MSB;

	if (b != NULL && X509_NAME_print_ex(b, name, 0, flags) < 0)
		BIO_reset(b);
	bio_to_buf(b, buf, len);
	if (len > 0 && buf[0] == '\0')
		snprintf(buf, len, "(empty name)");
	return buf;
}

char *cs_x509_subject(const X509 *x, char *buf, size_t len)
{
	return name_oneline(X509_get_subject_name(x), buf, len);
}

char *cs_x509_issuer(const X509 *x, char *buf, size_t len)
{
	return name_oneline(X509_get_issuer_name(x), buf, len);
}

char *cs_x509_sans(const X509 *x, char *buf, size_t len)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	BIO *b = BIO_new(BIO_s_mem());

	for (int i = 0; b != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		if (i > 0)
			BIO_puts(b, ", ");
		GENERAL_NAME_print(b, sk_GENERAL_NAME_value(gens, i));
	}
	GENERAL_NAMES_free(gens);
	ERR_clear_error();
	return bio_to_buf(b, buf, len);
}

char *cs_x509_serial(const X509 *x, char *buf, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());

	if (b != NULL && i2a_ASN1_INTEGER(b, X509_get0_serialNumber(x)) < 0)
		BIO_reset(b);
	return bio_to_buf(b, buf, len);
}

char *cs_x509_time(const ASN1_TIME *t, int iso, char *buf, size_t len)
{
	struct tm tm;

	if (len == 0)
		return buf;
	if (t == NULL || !ASN1_TIME_to_tm(t, &tm)) {
		ERR_clear_error();
		snprintf(buf, len, "(unreadable time)");
		return buf;
	}
	if (strftime(buf, len, iso ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		buf[0] = '\0';
	return buf;
}

long cs_x509_days_until(const ASN1_TIME *t, time_t now)
{
	struct tm tm;
	time_t when;
	long long diff;

	if (t == NULL || !ASN1_TIME_to_tm(t, &tm)) {
		ERR_clear_error();
		return INT32_MIN;
	}
	when = timegm(&tm);
	diff = (long long)when - (long long)now;
	/* Whole days, rounded toward zero: "3 days left" until the fourth-last day ends. */
	return (long)(diff / 86400);
}

int cs_x509_times(const X509 *x, time_t *not_before, time_t *not_after)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(X509_get0_notBefore(x), &tm) != 1)
		return -1;
	*not_before = timegm(&tm);
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1)
		return -1;
	*not_after = timegm(&tm);
	return 0;
}

char *cs_x509_key_desc(const EVP_PKEY *k, char *buf, size_t len)
{
	char group[64];
	size_t glen = 0;

	if (len == 0)
		return buf;
	if (k == NULL) {
		snprintf(buf, len, "none");
		return buf;
	}
	if (EVP_PKEY_is_a(k, "RSA")) {
		snprintf(buf, len, "RSA %d bits", EVP_PKEY_get_bits(k));
	} else if (EVP_PKEY_is_a(k, "EC")) {
		const char *g = "unknown curve";

		if (EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group,
						   sizeof(group), &glen))
			g = group;
		if (strcmp(g, "prime256v1") == 0)
			g = "P-256";
		else if (strcmp(g, "secp384r1") == 0)
			g = "P-384";
		else if (strcmp(g, "secp521r1") == 0)
			g = "P-521";
		snprintf(buf, len, "EC %s", g);
	} else {
		const char *n = EVP_PKEY_get0_type_name(k);

		snprintf(buf, len, "%s %d bits", n != NULL ? n : "unknown",
			 EVP_PKEY_get_bits(k));
		if (EVP_PKEY_is_a(k, "ED25519") || EVP_PKEY_is_a(k, "ED448"))
			snprintf(buf, len, "%s", n);
	}
	ERR_clear_error();
	return buf;
}
