/*
 * cs_crlreason - the CRL reason table (see cs_crlreason.h). Code 7 is not
 * assigned by RFC 5280; its row has no name.
 */
#include "cs_crlreason.h"

#include <stdio.h>
#include <strings.h>

static const struct {
	const char *name;
	unsigned sets;
} reasons[] = {
	{ "unspecified", CS_CRLREASON_REVOKE | CS_CRLREASON_CLIENT },
	{ "keyCompromise", CS_CRLREASON_REVOKE | CS_CRLREASON_CLIENT },
	{ "CACompromise", CS_CRLREASON_REVOKE },
	{ "affiliationChanged", CS_CRLREASON_REVOKE | CS_CRLREASON_CLIENT },
	{ "superseded", CS_CRLREASON_REVOKE | CS_CRLREASON_CLIENT },
	{ "cessationOfOperation", CS_CRLREASON_REVOKE | CS_CRLREASON_CLIENT },
	{ "certificateHold", CS_CRLREASON_REVOKE },
	{ NULL, 0 },
	{ "removeFromCRL", 0 },
};
#define N_REASONS (sizeof(reasons) / sizeof(reasons[0]))

int cs_crlreason_valid(int code, unsigned flags)
{
	return code >= 0 && (size_t)code < N_REASONS && reasons[code].name != NULL &&
	       (reasons[code].sets & flags) == flags;
}

const char *cs_crlreason_name(int code)
{
	return cs_crlreason_valid(code, CS_CRLREASON_ANY) ? reasons[code].name : NULL;
}

int cs_crlreason_code(const char *name, unsigned flags, const char **canon)
{
	for (size_t i = 0; i < N_REASONS; i++)
		if (cs_crlreason_valid((int)i, flags) && strcasecmp(name, reasons[i].name) == 0) {
			if (canon != NULL)
				*canon = reasons[i].name;
			return (int)i;
		}
	return -1;
}

const char *cs_crlreason_list(unsigned flags, char *buf, size_t len)
{
	size_t off = 0;

	if (len == 0)
		return buf;
	buf[0] = '\0';
	for (size_t i = 0; i < N_REASONS; i++) {
		if (!cs_crlreason_valid((int)i, flags))
			continue;
		int n = snprintf(buf + off, len - off, "%s%s", off > 0 ? ", " : "",
				 reasons[i].name);
		if (n < 0 || (size_t)n >= len - off) {
			buf[off] = '\0'; /* whole names only */
			break;
		}
		off += (size_t)n;
	}
	return buf;
}
