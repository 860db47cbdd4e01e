/*
 * check_livedir - the swapped live directory: the link and the files it
 * leads to, each file's mode set before its first byte, a swap stopped at
 * every step leaving the link on a complete generation and leftovers that
 * the sweep removes, the same generation repaired in place, a prune that
 * keeps what the link leads to, and a DIR/NAME that is not the agent's left
 * alone.
 */
#include "cs_atomic.h"
#include "cs_livedir.h"
#include "testutil.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Two generations: a key file and a certificate each, as the deploy writes them. */
static const struct cs_livedir_file gen_a[] = {
	{ "privkey.pem", "KEY A\n", 6, 0600 },
	{ "fullchain.pem", "CERT A\nCHAIN\n", 13, 0644 },
	{ "bundle.pem", "KEY A\nCERT A\nCHAIN\n", 19, 0640 },
};
static const struct cs_livedir_file gen_b[] = {
	{ "privkey.pem", "KEY B, longer\n", 14, 0600 },
	{ "fullchain.pem", "CERT B\nCHAIN\n", 13, 0644 },
	{ "bundle.pem", "KEY B, longer\nCERT B\nCHAIN\n", 27, 0640 },
};
#define N_FILES 3

static const struct cs_livedir_opts quick = { (uid_t)-1, (gid_t)-1, CS_ATOMIC_NO_FSYNC, NULL,
					      NULL };

static void swap_ok(const char *id, const struct cs_livedir_file *f,
		    const struct cs_livedir_opts *o)
{
	char err[512] = "";
	int rc = cs_livedir_swap(cs_test_tmp, "mail", id, f, N_FILES, o, err, sizeof(err));

	ck_assert_msg(rc == 0, "swap to %s: %d %s", id, rc, err);
}

/* Which generation tmp/mail/ leads to, read through the link: 'A', 'B' or 0 (mixed). */
static char live_gen(void)
{
	const struct cs_livedir_file *sets[2] = { gen_a, gen_b };
	char path[PATH_MAX];

	for (int s = 0; s < 2; s++) {
		bool all = true;
		for (size_t i = 0; i < N_FILES && all; i++) {
			size_t len = 0;
			snprintf(path, sizeof(path), "%s/mail/%s", cs_test_tmp, sets[s][i].name);
			char *got = cs_test_read(path, &len);
			all = got != NULL && len == sets[s][i].len &&
			      memcmp(got, sets[s][i].data, len) == 0;
			free(got);
		}
		if (all)
			return s == 0 ? 'A' : 'B';
	}
	return 0;
}

START_TEST(test_livedir_swap_layout)
{
	char path[PATH_MAX], link[PATH_MAX], id[64], list[512], err[256];
	struct stat sb;

	swap_ok("aaaa", gen_a, &quick);
	snprintf(path, sizeof(path), "%s/mail", cs_test_tmp);
	ssize_t n = readlink(path, link, sizeof(link) - 1);
	ck_assert_int_gt(n, 0);
	link[n] = '\0';
	ck_assert_str_eq(link, ".gen/mail/aaaa"); /* relative: DIR may move */
	ck_assert_int_eq(live_gen(), 'A');
	for (size_t i = 0; i < N_FILES; i++) {
		snprintf(path, sizeof(path), "%s/.gen/mail/aaaa/%s", cs_test_tmp, gen_a[i].name);
		ck_assert_int_eq(lstat(path, &sb), 0);
		ck_assert(S_ISREG(sb.st_mode));
		ck_assert_int_eq(sb.st_mode & 07777, gen_a[i].mode);
	}
	snprintf(path, sizeof(path), "%s/.gen/mail/aaaa", cs_test_tmp);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 07777, 0755);
	ck_assert_int_eq(cs_livedir_current(cs_test_tmp, "mail", id, sizeof(id)), 0);
	ck_assert_str_eq(id, "aaaa");

	swap_ok("bbbb", gen_b, &quick);
	ck_assert_int_eq(live_gen(), 'B');
	snprintf(path, sizeof(path), "%s/.gen/mail", cs_test_tmp);
	cs_test_listing(path, list, sizeof(list));
	ck_assert_str_eq(list, "aaaa bbbb"); /* the old one kept for rollback */
	cs_test_listing(cs_test_tmp, list, sizeof(list));
	ck_assert_str_eq(list, ".gen mail");

	/* Prune: what the link leads to stays, even when not named. */
	ck_assert_int_eq(cs_livedir_prune(cs_test_tmp, "mail", NULL, 0, err, sizeof(err)), 1);
	snprintf(path, sizeof(path), "%s/.gen/mail", cs_test_tmp);
	cs_test_listing(path, list, sizeof(list));
	ck_assert_str_eq(list, "bbbb");
	swap_ok("aaaa", gen_a, &quick);
	const char *keep[] = { "bbbb" };
	ck_assert_int_eq(cs_livedir_prune(cs_test_tmp, "mail", keep, 1, err, sizeof(err)), 0);
	cs_test_listing(path, list, sizeof(list));
	ck_assert_str_eq(list, "aaaa bbbb");
	ck_assert_int_eq(live_gen(), 'A');
}
END_TEST

/* What the hook saw when each file had just been created. */
struct seen_modes {
	int opened;
	bool bad;
	char why[256];
};

static void check_opened(enum cs_livedir_step step, int dirfd, const char *name, void *arg)
{
	struct seen_modes *s = arg;
	struct stat sb, db;

	if (step != CS_LIVEDIR_FILE_OPENED)
		return;
	s->opened++;
	if (fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || fstat(dirfd, &db) < 0) {
		s->bad = true;
		snprintf(s->why, sizeof(s->why), "%s: %s", name, strerror(errno));
		return;
	}
	for (size_t i = 0; i < N_FILES; i++) {
		if (strcmp(gen_b[i].name, name) != 0)
			continue;
		/* The final mode and nothing written yet; the directory closed to others. */
		if ((sb.st_mode & 07777) != gen_b[i].mode || sb.st_size != 0 ||
		    (db.st_mode & 07777) != 0700) {
			s->bad = true;
			snprintf(s->why, sizeof(s->why), "%s: mode %04o size %jd, directory %04o",
				 name, (unsigned)(sb.st_mode & 07777), (intmax_t)sb.st_size,
				 (unsigned)(db.st_mode & 07777));
		}
	}
}

START_TEST(test_livedir_modes_before_bytes)
{
	struct seen_modes s = { 0 };
	struct cs_livedir_opts o = quick;

	o.hook = check_opened;
	o.hook_arg = &s;
	swap_ok("bbbb", gen_b, &o);
	ck_assert_int_eq(s.opened, N_FILES);
	ck_assert_msg(!s.bad, "%s", s.why);
}
END_TEST

static int stop_at;

static void die_at(enum cs_livedir_step step, int dirfd, const char *name, void *arg)
{
	(void)dirfd;
	(void)name;
	(void)arg;
	if ((int)step == stop_at)
		_exit(3);
}

/*
 * A swap killed at each step (loop index: the step), to a new generation
 * (even) or repairing the generation the link leads to (odd): the link
 * leads to a complete generation, the sweep removes every leftover, and the
 * next swap completes.
 */
START_TEST(test_livedir_crash_leftovers_swept)
{
	char path[PATH_MAX], list[512], err[256];
	bool repair = _i % 2 == 1;
	int status;

	stop_at = _i / 2;
	swap_ok("aaaa", gen_a, &quick);
	if (repair) {
		/* Damaged in place: the repair rebuilds the same generation. */
		snprintf(path, sizeof(path), "%s/.gen/mail/aaaa/privkey.pem", cs_test_tmp);
		ck_assert_int_eq(truncate(path, 2), 0);
	}
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct cs_livedir_opts o = { (uid_t)-1, (gid_t)-1, 0, die_at, NULL };
		char e[256];
		int rc = repair ? cs_livedir_swap(cs_test_tmp, "mail", "aaaa", gen_a, N_FILES, &o, e,
						  sizeof(e))
				: cs_livedir_swap(cs_test_tmp, "mail", "bbbb", gen_b, N_FILES, &o, e,
						  sizeof(e));
		_exit(rc == 0 ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_ne(WEXITSTATUS(status), 1);
	char g = live_gen();
	if (repair) {
		/* Before the new copy is in place the damaged one is still there, whole. */
		snprintf(path, sizeof(path), "%s/mail/fullchain.pem", cs_test_tmp);
		ck_assert_int_eq(access(path, F_OK), 0);
	} else {
		ck_assert_msg(g == 'A' || g == 'B', "killed at step %d: a mixed generation",
			      stop_at);
		if (stop_at < CS_LIVEDIR_LINK_SWAPPED)
			ck_assert_int_eq(g, 'A');
	}
	ck_assert_int_ge(cs_livedir_sweep(cs_test_tmp, "mail", err, sizeof(err)), 0);
	cs_test_listing(cs_test_tmp, list, sizeof(list));
	ck_assert_str_eq(list, ".gen mail");
	snprintf(path, sizeof(path), "%s/.gen/mail", cs_test_tmp);
	cs_test_listing(path, list, sizeof(list));
	ck_assert_msg(strcmp(list, "aaaa") == 0 || strcmp(list, "aaaa bbbb") == 0,
		      "killed at step %d: left %s", stop_at, list);
	if (repair) {
		swap_ok("aaaa", gen_a, &quick);
		ck_assert_int_eq(live_gen(), 'A');
	} else {
		swap_ok("bbbb", gen_b, &quick);
		ck_assert_int_eq(live_gen(), 'B');
	}
}
END_TEST

START_TEST(test_livedir_repair_in_place)
{
	char path[PATH_MAX], list[512];

	swap_ok("aaaa", gen_a, &quick);
	snprintf(path, sizeof(path), "%s/.gen/mail/aaaa/privkey.pem", cs_test_tmp);
	ck_assert_int_eq(truncate(path, 0), 0);
	ck_assert_int_eq(live_gen(), 0);
	swap_ok("aaaa", gen_a, &quick);
	ck_assert_int_eq(live_gen(), 'A');
	/* A mode changed by hand is put back too. */
	snprintf(path, sizeof(path), "%s/.gen/mail/aaaa/privkey.pem", cs_test_tmp);
	ck_assert_int_eq(chmod(path, 0644), 0);
	swap_ok("aaaa", gen_a, &quick);
	struct stat sb;
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 07777, 0600);
	snprintf(path, sizeof(path), "%s/.gen/mail", cs_test_tmp);
	cs_test_listing(path, list, sizeof(list));
	ck_assert_str_eq(list, "aaaa");
	/* The link deleted: made again. */
	snprintf(path, sizeof(path), "%s/mail", cs_test_tmp);
	ck_assert_int_eq(unlink(path), 0);
	swap_ok("aaaa", gen_a, &quick);
	ck_assert_int_eq(live_gen(), 'A');
}
END_TEST

/* DIR/mail as an administrator left it: a file, a directory, a link elsewhere. */
START_TEST(test_livedir_foreign_untouched)
{
	char path[PATH_MAX], err[512] = "", link[PATH_MAX];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/mail", cs_test_tmp);
	if (_i == 0) {
		free(cs_test_write(cs_test_tmp, "mail", "mine\n", 0600));
	} else if (_i == 1) {
		ck_assert_int_eq(mkdir(path, 0700), 0);
	} else {
		ck_assert_int_eq(symlink("/etc/ssl", path), 0);
	}
	ck_assert_int_eq(cs_livedir_swap(cs_test_tmp, "mail", "aaaa", gen_a, N_FILES, &quick, err,
					 sizeof(err)),
			 -EEXIST);
	ck_assert_msg(strstr(err, "refusing to replace it") != NULL, "%s", err);
	ck_assert_int_eq(lstat(path, &sb), 0);
	if (_i == 0)
		ck_assert(S_ISREG(sb.st_mode));
	else if (_i == 1)
		ck_assert(S_ISDIR(sb.st_mode));
	else {
		ssize_t n = readlink(path, link, sizeof(link) - 1);
		ck_assert_int_gt(n, 0);
		link[n] = '\0';
		ck_assert_str_eq(link, "/etc/ssl");
	}
	/* A name that could reach .gen is refused. */
	ck_assert_int_eq(cs_livedir_swap(cs_test_tmp, ".gen", "aaaa", gen_a, N_FILES, &quick, err,
					 sizeof(err)),
			 -EINVAL);
}
END_TEST

Suite *livedir_suite(void)
{
	Suite *s = suite_create("livedir");
	TCase *tc = tcase_create("livedir");

	tcase_add_checked_fixture(tc, cs_test_tmp_setup, cs_test_tmp_teardown);
	tcase_add_test(tc, test_livedir_swap_layout);
	tcase_add_test(tc, test_livedir_modes_before_bytes);
	tcase_add_loop_test(tc, test_livedir_crash_leftovers_swept, 0,
			    2 * (CS_LIVEDIR_LINK_SWAPPED + 1));
	tcase_add_test(tc, test_livedir_repair_in_place);
	tcase_add_loop_test(tc, test_livedir_foreign_untouched, 0, 3);
	suite_add_tcase(s, tc);
	return s;
}
