/*
 * cs_acme - the acme issuer. See cs_acme.h for what it offers.
 *
 * One issuer owns: its host (cs_acme_host.h: the account key, signatures,
 * challenge files, dns_hook, the responder's socket), a cs_http client
 * (trust = ca_bundle), the cached directory, the account key's public half
 * and the account's URL (kid), a pool of fresh nonces, the
 * built-in http-01 responder while orders run or wait, a FIFO of jobs
 * (issue, revoke, renewal info) waiting to start and the list
 * of jobs running. Up to max_orders jobs run at once, each with its own
 * uv_timer_t, but only once the account is known (the directory, for
 * renewal information): until then one job runs, so that the account key is
 * made and the account created once. When the CA answers 429 or 503, the issuer drops to
 * one job at a time (climbing back by one per certificate issued) and starts
 * no order before the Retry-After it gave has passed; a longer pause than
 * RETRY_AFTER_WAIT_MAX fails the waiting orders at once with that
 * Retry-After, for the scheduler.
 *
 * This file holds the issuer itself: the queue of jobs and when one may
 * start, revocation and renewal information, closing, and the public
 * functions. A job's machinery is in cs_acme_job.c, its requests in
 * cs_acme_req.c, the account in cs_acme_account.c and orders in
 * cs_acme_order.c; what they share is in cs_acme_int.h.
 *
 * Closing cancels queued jobs at once and the running ones at their next
 * step (a call to the host is let finish first); the memory goes when every
 * job's timer, the issuer's timer, the HTTP client, the responder and the
 * host have been closed.
 */
#include "cs_acme_int.h"

static const struct cs_issuer_ops acme_ops;
static char *xstrdup(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

/* ---- revocation and renewal info ---------------------------------------- */

static void on_revoked(struct job *j)
{
	cs_notice("acme %s: certificate revoked", j->a->base.name);
	cs_acme__job_end(j);
}

static void revoke_cert(struct job *j)
{
	json_t *p = json_pack("{s:s}", "certificate", j->cert64);
	char *payload;

	if (p != NULL && j->reason >= 0)
		json_object_set_new(p, "reason", json_integer(j->reason));
	payload = p != NULL ? json_dumps(p, JSON_COMPACT) : NULL;
	json_decref(p);
	if (payload == NULL) {
		cs_acme__job_fail(j, -ENOMEM, "out of memory");
		return;
	}
	const char *url = cs_acme__dir_url(j->a, "revokeCert");
	if (url == NULL) {
		free(payload);
		cs_acme__job_fail(j, -ENOTSUP, "the CA has no revokeCert");
		return;
	}
	cs_acme__request(j, NULL, url, payload, 0, on_revoked);
}

static void on_ari(struct job *j)
{
	char err[512];

	if (cs_acme_msg_ari(j->resp.body, j->resp.len, &j->win, err, sizeof(err)) < 0) {
		cs_acme__job_fail(j, -EPROTO, "GET %s: %s", j->rq.url, err);
		return;
	}
	j->win.retry_after = j->resp.retry_after;
	cs_acme__job_end(j);
}

static void ari_fetch(struct job *j)
{
	const char *base = cs_acme__dir_url(j->a, "renewalInfo");
	char *url;

	if (base == NULL) {
		cs_acme__job_fail(j, -ENOTSUP, "the CA offers no renewal information (ARI)");
		return;
	}
	if (asprintf(&url, "%s%s%s", base, base[strlen(base) - 1] == '/' ? "" : "/", j->certid) <
	    0) {
		cs_acme__job_fail(j, -ENOMEM, "out of memory");
		return;
	}
	cs_acme__request(j, "GET", url, NULL, 0, on_ari);
	free(url);
}
/* ---- the job queue ------------------------------------------------------ */

/* Takes the next step a job needs: directory, account key, account, then its own work. */
void cs_acme__job_start(struct job *j)
{
	struct cs_acme *a = j->a;

	if (a->dir == NULL) {
		cs_acme__request(j, "GET", a->directory, NULL, 0, cs_acme__on_directory);
		return;
	}
	if (j->kind == JOB_ARI) {
		cs_acme__run_next(a);
		ari_fetch(j);
		return;
	}
	if (a->key == NULL) {
		cs_acme__host_key(j, cs_acme__after_key);
		return;
	}
	if (a->kid == NULL) {
		cs_acme__new_account(j);
		return;
	}
	/* The account is known: the jobs waiting for it may start. */
	cs_acme__run_next(a);
	if (j->kind == JOB_ISSUE && a->paused_until > cs_acme__now_s()) {
		j->retry_after = a->paused_until - cs_acme__now_s();
		cs_acme__job_fail(j, -EAGAIN, "the CA asked to wait %lld s before the next order",
				  (long long)j->retry_after);
		return;
	}
	if (j->kind == JOB_ISSUE && j->resume != NULL)
		cs_acme__resume_order(j);
	else if (j->kind == JOB_ISSUE)
		cs_acme__new_order(j);
	else
		revoke_cert(j);
}

void cs_acme__job_restart(struct job *j)
{
	for (size_t i = 0; i < j->n_ch; i++)
		if (j->ch[i].set_up) {
			cs_acme__job_fail(j, -EPROTO, "the CA forgot the account in the middle of an order");
			return;
		}
	free(j->order_url);
	free(j->finalize_url);
	free(j->cert_url);
	json_decref(j->authzs);
	j->order_url = j->finalize_url = j->cert_url = NULL;
	j->authzs = NULL;
	j->finalized = false;
	cs_acme__job_start(j);
}

static void on_pause_end(uv_timer_t *t)
{
	cs_acme__run_next(t->data);
}

/* Returns 1 when j may start now; otherwise 0, with a->timer armed if only time is missing. */
static int may_start(struct cs_acme *a, struct job *j)
{
	int64_t wait;

	if (a->n_running >= a->limit)
		return 0;
	/*
	 * One job reads the directory, makes the key and creates the account
	 * (renewal information needs only the directory).
	 */
	if (a->n_running > 0 &&
	    (a->dir == NULL || (j->kind != JOB_ARI && (a->key == NULL || a->kid == NULL))))
		return 0;
	wait = a->paused_until - cs_acme__now_s();
	if (j->kind == JOB_ISSUE && wait > 0 && wait <= RETRY_AFTER_WAIT_MAX) {
		/* A longer pause is reported by job_start, with the Retry-After. */
		uv_timer_start(&a->timer, on_pause_end, (uint64_t)wait * 1000, 0);
		return 0;
	}
	return 1;
}

/* Starts the jobs at the head of the queue that may run now. */
void cs_acme__run_next(struct cs_acme *a)
{
	struct job *j;

	while (!a->closing && (j = TAILQ_FIRST(&a->queue)) != NULL && may_start(a, j)) {
		TAILQ_REMOVE(&a->queue, j, link);
		TAILQ_INSERT_TAIL(&a->running, j, link);
		a->n_running++;
		/* Through the timer, so that a callback never runs inside issue() itself. */
		cs_acme__wait_then(j, 0, cs_acme__job_start);
	}
	if (a->closing)
		cs_acme__maybe_free(a);
}

static void enqueue(struct cs_acme *a, struct job *j)
{
	TAILQ_INSERT_TAIL(&a->queue, j, link);
	cs_acme__run_next(a);
}

/* ---- the issuer --------------------------------------------------------- */

static void on_part_closed(void *arg)
{
	struct cs_acme *a = arg;

	a->open--;
	cs_acme__maybe_free(a);
}

static void on_timer_closed(uv_handle_t *h)
{
	on_part_closed(h->data);
}

void cs_acme__maybe_free(struct cs_acme *a)
{
	if (!a->closing || !TAILQ_EMPTY(&a->running) || !TAILQ_EMPTY(&a->queue) || a->dying > 0)
		return;
	if (!a->torn) {
		/* No job is left, so no call to the host is waiting: it goes too. */
		assert(!a->listen_pending);
		a->torn = true;
		a->open += 3;
		uv_close((uv_handle_t *)&a->timer, on_timer_closed);
		cs_http_close(a->http, on_part_closed, a);
		a->host_ops->close(a->host, on_part_closed, a);
		a->host = NULL;
		if (a->responder != NULL) {
			a->open++;
			cs_acme_http01_close(a->responder, on_part_closed, a);
			a->responder = NULL;
		}
	}
	if (a->open > 0)
		return;
	void (*cb)(void *) = a->close_cb;
	void *arg = a->close_arg;
	json_decref(a->dir);
	EVP_PKEY_free(a->key);
	free(a->thumb);
	free(a->kid);
	cs_acme__nonces_clear(a);
	for (size_t i = 0; i < a->n_contact; i++)
		free(a->contact[i]);
	free(a->contact);
	free(a->directory);
	free(a->webroot);
	free(a->http_listen);
	free(a->dns_hook);
	free(a->ca_bundle);
	free(a->eab_kid);
	free(a->preferred_chain);
	free(a->profile);
	free(a->base.name);
	free(a);
	if (cb != NULL)
		cb(arg);
}

/* Ends a job that never started with -ECANCELED. */
static void cancel_queued(struct job *j)
{
	j->status = -ECANCELED;
	snprintf(j->error, sizeof(j->error), "cancelled: the issuer is closing");
	if (j->kind == JOB_ISSUE) {
		struct cs_issue_result res = { .status = -ECANCELED };
		snprintf(res.error, sizeof(res.error), "%s", j->error);
		j->issue_cb(j->arg, &res);
	} else if (j->kind == JOB_REVOKE) {
		j->done_cb(j->arg, j->status, j->error);
	} else {
		j->ari_cb(j->arg, j->status, NULL, j->error);
	}
	cs_acme__job_free(j);
}

static void acme_close(cs_issuer *is, void (*close_cb)(void *arg), void *arg)
{
	struct cs_acme *a = (struct cs_acme *)is;
	struct job *j;

	if (a->closing)
		return;
	a->closing = true;
	a->close_cb = close_cb;
	a->close_arg = arg;
	uv_timer_stop(&a->timer);
	while ((j = TAILQ_FIRST(&a->queue)) != NULL) {
		TAILQ_REMOVE(&a->queue, j, link);
		cancel_queued(j);
	}
	/* Mark them all first: a job's end may take the next one off the list. */
	TAILQ_FOREACH(j, &a->running, link)
		j->cancelled = true;
	for (j = TAILQ_FIRST(&a->running); j != NULL;) {
		struct job *next = TAILQ_NEXT(j, link);

		if (!j->cleaning && j->inflight != NULL) {
			cs_http_cancel(j->inflight);
			j->inflight = NULL;
			cs_acme__job_fail(j, -ECANCELED, "cancelled: the issuer is closing");
		} else if (!j->cleaning && j->on_timer) {
			uv_timer_stop(&j->timer);
			j->on_timer = false;
			cs_acme__job_fail(j, -ECANCELED, "cancelled: the issuer is closing");
		}
		/* Work on the pool and hooks finish first; step() then cancels. */
		j = next;
	}
	cs_acme__maybe_free(a);
}

static struct job *job_new(struct cs_acme *a, enum job_kind kind)
{
	struct job *j = calloc(1, sizeof(*j));

	if (j != NULL) {
		j->a = a;
		j->kind = kind;
		uv_timer_init(a->base.loop, &j->timer);
		j->timer.data = j;
	}
	return j;
}

/*
 * A new job of kind for a call of the issuer's table with arg, or NULL with
 * *rc: -ECANCELED once the issuer is closing, -ENOMEM.
 */
static struct job *job_for(cs_issuer *is, enum job_kind kind, void *arg, int *rc)
{
	struct cs_acme *a = (struct cs_acme *)is;
	struct job *j;

	*rc = a->closing ? -ECANCELED : -ENOMEM;
	if (a->closing || (j = job_new(a, kind)) == NULL)
		return NULL;
	j->arg = arg;
	return j;
}

static int acme_issue(cs_issuer *is, const struct cs_issue_request *req, cs_issue_cb cb,
		      void *arg)
{
	struct cs_acme *a = (struct cs_acme *)is;
	struct job *j;
	char err[256];
	int rc;

	if (req->n_names == 0 || req->csr.p == NULL || req->csr.n == 0)
		return a->closing ? -ECANCELED : -EINVAL;
	if ((j = job_for(is, JOB_ISSUE, arg, &rc)) == NULL)
		return rc;
	j->issue_cb = cb;
	j->cert_name = strdup(req->cert_name != NULL ? req->cert_name : req->names[0]);
	j->names = calloc(req->n_names, sizeof(char *));
	if (j->cert_name == NULL || j->names == NULL)
		goto nomem;
	for (size_t i = 0; i < req->n_names; i++, j->n_names++)
		if ((j->names[i] = strdup(req->names[i])) == NULL)
			goto nomem;
	/* The CSR goes to the CA as it is: its DER in base64url. */
	j->csr64 = cs_b64url_encode(req->csr.p, req->csr.n);
	if (j->csr64 == NULL)
		goto nomem;
	j->order_created = req->order_created;
	if (req->resume_order != NULL && (j->resume = strdup(req->resume_order)) == NULL)
		goto nomem;
	if (req->replaces.n > 0) {
		j->replaces = cs_acme_msg_certid_der(&req->replaces, err, sizeof(err));
		if (j->replaces == NULL)
			cs_debug("acme %s: %s: no ARI replaces: %s", a->base.name, j->cert_name, err);
	}
	enqueue(a, j);
	return 0;
nomem:
	cs_acme__job_free(j);
	return -ENOMEM;
}

static int acme_renewal_info(cs_issuer *is, const struct cs_der *cert, cs_issuer_window_cb cb,
			     void *arg)
{
	struct job *j;
	char err[256];
	int rc;

	if ((j = job_for(is, JOB_ARI, arg, &rc)) == NULL)
		return rc;
	j->certid = cs_acme_msg_certid_der(cert, err, sizeof(err));
	if (j->certid == NULL) {
		cs_acme__job_free(j);
		return -EINVAL;
	}
	j->ari_cb = cb;
	enqueue((struct cs_acme *)is, j);
	return 0;
}

static int acme_revoke(cs_issuer *is, const struct cs_der *cert, int reason,
		       cs_issuer_done_cb cb, void *arg)
{
	struct job *j;
	int rc;

	if (cert == NULL || cert->p == NULL || cert->n == 0)
		return -EINVAL;
	if ((j = job_for(is, JOB_REVOKE, arg, &rc)) == NULL)
		return rc;
	if ((j->cert64 = cs_b64url_encode(cert->p, cert->n)) == NULL) {
		cs_acme__job_free(j);
		return -ENOMEM;
	}
	j->reason = reason;
	j->done_cb = cb;
	enqueue((struct cs_acme *)is, j);
	return 0;
}

static const struct cs_issuer_ops acme_ops = {
	.type = "acme",
	.issue = acme_issue,
	.revoke = acme_revoke,
	.renewal_info = acme_renewal_info,
	.close = acme_close,
};

/* Returns 0 when the options o make an issuer, else -EINVAL with err set. */
static int check_opts(const struct cs_acme_opts *o, char *err, size_t errlen)
{
	enum cs_keytype kt = o->account_key != CS_KEY_NONE ? o->account_key : CS_KEY_EC_P256;

	if (o->directory == NULL || strncmp(o->directory, "https://", 8) != 0) {
		snprintf(err, errlen, "directory must be an https:// URL");
		return -EINVAL;
	}
	if (o->challenge == CS_ACME_HTTP01 && o->webroot == NULL && o->http_listen == NULL) {
		snprintf(err, errlen, "http-01 needs webroot or http_listen");
		return -EINVAL;
	}
	if (o->challenge == CS_ACME_DNS01 && o->dns_hook == NULL) {
		snprintf(err, errlen, "dns-01 needs dns_hook");
		return -EINVAL;
	}
	if (kt != CS_KEY_EC_P256 && kt != CS_KEY_EC_P384 && kt != CS_KEY_RSA_2048 &&
	    kt != CS_KEY_RSA_3072 && kt != CS_KEY_RSA_4096) {
		snprintf(err, errlen, "account_key %s cannot sign ACME requests", cs_key_name(kt));
		return -EINVAL;
	}
	if (o->max_orders > CS_ACME_MAX_ORDERS) {
		snprintf(err, errlen, "max_orders %u is above %d", o->max_orders, CS_ACME_MAX_ORDERS);
		return -EINVAL;
	}
	if ((o->eab_kid == NULL) != (o->eab_hmac_key == NULL)) {
		snprintf(err, errlen, "eab_kid and eab_hmac_key go together");
		return -EINVAL;
	}
	return 0;
}

cs_issuer *cs_acme_issuer_new_hosted(uv_loop_t *loop, const char *name,
				     const struct cs_acme_opts *o,
				     const struct cs_acme_host_ops *host_ops, void *host, char *err,
				     size_t errlen)
{
	struct cs_acme *a;
	struct cs_http_opts ho = { .ca_bundle = o->ca_bundle };

	if (check_opts(o, err, errlen) < 0)
		goto fail_host;
	a = calloc(1, sizeof(*a));
	if (a == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail_host;
	}
	a->base.ops = &acme_ops;
	a->base.loop = loop;
	a->host_ops = host_ops;
	a->host = host;
	a->challenge = o->challenge;
	a->poll_timeout_s = o->poll_timeout_s > 0 ? o->poll_timeout_s : 600;
	a->max_orders = o->max_orders > 0 ? o->max_orders : MAX_ORDERS_DEFAULT;
	a->limit = a->max_orders;
	TAILQ_INIT(&a->queue);
	TAILQ_INIT(&a->running);
	TAILQ_INIT(&a->listen_waiters);
	a->base.name = strdup(name);
	a->directory = strdup(o->directory);
	a->webroot = xstrdup(o->webroot);
	a->http_listen = xstrdup(o->http_listen);
	a->dns_hook = xstrdup(o->dns_hook);
	a->ca_bundle = xstrdup(o->ca_bundle);
	a->eab_kid = xstrdup(o->eab_kid);
	a->preferred_chain = xstrdup(o->preferred_chain);
	a->profile = xstrdup(o->profile);
	if (a->base.name == NULL || a->directory == NULL || (o->webroot && !a->webroot) ||
	    (o->http_listen && !a->http_listen) || (o->dns_hook && !a->dns_hook) ||
	    (o->ca_bundle && !a->ca_bundle) || (o->eab_kid && !a->eab_kid) ||
	    (o->preferred_chain && !a->preferred_chain) || (o->profile && !a->profile))
		goto fail;
	if (o->n_contact > 0) {
		a->contact = calloc(o->n_contact, sizeof(char *));
		if (a->contact == NULL)
			goto fail;
		for (; a->n_contact < o->n_contact; a->n_contact++)
			if ((a->contact[a->n_contact] = strdup(o->contact[a->n_contact])) == NULL)
				goto fail;
	}
	a->http = cs_http_new(loop, &ho, err, errlen);
	if (a->http == NULL)
		goto fail_err;
	uv_timer_init(loop, &a->timer);
	a->timer.data = a;
	return &a->base;
fail:
	snprintf(err, errlen, "out of memory");
fail_err:
	/* Nothing was opened on the loop yet: free by hand. */
	a->closing = a->torn = true;
	a->open = 0;
	a->close_cb = NULL;
	cs_acme__maybe_free(a);
fail_host:
	host_ops->close(host, NULL, NULL);
	return NULL;
}

cs_issuer *cs_acme_issuer_new(uv_loop_t *loop, const char *name, const struct cs_acme_opts *o,
			      const char *state_dir, char *err, size_t errlen)
{
	void *host;

	if (check_opts(o, err, errlen) < 0)
		return NULL;
	host = cs_acme_host_local_new(loop, name, o, state_dir, err, errlen);
	if (host == NULL)
		return NULL;
	return cs_acme_issuer_new_hosted(loop, name, o, &cs_acme_host_local_ops, host, err,
					 errlen);
}
