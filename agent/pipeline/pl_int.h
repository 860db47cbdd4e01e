/*
 * pl_int - what the files of the pipeline share: the per-cert record, the
 * pipeline itself and the functions one stage calls in another. Not for use
 * outside agent/pipeline/.
 */
#ifndef CS_PL_INT_H
#define CS_PL_INT_H

#include "cs_pipeline.h"
#include "cs_dane.h"
#include "cs_capsync.h"
#include "cs_deploy.h"
#include "cs_events.h"
#include "cs_htab.h"
#include "cs_issuer.h"
#include "cs_log.h"
#include "cs_reloads.h"
#include "cs_watch.h"
#include "pl_fsm.h"

#include <sys/queue.h>

#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#define CHECK_DELAY_MS 100        /* settle time after a watch event with settle = 0 */
#define TIMER_MAX_MS (24LL * 3600 * 1000) /* re-check the clock at least daily */
#define PL_REPAIRS_MAX 5                  /* repairs of one cert a minute before they stop */
#define PL_FIRST_CHECKS 32                /* first examinations queued at a time (pl_check.c) */

enum once_result { ONCE_PENDING = 0, ONCE_VALID, ONCE_RENEWED, ONCE_REPAIRED, ONCE_FAILED };

/*
 * A directory watched for the certs (and the [capath]/[clientcerts] sync):
 * counted by the interests in it and by the capsync's declarations, removed
 * from the inotify set when the count reaches zero. In pl->wdirs by path.
 */
struct pl_wdir {
	struct cs_htab_node node;
	char *path;
	unsigned refs;
	LIST_HEAD(, interest) interests;
};

/* One file (dir, name) a cert must hear about; in pl->interests by (dir, name). */
struct interest {
	struct cs_htab_node node;
	struct cert *c;
	struct pl_wdir *d; /* a reference */
	char *name;
	LIST_ENTRY(interest) in_dir;
};

/*
 * The pipeline's handle on an issuer: counted by the renewals that use it,
 * so that a renewal never calls into an issuer that has been closed (is is
 * NULL from the moment the close starts) and the handle outlives both.
 */
struct pl_issuer {
	cs_issuer *is;
	char *name;
	unsigned refs; /* the pipeline's own, plus one per renewal */
};

/* Someone waiting for the end of a renewal (certsyncctl renew --wait). */
struct pl_waiter {
	SLIST_ENTRY(pl_waiter) next;
	cs_renewal_cb cb;
	void *arg;
};

/*
 * One renewal of one certificate, from its start (due, forced, revoked) to
 * its end (verified, deployed, rolled back, failed or abandoned): everything
 * it needs and everything it found out. It lives in cert->renewal while the
 * certificate is in a stage of it.
 */
struct renewal {
	unsigned id;
	struct pl_issuer *issuer; /* a reference */
	bool forced;
	int gen;                  /* the new generation, 0 until there is one */
	int rollback_gen;         /* the last good generation to go back to, 0: none */
	bool rolled_back;         /* the reload after the rollback ends it */
	char new_serial[80], new_sha[CS_FP_MAX];
	char error[3000];         /* why it did not succeed (so far) */
	SLIST_HEAD(, pl_waiter) waiters;
};

/* The reloads of one RELOADING stage: how many are still to report, and how they went. */
struct pl_round {
	unsigned pending;
	bool failed, skipped;
	char *err; /* the first failure (malloc'd), NULL: none */
};

/* The reason of a valid certificate that is someone else's, taken on purpose. */
#define PL_REASON_ADOPTED "valid (adopted)"

struct cert {
	struct cs_pipeline *pl;
	const struct cs_cfg_cert *cfg;
	size_t idx;                   /* in pl->certs, the configuration's order */
	struct cs_htab_node by_name;  /* in pl->by_name */
	unsigned watch_mark;          /* pl_on_watch's: already picked for this event */
	size_t hpos;                  /* in pl->heap: index + 1; 0 when not there */
	time_t hkey;                  /* the wake-up moment it is filed under there */
	struct pl_issuer *issuer; /* borrowed from pl->issuers: the first of the list */
	/* Every issuer of the cert's list, in order (issuers[0] == issuer): the
	   failover rule (pl_renewal.c) moves a failing renewal along it. */
	struct pl_issuer *issuers[CS_CFG_MAX_ISSUERS];
	size_t n_issuers;
	uint64_t seed;

	struct cs_state st;
	bool state_loaded;

	/* What the last examine found. */
	enum cs_verdict verdict;
	char *reason;   /* malloc'd (pl_text_set), NULL only when memory ran out */
	/* The deployed material as DER (pl_material.c); NULL when none could be read. */
	unsigned char *dep;
	size_t dep_len;
	/* No DER kept: the deployed material is the generation whose leaf is
	   sha256 (a start that found the outputs as the state recorded them). */
	bool dep_lazy;
	time_t not_before, not_after;
	char serial[80];
	char sha256[CS_FP_MAX];
	struct cs_deploy_digests known;
	char known_fp[65]; /* cs_deploy_fingerprint of known ("": not computed) */

	/* The issuer's renewal window (ARI) for the leaf with sha256 win_sha. */
	bool has_window;
	time_t win_start, win_end;
	char win_sha[CS_FP_MAX];
	time_t win_asked; /* when the issuer first gave that window (cs_sched_in) */
	/* Asking an ACME issuer for that window: in flight, next time (0: not). */
	bool ari_busy;
	time_t ari_next;
	char ari_sha[CS_FP_MAX];
	/* DANE (pl_dane.c): the rollover's state, the next look (0: none), one in flight. */
	struct pl_dane *dane;
	time_t dane_next;
	bool dane_busy;

	/* The state machine (pl_fsm.h): where it is, since when, what for. */
	enum pl_stage stage;
	time_t stage_since;
	struct renewal *renewal; /* NULL between renewals */
	struct pl_round round;   /* while RELOADING */

	enum cs_cert_state state; /* written through pl_set_state only */
	time_t due;               /* written through pl_set_due only */
	size_t dpos;              /* in pl->dheap: index + 1; 0 when not there */
	LIST_ENTRY(cert) in_bad;  /* in pl->bad while failed, expired or missing */
	const char *due_reason;
	char due_why[400];        /* due_reason when it is made up here (a profile) */
	/* Allocated when there is something to say (pl_text_set), else NULL. */
	char *last_reload;
	char *last_verify;
	enum cs_verify_state verify;

	/* A renewal asked for while CHECKING: it starts as soon as the cert is idle. */
	struct {
		bool set, force;
		bool reload; /* a reload (certsyncctl reload), not a renewal */
		struct pl_waiter *w;
	} queued;
	bool fresh_key;     /* the next renewal makes a new key (the old leaf was revoked) */
	/* certsyncctl adopt: who to tell when the examination it asked for is done. */
	void (*adopt_cb)(void *arg, int status, const char *msg);
	void *adopt_arg;
	/*
	 * The last repairs, newest first: more than PL_REPAIRS_MAX within a
	 * minute means something else keeps changing the outputs (another
	 * [cert] writing the same file by another name): repairs stop until a
	 * renewal succeeds, a forced renewal or a new configuration.
	 */
	time_t repairs[PL_REPAIRS_MAX];
	bool repairs_stopped;
	bool dirty;         /* a watch event arrived while not idle */
	bool full_check;    /* examine even when the digests did not change */
	bool saving, save_again;
	uv_timer_t check_timer;
	enum once_result once;

	struct interest **interest;
	size_t n_interest;
	struct pl_drift *drift;       /* the drift checks (pl_drift.c); NULL: none */
	STAILQ_ENTRY(cert) in_firstq; /* in pl->firstq while its first examination waits */
};

struct cs_pipeline {
	uv_loop_t *loop;
	const struct cs_config *cfg;
	struct cs_pipeline_drivers drv;
	struct pl_issuer **issuers;
	size_t n_issuers;
	struct cs_reloads *rl; /* the reloaders, debounced */
	struct cs_capsync *capsync; /* [capath] and [clientcerts]; NULL when it could not start */
	struct cert **certs;
	size_t n_certs;
	struct cs_htab by_name; /* the certs by cfg->name */
	unsigned renewal_seq;

	uv_timer_t timer;
	uv_timer_t crl_timer; /* the next CRL of a local CA to sign */
	/*
	 * The idle certs by the moment they need the timer (pl_schedule.c): a
	 * min-heap whose keys are never later than the truth (every change that
	 * makes a cert's moment earlier, or the cert idle, files it again) and
	 * are corrected when they reach the top.
	 */
	struct cert **heap;
	size_t n_heap, cap_heap;
	/* pl_stats.c: kept on every change, so that no request walks every cert. */
	size_t per_state[CS_CERT_N_STATES];
	struct cert **dheap; /* every cert with a due moment, earliest first */
	size_t n_dheap, cap_dheap;
	LIST_HEAD(, cert) bad; /* the certs failed, expired or missing */
	size_t n_bad;
	/* pl_check.c: CHECKING certs whose examination is not queued yet, and how many are. */
	STAILQ_HEAD(, cert) firstq;
	unsigned first_running;
	struct cs_watch *watch;
	struct cs_htab wdirs, interests; /* pl_watch.c */
	struct pl_wdir **cap_dirs;       /* the capsync's directories, referenced */
	size_t n_cap_dirs;
	unsigned watch_seq;
	struct pl_clock *clock; /* notices steps of the wall clock; NULL in --once */
	/* pl_drift.c: the certs with a drift, checks under way, jitter's generator. */
	LIST_HEAD(, pl_drift) drifted;
	size_t n_drifted;
	unsigned drift_running;
	uint64_t drift_rng;

	int inflight; /* jobs, issuances, probes and saves; never negative */
	unsigned closing_handles;
	size_t issuers_open;
	bool issuers_closing;
	bool started, once, closing, draining, tearing_down;
	bool once_done;
	size_t once_pending; /* certs whose once is ONCE_PENDING */
	int once_failures;
	void (*done_cb)(void *arg, int failures);
	void *done_arg;

	const struct cs_config *pending_cfg;
	void (*release_cb)(void *arg, const struct cs_config *old);
	void *release_arg;

	void (*close_cb)(void *arg);
	void *close_arg;

	struct cs_events events; /* the subscribers (cs_pipeline_subscribe) */
};

/* The work of a renewal's key, CSR and deploy steps (pl_renew, pl_deploy). */
/* The deployed material as kept between passes (see pl_material.c). */
struct pl_der {
	unsigned char *p;
	size_t len;
};

/*
 * What a job needs to decode c's deployed material on the work queue: a copy
 * of the DER kept in memory, or the generation under state_dir that holds
 * the deployed leaf. Taken on the loop thread (pl_material_ref; set is false
 * when nothing is deployed), decoded on any thread (pl_material_ref_decode:
 * NULL with err set), released with pl_material_ref_clear (wiped).
 */
struct pl_material_ref {
	bool set;
	unsigned char *der;
	size_t len;
	int gen;                 /* der == NULL: the generation to read */
	char sha256[CS_FP_MAX];  /* ... whose leaf must have this digest */
	char serial[80];
	const char *state_dir, *name; /* borrowed from the configuration */
};

/* The key a DANE renewal took (pl_dane_key_pick). */
enum pl_dane_key {
	PL_DANE_KEY_NONE = 0, /* not a DANE renewal */
	PL_DANE_KEY_CURRENT,  /* the deployed one: the next one's record is not ready */
	PL_DANE_KEY_NEXT,     /* the staged one, whose record has been visible for 2 x TTL */
	PL_DANE_KEY_FIRST,    /* the staged one, for a first certificate */
	PL_DANE_KEY_FIRST_NEW, /* a new one, for a first certificate (nothing staged) */
	PL_DANE_KEY_NEW,      /* neither could be read: a new one */
};

struct renew_job {
	uv_work_t req;
	struct cert *c;
	const struct cs_cfg_cert *cfg;
	const char *state_dir;
	EVP_PKEY *reuse;  /* the deployed key, when reuse_key = yes */
	EVP_PKEY *key;
	struct cs_der csr;      /* the CSR, DER */
	struct cs_der replaces; /* the deployed leaf, DER (n = 0: none) */
	cs_material *m;   /* the new set */
	cs_material *prev; /* the deployed set, to put back a half-done deploy */
	/* The deployed set, decoded on the work queue (pl_renew_prev): into prev
	   when usable, and for the leaf it replaces and the key it may reuse. */
	struct pl_material_ref prev_ref;
	bool prev_usable, may_reuse;
	/* DANE (3 1 1): take the staged key whose record is dane_hex (dane_next),
	   else keep the current one; dane_note says why, dane_used what was taken. */
	bool dane, dane_next;
	char dane_hex[CS_DANE_HEX];
	char dane_note[300];
	enum pl_dane_key dane_used;
	/* DANE: only material whose record is one of these is deployed (dane_gate). */
	bool dane_gate;
	int dane_usage;
	size_t dane_n_allow;
	char dane_allow[CS_DANE_MAX + 1][CS_DANE_HEX];
	char prev_err[600]; /* why it could not be decoded ("": it could) */
	struct pl_der der;  /* the deployed set encoded on the work queue */
	int gen;
	time_t now;
	int rc;
	int64_t retry_after;
	struct cs_deploy_digests written;
	char written_fp[65]; /* cs_deploy_fingerprint of written */
	struct cs_examined ex;
	bool unusable; /* the pending generation cannot be used */
	bool stored;   /* the new generation is stored, the outputs not written */
	char err[1024];
};

/*
 * On the work queue: decodes the deployed set of j (prev_ref); when it is
 * usable it is kept as j->prev (and returned), else the caller frees what is
 * returned. NULL: nothing deployed, or prev_err says why.
 */
cs_material *pl_renew_decode_prev(struct renew_job *j);
/* On the loop thread: logs (once) why the deployed set could not be decoded. */
void pl_renew_prev_report(struct renew_job *j);

/* pl_drift.c */
struct pl_drift;
/* Makes c's drift checks (c->drift; NULL without verify URLs or interval): 0 or -ENOMEM. */
int pl_drift_new(struct cert *c);
/* Arms the first check of every cert (not in --once). */
void pl_drift_start_all(struct cs_pipeline *pl);
/* c is idle again: the re-check after a reload made for a drift. */
void pl_drift_idle(struct cert *c);
/* certsyncctl reload: its reload counts as the one of the drift seen now; a re-check follows. */
void pl_drift_reload_asked(struct cert *c);
/* Stops c's timer (the pipeline closes). */
void pl_drift_stop(struct cert *c);
/*
 * Closes c's drift checks (nothing in flight) and calls cb(arg) once they
 * are freed; false (cb never runs) when c has none.
 */
bool pl_drift_close(struct cert *c, void (*cb)(void *arg), void *arg);
/* Fills the drift fields of out from c (pointers into c). */
void pl_drift_status(const struct cert *c, struct cs_cert_status *out);
/* Fills the drift fields of out. */
void pl_drift_summary(const struct cs_pipeline *pl, struct cs_pipeline_summary *out);

/* pl_fsm.c: moves c through the table with ev; false (logged) when not allowed. */
bool pl_step(struct cert *c, enum pl_event ev);

/* The pipeline's clock (a test may give its own). */
time_t pl_now(const struct cs_pipeline *pl);
int64_t pl_now_ms(const struct cs_pipeline *pl);

/*
 * Replaces the text in *dst (malloc'd, or NULL) with the formatted text cut
 * at max - 1 bytes, as the fixed buffers these replace did; on ENOMEM *dst
 * is NULL. pl_text_append adds sep and the text after what is there.
 */
void pl_text_set(char **dst, size_t max, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void pl_text_append(char **dst, size_t max, const char *sep, const char *text);

/* Counts work in flight; the count never goes below zero. */
void pl_inflight_inc(struct cs_pipeline *pl);
void pl_inflight_dec(struct cs_pipeline *pl);

/* cs_pipeline.c: starts the renewal queued in c (which is idle). */
void pl_start_queued(struct cert *c);

/*
 * Publishes ev about c to the pipeline's subscribers, with the cert's name,
 * the time and the renewal under way (when ev does not name one) filled in.
 */
void pl_event_publish(struct cert *c, struct cs_event ev);

/* Returns the cert called name, or NULL. */
struct cert *pl_find(const struct cs_pipeline *pl, const char *name);

/* True while the pipeline takes no new work (closing, switching configuration). */
bool pl_stopping(const struct cs_pipeline *pl);

/* pl_renewal.c */
bool pl_renewal_start(struct cert *c, bool forced, const char *why);
void pl_renewal_end(struct cert *c, enum cs_renewal_outcome o, const char *msg,
		    int64_t retry_after);
void pl_renewal_fail(struct cert *c, const char *msg, int64_t retry_after);
/*
 * The renewal under way has deployed what its issuer issued: the state
 * names that issuer, and why it was not the first of the list (fallback).
 */
void pl_renewal_note_issuer(struct cert *c);
/*
 * The issuer of c's list that issued the deployed certificate (the state
 * says), for a revocation or a renewal-information question; the first of
 * the list when unknown. Borrowed from the pipeline.
 */
struct pl_issuer *pl_deployed_issuer(const struct cert *c);
struct pl_issuer *pl_issuer_ref(struct pl_issuer *pi);
void pl_issuer_unref(struct pl_issuer *pi);

/* pl_clock.c */
struct pl_clock *pl_clock_new(struct cs_pipeline *pl);
void pl_clock_close(struct pl_clock *ck, void (*close_cb)(void *arg), void *arg);
void pl_clock_set(struct cs_pipeline *pl);

/* pl_deploy.c */
void pl_deploy_issued(struct cert *c, struct renew_job *j);
void pl_deploy_pending(struct cert *c);



/* cs_pipeline.c */
void pl_once_finish(struct cert *c, enum once_result r);
void pl_once_set(struct cert *c, enum once_result r);
void pl_once_summary(struct cs_pipeline *pl);

/* pl_ari.c */
void pl_ari_fetch(struct cert *c);

/* ---- pl_dane.c: the DANE rollover ----------------------------------------- */

/* A cert's rollover: its state, and what the last look saw. */
struct pl_dane {
	struct cs_dane_state st;
	size_t n_owners;
	char owners[CS_DANE_MAX_OWNERS][CS_DANE_OWNER_MAX];
	struct cs_dnsq_answer ans[CS_DANE_MAX_OWNERS]; /* each owner's answer */
	bool have_view;
	bool ready_logged;
	char logged_update[300], logged_check[300]; /* problems logged, to log changes only */
};

/* c's rollover, loaded from state_dir on first use; NULL without dane (or ENOMEM). */
struct pl_dane *pl_dane_get(struct cert *c);
/* Starts a look (stage, publish, ask the resolver) unless one is in flight. */
void pl_dane_look(struct cert *c);
/* c was examined: its first look is due now. */
void pl_dane_checked(struct cert *c);
/* Loop: which key the renewal j of c takes (j->dane...). */
void pl_dane_key_plan(struct cert *c, struct renew_job *j);
/* Work queue: that key (a reference for j), or NULL for a new one; m: the deployed set. */
EVP_PKEY *pl_dane_key_pick(struct renew_job *j, const cs_material *m);
/*
 * Work queue: 0 when m may be deployed under DANE (its key's, or issuer's,
 * record is published and validated, or it is the one deployed now), else
 * -EPERM with j->err saying why.
 */
int pl_dane_gate(struct renew_job *j, const cs_material *m);
/* Loop: logs (and counts) the key j took. */
void pl_dane_key_report(struct cert *c, const struct renew_job *j);
/* The DANE part of c's status (nothing without dane). */
void pl_dane_status(const struct cert *c, struct cs_cert_status *out);
void pl_ari_checked(struct cert *c);
void pl_set_window(struct cert *c, time_t start, time_t end, time_t now);

/* pl_build.c */
int pl_build(struct cs_pipeline *pl);
void pl_close_issuers(struct cs_pipeline *pl);
void pl_maybe_quiesced(struct cs_pipeline *pl);
void pl_teardown(struct cs_pipeline *pl);

/* pl_check.c */
void pl_cert_idle(struct cert *c);
void pl_once_checked(struct cert *c, time_t now);
void pl_examine_all(struct cs_pipeline *pl);
void pl_feed_checks(struct cs_pipeline *pl);
void pl_on_check_timer(uv_timer_t *t);
void pl_push_gen(struct cert *c, int n, time_t now);
void pl_start_check(struct cert *c);
void pl_take_examined(struct cert *c, struct cs_examined *ex, struct pl_der *der);


/* pl_publish.c */
bool pl_capsync_busy(const struct cs_pipeline *pl);
void pl_capsync_publish(struct cs_pipeline *pl, cs_issuer *is);
void pl_capsync_start(struct cs_pipeline *pl);
void pl_on_capsync_done(void *arg, const struct cs_capsync_report *r);
/* A deploy of c changed its outputs: a capath or clientcerts directory holding one is updated. */
void pl_capsync_outputs_changed(struct cs_pipeline *pl, const struct cert *c);
/* The local CAs' CRLs: read again (and signed again when due) at start and on a change of crl.pem in dir. */
void pl_crl_start(struct cs_pipeline *pl);
void pl_crl_changed(struct cs_pipeline *pl, const char *dir);

/* pl_reload.c */
bool pl_reloads_busy(const struct cs_pipeline *pl);
bool pl_reloads_pending(const struct cs_pipeline *pl);
void pl_flush_reloads(struct cs_pipeline *pl);
void pl_on_reload_result(void *arg, void *owner, const char *reloader,
			 const struct cs_reload_result *res);
void pl_reload_start(struct cert *c);

/* pl_renew.c */
void pl_keygen_start(struct cert *c);
struct renew_job *pl_renew_job_new(struct cert *c);
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
/*
 * When the deployed leaf is due by the schedule's own rule (renew_before,
 * jitter, ARI for this leaf), with the rule in *reason; nothing else
 * (failures, a changed issuer) counted.
 */
time_t pl_due_by_rule(const struct cert *c, time_t now, const char **reason);
/* The profile c's issuer orders with ("": none), borrowed from the configuration. */
const char *pl_profile_of(const struct cert *c);
void pl_timer_forget_all(struct cs_pipeline *pl);
void pl_timer_touch(struct cert *c);

/* pl_material.c */
/*
 * On any thread: m encoded as pl_material keeps it, so that the loop only
 * takes the bytes (encoding a key costs OpenSSL 3 tens of microseconds, more
 * under load). 0 (out->p NULL when m holds nothing) or -ENOMEM.
 */
int pl_material_encode(const cs_material *m, struct pl_der *out);
/* Wipes and frees d's bytes. */
void pl_der_clear(struct pl_der *d);
/* Keeps d (taken) as c's deployed material, m (freed) when d holds nothing. */
void pl_material_keep_encoded(struct cert *c, cs_material *m, struct pl_der *d);
/* Keeps m (taken; NULL: none) as what c has deployed. */
void pl_material_keep(struct cert *c, cs_material *m);
/*
 * Keeps no DER: the deployed material is the generation under state_dir
 * whose leaf is c->sha256, read when a step needs it.
 */
void pl_material_lazy(struct cert *c);
/* True when c keeps deployed material (or knows where it is). */
bool pl_material_has(const struct cert *c);
/* Returns the deployed material decoded anew (the caller frees it), or NULL (logged). */
cs_material *pl_material_get(const struct cert *c);

int pl_material_ref(const struct cert *c, struct pl_material_ref *r);
cs_material *pl_material_ref_decode(const struct pl_material_ref *r, char *err, size_t errlen);
void pl_material_ref_clear(struct pl_material_ref *r);

/* pl_stats.c */
/* Counts a new cert (state unknown) and files its due moment. */
void pl_stats_add(struct cert *c);
/* Sets c->state and keeps the counts per state and the list of problems. */
void pl_set_state(struct cert *c, enum cs_cert_state s);
/* Sets c->due and keeps the earliest next renewal (0: none). */
void pl_set_due(struct cert *c, time_t due);
/* Forgets every cert (they are going away). */
void pl_stats_forget_all(struct cs_pipeline *pl);

/* cs_pipeline.c: fills out from c (pointers into c, valid until the next loop turn). */
void pl_status_of(const struct cert *c, struct cs_cert_status *out);

/* pl_watch.c */
void pl_clear_interest(struct cert *c);
void pl_on_overflow(void *arg);
void pl_on_watch(void *arg, const char *dir, const char *name, uint32_t mask);
void pl_rewatch(struct cs_pipeline *pl);
void pl_rewatch_capsync(struct cs_pipeline *pl);
void pl_unwatch_capsync(struct cs_pipeline *pl);
void pl_watch_cert(struct cert *c);
void pl_schedule_check(struct cert *c);

#endif
