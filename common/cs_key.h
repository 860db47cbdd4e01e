/*
 * cs_key - the key types certsync supports, by name, and key generation.
 *
 * Names are the ones used in the configuration: ec:P-256, ec:P-384, rsa:2048,
 * rsa:3072, rsa:4096, ed25519.
 */
#ifndef CS_KEY_H
#define CS_KEY_H

#include <openssl/evp.h>
#include <stddef.h>

enum cs_keytype {
	CS_KEY_NONE = 0,
	CS_KEY_EC_P256,
	CS_KEY_EC_P384,
	CS_KEY_RSA_2048,
	CS_KEY_RSA_3072,
	CS_KEY_RSA_4096,
	CS_KEY_ED25519,
};

/* Returns the key type named by s, or CS_KEY_NONE when s names none. */
enum cs_keytype cs_key_parse(const char *s);

/* Returns the configuration name of t ("ec:P-256"), or "none". */
const char *cs_key_name(enum cs_keytype t);

/* Returns the comma-separated list of accepted names, for error messages. */
const char *cs_key_names(void);

/* Returns the type of an existing key, or CS_KEY_NONE when it is none of ours. */
enum cs_keytype cs_key_type_of(const EVP_PKEY *pkey);

/*
 * Generates a new key of type t. Returns it (caller frees with EVP_PKEY_free)
 * or NULL with a message in err.
 */
EVP_PKEY *cs_key_generate(enum cs_keytype t, char *err, size_t errlen);

#endif
