/*
 * check_capath - CApath hashing (cs_capath) against `openssl rehash`: on a
 * directory of 1,000 certificates with subject collisions (one subject past
 * openssl's 256 limit), duplicates, CRLs, junk files, stale links and a
 * regular file with a link's name, the links after a full pass are the ones
 * openssl rehash makes on a copy (names and targets). Incremental updates
 * (add, remove, replace, duplicate, CRL) leave the same buckets as a fresh
 * openssl rehash, touch only the buckets concerned, and never leave a gap
 * an OpenSSL lookup would stop at. Also: publish, the CAfile rewritten only
 * when the set changes, temporary links of killed writers swept, and
 * `certsyncctl rehash-dir`. A file that a full pass is told of while it
 * runs (poll) is linked at once, and the pass still ends as openssl rehash.
 *
 * Certificates are made here with one EC key (signing is cheap), not with
 * the openssl command, so that 1,000 of them take well under a second.
 */
#include "cs_capath.h"
#include "testutil.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char *tmp;
static EVP_PKEY *key;

static void setup(void)
{
	tmp = cs_test_mkdtemp();
	ck_assert_ptr_nonnull(tmp);
	key = EVP_EC_gen("P-256");
	ck_assert_ptr_nonnull(key);
}

static void teardown(void)
{
	cs_test_rmrf(tmp);
	free(tmp);
	EVP_PKEY_free(key);
}

static X509_NAME *mk_name(const char *cn)
{
	X509_NAME *n = X509_NAME_new();

	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"certsync test",
				   -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	return n;
}

/* A certificate for subject CN=cn with the given serial, signed by the test key. */
static X509 *mk_cert(const char *cn, long serial)
{
	X509 *x = X509_new();
	X509_NAME *sub = mk_name(cn), *iss = mk_name("Test CA");

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_set_subject_name(x, sub);
	X509_set_issuer_name(x, iss);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 30);
	X509_set_pubkey(x, key);
	ck_assert_int_gt(X509_sign(x, key, EVP_sha256()), 0);
	X509_NAME_free(sub);
	X509_NAME_free(iss);
	return x;
}

static X509_CRL *mk_crl(const char *issuer_cn, long num)
{
	X509_CRL *c = X509_CRL_new();
	X509_NAME *iss = mk_name(issuer_cn);
	ASN1_TIME *t = ASN1_TIME_new();

	X509_CRL_set_version(c, 1);
	X509_CRL_set_issuer_name(c, iss);
	X509_gmtime_adj(t, -num); /* a different lastUpdate makes a different CRL */
	X509_CRL_set1_lastUpdate(c, t);
	X509_gmtime_adj(t, 86400);
	X509_CRL_set1_nextUpdate(c, t);
	ck_assert_int_gt(X509_CRL_sign(c, key, EVP_sha256()), 0);
	X509_NAME_free(iss);
	ASN1_TIME_free(t);
	return c;
}

static char *path_in(const char *dir, const char *name)
{
	char *p;

	ck_assert_int_ge(asprintf(&p, "%s/%s", dir, name), 0);
	return p;
}

static void put_cert(const char *dir, const char *name, X509 *x)
{
	char *p = path_in(dir, name);
	FILE *fp = fopen(p, "w");

	ck_assert_ptr_nonnull(fp);
	ck_assert_int_eq(PEM_write_X509(fp, x), 1);
	fclose(fp);
	free(p);
}

static void put_new_cert(const char *dir, const char *name, const char *cn, long serial)
{
	X509 *x = mk_cert(cn, serial);

	put_cert(dir, name, x);
	X509_free(x);
}

static void put_crl(const char *dir, const char *name, X509_CRL *c)
{
	char *p = path_in(dir, name);
	FILE *fp = fopen(p, "w");

	ck_assert_ptr_nonnull(fp);
	ck_assert_int_eq(PEM_write_X509_CRL(fp, c), 1);
	fclose(fp);
	free(p);
}

static void put_text(const char *dir, const char *name, const char *s)
{
	free(cs_test_write(dir, name, s, 0644));
}

static void put_link(const char *dir, const char *name, const char *target)
{
	char *p = path_in(dir, name);

	ck_assert_int_eq(symlink(target, p), 0);
	free(p);
}

static void copy_file(const char *dir, const char *from, const char *to)
{
	char *a = path_in(dir, from), *b = path_in(dir, to), *data;
	size_t len;

	data = cs_test_read(a, &len);
	ck_assert_ptr_nonnull(data);
	free(cs_test_write(NULL, b, data, 0644));
	free(data);
	free(a);
	free(b);
}

static unsigned long subject_hash(const char *cn)
{
	X509_NAME *n = mk_name(cn);
	unsigned long h = X509_NAME_hash_ex(n, NULL, NULL, NULL);

	X509_NAME_free(n);
	return h;
}

static int line_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Every symbolic link of dir as sorted "name -> target" lines (bucket_only:
 * "HHHHHHHH.[r] target", the index left out), one malloc'd string.
 */
static char *links_of(const char *dir, int bucket_only)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **v = NULL, *out;
	size_t n = 0, len = 1, off = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL) {
		char *p = path_in(dir, de->d_name), target[4096], *line;
		struct stat st;
		ssize_t k;

		if (lstat(p, &st) == 0 && S_ISLNK(st.st_mode)) {
			k = readlink(p, target, sizeof(target) - 1);
			ck_assert_int_ge(k, 0);
			target[k] = '\0';
			if (bucket_only && cs_capath_name_is_link(de->d_name)) {
				char b[16];
				const char *dot = strchr(de->d_name, '.');

				snprintf(b, sizeof(b), "%.*s%s", (int)(dot - de->d_name + 1),
					 de->d_name, dot[1] == 'r' ? "r" : "");
				ck_assert_int_ge(asprintf(&line, "%s %s", b, target), 0);
			} else {
				ck_assert_int_ge(asprintf(&line, "%s -> %s", de->d_name, target), 0);
			}
			v = realloc(v, (n + 1) * sizeof(*v));
			v[n++] = line;
			len += strlen(line) + 1;
		}
		free(p);
	}
	closedir(d);
	qsort(v, n, sizeof(*v), line_cmp);
	out = malloc(len);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		off += (size_t)sprintf(out + off, "%s\n", v[i]);
		free(v[i]);
	}
	free(v);
	return out;
}

/* Fails at the first line where a and b differ, showing both. */
static void same_lines(const char *what, const char *a, const char *b)
{
	const char *pa = a, *pb = b;

	while (*pa != '\0' || *pb != '\0') {
		size_t la = strcspn(pa, "\n"), lb = strcspn(pb, "\n");

		ck_assert_msg(la == lb && strncmp(pa, pb, la) == 0,
			      "%s: first difference: certsync '%.*s' vs openssl '%.*s'", what,
			      (int)la, pa, (int)lb, pb);
		pa += la + (pa[la] != '\0');
		pb += lb + (pb[lb] != '\0');
	}
}

/* Every bucket's links are indices 0..n-1 with no gap. */
static void assert_no_gaps(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL) {
		char *dot, *p, prev[64];
		struct stat st;
		long id;

		if (!cs_capath_name_is_link(de->d_name))
			continue;
		dot = strchr(de->d_name, '.');
		id = strtol(dot + 1 + (dot[1] == 'r'), NULL, 10);
		if (id == 0)
			continue;
		snprintf(prev, sizeof(prev), "%.*s%ld", (int)(dot - de->d_name + 1 + (dot[1] == 'r')),
			 de->d_name, id - 1);
		p = path_in(dir, prev);
		ck_assert_msg(lstat(p, &st) == 0, "%s exists but %s does not", de->d_name, prev);
		ck_assert_msg(stat(p, &st) == 0, "%s is dangling", prev);
		free(p);
	}
	closedir(d);
}

static void copy_dir(const char *from, const char *to)
{
	char *cmd;

	ck_assert_int_ge(asprintf(&cmd, "cp -a '%s' '%s'", from, to), 0);
	ck_assert_int_eq(cs_test_run(cmd, NULL), 0);
	free(cmd);
}

static void openssl_rehash(const char *dir)
{
	char *cmd, *out = NULL;

	ck_assert_int_ge(asprintf(&cmd, "openssl rehash '%s' 2>&1", dir), 0);
	cs_test_run(cmd, &out); /* exits 1 on files it counts as errors; links are made anyway */
	free(out);
	free(cmd);
}

static void rm_links(const char *dir)
{
	char *cmd;

	ck_assert_int_ge(asprintf(&cmd, "find '%s' -maxdepth 1 -type l -name '????????.*' -delete",
				  dir), 0);
	ck_assert_int_eq(cs_test_run(cmd, NULL), 0);
	free(cmd);
}

/* ---- the 1,000-certificate directory ---- */

/*
 * Fills dir with: 1,000 certificates (300 on one subject, past openssl's
 * 256-per-bucket limit; 20 subjects of 20; 300 single ones), 40 duplicates
 * under other names and extensions, 12 CRLs (two issuers sharing a bucket,
 * one duplicate), junk (text, empty, two-certificate and key-only files, DER,
 * a directory named *.pem, a file without extension), a non-hash symlink to
 * a certificate, a regular file named like a link, and stale links.
 */
static void fill_big(const char *dir)
{
	char name[64], cn[64];
	long serial = 1;

	for (int i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "crowd-%03d.pem", i);
		put_new_cert(dir, name, "crowd", serial++);
	}
	for (int g = 0; g < 20; g++)
		for (int i = 0; i < 20; i++) {
			snprintf(name, sizeof(name), "g%02d-%02d.%s", g, i, i % 3 == 0 ? "crt" : "pem");
			snprintf(cn, sizeof(cn), "group %d", g);
			put_new_cert(dir, name, cn, serial++);
		}
	for (int i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "single-%03d.%s", i, i % 10 == 0 ? "CER" : "pem");
		snprintf(cn, sizeof(cn), "single %d", i);
		put_new_cert(dir, name, cn, serial++);
	}
	for (int i = 0; i < 40; i++) {
		char from[64];

		if (i % 2 == 0)
			snprintf(from, sizeof(from), "g%02d-%02d.%s", i % 20, i / 2,
				 (i / 2) % 3 == 0 ? "crt" : "pem");
		else
			snprintf(from, sizeof(from), "single-%03d.%s", i * 7, (i * 7) % 10 == 0 ? "CER" : "pem");
		/* Some sort before their original ("a-"), some after ("z-"). */
		snprintf(name, sizeof(name), "%s-dup-%02d.Pem", i % 4 < 2 ? "a" : "z", i);
		copy_file(dir, from, name);
	}
	for (int i = 0; i < 12; i++) {
		X509_CRL *c = mk_crl(i % 2 ? "group 1" : "Test CA", 100 + i);

		snprintf(name, sizeof(name), "list-%02d.crl", i);
		put_crl(dir, name, c);
		X509_CRL_free(c);
	}
	copy_file(dir, "list-03.crl", "list-dup.CRL");
	/* Junk. */
	put_text(dir, "junk.pem", "not a certificate\n");
	put_text(dir, "empty.crt", "");
	put_text(dir, "broken.pem", "-----BEGIN CERTIFICATE-----\nAAAA!!!\n-----END CERTIFICATE-----\n");
	{
		char *a = path_in(dir, "single-001.pem"), *b = path_in(dir, "single-002.pem"), *cmd;

		ck_assert_int_ge(asprintf(&cmd, "cat '%s' '%s' > '%s/two.pem' && "
					  "openssl x509 -in '%s' -outform DER -out '%s/der.cer' && "
					  "openssl genpkey -algorithm ed25519 -out '%s/key.pem' && "
					  "cp '%s' '%s/noext'",
					  a, b, dir, a, dir, dir, a, dir), 0);
		ck_assert_int_eq(cs_test_run(cmd, NULL), 0);
		free(cmd);
		free(a);
		free(b);
	}
	{
		char *p = path_in(dir, "adir.pem");

		ck_assert_int_eq(mkdir(p, 0755), 0);
		free(p);
	}
	put_link(dir, "alias.pem", "single-005.pem");
	put_text(dir, "0badc0de.0", "a regular file with a link's name\n");
	/* Stale links: dangling, wrong hash, absolute, past a bucket's count, to junk. */
	put_link(dir, "deadbeef.0", "gone.pem");
	put_link(dir, "0000abcd.r3", "gone.crl");
	put_link(dir, "12345678.0", "single-010.CER");
	snprintf(name, sizeof(name), "%08lx.1", subject_hash("single 20"));
	put_link(dir, name, "/etc/passwd");
	snprintf(name, sizeof(name), "%08lx.25", subject_hash("group 3"));
	put_link(dir, name, "junk.pem");
	/* A right link with a kept index, and a right target past the count. */
	snprintf(name, sizeof(name), "%08lx.3", subject_hash("group 4"));
	put_link(dir, name, "g04-05.pem");
	snprintf(name, sizeof(name), "%08lx.1", subject_hash("group 4"));
	put_link(dir, name, "g04-17.pem");
}

START_TEST(test_capath_full_matches_openssl)
{
	char *a = path_in(tmp, "a"), *b = path_in(tmp, "b"), *la, *lb, *gone;
	struct cs_capath_stats st;
	char err[512];
	struct stat sst;

	ck_assert_int_eq(mkdir(a, 0755), 0);
	fill_big(a);
	copy_dir(a, b);
	ck_assert_int_eq(cs_capath_rehash(a, NULL, &st, err, sizeof(err)), -EIO); /* key.pem */
	openssl_rehash(b);
	la = links_of(a, 0);
	lb = links_of(b, 0);
	same_lines("links after a full pass", la, lb);
	/* 300 crowd (256 linked) + 400 groups + 300 singles; 12 CRLs and a duplicate. */
	ck_assert_uint_eq(st.certs, 256 + 400 + 300);
	ck_assert_uint_eq(st.crls, 12);
	ck_assert_ptr_nonnull(strstr(la, ".255 -> crowd-255.pem"));
	ck_assert_ptr_null(strstr(la, ".256 -> "));
	gone = path_in(a, "0badc0de.0");
	ck_assert_int_eq(lstat(gone, &sst), 0);
	ck_assert(S_ISREG(sst.st_mode));
	assert_no_gaps(a);
	/* A second pass changes nothing. */
	ck_assert_int_eq(cs_capath_rehash(a, NULL, &st, err, sizeof(err)), -EIO);
	ck_assert_uint_eq(st.linked, 0);
	ck_assert_uint_eq(st.unlinked, 0);
	free(la);
	la = links_of(a, 0);
	same_lines("links after a second pass", la, lb);
	free(la);
	free(lb);
	free(gone);
	free(a);
	free(b);
}
END_TEST

/* ---- incremental ---- */

struct touched {
	char names[64][32];
	int n;
};

static void record(void *arg, enum cs_capath_event ev, const char *name, const char *detail)
{
	struct touched *t = arg;

	(void)detail;
	if ((ev == CS_CAPATH_LINKED || ev == CS_CAPATH_UNLINKED) && t->n < 64)
		snprintf(t->names[t->n++], sizeof(t->names[0]), "%s", name);
}

/* Every link touched is in bucket hash (of a certificate), or of the CRL bucket when crl. */
static void touched_only(const struct touched *t, unsigned long h1, unsigned long h2)
{
	char p1[16], p2[16];

	snprintf(p1, sizeof(p1), "%08lx.", h1);
	snprintf(p2, sizeof(p2), "%08lx.", h2);
	for (int i = 0; i < t->n; i++)
		ck_assert_msg(strncmp(t->names[i], p1, 9) == 0 || strncmp(t->names[i], p2, 9) == 0,
			      "link %s touched, not in bucket %s or %s", t->names[i], p1, p2);
}

/* The buckets of dir equal those a fresh openssl rehash makes on a copy without links. */
static void same_as_fresh_openssl(const char *dir, const char *what)
{
	char *ref = path_in(tmp, "ref"), *la, *lb;

	cs_test_rmrf(ref);
	copy_dir(dir, ref);
	rm_links(ref);
	openssl_rehash(ref);
	la = links_of(dir, 1);
	lb = links_of(ref, 1);
	same_lines(what, la, lb);
	assert_no_gaps(dir);
	free(la);
	free(lb);
	free(ref);
}

static int update(cs_capath *cp, const char *name)
{
	char err[512];
	struct cs_capath_stats st;
	int rc = cs_capath_update(cp, name, &st, err, sizeof(err));

	ck_assert_msg(rc == 0, "update %s: %s", name, err);
	return (int)(st.linked + st.unlinked);
}

START_TEST(test_capath_incremental)
{
	char *a = path_in(tmp, "a"), name[64], cn[64], err[512], *p;
	struct touched t = { .n = 0 };
	struct cs_capath_opts o = { .report = record, .report_arg = &t };
	cs_capath *cp;
	long serial = 1;
	unsigned long hs = subject_hash("same"), h7 = subject_hash("single 7");

	ck_assert_int_eq(mkdir(a, 0755), 0);
	for (int i = 0; i < 6; i++) {
		snprintf(name, sizeof(name), "same-%d.pem", i);
		put_new_cert(a, name, "same", serial++);
	}
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "single-%03d.pem", i);
		snprintf(cn, sizeof(cn), "single %d", i);
		put_new_cert(a, name, cn, serial++);
	}
	cp = cs_capath_new(a, &o, err, sizeof(err));
	ck_assert_ptr_nonnull(cp);
	ck_assert_int_eq(cs_capath_full(cp, NULL, err, sizeof(err)), 0);
	same_as_fresh_openssl(a, "after the full pass");

	/* Added to a full bucket. */
	t.n = 0;
	put_new_cert(a, "same-new.pem", "same", serial++);
	ck_assert_int_eq(update(cp, "same-new.pem"), 1);
	touched_only(&t, hs, hs);
	same_as_fresh_openssl(a, "after adding same-new.pem");

	/* Removed from the middle of a bucket: the last link moves into the hole. */
	t.n = 0;
	p = path_in(a, "same-2.pem");
	unlink(p);
	free(p);
	update(cp, "same-2.pem");
	touched_only(&t, hs, hs);
	same_as_fresh_openssl(a, "after removing same-2.pem");

	/* Replaced by a certificate of another subject: both buckets change. */
	t.n = 0;
	put_new_cert(a, "same-3.pem", "single 7", serial++);
	update(cp, "same-3.pem");
	touched_only(&t, hs, h7);
	same_as_fresh_openssl(a, "after replacing same-3.pem");

	/* A duplicate that sorts first takes over the link; its removal gives it back. */
	t.n = 0;
	copy_file(a, "single-050.pem", "a-dup.pem");
	update(cp, "a-dup.pem");
	same_as_fresh_openssl(a, "after adding a-dup.pem");
	p = path_in(a, "a-dup.pem");
	unlink(p);
	free(p);
	update(cp, "a-dup.pem");
	same_as_fresh_openssl(a, "after removing a-dup.pem");

	/* A CRL, then junk in its place. */
	{
		X509_CRL *c = mk_crl("same", 5);

		put_crl(a, "same.crl", c);
		X509_CRL_free(c);
	}
	t.n = 0;
	ck_assert_int_eq(update(cp, "same.crl"), 1);
	ck_assert_str_eq(t.names[0], (snprintf(name, sizeof(name), "%08lx.r0", hs), name));
	put_text(a, "same.crl", "junk\n");
	update(cp, "same.crl");
	same_as_fresh_openssl(a, "after same.crl became junk");

	/* A link removed by hand is put back; names of other kinds are ignored. */
	snprintf(name, sizeof(name), "%08lx.0", hs);
	p = path_in(a, name);
	unlink(p);
	free(p);
	ck_assert_int_eq(update(cp, name), 1);
	ck_assert_int_eq(update(cp, "notes.txt"), 0);
	same_as_fresh_openssl(a, "after a link was removed by hand");
	cs_capath_free(cp);
	free(a);
}
END_TEST

/*
 * Where openssl rehash 3.0 leaves a dangling link in the middle of a bucket
 * (b removed, c added with the same subject), certsync gives the index to c
 * and an OpenSSL lookup finds a and c.
 */
START_TEST(test_capath_no_gap_for_lookups)
{
	char *a = path_in(tmp, "a"), err[512], *p;
	cs_capath *cp;
	X509 *xa = mk_cert("same", 1), *xb = mk_cert("same", 2), *xc = mk_cert("same", 3);
	X509_STORE *store;
	X509_STORE_CTX *ctx;
	STACK_OF(X509) *found;
	X509_NAME *nm = mk_name("same");

	ck_assert_int_eq(mkdir(a, 0755), 0);
	put_cert(a, "a.pem", xa);
	put_cert(a, "b.pem", xb);
	cp = cs_capath_new(a, NULL, err, sizeof(err));
	ck_assert_int_eq(cs_capath_full(cp, NULL, err, sizeof(err)), 0);
	p = path_in(a, "b.pem");
	unlink(p);
	free(p);
	update(cp, "b.pem");
	put_cert(a, "c.pem", xc);
	update(cp, "c.pem");
	assert_no_gaps(a);

	store = X509_STORE_new();
	ck_assert_int_eq(X509_STORE_load_path(store, a), 1);
	ctx = X509_STORE_CTX_new();
	X509_STORE_CTX_init(ctx, store, NULL, NULL);
	found = X509_STORE_CTX_get1_certs(ctx, nm);
	ck_assert_ptr_nonnull(found);
	ck_assert_int_eq(sk_X509_num(found), 2);
	ck_assert(X509_cmp(sk_X509_value(found, 0), xc) == 0 ||
		  X509_cmp(sk_X509_value(found, 1), xc) == 0);
	sk_X509_pop_free(found, X509_free);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	X509_NAME_free(nm);
	X509_free(xa);
	X509_free(xb);
	X509_free(xc);
	cs_capath_free(cp);
	free(a);
}
END_TEST

/* A regular file with a link's name keeps its name and bytes; the bucket goes around it. */
START_TEST(test_capath_regular_files_untouched)
{
	char *a = path_in(tmp, "a"), err[512], name[64], *p, *data, *l;
	cs_capath *cp;
	size_t len;

	ck_assert_int_eq(mkdir(a, 0755), 0);
	put_new_cert(a, "x.pem", "blocked", 1);
	put_new_cert(a, "y.pem", "blocked", 2);
	snprintf(name, sizeof(name), "%08lx.0", subject_hash("blocked"));
	put_text(a, name, "mine\n");
	cp = cs_capath_new(a, NULL, err, sizeof(err));
	ck_assert_int_eq(cs_capath_full(cp, NULL, err, sizeof(err)), 0);
	p = path_in(a, name);
	data = cs_test_read(p, &len);
	ck_assert_str_eq(data, "mine\n");
	l = links_of(a, 0);
	snprintf(name, sizeof(name), "%08lx.1 -> x.pem\n%08lx.2 -> y.pem\n",
		 subject_hash("blocked"), subject_hash("blocked"));
	ck_assert_str_eq(l, name);
	free(l);
	free(data);
	free(p);
	cs_capath_free(cp);
	free(a);
}
END_TEST

/* Publish writes NAME once, links it, and the CAfile follows the set of certificates. */
START_TEST(test_capath_publish_and_cafile)
{
	char *a = path_in(tmp, "a"), *caf = path_in(tmp, "CAcert.pem"), err[512], *data, *p;
	struct cs_capath_opts o = { .cafile = caf };
	struct cs_capath_stats st;
	cs_capath *cp;
	X509 *ca = mk_cert("Local CA", 77);
	X509_CRL *crl = mk_crl("Local CA", 1);
	struct stat s1, s2;
	size_t len;

	ck_assert_int_eq(mkdir(a, 0755), 0);
	put_new_cert(a, "one.pem", "one", 1);
	cp = cs_capath_new(a, &o, err, sizeof(err));
	ck_assert_int_eq(cs_capath_full(cp, &st, err, sizeof(err)), 0);
	ck_assert_int_eq(st.cafile_written, 1);
	ck_assert_int_eq(stat(caf, &s1), 0);

	ck_assert_int_eq(cs_capath_publish(cp, "local-ca.pem", ca, NULL, &st, err, sizeof(err)), 0);
	ck_assert_uint_eq(st.linked, 1);
	ck_assert_int_eq(st.cafile_written, 1);
	ck_assert_int_eq(cs_capath_publish(cp, "local-ca.crl", NULL, crl, &st, err, sizeof(err)), 0);
	ck_assert_uint_eq(st.linked, 1);
	ck_assert_int_eq(st.cafile_written, 0); /* a CRL does not change the bundle */
	data = cs_test_read(caf, &len);
	ck_assert_int_eq(cs_test_run("true", NULL), 0);
	{
		/* The bundle is one.pem's and local-ca.pem's certificates, in name order. */
		BIO *bio = BIO_new_mem_buf(data, (int)len);
		X509 *x1 = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		X509 *x2 = PEM_read_bio_X509(bio, NULL, NULL, NULL);

		ck_assert_ptr_nonnull(x1);
		ck_assert_ptr_nonnull(x2);
		ck_assert_int_eq(X509_cmp(x1, ca), 0);
		ck_assert_ptr_null(PEM_read_bio_X509(bio, NULL, NULL, NULL));
		X509_free(x1);
		X509_free(x2);
		BIO_free(bio);
	}
	free(data);
	ck_assert_int_eq(stat(caf, &s1), 0);
	/* Publishing the same again, and a full pass, leave the CAfile alone. */
	ck_assert_int_eq(cs_capath_publish(cp, "local-ca.pem", ca, NULL, &st, err, sizeof(err)), 0);
	ck_assert_uint_eq(st.linked, 0);
	ck_assert_int_eq(cs_capath_full(cp, &st, err, sizeof(err)), 0);
	ck_assert_int_eq(st.cafile_written, 0);
	ck_assert_int_eq(stat(caf, &s2), 0);
	ck_assert_uint_eq(s1.st_ino, s2.st_ino);
	/* A duplicate does not change the set; a removal does. */
	copy_file(a, "one.pem", "one-copy.pem");
	ck_assert_int_eq(cs_capath_update(cp, "one-copy.pem", &st, err, sizeof(err)), 0);
	ck_assert_int_eq(st.cafile_written, 0);
	p = path_in(a, "one.pem");
	unlink(p);
	free(p);
	ck_assert_int_eq(cs_capath_update(cp, "one.pem", &st, err, sizeof(err)), 0);
	ck_assert_uint_eq(st.certs, 2);
	ck_assert_int_eq(cs_capath_publish(cp, "../x.pem", ca, NULL, &st, err, sizeof(err)), -EINVAL);
	X509_free(ca);
	X509_CRL_free(crl);
	cs_capath_free(cp);
	free(caf);
	free(a);
}
END_TEST

/*
 * A second pass takes hash and fingerprint of unchanged files from the cache
 * (the CAfile still gets their certificates); a file changed in place, and
 * a cache that is garbage, cost a re-read, never a wrong link.
 */
START_TEST(test_capath_cache)
{
	char *a = path_in(tmp, "a"), *cache = path_in(tmp, "capath.cache"),
	     *caf = path_in(tmp, "CAfile.pem"), err[512], want[256], *l, *data;
	struct cs_capath_opts o = { .cache = cache, .cafile = caf };
	struct cs_capath_stats st;
	cs_capath *cp;
	size_t len;

	ck_assert_int_eq(mkdir(a, 0755), 0);
	put_new_cert(a, "one.pem", "one", 1);
	put_new_cert(a, "two.pem", "two", 2);
	sleep(3); /* older than the cache's window for files changed while it is written */
	cp = cs_capath_new(a, &o, err, sizeof(err));
	ck_assert_int_eq(cs_capath_full(cp, &st, err, sizeof(err)), 0);
	ck_assert_uint_eq(st.linked, 2);
	data = cs_test_read(cache, &len);
	ck_assert_ptr_nonnull(strstr(data, " one.pem\n"));
	ck_assert_ptr_nonnull(strstr(data, " two.pem\n"));
	free(data);
	cs_capath_free(cp);

	/* From the cache: the same links, and the CAfile rebuilt from the files. */
	unlink(caf);
	cp = cs_capath_new(a, &o, err, sizeof(err));
	ck_assert_int_eq(cs_capath_full(cp, &st, err, sizeof(err)), 0);
	ck_assert_uint_eq(st.linked, 0);
	ck_assert_uint_eq(st.certs, 2);
	ck_assert_int_eq(st.cafile_written, 1);
	data = cs_test_read(caf, &len);
	ck_assert_ptr_nonnull(strstr(strstr(data, "BEGIN CERTIFICATE") + 1, "BEGIN CERTIFICATE"));
	free(data);

	/* two.pem now holds another subject (same size): its key changed. */
	put_new_cert(a, "two.pem", "owt", 3);
	ck_assert_int_eq(cs_capath_full(cp, &st, err, sizeof(err)), 0);
	l = links_of(a, 0);
	snprintf(want, sizeof(want), "%08lx.0 -> one.pem\n%08lx.0 -> two.pem\n",
		 subject_hash("one"), subject_hash("owt"));
	if (subject_hash("owt") < subject_hash("one"))
		snprintf(want, sizeof(want), "%08lx.0 -> two.pem\n%08lx.0 -> one.pem\n",
			 subject_hash("owt"), subject_hash("one"));
	ck_assert_str_eq(l, want);
	free(l);
	cs_capath_free(cp);

	/* Garbage in the cache is ignored. */
	put_text(tmp, "capath.cache", "certsync-capath-cache 1 /elsewhere\n0 0 0 0 0 c 0 x y\n");
	cp = cs_capath_new(a, &o, err, sizeof(err));
	ck_assert_int_eq(cs_capath_full(cp, &st, err, sizeof(err)), 0);
	ck_assert_uint_eq(st.linked, 0);
	ck_assert_uint_eq(st.certs, 2);
	cs_capath_free(cp);
	free(caf);
	free(cache);
	free(a);
}
END_TEST

/* ---- files named by the poll callback while a full pass runs ---- */

enum drop_kind { DROP_NEW, DROP_LAST_IN_BUCKET, DROP_DUP_FIRST, DROP_REMOVE, DROP_REPLACE };

static const struct drop_case {
	enum drop_kind kind;
	const char *name; /* the file the poll names */
	int hashed;       /* the directory was hashed before the pass */
	int early;        /* its link is the pass's first */
} drop_cases[] = {
	{ DROP_NEW, "new.pem", 0, 1 },
	{ DROP_LAST_IN_BUCKET, "z-shared.pem", 0, 1 },
	{ DROP_DUP_FIRST, "a-dup.pem", 0, 1 },
	{ DROP_REMOVE, "s-100.pem", 0, 0 },
	{ DROP_REPLACE, "s-101.pem", 0, 1 },
	{ DROP_NEW, "new.pem", 1, 1 },
	{ DROP_LAST_IN_BUCKET, "z-shared.pem", 1, 1 },
	{ DROP_DUP_FIRST, "a-dup.pem", 1, 0 },
	{ DROP_REMOVE, "s-100.pem", 1, 0 },
	{ DROP_REPLACE, "s-101.pem", 1, 1 },
};

struct dropper {
	const struct drop_case *c;
	const char *dir;
	int calls;
	int given;
	char first_linked[64]; /* target of the pass's first link */
	int linked_before_end; /* the dropped file got a link during the pass */
};

static void drop_apply(const struct drop_case *c, const char *dir)
{
	char *p;

	switch (c->kind) {
	case DROP_NEW:
		put_new_cert(dir, c->name, "dropped in", 9001);
		break;
	case DROP_LAST_IN_BUCKET:
		put_new_cert(dir, c->name, "shared", 9002);
		break;
	case DROP_DUP_FIRST:
		copy_file(dir, "s-050.pem", c->name);
		break;
	case DROP_REMOVE:
		p = path_in(dir, c->name);
		ck_assert_int_eq(unlink(p), 0);
		free(p);
		break;
	case DROP_REPLACE:
		put_new_cert(dir, c->name, "replaced", 9003);
		break;
	}
}

static int drop_poll(void *arg, char *name, size_t len)
{
	struct dropper *d = arg;

	/* The third call: 64 files read, a few hundred to go. */
	if (++d->calls != 3 || d->given)
		return 0;
	drop_apply(d->c, d->dir);
	d->given = 1;
	snprintf(name, len, "%s", d->c->name);
	return 1;
}

static void drop_report(void *arg, enum cs_capath_event ev, const char *name, const char *detail)
{
	struct dropper *d = arg;

	(void)name;
	if (ev != CS_CAPATH_LINKED)
		return;
	if (d->first_linked[0] == '\0')
		snprintf(d->first_linked, sizeof(d->first_linked), "%s", detail);
	if (strcmp(detail, d->c->name) == 0)
		d->linked_before_end = 1;
}

/*
 * A file created, changed or removed while a full pass runs, named by the
 * poll callback after 64 files were read: a new certificate is linked at
 * once (the pass's first link), and the links at the end are those openssl
 * rehash makes on the directory as it was when the pass began with the
 * change made. Also on a directory hashed before, where only the changed
 * bucket moves.
 */
START_TEST(test_capath_poll_during_full_pass)
{
	const struct drop_case *c = &drop_cases[_i];
	char *a = path_in(tmp, "a"), *ref = path_in(tmp, "want"), name[64], cn[64], err[512];
	char *la, *lb;
	struct dropper d = { .c = c, .dir = a };
	struct cs_capath_opts o = { .report = drop_report, .report_arg = &d, .poll = drop_poll };
	cs_capath *cp;

	ck_assert_int_eq(mkdir(a, 0755), 0);
	for (int i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "s-%03d.pem", i);
		snprintf(cn, sizeof(cn), i % 10 == 0 ? "shared" : "single %d", i);
		put_new_cert(a, name, cn, i + 1);
	}
	if (c->hashed)
		ck_assert_int_eq(cs_capath_rehash(a, NULL, NULL, err, sizeof(err)), 0);
	/*
	 * The reference: the directory as the pass found it, changed. Where it
	 * was hashed, openssl rehash keeps the dangling and doubled links
	 * certsync fixes (see cs_capath.h): there the reference is a pass
	 * without the poll, and the buckets are compared with a fresh openssl
	 * rehash below.
	 */
	copy_dir(a, ref);
	drop_apply(c, ref);
	if (c->hashed)
		cs_capath_rehash(ref, NULL, NULL, err, sizeof(err));
	else
		openssl_rehash(ref);

	cp = cs_capath_new(a, &o, err, sizeof(err));
	ck_assert_ptr_nonnull(cp);
	ck_assert_msg(cs_capath_full(cp, NULL, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(d.given, 1);
	if (c->early) {
		ck_assert_int_eq(d.linked_before_end, 1);
		ck_assert_str_eq(d.first_linked, c->name);
	}
	la = links_of(a, 0);
	lb = links_of(ref, 0);
	same_lines("links after a pass with a file named by the poll", la, lb);
	assert_no_gaps(a);
	if (c->hashed)
		same_as_fresh_openssl(a, "buckets after a pass with a file named by the poll");
	free(la);
	free(lb);
	cs_capath_free(cp);
	free(ref);
	free(a);
}
END_TEST

/* Temporary links of a killed writer go at the next full pass; a live writer's stay. */
START_TEST(test_capath_sweeps_dead_writers_links)
{
	char *a = path_in(tmp, "a"), err[512], dead[64], live[64], *p;
	pid_t pid = fork();
	struct stat st;

	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(0);
	waitpid(pid, NULL, 0);
	ck_assert_int_eq(mkdir(a, 0755), 0);
	put_new_cert(a, "one.pem", "one", 1);
	snprintf(dead, sizeof(dead), ".%08lx.0.%ld.7.tmp", subject_hash("one"), (long)pid);
	snprintf(live, sizeof(live), ".%08lx.0.%ld.7.tmp", subject_hash("one"), (long)getppid());
	put_link(a, dead, "one.pem");
	put_link(a, live, "one.pem");
	ck_assert_int_eq(cs_capath_rehash(a, NULL, NULL, err, sizeof(err)), 0);
	p = path_in(a, dead);
	ck_assert_int_ne(lstat(p, &st), 0);
	free(p);
	p = path_in(a, live);
	ck_assert_int_eq(lstat(p, &st), 0);
	free(p);
	free(a);
}
END_TEST

START_TEST(test_capath_ctl_rehash_dir)
{
	char *a = path_in(tmp, "a"), *ctl = cs_test_build_path("agent/certsyncctl"), *cmd, *out;

	ck_assert_int_eq(mkdir(a, 0755), 0);
	put_new_cert(a, "one.pem", "one", 1);
	put_text(a, "junk.pem", "junk\n");
	put_link(a, "deadbeef.0", "gone.pem");
	ck_assert_int_ge(asprintf(&cmd, "'%s' rehash-dir '%s' 2>&1", ctl, a), 0);
	ck_assert_int_eq(cs_test_run(cmd, &out), 0);
	ck_assert_msg(strstr(out, "skip junk.pem: does not contain exactly one certificate or CRL"),
		      "%s", out);
	ck_assert_msg(strstr(out, "unlink deadbeef.0 (was -> gone.pem)"), "%s", out);
	ck_assert_msg(strstr(out, ".0 -> one.pem"), "%s", out);
	free(out);
	free(cmd);
	ck_assert_int_ge(asprintf(&cmd, "'%s' rehash-dir '%s/nope' 2>&1", ctl, tmp), 0);
	ck_assert_int_eq(cs_test_run(cmd, &out), 1);
	ck_assert_msg(strstr(out, "nope: No such file or directory"), "%s", out);
	free(out);
	free(cmd);
	free(ctl);
	free(a);
}
END_TEST

Suite *capath_suite(void)
{
	Suite *s = suite_create("capath");
	TCase *tc = tcase_create("capath");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_capath_full_matches_openssl);
	tcase_add_test(tc, test_capath_incremental);
	tcase_add_test(tc, test_capath_no_gap_for_lookups);
	tcase_add_test(tc, test_capath_regular_files_untouched);
	tcase_add_test(tc, test_capath_publish_and_cafile);
	tcase_add_test(tc, test_capath_cache);
	tcase_add_test(tc, test_capath_sweeps_dead_writers_links);
	tcase_add_test(tc, test_capath_ctl_rehash_dir);
	cs_test_add_loop(tc, test_capath_poll_during_full_pass, drop_cases);
	suite_add_tcase(s, tc);
	return s;
}
