/*
 * testutil - small helpers shared by the Check suites: temporary directories,
 * whole-file reads and writes, running a command.
 */
#ifndef CS_TESTUTIL_H
#define CS_TESTUTIL_H

#include <stddef.h>
#include <openssl/x509.h>
#include <sys/types.h>

/* Returns a new directory under $TMPDIR (malloc'd path; remove with cs_test_rmrf). */
char *cs_test_mkdtemp(void);

/* Removes path recursively; ignores errors. */
void cs_test_rmrf(const char *path);

/* Writes s to dir/name (or to name when dir is NULL) with mode; returns the malloc'd path. */
char *cs_test_write(const char *dir, const char *name, const char *s, mode_t mode);

/* Returns the whole file as a NUL-terminated malloc'd buffer (length in *len), or NULL. */
char *cs_test_read(const char *path, size_t *len);

/*
 * Runs a shell command line; returns its exit status (or -1) and, when out is
 * not NULL, its stdout+stderr as a malloc'd string.
 */
int cs_test_run(const char *cmdline, char **out);

/* Returns $CS_BUILD_DIR/rel (malloc'd), for locating built programs. */
char *cs_test_build_path(const char *rel);

/*
 * Puts the names in dir other than . and .., sorted and joined by spaces,
 * in buf (len bytes; empty when dir cannot be read); returns scandir's
 * count (negative when dir cannot be read).
 */
int cs_test_listing(const char *dir, char *buf, size_t len);

/* Adds fn to tc as a loop test, one run for each element of the array arr. */
#define cs_test_add_loop(tc, fn, arr) \
	tcase_add_loop_test((tc), (fn), 0, (int)(sizeof(arr) / sizeof((arr)[0])))

/* Returns the malloc'd string that printf would print for fmt (asserts it is made). */
char *cs_test_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Returns a new temporary directory (malloc'd; remove with cs_test_rmrf)
 * holding the PKI of tests/mkpki.sh twice, in DIR/ec for EC keys and in
 * DIR/rsa for RSA keys; then, when more is not NULL, runs the shell command
 * line more in DIR/ec. Asserts that each step works.
 */
char *cs_test_mkpki(const char *more);

/* Returns the first PEM certificate in path (asserts that it opens and holds one). */
X509 *cs_test_read_x509(const char *path);

/*
 * A checked fixture (tcase_add_checked_fixture(tc, cs_test_tmp_setup,
 * cs_test_tmp_teardown)): a new temporary directory in cs_test_tmp before
 * each test, removed with all it holds after it.
 */
extern char *cs_test_tmp;
void cs_test_tmp_setup(void);
void cs_test_tmp_teardown(void);

#endif
