/*
 * check_pipeline - the parts of the renewal pipeline that can be tested in
 * one process: deploy (outputs written, previous generations kept, refusal
 * of unfit material, rollback of a half-done deploy, digests that tell the
 * agent's own writes from others'), the per-cert state round trip, the
 * inotify watcher, and whole pipeline passes on a private loop with a real
 * local CA (issuance, repair, debounced reloads, status, backoff in state).
 */
#include "cs_config.h"
#include "cs_deploy.h"
#include "cs_examine.h"
#include "cs_csr.h"
#include "cs_key.h"
#include "cs_localca.h"
#include "cs_log.h"
#include "cs_pipeline.h"
#include "cs_state.h"
#include "cs_watch.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *tmp;

static void tmp_setup(void)
{
	tmp = cs_test_mkdtemp();
	ck_assert_ptr_nonnull(tmp);
	cs_log_open("check_pipeline", CS_LOG_STDERR, CS_LOG_ERR);
}

static void tmp_teardown(void)
{
	cs_test_rmrf(tmp);
	free(tmp);
	tmp = NULL;
}

static char *path_in(const char *name)
{
	char *p;

	ck_assert_int_ge(asprintf(&p, "%s/%s", tmp, name), 0);
	return p;
}

/* A local CA under tmp/ca, opened for synchronous issuance. */
static cs_localca *open_ca(void)
{
	char *dir = path_in("ca"), err[512] = "";
	struct cs_localca_opts o = {
		.dir = dir,
		.subject = "/O=check/CN=check CA",
		.key = CS_KEY_EC_P256,
		.validity_s = 30 * 86400,
		.ca_validity_s = 365 * 86400,
	};
	cs_localca *ca = cs_localca_open(&o, err, sizeof(err));

	ck_assert_msg(ca != NULL, "%s", err);
	free(dir);
	return ca;
}

/* A fresh key, leaf and chain for names from ca. */
static cs_material *issue(cs_localca *ca, char *const *names, size_t n)
{
	char err[512] = "";
	cs_material *m = cs_material_new();
	X509_REQ *csr;

	ck_assert_ptr_nonnull(m);
	m->key = cs_key_generate(CS_KEY_EC_P256, err, sizeof(err));
	ck_assert_msg(m->key != NULL, "%s", err);
	csr = cs_csr_new(m->key, names, n, err, sizeof(err));
	ck_assert_msg(csr != NULL, "%s", err);
	STACK_OF(X509) *chain = NULL;
	ck_assert_int_eq(cs_localca_issue(ca, csr, names, n, CS_USAGE_SERVER, &m->leaf, &chain,
					  err, sizeof(err)),
			 0);
	for (int i = 0; i < sk_X509_num(chain); i++) {
		X509 *x = sk_X509_value(chain, i);
		X509_up_ref(x);
		sk_X509_push(m->chain, x);
	}
	sk_X509_pop_free(chain, X509_free);
	X509_REQ_free(csr);
	return m;
}

static char *names1[] = { "mail.example.test", "smtp.example.test" };

/* A [cert] with a bundle, a fullchain and a key file in tmp/out. */
static void cert_cfg(struct cs_cfg_cert *c)
{
	memset(c, 0, sizeof(*c));
	c->name = "mail";
	c->names.v = names1;
	c->names.n = 2;
	c->key = CS_KEY_EC_P256;
	c->bundle = path_in("out/mail.pem");
	c->fullchain = path_in("out/full.pem");
	c->keyfile = path_in("out/key.pem");
	c->owner = (uid_t)-1;
	c->group = (gid_t)-1;
	c->mode = 0600;
	c->cert_mode = 0644;
}

static void cert_cfg_free(struct cs_cfg_cert *c)
{
	free(c->bundle);
	free(c->fullchain);
	free(c->keyfile);
}

static void serial_of(const cs_material *m, char *buf, size_t len)
{
	ASN1_INTEGER *s = X509_get_serialNumber(m->leaf);
	BIGNUM *bn = ASN1_INTEGER_to_BN(s, NULL);
	char *hex = BN_bn2hex(bn);

	snprintf(buf, len, "%s", hex);
	OPENSSL_free(hex);
	BN_free(bn);
}

/* Deploy writes every output, keeps each generation, and examine finds it valid. */
START_TEST(test_pipeline_deploy_keeps_generations)
{
	struct cs_cfg_cert c;
	cs_localca *ca = open_ca();
	cs_material *m1 = issue(ca, names1, 2), *m2 = issue(ca, names1, 2), *back = NULL;
	char err[512] = "", *out = path_in("out"), *state = path_in("state"), s1[80], s2[80];
	struct cs_examined ex;
	struct stat sb;

	cert_cfg(&c);
	mkdir(out, 0755);
	ck_assert_msg(cs_deploy(&c, m1, NULL, state, 1, time(NULL), NULL, err, sizeof(err)) == 0,
		      "%s", err);
	ck_assert_msg(cs_deploy(&c, m2, m1, state, 2, time(NULL), NULL, err, sizeof(err)) == 0,
		      "%s", err);
	ck_assert_int_eq(cs_examine(&c, time(NULL), &ex), CS_EX_OK);
	ck_assert_int_eq(X509_cmp(ex.m->leaf, m2->leaf), 0);
	cs_examine_clear(&ex);

	/* The previous generation is there to roll back to, and only readable by us. */
	ck_assert_int_eq(cs_deploy_load_gen(state, "mail", 1, &back, err, sizeof(err)), 0);
	ck_assert_int_eq(X509_cmp(back->leaf, m1->leaf), 0);
	ck_assert_int_eq(EVP_PKEY_eq(back->key, m1->key), 1);
	cs_material_free(back);
	char gp[PATH_MAX];
	cs_deploy_gen_path(state, "mail", 1, gp, sizeof(gp));
	ck_assert_int_eq(stat(gp, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
	ck_assert_int_eq(stat(c.keyfile, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
	ck_assert_int_eq(stat(c.fullchain, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0644);

	/* A deploy prunes nothing; pruning keeps what it is told to, and what is newer. */
	ck_assert_int_eq(cs_deploy(&c, m1, m2, state, 3, time(NULL), NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(cs_deploy(&c, m2, m1, state, 4, time(NULL), NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(cs_deploy(&c, m1, m2, state, 5, time(NULL), NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(cs_deploy_load_gen(state, "mail", 1, &back, err, sizeof(err)), 0);
	cs_material_free(back);
	const int keep[] = { 2 };
	/* 1 and 3 go; 2 is kept by name, 4 and 5 because they are newer than the state. */
	ck_assert_int_eq(cs_deploy_prune_gens(state, "mail", keep, 1, 4, err, sizeof(err)), 2);
	ck_assert_int_eq(cs_deploy_load_gen(state, "mail", 1, &back, err, sizeof(err)), -ENOENT);
	ck_assert_int_eq(cs_deploy_load_gen(state, "mail", 3, &back, err, sizeof(err)), -ENOENT);
	ck_assert_int_eq(cs_deploy_load_gen(state, "mail", 4, &back, err, sizeof(err)), 0);
	cs_material_free(back);
	ck_assert_int_eq(cs_deploy_load_gen(state, "mail", 5, &back, err, sizeof(err)), 0);
	cs_material_free(back);
	ck_assert_int_eq(cs_deploy_load_gen(state, "mail", 2, &back, err, sizeof(err)), 0);
	serial_of(back, s1, sizeof(s1));
	serial_of(m2, s2, sizeof(s2));
	ck_assert_str_eq(s1, s2);
	cs_material_free(back);

	cs_material_free(m1);
	cs_material_free(m2);
	cs_localca_close(ca);
	cert_cfg_free(&c);
	free(out);
	free(state);
}
END_TEST

/* Material that does not fit the configuration is refused; nothing on disk changes. */
START_TEST(test_pipeline_deploy_refuses_unfit)
{
	struct cs_cfg_cert c;
	cs_localca *ca = open_ca();
	char *other[] = { "other.example.test" };
	cs_material *good = issue(ca, names1, 2), *bad = issue(ca, other, 1);
	char err[512] = "", *out = path_in("out"), *state = path_in("state");
	struct cs_deploy_digests before, after;

	cert_cfg(&c);
	mkdir(out, 0755);
	ck_assert_int_eq(cs_deploy(&c, good, NULL, state, 1, time(NULL), NULL, err, sizeof(err)), 0);
	cs_deploy_digest_files(&c, &before);
	ck_assert_int_eq(cs_deploy(&c, bad, good, state, 2, time(NULL), NULL, err, sizeof(err)),
			 -EINVAL);
	ck_assert_msg(strstr(err, "mail.example.test") != NULL, "%s", err);
	cs_deploy_digest_files(&c, &after);
	ck_assert(cs_deploy_digests_equal(&before, &after));

	/* A key beside the wrong certificate is refused too. */
	EVP_PKEY *k = bad->key;
	bad->key = good->key;
	good->key = k;
	ck_assert_int_eq(cs_deploy(&c, good, NULL, state, 3, time(NULL), NULL, err, sizeof(err)),
			 -EINVAL);
	cs_deploy_digest_files(&c, &after);
	ck_assert(cs_deploy_digests_equal(&before, &after));

	cs_material_free(good);
	cs_material_free(bad);
	cs_localca_close(ca);
	cert_cfg_free(&c);
	free(out);
	free(state);
}
END_TEST

/* When one output cannot be written, those already replaced are put back. */
START_TEST(test_pipeline_deploy_rolls_back)
{
	struct cs_cfg_cert c;
	cs_localca *ca = open_ca();
	cs_material *m1 = issue(ca, names1, 2), *m2 = issue(ca, names1, 2);
	char err[512] = "", *out = path_in("out"), *state = path_in("state");
	char *keydir = path_in("keys");
	struct cs_deploy_digests before, after;
	struct cs_examined ex;

	cert_cfg(&c);
	free(c.keyfile);
	c.keyfile = path_in("keys/key.pem");
	mkdir(out, 0755);
	mkdir(keydir, 0700);
	ck_assert_int_eq(cs_deploy(&c, m1, NULL, state, 1, time(NULL), NULL, err, sizeof(err)), 0);
	cs_deploy_digest_files(&c, &before);
	/* The key's directory is gone: bundle and fullchain are written, then the key fails. */
	char *keyfile = path_in("keys/key.pem");
	unlink(keyfile);
	rmdir(keydir);
	ck_assert_int_lt(cs_deploy(&c, m2, m1, state, 2, time(NULL), NULL, err, sizeof(err)), 0);
	ck_assert_msg(strstr(err, keyfile) != NULL, "error does not name the file: %s", err);
	mkdir(keydir, 0700);
	cs_deploy_digest_files(&c, &after);
	ck_assert(after.present[0] && after.present[1]);
	ck_assert(memcmp(before.sha256[0], after.sha256[0], 32) == 0);
	ck_assert(memcmp(before.sha256[1], after.sha256[1], 32) == 0);
	ck_assert_int_eq(cs_examine(&c, time(NULL), &ex), CS_EX_MISSING);
	cs_examine_clear(&ex);

	cs_material_free(m1);
	cs_material_free(m2);
	cs_localca_close(ca);
	cert_cfg_free(&c);
	free(out);
	free(state);
	free(keydir);
	free(keyfile);
}
END_TEST

/* The digests of what was written match the files; another writer's bytes do not. */
START_TEST(test_pipeline_digests_tell_own_writes)
{
	struct cs_cfg_cert c;
	cs_localca *ca = open_ca();
	cs_material *m = issue(ca, names1, 2);
	char err[512] = "", *out = path_in("out"), *state = path_in("state");
	struct cs_deploy_digests written, seen;

	cert_cfg(&c);
	mkdir(out, 0755);
	ck_assert_int_eq(cs_deploy(&c, m, NULL, state, 1, time(NULL), &written, err, sizeof(err)),
			 0);
	cs_deploy_digest_files(&c, &seen);
	ck_assert(cs_deploy_digests_equal(&written, &seen));
	/* Rewritten with the same bytes (touch, cp of the same file): still ours. */
	ck_assert_int_eq(cs_deploy(&c, m, NULL, state, 0, time(NULL), NULL, err, sizeof(err)), 0);
	cs_deploy_digest_files(&c, &seen);
	ck_assert(cs_deploy_digests_equal(&written, &seen));
	free(cs_test_write(NULL, c.fullchain, "changed\n", 0644));
	cs_deploy_digest_files(&c, &seen);
	ck_assert(!cs_deploy_digests_equal(&written, &seen));
	unlink(c.fullchain);
	cs_deploy_digest_files(&c, &seen);
	ck_assert(!seen.present[1]);
	ck_assert(!cs_deploy_digests_equal(&written, &seen));

	cs_material_free(m);
	cs_localca_close(ca);
	cert_cfg_free(&c);
	free(out);
	free(state);
}
END_TEST

/* Every field of the state survives a save and a load. */
START_TEST(test_pipeline_state_round_trip)
{
	struct cs_state st, back;
	char err[512] = "";

	memset(&st, 0, sizeof(st));
	st.last_attempt = 1700000100;
	st.last_success = 1700000000;
	st.failures = 3;
	cs_state_set_error(&st, "issuer local: \"quoted\" failure");
	st.next_attempt = 1700000500;
	st.next_due = 1700009999;
	st.retry_after = 120;
	st.next_gen = 1;
	for (int i = 1; i <= 4; i++) {
		struct cs_state_gen g = { .n = i, .not_after = 1700000000 + i, .deployed = i };
		snprintf(g.serial, sizeof(g.serial), "%02X", i);
		snprintf(g.sha256, sizeof(g.sha256), "AB:%02X", i);
		cs_state_push_gen(&st, &g);
		st.next_gen = i + 1;
	}
	ck_assert_uint_eq(st.n_gens, CS_STATE_GENERATIONS);
	ck_assert_int_eq(cs_state_save(tmp, "mail", &st, err, sizeof(err)), 0);
	ck_assert_int_eq(cs_state_load(tmp, "mail", &back, err, sizeof(err)), 0);
	ck_assert_int_eq(back.last_attempt, st.last_attempt);
	ck_assert_int_eq(back.last_success, st.last_success);
	ck_assert_int_eq(back.failures, 3);
	ck_assert_str_eq(back.last_error, "issuer local: \"quoted\" failure");
	ck_assert_int_eq(back.next_attempt, st.next_attempt);
	ck_assert_int_eq(back.next_due, st.next_due);
	ck_assert_int_eq(back.retry_after, 120);
	ck_assert_int_eq(back.next_gen, 5);
	ck_assert_uint_eq(back.n_gens, CS_STATE_GENERATIONS);
	ck_assert_int_eq(back.gens[0].n, 4); /* newest first */
	ck_assert_int_eq(back.gens[2].n, 2);
	ck_assert_str_eq(back.gens[0].serial, "04");
	ck_assert_str_eq(back.gens[0].sha256, "AB:04");
	ck_assert_int_eq(back.gens[0].not_after, 1700000004);
	cs_state_clear(&st);
	cs_state_clear(&back);

	/* A corrupt file is set aside and reads as an empty state. */
	char *p = path_in("certs/mail.json");
	free(cs_test_write(NULL, p, "{ not json", 0600));
	ck_assert_int_eq(cs_state_load(tmp, "mail", &back, err, sizeof(err)), 1);
	ck_assert_int_eq(back.failures, 0);
	ck_assert_uint_eq(back.n_gens, 0);
	ck_assert_msg(strstr(err, "corrupt") != NULL, "%s", err);
	char *aside = path_in("certs/mail.json.corrupt");
	ck_assert_int_eq(access(aside, F_OK), 0);
	cs_state_clear(&back);
	free(p);
	free(aside);
}
END_TEST

/*
 * The profile a deployed certificate was ordered with: kept when known, also
 * when it is none (""); a state without it (written before profiles were
 * kept) says nothing, so that an upgrade renews nothing for it.
 */
START_TEST(test_pipeline_state_profile)
{
	struct cs_state st, back;
	char err[512] = "";

	memset(&st, 0, sizeof(st));
	st.next_gen = 1;
	snprintf(st.issuer, sizeof(st.issuer), "le");
	ck_assert_int_eq(cs_state_save(tmp, "p", &st, err, sizeof(err)), 0);
	ck_assert_int_eq(cs_state_load(tmp, "p", &back, err, sizeof(err)), 0);
	ck_assert(!back.profile_known);
	ck_assert_str_eq(back.profile, "");
	cs_state_clear(&back);
	st.profile_known = true;
	ck_assert_int_eq(cs_state_save(tmp, "p", &st, err, sizeof(err)), 0);
	ck_assert_int_eq(cs_state_load(tmp, "p", &back, err, sizeof(err)), 0);
	ck_assert(back.profile_known);
	ck_assert_str_eq(back.profile, "");
	cs_state_clear(&back);
	snprintf(st.profile, sizeof(st.profile), "shortlived");
	ck_assert_int_eq(cs_state_save(tmp, "p", &st, err, sizeof(err)), 0);
	ck_assert_int_eq(cs_state_load(tmp, "p", &back, err, sizeof(err)), 0);
	ck_assert(back.profile_known);
	ck_assert_str_eq(back.profile, "shortlived");
	cs_state_clear(&back);
	cs_state_clear(&st);
}
END_TEST

/* ---- the watcher ---- */

struct watch_seen {
	int events, overflows;
	uint32_t mask;
	char name[256], dir[PATH_MAX];
	uv_loop_t *loop;
};

static void watch_cb(void *arg, const char *dir, const char *name, uint32_t mask)
{
	struct watch_seen *s = arg;

	s->events++;
	s->mask |= mask;
	snprintf(s->name, sizeof(s->name), "%s", name);
	snprintf(s->dir, sizeof(s->dir), "%s", dir);
	uv_stop(s->loop);
}

static void overflow_cb(void *arg)
{
	((struct watch_seen *)arg)->overflows++;
}

static void on_deadline(uv_timer_t *t)
{
	uv_stop(t->loop);
}

/* Runs loop until a callback stops it or ms pass. */
static void run_for(uv_loop_t *loop, uint64_t ms)
{
	uv_timer_t t;

	uv_timer_init(loop, &t);
	uv_timer_start(&t, on_deadline, ms, 0);
	uv_run(loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
}

/* IN_CLOSE_WRITE is reported; after a directory symlink swap the new directory is watched. */
START_TEST(test_pipeline_watch_close_write_and_symlink_swap)
{
	uv_loop_t loop;
	struct watch_seen s = { .loop = &loop };
	char err[256];
	char *a = path_in("a"), *b = path_in("b"), *link = path_in("live");

	mkdir(a, 0755);
	mkdir(b, 0755);
	ck_assert_int_eq(symlink(a, link), 0);
	uv_loop_init(&loop);
	struct cs_watch *w = cs_watch_new(&loop, watch_cb, overflow_cb, &s, err, sizeof(err));
	ck_assert_msg(w != NULL, "%s", err);
	const char *dirs[] = { link };
	ck_assert_uint_eq(cs_watch_set(w, dirs, 1), 1);

	free(cs_test_write(a, "x.pem", "one", 0644));
	run_for(&loop, 2000);
	ck_assert_int_ge(s.events, 1);
	ck_assert(s.mask & IN_CLOSE_WRITE);
	ck_assert_str_eq(s.name, "x.pem");
	ck_assert_str_eq(s.dir, link);

	/* Swap the link to b: declaring the same set again follows it. */
	char *tmplink = path_in("live.new");
	ck_assert_int_eq(symlink(b, tmplink), 0);
	ck_assert_int_eq(rename(tmplink, link), 0);
	ck_assert_uint_eq(cs_watch_set(w, dirs, 1), 1);
	run_for(&loop, 100); /* drain anything left from before */
	memset(s.name, 0, sizeof(s.name));
	s.events = 0;
	s.mask = 0;
	free(cs_test_write(b, "y.pem", "two", 0644));
	run_for(&loop, 2000);
	ck_assert_int_ge(s.events, 1);
	ck_assert_str_eq(s.name, "y.pem");
	/* The old directory is no longer reported. */
	s.events = 0;
	free(cs_test_write(a, "z.pem", "three", 0644));
	run_for(&loop, 300);
	ck_assert_int_eq(s.events, 0);

	/* An empty set watches nothing. */
	ck_assert_uint_eq(cs_watch_set(w, NULL, 0), 0);
	ck_assert_uint_eq(cs_watch_count(w), 0);
	cs_watch_close(w, NULL, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	ck_assert_int_eq(s.overflows, 0);
	free(a);
	free(b);
	free(link);
	free(tmplink);
}
END_TEST

/* ---- whole passes on a private loop ---- */

struct pass {
	int done, failures, closed;
};

static void on_done(void *arg, int failures)
{
	struct pass *p = arg;

	p->done++;
	p->failures = failures;
}

static void on_closed(void *arg)
{
	((struct pass *)arg)->closed++;
}

static struct cs_config *load_conf(const char *text)
{
	char *p = path_in("certsync.conf");
	struct cs_cfg_errors errs;

	free(cs_test_write(NULL, p, text, 0644));
	struct cs_config *cfg = cs_config_load(p, &errs);
	for (size_t i = 0; i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.v[i]);
	ck_assert_ptr_nonnull(cfg);
	free(p);
	return cfg;
}

/* One --once pass over cfg on a private loop; returns the failures reported. */
static int run_once(const struct cs_config *cfg, struct cs_pipeline **keep)
{
	uv_loop_t loop;
	struct pass p = { 0 };
	char err[512];

	uv_loop_init(&loop);
	struct cs_pipeline *pl = cs_pipeline_new(&loop, cfg, err, sizeof(err));
	ck_assert_msg(pl != NULL, "%s", err);
	ck_assert_int_eq(cs_pipeline_start(pl, true, on_done, &p), 0);
	while (p.done == 0 && uv_run(&loop, UV_RUN_ONCE))
		;
	ck_assert_int_eq(p.done, 1);
	if (keep != NULL)
		*keep = pl;
	/* The status is read before the pipeline goes away. */
	struct cs_cert_status st;
	for (size_t i = 0; i < cs_pipeline_count(pl); i++) {
		cs_pipeline_status(pl, i, &st);
		ck_assert_ptr_nonnull(st.name);
		ck_assert_int_eq(st.failures > 0, st.last_error != NULL);
	}
	cs_pipeline_close(pl, on_closed, &p);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(p.closed, 1);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	return p.failures;
}

static char *conf_text(const char *certs_extra)
{
	char *s;

	ck_assert_int_ge(asprintf(&s,
				  "[agent]\nstate_dir = %s/state\n\n"
				  "[issuer \"local\"]\ntype = local-ca\ndir = %s/ca\n\n"
				  "[reload \"svc\"]\ntype = exec\n"
				  "command = /bin/sh -c 'echo \"$CERTSYNC_NAME\" >>%s/reloads'\n\n"
				  "%s",
				  tmp, tmp, tmp, certs_extra),
			 0);
	return s;
}

/* A pass issues what is missing, reloads once for all of it, then finds nothing to do. */
START_TEST(test_pipeline_once_issues_and_debounces)
{
	char certs[2048];

	snprintf(certs, sizeof(certs),
		 "[cert \"a\"]\nissuer = local\nnames = a.example.test\nbundle = %s/a.pem\n"
		 "reload = svc\n\n"
		 "[cert \"b\"]\nissuer = local\nnames = b.example.test\nbundle = %s/b.pem\n"
		 "reload = svc\n\n"
		 "[cert \"c\"]\nissuer = local\nnames = c.example.test\nfullchain = %s/c.crt\n"
		 "keyfile = %s/c.key\nreload = svc\n",
		 tmp, tmp, tmp, tmp);
	char *text = conf_text(certs);
	struct cs_config *cfg = load_conf(text);

	ck_assert_int_eq(run_once(cfg, NULL), 0);
	char *reloads = path_in("reloads");
	size_t len;
	char *log = cs_test_read(reloads, &len);
	ck_assert_ptr_nonnull(log);
	/* One line: one reload for three renewals. */
	size_t lines = 0;
	for (size_t i = 0; i < len; i++)
		lines += log[i] == '\n';
	ck_assert_msg(lines == 1, "%zu reloads: %s", lines, log);
	ck_assert_msg(strstr(log, "a") && strstr(log, "b") && strstr(log, "c"), "%s", log);
	free(log);
	for (int i = 0; i < 3; i++) {
		struct cs_examined ex;
		ck_assert_int_eq(cs_examine(&cfg->certs[i], time(NULL), &ex), CS_EX_OK);
		cs_examine_clear(&ex);
	}

	/* A second pass: all valid, nothing renewed, nothing reloaded, no state written. */
	unlink(reloads);
	char *sa = path_in("state/certs/a.json");
	struct stat st0, st1;
	ck_assert_int_eq(stat(sa, &st0), 0);
	ck_assert_int_eq(run_once(cfg, NULL), 0);
	ck_assert_int_eq(access(reloads, F_OK), -1);
	ck_assert_int_eq(stat(sa, &st1), 0);
	ck_assert_msg(st0.st_ino == st1.st_ino && st0.st_mtim.tv_nsec == st1.st_mtim.tv_nsec &&
			      st0.st_mtim.tv_sec == st1.st_mtim.tv_sec,
		      "a pass that changed nothing rewrote %s", sa);
	free(sa);

	/* A deleted key file is repaired from the generation, not issued again. */
	char *key = path_in("c.key"), *crt = path_in("c.crt");
	size_t l1, l2;
	char *before = cs_test_read(crt, &l1);
	unlink(key);
	ck_assert_int_eq(run_once(cfg, NULL), 0);
	char *after = cs_test_read(crt, &l2);
	ck_assert_uint_eq(l1, l2);
	ck_assert_int_eq(memcmp(before, after, l1), 0);
	ck_assert_int_eq(access(key, F_OK), 0);
	free(before);
	free(after);
	free(key);
	free(crt);
	free(reloads);
	free(text);
	cs_config_free(cfg);
}
END_TEST

/* A failing issuer: the pass reports a failure, and the state counts it with the error. */
START_TEST(test_pipeline_once_failure_in_state)
{
	char certs[1024], err[512];
	struct cs_state st;

	snprintf(certs, sizeof(certs),
		 "[cert \"a\"]\nissuer = local\nnames = a.example.test\nbundle = %s/a.pem\n", tmp);
	char *text = conf_text(certs);
	/* The CA directory is a file: the issuer cannot be set up. */
	char *ca = path_in("ca");
	free(cs_test_write(NULL, ca, "not a directory", 0644));
	struct cs_config *cfg = load_conf(text);

	ck_assert_int_eq(run_once(cfg, NULL), 1);
	char *state = path_in("state");
	ck_assert_int_eq(cs_state_load(state, "a", &st, err, sizeof(err)), 0);
	ck_assert_int_eq(st.failures, 1);
	ck_assert_ptr_nonnull(st.last_error);
	ck_assert_msg(strstr(st.last_error, "local") != NULL, "%s", st.last_error);
	ck_assert_int_gt(st.next_attempt, time(NULL));
	cs_state_clear(&st);
	ck_assert_int_eq(run_once(cfg, NULL), 1);
	ck_assert_int_eq(cs_state_load(state, "a", &st, err, sizeof(err)), 0);
	ck_assert_int_eq(st.failures, 2);
	cs_state_clear(&st);

	/* Fixed: the next pass issues and clears the failures. */
	unlink(ca);
	ck_assert_int_eq(run_once(cfg, NULL), 0);
	ck_assert_int_eq(cs_state_load(state, "a", &st, err, sizeof(err)), 0);
	ck_assert_int_eq(st.failures, 0);
	ck_assert_ptr_null(st.last_error);
	ck_assert_uint_eq(st.n_gens, 1);
	cs_state_clear(&st);
	free(state);
	free(ca);
	free(text);
	cs_config_free(cfg);
}
END_TEST

/* The issuer's renewal window (ARI) decides the next renewal when there is one. */
START_TEST(test_pipeline_window_sets_next_renewal)
{
	char certs[1024], err[512];
	uv_loop_t loop;
	struct pass p = { 0 };
	struct cs_cert_status st;

	snprintf(certs, sizeof(certs),
		 "[cert \"a\"]\nissuer = local\nnames = a.example.test\nbundle = %s/a.pem\n", tmp);
	char *text = conf_text(certs);
	struct cs_config *cfg = load_conf(text);
	uv_loop_init(&loop);
	struct cs_pipeline *pl = cs_pipeline_new(&loop, cfg, err, sizeof(err));
	ck_assert_msg(pl != NULL, "%s", err);
	cs_pipeline_start(pl, true, on_done, &p);
	while (p.done == 0 && uv_run(&loop, UV_RUN_ONCE))
		;
	ck_assert_int_eq(p.failures, 0);
	cs_pipeline_status(pl, 0, &st);
	time_t before = st.next_renewal;
	/* 90 days of validity: renew_before would say about 60 days from now. */
	ck_assert_int_gt(before, time(NULL) + 50 * 86400);

	time_t ws = time(NULL) + 10 * 86400, we = ws + 86400;
	ck_assert_int_eq(cs_pipeline_set_window(pl, "a", ws, we), 0);
	cs_pipeline_status(pl, 0, &st);
	ck_assert_int_ge(st.next_renewal, ws);
	ck_assert_int_lt(st.next_renewal, we);
	ck_assert_msg(strstr(st.next_reason, "window") != NULL, "%s", st.next_reason);
	ck_assert_int_eq(cs_pipeline_set_window(pl, "a", we, ws), -EINVAL);
	ck_assert_int_eq(cs_pipeline_set_window(pl, "nope", ws, we), -ENOENT);

	cs_pipeline_close(pl, on_closed, &p);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(p.closed, 1);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	free(text);
	cs_config_free(cfg);
}
END_TEST

Suite *pipeline_suite(void)
{
	Suite *s = suite_create("pipeline");
	TCase *tc = tcase_create("pipeline");

	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_pipeline_deploy_keeps_generations);
	tcase_add_test(tc, test_pipeline_deploy_refuses_unfit);
	tcase_add_test(tc, test_pipeline_deploy_rolls_back);
	tcase_add_test(tc, test_pipeline_digests_tell_own_writes);
	tcase_add_test(tc, test_pipeline_state_round_trip);
	tcase_add_test(tc, test_pipeline_state_profile);
	tcase_add_test(tc, test_pipeline_watch_close_write_and_symlink_swap);
	tcase_add_test(tc, test_pipeline_once_issues_and_debounces);
	tcase_add_test(tc, test_pipeline_once_failure_in_state);
	tcase_add_test(tc, test_pipeline_window_sets_next_renewal);
	suite_add_tcase(s, tc);
	return s;
}
