/*
 * cs_issuer - the interface between the renewal pipeline and the issuers
 * (local-ca, acme). An issuer is a base struct with a table of operations;
 * implementations embed struct cs_issuer first.
 *
 * Issuance is asynchronous: issue() returns at once and the callback runs later
 * on the loop thread. An issuer never blocks the loop (slow work goes to the
 * libuv work queue or to non-blocking I/O).
 */
#ifndef CS_ISSUER_H
#define CS_ISSUER_H

#include "cs_usage.h"

#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct cs_issue_request {
	const char *cert_name;     /* the [cert "NAME"], for logs and messages */
	char *const *names;        /* DNS names and IP addresses, first = subject CN */
	size_t n_names;
	enum cs_usage usage;
	X509_REQ *csr;             /* borrowed; valid until the callback has run */
	X509 *replaces;            /* deployed leaf being renewed, or NULL (ACME ARI) */
};

struct cs_issue_result {
	int status;                /* 0, or a negative errno / CS_E* code */
	X509 *leaf;                /* on success; the callback takes ownership */
	STACK_OF(X509) *chain;     /* issuers above the leaf; the callback takes ownership */
	int64_t retry_after;       /* seconds the issuer asks us to wait, 0 when none */
	char error[1024];          /* on failure: what went wrong, for a person */
};

typedef struct cs_issuer cs_issuer;
typedef void (*cs_issue_cb)(struct cs_issue_result *res, void *arg);

struct cs_issuer_ops {
	const char *type;
	/*
	 * Starts one issuance. Returns 0 when cb will be called exactly once, or a
	 * negative code (and cb is never called) when the request could not start.
	 */
	int (*issue)(cs_issuer *is, const struct cs_issue_request *req, cs_issue_cb cb,
		     void *arg);
	/*
	 * Optional (NULL when the issuer has no such thing): the CA certificate and
	 * current CRL to publish into CApath directories. Returns 0 and new
	 * references (caller frees), *crl may be NULL.
	 */
	int (*ca_material)(cs_issuer *is, X509 **cacert, X509_CRL **crl);
	/*
	 * Closes the issuer. Pending issuances are finished or cancelled (their
	 * callbacks run with status -ECANCELED) before close_cb; then the memory is
	 * freed by the implementation. close_cb may be NULL.
	 */
	void (*close)(cs_issuer *is, void (*close_cb)(void *arg), void *arg);
};

struct cs_issuer {
	const struct cs_issuer_ops *ops;
	uv_loop_t *loop;
	char *name; /* the [issuer "NAME"] */
};

/*
 * An issuer that fails every request with msg: stands in for one that could
 * not be set up, so that the agent runs on and reports why. NULL on ENOMEM.
 */
cs_issuer *cs_issuer_broken_new(uv_loop_t *loop, const char *name, const char *msg);

#endif
