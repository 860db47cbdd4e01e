/*
 * check_acme - the pieces of the acme issuer that do not need a CA: base64url
 * (RFC 4648 vectors), JWK thumbprints (the RFC 7638 example), JWS that verify
 * with the account key and carry the right protected header, the EAB MAC,
 * problem documents, Retry-After, Link headers, RFC 3339 times, newOrder
 * payloads (identifiers, replaces, profile), ARI certificate identifiers and
 * renewalInfo parsing (the RFC 9773 examples: Debian's Pebble serves no ARI),
 * cs_http against the built-in http-01 responder on the loop, hooks (exit
 * status, environment, deadline), and the constructor's refusals. The
 * local host (cs_acme_host.h): a token that is not base64url never becomes
 * a file, every answer comes later; and an issuer on a host whose signatures
 * fail (against a small TLS server in a thread that serves the directory and
 * a nonce) fails with that host's words: the client signs nothing itself.
 *
 * With CS_ACME_DIRECTORY set (tests/integration/acme_revoke.sh and
 * acme_ari.sh set it after starting Pebble or an ARI fixture), "live" cases
 * also revoke a certificate at Pebble, or read a renewal window.
 */
#include "cs_acme.h"
#include "cs_acme_host.h"
#include "cs_acme_hook.h"
#include "cs_acme_http01.h"
#include "cs_acme_jws.h"
#include "cs_acme_msg.h"
#include "cs_b64url.h"
#include "cs_http.h"
#include "cs_csr.h"
#include "cs_key.h"
#include "testutil.h"

#include <check.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

/* ---- base64url --------------------------------------------------------- */

static const struct {
	const char *plain, *enc;
} b64_cases[] = {
	{ "", "" },	      { "f", "Zg" },	     { "fo", "Zm8" },	     { "foo", "Zm9v" },
	{ "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" }, { "foobar", "Zm9vYmFy" }, { "\xfb\xff", "-_8" },
};

START_TEST(test_acme_b64url_vectors)
{
	const char *p = b64_cases[_i].plain, *e = b64_cases[_i].enc;
	char *enc = cs_b64url_encode(p, strlen(p));
	size_t n = 99;
	unsigned char *dec = cs_b64url_decode(e, strlen(e), &n);

	ck_assert_str_eq(enc, e);
	ck_assert_ptr_nonnull(dec);
	ck_assert_uint_eq(n, strlen(p));
	ck_assert(memcmp(dec, p, n) == 0);
	free(enc);
	free(dec);
}
END_TEST

START_TEST(test_acme_b64url_refuses)
{
	size_t n;

	/* The standard alphabet's + and /, a length no encoding has, stray bits. */
	ck_assert_ptr_null(cs_b64url_decode("+/8", 3, &n));
	ck_assert_ptr_null(cs_b64url_decode("Zm9vY", 5, &n));
	ck_assert_ptr_null(cs_b64url_decode("Zh", 2, &n));
	ck_assert_ptr_null(cs_b64url_decode("Zm 9v", 5, &n));
}
END_TEST

/* ---- JWK, JWS, EAB -------------------------------------------------------- */

/* The RSA key of RFC 7638 section 3.1. */
static const char rfc7638_n[] =
	"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
	"JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_F"
	"DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4v"
	"MQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

static EVP_PKEY *rsa_from_jwk(const char *n64, const char *e64)
{
	size_t nl, el;
	unsigned char *n = cs_b64url_decode(n64, strlen(n64), &nl);
	unsigned char *e = cs_b64url_decode(e64, strlen(e64), &el);
	BIGNUM *bn = BN_bin2bn(n, (int)nl, NULL), *be = BN_bin2bn(e, (int)el, NULL);
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	EVP_PKEY *key = NULL;

	OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn);
	OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be);
	params = OSSL_PARAM_BLD_to_param(bld);
	ck_assert_int_eq(EVP_PKEY_fromdata_init(ctx), 1);
	ck_assert_int_eq(EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params), 1);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	BN_free(bn);
	BN_free(be);
	free(n);
	free(e);
	return key;
}

START_TEST(test_acme_jwk_thumbprint_rfc7638)
{
	EVP_PKEY *key = rsa_from_jwk(rfc7638_n, "AQAB");
	char *t = cs_acme_jws_thumbprint(key);

	ck_assert_str_eq(t, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
	free(t);
	EVP_PKEY_free(key);
}
END_TEST

/* Decodes one base64url member of a flattened JWS. */
static char *member(json_t *jws, const char *name, size_t *len)
{
	const char *v = json_string_value(json_object_get(jws, name));
	size_t n = 0;
	unsigned char *d;

	ck_assert_ptr_nonnull(v);
	d = cs_b64url_decode(v, strlen(v), &n);
	ck_assert_ptr_nonnull(d);
	char *s = malloc(n + 1);
	memcpy(s, d, n);
	s[n] = '\0';
	free(d);
	if (len != NULL)
		*len = n;
	return s;
}

/* Verifies a flattened JWS with key; returns 1 when the signature is good. */
static int jws_verifies(json_t *jws, EVP_PKEY *key)
{
	const char *p = json_string_value(json_object_get(jws, "protected"));
	const char *pl = json_string_value(json_object_get(jws, "payload"));
	size_t siglen;
	char *sig = member(jws, "signature", &siglen), *input;
	unsigned char *der = NULL;
	int derlen, ok;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	ck_assert_int_ge(asprintf(&input, "%s.%s", p, pl), 0);
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
		size_t w = siglen / 2;
		ECDSA_SIG *es = ECDSA_SIG_new();
		/* JWS holds r || s at the curve's width: exactly 64 bytes for P-256. */
		ck_assert_uint_eq(siglen, EVP_PKEY_get_bits(key) == 256 ? 64 : 96);
		ECDSA_SIG_set0(es, BN_bin2bn((unsigned char *)sig, (int)w, NULL),
			       BN_bin2bn((unsigned char *)sig + w, (int)w, NULL));
		derlen = i2d_ECDSA_SIG(es, &der);
		ECDSA_SIG_free(es);
	} else {
		der = OPENSSL_memdup(sig, siglen);
		derlen = (int)siglen;
	}
	ok = EVP_DigestVerifyInit(ctx, NULL,
				  EVP_PKEY_get_bits(key) == 384 ? EVP_sha384() : EVP_sha256(), NULL,
				  key) == 1 &&
	     EVP_DigestVerify(ctx, der, (size_t)derlen, (unsigned char *)input, strlen(input)) == 1;
	EVP_MD_CTX_free(ctx);
	OPENSSL_free(der);
	free(input);
	free(sig);
	return ok;
}

static const enum cs_keytype jws_keys[] = { CS_KEY_EC_P256, CS_KEY_EC_P384, CS_KEY_RSA_2048 };
static const char *const jws_algs[] = { "ES256", "ES384", "RS256" };

START_TEST(test_acme_jws_signs_and_names_key)
{
	char err[256] = "";
	EVP_PKEY *key = cs_key_generate(jws_keys[_i], err, sizeof(err));
	char *s, *prot, *payload;
	json_t *jws, *ph;

	ck_assert_ptr_nonnull(key);
	/* By JWK (newAccount). */
	s = cs_acme_jws_sign(key, NULL, "nonce-1", "https://ca/new-acct", "{\"a\":1}", err,
			     sizeof(err));
	ck_assert_msg(s != NULL, "%s", err);
	jws = json_loads(s, 0, NULL);
	ck_assert_ptr_nonnull(jws);
	ck_assert(jws_verifies(jws, key));
	prot = member(jws, "protected", NULL);
	ph = json_loads(prot, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(ph, "alg")), jws_algs[_i]);
	ck_assert_str_eq(json_string_value(json_object_get(ph, "nonce")), "nonce-1");
	ck_assert_str_eq(json_string_value(json_object_get(ph, "url")), "https://ca/new-acct");
	ck_assert_ptr_null(json_object_get(ph, "kid"));
	json_t *jwk = cs_acme_jws_jwk(key);
	ck_assert(json_equal(json_object_get(ph, "jwk"), jwk));
	json_decref(jwk);
	payload = member(jws, "payload", NULL);
	ck_assert_str_eq(payload, "{\"a\":1}");
	free(payload);
	free(prot);
	json_decref(ph);
	json_decref(jws);
	free(s);

	/* By kid, with the empty payload of a POST-as-GET. */
	s = cs_acme_jws_sign(key, "https://ca/acct/7", "nonce-2", "https://ca/order/1", NULL, err,
			     sizeof(err));
	jws = json_loads(s, 0, NULL);
	ck_assert(jws_verifies(jws, key));
	ck_assert_str_eq(json_string_value(json_object_get(jws, "payload")), "");
	prot = member(jws, "protected", NULL);
	ph = json_loads(prot, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(ph, "kid")), "https://ca/acct/7");
	ck_assert_ptr_null(json_object_get(ph, "jwk"));
	free(prot);
	json_decref(ph);
	json_decref(jws);
	free(s);

	/* Another key does not verify it: the check above can fail. */
	EVP_PKEY *other = cs_key_generate(jws_keys[_i], err, sizeof(err));
	s = cs_acme_jws_sign(key, NULL, "n", "u", "{}", err, sizeof(err));
	jws = json_loads(s, 0, NULL);
	ck_assert(!jws_verifies(jws, other));
	json_decref(jws);
	free(s);
	EVP_PKEY_free(other);
	EVP_PKEY_free(key);
}
END_TEST

START_TEST(test_acme_jws_refuses_ed25519)
{
	char err[256] = "";
	EVP_PKEY *key = cs_key_generate(CS_KEY_ED25519, err, sizeof(err));

	ck_assert_ptr_null(cs_acme_jws_sign(key, NULL, "n", "u", "{}", err, sizeof(err)));
	ck_assert_str_eq(err, "the account key is neither P-256, P-384 nor RSA");
	EVP_PKEY_free(key);
}
END_TEST

/* The client holds only the public half (d2i_PUBKEY): the JWK and thumbprint are the same. */
START_TEST(test_acme_jwk_public_only)
{
	char err[256] = "";
	EVP_PKEY *key = cs_key_generate(jws_keys[_i], err, sizeof(err)), *pub;
	unsigned char *der = NULL;
	const unsigned char *p;
	int n;
	char *t1, *t2;

	ck_assert_msg(key != NULL, "%s", err);
	n = i2d_PUBKEY(key, &der);
	ck_assert_int_gt(n, 0);
	p = der;
	pub = d2i_PUBKEY(NULL, &p, n);
	ck_assert_ptr_nonnull(pub);
	ck_assert_str_eq(cs_acme_jws_alg(pub), jws_algs[_i]);
	t1 = cs_acme_jws_thumbprint(key);
	t2 = cs_acme_jws_thumbprint(pub);
	ck_assert_ptr_nonnull(t2);
	ck_assert_str_eq(t1, t2);
	/* And it cannot sign. */
	ck_assert_ptr_null(cs_acme_jws_sign(pub, NULL, "n", "u", "{}", err, sizeof(err)));
	free(t1);
	free(t2);
	OPENSSL_free(der);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(key);
}
END_TEST

START_TEST(test_acme_eab_mac)
{
	char err[256] = "";
	EVP_PKEY *key = cs_key_generate(CS_KEY_EC_P256, err, sizeof(err));
	/* Pebble's test MAC key style: base64url of 32 bytes. */
	const char *hmac64 = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
	json_t *eab = cs_acme_jws_eab("kid-1", hmac64, key, "https://ca/new-acct", err,
				      sizeof(err));
	size_t klen;
	unsigned char *k = cs_b64url_decode(hmac64, strlen(hmac64), &klen), mac[32];
	unsigned int maclen;
	char *input, *expect, *prot, *payload;
	json_t *ph, *jwk;

	ck_assert_msg(eab != NULL, "%s", err);
	prot = member(eab, "protected", NULL);
	ph = json_loads(prot, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(ph, "alg")), "HS256");
	ck_assert_str_eq(json_string_value(json_object_get(ph, "kid")), "kid-1");
	ck_assert_str_eq(json_string_value(json_object_get(ph, "url")), "https://ca/new-acct");
	payload = member(eab, "payload", NULL);
	jwk = cs_acme_jws_jwk(key);
	json_t *pj = json_loads(payload, 0, NULL);
	ck_assert(json_equal(pj, jwk));
	ck_assert_int_ge(asprintf(&input, "%s.%s",
				  json_string_value(json_object_get(eab, "protected")),
				  json_string_value(json_object_get(eab, "payload"))),
			 0);
	HMAC(EVP_sha256(), k, (int)klen, (unsigned char *)input, strlen(input), mac, &maclen);
	expect = cs_b64url_encode(mac, maclen);
	ck_assert_str_eq(json_string_value(json_object_get(eab, "signature")), expect);
	/* A key that is not base64url is refused, and the message does not repeat it. */
	ck_assert_ptr_null(cs_acme_jws_eab("kid-1", "not base64!", key, "u", err, sizeof(err)));
	ck_assert_str_eq(err, "eab_hmac_key is not base64url");
	json_decref(pj);
	json_decref(jwk);
	json_decref(ph);
	json_decref(eab);
	free(prot);
	free(payload);
	free(input);
	free(expect);
	free(k);
	EVP_PKEY_free(key);
}
END_TEST

/* ---- messages ------------------------------------------------------------ */

START_TEST(test_acme_problem_type)
{
	const char *bad = "{\n  \"type\": \"urn:ietf:params:acme:error:badNonce\",\n"
			  "  \"detail\": \"JWS has an invalid anti-replay nonce\",\n"
			  "  \"status\": 400\n}";
	char type[128] = "";

	ck_assert_int_eq(cs_acme_msg_problem(bad, strlen(bad), type, sizeof(type)), 0);
	ck_assert_str_eq(type, "urn:ietf:params:acme:error:badNonce");
	ck_assert_int_eq(cs_acme_msg_problem("<html>", 6, type, sizeof(type)), -1);
	ck_assert_int_eq(cs_acme_msg_problem("{\"detail\":\"x\"}", 14, type, sizeof(type)), -1);
}
END_TEST

START_TEST(test_acme_retry_after)
{
	/* 2026-01-01T00:00:00Z */
	int64_t now = 1767225600;

	ck_assert_int_eq(cs_acme_msg_retry_after("120", now), 120);
	ck_assert_int_eq(cs_acme_msg_retry_after(" 0 ", now), 0);
	ck_assert_int_eq(cs_acme_msg_retry_after("Thu, 01 Jan 2026 00:01:30 GMT", now), 90);
	ck_assert_int_eq(cs_acme_msg_retry_after("Wed, 31 Dec 2025 23:00:00 GMT", now), 0);
	ck_assert_int_eq(cs_acme_msg_retry_after("soon", now), -1);
	ck_assert_int_eq(cs_acme_msg_retry_after("-5", now), -1);
}
END_TEST

START_TEST(test_acme_link_alternates)
{
	char *urls[8] = { 0 };
	size_t n = cs_acme_msg_links("<https://ca/dir>;rel=\"index\", "
				     "<https://ca/cert/1/1>;rel=\"alternate\", "
				     "<https://ca/cert/1/2>; rel=alternate",
				     "alternate", urls, 8);

	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(urls[0], "https://ca/cert/1/1");
	ck_assert_str_eq(urls[1], "https://ca/cert/1/2");
	free(urls[0]);
	free(urls[1]);
	n = cs_acme_msg_links("<https://ca/dir>;rel=\"index\"", "alternate", urls, 8);
	ck_assert_uint_eq(n, 0);
}
END_TEST

static const struct {
	const char *s;
	int64_t t; /* -1: refused */
} time_cases[] = {
	{ "2025-01-02T04:00:00Z", 1735790400 },
	{ "2025-01-02T04:00:00.123456Z", 1735790400 },
	{ "2025-01-02T05:30:00+01:30", 1735790400 },
	{ "2025-01-01T23:00:00-05:00", 1735790400 },
	{ "2025-01-02T04:00:00", -1 },
	{ "2025-13-02T04:00:00Z", -1 },
	{ "2025-01-02", -1 },
	{ "2025-01-02T04:00:00Zjunk", -1 },
};

START_TEST(test_acme_rfc3339)
{
	int64_t t = 0;
	int rc = cs_acme_msg_time(time_cases[_i].s, &t);

	if (time_cases[_i].t < 0) {
		ck_assert_int_eq(rc, -1);
	} else {
		ck_assert_int_eq(rc, 0);
		ck_assert_int_eq(t, time_cases[_i].t);
	}
}
END_TEST

START_TEST(test_acme_new_order_payload)
{
	char *names[] = { "a.example.test", "192.0.2.1", "2001:db8::1", "*.example.test" };
	char *s = cs_acme_msg_new_order(names, 4, NULL, NULL);

	ck_assert_str_eq(s, "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.example.test\"},"
			    "{\"type\":\"ip\",\"value\":\"192.0.2.1\"},"
			    "{\"type\":\"ip\",\"value\":\"2001:db8::1\"},"
			    "{\"type\":\"dns\",\"value\":\"*.example.test\"}]}");
	free(s);
	s = cs_acme_msg_new_order(names, 1, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE", "shortlived");
	ck_assert_str_eq(s, "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.example.test\"}],"
			    "\"replaces\":\"aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE\","
			    "\"profile\":\"shortlived\"}");
	free(s);
}
END_TEST

START_TEST(test_acme_profile_offered)
{
	json_t *d = json_loads("{\"newOrder\":\"x\",\"meta\":{\"profiles\":"
			       "{\"classic\":\"The same as ever\",\"shortlived\":\"6 days\"}}}",
			       0, NULL);
	json_t *none = json_loads("{\"newOrder\":\"x\",\"meta\":{}}", 0, NULL);

	ck_assert_int_eq(cs_acme_msg_profile_offered(d, "shortlived"), 1);
	ck_assert_int_eq(cs_acme_msg_profile_offered(d, "tlsserver"), 0);
	ck_assert_int_eq(cs_acme_msg_profile_offered(none, "shortlived"), 0);
	json_decref(d);
	json_decref(none);
}
END_TEST

/* A certificate with the AKI keyIdentifier and serial of RFC 9773 section 4.1. */
static X509 *rfc9773_cert(void)
{
	static const unsigned char kid[] = { 0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40,
					     0x41, 0xE1, 0xB3, 0x7B, 0x84, 0x7B, 0xA0,
					     0xAE, 0x2C, 0xDE, 0x01, 0xC8, 0xD4 };
	char err[128];
	X509 *x = X509_new();
	AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
	BIGNUM *bn = NULL;
	EVP_PKEY *key = cs_key_generate(CS_KEY_EC_P256, err, sizeof(err));

	akid->keyid = ASN1_OCTET_STRING_new();
	ASN1_OCTET_STRING_set(akid->keyid, kid, sizeof(kid));
	ck_assert_int_eq(X509_add1_ext_i2d(x, NID_authority_key_identifier, akid, 0, 0), 1);
	BN_hex2bn(&bn, "87654321");
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	X509_set_pubkey(x, key);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	ck_assert_int_gt(X509_sign(x, key, EVP_sha256()), 0);
	AUTHORITY_KEYID_free(akid);
	BN_free(bn);
	EVP_PKEY_free(key);
	return x;
}

START_TEST(test_acme_ari_certid_rfc9773)
{
	char err[256] = "";
	X509 *x = rfc9773_cert(), *bare = X509_new();
	char *id = cs_acme_msg_certid(x, err, sizeof(err));

	ck_assert_msg(id != NULL, "%s", err);
	/* The identifier of RFC 9773's example; the serial's leading zero octet is kept. */
	ck_assert_str_eq(id, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
	free(id);
	ck_assert_ptr_null(cs_acme_msg_certid(bare, err, sizeof(err)));
	ck_assert_str_eq(err, "the certificate has no authority key identifier");
	X509_free(bare);
	X509_free(x);
}
END_TEST

START_TEST(test_acme_ari_window)
{
	const char *ok = "{\n  \"suggestedWindow\": {\n"
			 "    \"start\": \"2025-01-02T04:00:00Z\",\n"
			 "    \"end\": \"2025-01-03T04:00:00Z\"\n  },\n"
			 "  \"explanationURL\": \"https://acme.example.com/docs/ari\"\n}";
	struct cs_issuer_window w = { 0 };
	char err[256] = "";

	ck_assert_int_eq(cs_acme_msg_ari(ok, strlen(ok), &w, err, sizeof(err)), 0);
	ck_assert_int_eq(w.start, 1735790400);
	ck_assert_int_eq(w.end, 1735790400 + 86400);
	ck_assert_str_eq(w.explanation, "https://acme.example.com/docs/ari");

	const char *backwards = "{\"suggestedWindow\":{\"start\":\"2025-01-03T04:00:00Z\","
				"\"end\":\"2025-01-02T04:00:00Z\"}}";
	ck_assert_int_eq(cs_acme_msg_ari(backwards, strlen(backwards), &w, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "renewalInfo: the window ends (2025-01-02T04:00:00Z) before it "
			      "starts (2025-01-03T04:00:00Z)");
	const char *missing = "{\"suggestedWindow\":{\"start\":\"2025-01-03T04:00:00Z\"}}";
	ck_assert_int_eq(cs_acme_msg_ari(missing, strlen(missing), &w, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "renewalInfo has no suggestedWindow with start and end");
	ck_assert_int_eq(cs_acme_msg_ari("nope", 4, &w, err, sizeof(err)), -1);
}
END_TEST

/* ---- cs_http against the built-in responder ------------------------------ */

struct got {
	int n;
	int status[4];
	long code[4];
	char body[4][256];
	cs_acme_http01 *srv;
	cs_http *http;
};

static void on_got(void *arg, const struct cs_http_response *r)
{
	struct got *g = arg;

	g->status[g->n] = r->status;
	g->code[g->n] = r->code;
	snprintf(g->body[g->n], sizeof(g->body[0]), "%s", r->status == 0 ? r->body : r->error);
	if (++g->n == 3) {
		cs_acme_http01_close(g->srv, NULL, NULL);
		cs_http_close(g->http, NULL, NULL);
	}
}

START_TEST(test_acme_http01_responder)
{
	uv_loop_t loop;
	char err[256] = "", url[3][256];
	struct got g = { 0 };
	struct cs_http_opts ho = { 0 };

	uv_loop_init(&loop);
	g.srv = cs_acme_http01_new(&loop, "127.0.0.1:0", err, sizeof(err));
	ck_assert_msg(g.srv != NULL, "%s", err);
	g.http = cs_http_new(&loop, &ho, err, sizeof(err));
	ck_assert_ptr_nonnull(g.http);
	ck_assert_int_eq(cs_acme_http01_add(g.srv, "tok-A_1", "tok-A_1.thumb"), 0);
	ck_assert_int_eq(cs_acme_http01_add(g.srv, "gone", "gone.thumb"), 0);
	cs_acme_http01_remove(g.srv, "gone");
	int port = cs_acme_http01_port(g.srv);
	snprintf(url[0], sizeof(url[0]), "http://127.0.0.1:%d/.well-known/acme-challenge/tok-A_1",
		 port);
	snprintf(url[1], sizeof(url[1]), "http://127.0.0.1:%d/.well-known/acme-challenge/gone",
		 port);
	snprintf(url[2], sizeof(url[2]), "http://127.0.0.1:%d/tok-A_1", port);
	for (int i = 0; i < 3; i++) {
		struct cs_http_request rq = { .method = "GET", .url = url[i] };
		ck_assert_int_eq(cs_http_send(g.http, &rq, on_got, &g, NULL), 0);
	}
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(g.n, 3);
	/* The answers can come in any order: find each by its code. */
	int ok = 0, nf = 0;
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(g.status[i], 0);
		if (g.code[i] == 200) {
			ck_assert_str_eq(g.body[i], "tok-A_1.thumb");
			ok++;
		} else if (g.code[i] == 404) {
			nf++;
		}
	}
	ck_assert_int_eq(ok, 1);
	ck_assert_int_eq(nf, 2);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/*
 * A flood of idle connections to the responder during an order (issue 15
 * item 3): the responder keeps at most CS_ACME_HTTP01_MAX_CONNS open (the
 * oldest go first), so that the agent's descriptors are not used up, and the
 * CA's validation request is still answered.
 */
START_TEST(test_acme_http01_flood)
{
	uv_loop_t loop;
	char err[256] = "", url[256];
	struct got g = { 0 };
	struct cs_http_opts ho = { 0 };
	int fds[300];
	struct sockaddr_in sa = { .sin_family = AF_INET };

	uv_loop_init(&loop);
	g.srv = cs_acme_http01_new(&loop, "127.0.0.1:0", err, sizeof(err));
	ck_assert_msg(g.srv != NULL, "%s", err);
	ck_assert_int_eq(cs_acme_http01_add(g.srv, "tok", "tok.thumb"), 0);
	sa.sin_port = htons((uint16_t)cs_acme_http01_port(g.srv));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int i = 0; i < 300; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		ck_assert_int_ge(fds[i], 0);
		connect(fds[i], (struct sockaddr *)&sa, sizeof(sa));
		uv_run(&loop, UV_RUN_NOWAIT);
	}
	for (int i = 0; i < 50; i++)
		uv_run(&loop, UV_RUN_NOWAIT);
	ck_assert_int_le(cs_acme_http01_conns(g.srv), CS_ACME_HTTP01_MAX_CONNS);
	ck_assert_int_gt(cs_acme_http01_conns(g.srv), 0);

	g.http = cs_http_new(&loop, &ho, err, sizeof(err));
	ck_assert_ptr_nonnull(g.http);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/.well-known/acme-challenge/tok",
		 cs_acme_http01_port(g.srv));
	struct cs_http_request rq = { .method = "GET", .url = url };
	g.n = 2; /* the third answer closes both */
	ck_assert_int_eq(cs_http_send(g.http, &rq, on_got, &g, NULL), 0);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(g.status[2], 0);
	ck_assert_int_eq(g.code[2], 200);
	ck_assert_str_eq(g.body[2], "tok.thumb");
	for (int i = 0; i < 300; i++)
		close(fds[i]);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

static void on_refused(void *arg, const struct cs_http_response *r)
{
	struct got *g = arg;

	g->status[g->n++] = r->status;
	snprintf(g->body[0], sizeof(g->body[0]), "%s", r->error ? r->error : "");
}

START_TEST(test_acme_http_refused_and_closed)
{
	uv_loop_t loop;
	char err[256] = "";
	struct got g = { 0 };
	struct cs_http_opts ho = { 0 };
	cs_acme_http01 *srv;
	int port;

	/* A port that was just free: nothing listens there now. */
	uv_loop_init(&loop);
	srv = cs_acme_http01_new(&loop, "127.0.0.1:0", err, sizeof(err));
	port = cs_acme_http01_port(srv);
	cs_acme_http01_close(srv, NULL, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	g.http = cs_http_new(&loop, &ho, err, sizeof(err));
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
	struct cs_http_request rq = { .method = "GET", .url = url };
	ck_assert_int_eq(cs_http_send(g.http, &rq, on_refused, &g, NULL), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(g.n, 1);
	ck_assert_int_eq(g.status[0], -ECONNREFUSED);
	ck_assert_msg(strstr(g.body[0], "onnect") != NULL, "%s", g.body[0]);
	/* Closing with a request pending runs its callback with -ECANCELED. */
	ck_assert_int_eq(cs_http_send(g.http, &rq, on_refused, &g, NULL), 0);
	cs_http_close(g.http, NULL, NULL);
	ck_assert_int_eq(g.n, 2);
	ck_assert_int_eq(g.status[1], -ECANCELED);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* ---- hooks --------------------------------------------------------------- */

static void on_hook(void *arg, int64_t status)
{
	*(int64_t *)arg = status;
}

START_TEST(test_acme_hook_status_env_deadline)
{
	uv_loop_t loop;
	int64_t st = -999;
	char *dir = cs_test_mkdtemp(), *out, *cmd;
	const char *vars[][2] = { { "METHOD", "add" }, { "RECORD", "_acme-challenge.a.test" } };
	char **env;

	uv_loop_init(&loop);
	setenv("CERTSYNC_METHOD", "stale", 1);
	env = cs_acme_hook_env(vars, 2);
	ck_assert_ptr_nonnull(env);
	/* The exit status comes back, and the CERTSYNC_* variables are ours, once each. */
	ck_assert_int_ge(asprintf(&cmd, "env | grep ^CERTSYNC_ | sort >%s/env; exit 3", dir), 0);
	char *const a1[] = { "/bin/sh", "-c", cmd, NULL };
	ck_assert_int_eq(cs_acme_hook_run(&loop, a1, env, 10000, on_hook, &st), 0);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(st, 3);
	free(cmd);
	ck_assert_int_ge(asprintf(&cmd, "%s/env", dir), 0);
	out = cs_test_read(cmd, NULL);
	ck_assert_str_eq(out, "CERTSYNC_METHOD=add\nCERTSYNC_RECORD=_acme-challenge.a.test\n");
	free(out);
	free(cmd);
	cs_acme_hook_env_free(env);

	/* A hook that overruns its time is killed: 128 + SIGKILL, well before it would end. */
	char *const a2[] = { "/bin/sleep", "30", NULL };
	uint64_t t0 = uv_hrtime();
	ck_assert_int_eq(cs_acme_hook_run(&loop, a2, NULL, 200, on_hook, &st), 0);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(st, 128 + 9);
	ck_assert_uint_lt(uv_hrtime() - t0, 5000000000ULL);

	/* A program that does not exist does not start; the callback never runs. */
	char *const a3[] = { "/nonexistent/hook", "add", NULL };
	st = -999;
	ck_assert_int_eq(cs_acme_hook_run(&loop, a3, NULL, 200, on_hook, &st), UV_ENOENT);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(st, -999);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	cs_test_rmrf(dir);
	free(dir);
}
END_TEST

/* ---- the issuer's constructor ------------------------------------------ */

static const struct {
	struct cs_acme_opts o;
	const char *err;
} refusals[] = {
	{ { .directory = "http://ca/dir", .webroot = "/w" }, "directory must be an https:// URL" },
	{ { .directory = "https://ca/dir" }, "http-01 needs webroot or http_listen" },
	{ { .directory = "https://ca/dir", .challenge = CS_ACME_DNS01 }, "dns-01 needs dns_hook" },
	{ { .directory = "https://ca/dir", .webroot = "/w", .account_key = CS_KEY_ED25519 },
	  "account_key ed25519 cannot sign ACME requests" },
	{ { .directory = "https://ca/dir", .webroot = "/w", .eab_kid = "k" },
	  "eab_kid and eab_hmac_key go together" },
	{ { .directory = "https://ca/dir", .webroot = "/w", .max_orders = CS_ACME_MAX_ORDERS + 1 },
	  "max_orders 17 is above 16" },
};

START_TEST(test_acme_issuer_refuses)
{
	uv_loop_t loop;
	char err[256] = "";

	uv_loop_init(&loop);
	ck_assert_ptr_null(cs_acme_issuer_new(&loop, "x", &refusals[_i].o, "/tmp", err, sizeof(err)));
	ck_assert_str_eq(err, refusals[_i].err);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

static void on_closed(void *arg)
{
	*(int *)arg = 1;
}

/* A request for cert "a", names[0], with the CSR (in *der: OPENSSL_free it) of a new P-256 key. */
static struct cs_issue_request issue_request(char **names, unsigned char **der)
{
	char err[256] = "";
	EVP_PKEY *key = cs_key_generate(CS_KEY_EC_P256, err, sizeof(err));
	X509_REQ *csr = cs_csr_new(key, names, 1, err, sizeof(err));
	int n = i2d_X509_REQ(csr, der);
	struct cs_issue_request rq = { .cert_name = "a", .names = names, .n_names = 1,
				       .csr = { *der, (size_t)n } };

	ck_assert_int_gt(n, 0);
	X509_REQ_free(csr);
	EVP_PKEY_free(key);
	return rq;
}

static void on_issue_cancelled(void *arg, const struct cs_issue_result *res)
{
	int *st = arg;

	*st = res->status;
}

START_TEST(test_acme_issuer_close_cancels)
{
	uv_loop_t loop;
	char err[256] = "", *names[] = { "a.example.test" };
	struct cs_acme_opts o = { .directory = "https://127.0.0.1:1/dir", .webroot = "/nonexistent" };
	int closed = 0, st = 1;
	unsigned char *der = NULL;
	struct cs_issue_request rq = issue_request(names, &der);
	cs_issuer *is;

	uv_loop_init(&loop);
	is = cs_acme_issuer_new(&loop, "x", &o, "/nonexistent", err, sizeof(err));
	ck_assert_msg(is != NULL, "%s", err);
	ck_assert_str_eq(is->ops->type, "acme");
	ck_assert_ptr_nonnull(is->ops->revoke);
	ck_assert_ptr_nonnull(is->ops->renewal_info);
	ck_assert_int_eq(is->ops->issue(is, &rq, on_issue_cancelled, &st), 0);
	/* The callback never runs inside issue(). */
	ck_assert_int_eq(st, 1);
	is->ops->close(is, on_closed, &closed);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(st, -ECANCELED);
	ck_assert_int_eq(closed, 1);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	OPENSSL_free(der);
}
END_TEST

static void on_issue_count(void *arg, const struct cs_issue_result *res)
{
	int *st = arg;

	st[0]++;
	st[1] = res->status;
}

/*
 * Six orders on an issuer whose CA does not answer, allowed two at a time:
 * while they fail and start one after the other, closing ends every one of
 * them exactly once, and every job's timer is closed with the issuer.
 */
START_TEST(test_acme_issuer_close_many)
{
	uv_loop_t loop;
	char err[256] = "", *names[] = { "a.example.test" };
	struct cs_acme_opts o = { .directory = "https://127.0.0.1:1/dir", .webroot = "/nonexistent",
				  .max_orders = 2 };
	int closed = 0, st[6][2] = { { 0 } };
	unsigned char *der = NULL;
	struct cs_issue_request rq = issue_request(names, &der);
	cs_issuer *is;

	uv_loop_init(&loop);
	is = cs_acme_issuer_new(&loop, "x", &o, "/nonexistent", err, sizeof(err));
	ck_assert_msg(is != NULL, "%s", err);
	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(is->ops->issue(is, &rq, on_issue_count, st[i]), 0);
	/* A few turns: the first orders fail (connection refused), the next start. */
	for (int i = 0; i < 50 && st[_i % 3][0] == 0; i++)
		uv_run(&loop, UV_RUN_ONCE);
	is->ops->close(is, on_closed, &closed);
	uv_run(&loop, UV_RUN_DEFAULT);
	for (int i = 0; i < 6; i++) {
		ck_assert_int_eq(st[i][0], 1);
		ck_assert_int_lt(st[i][1], 0);
	}
	ck_assert_int_eq(st[5][1], -ECANCELED);
	ck_assert_int_eq(closed, 1);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	OPENSSL_free(der);
}
END_TEST

/* ---- the local host ------------------------------------------------------ */

START_TEST(test_acme_host_token_ok)
{
	char long_tok[258];

	ck_assert(cs_acme_host_token_ok("AZaz09-_"));
	ck_assert(!cs_acme_host_token_ok(NULL));
	ck_assert(!cs_acme_host_token_ok(""));
	ck_assert(!cs_acme_host_token_ok(".."));
	ck_assert(!cs_acme_host_token_ok("a/b"));
	ck_assert(!cs_acme_host_token_ok("a.b"));
	ck_assert(!cs_acme_host_token_ok("a=="));
	memset(long_tok, 'a', 256);
	long_tok[256] = '\0';
	ck_assert(cs_acme_host_token_ok(long_tok));
	long_tok[256] = 'a';
	long_tok[257] = '\0';
	ck_assert(!cs_acme_host_token_ok(long_tok));
}
END_TEST

/* What one call to a host answered, and whether it answered inside the call. */
struct answer {
	int n, status;
	bool existed;
	char error[512];
	char *text;
	EVP_PKEY *pub;
	int fd;
};

static void on_key_answer(void *arg, int status, const struct cs_der *pub, bool existed,
			  const char *error)
{
	struct answer *a = arg;
	const unsigned char *p = pub != NULL ? pub->p : NULL;

	a->n++;
	a->status = status;
	a->existed = existed;
	snprintf(a->error, sizeof(a->error), "%s", error != NULL ? error : "");
	if (status == 0)
		a->pub = d2i_PUBKEY(NULL, &p, (long)pub->n);
}

static void on_text_answer(void *arg, int status, const char *text, const char *error)
{
	struct answer *a = arg;

	a->n++;
	a->status = status;
	snprintf(a->error, sizeof(a->error), "%s", error != NULL ? error : "");
	free(a->text);
	a->text = status == 0 ? strdup(text) : NULL;
}

static void on_done_answer(void *arg, int status, const char *error)
{
	struct answer *a = arg;

	a->n++;
	a->status = status;
	snprintf(a->error, sizeof(a->error), "%s", error != NULL ? error : "");
}

static void on_fd_answer(void *arg, int status, int fd, const char *error)
{
	struct answer *a = arg;

	a->n++;
	a->status = status;
	a->fd = fd;
	snprintf(a->error, sizeof(a->error), "%s", error != NULL ? error : "");
}

/* Tokens a CA (or whoever speaks for it) might send to climb out of the webroot. */
static const char *const bad_tokens[] = { "../../evil", "a/b", "..", "", "tok.en", "tok en",
					  "%2e%2e", "tok\\en" };

/*
 * The local host of an issuer with a webroot: the account key made (0600)
 * and its public half returned; a signature that verifies with it; token
 * files only for base64url tokens, holding TOKEN.THUMBPRINT, and removed
 * again; http_listen refused when there is none. Every answer comes after
 * the call has returned.
 */
START_TEST(test_acme_host_local)
{
	uv_loop_t loop;
	char err[256] = "", *web = cs_test_path("%s/web", cs_test_tmp),
	     *state = cs_test_path("%s/state", cs_test_tmp), listing[256];
	struct cs_acme_opts o = { .directory = "https://ca/dir", .webroot = web };
	const struct cs_acme_host_ops *ops = &cs_acme_host_local_ops;
	struct answer key = { 0 }, sig = { 0 }, ch = { 0 }, lis = { 0 };
	struct stat sb;
	int closed = 0;
	void *h;

	ck_assert_int_eq(mkdir(web, 0755), 0);
	ck_assert_int_eq(mkdir(state, 0700), 0);
	uv_loop_init(&loop);
	h = cs_acme_host_local_new(&loop, "x/y", &o, state, err, sizeof(err));
	ck_assert_msg(h != NULL, "%s", err);

	/* Nothing signs before the key is there. */
	struct cs_acme_host_sign sr = { .kid = NULL, .nonce = "n-1", .url = "https://ca/new-acct",
					.payload = "{\"a\":1}" };
	ck_assert_int_eq(ops->sign(h, NULL, &sr, on_text_answer, &sig), 0);
	ck_assert_int_eq(sig.n, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(sig.n, 1);
	ck_assert_int_lt(sig.status, 0);

	ck_assert_int_eq(ops->account_key(h, NULL, on_key_answer, &key), 0);
	ck_assert_int_eq(key.n, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(key.n, 1);
	ck_assert_msg(key.status == 0, "%s", key.error);
	ck_assert(!key.existed);
	ck_assert_ptr_nonnull(key.pub);
	ck_assert_str_eq(cs_acme_jws_alg(key.pub), "ES256");
	/* '/' in the issuer's name does not climb out of STATE_DIR/acme. */
	char *kp = cs_test_path("%s/acme/x_y/account.key", state);
	ck_assert_int_eq(stat(kp, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
	free(kp);

	ck_assert_int_eq(ops->sign(h, NULL, &sr, on_text_answer, &sig), 0);
	ck_assert_int_eq(sig.n, 1);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(sig.n, 2);
	ck_assert_msg(sig.status == 0, "%s", sig.error);
	json_t *jws = json_loads(sig.text, 0, NULL);
	ck_assert_ptr_nonnull(jws);
	ck_assert(jws_verifies(jws, key.pub));
	json_decref(jws);

	for (size_t i = 0; i < sizeof(bad_tokens) / sizeof(bad_tokens[0]); i++) {
		struct cs_acme_host_chall c = { .type = CS_ACME_HTTP01, .ident = "a.example.test",
						.token = bad_tokens[i], .cert_name = "a" };
		int n = ch.n;
		ck_assert_int_eq(ops->challenge(h, NULL, &c, true, on_done_answer, &ch), 0);
		ck_assert_int_eq(ch.n, n);
		uv_run(&loop, UV_RUN_DEFAULT);
		ck_assert_int_eq(ch.n, n + 1);
		ck_assert_int_eq(ch.status, -EINVAL);
		ck_assert_msg(strstr(ch.error, "not base64url") != NULL, "%s", ch.error);
	}
	/* No file anywhere: not in the webroot, not beside it. */
	cs_test_listing(web, listing, sizeof(listing));
	ck_assert_str_eq(listing, "");
	cs_test_listing(cs_test_tmp, listing, sizeof(listing));
	ck_assert_str_eq(listing, "state web");

	struct cs_acme_host_chall good = { .type = CS_ACME_HTTP01, .ident = "a.example.test",
					   .token = "Tok_en-1", .cert_name = "a" };
	char *file = cs_test_path("%s/.well-known/acme-challenge/Tok_en-1", web);
	char *thumb = cs_acme_jws_thumbprint(key.pub), *want = cs_test_path("Tok_en-1.%s", thumb);
	ck_assert_int_eq(ops->challenge(h, NULL, &good, true, on_done_answer, &ch), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_msg(ch.status == 0, "%s", ch.error);
	char *got = cs_test_read(file, NULL);
	ck_assert_ptr_nonnull(got);
	ck_assert_str_eq(got, want);
	ck_assert_int_eq(ops->challenge(h, NULL, &good, false, on_done_answer, &ch), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_msg(ch.status == 0, "%s", ch.error);
	ck_assert_int_eq(access(file, F_OK), -1);

	/* No http_listen, no dns_hook: refused, later. */
	ck_assert_int_eq(ops->listen(h, NULL, on_fd_answer, &lis), 0);
	ck_assert_int_eq(lis.n, 0);
	good.type = CS_ACME_DNS01;
	ck_assert_int_eq(ops->challenge(h, NULL, &good, true, on_done_answer, &ch), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(lis.n, 1);
	ck_assert_int_eq(lis.status, -EINVAL);
	ck_assert_int_eq(ch.status, -EINVAL);

	/* Asked again, the key is the same one, now found. */
	EVP_PKEY *first = key.pub;
	key.pub = NULL;
	ck_assert_int_eq(ops->account_key(h, NULL, on_key_answer, &key), 0);
	ck_assert_int_eq(key.n, 1);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(key.n, 2);
	ck_assert_int_eq(EVP_PKEY_eq(first, key.pub), 1);

	ops->close(h, on_closed, &closed);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(closed, 1);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	EVP_PKEY_free(first);
	EVP_PKEY_free(key.pub);
	free(sig.text);
	free(got);
	free(want);
	free(thumb);
	free(file);
	free(web);
	free(state);
}
END_TEST

/* The local host binds http_listen and hands over the socket; a busy port is refused in words. */
START_TEST(test_acme_host_local_listen)
{
	uv_loop_t loop;
	char err[256] = "", addr[64], want[128];
	struct cs_acme_opts o = { .directory = "https://ca/dir", .http_listen = addr };
	struct answer lis = { 0 };
	cs_acme_http01 *busy;
	int closed = 0;
	void *h;

	uv_loop_init(&loop);
	busy = cs_acme_http01_new(&loop, "127.0.0.1:0", err, sizeof(err));
	ck_assert_msg(busy != NULL, "%s", err);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", cs_acme_http01_port(busy));
	h = cs_acme_host_local_new(&loop, "x", &o, cs_test_tmp, err, sizeof(err));
	ck_assert_msg(h != NULL, "%s", err);
	ck_assert_int_eq(cs_acme_host_local_ops.listen(h, NULL, on_fd_answer, &lis), 0);
	ck_assert_int_eq(lis.n, 0);
	uv_run(&loop, UV_RUN_NOWAIT);
	ck_assert_int_eq(lis.n, 1);
	ck_assert_int_lt(lis.status, 0);
	snprintf(want, sizeof(want), "http_listen %s: cannot listen: address already in use", addr);
	ck_assert_str_eq(lis.error, want);
	cs_acme_http01_close(busy, NULL, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	/* Free now: a socket that listens, which the responder takes. */
	ck_assert_int_eq(cs_acme_host_local_ops.listen(h, NULL, on_fd_answer, &lis), 0);
	uv_run(&loop, UV_RUN_NOWAIT);
	ck_assert_int_eq(lis.n, 2);
	ck_assert_msg(lis.status == 0, "%s", lis.error);
	busy = cs_acme_http01_open_fd(&loop, lis.fd, err, sizeof(err));
	ck_assert_msg(busy != NULL, "%s", err);
	ck_assert_str_eq(strchr(addr, ':') + 1, (snprintf(want, sizeof(want), "%d",
							   cs_acme_http01_port(busy)), want));
	cs_acme_http01_close(busy, NULL, NULL);
	cs_acme_host_local_ops.close(h, on_closed, &closed);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(closed, 1);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* ---- an issuer on a host of our own ----------------------------------------- */

/*
 * A TLS server on 127.0.0.1 in a thread, one request per connection, for
 * the few requests an issuer makes before its first signature: the
 * directory (GET /dir) and a nonce (HEAD /nonce).
 */
struct tls_srv {
	int lfd, port, requests;
	SSL_CTX *ctx;
	pthread_t th;
};

static void *tls_serve(void *arg)
{
	struct tls_srv *s = arg;
	int fd;

	while ((fd = accept(s->lfd, NULL, NULL)) >= 0) {
		SSL *ssl = SSL_new(s->ctx);
		char req[4096], resp[1024], body[512];
		int len = 0, n;

		SSL_set_fd(ssl, fd);
		if (SSL_accept(ssl) == 1) {
			while (len < (int)sizeof(req) - 1 &&
			       (n = SSL_read(ssl, req + len, (int)sizeof(req) - 1 - len)) > 0) {
				len += n;
				req[len] = '\0';
				if (strstr(req, "\r\n\r\n") != NULL)
					break;
			}
			req[len] = '\0';
			snprintf(body, sizeof(body),
				 "{\"newNonce\": \"https://127.0.0.1:%d/nonce\", "
				 "\"newAccount\": \"https://127.0.0.1:%d/new-acct\", "
				 "\"newOrder\": \"https://127.0.0.1:%d/new-order\"}",
				 s->port, s->port, s->port);
			if (strncmp(req, "HEAD /nonce ", 12) == 0)
				snprintf(resp, sizeof(resp),
					 "HTTP/1.1 200 OK\r\nReplay-Nonce: nonce-1\r\n"
					 "Content-Length: 0\r\nConnection: close\r\n\r\n");
			else if (strncmp(req, "GET /dir ", 9) == 0)
				snprintf(resp, sizeof(resp),
					 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
					 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
					 strlen(body), body);
			else
				snprintf(resp, sizeof(resp), "HTTP/1.1 404 Not Found\r\n"
							     "Content-Length: 0\r\nConnection: close\r\n\r\n");
			SSL_write(ssl, resp, (int)strlen(resp));
			SSL_shutdown(ssl);
			s->requests++;
		}
		SSL_free(ssl);
		close(fd);
	}
	return NULL;
}

/* Starts the server with the PKI of cs_test_mkpki in pki (leaf for IP:127.0.0.1). */
static void tls_start(struct tls_srv *s, const char *pki)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	char *leaf = cs_test_path("%s/ec/leaf.pem", pki), *key = cs_test_path("%s/ec/leaf.key", pki),
	     *inter = cs_test_path("%s/ec/int.pem", pki);
	X509 *ix = cs_test_read_x509(inter);

	s->ctx = SSL_CTX_new(TLS_server_method());
	ck_assert_ptr_nonnull(s->ctx);
	ck_assert_int_eq(SSL_CTX_use_certificate_file(s->ctx, leaf, SSL_FILETYPE_PEM), 1);
	ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(s->ctx, key, SSL_FILETYPE_PEM), 1);
	ck_assert_int_eq(SSL_CTX_add_extra_chain_cert(s->ctx, ix), 1); /* the context takes ix */
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(s->lfd, 0);
	ck_assert_int_eq(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(s->lfd, 8), 0);
	ck_assert_int_eq(getsockname(s->lfd, (struct sockaddr *)&sa, &len), 0);
	s->port = ntohs(sa.sin_port);
	ck_assert_int_eq(pthread_create(&s->th, NULL, tls_serve, s), 0);
	free(leaf);
	free(key);
	free(inter);
}

static void tls_stop(struct tls_srv *s)
{
	/* accept() returns at once on a socket shut down. */
	shutdown(s->lfd, SHUT_RDWR);
	pthread_join(s->th, NULL);
	close(s->lfd);
	SSL_CTX_free(s->ctx);
}

/*
 * A host that has an account key (a public half it made up) but will not
 * sign: it answers later, from its timer, like every host must.
 */
struct test_host {
	uv_timer_t timer;
	EVP_PKEY *key;
	cs_acme_host_key_cb key_cb;
	cs_acme_host_text_cb sign_cb;
	void *arg, *call;
	int signs, closes;
	char url[256], nonce[64];
	bool jwk, hold; /* hold: the test says when a signature is answered */
	void (*close_cb)(void *);
	void *close_arg;
};

static void test_host_answer(uv_timer_t *t)
{
	struct test_host *th = t->data;

	if (th->key_cb != NULL) {
		unsigned char *der = NULL;
		int n = i2d_PUBKEY(th->key, &der);
		struct cs_der pub = { der, (size_t)n };
		cs_acme_host_key_cb cb = th->key_cb;
		th->key_cb = NULL;
		cb(th->arg, 0, &pub, false, NULL);
		OPENSSL_free(der);
	} else if (th->sign_cb != NULL) {
		cs_acme_host_text_cb cb = th->sign_cb;
		th->sign_cb = NULL;
		cb(th->arg, -EPERM, NULL, "test host: no signature today");
	}
}

static int test_host_key(void *host, void *call, cs_acme_host_key_cb cb, void *arg)
{
	struct test_host *th = host;

	th->key_cb = cb;
	th->arg = arg;
	th->call = call;
	uv_timer_start(&th->timer, test_host_answer, 0, 0);
	return 0;
}

static int test_host_sign(void *host, void *call, const struct cs_acme_host_sign *r,
			  cs_acme_host_text_cb cb, void *arg)
{
	struct test_host *th = host;

	th->signs++;
	th->sign_cb = cb;
	th->arg = arg;
	th->call = call;
	th->jwk = r->kid == NULL;
	snprintf(th->url, sizeof(th->url), "%s", r->url);
	snprintf(th->nonce, sizeof(th->nonce), "%s", r->nonce);
	if (!th->hold)
		uv_timer_start(&th->timer, test_host_answer, 0, 0);
	return 0;
}

static int test_host_eab(void *host, void *call, const char *url, cs_acme_host_text_cb cb,
			 void *arg)
{
	return -ENOTSUP;
}

static int test_host_challenge(void *host, void *call, const struct cs_acme_host_chall *c,
			       bool set, cs_acme_host_done_cb cb, void *arg)
{
	return -ENOTSUP;
}

static int test_host_listen(void *host, void *call, cs_acme_host_fd_cb cb, void *arg)
{
	return -ENOTSUP;
}

static void test_host_closed(uv_handle_t *h)
{
	struct test_host *th = h->data;

	if (th->close_cb != NULL)
		th->close_cb(th->close_arg);
}

static void test_host_close(void *host, void (*close_cb)(void *arg), void *arg)
{
	struct test_host *th = host;

	th->closes++;
	th->close_cb = close_cb;
	th->close_arg = arg;
	uv_close((uv_handle_t *)&th->timer, test_host_closed);
}

static const struct cs_acme_host_ops test_host_ops = {
	.account_key = test_host_key,
	.sign = test_host_sign,
	.eab = test_host_eab,
	.challenge = test_host_challenge,
	.listen = test_host_listen,
	.close = test_host_close,
};

struct issued {
	int n, status;
	char error[1024];
};

static void on_issued(void *arg, const struct cs_issue_result *res)
{
	struct issued *is = arg;

	is->n++;
	is->status = res->status;
	snprintf(is->error, sizeof(is->error), "%s", res->error);
}

/*
 * An issuer on a host whose signatures fail: it reads the directory, takes a
 * nonce, asks the host to sign newAccount (by JWK, with that nonce, for the
 * CA's URL and for this issue call), and the order fails with the host's
 * words. The issuer has no key to sign with itself; closing it closes the
 * host once, before the issuer's own close callback. Run 1 closes the
 * issuer while the host has the signature to answer: the host is closed only
 * after it has answered, and the order ends cancelled.
 */
/*
 * The PKI of the hosted cases, made once for the test case outside any one
 * test's time limit (it makes RSA keys too, seconds on a loaded machine).
 */
static char *host_pki;

static void host_pki_setup(void)
{
	host_pki = cs_test_mkpki(NULL);
}

static void host_pki_teardown(void)
{
	cs_test_rmrf(host_pki);
	free(host_pki);
	host_pki = NULL;
}

START_TEST(test_acme_hosted_sign_fails)
{
	uv_loop_t loop;
	char err[256] = "", dir[128], url[128], *names[] = { "a.example.test" };
	char *pki = host_pki, *root = cs_test_path("%s/ec/root.pem", pki);
	struct tls_srv srv = { 0 };
	struct test_host th = { 0 };
	struct issued got = { 0 };
	int closed = 0;
	unsigned char *der = NULL;
	struct cs_issue_request rq = issue_request(names, &der);
	cs_issuer *is;

	tls_start(&srv, pki);
	snprintf(dir, sizeof(dir), "https://127.0.0.1:%d/dir", srv.port);
	struct cs_acme_opts o = { .directory = dir, .ca_bundle = root, .webroot = "/nonexistent" };
	uv_loop_init(&loop);
	uv_timer_init(&loop, &th.timer);
	th.timer.data = &th;
	th.key = cs_key_generate(CS_KEY_EC_P256, err, sizeof(err));
	is = cs_acme_issuer_new_hosted(&loop, "x", &o, &test_host_ops, &th, err, sizeof(err));
	ck_assert_msg(is != NULL, "%s", err);
	th.hold = _i == 1;
	ck_assert_int_eq(is->ops->issue(is, &rq, on_issued, &got), 0);
	while (got.n == 0 && th.signs == 0 && uv_run(&loop, UV_RUN_ONCE) != 0)
		;
	if (_i == 1) {
		ck_assert_msg(got.n == 0, "%s", got.error);
		ck_assert_ptr_nonnull(th.sign_cb);
		is->ops->close(is, on_closed, &closed);
		uv_run(&loop, UV_RUN_NOWAIT);
		/* The job waits for the host, and the host stays until it has answered. */
		ck_assert_int_eq(got.n, 0);
		ck_assert_int_eq(closed, 0);
		ck_assert_int_eq(th.closes, 0);
		uv_timer_start(&th.timer, test_host_answer, 0, 0);
		uv_run(&loop, UV_RUN_DEFAULT);
		ck_assert_int_eq(got.n, 1);
		ck_assert_int_eq(got.status, -ECANCELED);
		ck_assert_str_eq(got.error, "cancelled: the issuer is closing");
	} else {
		while (got.n == 0 && uv_run(&loop, UV_RUN_ONCE) != 0)
			;
		ck_assert_int_eq(got.n, 1);
		ck_assert_int_eq(got.status, -EPERM);
		ck_assert_str_eq(got.error, "test host: no signature today");
	}
	ck_assert_int_eq(th.signs, 1);
	ck_assert(th.jwk);
	ck_assert_ptr_eq(th.call, &got);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/new-acct", srv.port);
	ck_assert_str_eq(th.url, url);
	ck_assert_str_eq(th.nonce, "nonce-1");
	if (_i == 0) {
		ck_assert_int_eq(th.closes, 0);
		is->ops->close(is, on_closed, &closed);
		uv_run(&loop, UV_RUN_DEFAULT);
	}
	ck_assert_int_eq(closed, 1);
	ck_assert_int_eq(th.closes, 1);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	tls_stop(&srv);
	ck_assert_int_eq(srv.requests, 2);
	EVP_PKEY_free(th.key);
	OPENSSL_free(der);
	free(root);
}
END_TEST

/* A hosted issuer that cannot be made closes the host it was given. */
START_TEST(test_acme_hosted_refused_closes_host)
{
	uv_loop_t loop;
	char err[256] = "";
	struct test_host th = { 0 };
	struct cs_acme_opts o = { .directory = "http://ca/dir", .webroot = "/w" };

	uv_loop_init(&loop);
	uv_timer_init(&loop, &th.timer);
	th.timer.data = &th;
	ck_assert_ptr_null(cs_acme_issuer_new_hosted(&loop, "x", &o, &test_host_ops, &th, err,
						     sizeof(err)));
	ck_assert_str_eq(err, "directory must be an https:// URL");
	ck_assert_int_eq(th.closes, 1);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* ---- live: against Pebble or the ARI fixture (set up by a shell test) ------ */

struct live {
	int done, status;
	char error[1024];
	struct cs_issuer_window w;
	cs_issuer *is;
};

static void on_live_done(void *arg, int status, const char *error)
{
	struct live *l = arg;

	l->done++;
	l->status = status;
	snprintf(l->error, sizeof(l->error), "%s", error ? error : "");
}

static void on_live_ari(void *arg, int status, const struct cs_issuer_window *w,
			const char *error)
{
	struct live *l = arg;

	l->done++;
	l->status = status;
	if (w != NULL)
		l->w = *w;
	snprintf(l->error, sizeof(l->error), "%s", error ? error : "");
}

static X509 *read_cert(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *x;

	ck_assert_msg(f != NULL, "%s", path);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	ck_assert_ptr_nonnull(x);
	return x;
}

static cs_issuer *live_issuer(uv_loop_t *loop)
{
	char err[256] = "";
	struct cs_acme_opts o = {
		.directory = getenv("CS_ACME_DIRECTORY"),
		.ca_bundle = getenv("CS_ACME_CA_BUNDLE"),
		.webroot = "/nonexistent",
	};
	cs_issuer *is = cs_acme_issuer_new(loop, getenv("CS_ACME_ISSUER"), &o,
					   getenv("CS_ACME_STATE_DIR"), err, sizeof(err));
	ck_assert_msg(is != NULL, "%s", err);
	return is;
}

/* Revokes CS_ACME_CERT with the account that obtained it; a second revocation is refused. */
START_TEST(test_acme_live_revoke)
{
	uv_loop_t loop;
	struct live l = { 0 };
	X509 *x = read_cert(getenv("CS_ACME_CERT"));
	int closed = 0;

	uv_loop_init(&loop);
	l.is = live_issuer(&loop);
	struct cs_der d = { 0 };
	ck_assert_int_eq(cs_issuer_der_of_x509(&d, x), 0);
	ck_assert_int_eq(l.is->ops->revoke(l.is, &d, 4 /* superseded */, on_live_done, &l), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(l.done, 1);
	ck_assert_msg(l.status == 0, "%s", l.error);
	ck_assert_int_eq(l.is->ops->revoke(l.is, &d, -1, on_live_done, &l), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(l.done, 2);
	ck_assert_int_lt(l.status, 0);
	ck_assert_msg(strstr(l.error, "urn:ietf:params:acme:error:alreadyRevoked") != NULL, "%s",
		      l.error);
	l.is->ops->close(l.is, on_closed, &closed);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(closed, 1);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	X509_free(x);
	cs_issuer_der_clear(&d);
}
END_TEST

/* Reads the window of CS_ACME_CERT; the fixture answers CS_ACME_ARI_START/END. */
START_TEST(test_acme_live_ari)
{
	uv_loop_t loop;
	struct live l = { 0 };
	X509 *x = read_cert(getenv("CS_ACME_CERT"));
	int closed = 0;
	int64_t start, end;

	uv_loop_init(&loop);
	l.is = live_issuer(&loop);
	struct cs_der d = { 0 };
	ck_assert_int_eq(cs_issuer_der_of_x509(&d, x), 0);
	ck_assert_int_eq(l.is->ops->renewal_info(l.is, &d, on_live_ari, &l), 0);
	cs_issuer_der_clear(&d);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(l.done, 1);
	if (getenv("CS_ACME_ARI_START") == NULL) {
		/* A CA without renewalInfo (Debian's Pebble). */
		ck_assert_int_eq(l.status, -ENOTSUP);
	} else {
		ck_assert_msg(l.status == 0, "%s", l.error);
		ck_assert_int_eq(cs_acme_msg_time(getenv("CS_ACME_ARI_START"), &start), 0);
		ck_assert_int_eq(cs_acme_msg_time(getenv("CS_ACME_ARI_END"), &end), 0);
		ck_assert_int_eq(l.w.start, start);
		ck_assert_int_eq(l.w.end, end);
		ck_assert_int_eq(l.w.retry_after, 21600);
	}
	l.is->ops->close(l.is, on_closed, &closed);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(closed, 1);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	X509_free(x);
}
END_TEST

Suite *acme_suite(void)
{
	Suite *s = suite_create("acme");
	TCase *tc = tcase_create("codec");

	cs_test_add_loop(tc, test_acme_b64url_vectors, b64_cases);
	tcase_add_test(tc, test_acme_b64url_refuses);
	tcase_add_test(tc, test_acme_jwk_thumbprint_rfc7638);
	tcase_add_loop_test(tc, test_acme_jws_signs_and_names_key, 0, 3);
	tcase_add_test(tc, test_acme_jws_refuses_ed25519);
	tcase_add_test(tc, test_acme_eab_mac);
	tcase_add_loop_test(tc, test_acme_jwk_public_only, 0, 3);
	suite_add_tcase(s, tc);

	tc = tcase_create("messages");
	tcase_add_test(tc, test_acme_problem_type);
	tcase_add_test(tc, test_acme_retry_after);
	tcase_add_test(tc, test_acme_link_alternates);
	cs_test_add_loop(tc, test_acme_rfc3339, time_cases);
	tcase_add_test(tc, test_acme_new_order_payload);
	tcase_add_test(tc, test_acme_profile_offered);
	tcase_add_test(tc, test_acme_ari_certid_rfc9773);
	tcase_add_test(tc, test_acme_ari_window);
	suite_add_tcase(s, tc);

	tc = tcase_create("loop");
	tcase_add_test(tc, test_acme_http01_responder);
	tcase_add_test(tc, test_acme_http01_flood);
	tcase_add_test(tc, test_acme_http_refused_and_closed);
	tcase_add_test(tc, test_acme_hook_status_env_deadline);
	cs_test_add_loop(tc, test_acme_issuer_refuses, refusals);
	tcase_add_test(tc, test_acme_issuer_close_cancels);
	tcase_add_loop_test(tc, test_acme_issuer_close_many, 0, 3);
	suite_add_tcase(s, tc);

	tc = tcase_create("host");
	tcase_add_unchecked_fixture(tc, host_pki_setup, host_pki_teardown);
	tcase_add_checked_fixture(tc, cs_test_tmp_setup, cs_test_tmp_teardown);
	tcase_add_test(tc, test_acme_host_token_ok);
	tcase_add_test(tc, test_acme_host_local);
	tcase_add_test(tc, test_acme_host_local_listen);
	tcase_add_loop_test(tc, test_acme_hosted_sign_fails, 0, 2);
	tcase_add_test(tc, test_acme_hosted_refused_closes_host);
	suite_add_tcase(s, tc);

	/* Only when a shell test has started a CA for us (see the header comment). */
	if (getenv("CS_ACME_DIRECTORY") != NULL) {
		tc = tcase_create("live");
		tcase_set_timeout(tc, 60);
		if (getenv("CS_ACME_LIVE_REVOKE") != NULL)
			tcase_add_test(tc, test_acme_live_revoke);
		if (getenv("CS_ACME_LIVE_ARI") != NULL)
			tcase_add_test(tc, test_acme_live_ari);
		suite_add_tcase(s, tc);
	}
	return s;
}
