/*
 * cs_localca_issuer - the local CA as an issuer of the pipeline (see
 * cs_issuer.h): requests (issuances, revocations, CRL refreshes) wait in a
 * FIFO and go to the libuv work queue one at a time, issuances queued
 * together as one group; a CA still to be created is made by the first
 * request. The CA itself, its files and its CRLs are cs_localca.c's.
 */
#include "cs_crlreason.h"
#include "cs_localca.h"
#include "cs_log.h"

#include <errno.h>
#include <openssl/bn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

/* ---- the asynchronous issuer ---- */

/*
 * Requests wait in a FIFO and go to the libuv work queue one at a time, so
 * that a burst of renewals occupies one pool thread (the others stay free for
 * the rest of the agent) rather than all of them blocked on the CA's lock.
 * A request that arrives while nothing runs starts at once, alone (a single
 * renewal waits for nothing); the issuances that queue up behind it go next
 * as one group, committed together by cs_localca_issue_batch: one fsync of
 * index.txt, serial and newcerts/ for the group instead of one per
 * certificate, and every answer still given only once its certificate is
 * durable. Revocations and CRL refreshes are never grouped: they keep their
 * place in the FIFO. A CA that does not exist yet is created by the first
 * request, on the work queue: generating an RSA-4096 key takes seconds the
 * loop cannot spare; only an open CA takes groups.
 */
#define LOCALCA_BATCH_MAX 64 /* issuances committed together at most */

struct localca_issuer;

struct localca_work {
	uv_work_t w;
	struct localca_issuer *li;
	STAILQ_ENTRY(localca_work) link; /* in the issuer's waiting, then its group */
	X509_REQ *csr; /* decoded from the request's DER */
	char **names;
	size_t n;
	enum cs_usage usage;
	char *cert_name;
	cs_issue_cb cb;
	void *arg;
	cs_localca *ca;     /* the open CA, or NULL: open (create) it first */
	cs_localca *opened; /* set by the worker when it opened the CA */
	struct cs_issue_result res;
	/* A revocation instead of an issuance when revoke_cb is set. */
	cs_issuer_done_cb revoke_cb;
	char *serial;
	int reason;
	bool crl_only; /* with revoke_cb: re-read DIR/crl.pem, sign the next one when due */
};

struct localca_issuer {
	struct cs_issuer base;
	cs_localca *ca; /* NULL until the CA exists; written on the loop thread only */
	struct cs_localca_opts opts; /* for the deferred creation (strings owned) */
	STAILQ_HEAD(work_list, localca_work) waiting; /* first in, first out */
	/* On the work queue: its first is the uv_work_t, the others commit with it. */
	struct work_list group;
	bool reporting; /* issue_done is calling back: a close there waits for it to end */
	bool closing;
	void (*close_cb)(void *arg);
	void *close_arg;
};

static void work_free(struct localca_work *wk)
{
	for (size_t i = 0; i < wk->n; i++)
		free(wk->names[i]);
	free(wk->names);
	free(wk->cert_name);
	free(wk->serial);
	X509_REQ_free(wk->csr);
	cs_issuer_result_clear(&wk->res);
	free(wk);
}

/* Hands the outcome of wk to its caller. */
static void work_report(struct localca_work *wk)
{
	if (wk->revoke_cb != NULL)
		wk->revoke_cb(wk->arg, wk->res.status, wk->res.status < 0 ? wk->res.error : NULL);
	else
		wk->cb(wk->arg, &wk->res);
}

static void issuer_free(struct localca_issuer *li)
{
	cs_localca_close(li->ca);
	free((char *)li->opts.dir);
	free((char *)li->opts.subject);
	free(li->base.name);
	free(li);
}

static void issuer_finish_close(struct localca_issuer *li)
{
	void (*cb)(void *) = li->close_cb;
	void *arg = li->close_arg;

	issuer_free(li);
	if (cb != NULL)
		cb(arg);
}

/*
 * How long a CRL made after a revocation is valid: as long as the
 * certificates this CA issues (at least a week), since nothing generates the
 * next one before another revocation.
 */
static int64_t crl_validity(const struct localca_issuer *li)
{
	if (li->opts.crl_validity_s > 0)
		return li->opts.crl_validity_s;
	return li->opts.validity_s > 7 * 86400 ? li->opts.validity_s : 7 * 86400;
}

/* On a worker thread: opening (creating) the CA when needed, the signing, the files. */
static void issue_work(uv_work_t *w)
{
	struct localca_work *wk = w->data;
	cs_localca *ca = wk->ca;
	int rc;

	if (ca == NULL) {
		ca = wk->opened = cs_localca_open_ex(&wk->li->opts, true, &rc, wk->res.error,
					  sizeof(wk->res.error));
		if (ca == NULL) {
			wk->res.status = rc < 0 ? rc : -EINVAL;
			return;
		}
	}
	if (wk->crl_only) {
		wk->res.status = cs_localca_crl_refresh(ca, crl_validity(wk->li), wk->li->opts.crl_renew_pct,
						       wk->res.error, sizeof(wk->res.error));
		return;
	}
	if (wk->revoke_cb != NULL) {
		/* The CRL follows at once, so that the revocation is published with it. */
		wk->res.status = cs_localca_revoke(ca, wk->serial, cs_crlreason_name(wk->reason),
						   wk->res.error, sizeof(wk->res.error));
		if (wk->res.status == 0)
			wk->res.status = cs_localca_gencrl(ca, crl_validity(wk->li), NULL,
							   wk->res.error, sizeof(wk->res.error));
		return;
	}
	/*
	 * Issuances (one, or a group that waited together): one commit for all.
	 * Each request keeps its own outcome; a failed commit fails them all.
	 */
	size_t n = 0, i = 0;
	struct localca_work *p;

	for (p = wk; p != NULL; p = STAILQ_NEXT(p, link))
		n++;
	struct cs_localca_req *reqs = calloc(n, sizeof(*reqs));
	if (reqs == NULL) {
		for (p = wk; p != NULL; p = STAILQ_NEXT(p, link)) {
			p->res.status = -ENOMEM;
			snprintf(p->res.error, sizeof(p->res.error), "out of memory");
		}
		return;
	}
	for (p = wk; p != NULL; p = STAILQ_NEXT(p, link), i++)
		reqs[i] = (struct cs_localca_req){ .csr = p->csr, .names = p->names, .n = p->n,
						   .usage = p->usage, .err = p->res.error,
						   .errlen = sizeof(p->res.error) };
	cs_localca_issue_batch(ca, reqs, n);
	i = 0;
	/* Handed back as DER, encoded here rather than on the loop. */
	for (p = wk; p != NULL; p = STAILQ_NEXT(p, link), i++) {
		p->res.status = reqs[i].status;
		if (p->res.status == 0 && cs_issuer_result_set(&p->res, reqs[i].leaf, reqs[i].chain) < 0) {
			p->res.status = -ENOMEM;
			snprintf(p->res.error, sizeof(p->res.error), "out of memory");
		}
		X509_free(reqs[i].leaf);
		sk_X509_pop_free(reqs[i].chain, X509_free);
	}
	free(reqs);
}

/* An issuance (not a revocation nor a CRL), which can go in a group. */
static bool is_issuance(const struct localca_work *wk)
{
	return wk->revoke_cb == NULL && !wk->crl_only;
}

static void issue_done(uv_work_t *w, int status);

/* Hands the first waiting request to the work queue. */
static void start_next(struct localca_issuer *li)
{
	struct localca_work *wk = STAILQ_FIRST(&li->waiting), *p;
	int rc;

	if (wk == NULL || !STAILQ_EMPTY(&li->group))
		return;
	STAILQ_REMOVE_HEAD(&li->waiting, link);
	STAILQ_INSERT_TAIL(&li->group, wk, link);
	/* Issuances waiting behind an issuance go with it, as one commit (an open CA only). */
	for (size_t n = 1; li->ca != NULL && is_issuance(wk) &&
			   (p = STAILQ_FIRST(&li->waiting)) != NULL && is_issuance(p) &&
			   n < LOCALCA_BATCH_MAX;
	     n++) {
		STAILQ_REMOVE_HEAD(&li->waiting, link);
		STAILQ_INSERT_TAIL(&li->group, p, link);
	}
	wk->ca = li->ca;
	if ((rc = uv_queue_work(li->base.loop, &wk->w, issue_work, issue_done)) < 0) {
		/* Only for a bad argument; reported like any failure, from the loop. */
		struct work_list group = STAILQ_HEAD_INITIALIZER(group);

		STAILQ_CONCAT(&group, &li->group);
		while ((p = STAILQ_FIRST(&group)) != NULL) {
			STAILQ_REMOVE_HEAD(&group, link);
			p->res.status = rc;
			snprintf(p->res.error, sizeof(p->res.error),
				 "issuer %s: cannot queue work: %s", li->base.name, uv_strerror(rc));
			work_report(p);
			work_free(p);
		}
	}
}

/* Calls back every waiting request with -ECANCELED (the issuer is closing). */
static void cancel_waiting(struct localca_issuer *li)
{
	struct localca_work *wk;

	while ((wk = STAILQ_FIRST(&li->waiting)) != NULL) {
		STAILQ_REMOVE_HEAD(&li->waiting, link);
		wk->res.status = -ECANCELED;
		snprintf(wk->res.error, sizeof(wk->res.error),
			 "issuer %s closed before the request for %s ran", li->base.name,
			 wk->cert_name);
		work_report(wk);
		work_free(wk);
	}
}

/* On the loop thread: hands the result over, then starts the next or finishes closing. */
static void issue_done(uv_work_t *w, int status)
{
	struct localca_work *wk = w->data;
	struct localca_issuer *li = wk->li;
	/* The group leaves li->group: a callback below may start the next one. */
	struct work_list group = STAILQ_HEAD_INITIALIZER(group);

	STAILQ_CONCAT(&group, &li->group);
	if (wk->opened != NULL) {
		if (li->ca == NULL)
			li->ca = wk->opened;
		else
			cs_localca_close(wk->opened);
	}
	/* Each request of the group is reported (and freed) on its own. */
	li->reporting = true;
	while ((wk = STAILQ_FIRST(&group)) != NULL) {
		STAILQ_REMOVE_HEAD(&group, link);
		if (status == UV_ECANCELED) {
			wk->res.status = -ECANCELED;
			snprintf(wk->res.error, sizeof(wk->res.error),
				 "issuer %s closed before the request for %s ran", li->base.name,
				 wk->cert_name);
		} else if (wk->res.status < 0) {
			cs_warn("issuer %s: %s: %s", li->base.name, wk->cert_name, wk->res.error);
		}
		work_report(wk);
		work_free(wk);
	}
	li->reporting = false;
	if (li->closing) {
		cancel_waiting(li);
		/* A callback above may have started the next request: its end finishes the close. */
		if (!STAILQ_EMPTY(&li->group)) {
			uv_cancel((uv_req_t *)&STAILQ_FIRST(&li->group)->w);
			return;
		}
		issuer_finish_close(li);
		return;
	}
	start_next(li);
}

/* Puts wk at the end of the FIFO and starts it when nothing runs. */
static void enqueue(struct localca_issuer *li, struct localca_work *wk)
{
	STAILQ_INSERT_TAIL(&li->waiting, wk, link);
	/* A new request only waits when one is running: then issue_done starts it. */
	start_next(li);
}

static int localca_issue_op(cs_issuer *is, const struct cs_issue_request *req, cs_issue_cb cb,
			    void *arg)
{
	struct localca_issuer *li = (struct localca_issuer *)is;
	struct localca_work *wk;

	if (li->closing)
		return -ECANCELED;
	if (req->csr.p == NULL || req->n_names == 0)
		return -EINVAL;
	if ((wk = calloc(1, sizeof(*wk))) == NULL)
		return -ENOMEM;
	wk->li = li;
	if ((wk->csr = cs_issuer_request_csr(req, wk->res.error, sizeof(wk->res.error))) == NULL) {
		work_free(wk);
		return -EINVAL;
	}
	wk->usage = req->usage;
	wk->cb = cb;
	wk->arg = arg;
	wk->w.data = wk;
	wk->cert_name = strdup(req->cert_name != NULL ? req->cert_name : req->names[0]);
	wk->names = calloc(req->n_names, sizeof(*wk->names));
	if (wk->cert_name == NULL || wk->names == NULL) {
		work_free(wk);
		return -ENOMEM;
	}
	for (; wk->n < req->n_names; wk->n++)
		if ((wk->names[wk->n] = strdup(req->names[wk->n])) == NULL) {
			work_free(wk);
			return -ENOMEM;
		}
	enqueue(li, wk);
	return 0;
}

/* -EAGAIN while the CA is still to be created by the first request. */
static int localca_material_op(cs_issuer *is, struct cs_der *cacert, struct cs_der *crl)
{
	struct localca_issuer *li = (struct localca_issuer *)is;
	X509 *ca = NULL;
	X509_CRL *cl = NULL;
	int rc;

	*cacert = (struct cs_der){ 0 };
	*crl = (struct cs_der){ 0 };
	if (li->ca == NULL)
		return -EAGAIN;
	rc = cs_localca_material(li->ca, &ca, &cl);
	if (rc == 0 && (cs_issuer_der_of_x509(cacert, ca) < 0 || (cl != NULL && cs_issuer_der_of_crl(crl, cl) < 0))) {
		cs_issuer_der_clear(cacert);
		cs_issuer_der_clear(crl);
		rc = -ENOMEM;
	}
	X509_free(ca);
	X509_CRL_free(cl);
	return rc;
}

static void localca_close_op(cs_issuer *is, void (*close_cb)(void *arg), void *arg)
{
	struct localca_issuer *li = (struct localca_issuer *)is;

	li->closing = true;
	li->close_cb = close_cb;
	li->close_arg = arg;
	/* A close from a callback of issue_done: it finishes the close once it has reported. */
	if (li->reporting)
		return;
	/* Nothing runs, so nothing waits (start_next leaves no request idle). */
	if (STAILQ_EMPTY(&li->group)) {
		issuer_finish_close(li);
		return;
	}
	/* A request the pool has not picked up yet is cancelled; else it finishes. */
	uv_cancel((uv_req_t *)&STAILQ_FIRST(&li->group)->w);
}

static int localca_revoke_op(cs_issuer *is, const struct cs_der *leaf, int reason,
			     cs_issuer_done_cb cb, void *arg);
static int localca_crl_op(cs_issuer *is, cs_issuer_done_cb cb, void *arg);
static time_t localca_crl_due_op(cs_issuer *is);

static const struct cs_issuer_ops localca_ops = {
	.type = "local-ca",
	.issue = localca_issue_op,
	.revoke = localca_revoke_op,
	.ca_material = localca_material_op,
	.crl_refresh = localca_crl_op,
	.crl_due = localca_crl_due_op,
	.close = localca_close_op,
};

cs_issuer *cs_localca_issuer_new(uv_loop_t *loop, const char *name,
				 const struct cs_localca_opts *o, char *err, size_t errlen)
{
	struct localca_issuer *li = calloc(1, sizeof(*li));
	X509_NAME *subj = NULL;
	int rc;

	if (errlen > 0)
		err[0] = '\0';
	if (li == NULL || (li->base.name = strdup(name)) == NULL ||
	    (li->opts.dir = strdup(o->dir)) == NULL ||
	    (o->subject != NULL && (li->opts.subject = strdup(o->subject)) == NULL)) {
		snprintf(err, errlen, "issuer %s: out of memory", name);
		goto fail;
	}
	li->base.ops = &localca_ops;
	li->base.loop = loop;
	STAILQ_INIT(&li->waiting);
	STAILQ_INIT(&li->group);
	li->opts.key = o->key;
	li->opts.validity_s = o->validity_s;
	li->opts.ca_validity_s = o->ca_validity_s;
	li->opts.crl_validity_s = o->crl_validity_s;
	li->opts.crl_renew_pct = o->crl_renew_pct;
	/* An existing CA is read now (two small files), so that its faults show at once. */
	if ((li->ca = cs_localca_open_ex(o, false, &rc, err, errlen)) != NULL)
		return &li->base;
	if (rc != -EAGAIN)
		goto fail;
	/* To be created: what can be checked without creating it is checked now. */
	if (o->subject == NULL || o->key == CS_KEY_NONE || o->ca_validity_s <= 0) {
		snprintf(err, errlen,
			 "%s: holds no CA, and to create one subject, key and ca_validity are "
			 "needed",
			 o->dir);
		goto fail;
	}
	if ((subj = cs_localca_parse_subject(o->subject, err, errlen)) == NULL)
		goto fail;
	X509_NAME_free(subj);
	return &li->base;
fail:
	if (li != NULL)
		issuer_free(li);
	return NULL;
}

uint64_t cs_localca_issuer_commits(cs_issuer *is)
{
	return is != NULL && is->ops == &localca_ops
		       ? cs_localca_commits(((struct localca_issuer *)is)->ca)
		       : 0;
}

/* Queues wk (a revocation or a CRL refresh), whose callback is cb; returns 0. */
static int enqueue_revoke(struct localca_issuer *li, struct localca_work *wk,
			  cs_issuer_done_cb cb, void *arg)
{
	wk->li = li;
	wk->revoke_cb = cb;
	wk->arg = arg;
	wk->w.data = wk;
	enqueue(li, wk);
	return 0;
}

static int localca_crl_op(cs_issuer *is, cs_issuer_done_cb cb, void *arg)
{
	struct localca_issuer *li = (struct localca_issuer *)is;
	struct localca_work *wk;

	if (cb == NULL)
		return -EINVAL;
	if (li->closing)
		return -ECANCELED;
	if ((wk = calloc(1, sizeof(*wk))) == NULL || (wk->cert_name = strdup("CRL")) == NULL) {
		free(wk);
		return -ENOMEM;
	}
	wk->crl_only = true;
	return enqueue_revoke(li, wk, cb, arg);
}

static time_t localca_crl_due_op(cs_issuer *is)
{
	struct localca_issuer *li = (struct localca_issuer *)is;

	if (li->ca == NULL)
		return 0;
	return cs_localca_crl_due(li->ca, li->opts.crl_renew_pct);
}

static int localca_revoke_op(cs_issuer *is, const struct cs_der *leaf, int reason,
			     cs_issuer_done_cb cb, void *arg)
{
	struct localca_issuer *li = (struct localca_issuer *)is;
	struct localca_work *wk;
	const unsigned char *p = leaf != NULL ? leaf->p : NULL;
	X509 *cert;
	char *hex;

	if (p == NULL || leaf->n > (size_t)INT32_MAX || cb == NULL ||
	    !cs_crlreason_valid(reason, CS_CRLREASON_REVOKE))
		return -EINVAL;
	if (li->closing)
		return -ECANCELED;
	if ((cert = d2i_X509(NULL, &p, (long)leaf->n)) == NULL)
		return -EINVAL;
	hex = cs_localca_serial_hex(X509_get0_serialNumber(cert));
	X509_free(cert);
	if (hex == NULL)
		return -ENOMEM;
	if ((wk = calloc(1, sizeof(*wk))) == NULL) {
		OPENSSL_free(hex);
		return -ENOMEM;
	}
	wk->serial = strdup(hex);
	OPENSSL_free(hex);
	wk->cert_name = strdup(wk->serial != NULL ? wk->serial : "");
	if (wk->serial == NULL || wk->cert_name == NULL) {
		work_free(wk);
		return -ENOMEM;
	}
	wk->reason = reason;
	return enqueue_revoke(li, wk, cb, arg);
}
