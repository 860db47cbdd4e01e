/*
 * cs_usage - what a certificate is for, by name. See cs_usage.h.
 */
#include "cs_usage.h"

#include <string.h>

int cs_usage_parse(const char *s, enum cs_usage *out)
{
	if (strcmp(s, "server") == 0)
		*out = CS_USAGE_SERVER;
	else if (strcmp(s, "client") == 0)
		*out = CS_USAGE_CLIENT;
	else
		return -1;
	return 0;
}

const char *cs_usage_name(enum cs_usage u)
{
	return u == CS_USAGE_CLIENT ? "client" : "server";
}
