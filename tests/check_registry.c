/*
 * check_registry - the driver tables: a driver added by this test alone (no
 * change anywhere else) is read from the configuration with its own keys,
 * issues, renews and is refused a revocation it does not support; a driver
 * that cannot be made becomes the surrogate, which fails each call with the
 * reason; an unknown type is a configuration error that lists the types.
 *
 * The fake driver signs with a CA of the test's own (the local CA's
 * synchronous calls, on the loop, answered on the next loop turn).
 */
#include "cs_config.h"
#include "cs_localca.h"
#include "cs_log.h"
#include "cs_pipeline.h"
#include "cs_registry.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* What the fake driver saw. */
static struct {
	int opened, issued, closed;
	char greeting[64];
} fk;

struct fake_issuer {
	struct cs_issuer base;
	cs_localca *ca;
	unsigned pending;
	bool closing;
	void (*close_cb)(void *arg);
	void *close_arg;
};

struct fake_req {
	uv_timer_t timer;
	struct fake_issuer *fi;
	cs_issue_cb cb;
	void *arg;
	X509_REQ *csr;
	char **names;
	size_t n;
	enum cs_usage usage;
};

static void fake_free(struct fake_issuer *fi)
{
	void (*cb)(void *arg) = fi->close_cb;
	void *arg = fi->close_arg;

	cs_localca_close(fi->ca);
	free(fi->base.name);
	free(fi);
	fk.closed++;
	if (cb != NULL)
		cb(arg);
}

static void req_closed(uv_handle_t *h)
{
	struct fake_req *r = h->data;
	struct fake_issuer *fi = r->fi;

	for (size_t i = 0; i < r->n; i++)
		free(r->names[i]);
	free(r->names);
	X509_REQ_free(r->csr);
	free(r);
	if (--fi->pending == 0 && fi->closing)
		fake_free(fi);
}

static void fake_fire(uv_timer_t *t)
{
	struct fake_req *r = t->data;
	struct cs_issue_result res = { 0 };
	X509 *leaf = NULL;
	STACK_OF(X509) *chain = NULL;

	res.status = cs_localca_issue(r->fi->ca, r->csr, r->names, r->n, r->usage, &leaf, &chain,
				      res.error, sizeof(res.error));
	if (res.status == 0) {
		ck_assert_int_eq(cs_issuer_result_set(&res, leaf, chain), 0);
		fk.issued++;
	}
	r->cb(r->arg, &res);
	cs_issuer_result_clear(&res);
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	uv_close((uv_handle_t *)t, req_closed);
}

static int fake_issue(cs_issuer *is, const struct cs_issue_request *req, cs_issue_cb cb,
		      void *arg)
{
	struct fake_issuer *fi = (struct fake_issuer *)is;
	struct fake_req *r = calloc(1, sizeof(*r));
	char err[256];

	ck_assert_ptr_nonnull(r);
	ck_assert(!fi->closing);
	r->fi = fi;
	r->cb = cb;
	r->arg = arg;
	r->usage = req->usage;
	r->csr = cs_issuer_request_csr(req, err, sizeof(err));
	ck_assert_msg(r->csr != NULL, "%s", err);
	/* The request's strings are only borrowed: copied for the next turn. */
	r->names = calloc(req->n_names, sizeof(*r->names));
	for (; r->n < req->n_names; r->n++)
		r->names[r->n] = strdup(req->names[r->n]);
	uv_timer_init(is->loop, &r->timer);
	r->timer.data = r;
	uv_timer_start(&r->timer, fake_fire, 0, 0);
	fi->pending++;
	return 0;
}

static void fake_close(cs_issuer *is, void (*close_cb)(void *arg), void *arg)
{
	struct fake_issuer *fi = (struct fake_issuer *)is;

	fi->closing = true;
	fi->close_cb = close_cb;
	fi->close_arg = arg;
	if (fi->pending == 0)
		fake_free(fi);
}

static const struct cs_issuer_ops fake_ops = {
	.type = "fake",
	.issue = fake_issue,
	.close = fake_close,
};

/* The value of key in ci's params ("key=value"), or NULL. */
static const char *param(const struct cs_cfg_issuer *ci, const char *key)
{
	size_t n = strlen(key);

	for (size_t i = 0; i < ci->params.n; i++)
		if (strncmp(ci->params.v[i], key, n) == 0 && ci->params.v[i][n] == '=')
			return ci->params.v[i] + n + 1;
	return NULL;
}

static void fake_check(struct cs_cfg_issuer *ci, const struct cs_registry_check *ck)
{
	if (param(ci, "ca_dir") == NULL)
		ck->error(ck->ctx, NULL, "'ca_dir' is required for type = fake");
}

static cs_issuer *fake_open(uv_loop_t *loop, const struct cs_cfg_issuer *ci,
			    const char *state_dir, char *err, size_t errlen)
{
	struct cs_localca_opts o = {
		.dir = param(ci, "ca_dir"),
		.subject = "/O=check/CN=fake CA",
		.key = CS_KEY_EC_P256,
		.validity_s = 30 * 86400,
		.ca_validity_s = 365 * 86400,
	};
	struct fake_issuer *fi = calloc(1, sizeof(*fi));

	(void)state_dir;
	ck_assert_ptr_nonnull(fi);
	if ((fi->ca = cs_localca_open(&o, err, errlen)) == NULL) {
		free(fi);
		return NULL;
	}
	fi->base.ops = &fake_ops;
	fi->base.loop = loop;
	fi->base.name = strdup(ci->name);
	snprintf(fk.greeting, sizeof(fk.greeting), "%s",
		 param(ci, "greeting") ? param(ci, "greeting") : "");
	fk.opened++;
	return &fi->base;
}

static cs_issuer *refusing_open(uv_loop_t *loop, const struct cs_cfg_issuer *ci,
				const char *state_dir, char *err, size_t errlen)
{
	(void)loop;
	(void)ci;
	(void)state_dir;
	snprintf(err, errlen, "the refusing driver never makes an issuer");
	return NULL;
}

static const char *const fake_keys[] = { "ca_dir", "greeting", NULL };

static const struct cs_issuer_driver fake_driver = {
	.type = "fake",
	.keys = fake_keys,
	.check = fake_check,
	.open = fake_open,
};

static const struct cs_issuer_driver refusing_driver = {
	.type = "refusing",
	.open = refusing_open,
};

static void setup(void)
{
	cs_test_tmp_setup();
	cs_log_open("check_registry", CS_LOG_STDERR, CS_LOG_ERR);
	memset(&fk, 0, sizeof(fk));
	ck_assert_int_eq(cs_registry_add_issuer(&fake_driver), 0);
	ck_assert_int_eq(cs_registry_add_issuer(&refusing_driver), 0);
}


/* Loads text as tmp/certsync.conf; errors go to errs (the caller frees them). */
static struct cs_config *load(const char *text, struct cs_cfg_errors *errs)
{
	char *p = cs_test_write(cs_test_tmp, "certsync.conf", text, 0644);
	struct cs_config *cfg = cs_config_load(p, errs);

	free(p);
	return cfg;
}

static char *conf_for(const char *type)
{
	char *s;

	ck_assert_int_ge(asprintf(&s,
				  "[agent]\nstate_dir = %s/state\n\n"
				  "[issuer \"f\"]\ntype = %s\n%s\n"
				  "[cert \"c\"]\nissuer = f\nnames = c.example.test\n"
				  "bundle = %s/c.pem\n",
				  cs_test_tmp, type,
				  strcmp(type, "fake") == 0 ? "ca_dir = CA\ngreeting = hello\n" : "",
				  cs_test_tmp),
			 0);
	/* The CA directory under tmp. */
	char *at = strstr(s, "CA\n");
	if (at != NULL) {
		char *t;
		*at = '\0';
		ck_assert_int_ge(asprintf(&t, "%s%s/ca\n%s", s, cs_test_tmp, at + 3), 0);
		free(s);
		s = t;
	}
	return s;
}

struct run {
	int done, failures, closed, outcome_n;
	enum cs_renewal_outcome outcome;
	char msg[512];
};

static void on_done(void *arg, int failures)
{
	struct run *r = arg;

	r->done++;
	r->failures = failures;
}

static void on_closed(void *arg)
{
	((struct run *)arg)->closed++;
}

static void on_renewed(void *arg, enum cs_renewal_outcome o, const char *msg)
{
	struct run *r = arg;

	r->outcome_n++;
	r->outcome = o;
	snprintf(r->msg, sizeof(r->msg), "%s", msg != NULL ? msg : "");
}

static void on_revoked(void *arg, int status, const char *msg)
{
	(void)arg;
	(void)status;
	(void)msg;
	ck_abort_msg("a revocation the driver does not support must not start");
}

/* The serial of the cert in tmp/c.pem, as the status says it. */
static char *serial_of(struct cs_pipeline *pl)
{
	struct cs_cert_status st;

	ck_assert_int_eq(cs_pipeline_status_of(pl, "c", &st), 0);
	ck_assert_ptr_nonnull(st.serial);
	return strdup(st.serial);
}

START_TEST(test_registry_fake_issuer_renews)
{
	struct cs_cfg_errors errs;
	char *text = conf_for("fake"), err[512], *first, *second;
	struct cs_config *cfg = load(text, &errs);
	struct run r = { 0 };
	uv_loop_t loop;
	struct cs_pipeline *pl;
	struct cs_cert_status st;

	ck_assert_msg(cfg != NULL && errs.n == 0, "%s", errs.n ? errs.v[0] : "no config");
	ck_assert_ptr_eq(cs_config_issuer(cfg, "f")->driver, &fake_driver);
	ck_assert_str_eq(cs_config_issuer(cfg, "f")->type, "fake");
	ck_assert_int_eq(cs_config_issuer(cfg, "f")->params.n, 2);

	uv_loop_init(&loop);
	pl = cs_pipeline_new(&loop, cfg, err, sizeof(err));
	ck_assert_msg(pl != NULL, "%s", err);
	ck_assert_int_eq(fk.opened, 1);
	ck_assert_str_eq(fk.greeting, "hello");
	/* The daemon's pass: the missing cert is issued by the fake driver. */
	ck_assert_int_eq(cs_pipeline_start(pl, false, NULL, NULL), 0);
	for (int i = 0; i < 2000 && fk.issued == 0; i++)
		uv_run(&loop, UV_RUN_ONCE);
	ck_assert_int_eq(fk.issued, 1);
	do {
		uv_run(&loop, UV_RUN_NOWAIT);
		ck_assert_int_eq(cs_pipeline_status_of(pl, "c", &st), 0);
	} while (strcmp(st.stage, "idle") != 0 || st.state != CS_CERT_VALID);
	first = serial_of(pl);

	/* A forced renewal goes to the same driver, and ends deployed. */
	ck_assert_int_eq(cs_pipeline_renew(pl, "c", true, on_renewed, &r), 0);
	while (r.outcome_n == 0 && uv_run(&loop, UV_RUN_ONCE))
		;
	ck_assert_int_eq(r.outcome_n, 1);
	ck_assert_msg(r.outcome == CS_RENEWAL_DEPLOYED, "%s: %s",
		      cs_pipeline_outcome_name(r.outcome), r.msg);
	ck_assert_int_eq(fk.issued, 2);
	second = serial_of(pl);
	ck_assert_str_ne(first, second);
	ck_assert_int_eq(cs_pipeline_status_of(pl, "c", &st), 0);
	ck_assert_str_eq(st.issuer, "f");

	/* No revoke in its table: refused at once, nothing started. */
	ck_assert_int_eq(cs_pipeline_revoke(pl, "c", 4, on_revoked, NULL), -ENOTSUP);

	cs_pipeline_close(pl, on_closed, &r);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(r.closed, 1);
	ck_assert_int_eq(fk.closed, 1);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	free(first);
	free(second);
	free(text);
	cs_config_free(cfg);
}
END_TEST

START_TEST(test_registry_surrogate_fails_with_reason)
{
	struct cs_cfg_errors errs;
	char *text = conf_for("refusing"), err[512];
	struct cs_config *cfg = load(text, &errs);
	struct run r = { 0 };
	uv_loop_t loop;
	struct cs_pipeline *pl;
	struct cs_cert_status st;

	ck_assert_msg(cfg != NULL && errs.n == 0, "%s", errs.n ? errs.v[0] : "no config");
	uv_loop_init(&loop);
	pl = cs_pipeline_new(&loop, cfg, err, sizeof(err));
	ck_assert_msg(pl != NULL, "%s", err);
	ck_assert_int_eq(cs_pipeline_start(pl, true, on_done, &r), 0);
	while (r.done == 0 && uv_run(&loop, UV_RUN_ONCE))
		;
	ck_assert_int_eq(r.done, 1);
	ck_assert_int_eq(r.failures, 1);
	ck_assert_int_eq(cs_pipeline_status_of(pl, "c", &st), 0);
	ck_assert_ptr_nonnull(st.last_error);
	ck_assert_msg(strstr(st.last_error, "issuer f cannot be used: the refusing driver never "
					    "makes an issuer") != NULL,
		      "%s", st.last_error);
	cs_pipeline_close(pl, on_closed, &r);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(r.closed, 1);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	free(text);
	cs_config_free(cfg);
}
END_TEST

START_TEST(test_registry_types_and_keys)
{
	struct cs_cfg_errors errs;
	char *text, buf[256];
	struct cs_config *cfg;

	ck_assert_int_eq(cs_registry_add_issuer(&fake_driver), -EEXIST);
	ck_assert_str_eq(cs_registry_issuer_types(buf, sizeof(buf)),
			 "local-ca, acme, fake, refusing");
	/* An unknown type is refused with the list. */
	ck_assert_int_ge(asprintf(&text, "[agent]\nstate_dir = %s/s\n[issuer \"x\"]\ntype = nope\n",
				  cs_test_tmp),
			 0);
	cfg = load(text, &errs);
	ck_assert_ptr_null(cfg);
	ck_assert_int_eq(errs.n, 1);
	ck_assert_msg(strstr(errs.v[0], "'nope' is not one of: local-ca, acme, fake, refusing") !=
			      NULL,
		      "%s", errs.v[0]);
	cs_config_errors_free(&errs);
	free(text);
	/* A key of another driver, and the driver's own check. */
	ck_assert_int_ge(asprintf(&text,
				  "[agent]\nstate_dir = %s/s\n[issuer \"x\"]\ntype = fake\n"
				  "directory = https://ca.example/dir\n",
				  cs_test_tmp),
			 0);
	cfg = load(text, &errs);
	ck_assert_ptr_null(cfg);
	ck_assert_int_eq(errs.n, 2);
	ck_assert_msg(strstr(errs.v[0], "directory: not a key of type = fake") != NULL ||
			      strstr(errs.v[1], "directory: not a key of type = fake") != NULL,
		      "%s | %s", errs.v[0], errs.v[1]);
	ck_assert_msg(strstr(errs.v[0], "'ca_dir' is required for type = fake") != NULL ||
			      strstr(errs.v[1], "'ca_dir' is required for type = fake") != NULL,
		      "%s | %s", errs.v[0], errs.v[1]);
	cs_config_errors_free(&errs);
	free(text);
}
END_TEST

Suite *registry_suite(void)
{
	Suite *s = suite_create("registry");
	TCase *tc = tcase_create("registry");

	tcase_add_checked_fixture(tc, setup, cs_test_tmp_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_registry_fake_issuer_renews);
	tcase_add_test(tc, test_registry_surrogate_fails_with_reason);
	tcase_add_test(tc, test_registry_types_and_keys);
	suite_add_tcase(s, tc);
	return s;
}
