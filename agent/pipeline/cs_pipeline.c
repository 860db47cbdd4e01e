/* cs_pipeline - see pl_int.h and cs_pipeline.h. */
#include "pl_int.h"
#include "cs_csr.h"
#include "cs_key.h"
#include "cs_localca.h"
#include "cs_sched.h"
#include "cs_verify.h"
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

/* ---- once mode ---------------------------------------------------------- */

void pl_once_finish(struct cert *c, enum once_result r)
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
		pl_rewatch(pl);
	}
	pl_examine_all(pl);
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
	if (pl->inflight > 0)
		cs_notice("pipeline: the new configuration applies once %u task(s) in flight "
			  "are done",
			  pl->inflight);
	pl_maybe_quiesced(pl);
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
		pl_request_reloads(c);
		pl_flush_reloads(pl);
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
		if (!pl_start_renew(c))
			return -ENOMEM;
		pl_arm_timer(pl);
		return 0;
	}
	return -ENOENT;
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
		pl_set_window(c, start, end, now);
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
	pl_close_issuers(pl);
	/* Issuances in flight are cancelled by closing the issuers; wait for the rest. */
	if (pl->inflight > 0)
		cs_info("pipeline: waiting for %u task(s) in flight", pl->inflight);
	pl_maybe_quiesced(pl);
}
