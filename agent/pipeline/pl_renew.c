/*
 * pl_renew - the first steps of a renewal that orders a certificate: a key
 * (new, or the deployed one with reuse_key) and a CSR on the work queue
 * (KEYGEN), then the issuer (ISSUING). What the issuer returns goes on to
 * pl_deploy; a failure ends the renewal through pl_renewal_fail.
 */
#include "pl_int.h"
#include "cs_csr.h"
#include "cs_key.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pl_renew_job_free(struct renew_job *j)
{
	if (j == NULL)
		return;
	EVP_PKEY_free(j->reuse);
	EVP_PKEY_free(j->key);
	cs_issuer_der_clear(&j->csr);
	cs_issuer_der_clear(&j->replaces);
	cs_material_free(j->m);
	cs_material_free(j->prev);
	pl_material_ref_clear(&j->prev_ref);
	pl_der_clear(&j->der);
	cs_examine_clear(&j->ex);
	free(j);
}

/* Ends the renewal of j's cert with msg; j is freed. */
static void job_failed(struct renew_job *j, const char *msg, int64_t retry_after)
{
	struct cert *c = j->c;

	pl_renew_job_free(j);
	pl_renewal_fail(c, msg, retry_after);
}

/* Decodes one DER certificate; NULL when it is not exactly one. */
static X509 *der_x509(const struct cs_der *d)
{
	const unsigned char *p = d->p;
	X509 *x = p != NULL && d->n <= (size_t)INT32_MAX ? d2i_X509(NULL, &p, (long)d->n) : NULL;

	if (x != NULL && p != d->p + d->n) {
		X509_free(x);
		x = NULL;
	}
	return x;
}

/* The issued set: j's key with res's leaf and chain, decoded. Returns 0 or -EINVAL/-ENOMEM. */
static int take_issued(struct renew_job *j, const struct cs_issue_result *res)
{
	if ((j->m = cs_material_new()) == NULL)
		return -ENOMEM;
	if ((j->m->leaf = der_x509(&res->leaf)) == NULL)
		return -EINVAL;
	for (size_t i = 0; i < res->n_chain; i++) {
		X509 *x = der_x509(&res->chain[i]);
		if (x == NULL)
			return -EINVAL;
		if (!sk_X509_push(j->m->chain, x)) {
			X509_free(x);
			return -ENOMEM;
		}
	}
	j->m->key = j->key;
	j->key = NULL;
	return 0;
}

static void on_issued(void *arg, const struct cs_issue_result *res)
{
	struct renew_job *j = arg;
	struct cert *c = j->c;
	struct cs_pipeline *pl = c->pl;
	char msg[1200];
	int rc;

	pl_inflight_dec(pl);
	assert(c->stage == PL_ISSUING);
	if (res->status < 0 || res->leaf.n == 0) {
		snprintf(msg, sizeof(msg), "issuer %s: %s", c->renewal->issuer->name,
			 res->error[0] ? res->error : strerror(-res->status));
		job_failed(j, msg, res->retry_after);
		return;
	}
	if ((rc = take_issued(j, res)) < 0) {
		snprintf(msg, sizeof(msg), "issuer %s: %s", c->renewal->issuer->name,
			 rc == -ENOMEM ? "out of memory"
				       : "what it returned is not a DER certificate chain");
		job_failed(j, msg, 0);
		return;
	}
	if (pl->closing || pl->tearing_down)
		/* A certificate was issued: still put it in place, that is quick. */
		cs_info("%s: deploying the certificate issued while stopping", c->cfg->name);
	pl_step(c, PL_EV_ISSUED);
	pl_event_publish(c, (struct cs_event){ .type = CS_EVENT_ISSUED });
	pl_deploy_issued(c, j);
}

cs_material *pl_renew_decode_prev(struct renew_job *j)
{
	cs_material *m;

	if (!j->prev_ref.set)
		return NULL;
	m = pl_material_ref_decode(&j->prev_ref, j->prev_err, sizeof(j->prev_err));
	if (m != NULL && j->prev_usable && j->prev == NULL)
		j->prev = m;
	return m;
}

void pl_renew_prev_report(struct renew_job *j)
{
	if (j->prev_err[0] == '\0')
		return;
	cs_err("%s: cannot read the deployed material (%s): %s", j->cfg->name, j->prev_ref.serial,
	       j->prev_err);
	j->prev_err[0] = '\0';
}

static void keycsr_work(uv_work_t *req)
{
	struct renew_job *j = req->data;
	/* The deployed set: decoded here, off the loop (a key takes milliseconds). */
	cs_material *m = pl_renew_decode_prev(j);

	/* The issuer gets plain data: the leaf it replaces and the CSR as DER. */
	if (m != NULL && m->leaf != NULL && cs_issuer_der_of_x509(&j->replaces, m->leaf) < 0)
		j->replaces = (struct cs_der){ 0 }; /* only a hint to the CA: ordered without it */
	/* DANE: a key whose TLSA record is published (pl_dane.c). */
	if (j->dane)
		j->reuse = pl_dane_key_pick(j, m);
	/* Never someone else's key, nor a revoked one (may_reuse says). */
	else if (j->may_reuse && m != NULL && m->key != NULL &&
		 cs_key_type_of(m->key) == j->cfg->key) {
		EVP_PKEY_up_ref(m->key);
		j->reuse = m->key;
	}
	if (m != j->prev)
		cs_material_free(m);
	if (j->reuse != NULL) {
		j->key = j->reuse;
		j->reuse = NULL;
	} else {
		j->key = cs_key_generate(j->cfg->key, j->err, sizeof(j->err));
		if (j->key == NULL) {
			j->rc = -EINVAL;
			return;
		}
	}
	X509_REQ *csr = cs_csr_new(j->key, j->cfg->names.v, j->cfg->names.n, j->err, sizeof(j->err));
	unsigned char *der = NULL;
	int n;

	if (csr == NULL) {
		j->rc = -EINVAL;
		return;
	}
	n = i2d_X509_REQ(csr, &der);
	X509_REQ_free(csr);
	if (n <= 0) {
		j->rc = -ENOMEM;
		snprintf(j->err, sizeof(j->err), "out of memory");
		return;
	}
	j->csr = (struct cs_der){ der, (size_t)n };
}

static void keycsr_done(uv_work_t *req, int status)
{
	struct renew_job *j = req->data;
	struct cert *c = j->c;
	struct cs_pipeline *pl = c->pl;
	struct pl_issuer *pi = c->renewal->issuer;
	char msg[1100];
	int rc;

	(void)status;
	pl_inflight_dec(pl);
	pl_renew_prev_report(j);
	pl_dane_key_report(c, j);
	if (j->rc < 0) {
		snprintf(msg, sizeof(msg), "key or CSR: %s", j->err);
		job_failed(j, msg, 0);
		return;
	}
	if (pl->closing || pl->tearing_down || pi->is == NULL) {
		job_failed(j, "stopping", 0);
		return;
	}
	struct cs_issue_request ir = {
		.cert_name = c->cfg->name,
		.names = c->cfg->names.v,
		.n_names = c->cfg->names.n,
		.usage = c->cfg->usage,
		.csr = j->csr,
		/* ARI's `replaces` names a certificate of the same CA only. */
		.replaces = pi == pl_deployed_issuer(c) ? j->replaces : (struct cs_der){ 0 },
	};
	pl_step(c, PL_EV_KEY_READY);
	/* Counted before the call, in case the issuer answers before it returns. */
	pl_inflight_inc(pl);
	rc = pi->is->ops->issue(pi->is, &ir, on_issued, j);
	if (rc < 0) {
		pl_inflight_dec(pl);
		snprintf(msg, sizeof(msg), "issuer %s: cannot start: %s", pi->name, strerror(-rc));
		job_failed(j, msg, 0);
	}
}

/* A new renewal job for c (NULL on ENOMEM); the deployed set is decoded later, off the loop. */
struct renew_job *pl_renew_job_new(struct cert *c)
{
	struct renew_job *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return NULL;
	j->req.data = j;
	j->c = c;
	j->cfg = c->cfg;
	j->state_dir = c->pl->cfg->agent.state_dir;
	/* Usable: put back when a deploy stops half-way. */
	j->prev_usable = pl_verdict_ok(c);
	j->may_reuse = c->cfg->reuse_key && !c->fresh_key && c->verdict == CS_EX_OK;
	pl_dane_key_plan(c, j);
	if (pl_material_ref(c, &j->prev_ref) < 0) {
		pl_renew_job_free(j);
		return NULL;
	}
	return j;
}

void pl_keygen_start(struct cert *c)
{
	struct cs_pipeline *pl = c->pl;
	struct renew_job *j;

	assert(c->stage == PL_KEYGEN);
	if ((j = pl_renew_job_new(c)) == NULL) {
		pl_renewal_fail(c, "out of memory", 0);
		return;
	}
	if (uv_queue_work(pl->loop, &j->req, keycsr_work, keycsr_done) < 0) {
		job_failed(j, "cannot queue the key generation", 0);
		return;
	}
	pl_inflight_inc(pl);
}
