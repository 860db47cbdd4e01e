/*
 * cs_probe - what a mail server really serves: connects to a verify URL
 * (smtp://, submission://, imap://, pop3:// with STARTTLS/STLS; smtps://,
 * imaps://, pop3s:// with implicit TLS), negotiates TLS with SNI, and hands
 * back the certificate chain the server presented. The agent compares the
 * served leaf with the one it deployed; `certsyncctl probe` shows it.
 *
 * cs_probe_run blocks (bounded by its timeout): the agent calls it from the
 * libuv work queue through cs_probe_verify_start, never on the loop thread.
 */
#ifndef CS_PROBE_H
#define CS_PROBE_H

#include "cs_tlsa.h"

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

enum cs_probe_proto {
	CS_PROBE_SMTP = 0, /* EHLO, STARTTLS */
	CS_PROBE_IMAP,     /* STARTTLS */
	CS_PROBE_POP3,     /* STLS */
	CS_PROBE_SIEVE,    /* ManageSieve (RFC 5804) STARTTLS */
};

struct cs_probe_url {
	char scheme[16];          /* as written: "smtp", "imaps", ... */
	enum cs_probe_proto proto;
	bool implicit_tls;        /* smtps, imaps, pop3s */
	char host[256];           /* name or address literal, without [] */
	char port[8];             /* decimal */
	char sni[256];            /* server name to send, "" for none */
};

/*
 * Parses "SCHEME://HOST[:PORT][?sni=NAME]" (HOST may be [v6]). The SNI is the
 * host when it is a name, none for an address literal, or ?sni=. Returns 0,
 * or -EINVAL with a message in err.
 */
int cs_probe_url_parse(const char *s, struct cs_probe_url *u, char *err, size_t errlen);

/* The most TLSA records one probe checks against. */
#define CS_PROBE_DANE_MAX 32

/*
 * A TLSA RRset to authenticate the served chain with (RFC 6698, RFC 7672):
 * n records at recs, borrowed for the call. Only usages 2 (DANE-TA) and 3
 * (DANE-EE) with selector 0 or 1 are used; the others are skipped, as an
 * SMTP client skips them. Matching type 1 needs 32 bytes of data, 2 needs 64.
 */
struct cs_probe_dane {
	const struct cs_tlsa_rec *recs;
	size_t n;
};

/*
 * Checks d (NULL is fine): at most CS_PROBE_DANE_MAX records, each of
 * matching type 1 with 32 bytes or 2 with 64. Returns 0, or -EINVAL with
 * why in err.
 */
int cs_probe_dane_check(const struct cs_probe_dane *d, char *err, size_t errlen);

/* What DANE said of the served chain, when the probe was asked to check it. */
struct cs_probe_dane_result {
	bool checked;          /* DANE was asked for (records given) */
	bool ok;               /* a record authenticated the served chain */
	int depth;             /* ok: the depth of the certificate it matched (0: the leaf) */
	unsigned char usage, selector, mtype; /* ok: the record that matched */
	char text[256];        /* "TLSA 3 1 1 matches at depth 0", or why none did */
};

struct cs_probe_result {
	STACK_OF(X509) *chain; /* as served, leaf first; owned (cs_probe_result_clear) */
	char tls_version[16];  /* "TLSv1.3" */
	char cipher[64];
	char error[512];       /* on failure: what went wrong, for a person; "DANE: ..." */
	struct cs_probe_dane_result dane;
};

/*
 * Connects to u, does the STARTTLS dialogue when the protocol has one, and
 * completes a TLS handshake, all within timeout_ms. Returns 0 with r->chain
 * set, or a negative errno with r->error set. Blocking: not on the loop.
 */
int cs_probe_run(const struct cs_probe_url *u, int timeout_ms, struct cs_probe_result *r);

/*
 * cs_probe_run that also checks the served chain against the TLSA records
 * of dane (NULL or none: it is cs_probe_run) with OpenSSL's DANE, the base
 * domain for name checks being the SNI name or else the host. A chain DANE
 * does not authenticate is still handed back: returns 0 with r->chain set,
 * r->dane.ok false and r->dane.text and r->error ("DANE: ...") saying why.
 * -EINVAL when dane fails cs_probe_dane_check.
 */
int cs_probe_run_dane(const struct cs_probe_url *u, const struct cs_probe_dane *dane,
		      int timeout_ms, struct cs_probe_result *r);

/* Frees what r holds and zeroes it; accepts a zeroed r. */
void cs_probe_result_clear(struct cs_probe_result *r);

/*
 * The asynchronous check the agent runs after a reload: probes url until the
 * served leaf's SHA-256 fingerprint (Postfix format) equals want_sha256, or
 * bound_ms has passed (reloads are asynchronous), attempting again every
 * retry_ms. cb runs once on the loop thread with ok, the fingerprint last
 * served ("" when nothing was), and a message for a person.
 *
 * With dane (NULL or n == 0: none), ok also needs a TLSA record of it to
 * authenticate the served chain, and the message says which matched ("...
 * serves the deployed certificate; DANE: TLSA 3 1 1 matches at depth 0")
 * or why none did. The records are copied: the caller's array may go when
 * the call returns. -EINVAL for records cs_probe_dane_check refuses.
 */
typedef void (*cs_probe_cb)(void *arg, bool ok, const char *served_sha256, const char *msg);

/* Starts the check; returns 0 (cb will run), or a negative errno (it will not). */
int cs_probe_verify_start(uv_loop_t *loop, const char *url, const char *want_sha256,
			  const struct cs_probe_dane *dane, int bound_ms, int retry_ms,
			  cs_probe_cb cb, void *arg);

#endif
