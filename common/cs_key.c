/*
 * cs_key - key type names and generation. See cs_key.h.
 */
#include "cs_key.h"
#include "cs_log.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const struct {
	enum cs_keytype type;
	const char *name;
} key_table[] = {
	{ CS_KEY_EC_P256, "ec:P-256" },
	{ CS_KEY_EC_P384, "ec:P-384" },
	{ CS_KEY_RSA_2048, "rsa:2048" },
	{ CS_KEY_RSA_3072, "rsa:3072" },
	{ CS_KEY_RSA_4096, "rsa:4096" },
	{ CS_KEY_ED25519, "ed25519" },
};

#define KEY_TABLE_LEN (sizeof(key_table) / sizeof(key_table[0]))

enum cs_keytype cs_key_parse(const char *s)
{
	for (size_t i = 0; i < KEY_TABLE_LEN; i++)
		if (strcasecmp(s, key_table[i].name) == 0)
			return key_table[i].type;
	return CS_KEY_NONE;
}

const char *cs_key_name(enum cs_keytype t)
{
	for (size_t i = 0; i < KEY_TABLE_LEN; i++)
		if (key_table[i].type == t)
			return key_table[i].name;
	return "none";
}

const char *cs_key_names(void)
{
	return "ec:P-256, ec:P-384, rsa:2048, rsa:3072, rsa:4096, ed25519";
}

enum cs_keytype cs_key_type_of(const EVP_PKEY *pkey)
{
	if (pkey == NULL)
		return CS_KEY_NONE;
	if (EVP_PKEY_is_a(pkey, "ED25519"))
		return CS_KEY_ED25519;
	if (EVP_PKEY_is_a(pkey, "RSA")) {
		switch (EVP_PKEY_get_bits(pkey)) {
		case 2048:
			return CS_KEY_RSA_2048;
		case 3072:
			return CS_KEY_RSA_3072;
		case 4096:
			return CS_KEY_RSA_4096;
		default:
			return CS_KEY_NONE;
		}
	}
	if (EVP_PKEY_is_a(pkey, "EC")) {
		char group[64];
		size_t len = 0;

		if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
						    sizeof(group), &len))
			return CS_KEY_NONE;
		if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0)
			return CS_KEY_EC_P256;
		if (strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0)
			return CS_KEY_EC_P384;
	}
	return CS_KEY_NONE;
}

EVP_PKEY *cs_key_generate(enum cs_keytype t, char *err, size_t errlen)
{
	EVP_PKEY *pkey = NULL;

	switch (t) {
	case CS_KEY_EC_P256:
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		break;
	case CS_KEY_EC_P384:
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
		break;
	case CS_KEY_RSA_2048:
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
		break;
	case CS_KEY_RSA_3072:
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
		break;
	case CS_KEY_RSA_4096:
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)4096);
		break;
	case CS_KEY_ED25519:
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		break;
	case CS_KEY_NONE:
		snprintf(err, errlen, "no key type given");
		return NULL;
	}
	if (pkey == NULL) {
		snprintf(err, errlen, "cannot generate %s key", cs_key_name(t));
		cs_log_ssl_errors(err, errlen);
	}
	return pkey;
}
