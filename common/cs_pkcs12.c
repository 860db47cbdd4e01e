/*
 * cs_pkcs12 - PKCS#12 contents, MAC or not, legacy algorithms included. See
 * cs_pkcs12.h.
 *
 * PKCS12_parse() of OpenSSL 3.0 insists on a MAC and decrypts in the default
 * library context only, where RC2 and single DES no longer exist. So the
 * safes are walked here: each encrypted one is decrypted in the default
 * context first and, when the algorithm is not available there, once more in
 * a private context holding the default and legacy providers. Only the
 * decryption runs there: the bags it yields are plain ASN.1, and keys and
 * certificates are decoded from them in the default context, so the private
 * context can be freed before returning.
 */
#include "cs_pkcs12.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

struct walk {
	const char *pass;
	OSSL_LIB_CTX *legacy; /* created on first need */
	OSSL_PROVIDER *prov[2]; /* default and legacy in it: unloaded before it is freed */
	bool legacy_failed;
	EVP_PKEY *key;
	ASN1_OCTET_STRING *key_id; /* localKeyID of the key's bag */
	STACK_OF(X509) *certs; /* each with its bag's localKeyID as X509_keyid, until the end */
	char *err;
	size_t errlen;
};

/* Whether the error queue says an algorithm was not found in the providers. */
static bool unsupported(void)
{
	unsigned long e;
	int flags;
	const char *data;

	while ((e = ERR_peek_error_data(&data, &flags)) != 0) {
		int r = ERR_GET_REASON(e);
		if (r == ERR_R_UNSUPPORTED || r == ERR_R_FETCH_FAILED ||
		    (ERR_GET_LIB(e) == ERR_LIB_EVP && r == EVP_R_UNSUPPORTED_ALGORITHM))
			return true;
		ERR_get_error();
	}
	return false;
}

/* A provider loaded into a library context is not freed with it: unload them first. */
static void legacy_free(struct walk *w)
{
	for (int i = 0; i < 2; i++) {
		if (w->prov[i] != NULL)
			OSSL_PROVIDER_unload(w->prov[i]);
		w->prov[i] = NULL;
	}
	OSSL_LIB_CTX_free(w->legacy);
	w->legacy = NULL;
}

static OSSL_LIB_CTX *legacy_ctx(struct walk *w)
{
	if (w->legacy != NULL || w->legacy_failed)
		return w->legacy;
	w->legacy = OSSL_LIB_CTX_new();
	if (w->legacy == NULL || (w->prov[0] = OSSL_PROVIDER_load(w->legacy, "default")) == NULL ||
	    (w->prov[1] = OSSL_PROVIDER_load(w->legacy, "legacy")) == NULL) {
		legacy_free(w);
		w->legacy_failed = true;
	}
	return w->legacy;
}

static void algorithm_name(const X509_ALGOR *alg, char *buf, size_t len)
{
	const ASN1_OBJECT *obj = NULL;

	X509_ALGOR_get0(&obj, NULL, NULL, alg);
	if (obj == NULL || OBJ_obj2txt(buf, (int)len, obj, 0) <= 0)
		snprintf(buf, len, "unknown");
}

/*
 * Decrypts an encrypted safe (decode != NULL) or a shrouded key bag: in the
 * default context, then in the legacy one when the algorithm is missing.
 * Returns the result, or NULL with the reason in w->err and *rc set.
 */
static void *decrypt(struct walk *w, const X509_ALGOR *alg, const ASN1_OCTET_STRING *data,
		     const PKCS12_SAFEBAG *bag, int *rc)
{
	void *out = NULL;
	char name[80];

	for (int round = 0; round < 2 && out == NULL; round++) {
		OSSL_LIB_CTX *ctx = NULL;
		if (round == 1) {
			if (!unsupported())
				break;
			algorithm_name(alg, name, sizeof(name));
			if ((ctx = legacy_ctx(w)) == NULL) {
				snprintf(w->err, w->errlen,
					 "the PKCS#12 file is encrypted with %s, an algorithm of "
					 "OpenSSL's legacy provider, and that provider cannot be "
					 "loaded (is it installed? see OPENSSL_MODULES); export the "
					 "file again without -legacy or read it with a system that "
					 "has the provider",
					 name);
				*rc = CS_PKCS12_ENOLEGACY;
				return NULL;
			}
			ERR_clear_error();
		}
		if (bag != NULL)
			out = PKCS12_decrypt_skey_ex(bag, w->pass, -1, ctx, NULL);
		else
			out = PKCS12_item_decrypt_d2i_ex(alg, ASN1_ITEM_rptr(PKCS12_SAFEBAGS),
							 w->pass, -1, data, 1, ctx, NULL);
	}
	if (out == NULL) {
		snprintf(w->err, w->errlen, "cannot decrypt the PKCS#12 file: wrong password");
		*rc = -EKEYREJECTED;
	}
	return out;
}

static ASN1_OCTET_STRING *local_key_id(const PKCS12_SAFEBAG *bag)
{
	const ASN1_TYPE *t = PKCS12_SAFEBAG_get0_attr(bag, NID_localKeyID);

	if (t == NULL || t->type != V_ASN1_OCTET_STRING)
		return NULL;
	return ASN1_OCTET_STRING_dup(t->value.octet_string);
}

static int take_key(struct walk *w, const PKCS8_PRIV_KEY_INFO *p8, const PKCS12_SAFEBAG *bag)
{
	EVP_PKEY *k;

	if (w->key != NULL) {
		snprintf(w->err, w->errlen, "the PKCS#12 file holds more than one private key");
		return -EBADMSG;
	}
	if ((k = EVP_PKCS82PKEY(p8)) == NULL) {
		snprintf(w->err, w->errlen, "cannot decode the private key of the PKCS#12 file");
		return -EBADMSG;
	}
	w->key = k;
	w->key_id = local_key_id(bag);
	return 0;
}

static int walk_bags(struct walk *w, const STACK_OF(PKCS12_SAFEBAG) *bags, int depth);

static int walk_bag(struct walk *w, const PKCS12_SAFEBAG *bag, int depth)
{
	int rc = 0;

	switch (PKCS12_SAFEBAG_get_nid(bag)) {
	case NID_keyBag:
		return take_key(w, PKCS12_SAFEBAG_get0_p8inf(bag), bag);
	case NID_pkcs8ShroudedKeyBag: {
		const X509_SIG *sig = PKCS12_SAFEBAG_get0_pkcs8(bag);
		const X509_ALGOR *alg = NULL;
		X509_SIG_get0(sig, &alg, NULL);
		PKCS8_PRIV_KEY_INFO *p8 = decrypt(w, alg, NULL, bag, &rc);
		if (p8 == NULL)
			return rc;
		rc = take_key(w, p8, bag);
		PKCS8_PRIV_KEY_INFO_free(p8);
		return rc;
	}
	case NID_certBag: {
		if (PKCS12_SAFEBAG_get_bag_nid(bag) != NID_x509Certificate)
			return 0; /* SDSI certificates: nobody uses them */
		X509 *x = PKCS12_SAFEBAG_get1_cert(bag);
		if (x == NULL) {
			snprintf(w->err, w->errlen, "a certificate in the PKCS#12 file is damaged");
			return -EBADMSG;
		}
		ASN1_OCTET_STRING *id = local_key_id(bag);
		if (id != NULL)
			X509_keyid_set1(x, ASN1_STRING_get0_data(id), ASN1_STRING_length(id));
		ASN1_OCTET_STRING_free(id);
		if (!sk_X509_push(w->certs, x)) {
			X509_free(x);
			snprintf(w->err, w->errlen, "out of memory");
			return -ENOMEM;
		}
		return 0;
	}
	case NID_safeContentsBag:
		/* Nested safes; the depth bound keeps a hostile file from recursing forever. */
		if (depth > 3) {
			snprintf(w->err, w->errlen, "the PKCS#12 file nests its contents too deep");
			return -EBADMSG;
		}
		return walk_bags(w, PKCS12_SAFEBAG_get0_safes(bag), depth + 1);
	default:
		return 0; /* CRL and secret bags are not ours */
	}
}

static int walk_bags(struct walk *w, const STACK_OF(PKCS12_SAFEBAG) *bags, int depth)
{
	int rc = 0;

	for (int i = 0; rc == 0 && i < sk_PKCS12_SAFEBAG_num(bags); i++)
		rc = walk_bag(w, sk_PKCS12_SAFEBAG_value(bags, i), depth);
	return rc;
}

/* The index of the key's certificate: same localKeyID, else same public key, else 0. */
static int leaf_index(const struct walk *w)
{
	int n = sk_X509_num(w->certs);

	if (w->key != NULL && w->key_id != NULL)
		for (int i = 0; i < n; i++) {
			int len = 0;
			const unsigned char *id = X509_keyid_get0(sk_X509_value(w->certs, i), &len);
			if (id != NULL && len == ASN1_STRING_length(w->key_id) &&
			    memcmp(id, ASN1_STRING_get0_data(w->key_id), (size_t)len) == 0)
				return i;
		}
	if (w->key != NULL)
		for (int i = 0; i < n; i++)
			if (X509_check_private_key(sk_X509_value(w->certs, i), w->key) == 1)
				return i;
	ERR_clear_error();
	return 0;
}

int cs_pkcs12_parse(PKCS12 *p12, const char *pass, EVP_PKEY **key, X509 **leaf,
		    STACK_OF(X509) **others, char *err, size_t errlen)
{
	struct walk w = { .pass = pass, .err = err, .errlen = errlen };
	STACK_OF(PKCS7) *safes = NULL;
	int rc = 0;

	*key = NULL;
	*leaf = NULL;
	*others = NULL;
	w.certs = sk_X509_new_null();
	if (w.certs == NULL) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	if ((safes = PKCS12_unpack_authsafes(p12)) == NULL) {
		snprintf(err, errlen, "cannot read the PKCS#12 file (its contents are damaged)");
		rc = -EBADMSG;
		goto out;
	}
	for (int i = 0; rc == 0 && i < sk_PKCS7_num(safes); i++) {
		PKCS7 *p7 = sk_PKCS7_value(safes, i);
		STACK_OF(PKCS12_SAFEBAG) *bags = NULL;

		switch (OBJ_obj2nid(p7->type)) {
		case NID_pkcs7_data:
			bags = PKCS12_unpack_p7data(p7);
			break;
		case NID_pkcs7_encrypted:
			if (p7->d.encrypted == NULL || p7->d.encrypted->enc_data == NULL) {
				bags = NULL;
				break;
			}
			bags = decrypt(&w, p7->d.encrypted->enc_data->algorithm,
				       p7->d.encrypted->enc_data->enc_data, NULL, &rc);
			if (bags == NULL)
				goto out;
			break;
		default:
			continue; /* enveloped (public-key) safes: not supported, skipped */
		}
		if (bags == NULL) {
			snprintf(err, errlen, "cannot read the PKCS#12 file (a safe is damaged)");
			rc = -EBADMSG;
			goto out;
		}
		rc = walk_bags(&w, bags, 0);
		sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
	}
	if (rc < 0)
		goto out;
	if (sk_X509_num(w.certs) > 0) {
		int li = leaf_index(&w);
		/* The IDs were for pairing only: nothing of them is to be written out. */
		for (int i = 0; i < sk_X509_num(w.certs); i++)
			X509_keyid_set1(sk_X509_value(w.certs, i), NULL, 0);
		*leaf = sk_X509_delete(w.certs, li);
	}
	*key = w.key;
	w.key = NULL;
	*others = w.certs;
	w.certs = NULL;
out:
	sk_PKCS7_pop_free(safes, PKCS7_free);
	EVP_PKEY_free(w.key);
	ASN1_OCTET_STRING_free(w.key_id);
	sk_X509_pop_free(w.certs, X509_free);
	legacy_free(&w);
	return rc;
}
