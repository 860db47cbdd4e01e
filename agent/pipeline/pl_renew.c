/* pl_renew - see pl_int.h and cs_pipeline.h. */
#include "pl_int.h"
#include "cs_csr.h"
#include "cs_key.h"
#include "cs_localca.h"
#include "cs_sched.h"
#include "cs_verify.h"
#include "cs_x509.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- renewal --------------------------------------------------------------- */


void pl_renew_job_free(struct renew_job *j)
{
	EVP_PKEY_free(j->reuse);
	EVP_PKEY_free(j->key);
	X509_REQ_free(j->csr);
	X509_free(j->replaces);
	cs_material_free(j->m);
	cs_material_free(j->prev);
	cs_examined_clear(&j->ex);
	free(j);
}

void pl_renew_failed(struct renew_job *j, const char *msg, int64_t retry_after)
{
	struct cert *c = j->c;
	struct cs_pipeline *pl = c->pl;
	time_t now = time(NULL);
	struct cs_backoff b = { pl->cfg->agent.retry_min, pl->cfg->agent.retry_max };
	char d[40], t[40];

	pl_renew_job_free(j);
	if (pl->closing || pl->tearing_down) {
		cs_info("%s: renewal abandoned while stopping (%s)", c->cfg->name, msg);
		pl_cert_idle(c);
		pl_maybe_quiesced(pl);
		return;
	}
	c->st.failures++;
	c->st.retry_after = retry_after;
	cs_state_set_error(&c->st, msg);
	int64_t delay = cs_sched_backoff(&b, c->st.failures, now, pl_verdict_ok(c) ? c->not_after : 0,
					 retry_after, c->seed);
	c->st.next_attempt = now + (time_t)delay;
	pl_schedule(c, now);
	if (pl->once) {
		cs_err("%s: renewal failed: %s", c->cfg->name, msg);
		pl_once_finish(c, ONCE_FAILED);
	} else {
		cs_err("%s: renewal failed (%d in a row): %s; next attempt in %s (%lld s, at %s)",
		       c->cfg->name, c->st.failures, msg, pl_fmt_delay(delay, d, sizeof(d)),
		       (long long)delay, pl_fmt_time(c->st.next_attempt, t, sizeof(t)));
	}
	pl_save_state(c);
	pl_cert_idle(c);
	pl_arm_timer(pl);
	pl_maybe_quiesced(pl);
}

static void on_issued(struct cs_issue_result *res, void *arg)
{
	struct renew_job *j = arg;
	struct cs_pipeline *pl = j->c->pl;
	char msg[1200];

	pl->inflight--;
	if (res->status < 0 || res->leaf == NULL) {
		snprintf(msg, sizeof(msg), "issuer %s: %s", j->c->issuer->name,
			 res->error[0] ? res->error : strerror(-res->status));
		X509_free(res->leaf);
		sk_X509_pop_free(res->chain, X509_free);
		pl_renew_failed(j, msg, res->retry_after);
		return;
	}
	j->m = cs_material_new();
	if (j->m == NULL) {
		X509_free(res->leaf);
		sk_X509_pop_free(res->chain, X509_free);
		pl_renew_failed(j, "out of memory", 0);
		return;
	}
	j->m->key = j->key;
	j->key = NULL;
	j->m->leaf = res->leaf;
	for (int i = 0; res->chain != NULL && i < sk_X509_num(res->chain); i++) {
		X509 *x = sk_X509_value(res->chain, i);
		X509_up_ref(x);
		sk_X509_push(j->m->chain, x);
	}
	sk_X509_pop_free(res->chain, X509_free);
	if (pl->closing || pl->tearing_down) {
		/* A certificate was issued: still put it in place, that is quick. */
		cs_info("%s: deploying the certificate issued while stopping", j->c->cfg->name);
	}
	j->gen = j->c->st.next_gen;
	j->c->st.next_gen++;
	j->now = time(NULL);
	if (uv_queue_work(pl->loop, &j->req, pl_deploy_work, pl_deploy_done) < 0) {
		pl_renew_failed(j, "cannot queue the deploy", 0);
		return;
	}
	pl->inflight++;
}

static void keycsr_work(uv_work_t *req)
{
	struct renew_job *j = req->data;

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
	j->csr = cs_csr_new(j->key, j->cfg->names.v, j->cfg->names.n, j->err, sizeof(j->err));
	if (j->csr == NULL)
		j->rc = -EINVAL;
}

static void keycsr_done(uv_work_t *req, int status)
{
	struct renew_job *j = req->data;
	struct cert *c = j->c;
	struct cs_pipeline *pl = c->pl;
	char msg[1100];
	int rc;

	(void)status;
	pl->inflight--;
	if (j->rc < 0) {
		snprintf(msg, sizeof(msg), "key or CSR: %s", j->err);
		pl_renew_failed(j, msg, 0);
		return;
	}
	if (pl->closing || pl->tearing_down) {
		pl_renew_failed(j, "stopping", 0);
		return;
	}
	struct cs_issue_request ir = {
		.cert_name = c->cfg->name,
		.names = c->cfg->names.v,
		.n_names = c->cfg->names.n,
		.usage = c->cfg->usage,
		.csr = j->csr,
		.replaces = j->replaces,
	};
	pl->inflight++;
	rc = c->issuer->ops->issue(c->issuer, &ir, on_issued, j);
	if (rc < 0) {
		pl->inflight--;
		snprintf(msg, sizeof(msg), "issuer %s: cannot start: %s", c->issuer->name,
			 strerror(-rc));
		pl_renew_failed(j, msg, 0);
	}
}

/* Starts a renewal of c; returns false when it could not start. */
bool pl_start_renew(struct cert *c)
{
	struct cs_pipeline *pl = c->pl;
	struct renew_job *j;
	char t[40];

	if (c->busy || pl->closing || pl->draining || pl->tearing_down)
		return false;
	j = calloc(1, sizeof(*j));
	if (j == NULL) {
		cs_err("%s: cannot renew: out of memory", c->cfg->name);
		return false;
	}
	j->req.data = j;
	j->c = c;
	j->cfg = c->cfg;
	j->state_dir = pl->cfg->agent.state_dir;
	if (c->m != NULL && c->m->leaf != NULL) {
		X509_up_ref(c->m->leaf);
		j->replaces = c->m->leaf;
	}
	if (pl_verdict_ok(c)) {
		/* What to put back if writing the new set fails half-way. */
		j->prev = cs_material_new();
		if (j->prev != NULL) {
			EVP_PKEY_up_ref(c->m->key);
			j->prev->key = c->m->key;
			X509_up_ref(c->m->leaf);
			j->prev->leaf = c->m->leaf;
			for (int i = 0; i < sk_X509_num(c->m->chain); i++) {
				X509 *x = sk_X509_value(c->m->chain, i);
				X509_up_ref(x);
				sk_X509_push(j->prev->chain, x);
			}
		}
	}
	if (c->cfg->reuse_key && !c->fresh_key && c->m != NULL && c->m->key != NULL &&
	    cs_key_type_of(c->m->key) == c->cfg->key) {
		EVP_PKEY_up_ref(c->m->key);
		j->reuse = c->m->key;
	}
	if (uv_queue_work(pl->loop, &j->req, keycsr_work, keycsr_done) < 0) {
		cs_err("%s: cannot renew: cannot queue work", c->cfg->name);
		pl_renew_job_free(j);
		return false;
	}
	pl->inflight++;
	c->busy = true;
	c->state = CS_CERT_RENEWING;
	c->st.last_attempt = time(NULL);
	cs_notice("%s: renewing with issuer %s (%s%s%s)", c->cfg->name, c->issuer->name,
		  pl_verdict_ok(c) ? c->due_reason : c->reason, pl_verdict_ok(c) ? ", due " : "",
		  pl_verdict_ok(c) ? pl_fmt_time(c->due, t, sizeof(t)) : "");
	return true;
}
