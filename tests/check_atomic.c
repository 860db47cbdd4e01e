/*
 * check_atomic - the atomic writer and the deployed outputs it writes: the
 * bytes and mode on disk, a symlink at the final component refused unless
 * followed on purpose, an error leaving the old file and no temp file
 * behind, stale temp files of killed writers swept, and the bundle/fullchain
 * layouts Postfix and Dovecot read. (Kills at random moments and a full
 * filesystem are in tests/integration/atomic_*.sh.)
 */
#include "cs_atomic.h"
#include "cs_chain.h"
#include "cs_ingest.h"
#include "cs_output.h"
#include "testutil.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char *in_tmp(const char *name)
{
	char *p;

	ck_assert_int_ge(asprintf(&p, "%s/%s", cs_test_tmp, name), 0);
	return p;
}


/* The names in cs_test_tmp other than . and .., sorted, joined by spaces. */
static void listing(char *buf, size_t len)
{
	ck_assert_int_ge(cs_test_listing(cs_test_tmp, buf, len), 0);
}

static const struct cs_atomic_opts plain = { .mode = 0644, .uid = (uid_t)-1, .gid = (gid_t)-1 };

static const mode_t modes[] = { 0600, 0640, 0644, 0400 };

START_TEST(test_atomic_content_and_mode)
{
	char *p = in_tmp("out.pem"), err[512], names[256];
	struct cs_atomic_opts o = plain;
	struct stat sb;
	size_t len;

	o.mode = modes[_i];
	ck_assert_int_eq(cs_atomic_write(p, "first\n", 6, &o, err, sizeof(err)), 0);
	char *got = cs_test_read(p, &len);
	ck_assert_str_eq(got, "first\n");
	free(got);
	ck_assert_int_eq(stat(p, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 07777, modes[_i]);
	listing(names, sizeof(names));
	ck_assert_str_eq(names, "out.pem"); /* no temp file left */

	/* Replacing: new content, new inode, the same mode. */
	ino_t old = sb.st_ino;
	ck_assert_int_eq(cs_atomic_write(p, "second, longer\n", 15, &o, err, sizeof(err)), 0);
	got = cs_test_read(p, &len);
	ck_assert_str_eq(got, "second, longer\n");
	free(got);
	ck_assert_int_eq(stat(p, &sb), 0);
	ck_assert_int_ne(sb.st_ino, old);
	ck_assert_int_eq(sb.st_mode & 07777, modes[_i]);
	listing(names, sizeof(names));
	ck_assert_str_eq(names, "out.pem");
	free(p);
}
END_TEST

START_TEST(test_atomic_symlink_refused_unless_followed)
{
	char *target = cs_test_write(cs_test_tmp, "real.pem", "old\n", 0644);
	char *link = in_tmp("link.pem"), err[512], buf[256];
	struct cs_atomic_opts o = plain;
	struct stat sb;
	size_t len;

	ck_assert_int_eq(symlink("real.pem", link), 0);
	ck_assert_int_eq(cs_atomic_write(link, "new\n", 4, &o, err, sizeof(err)), -ELOOP);
	snprintf(buf, sizeof(buf), "%s is a symbolic link; refusing to replace it", link);
	ck_assert_msg(strstr(err, buf) != NULL, "got %s", err);
	char *got = cs_test_read(target, &len);
	ck_assert_str_eq(got, "old\n");
	free(got);
	ck_assert_int_eq(lstat(link, &sb), 0);
	ck_assert(S_ISLNK(sb.st_mode));
	listing(buf, sizeof(buf));
	ck_assert_str_eq(buf, "link.pem real.pem");

	/* Told to follow: the file it names is replaced and the link stays a link. */
	o.flags = CS_ATOMIC_FOLLOW_SYMLINK;
	ck_assert_int_eq(cs_atomic_write(link, "new\n", 4, &o, err, sizeof(err)), 0);
	got = cs_test_read(target, &len);
	ck_assert_str_eq(got, "new\n");
	free(got);
	ck_assert_int_eq(lstat(link, &sb), 0);
	ck_assert(S_ISLNK(sb.st_mode));
	listing(buf, sizeof(buf));
	ck_assert_str_eq(buf, "link.pem real.pem");
	free(target);
	free(link);
}
END_TEST

/* A link someone else made (in a directory others may write to) is not followed. */
START_TEST(test_atomic_foreign_symlink_not_followed)
{
	char *target = cs_test_write(cs_test_tmp, "outside.pem", "precious\n", 0644);
	char *link = in_tmp("mail.pem"), err[512], buf[256];
	struct cs_atomic_opts o = plain;
	struct stat sb;
	size_t len;

	if (geteuid() != 0)
		return; /* only root can give a link another owner */
	o.flags = CS_ATOMIC_FOLLOW_SYMLINK;
	ck_assert_int_eq(symlink(target, link), 0);
	ck_assert_int_eq(lchown(link, 65534, 65534), 0);
	ck_assert_int_eq(cs_atomic_write(link, "key\n", 4, &o, err, sizeof(err)), -EPERM);
	snprintf(buf, sizeof(buf), "%s is a symbolic link owned by uid 65534", link);
	ck_assert_msg(strstr(err, buf) != NULL, "got %s", err);
	char *got = cs_test_read(target, &len);
	ck_assert_str_eq(got, "precious\n");
	free(got);
	ck_assert_int_eq(stat(target, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 07777, 0644);
	listing(buf, sizeof(buf));
	ck_assert_str_eq(buf, "mail.pem outside.pem");
	/* The same link made by root is followed. */
	ck_assert_int_eq(lchown(link, 0, 0), 0);
	ck_assert_int_eq(cs_atomic_write(link, "key\n", 4, &o, err, sizeof(err)), 0);
	got = cs_test_read(target, &len);
	ck_assert_str_eq(got, "key\n");
	free(got);
	free(target);
	free(link);
}
END_TEST

/* A write that fails half way (file size limit): the old file stays, no temp file. */
START_TEST(test_atomic_write_error_keeps_old)
{
	char *p = cs_test_write(cs_test_tmp, "bundle.pem", "the old generation\n", 0600);
	struct rlimit rl = { .rlim_cur = 4096, .rlim_max = RLIM_INFINITY }, saved;
	struct cs_atomic_opts o = plain;
	char err[512], names[256], *big = malloc(65536);
	size_t len;

	ck_assert_ptr_nonnull(big);
	memset(big, 'x', 65536);
	o.mode = 0600;
	signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &saved), 0);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	int rc = cs_atomic_write(p, big, 65536, &o, err, sizeof(err));
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &saved), 0);
	ck_assert_int_eq(rc, -EFBIG);
	ck_assert_msg(strstr(err, "cannot write: File too large") != NULL, "got %s", err);
	ck_assert_msg(strncmp(err, p, strlen(p)) == 0, "message does not name the file: %s", err);
	char *got = cs_test_read(p, &len);
	ck_assert_str_eq(got, "the old generation\n");
	free(got);
	listing(names, sizeof(names));
	ck_assert_str_eq(names, "bundle.pem");
	free(big);
	free(p);
}
END_TEST

START_TEST(test_atomic_bad_targets)
{
	char *missing = in_tmp("no/such/dir/x.pem"), *dir = in_tmp("adir"), err[512];

	ck_assert_int_eq(cs_atomic_write(missing, "x", 1, &plain, err, sizeof(err)), -ENOENT);
	ck_assert_msg(strstr(err, "cannot open directory") != NULL, "got %s", err);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	ck_assert_int_eq(cs_atomic_write(dir, "x", 1, &plain, err, sizeof(err)), -EISDIR);
	ck_assert_msg(strstr(err, "is a directory") != NULL, "got %s", err);
	free(missing);
	free(dir);
}
END_TEST

START_TEST(test_atomic_sweep_removes_only_stale_temps)
{
	char *p = cs_test_write(cs_test_tmp, "mail.pem", "current\n", 0600), err[256], names[512];
	const char *keep[] = { ".mail.pem.0123456789AB", ".mail.pem.0123", ".other.pem.0123456789ab",
			       "mail.pem.0123456789ab" };

	free(cs_test_write(cs_test_tmp, ".mail.pem.0123456789ab", "half", 0600));
	free(cs_test_write(cs_test_tmp, ".mail.pem.fedcba987654", "half", 0600));
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		free(cs_test_write(cs_test_tmp, keep[i], "not ours", 0600));
	ck_assert_int_eq(cs_atomic_sweep(p, err, sizeof(err)), 2);
	listing(names, sizeof(names));
	ck_assert_str_eq(names, ".mail.pem.0123 .mail.pem.0123456789AB .other.pem.0123456789ab "
				"mail.pem mail.pem.0123456789ab");
	ck_assert_int_eq(cs_atomic_sweep(p, err, sizeof(err)), 0);
	free(p);
}
END_TEST

/* Only temp files of our own uid, or of the owner the writer gave them. */
START_TEST(test_atomic_sweep_owned_checks_owner)
{
	char *p = cs_test_write(cs_test_tmp, "mail.pem", "current\n", 0600), err[256], names[512];
	char *theirs = cs_test_write(cs_test_tmp, ".mail.pem.0123456789ab", "someone else's", 0600);

	free(cs_test_write(cs_test_tmp, ".mail.pem.fedcba987654", "ours", 0600));
	if (chown(theirs, 65534, 65534) < 0) {
		fprintf(stderr, "skipping: cannot chown (not root)\n");
		goto out;
	}
	ck_assert_int_eq(cs_atomic_sweep_owned(p, (uid_t)-1, err, sizeof(err)), 1);
	listing(names, sizeof(names));
	ck_assert_str_eq(names, ".mail.pem.0123456789ab mail.pem");
	ck_assert_int_eq(cs_atomic_sweep_owned(p, 65534, err, sizeof(err)), 1);
	listing(names, sizeof(names));
	ck_assert_str_eq(names, "mail.pem");
out:
	free(theirs);
	free(p);
}
END_TEST

/* A directory's temp files of any name with the suffix; nothing else. */
START_TEST(test_atomic_sweep_dir_by_suffix)
{
	char err[256], names[512];
	const char *gone[] = { ".1.pem.0123456789ab", ".12.pem.fedcba987654" };
	const char *keep[] = { "1.pem", ".1.pem.0123456789AB", ".1.pem.01234", ".1.crt.0123456789ab",
			       "x.pem.0123456789ab", ".pem.0123456789ab" };

	for (size_t i = 0; i < 2; i++)
		free(cs_test_write(cs_test_tmp, gone[i], "half a key", 0600));
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		free(cs_test_write(cs_test_tmp, keep[i], "not a temp of ours", 0600));
	char *link = in_tmp(".2.pem.0123456789ab");
	ck_assert_int_eq(symlink("1.pem", link), 0);
	ck_assert_int_eq(cs_atomic_sweep_dir(cs_test_tmp, ".pem", err, sizeof(err)), 2);
	listing(names, sizeof(names));
	ck_assert_str_eq(names, ".1.crt.0123456789ab .1.pem.01234 .1.pem.0123456789AB "
				".2.pem.0123456789ab .pem.0123456789ab 1.pem x.pem.0123456789ab");
	/* Any name: the .crt temp and the one of a file named "pem" too. */
	ck_assert_int_eq(cs_atomic_sweep_dir(cs_test_tmp, NULL, err, sizeof(err)), 2);
	free(link);
}
END_TEST

/* Outputs rendered from an ingested set: the order and blocks each file needs. */
static cs_material *pki_material(char **pki)
{
	const char *src = getenv("CS_SOURCE_DIR");
	struct cs_ingest_opts io = { 0 };
	char *cmd, *file, err[512];
	cs_material *m = cs_material_new();

	ck_assert_ptr_nonnull(src);
	*pki = in_tmp("pki");
	ck_assert_int_ge(asprintf(&cmd, "bash %s/tests/mkpki.sh %s ec >/dev/null 2>&1", src, *pki),
			 0);
	ck_assert_int_eq(cs_test_run(cmd, NULL), 0);
	free(cmd);
	ck_assert_int_ge(asprintf(&file, "%s/shuffled.pem", *pki), 0);
	ck_assert_int_eq(cs_ingest_file(m, file, &io, err, sizeof(err)), 0);
	ck_assert_int_ge(cs_chain_normalise(m, NULL, 0), 0);
	free(file);
	return m;
}

/* The PEM block types of a file, in order, e.g. "PRIVATE KEY,CERTIFICATE". */
static void blocks(const char *path, char *out, size_t len)
{
	size_t n, off = 0;
	char *s = cs_test_read(path, &n);

	ck_assert_ptr_nonnull(s);
	out[0] = '\0';
	for (char *p = strstr(s, "-----BEGIN "); p != NULL; p = strstr(p + 1, "-----BEGIN ")) {
		char *e = strstr(p + 11, "-----");
		ck_assert_ptr_nonnull(e);
		off += (size_t)snprintf(out + off, len - off, "%s%.*s", off ? "," : "",
					(int)(e - p - 11), p + 11);
	}
	free(s);
}

START_TEST(test_output_layouts)
{
	static const struct {
		const char *kind, *blocks;
		mode_t mode;
	} want[] = {
		{ "bundle", "PRIVATE KEY,CERTIFICATE,CERTIFICATE,CERTIFICATE", 0600 },
		{ "fullchain", "CERTIFICATE,CERTIFICATE,CERTIFICATE", 0644 },
		{ "cert", "CERTIFICATE", 0644 },
		{ "chain", "CERTIFICATE,CERTIFICATE", 0644 },
		{ "key", "PRIVATE KEY", 0600 },
	};
	char *pki, err[512], got[256];
	cs_material *m = pki_material(&pki);

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		enum cs_output_kind k;
		struct cs_atomic_opts o = plain;
		char *p = in_tmp(want[i].kind);
		struct stat sb;

		ck_assert_int_eq(cs_output_parse(want[i].kind, &k), 0);
		ck_assert_int_eq(cs_output_has_key(k), want[i].mode == 0600);
		o.mode = want[i].mode;
		ck_assert_int_eq(cs_output_write(m, k, p, &o, err, sizeof(err)), 0);
		blocks(p, got, sizeof(got));
		ck_assert_str_eq(got, want[i].blocks);
		ck_assert_int_eq(stat(p, &sb), 0);
		ck_assert_int_eq(sb.st_mode & 07777, want[i].mode);
		free(p);
	}
	/* The leaf comes first in a bundle: the certificate after the key is the key's. */
	char *b = in_tmp("bundle"), *cmd;
	ck_assert_int_ge(asprintf(&cmd,
				  "cd %s && openssl pkey -in %s -pubout >k.pub && "
				  "openssl x509 -in %s -noout -pubkey >c.pub && cmp -s k.pub c.pub",
				  cs_test_tmp, b, b),
			 0);
	ck_assert_int_eq(cs_test_run(cmd, NULL), 0);
	free(cmd);
	free(b);
	cs_material_free(m);
	free(pki);
}
END_TEST

START_TEST(test_output_key_never_world_readable)
{
	char *pki, err[512], *p = in_tmp("bundle.pem");
	cs_material *m = pki_material(&pki);
	struct cs_atomic_opts o = plain;

	o.mode = 0644;
	ck_assert_int_eq(cs_output_write(m, CS_OUT_BUNDLE, p, &o, err, sizeof(err)), -EPERM);
	ck_assert_msg(strstr(err, "mode 0644 would let others read the private key") != NULL,
		      "got %s", err);
	ck_assert_int_eq(access(p, F_OK), -1);
	o.mode = 0640;
	ck_assert_int_eq(cs_output_write(m, CS_OUT_BUNDLE, p, &o, err, sizeof(err)), 0);
	/* A fullchain has no key: 0644 is fine. */
	o.mode = 0644;
	free(p);
	p = in_tmp("fullchain.pem");
	ck_assert_int_eq(cs_output_write(m, CS_OUT_FULLCHAIN, p, &o, err, sizeof(err)), 0);
	/* A key output of a set without a key is an error naming the file. */
	cs_material *nokey = cs_material_new();
	o.mode = 0600;
	ck_assert_int_lt(cs_output_write(nokey, CS_OUT_KEY, p, &o, err, sizeof(err)), 0);
	ck_assert_msg(strncmp(err, p, strlen(p)) == 0, "got %s", err);
	cs_material_free(nokey);
	cs_material_free(m);
	free(pki);
	free(p);
}
END_TEST

Suite *atomic_suite(void)
{
	Suite *s = suite_create("atomic");
	TCase *tc = tcase_create("writer");

	tcase_add_checked_fixture(tc, cs_test_tmp_setup, cs_test_tmp_teardown);
	tcase_set_timeout(tc, 60);
	cs_test_add_loop(tc, test_atomic_content_and_mode, modes);
	tcase_add_test(tc, test_atomic_symlink_refused_unless_followed);
	tcase_add_test(tc, test_atomic_foreign_symlink_not_followed);
	tcase_add_test(tc, test_atomic_write_error_keeps_old);
	tcase_add_test(tc, test_atomic_bad_targets);
	tcase_add_test(tc, test_atomic_sweep_removes_only_stale_temps);
	tcase_add_test(tc, test_atomic_sweep_owned_checks_owner);
	tcase_add_test(tc, test_atomic_sweep_dir_by_suffix);
	tcase_add_test(tc, test_output_layouts);
	tcase_add_test(tc, test_output_key_never_world_readable);
	suite_add_tcase(s, tc);
	return s;
}
