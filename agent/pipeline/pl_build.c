/*
 * pl_build - making the issuers, reloaders and certs of a configuration, and
 * tearing them down (on stop, and on SIGHUP once nothing is in flight) in the
 * order their callbacks allow.
 */
#include "pl_int.h"
#include "cs_csr.h"
#include "cs_key.h"
#include "cs_registry.h"
#include "cs_sched.h"
#include "cs_verify.h"
#include "cs_x509.h"

#include <assert.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- building and tearing down ------------------------------------------- */

static cs_issuer *make_issuer(const struct cs_pipeline *pl, uv_loop_t *loop,
			      const struct cs_cfg_issuer *ci, const char *state_dir)
{
	char msg[1200];
	cs_issuer *is;

	if (pl->drv.issuer_new == NULL)
		return cs_registry_issuer_open(loop, ci, state_dir);
	if ((is = pl->drv.issuer_new(pl->drv.arg, loop, ci, state_dir)) != NULL)
		return is;
	snprintf(msg, sizeof(msg), "issuer %s cannot be used: the test's issuer factory failed",
		 ci->name);
	cs_err("%s", msg);
	return cs_issuer_broken_new(loop, ci->name, msg);
}

/* Builds issuers, reloaders and certs for pl->cfg; returns 0 or -ENOMEM. */
int pl_build(struct cs_pipeline *pl)
{
	const struct cs_config *cfg = pl->cfg;

	pl->issuers = calloc(cfg->n_issuers + 1, sizeof(*pl->issuers));
	pl->certs = calloc(cfg->n_certs + 1, sizeof(*pl->certs));
	pl->dheap = calloc(cfg->n_certs + 1, sizeof(*pl->dheap));
	pl->cap_dheap = pl->dheap != NULL ? cfg->n_certs + 1 : 0;
	pl->rl = cs_reloads_new(pl->loop, cfg, pl->drv.reloader_new, pl->drv.arg,
				pl_on_reload_result, pl);
	if (pl->issuers == NULL || pl->certs == NULL || pl->dheap == NULL || pl->rl == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->n_issuers; i++) {
		struct pl_issuer *pi = calloc(1, sizeof(*pi));
		if (pi == NULL || (pi->name = strdup(cfg->issuers[i].name)) == NULL) {
			free(pi);
			return -ENOMEM;
		}
		pi->refs = 1; /* the pipeline's, dropped once the issuer has closed */
		pi->is = make_issuer(pl, pl->loop, &cfg->issuers[i], cfg->agent.state_dir);
		pl->issuers[pl->n_issuers++] = pi;
		if (pi->is == NULL)
			return -ENOMEM;
	}
	if (cfg->n_capaths > 0 || cfg->n_clientcerts > 0 || cfg->n_snis > 0) {
		char err[512] = "";
		pl->capsync = cs_capsync_new(pl->loop, cfg, pl_on_capsync_done, pl, err, sizeof(err));
		if (pl->capsync == NULL) {
			cs_err("the [capath], [clientcerts] and [sni] sections cannot be kept in sync: %s",
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
		c->issuers[c->n_issuers++] = c->issuer;
		/* The rest of the list (a hand-made configuration has only issuer). */
		for (size_t n = 1; n < c->cfg->issuers.n && n < CS_CFG_MAX_ISSUERS; n++)
			for (size_t k = 0; k < pl->n_issuers; k++)
				if (strcmp(pl->issuers[k]->name, c->cfg->issuers.v[n]) == 0)
					c->issuers[c->n_issuers++] = pl->issuers[k];
		if (c->issuer == NULL || c->n_issuers < c->cfg->issuers.n) {
			/* The parser refuses dangling issuers; this is a safety net. */
			free(c);
			return -EINVAL;
		}
		c->verdict = CS_EX_MISSING;
		pl_text_set(&c->reason, 1024, "not examined yet");
		c->due = pl_now(pl);
		c->stage_since = c->due;
		c->due_reason = "not examined yet";
		uv_timer_init(pl->loop, &c->check_timer);
		c->check_timer.data = c;
		c->idx = pl->n_certs;
		pl->certs[pl->n_certs++] = c;
		pl_stats_add(c);
		pl->once_pending++; /* c->once is ONCE_PENDING */
		pl_timer_touch(c);
		/* Names are unique: the parser says so. */
		if (cs_htab_insert(&pl->by_name, &c->by_name,
				   cs_htab_hash(c->cfg->name, CS_HTAB_SEED)) < 0)
			return -ENOMEM;
		if (pl_drift_new(c) < 0)
			return -ENOMEM;
	}
	return 0;
}

static void free_cert(struct cert *c)
{
	pl_clear_interest(c);
	pl_material_keep(c, NULL);
	free(c->reason);
	free(c->dane);
	free(c->last_reload);
	free(c->last_verify);
	free(c->round.err);
	cs_state_clear(&c->st);
	free(c);
}

static void teardown_step(struct cs_pipeline *pl);

static void on_issuer_closed(void *arg)
{
	struct cs_pipeline *pl = arg;

	assert(pl->issuers_open > 0);
	if (--pl->issuers_open > 0)
		return;
	for (size_t i = 0; i < pl->n_issuers; i++)
		pl_issuer_unref(pl->issuers[i]);
	free(pl->issuers);
	pl->issuers = NULL;
	pl->n_issuers = 0;
	teardown_step(pl);
}

/*
 * Closes every issuer (once): issuances in flight are cancelled and their
 * callbacks run before the issuer's close callback.
 */
void pl_close_issuers(struct cs_pipeline *pl)
{
	size_t n = pl->n_issuers;

	if (pl->issuers_closing)
		return;
	pl->issuers_closing = true;
	/* One extra count, so that issuers closing at once cannot free the array under us. */
	pl->issuers_open = n + 1;
	for (size_t i = 0; i < n; i++) {
		/* From now on nobody calls into it; renewals see NULL. */
		cs_issuer *is = pl->issuers[i]->is;
		pl->issuers[i]->is = NULL;
		if (is != NULL)
			is->ops->close(is, on_issuer_closed, pl);
		else
			pl->issuers_open--;
	}
	on_issuer_closed(pl);
}

static void on_part_closed(void *arg)
{
	struct cs_pipeline *pl = arg;

	assert(pl->closing_handles > 0);
	pl->closing_handles--;
	teardown_step(pl);
}

static void on_cert_closed(uv_handle_t *h)
{
	struct cert *c = h->data;
	struct cs_pipeline *pl = c->pl;

	free_cert(c);
	assert(pl->closing_handles > 0);
	pl->closing_handles--;
	teardown_step(pl);
}

static void after_teardown(struct cs_pipeline *pl);

/* Closes reloaders, certs and issuers (asynchronously); then after_teardown. */
void pl_teardown(struct cs_pipeline *pl)
{
	pl->tearing_down = true;
	assert(STAILQ_EMPTY(&pl->firstq) && pl->first_running == 0);
	uv_timer_stop(&pl->timer);
	uv_timer_stop(&pl->crl_timer);
	pl->closing_handles = 2; /* one held until everything has been started */
	cs_reloads_close(pl->rl, on_part_closed, pl);
	pl->rl = NULL;
	/* The capsync's and the local CAs' directories. */
	pl_unwatch_capsync(pl);
	if (pl->capsync != NULL) {
		/* It waits for a job that runs, then frees itself. */
		pl->closing_handles++;
		cs_capsync_close(pl->capsync, on_part_closed, pl);
		pl->capsync = NULL;
	}
	for (size_t i = 0; i < pl->n_certs; i++) {
		struct cert *c = pl->certs[i];
		/* Nothing is in flight any more, so every cert is idle. */
		assert(c->renewal == NULL && !c->queued.set);
		pl_step(c, PL_EV_CLOSE);
		pl->closing_handles++;
		if (pl_drift_close(c, on_part_closed, pl))
			pl->closing_handles++;
		uv_close((uv_handle_t *)&c->check_timer, on_cert_closed);
	}
	free(pl->certs);
	pl->certs = NULL;
	pl->n_certs = 0;
	pl_stats_forget_all(pl);
	pl->once_pending = 0;
	cs_htab_clear(&pl->by_name);
	pl_timer_forget_all(pl);
	pl_close_issuers(pl);
	assert(pl->closing_handles > 0);
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

static void pipeline_handle_gone(struct cs_pipeline *pl)
{
	assert(pl->closing_handles > 0);
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
		/* Every interest went with its cert, every directory with its last interest. */
		assert(pl->wdirs.n == 0 && pl->interests.n == 0 && pl->n_cap_dirs == 0);
		cs_htab_clear(&pl->wdirs);
		cs_htab_clear(&pl->interests);
		pl->closing_handles = 4;
		uv_close((uv_handle_t *)&pl->timer, on_pipeline_handle_closed);
		uv_close((uv_handle_t *)&pl->crl_timer, on_pipeline_handle_closed);
		struct cs_watch *w = pl->watch;
		pl->watch = NULL;
		cs_watch_close(w, on_watch_closed, pl);
		struct pl_clock *ck = pl->clock;
		pl->clock = NULL;
		pl_clock_close(ck, on_watch_closed, pl);
		return;
	}
	/* A new configuration: release the old one, build and examine again. */
	const struct cs_config *old = pl->cfg;
	pl->cfg = pl->pending_cfg;
	pl->pending_cfg = NULL;
	pl->draining = false;
	if (pl->release_cb)
		pl->release_cb(pl->release_arg, old);
	if (pl_build(pl) < 0)
		cs_err("cannot apply the new configuration completely: out of memory");
	cs_notice("pipeline: %zu cert(s) under the new configuration", pl->n_certs);
	pl_rewatch_capsync(pl); /* each cert's files with its first examination */
	pl_examine_all(pl);
	pl_drift_start_all(pl);
	pl_maybe_quiesced(pl);
}

void pl_maybe_quiesced(struct cs_pipeline *pl)
{
	if (pl->tearing_down)
		return;
	if (pl->once && !pl->once_done && !pl->closing) {
		bool all = pl->once_pending == 0;
		if (all && pl_reloads_pending(pl))
			pl_flush_reloads(pl);
		/* A reload that could not start has ended already, and may have finished this. */
		if (pl->once_done || pl->tearing_down || pl->closing)
			return;
		if (all && pl->inflight == 0 && !pl_reloads_busy(pl) && !pl_capsync_busy(pl)) {
			pl->once_done = true;
			pl_once_summary(pl);
			if (pl->done_cb)
				pl->done_cb(pl->done_arg, pl->once_failures);
			return;
		}
	}
	if ((pl->closing || pl->draining) && pl_reloads_pending(pl))
		pl_flush_reloads(pl);
	if (pl->tearing_down || pl->inflight > 0 || pl_reloads_busy(pl))
		return;
	if (pl->closing || (pl->draining && pl->pending_cfg != NULL))
		pl_teardown(pl);
}
