/*
 * check_snimap - Postfix SNI maps and Dovecot local_name includes with the
 * real postmap and doveconf: `postmap -F -q NAME hash:MAP` answers each
 * name's files; the map and its database are 0600 and rebuilt only when the
 * text or an embedded file changed; entries whose files are missing are left
 * out and listed; a failing postmap leaves the map in place; no temp
 * directory stays behind. A Dovecot include is accepted by doveconf -n, not
 * rewritten when unchanged, and put back when doveconf refuses the new one
 * (2.4 names on Dovecot 2.3).
 */
#include "cs_snimap.h"
#include "testutil.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *tmp, *cfg, *map, *pem[3];

static bool have(const char *prog)
{
	char *cmd = NULL;
	int rc;

	ck_assert_int_ge(asprintf(&cmd, "command -v %s >/dev/null", prog), 0);
	rc = cs_test_run(cmd, NULL);
	free(cmd);
	return rc == 0;
}

static void setup(void)
{
	char name[32], text[128];

	tmp = cs_test_mkdtemp();
	ck_assert_ptr_nonnull(tmp);
	ck_assert_int_ge(asprintf(&cfg, "%s/postfix", tmp), 0);
	ck_assert_int_ge(asprintf(&map, "%s/sni", tmp), 0);
	ck_assert_int_eq(mkdir(cfg, 0755), 0);
	free(cs_test_write(cfg, "main.cf", "", 0644));
	for (int i = 0; i < 3; i++) {
		/* postmap -F embeds any bytes: the name in the file tells them apart. */
		snprintf(name, sizeof(name), "bundle%d.pem", i);
		snprintf(text, sizeof(text), "KEY AND CHAIN OF %c.example, first\n", 'a' + i);
		pem[i] = cs_test_write(tmp, name, text, 0600);
	}
}

static void teardown(void)
{
	cs_test_rmrf(tmp);
	free(tmp);
	free(cfg);
	free(map);
	for (int i = 0; i < 3; i++)
		free(pem[i]);
}

/* What `postmap -F -q name hash:MAP` prints (NULL when it finds nothing). */
static char *query(const char *name)
{
	char *cmd = NULL, *out = NULL;
	int rc;

	ck_assert_int_ge(asprintf(&cmd, "postmap -c %s -F -q %s hash:%s", cfg, name, map), 0);
	rc = cs_test_run(cmd, &out);
	free(cmd);
	if (rc != 0) {
		free(out);
		return NULL;
	}
	return out;
}

static int tempdirs_left(void)
{
	DIR *d = opendir(tmp);
	struct dirent *de;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, ".certsync-sni-", 14) == 0)
			n++;
	closedir(d);
	return n;
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	ck_assert_int_eq(stat(path, &st), 0);
	return st.st_mode & 07777;
}

START_TEST(test_snimap_postfix)
{
	struct cs_snimap_entry e[3] = { { "a.example", NULL, pem[0] },
					{ ".b.example", NULL, pem[1] },
					{ "c.example", NULL, pem[2] } };
	struct cs_snimap_opts o = { .kind = CS_SNIMAP_POSTFIX, .path = map, .map_type = "hash",
				    .config_dir = cfg, .mode = 0600, .e = e, .n = 3 };
	struct cs_snimap_result r;
	char err[2048], *db = NULL, *out;
	struct stat st1, st2;

	if (!have("postmap")) {
		fprintf(stderr, "check_snimap: no postmap, Postfix part skipped\n");
		return;
	}
	ck_assert_int_ge(asprintf(&db, "%s.db", map), 0);
	ck_assert_int_eq(cs_snimap_sync(&o, &r, err, sizeof(err)), 0);
	ck_assert(r.written);
	ck_assert_uint_eq(r.entries, 3);
	ck_assert_uint_eq(r.nmissing, 0);
	cs_snimap_result_free(&r);
	ck_assert_int_eq(mode_of(map), 0600);
	ck_assert_int_eq(mode_of(db), 0600);
	out = query("a.example");
	ck_assert_ptr_nonnull(out);
	ck_assert_msg(strstr(out, "KEY AND CHAIN OF a.example"), "%s", out);
	free(out);
	out = query(".b.example");
	ck_assert_msg(out && strstr(out, "OF b.example"), "%s", out ? out : "(none)");
	free(out);
	ck_assert_int_eq(tempdirs_left(), 0);

	/* Nothing changed: nothing rewritten, the database keeps its inode. */
	ck_assert_int_eq(stat(db, &st1), 0);
	ck_assert_int_eq(cs_snimap_sync(&o, &r, err, sizeof(err)), 0);
	ck_assert(!r.written);
	ck_assert_uint_eq(r.entries, 3);
	cs_snimap_result_free(&r);
	ck_assert_int_eq(stat(db, &st2), 0);
	ck_assert_uint_eq(st1.st_ino, st2.st_ino);

	/* A renewed file: the map embeds the new bytes. */
	free(cs_test_write(tmp, "bundle2.pem", "RENEWED C.EXAMPLE\n", 0600));
	ck_assert_int_eq(cs_snimap_sync(&o, &r, err, sizeof(err)), 0);
	ck_assert(r.written);
	cs_snimap_result_free(&r);
	out = query("c.example");
	ck_assert_msg(out && strstr(out, "RENEWED C.EXAMPLE"), "%s", out ? out : "(none)");
	free(out);

	/* A deleted database is made again even though the text is the same. */
	ck_assert_int_eq(unlink(db), 0);
	ck_assert_int_eq(cs_snimap_sync(&o, &r, err, sizeof(err)), 0);
	ck_assert(r.written);
	cs_snimap_result_free(&r);
	ck_assert_int_eq(access(db, F_OK), 0);

	/* A file not there yet: its name is left out and reported, the others stay. */
	ck_assert_int_eq(unlink(pem[1]), 0);
	ck_assert_int_eq(cs_snimap_sync(&o, &r, err, sizeof(err)), 0);
	ck_assert(r.written);
	ck_assert_uint_eq(r.entries, 2);
	ck_assert_uint_eq(r.nmissing, 1);
	ck_assert_msg(strstr(r.missing[0], ".b.example: ") && strstr(r.missing[0], "No such file"),
		      "%s", r.missing[0]);
	cs_snimap_result_free(&r);
	out = query(".b.example");
	ck_assert_ptr_null(out);
	out = query("a.example");
	ck_assert_ptr_nonnull(out);
	free(out);

	/* postmap fails: an error naming it; the map in place still answers. */
	free(cs_test_write(tmp, "bundle0.pem", "CHANGED A\n", 0600));
	o.postmap = "/nonexistent/postmap";
	ck_assert_int_lt(cs_snimap_sync(&o, &r, err, sizeof(err)), 0);
	ck_assert_msg(strstr(err, "/nonexistent/postmap") && strstr(err, "unchanged"), "%s", err);
	cs_snimap_result_free(&r);
	out = query("a.example");
	ck_assert_msg(out && strstr(out, "KEY AND CHAIN OF a.example"), "%s", out ? out : "(none)");
	free(out);
	ck_assert_int_eq(tempdirs_left(), 0);

	/* A map type that cannot hold files. */
	o.postmap = NULL;
	o.map_type = "texthash";
	ck_assert_int_eq(cs_snimap_sync(&o, &r, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, "texthash"), "%s", err);
	cs_snimap_result_free(&r);
	free(db);
}
END_TEST

START_TEST(test_snimap_sweep)
{
	char *d = NULL, *f = NULL, err[512];

	ck_assert_int_ge(asprintf(&d, "%s/.certsync-sni-Ab12Cd", tmp), 0);
	ck_assert_int_eq(mkdir(d, 0700), 0);
	f = cs_test_write(d, "sni", "half\n", 0600);
	ck_assert_int_eq(cs_snimap_sweep(map, err, sizeof(err)), 1);
	ck_assert_int_ne(access(d, F_OK), 0);
	ck_assert_int_eq(tempdirs_left(), 0);
	free(d);
	free(f);
}
END_TEST

START_TEST(test_snimap_dovecot)
{
	struct cs_snimap_entry e[2] = { { "a.example", NULL, pem[0] },
					{ "b.example", pem[1], pem[2] } };
	struct cs_snimap_opts o = { .kind = CS_SNIMAP_DOVECOT23, .mode = 0644, .e = e, .n = 2 };
	struct cs_snimap_result r;
	char err[2048], *inc = NULL, *conf = NULL, *text, *main_cf = NULL;
	struct stat st1, st2;
	size_t len;

	if (!have("doveconf")) {
		fprintf(stderr, "check_snimap: no doveconf, Dovecot part skipped\n");
		return;
	}
	ck_assert_int_ge(asprintf(&inc, "%s/sni.conf", tmp), 0);
	ck_assert_int_ge(asprintf(&main_cf,
				  "base_dir = %s/run\nssl = yes\nssl_cert = <%s\nssl_key = <%s\n"
				  "!include_try %s\n",
				  tmp, pem[0], pem[0], inc),
			 0);
	conf = cs_test_write(tmp, "dovecot.conf", main_cf, 0644);
	o.path = inc;
	o.dovecot_config = conf;

	ck_assert_int_eq(cs_snimap_sync(&o, &r, err, sizeof(err)), 0);
	ck_assert(r.written);
	ck_assert_uint_eq(r.entries, 2);
	ck_assert_ptr_null(r.note); /* doveconf -n shows the names: the include is read */
	cs_snimap_result_free(&r);
	text = cs_test_read(inc, &len);
	ck_assert_ptr_nonnull(strstr(text, "local_name a.example {\n"));
	ck_assert_msg(strstr(text, "ssl_cert = <") && strstr(text, "ssl_key = <"), "%s", text);
	free(text);
	ck_assert_int_eq(mode_of(inc), 0644);

	ck_assert_int_eq(stat(inc, &st1), 0);
	ck_assert_int_eq(cs_snimap_sync(&o, &r, err, sizeof(err)), 0);
	ck_assert(!r.written);
	cs_snimap_result_free(&r);
	ck_assert_int_eq(stat(inc, &st2), 0);
	ck_assert_uint_eq(st1.st_ino, st2.st_ino);

	/* Dovecot 2.3 does not know the 2.4 names: refused, the old include is back. */
	o.kind = CS_SNIMAP_DOVECOT24;
	ck_assert_int_lt(cs_snimap_sync(&o, &r, err, sizeof(err)), 0);
	ck_assert_msg(strstr(err, "ssl_server_cert_file") && strstr(err, "previous one is back"),
		      "%s", err);
	cs_snimap_result_free(&r);
	text = cs_test_read(inc, &len);
	ck_assert_ptr_nonnull(strstr(text, "ssl_cert = <"));
	ck_assert_ptr_null(strstr(text, "ssl_server_cert_file"));
	free(text);

	/* An include Dovecot's configuration does not read: a note says so. */
	o.kind = CS_SNIMAP_DOVECOT23;
	free(main_cf);
	ck_assert_int_ge(asprintf(&main_cf, "base_dir = %s/run\nssl = no\n", tmp), 0);
	free(cs_test_write(tmp, "dovecot.conf", main_cf, 0644));
	ck_assert_int_eq(unlink(inc), 0);
	ck_assert_int_eq(cs_snimap_sync(&o, &r, err, sizeof(err)), 0);
	ck_assert_msg(r.note && strstr(r.note, "included"), "%s", r.note ? r.note : "(none)");
	cs_snimap_result_free(&r);
	free(inc);
	free(conf);
	free(main_cf);
}
END_TEST

Suite *snimap_suite(void)
{
	Suite *s = suite_create("snimap");
	TCase *tc = tcase_create("snimap");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_snimap_postfix);
	tcase_add_test(tc, test_snimap_sweep);
	tcase_add_test(tc, test_snimap_dovecot);
	suite_add_tcase(s, tc);
	return s;
}
