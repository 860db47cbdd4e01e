/*
 * cs_b64url - base64url without padding (RFC 4648 section 5), the encoding of
 * every binary field in JOSE and ACME: JWS parts, key coordinates, CSRs,
 * ARI certificate identifiers, EAB MAC keys.
 */
#ifndef CS_B64URL_H
#define CS_B64URL_H

#include <stddef.h>

/* Returns the encoding of len bytes (NUL-terminated, caller frees), or NULL on ENOMEM. */
char *cs_b64url_encode(const void *data, size_t len);

/*
 * Decodes s (len chars; trailing '=' padding is accepted and ignored) into a
 * malloc'd buffer (caller frees) with its size in *outlen. Returns NULL for
 * characters outside the alphabet, an impossible length, or ENOMEM.
 */
unsigned char *cs_b64url_decode(const char *s, size_t len, size_t *outlen);

#endif
