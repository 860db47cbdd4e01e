/*
 * testutil - helpers for the Check suites. See testutil.h.
 */
#include "testutil.h"

#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

char *cs_test_mkdtemp(void)
{
	const char *base = getenv("TMPDIR");
	char *path;

	if (base == NULL || *base == '\0')
		base = "/tmp";
	if (asprintf(&path, "%s/cstest.XXXXXX", base) < 0)
		return NULL;
	if (mkdtemp(path) == NULL) {
		free(path);
		return NULL;
	}
	return path;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(p);
	return 0;
}

void cs_test_rmrf(const char *path)
{
	if (path != NULL)
		nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *cs_test_write(const char *dir, const char *name, const char *s, mode_t mode)
{
	char *path;
	int fd;

	if (dir != NULL) {
		if (asprintf(&path, "%s/%s", dir, name) < 0)
			return NULL;
	} else {
		path = strdup(name);
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd < 0) {
		free(path);
		return NULL;
	}
	size_t len = strlen(s);
	if (write(fd, s, len) != (ssize_t)len) {
		close(fd);
		free(path);
		return NULL;
	}
	fchmod(fd, mode);
	close(fd);
	return path;
}

char *cs_test_read(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, used = 0;

	if (f == NULL)
		return NULL;
	for (;;) {
		if (used + 4096 + 1 > cap) {
			cap = (cap + 4096) * 2;
			char *n = realloc(buf, cap);
			if (n == NULL) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = n;
		}
		size_t r = fread(buf + used, 1, 4096, f);
		used += r;
		if (r == 0)
			break;
	}
	fclose(f);
	buf[used] = '\0';
	if (len != NULL)
		*len = used;
	return buf;
}

int cs_test_run(const char *cmdline, char **out)
{
	char *full;
	FILE *p;

	if (asprintf(&full, "%s 2>&1", cmdline) < 0)
		return -1;
	p = popen(full, "r");
	free(full);
	if (p == NULL)
		return -1;
	char *buf = NULL;
	size_t cap = 0, used = 0;
	for (;;) {
		if (used + 4097 > cap) {
			cap = (cap + 4097) * 2;
			buf = realloc(buf, cap);
			if (buf == NULL)
				break;
		}
		size_t r = fread(buf + used, 1, 4096, p);
		used += r;
		if (r == 0)
			break;
	}
	if (buf != NULL)
		buf[used] = '\0';
	int st = pclose(p);
	if (out != NULL)
		*out = buf;
	else
		free(buf);
	if (st < 0 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

char *cs_test_build_path(const char *rel)
{
	const char *b = getenv("CS_BUILD_DIR");
	char *p;

	if (b == NULL)
		b = ".";
	if (asprintf(&p, "%s/%s", b, rel) < 0)
		return NULL;
	return p;
}

char *cs_test_tmp;

void cs_test_tmp_setup(void)
{
	cs_test_tmp = cs_test_mkdtemp();
	ck_assert_ptr_nonnull(cs_test_tmp);
}

void cs_test_tmp_teardown(void)
{
	cs_test_rmrf(cs_test_tmp);
	free(cs_test_tmp);
}

int cs_test_listing(const char *dir, char *buf, size_t len)
{
	struct dirent **v;
	int n = scandir(dir, &v, NULL, alphasort);
	size_t off = 0;

	buf[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (strcmp(v[i]->d_name, ".") != 0 && strcmp(v[i]->d_name, "..") != 0)
			off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? " " : "",
						v[i]->d_name);
		free(v[i]);
	}
	if (n >= 0)
		free(v);
	return n;
}

char *cs_test_path(const char *fmt, ...)
{
	va_list ap;
	char *p;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&p, fmt, ap);
	va_end(ap);
	ck_assert_int_ge(n, 0);
	return p;
}

char *cs_test_mkpki(const char *more)
{
	const char *src = getenv("CS_SOURCE_DIR");
	char *dir = cs_test_mkdtemp(), *cmd;

	ck_assert_ptr_nonnull(dir);
	ck_assert_ptr_nonnull(src);
	cmd = cs_test_path("bash %s/tests/mkpki.sh %s/ec ec && bash %s/tests/mkpki.sh %s/rsa rsa"
			   "%s%s%s%s",
			   src, dir, src, dir, more ? " && cd " : "", more ? dir : "",
			   more ? "/ec && " : "", more ? more : "");
	ck_assert_int_eq(cs_test_run(cmd, NULL), 0);
	free(cmd);
	return dir;
}

X509 *cs_test_read_x509(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *x;

	ck_assert_ptr_nonnull(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	ck_assert_ptr_nonnull(x);
	fclose(f);
	return x;
}
