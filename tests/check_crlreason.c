/*
 * check_crlreason - the one CRL reason table: names by code, codes by name
 * (any case) within a set, and the lists the error messages give.
 */
#include "cs_crlreason.h"

#include <check.h>

START_TEST(test_crlreason_table)
{
	const char *canon = NULL;
	char list[256];

	ck_assert_str_eq(cs_crlreason_name(0), "unspecified");
	ck_assert_str_eq(cs_crlreason_name(6), "certificateHold");
	ck_assert_str_eq(cs_crlreason_name(8), "removeFromCRL");
	ck_assert_ptr_null(cs_crlreason_name(7));
	ck_assert_ptr_null(cs_crlreason_name(-1));
	ck_assert_ptr_null(cs_crlreason_name(9));

	ck_assert_int_eq(cs_crlreason_code("KEYCOMPROMISE", CS_CRLREASON_CLIENT, &canon), 1);
	ck_assert_str_eq(canon, "keyCompromise");
	ck_assert_int_eq(cs_crlreason_code("CACompromise", CS_CRLREASON_CLIENT, NULL), -1);
	ck_assert_int_eq(cs_crlreason_code("CACompromise", CS_CRLREASON_REVOKE, NULL), 2);
	ck_assert_int_eq(cs_crlreason_code("removeFromCRL", CS_CRLREASON_REVOKE, NULL), -1);
	ck_assert_int_eq(cs_crlreason_code("removeFromCRL", CS_CRLREASON_ANY, NULL), 8);
	ck_assert_int_eq(cs_crlreason_code("nonsense", CS_CRLREASON_ANY, NULL), -1);

	ck_assert(cs_crlreason_valid(6, CS_CRLREASON_REVOKE));
	ck_assert(!cs_crlreason_valid(7, CS_CRLREASON_ANY));
	ck_assert(!cs_crlreason_valid(8, CS_CRLREASON_REVOKE));
	ck_assert(!cs_crlreason_valid(2, CS_CRLREASON_CLIENT));

	ck_assert_str_eq(cs_crlreason_list(CS_CRLREASON_CLIENT, list, sizeof(list)),
			 "unspecified, keyCompromise, affiliationChanged, superseded, "
			 "cessationOfOperation");
	ck_assert_str_eq(cs_crlreason_list(CS_CRLREASON_REVOKE, list, sizeof(list)),
			 "unspecified, keyCompromise, CACompromise, affiliationChanged, "
			 "superseded, cessationOfOperation, certificateHold");
	/* A short buffer gets whole names only. */
	ck_assert_str_eq(cs_crlreason_list(CS_CRLREASON_REVOKE, list, 30),
			 "unspecified, keyCompromise");
}
END_TEST

Suite *crlreason_suite(void)
{
	Suite *s = suite_create("crlreason");
	TCase *tc = tcase_create("table");

	tcase_add_test(tc, test_crlreason_table);
	suite_add_tcase(s, tc);
	return s;
}
