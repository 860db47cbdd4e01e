/*
 * cs_acme_jws - JWK, thumbprints and JWS for ACME.
 *
 * JSON texts that get signed or hashed are made with jansson in compact form
 * with sorted keys: for the JWK that is exactly the canonical form RFC 7638
 * asks for (only required members, lexicographic order, no whitespace), since
 * every value is a base64url string with nothing to escape.
 *
 * ECDSA signatures come out of OpenSSL DER-encoded; JWS wants r and s as
 * fixed-width big-endian integers side by side (RFC 7518 section 3.4).
 */
#include "cs_acme_jws.h"
#include "cs_b64url.h"
#include "cs_log.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Width of one of r and s for the key's curve, or 0 for a key that is not EC. */
static int ec_width(EVP_PKEY *key)
{
	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC)
		return 0;
	return (EVP_PKEY_get_bits(key) + 7) / 8;
}

const char *cs_acme_jws_alg(EVP_PKEY *key)
{
	if (key == NULL)
		return NULL;
	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_EC:
		if (EVP_PKEY_get_bits(key) == 256)
			return "ES256";
		if (EVP_PKEY_get_bits(key) == 384)
			return "ES384";
		return NULL;
	case EVP_PKEY_RSA:
		return "RS256";
	default:
		return NULL;
	}
}

static const EVP_MD *alg_md(EVP_PKEY *key)
{
	return EVP_PKEY_get_bits(key) == 384 && EVP_PKEY_get_base_id(key) == EVP_PKEY_EC
		       ? EVP_sha384()
		       : EVP_sha256();
}

/* Sets obj[name] to the base64url of bn, left-padded with zeros to width bytes (0: minimal). */
static int set_bn(json_t *obj, const char *name, const BIGNUM *bn, int width)
{
	int n = width > 0 ? width : BN_num_bytes(bn);
	unsigned char *buf = malloc((size_t)n + 1);
	char *s;
	int rc = -1;

	if (buf == NULL)
		return -1;
	if (BN_bn2binpad(bn, buf, n) != n)
		goto out;
	s = cs_b64url_encode(buf, (size_t)n);
	if (s == NULL)
		goto out;
	rc = json_object_set_new(obj, name, json_string(s));
	free(s);
out:
	free(buf);
	return rc;
}

json_t *cs_acme_jws_jwk(EVP_PKEY *key)
{
	json_t *jwk = json_object();
	BIGNUM *a = NULL, *b = NULL;
	int ok = 0;

	if (jwk == NULL || cs_acme_jws_alg(key) == NULL)
		goto out;
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
		int w = ec_width(key);
		if (!EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &a) ||
		    !EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &b))
			goto out;
		ok = json_object_set_new(jwk, "kty", json_string("EC")) == 0 &&
		     json_object_set_new(jwk, "crv", json_string(w == 48 ? "P-384" : "P-256")) ==
			     0 &&
		     set_bn(jwk, "x", a, w) == 0 && set_bn(jwk, "y", b, w) == 0;
	} else {
		if (!EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &a) ||
		    !EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &b))
			goto out;
		ok = json_object_set_new(jwk, "kty", json_string("RSA")) == 0 &&
		     set_bn(jwk, "n", a, 0) == 0 && set_bn(jwk, "e", b, 0) == 0;
	}
out:
	BN_free(a);
	BN_free(b);
	ERR_clear_error();
	if (!ok) {
		json_decref(jwk);
		return NULL;
	}
	return jwk;
}

char *cs_acme_jws_thumbprint(EVP_PKEY *key)
{
	json_t *jwk = cs_acme_jws_jwk(key);
	unsigned char md[SHA256_DIGEST_LENGTH];
	char *s;

	if (jwk == NULL)
		return NULL;
	s = json_dumps(jwk, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(jwk);
	if (s == NULL)
		return NULL;
	SHA256((const unsigned char *)s, strlen(s), md);
	free(s);
	return cs_b64url_encode(md, sizeof(md));
}

/* Signs data with key; returns the JWS signature bytes (caller frees) or NULL. */
static unsigned char *sign(EVP_PKEY *key, const char *data, size_t *siglen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char *der = NULL, *out = NULL;
	size_t len = 0;
	ECDSA_SIG *es = NULL;

	if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, alg_md(key), NULL, key) != 1 ||
	    EVP_DigestSign(ctx, NULL, &len, (const unsigned char *)data, strlen(data)) != 1)
		goto out;
	der = malloc(len);
	if (der == NULL ||
	    EVP_DigestSign(ctx, der, &len, (const unsigned char *)data, strlen(data)) != 1)
		goto out;
	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) {
		out = der;
		der = NULL;
		*siglen = len;
		goto out;
	}
	int w = ec_width(key);
	const unsigned char *p = der;
	es = d2i_ECDSA_SIG(NULL, &p, (long)len);
	if (es == NULL)
		goto out;
	out = malloc((size_t)w * 2);
	if (out == NULL)
		goto out;
	if (BN_bn2binpad(ECDSA_SIG_get0_r(es), out, w) != w ||
	    BN_bn2binpad(ECDSA_SIG_get0_s(es), out + w, w) != w) {
		free(out);
		out = NULL;
		goto out;
	}
	*siglen = (size_t)w * 2;
out:
	ECDSA_SIG_free(es);
	free(der);
	EVP_MD_CTX_free(ctx);
	return out;
}

/* Builds {"protected","payload","signature"} from a protected header and payload text. */
static char *assemble(json_t *prot, const char *payload, EVP_PKEY *key, const unsigned char *hkey,
		      size_t hkeylen, json_t **obj_out, char *err, size_t errlen)
{
	char *ph = NULL, *p64 = NULL, *pl64 = NULL, *input = NULL, *sig64 = NULL, *out = NULL;
	unsigned char *sig = NULL, mac[EVP_MAX_MD_SIZE];
	size_t siglen = 0;
	unsigned int maclen = 0;
	json_t *o = NULL;

	ph = json_dumps(prot, JSON_COMPACT | JSON_SORT_KEYS);
	if (ph == NULL || (p64 = cs_b64url_encode(ph, strlen(ph))) == NULL ||
	    (pl64 = cs_b64url_encode(payload, strlen(payload))) == NULL ||
	    asprintf(&input, "%s.%s", p64, pl64) < 0) {
		input = NULL;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (key != NULL) {
		sig = sign(key, input, &siglen);
		if (sig == NULL) {
			snprintf(err, errlen, "cannot sign with the account key");
			cs_log_ssl_errors(err, errlen);
			goto out;
		}
		sig64 = cs_b64url_encode(sig, siglen);
	} else {
		if (HMAC(EVP_sha256(), hkey, (int)hkeylen, (const unsigned char *)input,
			 strlen(input), mac, &maclen) == NULL) {
			snprintf(err, errlen, "cannot compute the EAB MAC");
			goto out;
		}
		sig64 = cs_b64url_encode(mac, maclen);
	}
	o = json_pack("{s:s, s:s, s:s}", "protected", p64, "payload", pl64, "signature",
		      sig64 ? sig64 : "");
	if (sig64 == NULL || o == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (obj_out != NULL) {
		*obj_out = o;
		o = NULL;
		out = strdup("");
	} else {
		out = json_dumps(o, JSON_COMPACT);
	}
	if (out == NULL)
		snprintf(err, errlen, "out of memory");
out:
	json_decref(o);
	free(ph);
	free(p64);
	free(pl64);
	free(input);
	free(sig);
	free(sig64);
	OPENSSL_cleanse(mac, sizeof(mac));
	return out;
}

char *cs_acme_jws_sign(EVP_PKEY *key, const char *kid, const char *nonce, const char *url,
		       const char *payload, char *err, size_t errlen)
{
	const char *alg = cs_acme_jws_alg(key);
	json_t *prot;
	char *out;

	if (alg == NULL) {
		snprintf(err, errlen, "the account key is neither P-256, P-384 nor RSA");
		return NULL;
	}
	prot = json_pack("{s:s, s:s}", "alg", alg, "url", url);
	if (prot != NULL && nonce != NULL)
		json_object_set_new(prot, "nonce", json_string(nonce));
	if (prot == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (kid != NULL) {
		json_object_set_new(prot, "kid", json_string(kid));
	} else {
		json_t *jwk = cs_acme_jws_jwk(key);
		if (jwk == NULL) {
			json_decref(prot);
			snprintf(err, errlen, "cannot make the account key's JWK");
			return NULL;
		}
		json_object_set_new(prot, "jwk", jwk);
	}
	out = assemble(prot, payload != NULL ? payload : "", key, NULL, 0, NULL, err, errlen);
	json_decref(prot);
	return out;
}

json_t *cs_acme_jws_eab(const char *eab_kid, const char *hmac_key_b64url, EVP_PKEY *account_key,
			const char *url, char *err, size_t errlen)
{
	size_t klen = 0;
	unsigned char *k = cs_b64url_decode(hmac_key_b64url, strlen(hmac_key_b64url), &klen);
	json_t *jwk = NULL, *prot = NULL, *obj = NULL;
	char *payload = NULL, *s;

	if (k == NULL || klen == 0) {
		snprintf(err, errlen, "eab_hmac_key is not base64url");
		goto out;
	}
	jwk = cs_acme_jws_jwk(account_key);
	if (jwk == NULL || (payload = json_dumps(jwk, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
		snprintf(err, errlen, "cannot make the account key's JWK");
		goto out;
	}
	prot = json_pack("{s:s, s:s, s:s}", "alg", "HS256", "kid", eab_kid, "url", url);
	if (prot == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	s = assemble(prot, payload, NULL, k, klen, &obj, err, errlen);
	free(s);
out:
	if (k != NULL)
		OPENSSL_cleanse(k, klen);
	free(k);
	free(payload);
	json_decref(jwk);
	json_decref(prot);
	return obj;
}
