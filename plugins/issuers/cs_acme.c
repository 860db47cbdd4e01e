/*
 * cs_acme - the acme issuer. See cs_acme.h for what it offers.
 *
 * One issuer owns: a cs_http client (trust = ca_bundle), the cached
 * directory, the account key and its URL (kid), a pool of fresh nonces, the
 * built-in http-01 responder while orders run or wait, a FIFO of jobs
 * (issue, revoke, renewal info, key rollover) waiting to start and the list
 * of jobs running. Up to max_orders jobs run at once, each with its own
 * uv_timer_t, but only once the account is known (the directory, for
 * renewal information): until then one job runs, so that the account key is
 * made and the account created once. A key
 * rollover runs alone. When the CA answers 429 or 503, the issuer drops to
 * one job at a time (climbing back by one per certificate issued) and starts
 * no order before the Retry-After it gave has passed; a longer pause than
 * RETRY_AFTER_WAIT_MAX fails the waiting orders at once with that
 * Retry-After, for the scheduler.
 *
 * Polling: the order is polled POLL_FIRST_MS after the challenges were
 * answered (at once when the CA said they are valid) and again POLL_FIRST_MS
 * after finalize, then at twice the previous interval up to POLL_MAX_MS, or
 * as the CA's Retry-After says.
 *
 * A job is a chain of steps: each asynchronous operation (an HTTP request, a
 * timer, work on the thread pool, a hook process) is started with the step to
 * continue with. Every signed request goes through send_rq(), which takes a
 * nonce from the pool (or fetches one), signs, and on the answer keeps the
 * Replay-Nonce, resends after badNonce (up to 20 times), waits out a short
 * Retry-After on 429/503, and otherwise reports the problem document
 * verbatim. A failed job still undoes its challenges (token files, responder
 * entries, DNS records) before its callback runs.
 *
 * Closing cancels queued jobs at once and the running ones at their next
 * step (a hook process or work on the pool is let finish first); the memory
 * goes when every job's timer, the issuer's timer, the HTTP client and the
 * responder have been closed.
 */
#include "cs_acme.h"
#include "cs_acme_hook.h"
#include "cs_acme_http01.h"
#include "cs_acme_jws.h"
#include "cs_atomic.h"
#include "cs_b64url.h"
#include "cs_http.h"
#include "cs_log.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NONCE_POOL 8
#define BAD_NONCE_MAX 20 /* at 50% rejection (Pebble's test mode), 10 failed one request in 2000 */
#define RETRY_AFTER_WAIT_MAX 60 /* longer waits are handed back to the scheduler */
#define HOOK_TIMEOUT_MS (300 * 1000)
#define MAX_ALTS 8
#define POLL_FIRST_MS 20
#define POLL_MAX_MS 8000
#define MAX_ORDERS_DEFAULT 4
#define PB "urn:ietf:params:acme:error:"

enum job_kind { JOB_ISSUE, JOB_REVOKE, JOB_ARI, JOB_ROLLOVER };

struct chall {
	enum cs_acme_challenge type;
	char *url, *token, *keyauth, *ident, *file;
	bool set_up;
};

struct resp {
	long code;
	char *body;
	size_t len;
	char *location;
	int64_t retry_after;
	char *alts[MAX_ALTS];
	size_t n_alts;
};

struct job;
typedef void (*step_fn)(struct job *j);

struct job {
	struct cs_acme *a;
	TAILQ_ENTRY(job) link; /* in a->queue, then in a->running */
	uv_timer_t timer;      /* polls and waits; the job's memory goes in its close callback */
	enum job_kind kind;
	/* issue */
	char *cert_name;
	char **names;
	size_t n_names;
	char *csr64;
	char *replaces; /* ARI certID of req->replaces */
	cs_issue_cb issue_cb;
	/* revoke */
	char *cert64;
	int reason;
	cs_acme_done_cb done_cb;
	/* renewal info */
	char *certid;
	cs_acme_ari_cb ari_cb;
	void *arg;

	/* order progress */
	char *order_url, *finalize_url, *cert_url;
	json_t *authzs;
	size_t idx;
	struct chall *ch;
	size_t n_ch;
	bool finalized, replaces_dropped, account_retried, validating;
	int64_t poll_started, poll_delay_ms;
	char *chain_pem;
	char *alts[MAX_ALTS];
	size_t n_alts, alt_idx;
	struct cs_acme_window win;

	/* the request in flight */
	struct {
		const char *method; /* NULL: a signed POST */
		char *url;
		char *payload; /* NULL: POST-as-GET */
		const char *accept;
		bool jwk, accept_errors;
		int bad_nonce, retries;
		step_fn next;
	} rq;
	struct resp resp;
	cs_http_req *inflight;
	step_fn timer_next;
	bool on_timer, in_work, cancelled, cleaning;

	/* work queue */
	uv_work_t work;
	void (*work_fn)(struct job *j);
	step_fn work_next;
	int work_rc;
	char work_err[512];
	EVP_PKEY *work_key;
	bool work_key_existed;
	struct chall *work_ch;
	char *new_key_path; /* key rollover: account.key.new */

	/* hook */
	void (*hook_next)(struct job *j, int64_t exit_status);

	int status;
	int64_t retry_after;
	char error[1024];
};

struct cs_acme {
	cs_issuer base;
	char *directory, *webroot, *http_listen, *dns_hook, *ca_bundle, *eab_kid, *eab_hmac_key,
		*preferred_chain, *profile;
	char **contact;
	size_t n_contact;
	enum cs_acme_challenge challenge;
	enum cs_keytype account_keytype;
	int64_t poll_timeout_s;
	char *acct_dir, *key_path;

	cs_http *http;
	uv_timer_t timer;
	json_t *dir;
	EVP_PKEY *key;
	bool key_existed;
	char *thumb;
	char *kid;
	char *nonces[NONCE_POOL];
	size_t n_nonces;
	cs_acme_http01 *responder;

	TAILQ_HEAD(job_list, job) queue, running;
	unsigned n_running;  /* jobs in running */
	unsigned max_orders; /* jobs that may run at once */
	unsigned limit;      /* as many now: 1 after a 429 or 503, climbing back to max_orders */
	int64_t paused_until; /* no order starts before (a CA's Retry-After), in s */
	bool exclusive;      /* a key rollover runs: nothing else starts */
	unsigned dying;      /* job timers being closed */
	bool closing, torn;
	int open; /* timer, http client, responder not yet closed */
	void (*close_cb)(void *);
	void *close_arg;
};

static const struct cs_issuer_ops acme_ops;

static void cs_acme__job_fail(struct job *j, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void cs_acme__send_rq(struct job *j);
static void cs_acme__run_next(struct cs_acme *a);
static void cs_acme__maybe_free(struct cs_acme *a);
static void cs_acme__job_restart(struct job *j);

/* ---- small helpers ------------------------------------------------------ */

static int64_t cs_acme__now_s(void)
{
	return (int64_t)time(NULL);
}

static char *xstrdup(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

static const char *cs_acme__dir_url(struct cs_acme *a, const char *key)
{
	return json_string_value(json_object_get(a->dir, key));
}

static void cs_acme__resp_reset(struct resp *r)
{
	free(r->body);
	free(r->location);
	for (size_t i = 0; i < r->n_alts; i++)
		free(r->alts[i]);
	memset(r, 0, sizeof(*r));
}

static void cs_acme__nonce_push(struct cs_acme *a, const char *n)
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

static char *cs_acme__nonce_pop(struct cs_acme *a)
{
	return a->n_nonces > 0 ? a->nonces[--a->n_nonces] : NULL;
}

static void cs_acme__nonces_clear(struct cs_acme *a)
{
	while (a->n_nonces > 0)
		free(a->nonces[--a->n_nonces]);
}

/* Trims trailing blanks from a body so that a problem document reads as one value. */
static const char *cs_acme__body_text(struct resp *r)
{
	if (r->body == NULL)
		return "";
	while (r->len > 0 && (r->body[r->len - 1] == '\n' || r->body[r->len - 1] == '\r' ||
			      r->body[r->len - 1] == ' '))
		r->body[--r->len] = '\0';
	return r->body;
}

static bool token_ok(const char *t)
{
	if (t == NULL || *t == '\0' || strlen(t) > 256)
		return false;
	for (; *t; t++)
		if (!((*t >= 'A' && *t <= 'Z') || (*t >= 'a' && *t <= 'z') ||
		      (*t >= '0' && *t <= '9') || *t == '-' || *t == '_'))
			return false;
	return true;
}

static const char *job_label(struct job *j)
{
	static const char *const kinds[] = { "issue", "revoke", "ari", "key rollover" };

	return j->cert_name != NULL ? j->cert_name : kinds[j->kind];
}

/* ---- finishing a job ---------------------------------------------------- */

static void chall_free(struct chall *c)
{
	free(c->url);
	free(c->token);
	free(c->keyauth);
	free(c->ident);
	free(c->file);
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
static void cs_acme__job_free(struct job *j)
{
	if (j == NULL)
		return;
	for (size_t i = 0; i < j->n_names; i++)
		free(j->names[i]);
	free(j->names);
	free(j->cert_name);
	free(j->csr64);
	free(j->replaces);
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
	EVP_PKEY_free(j->work_key);
	free(j->new_key_path);
	j->a->dying++;
	uv_close((uv_handle_t *)&j->timer, on_job_closed);
}

/* Parses a PEM chain into leaf and issuers; returns 0 or -1. */
static int cs_acme__parse_chain(const char *pem, X509 **leaf, STACK_OF(X509) **chain)
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
	if (j->kind == JOB_ROLLOVER)
		a->exclusive = false;
	if (j->kind == JOB_ISSUE && j->status == 0 && a->limit < a->max_orders)
		a->limit++;
	if (j->kind == JOB_ISSUE) {
		struct cs_issue_result res = { .status = j->status, .retry_after = j->retry_after };
		snprintf(res.error, sizeof(res.error), "%s", j->error);
		if (res.status == 0 && cs_acme__parse_chain(j->chain_pem, &res.leaf, &res.chain) < 0) {
			res.status = -EPROTO;
			snprintf(res.error, sizeof(res.error),
				 "the CA sent no certificate chain in PEM");
		}
		if (res.status == 0)
			cs_notice("acme %s: %s: certificate issued", a->base.name, j->cert_name);
		else
			cs_err("acme %s: %s: %s", a->base.name, j->cert_name, res.error);
		j->issue_cb(&res, j->arg);
	} else if (j->kind == JOB_REVOKE || j->kind == JOB_ROLLOVER) {
		j->done_cb(j->status, j->error, j->arg);
	} else {
		j->ari_cb(j->status, j->status == 0 ? &j->win : NULL, j->error, j->arg);
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

static void after_cleanup_hook(struct job *j, int64_t st)
{
	struct chall *c = &j->ch[j->idx];

	if (st != 0)
		cs_warn("acme %s: %s: dns_hook del %s failed (%lld)", j->a->base.name,
			job_label(j), c->ident, (long long)st);
	c->set_up = false;
	j->idx++;
	cleanup_next(j);
}

static void cs_acme__run_hook(struct job *j, const char *verb, struct chall *c,
		     void (*next)(struct job *, int64_t));
static void cs_acme__run_work(struct job *j, void (*fn)(struct job *), step_fn next);

static void work_unlink(struct job *j)
{
	if (unlink(j->work_ch->file) < 0 && errno != ENOENT)
		snprintf(j->work_err, sizeof(j->work_err), "%s: cannot remove: %s",
			 j->work_ch->file, strerror(errno));
}

static void after_unlink(struct job *j)
{
	if (j->work_err[0] != '\0')
		cs_warn("acme %s: %s", j->a->base.name, j->work_err);
	j->ch[j->idx].set_up = false;
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
	if (c->type == CS_ACME_DNS01) {
		cs_acme__run_hook(j, "del", c, after_cleanup_hook);
	} else if (c->file != NULL) {
		j->work_ch = c;
		cs_acme__run_work(j, work_unlink, after_unlink);
	} else {
		if (a->responder != NULL)
			cs_acme_http01_remove(a->responder, c->token);
		c->set_up = false;
		j->idx++;
		cleanup_next(j);
	}
}

static void cs_acme__job_end(struct job *j)
{
	j->cleaning = true;
	j->idx = 0;
	cleanup_next(j);
}

static void cs_acme__job_fail(struct job *j, int status, const char *fmt, ...)
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
static void cs_acme__step(struct job *j, step_fn next)
{
	if (j->cancelled && !j->cleaning) {
		cs_acme__job_fail(j, -ECANCELED, "cancelled: the issuer is closing");
		return;
	}
	next(j);
}

/* ---- timer, work queue, hooks ----------------------------------------- */

static void on_job_timer(uv_timer_t *t)
{
	struct job *j = t->data;

	if (!j->on_timer)
		return;
	j->on_timer = false;
	cs_acme__step(j, j->timer_next);
}

static void cs_acme__wait_then(struct job *j, int64_t ms, step_fn next)
{
	j->on_timer = true;
	j->timer_next = next;
	uv_timer_start(&j->timer, on_job_timer, (uint64_t)(ms > 0 ? ms : 0), 0);
}

static void work_cb(uv_work_t *w)
{
	struct job *j = w->data;

	j->work_fn(j);
}

static void after_work_cb(uv_work_t *w, int status)
{
	struct job *j = w->data;

	j->in_work = false;
	if (j->cleaning) {
		j->work_next(j);
		return;
	}
	cs_acme__step(j, j->work_next);
}

static void cs_acme__run_work(struct job *j, void (*fn)(struct job *), step_fn next)
{
	int rc;

	j->work_fn = fn;
	j->work_next = next;
	j->work_err[0] = '\0';
	j->work_rc = 0;
	j->work.data = j;
	j->in_work = true;
	rc = uv_queue_work(j->a->base.loop, &j->work, work_cb, after_work_cb);
	if (rc < 0) {
		j->in_work = false;
		snprintf(j->work_err, sizeof(j->work_err), "cannot queue work: %s",
			 uv_strerror(rc));
		j->work_rc = rc;
		next(j);
	}
}

static void on_hook_done(int64_t status, void *arg)
{
	struct job *j = arg;

	j->hook_next(j, status);
}

/* Runs dns_hook VERB NAME VALUE; next gets its exit status (-errno when it did not start). */
static void cs_acme__run_hook(struct job *j, const char *verb, struct chall *c,
		     void (*next)(struct job *, int64_t))
{
	struct cs_acme *a = j->a;
	unsigned char md[SHA256_DIGEST_LENGTH];
	char *value, *name = NULL, **env = NULL;
	int rc = UV_ENOMEM;

	SHA256((const unsigned char *)c->keyauth, strlen(c->keyauth), md);
	value = cs_b64url_encode(md, sizeof(md));
	if (value == NULL || asprintf(&name, "_acme-challenge.%s", c->ident) < 0) {
		name = NULL;
		goto fail;
	}
	const char *vars[][2] = {
		{ "METHOD", verb },	 { "RECORD", name },
		{ "VALUE", value },	 { "IDENTIFIER", c->ident },
		{ "CERT", j->cert_name ? j->cert_name : "" }, { "ISSUER", a->base.name },
	};
	env = cs_acme_hook_env(vars, sizeof(vars) / sizeof(vars[0]));
	if (env == NULL)
		goto fail;
	char *const args[] = { a->dns_hook, (char *)verb, name, value, NULL };
	j->hook_next = next;
	rc = cs_acme_hook_run(a->base.loop, args, env, HOOK_TIMEOUT_MS, on_hook_done, j);
	if (rc < 0)
		goto fail;
	cs_info("acme %s: %s: dns_hook %s %s", a->base.name, job_label(j), verb, name);
	cs_acme_hook_env_free(env);
	free(value);
	free(name);
	return;
fail:
	cs_acme_hook_env_free(env);
	free(value);
	free(name);
	cs_err("acme %s: dns_hook %s cannot run: %s", a->base.name, a->dns_hook, uv_strerror(rc));
	next(j, rc);
}

/* ---- requests ----------------------------------------------------------- */

static void on_http(const struct cs_http_response *r, void *arg)
{
	struct job *j = arg;
	struct cs_acme *a = j->a;
	char buf[2048], type[256];
	struct resp *rs = &j->resp;

	j->inflight = NULL;
	if (r->status < 0) {
		/* The server may be gone: start afresh next time (directory, nonces). */
		cs_acme__nonces_clear(a);
		json_decref(a->dir);
		a->dir = NULL;
		cs_acme__job_fail(j, r->status, "%s %s: %s", j->rq.method ? j->rq.method : "POST",
			 j->rq.url, r->error);
		return;
	}
	if (cs_http_header(r, "Replay-Nonce", 0, buf, sizeof(buf)) != NULL && buf[0] != '\0')
		cs_acme__nonce_push(a, buf);
	cs_acme__resp_reset(rs);
	rs->code = r->code;
	rs->body = malloc(r->len + 1);
	if (rs->body == NULL) {
		cs_acme__job_fail(j, -ENOMEM, "out of memory");
		return;
	}
	memcpy(rs->body, r->body, r->len);
	rs->body[r->len] = '\0';
	rs->len = r->len;
	if (cs_http_header(r, "Location", 0, buf, sizeof(buf)) != NULL)
		rs->location = strdup(buf);
	if (cs_http_header(r, "Retry-After", 0, buf, sizeof(buf)) != NULL) {
		int64_t ra = cs_acme_msg_retry_after(buf, cs_acme__now_s());
		rs->retry_after = ra > 0 ? ra : 0;
	}
	for (size_t i = 0; cs_http_header(r, "Link", i, buf, sizeof(buf)) != NULL; i++)
		rs->n_alts += cs_acme_msg_links(buf, "alternate", rs->alts + rs->n_alts,
						MAX_ALTS - rs->n_alts);
	if (rs->code == 429 || rs->code == 503) {
		/* The CA is at its limit: one order at a time, none new before Retry-After. */
		if (a->limit > 1)
			cs_notice("acme %s: HTTP %ld from the CA: one order at a time for now",
				  a->base.name, rs->code);
		a->limit = 1;
		if (rs->retry_after > 0 && cs_acme__now_s() + rs->retry_after > a->paused_until)
			a->paused_until = cs_acme__now_s() + rs->retry_after;
	}

	if (rs->code < 400 || j->rq.method != NULL) {
		if (rs->code >= 400 && !j->rq.accept_errors) {
			j->retry_after = rs->retry_after;
			cs_acme__job_fail(j, -EPROTO, "%s %s: HTTP %ld: %s", j->rq.method, j->rq.url,
				 rs->code, cs_acme__body_text(rs));
			return;
		}
		cs_acme__step(j, j->rq.next);
		return;
	}
	type[0] = '\0';
	cs_acme_msg_problem(rs->body, rs->len, type, sizeof(type));
	if (strcmp(type, PB "badNonce") == 0 && ++j->rq.bad_nonce <= BAD_NONCE_MAX) {
		cs_debug("acme %s: badNonce from %s, retrying (%d)", a->base.name, j->rq.url,
			 j->rq.bad_nonce);
		cs_acme__step(j, cs_acme__send_rq);
		return;
	}
	if ((rs->code == 429 || rs->code == 503) && rs->retry_after > 0 &&
	    rs->retry_after <= RETRY_AFTER_WAIT_MAX && ++j->rq.retries <= 3) {
		cs_info("acme %s: %s: HTTP %ld, retrying in %lld s as the CA asks",
			a->base.name, j->rq.url, rs->code, (long long)rs->retry_after);
		cs_acme__wait_then(j, rs->retry_after * 1000, cs_acme__send_rq);
		return;
	}
	if (strcmp(type, PB "accountDoesNotExist") == 0 && !j->rq.jwk && !j->account_retried) {
		/* The CA forgot the account (a test CA restarted, say): register again. */
		cs_notice("acme %s: the CA does not know account %s; registering again",
			  a->base.name, a->kid ? a->kid : "");
		free(a->kid);
		a->kid = NULL;
		j->account_retried = true;
		cs_acme__step(j, cs_acme__job_restart);
		return;
	}
	j->retry_after = rs->retry_after;
	if (rs->code >= 400 && j->rq.accept_errors) {
		cs_acme__step(j, j->rq.next);
		return;
	}
	cs_acme__job_fail(j, rs->code == 429 || rs->code == 503 ? -EAGAIN : -EPROTO,
		 "POST %s: HTTP %ld: %s", j->rq.url, rs->code, cs_acme__body_text(rs));
}

static void on_nonce(const struct cs_http_response *r, void *arg)
{
	struct job *j = arg;
	struct cs_acme *a = j->a;
	char buf[512];

	j->inflight = NULL;
	if (r->status < 0) {
		json_decref(a->dir);
		a->dir = NULL;
		cs_acme__job_fail(j, r->status, "HEAD %s: %s", cs_acme__dir_url(a, "newNonce"), r->error);
		return;
	}
	if (cs_http_header(r, "Replay-Nonce", 0, buf, sizeof(buf)) == NULL || buf[0] == '\0') {
		cs_acme__job_fail(j, -EPROTO, "HEAD %s: HTTP %ld without a Replay-Nonce",
			 cs_acme__dir_url(a, "newNonce"), r->code);
		return;
	}
	cs_acme__nonce_push(a, buf);
	cs_acme__step(j, cs_acme__send_rq);
}

/* Sends j->rq: a plain GET/HEAD, or a JWS POST with a nonce from the pool. */
static void cs_acme__send_rq(struct job *j)
{
	struct cs_acme *a = j->a;
	struct cs_http_request hr = { .url = j->rq.url, .accept = j->rq.accept };
	char err[512] = "", *nonce = NULL, *jws = NULL;
	int rc;

	if (j->rq.method != NULL) {
		hr.method = j->rq.method;
		rc = cs_http_send(a->http, &hr, on_http, j, &j->inflight);
		goto sent;
	}
	nonce = cs_acme__nonce_pop(a);
	if (nonce == NULL) {
		struct cs_http_request nr = { .method = "HEAD", .url = cs_acme__dir_url(a, "newNonce") };
		if (nr.url == NULL) {
			cs_acme__job_fail(j, -EPROTO, "the directory has no newNonce");
			return;
		}
		rc = cs_http_send(a->http, &nr, on_nonce, j, &j->inflight);
		goto sent;
	}
	jws = cs_acme_jws_sign(a->key, j->rq.jwk ? NULL : a->kid, nonce, j->rq.url, j->rq.payload,
			       err, sizeof(err));
	free(nonce);
	if (jws == NULL) {
		cs_acme__job_fail(j, -EINVAL, "%s", err);
		return;
	}
	hr.method = "POST";
	hr.content_type = "application/jose+json";
	hr.body = jws;
	hr.len = strlen(jws);
	rc = cs_http_send(a->http, &hr, on_http, j, &j->inflight);
	free(jws);
sent:
	if (rc < 0)
		cs_acme__job_fail(j, rc, "%s: cannot send: %s", j->rq.url, strerror(-rc));
}

#define RQ_JWK 0x1           /* sign with the JWK (newAccount), not the kid */
#define RQ_ACCEPT_ERRORS 0x2 /* hand 4xx/5xx answers to next rather than failing */
#define RQ_PEM 0x4           /* Accept: application/pem-certificate-chain */

/*
 * Starts a request: method NULL for a signed POST (payload NULL: POST-as-GET;
 * the job takes payload). next runs with the answer in j->resp.
 */
static void cs_acme__request(struct job *j, const char *method, const char *url, char *payload,
		    unsigned flags, step_fn next)
{
	free(j->rq.url);
	free(j->rq.payload);
	memset(&j->rq, 0, sizeof(j->rq));
	j->rq.method = method;
	j->rq.jwk = flags & RQ_JWK;
	j->rq.accept_errors = flags & RQ_ACCEPT_ERRORS;
	j->rq.accept = flags & RQ_PEM ? "application/pem-certificate-chain" : NULL;
	j->rq.url = url != NULL ? strdup(url) : NULL;
	j->rq.payload = payload;
	j->rq.next = next;
	if (url == NULL) {
		/* Another job dropped the directory after a transport error. */
		cs_acme__job_fail(j, -EPROTO, "the ACME directory is gone (a request to the CA failed)");
		return;
	}
	if (j->rq.url == NULL) {
		cs_acme__job_fail(j, -ENOMEM, "out of memory");
		return;
	}
	cs_acme__send_rq(j);
}

/* Parses the response body as a JSON object (caller decrefs), or fails the job. */
static json_t *cs_acme__resp_json(struct job *j)
{
	json_error_t je;
	json_t *o = json_loadb(j->resp.body, j->resp.len, 0, &je);

	if (!json_is_object(o)) {
		json_decref(o);
		cs_acme__job_fail(j, -EPROTO, "%s: the answer is not a JSON object: %.200s", j->rq.url,
			 cs_acme__body_text(&j->resp));
		return NULL;
	}
	return o;
}

/* ---- directory, account key, account ----------------------------------- */

static void cs_acme__job_start(struct job *j);
static void cs_acme__rollover(struct job *j);
static int write_key(EVP_PKEY *key, const char *path, char *err, size_t errlen);

static void cs_acme__on_directory(struct job *j)
{
	struct cs_acme *a = j->a;
	json_t *d = cs_acme__resp_json(j);

	if (d == NULL)
		return;
	if (!json_is_string(json_object_get(d, "newNonce")) ||
	    !json_is_string(json_object_get(d, "newAccount")) ||
	    !json_is_string(json_object_get(d, "newOrder"))) {
		json_decref(d);
		cs_acme__job_fail(j, -EPROTO, "%s: not an ACME directory (newNonce, newAccount, newOrder)",
			 a->directory);
		return;
	}
	json_decref(a->dir);
	a->dir = d;
	cs_debug("acme %s: directory %s read%s", a->base.name, a->directory,
		 cs_acme__dir_url(a, "renewalInfo") ? " (with renewalInfo)" : "");
	cs_acme__job_start(j);
}

static void cs_acme__work_key(struct job *j)
{
	struct cs_acme *a = j->a;
	FILE *f;
	struct stat sb;

	if (mkdir(a->acct_dir, 0700) < 0 && errno != EEXIST) {
		/* STATE_DIR/acme first, then STATE_DIR/acme/NAME. */
		char *parent = strdup(a->acct_dir), *slash;
		if (parent != NULL && (slash = strrchr(parent, '/')) != NULL) {
			*slash = '\0';
			mkdir(parent, 0700);
		}
		free(parent);
		if (mkdir(a->acct_dir, 0700) < 0 && errno != EEXIST) {
			j->work_rc = -errno;
			snprintf(j->work_err, sizeof(j->work_err), "%s: cannot create: %s",
				 a->acct_dir, strerror(errno));
			return;
		}
	}
	f = fopen(a->key_path, "re");
	if (f != NULL) {
		if (fstat(fileno(f), &sb) == 0 && (sb.st_mode & 077) != 0)
			cs_warn("acme %s: %s is readable by others (mode %o)", a->base.name,
				a->key_path, (unsigned)(sb.st_mode & 0777));
		j->work_key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
		if (j->work_key == NULL || cs_acme_jws_alg(j->work_key) == NULL) {
			j->work_rc = -EINVAL;
			snprintf(j->work_err, sizeof(j->work_err),
				 "%s: not a P-256, P-384 or RSA private key in PEM", a->key_path);
			cs_log_ssl_errors(j->work_err, sizeof(j->work_err));
			return;
		}
		j->work_key_existed = true;
		return;
	}
	if (errno != ENOENT) {
		j->work_rc = -errno;
		snprintf(j->work_err, sizeof(j->work_err), "%s: cannot open: %s", a->key_path,
			 strerror(errno));
		return;
	}
	j->work_key = cs_key_generate(a->account_keytype, j->work_err, sizeof(j->work_err));
	if (j->work_key == NULL) {
		j->work_rc = -EINVAL;
		return;
	}
	j->work_rc = write_key(j->work_key, a->key_path, j->work_err, sizeof(j->work_err));
}

static void cs_acme__after_key(struct job *j)
{
	struct cs_acme *a = j->a;

	if (j->work_rc < 0) {
		cs_acme__job_fail(j, j->work_rc, "account key: %s", j->work_err);
		return;
	}
	a->key = j->work_key;
	j->work_key = NULL;
	a->key_existed = j->work_key_existed;
	a->thumb = cs_acme_jws_thumbprint(a->key);
	if (a->thumb == NULL) {
		cs_acme__job_fail(j, -ENOMEM, "cannot compute the account key's thumbprint");
		return;
	}
	if (!a->key_existed)
		cs_notice("acme %s: new account key %s (%s)", a->base.name, a->key_path,
			  cs_acme_jws_alg(a->key));
	cs_acme__job_start(j);
}

static void on_account(struct job *j)
{
	struct cs_acme *a = j->a;
	char type[256] = "";

	if (j->resp.code >= 400) {
		cs_acme_msg_problem(j->resp.body, j->resp.len, type, sizeof(type));
		if (a->key_existed && strcmp(type, PB "accountDoesNotExist") == 0) {
			/* The key is ours but has no account at this CA yet. */
			a->key_existed = false;
			cs_acme__job_start(j);
			return;
		}
		cs_acme__job_fail(j, -EPROTO, "POST %s: HTTP %ld: %s", j->rq.url, j->resp.code,
			 cs_acme__body_text(&j->resp));
		return;
	}
	if (j->resp.location == NULL) {
		cs_acme__job_fail(j, -EPROTO, "POST %s: no Location for the account", j->rq.url);
		return;
	}
	free(a->kid); /* two jobs may have registered again after accountDoesNotExist */
	a->kid = strdup(j->resp.location);
	if (a->kid == NULL) {
		cs_acme__job_fail(j, -ENOMEM, "out of memory");
		return;
	}
	cs_notice("acme %s: account %s (%s)", a->base.name, a->kid,
		  j->resp.code == 201 ? "created" : "found");
	cs_acme__job_start(j);
}

static void cs_acme__new_account(struct job *j)
{
	struct cs_acme *a = j->a;
	const char *url = cs_acme__dir_url(a, "newAccount");
	json_t *p = json_object();
	char err[512] = "", *payload;

	if (p == NULL)
		goto nomem;
	if (a->key_existed) {
		json_object_set_new(p, "onlyReturnExisting", json_true());
	} else {
		json_t *contact = json_array(), *meta = json_object_get(a->dir, "meta");
		for (size_t i = 0; i < a->n_contact; i++)
			json_array_append_new(contact, json_string(a->contact[i]));
		if (a->n_contact > 0)
			json_object_set(p, "contact", contact);
		json_decref(contact);
		if (json_object_get(meta, "termsOfService") != NULL)
			json_object_set_new(p, "termsOfServiceAgreed", json_true());
		if (a->eab_kid != NULL) {
			json_t *eab = cs_acme_jws_eab(a->eab_kid, a->eab_hmac_key, a->key, url, err,
						      sizeof(err));
			if (eab == NULL) {
				json_decref(p);
				cs_acme__job_fail(j, -EINVAL, "external account binding: %s", err);
				return;
			}
			json_object_set_new(p, "externalAccountBinding", eab);
		} else if (json_is_true(json_object_get(meta, "externalAccountRequired"))) {
			json_decref(p);
			cs_acme__job_fail(j, -EINVAL,
				 "the CA requires external account binding: set eab_kid and "
				 "eab_hmac_key");
			return;
		}
	}
	payload = json_dumps(p, JSON_COMPACT);
	json_decref(p);
	if (payload == NULL)
		goto nomem;
	cs_acme__request(j, NULL, url, payload, RQ_JWK | RQ_ACCEPT_ERRORS, on_account);
	return;
nomem:
	cs_acme__job_fail(j, -ENOMEM, "out of memory");
}

/* ---- orders ------------------------------------------------------------- */

static void cs_acme__new_order(struct job *j);
static void authz_next(struct job *j);
static void poll_order(struct job *j);
static void finalize(struct job *j);
static void download(struct job *j);

static int take_order(struct job *j, json_t *o)
{
	const char *fin = json_string_value(json_object_get(o, "finalize"));
	const char *cert = json_string_value(json_object_get(o, "certificate"));
	json_t *az = json_object_get(o, "authorizations");

	if (fin != NULL && j->finalize_url == NULL)
		j->finalize_url = strdup(fin);
	if (cert != NULL && j->cert_url == NULL)
		j->cert_url = strdup(cert);
	if (json_is_array(az) && j->authzs == NULL)
		j->authzs = json_incref(az);
	if (j->finalize_url == NULL || j->authzs == NULL) {
		cs_acme__job_fail(j, -EPROTO, "%s: an order without finalize or authorizations: %.300s",
			 j->rq.url, cs_acme__body_text(&j->resp));
		return -1;
	}
	return 0;
}

/* Polls the order after Retry-After, or the next interval, which then doubles. */
static void poll_later(struct job *j)
{
	int64_t ms = j->resp.retry_after > 0 ? j->resp.retry_after * 1000 : j->poll_delay_ms;

	if (j->resp.retry_after <= 0)
		j->poll_delay_ms = j->poll_delay_ms * 2 > POLL_MAX_MS ? POLL_MAX_MS
								      : j->poll_delay_ms * 2;
	cs_acme__wait_then(j, ms, poll_order);
}

/* Goes on from an order object according to its status. */
static void order_status(struct job *j, json_t *o)
{
	const char *st = json_string_value(json_object_get(o, "status"));

	if (take_order(j, o) < 0)
		return;
	cs_info("acme %s: %s: order %s is %s", j->a->base.name, j->cert_name, j->order_url,
		st ? st : "(no status)");
	if (st != NULL && strcmp(st, "valid") == 0) {
		if (j->cert_url == NULL) {
			cs_acme__job_fail(j, -EPROTO, "%s: a valid order without a certificate URL",
				 j->order_url);
			return;
		}
		download(j);
	} else if (st != NULL && strcmp(st, "ready") == 0 && !j->finalized) {
		finalize(j);
	} else if (st != NULL && (strcmp(st, "pending") == 0 || strcmp(st, "ready") == 0 ||
				  strcmp(st, "processing") == 0)) {
		if (cs_acme__now_s() - j->poll_started > j->a->poll_timeout_s) {
			cs_acme__job_fail(j, -ETIMEDOUT, "order %s still %s after %lld s", j->order_url, st,
				 (long long)j->a->poll_timeout_s);
			return;
		}
		poll_later(j);
	} else {
		/* invalid: the reason is in the order's or a challenge's error, reported verbatim. */
		cs_acme__job_fail(j, -EPROTO, "order %s is %s: %s", j->order_url, st ? st : "(no status)",
			 cs_acme__body_text(&j->resp));
	}
}

static void on_order(struct job *j)
{
	char type[256] = "";
	json_t *o;

	if (j->resp.code >= 400) {
		cs_acme_msg_problem(j->resp.body, j->resp.len, type, sizeof(type));
		if (j->replaces != NULL && !j->replaces_dropped &&
		    (strcmp(type, PB "alreadyReplaced") == 0 || strcmp(type, PB "malformed") == 0 ||
		     strcmp(type, PB "conflict") == 0)) {
			/* The CA would not take "replaces": order without it rather than not at all. */
			cs_warn("acme %s: %s: the CA refused replaces=%s (%s); ordering without it",
				j->a->base.name, j->cert_name, j->replaces, type);
			j->replaces_dropped = true;
			cs_acme__new_order(j);
			return;
		}
		j->retry_after = j->resp.retry_after;
		cs_acme__job_fail(j, j->resp.code == 429 ? -EAGAIN : -EPROTO, "POST %s: HTTP %ld: %s",
			 j->rq.url, j->resp.code, cs_acme__body_text(&j->resp));
		return;
	}
	if (j->resp.location == NULL) {
		cs_acme__job_fail(j, -EPROTO, "POST %s: no Location for the order", j->rq.url);
		return;
	}
	j->order_url = strdup(j->resp.location);
	o = cs_acme__resp_json(j);
	if (o == NULL)
		return;
	const char *st = json_string_value(json_object_get(o, "status"));
	if (take_order(j, o) < 0) {
		json_decref(o);
		return;
	}
	cs_info("acme %s: %s: order %s is %s", j->a->base.name, j->cert_name, j->order_url,
		st ? st : "(no status)");
	if (st != NULL && strcmp(st, "pending") == 0) {
		json_decref(o);
		j->idx = 0;
		authz_next(j);
		return;
	}
	order_status(j, o);
	json_decref(o);
}

static void cs_acme__new_order(struct job *j)
{
	struct cs_acme *a = j->a;
	const char *profile = NULL, *replaces = NULL;
	char *payload;

	if (a->profile != NULL) {
		if (cs_acme_msg_profile_offered(a->dir, a->profile))
			profile = a->profile;
		else
			cs_warn("acme %s: the CA does not offer profile %s; ordering without it",
				a->base.name, a->profile);
	}
	if (j->replaces != NULL && !j->replaces_dropped && cs_acme__dir_url(a, "renewalInfo") != NULL)
		replaces = j->replaces;
	payload = cs_acme_msg_new_order(j->names, j->n_names, replaces, profile);
	if (payload == NULL) {
		cs_acme__job_fail(j, -ENOMEM, "out of memory");
		return;
	}
	j->poll_started = cs_acme__now_s();
	j->poll_delay_ms = POLL_FIRST_MS;
	cs_acme__request(j, NULL, cs_acme__dir_url(a, "newOrder"), payload, RQ_ACCEPT_ERRORS, on_order);
}

/* ---- authorizations and challenges -------------------------------------- */

static void work_token_file(struct job *j)
{
	struct cs_acme *a = j->a;
	struct chall *c = j->work_ch;
	char *d1 = NULL, *d2 = NULL;
	struct cs_atomic_opts ao = {
		.mode = 0644, .uid = (uid_t)-1, .gid = (gid_t)-1, .flags = CS_ATOMIC_NO_FSYNC
	};

	if (asprintf(&d1, "%s/.well-known", a->webroot) < 0 ||
	    asprintf(&d2, "%s/.well-known/acme-challenge", a->webroot) < 0) {
		j->work_rc = -ENOMEM;
		goto out;
	}
	if ((mkdir(d1, 0755) < 0 && errno != EEXIST) || (mkdir(d2, 0755) < 0 && errno != EEXIST)) {
		j->work_rc = -errno;
		snprintf(j->work_err, sizeof(j->work_err), "%s: cannot create: %s", d2,
			 strerror(errno));
		goto out;
	}
	/* Token files are public and short-lived: no fsync, but still never half-written. */
	j->work_rc = cs_atomic_write(c->file, c->keyauth, strlen(c->keyauth), &ao, j->work_err,
				     sizeof(j->work_err));
out:
	free(d1);
	free(d2);
}

static void after_token_file(struct job *j)
{
	if (j->work_rc < 0) {
		cs_acme__job_fail(j, j->work_rc, "http-01 webroot: %s", j->work_err);
		return;
	}
	j->work_ch->set_up = true;
	j->idx++;
	authz_next(j);
}

static void after_add_hook(struct job *j, int64_t st)
{
	struct chall *c = &j->ch[j->n_ch - 1];

	if (st != 0) {
		/* Nothing to take back: a failed add is not set up (the hook says so). */
		cs_acme__job_fail(j, -EIO, "dns_hook %s add _acme-challenge.%s failed with status %lld",
			 j->a->dns_hook, c->ident, (long long)st);
		return;
	}
	c->set_up = true;
	j->idx++;
	cs_acme__step(j, authz_next);
}

static void on_authz(struct job *j)
{
	struct cs_acme *a = j->a;
	json_t *az = cs_acme__resp_json(j), *chs, *ch = NULL;
	const char *st, *ident, *want = a->challenge == CS_ACME_DNS01 ? "dns-01" : "http-01";
	size_t i;
	char offered[256] = "";

	if (az == NULL)
		return;
	st = json_string_value(json_object_get(az, "status"));
	ident = json_string_value(json_object_get(json_object_get(az, "identifier"), "value"));
	if (st != NULL && strcmp(st, "valid") == 0) {
		json_decref(az);
		j->idx++;
		authz_next(j);
		return;
	}
	if (st == NULL || strcmp(st, "pending") != 0 || ident == NULL) {
		cs_acme__job_fail(j, -EPROTO, "authorization %s is %s: %s", j->rq.url, st ? st : "(no status)",
			 cs_acme__body_text(&j->resp));
		json_decref(az);
		return;
	}
	chs = json_object_get(az, "challenges");
	json_array_foreach(chs, i, ch) {
		const char *t = json_string_value(json_object_get(ch, "type"));
		if (t == NULL)
			continue;
		if (strcmp(t, want) == 0)
			break;
		size_t used = strlen(offered);
		snprintf(offered + used, sizeof(offered) - used, "%s%s", used ? ", " : "", t);
	}
	if (i >= json_array_size(chs)) {
		cs_acme__job_fail(j, -ENOTSUP, "the CA offers no %s challenge for %s (offers: %s)", want,
			 ident, offered[0] ? offered : "none");
		json_decref(az);
		return;
	}
	const char *token = json_string_value(json_object_get(ch, "token"));
	const char *url = json_string_value(json_object_get(ch, "url"));
	if (!token_ok(token) || url == NULL) {
		cs_acme__job_fail(j, -EPROTO, "authorization %s: a %s challenge without a usable token or url",
			 j->rq.url, want);
		json_decref(az);
		return;
	}
	struct chall *arr = realloc(j->ch, (j->n_ch + 1) * sizeof(*arr));
	if (arr == NULL) {
		json_decref(az);
		cs_acme__job_fail(j, -ENOMEM, "out of memory");
		return;
	}
	j->ch = arr;
	struct chall *c = &j->ch[j->n_ch++];
	memset(c, 0, sizeof(*c));
	c->type = a->challenge;
	c->url = strdup(url);
	c->token = strdup(token);
	c->ident = strdup(ident);
	if (asprintf(&c->keyauth, "%s.%s", token, a->thumb) < 0)
		c->keyauth = NULL;
	json_decref(az);
	if (c->url == NULL || c->token == NULL || c->ident == NULL || c->keyauth == NULL) {
		cs_acme__job_fail(j, -ENOMEM, "out of memory");
		return;
	}
	cs_info("acme %s: %s: %s challenge for %s", a->base.name, j->cert_name, want, c->ident);
	if (c->type == CS_ACME_DNS01) {
		cs_acme__run_hook(j, "add", c, after_add_hook);
	} else if (a->webroot != NULL) {
		if (asprintf(&c->file, "%s/.well-known/acme-challenge/%s", a->webroot, c->token) < 0) {
			c->file = NULL;
			cs_acme__job_fail(j, -ENOMEM, "out of memory");
			return;
		}
		j->work_ch = c;
		cs_acme__run_work(j, work_token_file, after_token_file);
	} else {
		char err[512] = "";
		if (a->responder == NULL) {
			a->responder = cs_acme_http01_new(a->base.loop, a->http_listen, err, sizeof(err));
			if (a->responder == NULL) {
				cs_acme__job_fail(j, -EADDRINUSE, "http-01 responder: %s", err);
				return;
			}
		}
		if (cs_acme_http01_add(a->responder, c->token, c->keyauth) < 0) {
			cs_acme__job_fail(j, -ENOMEM, "out of memory");
			return;
		}
		c->set_up = true;
		j->idx++;
		authz_next(j);
	}
}

static void respond_next(struct job *j);

static void on_responded(struct job *j)
{
	json_t *c = json_loadb(j->resp.body, j->resp.len, 0, NULL);
	const char *st = json_string_value(json_object_get(c, "status"));

	if (st == NULL || strcmp(st, "valid") != 0)
		j->validating = true;
	json_decref(c);
	j->idx++;
	respond_next(j);
}

/*
 * Tells the CA, challenge after challenge, that it may validate; then polls
 * the order: at once when every challenge is valid already, else soon.
 */
static void respond_next(struct job *j)
{
	if (j->idx >= j->n_ch) {
		if (j->validating)
			poll_later(j);
		else
			poll_order(j);
		return;
	}
	char *payload = strdup("{}");
	if (payload == NULL) {
		cs_acme__job_fail(j, -ENOMEM, "out of memory");
		return;
	}
	cs_acme__request(j, NULL, j->ch[j->idx].url, payload, 0, on_responded);
}

static void authz_next(struct job *j)
{
	if (j->idx >= json_array_size(j->authzs)) {
		j->idx = 0;
		respond_next(j);
		return;
	}
	const char *url = json_string_value(json_array_get(j->authzs, j->idx));
	if (url == NULL) {
		cs_acme__job_fail(j, -EPROTO, "order %s: an authorization that is not a URL", j->order_url);
		return;
	}
	cs_acme__request(j, NULL, url, NULL, 0, on_authz);
}

/* ---- polling, finalizing, downloading ----------------------------------- */

static void on_order_polled(struct job *j)
{
	json_t *o = cs_acme__resp_json(j);

	if (o == NULL)
		return;
	order_status(j, o);
	json_decref(o);
}

static void poll_order(struct job *j)
{
	cs_acme__request(j, NULL, j->order_url, NULL, 0, on_order_polled);
}

static void on_finalized(struct job *j)
{
	json_t *o = cs_acme__resp_json(j);

	if (o == NULL)
		return;
	j->finalized = true;
	j->poll_delay_ms = POLL_FIRST_MS; /* the certificate is usually there at once */
	order_status(j, o);
	json_decref(o);
}

static void finalize(struct job *j)
{
	json_t *p = json_pack("{s:s}", "csr", j->csr64);
	char *payload = p != NULL ? json_dumps(p, JSON_COMPACT) : NULL;

	json_decref(p);
	if (payload == NULL) {
		cs_acme__job_fail(j, -ENOMEM, "out of memory");
		return;
	}
	j->finalized = true;
	cs_acme__request(j, NULL, j->finalize_url, payload, 0, on_finalized);
}

/* Returns the issuer CN of the last certificate of a PEM chain, in buf ("" when none). */
static const char *top_issuer_cn(const char *pem, char *buf, size_t len)
{
	X509 *leaf = NULL;
	STACK_OF(X509) *chain = NULL;

	buf[0] = '\0';
	if (cs_acme__parse_chain(pem, &leaf, &chain) == 0) {
		X509 *top = sk_X509_num(chain) > 0 ? sk_X509_value(chain, sk_X509_num(chain) - 1)
						   : leaf;
		X509_NAME_get_text_by_NID(X509_get_issuer_name(top), NID_commonName, buf, (int)len);
		X509_free(leaf);
		sk_X509_pop_free(chain, X509_free);
	}
	return buf;
}

static void try_alternate(struct job *j);

static void on_alternate(struct job *j)
{
	char cn[256];

	if (j->resp.code < 400 &&
	    strcmp(top_issuer_cn(j->resp.body, cn, sizeof(cn)), j->a->preferred_chain) == 0) {
		cs_info("acme %s: %s: using the alternate chain %s (issued by %s)", j->a->base.name,
			j->cert_name, j->rq.url, cn);
		free(j->chain_pem);
		j->chain_pem = strdup(j->resp.body);
		if (j->chain_pem == NULL)
			cs_acme__job_fail(j, -ENOMEM, "out of memory");
		else
			cs_acme__job_end(j);
		return;
	}
	j->alt_idx++;
	try_alternate(j);
}

static void try_alternate(struct job *j)
{
	if (j->alt_idx >= j->n_alts) {
		cs_info("acme %s: %s: no chain under %s; keeping the default one", j->a->base.name,
			j->cert_name, j->a->preferred_chain);
		cs_acme__job_end(j);
		return;
	}
	cs_acme__request(j, NULL, j->alts[j->alt_idx], NULL, RQ_PEM | RQ_ACCEPT_ERRORS, on_alternate);
}

static void on_certificate(struct job *j)
{
	char cn[256];

	j->chain_pem = strdup(j->resp.body);
	if (j->chain_pem == NULL) {
		cs_acme__job_fail(j, -ENOMEM, "out of memory");
		return;
	}
	for (size_t i = 0; i < j->resp.n_alts; i++) {
		j->alts[j->n_alts++] = j->resp.alts[i];
		j->resp.alts[i] = NULL;
	}
	j->resp.n_alts = 0;
	if (j->a->preferred_chain == NULL ||
	    strcmp(top_issuer_cn(j->chain_pem, cn, sizeof(cn)), j->a->preferred_chain) == 0) {
		cs_acme__job_end(j);
		return;
	}
	j->alt_idx = 0;
	try_alternate(j);
}

static void download(struct job *j)
{
	cs_acme__request(j, NULL, j->cert_url, NULL, RQ_PEM, on_certificate);
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

/* ---- account key rollover ----------------------------------------------- */

/* Writes key as PEM to path with mode 0600 set before any byte; returns 0 or -errno. */
static int write_key(EVP_PKEY *key, const char *path, char *err, size_t errlen)
{
	struct cs_atomic_opts ao = { .mode = 0600, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL;
	long len;
	int rc;

	if (b == NULL || !PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL)) {
		BIO_free(b);
		snprintf(err, errlen, "cannot encode the account key");
		return -ENOMEM;
	}
	len = BIO_get_mem_data(b, &data);
	rc = cs_atomic_write(path, data, (size_t)len, &ao, err, errlen);
	OPENSSL_cleanse(data, (size_t)len);
	BIO_free(b);
	return rc;
}

static void work_new_key(struct job *j)
{
	j->work_key = cs_key_generate(j->a->account_keytype, j->work_err, sizeof(j->work_err));
	if (j->work_key == NULL) {
		j->work_rc = -EINVAL;
		return;
	}
	j->work_rc = write_key(j->work_key, j->new_key_path, j->work_err, sizeof(j->work_err));
}

static void work_install_key(struct job *j)
{
	if (rename(j->new_key_path, j->a->key_path) < 0) {
		j->work_rc = -errno;
		snprintf(j->work_err, sizeof(j->work_err), "%s: cannot rename to %s: %s",
			 j->new_key_path, j->a->key_path, strerror(errno));
	}
}

static void work_drop_key(struct job *j)
{
	unlink(j->new_key_path);
}

static void after_drop_key(struct job *j)
{
	/* The CA refused: the old key stays; the error was set by job_fail's caller. */
	cs_acme__job_end(j);
}

static void after_install_key(struct job *j)
{
	struct cs_acme *a = j->a;

	if (j->work_rc < 0) {
		/* The CA has the new key: keep it in memory and say where it is on disk. */
		cs_err("acme %s: the CA now knows the account by the key in %s, but %s", a->base.name,
		       j->new_key_path, j->work_err);
	}
	EVP_PKEY_free(a->key);
	a->key = j->work_key;
	j->work_key = NULL;
	free(a->thumb);
	a->thumb = cs_acme_jws_thumbprint(a->key);
	if (j->work_rc < 0) {
		cs_acme__job_fail(j, j->work_rc, "key rollover: %s", j->work_err);
		return;
	}
	cs_notice("acme %s: account %s rolled over to a new %s key", a->base.name, a->kid,
		  cs_acme_jws_alg(a->key));
	cs_acme__job_end(j);
}

static void on_key_changed(struct job *j)
{
	if (j->resp.code >= 400) {
		j->status = -EPROTO;
		snprintf(j->error, sizeof(j->error), "POST %s: HTTP %ld: %s", j->rq.url, j->resp.code,
			 cs_acme__body_text(&j->resp));
		j->cleaning = true; /* from here on only the temp key is removed */
		cs_acme__run_work(j, work_drop_key, after_drop_key);
		return;
	}
	cs_acme__run_work(j, work_install_key, after_install_key);
}

static void after_new_key(struct job *j)
{
	struct cs_acme *a = j->a;
	const char *url = cs_acme__dir_url(a, "keyChange");
	char err[512] = "", *inner;
	json_t *old = NULL, *p = NULL;

	if (j->work_rc < 0) {
		cs_acme__job_fail(j, j->work_rc, "key rollover: %s", j->work_err);
		return;
	}
	if (url == NULL) {
		cs_acme__job_fail(j, -ENOTSUP, "the CA has no keyChange");
		return;
	}
	old = cs_acme_jws_jwk(a->key);
	p = old != NULL ? json_pack("{s:s, s:O}", "account", a->kid, "oldKey", old) : NULL;
	char *ptext = p != NULL ? json_dumps(p, JSON_COMPACT) : NULL;
	json_decref(old);
	json_decref(p);
	if (ptext == NULL) {
		cs_acme__job_fail(j, -ENOMEM, "out of memory");
		return;
	}
	/* The inner JWS: signed by the new key, named by its JWK, without a nonce. */
	inner = cs_acme_jws_sign(j->work_key, NULL, NULL, url, ptext, err, sizeof(err));
	free(ptext);
	if (inner == NULL) {
		cs_acme__job_fail(j, -EINVAL, "key rollover: %s", err);
		return;
	}
	cs_acme__request(j, NULL, url, inner, RQ_ACCEPT_ERRORS, on_key_changed);
}

static void cs_acme__rollover(struct job *j)
{
	if (asprintf(&j->new_key_path, "%s.new", j->a->key_path) < 0) {
		j->new_key_path = NULL;
		cs_acme__job_fail(j, -ENOMEM, "out of memory");
		return;
	}
	cs_acme__run_work(j, work_new_key, after_new_key);
}

/* ---- the job queue ------------------------------------------------------ */

/* Takes the next step a job needs: directory, account key, account, then its own work. */
static void cs_acme__job_start(struct job *j)
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
		cs_acme__run_work(j, cs_acme__work_key, cs_acme__after_key);
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
	if (j->kind == JOB_ISSUE)
		cs_acme__new_order(j);
	else if (j->kind == JOB_REVOKE)
		revoke_cert(j);
	else
		cs_acme__rollover(j);
}

static void cs_acme__job_restart(struct job *j)
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

	if (a->exclusive || a->n_running >= a->limit)
		return 0;
	/*
	 * One job reads the directory, makes the key and creates the account
	 * (renewal information needs only the directory); a rollover waits for
	 * the others.
	 */
	if (a->n_running > 0 &&
	    (j->kind == JOB_ROLLOVER || a->dir == NULL ||
	     (j->kind != JOB_ARI && (a->key == NULL || a->kid == NULL))))
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
static void cs_acme__run_next(struct cs_acme *a)
{
	struct job *j;

	while (!a->closing && (j = TAILQ_FIRST(&a->queue)) != NULL && may_start(a, j)) {
		TAILQ_REMOVE(&a->queue, j, link);
		TAILQ_INSERT_TAIL(&a->running, j, link);
		a->n_running++;
		if (j->kind == JOB_ROLLOVER)
			a->exclusive = true;
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

static void cs_acme__maybe_free(struct cs_acme *a)
{
	if (!a->closing || !TAILQ_EMPTY(&a->running) || !TAILQ_EMPTY(&a->queue) || a->dying > 0)
		return;
	if (!a->torn) {
		a->torn = true;
		a->open += 2;
		uv_close((uv_handle_t *)&a->timer, on_timer_closed);
		cs_http_close(a->http, on_part_closed, a);
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
	if (a->eab_hmac_key != NULL)
		OPENSSL_cleanse(a->eab_hmac_key, strlen(a->eab_hmac_key));
	free(a->eab_hmac_key);
	free(a->preferred_chain);
	free(a->profile);
	free(a->acct_dir);
	free(a->key_path);
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
		j->issue_cb(&res, j->arg);
	} else if (j->kind == JOB_REVOKE || j->kind == JOB_ROLLOVER) {
		j->done_cb(j->status, j->error, j->arg);
	} else {
		j->ari_cb(j->status, NULL, j->error, j->arg);
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

static int acme_issue(cs_issuer *is, const struct cs_issue_request *req, cs_issue_cb cb,
		      void *arg)
{
	struct cs_acme *a = (struct cs_acme *)is;
	struct job *j;
	unsigned char *der = NULL;
	int len;
	char err[256];

	if (a->closing)
		return -ECANCELED;
	if (req->n_names == 0 || req->csr == NULL)
		return -EINVAL;
	j = job_new(a, JOB_ISSUE);
	if (j == NULL)
		return -ENOMEM;
	j->issue_cb = cb;
	j->arg = arg;
	j->cert_name = strdup(req->cert_name != NULL ? req->cert_name : req->names[0]);
	j->names = calloc(req->n_names, sizeof(char *));
	if (j->cert_name == NULL || j->names == NULL)
		goto nomem;
	for (size_t i = 0; i < req->n_names; i++, j->n_names++)
		if ((j->names[i] = strdup(req->names[i])) == NULL)
			goto nomem;
	len = i2d_X509_REQ(req->csr, &der);
	if (len <= 0)
		goto nomem;
	j->csr64 = cs_b64url_encode(der, (size_t)len);
	OPENSSL_free(der);
	if (j->csr64 == NULL)
		goto nomem;
	if (req->replaces != NULL) {
		j->replaces = cs_acme_msg_certid(req->replaces, err, sizeof(err));
		if (j->replaces == NULL)
			cs_debug("acme %s: %s: no ARI replaces: %s", a->base.name, j->cert_name, err);
	}
	enqueue(a, j);
	return 0;
nomem:
	cs_acme__job_free(j);
	return -ENOMEM;
}

static const struct cs_issuer_ops acme_ops = {
	.type = "acme",
	.issue = acme_issue,
	.ca_material = NULL,
	.close = acme_close,
};

int cs_acme_is(const cs_issuer *is)
{
	return is != NULL && is->ops == &acme_ops;
}

int cs_acme_renewal_info(cs_issuer *is, X509 *cert, cs_acme_ari_cb cb, void *arg)
{
	struct cs_acme *a = (struct cs_acme *)is;
	struct job *j;
	char err[256];

	if (!cs_acme_is(is))
		return -EINVAL;
	if (a->closing)
		return -ECANCELED;
	j = job_new(a, JOB_ARI);
	if (j == NULL)
		return -ENOMEM;
	j->certid = cs_acme_msg_certid(cert, err, sizeof(err));
	if (j->certid == NULL) {
		cs_acme__job_free(j);
		return -EINVAL;
	}
	j->ari_cb = cb;
	j->arg = arg;
	enqueue(a, j);
	return 0;
}

int cs_acme_revoke(cs_issuer *is, X509 *cert, int reason, cs_acme_done_cb cb, void *arg)
{
	struct cs_acme *a = (struct cs_acme *)is;
	struct job *j;
	unsigned char *der = NULL;
	int len;

	if (!cs_acme_is(is) || cert == NULL)
		return -EINVAL;
	if (a->closing)
		return -ECANCELED;
	j = job_new(a, JOB_REVOKE);
	if (j == NULL)
		return -ENOMEM;
	len = i2d_X509(cert, &der);
	if (len <= 0 || (j->cert64 = cs_b64url_encode(der, (size_t)len)) == NULL) {
		OPENSSL_free(der);
		cs_acme__job_free(j);
		return -ENOMEM;
	}
	OPENSSL_free(der);
	j->reason = reason;
	j->done_cb = cb;
	j->arg = arg;
	enqueue(a, j);
	return 0;
}

int cs_acme_key_rollover(cs_issuer *is, cs_acme_done_cb cb, void *arg)
{
	struct cs_acme *a = (struct cs_acme *)is;
	struct job *j;

	if (!cs_acme_is(is))
		return -EINVAL;
	if (a->closing)
		return -ECANCELED;
	j = job_new(a, JOB_ROLLOVER);
	if (j == NULL)
		return -ENOMEM;
	j->done_cb = cb;
	j->arg = arg;
	enqueue(a, j);
	return 0;
}

cs_issuer *cs_acme_issuer_new(uv_loop_t *loop, const char *name, const struct cs_acme_opts *o,
			      const char *state_dir, char *err, size_t errlen)
{
	struct cs_acme *a;
	struct cs_http_opts ho = { .ca_bundle = o->ca_bundle };
	enum cs_keytype kt = o->account_key != CS_KEY_NONE ? o->account_key : CS_KEY_EC_P256;

	if (o->directory == NULL || strncmp(o->directory, "https://", 8) != 0) {
		snprintf(err, errlen, "directory must be an https:// URL");
		return NULL;
	}
	if (state_dir == NULL) {
		snprintf(err, errlen, "no state_dir for the account key");
		return NULL;
	}
	if (o->challenge == CS_ACME_HTTP01 && o->webroot == NULL && o->http_listen == NULL) {
		snprintf(err, errlen, "http-01 needs webroot or http_listen");
		return NULL;
	}
	if (o->challenge == CS_ACME_DNS01 && o->dns_hook == NULL) {
		snprintf(err, errlen, "dns-01 needs dns_hook");
		return NULL;
	}
	if (kt != CS_KEY_EC_P256 && kt != CS_KEY_EC_P384 && kt != CS_KEY_RSA_2048 &&
	    kt != CS_KEY_RSA_3072 && kt != CS_KEY_RSA_4096) {
		snprintf(err, errlen, "account_key %s cannot sign ACME requests", cs_key_name(kt));
		return NULL;
	}
	if (o->max_orders > CS_ACME_MAX_ORDERS) {
		snprintf(err, errlen, "max_orders %u is above %d", o->max_orders, CS_ACME_MAX_ORDERS);
		return NULL;
	}
	if ((o->eab_kid == NULL) != (o->eab_hmac_key == NULL)) {
		snprintf(err, errlen, "eab_kid and eab_hmac_key go together");
		return NULL;
	}
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		goto nomem;
	a->base.ops = &acme_ops;
	a->base.loop = loop;
	a->challenge = o->challenge;
	a->account_keytype = kt;
	a->poll_timeout_s = o->poll_timeout_s > 0 ? o->poll_timeout_s : 600;
	a->max_orders = o->max_orders > 0 ? o->max_orders : MAX_ORDERS_DEFAULT;
	a->limit = a->max_orders;
	TAILQ_INIT(&a->queue);
	TAILQ_INIT(&a->running);
	a->base.name = strdup(name);
	a->directory = strdup(o->directory);
	a->webroot = xstrdup(o->webroot);
	a->http_listen = xstrdup(o->http_listen);
	a->dns_hook = xstrdup(o->dns_hook);
	a->ca_bundle = xstrdup(o->ca_bundle);
	a->eab_kid = xstrdup(o->eab_kid);
	a->eab_hmac_key = xstrdup(o->eab_hmac_key);
	a->preferred_chain = xstrdup(o->preferred_chain);
	a->profile = xstrdup(o->profile);
	if (a->base.name == NULL || a->directory == NULL || (o->webroot && !a->webroot) ||
	    (o->http_listen && !a->http_listen) || (o->dns_hook && !a->dns_hook) ||
	    (o->ca_bundle && !a->ca_bundle) || (o->eab_kid && !a->eab_kid) ||
	    (o->eab_hmac_key && !a->eab_hmac_key) || (o->preferred_chain && !a->preferred_chain) ||
	    (o->profile && !a->profile))
		goto fail;
	if (o->n_contact > 0) {
		a->contact = calloc(o->n_contact, sizeof(char *));
		if (a->contact == NULL)
			goto fail;
		for (; a->n_contact < o->n_contact; a->n_contact++)
			if ((a->contact[a->n_contact] = strdup(o->contact[a->n_contact])) == NULL)
				goto fail;
	}
	/* One account directory per issuer; '/' in a name must not climb out of it. */
	if (asprintf(&a->acct_dir, "%s/acme/%s", state_dir, name) < 0) {
		a->acct_dir = NULL;
		goto fail;
	}
	for (char *p = a->acct_dir + strlen(state_dir) + 6; *p; p++)
		if (*p == '/')
			*p = '_';
	if (asprintf(&a->key_path, "%s/account.key", a->acct_dir) < 0) {
		a->key_path = NULL;
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
	if (a != NULL) {
		/* Nothing was opened on the loop yet: free by hand. */
		a->closing = a->torn = true;
		a->open = 0;
		a->close_cb = NULL;
		cs_acme__maybe_free(a);
	}
	return NULL;
nomem:
	snprintf(err, errlen, "out of memory");
	return NULL;
}
