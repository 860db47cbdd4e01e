/*
 * cs_acme_jws - the JOSE pieces ACME needs (RFC 7515, 7517, 7638, RFC 8555
 * section 6.2 and 7.3.4): an account key's public JWK and thumbprint, JWS in
 * the flattened JSON serialization signed with that key (ES256, ES384 or
 * RS256, identified by "jwk" or by "kid"), and the HS256 JWS of an External
 * Account Binding. Pure functions of their arguments: no I/O, no globals.
 */
#ifndef CS_ACME_JWS_H
#define CS_ACME_JWS_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stddef.h>

/* Returns "ES256", "ES384" or "RS256" for key, or NULL for a key ACME cannot use here. */
const char *cs_acme_jws_alg(EVP_PKEY *key);

/* Returns the public JWK of key (caller decrefs), or NULL for an unusable key. */
json_t *cs_acme_jws_jwk(EVP_PKEY *key);

/* Returns the base64url SHA-256 thumbprint of key's JWK (RFC 7638; caller frees), or NULL. */
char *cs_acme_jws_thumbprint(EVP_PKEY *key);

/*
 * Returns the flattened JWS (caller frees) of payload (a JSON text, or NULL
 * for the empty payload of a POST-as-GET) for url, with the nonce (NULL: none,
 * as in the inner JWS of a key change), signed by key and naming it by kid,
 * or by its JWK when kid is NULL. NULL with err set.
 */
char *cs_acme_jws_sign(EVP_PKEY *key, const char *kid, const char *nonce, const char *url,
		       const char *payload, char *err, size_t errlen);

/*
 * Returns the externalAccountBinding object for a newAccount request to url
 * (caller decrefs): a JWS over account_key's JWK, protected with HS256 under
 * hmac_key_b64url (the CA's base64url MAC key) and naming eab_kid. NULL with
 * err set (the key itself never goes into err).
 */
json_t *cs_acme_jws_eab(const char *eab_kid, const char *hmac_key_b64url, EVP_PKEY *account_key,
			const char *url, char *err, size_t errlen);

#endif
