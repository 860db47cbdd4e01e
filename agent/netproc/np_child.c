/*
 * np_child - the network process (netproc): `certsyncd --netproc ROOT
 * [USER]`, started by the parent (cs_netproc.c) with one end of a socketpair
 * on fd 3.
 *
 * It sandboxes itself (np_sandbox) before it reads a byte, then runs the
 * acme issuers the parent opens in it, on a libuv loop: the ACME client
 * parses everything the CA sends, and answers the CA's http-01 requests on a
 * socket the parent binds. It also runs the verify probes (cs_probe): the
 * TLS handshakes of the services after a reload, and asks the DANE
 * resolver for TLSA records (cs_dnsq). Everything that needs a key or the file system it
 * asks of the parent through the acme host interface (cs_acme_host.h),
 * forwarded here as host calls (NP_N_KEY, _SIGN, _EAB, _CHALL, _LISTEN). Its
 * log lines go to the parent too (NP_N_LOG). When the parent goes away it
 * exits.
 */
#include "np_child.h"
#include "cs_acme_host.h"
#include "cs_chan.h"
#include "cs_log.h"
#include "cs_probe.h"
#include "np_proto.h"
#include "np_sandbox.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>

#define NP_FD 3

/* An issuer the parent opened. */
struct ci {
	LIST_ENTRY(ci) link;
	uint64_t id;
	cs_issuer *is;
	struct child *c;
};

/* A request of the parent's in flight here. */
struct creq {
	LIST_ENTRY(creq) link;
	uint64_t id;
	struct child *c;
};

/* A host call waiting for the parent's answer. */
struct hcall {
	LIST_ENTRY(hcall) link;
	uint64_t id;
	struct rhost *h; /* NULL once cancelled: the answer is awaited and dropped */
	uint16_t type;   /* the NP_N_* sent */
	union {
		cs_acme_host_key_cb key;
		cs_acme_host_text_cb text;
		cs_acme_host_done_cb done;
		cs_acme_host_fd_cb fd;
	} cb;
	void *arg;
};

/* The acme host of one issuer: every call goes to the parent. */
struct rhost {
	struct child *c;
	uint64_t issuer;
	uv_timer_t timer; /* calls close_cb after close, on the next turn */
	void (*close_cb)(void *);
	void *close_arg;
};

struct child {
	uv_loop_t loop;
	cs_chan *chan;
	pthread_t loop_thread;
	LIST_HEAD(, ci) issuers;
	LIST_HEAD(, creq) reqs;
	LIST_HEAD(, hcall) calls;
	uint64_t next_call;
};

static struct child *the_child; /* for the log hook only */

static void send_frame(struct child *c, struct cs_frame_buf *b, int fd)
{
	if (cs_frame_end(b) == 0 && c->chan != NULL)
		cs_chan_send(c->chan, b->p, b->n, fd);
	cs_frame_buf_free(b);
}

static void log_hook(enum cs_log_level level, const char *msg)
{
	struct child *c = the_child;
	struct cs_frame_buf b = { 0 };

	if (c == NULL || c->chan == NULL || !pthread_equal(pthread_self(), c->loop_thread)) {
		fprintf(stderr, "certsync netproc: %s\n", msg);
		return;
	}
	cs_frame_begin(&b, NP_N_LOG, 0);
	cs_frame_u64(&b, NP_T_LEVEL, (uint64_t)level);
	cs_frame_str(&b, NP_T_TEXT, msg);
	send_frame(c, &b, -1);
}

/* ---- host calls: forwarded to the parent ------------------------------- */

static uint64_t req_of(void *call)
{
	return call != NULL ? ((struct creq *)call)->id : 0;
}

/* Registers a host call of type and starts its frame in b; NULL on ENOMEM. */
static struct hcall *call_begin(struct rhost *h, void *call, uint16_t type, void *arg,
				struct cs_frame_buf *b)
{
	struct hcall *hc = calloc(1, sizeof(*hc));

	if (hc == NULL)
		return NULL;
	hc->id = ++h->c->next_call;
	hc->h = h;
	hc->type = type;
	hc->arg = arg;
	LIST_INSERT_HEAD(&h->c->calls, hc, link);
	cs_frame_begin(b, type, hc->id);
	cs_frame_u64(b, NP_T_ISSUER, h->issuer);
	cs_frame_u64(b, NP_T_REQ, req_of(call));
	return hc;
}

static int call_send(struct rhost *h, struct hcall *hc, struct cs_frame_buf *b)
{
	int rc = cs_frame_end(b);

	if (rc == 0)
		rc = h->c->chan != NULL ? cs_chan_send(h->c->chan, b->p, b->n, -1) : -EPIPE;
	cs_frame_buf_free(b);
	if (rc < 0) {
		LIST_REMOVE(hc, link);
		free(hc);
	}
	return rc;
}

static int rh_account_key(void *host, void *call, cs_acme_host_key_cb cb, void *arg)
{
	struct cs_frame_buf b = { 0 };
	struct hcall *hc = call_begin(host, call, NP_N_KEY, arg, &b);

	if (hc == NULL)
		return -ENOMEM;
	hc->cb.key = cb;
	return call_send(host, hc, &b);
}

static int rh_sign(void *host, void *call, const struct cs_acme_host_sign *r,
		   cs_acme_host_text_cb cb, void *arg)
{
	struct cs_frame_buf b = { 0 };
	struct hcall *hc = call_begin(host, call, NP_N_SIGN, arg, &b);

	if (hc == NULL)
		return -ENOMEM;
	hc->cb.text = cb;
	cs_frame_str(&b, NP_T_KID, r->kid);
	cs_frame_str(&b, NP_T_NONCE, r->nonce);
	cs_frame_str(&b, NP_T_URL, r->url);
	cs_frame_str(&b, NP_T_PAYLOAD, r->payload);
	return call_send(host, hc, &b);
}

static int rh_eab(void *host, void *call, const char *url, cs_acme_host_text_cb cb, void *arg)
{
	struct cs_frame_buf b = { 0 };
	struct hcall *hc = call_begin(host, call, NP_N_EAB, arg, &b);

	if (hc == NULL)
		return -ENOMEM;
	hc->cb.text = cb;
	cs_frame_str(&b, NP_T_URL, url);
	return call_send(host, hc, &b);
}

static int rh_challenge(void *host, void *call, const struct cs_acme_host_chall *ch, bool set,
			cs_acme_host_done_cb cb, void *arg)
{
	struct cs_frame_buf b = { 0 };
	struct hcall *hc = call_begin(host, call, NP_N_CHALL, arg, &b);

	if (hc == NULL)
		return -ENOMEM;
	hc->cb.done = cb;
	cs_frame_u64(&b, NP_T_SET, set ? 1 : 0);
	cs_frame_u64(&b, NP_T_CHALLENGE, (uint64_t)ch->type);
	cs_frame_str(&b, NP_T_IDENT, ch->ident);
	cs_frame_str(&b, NP_T_TOKEN, ch->token);
	cs_frame_str(&b, NP_T_CERT_NAME, ch->cert_name);
	return call_send(host, hc, &b);
}

static int rh_listen(void *host, void *call, cs_acme_host_fd_cb cb, void *arg)
{
	struct cs_frame_buf b = { 0 };
	struct hcall *hc = call_begin(host, call, NP_N_LISTEN, arg, &b);

	if (hc == NULL)
		return -ENOMEM;
	hc->cb.fd = cb;
	return call_send(host, hc, &b);
}

static void on_rhost_freed(uv_handle_t *t)
{
	struct rhost *h = t->data;
	void (*cb)(void *) = h->close_cb;
	void *arg = h->close_arg;

	free(h);
	if (cb != NULL)
		cb(arg);
}

static void on_rhost_timer(uv_timer_t *t)
{
	uv_close((uv_handle_t *)t, on_rhost_freed);
}

static void call_cancel(struct hcall *hc);

/* Calls still waiting are answered -ECANCELED now (the parent's answers dropped later). */
static void rh_close(void *host, void (*close_cb)(void *), void *arg)
{
	struct rhost *h = host;
	struct hcall *hc;

	h->close_cb = close_cb;
	h->close_arg = arg;
again: /* a callback may add or cancel calls: start over after each */
	LIST_FOREACH(hc, &h->c->calls, link)
		if (hc->h == h) {
			call_cancel(hc);
			goto again;
		}
	uv_timer_start(&h->timer, on_rhost_timer, 0, 0);
}

static const struct cs_acme_host_ops remote_host_ops = {
	.account_key = rh_account_key,
	.sign = rh_sign,
	.eab = rh_eab,
	.challenge = rh_challenge,
	.listen = rh_listen,
	.close = rh_close,
};

static void call_cancel(struct hcall *hc)
{
	const char *e = "cancelled: the issuer is closing";

	hc->h = NULL;
	switch (hc->type) {
	case NP_N_KEY:
		hc->cb.key(hc->arg, -ECANCELED, NULL, false, e);
		break;
	case NP_N_SIGN:
	case NP_N_EAB:
		hc->cb.text(hc->arg, -ECANCELED, NULL, e);
		break;
	case NP_N_CHALL:
		hc->cb.done(hc->arg, -ECANCELED, e);
		break;
	case NP_N_LISTEN:
		hc->cb.fd(hc->arg, -ECANCELED, -1, e);
		break;
	}
}

/* The parent's answer m to host call hc (NP_P_FAIL for any of them). */
static void call_answer(struct child *c, struct hcall *hc, const struct cs_frame_msg *m)
{
	const char *error = cs_frame_str_of(m, NP_T_ERROR);
	int st = m->type == NP_P_FAIL ? np_proto_get_status(m) : 0;
	const struct cs_frame_field *f;

	if (m->type == NP_P_FAIL && st == 0)
		st = -EIO;
	if (hc->h == NULL) { /* cancelled: only a socket needs closing */
		int fd = m->type == NP_P_FD ? cs_chan_take_fd(c->chan) : -1;
		if (fd >= 0)
			close(fd);
		return;
	}
	switch (hc->type) {
	case NP_N_KEY:
		if (m->type == NP_P_KEY) {
			f = cs_frame_get(m, NP_T_PUBKEY, 0);
			struct cs_der pub = { (unsigned char *)f->p, f->n };
			hc->cb.key(hc->arg, 0, &pub, cs_frame_u64_of(m, NP_T_EXISTED, 0) != 0, NULL);
		} else {
			hc->cb.key(hc->arg, st, NULL, false, error);
		}
		break;
	case NP_N_SIGN:
	case NP_N_EAB:
		hc->cb.text(hc->arg, st, m->type == NP_P_TEXT ? cs_frame_str_of(m, NP_T_TEXT) : NULL,
			    error);
		break;
	case NP_N_CHALL:
		hc->cb.done(hc->arg, m->type == NP_P_DONE ? np_proto_get_status(m) : st, error);
		break;
	case NP_N_LISTEN: {
		int fd = m->type == NP_P_FD ? cs_chan_take_fd(c->chan) : -1;
		if (m->type == NP_P_FD && fd < 0)
			st = -EBADF;
		hc->cb.fd(hc->arg, fd >= 0 ? 0 : st, fd, fd >= 0 ? NULL : error);
		break;
	}
	}
}

/* ---- the parent's requests --------------------------------------------- */

static struct ci *find_issuer(struct child *c, uint64_t id)
{
	struct ci *ci;

	LIST_FOREACH(ci, &c->issuers, link)
		if (ci->id == id)
			return ci;
	return NULL;
}

static struct creq *creq_new(struct child *c, uint64_t id)
{
	struct creq *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->id = id;
	r->c = c;
	LIST_INSERT_HEAD(&c->reqs, r, link);
	return r;
}

static void creq_free(struct creq *r)
{
	LIST_REMOVE(r, link);
	free(r);
}

static void on_issued(void *arg, const struct cs_issue_result *res)
{
	struct creq *r = arg;
	struct cs_frame_buf b = { 0 };

	cs_frame_begin(&b, NP_N_ISSUED, r->id);
	np_proto_put_status(&b, res->status);
	if (res->status < 0)
		cs_frame_str(&b, NP_T_ERROR, res->error);
	if (res->leaf.n > 0)
		cs_frame_bytes(&b, NP_T_LEAF, res->leaf.p, res->leaf.n);
	for (size_t i = 0; i < res->n_chain; i++)
		cs_frame_bytes(&b, NP_T_CHAIN, res->chain[i].p, res->chain[i].n);
	if (res->retry_after > 0)
		cs_frame_u64(&b, NP_T_RETRY_AFTER, (uint64_t)res->retry_after);
	send_frame(r->c, &b, -1);
	creq_free(r);
}

/* The order an issue created: the parent keeps it for the next netproc, should this one die. */
static void on_order_created(void *arg, const char *url)
{
	struct creq *r = arg;
	struct cs_frame_buf b = { 0 };

	cs_frame_begin(&b, NP_N_ORDER, r->id);
	cs_frame_str(&b, NP_T_ORDER_URL, url);
	send_frame(r->c, &b, -1);
}

static void on_done(void *arg, int status, const char *error)
{
	struct creq *r = arg;
	struct cs_frame_buf b = { 0 };

	cs_frame_begin(&b, NP_N_DONE, r->id);
	np_proto_put_status(&b, status);
	cs_frame_str(&b, NP_T_ERROR, error);
	send_frame(r->c, &b, -1);
	creq_free(r);
}

static void on_window(void *arg, int status, const struct cs_issuer_window *w, const char *error)
{
	struct creq *r = arg;
	struct cs_frame_buf b = { 0 };

	cs_frame_begin(&b, NP_N_WINDOW, r->id);
	np_proto_put_status(&b, status);
	cs_frame_str(&b, NP_T_ERROR, error);
	if (status == 0 && w != NULL) {
		cs_frame_u64(&b, NP_T_START, (uint64_t)w->start);
		cs_frame_u64(&b, NP_T_END, (uint64_t)w->end);
		cs_frame_u64(&b, NP_T_RETRY_AFTER, (uint64_t)(w->retry_after > 0 ? w->retry_after : 0));
		cs_frame_str(&b, NP_T_TEXT, w->explanation);
	}
	send_frame(r->c, &b, -1);
	creq_free(r);
}

static void on_probed(void *arg, bool ok, const char *served, const char *msg)
{
	struct creq *r = arg;
	struct cs_frame_buf b = { 0 };

	cs_frame_begin(&b, NP_N_PROBED, r->id);
	cs_frame_u64(&b, NP_T_OK, ok ? 1 : 0);
	cs_frame_str(&b, NP_T_SERVED, served);
	cs_frame_str(&b, NP_T_TEXT, msg);
	send_frame(r->c, &b, -1);
	creq_free(r);
}

/* A verify probe: the handshake of a server, compared with what was deployed. */
static void do_probe(struct child *c, const struct cs_frame_msg *m)
{
	struct creq *r = creq_new(c, m->id);
	struct cs_tlsa_rec tlsa[CS_PROBE_DANE_MAX];
	struct cs_probe_dane dane;
	char err[256], msg[300];
	int rc;

	if (r == NULL)
		return;
	if (np_proto_get_tlsa(m, tlsa, &dane, err, sizeof(err)) < 0) {
		snprintf(msg, sizeof(msg), "cannot probe: %s", err);
		on_probed(r, false, "", msg);
		return;
	}
	rc = cs_probe_verify_start(&c->loop, cs_frame_str_of(m, NP_T_URL),
				   cs_frame_str_of(m, NP_T_WANT), &dane,
				   (int)cs_frame_u64_of(m, NP_T_BOUND, 0),
				   (int)cs_frame_u64_of(m, NP_T_RETRY, 0), on_probed, r);
	if (rc < 0) {
		snprintf(msg, sizeof(msg), "cannot probe: %s", strerror(-rc));
		on_probed(r, false, "", msg);
	}
}

static void on_dnsa(void *arg, int status, const struct cs_dnsq_answer *a, const char *err)
{
	struct creq *r = arg;
	struct cs_frame_buf b = { 0 };

	cs_frame_begin(&b, NP_N_DNSA, r->id);
	np_proto_put_status(&b, status);
	if (status != 0)
		cs_frame_str(&b, NP_T_ERROR, err);
	else
		np_proto_put_answer(&b, a);
	send_frame(r->c, &b, -1);
	creq_free(r);
}

/* A TLSA question to the DANE resolver: asked and parsed here, the answer's fields sent back. */
static void do_dnsq(struct child *c, const struct cs_frame_msg *m)
{
	struct creq *r = creq_new(c, m->id);
	const char *owner = cs_frame_str_of(m, NP_T_OWNER);
	char msg[300];
	int rc;

	if (r == NULL)
		return;
	cs_debug("TLSA question for %s to %s", owner, cs_frame_str_of(m, NP_T_RESOLVER));
	rc = cs_dnsq_tlsa_start(&c->loop, cs_frame_str_of(m, NP_T_RESOLVER), owner,
				(int)cs_frame_u64_of(m, NP_T_BOUND, 0), on_dnsa, r);
	if (rc < 0) {
		snprintf(msg, sizeof(msg), "cannot ask for %s TLSA: %s", owner, strerror(-rc));
		on_dnsa(r, rc, NULL, msg);
	}
}

/* Opens the acme issuer of m; a failure leaves the surrogate that fails its calls with why. */
static void do_open(struct child *c, const struct cs_frame_msg *m)
{
	char err[512] = "";
	const char *contact[64];
	struct cs_acme_opts o = {
		.directory = cs_frame_str_of(m, NP_T_DIRECTORY),
		.contact = (char *const *)contact,
		.challenge = (enum cs_acme_challenge)cs_frame_u64_of(m, NP_T_CHALLENGE, 0),
		.webroot = cs_frame_str_of(m, NP_T_WEBROOT),
		.http_listen = cs_frame_str_of(m, NP_T_LISTEN),
		.dns_hook = cs_frame_str_of(m, NP_T_HOOK),
		.ca_bundle = cs_frame_str_of(m, NP_T_CA_BUNDLE),
		.eab_kid = cs_frame_str_of(m, NP_T_EAB_KID),
		.preferred_chain = cs_frame_str_of(m, NP_T_CHAIN_PREF),
		.profile = cs_frame_str_of(m, NP_T_PROFILE),
		.poll_timeout_s = (int64_t)cs_frame_u64_of(m, NP_T_POLL_TIMEOUT, 0),
		.max_orders = (unsigned)cs_frame_u64_of(m, NP_T_MAX_ORDERS, 0),
	};
	const char *name = cs_frame_str_of(m, NP_T_NAME);
	struct ci *ci;
	struct rhost *h;

	o.eab_hmac_key = o.eab_kid != NULL ? "" : NULL;
	for (; o.n_contact < cs_frame_count(m, NP_T_CONTACT) && o.n_contact < 64; o.n_contact++)
		contact[o.n_contact] = (const char *)cs_frame_get(m, NP_T_CONTACT, o.n_contact)->p;
	if (find_issuer(c, m->id) != NULL) {
		cs_err("netproc: issuer %llu opened twice", (unsigned long long)m->id);
		return;
	}
	ci = calloc(1, sizeof(*ci));
	h = calloc(1, sizeof(*h));
	if (ci == NULL || h == NULL) {
		free(ci);
		free(h);
		cs_err("netproc: out of memory");
		return;
	}
	h->c = c;
	h->issuer = m->id;
	uv_timer_init(&c->loop, &h->timer);
	h->timer.data = h;
	ci->id = m->id;
	ci->c = c;
	ci->is = cs_acme_issuer_new_hosted(&c->loop, name, &o, &remote_host_ops, h, err,
					   sizeof(err));
	if (ci->is == NULL) {
		char why[640];
		snprintf(why, sizeof(why), "issuer %s cannot be used: %s", name, err);
		ci->is = cs_issuer_broken_new(&c->loop, name, why);
	}
	if (ci->is == NULL) {
		free(ci);
		cs_err("netproc: out of memory");
		return;
	}
	LIST_INSERT_HEAD(&c->issuers, ci, link);
}

static void do_issue(struct child *c, struct ci *ci, const struct cs_frame_msg *m)
{
	size_t n = cs_frame_count(m, NP_T_DNSNAME);
	char **names = calloc(n, sizeof(char *));
	const struct cs_frame_field *csr = cs_frame_get(m, NP_T_CSR, 0);
	const struct cs_frame_field *rep = cs_frame_get(m, NP_T_REPLACES, 0);
	struct creq *r = creq_new(c, m->id);
	struct cs_issue_request req = {
		.cert_name = cs_frame_str_of(m, NP_T_CERT_NAME),
		.n_names = n,
		.usage = (enum cs_usage)cs_frame_u64_of(m, NP_T_USAGE, 0),
		.csr = { (unsigned char *)csr->p, csr->n },
		.replaces = { rep ? (unsigned char *)rep->p : NULL, rep ? rep->n : 0 },
		.resume_order = cs_frame_str_of(m, NP_T_ORDER_URL),
		.order_created = on_order_created,
	};
	struct cs_issue_result res = { .status = -ENOMEM };

	if (names == NULL || r == NULL) {
		free(names);
		if (r != NULL) {
			snprintf(res.error, sizeof(res.error), "out of memory");
			on_issued(r, &res);
		}
		return;
	}
	for (size_t i = 0; i < n; i++)
		names[i] = (char *)cs_frame_get(m, NP_T_DNSNAME, i)->p;
	req.names = names;
	res.status = ci->is->ops->issue(ci->is, &req, on_issued, r);
	free(names);
	if (res.status < 0) {
		snprintf(res.error, sizeof(res.error), "cannot start: %s", strerror(-res.status));
		on_issued(r, &res);
	}
}

static void do_request(struct child *c, const struct cs_frame_msg *m)
{
	struct ci *ci = find_issuer(c, cs_frame_u64_of(m, NP_T_ISSUER, 0));
	const struct cs_frame_field *leaf = cs_frame_get(m, NP_T_LEAF, 0);
	struct cs_der d = { leaf ? (unsigned char *)leaf->p : NULL, leaf ? leaf->n : 0 };
	struct creq *r;
	int rc;

	if (ci != NULL && m->type == NP_P_ISSUE) {
		do_issue(c, ci, m);
		return;
	}
	r = creq_new(c, m->id);
	if (r == NULL)
		return;
	if (ci == NULL) {
		/* Never opened here (the parent would not do that): the request fails, it does not hang. */
		static const char why[] = "the issuer is not open in the network process";
		struct cs_issue_result res = { .status = -ENOENT };
		snprintf(res.error, sizeof(res.error), "%s", why);
		if (m->type == NP_P_ISSUE)
			on_issued(r, &res);
		else if (m->type == NP_P_REVOKE)
			on_done(r, -ENOENT, why);
		else
			on_window(r, -ENOENT, NULL, why);
		return;
	}
	if (m->type == NP_P_REVOKE) {
		int reason = (int)cs_frame_u64_of(m, NP_T_REASON, 0) - 1;
		rc = ci->is->ops->revoke != NULL ? ci->is->ops->revoke(ci->is, &d, reason, on_done, r)
						 : -ENOTSUP;
		if (rc < 0)
			on_done(r, rc, "the issuer cannot revoke");
	} else {
		rc = ci->is->ops->renewal_info != NULL
			     ? ci->is->ops->renewal_info(ci->is, &d, on_window, r)
			     : -ENOTSUP;
		if (rc < 0)
			on_window(r, rc, NULL, NULL);
	}
}

static void on_issuer_closed(void *arg)
{
	free(arg);
}

#ifdef CS_NETPROC_TEST
/*
 * Test builds only: what a compromised netproc would try. "open:PATH" opens
 * PATH for reading and says what happened; "forbidden" asks the parent to
 * sign an account deactivation, which no renewal may ask for.
 */
static void do_test(struct child *c, const struct cs_frame_msg *m)
{
	const char *what = cs_frame_str_of(m, NP_T_WHAT);
	char out[4200];
	struct cs_frame_buf b = { 0 };

	if (strncmp(what, "open:", 5) == 0) {
		int fd = open(what + 5, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		snprintf(out, sizeof(out), "%s: %s", what, fd >= 0 ? "opened" : strerror(errno));
		if (fd >= 0)
			close(fd);
	} else if (strcmp(what, "forbidden") == 0) {
		cs_frame_begin(&b, NP_N_SIGN, ++c->next_call);
		cs_frame_u64(&b, NP_T_ISSUER, c->issuers.lh_first ? c->issuers.lh_first->id : 1);
		cs_frame_u64(&b, NP_T_REQ, c->reqs.lh_first ? c->reqs.lh_first->id : 0);
		cs_frame_str(&b, NP_T_KID, "https://ca.invalid/acct/1");
		cs_frame_str(&b, NP_T_NONCE, "nonce");
		cs_frame_str(&b, NP_T_URL, "https://ca.invalid/acct/1");
		cs_frame_str(&b, NP_T_PAYLOAD, "{\"status\":\"deactivated\"}");
		send_frame(c, &b, -1);
		snprintf(out, sizeof(out), "%s: sent", what);
	} else {
		snprintf(out, sizeof(out), "%s: unknown", what);
	}
	cs_frame_begin(&b, NP_N_TEST, m->id);
	cs_frame_str(&b, NP_T_WHAT, out);
	send_frame(c, &b, -1);
}
#endif

static void on_frame(void *arg, const unsigned char *frame, size_t n)
{
	struct child *c = arg;
	struct cs_frame_msg m;
	char err[256];
	struct hcall *hc;
	struct ci *ci;

	if (cs_frame_parse(&np_proto_schema, frame, n, &m, err, sizeof(err)) < 0 ||
	    !np_proto_from_parent(m.type)) {
		/* The parent does not send garbage: something is badly wrong. */
		fprintf(stderr, "certsync netproc: bad frame from the parent: %s\n", err);
		exit(2);
	}
	switch (m.type) {
	case NP_P_OPEN:
		do_open(c, &m);
		break;
	case NP_P_CLOSE:
		if ((ci = find_issuer(c, m.id)) != NULL) {
			LIST_REMOVE(ci, link);
			ci->is->ops->close(ci->is, on_issuer_closed, ci);
		}
		break;
	case NP_P_ISSUE:
	case NP_P_REVOKE:
	case NP_P_ARI:
		do_request(c, &m);
		break;
	case NP_P_PROBE:
		do_probe(c, &m);
		break;
	case NP_P_DNSQ:
		do_dnsq(c, &m);
		break;
#ifdef CS_NETPROC_TEST
	case NP_P_TEST:
		do_test(c, &m);
		break;
#endif
	default:
		LIST_FOREACH(hc, &c->calls, link)
			if (hc->id == m.id)
				break;
		if (hc == NULL || m.type == NP_P_TEST) {
			fprintf(stderr, "certsync netproc: an answer to no call (%s %llu)\n",
				m.def->name, (unsigned long long)m.id);
			exit(2);
		}
		LIST_REMOVE(hc, link);
		call_answer(c, hc, &m);
		free(hc);
	}
	cs_frame_msg_free(&m);
}

static void on_chan_error(void *arg, int status, const char *why)
{
	struct child *c = arg;

	/* The parent is gone (or broke the protocol): nothing to do without it. */
	if (status != 0)
		fprintf(stderr, "certsync netproc: the channel to the parent failed: %s\n", why);
	cs_chan_close(c->chan);
	c->chan = NULL;
	_exit(status == 0 ? 0 : 2);
}

/* Closes every descriptor from fd up. */
static void close_from(int fd)
{
	struct rlimit rl;

	if (syscall(SYS_close_range, (unsigned)fd, ~0U, 0) == 0)
		return;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur > 65536)
		rl.rlim_cur = 65536;
	for (int i = fd; i < (int)rl.rlim_cur; i++)
		close(i);
}

int np_child_main(int argc, char **argv)
{
	static struct child c;
	struct np_sandbox_opts so = { .root = argc > 2 ? argv[2] : NULL,
				      .user = argc > 3 ? argv[3] : NULL };
	struct stat sb;
	char err[512] = "";
	struct cs_frame_buf b = { 0 };

	if (so.root == NULL || fstat(NP_FD, &sb) < 0 || !S_ISSOCK(sb.st_mode)) {
		fprintf(stderr, "certsyncd --netproc is started by certsyncd itself\n");
		return 2;
	}
	/* Nothing of the parent's but the channel and stdio: the parent's own inheritance too. */
	close_from(NP_FD + 1);
	signal(SIGPIPE, SIG_IGN);
	/* stderr may be a file of the parent's: a write there fails (RLIMIT_FSIZE 0), it does not kill. */
	signal(SIGXFSZ, SIG_IGN);
	/* Read what OpenSSL and libcurl load from files before the root goes. */
	OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, NULL);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		fprintf(stderr, "certsync netproc: libcurl cannot start\n");
		return 2;
	}
	if (np_sandbox_enter(&so, err, sizeof(err)) < 0) {
		fprintf(stderr, "certsync netproc: cannot sandbox itself: %s\n", err);
		return 2;
	}
	if (uv_loop_init(&c.loop) < 0)
		return 2;
	c.loop_thread = pthread_self();
	c.chan = cs_chan_open(&c.loop, NP_FD, CS_FRAME_MAX, on_frame, on_chan_error, &c);
	if (c.chan == NULL) {
		fprintf(stderr, "certsync netproc: %s\n", strerror(errno));
		return 2;
	}
	the_child = &c;
	cs_log_set_level(CS_LOG_DEBUG);
	cs_log_set_hook(log_hook);
	cs_frame_begin(&b, NP_N_READY, 0);
	send_frame(&c, &b, -1);
	uv_run(&c.loop, UV_RUN_DEFAULT);
	_exit(0);
}
