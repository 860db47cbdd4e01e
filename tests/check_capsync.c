/*
 * check_capsync - the agent module for [capath] and [clientcerts] on a real
 * libuv loop: a full pass at start links the capath, writes the CAfile and
 * the client map (postmap -q finds it) and asks for the sections' reloads
 * once; an event for one file updates its links; an event for a name that
 * no pass cares about starts no job; a local-ca CA and CRL are published
 * into the capath naming their issuer; problems are listed for the status;
 * a close while a job runs frees everything after the job, without done_cb,
 * and a close from within done_cb frees it when done_cb returns. With the
 * directory watched through inotify as the agent watches it, the links a
 * pass makes start no further job, while a link removed or added by hand
 * is put right; a file dropped in while the first full pass runs is linked
 * before any link of the pass is made, and the links end as openssl rehash
 * makes them.
 */
#include "cs_capath.h"
#include "cs_capsync.h"
#include "cs_watch.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

static char *tmp, *capath, *cc, *map, *cafile, *pfdir;
static EVP_PKEY *key;
static struct cs_config *cfg;
static uv_loop_t loop;

struct done {
	int calls;
	char reloads[256];
	char changed[256];
	size_t nfailed;
	bool full;
};

static char *mkpath(const char *name)
{
	char *p;

	ck_assert_int_ge(asprintf(&p, "%s/%s", tmp, name), 0);
	return p;
}

static void setup(void)
{
	char *conf, *text;
	struct cs_cfg_errors errs = { NULL, 0 };

	tmp = cs_test_mkdtemp();
	capath = mkpath("certs");
	cc = mkpath("clientcerts");
	map = mkpath("relay_clientcerts");
	cafile = mkpath("CAcert.pem");
	pfdir = mkpath("postfix");
	ck_assert_int_eq(mkdir(capath, 0755), 0);
	ck_assert_int_eq(mkdir(cc, 0755), 0);
	ck_assert_int_eq(mkdir(pfdir, 0755), 0);
	free(cs_test_write(pfdir, "main.cf", "", 0644));
	ck_assert_int_ge(asprintf(&text,
				  "[agent]\nstate_dir = %s/state\nsocket = %s/sock\n\n"
				  "[issuer \"local\"]\ntype = local-ca\ndir = %s/ca\n"
				  "subject = /CN=Test Local CA\n\n"
				  "[capath \"trust\"]\ndir = %s\ncafile = %s\nissuers = local\n"
				  "reload = pf\n\n"
				  "[clientcerts \"relay\"]\ndir = %s\nmap = %s\nreload = pf, other\n\n"
				  "[reload \"pf\"]\ntype = postfix\nconfig_dir = %s\n\n"
				  "[reload \"other\"]\ntype = exec\ncommand = /bin/true\n",
				  tmp, tmp, tmp, capath, cafile, cc, map, pfdir), 0);
	conf = cs_test_write(tmp, "certsync.conf", text, 0644);
	cfg = cs_config_load(conf, &errs);
	ck_assert_msg(cfg != NULL, "config: %s", errs.n ? errs.v[0] : "?");
	free(text);
	free(conf);
	key = EVP_EC_gen("P-256");
	ck_assert_int_eq(uv_loop_init(&loop), 0);
}

static void teardown(void)
{
	uv_loop_close(&loop);
	cs_config_free(cfg);
	EVP_PKEY_free(key);
	cs_test_rmrf(tmp);
	free(tmp), free(capath), free(cc), free(map), free(cafile), free(pfdir);
}

static X509 *mk_cert(const char *cn, long serial)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();

	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_set_subject_name(x, n);
	X509_set_issuer_name(x, n);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	ck_assert_int_gt(X509_sign(x, key, EVP_sha256()), 0);
	X509_NAME_free(n);
	return x;
}

static void put(const char *dir, const char *name, X509 *x)
{
	char *p;
	FILE *fp;

	ck_assert_int_ge(asprintf(&p, "%s/%s", dir, name), 0);
	fp = fopen(p, "w");
	ck_assert_ptr_nonnull(fp);
	PEM_write_X509(fp, x);
	fclose(fp);
	free(p);
}

static void on_done(void *arg, const struct cs_capsync_report *r)
{
	struct done *d = arg;

	d->calls++;
	d->reloads[0] = d->changed[0] = '\0';
	for (size_t i = 0; i < r->nreloads; i++)
		snprintf(d->reloads + strlen(d->reloads), sizeof(d->reloads) - strlen(d->reloads),
			 "%s%s", i ? "," : "", r->reloads[i]);
	for (size_t i = 0; i < r->nchanged; i++)
		snprintf(d->changed + strlen(d->changed), sizeof(d->changed) - strlen(d->changed),
			 "%s%s", i ? "," : "", r->changed[i]);
	d->nfailed = r->nfailed;
	d->full = r->full;
}

static char *hash_link(const char *cn, int id)
{
	X509_NAME *n = X509_NAME_new();
	char *p;

	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	ck_assert_int_ge(asprintf(&p, "%s/%08lx.%d", capath, X509_NAME_hash_ex(n, NULL, NULL, NULL),
				  id), 0);
	X509_NAME_free(n);
	return p;
}

static void assert_link(const char *cn, int id, const char *target)
{
	char *p = hash_link(cn, id), buf[256];
	ssize_t k = readlink(p, buf, sizeof(buf) - 1);

	ck_assert_msg(k > 0, "%s: no link", p);
	buf[k] = '\0';
	ck_assert_str_eq(buf, target);
	free(p);
}

static void collect(void *arg, const char *section, const char *file, const char *reason)
{
	char *buf = arg;

	snprintf(buf + strlen(buf), 1024 - strlen(buf), "%s|%s|%s\n", section, file, reason);
}

START_TEST(test_capsync_passes_and_events)
{
	struct done d = { 0 };
	char err[512], probs[1024] = "", *cmd, *out, fp[256];
	struct cs_capsync *cs;
	const char *const *dirs;
	size_t n;
	X509 *a = mk_cert("trusted one", 1), *b = mk_cert("trusted one", 2);
	X509 *c = mk_cert("relay.example", 3), *ca = mk_cert("Test Local CA", 4);
	X509_CRL *crl = X509_CRL_new();
	unsigned int len;
	unsigned char md[EVP_MAX_MD_SIZE];

	put(capath, "a.pem", a);
	free(cs_test_write(capath, "junk.pem", "junk\n", 0644));
	cs = cs_capsync_new(&loop, cfg, on_done, &d, err, sizeof(err));
	ck_assert_msg(cs != NULL, "%s", err);
	dirs = cs_capsync_dirs(cs, &n);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(dirs[0], capath);
	ck_assert_str_eq(dirs[1], cc);

	/* Start: a full pass of both sections, one reload each of pf and other. */
	cs_capsync_full(cs);
	ck_assert(cs_capsync_busy(cs));
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(d.calls, 1);
	ck_assert(d.full);
	ck_assert_str_eq(d.reloads, "pf,other");
	ck_assert_str_eq(d.changed, "capath trust,clientcerts relay");
	assert_link("trusted one", 0, "a.pem");
	ck_assert_int_eq(access(cafile, R_OK), 0);
	ck_assert_int_eq(access(map, R_OK), 0);
	cs_capsync_problems(cs, collect, probs);
	ck_assert_str_eq(probs,
			 "capath trust|junk.pem|does not contain exactly one certificate or CRL\n");

	/* One file: only its link; a name of no interest starts nothing. */
	put(capath, "b.pem", b);
	ck_assert(cs_capsync_changed(cs, capath, "b.pem"));
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(d.calls, 2);
	ck_assert(!d.full);
	ck_assert_str_eq(d.reloads, "pf");
	assert_link("trusted one", 1, "b.pem");
	ck_assert(cs_capsync_changed(cs, capath, "README.txt"));
	ck_assert(!cs_capsync_busy(cs));
	ck_assert(!cs_capsync_changed(cs, "/elsewhere", "x.pem"));

	/* A client certificate dropped in: postmap -q finds its fingerprint. */
	put(cc, "relay.pem", c);
	cs_capsync_changed(cs, cc, "relay.pem");
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(d.calls, 3);
	ck_assert_str_eq(d.reloads, "pf,other");
	X509_digest(c, EVP_sha256(), md, &len);
	for (unsigned i = 0; i < len; i++)
		sprintf(fp + 3 * i, "%02X%s", md[i], i + 1 < len ? ":" : "");
	ck_assert_int_ge(asprintf(&cmd, "postmap -c '%s' -q '%s' hash:'%s'", pfdir, fp, map), 0);
	ck_assert_int_eq(cs_test_run(cmd, &out), 0);
	ck_assert_str_eq(out, "relay.example\n");
	free(out);
	free(cmd);

	/* The local CA and its CRL published into the capath that names "local". */
	X509_CRL_set_version(crl, 1);
	X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca));
	{
		ASN1_TIME *t = ASN1_TIME_new();

		X509_gmtime_adj(t, 0);
		X509_CRL_set1_lastUpdate(crl, t);
		ASN1_TIME_free(t);
	}
	X509_CRL_sign(crl, key, EVP_sha256());
	ck_assert_uint_eq(cs_capsync_publish_issuer(cs, "local", ca, crl), 1);
	ck_assert_uint_eq(cs_capsync_publish_issuer(cs, "nobody", ca, crl), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(d.calls, 4);
	ck_assert_str_eq(d.reloads, "pf");
	assert_link("Test Local CA", 0, "local-ca.pem");
	{
		char *p = hash_link("Test Local CA", 0), crlp[4200], tgt[64];
		ssize_t k;

		snprintf(crlp, sizeof(crlp), "%.*sr0", (int)(strrchr(p, '.') - p + 1), p);
		k = readlink(crlp, tgt, sizeof(tgt) - 1);
		ck_assert_int_gt(k, 0);
		tgt[k] = '\0';
		ck_assert_str_eq(tgt, "local-ca.crl");
		free(p);
	}
	{
		size_t blen;
		char *bundle = cs_test_read(cafile, &blen);

		/* a.pem, b.pem, local-ca.pem */
		ck_assert_ptr_nonnull(bundle);
		ck_assert_int_eq((int)(strstr(strstr(strstr(bundle, "BEGIN CERT") + 1, "BEGIN CERT") + 1,
					      "BEGIN CERT") != NULL), 1);
		free(bundle);
	}
	cs_capsync_close(cs, NULL, NULL);
	X509_free(a), X509_free(b), X509_free(c), X509_free(ca);
	X509_CRL_free(crl);
}
END_TEST

static void closed(void *arg)
{
	(*(int *)arg)++;
}

struct closer {
	struct cs_capsync *cs;
	int calls;
	int closed;
};

static void close_in_done(void *arg, const struct cs_capsync_report *r)
{
	struct closer *c = arg;

	(void)r;
	c->calls++;
	cs_capsync_full(c->cs); /* starts a job that runs, but reports to no one */
	cs_capsync_close(c->cs, closed, &c->closed);
}

START_TEST(test_capsync_close_while_running)
{
	struct done d = { 0 };
	char err[512];
	int nclosed = 0;
	struct cs_capsync *cs = cs_capsync_new(&loop, cfg, on_done, &d, err, sizeof(err));

	ck_assert_ptr_nonnull(cs);
	cs_capsync_full(cs);
	cs_capsync_close(cs, closed, &nclosed);
	ck_assert_int_eq(nclosed, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(nclosed, 1);
	ck_assert_int_eq(d.calls, 0);
	/* Closing an idle one frees it at once. */
	cs = cs_capsync_new(&loop, cfg, on_done, &d, err, sizeof(err));
	cs_capsync_close(cs, closed, &nclosed);
	ck_assert_int_eq(nclosed, 2);
	cs_capsync_close(NULL, NULL, NULL);

	/* Closed from its own done_cb (the agent stopping after --once's pass). */
	struct closer c = { NULL, 0, 0 };

	c.cs = cs_capsync_new(&loop, cfg, close_in_done, &c, err, sizeof(err));
	cs_capsync_full(c.cs);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_eq(c.closed, 1);
}
END_TEST

/* A capath whose directory is missing fails its pass and says so in the problems. */
START_TEST(test_capsync_missing_dir)
{
	struct done d = { 0 };
	char err[512], probs[1024] = "";
	struct cs_capsync *cs = cs_capsync_new(&loop, cfg, on_done, &d, err, sizeof(err));

	cs_test_rmrf(capath);
	cs_capsync_full(cs);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_uint_eq(d.nfailed, 1);
	cs_capsync_problems(cs, collect, probs);
	ck_assert_msg(strstr(probs, "capath trust||") && strstr(probs, "No such file or directory"),
		      "%s", probs);
	cs_capsync_close(cs, NULL, NULL);
}
END_TEST

/* ---- the directory watched as the agent watches it ---- */

struct watched {
	struct cs_capsync *cs;
	struct done d;
	uv_timer_t tick;
	int (*until)(struct watched *w);
	int events; /* events forwarded to cs_capsync_changed */
};

static void on_watch(void *arg, const char *dir, const char *name, uint32_t mask)
{
	struct watched *w = arg;

	(void)mask;
	w->events++;
	cs_capsync_changed(w->cs, dir, name);
}

static void on_overflow(void *arg)
{
	cs_capsync_full(((struct watched *)arg)->cs);
}

static void on_watched_done(void *arg, const struct cs_capsync_report *r)
{
	on_done(&((struct watched *)arg)->d, r);
}

static void on_tick(uv_timer_t *t)
{
	struct watched *w = t->data;

	if (w->until == NULL || w->until(w))
		uv_stop(t->loop);
}

static void on_deadline(uv_timer_t *t)
{
	uv_stop(t->loop);
}

/* Runs the loop until w->until(w) holds (NULL: for ms), at most ms milliseconds. */
static void run_until(struct watched *w, int (*until)(struct watched *w), uint64_t ms)
{
	uv_timer_t deadline;

	w->until = until;
	uv_timer_init(&loop, &deadline);
	uv_timer_start(&w->tick, on_tick, 5, 5);
	uv_timer_start(&deadline, on_deadline, ms, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_timer_stop(&w->tick);
	uv_close((uv_handle_t *)&deadline, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
}

static int idle_after_one(struct watched *w)
{
	return w->d.calls >= 1 && !cs_capsync_busy(w->cs);
}

static int idle_after_two(struct watched *w)
{
	return w->d.calls >= 2 && !cs_capsync_busy(w->cs);
}

static int idle_after_three(struct watched *w)
{
	return w->d.calls >= 3 && !cs_capsync_busy(w->cs);
}

static void watch_closed(void *arg)
{
	(void)arg;
}

/*
 * A full pass in a watched directory of 600 certificates (more than the
 * names a section queues before it falls back to a full pass) makes 600
 * links and as many inotify events: none of them starts a job. A link an
 * operator removes is put back, one a stranger adds is taken away, each by
 * one job, and the links those jobs make start none.
 */
START_TEST(test_capsync_own_links_start_nothing)
{
	struct watched w = { 0 };
	struct cs_watch *cw;
	char err[512], name[64], cn[64], *p;
	struct stat sb;

	for (int i = 0; i < 600; i++) {
		X509 *x;

		snprintf(name, sizeof(name), "c-%03d.pem", i);
		snprintf(cn, sizeof(cn), i % 10 == 0 ? "shared %d" : "host %d", i % 10 == 0 ? i / 100 : i);
		x = mk_cert(cn, i + 1);
		put(capath, name, x);
		X509_free(x);
	}
	w.cs = cs_capsync_new(&loop, cfg, on_watched_done, &w, err, sizeof(err));
	ck_assert_msg(w.cs != NULL, "%s", err);
	cw = cs_watch_new(&loop, on_watch, on_overflow, &w, err, sizeof(err));
	ck_assert_msg(cw != NULL, "%s", err);
	ck_assert_int_eq(cs_watch_add(cw, capath), 0);
	uv_timer_init(&loop, &w.tick);
	w.tick.data = &w;

	cs_capsync_full(w.cs);
	run_until(&w, idle_after_one, 30000);
	ck_assert_int_eq(w.d.calls, 1);
	/* Every event of the pass's own links has been read by now. */
	run_until(&w, NULL, 500);
	ck_assert_msg(w.events >= 600, "only %d events seen", w.events);
	ck_assert_msg(w.d.calls == 1 && !cs_capsync_busy(w.cs),
		      "the pass's own links started %d more job(s)", w.d.calls - 1);
	assert_link("host 1", 0, "c-001.pem");

	/* Removed by hand: put back by one job; its own link starts nothing more. */
	p = hash_link("host 7", 0);
	ck_assert_int_eq(unlink(p), 0);
	run_until(&w, idle_after_two, 10000);
	assert_link("host 7", 0, "c-007.pem");
	run_until(&w, NULL, 300);
	ck_assert_int_eq(w.d.calls, 2);
	free(p);

	/* A stranger's hash link to a file that is not there: removed, once. */
	p = hash_link("nobody", 0);
	ck_assert_int_eq(symlink("nothing.pem", p), 0);
	run_until(&w, idle_after_three, 10000);
	ck_assert_int_eq(lstat(p, &sb), -1);
	run_until(&w, NULL, 300);
	ck_assert_int_eq(w.d.calls, 3);
	free(p);

	cs_watch_close(cw, watch_closed, NULL);
	uv_close((uv_handle_t *)&w.tick, NULL);
	cs_capsync_close(w.cs, NULL, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
}
END_TEST

/* ---- a file dropped in during the first pass ---- */

static uv_sem_t hold;

static void hold_work(uv_work_t *req)
{
	(void)req;
	uv_sem_wait(&hold);
}

static void hold_done(uv_work_t *req, int status)
{
	(void)req, (void)status;
}

/* Sorted "name target" lines of the hash links of dir (malloc'd). */
static char *hash_links(const char *dir)
{
	char *cmd, *out = NULL;

	ck_assert_int_ge(asprintf(&cmd,
				  "cd '%s' && find . -maxdepth 1 -type l -name '????????.*' "
				  "-printf '%%f %%l\\n' | LC_ALL=C sort",
				  dir), 0);
	ck_assert_int_eq(cs_test_run(cmd, &out), 0);
	free(cmd);
	return out;
}

/*
 * The pass is held on the work queue (one thread) until the file has been
 * written and its event given: it is then linked before any link of the
 * pass is made (the first hash link created in the directory, seen through
 * a separate inotify watch), instead of after the pass. Its subject is
 * shared by 60 other certificates that sort before it, so its early link
 * (index 0) is not where openssl rehash puts it: at the end the links are
 * the ones openssl rehash makes on a copy of the directory without links.
 */
START_TEST(test_capsync_file_during_first_pass)
{
	struct done d = { 0 };
	struct cs_capsync *cs;
	uv_work_t holder;
	char err[512], name[64], cn[64], first[64] = "", *ref, *cmd, *mine, *theirs;
	char *want = hash_link("shared 0", 0);
	char buf[65536] __attribute__((aligned(__alignof__(struct inotify_event))));
	int ifd;
	ssize_t len;
	X509 *late = mk_cert("shared 0", 9999);

	/* Set before the work queue's threads start (Check forks each test). */
	setenv("UV_THREADPOOL_SIZE", "1", 1);
	for (int i = 0; i < 600; i++) {
		X509 *x;

		snprintf(name, sizeof(name), "c-%03d.pem", i);
		snprintf(cn, sizeof(cn), i % 10 == 0 ? "shared %d" : "host %d", i % 10 == 0 ? 0 : i);
		x = mk_cert(cn, i + 1);
		put(capath, name, x);
		X509_free(x);
	}
	ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	ck_assert_int_ge(ifd, 0);
	ck_assert_int_ge(inotify_add_watch(ifd, capath, IN_CREATE | IN_MOVED_TO), 0);
	cs = cs_capsync_new(&loop, cfg, on_done, &d, err, sizeof(err));
	ck_assert_msg(cs != NULL, "%s", err);

	ck_assert_int_eq(uv_sem_init(&hold, 0), 0);
	ck_assert_int_eq(uv_queue_work(&loop, &holder, hold_work, hold_done), 0);
	cs_capsync_full(cs);
	ck_assert(cs_capsync_busy(cs));
	put(capath, "z-late.pem", late);
	ck_assert(cs_capsync_changed(cs, capath, "z-late.pem"));
	uv_sem_post(&hold);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_sem_destroy(&hold);

	while ((len = read(ifd, buf, sizeof(buf))) > 0 && first[0] == '\0')
		for (char *q = buf; q < buf + len && first[0] == '\0';) {
			struct inotify_event *ev = (struct inotify_event *)q;

			q += sizeof(*ev) + ev->len;
			if (ev->len > 0 && cs_capath_name_is_link(ev->name))
				snprintf(first, sizeof(first), "%s/%s", capath, ev->name);
		}
	close(ifd);
	ck_assert_str_eq(first, want);

	/* The end: as openssl rehash makes them. */
	ref = mkpath("ref");
	ck_assert_int_ge(asprintf(&cmd,
				  "cp -a '%s' '%s' && find '%s' -maxdepth 1 -type l -delete && "
				  "openssl rehash '%s' >/dev/null 2>&1",
				  capath, ref, ref, ref), 0);
	ck_assert_int_eq(cs_test_run(cmd, NULL), 0);
	mine = hash_links(capath);
	theirs = hash_links(ref);
	ck_assert_str_eq(mine, theirs);
	ck_assert_ptr_nonnull(strstr(mine, " z-late.pem\n"));
	cs_capsync_close(cs, NULL, NULL);
	free(cmd), free(ref), free(mine), free(theirs), free(want);
	X509_free(late);
}
END_TEST

Suite *capsync_suite(void)
{
	Suite *s = suite_create("capsync");
	TCase *tc = tcase_create("capsync");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_capsync_passes_and_events);
	tcase_add_test(tc, test_capsync_close_while_running);
	tcase_add_test(tc, test_capsync_missing_dir);
	tcase_add_test(tc, test_capsync_own_links_start_nothing);
	tcase_add_test(tc, test_capsync_file_during_first_pass);
	suite_add_tcase(s, tc);
	return s;
}
