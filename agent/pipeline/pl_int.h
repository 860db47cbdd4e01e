/*
 * pl_int - what the files of the pipeline share: the per-cert record, the
 * pipeline itself and the functions one stage calls in another. Not for use
 * outside agent/pipeline/.
 */
#ifndef CS_PL_INT_H
#define CS_PL_INT_H

#include "cs_pipeline.h"
#include "cs_acme.h"
#include "cs_capsync.h"
#include "cs_deploy.h"
#include "cs_issuer.h"
#include "cs_log.h"
#include "cs_reloads.h"
#include "cs_watch.h"

#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#define CHECK_DELAY_MS 100        /* settle time after a watch event */
#define TIMER_MAX_MS (24LL * 3600 * 1000) /* re-check the clock at least daily */

enum once_result { ONCE_PENDING = 0, ONCE_VALID, ONCE_RENEWED, ONCE_REPAIRED, ONCE_FAILED };

struct interest {
	char *dir, *name;
};

struct cert {
	struct cs_pipeline *pl;
	const struct cs_cfg_cert *cfg;
	cs_issuer *issuer; /* borrowed from pl->issuers */
	uint64_t seed;

	struct cs_state st;
	bool state_loaded;

	/* What the last examine found. */
	enum cs_verdict verdict;
	char reason[1024];
	cs_material *m; /* deployed material (NULL when none could be read) */
	time_t not_before, not_after;
	char serial[80];
	char sha256[CS_FP_MAX];
	struct cs_deploy_digests known;

	/* The issuer's renewal window (ARI) for the leaf with sha256 win_sha. */
	bool has_window;
	time_t win_start, win_end;
	char win_sha[CS_FP_MAX];
	/* Asking an ACME issuer for that window: in flight, next time (0: not). */
	bool ari_busy;
	time_t ari_next;
	char ari_sha[CS_FP_MAX];

	enum cs_cert_state state;
	time_t due;
	const char *due_reason;
	char last_reload[1024];

	/*
	 * After a renewal: the reloads still to report, then the verify probes;
	 * a failure of either rolls back to generation rollback_gen (0: none).
	 */
	unsigned pending_reloads;
	bool after_renewal, rolling_back, reload_failed, reload_skipped;
	int rollback_gen;
	char new_serial[80], new_sha[CS_FP_MAX];
	char reload_err[1024];
	char last_verify[2048];
	enum cs_verify_state verify;

	bool busy;          /* a job is in flight */
	bool revoking;      /* a revocation of the deployed leaf is in flight */
	bool fresh_key;     /* the next renewal makes a new key (the old leaf was revoked) */
	bool dirty;         /* a watch event arrived while busy */
	bool full_check;    /* examine even when the digests did not change */
	bool saving, save_again;
	uv_timer_t check_timer;
	enum once_result once;

	struct interest *interest;
	size_t n_interest;
};

struct cs_pipeline {
	uv_loop_t *loop;
	const struct cs_config *cfg;
	cs_issuer **issuers;
	size_t n_issuers;
	struct cs_reloads *rl; /* the reloaders, debounced */
	struct cs_capsync *capsync; /* [capath] and [clientcerts]; NULL when it could not start */
	struct cert **certs;
	size_t n_certs;

	uv_timer_t timer;
	struct cs_watch *watch;

	unsigned inflight;
	unsigned closing_handles;
	size_t issuers_open;
	bool issuers_closing;
	bool started, once, closing, draining, tearing_down;
	bool once_done;
	int once_failures;
	void (*done_cb)(void *arg, int failures);
	void *done_arg;

	const struct cs_config *pending_cfg;
	void (*release_cb)(void *arg, const struct cs_config *old);
	void *release_arg;

	void (*close_cb)(void *arg);
	void *close_arg;
};


struct renew_job {
	uv_work_t req;
	struct cert *c;
	const struct cs_cfg_cert *cfg;
	const char *state_dir;
	EVP_PKEY *reuse;  /* the deployed key, when reuse_key = yes */
	EVP_PKEY *key;
	X509_REQ *csr;
	X509 *replaces;
	cs_material *m;   /* the new set */
	cs_material *prev;
	int gen;
	time_t now;
	int rc;
	int64_t retry_after;
	struct cs_deploy_digests written;
	struct cs_examined ex;
	char err[1024];
};


/* cs_pipeline.c */
void pl_once_finish(struct cert *c, enum once_result r);
void pl_once_summary(struct cs_pipeline *pl);

/* pl_ari.c */
void pl_ari_fetch(struct cert *c);
void pl_set_window(struct cert *c, time_t start, time_t end, time_t now);

/* pl_build.c */
int pl_build(struct cs_pipeline *pl);
void pl_close_issuers(struct cs_pipeline *pl);
void pl_examine_all(struct cs_pipeline *pl);
void pl_maybe_quiesced(struct cs_pipeline *pl);
void pl_teardown(struct cs_pipeline *pl);

/* pl_check.c */
void pl_cert_idle(struct cert *c);
void pl_on_check_timer(uv_timer_t *t);
void pl_push_gen(struct cert *c, int n, time_t now);
void pl_start_check(struct cert *c);
void pl_take_examined(struct cert *c, struct cs_examined *ex);

/* pl_deploy.c */
void pl_deploy_done(uv_work_t *req, int status);
void pl_deploy_work(uv_work_t *req);

/* pl_publish.c */
bool pl_capsync_busy(const struct cs_pipeline *pl);
void pl_capsync_publish(struct cs_pipeline *pl, cs_issuer *is);
void pl_capsync_start(struct cs_pipeline *pl);
void pl_on_capsync_done(void *arg, const struct cs_capsync_report *r);

/* pl_reload.c */
bool pl_reloads_busy(const struct cs_pipeline *pl);
bool pl_reloads_pending(const struct cs_pipeline *pl);
void pl_flush_reloads(struct cs_pipeline *pl);
void pl_on_reload_result(void *arg, void *owner, const char *reloader,
			     const struct cs_reload_result *res);
void pl_request_reloads(struct cert *c);

/* pl_renew.c */
bool pl_start_renew(struct cert *c);
void pl_renew_failed(struct renew_job *j, const char *msg, int64_t retry_after);
void pl_renew_job_free(struct renew_job *j);

/* pl_rollback.c */
void pl_rollback(struct cert *c, const char *why);

/* pl_save.c */
void pl_save_state(struct cert *c);

/* pl_schedule.c */
bool pl_verdict_ok(const struct cert *c);
char *pl_fmt_delay(int64_t s, char *buf, size_t len);
char *pl_fmt_time(time_t t, char *buf, size_t len);
void pl_arm_timer(struct cs_pipeline *pl);
void pl_log_schedule(const struct cert *c, time_t now);
void pl_schedule(struct cert *c, time_t now);

/* pl_watch.c */
void pl_clear_interest(struct cert *c);
void pl_on_overflow(void *arg);
void pl_on_watch(void *arg, const char *dir, const char *name, uint32_t mask);
void pl_rewatch(struct cs_pipeline *pl);
void pl_schedule_check(struct cert *c);

#endif
