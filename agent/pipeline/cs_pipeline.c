/*
 * cs_pipeline - the interface of the renewal core (see cs_pipeline.h and
 * docs/HACKING.md): start, renew, reload, status, subscribe and close; the
 * pipeline's clock (a test may give its own), its count of work in flight
 * and the events it publishes (pl_event_publish).
 */
#include "pl_int.h"

#include <assert.h>
#include "cs_csr.h"
#include "cs_key.h"
#include "cs_localca.h"
#include "cs_sched.h"
#include "cs_verify.h"
#include "cs_x509.h"

#include <errno.h>
#include <stdarg.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *cs_pipeline_state_name(enum cs_cert_state s)
{
	static const char *const names[] = {
		[CS_CERT_UNKNOWN] = "unknown",   [CS_CERT_VALID] = "valid",
		[CS_CERT_DUE] = "due",           [CS_CERT_RENEWING] = "renewing",
		[CS_CERT_FAILED] = "failed",     [CS_CERT_EXPIRED] = "expired",
		[CS_CERT_MISSING] = "missing",
	};
	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

/* ---- once mode ---------------------------------------------------------- */

void pl_once_set(struct cert *c, enum once_result r)
{
	assert(r != ONCE_PENDING);
	if (c->once == ONCE_PENDING) {
		assert(c->pl->once_pending > 0);
		c->pl->once_pending--;
	}
	c->once = r;
}

void pl_once_finish(struct cert *c, enum once_result r)
{
	if (!c->pl->once)
		return;
	/* A repair may be followed by a renewal; the renewal's outcome counts. */
	if (c->once != ONCE_PENDING && !(c->once == ONCE_REPAIRED && r != ONCE_VALID))
		return;
	pl_once_set(c, r);
	if (r == ONCE_FAILED)
		c->pl->once_failures++;
}

void pl_once_summary(struct cs_pipeline *pl)
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

/* ---- what every stage uses ------------------------------------------------ */

time_t pl_now(const struct cs_pipeline *pl)
{
	return pl->drv.now != NULL ? pl->drv.now(pl->drv.arg) : time(NULL);
}

int64_t pl_now_ms(const struct cs_pipeline *pl)
{
	struct timespec ts;

	if (pl->drv.now != NULL)
		return (int64_t)pl->drv.now(pl->drv.arg) * 1000;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pl_text_set(char **dst, size_t max, const char *fmt, ...)
{
	va_list ap;
	char *p = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&p, fmt, ap);
	va_end(ap);
	free(*dst);
	*dst = NULL;
	if (n < 0)
		return;
	if ((size_t)n >= max)
		p[max - 1] = '\0';
	*dst = p;
}

void pl_text_append(char **dst, size_t max, const char *sep, const char *text)
{
	char *old = *dst;

	*dst = NULL;
	if (old == NULL || old[0] == '\0')
		pl_text_set(dst, max, "%s", text);
	else
		pl_text_set(dst, max, "%s%s%s", old, sep, text);
	free(old);
}

void pl_inflight_inc(struct cs_pipeline *pl)
{
	pl->inflight++;
}

void pl_inflight_dec(struct cs_pipeline *pl)
{
	assert(pl->inflight > 0);
	if (pl->inflight > 0)
		pl->inflight--;
}

bool pl_stopping(const struct cs_pipeline *pl)
{
	return pl->closing || pl->draining || pl->tearing_down;
}

struct cert *pl_find(const struct cs_pipeline *pl, const char *name)
{
	uint64_t h = cs_htab_hash(name, CS_HTAB_SEED);

	for (struct cs_htab_node *n = cs_htab_first(&pl->by_name, h); n != NULL;
	     n = cs_htab_next(n, h)) {
		struct cert *c = cs_htab_entry(n, struct cert, by_name);
		if (strcmp(c->cfg->name, name) == 0)
			return c;
	}
	return NULL;
}

/* ---- the interface -------------------------------------------------------- */

struct cs_pipeline *cs_pipeline_new(uv_loop_t *loop, const struct cs_config *cfg, char *err,
				    size_t errlen)
{
	return cs_pipeline_new_with(loop, cfg, NULL, err, errlen);
}

struct cs_pipeline *cs_pipeline_new_with(uv_loop_t *loop, const struct cs_config *cfg,
					 const struct cs_pipeline_drivers *drv, char *err,
					 size_t errlen)
{
	struct cs_pipeline *pl = calloc(1, sizeof(*pl));

	if (pl == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pl->loop = loop;
	pl->cfg = cfg;
	if (drv != NULL)
		pl->drv = *drv;
	uv_timer_init(loop, &pl->timer);
	pl->timer.data = pl;
	uv_timer_init(loop, &pl->crl_timer);
	pl->crl_timer.data = pl;
	STAILQ_INIT(&pl->firstq);
	LIST_INIT(&pl->drifted);
	if (pl_build(pl) < 0) {
		snprintf(err, errlen, "cannot set up the pipeline: out of memory");
		pl->closing = true;
		pl_teardown(pl); /* frees pl once its handles have closed */
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
		pl->watch = cs_watch_new(pl->loop, pl_on_watch, pl_on_overflow, pl, err, sizeof(err));
		if (pl->watch == NULL)
			cs_err("cannot watch the deployed files (changes by others will be seen "
			       "at the next renewal only): %s",
			       err);
		pl_rewatch_capsync(pl); /* each cert's files with its first examination */
		pl->clock = pl_clock_new(pl);
	}
	pl_examine_all(pl);
	pl_drift_start_all(pl);
	pl_maybe_quiesced(pl);
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
	uv_timer_stop(&pl->crl_timer);
	pl_feed_checks(pl); /* the examinations not started end now */
	if (pl->inflight > 0)
		cs_notice("pipeline: the new configuration applies once %d task(s) in flight "
			  "are done",
			  pl->inflight);
	pl_maybe_quiesced(pl);
}

int cs_pipeline_reload(struct cs_pipeline *pl, const char *name)
{
	struct cert *c = pl_find(pl, name);

	if (c == NULL)
		return -ENOENT;
	if (pl_stopping(pl))
		return -EBUSY;
	/* An examination takes milliseconds: the reload starts right after it. */
	if (c->stage == PL_CHECKING && !c->queued.set) {
		c->queued.set = true;
		c->queued.reload = true;
		return 0;
	}
	if (c->stage != PL_IDLE)
		return -EBUSY;
	pl_drift_reload_asked(c);
	pl_step(c, PL_EV_RELOAD);
	pl_reload_start(c);
	pl_flush_reloads(pl);
	return 0;
}

/* Starts the renewal asked for with force (and a waiter w, taken); false when it could not. */
static bool start_asked(struct cert *c, bool force, struct pl_waiter *w)
{
	const char *why;

	if (force)
		why = c->due_reason != NULL && strcmp(c->due_reason, "revoked") == 0 ? "revoked"
										       : "forced";
	else
		why = pl_verdict_ok(c) ? c->due_reason : c->reason;
	if (!pl_renewal_start(c, force, why)) {
		if (w != NULL)
			w->cb(w->arg, CS_RENEWAL_FAILED, "the renewal could not start");
		free(w);
		return false;
	}
	if (w != NULL) {
		/* The renewal may have ended already (a start that failed at once). */
		if (c->renewal != NULL) {
			SLIST_INSERT_HEAD(&c->renewal->waiters, w, next);
		} else {
			w->cb(w->arg, CS_RENEWAL_FAILED, c->st.last_error);
			free(w);
		}
	}
	return true;
}

void pl_start_queued(struct cert *c)
{
	struct pl_waiter *w = c->queued.w;
	bool force = c->queued.force;

	assert(c->stage == PL_IDLE && c->queued.set);
	c->queued.set = false;
	c->queued.w = NULL;
	if (c->queued.reload) {
		c->queued.reload = false;
		if (!pl_stopping(c->pl)) {
			pl_drift_reload_asked(c);
			pl_step(c, PL_EV_RELOAD);
			pl_reload_start(c);
			pl_flush_reloads(c->pl);
		}
		return;
	}
	if (pl_stopping(c->pl) || c->issuer->is == NULL) {
		if (w != NULL)
			w->cb(w->arg, CS_RENEWAL_ABANDONED, "the agent is stopping");
		free(w);
		return;
	}
	start_asked(c, force, w);
}

int cs_pipeline_adopt(struct cs_pipeline *pl, const char *name,
		      void (*cb)(void *arg, int status, const char *msg), void *arg)
{
	struct cert *c = pl_find(pl, name);

	if (c == NULL)
		return -ENOENT;
	if (c->stage != PL_IDLE || pl_stopping(pl) || c->adopt_cb != NULL)
		return -EBUSY;
	c->adopt_cb = cb;
	c->adopt_arg = arg;
	uv_timer_stop(&c->check_timer); /* no quiet time: the operator says they are ready */
	pl_start_check(c);
	if (c->stage != PL_CHECKING) {
		c->adopt_cb = NULL;
		c->adopt_arg = NULL;
		return -ENOMEM;
	}
	return 0;
}

int cs_pipeline_renew(struct cs_pipeline *pl, const char *name, bool force, cs_renewal_cb cb,
		      void *arg)
{
	struct cert *c = pl_find(pl, name);
	struct pl_waiter *w = NULL;

	if (c == NULL)
		return -ENOENT;
	if (pl_stopping(pl) || c->issuer->is == NULL)
		return -EBUSY;
	/* An examination takes milliseconds: the renewal starts right after it. */
	if (c->stage != PL_IDLE && (c->stage != PL_CHECKING || c->queued.set))
		return -EBUSY;
	if (!force && c->due > pl_now(pl))
		return 1;
	if (force && c->repairs_stopped) {
		/* The operator says the outputs are theirs again. */
		c->repairs_stopped = false;
		memset(c->repairs, 0, sizeof(c->repairs));
	}
	if (cb != NULL) {
		if ((w = calloc(1, sizeof(*w))) == NULL)
			return -ENOMEM;
		w->cb = cb;
		w->arg = arg;
	}
	if (c->stage == PL_CHECKING) {
		c->queued.set = true;
		c->queued.force = force;
		c->queued.w = w;
		return 0;
	}
	if (!start_asked(c, force, NULL)) {
		free(w);
		return -ENOMEM;
	}
	if (w != NULL) {
		if (c->renewal != NULL) {
			SLIST_INSERT_HEAD(&c->renewal->waiters, w, next);
		} else {
			cb(arg, CS_RENEWAL_FAILED, c->st.last_error);
			free(w);
		}
	}
	pl_arm_timer(pl);
	return 0;
}

int cs_pipeline_set_window(struct cs_pipeline *pl, const char *name, time_t start, time_t end)
{
	time_t now = pl_now(pl);
	struct cert *c;

	if (end <= start)
		return -EINVAL;
	if ((c = pl_find(pl, name)) == NULL)
		return -ENOENT;
	c->win_asked = 0; /* not the issuer's answer: a moment of our choice inside it */
	pl_set_window(c, start, end, now);
	return 0;
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
	pl_status_of(pl->certs[i], out);
}

const char *cs_pipeline_name(const struct cs_pipeline *pl, size_t i)
{
	return i < pl->n_certs ? pl->certs[i]->cfg->name : NULL;
}

int cs_pipeline_status_of(const struct cs_pipeline *pl, const char *name,
			  struct cs_cert_status *out)
{
	const struct cert *c = pl_find(pl, name);

	if (c == NULL)
		return -ENOENT;
	pl_status_of(c, out);
	return 0;
}

void pl_status_of(const struct cert *c, struct cs_cert_status *out)
{
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
	out->last_reload = c->last_reload;
	out->last_verify = c->last_verify;
	out->verify = c->verify;
	out->names = c->cfg->names.v;
	out->n_names = c->cfg->names.n;
	out->stage = pl_stage_name(c->stage);
	out->stage_since = c->stage_since;
	out->retry_at = c->st.failures > 0 ? c->st.next_attempt : 0;
	out->retry_reason = c->st.failures > 0 ? c->st.last_error : NULL;
	out->pending_gen = c->st.pending_gen;
	out->warning = c->cfg->client_warning;
	if (c->renewal != NULL)
		out->rollback_gen = c->renewal->rollback_gen;
	else
		out->rollback_gen = c->st.n_gens > 1 ? c->st.gens[1].n : 0;
	pl_drift_status(c, out);
	out->issuers = c->cfg->issuers.v;
	out->n_issuers = c->cfg->issuers.n;
	out->issued_by = c->st.issuer[0] ? c->st.issuer : NULL;
	out->fallback = c->st.fallback[0] ? c->st.fallback : NULL;
	out->fallbacks = c->st.fallbacks;
	if (c->st.issuer_idx > 0 && (size_t)c->st.issuer_idx < c->n_issuers) {
		out->trying = c->issuers[c->st.issuer_idx]->name;
		out->trying_why = c->st.failover_why[0] ? c->st.failover_why : NULL;
	}
	pl_dane_status(c, out);
}

int cs_pipeline_subscribe(struct cs_pipeline *pl, void (*fn)(void *arg, const struct cs_event *ev),
			  void *arg)
{
	return cs_events_subscribe(&pl->events, fn, arg);
}

void cs_pipeline_unsubscribe(struct cs_pipeline *pl,
			     void (*fn)(void *arg, const struct cs_event *ev), void *arg)
{
	cs_events_unsubscribe(&pl->events, fn, arg);
}

void pl_event_publish(struct cert *c, struct cs_event ev)
{
	/* A renewal holds its issuer; otherwise names only: the issuers may be
	   gone already (an examination that ends while the pipeline is torn down). */
	ev.cert = c->cfg->name;
	if (ev.issuer == NULL && c->renewal != NULL && c->renewal->issuer != NULL)
		ev.issuer = c->renewal->issuer->name;
	if (ev.issuer == NULL)
		ev.issuer = c->st.issuer[0] != '\0' ? c->st.issuer : c->cfg->issuer;
	ev.time = pl_now(c->pl);
	if (ev.renewal == 0 && c->renewal != NULL)
		ev.renewal = c->renewal->id;
	cs_events_publish(&c->pl->events, &ev);
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
	uv_timer_stop(&pl->crl_timer);
	for (size_t i = 0; i < pl->n_certs; i++) {
		uv_timer_stop(&pl->certs[i]->check_timer);
		pl_drift_stop(pl->certs[i]);
	}
	pl_close_issuers(pl);
	pl_feed_checks(pl); /* the examinations not started end now */
	/* Issuances in flight are cancelled by closing the issuers; wait for the rest. */
	if (pl->inflight > 0)
		cs_info("pipeline: waiting for %d task(s) in flight", pl->inflight);
	pl_maybe_quiesced(pl);
}
