/*
 * cs_acme - the acme issuer: certificates from any ACME CA (RFC 8555), on
 * libcurl multi driven by the libuv loop (cs_http). It never blocks the loop
 * and never sleeps: polling, Retry-After and badNonce retries run on uv
 * timers; what needs privileges (the account key, signatures, challenge
 * files, DNS hooks, binding http_listen) is asked of a host (cs_acme_host.h),
 * in-process the local host (key generation and challenge files on the work
 * queue, DNS hooks through uv_spawn).
 *
 * The interface is deliberately narrow (names and a CSR in, a chain out; a
 * certificate in, a window or a revocation out), and the issuer holds no
 * globals, so that it can later run in an unprivileged child process.
 *
 * State kept under STATE_DIR/acme/NAME/ (directory 0700): account.key, the
 * account key in PEM (0600, written mode-first), created on first use.
 */
#ifndef CS_ACME_H
#define CS_ACME_H

#include "cs_acme_msg.h"
#include "cs_issuer.h"
#include "cs_key.h"

#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>

enum cs_acme_challenge {
	CS_ACME_HTTP01 = 0, /* webroot, or the built-in responder on http_listen */
	CS_ACME_DNS01,      /* dns_hook add|del NAME VALUE */
};

struct cs_acme_opts {
	const char *directory;     /* https URL of the directory */
	char *const *contact;      /* "mailto:..." URLs, may be none */
	size_t n_contact;
	enum cs_acme_challenge challenge;
	const char *webroot;       /* http-01: files go to WEBROOT/.well-known/acme-challenge/ */
	const char *http_listen;   /* http-01: "ADDR:PORT" of the built-in responder */
	const char *dns_hook;      /* dns-01: program run as HOOK add|del NAME VALUE */
	const char *ca_bundle;     /* trust for the ACME server, NULL: the system's */
	const char *eab_kid;       /* External Account Binding, both or neither */
	const char *eab_hmac_key;  /* base64url; never logged */
	const char *preferred_chain; /* issuer CN of the top certificate of the wanted chain */
	const char *profile;       /* sent when the directory offers it */
	enum cs_keytype account_key; /* of a new account key; CS_KEY_NONE: ec:P-256 */
	int64_t poll_timeout_s;    /* give up polling an order after this; 0: 600 */
	unsigned max_orders;       /* orders (and other requests) in flight at once; 0: 4 */
};

/*
 * The most max_orders may be. Let's Encrypt limits its newNonce, newOrder
 * and revokeCert endpoints to 20 requests a second and an account to 300 new
 * orders in 3 hours: 16 orders, each sending one newOrder and then polling,
 * stay below the first; the second is a count over hours that no number in
 * flight can keep, so a 429 or 503 makes the issuer drop to one order at a
 * time and start none before the CA's Retry-After.
 */
#define CS_ACME_MAX_ORDERS 16

/*
 * Returns the acme issuer NAME (see cs_issuer.h; close through its ops),
 * keeping its account under state_dir, or NULL with err set. Nothing is
 * sent before the first request. Besides issue, its table has revoke (RFC
 * 8555 section 7.6, signed with the account key) and renewal_info (RFC 9773:
 * -ENOTSUP when the directory has no renewalInfo; a problem document is
 * reported verbatim).
 */
cs_issuer *cs_acme_issuer_new(uv_loop_t *loop, const char *name, const struct cs_acme_opts *o,
			      const char *state_dir, char *err, size_t errlen);

struct cs_acme_host_ops;

/*
 * The same, but everything privileged goes through host (cs_acme_host.h):
 * the issuer holds no private key, opens no file, runs no program and binds
 * no port itself. o->webroot, o->http_listen, o->dns_hook and o->eab_kid only
 * choose how challenges and the account are made and name things in
 * messages (o->eab_hmac_key may be ""; the host has the secrets). The issuer
 * takes host in every case: it closes it (host_ops->close) once every call
 * has called back, before its own close callback; on failure at once.
 * cs_acme_issuer_new is this with the local host (cs_acme_host_local_new).
 */
cs_issuer *cs_acme_issuer_new_hosted(uv_loop_t *loop, const char *name,
				     const struct cs_acme_opts *o,
				     const struct cs_acme_host_ops *host_ops, void *host, char *err,
				     size_t errlen);

#endif
