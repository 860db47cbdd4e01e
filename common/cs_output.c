/*
 * cs_output - render and write the deployed files. See cs_output.h.
 */
#include "cs_output.h"
#include "cs_log.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>

static const char *const kind_names[] = {
	[CS_OUT_BUNDLE] = "bundle", [CS_OUT_FULLCHAIN] = "fullchain", [CS_OUT_CERT] = "cert",
	[CS_OUT_CHAIN] = "chain",   [CS_OUT_KEY] = "key",
};

int cs_output_parse(const char *s, enum cs_output_kind *out)
{
	for (size_t i = 0; i < sizeof(kind_names) / sizeof(kind_names[0]); i++) {
		if (strcmp(s, kind_names[i]) == 0) {
			*out = (enum cs_output_kind)i;
			return 0;
		}
	}
	return -1;
}

const char *cs_output_name(enum cs_output_kind k)
{
	return kind_names[k];
}

bool cs_output_has_key(enum cs_output_kind k)
{
	return k == CS_OUT_BUNDLE || k == CS_OUT_KEY;
}

int cs_output_render(const cs_material *m, enum cs_output_kind k, char **buf, size_t *len,
		     char *err, size_t errlen)
{
	bool want_key = cs_output_has_key(k);
	bool want_leaf = k == CS_OUT_BUNDLE || k == CS_OUT_FULLCHAIN || k == CS_OUT_CERT;
	bool want_chain = k == CS_OUT_BUNDLE || k == CS_OUT_FULLCHAIN || k == CS_OUT_CHAIN;
	BIO *bio;
	int ok = 1;

	*buf = NULL;
	*len = 0;
	if (want_key && m->key == NULL) {
		snprintf(err, errlen, "a %s needs a private key, and there is none", kind_names[k]);
		return -EINVAL;
	}
	if (want_leaf && m->leaf == NULL) {
		snprintf(err, errlen, "a %s needs a certificate, and there is none", kind_names[k]);
		return -EINVAL;
	}
	if (k == CS_OUT_CHAIN && sk_X509_num(m->chain) == 0) {
		snprintf(err, errlen, "there is no chain to write (the certificate has no issuers "
				      "in the set)");
		return -EINVAL;
	}
	bio = BIO_new(BIO_s_secmem());
	if (bio == NULL)
		bio = BIO_new(BIO_s_mem());
	if (bio == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	/* Key first, then leaf, then issuers: the order smtpd_tls_chain_files wants. */
	if (want_key)
		ok = PEM_write_bio_PrivateKey(bio, m->key, NULL, NULL, 0, NULL, NULL);
	if (ok && want_leaf)
		ok = PEM_write_bio_X509(bio, m->leaf);
	for (int i = 0; ok && want_chain && i < sk_X509_num(m->chain); i++)
		ok = PEM_write_bio_X509(bio, sk_X509_value(m->chain, i));
	if (!ok) {
		snprintf(err, errlen, "cannot encode the %s", kind_names[k]);
		cs_log_ssl_errors(err, errlen);
		BIO_free(bio);
		return -EINVAL;
	}
	char *data;
	long n = BIO_get_mem_data(bio, &data);
	*buf = OPENSSL_malloc((size_t)n + 1);
	if (*buf == NULL) {
		BIO_free(bio);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	memcpy(*buf, data, (size_t)n);
	(*buf)[n] = '\0';
	*len = (size_t)n;
	/* BIO_free of a memory BIO does not wipe: clear what held the key. */
	OPENSSL_cleanse(data, (size_t)n);
	BIO_free(bio);
	return 0;
}

int cs_output_check_mode(enum cs_output_kind k, unsigned int mode, const char *path, char *err,
			 size_t errlen)
{
	if (cs_output_has_key(k) && (mode & 0027)) {
		snprintf(err, errlen,
			 "%s: mode %04o would let others read the private key (use 0600 or 0640)",
			 path, mode & 07777);
		return -EPERM;
	}
	return 0;
}

void cs_output_sha256(const void *data, size_t len, unsigned char out[32])
{
	unsigned int n = 32;

	if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1)
		memset(out, 0, 32);
}

int cs_output_write(const cs_material *m, enum cs_output_kind k, const char *path,
		    const struct cs_atomic_opts *opts, char *err, size_t errlen)
{
	return cs_output_write_digest(m, k, path, opts, NULL, err, errlen);
}

int cs_output_write_digest(const cs_material *m, enum cs_output_kind k, const char *path,
			   const struct cs_atomic_opts *opts, unsigned char sha256[32],
			   char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	int rc;

	if ((rc = cs_output_check_mode(k, opts->mode, path, err, errlen)) < 0)
		return rc;
	rc = cs_output_render(m, k, &buf, &len, err, errlen);
	if (rc < 0) {
		char msg[512];
		snprintf(msg, sizeof(msg), "%s", err);
		snprintf(err, errlen, "%s: %s", path, msg);
		return rc;
	}
	if (sha256 != NULL)
		cs_output_sha256(buf, len, sha256);
	rc = cs_atomic_write(path, buf, len, opts, err, errlen);
	OPENSSL_clear_free(buf, len);
	return rc;
}
