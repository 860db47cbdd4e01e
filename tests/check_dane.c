/*
 * check_dane - the rules of a DANE rollover (cs_dane.c) at chosen moments
 * (they read no clock): "current + next" published from the start; the next
 * key usable only once its record has been seen, validated, at every owner
 * for 2 x TTL; a record that disappears starts the wait again; an
 * unvalidated answer never counts; the old current record retires 2 x TTL
 * after the rollover and is deleted then, not before; a failed update
 * changes nothing but is counted; the state and the staged key survive a
 * restart (and the key file is 0600).
 */
#include "cs_dane.h"
#include "cs_key.h"
#include "cs_tlsa.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TTL 300
#define T0 1800000000

static const char A[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char B[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
static const char C[] = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

/* One validated answer holding the "3 1 1" records of hexes (NULL-terminated). */
static struct cs_dnsq_answer answer(bool ad, uint32_t ttl, const char *const *hexes)
{
	struct cs_dnsq_answer a = { .rcode = 0, .ad = ad, .ttl = ttl };

	for (; hexes != NULL && *hexes != NULL; hexes++) {
		struct cs_tlsa_rec *r = &a.recs[a.n++];
		r->usage = 3;
		r->selector = 1;
		r->mtype = 1;
		r->len = 32;
		for (size_t i = 0; i < 32; i++)
			sscanf(*hexes + 2 * i, "%2hhx", &r->data[i]);
	}
	if (a.n == 0)
		a.rcode = 3;
	return a;
}

static void observe_both(struct cs_dane_state *st, const char *const *owner1,
			 const char *const *owner2, int64_t now)
{
	struct cs_dnsq_answer ans[2] = { answer(true, TTL, owner1), answer(true, TTL, owner2) };

	cs_dane_observe(st, 3, ans, 2, NULL, now);
}

START_TEST(test_dane_plan_publishes_current_and_next)
{
	struct cs_dane_state st = { 0 };
	struct cs_dane_changes ch;

	cs_dane_plan(&st, A, B, T0, 2 * TTL);
	cs_dane_changes(&st, T0, &ch);
	ck_assert_uint_eq(ch.n_add, 2);
	ck_assert_uint_eq(ch.n_del, 0);
	cs_dane_updated(&st, &ch, true, NULL, T0);
	cs_dane_changes(&st, T0 + 1, &ch);
	ck_assert_uint_eq(ch.n_add + ch.n_del, 0);
	ck_assert_str_eq(cs_dane_role(&st, CS_DANE_CURRENT)->hex, A);
	ck_assert_str_eq(cs_dane_role(&st, CS_DANE_NEXT)->hex, B);
}
END_TEST

START_TEST(test_dane_next_ready_after_two_ttl_everywhere)
{
	struct cs_dane_state st = { 0 };
	const char *both[] = { A, B, NULL }, *only_a[] = { A, NULL };
	int64_t left;

	cs_dane_plan(&st, A, B, T0, 2 * TTL);
	/* Seen at one owner only: not visible. */
	observe_both(&st, both, only_a, T0 + 10);
	ck_assert(!cs_dane_next_ready(&st, T0 + 10, TTL, &left));
	ck_assert_int_eq(left, -1);
	/* At both from T0 + 20: usable at T0 + 20 + 600, not a second before. */
	observe_both(&st, both, both, T0 + 20);
	observe_both(&st, both, both, T0 + 300);
	ck_assert(!cs_dane_next_ready(&st, T0 + 619, TTL, &left));
	ck_assert_int_eq(left, 1);
	ck_assert(cs_dane_next_ready(&st, T0 + 620, TTL, &left));
	ck_assert_int_eq(left, 0);
	ck_assert(cs_dane_ok(&st));
}
END_TEST

START_TEST(test_dane_wait_restarts_when_record_vanishes)
{
	struct cs_dane_state st = { 0 };
	const char *both[] = { A, B, NULL }, *only_a[] = { A, NULL };
	int64_t left;

	cs_dane_plan(&st, A, B, T0, 2 * TTL);
	observe_both(&st, both, both, T0);
	observe_both(&st, only_a, only_a, T0 + 500);
	observe_both(&st, both, both, T0 + 550);
	ck_assert(!cs_dane_next_ready(&st, T0 + 700, TTL, &left));
	ck_assert_int_eq(left, 450);
	ck_assert(cs_dane_next_ready(&st, T0 + 1150, TTL, &left));
}
END_TEST

START_TEST(test_dane_unvalidated_never_counts)
{
	struct cs_dane_state st = { 0 };
	const char *both[] = { A, B, NULL };
	struct cs_dnsq_answer ans[1] = { answer(false, TTL, both) };
	int64_t left;

	cs_dane_plan(&st, A, B, T0, 2 * TTL);
	cs_dane_observe(&st, 3, ans, 1, NULL, T0);
	ck_assert(!st.validated);
	ck_assert_int_eq(cs_dane_role(&st, CS_DANE_NEXT)->visible_since, 0);
	ck_assert(!cs_dane_next_ready(&st, T0 + 10 * TTL, TTL, &left));
	ck_assert(!cs_dane_ok(&st));
	ck_assert_str_ne(st.check_err, "");
	/* A resolver that does not answer: not validated, and it says why. */
	cs_dane_observe(&st, 3, NULL, 0, "resolver 127.0.0.1:53: timed out", T0 + 1);
	ck_assert(!st.validated);
	ck_assert_str_eq(st.check_err, "resolver 127.0.0.1:53: timed out");
	/* Records of another usage (2 1 1) are not those of a 3 1 1 rollover. */
	ans[0] = answer(true, TTL, both);
	for (size_t i = 0; i < ans[0].n; i++)
		ans[0].recs[i].usage = 2;
	cs_dane_observe(&st, 3, ans, 1, NULL, T0 + 2);
	ck_assert(st.validated);
	ck_assert_int_eq(cs_dane_role(&st, CS_DANE_CURRENT)->visible_since, 0);
}
END_TEST

START_TEST(test_dane_rollover_retires_old_current)
{
	struct cs_dane_state st = { 0 };
	struct cs_dane_changes ch;
	const char *all[] = { A, B, C, NULL };

	cs_dane_plan(&st, A, B, T0, 2 * TTL);
	cs_dane_changes(&st, T0, &ch);
	cs_dane_updated(&st, &ch, true, NULL, T0);
	/* B deployed, C staged: A retires at T0 + 1000 + 600. */
	cs_dane_plan(&st, B, C, T0 + 1000, cs_dane_wait(&st, TTL));
	ck_assert_str_eq(cs_dane_role(&st, CS_DANE_CURRENT)->hex, B);
	ck_assert_str_eq(cs_dane_role(&st, CS_DANE_NEXT)->hex, C);
	ck_assert_str_eq(cs_dane_role(&st, CS_DANE_RETIRING)->hex, A);
	ck_assert_int_eq(cs_dane_role(&st, CS_DANE_RETIRING)->retire_at, T0 + 1600);
	cs_dane_changes(&st, T0 + 1000, &ch);
	ck_assert_uint_eq(ch.n_add, 1);
	ck_assert_str_eq(ch.add[0], C);
	ck_assert_uint_eq(ch.n_del, 0);
	cs_dane_updated(&st, &ch, true, NULL, T0 + 1000);
	observe_both(&st, all, all, T0 + 1001);
	/* Planned again before its time: still there, not deleted. */
	cs_dane_plan(&st, B, C, T0 + 1599, cs_dane_wait(&st, TTL));
	cs_dane_changes(&st, T0 + 1599, &ch);
	ck_assert_uint_eq(ch.n_del, 0);
	cs_dane_changes(&st, T0 + 1600, &ch);
	ck_assert_uint_eq(ch.n_del, 1);
	ck_assert_str_eq(ch.del[0], A);
	cs_dane_updated(&st, &ch, true, NULL, T0 + 1600);
	ck_assert_uint_eq(st.n, 2);
	ck_assert_ptr_null(cs_dane_role(&st, CS_DANE_RETIRING));
}
END_TEST

START_TEST(test_dane_rollback_keeps_record)
{
	struct cs_dane_state st = { 0 };
	struct cs_dane_changes ch;

	cs_dane_plan(&st, A, B, T0, 2 * TTL);
	cs_dane_changes(&st, T0, &ch);
	cs_dane_updated(&st, &ch, true, NULL, T0);
	cs_dane_plan(&st, B, C, T0 + 10, 2 * TTL);
	/* A rollback put A back: it is current again, never deleted. */
	cs_dane_plan(&st, A, C, T0 + 20, 2 * TTL);
	ck_assert_str_eq(cs_dane_role(&st, CS_DANE_CURRENT)->hex, A);
	cs_dane_changes(&st, T0 + 10000, &ch);
	for (size_t i = 0; i < ch.n_del; i++)
		ck_assert_str_ne(ch.del[i], A);
}
END_TEST

START_TEST(test_dane_failed_update)
{
	struct cs_dane_state st = { 0 };
	struct cs_dane_changes ch;
	const char *both[] = { A, B, NULL };

	cs_dane_plan(&st, A, B, T0, 2 * TTL);
	cs_dane_changes(&st, T0, &ch);
	cs_dane_updated(&st, &ch, false, "nsupdate: tsig verify failure", T0);
	ck_assert(st.update_failed);
	ck_assert_uint_eq(st.update_failures, 1);
	ck_assert_str_eq(st.update_err, "nsupdate: tsig verify failure");
	/* Nothing was published: the next update adds both again. */
	cs_dane_changes(&st, T0 + 1, &ch);
	ck_assert_uint_eq(ch.n_add, 2);
	observe_both(&st, both, both, T0 + 2);
	ck_assert(!cs_dane_ok(&st));
	cs_dane_updated(&st, &ch, true, NULL, T0 + 3);
	ck_assert(cs_dane_ok(&st));
	ck_assert_uint_eq(st.update_failures, 1);
}
END_TEST

START_TEST(test_dane_files)
{
	struct cs_dane_state st = { 0 }, back;
	struct cs_dane_changes ch;
	char err[512], hex1[CS_DANE_HEX], hex2[CS_DANE_HEX], path[4200];
	struct stat sb;
	EVP_PKEY *k = cs_key_generate(CS_KEY_EC_P256, err, sizeof(err)), *k2;

	ck_assert_ptr_nonnull(k);
	cs_dane_plan(&st, A, B, T0, 2 * TTL);
	cs_dane_changes(&st, T0, &ch);
	cs_dane_updated(&st, &ch, true, NULL, T0);
	for (size_t i = 0; i < st.n; i++)
		if (st.r[i].role == CS_DANE_NEXT)
			st.r[i].visible_since = T0 + 5;
	st.ttl = 77;
	st.kept = 4;
	ck_assert_int_eq(cs_dane_save(cs_test_tmp, "mail", &st, err, sizeof(err)), 0);
	ck_assert_int_eq(cs_dane_load(cs_test_tmp, "mail", &back, err, sizeof(err)), 0);
	ck_assert_uint_eq(back.n, 2);
	ck_assert_int_eq(back.ttl, 77);
	ck_assert_uint_eq(back.kept, 4);
	ck_assert_str_eq(cs_dane_role(&back, CS_DANE_NEXT)->hex, B);
	ck_assert_int_eq(cs_dane_role(&back, CS_DANE_NEXT)->visible_since, T0 + 5);
	ck_assert(cs_dane_role(&back, CS_DANE_CURRENT)->published);
	/* None yet: an empty state, no error. */
	ck_assert_int_eq(cs_dane_load(cs_test_tmp, "other", &back, err, sizeof(err)), 0);
	ck_assert_uint_eq(back.n, 0);

	ck_assert_ptr_null(cs_dane_key_read(cs_test_tmp, "mail", err, sizeof(err)));
	ck_assert_str_eq(err, "");
	ck_assert_int_eq(cs_dane_key_write(cs_test_tmp, "mail", k, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/dane/mail.key", cs_test_tmp);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
	k2 = cs_dane_key_read(cs_test_tmp, "mail", err, sizeof(err));
	ck_assert_ptr_nonnull(k2);
	ck_assert_int_eq(cs_tlsa_key_data(k, 1, hex1, sizeof(hex1)), 0);
	ck_assert_int_eq(cs_tlsa_key_data(k2, 1, hex2, sizeof(hex2)), 0);
	ck_assert_str_eq(hex1, hex2);
	EVP_PKEY_free(k);
	EVP_PKEY_free(k2);
}
END_TEST

/* The fuzz seed NAME (tests/fuzz/corpus/dnsq) parsed into *a; returns cs_dnsq_parse's code. */
static int parse_seed(const char *name, struct cs_dnsq_answer *a)
{
	char path[4096];
	unsigned char buf[4096];
	const char *src = getenv("CS_SOURCE_DIR");
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/tests/fuzz/corpus/dnsq/%s", src ? src : ".", name);
	f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "%s", path);
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	return cs_dnsq_parse(buf, n, a);
}

/* What the parser takes from an answer: rcode, AD, the TLSA records and the smallest TTL. */
START_TEST(test_dane_parse_answer)
{
	struct cs_dnsq_answer a;
	char hex[CS_DANE_HEX + 64];

	ck_assert_int_eq(parse_seed("two_records_ad", &a), 0);
	ck_assert_int_eq(a.rcode, 0);
	ck_assert(a.ad);
	ck_assert_uint_eq(a.n, 2);
	ck_assert_uint_eq(a.ttl, 60);
	ck_assert_int_eq(a.recs[0].usage, 3);
	ck_assert_int_eq(cs_tlsa_rec_hex(&a.recs[0], hex, sizeof(hex)), 0);
	/* SHA-256 of "a" */
	ck_assert_str_eq(hex, "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb");
	ck_assert_int_eq(a.recs[1].mtype, 2);
	ck_assert_uint_eq(a.recs[1].len, 64);
	/* Data whose length is not its matching type's is counted, not kept. */
	ck_assert_int_eq(parse_seed("odd_lengths", &a), 0);
	ck_assert(!a.ad);
	ck_assert_uint_eq(a.n, 0);
	ck_assert_uint_eq(a.n_other, 2);
	ck_assert_int_eq(parse_seed("nxdomain_ad", &a), 0);
	ck_assert_int_eq(a.rcode, 3);
	ck_assert(a.ad);
	ck_assert_uint_eq(a.n, 0);
	ck_assert_int_eq(cs_dnsq_parse((const unsigned char *)"\x12\x34\x81", 3, &a), -EPROTO);
}
END_TEST

Suite *dane_suite(void)
{
	Suite *s = suite_create("dane");
	TCase *tc = tcase_create("dane");

	tcase_add_test(tc, test_dane_plan_publishes_current_and_next);
	tcase_add_test(tc, test_dane_next_ready_after_two_ttl_everywhere);
	tcase_add_test(tc, test_dane_wait_restarts_when_record_vanishes);
	tcase_add_test(tc, test_dane_unvalidated_never_counts);
	tcase_add_test(tc, test_dane_rollover_retires_old_current);
	tcase_add_test(tc, test_dane_rollback_keeps_record);
	tcase_add_test(tc, test_dane_failed_update);
	tcase_add_test(tc, test_dane_parse_answer);
	tcase_add_checked_fixture(tc, cs_test_tmp_setup, cs_test_tmp_teardown);
	tcase_add_test(tc, test_dane_files);
	suite_add_tcase(s, tc);
	return s;
}
