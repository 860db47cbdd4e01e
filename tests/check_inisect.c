/*
 * check_inisect - one section of one INI file, as cs_early and certsyncctl -c
 * read the [agent] keys: only that section's pairs, in file order; indented
 * lines and comments after white space as the configuration reads them; a
 * bad line's number and the file in the message; a missing file, a FIFO, a
 * directory and a file over the size limit refused with the path named.
 */
#include "cs_inisect.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


/* The pairs seen, as "key=value;" one after the other. */
static void collect(void *arg, const char *key, const char *value)
{
	char *seen = arg;
	size_t n = strlen(seen);

	snprintf(seen + n, 1024 - n, "%s=%s;", key, value);
}

START_TEST(test_inisect_pairs)
{
	char *path = cs_test_write(cs_test_tmp, "certsync.conf",
				   "# certsync\n"
				   "[agent]\n"
				   "state_dir = /var/lib/x   # where the state is\n"
				   "  socket = /run/x/ctl.sock\n"
				   "socket_mode = 0640 ; inih's own\n"
				   "log = a#b\n"
				   "\n"
				   "[cert \"mail\"]\n"
				   "socket = /not/this\n"
				   "[agent]\n"
				   "admin_group = adm\n",
				   0644);
	char seen[1024] = "", err[256] = "";

	ck_assert_int_eq(cs_inisect_read(path, "agent", collect, seen, err, sizeof(err)), 0);
	ck_assert_str_eq(seen, "state_dir=/var/lib/x;socket=/run/x/ctl.sock;socket_mode=0640;"
			       "log=a#b;admin_group=adm;");
	seen[0] = '\0';
	ck_assert_int_eq(cs_inisect_read(path, "cert \"mail\"", collect, seen, NULL, 0), 0);
	ck_assert_str_eq(seen, "socket=/not/this;");
	free(path);
}
END_TEST

START_TEST(test_inisect_bad_line)
{
	char *path = cs_test_write(cs_test_tmp, "bad.conf",
				   "[agent]\nsocket = /run/a.sock\nsecret-looking line\n"
				   "state_dir = /var/lib/a\n",
				   0644);
	char seen[1024] = "", err[256] = "", want[512];

	ck_assert_int_eq(cs_inisect_read(path, "agent", collect, seen, err, sizeof(err)), 3);
	snprintf(want, sizeof(want), "%s:3: expected", path);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
	ck_assert_ptr_null(strstr(err, "secret"));
	ck_assert_str_eq(seen, "socket=/run/a.sock;state_dir=/var/lib/a;");
	free(path);
}
END_TEST

START_TEST(test_inisect_refused)
{
	char seen[1024] = "", err[256] = "", *path, *big;
	FILE *fp;

	ck_assert_int_ge(asprintf(&path, "%s/missing.conf", cs_test_tmp), 0);
	ck_assert_int_eq(cs_inisect_read(path, "agent", collect, seen, err, sizeof(err)),
			 -ENOENT);
	ck_assert_msg(strstr(err, path) == err && strstr(err, "cannot read"), "%s", err);
	free(path);

	ck_assert_int_ge(asprintf(&path, "%s/fifo.conf", cs_test_tmp), 0);
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	ck_assert_int_eq(cs_inisect_read(path, "agent", collect, seen, err, sizeof(err)),
			 -EINVAL);
	ck_assert_msg(strstr(err, path) == err && strstr(err, "not a regular file"), "%s", err);
	ck_assert_int_eq(cs_inisect_read(cs_test_tmp, "agent", collect, seen, NULL, 0), -EINVAL);
	free(path);

	big = cs_test_write(cs_test_tmp, "big.conf", "[agent]\n", 0644);
	ck_assert_ptr_nonnull(fp = fopen(big, "a"));
	for (int i = 0; i < CS_INISECT_MAX_BYTES / 16 + 1; i++)
		fputs("# padding......\n", fp);
	fclose(fp);
	ck_assert_int_eq(cs_inisect_read(big, "agent", collect, seen, err, sizeof(err)), -EFBIG);
	ck_assert_msg(strstr(err, big) == err && strstr(err, "larger than"), "%s", err);
	ck_assert_str_eq(seen, "");
	free(big);
}
END_TEST

Suite *inisect_suite(void)
{
	Suite *s = suite_create("inisect");
	TCase *tc = tcase_create("inisect");

	tcase_add_checked_fixture(tc, cs_test_tmp_setup, cs_test_tmp_teardown);
	tcase_add_test(tc, test_inisect_pairs);
	tcase_add_test(tc, test_inisect_bad_line);
	tcase_add_test(tc, test_inisect_refused);
	suite_add_tcase(s, tc);
	return s;
}
