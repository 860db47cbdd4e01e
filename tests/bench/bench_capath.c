/*
 * bench_capath - CApath hashing on a large directory, run by hand:
 *
 *   build/tests/bench/bench_capath [N] [--keep]   (N certificates, default 10000)
 *
 * Makes N certificates (one EC key; every tenth subject shared by 10
 * certificates, so buckets with collisions exist) and 100 CRLs (ten issuers)
 * in a temp directory and a copy of it, then reports in one run: a full pass
 * of cs_capath next to `openssl rehash` on the copy (both on a directory
 * without links and without certsync's cache, then both again on their
 * already hashed directory, certsync with the cache its first pass wrote;
 * medians of 3 runs, wall and CPU time), the floor of a pass (floor_hash.c
 * of ../shared/floors, the same work done here in-process), whether the two
 * link sets are identical, and the time of one incremental update for a file
 * added, replaced and removed. With each first pass, on a fourth copy, the
 * same first pass (no cache) with a file dropped in once a third of the
 * files are read, as the agent sees it: a second thread writes it and hands its
 * name to the pass (cs_capath's poll, which the agent feeds from inotify);
 * reported: the time from the drop to its link, next to that pass's total
 * time and the time the pass still had to run (what the file waited
 * before), and whether the links equal openssl rehash's with the file. The
 * temp directories are removed at the end unless --keep is given.
 */
#include "cs_capath.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static EVP_PKEY *key;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void put_cert(const char *dir, const char *name, const char *cn, long serial)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	char path[4096];
	FILE *fp;

	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_set_subject_name(x, n);
	X509_set_issuer_name(x, n);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	X509_sign(x, key, EVP_sha256());
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "w");
	if (fp == NULL) {
		perror(path);
		exit(1);
	}
	PEM_write_X509(fp, x);
	fclose(fp);
	X509_NAME_free(n);
	X509_free(x);
}

static void put_crl(const char *dir, const char *name, const char *cn, long number)
{
	X509_CRL *crl = X509_CRL_new();
	X509_NAME *n = X509_NAME_new();
	ASN1_TIME *t = ASN1_TIME_new();
	char path[4300];
	FILE *fp;

	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_CRL_set_version(crl, 1);
	X509_CRL_set_issuer_name(crl, n);
	X509_gmtime_adj(t, 0);
	X509_CRL_set1_lastUpdate(crl, t);
	X509_gmtime_adj(t, 86400);
	X509_CRL_set1_nextUpdate(crl, t);
	for (long i = 0; i < 10; i++) {
		X509_REVOKED *r = X509_REVOKED_new();
		ASN1_INTEGER *sn = ASN1_INTEGER_new();

		ASN1_INTEGER_set(sn, number * 100 + i);
		X509_REVOKED_set_serialNumber(r, sn);
		X509_gmtime_adj(t, 0);
		X509_REVOKED_set_revocationDate(r, t);
		X509_CRL_add0_revoked(crl, r);
		ASN1_INTEGER_free(sn);
	}
	X509_CRL_sort(crl);
	X509_CRL_sign(crl, key, EVP_sha256());
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "w");
	if (fp == NULL) {
		perror(path);
		exit(1);
	}
	PEM_write_X509_CRL(fp, crl);
	fclose(fp);
	ASN1_TIME_free(t);
	X509_NAME_free(n);
	X509_CRL_free(crl);
}

/* Steps over one DER element; returns its end (content in *inner when asked). */
static const unsigned char *skip(const unsigned char *p, long max, const unsigned char **inner,
				 long *ilen)
{
	long len;
	int tag, cls;
	const unsigned char *q = p;
	int r = ASN1_get_object(&q, &len, &tag, &cls, max);

	if (r & 0x80)
		return NULL;
	if (inner) {
		*inner = q;
		*ilen = len;
	}
	return q + len;
}

/*
 * The floor of a pass over an already hashed directory, as floor_hash.c in
 * ../shared/floors: readdir, read each .pem and .crl file, PEM to DER, SHA-1 of the
 * DER, decode only the subject (issuer of a CRL), its name hash, readlink
 * every link. No public-key decode, no writes. Returns the files read.
 */
static int floor_pass(const char *dir)
{
	DIR *d = opendir(dir);
	int dfd = dirfd(d), n = 0;
	struct dirent *de;
	unsigned long acc = 0;
	char tgt[4096];

	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);

		if (de->d_type == DT_LNK) {
			if (readlinkat(dfd, de->d_name, tgt, sizeof(tgt)) < 0)
				continue;
			continue;
		}
		if (l < 5)
			continue;
		int crl = strcmp(de->d_name + l - 4, ".crl") == 0;

		if (!crl && strcmp(de->d_name + l - 4, ".pem") != 0)
			continue;
		int fd = openat(dfd, de->d_name, O_RDONLY);
		char buf[16384];
		ssize_t r = read(fd, buf, sizeof(buf));

		close(fd);
		BIO *b = BIO_new_mem_buf(buf, (int)r);
		char *nm = NULL, *hd = NULL;
		unsigned char *der = NULL, md[20];
		const unsigned char *tbs = NULL, *p = NULL, *end, *q;
		long dl, tl = 0;

		if (!PEM_read_bio(b, &nm, &hd, &der, &dl)) {
			BIO_free(b);
			continue;
		}
		EVP_Digest(der, (size_t)dl, md, NULL, EVP_sha1(), NULL);
		skip(der, dl, &p, &tl);
		skip(p, tl, &tbs, &tl);
		end = tbs + tl;
		p = tbs;
		if (crl) {
			if (*p == 0x02)
				p = skip(p, end - p, 0, 0);
			p = skip(p, end - p, 0, 0);
		} else {
			if (*p == 0xa0)
				p = skip(p, end - p, 0, 0);
			p = skip(p, end - p, 0, 0);
			p = skip(p, end - p, 0, 0);
			p = skip(p, end - p, 0, 0);
			p = skip(p, end - p, 0, 0);
		}
		q = p;
		X509_NAME *xn = d2i_X509_NAME(NULL, &q, end - p);
		int ok;

		acc += X509_NAME_hash_ex(xn, NULL, NULL, &ok) ^ md[0];
		n++;
		X509_NAME_free(xn);
		OPENSSL_free(nm);
		OPENSSL_free(hd);
		OPENSSL_free(der);
		BIO_free(b);
	}
	closedir(d);
	return acc == 0 ? n : n; /* acc keeps the work from being optimised away */
}

/* CPU seconds (user + system) of this process (who 0) or of its waited-for children (1), in ms. */
static double cpu_ms(int children)
{
	struct rusage ru;

	getrusage(children ? RUSAGE_CHILDREN : RUSAGE_SELF, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static double median3(const double *v)
{
	double a = v[0], b = v[1], c = v[2];

	if (a > b) {
		double t = a;

		a = b;
		b = t;
	}
	return c < a ? a : (c > b ? b : c);
}

static int run(const char *cmd)
{
	int st = system(cmd);

	return st;
}

/* "name -> target" of every symlink, sorted, in one string (malloc'd). */
static char *links(const char *dir)
{
	char cmd[4200], *buf = NULL;
	size_t len = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "cd '%s' && find . -maxdepth 1 -type l -printf '%%f %%l\\n' | sort",
		 dir);
	p = popen(cmd, "r");
	if (p == NULL)
		return strdup("");
	FILE *m = open_memstream(&buf, &len);
	int c;

	while ((c = fgetc(p)) != EOF)
		fputc(c, m);
	fclose(m);
	pclose(p);
	return buf;
}

/* ---- a file dropped in during a first pass ---- */

struct drop {
	const char *dir;
	char *pem; /* the file's bytes, made beforehand */
	size_t len;
	double start;        /* the pass's start (ms) */
	double t_drop, t_link;
	pthread_mutex_t lock;
	pthread_cond_t go;
	int polls, drop_at;  /* polls so far; the one at which the file is dropped */
	int queued, taken;
};

static void *drop_thread(void *arg)
{
	struct drop *d = arg;
	char path[4200];
	int fd;

	pthread_mutex_lock(&d->lock);
	while (d->polls < d->drop_at)
		pthread_cond_wait(&d->go, &d->lock);
	pthread_mutex_unlock(&d->lock);
	snprintf(path, sizeof(path), "%s/dropped.pem", d->dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, d->pem, d->len) != (ssize_t)d->len) {
		perror(path);
		exit(1);
	}
	close(fd); /* the agent hears of it now (IN_CLOSE_WRITE) */
	pthread_mutex_lock(&d->lock);
	d->t_drop = now_ms();
	d->queued = 1;
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

static int drop_poll(void *arg, char *name, size_t len)
{
	struct drop *d = arg;
	int got = 0;

	pthread_mutex_lock(&d->lock);
	if (++d->polls == d->drop_at)
		pthread_cond_signal(&d->go);
	if (d->queued && !d->taken) {
		snprintf(name, len, "dropped.pem");
		d->taken = got = 1;
	}
	pthread_mutex_unlock(&d->lock);
	return got;
}

static void drop_report(void *arg, enum cs_capath_event ev, const char *name, const char *detail)
{
	struct drop *d = arg;

	(void)name;
	if (ev == CS_CAPATH_LINKED && strcmp(detail, "dropped.pem") == 0 && d->t_link == 0)
		d->t_link = now_ms();
}

static double time_update(cs_capath *cp, const char *name)
{
	struct cs_capath_stats st;
	char err[512];
	double t0 = now_ms();
	int rc = cs_capath_update(cp, name, &st, err, sizeof(err));
	double t = now_ms() - t0;

	if (rc < 0)
		fprintf(stderr, "update %s: %s\n", name, err);
	return t;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 10000;
	char base[] = "/tmp/bench_capath.XXXXXX", a[4200], dd[4200], b[4200], c[4200], src[4200], cmd[9000], name[64], cn[64],
	     err[512], path[4300];
	struct cs_capath_stats st;
	cs_capath *cp;
	static char rm[65536 + 8192];
	double t0, t_full, t_ossl, t_full2, t_ossl2, t_add, t_repl, t_rm, t_noop;
	double tv_full[3], tv_ossl[3], tv_full2[3], tv_ossl2[3], tv_nofsync[3];
	double cpu_full2[3], cpu_ossl2[3], cpu_full[3], cpu_ossl[3], tv_floor[3], cpu_floor[3];
	double tv_nocache[3], cpu_nocache[3];
	struct cs_capath_opts nfo = { .flags = CS_CAPATH_NO_FSYNC };
	struct cs_capath_opts co = { 0 };
	char cache[4300];
	cs_capath *nf, *nc;
	int nfloor = 0;
	char *la, *lb;

	key = EVP_EC_gen("P-256");
	if (mkdtemp(base) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(src, sizeof(src), "%s/src", base);
	snprintf(a, sizeof(a), "%s/certsync", base);
	snprintf(b, sizeof(b), "%s/openssl", base);
	snprintf(c, sizeof(c), "%s/nofsync", base);
	snprintf(dd, sizeof(dd), "%s/dropped", base);
	mkdir(src, 0755);
	fprintf(stderr, "making %ld certificates in %s ...\n", n, src);
	for (long i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "cert-%06ld.pem", i);
		if (i % 10 == 0)
			snprintf(cn, sizeof(cn), "shared %ld", i / 100);
		else
			snprintf(cn, sizeof(cn), "host %ld", i);
		put_cert(src, name, cn, i + 1);
	}
	for (long i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "crl-%03ld.crl", i);
		snprintf(cn, sizeof(cn), "crl issuer %ld", i % 10);
		put_crl(src, name, cn, i + 1);
	}

	/*
	 * This machine's file system is noisy: each full-pass figure is the
	 * median of 3 runs, certsync and openssl alternating, on their own
	 * copies of the same directory. A first pass runs on a fresh copy: in a
	 * directory whose links were just deleted, ext4 takes about 7 times the
	 * CPU to create them again (for both programs), which no agent start sees.
	 */
	snprintf(cache, sizeof(cache), "%s/capath.cache", base);
	co.cache = cache;
	cp = cs_capath_new(a, &co, err, sizeof(err));
	nf = cs_capath_new(c, &nfo, err, sizeof(err));
	nc = cs_capath_new(a, NULL, err, sizeof(err));
	snprintf(cmd, sizeof(cmd), "openssl rehash '%s'", b);
	/* A file dropped in during a first pass (own copy, no cache). */
	double tv_dpass[3], tv_dlink[3], tv_dleft[3], tv_dat[3];
	char *ld = NULL, *lo = NULL;
	struct drop dr = { .dir = dd };
	{
		X509 *x = X509_new();
		X509_NAME *nm = X509_NAME_new();
		BIO *mem = BIO_new(BIO_s_mem());
		char *data;

		X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
					   (const unsigned char *)"dropped in", -1, -1, 0);
		X509_set_version(x, 2);
		ASN1_INTEGER_set(X509_get_serialNumber(x), n + 10);
		X509_set_subject_name(x, nm);
		X509_set_issuer_name(x, nm);
		X509_gmtime_adj(X509_getm_notBefore(x), 0);
		X509_gmtime_adj(X509_getm_notAfter(x), 86400);
		X509_set_pubkey(x, key);
		X509_sign(x, key, EVP_sha256());
		PEM_write_bio_X509(mem, x);
		dr.len = (size_t)BIO_get_mem_data(mem, &data);
		dr.pem = malloc(dr.len);
		memcpy(dr.pem, data, dr.len);
		BIO_free(mem);
		X509_NAME_free(nm);
		X509_free(x);
	}
	pthread_mutex_init(&dr.lock, NULL);
	pthread_cond_init(&dr.go, NULL);
	for (int r = 0; r < 3; r++) {
		double c0;

		snprintf(rm, sizeof(rm),
			 "rm -rf '%s' '%s' '%s' '%s' '%s' && cp -a '%s' '%s' && cp -a '%s' '%s' && "
			 "cp -a '%s' '%s' && cp -a '%s' '%s' && sync",
			 a, b, c, dd, cache, src, a, src, b, src, c, src, dd);
		if (run(rm) != 0)
			return 1;
		/* The copies are new: let them age past the cache's 2 s racy window. */
		sleep(3);
		t0 = now_ms();
		c0 = cpu_ms(0);
		if (cs_capath_full(cp, &st, err, sizeof(err)) < 0)
			fprintf(stderr, "full pass: %s\n", err);
		tv_full[r] = now_ms() - t0;
		cpu_full[r] = cpu_ms(0) - c0;
		t0 = now_ms();
		c0 = cpu_ms(1);
		run(cmd);
		tv_ossl[r] = now_ms() - t0;
		cpu_ossl[r] = cpu_ms(1) - c0;
		/* The same without the directory fsync, as openssl rehash does. */
		t0 = now_ms();
		cs_capath_full(nf, &st, err, sizeof(err));
		tv_nofsync[r] = now_ms() - t0;
		/*
		 * The same first pass (no cache) while a second thread drops a file
		 * in once a third of the files are read and hands its name to the
		 * pass (the agent's inotify through cs_capath's poll).
		 */
		{
			struct cs_capath_opts dop = { .report = drop_report, .report_arg = &dr,
						      .poll = drop_poll };
			cs_capath *dp = cs_capath_new(dd, &dop, err, sizeof(err));
			pthread_t th;
			double end;

			dr.queued = dr.taken = dr.polls = 0;
			/* A poll every 32 files read: a third of them read. */
			dr.drop_at = (int)((n + 100) / 3 / 32);
			dr.t_drop = dr.t_link = 0;
			dr.start = now_ms();
			pthread_create(&th, NULL, drop_thread, &dr);
			if (cs_capath_full(dp, &st, err, sizeof(err)) < 0)
				fprintf(stderr, "full pass: %s\n", err);
			end = now_ms();
			pthread_join(th, NULL);
			tv_dpass[r] = end - dr.start;
			tv_dat[r] = dr.t_drop - dr.start;
			tv_dlink[r] = dr.t_link > 0 ? dr.t_link - dr.t_drop : -1;
			tv_dleft[r] = end - dr.t_drop;
			cs_capath_free(dp);
		}
		run("sync");
	}
	la = links(a);
	lb = links(b);
	for (int r = 0; r < 3; r++) {
		double c0;

		t0 = now_ms();
		c0 = cpu_ms(0);
		cs_capath_full(cp, &st, err, sizeof(err));
		tv_full2[r] = now_ms() - t0;
		cpu_full2[r] = cpu_ms(0) - c0;
		t0 = now_ms();
		c0 = cpu_ms(1);
		run(cmd);
		tv_ossl2[r] = now_ms() - t0;
		cpu_ossl2[r] = cpu_ms(1) - c0; /* openssl and the sh that runs it */
		t0 = now_ms();
		c0 = cpu_ms(0);
		nfloor = floor_pass(a);
		tv_floor[r] = now_ms() - t0;
		cpu_floor[r] = cpu_ms(0) - c0;
		t0 = now_ms();
		c0 = cpu_ms(0);
		cs_capath_full(nc, &st, err, sizeof(err));
		tv_nocache[r] = now_ms() - t0;
		cpu_nocache[r] = cpu_ms(0) - c0;
	}
	t_full = median3(tv_full);
	t_ossl = median3(tv_ossl);
	t_full2 = median3(tv_full2);
	t_ossl2 = median3(tv_ossl2);

	/* Incremental: add to a shared bucket, replace one, remove one from a bucket's middle. */
	put_cert(a, "added.pem", "shared 3", n + 1);
	t_add = time_update(cp, "added.pem");
	put_cert(a, "cert-000005.pem", "replaced subject", n + 2);
	t_repl = time_update(cp, "cert-000005.pem");
	snprintf(path, sizeof(path), "%s/cert-000310.pem", a);
	unlink(path);
	t_rm = time_update(cp, "cert-000310.pem");
	t_noop = time_update(cp, "cert-000007.pem");

	/* openssl rehash on its directory with the same file added. */
	{
		char p2[4300];
		FILE *fp;

		snprintf(p2, sizeof(p2), "%s/dropped.pem", b);
		fp = fopen(p2, "w");
		if (fp == NULL || fwrite(dr.pem, 1, dr.len, fp) != dr.len) {
			perror(p2);
			return 1;
		}
		fclose(fp);
		run(cmd);
		ld = links(dd);
		lo = links(b);
	}

	printf("CApath benchmark, %ld certificates + 100 CRLs (%u certificates and %u CRLs "
	       "linked, buckets with up to 10 collisions)\n",
	       n, st.certs, st.crls);
	printf("  (medians of 3; certsync includes one fsync of the directory when links changed)\n");
	printf("  first pass, no links, no cache:  certsync %8.1f ms   openssl rehash %8.1f ms"
	       "   (%.2fx)\n",
	       t_full, t_ossl, t_full / t_ossl);
	printf("    CPU time:                      certsync %8.1f ms   openssl rehash %8.1f ms"
	       "   (%.2fx)\n",
	       median3(cpu_full), median3(cpu_ossl), median3(cpu_full) / median3(cpu_ossl));
	printf("    without the directory fsync:   certsync %8.1f ms\n", median3(tv_nofsync));
	printf("  already hashed, cache:           certsync %8.1f ms   openssl rehash %8.1f ms"
	       "   (%.3fx)\n",
	       t_full2, t_ossl2, t_full2 / t_ossl2);
	printf("    CPU time:                      certsync %8.1f ms   openssl rehash %8.1f ms"
	       "   (%.3fx)\n",
	       median3(cpu_full2), median3(cpu_ossl2), median3(cpu_full2) / median3(cpu_ossl2));
	printf("  already hashed, no cache:        certsync %8.1f ms, CPU %8.1f ms\n",
	       median3(tv_nocache), median3(cpu_nocache));
	printf("  floor (floor_hash.c, %d files):  %8.1f ms, CPU %8.1f ms\n", nfloor,
	       median3(tv_floor), median3(cpu_floor));
	printf("  link sets identical:        %s\n", strcmp(la, lb) == 0 ? "yes" : "NO");
	printf("  incremental update: add %.2f ms, replace %.2f ms, remove %.2f ms, "
	       "unchanged file %.2f ms\n",
	       t_add, t_repl, t_rm, t_noop);
	printf("  file dropped in during a first pass, a third of the files read (no links, no "
	       "cache; medians of 3):\n");
	printf("    dropped at %.1f ms into a pass of %.1f ms: linked %.2f ms after the drop"
	       " (the pass still ran %.1f ms)\n",
	       median3(tv_dat), median3(tv_dpass), median3(tv_dlink), median3(tv_dleft));
	printf("    runs: linked after %.2f / %.2f / %.2f ms (-1: not during the pass)\n",
	       tv_dlink[0], tv_dlink[1], tv_dlink[2]);
	printf("    link sets identical to openssl rehash with the file: %s\n",
	       strcmp(ld, lo) == 0 ? "yes" : "NO");
	cs_capath_free(cp);
	cs_capath_free(nf);
	cs_capath_free(nc);
	free(la);
	free(lb);
	free(ld);
	free(lo);
	free(dr.pem);
	pthread_mutex_destroy(&dr.lock);
	pthread_cond_destroy(&dr.go);
	if (argc > 2 && strcmp(argv[2], "--keep") == 0) {
		printf("  kept: %s\n", base);
	} else {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
		run(cmd);
	}
	EVP_PKEY_free(key);
	return 0;
}
