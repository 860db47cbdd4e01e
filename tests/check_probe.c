/*
 * check_probe - the verify probe's DANE check (cs_probe_run_dane,
 * cs_probe_verify_start with TLSA records) against a real TLS server on
 * loopback (`openssl s_server` serving the tests/mkpki.sh leaf and its
 * intermediate): a 3 1 1 and a 3 0 2 record of the leaf authenticate it at
 * depth 0, a 2 1 1 record of the intermediate at depth 1; a record of
 * another certificate does not, and the probe still hands back the chain
 * with "DANE: no TLSA record matches the served chain"; records an SMTP
 * client does not use (usages 0 and 1) are skipped; records of the wrong
 * length or too many are refused before any connection. The asynchronous
 * verify: ok only when the served leaf is the wanted one and DANE
 * authenticates it, the message naming the record that matched, the
 * caller's records copied at the call; and the same through netproc (the
 * records carried in NP_P_PROBE to the sandboxed certsyncd --netproc).
 */
#include "cs_fp.h"
#include "cs_netproc.h"
#include "cs_probe.h"
#include "cs_tlsa.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char *pki;       /* cs_test_mkpki's directory */
static pid_t server;    /* openssl s_server */
static char url[128];   /* smtps://127.0.0.1:PORT?sni=leaf.example.test */

/* Starts s_server on a free loopback port (it says which: "ACCEPT 127.0.0.1:PORT"). */
static void server_start(void)
{
	char *out, *cert, *key, *chain, *text = NULL;
	const char *p = NULL;

	pki = cs_test_mkpki(NULL);
	out = cs_test_path("%s/s_server.out", pki);
	cert = cs_test_path("%s/ec/leaf.pem", pki);
	key = cs_test_path("%s/ec/leaf.key", pki);
	chain = cs_test_path("%s/ec/int.pem", pki);
	server = fork();
	ck_assert_int_ge(server, 0);
	if (server == 0) {
		if (freopen(out, "w", stdout) == NULL || freopen("/dev/null", "r", stdin) == NULL)
			_exit(127);
		execlp("openssl", "openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", cert,
		       "-key", key, "-cert_chain", chain, "-www", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200 && p == NULL; i++) {
		free(text);
		usleep(50000);
		text = cs_test_read(out, NULL);
		p = text != NULL ? strstr(text, "ACCEPT 127.0.0.1:") : NULL;
	}
	ck_assert_msg(p != NULL, "s_server did not say where it listens");
	snprintf(url, sizeof(url), "smtps://127.0.0.1:%d?sni=leaf.example.test",
		 atoi(p + strlen("ACCEPT 127.0.0.1:")));
	free(text);
	free(out);
	free(cert);
	free(key);
	free(chain);
}

static void server_stop(void)
{
	if (server > 0) {
		kill(server, SIGTERM);
		waitpid(server, NULL, 0);
	}
	cs_test_rmrf(pki);
	free(pki);
}

/* The TLSA record (usage, selector, mtype) of the certificate in ec/NAME. */
static struct cs_tlsa_rec rec_of(const char *name, int usage, int selector, int mtype)
{
	char *path = cs_test_path("%s/ec/%s", pki, name), hex[2 * CS_TLSA_DATA_MAX + 1];
	X509 *x = cs_test_read_x509(path);
	struct cs_tlsa_rec t = { .usage = usage, .selector = selector, .mtype = mtype };
	long len = 0;
	unsigned char *bin;

	ck_assert_int_eq(cs_tlsa_data(x, selector, mtype, hex, sizeof(hex)), 0);
	bin = OPENSSL_hexstr2buf(hex, &len);
	ck_assert_ptr_nonnull(bin);
	ck_assert_int_le(len, CS_TLSA_DATA_MAX);
	memcpy(t.data, bin, (size_t)len);
	t.len = (size_t)len;
	OPENSSL_free(bin);
	X509_free(x);
	free(path);
	return t;
}

/* cs_probe_run_dane on the server with the records recs; asserts it got the chain. */
static void probe(const struct cs_tlsa_rec *recs, size_t n, struct cs_probe_result *r)
{
	struct cs_probe_url u;
	struct cs_probe_dane d = { recs, n };
	char err[256];

	ck_assert_int_eq(cs_probe_url_parse(url, &u, err, sizeof(err)), 0);
	ck_assert_msg(cs_probe_run_dane(&u, &d, 10000, r) == 0, "probe: %s", r->error);
	ck_assert_ptr_nonnull(r->chain);
	ck_assert_int_eq(sk_X509_num(r->chain), 2);
	ck_assert(r->dane.checked);
}

START_TEST(test_probe_dane_ee_matches)
{
	struct cs_tlsa_rec recs[2] = { rec_of("stray.pem", 3, 1, 1), rec_of("leaf.pem", 3, 1, 1) };
	struct cs_probe_result r;

	probe(recs, 2, &r);
	ck_assert_msg(r.dane.ok, "DANE: %s", r.dane.text);
	ck_assert_int_eq(r.dane.depth, 0);
	ck_assert_int_eq(r.dane.usage, 3);
	ck_assert_int_eq(r.dane.selector, 1);
	ck_assert_int_eq(r.dane.mtype, 1);
	ck_assert_str_eq(r.dane.text, "TLSA 3 1 1 matches at depth 0");
	ck_assert_str_eq(r.error, "");
	cs_probe_result_clear(&r);

	/* The full certificate, SHA-512. */
	recs[0] = rec_of("leaf.pem", 3, 0, 2);
	probe(recs, 1, &r);
	ck_assert_msg(r.dane.ok, "DANE: %s", r.dane.text);
	ck_assert_str_eq(r.dane.text, "TLSA 3 0 2 matches at depth 0");
	cs_probe_result_clear(&r);
}
END_TEST

START_TEST(test_probe_dane_ta_matches)
{
	struct cs_tlsa_rec rec = rec_of("int.pem", 2, 1, 1);
	struct cs_probe_result r;

	probe(&rec, 1, &r);
	ck_assert_msg(r.dane.ok, "DANE: %s", r.dane.text);
	ck_assert_int_eq(r.dane.depth, 1);
	ck_assert_str_eq(r.dane.text, "TLSA 2 1 1 matches at depth 1");
	cs_probe_result_clear(&r);
}
END_TEST

START_TEST(test_probe_dane_no_match)
{
	struct cs_tlsa_rec recs[2] = { rec_of("stray.pem", 3, 1, 1), rec_of("stray.pem", 2, 1, 1) };
	struct cs_probe_result r;
	char fp[CS_FP_MAX];
	X509 *leaf;
	char *path;

	probe(recs, 2, &r);
	ck_assert(!r.dane.ok);
	ck_assert_msg(strstr(r.error, "DANE: no TLSA record matches the served chain") == r.error,
		      "error: %s", r.error);
	/* The chain is there all the same: the served leaf, for the caller's report. */
	path = cs_test_path("%s/ec/leaf.pem", pki);
	leaf = cs_test_read_x509(path);
	ck_assert_int_eq(X509_cmp(sk_X509_value(r.chain, 0), leaf), 0);
	ck_assert_int_eq(cs_fp_cert(leaf, CS_DIGEST_SHA256, fp, sizeof(fp)), 0);
	X509_free(leaf);
	free(path);
	cs_probe_result_clear(&r);

	/* PKIX-TA and PKIX-EE records of the leaf: not for SMTP, skipped. */
	recs[0] = rec_of("leaf.pem", 1, 1, 1);
	recs[1] = rec_of("leaf.pem", 0, 1, 1);
	probe(recs, 2, &r);
	ck_assert(!r.dane.ok);
	ck_assert_msg(strstr(r.error, "DANE: no usable TLSA record") == r.error, "error: %s",
		      r.error);
	cs_probe_result_clear(&r);
}
END_TEST

START_TEST(test_probe_dane_refused)
{
	struct cs_tlsa_rec recs[CS_PROBE_DANE_MAX + 1];
	struct cs_probe_dane d = { recs, 1 };
	struct cs_probe_result r;
	struct cs_probe_url u;
	char err[256];

	for (size_t i = 0; i < CS_PROBE_DANE_MAX + 1; i++)
		recs[i] = rec_of("leaf.pem", 3, 1, 1);
	ck_assert_int_eq(cs_probe_dane_check(NULL, err, sizeof(err)), 0);
	d.n = CS_PROBE_DANE_MAX;
	ck_assert_int_eq(cs_probe_dane_check(&d, err, sizeof(err)), 0);
	d.n = CS_PROBE_DANE_MAX + 1;
	ck_assert_int_eq(cs_probe_dane_check(&d, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "33 TLSA records: at most 32 are checked");
	d.n = 1;
	recs[0].len = 31;
	ck_assert_int_eq(cs_probe_dane_check(&d, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "TLSA record 1: 31 bytes of data for matching type 1, not 32");
	recs[0].len = 32;
	recs[0].mtype = 2;
	ck_assert_int_eq(cs_probe_dane_check(&d, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "TLSA record 1: 32 bytes of data for matching type 2, not 64");
	recs[0].mtype = 0;
	ck_assert_int_eq(cs_probe_dane_check(&d, err, sizeof(err)), -EINVAL);
	/* Refused before any connection, and by the asynchronous verify too. */
	ck_assert_int_eq(cs_probe_url_parse(url, &u, err, sizeof(err)), 0);
	ck_assert_int_eq(cs_probe_run_dane(&u, &d, 10000, &r), -EINVAL);
	ck_assert_ptr_null(r.chain);
	ck_assert_int_eq(cs_probe_verify_start(uv_default_loop(), url, "x", &d, 1000, 250, NULL,
					       NULL),
			 -EINVAL);
}
END_TEST

struct answer {
	int calls;
	bool ok;
	char served[CS_FP_MAX];
	char msg[1024];
};

static void on_verified(void *arg, bool ok, const char *served, const char *msg)
{
	struct answer *a = arg;

	a->calls++;
	a->ok = ok;
	snprintf(a->served, sizeof(a->served), "%s", served);
	snprintf(a->msg, sizeof(a->msg), "%s", msg);
}

/*
 * cs_probe_verify_start (cs_netproc_probe_start with netproc enabled) for
 * the leaf with one record, the caller's copy wiped after the call.
 */
static void verify(struct cs_tlsa_rec rec, int bound_ms, struct answer *a)
{
	uv_loop_t loop;
	struct cs_probe_dane d = { &rec, 1 };
	char *path = cs_test_path("%s/ec/leaf.pem", pki), want[CS_FP_MAX];
	X509 *leaf = cs_test_read_x509(path);

	ck_assert_int_eq(cs_fp_cert(leaf, CS_DIGEST_SHA256, want, sizeof(want)), 0);
	memset(a, 0, sizeof(*a));
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ck_assert_int_eq(cs_netproc_probe_start(&loop, url, want, &d, bound_ms, 200, on_verified,
						a),
			 0);
	memset(&rec, 0, sizeof(rec));
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	ck_assert_int_eq(a->calls, 1);
	ck_assert_str_eq(a->served, want);
	X509_free(leaf);
	free(path);
}

START_TEST(test_probe_verify_dane)
{
	struct answer a;
	char expect[512];
	int port = atoi(strrchr(url, ':') + 1);

	verify(rec_of("leaf.pem", 3, 1, 1), 10000, &a);
	ck_assert_msg(a.ok, "%s", a.msg);
	snprintf(expect, sizeof(expect),
		 "smtps://127.0.0.1:%d serves the deployed certificate; DANE: TLSA 3 1 1 "
		 "matches at depth 0",
		 port);
	ck_assert_str_eq(a.msg, expect);

	/* The deployed leaf is served, but DANE does not authenticate it: not ok. */
	verify(rec_of("stray.pem", 3, 1, 1), 1000, &a);
	ck_assert(!a.ok);
	snprintf(expect, sizeof(expect),
		 "smtps://127.0.0.1:%d serves the deployed certificate; DANE: no TLSA record "
		 "matches the served chain",
		 port);
	ck_assert_msg(strstr(a.msg, expect) == a.msg, "msg: %s", a.msg);
}
END_TEST

START_TEST(test_probe_verify_dane_netproc)
{
	char *program = cs_test_build_path("agent/certsyncd"), *state = cs_test_mkdtemp();
	struct cs_netproc_stats st;
	struct answer a;

	cs_netproc_enable(program, NULL, state);
	verify(rec_of("int.pem", 2, 1, 1), 10000, &a);
	ck_assert_msg(a.ok, "%s", a.msg);
	ck_assert_msg(strstr(a.msg, "; DANE: TLSA 2 1 1 matches at depth 1") != NULL, "msg: %s",
		      a.msg);
	cs_netproc_stats(&st);
	ck_assert_uint_eq(st.starts, 1);
	ck_assert_uint_eq(st.violations, 0);

	verify(rec_of("stray.pem", 3, 1, 1), 1000, &a);
	ck_assert(!a.ok);
	ck_assert_msg(strstr(a.msg, "; DANE: no TLSA record matches the served chain") != NULL,
		      "msg: %s", a.msg);
	cs_netproc_stats(&st);
	ck_assert_uint_eq(st.violations, 0);
	cs_test_rmrf(state);
	free(state);
	free(program);
}
END_TEST

Suite *probe_suite(void)
{
	Suite *s = suite_create("probe");
	TCase *tc = tcase_create("dane");

	tcase_add_unchecked_fixture(tc, server_start, server_stop);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_probe_dane_ee_matches);
	tcase_add_test(tc, test_probe_dane_ta_matches);
	tcase_add_test(tc, test_probe_dane_no_match);
	tcase_add_test(tc, test_probe_dane_refused);
	tcase_add_test(tc, test_probe_verify_dane);
	tcase_add_test(tc, test_probe_verify_dane_netproc);
	suite_add_tcase(s, tc);
	return s;
}
