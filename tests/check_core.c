/*
 * check_core - the renewal core driven through its test seam: a fake clock,
 * a fake issuer (signs with a CA made here, dated by the fake clock, and can
 * be told to fail), fake reloaders and fake verify probes, all answering on
 * the loop as the real ones do. The pipeline, deploy, generations and state
 * files are the real ones. Each test is one failure path that an operator
 * relies on converging:
 *
 *  - a rolled-back renewal backs off (one issuance per attempt, delays
 *    doubling) and the rollback target survives any number of failures;
 *  - a deploy failure keeps the issued certificate and deploys it again
 *    without ordering another one;
 *  - a forced renewal that was rolled back is tried again by itself;
 *  - an expired certificate is retried at least every five minutes;
 *  - the end of a renewal is reported once, with its outcome (--wait);
 *  - a +100 day step of the wall clock renews each expired cert once.
 */
#include "cs_config.h"
#include "cs_deploy.h"
#include "cs_log.h"
#include "cs_pipeline.h"
#include "cs_state.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DAY 86400

static char *tmp;
static time_t fake_now;

/* What the fakes are told to do, and what they saw. */
static struct {
	bool issue_fails;
	int64_t validity;      /* of issued leaves, seconds */
	bool reload_fails;
	bool verify_fails;
	int issued;            /* certificates signed */
	int issue_requests;    /* issue() calls */
	int reloads;
	int probes;
} fk;

static EVP_PKEY *ca_key;
static X509 *ca_cert;
static long next_serial = 1000;

static time_t clock_now(void *arg)
{
	(void)arg;
	return fake_now;
}

/* ---- a CA of our own, dated by the fake clock ---- */

static void make_ca(void)
{
	X509_NAME *n;

	ca_key = EVP_EC_gen("P-256");
	ck_assert_ptr_nonnull(ca_key);
	ca_cert = X509_new();
	X509_set_version(ca_cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(ca_cert), 1);
	X509_time_adj_ex(X509_getm_notBefore(ca_cert), -1, 0, &fake_now);
	X509_time_adj_ex(X509_getm_notAfter(ca_cert), 3650, 0, &fake_now);
	n = X509_get_subject_name(ca_cert);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"core test CA",
				   -1, -1, 0);
	X509_set_issuer_name(ca_cert, n);
	X509_set_pubkey(ca_cert, ca_key);
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, ca_cert, ca_cert, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints,
						  "critical,CA:TRUE");
	X509_add_ext(ca_cert, ext, -1);
	X509_EXTENSION_free(ext);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
	X509_add_ext(ca_cert, ext, -1);
	X509_EXTENSION_free(ext);
	ck_assert_int_gt(X509_sign(ca_cert, ca_key, EVP_sha256()), 0);
}

/* A leaf for csr and names, valid from a minute ago (fake clock) for fk.validity. */
static X509 *sign_leaf(X509_REQ *csr, char *const *names, size_t n)
{
	X509 *x = X509_new();
	EVP_PKEY *pub = X509_REQ_get_pubkey(csr);
	char san[1024] = "";
	X509V3_CTX ctx;

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), next_serial++);
	X509_time_adj_ex(X509_getm_notBefore(x), 0, -60, &fake_now);
	X509_time_adj_ex(X509_getm_notAfter(x), 0, (long)fk.validity, &fake_now);
	X509_set_subject_name(x, X509_REQ_get_subject_name(csr));
	X509_set_issuer_name(x, X509_get_subject_name(ca_cert));
	X509_set_pubkey(x, pub);
	EVP_PKEY_free(pub);
	for (size_t i = 0; i < n; i++) {
		size_t used = strlen(san);
		snprintf(san + used, sizeof(san) - used, "%sDNS:%s", i ? "," : "", names[i]);
	}
	X509V3_set_ctx(&ctx, ca_cert, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_ext_key_usage, "serverAuth");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	ck_assert_int_gt(X509_sign(x, ca_key, EVP_sha256()), 0);
	return x;
}

/* ---- the fake issuer: answers on the next loop turn ---- */

struct fake_req {
	uv_timer_t timer;
	cs_issue_cb cb;
	void *arg;
	X509_REQ *csr; /* decoded from the request's DER */
	char *const *names;
	size_t n_names;
	struct fake_req *next;
	struct fake_issuer *fi;
};

struct fake_issuer {
	struct cs_issuer base;
	struct fake_req *reqs;
};

static void req_closed(uv_handle_t *h)
{
	free(h->data);
}

static void unlink_req(struct fake_req *r)
{
	for (struct fake_req **p = &r->fi->reqs; *p != NULL; p = &(*p)->next)
		if (*p == r) {
			*p = r->next;
			return;
		}
}

static void fake_fire(uv_timer_t *t)
{
	struct fake_req *r = t->data;
	struct cs_issue_result res = { 0 };

	unlink_req(r);
	if (fk.issue_fails) {
		res.status = -EIO;
		snprintf(res.error, sizeof(res.error), "the fake CA is down");
	} else {
		X509 *leaf = sign_leaf(r->csr, r->names, r->n_names);
		STACK_OF(X509) *chain = sk_X509_new_null();
		sk_X509_push(chain, ca_cert);
		ck_assert_int_eq(cs_issuer_result_set(&res, leaf, chain), 0);
		X509_free(leaf);
		sk_X509_free(chain);
		fk.issued++;
	}
	r->cb(r->arg, &res);
	cs_issuer_result_clear(&res);
	X509_REQ_free(r->csr);
	uv_close((uv_handle_t *)t, req_closed);
}

static int fake_issue(cs_issuer *is, const struct cs_issue_request *req, cs_issue_cb cb, void *arg)
{
	struct fake_issuer *fi = (struct fake_issuer *)is;
	struct fake_req *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return -ENOMEM;
	fk.issue_requests++;
	r->cb = cb;
	r->arg = arg;
	r->csr = cs_issuer_request_csr(req, (char[200]){ 0 }, 200);
	ck_assert_ptr_nonnull(r->csr);
	r->names = req->names;
	r->n_names = req->n_names;
	r->fi = fi;
	r->next = fi->reqs;
	fi->reqs = r;
	uv_timer_init(is->loop, &r->timer);
	r->timer.data = r;
	uv_timer_start(&r->timer, fake_fire, 0, 0);
	return 0;
}

static void fake_issuer_close(cs_issuer *is, void (*close_cb)(void *arg), void *arg)
{
	struct fake_issuer *fi = (struct fake_issuer *)is;
	struct fake_req *r;

	/* Pending issuances are cancelled, their callbacks run before close_cb. */
	while ((r = fi->reqs) != NULL) {
		struct cs_issue_result res = { .status = -ECANCELED };
		fi->reqs = r->next;
		uv_timer_stop(&r->timer);
		r->cb(r->arg, &res);
		X509_REQ_free(r->csr);
		uv_close((uv_handle_t *)&r->timer, req_closed);
	}
	free(fi->base.name);
	free(fi);
	if (close_cb)
		close_cb(arg);
}

static const struct cs_issuer_ops fake_issuer_ops = {
	.type = "fake",
	.issue = fake_issue,
	.close = fake_issuer_close,
};

static cs_issuer *fake_issuer_new(void *arg, uv_loop_t *loop, const struct cs_cfg_issuer *ci,
				  const char *state_dir)
{
	struct fake_issuer *fi = calloc(1, sizeof(*fi));

	(void)arg;
	(void)state_dir;
	fi->base.ops = &fake_issuer_ops;
	fi->base.loop = loop;
	fi->base.name = strdup(ci->name);
	return &fi->base;
}

/* ---- fake reloader and verify probes ---- */

struct later {
	uv_timer_t timer;
	void (*fire)(struct later *l);
	cs_reload_cb rcb;
	cs_verify_cb vcb;
	void *arg;
};

static void later_closed(uv_handle_t *h)
{
	free(h->data);
}

static void later_fire(uv_timer_t *t)
{
	struct later *l = t->data;

	l->fire(l);
	uv_close((uv_handle_t *)t, later_closed);
}

static void later(uv_loop_t *loop, struct later *l)
{
	uv_timer_init(loop, &l->timer);
	l->timer.data = l;
	uv_timer_start(&l->timer, later_fire, 0, 0);
}

static void reload_fire(struct later *l)
{
	struct cs_reload_result res = { 0 };

	if (fk.reload_fails) {
		res.status = -EIO;
		snprintf(res.message, sizeof(res.message), "the fake service refuses the key");
	}
	l->rcb(l->arg, &res);
}

static int fake_reload(cs_reloader *r, const struct cs_reload_ctx *ctx, cs_reload_cb cb, void *arg)
{
	struct later *l = calloc(1, sizeof(*l));

	(void)ctx;
	fk.reloads++;
	l->fire = reload_fire;
	l->rcb = cb;
	l->arg = arg;
	later(r->loop, l);
	return 0;
}

static void fake_reloader_close(cs_reloader *r)
{
	free(r->name);
	free(r);
}

static const struct cs_reloader_ops fake_reloader_ops = {
	.type = "fake",
	.reload = fake_reload,
	.close = fake_reloader_close,
};

static cs_reloader *fake_reloader_new(void *arg, uv_loop_t *loop, const struct cs_cfg_reload *cr)
{
	cs_reloader *r = calloc(1, sizeof(*r));

	(void)arg;
	r->ops = &fake_reloader_ops;
	r->loop = loop;
	r->name = strdup(cr->name);
	return r;
}

static void verify_fire(struct later *l)
{
	l->vcb(l->arg, !fk.verify_fails,
	       fk.verify_fails ? "smtp://127.0.0.1:25: serves another certificate"
			       : "smtp://127.0.0.1:25: ok");
}

static int fake_verify(void *arg, uv_loop_t *loop, const struct cs_cfg_list *urls,
		       const char *want_sha256, int bound_ms, cs_verify_cb cb, void *cbarg)
{
	struct later *l = calloc(1, sizeof(*l));

	(void)arg;
	(void)urls;
	(void)want_sha256;
	(void)bound_ms;
	fk.probes++;
	l->fire = verify_fire;
	l->vcb = cb;
	l->arg = cbarg;
	later(loop, l);
	return 0;
}

static const struct cs_pipeline_drivers fakes = {
	.now = clock_now,
	.issuer_new = fake_issuer_new,
	.reloader_new = fake_reloader_new,
	.verify_start = fake_verify,
};

/* ---- a pipeline on a private loop ---- */

struct run {
	uv_loop_t loop;
	struct cs_config *cfg;
	struct cs_pipeline *pl;
	int closed;
};

static void setup(void)
{
	tmp = cs_test_mkdtemp();
	ck_assert_ptr_nonnull(tmp);
	cs_log_open("check_core", CS_LOG_STDERR, CS_LOG_ERR);
	memset(&fk, 0, sizeof(fk));
	fk.validity = 30 * DAY;
	fake_now = 1900000000; /* 2030: nothing here depends on the real date */
	make_ca();
}

static void teardown(void)
{
	X509_free(ca_cert);
	EVP_PKEY_free(ca_key);
	cs_test_rmrf(tmp);
	free(tmp);
}

/* Starts the daemon's pipeline over n certs c0..c(n-1), each with a bundle in tmp/out. */
static void start(struct run *r, int n)
{
	char *text, *p, err[512];
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	struct cs_cfg_errors errs;

	fprintf(f,
		"[agent]\nstate_dir = %s/state\nretry_min = 60s\nretry_max = 6h\n\n"
		"[issuer \"ca\"]\ntype = local-ca\ndir = %s/ca\n\n"
		"[reload \"svc\"]\ntype = exec\ncommand = /bin/true\n\n",
		tmp, tmp);
	for (int i = 0; i < n; i++)
		fprintf(f,
			"[cert \"c%d\"]\nissuer = ca\nnames = c%d.example.test\n"
			"bundle = %s/out/c%d.pem\nreload = svc\nverify = smtp://127.0.0.1:25\n\n",
			i, i, tmp, i);
	fclose(f);
	ck_assert_int_ge(asprintf(&p, "%s/out", tmp), 0);
	mkdir(p, 0755);
	free(p);
	/* The fake issuer stands for [issuer "ca"]: its certificate is the chain's trust. */
	ck_assert_int_ge(asprintf(&p, "%s/ca", tmp), 0);
	mkdir(p, 0755);
	free(p);
	ck_assert_int_ge(asprintf(&p, "%s/ca/cacert.pem", tmp), 0);
	f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(PEM_write_X509(f, ca_cert), 1);
	fclose(f);
	free(p);
	p = cs_test_write(tmp, "certsync.conf", text, 0644);
	r->cfg = cs_config_load(p, &errs);
	for (size_t i = 0; i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.v[i]);
	ck_assert_ptr_nonnull(r->cfg);
	free(p);
	free(text);
	uv_loop_init(&r->loop);
	r->pl = cs_pipeline_new_with(&r->loop, r->cfg, &fakes, err, sizeof(err));
	ck_assert_msg(r->pl != NULL, "%s", err);
	ck_assert_int_eq(cs_pipeline_start(r->pl, false, NULL, NULL), 0);
}

static void on_closed(void *arg)
{
	((struct run *)arg)->closed++;
}

static void stop(struct run *r)
{
	cs_pipeline_close(r->pl, on_closed, r);
	uv_run(&r->loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(r->closed, 1);
	ck_assert_int_eq(uv_loop_close(&r->loop), 0);
	cs_config_free(r->cfg);
}

static void status(struct run *r, int i, struct cs_cert_status *st)
{
	cs_pipeline_status(r->pl, (size_t)i, st);
}

static bool all_idle(struct run *r)
{
	struct cs_cert_status st;

	for (size_t i = 0; i < cs_pipeline_count(r->pl); i++) {
		cs_pipeline_status(r->pl, i, &st);
		if (strcmp(st.stage, "idle") != 0 || st.state == CS_CERT_RENEWING)
			return false;
	}
	return true;
}

static void on_deadline(uv_timer_t *t)
{
	*(bool *)t->data = true;
}

/* Runs the loop until pred(r) holds (checked after each turn) or ms pass; returns pred(r). */
static bool spin(struct run *r, bool (*pred)(struct run *r), uint64_t ms)
{
	uv_timer_t t;
	bool late = false;

	uv_timer_init(&r->loop, &t);
	t.data = &late;
	uv_timer_start(&t, on_deadline, ms, 0);
	while (!late && !pred(r))
		uv_run(&r->loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&r->loop, UV_RUN_NOWAIT);
	return pred(r);
}

/* Lets the loop run for ms with nothing expected (nothing must happen). */
static bool never(struct run *r)
{
	(void)r;
	return false;
}

/* Moves the fake clock to t and tells the pipeline, as the timerfd would. */
static void set_clock(struct run *r, time_t t)
{
	fake_now = t;
	cs_pipeline_clock_set(r->pl);
}

/* Starts with every cert issued, deployed, reloaded and verified. */
static void start_valid(struct run *r, int n)
{
	start(r, n);
	ck_assert_msg(spin(r, all_idle, 20000), "the first issuance did not settle");
	ck_assert_int_eq(fk.issued, n);
	for (int i = 0; i < n; i++) {
		struct cs_cert_status st;
		status(r, i, &st);
		ck_assert_int_eq(st.state, CS_CERT_VALID);
		ck_assert_int_eq(st.verify, CS_VERIFY_OK);
	}
}

static int failures_of(struct run *r, int i)
{
	struct cs_cert_status st;

	status(r, i, &st);
	return st.failures;
}

static int want_failures;
static bool reached_failures(struct run *r)
{
	return all_idle(r) && failures_of(r, 0) >= want_failures;
}

/* The outcome a renewal reported to its waiter. */
struct outcome {
	int calls;
	enum cs_renewal_outcome o;
	char msg[3000];
};

static void on_outcome(void *arg, enum cs_renewal_outcome o, const char *msg)
{
	struct outcome *out = arg;

	out->calls++;
	out->o = o;
	snprintf(out->msg, sizeof(out->msg), "%s", msg ? msg : "");
}

static char *gen_path(int n)
{
	char *p;

	ck_assert_int_ge(asprintf(&p, "%s/state/generations/c0/%d.pem", tmp, n), 0);
	return p;
}

/*
 * A renewal the services refuse: rolled back every time, each attempt with
 * exactly one issuance, the delays doubling from retry_min, and the
 * generation rolled back to still there (and deployed) after six failures.
 * Once the services accept, the next attempt is verified and clears it all.
 */
START_TEST(test_core_rollback_backs_off_and_keeps_target)
{
	struct run r = { 0 };
	struct cs_cert_status st;
	struct outcome out = { 0 };
	char good_sha[CS_FP_MAX];
	int64_t prev_delay = 0;

	start_valid(&r, 1);
	status(&r, 0, &st);
	snprintf(good_sha, sizeof(good_sha), "%s", st.sha256);

	fk.verify_fails = true;
	ck_assert_int_eq(cs_pipeline_renew(r.pl, "c0", true, on_outcome, &out), 0);
	want_failures = 1;
	ck_assert(spin(&r, reached_failures, 20000));
	ck_assert_int_eq(out.calls, 1);
	ck_assert_int_eq(out.o, CS_RENEWAL_ROLLED_BACK);
	ck_assert_msg(strstr(out.msg, "rolled back to generation 1") != NULL, "%s", out.msg);
	ck_assert_int_eq(fk.issued, 2);

	for (int k = 2; k <= 6; k++) {
		status(&r, 0, &st);
		int64_t delay = (int64_t)st.retry_at - (int64_t)fake_now;
		/* Doubling from 60 s, each up to 20% shorter. */
		ck_assert_msg(delay >= 48 << (k - 2) && delay <= 60 << (k - 2),
			      "attempt %d: retry in %lld s", k, (long long)delay);
		if (prev_delay > 0)
			ck_assert_int_gt(delay * 10, prev_delay * 15);
		prev_delay = delay;
		/* Nothing happens before the retry is due. */
		set_clock(&r, st.retry_at - 5);
		spin(&r, never, 300);
		ck_assert_int_eq(fk.issued, k);
		set_clock(&r, st.retry_at);
		want_failures = k;
		ck_assert_msg(spin(&r, reached_failures, 20000), "attempt %d did not happen", k);
		ck_assert_int_eq(fk.issued, k + 1); /* one issuance per attempt */
		status(&r, 0, &st);
		ck_assert_int_eq(st.failures, k);
		/* The good generation is deployed, and kept. */
		ck_assert_str_eq(st.sha256, good_sha);
		char *g1 = gen_path(1);
		ck_assert_int_eq(access(g1, F_OK), 0);
		free(g1);
		ck_assert_str_eq(st.state == CS_CERT_FAILED ? "failed" : "?", "failed");
		ck_assert_ptr_nonnull(strstr(st.last_error, "rolled back to generation 1"));
	}
	/* Refused generations do not pile up: 1 and at most the one being refused. */
	for (int n = 2; n <= 6; n++) {
		char *g = gen_path(n);
		ck_assert_msg(access(g, F_OK) < 0, "refused generation %d kept", n);
		free(g);
	}

	/* The services accept again: the next attempt is verified and clears the failures. */
	fk.verify_fails = false;
	status(&r, 0, &st);
	set_clock(&r, st.retry_at);
	ck_assert(spin(&r, all_idle, 20000));
	status(&r, 0, &st);
	ck_assert_int_eq(st.failures, 0);
	ck_assert_ptr_null(st.last_error);
	ck_assert_int_eq(st.state, CS_CERT_VALID);
	ck_assert_str_ne(st.sha256, good_sha);
	ck_assert_int_eq(st.retry_at, 0);
	stop(&r);
}
END_TEST

/*
 * The outputs cannot be written: the certificate issued is kept as a
 * pending generation and deployed once they can, without a second order.
 */
START_TEST(test_core_deploy_failure_redeploys_pending)
{
	struct run r = { 0 };
	struct cs_cert_status st;
	char *out = NULL, *aside = NULL;

	start_valid(&r, 1);
	ck_assert_int_ge(asprintf(&out, "%s/out", tmp), 0);
	ck_assert_int_ge(asprintf(&aside, "%s/out.aside", tmp), 0);
	/* The output directory becomes a file: every write into it fails. */
	ck_assert_int_eq(rename(out, aside), 0);
	free(cs_test_write(NULL, out, "not a directory", 0644));

	ck_assert_int_eq(cs_pipeline_renew(r.pl, "c0", true, NULL, NULL), 0);
	want_failures = 1;
	ck_assert(spin(&r, reached_failures, 20000));
	ck_assert_int_eq(fk.issued, 2);
	status(&r, 0, &st);
	ck_assert_int_gt(st.pending_gen, 0);
	int pending = st.pending_gen;
	ck_assert_msg(strstr(st.last_error, "deploy") != NULL, "%s", st.last_error);

	for (int k = 2; k <= 4; k++) {
		status(&r, 0, &st);
		set_clock(&r, st.retry_at);
		want_failures = k;
		ck_assert_msg(spin(&r, reached_failures, 20000), "attempt %d", k);
		ck_assert_int_eq(fk.issued, 2); /* no new order */
		ck_assert_int_eq(fk.issue_requests, 2);
		status(&r, 0, &st);
		ck_assert_int_eq(st.pending_gen, pending);
		char *g = gen_path(pending);
		ck_assert_int_eq(access(g, F_OK), 0);
		free(g);
	}

	/* Fixed: the pending generation goes in place, still without a new order. */
	unlink(out);
	ck_assert_int_eq(rename(aside, out), 0);
	status(&r, 0, &st);
	set_clock(&r, st.retry_at);
	ck_assert(spin(&r, all_idle, 20000));
	status(&r, 0, &st);
	ck_assert_int_eq(st.failures, 0);
	ck_assert_int_eq(st.pending_gen, 0);
	ck_assert_int_eq(fk.issued, 2);
	ck_assert_int_eq(st.verify, CS_VERIFY_OK);
	struct cs_state saved;
	char err[512];
	char *sd = NULL;
	ck_assert_int_ge(asprintf(&sd, "%s/state", tmp), 0);
	ck_assert_int_eq(cs_state_load(sd, "c0", &saved, err, sizeof(err)), 0);
	ck_assert_int_eq(saved.gens[0].n, pending);
	ck_assert_str_eq(saved.gens[0].sha256, st.sha256);
	cs_state_clear(&saved);
	free(sd);
	free(out);
	free(aside);
	stop(&r);
}
END_TEST

/* A forced renewal of a valid cert that is rolled back is tried again by itself. */
START_TEST(test_core_forced_rollback_is_retried)
{
	struct run r = { 0 };
	struct cs_cert_status st;

	start_valid(&r, 1);
	fk.reload_fails = true;
	ck_assert_int_eq(cs_pipeline_renew(r.pl, "c0", true, NULL, NULL), 0);
	want_failures = 1;
	ck_assert(spin(&r, reached_failures, 20000));
	status(&r, 0, &st);
	ck_assert_int_gt(st.retry_at, fake_now);
	/* The next attempt is the retry, not the certificate's renewal weeks away. */
	ck_assert_int_eq(st.next_renewal, st.retry_at);
	ck_assert_int_le(st.next_renewal, fake_now + 60);
	ck_assert_str_eq(st.next_reason, "retry after a failure");
	fk.reload_fails = false;
	set_clock(&r, st.retry_at);
	ck_assert(spin(&r, all_idle, 20000));
	ck_assert_int_eq(fk.issued, 3);
	status(&r, 0, &st);
	ck_assert_int_eq(st.failures, 0);
	ck_assert_int_eq(st.state, CS_CERT_VALID);
	stop(&r);
}
END_TEST

/* Expired, and the CA is down: retried at least every five minutes, whatever retry_max says. */
START_TEST(test_core_expired_retry_cap)
{
	struct run r = { 0 };
	struct cs_cert_status st;

	fk.validity = DAY;
	start_valid(&r, 1);
	fk.issue_fails = true;
	set_clock(&r, fake_now + 2 * DAY);
	want_failures = 1;
	ck_assert(spin(&r, reached_failures, 20000));
	for (int k = 2; k <= 8; k++) {
		status(&r, 0, &st);
		ck_assert_int_eq(st.state, CS_CERT_EXPIRED);
		int64_t delay = (int64_t)st.retry_at - (int64_t)fake_now;
		ck_assert_msg(delay >= 48 && delay <= 300, "failure %d: next attempt in %lld s",
			      k - 1, (long long)delay);
		set_clock(&r, st.retry_at);
		want_failures = k;
		ck_assert(spin(&r, reached_failures, 20000));
		ck_assert_int_eq(fk.issue_requests, k + 1);
	}
	status(&r, 0, &st);
	ck_assert_int_ge(st.retry_at - fake_now, 240); /* the cap is reached, not undercut */
	stop(&r);
}
END_TEST

/* A waiter hears the end of the renewal once: verified, rolled back or failed; busy is refused. */
START_TEST(test_core_wait_reports_the_end)
{
	struct run r = { 0 };
	struct outcome a = { 0 }, b = { 0 }, c = { 0 };
	struct cs_cert_status st;

	start_valid(&r, 1);
	ck_assert_int_eq(cs_pipeline_renew(r.pl, "c0", true, on_outcome, &a), 0);
	/* A second renewal while the first runs: busy, and its callback never runs. */
	ck_assert_int_eq(cs_pipeline_renew(r.pl, "c0", true, on_outcome, &b), -EBUSY);
	status(&r, 0, &st);
	ck_assert_int_eq(st.state, CS_CERT_RENEWING);
	ck_assert(spin(&r, all_idle, 20000));
	ck_assert_int_eq(a.calls, 1);
	ck_assert_int_eq(a.o, CS_RENEWAL_VERIFIED);
	ck_assert_int_eq(b.calls, 0);
	/* Not due, not forced: nothing starts. */
	ck_assert_int_eq(cs_pipeline_renew(r.pl, "c0", false, on_outcome, &b), 1);
	ck_assert_int_eq(cs_pipeline_renew(r.pl, "nope", true, on_outcome, &b), -ENOENT);

	fk.verify_fails = true;
	ck_assert_int_eq(cs_pipeline_renew(r.pl, "c0", true, on_outcome, &c), 0);
	/* Deployed but not yet verified: not "valid". */
	ck_assert(spin(&r, all_idle, 20000));
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_eq(c.o, CS_RENEWAL_ROLLED_BACK);
	ck_assert_msg(strstr(c.msg, "verify failed") != NULL, "%s", c.msg);
	ck_assert_int_eq(b.calls, 0);

	fk.verify_fails = false;
	fk.issue_fails = true;
	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(cs_pipeline_renew(r.pl, "c0", true, on_outcome, &c), 0);
	ck_assert(spin(&r, all_idle, 20000));
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_eq(c.o, CS_RENEWAL_FAILED);
	ck_assert_msg(strstr(c.msg, "the fake CA is down") != NULL, "%s", c.msg);
	stop(&r);
}
END_TEST

/* A renewal asked for while the cert is being examined starts right after it, once. */
START_TEST(test_core_renew_during_check_is_queued)
{
	struct run r = { 0 };
	struct outcome a = { 0 }, b = { 0 };
	struct cs_cert_status st;

	start_valid(&r, 1);
	cs_pipeline_clock_set(r.pl); /* every cert is examined again */
	status(&r, 0, &st);
	ck_assert_str_eq(st.stage, "checking");
	ck_assert_int_eq(cs_pipeline_renew(r.pl, "c0", true, on_outcome, &a), 0);
	/* Only one may wait for the examination. */
	ck_assert_int_eq(cs_pipeline_renew(r.pl, "c0", true, on_outcome, &b), -EBUSY);
	ck_assert(spin(&r, all_idle, 20000));
	ck_assert_int_eq(a.calls, 1);
	ck_assert_int_eq(a.o, CS_RENEWAL_VERIFIED);
	ck_assert_int_eq(b.calls, 0);
	ck_assert_int_eq(fk.issued, 2);
	stop(&r);
}
END_TEST

static int want_issued;
static bool issued_and_idle(struct run *r)
{
	return fk.issued >= want_issued && all_idle(r);
}

/* The wall clock jumps 100 days: each of the expired certs renews once, within seconds. */
START_TEST(test_core_clock_step_renews_each_once)
{
	struct run r = { 0 };
	struct cs_cert_status st;
	uint64_t t0;

	start_valid(&r, 5);
	/* Before the step the pipeline's timer waits for a renewal weeks away. */
	status(&r, 0, &st);
	ck_assert_int_gt(st.next_renewal, fake_now + 10 * DAY);
	t0 = uv_now(&r.loop);
	set_clock(&r, fake_now + 100 * DAY);
	want_issued = 10;
	ck_assert(spin(&r, issued_and_idle, 10000));
	ck_assert_int_lt(uv_now(&r.loop) - t0, 10000);
	/* Nothing more: not a storm. */
	spin(&r, never, 1500);
	cs_pipeline_clock_set(r.pl);
	spin(&r, never, 1500);
	ck_assert_int_eq(fk.issued, 10);
	ck_assert_int_eq(fk.issue_requests, 10);
	for (int i = 0; i < 5; i++) {
		status(&r, i, &st);
		ck_assert_int_eq(st.state, CS_CERT_VALID);
		ck_assert_int_gt(st.not_after, fake_now);
		ck_assert_int_eq(st.failures, 0);
	}
	stop(&r);
}
END_TEST

/* Stopping during an issuance: the renewal is abandoned (not counted), its waiter told. */
START_TEST(test_core_close_abandons)
{
	struct run r = { 0 };
	struct outcome a = { 0 };

	start_valid(&r, 1);
	ck_assert_int_eq(cs_pipeline_renew(r.pl, "c0", true, on_outcome, &a), 0);
	stop(&r);
	ck_assert_int_eq(a.calls, 1);
	ck_assert_int_ne(a.o, CS_RENEWAL_VERIFIED);
	ck_assert_int_ne(a.o, CS_RENEWAL_ROLLED_BACK);
}
END_TEST

Suite *core_suite(void)
{
	Suite *s = suite_create("core");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_core_rollback_backs_off_and_keeps_target);
	tcase_add_test(tc, test_core_deploy_failure_redeploys_pending);
	tcase_add_test(tc, test_core_forced_rollback_is_retried);
	tcase_add_test(tc, test_core_expired_retry_cap);
	tcase_add_test(tc, test_core_wait_reports_the_end);
	tcase_add_test(tc, test_core_clock_step_renews_each_once);
	tcase_add_test(tc, test_core_close_abandons);
	tcase_add_test(tc, test_core_renew_during_check_is_queued);
	suite_add_tcase(s, tc);
	return s;
}
