/*
 * cs_issuer - the interface between the renewal pipeline and the issuers
 * (local-ca, acme, or any other driver in the registry, cs_registry.h). An
 * issuer is a base struct with a table of operations; implementations embed
 * struct cs_issuer first.
 *
 * Every call takes and returns plain data: DER bytes, strings and numbers,
 * never an OpenSSL object. So an issuer can be put behind a socketpair (a
 * process of its own) without the pipeline noticing.
 *
 * Calls are asynchronous: they return at once and the callback runs later on
 * the loop thread, exactly once, unless the call returned a negative code. An
 * issuer never blocks the loop (slow work goes to the libuv work queue or to
 * non-blocking I/O). Callbacks take their argument first.
 */
#ifndef CS_ISSUER_H
#define CS_ISSUER_H

#include "cs_usage.h"

#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

/* Bytes of one DER object. */
struct cs_der {
	unsigned char *p;
	size_t n;
};

struct cs_issue_request {
	const char *cert_name;     /* the [cert "NAME"], for logs and messages */
	char *const *names;        /* DNS names and IP addresses, first = subject CN */
	size_t n_names;
	enum cs_usage usage;
	struct cs_der csr;         /* the CSR; borrowed, valid until the callback has run */
	struct cs_der replaces;    /* the deployed leaf being renewed (ACME ARI); n = 0: none */
	/*
	 * Optional (ACME): the order an earlier attempt of this same request
	 * created, to go on with rather than order again (NULL: none); and
	 * order_created, called (with the issue's arg) when this attempt has
	 * one, so that a caller can pass it back after a crash.
	 */
	const char *resume_order;
	void (*order_created)(void *arg, const char *url);
};

struct cs_issue_result {
	int status;                /* 0, or a negative errno / CS_E* code */
	struct cs_der leaf;        /* on success; valid during the callback only */
	struct cs_der *chain;      /* the issuers above the leaf, in order; likewise */
	size_t n_chain;
	int64_t retry_after;       /* seconds the issuer asks us to wait, 0 when none */
	char error[1024];          /* on failure: what went wrong, for a person */
};

/* A renewal window the CA suggests (ACME renewal information, RFC 9773). */
struct cs_issuer_window {
	int64_t start;
	int64_t end;
	int64_t retry_after;   /* seconds until the CA wants to be asked again, 0 if not said */
	char explanation[512]; /* a URL explaining it, or "" */
};

typedef struct cs_issuer cs_issuer;
typedef void (*cs_issue_cb)(void *arg, const struct cs_issue_result *res);
/* The end of a call without a result: 0, or a negative code with error (may be NULL). */
typedef void (*cs_issuer_done_cb)(void *arg, int status, const char *error);
/* status 0 and w; -ENOTSUP when the CA gives no windows; else a negative code with error. */
typedef void (*cs_issuer_window_cb)(void *arg, int status, const struct cs_issuer_window *w,
				    const char *error);

struct cs_issuer_ops {
	const char *type;
	/* Starts one issuance. */
	int (*issue)(cs_issuer *is, const struct cs_issue_request *req, cs_issue_cb cb,
		     void *arg);
	/*
	 * Optional (NULL: not supported): revokes the certificate leaf (DER, read
	 * during the call only) with reason, an RFC 5280 CRLReason code (-1:
	 * none given).
	 */
	int (*revoke)(cs_issuer *is, const struct cs_der *leaf, int reason, cs_issuer_done_cb cb,
		      void *arg);
	/* Optional: the renewal window the CA suggests for leaf (DER, read during the call). */
	int (*renewal_info)(cs_issuer *is, const struct cs_der *leaf, cs_issuer_window_cb cb,
			    void *arg);
	/*
	 * Optional, synchronous: the CA certificate and current CRL to publish
	 * into CApath directories, as DER the caller frees (crl->n = 0: no CRL).
	 * Returns 0, -EAGAIN when the CA does not exist yet, or another negative code.
	 */
	int (*ca_material)(cs_issuer *is, struct cs_der *cacert, struct cs_der *crl);
	/*
	 * Optional: keeps the CA's CRL fresh (reads it again, signs the next one
	 * when due); crl_due (synchronous) says when that is next needed (0: never).
	 */
	int (*crl_refresh)(cs_issuer *is, cs_issuer_done_cb cb, void *arg);
	time_t (*crl_due)(cs_issuer *is);
	/*
	 * Closes the issuer. Pending calls are finished or cancelled (their
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
 * An issuer that fails every request with msg (the surrogate of one whose
 * driver is unknown or could not be set up), so that the agent runs on and
 * reports why. NULL on ENOMEM.
 */
cs_issuer *cs_issuer_broken_new(uv_loop_t *loop, const char *name, const char *msg);

/* Frees what cs_der holds and zeroes it; accepts a zeroed one. */
void cs_issuer_der_clear(struct cs_der *d);

/*
 * Helpers for implementations, which do use OpenSSL inside: res's leaf and
 * chain set to the DER of leaf and chain (chain may be NULL); 0 or -ENOMEM.
 * cs_issuer_result_clear frees them. cs_issuer_der_of_x509 (and _crl) encode one
 * object into d (0 or -ENOMEM); cs_issuer_request_csr decodes the CSR (NULL
 * with err set).
 */
int cs_issuer_result_set(struct cs_issue_result *res, X509 *leaf, STACK_OF(X509) *chain);
void cs_issuer_result_clear(struct cs_issue_result *res);
int cs_issuer_der_of_x509(struct cs_der *d, X509 *x);
int cs_issuer_der_of_crl(struct cs_der *d, X509_CRL *crl);
X509_REQ *cs_issuer_request_csr(const struct cs_issue_request *req, char *err, size_t errlen);

#endif
