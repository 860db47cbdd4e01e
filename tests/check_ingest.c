/*
 * check_ingest - reading every input format into one set, and putting the
 * set in order: on a throwaway CA hierarchy (root -> intermediate -> leaf,
 * EC and RSA) made by tests/mkpki.sh with the openssl command.
 */
#include "cs_chain.h"
#include "cs_ingest.h"
#include "cs_material.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *pki; /* made once per test case, in the parent (unchecked fixture) */
static const char *const algs[] = { "ec", "rsa" };

static void pki_setup(void)
{
	pki = cs_test_mkpki(NULL);
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

static X509 *load_cert(const char *alg, const char *file)
{
	char *p = path_of(alg, file);
	X509 *x = cs_test_read_x509(p);

	free(p);
	return x;
}

/* Ingests alg/file with password pw; returns the code, message in err. */
static int ingest(cs_material *m, const char *alg, const char *file, const char *pw,
		  struct cs_ingest_info *info, char *err, size_t errlen)
{
	struct cs_ingest_opts o = { .password = pw };
	char *p = path_of(alg, file);
	int rc = cs_ingest_file_info(m, p, &o, info, err, errlen);

	free(p);
	return rc;
}

static void assert_same(X509 *got, const char *alg, const char *file)
{
	X509 *want = load_cert(alg, file);

	ck_assert_ptr_nonnull(got);
	ck_assert_msg(X509_cmp(got, want) == 0, "%s/%s: a different certificate", alg, file);
	X509_free(want);
}

/* Every input format, EC and RSA: the same leaf, chain and key come out. */
static const struct {
	const char *file;
	const char *password;
	enum cs_ingest_format format;
	int keys;  /* 1: the set must hold leaf.key */
	int chain; /* issuers expected after normalising: 2 (int, root) or 0 */
	int certs; /* certificates ingest reports */
} formats[] = {
	{ "mixed.pem", NULL, CS_FMT_PEM, 1, 2, 3 },
	{ "shuffled.pem", NULL, CS_FMT_PEM, 1, 2, 3 },
	{ "leaf.pem", NULL, CS_FMT_PEM, 0, 0, 1 },
	{ "trusted.pem", NULL, CS_FMT_PEM, 0, 0, 1 },
	{ "leaf.der", NULL, CS_FMT_DER_CERT, 0, 0, 1 },
	{ "leaf.key.der", NULL, CS_FMT_DER_KEY, 1, -1, 0 },
	{ "chain.p7b", NULL, CS_FMT_PEM, 0, 2, 3 },
	{ "chain.p7b.der", NULL, CS_FMT_PKCS7_DER, 0, 2, 3 },
	{ "bundle.p12", "s3cret", CS_FMT_PKCS12, 1, 2, 3 },
	{ "nopw.p12", NULL, CS_FMT_PKCS12, 1, 2, 3 },
	{ "leaf.enc.key", "s3cret", CS_FMT_PEM, 1, -1, 0 },
	{ "leaf.legacy.key", "s3cret", CS_FMT_PEM, 1, -1, 0 },
};
#define NFORMATS (int)(sizeof(formats) / sizeof(formats[0]))

START_TEST(test_ingest_every_format)
{
	const char *alg = algs[_i / NFORMATS];
	int f = _i % NFORMATS;
	cs_material *m = cs_material_new();
	struct cs_ingest_info info;
	char err[1024], report[1024];
	int rc;

	rc = ingest(m, alg, formats[f].file, formats[f].password, &info, err, sizeof(err));
	ck_assert_msg(rc == 0, "%s/%s: %s", alg, formats[f].file, err);
	ck_assert_int_eq(info.format, formats[f].format);
	ck_assert_int_eq(info.keys, formats[f].keys);
	ck_assert_int_eq(info.certs, formats[f].certs);
	ck_assert_int_eq(sk_X509_num(m->strays), formats[f].certs);
	ck_assert_int_eq(cs_chain_normalise(m, report, sizeof(report)), 0);
	if (formats[f].keys) {
		X509 *leaf = load_cert(alg, "leaf.pem");

		ck_assert_ptr_nonnull(m->key);
		ck_assert_int_eq(EVP_PKEY_eq(m->key, X509_get0_pubkey(leaf)), 1);
		X509_free(leaf);
	} else {
		ck_assert_ptr_null(m->key);
	}
	if (formats[f].chain >= 0) {
		assert_same(m->leaf, alg, "leaf.pem");
		ck_assert_int_eq(sk_X509_num(m->chain), formats[f].chain);
		if (formats[f].chain == 2) {
			assert_same(sk_X509_value(m->chain, 0), alg, "int.pem");
			assert_same(sk_X509_value(m->chain, 1), alg, "root.pem");
		}
	} else {
		ck_assert_ptr_null(m->leaf);
	}
	ck_assert_int_eq(sk_X509_num(m->strays), 0);
	cs_material_free(m);
}
END_TEST

/* The name says nothing: a DER certificate called .pem is still read. */
START_TEST(test_ingest_detects_by_content)
{
	char *der = path_of("ec", "leaf.der"), *cmd, err[512];
	cs_material *m = cs_material_new();
	struct cs_ingest_info info;
	int rc;

	ck_assert_int_ge(asprintf(&cmd, "cp %s %s/ec/looks-like.pem", der, pki), 0);
	ck_assert_int_eq(cs_test_run(cmd, NULL), 0);
	rc = ingest(m, "ec", "looks-like.pem", NULL, &info, err, sizeof(err));
	ck_assert_msg(rc == 0, "%s", err);
	ck_assert_int_eq(info.format, CS_FMT_DER_CERT);
	cs_material_free(m);
	free(cmd);
	free(der);
}
END_TEST

/* Several files into one set: key, then fullchain, as Dovecot keeps them. */
START_TEST(test_ingest_several_files_one_set)
{
	cs_material *m = cs_material_new();
	char err[512], report[512];

	ck_assert_int_eq(ingest(m, "rsa", "leaf.key", NULL, NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(ingest(m, "rsa", "chain.pem", NULL, NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(ingest(m, "rsa", "leaf.der", NULL, NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(cs_chain_normalise(m, report, sizeof(report)), 0);
	assert_same(m->leaf, "rsa", "leaf.pem");
	assert_same(sk_X509_value(m->chain, 0), "rsa", "int.pem");
	assert_same(sk_X509_value(m->chain, 1), "rsa", "root.pem");
	cs_material_free(m);
}
END_TEST

/* leaf, root, intermediate (and the key last) comes out leaf, intermediate, root. */
START_TEST(test_ingest_wrong_order_fixed)
{
	const char *alg = algs[_i];
	cs_material *m = cs_material_new();
	char err[512], report[512];

	ck_assert_int_eq(ingest(m, alg, "shuffled.pem", NULL, NULL, err, sizeof(err)), 0);
	/* As read: leaf, root, int. */
	assert_same(sk_X509_value(m->strays, 1), alg, "root.pem");
	ck_assert_int_eq(cs_chain_normalise(m, report, sizeof(report)), 0);
	assert_same(m->leaf, alg, "leaf.pem");
	ck_assert_int_eq(sk_X509_num(m->chain), 2);
	assert_same(sk_X509_value(m->chain, 0), alg, "int.pem");
	assert_same(sk_X509_value(m->chain, 1), alg, "root.pem");
	ck_assert_str_eq(report, "");
	/* Normalising again changes nothing. */
	ck_assert_int_eq(cs_chain_normalise(m, report, sizeof(report)), 0);
	assert_same(m->leaf, alg, "leaf.pem");
	assert_same(sk_X509_value(m->chain, 1), alg, "root.pem");
	cs_material_free(m);
}
END_TEST

/* Without a key the leaf is the certificate that issues none of the others. */
START_TEST(test_ingest_leaf_without_key)
{
	cs_material *m = cs_material_new();
	char err[512], report[512], *cmd;

	ck_assert_int_ge(asprintf(&cmd, "cd %s/ec && cat root.pem int.pem leaf.pem >rev.pem", pki),
			 0);
	ck_assert_int_eq(cs_test_run(cmd, NULL), 0);
	ck_assert_int_eq(ingest(m, "ec", "rev.pem", NULL, NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(cs_chain_normalise(m, report, sizeof(report)), 0);
	assert_same(m->leaf, "ec", "leaf.pem");
	assert_same(sk_X509_value(m->chain, 0), "ec", "int.pem");
	assert_same(sk_X509_value(m->chain, 1), "ec", "root.pem");
	cs_material_free(m);
	free(cmd);
}
END_TEST

START_TEST(test_ingest_duplicates_dropped)
{
	cs_material *m = cs_material_new();
	char err[512], report[1024];

	ck_assert_int_eq(ingest(m, algs[_i], "dup.pem", NULL, NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(sk_X509_num(m->strays), 5);
	ck_assert_int_eq(cs_chain_normalise(m, report, sizeof(report)), 0);
	ck_assert_int_eq(sk_X509_num(m->chain), 2);
	ck_assert_int_eq(sk_X509_num(m->strays), 0);
	ck_assert_ptr_nonnull(strstr(report, "dropped a duplicate of certificate "
					     "O=certsync tests, CN=certsync Test Intermediate\n"));
	ck_assert_ptr_nonnull(strstr(report, "dropped a duplicate of certificate "
					     "CN=leaf.example.test\n"));
	cs_material_free(m);
}
END_TEST

START_TEST(test_ingest_stray_reported)
{
	cs_material *m = cs_material_new();
	char err[512], report[1024];

	ck_assert_int_eq(ingest(m, algs[_i], "strayed.pem", NULL, NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(cs_chain_normalise(m, report, sizeof(report)), 1);
	assert_same(m->leaf, algs[_i], "leaf.pem");
	ck_assert_int_eq(sk_X509_num(m->chain), 2);
	ck_assert_int_eq(sk_X509_num(m->strays), 1);
	assert_same(sk_X509_value(m->strays, 0), algs[_i], "stray.pem");
	ck_assert_str_eq(report, "certificate CN=certsync Stray (issued by CN=certsync Stray) "
				 "is not part of the leaf's chain\n");
	cs_material_free(m);
}
END_TEST

/* A key that belongs to no certificate: normalise says so, the leaf is still found. */
START_TEST(test_ingest_mismatched_key)
{
	cs_material *m = cs_material_new();
	char err[512], report[1024];

	ck_assert_int_eq(ingest(m, algs[_i], "mismatch.pem", NULL, NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(cs_chain_normalise(m, report, sizeof(report)), 0);
	ck_assert_str_eq(report, "no certificate matches the private key; taking "
				 "CN=leaf.example.test as the leaf\n");
	assert_same(m->leaf, algs[_i], "leaf.pem");
	ck_assert_int_ne(EVP_PKEY_eq(m->key, X509_get0_pubkey(m->leaf)), 1);
	cs_material_free(m);
}
END_TEST

/* Encrypted keys: refused without a password, refused with a wrong one. */
static const struct {
	const char *file;
	const char *password;
	int rc;
	const char *fragments[4];
} refusals[] = {
	{ "leaf.enc.key",
	  NULL,
	  -ENOKEY,
	  { "leaf.enc.key: the private key (block 1, line 1) is encrypted",
	    "Postfix cannot use encrypted keys", "--password-file", NULL } },
	{ "leaf.legacy.key",
	  NULL,
	  -ENOKEY,
	  { "leaf.legacy.key: the private key (block 1, line 1) is encrypted",
	    "Postfix cannot use encrypted keys", "--password-env", NULL } },
	{ "leaf.enc.key",
	  "wrong",
	  -EKEYREJECTED,
	  { "leaf.enc.key: cannot decrypt the private key (block 1, line 1): wrong password",
	    NULL } },
	{ "leaf.legacy.key",
	  "wrong",
	  -EKEYREJECTED,
	  { "leaf.legacy.key: cannot decrypt the private key", "wrong password", NULL } },
	{ "bundle.p12",
	  "wrong",
	  -EKEYREJECTED,
	  { "bundle.p12: cannot decrypt the PKCS#12 file (MAC check failed): wrong password",
	    NULL } },
	{ "bundle.p12",
	  NULL,
	  -ENOKEY,
	  { "bundle.p12: the PKCS#12 file is protected by a password and none was given",
	    "--password-file", NULL } },
};
#define NREFUSALS (int)(sizeof(refusals) / sizeof(refusals[0]))

START_TEST(test_ingest_password_refusals)
{
	const char *alg = algs[_i / NREFUSALS];
	int r = _i % NREFUSALS;
	cs_material *m = cs_material_new();
	char err[1024];

	ck_assert_int_eq(ingest(m, alg, refusals[r].file, refusals[r].password, NULL, err,
				sizeof(err)),
			 refusals[r].rc);
	for (int i = 0; refusals[r].fragments[i] != NULL; i++)
		ck_assert_msg(strstr(err, refusals[r].fragments[i]) != NULL,
			      "%s/%s: \"%s\" not in \"%s\"", alg, refusals[r].file,
			      refusals[r].fragments[i], err);
	ck_assert_ptr_null(m->key);
	cs_material_free(m);
}
END_TEST

START_TEST(test_ingest_password_from_file_and_env)
{
	char *pwfile = path_of("ec", "pw.txt"), *crlf, err[512];
	char *pw;
	cs_material *m;

	/* File: the first line, newline stripped, as openssl -passin file: reads it. */
	pw = cs_ingest_password_read(pwfile, NULL, err, sizeof(err));
	ck_assert_ptr_nonnull(pw);
	ck_assert_str_eq(pw, "s3cret");
	m = cs_material_new();
	ck_assert_int_eq(ingest(m, "ec", "bundle.p12", pw, NULL, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(m->key);
	cs_material_free(m);
	cs_ingest_password_free(pw);

	crlf = cs_test_write(pki, "crlf.txt", "s3cret\r\nsecond line\r\n", 0600);
	pw = cs_ingest_password_read(crlf, NULL, err, sizeof(err));
	ck_assert_str_eq(pw, "s3cret");
	cs_ingest_password_free(pw);

	/* Environment variable. */
	setenv("CS_TEST_P12_PASSWORD", "s3cret", 1);
	pw = cs_ingest_password_read(NULL, "CS_TEST_P12_PASSWORD", err, sizeof(err));
	ck_assert_ptr_nonnull(pw);
	m = cs_material_new();
	ck_assert_int_eq(ingest(m, "rsa", "leaf.enc.key", pw, NULL, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(m->key);
	cs_material_free(m);
	cs_ingest_password_free(pw);

	unsetenv("CS_TEST_NOT_SET");
	ck_assert_ptr_null(cs_ingest_password_read(NULL, "CS_TEST_NOT_SET", err, sizeof(err)));
	ck_assert_str_eq(err, "environment variable CS_TEST_NOT_SET (for the password) is not "
			      "set");
	ck_assert_ptr_null(cs_ingest_password_read("/nonexistent/pw", NULL, err, sizeof(err)));
	ck_assert_str_eq(err, "/nonexistent/pw: cannot open password file: No such file or "
			      "directory");
	free(crlf);
	free(pwfile);
}
END_TEST

/* Broken input: each one refused with a message naming the file and the place. */
static const struct {
	const char *name;
	const char *shell; /* makes $f from the ec material in the current directory */
	int rc;
	const char *fragment;
} broken[] = {
	{ "no-end.pem", "head -n -1 leaf.pem >$f", -EBADMSG,
	  "no-end.pem: PEM block 1 starting at line 1 is truncated or corrupt" },
	{ "cut-second.pem", "cat leaf.pem >$f; head -n 5 int.pem >>$f", -EBADMSG,
	  "cut-second.pem: PEM block 2 starting at line " },
	{ "bad-base64.pem", "sed '3s/^..../!!!!/' leaf.pem >$f", -EBADMSG,
	  "bad-base64.pem: PEM block 1 starting at line 1 is truncated or corrupt" },
	{ "garbage.bin", "head -c 3000 /dev/urandom | tr -d - >$f", -EBADMSG,
	  "garbage.bin: not a PEM, DER, PKCS#7 or PKCS#12 file" },
	{ "text.txt", "echo 'hello, this is not a certificate' >$f", -EBADMSG,
	  "text.txt: not a PEM, DER, PKCS#7 or PKCS#12 file" },
	{ "empty.pem", ": >$f", -EBADMSG, "empty.pem: empty file" },
	{ "cut.der", "head -c 200 leaf.der >$f", -EBADMSG,
	  "cut.der: not a PEM, DER, PKCS#7 or PKCS#12 file" },
	{ "begin-only.pem", "echo '-----BEGIN nothing here' >$f", -EBADMSG,
	  "begin-only.pem: contains \"-----BEGIN\" but no PEM block" },
	{ "params.pem",
	  "echo 'a comment line' >$f; printf -- '-----BEGIN PARAMETERS-----\\nMAA=\\n"
	  "-----END PARAMETERS-----\\n' >>$f; cat leaf.pem >>$f",
	  -EBADMSG,
	  "params.pem: PEM block 1 at line 2 is of type \"PARAMETERS\", which certsync "
	  "does not use" },
	{ "csr.pem", "openssl req -new -key leaf.key -subj /CN=x >$f", -EBADMSG,
	  "csr.pem: PEM block 1 at line 1 is a certificate request (CSR)" },
	{ "two-keys.pem", "cat leaf.key other.key leaf.pem >$f", -EEXIST,
	  "two-keys.pem: a second private key (block 2, line 6)" },
};
#define NBROKEN (int)(sizeof(broken) / sizeof(broken[0]))

START_TEST(test_ingest_broken_input)
{
	char *cmd, err[1024];
	cs_material *m = cs_material_new();

	ck_assert_int_ge(asprintf(&cmd, "cd %s/ec && f=%s && %s", pki, broken[_i].name,
				  broken[_i].shell), 0);
	ck_assert_int_eq(cs_test_run(cmd, NULL), 0);
	ck_assert_int_eq(ingest(m, "ec", broken[_i].name, NULL, NULL, err, sizeof(err)),
			 broken[_i].rc);
	ck_assert_msg(strstr(err, broken[_i].fragment) != NULL, "\"%s\" not in \"%s\"",
		      broken[_i].fragment, err);
	/* Messages name the file by the path given. */
	ck_assert_msg(strncmp(err, pki, strlen(pki)) == 0, "no path in \"%s\"", err);
	cs_material_free(m);
	free(cmd);
}
END_TEST

START_TEST(test_ingest_ec_parameters_ignored)
{
	cs_material *m = cs_material_new();
	struct cs_ingest_info info;
	char err[512];

	ck_assert_int_eq(ingest(m, "ec", "ecparams.key", NULL, &info, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(m->key);
	ck_assert_int_eq(info.keys, 1);
	cs_material_free(m);
}
END_TEST

/* CRLs (PEM, and DER) join the set next to the certificates. */
START_TEST(test_ingest_crl)
{
	char *cmd, err[512];
	cs_material *m = cs_material_new();
	struct cs_ingest_info info;

	/* A CRL signed by the root, made with openssl ca in a scratch CA directory. */
	ck_assert_int_ge(
		asprintf(&cmd,
			 "cd %s/ec && mkdir -p ca && : >ca/index.txt && echo 01 >ca/crlnumber && "
			 "printf '[ca]\\ndefault_ca=d\\n[d]\\ndatabase=ca/index.txt\\n"
			 "crlnumber=ca/crlnumber\\ndefault_md=sha256\\ndefault_crl_days=7\\n' "
			 ">ca.cnf && openssl ca -config ca.cnf -gencrl -cert root.pem -keyfile "
			 "root.key -out root.crl 2>/dev/null && openssl crl -in root.crl "
			 "-outform DER -out root.crl.der && cat leaf.pem root.crl >withcrl.pem",
			 pki),
		0);
	ck_assert_int_eq(cs_test_run(cmd, NULL), 0);
	ck_assert_int_eq(ingest(m, "ec", "withcrl.pem", NULL, &info, err, sizeof(err)), 0);
	ck_assert_int_eq(info.crls, 1);
	ck_assert_int_eq(info.certs, 1);
	ck_assert_int_eq(ingest(m, "ec", "root.crl.der", NULL, &info, err, sizeof(err)), 0);
	ck_assert_int_eq(info.format, CS_FMT_DER_CRL);
	ck_assert_int_eq(sk_X509_CRL_num(m->crls), 2);
	cs_material_free(m);
	free(cmd);
}
END_TEST

START_TEST(test_ingest_missing_file)
{
	cs_material *m = cs_material_new();
	char err[512];

	ck_assert_int_eq(cs_ingest_file(m, "/nonexistent/x.pem", NULL, err, sizeof(err)),
			 -ENOENT);
	ck_assert_str_eq(err, "/nonexistent/x.pem: cannot open: No such file or directory");
	cs_material_free(m);
}
END_TEST

Suite *ingest_suite(void)
{
	Suite *s = suite_create("ingest");
	TCase *tc = tcase_create("ingest");

	tcase_add_unchecked_fixture(tc, pki_setup, pki_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_ingest_every_format, 0, 2 * NFORMATS);
	tcase_add_test(tc, test_ingest_detects_by_content);
	tcase_add_test(tc, test_ingest_several_files_one_set);
	tcase_add_loop_test(tc, test_ingest_wrong_order_fixed, 0, 2);
	tcase_add_test(tc, test_ingest_leaf_without_key);
	tcase_add_loop_test(tc, test_ingest_duplicates_dropped, 0, 2);
	tcase_add_loop_test(tc, test_ingest_stray_reported, 0, 2);
	tcase_add_loop_test(tc, test_ingest_mismatched_key, 0, 2);
	tcase_add_loop_test(tc, test_ingest_password_refusals, 0, 2 * NREFUSALS);
	tcase_add_test(tc, test_ingest_password_from_file_and_env);
	tcase_add_loop_test(tc, test_ingest_broken_input, 0, NBROKEN);
	tcase_add_test(tc, test_ingest_ec_parameters_ignored);
	tcase_add_test(tc, test_ingest_crl);
	tcase_add_test(tc, test_ingest_missing_file);
	suite_add_tcase(s, tc);
	return s;
}
