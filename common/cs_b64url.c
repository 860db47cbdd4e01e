/*
 * cs_b64url - base64url without padding. A table-driven coder of our own
 * rather than OpenSSL's EVP_Encode*, which writes the standard alphabet with
 * padding and line breaks that would then have to be undone.
 */
#include "cs_b64url.h"

#include <stdint.h>
#include <stdlib.h>

static const char alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *cs_b64url_encode(const void *data, size_t len)
{
	const unsigned char *p = data;
	char *out = malloc(len / 3 * 4 + 5), *o = out;
	size_t i = 0;

	if (out == NULL)
		return NULL;
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = alphabet[v >> 18 & 63];
		*o++ = alphabet[v >> 12 & 63];
		*o++ = alphabet[v >> 6 & 63];
		*o++ = alphabet[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		*o++ = alphabet[v >> 18 & 63];
		*o++ = alphabet[v >> 12 & 63];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		*o++ = alphabet[v >> 18 & 63];
		*o++ = alphabet[v >> 12 & 63];
		*o++ = alphabet[v >> 6 & 63];
	}
	*o = '\0';
	return out;
}

static int value_of(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

unsigned char *cs_b64url_decode(const char *s, size_t len, size_t *outlen)
{
	unsigned char *out, *o;
	uint32_t acc = 0;
	int bits = 0;

	while (len > 0 && s[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return NULL;
	out = malloc(len / 4 * 3 + 3);
	if (out == NULL)
		return NULL;
	o = out;
	for (size_t i = 0; i < len; i++) {
		int v = value_of(s[i]);
		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			*o++ = (unsigned char)(acc >> bits & 0xff);
		}
	}
	/* The bits left over must be zero, as in a canonical encoding. */
	if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
		free(out);
		return NULL;
	}
	*outlen = (size_t)(o - out);
	return out;
}
