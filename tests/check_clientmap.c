/*
 * check_clientmap - the client-certificate fingerprint map with the real
 * postmap: a certificate dropped into the directory ends up in the map, and
 * `postmap -q FINGERPRINT hash:MAP` (fingerprint as `openssl x509
 * -fingerprint` prints it) answers its name; expired, unreadable and
 * duplicate files are left out and listed; the map and the .db are not
 * rebuilt when nothing changed; public-key fingerprints; postmap's own error
 * reaches the caller. postmap runs against a private config directory.
 */
#include "cs_clientmap.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *tmp, *certs, *cfg, *map;
static EVP_PKEY *key;

static int have_postmap(void)
{
	return access("/usr/sbin/postmap", X_OK) == 0 || cs_test_run("command -v postmap", NULL) == 0;
}

static void setup(void)
{
	tmp = cs_test_mkdtemp();
	ck_assert_ptr_nonnull(tmp);
	ck_assert_int_ge(asprintf(&certs, "%s/clientcerts", tmp), 0);
	ck_assert_int_ge(asprintf(&cfg, "%s/postfix", tmp), 0);
	ck_assert_int_ge(asprintf(&map, "%s/relay_clientcerts", tmp), 0);
	ck_assert_int_eq(mkdir(certs, 0755), 0);
	ck_assert_int_eq(mkdir(cfg, 0755), 0);
	free(cs_test_write(cfg, "main.cf", "", 0644));
	key = EVP_EC_gen("P-256");
	ck_assert_ptr_nonnull(key);
}

static void teardown(void)
{
	cs_test_rmrf(tmp);
	free(tmp);
	free(certs);
	free(cfg);
	free(map);
	EVP_PKEY_free(key);
}

/* A certificate for CN=cn (none when NULL), valid from `from` to `to` seconds from now. */
static X509 *mk_cert(const char *cn, long serial, long from, long to)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();

	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"clients", -1, -1,
				   0);
	if (cn != NULL)
		X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1,
					   -1, 0);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_set_subject_name(x, n);
	X509_set_issuer_name(x, n);
	X509_gmtime_adj(X509_getm_notBefore(x), from);
	X509_gmtime_adj(X509_getm_notAfter(x), to);
	X509_set_pubkey(x, key);
	ck_assert_int_gt(X509_sign(x, key, EVP_sha256()), 0);
	X509_NAME_free(n);
	return x;
}

static char *put(const char *name, X509 *x, int der)
{
	char *p;
	FILE *fp;

	ck_assert_int_ge(asprintf(&p, "%s/%s", certs, name), 0);
	fp = fopen(p, "w");
	ck_assert_ptr_nonnull(fp);
	ck_assert_int_eq(der ? i2d_X509_fp(fp, x) : PEM_write_X509(fp, x), 1);
	fclose(fp);
	X509_free(x);
	return p;
}

/* Runs a command and returns its first output line (malloc'd, no newline); status in *st. */
static char *run1(const char *cmd, int *st)
{
	char *out = NULL;
	int s = cs_test_run(cmd, &out);

	if (st != NULL)
		*st = s;
	ck_assert_ptr_nonnull(out);
	out[strcspn(out, "\n")] = '\0';
	return out;
}

/* The fingerprint `openssl x509 -fingerprint` prints for the file (Postfix's format). */
static char *openssl_fp(const char *path, const char *digest, int der)
{
	char *cmd, *out, *fp;

	ck_assert_int_ge(asprintf(&cmd, "openssl x509 -noout -fingerprint -%s -in '%s' %s", digest,
				  path, der ? "-inform DER" : ""), 0);
	out = run1(cmd, NULL);
	ck_assert_ptr_nonnull(strchr(out, '='));
	fp = strdup(strchr(out, '=') + 1);
	free(out);
	free(cmd);
	return fp;
}

/* What `postmap -q key hash:MAP` answers, or NULL when it finds nothing. */
static char *postmap_q(const char *k)
{
	char *cmd, *out;
	int st;

	ck_assert_int_ge(asprintf(&cmd, "postmap -c '%s' -q '%s' hash:'%s' 2>&1", cfg, k, map), 0);
	out = run1(cmd, &st);
	free(cmd);
	if (st != 0) {
		ck_assert_msg(st == 1, "postmap -q: %d: %s", st, out);
		free(out);
		return NULL;
	}
	return out;
}

static const char *problem(const struct cs_clientmap_result *r, const char *file)
{
	for (size_t i = 0; i < r->nproblems; i++)
		if (strcmp(r->problems[i].file, file) == 0)
			return r->problems[i].reason;
	return NULL;
}

static struct cs_clientmap_opts opts(const char *type)
{
	struct cs_clientmap_opts o = {
		.dir = certs, .map = map, .digest = CS_DIGEST_SHA256, .map_type = type,
		.config_dir = cfg, .flags = CS_CLIENTMAP_NO_FSYNC,
	};
	return o;
}

START_TEST(test_clientmap_postmap_finds_dropped_cert)
{
	struct cs_clientmap_opts o = opts("hash");
	struct cs_clientmap_result r;
	char err[1024], *p1, *p2, *p3, *pe, *fp1, *fp2, *fp3, *fpe, *v, *pn, *fpn;
	struct stat s1, s2;

	if (!have_postmap()) {
		fprintf(stderr, "postmap not installed: skipped\n");
		return;
	}
	p1 = put("relay1.pem", mk_cert("relay1.example", 1, -60, 86400), 0);
	p2 = put("client-two.der", mk_cert("client two", 2, -60, 86400), 1);
	p3 = put("nocn.crt", mk_cert(NULL, 3, -60, 86400), 0);
	pe = put("old.pem", mk_cert("old.example", 4, -86400 * 10, -86400), 0);
	free(cs_test_write(certs, "junk.txt", "hello\n", 0644));
	free(cs_test_write(certs, ".relay1.pem.AbCdEf012345", "half-written", 0644));
	{
		char *data, *cp;
		size_t len;

		data = cs_test_read(p1, &len);
		ck_assert_int_ge(asprintf(&cp, "%s/zz-copy.pem", certs), 0);
		free(cs_test_write(NULL, cp, data, 0644));
		free(cp);
		free(data);
	}

	ck_assert_msg(cs_clientmap_build(&o, &r, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(r.entries, 3);
	ck_assert_int_eq(r.map_written, 1);
	ck_assert_int_eq(r.postmap_run, 1);
	ck_assert_uint_eq(r.nproblems, 3);
	ck_assert_ptr_nonnull(problem(&r, "old.pem"));
	ck_assert_msg(strncmp(problem(&r, "old.pem"), "expired on ", 11) == 0, "%s",
		      problem(&r, "old.pem"));
	ck_assert_ptr_nonnull(problem(&r, "junk.txt"));
	ck_assert_str_eq(problem(&r, "zz-copy.pem"), "same fingerprint as relay1.pem");
	cs_clientmap_result_free(&r);

	fp1 = openssl_fp(p1, "sha256", 0);
	fp2 = openssl_fp(p2, "sha256", 1);
	fp3 = openssl_fp(p3, "sha256", 0);
	fpe = openssl_fp(pe, "sha256", 0);
	v = postmap_q(fp1);
	ck_assert_str_eq(v, "relay1.example");
	free(v);
	v = postmap_q(fp2);
	ck_assert_str_eq(v, "client two");
	free(v);
	v = postmap_q(fp3);
	ck_assert_str_eq(v, "nocn.crt");
	free(v);
	ck_assert_ptr_null(postmap_q(fpe));

	/* Nothing changed: neither the map nor the .db is rebuilt. */
	ck_assert_int_eq(stat(map, &s1), 0);
	ck_assert_int_eq(cs_clientmap_build(&o, &r, err, sizeof(err)), 0);
	ck_assert_int_eq(r.map_written, 0);
	ck_assert_int_eq(r.postmap_run, 0);
	cs_clientmap_result_free(&r);
	ck_assert_int_eq(stat(map, &s2), 0);
	ck_assert_uint_eq(s1.st_ino, s2.st_ino);

	/* A certificate dropped in later is found; one removed is gone. */
	pn = put("new-client.pem", mk_cert("new.example", 5, -60, 86400), 0);
	fpn = openssl_fp(pn, "sha256", 0);
	ck_assert_ptr_null(postmap_q(fpn));
	unlink(p3);
	ck_assert_int_eq(cs_clientmap_build(&o, &r, err, sizeof(err)), 0);
	ck_assert_int_eq(r.map_written, 1);
	ck_assert_int_eq(r.postmap_run, 1);
	ck_assert_uint_eq(r.entries, 3);
	cs_clientmap_result_free(&r);
	v = postmap_q(fpn);
	ck_assert_str_eq(v, "new.example");
	free(v);
	ck_assert_ptr_null(postmap_q(fp3));

	free(p1), free(p2), free(p3), free(pe), free(pn);
	free(fp1), free(fp2), free(fp3), free(fpe), free(fpn);
}
END_TEST

/* Public-key fingerprints (sha1), as `openssl pkey -pubin -outform DER | openssl dgst` gives them. */
START_TEST(test_clientmap_pubkey_sha1)
{
	struct cs_clientmap_opts o = opts("hash");
	struct cs_clientmap_result r;
	char err[1024], *p, *cmd, *out, *v, fp[128];
	size_t k = 0;

	if (!have_postmap())
		return;
	o.digest = CS_DIGEST_SHA1;
	o.pubkey = 1;
	p = put("pk.pem", mk_cert("pk.example", 9, -60, 86400), 0);
	ck_assert_msg(cs_clientmap_build(&o, &r, err, sizeof(err)) == 0, "%s", err);
	cs_clientmap_result_free(&r);
	ck_assert_int_ge(asprintf(&cmd, "openssl x509 -in '%s' -noout -pubkey | openssl pkey -pubin "
				  "-outform DER | openssl dgst -sha1 -c", p), 0);
	out = run1(cmd, NULL);
	/* "SHA1(stdin)= ab:cd:..." -> "AB:CD:..." */
	for (const char *q = strstr(out, "= ") + 2; *q != '\0' && k < sizeof(fp) - 1; q++)
		fp[k++] = (char)(*q >= 'a' && *q <= 'f' ? *q - 32 : *q);
	fp[k] = '\0';
	v = postmap_q(fp);
	ck_assert_ptr_nonnull(v);
	ck_assert_str_eq(v, "pk.example");
	free(v);
	free(out);
	free(cmd);
	free(p);
}
END_TEST

/* texthash needs no postmap; postmap's refusal and a missing directory are reported. */
START_TEST(test_clientmap_errors)
{
	struct cs_clientmap_opts o = opts("texthash");
	struct cs_clientmap_result r;
	char err[1024], *db, *text;
	size_t len;

	free(put("a.pem", mk_cert("a.example", 1, -60, 86400), 0));
	ck_assert_int_eq(cs_clientmap_build(&o, &r, err, sizeof(err)), 0);
	ck_assert_int_eq(r.postmap_run, 0);
	cs_clientmap_result_free(&r);
	text = cs_test_read(map, &len);
	ck_assert_ptr_nonnull(strstr(text, " a.example\n"));
	free(text);
	ck_assert_int_ge(asprintf(&db, "%s.db", map), 0);
	ck_assert_int_ne(access(db, F_OK), 0);
	free(db);

	if (have_postmap()) {
		o.map_type = "nosuchtype";
		ck_assert_int_lt(cs_clientmap_build(&o, &r, err, sizeof(err)), 0);
		ck_assert_msg(strstr(err, "nosuchtype") && strstr(err, "exit 1"), "%s", err);
		cs_clientmap_result_free(&r);
	}
	o.map_type = "hash";
	o.postmap = "/nonexistent/postmap";
	ck_assert_int_eq(cs_clientmap_build(&o, &r, err, sizeof(err)), -ENOENT);
	ck_assert_msg(strstr(err, "cannot run /nonexistent/postmap"), "%s", err);
	cs_clientmap_result_free(&r);

	o.dir = "/nonexistent/clientcerts";
	ck_assert_int_eq(cs_clientmap_build(&o, &r, err, sizeof(err)), -ENOENT);
	ck_assert_str_eq(err, "/nonexistent/clientcerts: No such file or directory");
	cs_clientmap_result_free(&r);
	cs_clientmap_result_free(NULL);
}
END_TEST

Suite *clientmap_suite(void)
{
	Suite *s = suite_create("clientmap");
	TCase *tc = tcase_create("clientmap");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_clientmap_postmap_finds_dropped_cert);
	tcase_add_test(tc, test_clientmap_pubkey_sha1);
	tcase_add_test(tc, test_clientmap_errors);
	suite_add_tcase(s, tc);
	return s;
}
