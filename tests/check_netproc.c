/*
 * check_netproc - the parent's table of what netproc may send (np_permit):
 * each request a renewal makes is accepted, in its order, and each thing a
 * compromised netproc could try instead is refused with its reason: a
 * challenge, its answer, a socket or a finalize before the request's newOrder, a signature for an
 * account deactivation, a newOrder for other names or another profile, a
 * finalize with another CSR, a revokeCert of another certificate or for an
 * issue request, a newAccount with another contact, a challenge for a name
 * not asked for or with a token that would climb out of the webroot, more
 * challenges than the names need, a socket for a revoke, a result for a
 * request of another kind or none, a host call for a verify probe, a message that travels the other way, a
 * test message in a release build, and malformed frames. And what netproc
 * takes of a probe's TLSA records (NP_T_TLSA in NP_P_PROBE): as many as were
 * sent, byte for byte, at most CS_PROBE_DANE_MAX, each with the data length
 * of its matching type. And the resolver's answers netproc sends for the
 * DANE looks (NP_N_DNSA): taken field for field, refused for another
 * request's id, with more records than an answer keeps, or a record no
 * parse of a DNS message gives.
 */
#include "cs_b64url.h"
#include "netproc_fixture.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char why[512];

/* Checks the finished frame b; returns np_permit_check's code, why set. */
static int check_buf(struct cs_frame_buf *b, bool test_build)
{
	struct np_permit_ctx ctx = { fx_find_issuer, fx_find_req, NULL, test_build };
	struct cs_frame_msg m;
	int rc;

	ck_assert_int_eq(cs_frame_end(b), 0);
	why[0] = '\0';
	rc = np_permit_check(&ctx, b->p, b->n, &m, why, sizeof(why));
	if (rc == 0)
		cs_frame_msg_free(&m);
	cs_frame_buf_free(b);
	return rc;
}

/* A sign request for request req: kid NULL signs with the JWK; payload NULL is a POST-as-GET. */
static int sign(uint64_t req, const char *kid, const char *payload)
{
	struct cs_frame_buf b = { 0 };

	cs_frame_begin(&b, NP_N_SIGN, 7);
	cs_frame_u64(&b, NP_T_ISSUER, 1);
	cs_frame_u64(&b, NP_T_REQ, req);
	cs_frame_str(&b, NP_T_KID, kid);
	cs_frame_str(&b, NP_T_NONCE, "nonce");
	cs_frame_str(&b, NP_T_URL, "https://ca.test/x");
	cs_frame_str(&b, NP_T_PAYLOAD, payload);
	return check_buf(&b, false);
}

#define OK(expr) ck_assert_msg((expr) == 0, "refused: %s", why)
#define REFUSED(expr, text)                                                                \
	do {                                                                               \
		ck_assert_int_eq((expr), -EPERM);                                          \
		ck_assert_msg(strstr(why, (text)) != NULL, "why: %s", why);                \
	} while (0)

START_TEST(test_netproc_signatures)
{
	char *b64csr = cs_b64url_encode(fx_csr, sizeof(fx_csr));
	char *b64leaf = cs_b64url_encode(fx_leaf, sizeof(fx_leaf));
	char p[512];
	const char *kid = "https://ca.test/acct/1";

	OK(sign(1, kid, NULL));
	OK(sign(2, kid, NULL));
	REFUSED(sign(3, kid, NULL), "for a renewal-info request");
	/* Before a newOrder of the request: no challenge answer, no finalize. */
	REFUSED(sign(1, kid, "{}"), "a challenge answer outside an order");
	snprintf(p, sizeof(p), "{\"csr\":\"%s\"}", b64csr);
	REFUSED(sign(1, kid, p), "a finalize before any newOrder");
	REFUSED(sign(2, kid, "{}"), "a challenge answer outside an order");
	/* newAccount */
	OK(sign(1, NULL, "{\"contact\":[\"mailto:hostmaster@example.test\"],"
			 "\"termsOfServiceAgreed\":true}"));
	OK(sign(1, NULL, "{\"onlyReturnExisting\":true}"));
	REFUSED(sign(1, NULL, "{\"contact\":[\"mailto:evil@example.test\"]}"), "another contact");
	REFUSED(sign(1, NULL, "{\"externalAccountBinding\":{}}"), "external account binding");
	REFUSED(sign(1, NULL, "{\"status\":\"deactivated\"}"), "keys no renewal sends");
	/* newOrder */
	OK(sign(1, kid, "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"b.example.test\"},"
			"{\"type\":\"dns\",\"value\":\"A.example.test\"}],\"profile\":\"tlsserver\"}"));
	OK(sign(1, kid, "{}"));
	REFUSED(sign(1, kid, "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.example.test\"},"
			     "{\"type\":\"dns\",\"value\":\"evil.example.test\"}]}"),
		"other names");
	REFUSED(sign(1, kid, "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.example.test\"},"
			     "{\"type\":\"dns\",\"value\":\"a.example.test\"}]}"),
		"other names");
	REFUSED(sign(1, kid, "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.example.test\"}]}"),
		"other names");
	REFUSED(sign(1, kid, "{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.example.test\"},"
			     "{\"type\":\"dns\",\"value\":\"b.example.test\"}],\"profile\":\"x\"}"),
		"another profile");
	REFUSED(sign(2, kid, "{\"identifiers\":[]}"), "outside an issue request");
	/* finalize */
	snprintf(p, sizeof(p), "{\"csr\":\"%s\"}", b64csr);
	OK(sign(1, kid, p));
	REFUSED(sign(1, kid, "{\"csr\":\"MAMCAQM\"}"), "another CSR");
	REFUSED(sign(2, kid, p), "outside an issue request");
	/* revokeCert */
	snprintf(p, sizeof(p), "{\"certificate\":\"%s\",\"reason\":4}", b64leaf);
	OK(sign(2, kid, p));
	REFUSED(sign(1, kid, p), "outside a revoke request");
	snprintf(p, sizeof(p), "{\"certificate\":\"%s\",\"reason\":1}", b64leaf);
	REFUSED(sign(2, kid, p), "another reason");
	REFUSED(sign(2, kid, "{\"certificate\":\"MAMCAQM\",\"reason\":4}"), "another certificate");
	/* anything else */
	REFUSED(sign(1, kid, "{\"status\":\"deactivated\"}"), "no renewal makes");
	REFUSED(sign(1, kid, "{\"contact\":[\"mailto:evil@example.test\"]}"), "no renewal makes");
	REFUSED(sign(1, kid, "[1]"), "not a JSON object");
	REFUSED(sign(1, kid, "{\"csr\":1,\"csr\":2}"), "not a JSON object");
	REFUSED(sign(9, kid, NULL), "no request of that issuer");
	free(b64csr);
	free(b64leaf);
}
END_TEST

static int chall(uint64_t req, enum cs_acme_challenge type, const char *ident, const char *token)
{
	struct cs_frame_buf b = { 0 };

	cs_frame_begin(&b, NP_N_CHALL, 8);
	cs_frame_u64(&b, NP_T_ISSUER, 1);
	cs_frame_u64(&b, NP_T_REQ, req);
	cs_frame_u64(&b, NP_T_SET, 1);
	cs_frame_u64(&b, NP_T_CHALLENGE, (uint64_t)type);
	cs_frame_str(&b, NP_T_IDENT, ident);
	cs_frame_str(&b, NP_T_TOKEN, token);
	return check_buf(&b, false);
}

static int simple(uint16_t type, uint64_t id, uint64_t req)
{
	struct cs_frame_buf b = { 0 };

	cs_frame_begin(&b, type, id);
	if (type == NP_N_KEY || type == NP_N_LISTEN) {
		cs_frame_u64(&b, NP_T_ISSUER, 1);
		cs_frame_u64(&b, NP_T_REQ, req);
	} else if (type == NP_N_ISSUED || type == NP_N_DONE || type == NP_N_WINDOW) {
		cs_frame_u64(&b, NP_T_STATUS, 0);
	} else if (type == NP_N_PROBED) {
		cs_frame_u64(&b, NP_T_OK, 1);
	} else if (type == NP_N_ORDER) {
		cs_frame_str(&b, NP_T_ORDER_URL, "https://ca.test/order/1");
	} else if (type == NP_N_TEST) {
		cs_frame_str(&b, NP_T_WHAT, "x");
	}
	return check_buf(&b, false);
}

START_TEST(test_netproc_challenges_and_calls)
{
	/* Not before the request's newOrder was signed. */
	REFUSED(chall(1, CS_ACME_HTTP01, "a.example.test", "tok-EN_1"), "before any newOrder");
	REFUSED(simple(NP_N_LISTEN, 4, 1), "a socket before any newOrder");
	REFUSED(simple(NP_N_ORDER, 1, 0), "did not sign one");
	OK(sign(1, "https://ca.test/acct/1",
		"{\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.example.test\"},"
		"{\"type\":\"dns\",\"value\":\"b.example.test\"}]}"));
	OK(simple(NP_N_ORDER, 1, 0));
	REFUSED(simple(NP_N_ORDER, 2, 0), "did not sign one");
	OK(chall(1, CS_ACME_HTTP01, "a.example.test", "tok-EN_1"));
	REFUSED(chall(1, CS_ACME_HTTP01, "evil.example.test", "tok"), "a name the request");
	REFUSED(chall(1, CS_ACME_HTTP01, "a.example.test", "../../etc/x"), "not base64url");
	REFUSED(chall(1, CS_ACME_HTTP01, "a.example.test", ""), "not base64url");
	REFUSED(chall(1, CS_ACME_DNS01, "a.example.test", "tok"), "another type");
	REFUSED(chall(2, CS_ACME_HTTP01, "a.example.test", "tok"), "outside an issue request");
	/* Four per name at most: 2 names, one taken above, seven more, then refused. */
	for (int i = 0; i < 7; i++)
		OK(chall(1, CS_ACME_HTTP01, "b.example.test", "tok"));
	REFUSED(chall(1, CS_ACME_HTTP01, "b.example.test", "tok"), "more challenges");

	OK(simple(NP_N_KEY, 3, 1));
	OK(simple(NP_N_KEY, 3, 2));
	REFUSED(simple(NP_N_KEY, 3, 3), "renewal-info");
	OK(simple(NP_N_LISTEN, 4, 1));
	REFUSED(simple(NP_N_LISTEN, 4, 2), "without http_listen");
	OK(simple(NP_N_ISSUED, 1, 0));
	OK(simple(NP_N_DONE, 2, 0));
	OK(simple(NP_N_WINDOW, 3, 0));
	REFUSED(simple(NP_N_ISSUED, 2, 0), "another kind");
	REFUSED(simple(NP_N_WINDOW, 1, 0), "another kind");
	REFUSED(simple(NP_N_ISSUED, 9, 0), "not in flight");
	/* A probe: its result only, no host call (it names no issuer). */
	OK(simple(NP_N_PROBED, 4, 0));
	REFUSED(simple(NP_N_PROBED, 1, 0), "another kind");
	REFUSED(simple(NP_N_ISSUED, 4, 0), "another kind");
	REFUSED(simple(NP_N_KEY, 3, 4), "no request of that issuer");
	OK(simple(NP_N_READY, 0, 0));
	REFUSED(simple(NP_P_CLOSE, 1, 0), "travels the other way");
	REFUSED(simple(NP_N_TEST, 0, 0), "release build");
}
END_TEST

START_TEST(test_netproc_malformed)
{
	struct np_permit_ctx ctx = { fx_find_issuer, fx_find_req, NULL, false };
	struct cs_frame_msg m;
	struct cs_frame_buf b = { 0 };
	static const unsigned char junk[] = { 0, 0, 0, 10, 0, 35, 0, 0, 0, 0, 0, 0, 0, 1 };

	ck_assert_int_eq(np_permit_check(&ctx, junk, sizeof(junk), &m, why, sizeof(why)),
			 -EBADMSG);
	ck_assert_int_eq(np_permit_check(&ctx, junk, 3, &m, why, sizeof(why)), -EBADMSG);
	/* A sign request without its required nonce. */
	cs_frame_begin(&b, NP_N_SIGN, 1);
	cs_frame_u64(&b, NP_T_ISSUER, 1);
	cs_frame_u64(&b, NP_T_REQ, 1);
	cs_frame_str(&b, NP_T_URL, "https://ca.test/x");
	ck_assert_int_eq(check_buf(&b, false), -EBADMSG);
	/* A challenge with two tokens. */
	cs_frame_begin(&b, NP_N_CHALL, 1);
	cs_frame_u64(&b, NP_T_ISSUER, 1);
	cs_frame_u64(&b, NP_T_REQ, 1);
	cs_frame_u64(&b, NP_T_SET, 1);
	cs_frame_u64(&b, NP_T_CHALLENGE, 0);
	cs_frame_str(&b, NP_T_IDENT, "a.example.test");
	cs_frame_str(&b, NP_T_TOKEN, "a");
	cs_frame_str(&b, NP_T_TOKEN, "b");
	ck_assert_int_eq(check_buf(&b, false), -EBADMSG);
}
END_TEST

/* A probe request with n TLSA records as written by np_proto_put_tlsa, parsed into m. */
static int probe_frame(const struct cs_tlsa_rec *recs, size_t n, struct cs_frame_msg *m)
{
	struct cs_frame_buf b = { 0 };
	int rc;

	cs_frame_begin(&b, NP_P_PROBE, 4);
	cs_frame_str(&b, NP_T_URL, "smtp://mx.example.test");
	cs_frame_str(&b, NP_T_WANT, "AB:CD");
	cs_frame_u64(&b, NP_T_BOUND, 1000);
	cs_frame_u64(&b, NP_T_RETRY, 250);
	np_proto_put_tlsa(&b, &(struct cs_probe_dane){ recs, n });
	ck_assert_int_eq(cs_frame_end(&b), 0);
	rc = cs_frame_parse(&np_proto_schema, b.p, b.n, m, why, sizeof(why));
	cs_frame_buf_free(&b);
	return rc;
}

/* Why netproc refuses the n records of recs in a probe request (asserts that it does). */
static const char *tlsa_refused(const struct cs_tlsa_rec *recs, size_t n)
{
	struct cs_tlsa_rec got[CS_PROBE_DANE_MAX];
	struct cs_probe_dane d;
	struct cs_frame_msg m;

	ck_assert_int_eq(probe_frame(recs, n, &m), 0);
	ck_assert_int_eq(np_proto_get_tlsa(&m, got, &d, why, sizeof(why)), -EINVAL);
	cs_frame_msg_free(&m);
	return why;
}

START_TEST(test_netproc_probe_tlsa)
{
	struct cs_tlsa_rec recs[CS_PROBE_DANE_MAX + 1], got[CS_PROBE_DANE_MAX];
	struct cs_probe_dane d;
	struct cs_frame_msg m;

	for (size_t i = 0; i < CS_PROBE_DANE_MAX + 1; i++) {
		recs[i] = (struct cs_tlsa_rec){ .usage = 3, .selector = 1, .mtype = 1, .len = 32 };
		memset(recs[i].data, (int)i + 1, 32);
	}
	recs[1] = (struct cs_tlsa_rec){ .usage = 2, .selector = 0, .mtype = 2, .len = 64 };
	memset(recs[1].data, 0xee, 64);
	/* None: no DANE. */
	ck_assert_int_eq(probe_frame(recs, 0, &m), 0);
	ck_assert_int_eq(np_proto_get_tlsa(&m, got, &d, why, sizeof(why)), 0);
	ck_assert_uint_eq(d.n, 0);
	cs_frame_msg_free(&m);
	/* As many as may be, each as it was sent. */
	ck_assert_int_eq(probe_frame(recs, CS_PROBE_DANE_MAX, &m), 0);
	ck_assert_msg(np_proto_get_tlsa(&m, got, &d, why, sizeof(why)) == 0, "%s", why);
	ck_assert_uint_eq(d.n, CS_PROBE_DANE_MAX);
	ck_assert_ptr_eq(d.recs, got);
	for (size_t i = 0; i < CS_PROBE_DANE_MAX; i++) {
		ck_assert_int_eq(got[i].usage, recs[i].usage);
		ck_assert_int_eq(got[i].selector, recs[i].selector);
		ck_assert_int_eq(got[i].mtype, recs[i].mtype);
		ck_assert_uint_eq(got[i].len, recs[i].len);
		ck_assert_int_eq(memcmp(got[i].data, recs[i].data, recs[i].len), 0);
	}
	cs_frame_msg_free(&m);
	/* One too many. */
	ck_assert_str_eq(tlsa_refused(recs, CS_PROBE_DANE_MAX + 1),
			 "33 TLSA records: at most 32 are checked");
	/* SHA-256 data 31 bytes long, SHA-512 data 32 bytes long, no data, matching type 0. */
	recs[0].len = 31;
	ck_assert_str_eq(tlsa_refused(recs, 1),
			 "TLSA record 1: 31 bytes of data for matching type 1, not 32");
	recs[0].len = 32;
	recs[1].len = 32;
	ck_assert_str_eq(tlsa_refused(recs, 2),
			 "TLSA record 2: 32 bytes of data for matching type 2, not 64");
	recs[0].len = 0;
	ck_assert_str_eq(tlsa_refused(recs, 1), "TLSA record 1: 3 bytes");
	recs[0] = (struct cs_tlsa_rec){ .usage = 3, .selector = 1, .mtype = 0, .len = 32 };
	ck_assert_str_eq(tlsa_refused(recs, 1),
			 "TLSA record 1: matching type 0 (1 SHA-256 or 2 SHA-512 only)");
}
END_TEST

START_TEST(test_netproc_probe_tlsa_too_long)
{
	struct cs_frame_buf b = { 0 };
	struct cs_frame_msg m;
	unsigned char rec[3 + CS_TLSA_DATA_MAX + 1] = { 3, 1, 2 };

	/* A field longer than any record: the schema refuses the whole frame. */
	cs_frame_begin(&b, NP_P_PROBE, 4);
	cs_frame_str(&b, NP_T_URL, "smtp://mx.example.test");
	cs_frame_str(&b, NP_T_WANT, "AB:CD");
	cs_frame_u64(&b, NP_T_BOUND, 1000);
	cs_frame_u64(&b, NP_T_RETRY, 250);
	cs_frame_bytes(&b, NP_T_TLSA, rec, sizeof(rec));
	ck_assert_int_eq(cs_frame_end(&b), 0);
	ck_assert_int_eq(cs_frame_parse(&np_proto_schema, b.p, b.n, &m, why, sizeof(why)),
			 -EBADMSG);
	cs_frame_buf_free(&b);
}
END_TEST

/* Records for answers: i-th one "3 1 1" with data bytes i + 1, the second "2 1 2". */
static void dns_recs(struct cs_dnsq_answer *a, size_t n)
{
	for (size_t i = 0; i < n && i < CS_DNSQ_MAX_RECS; i++) {
		a->recs[i] = (struct cs_tlsa_rec){ .usage = 3, .selector = 1, .mtype = 1, .len = 32 };
		memset(a->recs[i].data, (int)i + 1, 32);
	}
	if (n > 1) {
		a->recs[1] = (struct cs_tlsa_rec){ .usage = 2, .selector = 1, .mtype = 2, .len = 64 };
		memset(a->recs[1].data, 0xee, 64);
	}
	a->n = n;
}

/* NP_N_DNSA for request id: status, and the answer a when status is 0. */
static void dnsa_frame(struct cs_frame_buf *b, uint64_t id, int status, const struct cs_dnsq_answer *a)
{
	cs_frame_begin(b, NP_N_DNSA, id);
	np_proto_put_status(b, status);
	if (status != 0)
		cs_frame_str(b, NP_T_ERROR, "resolver 127.0.0.1:53: no answer for x TLSA: timed out");
	else
		np_proto_put_answer(b, a);
}

START_TEST(test_netproc_dns_answer)
{
	struct np_permit_ctx ctx = { fx_find_issuer, fx_find_req, NULL, false };
	struct cs_dnsq_answer a = { .rcode = 0, .ad = true, .ttl = 4, .n_other = 1 }, got;
	struct cs_frame_buf b = { 0 };
	struct cs_frame_msg m;
	unsigned char rec[3 + 31] = { 3, 1, 1 };

	dns_recs(&a, 2);
	/* An answer, field for field. */
	dnsa_frame(&b, 5, 0, &a);
	ck_assert_int_eq(cs_frame_end(&b), 0);
	ck_assert_msg(np_permit_check(&ctx, b.p, b.n, &m, why, sizeof(why)) == 0, "%s", why);
	cs_frame_buf_free(&b);
	ck_assert_int_eq(np_proto_get_status(&m), 0);
	ck_assert_int_eq(np_proto_get_answer(&m, &got, why, sizeof(why)), 0);
	cs_frame_msg_free(&m);
	ck_assert_int_eq(got.rcode, 0);
	ck_assert(got.ad);
	ck_assert_uint_eq(got.ttl, 4);
	ck_assert_uint_eq(got.n_other, 1);
	ck_assert_uint_eq(got.n, 2);
	for (size_t i = 0; i < 2; i++) {
		ck_assert_int_eq(got.recs[i].usage, a.recs[i].usage);
		ck_assert_int_eq(got.recs[i].mtype, a.recs[i].mtype);
		ck_assert_uint_eq(got.recs[i].len, a.recs[i].len);
		ck_assert_int_eq(memcmp(got.recs[i].data, a.recs[i].data, a.recs[i].len), 0);
	}
	/* NXDOMAIN without AD, no records; a failure with its reason. */
	a = (struct cs_dnsq_answer){ .rcode = 3 };
	dnsa_frame(&b, 5, 0, &a);
	OK(check_buf(&b, false));
	dnsa_frame(&b, 5, -ETIMEDOUT, NULL);
	OK(check_buf(&b, false));
	/* The answer of another request, or of none; a probe's result for the question. */
	dnsa_frame(&b, 4, 0, &a);
	REFUSED(check_buf(&b, false), "another kind");
	dnsa_frame(&b, 9, 0, &a);
	REFUSED(check_buf(&b, false), "not in flight");
	REFUSED(simple(NP_N_PROBED, 5, 0), "another kind");
	/* No host call for a question: it names no issuer. */
	REFUSED(simple(NP_N_KEY, 3, 5), "no request of that issuer");
	/* More records than an answer keeps. */
	dns_recs(&a, CS_DNSQ_MAX_RECS);
	dnsa_frame(&b, 5, 0, &a);
	np_proto_put_tlsa(&b, &(struct cs_probe_dane){ a.recs, 1 });
	REFUSED(check_buf(&b, false), "17 TLSA records: at most 16 are kept");
	/* A SHA-256 record of 31 bytes: no parse of a DNS message keeps it. */
	a = (struct cs_dnsq_answer){ .ad = true, .ttl = 4 };
	dnsa_frame(&b, 5, 0, &a);
	cs_frame_bytes(&b, NP_T_TLSA, rec, sizeof(rec));
	REFUSED(check_buf(&b, false), "31 bytes of data for matching type 1");
	/* An AD bit of 2: the schema refuses the frame. */
	cs_frame_begin(&b, NP_N_DNSA, 5);
	np_proto_put_status(&b, 0);
	cs_frame_u64(&b, NP_T_AD, 2);
	ck_assert_int_eq(check_buf(&b, false), -EBADMSG);
}
END_TEST

Suite *netproc_suite(void)
{
	Suite *s = suite_create("netproc");
	TCase *tc = tcase_create("permit");

	tcase_add_checked_fixture(tc, fx_reset, NULL);
	tcase_add_test(tc, test_netproc_signatures);
	tcase_add_test(tc, test_netproc_challenges_and_calls);
	tcase_add_test(tc, test_netproc_malformed);
	suite_add_tcase(s, tc);
	tc = tcase_create("probe");
	tcase_add_test(tc, test_netproc_probe_tlsa);
	tcase_add_test(tc, test_netproc_probe_tlsa_too_long);
	suite_add_tcase(s, tc);
	tc = tcase_create("dns");
	tcase_add_checked_fixture(tc, fx_reset, NULL);
	tcase_add_test(tc, test_netproc_dns_answer);
	suite_add_tcase(s, tc);
	return s;
}
