/*
 * cs_usage - what a certificate is for (a TLS server or a TLS client), as
 * the configuration names it; issuers build the extended key usage from it.
 */
#ifndef CS_USAGE_H
#define CS_USAGE_H

enum cs_usage {
	CS_USAGE_SERVER = 0,
	CS_USAGE_CLIENT,
};

/* Parses "server" or "client" into *out; returns 0, or -1 for anything else. */
int cs_usage_parse(const char *s, enum cs_usage *out);

/* Returns "server" or "client". */
const char *cs_usage_name(enum cs_usage u);

#endif
