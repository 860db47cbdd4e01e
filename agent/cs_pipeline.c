/*
 * cs_pipeline - the renewal pipeline. See cs_pipeline.h.
 *
 * Threads: everything here runs on the loop thread except the bodies of the
 * work-queue jobs (examine, key generation and CSR, deploy, state saves),
 * which only read the configuration and the job's own copies. A cert with a
 * job in flight is "busy": the loop does not touch what the job reads, and
 * watch events for it are remembered (dirty) and looked at afterwards.
 *
 * Own writes: after every deploy (and every examine) the digests of the
 * output files are kept in cert->known. A watch event leads to a check that
 * first digests the files again; when nothing differs from what is known,
 * the event was ours (or changed nothing) and is ignored.
 *
 * Configuration switches (SIGHUP) and close wait until nothing is in flight
 * (pl->inflight counts queued jobs, issuances and state saves; reloads are
 * counted by cs_reloads),
 * then tear the issuers, reloaders and certs down and build them again.
 */
#include "cs_pipeline.h"
#include "cs_acme.h"
#include "cs_capsync.h"
#include "cs_csr.h"
#include "cs_deploy.h"
#include "cs_key.h"
#include "cs_localca.h"
#include "cs_log.h"
#include "cs_reloads.h"
#include "cs_verify.h"
#include "cs_sched.h"
#include "cs_watch.h"
#include "cs_x509.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

static void arm_timer(struct cs_pipeline *pl);
static void maybe_quiesced(struct cs_pipeline *pl);
static void start_check(struct cert *c);
static bool start_renew(struct cert *c);
static void schedule_check(struct cert *c);
static void close_issuers(struct cs_pipeline *pl);
static void save_state(struct cert *c);
static void rewatch(struct cs_pipeline *pl);
static void ari_fetch(struct cert *c);
static void log_schedule(const struct cert *c, time_t now);

const char *cs_cert_state_name(enum cs_cert_state s)
{
	static const char *const names[] = {
		[CS_CERT_UNKNOWN] = "unknown",   [CS_CERT_VALID] = "valid",
		[CS_CERT_DUE] = "due",           [CS_CERT_RENEWING] = "renewing",
		[CS_CERT_FAILED] = "failed",     [CS_CERT_EXPIRED] = "expired",
		[CS_CERT_MISSING] = "missing",
	};
	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

static char *fmt_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (t == 0) {
		snprintf(buf, len, "never");
		return buf;
	}
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
	return buf;
}

static char *fmt_delay(int64_t s, char *buf, size_t len)
{
	if (s <= 0)
		snprintf(buf, len, "now");
	else
		cs_cfg_format_duration(s, buf, len);
	return buf;
}

/* ---- state saves ---------------------------------------------------- */

struct save_job {
	uv_work_t req;
	struct cert *c;
	const char *state_dir;
	const char *name;
	struct cs_state snap;
	int rc;
	char err[512];
};

static void save_work(uv_work_t *req)
{
	struct save_job *j = req->data;

	j->rc = cs_state_save(j->state_dir, j->name, &j->snap, j->err, sizeof(j->err));
}

static void save_done(uv_work_t *req, int status)
{
	struct save_job *j = req->data;
	struct cert *c = j->c;
	struct cs_pipeline *pl = c->pl;

	(void)status;
	if (j->rc < 0)
		cs_err("%s: cannot save the state: %s", c->cfg->name, j->err);
	cs_state_clear(&j->snap);
	free(j);
	c->saving = false;
	pl->inflight--;
	if (c->save_again) {
		c->save_again = false;
		save_state(c);
	}
	maybe_quiesced(pl);
}

/* Writes a snapshot of c's state in the background; one save per cert at a time. */
static void save_state(struct cert *c)
{
	struct cs_pipeline *pl = c->pl;
	struct save_job *j;

	/* Never over what is on disk before it has been read. */
	if (!c->state_loaded)
		return;
	if (c->saving) {
		c->save_again = true;
		return;
	}
	j = calloc(1, sizeof(*j));
	if (j == NULL) {
		cs_err("%s: cannot save the state: out of memory", c->cfg->name);
		return;
	}
	j->req.data = j;
	j->c = c;
	j->state_dir = pl->cfg->agent.state_dir;
	j->name = c->cfg->name;
	j->snap = c->st;
	j->snap.last_error = c->st.last_error ? strdup(c->st.last_error) : NULL;
	if (uv_queue_work(pl->loop, &j->req, save_work, save_done) < 0) {
		cs_err("%s: cannot save the state: cannot queue work", c->cfg->name);
		cs_state_clear(&j->snap);
		free(j);
		return;
	}
	c->saving = true;
	pl->inflight++;
}

/* ---- schedule ----------------------------------------------------------- */

static bool verdict_ok(const struct cert *c)
{
	return c->verdict == CS_EX_OK && c->m != NULL;
}

/* Sets c->due and c->state from what is deployed and the failure history. */
static void schedule(struct cert *c, time_t now)
{
	const struct cs_config *cfg = c->pl->cfg;

	if (verdict_ok(c)) {
		struct cs_sched_in in = {
			.now = now,
			.not_before = c->not_before,
			.not_after = c->not_after,
			.renew_before = c->cfg->renew_before.set ? c->cfg->renew_before
								 : cfg->agent.renew_before,
			.jitter = c->cfg->jitter.set ? c->cfg->jitter : cfg->agent.jitter,
			.seed = c->seed,
			.has_window = c->has_window && strcmp(c->win_sha, c->sha256) == 0,
			.window_start = c->win_start,
			.window_end = c->win_end,
		};
		c->due = cs_sched_due(&in, &c->due_reason);
		c->state = c->due <= now ? CS_CERT_DUE : CS_CERT_VALID;
	} else {
		c->due = now;
		c->due_reason = "nothing usable is deployed";
		c->state = c->verdict == CS_EX_MISSING   ? CS_CERT_MISSING
			   : c->verdict == CS_EX_EXPIRED ? CS_CERT_EXPIRED
							 : CS_CERT_DUE;
	}
	if (c->st.failures > 0 && c->st.next_attempt > c->due) {
		c->due = c->st.next_attempt;
		c->due_reason = "retry after a failure";
	}
	/* Failing renewals show, unless what is deployed is already gone or expired. */
	if (c->st.failures > 0 && c->state != CS_CERT_MISSING && c->state != CS_CERT_EXPIRED)
		c->state = CS_CERT_FAILED;
	c->st.next_due = c->due;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_timer(uv_timer_t *t)
{
	struct cs_pipeline *pl = t->data;
	time_t now = time(NULL);

	for (size_t i = 0; i < pl->n_certs; i++) {
		struct cert *c = pl->certs[i];
		if (!c->busy && c->due <= now && !start_renew(c))
			c->due = now + (time_t)pl->cfg->agent.retry_min; /* no busy loop */
		if (!c->busy && c->ari_next != 0 && c->ari_next <= now)
			ari_fetch(c);
	}
	arm_timer(pl);
}

/* One timer for the earliest due moment of all certs that are not busy. */
static void arm_timer(struct cs_pipeline *pl)
{
	time_t earliest = 0;
	bool any = false;

	if (pl->once || pl->closing || pl->draining || pl->tearing_down)
		return;
	for (size_t i = 0; i < pl->n_certs; i++) {
		struct cert *c = pl->certs[i];
		if (c->busy)
			continue;
		if (!any || c->due < earliest)
			earliest = c->due;
		if (c->ari_next != 0 && !c->ari_busy && c->ari_next < earliest)
			earliest = c->ari_next;
		any = true;
	}
	if (!any) {
		uv_timer_stop(&pl->timer);
		return;
	}
	int64_t delay = (int64_t)earliest * 1000 - now_ms();
	if (delay < 0)
		delay = 0;
	if (delay > TIMER_MAX_MS)
		delay = TIMER_MAX_MS;
	uv_timer_start(&pl->timer, on_timer, (uint64_t)delay, 0);
}

static void log_schedule(const struct cert *c, time_t now)
{
	char t1[40], t2[40], d[48];

	if (c->due <= now)
		snprintf(d, sizeof(d), "now");
	else
		snprintf(d, sizeof(d), "in %s", fmt_delay(c->due - now, t2, sizeof(t2)));
	if (verdict_ok(c))
		cs_info("%s: valid until %s; next renewal %s (%s: %s)", c->cfg->name,
			fmt_time(c->not_after, t1, sizeof(t1)), fmt_time(c->due, t2, sizeof(t2)), d,
			c->due_reason);
	else
		cs_info("%s: next attempt %s (%s: %s)", c->cfg->name,
			fmt_time(c->due, t2, sizeof(t2)), d, c->due_reason);
}

/* ---- the issuer's renewal window (ACME ARI) -------------------------------- */

#define ARI_POLL_S (6 * 3600)   /* ask again this often (RFC 9773 suggests hours) */
#define ARI_RETRY_S 3600        /* after an error */

/* Takes the window start..end for the leaf c->ari_sha, when it is still deployed. */
static void set_window(struct cert *c, time_t start, time_t end, time_t now)
{
	c->has_window = true;
	c->win_start = start;
	c->win_end = end;
	snprintf(c->win_sha, sizeof(c->win_sha), "%s", c->sha256);
	if (!c->busy) {
		schedule(c, now);
		log_schedule(c, now);
		save_state(c);
		arm_timer(c->pl);
	}
}

/*
 * Since when c's leaf has been in place: when the agent deployed (or adopted)
 * it, else its notBefore. notBefore alone is not enough: CAs backdate it
 * (Let's Encrypt by an hour).
 */
static time_t leaf_since(const struct cert *c)
{
	if (c->st.n_gens > 0 && strcmp(c->st.gens[0].sha256, c->sha256) == 0 &&
	    c->st.gens[0].deployed > c->not_before)
		return c->st.gens[0].deployed;
	return c->not_before;
}

static void on_ari(int status, const struct cs_acme_window *w, const char *error, void *arg)
{
	struct cert *c = arg;
	struct cs_pipeline *pl = c->pl;
	time_t now = time(NULL);

	pl->inflight--;
	c->ari_busy = false;
	if (pl->closing || pl->tearing_down || pl->draining) {
		maybe_quiesced(pl);
		return;
	}
	if (strcmp(c->ari_sha, c->sha256) != 0) {
		/* Another leaf was deployed meanwhile: ask about that one. */
		c->ari_next = now;
	} else if (status == 0) {
		int64_t again = w->retry_after > 0 ? w->retry_after : ARI_POLL_S;
		if (again < 60)
			again = 60;
		if (again > 86400)
			again = 86400;
		c->ari_next = now + (time_t)again;
		cs_info("%s: the issuer suggests renewing between %s and %s%s%s", c->cfg->name,
			fmt_time((time_t)w->start, (char[40]){ 0 }, 40),
			fmt_time((time_t)w->end, (char[40]){ 0 }, 40),
			w->explanation[0] ? "; see " : "", w->explanation);
		/*
		 * A window that opened before this certificate was put in place was
		 * not meant for it (a CA answering for the one it replaced):
		 * following it would renew again at once, and again after that.
		 */
		if ((time_t)w->start <= leaf_since(c))
			cs_info("%s: that window opened before this certificate was put in place; "
				"keeping the renew_before schedule",
				c->cfg->name);
		else
			set_window(c, (time_t)w->start, (time_t)w->end, now);
	} else if (status == -ENOTSUP) {
		cs_debug("%s: issuer %s gives no renewal windows", c->cfg->name, c->issuer->name);
		c->ari_next = 0;
	} else {
		cs_warn("%s: cannot get the renewal window from issuer %s: %s", c->cfg->name,
			c->issuer->name, error ? error : strerror(-status));
		c->ari_next = now + ARI_RETRY_S;
	}
	arm_timer(pl);
	maybe_quiesced(pl);
}

/* Asks an ACME issuer for the renewal window of the deployed leaf. */
static void ari_fetch(struct cert *c)
{
	struct cs_pipeline *pl = c->pl;
	int rc;

	c->ari_next = 0;
	/* Closing frees the issuers before work in flight ends: test that first. */
	if (pl->closing || pl->draining || pl->tearing_down || pl->issuers_closing ||
	    !cs_acme_is(c->issuer) || !verdict_ok(c) || c->ari_busy || pl->once)
		return;
	snprintf(c->ari_sha, sizeof(c->ari_sha), "%s", c->sha256);
	rc = cs_acme_renewal_info(c->issuer, c->m->leaf, on_ari, c);
	if (rc < 0) {
		cs_warn("%s: cannot ask issuer %s for the renewal window: %s", c->cfg->name,
			c->issuer->name, strerror(-rc));
		c->ari_next = time(NULL) + ARI_RETRY_S;
		return;
	}
	c->ari_busy = true;
	pl->inflight++;
}

/* ---- once mode ---------------------------------------------------------- */

static void once_finish(struct cert *c, enum once_result r)
{
	if (!c->pl->once)
		return;
	/* A repair may be followed by a renewal; the renewal's outcome counts. */
	if (c->once != ONCE_PENDING && !(c->once == ONCE_REPAIRED && r != ONCE_VALID))
		return;
	c->once = r;
	if (r == ONCE_FAILED)
		c->pl->once_failures++;
}

static void once_summary(struct cs_pipeline *pl)
{
	size_t counts[5] = { 0 };

	for (size_t i = 0; i < pl->n_certs; i++)
		counts[pl->certs[i]->once]++;
	cs_notice("one pass over %zu cert(s): %zu renewed, %zu repaired, %zu valid, %zu failed%s",
		  pl->n_certs, counts[ONCE_RENEWED], counts[ONCE_REPAIRED], counts[ONCE_VALID],
		  counts[ONCE_FAILED] + counts[ONCE_PENDING],
		  pl->once_failures > (int)counts[ONCE_FAILED]
			  ? " (and reloads or capath/clientcerts directories failed)"
			  : "");
}

/* ---- reloads ------------------------------------------------------------ */

static bool reloads_pending(const struct cs_pipeline *pl)
{
	return pl->rl != NULL && cs_reloads_pending(pl->rl);
}

static bool reloads_busy(const struct cs_pipeline *pl)
{
	return pl->rl != NULL && (cs_reloads_pending(pl->rl) || cs_reloads_running(pl->rl) > 0);
}

static void flush_reloads(struct cs_pipeline *pl)
{
	if (pl->rl != NULL)
		cs_reloads_flush(pl->rl);
}

static void rollback(struct cert *c, const char *why);

static void add_reload_item(struct cert *c, const char *item)
{
	size_t used = strlen(c->last_reload);

	snprintf(c->last_reload + used, sizeof(c->last_reload) - used, "%s%s", used ? "; " : "",
		 item);
}

static void on_verified(void *arg, bool ok, const char *summary)
{
	struct cert *c = arg;
	struct cs_pipeline *pl = c->pl;

	pl->inflight--;
	snprintf(c->last_verify, sizeof(c->last_verify), "%s", summary);
	c->verify = ok ? CS_VERIFY_OK : CS_VERIFY_FAILED;
	if (ok) {
		cs_notice("%s: verified: %s", c->cfg->name, summary);
	} else if (c->after_renewal && c->rollback_gen > 0 && !pl->closing && !pl->tearing_down) {
		char why[1100];
		snprintf(why, sizeof(why), "verify failed: %s", summary);
		rollback(c, why);
	} else {
		char msg[1100];
		snprintf(msg, sizeof(msg), "verify failed: %s", summary);
		cs_err("%s: %s", c->cfg->name, msg);
		cs_state_set_error(&c->st, msg);
		save_state(c);
		if (pl->once)
			pl->once_failures++;
	}
	c->after_renewal = false;
	maybe_quiesced(pl);
}

/*
 * All reloads asked for c have reported: after a rollback that is the end;
 * after a failed reload of a renewal, roll back; else run the verify probes.
 */
static void reloads_reported(struct cert *c)
{
	struct cs_pipeline *pl = c->pl;
	int bound = (int)(c->cfg->verify_timeout > 0 ? c->cfg->verify_timeout : 30) * 1000;

	if (c->rolling_back) {
		c->rolling_back = false;
		return;
	}
	if (c->reload_failed) {
		if (c->after_renewal && c->rollback_gen > 0 && !pl->closing && !pl->tearing_down)
			rollback(c, c->reload_err);
		c->after_renewal = false;
		return;
	}
	if (c->cfg->verify.n == 0 || pl->closing || pl->tearing_down) {
		c->after_renewal = false;
		return;
	}
	if (c->reload_skipped) {
		c->after_renewal = false;
		cs_warn("%s: not verified: a service is not running", c->cfg->name);
		snprintf(c->last_verify, sizeof(c->last_verify),
			 "not checked: a service is not running");
		c->verify = CS_VERIFY_NONE;
		return;
	}
	if (cs_verify_start(pl->loop, &c->cfg->verify, c->sha256, bound, on_verified, c) < 0) {
		cs_err("%s: cannot start the verify probes", c->cfg->name);
		c->after_renewal = false;
		return;
	}
	pl->inflight++;
}

static void on_reload_result(void *arg, void *owner, const char *reloader,
			     const struct cs_reload_result *res)
{
	struct cs_pipeline *pl = arg;
	struct cert *c = owner;
	char item[300];

	if (c == NULL) {
		maybe_quiesced(pl);
		return;
	}
	if (owner == (void *)pl) {
		/* Asked for by the CApath/clientcerts sync: logged by cs_reloads. */
		if (res->status != 0 && pl->once)
			pl->once_failures++;
		return;
	}
	if (res->status == 0 || res->not_running) {
		/* A service that is not running is reported, not a failure. */
		snprintf(item, sizeof(item), "%s: %s", reloader,
			 res->not_running ? "not running" : "ok");
		if (res->not_running) {
			cs_warn("%s: %s is not running: %s", c->cfg->name, reloader, res->message);
			c->reload_skipped = true;
		}
	} else {
		char msg[1200];
		snprintf(item, sizeof(item), "%s: failed", reloader);
		snprintf(msg, sizeof(msg), "reload %s failed: %s", reloader, res->message);
		if (!c->reload_failed)
			snprintf(c->reload_err, sizeof(c->reload_err), "%.1000s", msg);
		c->reload_failed = true;
		if (c->rolling_back && c->st.last_error != NULL) {
			/* Keep why it was rolled back; add that the services still balk. */
			char both[3000];
			snprintf(both, sizeof(both), "%.1700s; after the rollback: %.1200s",
				 c->st.last_error, msg);
			cs_state_set_error(&c->st, both);
		} else {
			cs_state_set_error(&c->st, msg);
		}
		save_state(c);
		if (pl->once)
			pl->once_failures++;
	}
	add_reload_item(c, item);
	if (c->pending_reloads > 0 && --c->pending_reloads == 0)
		reloads_reported(c);
}

/* Asks for c's reloads; a burst of requests leads to one reload per service. */
static void request_reloads(struct cert *c)
{
	struct cs_pipeline *pl = c->pl;
	struct cs_deploy_outputs o;
	char files[4096] = "";

	c->reload_failed = c->reload_skipped = false;
	if (pl->rl == NULL || c->cfg->reload.n == 0) {
		c->pending_reloads = 0;
		reloads_reported(c); /* nothing to reload: verify at once */
		return;
	}
	cs_deploy_outputs_of(c->cfg, &o);
	for (size_t k = 0; k < o.n; k++) {
		size_t used = strlen(files);
		snprintf(files + used, sizeof(files) - used, "%s%s", used ? " " : "", o.path[k]);
	}
	c->last_reload[0] = '\0';
	/* once: all reloads run together at the end of the pass */
	c->pending_reloads = (unsigned)cs_reloads_request(pl->rl, c, &c->cfg->reload, c->cfg->name,
							  files, c->serial, !pl->once);
	if (c->pending_reloads == 0)
		reloads_reported(c);
}

/* ---- CApath and client certificate directories (cs_capsync) -------------- */

static bool capsync_busy(const struct cs_pipeline *pl)
{
	return pl->capsync != NULL && cs_capsync_busy(pl->capsync);
}

static void on_capsync_done(void *arg, const struct cs_capsync_report *r)
{
	struct cs_pipeline *pl = arg;
	char changed[1024] = "";

	for (size_t i = 0; i < r->nchanged; i++) {
		size_t used = strlen(changed);
		snprintf(changed + used, sizeof(changed) - used, "%s%s", used ? ", " : "",
			 r->changed[i]);
	}
	if (r->nchanged > 0)
		cs_info("directories brought up to date: %s", changed);
	if (r->nfailed > 0 && pl->once)
		pl->once_failures += (int)r->nfailed;
	if (r->nreloads > 0 && pl->rl != NULL && !pl->tearing_down) {
		struct cs_cfg_list list = { (char **)r->reloads, r->nreloads };
		cs_reloads_request(pl->rl, pl, &list, changed[0] ? changed : "capath", "", "",
				   !pl->once);
	}
	maybe_quiesced(pl);
}

/*
 * Publishes the CA (and CRL) of issuer is, when it has them, into the
 * capaths naming it. A local CA made on first use has none before its first
 * issuance, so this runs at start and after each renewal (unchanged files
 * are not rewritten).
 */
static void capsync_publish(struct cs_pipeline *pl, cs_issuer *is)
{
	X509 *ca = NULL;
	X509_CRL *crl = NULL;

	/* A deploy that ends after SIGTERM closed the issuers must not touch them. */
	if (pl->issuers_closing)
		return;
	if (pl->capsync == NULL || is->ops->ca_material == NULL ||
	    is->ops->ca_material(is, &ca, &crl) < 0 || ca == NULL) {
		X509_CRL_free(crl);
		return;
	}
	cs_capsync_publish_issuer(pl->capsync, is->name, ca, crl);
	X509_free(ca);
	X509_CRL_free(crl);
}

static void capsync_publish_issuers(struct cs_pipeline *pl)
{
	for (size_t i = 0; i < pl->n_issuers; i++)
		capsync_publish(pl, pl->issuers[i]);
}

static void capsync_start(struct cs_pipeline *pl)
{
	if (pl->capsync == NULL)
		return;
	capsync_publish_issuers(pl);
	cs_capsync_full(pl->capsync);
}

/* ---- details of the deployed material ------------------------------------ */

/* Takes over ex's findings (and its material) as what c has deployed. */
static void take_examined(struct cert *c, struct cs_examined *ex)
{
	cs_material_free(c->m);
	c->m = ex->m;
	ex->m = NULL;
	c->verdict = ex->verdict;
	snprintf(c->reason, sizeof(c->reason), "%s", ex->reason);
	c->not_before = ex->not_before;
	c->not_after = ex->not_after;
	snprintf(c->serial, sizeof(c->serial), "%s", ex->serial);
	snprintf(c->sha256, sizeof(c->sha256), "%s", ex->sha256);
	c->seed = cs_sched_seed(c->sha256, strlen(c->sha256)) ^
		  cs_sched_seed(c->cfg->name, strlen(c->cfg->name));
}

static void push_gen(struct cert *c, int n, time_t now)
{
	struct cs_state_gen g = { .n = n, .not_after = c->not_after, .deployed = now };

	snprintf(g.serial, sizeof(g.serial), "%s", c->serial);
	snprintf(g.sha256, sizeof(g.sha256), "%.99s", c->sha256);
	cs_state_push_gen(&c->st, &g);
	if (n >= c->st.next_gen)
		c->st.next_gen = n + 1;
}

/* ---- check: digest, examine, adopt or repair ------------------------------ */

enum check_outcome { CHECK_UNCHANGED, CHECK_EXAMINED, CHECK_ADOPTED, CHECK_REPAIRED };

struct check_job {
	uv_work_t req;
	struct cert *c;
	const struct cs_cfg_cert *cfg;
	const char *state_dir;
	time_t now;
	bool full;
	bool load_state;
	struct cs_state st; /* copy (or loaded) */
	int state_rc;
	char state_err[512];
	struct cs_deploy_digests known, seen;
	enum check_outcome outcome;
	struct cs_examined ex;
	int gen;                /* adopted: its number; repaired: where from */
	char repair_err[1024];  /* why a repair was not possible */
	char adopt_err[512];
};

static void check_work(uv_work_t *req)
{
	struct check_job *j = req->data;
	const struct cs_cfg_cert *cfg = j->cfg;

	if (j->load_state)
		j->state_rc = cs_state_load(j->state_dir, cfg->name, &j->st, j->state_err,
					    sizeof(j->state_err));
	cs_deploy_digest_files(cfg, &j->seen);
	if (!j->full && cs_deploy_digests_equal(&j->seen, &j->known)) {
		j->outcome = CHECK_UNCHANGED;
		return;
	}
	j->outcome = CHECK_EXAMINED;
	cs_examine(cfg, j->now, &j->ex);
	if (j->ex.verdict == CS_EX_OK) {
		if (j->st.n_gens > 0 && strcmp(j->st.gens[0].sha256, j->ex.sha256) == 0)
			return;
		/* Another valid certificate that fits: keep it as a generation too. */
		j->gen = j->st.next_gen;
		if (cs_deploy_save_gen(j->state_dir, cfg->name, j->gen, j->ex.m, j->adopt_err,
				       sizeof(j->adopt_err)) < 0)
			j->gen = 0;
		j->outcome = CHECK_ADOPTED;
		return;
	}
	/* Unusable: put back the newest generation that is still valid. */
	j->repair_err[0] = '\0';
	for (size_t i = 0; i < j->st.n_gens; i++) {
		cs_material *m = NULL;
		struct cs_examined gx;
		char err[512];
		int n = j->st.gens[i].n;
		memset(&gx, 0, sizeof(gx));
		if (cs_deploy_load_gen(j->state_dir, cfg->name, n, &m, err, sizeof(err)) < 0) {
			snprintf(j->repair_err, sizeof(j->repair_err), "%s", err);
			continue;
		}
		if (cs_examine_material(cfg, m, j->now, &gx) != CS_EX_OK) {
			snprintf(j->repair_err, sizeof(j->repair_err), "generation %d: %.900s", n,
				 gx.reason);
			cs_material_free(m);
			continue;
		}
		if (cs_deploy(cfg, m, NULL, j->state_dir, 0, j->now, &j->seen, err,
			      sizeof(err)) < 0) {
			snprintf(j->repair_err, sizeof(j->repair_err), "%s", err);
			cs_material_free(m);
			continue;
		}
		char why[1024];
		snprintf(why, sizeof(why), "%s", j->ex.reason);
		cs_examined_clear(&j->ex);
		cs_examine_material(cfg, m, j->now, &j->ex);
		snprintf(j->ex.reason, sizeof(j->ex.reason), "%s", why);
		j->ex.m = m;
		j->gen = n;
		j->outcome = CHECK_REPAIRED;
		return;
	}
}

static void cert_idle(struct cert *c)
{
	c->busy = false;
	if (c->dirty && !c->pl->closing && !c->pl->tearing_down) {
		c->dirty = false;
		schedule_check(c);
	}
}

static void check_done(uv_work_t *req, int status)
{
	struct check_job *j = req->data;
	struct cert *c = j->c;
	struct cs_pipeline *pl = c->pl;
	time_t now = time(NULL);
	char t1[40];
	bool was_ok = verdict_ok(c);

	(void)status;
	pl->inflight--;
	if (j->load_state) {
		if (j->state_rc != 0)
			cs_warn("%s: %s", c->cfg->name, j->state_err);
		cs_state_clear(&c->st);
		c->st = j->st;
		c->state_loaded = true;
	} else {
		free(j->st.last_error);
	}
	c->known = j->seen;
	switch (j->outcome) {
	case CHECK_UNCHANGED:
		break;
	case CHECK_EXAMINED:
		take_examined(c, &j->ex);
		if (verdict_ok(c)) {
			cs_info("%s: deployed certificate %s is valid", c->cfg->name, c->serial);
			break;
		}
		if (j->repair_err[0])
			cs_warn("%s: %s; no generation to repair it from (%s); it needs a new "
				"certificate",
				c->cfg->name, c->reason, j->repair_err);
		else
			cs_warn("%s: %s; it needs a new certificate", c->cfg->name, c->reason);
		break;
	case CHECK_ADOPTED:
		take_examined(c, &j->ex);
		if (c->st.n_gens == 0)
			cs_notice("%s: adopting the deployed certificate %s (valid until %s)",
				  c->cfg->name, c->serial, fmt_time(c->not_after, t1, sizeof(t1)));
		else
			cs_notice("%s: the deployed files now hold another valid certificate "
				  "(serial %s, valid until %s) that fits the configuration; "
				  "accepting it",
				  c->cfg->name, c->serial, fmt_time(c->not_after, t1, sizeof(t1)));
		if (j->gen > 0)
			push_gen(c, j->gen, now);
		else
			cs_warn("%s: cannot keep the accepted certificate as a generation: %s",
				c->cfg->name, j->adopt_err);
		/* The administrator's choice settles earlier failures. */
		c->st.failures = 0;
		c->st.next_attempt = 0;
		c->st.retry_after = 0;
		cs_state_set_error(&c->st, NULL);
		break;
	case CHECK_REPAIRED:
		take_examined(c, &j->ex);
		c->verdict = CS_EX_OK;
		cs_notice("%s: repaired from generation %d (%s)", c->cfg->name, j->gen, c->reason);
		snprintf(c->reason, sizeof(c->reason), "valid");
		once_finish(c, ONCE_REPAIRED);
		request_reloads(c);
		break;
	}
	enum check_outcome outcome = j->outcome;
	cs_examined_clear(&j->ex);
	free(j);
	if (outcome != CHECK_UNCHANGED || !was_ok) {
		schedule(c, now);
		save_state(c);
		if (!pl->once && !pl->closing)
			log_schedule(c, now);
	}
	rewatch(pl);
	cert_idle(c);
	if (outcome != CHECK_UNCHANGED && verdict_ok(c) && !c->busy)
		ari_fetch(c);
	if (pl->once) {
		/* One pass: what is due now is renewed now, backoff or not. */
		if (c->verdict != CS_EX_OK || c->m == NULL ||
		    (verdict_ok(c) && c->due <= now)) {
			if (!start_renew(c))
				once_finish(c, ONCE_FAILED);
		} else {
			once_finish(c, ONCE_VALID);
		}
	}
	arm_timer(pl);
	maybe_quiesced(pl);
}

static void start_check(struct cert *c)
{
	struct cs_pipeline *pl = c->pl;
	struct check_job *j;

	if (c->busy) {
		c->dirty = true;
		return;
	}
	if (pl->closing || pl->tearing_down || pl->draining)
		return;
	j = calloc(1, sizeof(*j));
	if (j == NULL) {
		cs_err("%s: cannot examine: out of memory", c->cfg->name);
		return;
	}
	j->req.data = j;
	j->c = c;
	j->cfg = c->cfg;
	j->state_dir = pl->cfg->agent.state_dir;
	j->now = time(NULL);
	j->full = c->full_check || !c->known.valid;
	j->load_state = !c->state_loaded;
	if (!j->load_state) {
		j->st = c->st;
		j->st.last_error = NULL;
	}
	j->known = c->known;
	if (uv_queue_work(pl->loop, &j->req, check_work, check_done) < 0) {
		cs_err("%s: cannot examine: cannot queue work", c->cfg->name);
		free(j);
		return;
	}
	c->full_check = false;
	c->busy = true;
	pl->inflight++;
}

static void on_check_timer(uv_timer_t *t)
{
	start_check(t->data);
}

/* ---- renewal --------------------------------------------------------------- */

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

static void renew_job_free(struct renew_job *j)
{
	EVP_PKEY_free(j->reuse);
	EVP_PKEY_free(j->key);
	X509_REQ_free(j->csr);
	X509_free(j->replaces);
	cs_material_free(j->m);
	cs_material_free(j->prev);
	cs_examined_clear(&j->ex);
	free(j);
}

static void renew_failed(struct renew_job *j, const char *msg, int64_t retry_after)
{
	struct cert *c = j->c;
	struct cs_pipeline *pl = c->pl;
	time_t now = time(NULL);
	struct cs_backoff b = { pl->cfg->agent.retry_min, pl->cfg->agent.retry_max };
	char d[40], t[40];

	renew_job_free(j);
	if (pl->closing || pl->tearing_down) {
		cs_info("%s: renewal abandoned while stopping (%s)", c->cfg->name, msg);
		cert_idle(c);
		maybe_quiesced(pl);
		return;
	}
	c->st.failures++;
	c->st.retry_after = retry_after;
	cs_state_set_error(&c->st, msg);
	int64_t delay = cs_sched_backoff(&b, c->st.failures, now, verdict_ok(c) ? c->not_after : 0,
					 retry_after, c->seed);
	c->st.next_attempt = now + (time_t)delay;
	schedule(c, now);
	if (pl->once) {
		cs_err("%s: renewal failed: %s", c->cfg->name, msg);
		once_finish(c, ONCE_FAILED);
	} else {
		cs_err("%s: renewal failed (%d in a row): %s; next attempt in %s (%lld s, at %s)",
		       c->cfg->name, c->st.failures, msg, fmt_delay(delay, d, sizeof(d)),
		       (long long)delay, fmt_time(c->st.next_attempt, t, sizeof(t)));
	}
	save_state(c);
	cert_idle(c);
	arm_timer(pl);
	maybe_quiesced(pl);
}

/* ---- rollback after a failed reload or verify ------------------------------ */

struct rollback_job {
	uv_work_t req;
	struct cert *c;
	const struct cs_cfg_cert *cfg;
	const char *state_dir;
	int gen;
	time_t now;
	int rc;
	struct cs_deploy_digests written;
	struct cs_examined ex;
	char why[1100];
	char err[1024];
};

static void rollback_work(uv_work_t *req)
{
	struct rollback_job *j = req->data;
	cs_material *m = NULL;

	j->rc = cs_deploy_load_gen(j->state_dir, j->cfg->name, j->gen, &m, j->err, sizeof(j->err));
	if (j->rc < 0)
		return;
	/* Validated like any deploy: never a key beside the wrong certificate. */
	j->rc = cs_deploy(j->cfg, m, NULL, j->state_dir, 0, j->now, &j->written, j->err,
			  sizeof(j->err));
	if (j->rc == 0)
		cs_examine_material(j->cfg, m, j->now, &j->ex);
	if (j->rc == 0)
		j->ex.m = m;
	else
		cs_material_free(m);
}

static void rollback_done(uv_work_t *req, int status)
{
	struct rollback_job *j = req->data;
	struct cert *c = j->c;
	struct cs_pipeline *pl = c->pl;
	struct cs_backoff b = { pl->cfg->agent.retry_min, pl->cfg->agent.retry_max };
	time_t now = time(NULL);
	char msg[3000], d[40];

	(void)status;
	pl->inflight--;
	if (j->rc < 0) {
		snprintf(msg, sizeof(msg),
			 "%s; rolling back to generation %d failed (%s): the new certificate "
			 "serial %s (sha256 %s) stays deployed",
			 j->why, j->gen, j->err, c->new_serial, c->new_sha);
	} else {
		take_examined(c, &j->ex);
		c->known = j->written;
		push_gen(c, j->gen, now);
		snprintf(msg, sizeof(msg),
			 "%s; rolled back to generation %d (serial %s, sha256 %s); the refused "
			 "certificate was serial %s (sha256 %s)",
			 j->why, j->gen, c->serial, c->sha256, c->new_serial, c->new_sha);
	}
	cs_examined_clear(&j->ex);
	free(j);
	cs_err("%s: %s", c->cfg->name, msg);
	cs_state_set_error(&c->st, msg);
	c->st.failures++;
	int64_t delay = cs_sched_backoff(&b, c->st.failures, now, verdict_ok(c) ? c->not_after : 0,
					 0, c->seed);
	c->st.next_attempt = now + (time_t)delay;
	schedule(c, now);
	if (!pl->once)
		cs_notice("%s: next renewal attempt in %s", c->cfg->name,
			  fmt_delay(delay, d, sizeof(d)));
	if (pl->once && c->once != ONCE_FAILED) {
		c->once = ONCE_FAILED;
		pl->once_failures++;
	}
	save_state(c);
	rewatch(pl);
	cert_idle(c);
	/* Make the services load the restored files; its outcome ends the story. */
	c->after_renewal = false;
	c->rolling_back = true;
	request_reloads(c);
	arm_timer(pl);
	maybe_quiesced(pl);
}

/* Restores generation c->rollback_gen because of why (a failed reload or probe). */
static void rollback(struct cert *c, const char *why)
{
	struct cs_pipeline *pl = c->pl;
	struct rollback_job *j;

	c->after_renewal = false;
	snprintf(c->new_serial, sizeof(c->new_serial), "%s", c->serial);
	snprintf(c->new_sha, sizeof(c->new_sha), "%s", c->sha256);
	if (c->busy || (j = calloc(1, sizeof(*j))) == NULL) {
		char msg[1300];
		snprintf(msg, sizeof(msg), "%s; cannot roll back now (%s)", why,
			 c->busy ? "another job runs for this certificate" : "out of memory");
		cs_err("%s: %s", c->cfg->name, msg);
		cs_state_set_error(&c->st, msg);
		save_state(c);
		return;
	}
	j->req.data = j;
	j->c = c;
	j->cfg = c->cfg;
	j->state_dir = pl->cfg->agent.state_dir;
	j->gen = c->rollback_gen;
	j->now = time(NULL);
	snprintf(j->why, sizeof(j->why), "%s", why);
	cs_warn("%s: %s; rolling back to generation %d", c->cfg->name, why, j->gen);
	if (uv_queue_work(pl->loop, &j->req, rollback_work, rollback_done) < 0) {
		cs_err("%s: %s; cannot queue the rollback", c->cfg->name, why);
		free(j);
		return;
	}
	c->busy = true;
	pl->inflight++;
}

static void deploy_work(uv_work_t *req)
{
	struct renew_job *j = req->data;

	j->rc = cs_deploy(j->cfg, j->m, j->prev, j->state_dir, j->gen, j->now, &j->written,
			  j->err, sizeof(j->err));
	if (j->rc == 0)
		cs_examine_material(j->cfg, j->m, j->now, &j->ex);
}

static void deploy_done(uv_work_t *req, int status)
{
	struct renew_job *j = req->data;
	struct cert *c = j->c;
	struct cs_pipeline *pl = c->pl;
	time_t now = time(NULL);
	char t1[40], t2[40], d[40];

	(void)status;
	pl->inflight--;
	if (j->rc < 0) {
		char msg[1100];
		snprintf(msg, sizeof(msg), "deploy: %s", j->err);
		renew_failed(j, msg, 0);
		return;
	}
	j->ex.m = j->m;
	j->m = NULL;
	take_examined(c, &j->ex);
	c->known = j->written;
	push_gen(c, j->gen, now);
	c->st.last_success = now;
	c->st.failures = 0;
	c->fresh_key = false; /* a revoked key is no longer deployed; retries kept away from it */
	c->st.next_attempt = 0;
	c->st.retry_after = 0;
	cs_state_set_error(&c->st, NULL);
	schedule(c, now);
	cs_notice("%s: renewed: serial %s, valid until %s, generation %d; next renewal %s (in %s)",
		  c->cfg->name, c->serial, fmt_time(c->not_after, t1, sizeof(t1)), j->gen,
		  fmt_time(c->due, t2, sizeof(t2)), fmt_delay(c->due - now, d, sizeof(d)));
	renew_job_free(j);
	once_finish(c, ONCE_RENEWED);
	capsync_publish(pl, c->issuer);
	/* The generation before this one, for a rollback when the services refuse it. */
	c->after_renewal = true;
	c->rolling_back = false;
	c->rollback_gen = c->st.n_gens > 1 ? c->st.gens[1].n : 0;
	request_reloads(c);
	save_state(c);
	rewatch(pl);
	cert_idle(c);
	ari_fetch(c);
	arm_timer(pl);
	maybe_quiesced(pl);
}

static void on_issued(struct cs_issue_result *res, void *arg)
{
	struct renew_job *j = arg;
	struct cs_pipeline *pl = j->c->pl;
	char msg[1200];

	pl->inflight--;
	if (res->status < 0 || res->leaf == NULL) {
		snprintf(msg, sizeof(msg), "issuer %s: %s", j->c->issuer->name,
			 res->error[0] ? res->error : strerror(-res->status));
		X509_free(res->leaf);
		sk_X509_pop_free(res->chain, X509_free);
		renew_failed(j, msg, res->retry_after);
		return;
	}
	j->m = cs_material_new();
	if (j->m == NULL) {
		X509_free(res->leaf);
		sk_X509_pop_free(res->chain, X509_free);
		renew_failed(j, "out of memory", 0);
		return;
	}
	j->m->key = j->key;
	j->key = NULL;
	j->m->leaf = res->leaf;
	for (int i = 0; res->chain != NULL && i < sk_X509_num(res->chain); i++) {
		X509 *x = sk_X509_value(res->chain, i);
		X509_up_ref(x);
		sk_X509_push(j->m->chain, x);
	}
	sk_X509_pop_free(res->chain, X509_free);
	if (pl->closing || pl->tearing_down) {
		/* A certificate was issued: still put it in place, that is quick. */
		cs_info("%s: deploying the certificate issued while stopping", j->c->cfg->name);
	}
	j->gen = j->c->st.next_gen;
	j->c->st.next_gen++;
	j->now = time(NULL);
	if (uv_queue_work(pl->loop, &j->req, deploy_work, deploy_done) < 0) {
		renew_failed(j, "cannot queue the deploy", 0);
		return;
	}
	pl->inflight++;
}

static void keycsr_work(uv_work_t *req)
{
	struct renew_job *j = req->data;

	if (j->reuse != NULL) {
		j->key = j->reuse;
		j->reuse = NULL;
	} else {
		j->key = cs_key_generate(j->cfg->key, j->err, sizeof(j->err));
		if (j->key == NULL) {
			j->rc = -EINVAL;
			return;
		}
	}
	j->csr = cs_csr_new(j->key, j->cfg->names.v, j->cfg->names.n, j->err, sizeof(j->err));
	if (j->csr == NULL)
		j->rc = -EINVAL;
}

static void keycsr_done(uv_work_t *req, int status)
{
	struct renew_job *j = req->data;
	struct cert *c = j->c;
	struct cs_pipeline *pl = c->pl;
	char msg[1100];
	int rc;

	(void)status;
	pl->inflight--;
	if (j->rc < 0) {
		snprintf(msg, sizeof(msg), "key or CSR: %s", j->err);
		renew_failed(j, msg, 0);
		return;
	}
	if (pl->closing || pl->tearing_down) {
		renew_failed(j, "stopping", 0);
		return;
	}
	struct cs_issue_request ir = {
		.cert_name = c->cfg->name,
		.names = c->cfg->names.v,
		.n_names = c->cfg->names.n,
		.usage = c->cfg->usage,
		.csr = j->csr,
		.replaces = j->replaces,
	};
	pl->inflight++;
	rc = c->issuer->ops->issue(c->issuer, &ir, on_issued, j);
	if (rc < 0) {
		pl->inflight--;
		snprintf(msg, sizeof(msg), "issuer %s: cannot start: %s", c->issuer->name,
			 strerror(-rc));
		renew_failed(j, msg, 0);
	}
}

/* Starts a renewal of c; returns false when it could not start. */
static bool start_renew(struct cert *c)
{
	struct cs_pipeline *pl = c->pl;
	struct renew_job *j;
	char t[40];

	if (c->busy || pl->closing || pl->draining || pl->tearing_down)
		return false;
	j = calloc(1, sizeof(*j));
	if (j == NULL) {
		cs_err("%s: cannot renew: out of memory", c->cfg->name);
		return false;
	}
	j->req.data = j;
	j->c = c;
	j->cfg = c->cfg;
	j->state_dir = pl->cfg->agent.state_dir;
	if (c->m != NULL && c->m->leaf != NULL) {
		X509_up_ref(c->m->leaf);
		j->replaces = c->m->leaf;
	}
	if (verdict_ok(c)) {
		/* What to put back if writing the new set fails half-way. */
		j->prev = cs_material_new();
		if (j->prev != NULL) {
			EVP_PKEY_up_ref(c->m->key);
			j->prev->key = c->m->key;
			X509_up_ref(c->m->leaf);
			j->prev->leaf = c->m->leaf;
			for (int i = 0; i < sk_X509_num(c->m->chain); i++) {
				X509 *x = sk_X509_value(c->m->chain, i);
				X509_up_ref(x);
				sk_X509_push(j->prev->chain, x);
			}
		}
	}
	if (c->cfg->reuse_key && !c->fresh_key && c->m != NULL && c->m->key != NULL &&
	    cs_key_type_of(c->m->key) == c->cfg->key) {
		EVP_PKEY_up_ref(c->m->key);
		j->reuse = c->m->key;
	}
	if (uv_queue_work(pl->loop, &j->req, keycsr_work, keycsr_done) < 0) {
		cs_err("%s: cannot renew: cannot queue work", c->cfg->name);
		renew_job_free(j);
		return false;
	}
	pl->inflight++;
	c->busy = true;
	c->state = CS_CERT_RENEWING;
	c->st.last_attempt = time(NULL);
	cs_notice("%s: renewing with issuer %s (%s%s%s)", c->cfg->name, c->issuer->name,
		  verdict_ok(c) ? c->due_reason : c->reason, verdict_ok(c) ? ", due " : "",
		  verdict_ok(c) ? fmt_time(c->due, t, sizeof(t)) : "");
	return true;
}

/* ---- watching ------------------------------------------------------------ */

static void add_interest(struct cert *c, const char *path)
{
	char a[PATH_MAX], b[PATH_MAX];

	snprintf(a, sizeof(a), "%s", path);
	snprintf(b, sizeof(b), "%s", path);
	struct interest *v = realloc(c->interest, (c->n_interest + 1) * sizeof(*v));
	if (v == NULL)
		return;
	c->interest = v;
	v[c->n_interest].dir = strdup(dirname(a));
	v[c->n_interest].name = strdup(basename(b));
	if (v[c->n_interest].dir == NULL || v[c->n_interest].name == NULL) {
		free(v[c->n_interest].dir);
		free(v[c->n_interest].name);
		return;
	}
	c->n_interest++;
}

static void clear_interest(struct cert *c)
{
	for (size_t i = 0; i < c->n_interest; i++) {
		free(c->interest[i].dir);
		free(c->interest[i].name);
	}
	free(c->interest);
	c->interest = NULL;
	c->n_interest = 0;
}

/*
 * What c must hear about: each output in its directory; the file a symbolic
 * link at the output leads to; and a symbolic link standing for the
 * output's directory, in the directory above (a swap of either is a change).
 */
static void compute_interest(struct cert *c)
{
	struct cs_deploy_outputs o;
	char real[PATH_MAX], d[PATH_MAX];
	struct stat sb;

	clear_interest(c);
	cs_deploy_outputs_of(c->cfg, &o);
	for (size_t i = 0; i < o.n; i++) {
		add_interest(c, o.path[i]);
		if (realpath(o.path[i], real) != NULL && strcmp(real, o.path[i]) != 0)
			add_interest(c, real);
		snprintf(d, sizeof(d), "%s", o.path[i]);
		char *dir = dirname(d);
		if (lstat(dir, &sb) == 0 && S_ISLNK(sb.st_mode))
			add_interest(c, dir);
	}
}

static void rewatch(struct cs_pipeline *pl)
{
	const char **dirs = NULL;
	size_t n = 0;

	if (pl->watch == NULL)
		return;
	for (size_t i = 0; i < pl->n_certs; i++) {
		struct cert *c = pl->certs[i];
		compute_interest(c);
		for (size_t k = 0; k < c->n_interest; k++) {
			bool seen = false;
			for (size_t m = 0; m < n && !seen; m++)
				seen = strcmp(dirs[m], c->interest[k].dir) == 0;
			if (seen)
				continue;
			const char **v = realloc(dirs, (n + 1) * sizeof(*v));
			if (v == NULL)
				break;
			dirs = v;
			dirs[n++] = c->interest[k].dir;
		}
	}
	if (pl->capsync != NULL) {
		size_t nc = 0;
		const char *const *cd = cs_capsync_dirs(pl->capsync, &nc);
		for (size_t k = 0; k < nc; k++) {
			bool seen = false;
			for (size_t m = 0; m < n && !seen; m++)
				seen = strcmp(dirs[m], cd[k]) == 0;
			if (seen)
				continue;
			const char **v = realloc(dirs, (n + 1) * sizeof(*v));
			if (v == NULL)
				break;
			dirs = v;
			dirs[n++] = cd[k];
		}
	}
	cs_watch_set(pl->watch, dirs, n);
	free(dirs);
}

static void schedule_check(struct cert *c)
{
	if (c->busy) {
		c->dirty = true;
		return;
	}
	uv_timer_start(&c->check_timer, on_check_timer, CHECK_DELAY_MS, 0);
}

static void on_watch(void *arg, const char *dir, const char *name, uint32_t mask)
{
	struct cs_pipeline *pl = arg;
	bool dir_event = name[0] == '\0';

	if (pl->closing || pl->tearing_down)
		return;
	if (pl->capsync != NULL)
		cs_capsync_changed(pl->capsync, dir, name);
	if ((mask & IN_CREATE) && !dir_event) {
		/* A new regular file is judged once written (IN_CLOSE_WRITE); a new
		 * symbolic link is complete at once. */
		char p[PATH_MAX];
		struct stat sb;
		snprintf(p, sizeof(p), "%s/%s", dir, name);
		if (lstat(p, &sb) < 0 || !S_ISLNK(sb.st_mode))
			return;
	}
	for (size_t i = 0; i < pl->n_certs; i++) {
		struct cert *c = pl->certs[i];
		for (size_t k = 0; k < c->n_interest; k++) {
			if (strcmp(c->interest[k].dir, dir) != 0 ||
			    (!dir_event && strcmp(c->interest[k].name, name) != 0))
				continue;
			cs_debug("%s: change in %s/%s (mask %#x)", c->cfg->name, dir, name,
				 (unsigned)mask);
			schedule_check(c);
			break;
		}
	}
}

static void on_overflow(void *arg)
{
	struct cs_pipeline *pl = arg;

	for (size_t i = 0; i < pl->n_certs; i++) {
		pl->certs[i]->full_check = true;
		schedule_check(pl->certs[i]);
	}
	if (pl->capsync != NULL)
		cs_capsync_full(pl->capsync);
	rewatch(pl);
}

/* ---- building and tearing down ------------------------------------------- */

static cs_issuer *make_issuer(uv_loop_t *loop, const struct cs_cfg_issuer *ci,
			      const char *state_dir)
{
	char err[1024] = "", msg[1200];
	cs_issuer *is = NULL;

	if (ci->type == CS_ISSUER_LOCAL_CA) {
		struct cs_localca_opts o = {
			.dir = ci->dir,
			.subject = ci->subject,
			.key = ci->key,
			.validity_s = ci->validity,
			.ca_validity_s = ci->ca_validity,
		};
		is = cs_localca_issuer_new(loop, ci->name, &o, err, sizeof(err));
	} else {
		struct cs_acme_opts o = {
			.directory = ci->directory,
			.contact = ci->contact.v,
			.n_contact = ci->contact.n,
			.challenge = ci->challenge == CS_CHALLENGE_DNS01 ? CS_ACME_DNS01
									: CS_ACME_HTTP01,
			.webroot = ci->webroot,
			.http_listen = ci->http_listen,
			.dns_hook = ci->dns_hook,
			.ca_bundle = ci->ca_bundle,
			.eab_kid = ci->eab_kid,
			.eab_hmac_key = ci->eab_hmac_key,
			.preferred_chain = ci->preferred_chain,
			.profile = ci->profile,
			.account_key = ci->account_key,
		};
		if (ci->challenge == CS_CHALLENGE_TLSALPN01)
			snprintf(err, sizeof(err), "challenge tls-alpn-01 is not implemented");
		else
			is = cs_acme_issuer_new(loop, ci->name, &o, state_dir, err, sizeof(err));
	}
	if (is != NULL)
		return is;
	snprintf(msg, sizeof(msg), "issuer %s cannot be used: %s", ci->name, err);
	cs_err("%s", msg);
	return cs_issuer_broken_new(loop, ci->name, msg);
}

/* Builds issuers, reloaders and certs for pl->cfg; returns 0 or -ENOMEM. */
static int build(struct cs_pipeline *pl)
{
	const struct cs_config *cfg = pl->cfg;

	pl->issuers = calloc(cfg->n_issuers + 1, sizeof(*pl->issuers));
	pl->certs = calloc(cfg->n_certs + 1, sizeof(*pl->certs));
	pl->rl = cs_reloads_new(pl->loop, cfg, on_reload_result, pl);
	if (pl->issuers == NULL || pl->certs == NULL || pl->rl == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->n_issuers; i++) {
		pl->issuers[i] = make_issuer(pl->loop, &cfg->issuers[i], cfg->agent.state_dir);
		if (pl->issuers[i] == NULL)
			return -ENOMEM;
		pl->n_issuers++;
	}
	if (cfg->n_capaths > 0 || cfg->n_clientcerts > 0) {
		char err[512] = "";
		pl->capsync = cs_capsync_new(pl->loop, cfg, on_capsync_done, pl, err, sizeof(err));
		if (pl->capsync == NULL) {
			cs_err("the [capath] and [clientcerts] directories cannot be kept in sync: %s",
			       err);
			pl->once_failures++; /* reported only by a --once pass */
		}
	}
	for (size_t i = 0; i < cfg->n_certs; i++) {
		struct cert *c = calloc(1, sizeof(*c));
		if (c == NULL)
			return -ENOMEM;
		c->pl = pl;
		c->cfg = &cfg->certs[i];
		for (size_t k = 0; k < pl->n_issuers; k++)
			if (strcmp(pl->issuers[k]->name, c->cfg->issuer) == 0)
				c->issuer = pl->issuers[k];
		if (c->issuer == NULL) {
			/* The parser refuses dangling issuers; this is a safety net. */
			free(c);
			return -EINVAL;
		}
		c->verdict = CS_EX_MISSING;
		snprintf(c->reason, sizeof(c->reason), "not examined yet");
		c->due = time(NULL);
		c->due_reason = "not examined yet";
		uv_timer_init(pl->loop, &c->check_timer);
		c->check_timer.data = c;
		pl->certs[pl->n_certs++] = c;
	}
	return 0;
}

static void free_cert(struct cert *c)
{
	clear_interest(c);
	cs_material_free(c->m);
	cs_state_clear(&c->st);
	free(c);
}

static void teardown_step(struct cs_pipeline *pl);

static void on_issuer_closed(void *arg)
{
	struct cs_pipeline *pl = arg;

	if (--pl->issuers_open > 0)
		return;
	free(pl->issuers);
	pl->issuers = NULL;
	pl->n_issuers = 0;
	teardown_step(pl);
}

/*
 * Closes every issuer (once): issuances in flight are cancelled and their
 * callbacks run before the issuer's close callback.
 */
static void close_issuers(struct cs_pipeline *pl)
{
	size_t n = pl->n_issuers;

	if (pl->issuers_closing)
		return;
	pl->issuers_closing = true;
	/* One extra count, so that issuers closing at once cannot free the array under us. */
	pl->issuers_open = n + 1;
	for (size_t i = 0; i < n; i++)
		pl->issuers[i]->ops->close(pl->issuers[i], on_issuer_closed, pl);
	on_issuer_closed(pl);
}

static void on_part_closed(void *arg)
{
	struct cs_pipeline *pl = arg;

	pl->closing_handles--;
	teardown_step(pl);
}

static void on_cert_closed(uv_handle_t *h)
{
	struct cert *c = h->data;
	struct cs_pipeline *pl = c->pl;

	free_cert(c);
	pl->closing_handles--;
	teardown_step(pl);
}

static void after_teardown(struct cs_pipeline *pl);

/* Closes reloaders, certs and issuers (asynchronously); then after_teardown. */
static void teardown(struct cs_pipeline *pl)
{
	pl->tearing_down = true;
	uv_timer_stop(&pl->timer);
	pl->closing_handles = 2; /* one held until everything has been started */
	cs_reloads_close(pl->rl, on_part_closed, pl);
	pl->rl = NULL;
	if (pl->capsync != NULL) {
		/* It waits for a job that runs, then frees itself. */
		pl->closing_handles++;
		cs_capsync_close(pl->capsync, on_part_closed, pl);
		pl->capsync = NULL;
	}
	for (size_t i = 0; i < pl->n_certs; i++) {
		pl->closing_handles++;
		uv_close((uv_handle_t *)&pl->certs[i]->check_timer, on_cert_closed);
	}
	free(pl->certs);
	pl->certs = NULL;
	pl->n_certs = 0;
	close_issuers(pl);
	pl->closing_handles--;
	teardown_step(pl);
}

static void teardown_step(struct cs_pipeline *pl)
{
	if (pl->tearing_down && pl->closing_handles == 0 && pl->issuers_open == 0) {
		pl->tearing_down = false;
		pl->issuers_closing = false;
		after_teardown(pl);
	}
}

/* Examines every cert (the start of a run, and after a new configuration). */
static void examine_all(struct cs_pipeline *pl)
{
	capsync_start(pl);
	for (size_t i = 0; i < pl->n_certs; i++) {
		pl->certs[i]->full_check = true;
		start_check(pl->certs[i]);
	}
}

static void pipeline_handle_gone(struct cs_pipeline *pl)
{
	if (--pl->closing_handles == 0) {
		void (*cb)(void *) = pl->close_cb;
		void *arg = pl->close_arg;
		free(pl);
		if (cb)
			cb(arg);
	}
}

static void on_pipeline_handle_closed(uv_handle_t *h)
{
	pipeline_handle_gone(h->data);
}

static void on_watch_closed(void *arg)
{
	pipeline_handle_gone(arg);
}

static void after_teardown(struct cs_pipeline *pl)
{
	if (pl->closing) {
		/* Everything cert-related is gone; now the pipeline's own handles. */
		if (pl->pending_cfg != NULL && pl->release_cb)
			pl->release_cb(pl->release_arg, pl->cfg); /* the newest stays the caller's */
		pl->closing_handles = 2;
		uv_close((uv_handle_t *)&pl->timer, on_pipeline_handle_closed);
		struct cs_watch *w = pl->watch;
		pl->watch = NULL;
		cs_watch_close(w, on_watch_closed, pl);
		return;
	}
	/* A new configuration: release the old one, build and examine again. */
	const struct cs_config *old = pl->cfg;
	pl->cfg = pl->pending_cfg;
	pl->pending_cfg = NULL;
	pl->draining = false;
	if (pl->release_cb)
		pl->release_cb(pl->release_arg, old);
	if (build(pl) < 0)
		cs_err("cannot apply the new configuration completely: out of memory");
	cs_notice("pipeline: %zu cert(s) under the new configuration", pl->n_certs);
	rewatch(pl);
	examine_all(pl);
	maybe_quiesced(pl);
}

static void maybe_quiesced(struct cs_pipeline *pl)
{
	if (pl->tearing_down)
		return;
	if (pl->once && !pl->once_done && !pl->closing) {
		bool all = true;
		for (size_t i = 0; i < pl->n_certs; i++)
			all &= pl->certs[i]->once != ONCE_PENDING;
		if (all && reloads_pending(pl))
			flush_reloads(pl);
		/* A reload that could not start has ended already, and may have finished this. */
		if (pl->once_done || pl->tearing_down || pl->closing)
			return;
		if (all && pl->inflight == 0 && !reloads_busy(pl) && !capsync_busy(pl)) {
			pl->once_done = true;
			once_summary(pl);
			if (pl->done_cb)
				pl->done_cb(pl->done_arg, pl->once_failures);
			return;
		}
	}
	if ((pl->closing || pl->draining) && reloads_pending(pl))
		flush_reloads(pl);
	if (pl->tearing_down || pl->inflight > 0 || reloads_busy(pl))
		return;
	if (pl->closing || (pl->draining && pl->pending_cfg != NULL))
		teardown(pl);
}

/* ---- the interface -------------------------------------------------------- */

struct cs_pipeline *cs_pipeline_new(uv_loop_t *loop, const struct cs_config *cfg, char *err,
				    size_t errlen)
{
	struct cs_pipeline *pl = calloc(1, sizeof(*pl));

	if (pl == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pl->loop = loop;
	pl->cfg = cfg;
	uv_timer_init(loop, &pl->timer);
	pl->timer.data = pl;
	if (build(pl) < 0) {
		snprintf(err, errlen, "cannot set up the pipeline: out of memory");
		pl->closing = true;
		teardown(pl); /* frees pl once its handles have closed */
		return NULL;
	}
	return pl;
}

int cs_pipeline_start(struct cs_pipeline *pl, bool once, void (*done_cb)(void *arg, int failures),
		      void *arg)
{
	char err[256];

	pl->once = once;
	if (!once)
		pl->once_failures = 0;
	pl->done_cb = done_cb;
	pl->done_arg = arg;
	pl->started = true;
	if (!once) {
		pl->watch = cs_watch_new(pl->loop, on_watch, on_overflow, pl, err, sizeof(err));
		if (pl->watch == NULL)
			cs_err("cannot watch the deployed files (changes by others will be seen "
			       "at the next renewal only): %s",
			       err);
		rewatch(pl);
	}
	examine_all(pl);
	maybe_quiesced(pl);
	return 0;
}

void cs_pipeline_apply(struct cs_pipeline *pl, const struct cs_config *cfg,
		       void (*old_cfg_release)(void *arg, const struct cs_config *old), void *arg)
{
	pl->release_cb = old_cfg_release;
	pl->release_arg = arg;
	if (pl->closing) {
		if (old_cfg_release)
			old_cfg_release(arg, cfg);
		return;
	}
	if (pl->pending_cfg != NULL && old_cfg_release)
		old_cfg_release(arg, pl->pending_cfg); /* superseded before it was used */
	pl->pending_cfg = cfg;
	pl->draining = true;
	uv_timer_stop(&pl->timer);
	if (pl->inflight > 0)
		cs_notice("pipeline: the new configuration applies once %u task(s) in flight "
			  "are done",
			  pl->inflight);
	maybe_quiesced(pl);
}

int cs_pipeline_reload(struct cs_pipeline *pl, const char *name)
{
	for (size_t i = 0; i < pl->n_certs; i++) {
		struct cert *c = pl->certs[i];
		if (strcmp(c->cfg->name, name) != 0)
			continue;
		if (c->busy || c->after_renewal || c->rolling_back || pl->draining || pl->closing ||
		    pl->tearing_down)
			return -EBUSY;
		request_reloads(c);
		flush_reloads(pl);
		return 0;
	}
	return -ENOENT;
}

int cs_pipeline_renew(struct cs_pipeline *pl, const char *name, bool force)
{
	for (size_t i = 0; i < pl->n_certs; i++) {
		struct cert *c = pl->certs[i];
		if (strcmp(c->cfg->name, name) != 0)
			continue;
		if (c->busy || pl->draining || pl->closing || pl->tearing_down)
			return -EBUSY;
		if (!force && c->due > time(NULL))
			return 0;
		if (!start_renew(c))
			return -ENOMEM;
		arm_timer(pl);
		return 0;
	}
	return -ENOENT;
}

/* A revocation in flight: what the caller asked for and who to tell. */
struct revoke_job {
	struct cert *c;
	int reason;
	char serial[80];
	void (*cb)(void *arg, int status, const char *msg);
	void *arg;
};

static const char *const revoke_reasons[] = {
	"unspecified", "keyCompromise", "CACompromise", "affiliationChanged",
	"superseded", "cessationOfOperation", "certificateHold",
};

static const char *revoke_reason_name(int reason)
{
	if (reason >= 0 && (size_t)reason < sizeof(revoke_reasons) / sizeof(revoke_reasons[0]))
		return revoke_reasons[reason];
	return "unspecified";
}

/*
 * The issuer has answered: on success the CA's new material (a local CA's
 * CRL) is published and a forced renewal started (with a new key: see
 * fresh_key), so that the revoked leaf does not stay deployed.
 */
static void on_revoked(int status, const char *error, void *arg)
{
	struct revoke_job *rj = arg;
	struct cert *c = rj->c;
	struct cs_pipeline *pl = c->pl;
	char msg[1024];
	int rc;

	pl->inflight--;
	c->revoking = false;
	if (status < 0) {
		snprintf(msg, sizeof(msg), "issuer %s: cannot revoke %s: %s", c->issuer->name,
			 rj->serial, error != NULL && error[0] ? error : strerror(-status));
		cs_warn("%s: %s", c->cfg->name, msg);
		rj->cb(rj->arg, status, msg);
		goto out;
	}
	cs_notice("%s: revoked certificate %s with issuer %s (reason %s)", c->cfg->name,
		  rj->serial, c->issuer->name, revoke_reason_name(rj->reason));
	capsync_publish(pl, c->issuer);
	if (pl->closing || pl->draining || pl->tearing_down) {
		cs_warn("%s: the revoked certificate is renewed once the agent is back at work",
			c->cfg->name);
	} else {
		c->due = time(NULL);
		c->due_reason = "revoked";
		rc = cs_pipeline_renew(pl, c->cfg->name, true);
		/* -EBUSY: a renewal started while the issuer answered; it replaces the leaf. */
		if (rc < 0 && rc != -EBUSY)
			cs_err("%s: cannot start the renewal of the revoked certificate: %s",
			       c->cfg->name, strerror(-rc));
	}
	rj->cb(rj->arg, 0, rj->serial);
out:
	free(rj);
	maybe_quiesced(pl);
}

int cs_pipeline_revoke(struct cs_pipeline *pl, const char *name, int reason,
		       void (*cb)(void *arg, int status, const char *msg), void *arg)
{
	struct revoke_job *rj;
	struct cert *c = NULL;
	int rc;

	if (reason < 0 || (size_t)reason >= sizeof(revoke_reasons) / sizeof(revoke_reasons[0]))
		return -EINVAL;
	for (size_t i = 0; i < pl->n_certs && c == NULL; i++)
		if (strcmp(pl->certs[i]->cfg->name, name) == 0)
			c = pl->certs[i];
	if (c == NULL)
		return -ENOENT;
	if (c->busy || c->revoking || pl->draining || pl->closing || pl->tearing_down)
		return -EBUSY;
	if (c->m == NULL || c->m->leaf == NULL)
		return -ENODATA;
	if (!cs_acme_is(c->issuer) && !cs_localca_is(c->issuer))
		return -ENOTSUP;
	if ((rj = calloc(1, sizeof(*rj))) == NULL)
		return -ENOMEM;
	rj->c = c;
	rj->reason = reason;
	rj->cb = cb;
	rj->arg = arg;
	cs_x509_serial(c->m->leaf, rj->serial, sizeof(rj->serial));
	cs_notice("%s: revoking certificate %s with issuer %s (reason %s)", c->cfg->name,
		  rj->serial, c->issuer->name, revoke_reason_name(reason));
	/* Counted before the call, in case the issuer answers before it returns. */
	c->revoking = true;
	pl->inflight++;
	/* A renewal starting from now on makes a new key, even before the answer. */
	c->fresh_key = true;
	if (cs_acme_is(c->issuer))
		rc = cs_acme_revoke(c->issuer, c->m->leaf, reason, on_revoked, rj);
	else
		rc = cs_localca_issuer_revoke(c->issuer, c->m->leaf, reason, on_revoked, rj);
	if (rc < 0) {
		c->revoking = false;
		pl->inflight--;
		free(rj);
		return rc;
	}
	return 0;
}

int cs_pipeline_set_window(struct cs_pipeline *pl, const char *name, time_t start, time_t end)
{
	time_t now = time(NULL);

	if (end <= start)
		return -EINVAL;
	for (size_t i = 0; i < pl->n_certs; i++) {
		struct cert *c = pl->certs[i];
		if (strcmp(c->cfg->name, name) != 0)
			continue;
		set_window(c, start, end, now);
		return 0;
	}
	return -ENOENT;
}

struct cs_capsync *cs_pipeline_capsync(struct cs_pipeline *pl)
{
	return pl->capsync;
}

size_t cs_pipeline_count(const struct cs_pipeline *pl)
{
	return pl->n_certs;
}

void cs_pipeline_status(const struct cs_pipeline *pl, size_t i, struct cs_cert_status *out)
{
	const struct cert *c = pl->certs[i];

	memset(out, 0, sizeof(*out));
	out->name = c->cfg->name;
	out->state = c->state;
	out->verdict = c->verdict;
	out->verdict_reason = c->reason;
	out->issuer = c->cfg->issuer;
	out->serial = c->serial[0] ? c->serial : NULL;
	out->sha256 = c->sha256[0] ? c->sha256 : NULL;
	out->not_before = c->not_before;
	out->not_after = c->not_after;
	out->next_renewal = c->due;
	out->next_reason = c->due_reason;
	out->last_renewal = c->st.last_success;
	out->failures = c->st.failures;
	out->last_error = c->st.last_error;
	out->last_reload = c->last_reload[0] ? c->last_reload : NULL;
	out->last_verify = c->last_verify[0] ? c->last_verify : NULL;
	out->verify = c->verify;
	out->names = c->cfg->names.v;
	out->n_names = c->cfg->names.n;
}

void cs_pipeline_close(struct cs_pipeline *pl, void (*close_cb)(void *arg), void *arg)
{
	if (pl == NULL) {
		if (close_cb)
			close_cb(arg);
		return;
	}
	pl->close_cb = close_cb;
	pl->close_arg = arg;
	if (pl->closing)
		return;
	pl->closing = true;
	uv_timer_stop(&pl->timer);
	for (size_t i = 0; i < pl->n_certs; i++)
		uv_timer_stop(&pl->certs[i]->check_timer);
	close_issuers(pl);
	/* Issuances in flight are cancelled by closing the issuers; wait for the rest. */
	if (pl->inflight > 0)
		cs_info("pipeline: waiting for %u task(s) in flight", pl->inflight);
	maybe_quiesced(pl);
}
