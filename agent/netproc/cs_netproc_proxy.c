/*
 * cs_netproc_proxy - the acme issuer the pipeline holds while the client
 * runs in netproc: each call becomes a request (NP_P_ISSUE, _REVOKE, _ARI)
 * kept until netproc answers it, sent again to a new netproc when the old
 * one died, failed after too many deaths or a protocol violation.
 */
#include "cs_netproc_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- sending ------------------------------------------------------------ */

void cs_netproc__send_open(struct px *p)
{
	struct cs_frame_buf b = { 0 };
	char bundle[64];

	if (p->closed)
		return;
	cs_frame_begin(&b, NP_P_OPEN, p->id);
	cs_frame_str(&b, NP_T_NAME, p->base.name);
	cs_frame_str(&b, NP_T_DIRECTORY, p->o.directory);
	for (size_t i = 0; i < p->o.n_contact; i++)
		cs_frame_str(&b, NP_T_CONTACT, p->o.contact[i]);
	cs_frame_u64(&b, NP_T_CHALLENGE, (uint64_t)p->o.challenge);
	cs_frame_str(&b, NP_T_WEBROOT, p->o.webroot);
	cs_frame_str(&b, NP_T_LISTEN, p->o.http_listen);
	cs_frame_str(&b, NP_T_HOOK, p->o.dns_hook);
	if (p->o.ca_bundle != NULL) {
		snprintf(bundle, sizeof(bundle), "/extra/%llu.pem", (unsigned long long)p->id);
		cs_frame_str(&b, NP_T_CA_BUNDLE, bundle);
	}
	cs_frame_str(&b, NP_T_EAB_KID, p->o.eab_kid);
	cs_frame_str(&b, NP_T_CHAIN_PREF, p->o.preferred_chain);
	cs_frame_str(&b, NP_T_PROFILE, p->o.profile);
	cs_frame_u64(&b, NP_T_POLL_TIMEOUT, (uint64_t)p->o.poll_timeout_s);
	cs_frame_u64(&b, NP_T_MAX_ORDERS, p->o.max_orders);
	cs_netproc__send_buf(&b, -1);
}

void cs_netproc__send_req(struct preq *r)
{
	struct cs_frame_buf b = { 0 };
	static const uint16_t types[] = { NP_P_ISSUE, NP_P_REVOKE, NP_P_ARI, NP_P_PROBE,
					  NP_P_DNSQ };

	r->gen = S.gen;
	r->sends++;
	r->pr.n_chall = 0;
	/* A new netproc goes on with the order there is (its newOrder was signed), or orders. */
	r->pr.ordered = r->order_url != NULL;
	cs_frame_begin(&b, types[r->pr.kind], r->id);
	if (r->pr.kind == NP_PROBE) {
		cs_frame_str(&b, NP_T_URL, r->url);
		cs_frame_str(&b, NP_T_WANT, r->want);
		cs_frame_u64(&b, NP_T_BOUND, (uint64_t)r->bound_ms);
		cs_frame_u64(&b, NP_T_RETRY, (uint64_t)r->retry_ms);
		np_proto_put_tlsa(&b, &(struct cs_probe_dane){ r->tlsa, r->n_tlsa });
		cs_netproc__send_buf(&b, -1);
		return;
	}
	if (r->pr.kind == NP_DNSQ) {
		cs_frame_str(&b, NP_T_RESOLVER, r->url);
		cs_frame_str(&b, NP_T_OWNER, r->want);
		cs_frame_u64(&b, NP_T_BOUND, (uint64_t)r->bound_ms);
		cs_netproc__send_buf(&b, -1);
		return;
	}
	cs_frame_u64(&b, NP_T_ISSUER, r->px->id);
	if (r->pr.kind == NP_ISSUE) {
		cs_frame_str(&b, NP_T_CERT_NAME, r->cert_name);
		for (size_t i = 0; i < r->pr.n_names; i++)
			cs_frame_str(&b, NP_T_DNSNAME, r->names[i]);
		cs_frame_u64(&b, NP_T_USAGE, (uint64_t)r->usage);
		cs_frame_bytes(&b, NP_T_CSR, r->pr.csr.p, r->pr.csr.n);
		if (r->replaces.n > 0)
			cs_frame_bytes(&b, NP_T_REPLACES, r->replaces.p, r->replaces.n);
		cs_frame_str(&b, NP_T_ORDER_URL, r->order_url);
	} else {
		cs_frame_bytes(&b, NP_T_LEAF, r->pr.leaf.p, r->pr.leaf.n);
		if (r->pr.kind == NP_REVOKE && r->pr.reason >= 0)
			cs_frame_u64(&b, NP_T_REASON, (uint64_t)r->pr.reason + 1);
	}
	cs_netproc__send_buf(&b, -1);
}

/* ---- requests ------------------------------------------------------------ */

void cs_netproc__chall_free(struct chall_rec *c)
{
	if (c == NULL)
		return;
	free(c->ident);
	free(c->token);
	free(c->cert_name);
	free(c);
}

static void on_cleanup_done(void *arg, int status, const char *error)
{
	struct pcall *pc = arg;

	if (status != 0)
		cs_warn("acme %s: taking down the challenge for %s after netproc died: %s",
			pc->px->base.name, pc->ch->ident, error ? error : "failed");
	cs_netproc__chall_free(pc->ch);
	cs_netproc__px_unref(pc->px);
	free(pc);
}

/* Takes down the challenges r set up in a netproc that is gone. */
/* Takes down challenge c (which it frees) of proxy p, set up for a netproc that is gone. */
void cs_netproc__chall_takedown(struct px *p, struct chall_rec *c)
{
	struct pcall *pc = calloc(1, sizeof(*pc));
	struct cs_acme_host_chall hc = { c->type, c->ident, c->token, c->cert_name };

	if (pc == NULL) {
		cs_netproc__chall_free(c);
		return;
	}
	pc->px = p;
	pc->ch = c;
	p->refs++;
	if (cs_acme_host_local_ops.challenge(p->host, NULL, &hc, false, on_cleanup_done, pc) < 0)
		on_cleanup_done(pc, -EIO, "cannot start");
}

void cs_netproc__req_cleanup_challs(struct preq *r)
{
	struct chall_rec *c;

	while ((c = LIST_FIRST(&r->challs)) != NULL) {
		LIST_REMOVE(c, link);
		cs_netproc__chall_takedown(r->px, c);
	}
}

void cs_netproc__req_free(struct preq *r)
{
	struct px *p = r->px;

	cs_netproc__req_cleanup_challs(r);
	TAILQ_REMOVE(&S.reqs, r, link);
	free(r->cert_name);
	for (size_t i = 0; i < r->pr.n_names; i++)
		free(r->names[i]);
	free(r->names);
	cs_issuer_der_clear(&r->pr.csr);
	cs_issuer_der_clear(&r->pr.leaf);
	cs_issuer_der_clear(&r->replaces);
	free(r->url);
	free(r->want);
	free(r->tlsa);
	free(r->order_url);
	free(r);
	if (p != NULL)
		cs_netproc__px_unref(p);
}

/* Answers r's caller with status and error (a failure; results come from cs_netproc__answer_req). */
void cs_netproc__req_fail(struct preq *r, int status, const char *error)
{
	struct cs_issue_result res = { .status = status };

	if (r->answered)
		return;
	r->answered = true;
	switch (r->pr.kind) {
	case NP_ISSUE:
		snprintf(res.error, sizeof(res.error), "%s", error);
		r->cb.issue(r->arg, &res);
		break;
	case NP_REVOKE:
		r->cb.done(r->arg, status, error);
		break;
	case NP_ARI:
		r->cb.window(r->arg, status, NULL, error);
		break;
	case NP_PROBE:
		r->cb.probe(r->arg, false, "", error);
		break;
	case NP_DNSQ:
		r->cb.dnsq(r->arg, status < 0 ? status : -EIO, NULL, error);
		break;
	}
}

struct preq *cs_netproc__req_find(uint64_t id)
{
	struct preq *r;

	TAILQ_FOREACH(r, &S.reqs, link)
		if (r->id == id)
			return r;
	return NULL;
}

/* netproc's answer m to request r: to the caller, then r is done. */
void cs_netproc__answer_req(struct preq *r, const struct cs_frame_msg *m)
{
	int st = np_proto_get_status(m);
	const char *error = cs_frame_str_of(m, NP_T_ERROR);

	if (st == 0)
		S.proven = true;
	if (!r->answered) {
		r->answered = true;
		if (m->type == NP_N_ISSUED) {
			struct cs_der chain[16];
			struct cs_issue_result res = {
				.status = st,
				.chain = chain,
				.retry_after = (int64_t)cs_frame_u64_of(m, NP_T_RETRY_AFTER, 0),
			};
			const struct cs_frame_field *leaf = cs_frame_get(m, NP_T_LEAF, 0);
			if (leaf != NULL)
				res.leaf = (struct cs_der){ (unsigned char *)leaf->p, leaf->n };
			for (; res.n_chain < cs_frame_count(m, NP_T_CHAIN) && res.n_chain < 16;
			     res.n_chain++) {
				const struct cs_frame_field *f = cs_frame_get(m, NP_T_CHAIN, res.n_chain);
				chain[res.n_chain] = (struct cs_der){ (unsigned char *)f->p, f->n };
			}
			if (st == 0 && leaf == NULL) {
				res.status = -EPROTO;
				error = "netproc returned no certificate";
			}
			snprintf(res.error, sizeof(res.error), "%s", error ? error : "");
			r->cb.issue(r->arg, &res);
		} else if (m->type == NP_N_PROBED) {
			const char *served = cs_frame_str_of(m, NP_T_SERVED);
			const char *text = cs_frame_str_of(m, NP_T_TEXT);
			r->cb.probe(r->arg, cs_frame_u64_of(m, NP_T_OK, 0) != 0, served ? served : "",
				    text ? text : "");
		} else if (m->type == NP_N_DNSA) {
			struct cs_dnsq_answer a;
			char err[200];
			/* np_permit checked it: a failure here is an answer without records. */
			if (st == 0 && np_proto_get_answer(m, &a, err, sizeof(err)) < 0) {
				st = -EPROTO;
				error = err;
			}
			r->cb.dnsq(r->arg, st < 0 ? st : st > 0 ? -st : 0, st == 0 ? &a : NULL,
				   error ? error : "");
		} else if (m->type == NP_N_DONE) {
			r->cb.done(r->arg, st, error);
		} else {
			struct cs_issuer_window w = {
				.start = (int64_t)cs_frame_u64_of(m, NP_T_START, 0),
				.end = (int64_t)cs_frame_u64_of(m, NP_T_END, 0),
				.retry_after = (int64_t)cs_frame_u64_of(m, NP_T_RETRY_AFTER, 0),
			};
			const char *ex = cs_frame_str_of(m, NP_T_TEXT);
			snprintf(w.explanation, sizeof(w.explanation), "%s", ex ? ex : "");
			r->cb.window(r->arg, st, st == 0 ? &w : NULL, error);
		}
	}
	/* Challenges netproc took down were unrecorded; any left are netproc's business. */
	while (!LIST_EMPTY(&r->challs)) {
		struct chall_rec *c = LIST_FIRST(&r->challs);
		LIST_REMOVE(c, link);
		cs_netproc__chall_free(c);
	}
	cs_netproc__req_free(r);
	cs_netproc__maybe_stop();
}

static struct preq *req_new(struct px *p, enum np_kind kind, void *arg)
{
	struct preq *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->id = ++S.next_req;
	r->px = p;
	r->pr.kind = kind;
	r->pr.issuer = p != NULL ? p->id : 0;
	r->pr.reason = -1;
	r->arg = arg;
	LIST_INIT(&r->challs);
	if (p != NULL)
		p->refs++;
	TAILQ_INSERT_TAIL(&S.reqs, r, link);
	return r;
}

/* Sends r now, or starts netproc (r goes out once it is ready). */
static void req_go(struct preq *r)
{
	if (S.state == SUP_READY)
		cs_netproc__send_req(r);
	else if (S.state == SUP_IDLE)
		cs_netproc__start();
}

static int dup_der(struct cs_der *to, const struct cs_der *from)
{
	if (from->n == 0)
		return 0;
	to->p = malloc(from->n);
	if (to->p == NULL)
		return -ENOMEM;
	memcpy(to->p, from->p, from->n);
	to->n = from->n;
	return 0;
}

static int px_issue(cs_issuer *is, const struct cs_issue_request *req, cs_issue_cb cb, void *arg)
{
	struct px *p = (struct px *)is;
	struct preq *r = req_new(p, NP_ISSUE, arg);

	if (r == NULL)
		return -ENOMEM;
	r->cb.issue = cb;
	r->usage = req->usage;
	r->cert_name = strdup(req->cert_name ? req->cert_name : "");
	r->names = calloc(req->n_names ? req->n_names : 1, sizeof(char *));
	if (r->cert_name == NULL || r->names == NULL)
		goto nomem;
	for (; r->pr.n_names < req->n_names; r->pr.n_names++)
		if ((r->names[r->pr.n_names] = strdup(req->names[r->pr.n_names])) == NULL)
			goto nomem;
	r->pr.names = r->names;
	if (dup_der(&r->pr.csr, &req->csr) < 0 || dup_der(&r->replaces, &req->replaces) < 0)
		goto nomem;
	req_go(r);
	return 0;
nomem:
	r->answered = true;
	cs_netproc__req_free(r);
	return -ENOMEM;
}

static int px_leaf_call(struct px *p, enum np_kind kind, const struct cs_der *leaf, int reason,
			void *arg, struct preq **out)
{
	struct preq *r = req_new(p, kind, arg);

	if (r == NULL)
		return -ENOMEM;
	r->pr.reason = reason;
	if (dup_der(&r->pr.leaf, leaf) < 0 || leaf->n == 0) {
		r->answered = true;
		cs_netproc__req_free(r);
		return leaf->n == 0 ? -EINVAL : -ENOMEM;
	}
	*out = r;
	return 0;
}

static int px_revoke(cs_issuer *is, const struct cs_der *leaf, int reason, cs_issuer_done_cb cb,
		     void *arg)
{
	struct preq *r;
	int rc = px_leaf_call((struct px *)is, NP_REVOKE, leaf, reason, arg, &r);

	if (rc < 0)
		return rc;
	r->cb.done = cb;
	req_go(r);
	return 0;
}

static int px_renewal_info(cs_issuer *is, const struct cs_der *leaf, cs_issuer_window_cb cb,
			   void *arg)
{
	struct preq *r;
	int rc = px_leaf_call((struct px *)is, NP_ARI, leaf, -1, arg, &r);

	if (rc < 0)
		return rc;
	r->cb.window = cb;
	req_go(r);
	return 0;
}

/* ---- the proxy's life ---------------------------------------------------- */

static void free_opts(struct cs_acme_opts *o)
{
	free((char *)o->directory);
	for (size_t i = 0; i < o->n_contact; i++)
		free(o->contact[i]);
	free((char **)o->contact);
	free((char *)o->webroot);
	free((char *)o->http_listen);
	free((char *)o->dns_hook);
	free((char *)o->ca_bundle);
	free((char *)o->eab_kid);
	free((char *)o->preferred_chain);
	free((char *)o->profile);
}

static void px_free(struct px *p)
{
	TAILQ_REMOVE(&S.issuers, p, link);
	if (p->host != NULL)
		cs_acme_host_local_ops.close(p->host, NULL, NULL);
	free_opts(&p->o);
	free(p->base.name);
	free(p);
}

void cs_netproc__px_unref(struct px *p)
{
	if (--p->refs == 0)
		px_free(p);
}

static void on_px_timer_closed(uv_handle_t *h)
{
	cs_netproc__px_unref(h->data);
}

static void on_px_closed(uv_timer_t *t)
{
	struct px *p = t->data;

	if (p->close_cb != NULL)
		p->close_cb(p->close_arg);
	uv_close((uv_handle_t *)&p->timer, on_px_timer_closed);
}


static void px_close(cs_issuer *is, void (*close_cb)(void *), void *arg)
{
	struct px *p = (struct px *)is;
	struct preq *r;
	struct cs_frame_buf b = { 0 };

	p->closed = true;
	p->close_cb = close_cb;
	p->close_arg = arg;
	/*
	 * The pipeline hears of its calls now; netproc's answers are awaited and
	 * dropped (the proxy stays in S.issuers until then, so that netproc's
	 * clean-up calls are still its). A callback may change the list: start
	 * over after each.
	 */
again:
	TAILQ_FOREACH(r, &S.reqs, link) {
		if (r->px != p || r->answered)
			continue;
		cs_netproc__req_fail(r, -ECANCELED, "cancelled: the issuer is closing");
		if (r->gen == 0 || S.state != SUP_READY)
			cs_netproc__req_free(r);
		goto again;
	}
	cs_frame_begin(&b, NP_P_CLOSE, p->id);
	cs_netproc__send_buf(&b, -1);
	uv_timer_start(&p->timer, on_px_closed, 0, 0);
	S.n_open--;
	cs_netproc__maybe_stop();
}

static const struct cs_issuer_ops px_ops = {
	.type = "acme",
	.issue = px_issue,
	.revoke = px_revoke,
	.renewal_info = px_renewal_info,
	.close = px_close,
};

static char *xstrdup(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

static int copy_opts(struct cs_acme_opts *to, const struct cs_acme_opts *o)
{
	char **contact = calloc(o->n_contact ? o->n_contact : 1, sizeof(char *));

	*to = *o;
	to->contact = contact;
	to->n_contact = 0;
	to->directory = xstrdup(o->directory);
	to->webroot = xstrdup(o->webroot);
	to->http_listen = xstrdup(o->http_listen);
	to->dns_hook = xstrdup(o->dns_hook);
	to->ca_bundle = xstrdup(o->ca_bundle);
	to->eab_kid = xstrdup(o->eab_kid);
	to->eab_hmac_key = NULL; /* the local host has it; netproc never does */
	to->preferred_chain = xstrdup(o->preferred_chain);
	to->profile = xstrdup(o->profile);
	if (contact == NULL)
		return -ENOMEM;
	for (; to->n_contact < o->n_contact; to->n_contact++)
		if ((contact[to->n_contact] = strdup(o->contact[to->n_contact])) == NULL)
			return -ENOMEM;
	if (to->directory == NULL || (o->webroot && !to->webroot) ||
	    (o->http_listen && !to->http_listen) || (o->dns_hook && !to->dns_hook) ||
	    (o->ca_bundle && !to->ca_bundle) || (o->eab_kid && !to->eab_kid) ||
	    (o->preferred_chain && !to->preferred_chain) || (o->profile && !to->profile))
		return -ENOMEM;
	return 0;
}

cs_issuer *cs_netproc_acme_new(uv_loop_t *loop, const char *name, const struct cs_acme_opts *o,
			       const char *state_dir, char *err, size_t errlen)
{
	struct px *p = calloc(1, sizeof(*p));

	if (p == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->refs = 1; /* the timer's */
	p->host = cs_acme_host_local_new(loop, name, o, state_dir, err, errlen);
	if (p->host == NULL) {
		free(p);
		return NULL;
	}
	p->base.ops = &px_ops;
	p->base.loop = loop;
	p->base.name = strdup(name);
	if (p->base.name == NULL || copy_opts(&p->o, o) < 0) {
		snprintf(err, errlen, "out of memory");
		px_free(p);
		return NULL;
	}
	p->id = ++S.next_issuer;
	p->pi = (struct np_permit_issuer){ .contact = (char *const *)p->o.contact,
					   .n_contact = p->o.n_contact,
					   .challenge = p->o.challenge,
					   .listen = p->o.http_listen != NULL,
					   .eab = p->o.eab_kid != NULL,
					   .profile = p->o.profile };
	uv_timer_init(loop, &p->timer);
	p->timer.data = p;
	S.loop = loop;
	(void)state_dir; /* the local host's; netproc's root is cs_netproc_enable's */
	TAILQ_INSERT_TAIL(&S.issuers, p, link);
	S.n_open++;
	if (S.state == SUP_READY || S.state == SUP_STARTING) {
		/* A new issuer in a running netproc (SIGHUP): its ca_bundle into the root first. */
		char perr[512];
		if (p->o.ca_bundle != NULL && cs_netproc__prepare_root(perr, sizeof(perr)) < 0)
			cs_err("netproc: cannot refresh its root %s: %s", S.root, perr);
		cs_netproc__send_open(p);
	}
	return &p->base;
}

/* r's copy of the records of dane; 0 or -ENOMEM. */
static int copy_tlsa(struct preq *r, const struct cs_probe_dane *dane)
{
	if (dane == NULL || dane->n == 0)
		return 0;
	r->tlsa = calloc(dane->n, sizeof(*r->tlsa));
	if (r->tlsa == NULL)
		return -ENOMEM;
	memcpy(r->tlsa, dane->recs, dane->n * sizeof(*r->tlsa));
	r->n_tlsa = dane->n;
	return 0;
}

int cs_netproc_probe_start(uv_loop_t *loop, const char *url, const char *want_sha256,
			   const struct cs_probe_dane *dane, int bound_ms, int retry_ms,
			   cs_probe_cb cb, void *arg)
{
	struct preq *r;
	char err[256];

	if (!S.enabled)
		return cs_probe_verify_start(loop, url, want_sha256, dane, bound_ms, retry_ms, cb,
					     arg);
	if (cs_probe_dane_check(dane, err, sizeof(err)) < 0)
		return -EINVAL;
	S.loop = loop;
	r = req_new(NULL, NP_PROBE, arg);
	if (r == NULL)
		return -ENOMEM;
	r->cb.probe = cb;
	r->url = strdup(url);
	r->want = strdup(want_sha256);
	r->bound_ms = bound_ms > 0 ? bound_ms : 0;
	r->retry_ms = retry_ms > 0 ? retry_ms : 0;
	if (r->url == NULL || r->want == NULL || copy_tlsa(r, dane) < 0) {
		r->answered = true;
		cs_netproc__req_free(r);
		return -ENOMEM;
	}
	req_go(r);
	return 0;
}

int cs_netproc_dnsq_start(uv_loop_t *loop, const char *server, const char *owner, int timeout_ms,
			  cs_dnsq_cb cb, void *arg)
{
	struct preq *r;

	if (!S.enabled)
		return cs_dnsq_tlsa_start(loop, server, owner, timeout_ms, cb, arg);
	S.loop = loop;
	r = req_new(NULL, NP_DNSQ, arg);
	if (r == NULL)
		return -ENOMEM;
	r->cb.dnsq = cb;
	r->url = strdup(server);
	r->want = strdup(owner);
	r->bound_ms = timeout_ms > 0 && timeout_ms <= 60000 ? timeout_ms : 5000;
	if (r->url == NULL || r->want == NULL) {
		r->answered = true;
		cs_netproc__req_free(r);
		return -ENOMEM;
	}
	req_go(r);
	return 0;
}
