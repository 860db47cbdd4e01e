/*
 * cs_digest - digest names (see cs_digest.h).
 */
#include "cs_digest.h"

#include <string.h>

int cs_digest_parse(const char *s, enum cs_digest *out)
{
	if (strcmp(s, "sha256") == 0)
		*out = CS_DIGEST_SHA256;
	else if (strcmp(s, "sha1") == 0)
		*out = CS_DIGEST_SHA1;
	else if (strcmp(s, "md5") == 0)
		*out = CS_DIGEST_MD5;
	else
		return -1;
	return 0;
}

const char *cs_digest_name(enum cs_digest d)
{
	switch (d) {
	case CS_DIGEST_SHA1:
		return "sha1";
	case CS_DIGEST_MD5:
		return "md5";
	case CS_DIGEST_SHA256:
		break;
	}
	return "sha256";
}
