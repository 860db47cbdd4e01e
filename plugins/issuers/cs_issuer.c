/*
 * cs_issuer - shared parts of the issuer interface (see cs_issuer.h): the DER
 * helpers of implementations, and the surrogate issuer that stands in for a
 * driver that is unknown or could not be set up.
 */
#include "cs_issuer.h"
#include "cs_log.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cs_issuer_der_clear(struct cs_der *d)
{
	if (d == NULL)
		return;
	OPENSSL_free(d->p);
	d->p = NULL;
	d->n = 0;
}

int cs_issuer_der_of_x509(struct cs_der *d, X509 *x)
{
	unsigned char *p = NULL;
	int n = i2d_X509(x, &p);

	if (n <= 0)
		return -ENOMEM;
	d->p = p;
	d->n = (size_t)n;
	return 0;
}

int cs_issuer_der_of_crl(struct cs_der *d, X509_CRL *crl)
{
	unsigned char *p = NULL;
	int n = i2d_X509_CRL(crl, &p);

	if (n <= 0)
		return -ENOMEM;
	d->p = p;
	d->n = (size_t)n;
	return 0;
}

int cs_issuer_result_set(struct cs_issue_result *res, X509 *leaf, STACK_OF(X509) *chain)
{
	int n = chain != NULL ? sk_X509_num(chain) : 0;

	if (cs_issuer_der_of_x509(&res->leaf, leaf) < 0)
		return -ENOMEM;
	if (n > 0 && (res->chain = calloc((size_t)n, sizeof(*res->chain))) == NULL) {
		cs_issuer_result_clear(res);
		return -ENOMEM;
	}
	for (int i = 0; i < n; i++) {
		if (cs_issuer_der_of_x509(&res->chain[i], sk_X509_value(chain, i)) < 0) {
			cs_issuer_result_clear(res);
			return -ENOMEM;
		}
		res->n_chain++;
	}
	return 0;
}

void cs_issuer_result_clear(struct cs_issue_result *res)
{
	cs_issuer_der_clear(&res->leaf);
	for (size_t i = 0; i < res->n_chain; i++)
		cs_issuer_der_clear(&res->chain[i]);
	free(res->chain);
	res->chain = NULL;
	res->n_chain = 0;
}

X509_REQ *cs_issuer_request_csr(const struct cs_issue_request *req, char *err, size_t errlen)
{
	const unsigned char *p = req->csr.p;
	X509_REQ *csr = p != NULL && req->csr.n <= (size_t)INT32_MAX
				? d2i_X509_REQ(NULL, &p, (long)req->csr.n)
				: NULL;

	if (csr == NULL || p != req->csr.p + req->csr.n) {
		X509_REQ_free(csr);
		snprintf(err, errlen, "the certificate request is not one DER CSR");
		return NULL;
	}
	return csr;
}

/* ---- the surrogate --------------------------------------------------------- */

/*
 * Fails each call (on a later loop turn, as the interface promises) with the
 * reason it was made for. Requests still waiting when it closes are answered
 * first, with that reason.
 */
struct broken_issuer {
	struct cs_issuer base;
	char *msg;
	unsigned pending;
	void (*close_cb)(void *arg);
	void *close_arg;
	bool closing;
};

enum broken_kind { B_ISSUE, B_DONE, B_WINDOW };

struct broken_req {
	uv_timer_t timer;
	struct broken_issuer *b;
	enum broken_kind kind;
	union {
		cs_issue_cb issue;
		cs_issuer_done_cb done;
		cs_issuer_window_cb window;
	} cb;
	void *arg;
};

static void broken_free(struct broken_issuer *b)
{
	void (*close_cb)(void *arg) = b->close_cb;
	void *arg = b->close_arg;

	free(b->msg);
	free(b->base.name);
	free(b);
	if (close_cb != NULL)
		close_cb(arg);
}

static void broken_req_closed(uv_handle_t *h)
{
	struct broken_req *r = h->data;
	struct broken_issuer *b = r->b;

	free(r);
	if (--b->pending == 0 && b->closing)
		broken_free(b);
}

static void broken_fire(uv_timer_t *t)
{
	struct broken_req *r = t->data;
	const char *msg = r->b->msg;

	if (r->kind == B_ISSUE) {
		struct cs_issue_result res = { .status = -EINVAL };
		snprintf(res.error, sizeof(res.error), "%s", msg);
		r->cb.issue(r->arg, &res);
	} else if (r->kind == B_DONE) {
		r->cb.done(r->arg, -EINVAL, msg);
	} else {
		r->cb.window(r->arg, -EINVAL, NULL, msg);
	}
	uv_close((uv_handle_t *)t, broken_req_closed);
}

/* A request of kind (its callback already in r->cb), answered on the next loop turn. */
static int broken_start(cs_issuer *is, struct broken_req *r)
{
	struct broken_issuer *b = (struct broken_issuer *)is;

	if (r == NULL)
		return -ENOMEM;
	if (b->closing) {
		free(r);
		return -ECANCELED;
	}
	r->b = b;
	uv_timer_init(is->loop, &r->timer);
	r->timer.data = r;
	uv_timer_start(&r->timer, broken_fire, 0, 0);
	b->pending++;
	return 0;
}

static struct broken_req *broken_req_new(enum broken_kind kind, void *arg)
{
	struct broken_req *r = calloc(1, sizeof(*r));

	if (r != NULL) {
		r->kind = kind;
		r->arg = arg;
	}
	return r;
}

static int broken_issue(cs_issuer *is, const struct cs_issue_request *req, cs_issue_cb cb,
			void *arg)
{
	struct broken_req *r = broken_req_new(B_ISSUE, arg);

	(void)req;
	if (r != NULL)
		r->cb.issue = cb;
	return broken_start(is, r);
}

static int broken_revoke(cs_issuer *is, const struct cs_der *leaf, int reason,
			 cs_issuer_done_cb cb, void *arg)
{
	struct broken_req *r = broken_req_new(B_DONE, arg);

	(void)leaf;
	(void)reason;
	if (r != NULL)
		r->cb.done = cb;
	return broken_start(is, r);
}

static int broken_window(cs_issuer *is, const struct cs_der *leaf, cs_issuer_window_cb cb,
			 void *arg)
{
	struct broken_req *r = broken_req_new(B_WINDOW, arg);

	(void)leaf;
	if (r != NULL)
		r->cb.window = cb;
	return broken_start(is, r);
}

static void broken_close(cs_issuer *is, void (*close_cb)(void *arg), void *arg)
{
	struct broken_issuer *b = (struct broken_issuer *)is;

	b->closing = true;
	b->close_cb = close_cb;
	b->close_arg = arg;
	if (b->pending == 0)
		broken_free(b);
}

static const struct cs_issuer_ops broken_ops = {
	.type = "broken",
	.issue = broken_issue,
	.revoke = broken_revoke,
	.renewal_info = broken_window,
	.close = broken_close,
};

cs_issuer *cs_issuer_broken_new(uv_loop_t *loop, const char *name, const char *msg)
{
	struct broken_issuer *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return NULL;
	b->base.ops = &broken_ops;
	b->base.loop = loop;
	b->base.name = strdup(name);
	b->msg = strdup(msg);
	if (b->base.name == NULL || b->msg == NULL) {
		free(b->base.name);
		free(b->msg);
		free(b);
		return NULL;
	}
	return &b->base;
}
