/*
 * cs_digest - the digests certsync names in its configuration and output
 * (fingerprints: sha256, sha1, md5).
 */
#ifndef CS_DIGEST_H
#define CS_DIGEST_H

enum cs_digest {
	CS_DIGEST_SHA256 = 0,
	CS_DIGEST_SHA1,
	CS_DIGEST_MD5,
};

/* Parses "sha256|sha1|md5" into *out; returns 0, or -1 for anything else. */
int cs_digest_parse(const char *s, enum cs_digest *out);

/* Returns "sha256", "sha1" or "md5". */
const char *cs_digest_name(enum cs_digest d);

#endif
