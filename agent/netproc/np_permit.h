/*
 * np_permit - the parent's table of what netproc may send in each state:
 * every frame from netproc is decoded against the schema (np_proto) and then
 * checked against the request it names, the way OpenSSH's monitor checks
 * each request of its unprivileged child. A frame that fails either is a
 * protocol violation: the parent logs it, kills netproc and fails the
 * requests in flight.
 *
 * What is checked, beyond the schema: the direction of the type; that a
 * host call names an issuer the parent opened and a request in flight of the
 * right kind, at the right stage (no challenge, challenge answer, socket or
 * finalize before a newOrder of that request was signed); that every JWS the parent is asked to sign is one a renewal of
 * that request needs (a newAccount with the configured contact, a
 * POST-as-GET, a challenge's "{}", a newOrder for exactly the request's
 * names, a finalize with exactly the parent's CSR, a revokeCert of exactly
 * the certificate being revoked); that a challenge is for one of the names,
 * of the configured type, with a base64url token; that a socket is asked for
 * only by an issuer with http_listen; that a result answers a request of its
 * kind. Pure functions: no I/O, so the fuzz target drives them directly.
 */
#ifndef NP_PERMIT_H
#define NP_PERMIT_H

#include "cs_acme.h"
#include "cs_issuer.h"
#include "np_proto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum np_kind { NP_ISSUE, NP_REVOKE, NP_ARI, NP_PROBE, NP_DNSQ };

/* What the table knows of an issuer. */
struct np_permit_issuer {
	char *const *contact;
	size_t n_contact;
	enum cs_acme_challenge challenge;
	bool listen;  /* has http_listen */
	bool eab;     /* has an external account binding */
	const char *profile;
};

/* What the table knows of a request in flight. */
struct np_permit_req {
	enum np_kind kind;
	uint64_t issuer;
	char *const *names;
	size_t n_names;
	struct cs_der csr;  /* NP_ISSUE */
	struct cs_der leaf; /* NP_REVOKE */
	int reason;         /* NP_REVOKE: the CRLReason, -1 none */
	/* Where the request stands, as np_permit_check saw it (zeroed when it is sent again): */
	bool ordered;       /* a newOrder for it was signed: challenges and a finalize may follow */
	unsigned n_chall;   /* challenge calls so far */
};

struct np_permit_ctx {
	/* The issuer or request of that number, or NULL. */
	const struct np_permit_issuer *(*issuer)(void *arg, uint64_t id);
	struct np_permit_req *(*req)(void *arg, uint64_t id);
	void *arg;
	bool test_build; /* NP_N_TEST is allowed */
};

/*
 * Decodes frame (from netproc) into m and checks that it is permitted now.
 * 0 with m to free (cs_frame_msg_free), or -EBADMSG (malformed) / -EPERM (not
 * permitted) with why said for the log and nothing to free.
 */
int np_permit_check(const struct np_permit_ctx *ctx, const unsigned char *frame, size_t n,
		    struct cs_frame_msg *m, char *why, size_t whylen);

#endif
