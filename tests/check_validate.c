/*
 * check_validate - each reason material is unfit to deploy, on its own, with
 * the message a person reads; on the throwaway hierarchy of tests/mkpki.sh.
 */
#include "cs_chain.h"
#include "cs_ingest.h"
#include "cs_validate.h"
#include "testutil.h"

#include <check.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *pki;

static void pki_setup(void)
{
	/* After mkpki.sh for both key types, in pki/ec: the files these tests add. */
	pki = cs_test_mkpki(
		"mkdir capath && cp root.pem capath/ && openssl rehash capath "
		"&& mkdir straypath && cp stray.pem straypath/ && openssl rehash straypath "
		"&& for a in ec rsa; do cat ../$a/leaf.key ../$a/leaf.pem ../$a/int.pem "
		">../$a/noroot.pem && cat ../$a/leaf.key ../$a/leaf.pem "
		">../$a/leafonly.pem; done && "
		"openssl req -x509 -newkey rsa:1024 -nodes -keyout weak.key -out weak.pem "
		"-subj /CN=weak.example.test -days 30 2>/dev/null && "
		"cat weak.key weak.pem >weak-bundle.pem && "
		/* the root and the intermediate as one store: leafonly is incomplete */
		"cat root.pem int.pem >rootint.pem && "
		/* a leaf only for TLS clients */
		"printf '[c]\\nextendedKeyUsage = clientAuth\\n' >client.cnf && "
		"openssl req -new -key leaf.key -subj /CN=leaf.example.test 2>/dev/null | "
		"openssl x509 -req -CA int.pem -CAkey int.key -set_serial 7 -days 30 "
		"-extfile client.cnf -extensions c -out client.pem 2>/dev/null && "
		"cat leaf.key client.pem int.pem root.pem >client-bundle.pem && "
		/* the intermediate cross-signed by the stray: two issuers of the leaf */
		"openssl req -new -key int.key -subj '/O=certsync tests/CN=certsync Test "
		"Intermediate' 2>/dev/null | openssl x509 -req -CA stray.pem -CAkey "
		"stray.key -set_serial 8 -days 30 -extfile ext.cnf -extensions ca "
		"-out intx.pem 2>/dev/null && "
		"cat root.pem int.pem leaf.pem leaf.key >reversed.pem && "
		"cat root.pem stray.pem intx.pem int.pem leaf.pem leaf.key >crossed.pem");
}

static void pki_teardown(void)
{
	cs_test_rmrf(pki);
	free(pki);
}

static char *path_of(const char *alg, const char *file)
{
	return cs_test_path("%s/%s/%s", pki, alg, file);
}

/* Ingests and normalises alg/file (and a second file when file2 is not NULL). */
static cs_material *load(const char *alg, const char *file, const char *file2)
{
	cs_material *m = cs_material_new();
	char err[1024], report[1024];
	const char *files[2] = { file, file2 };

	for (int i = 0; i < 2 && files[i] != NULL; i++) {
		char *p = path_of(alg, files[i]);

		ck_assert_msg(cs_ingest_file(m, p, NULL, err, sizeof(err)) == 0, "%s", err);
		free(p);
	}
	ck_assert_int_ge(cs_chain_normalise(m, report, sizeof(report)), 0);
	return m;
}

static time_t to_time(const ASN1_TIME *t)
{
	struct tm tm;

	ck_assert(ASN1_TIME_to_tm(t, &tm));
	return timegm(&tm);
}

/* Runs cs_validate and checks it returned exactly what it appended. */
static struct cs_problems *run(const cs_material *m, const struct cs_validate_opts *o)
{
	struct cs_problems *p = cs_problems_new();
	char err[256];
	int n;

	ck_assert_ptr_nonnull(p);
	n = cs_validate(m, o, p, err, sizeof(err));
	ck_assert_int_ge(n, 0);
	ck_assert_int_eq((size_t)n, p->n);
	return p;
}

static void dump(const struct cs_problems *p)
{
	for (size_t i = 0; i < p->n; i++)
		fprintf(stderr, "  problem %zu (code %d, depth %d): %s\n", i, p->v[i].code,
			p->v[i].depth, p->v[i].msg);
}

static void expect_one(const struct cs_problems *p, enum cs_problem_code code, const char *msg)
{
	if (p->n != 1)
		dump(p);
	ck_assert_uint_eq(p->n, 1);
	ck_assert_int_eq(p->v[0].code, code);
	ck_assert_str_eq(p->v[0].msg, msg);
}

static const char *const good_names[] = { "leaf.example.test", "x.wild.example.test",
					  "127.0.0.1", NULL };

/* A complete set passes, against each kind of trust, EC and RSA. */
START_TEST(test_validate_clean_set_passes)
{
	const char *alg = _i < 3 ? "ec" : "rsa";
	char *cafile = path_of(alg, "root.pem"), *capath = path_of("ec", "capath");
	cs_material *m = load(alg, "mixed.pem", NULL);
	struct cs_validate_opts o = {
		.require_key = true,
		.names = good_names,
		.keytype = _i < 3 ? CS_KEY_EC_P256 : CS_KEY_RSA_2048,
	};
	struct cs_problems *p;

	switch (_i % 3) {
	case 0:
		o.trust = CS_TRUST_OWN_ROOT;
		break;
	case 1:
		o.trust = CS_TRUST_STORE;
		o.cafile = cafile;
		break;
	case 2:
		o.trust = CS_TRUST_STORE;
		o.capath = capath;
		if (strcmp(alg, "rsa") == 0) /* the CApath holds the EC root only */
			o.trust = CS_TRUST_STORE, o.capath = NULL, o.cafile = cafile;
		break;
	}
	p = run(m, &o);
	if (p->n != 0)
		dump(p);
	ck_assert_uint_eq(p->n, 0);
	cs_problems_free(p);
	cs_material_free(m);
	free(cafile);
	free(capath);
}
END_TEST

START_TEST(test_validate_no_key)
{
	cs_material *m = load("ec", "leaf.pem", "chain.pem");
	struct cs_validate_opts o = { .require_key = true };
	struct cs_problems *p = run(m, &o);

	expect_one(p, CS_PROB_NO_KEY, "there is no private key");
	cs_problems_free(p);
	/* A certificate alone is fine when no key is asked for (a CA file). */
	o.require_key = false;
	p = run(m, &o);
	ck_assert_uint_eq(p->n, 0);
	cs_problems_free(p);
	cs_material_free(m);
}
END_TEST

START_TEST(test_validate_no_leaf)
{
	cs_material *m = load("ec", "leaf.key", NULL);
	struct cs_validate_opts o = { .require_key = true, .trust = CS_TRUST_OWN_ROOT };
	struct cs_problems *p = run(m, &o);

	expect_one(p, CS_PROB_NO_LEAF, "there is no certificate");
	cs_problems_free(p);
	cs_material_free(m);
}
END_TEST

START_TEST(test_validate_key_mismatch)
{
	cs_material *m = load(_i == 0 ? "ec" : "rsa", "mismatch.pem", NULL);
	struct cs_validate_opts o = { .require_key = true, .trust = CS_TRUST_OWN_ROOT };
	struct cs_problems *p = run(m, &o);

	expect_one(p, CS_PROB_KEY_MISMATCH,
		   "the private key does not belong to the certificate CN=leaf.example.test");
	ck_assert_int_eq(p->v[0].depth, 0);
	cs_problems_free(p);
	cs_material_free(m);
}
END_TEST

/* Trust failures: file, the trust to use, and the message expected. */
static const struct {
	const char *alg, *file, *cafile, *capath;
	enum cs_trust trust;
	const char *msg; /* @: the directory of the alg's material */
} trust_cases[] = {
	{ "ec", "mixed.pem", "stray.pem", NULL, CS_TRUST_STORE,
	  "the chain does not verify to CAfile @/stray.pem: self-signed certificate in "
	  "certificate chain at depth 2 (O=certsync tests, CN=certsync Test Root)" },
	{ "ec", "leafonly.pem", "root.pem", NULL, CS_TRUST_STORE,
	  "the chain does not verify to CAfile @/root.pem: unable to get local issuer "
	  "certificate at depth 0 (CN=leaf.example.test)" },
	{ "rsa", "noroot.pem", "../ec/root.pem", NULL, CS_TRUST_STORE,
	  "the chain does not verify to CAfile @/../ec/root.pem: unable to get local issuer "
	  "certificate at depth 1 (O=certsync tests, CN=certsync Test Intermediate)" },
	{ "ec", "noroot.pem", NULL, "straypath", CS_TRUST_STORE,
	  "the chain does not verify to CApath @/straypath: unable to get local issuer "
	  "certificate at depth 1 (O=certsync tests, CN=certsync Test Intermediate)" },
	{ "ec", "noroot.pem", NULL, NULL, CS_TRUST_OWN_ROOT,
	  "the chain ends at O=certsync tests, CN=certsync Test Intermediate, issued by "
	  "O=certsync tests, CN=certsync Test Root, which is not in the set: there is no "
	  "root to verify it to" },
	{ "ec", "mixed.pem", "nonexistent.pem", NULL, CS_TRUST_STORE,
	  "cannot load the CAfile @/nonexistent.pem" },
	{ "ec", "mixed.pem", NULL, "nonexistent", CS_TRUST_STORE,
	  "the CApath @/nonexistent is not a directory" },
	{ "ec", "mixed.pem", NULL, NULL, CS_TRUST_STORE,
	  "no CAfile or CApath given to verify the chain against" },
};
#define NTRUST (int)(sizeof(trust_cases) / sizeof(trust_cases[0]))

/* Copies tmpl to out with its one '@' replaced by dir. */
static void subst(const char *tmpl, const char *dir, char *out, size_t len)
{
	const char *at = strchr(tmpl, '@');

	if (at == NULL)
		snprintf(out, len, "%s", tmpl);
	else
		snprintf(out, len, "%.*s%s%s", (int)(at - tmpl), tmpl, dir, at + 1);
}

START_TEST(test_validate_trust_failures)
{
	const char *alg = trust_cases[_i].alg;
	cs_material *m = load(alg, trust_cases[_i].file, NULL);
	char *dir = path_of(alg, ""), *cafile = NULL, *capath = NULL, want[1024];
	struct cs_validate_opts o = { .require_key = true, .trust = trust_cases[_i].trust };
	struct cs_problems *p;

	dir[strlen(dir) - 1] = '\0';
	if (trust_cases[_i].cafile != NULL)
		cafile = path_of(alg, trust_cases[_i].cafile);
	if (trust_cases[_i].capath != NULL)
		capath = path_of(alg, trust_cases[_i].capath);
	o.cafile = cafile;
	o.capath = capath;
	p = run(m, &o);
	subst(trust_cases[_i].msg, dir, want, sizeof(want));
	if (p->n != 1)
		dump(p);
	ck_assert_uint_eq(p->n, 1);
	ck_assert_int_eq(p->v[0].code, CS_PROB_TRUST);
	/* Loading errors carry OpenSSL's reasons after the sentence. */
	ck_assert_msg(strncmp(p->v[0].msg, want, strlen(want)) == 0, "got \"%s\"\nwant \"%s\"",
		      p->v[0].msg, want);
	cs_problems_free(p);
	cs_material_free(m);
	free(cafile);
	free(capath);
	free(dir);
}
END_TEST

/* Names: covered or not, wildcard rules as X509_check_host applies them. */
static const struct {
	const char *name;
	bool covered;
} names[] = {
	{ "leaf.example.test", true },   { "LEAF.Example.TEST", true },
	{ "a.wild.example.test", true }, { "127.0.0.1", true },
	{ "other.example.test", false }, { "a.b.wild.example.test", false },
	{ "wild.example.test", false },  { "example.test", false },
	{ "127.0.0.2", false },          { "::1", false },
};
#define NNAMES (int)(sizeof(names) / sizeof(names[0]))

START_TEST(test_validate_names)
{
	cs_material *m = load("ec", "mixed.pem", NULL);
	const char *list[] = { names[_i].name, NULL };
	struct cs_validate_opts o = { .names = list };
	struct cs_problems *p = run(m, &o);
	char want[512];

	if (names[_i].covered) {
		if (p->n != 0)
			dump(p);
		ck_assert_uint_eq(p->n, 0);
	} else {
		snprintf(want, sizeof(want),
			 "the certificate CN=leaf.example.test does not cover the name \"%s\" (it "
			 "covers DNS:leaf.example.test, DNS:*.wild.example.test, IP "
			 "Address:127.0.0.1)",
			 names[_i].name);
		expect_one(p, CS_PROB_NAME, want);
	}
	cs_problems_free(p);
	cs_material_free(m);
}
END_TEST

/* Dates, judged at a moment the test picks. */
START_TEST(test_validate_dates)
{
	cs_material *m = load("ec", "mixed.pem", NULL);
	const ASN1_TIME *nb = X509_get0_notBefore(m->leaf), *na = X509_get0_notAfter(m->leaf);
	const ASN1_TIME *int_na = X509_get0_notAfter(sk_X509_value(m->chain, 0));
	struct cs_validate_opts o = { 0 };
	struct cs_problems *p;
	char when[64], want[512];

	/* The edges: valid from notBefore, still valid a second before notAfter. */
	o.now = to_time(nb);
	p = run(m, &o);
	ck_assert_uint_eq(p->n, 0);
	cs_problems_free(p);
	o.now = to_time(na) - 1;
	p = run(m, &o);
	ck_assert_uint_eq(p->n, 0);
	cs_problems_free(p);

	o.now = to_time(nb) - 2 * 86400;
	p = run(m, &o);
	/* The intermediate was made a moment earlier and may be not yet valid too. */
	ck_assert_uint_ge(p->n, 1);
	ck_assert_int_eq(p->v[0].code, CS_PROB_NOT_YET_VALID);
	ck_assert_int_eq(p->v[0].depth, 0);
	{
		struct tm tm;
		time_t t = to_time(nb);

		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	}
	snprintf(want, sizeof(want),
		 "the certificate CN=leaf.example.test is not valid yet: its validity starts at "
		 "%s (2 days from now)",
		 when);
	ck_assert_str_eq(p->v[0].msg, want);
	cs_problems_free(p);

	o.now = to_time(na) + 3 * 86400 + 10;
	p = run(m, &o);
	{
		struct tm tm;
		time_t t = to_time(na);

		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	}
	snprintf(want, sizeof(want),
		 "the certificate CN=leaf.example.test has expired: its validity ended at %s "
		 "(3 days ago)",
		 when);
	expect_one(p, CS_PROB_EXPIRED, want);
	cs_problems_free(p);

	/* Past the intermediate's end: each expired certificate is its own problem. */
	o.now = to_time(int_na) + 86400;
	p = run(m, &o);
	ck_assert_uint_eq(p->n, 2);
	ck_assert_int_eq(p->v[0].code, CS_PROB_EXPIRED);
	ck_assert_int_eq(p->v[0].depth, 0);
	ck_assert_int_eq(p->v[1].code, CS_PROB_EXPIRED);
	ck_assert_int_eq(p->v[1].depth, 1);
	ck_assert_ptr_nonnull(strstr(p->v[1].msg, "the certificate O=certsync tests, "
						  "CN=certsync Test Intermediate has expired"));
	cs_problems_free(p);
	cs_material_free(m);
}
END_TEST

START_TEST(test_validate_key_type)
{
	cs_material *ec = load("ec", "mixed.pem", NULL), *rsa = load("rsa", "mixed.pem", NULL);
	struct cs_validate_opts o = { .keytype = CS_KEY_EC_P384 };
	struct cs_problems *p = run(ec, &o);

	expect_one(p, CS_PROB_KEY_TYPE, "the private key is EC P-256, but ec:P-384 was expected");
	cs_problems_free(p);
	o.keytype = CS_KEY_EC_P256;
	p = run(rsa, &o);
	expect_one(p, CS_PROB_KEY_TYPE,
		   "the private key is RSA 2048 bits, but ec:P-256 was expected");
	cs_problems_free(p);
	o.keytype = CS_KEY_RSA_2048;
	p = run(rsa, &o);
	ck_assert_uint_eq(p->n, 0);
	cs_problems_free(p);
	cs_material_free(ec);
	cs_material_free(rsa);
}
END_TEST

START_TEST(test_validate_weak_rsa)
{
	cs_material *m = load("ec", "weak-bundle.pem", NULL);
	struct cs_validate_opts o = { .require_key = true };
	struct cs_problems *p = run(m, &o);

	expect_one(p, CS_PROB_KEY_WEAK,
		   "the private key is an RSA key of 1024 bits; at least 2048 bits are required");
	cs_problems_free(p);
	/* Without the key, the certificate's key is judged. */
	cs_material_free(m);
	m = load("ec", "weak.pem", NULL);
	p = run(m, &o);
	ck_assert_uint_eq(p->n, 2);
	ck_assert(cs_problems_has(p, CS_PROB_NO_KEY));
	ck_assert(cs_problems_has(p, CS_PROB_KEY_WEAK));
	cs_problems_free(p);
	cs_material_free(m);
}
END_TEST

/* Several things wrong at once: every one is reported, each on its own. */
START_TEST(test_validate_all_problems_listed)
{
	cs_material *m = load("ec", "mismatch.pem", NULL);
	const char *const want_names[] = { "leaf.example.test", "mail.example.test", NULL };
	struct cs_validate_opts o = {
		.require_key = true,
		.trust = CS_TRUST_OWN_ROOT,
		.names = want_names,
		.keytype = CS_KEY_EC_P384,
	};
	struct cs_problems *p;

	o.now = to_time(X509_get0_notAfter(m->leaf)) + 86400 * 10;
	p = run(m, &o);
	if (p->n != 4)
		dump(p);
	ck_assert_uint_eq(p->n, 4);
	ck_assert(cs_problems_has(p, CS_PROB_KEY_MISMATCH));
	ck_assert(cs_problems_has(p, CS_PROB_KEY_TYPE));
	ck_assert(cs_problems_has(p, CS_PROB_EXPIRED));
	ck_assert(cs_problems_has(p, CS_PROB_NAME));
	ck_assert(!cs_problems_has(p, CS_PROB_TRUST));
	ck_assert_ptr_nonnull(strstr(p->v[3].msg, "\"mail.example.test\""));
	cs_problems_free(p);
	cs_material_free(m);
}
END_TEST

/* Links: each certificate issued by the next, nothing left over. */
START_TEST(test_validate_links)
{
	cs_material *m = load("ec", _i == 0 ? "mixed.pem" : "strayed.pem", NULL);
	struct cs_validate_opts o = { .require_key = _i == 0 };
	struct cs_problems *p;

	if (_i == 0) {
		/* As an issuer could hand it over: the root before the intermediate. */
		X509 *intm = sk_X509_shift(m->chain);

		sk_X509_push(m->chain, intm);
		p = run(m, &o);
		expect_one(p, CS_PROB_ORDER,
			   "the chain is not in order: the certificate CN=leaf.example.test is not "
			   "issued by O=certsync tests, CN=certsync Test Root, which follows it");
		ck_assert_int_eq(p->v[0].depth, 0);
	} else {
		p = run(m, &o);
		expect_one(p, CS_PROB_STRAY,
			   "the certificate CN=certsync Stray (issued by CN=certsync Stray) is not "
			   "part of the leaf's chain");
	}
	cs_problems_free(p);
	cs_material_free(m);
}
END_TEST

/* A store holding the intermediate must not hide that the set lacks it. */
START_TEST(test_validate_incomplete_chain)
{
	cs_material *m = load("ec", "leafonly.pem", NULL);
	char *cafile = path_of("ec", "rootint.pem"), want[1024];
	struct cs_validate_opts o = { .require_key = true, .trust = CS_TRUST_STORE };
	struct cs_problems *p;

	o.cafile = cafile;
	p = run(m, &o);
	snprintf(want, sizeof(want),
		 "the chain is incomplete: it ends at CN=leaf.example.test, whose issuer "
		 "O=certsync tests, CN=certsync Test Intermediate is not a trust anchor of CAfile "
		 "%s and not in the set",
		 cafile);
	expect_one(p, CS_PROB_TRUST, want);
	cs_problems_free(p);
	cs_material_free(m);
	/* With the intermediate in the set, the same store is fine. */
	m = load("ec", "noroot.pem", NULL);
	p = run(m, &o);
	if (p->n != 0)
		dump(p);
	ck_assert_uint_eq(p->n, 0);
	cs_problems_free(p);
	cs_material_free(m);
	free(cafile);
}
END_TEST

START_TEST(test_validate_usage)
{
	cs_material *m = load("ec", "client-bundle.pem", NULL);
	struct cs_validate_opts o = { .require_key = true, .eku = XKU_SSL_SERVER };
	struct cs_problems *p = run(m, &o);

	expect_one(p, CS_PROB_USAGE,
		   "the certificate CN=leaf.example.test may not be used as a TLS server "
		   "(serverAuth): its extended key usage does not allow it");
	cs_problems_free(p);
	o.eku = XKU_SSL_CLIENT;
	p = run(m, &o);
	ck_assert_uint_eq(p->n, 0);
	cs_problems_free(p);
	cs_material_free(m);
}
END_TEST

/* Ordering: in order, reordered when that can be told, refused when not. */
static const struct {
	const char *file;
	int rc;
} orders[] = {
	{ "mixed.pem", 0 },
	{ "shuffled.pem", 1 },
	{ "reversed.pem", 1 },
	{ "crossed.pem", CS_CHAIN_AMBIGUOUS },
};
#define NORDERS (int)(sizeof(orders) / sizeof(orders[0]))

START_TEST(test_validate_chain_order)
{
	cs_material *m = cs_material_new();
	char *p = path_of("ec", orders[_i].file), err[1024], report[2048];
	char subj[256];

	ck_assert_msg(cs_ingest_file(m, p, NULL, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(cs_chain_order(m, report, sizeof(report)), orders[_i].rc);
	ck_assert_ptr_nonnull(m->leaf);
	X509_NAME_oneline(X509_get_subject_name(m->leaf), subj, sizeof(subj));
	ck_assert_str_eq(subj, "/CN=leaf.example.test");
	if (orders[_i].rc == CS_CHAIN_AMBIGUOUS)
		ck_assert_msg(strstr(report, "cannot be put in order unambiguously: more than one "
					     "of them could have issued CN=leaf.example.test") !=
				      NULL,
			      "%s", report);
	else
		ck_assert_int_eq(sk_X509_num(m->chain), 2);
	/* Asked again, the set is in order. */
	if (orders[_i].rc != CS_CHAIN_AMBIGUOUS)
		ck_assert_int_eq(cs_chain_order(m, report, sizeof(report)), 0);
	cs_material_free(m);
	free(p);
}
END_TEST

Suite *validate_suite(void)
{
	Suite *s = suite_create("validate");
	TCase *tc = tcase_create("validate");

	tcase_add_unchecked_fixture(tc, pki_setup, pki_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_validate_clean_set_passes, 0, 6);
	tcase_add_test(tc, test_validate_no_key);
	tcase_add_test(tc, test_validate_no_leaf);
	tcase_add_loop_test(tc, test_validate_key_mismatch, 0, 2);
	tcase_add_loop_test(tc, test_validate_trust_failures, 0, NTRUST);
	tcase_add_loop_test(tc, test_validate_names, 0, NNAMES);
	tcase_add_test(tc, test_validate_dates);
	tcase_add_test(tc, test_validate_key_type);
	tcase_add_test(tc, test_validate_weak_rsa);
	tcase_add_test(tc, test_validate_all_problems_listed);
	tcase_add_loop_test(tc, test_validate_links, 0, 2);
	tcase_add_test(tc, test_validate_incomplete_chain);
	tcase_add_test(tc, test_validate_usage);
	tcase_add_loop_test(tc, test_validate_chain_order, 0, NORDERS);
	suite_add_tcase(s, tc);
	return s;
}
