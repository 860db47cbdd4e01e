/*
 * cs_acme_msg - the ACME messages that are plain data, apart from any I/O:
 * problem documents (RFC 7807), Retry-After and Link header values, RFC 3339
 * times, newOrder payloads (identifiers, ARI "replaces", profile), and ARI
 * (RFC 9773) certificate identifiers and renewalInfo responses. Pure
 * functions, unit-tested in tests/check_acme.c.
 */
#ifndef CS_ACME_MSG_H
#define CS_ACME_MSG_H

#include "cs_issuer.h"

#include <jansson.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>

/* A suggested renewal window (RFC 9773 section 4.2), in seconds since the epoch. */

/*
 * When body is a problem document (a JSON object with a string "type"),
 * copies the type into type and returns 0; else returns -1. The document
 * itself is what gets reported, verbatim.
 */
int cs_acme_msg_problem(const char *body, size_t len, char *type, size_t typelen);

/*
 * Parses a Retry-After value (delta-seconds or an HTTP-date) against now.
 * Returns the seconds to wait (0 for a date in the past), or -1 when it is neither.
 */
int64_t cs_acme_msg_retry_after(const char *value, int64_t now);

/*
 * Collects the URLs of the links with rel in one Link header value (which may
 * hold several comma-separated links) into urls[*n..max), strdup'd (caller
 * frees). Returns the number added.
 */
size_t cs_acme_msg_links(const char *value, const char *rel, char **urls, size_t max);

/* Parses an RFC 3339 date-time into *out; returns 0 or -1. */
int cs_acme_msg_time(const char *s, int64_t *out);

/*
 * Returns the newOrder payload (a JSON text, caller frees) for names (DNS
 * names, IPv4/IPv6 literals as "ip" identifiers), with "replaces" and
 * "profile" when not NULL; NULL on ENOMEM.
 */
char *cs_acme_msg_new_order(char *const *names, size_t n, const char *replaces,
			    const char *profile);

/* Returns 1 when the directory's meta.profiles offers profile, else 0. */
int cs_acme_msg_profile_offered(json_t *directory, const char *profile);

/*
 * Returns the ARI certificate identifier of cert (base64url of the Authority
 * Key Identifier's keyIdentifier, ".", base64url of the serial's DER content
 * octets; caller frees), or NULL with err set (no AKI keyIdentifier).
 */
char *cs_acme_msg_certid(X509 *cert, char *err, size_t errlen);
/* The same for a certificate given as DER. */
char *cs_acme_msg_certid_der(const struct cs_der *cert, char *err, size_t errlen);

/*
 * Parses a renewalInfo response body into *w (retry_after left as it is).
 * Returns 0, or -1 with err set when the window is missing, malformed, or
 * ends before it starts.
 */
int cs_acme_msg_ari(const char *body, size_t len, struct cs_issuer_window *w, char *err,
		    size_t errlen);

#endif
