/*
 * cs_pkcs12 - the contents of a PKCS#12 file: its key, the certificate that
 * goes with it and the others, from files with or without a MAC, and from
 * "legacy" files (RC2-40 or DES encrypted certificates, as OpenSSL 1.x and
 * many Windows exports make them) through OpenSSL's legacy provider, which
 * is loaded for that decryption only, in a library context of its own.
 */
#ifndef CS_PKCS12_H
#define CS_PKCS12_H

#include <openssl/pkcs12.h>
#include <openssl/x509.h>
#include <stddef.h>

/* Returned when the file needs the legacy provider and it cannot be loaded. */
#define CS_PKCS12_ENOLEGACY (-4001)

/*
 * Decrypts p12 (its MAC, if any, already verified) with pass (NULL: none).
 * On success returns 0 with *key (or NULL), *leaf (the certificate of the
 * key, or the first one; or NULL) and *others (never NULL) owned by the
 * caller. On failure returns -EKEYREJECTED (could not decrypt: a wrong
 * password), CS_PKCS12_ENOLEGACY or -EBADMSG, with a sentence in err and the
 * OpenSSL error queue left for the caller to drain.
 */
int cs_pkcs12_parse(PKCS12 *p12, const char *pass, EVP_PKEY **key, X509 **leaf,
		    STACK_OF(X509) **others, char *err, size_t errlen);

#endif
