/*
 * check_examine - what the agent accepts before it deploys (cs_deploy: an
 * issuer's answer, a pending or stored generation) and what it accepts as
 * deployed (cs_examine: adopted files), on the throwaway hierarchy of
 * tests/mkpki.sh. The [cert] comes from a real configuration file, so that
 * its issuer, and with it the trust the chain must end in, is the one the
 * agent would use: a local CA whose cacert.pem is the hierarchy's root.
 */
#include "cs_config.h"
#include "cs_deploy.h"
#include "cs_examine.h"
#include "cs_ingest.h"
#include "testutil.h"

#include <check.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *tmp;
static struct cs_config *cfg;

static void setup(void)
{
	const char *src = getenv("CS_SOURCE_DIR");
	struct cs_cfg_errors errs;
	char *cmd, *conf;
	FILE *f;

	tmp = cs_test_mkdtemp();
	ck_assert_ptr_nonnull(tmp);
	ck_assert_ptr_nonnull(src);
	ck_assert_int_ge(asprintf(&cmd,
				  "bash %s/tests/mkpki.sh %s/pki ec >/dev/null 2>&1 && "
				  "mkdir -p %s/ca %s/out %s/state && cp %s/pki/root.pem "
				  "%s/ca/cacert.pem",
				  src, tmp, tmp, tmp, tmp, tmp, tmp),
			 0);
	ck_assert_int_eq(cs_test_run(cmd, NULL), 0);
	free(cmd);
	ck_assert_int_ge(asprintf(&conf, "%s/certsync.conf", tmp), 0);
	f = fopen(conf, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f,
		"[agent]\nstate_dir = %s/state\nsocket = %s/sock\n\n"
		"[issuer \"local\"]\ntype = local-ca\ndir = %s/ca\n\n"
		"[cert \"mail\"]\nissuer = local\nnames = leaf.example.test\nkey = ec:P-256\n"
		"fullchain = %s/out/mail.crt\nkeyfile = %s/out/mail.key\n",
		tmp, tmp, tmp, tmp, tmp);
	fclose(f);
	cfg = cs_config_load(conf, &errs);
	ck_assert_msg(cfg != NULL, "%s", errs.n > 0 ? errs.v[0] : "?");
	free(conf);
}

static void teardown(void)
{
	cs_config_free(cfg);
	cs_test_rmrf(tmp);
	free(tmp);
}

static X509 *cert_of(const char *file)
{
	char *p = cs_test_path("%s/pki/%s", tmp, file);
	X509 *x = cs_test_read_x509(p);

	free(p);
	return x;
}

/*
 * An issuer's answer as the pipeline holds it (pl_renew.c: on_issued): the
 * key, the first certificate sent as the leaf, the others as its chain.
 * files is a space-separated list of certificates in the order sent.
 */
static cs_material *answer(const char *files)
{
	cs_material *m = cs_material_new();
	char buf[256], *save = NULL;
	char *p;
	FILE *f;

	ck_assert_int_ge(asprintf(&p, "%s/pki/leaf.key", tmp), 0);
	f = fopen(p, "r");
	m->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	free(p);
	snprintf(buf, sizeof(buf), "%s", files);
	for (char *w = strtok_r(buf, " ", &save); w != NULL; w = strtok_r(NULL, " ", &save)) {
		X509 *x = cert_of(w);

		if (m->leaf == NULL)
			m->leaf = x;
		else
			sk_X509_push(m->chain, x);
	}
	return m;
}

/* The subjects' CNs of the certificates in path, in file order, space-separated. */
static void cns_in(const char *path, char *out, size_t len)
{
	char *cmd, *res = NULL;

	ck_assert_int_ge(asprintf(&cmd,
				  "openssl crl2pkcs7 -nocrl -certfile %s | openssl pkcs7 "
				  "-print_certs -noout | sed -n 's/^subject=.*CN = //p' | "
				  "tr '\\n' ' '",
				  path),
			 0);
	ck_assert_int_eq(cs_test_run(cmd, &res), 0);
	snprintf(out, len, "%s", res);
	free(res);
	free(cmd);
}

/* The issuer's answers: what is deployed (in which order) and what is refused. */
static const struct {
	const char *sent;   /* certificates, in the order the issuer sent them */
	const char *order;  /* deployed fullchain's CNs, or NULL: refused */
	const char *reason; /* refused: the start of the error */
} answers[] = {
	{ "leaf.pem int.pem", "leaf.example.test certsync Test Intermediate ", NULL },
	{ "leaf.pem int.pem root.pem",
	  "leaf.example.test certsync Test Intermediate certsync Test Root ", NULL },
	/* Reversed, and scrambled: put in order, never "the key does not belong". */
	{ "int.pem leaf.pem", "leaf.example.test certsync Test Intermediate ", NULL },
	{ "root.pem int.pem leaf.pem",
	  "leaf.example.test certsync Test Intermediate certsync Test Root ", NULL },
	/* The leaf alone: the intermediate is missing. */
	{ "leaf.pem", NULL,
	  "refusing to deploy: the chain does not verify to CAfile @/ca/cacert.pem: unable to "
	  "get local issuer certificate at depth 0 (CN=leaf.example.test)" },
	/* The leaf and a CA certificate that has nothing to do with it. */
	{ "leaf.pem stray.pem", NULL,
	  "refusing to deploy: the certificate CN=certsync Stray (issued by CN=certsync Stray) "
	  "is not part of the leaf's chain" },
	{ "leaf.pem int.pem stray.pem", NULL,
	  "refusing to deploy: the certificate CN=certsync Stray (issued by CN=certsync Stray) "
	  "is not part of the leaf's chain" },
};
#define NANSWERS (int)(sizeof(answers) / sizeof(answers[0]))

START_TEST(test_examine_deploy_checks_the_chain)
{
	const struct cs_cfg_cert *c = cs_config_cert(cfg, "mail");
	cs_material *m = answer(answers[_i].sent);
	char err[1024] = "", got[512], want[1024], *full;
	const char *at;
	int rc;

	rc = cs_deploy(c, m, NULL, cfg->agent.state_dir, 1, time(NULL), NULL, err, sizeof(err));
	if (answers[_i].order != NULL) {
		ck_assert_msg(rc == 0, "%s: %s", answers[_i].sent, err);
		cns_in(c->fullchain, got, sizeof(got));
		ck_assert_str_eq(got, answers[_i].order);
	} else {
		ck_assert_msg(rc < 0, "%s was deployed", answers[_i].sent);
		at = strchr(answers[_i].reason, '@');
		if (at != NULL)
			snprintf(want, sizeof(want), "%.*s%s%s", (int)(at - answers[_i].reason),
				 answers[_i].reason, tmp, at + 1);
		else
			snprintf(want, sizeof(want), "%s", answers[_i].reason);
		ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "got \"%s\"\nwant \"%s\"", err,
			      want);
		full = c->fullchain;
		ck_assert_int_ne(access(full, F_OK), 0);
	}
	cs_material_free(m);
}
END_TEST

/* Files an administrator put in place: judged like an issuer's answer. */
static const struct {
	const char *fullchain; /* files concatenated into the fullchain */
	bool ok;
	const char *reason;    /* not ok: a part of the reason */
} placed[] = {
	{ "leaf.pem int.pem", true, "valid" },
	{ "leaf.pem stray.pem int.pem", false,
	  "the certificate CN=certsync Stray (issued by CN=certsync Stray) is not part of the "
	  "leaf's chain" },
	{ "int.pem leaf.pem", false,
	  "out/mail.crt holds its certificates out of order (the leaf first, then each "
	  "certificate's issuer)" },
	{ "leaf.pem", false, "unable to get local issuer certificate at depth 0" },
};
#define NPLACED (int)(sizeof(placed) / sizeof(placed[0]))

START_TEST(test_examine_adopts_only_a_sound_chain)
{
	const struct cs_cfg_cert *c = cs_config_cert(cfg, "mail");
	struct cs_examined ex;
	char *cmd;

	ck_assert_int_ge(asprintf(&cmd, "cd %s/pki && cat %s >%s && cp leaf.key %s", tmp,
				  placed[_i].fullchain, c->fullchain, c->keyfile),
			 0);
	ck_assert_int_eq(cs_test_run(cmd, NULL), 0);
	free(cmd);
	cs_examine(c, time(NULL), &ex);
	if (placed[_i].ok)
		ck_assert_msg(ex.verdict == CS_EX_OK, "%s: %s", placed[_i].fullchain, ex.reason);
	else
		ck_assert_msg(ex.verdict != CS_EX_OK &&
				      strstr(ex.reason, placed[_i].reason) != NULL,
			      "%s: %s: %s", placed[_i].fullchain, cs_examine_verdict_name(ex.verdict),
			      ex.reason);
	cs_examine_clear(&ex);
}
END_TEST

/* The SHA-256 of the first certificate in path, as openssl prints it. */
static char *sha_of(const char *path)
{
	char *cmd, *out = NULL;

	ck_assert_int_ge(asprintf(&cmd, "openssl x509 -in %s -noout -fingerprint -sha256", path),
			 0);
	ck_assert_int_eq(cs_test_run(cmd, &out), 0);
	free(cmd);
	return out;
}

/*
 * A deploy that fails at a fixed-path output after the live directory was
 * switched puts everything back: the live link leads to the previous
 * generation again, and the fixed outputs written before the failure hold
 * the previous certificate.
 */
START_TEST(test_examine_failed_deploy_puts_live_back)
{
	struct cs_cfg_errors errs;
	char *conf, *cmd, *live_cert, *blocked, *sha1, *sha2, *got, err[1024] = "";
	struct cs_config *lc;
	const struct cs_cfg_cert *c;
	cs_material *m1, *m2;
	FILE *f;

	/* A second leaf for the same key, from the same intermediate. */
	ck_assert_int_ge(asprintf(&cmd,
				  "cd %s/pki && openssl req -new -key leaf.key -subj /CN=leaf.example.test "
				  "-out leaf2.csr && openssl x509 -req -in leaf2.csr -CA int.pem -CAkey "
				  "int.key -set_serial 0x0ABCDEF013 -days 90 -extfile ext.cnf "
				  "-extensions leaf -out leaf2.pem 2>/dev/null",
				  tmp),
			 0);
	ck_assert_int_eq(cs_test_run(cmd, NULL), 0);
	free(cmd);
	ck_assert_int_ge(asprintf(&conf, "%s/live.conf", tmp), 0);
	ck_assert_int_ge(asprintf(&blocked, "%s/blocked", tmp), 0);
	ck_assert_int_eq(mkdir(blocked, 0700), 0);
	f = fopen(conf, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f,
		"[agent]\nstate_dir = %s/state\nsocket = %s/sock\nlive_dir = %s/live\n\n"
		"[issuer \"local\"]\ntype = local-ca\ndir = %s/ca\n\n"
		"[cert \"mail\"]\nissuer = local\nnames = leaf.example.test\nkey = ec:P-256\n"
		"fullchain = %s/out/mail.crt\nkeyfile = %s/mail.key\n",
		tmp, tmp, tmp, tmp, tmp, blocked);
	fclose(f);
	lc = cs_config_load(conf, &errs);
	ck_assert_msg(lc != NULL, "%s", errs.n > 0 ? errs.v[0] : "?");
	c = cs_config_cert(lc, "mail");
	ck_assert_int_ge(asprintf(&live_cert, "%s/live/mail/cert.pem", tmp), 0);

	m1 = answer("leaf.pem int.pem");
	ck_assert_msg(cs_deploy(c, m1, NULL, lc->agent.state_dir, 1, time(NULL), NULL, err,
				sizeof(err)) == 0,
		      "%s", err);
	sha1 = sha_of(live_cert);
	/* The key file's directory becomes a file: that write fails, after the others. */
	cs_test_rmrf(blocked);
	free(cs_test_write(tmp, "blocked", "not a directory\n", 0600));
	m2 = answer("leaf2.pem int.pem");
	ck_assert_int_lt(cs_deploy(c, m2, m1, lc->agent.state_dir, 2, time(NULL), NULL, err,
				   sizeof(err)),
			 0);
	ck_assert_msg(strstr(err, "mail.key"), "%s", err);
	got = sha_of(live_cert);
	ck_assert_str_eq(got, sha1);
	free(got);
	got = sha_of(c->fullchain);
	ck_assert_str_eq(got, sha1);
	free(got);
	/* And once the key file can be written, the new one is deployed everywhere. */
	ck_assert_int_eq(unlink(blocked), 0);
	ck_assert_int_eq(mkdir(blocked, 0700), 0);
	ck_assert_msg(cs_deploy(c, m2, m1, lc->agent.state_dir, 2, time(NULL), NULL, err,
				sizeof(err)) == 0,
		      "%s", err);
	sha2 = sha_of(live_cert);
	ck_assert_str_ne(sha2, sha1);
	got = sha_of(c->fullchain);
	ck_assert_str_eq(got, sha2);
	free(got);
	cs_material_free(m1);
	cs_material_free(m2);
	cs_config_free(lc);
	free(sha1);
	free(sha2);
	free(live_cert);
	free(blocked);
	free(conf);
}
END_TEST

Suite *examine_suite(void)
{
	Suite *s = suite_create("examine");
	TCase *tc = tcase_create("examine");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_examine_deploy_checks_the_chain, 0, NANSWERS);
	tcase_add_test(tc, test_examine_failed_deploy_puts_live_back);
	tcase_add_loop_test(tc, test_examine_adopts_only_a_sound_chain, 0, NPLACED);
	suite_add_tcase(s, tc);
	return s;
}
