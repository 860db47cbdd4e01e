/*
 * cs_acme_job - one job of the acme issuer from its first step to its end.
 *
 * A job is a chain of steps: each asynchronous operation (an HTTP request, a
 * timer, a call to the host: the account key, a signature, a challenge set
 * up or taken down) is started with the step to continue with, and
 * cs_acme__step() goes on unless the issuer is closing. This file owns the
 * timer and the plumbing of calls to the host (cs_acme_host.h) and
 * the end of a job: a failed job still undoes its challenges (token files,
 * responder entries, DNS records) before its callback runs, then the job is
 * freed and the next one started. It also holds the small helpers every
 * file of the issuer uses (the directory's URLs, the nonce pool, a
 * response's text).
 */
#include "cs_acme_int.h"

/* ---- small helpers ------------------------------------------------------ */

int64_t cs_acme__now_s(void)
{
	return (int64_t)time(NULL);
}

const char *cs_acme__dir_url(struct cs_acme *a, const char *key)
{
	return json_string_value(json_object_get(a->dir, key));
}

void cs_acme__resp_reset(struct resp *r)
{
	free(r->body);
	free(r->location);
	for (size_t i = 0; i < r->n_alts; i++)
		free(r->alts[i]);
	memset(r, 0, sizeof(*r));
}

void cs_acme__nonce_push(struct cs_acme *a, const char *n)
{
	char *d = strdup(n);

	if (d == NULL)
		return;
	if (a->n_nonces == NONCE_POOL) {
		free(a->nonces[0]);
		memmove(a->nonces, a->nonces + 1, (NONCE_POOL - 1) * sizeof(char *));
		a->n_nonces--;
	}
	a->nonces[a->n_nonces++] = d;
}

char *cs_acme__nonce_pop(struct cs_acme *a)
{
	return a->n_nonces > 0 ? a->nonces[--a->n_nonces] : NULL;
}

void cs_acme__nonces_clear(struct cs_acme *a)
{
	while (a->n_nonces > 0)
		free(a->nonces[--a->n_nonces]);
}

/* Trims trailing blanks from a body so that a problem document reads as one value. */
const char *cs_acme__body_text(struct resp *r)
{
	if (r->body == NULL)
		return "";
	while (r->len > 0 && (r->body[r->len - 1] == '\n' || r->body[r->len - 1] == '\r' ||
			      r->body[r->len - 1] == ' '))
		r->body[--r->len] = '\0';
	return r->body;
}

static const char *job_label(struct job *j)
{
	static const char *const kinds[] = { "issue", "revoke", "ari" };

	return j->cert_name != NULL ? j->cert_name : kinds[j->kind];
}

/* ---- finishing a job ---------------------------------------------------- */

static void chall_free(struct chall *c)
{
	free(c->url);
	free(c->token);
	free(c->keyauth);
	free(c->ident);
}

static void on_job_closed(uv_handle_t *h)
{
	struct job *j = h->data;
	struct cs_acme *a = j->a;

	free(j);
	assert(a->dying > 0);
	a->dying--;
	cs_acme__maybe_free(a);
}

/* Frees what the job holds; its memory goes once its timer is closed. */
void cs_acme__job_free(struct job *j)
{
	if (j == NULL)
		return;
	for (size_t i = 0; i < j->n_names; i++)
		free(j->names[i]);
	free(j->names);
	free(j->cert_name);
	free(j->csr64);
	free(j->replaces);
	free(j->resume);
	free(j->cert64);
	free(j->certid);
	free(j->order_url);
	free(j->finalize_url);
	free(j->cert_url);
	json_decref(j->authzs);
	for (size_t i = 0; i < j->n_ch; i++)
		chall_free(&j->ch[i]);
	free(j->ch);
	free(j->chain_pem);
	for (size_t i = 0; i < j->n_alts; i++)
		free(j->alts[i]);
	free(j->rq.url);
	free(j->rq.payload);
	cs_acme__resp_reset(&j->resp);
	free(j->host_text);
	EVP_PKEY_free(j->host_key);
	j->a->dying++;
	uv_close((uv_handle_t *)&j->timer, on_job_closed);
}

/* Parses a PEM chain into leaf and issuers; returns 0 or -1. */
int cs_acme__parse_chain(const char *pem, X509 **leaf, STACK_OF(X509) **chain)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x;

	*leaf = NULL;
	*chain = sk_X509_new_null();
	if (b == NULL || *chain == NULL)
		goto fail;
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		if (*leaf == NULL)
			*leaf = x;
		else if (!sk_X509_push(*chain, x)) {
			X509_free(x);
			goto fail;
		}
	}
	ERR_clear_error();
	BIO_free(b);
	if (*leaf == NULL)
		goto fail_nob;
	return 0;
fail:
	BIO_free(b);
fail_nob:
	X509_free(*leaf);
	sk_X509_pop_free(*chain, X509_free);
	*leaf = NULL;
	*chain = NULL;
	ERR_clear_error();
	return -1;
}

/* Runs the job's callback with its outcome, frees it and starts the next job. */
static void job_deliver(struct job *j)
{
	struct cs_acme *a = j->a;

	assert(a->n_running > 0);
	TAILQ_REMOVE(&a->running, j, link);
	a->n_running--;
	if (j->kind == JOB_ISSUE && j->status == 0 && a->limit < a->max_orders)
		a->limit++;
	if (j->kind == JOB_ISSUE) {
		struct cs_issue_result res = { .status = j->status, .retry_after = j->retry_after };
		X509 *leaf = NULL;
		STACK_OF(X509) *chain = NULL;
		snprintf(res.error, sizeof(res.error), "%s", j->error);
		if (res.status == 0 && cs_acme__parse_chain(j->chain_pem, &leaf, &chain) < 0) {
			res.status = -EPROTO;
			snprintf(res.error, sizeof(res.error),
				 "the CA sent no certificate chain in PEM");
		} else if (res.status == 0 && cs_issuer_result_set(&res, leaf, chain) < 0) {
			res.status = -ENOMEM;
			snprintf(res.error, sizeof(res.error), "out of memory");
		}
		X509_free(leaf);
		sk_X509_pop_free(chain, X509_free);
		if (res.status == 0)
			cs_notice("acme %s: %s: certificate issued", a->base.name, j->cert_name);
		else
			cs_err("acme %s: %s: %s", a->base.name, j->cert_name, res.error);
		j->issue_cb(j->arg, &res);
		cs_issuer_result_clear(&res);
	} else if (j->kind == JOB_REVOKE) {
		j->done_cb(j->arg, j->status, j->error);
	} else {
		j->ari_cb(j->arg, j->status, j->status == 0 ? &j->win : NULL, j->error);
	}
	cs_acme__job_free(j);
	/* The responder stays while orders run or wait, so that a burst binds the port once. */
	if (a->responder != NULL && TAILQ_EMPTY(&a->running) && TAILQ_EMPTY(&a->queue)) {
		cs_acme_http01_close(a->responder, NULL, NULL);
		a->responder = NULL;
	}
	cs_acme__run_next(a);
}

static void cleanup_next(struct job *j);

static void after_host_cleanup(struct job *j)
{
	struct chall *c = &j->ch[j->idx];

	if (j->host_rc != 0 && c->type == CS_ACME_DNS01)
		cs_warn("acme %s: %s: dns_hook del %s failed (%d)", j->a->base.name, job_label(j),
			c->ident, j->host_rc);
	else if (j->host_rc != 0)
		cs_warn("acme %s: %s", j->a->base.name, j->host_err);
	c->set_up = false;
	j->idx++;
	cleanup_next(j);
}

/* Undoes challenge j->ch[j->idx..] one after the other, then delivers. */
static void cleanup_next(struct job *j)
{
	struct cs_acme *a = j->a;

	while (j->idx < j->n_ch && !j->ch[j->idx].set_up)
		j->idx++;
	if (j->idx >= j->n_ch) {
		job_deliver(j);
		return;
	}
	struct chall *c = &j->ch[j->idx];
	if (c->by_host) {
		cs_acme__host_chall(j, c, false, after_host_cleanup);
	} else {
		if (a->responder != NULL)
			cs_acme_http01_remove(a->responder, c->token);
		c->set_up = false;
		j->idx++;
		cleanup_next(j);
	}
}

void cs_acme__job_end(struct job *j)
{
	j->cleaning = true;
	j->idx = 0;
	cleanup_next(j);
}

void cs_acme__job_fail(struct job *j, int status, const char *fmt, ...)
{
	va_list ap;

	if (j->cleaning)
		return;
	j->status = status;
	va_start(ap, fmt);
	vsnprintf(j->error, sizeof(j->error), fmt, ap);
	va_end(ap);
	cs_acme__job_end(j);
}

/* Continues with next, unless the issuer is closing. */
void cs_acme__step(struct job *j, step_fn next)
{
	if (j->cancelled && !j->cleaning) {
		cs_acme__job_fail(j, -ECANCELED, "cancelled: the issuer is closing");
		return;
	}
	next(j);
}

/* ---- the job's timer ------------------------------------------------ */

static void on_job_timer(uv_timer_t *t)
{
	struct job *j = t->data;

	if (!j->on_timer)
		return;
	j->on_timer = false;
	cs_acme__step(j, j->timer_next);
}

void cs_acme__wait_then(struct job *j, int64_t ms, step_fn next)
{
	j->on_timer = true;
	j->timer_next = next;
	uv_timer_start(&j->timer, on_job_timer, (uint64_t)(ms > 0 ? ms : 0), 0);
}

/* ---- calls to the host ------------------------------------------------- */

/* The host called back: goes on with host_next (even when cancelled, while cleaning up). */
static void host_done(struct job *j, int status, const char *error)
{
	assert(j->in_host);
	j->in_host = false;
	j->host_rc = status;
	snprintf(j->host_err, sizeof(j->host_err), "%s", error != NULL ? error : "");
	if (j->cleaning) {
		j->host_next(j);
		return;
	}
	cs_acme__step(j, j->host_next);
}

/* Marks j waiting for the host, which answers next. */
static void host_begin(struct job *j, step_fn next)
{
	j->in_host = true;
	j->host_next = next;
	j->host_rc = 0;
	j->host_err[0] = '\0';
	free(j->host_text);
	j->host_text = NULL;
}

/* The call returned rc: when it failed (no callback then), next runs at once with rc. */
static void host_started(struct job *j, int rc)
{
	if (rc >= 0)
		return;
	j->in_host = false;
	j->host_rc = rc;
	snprintf(j->host_err, sizeof(j->host_err), "the host refused the call: %s", strerror(-rc));
	j->host_next(j);
}

static void on_host_key(void *arg, int status, const struct cs_der *pub, bool existed,
			const char *error)
{
	struct job *j = arg;
	const unsigned char *p = pub != NULL ? pub->p : NULL;

	EVP_PKEY_free(j->host_key);
	j->host_key = NULL;
	if (status == 0 && (p == NULL ||
			    (j->host_key = d2i_PUBKEY(NULL, &p, (long)pub->n)) == NULL)) {
		ERR_clear_error();
		status = -EPROTO;
		error = "the host's answer is not a public key in DER";
	}
	j->host_existed = existed;
	host_done(j, status, error);
}

static void on_host_text(void *arg, int status, const char *text, const char *error)
{
	struct job *j = arg;

	if (status == 0 && (text == NULL || (j->host_text = strdup(text)) == NULL)) {
		status = -ENOMEM;
		error = "out of memory";
	}
	host_done(j, status, error);
}

static void on_host_done(void *arg, int status, const char *error)
{
	host_done(arg, status, error);
}

/* Asks the host for the account key's public half: j->host_key, j->host_existed. */
void cs_acme__host_key(struct job *j, step_fn next)
{
	struct cs_acme *a = j->a;

	host_begin(j, next);
	host_started(j, a->host_ops->account_key(a->host, j->arg, on_host_key, j));
}

/* Asks the host to sign r: the JWS in j->host_text. */
void cs_acme__host_sign(struct job *j, const struct cs_acme_host_sign *r, step_fn next)
{
	struct cs_acme *a = j->a;

	host_begin(j, next);
	host_started(j, a->host_ops->sign(a->host, j->arg, r, on_host_text, j));
}

/* Asks the host for the externalAccountBinding object for url: in j->host_text. */
void cs_acme__host_eab(struct job *j, const char *url, step_fn next)
{
	struct cs_acme *a = j->a;

	host_begin(j, next);
	host_started(j, a->host_ops->eab(a->host, j->arg, url, on_host_text, j));
}

/* Asks the host to set c up (a token file, a DNS record) or to take it down. */
void cs_acme__host_chall(struct job *j, struct chall *c, bool set, step_fn next)
{
	struct cs_acme *a = j->a;
	struct cs_acme_host_chall hc = {
		.type = c->type,
		.ident = c->ident,
		.token = c->token,
		.cert_name = j->cert_name != NULL ? j->cert_name : "",
	};

	host_begin(j, next);
	host_started(j, a->host_ops->challenge(a->host, j->arg, &hc, set, on_host_done, j));
}
