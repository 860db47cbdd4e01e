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

struct cs_probe_result {
	STACK_OF(X509) *chain; /* as served, leaf first; owned (cs_probe_result_clear) */
	char tls_version[16];  /* "TLSv1.3" */
	char cipher[64];
	char error[512];       /* on failure: what went wrong, for a person */
};

/*
 * Connects to u, does the STARTTLS dialogue when the protocol has one, and
 * completes a TLS handshake, all within timeout_ms. Returns 0 with r->chain
 * set, or a negative errno with r->error set. Blocking: not on the loop.
 */
int cs_probe_run(const struct cs_probe_url *u, int timeout_ms, struct cs_probe_result *r);

/* Frees what r holds and zeroes it; accepts a zeroed r. */
void cs_probe_result_clear(struct cs_probe_result *r);

/*
 * The asynchronous check the agent runs after a reload: probes url until the
 * served leaf's SHA-256 fingerprint (Postfix format) equals want_sha256, or
 * bound_ms has passed (reloads are asynchronous), attempting again every
 * retry_ms. cb runs once on the loop thread with ok, the fingerprint last
 * served ("" when nothing was), and a message for a person.
 */
typedef void (*cs_probe_cb)(void *arg, bool ok, const char *served_sha256, const char *msg);

/* Starts the check; returns 0 (cb will run), or a negative errno (it will not). */
int cs_probe_verify_start(uv_loop_t *loop, const char *url, const char *want_sha256,
			  int bound_ms, int retry_ms, cs_probe_cb cb, void *arg);

#endif
