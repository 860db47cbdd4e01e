/*
 * pl_ari - asking an ACME issuer for the renewal window of the deployed leaf
 * (RFC 9773), keeping the answer in the state (window, explanation, when to
 * ask again) and taking it into the schedule; a window that opened before the
 * leaf was put in place is taken as meant for its predecessor, one that had
 * begun when the CA gave it asks for a renewal now.
 */
#include "pl_int.h"
#include "cs_csr.h"
#include "cs_key.h"
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

/* ---- the issuer's renewal window (ACME ARI) -------------------------------- */

#define ARI_RETRY_S 3600        /* after an error */

/* Takes the window start..end for the leaf c->ari_sha, when it is still deployed. */
void pl_set_window(struct cert *c, time_t start, time_t end, time_t now)
{
	c->has_window = true;
	c->win_start = start;
	c->win_end = end;
	snprintf(c->win_sha, sizeof(c->win_sha), "%s", c->sha256);
	if (c->stage == PL_IDLE) {
		pl_schedule(c, now);
		pl_log_schedule(c, now);
		pl_save_state(c);
		pl_event_publish(c, (struct cs_event){ .type = CS_EVENT_CHANGED });
		pl_arm_timer(c->pl);
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

/*
 * Takes the window kept in c->st.ari (for the deployed leaf) into the
 * schedule: false when it is not for this leaf, or opened before this leaf
 * was put in place (a CA answering for the one it replaced: following it
 * would renew again at once, and again after that).
 */
static bool take_window(struct cert *c, time_t now)
{
	const struct cs_state_ari *a = &c->st.ari;
	char t1[40];

	if (strcmp(a->sha256, c->sha256) != 0 || a->start <= leaf_since(c))
		return false;
	if (cs_sched_window_begun(a->start, a->asked))
		cs_notice("%s: renewing: the CA asked for it (ARI window since %s%s%s)",
			  c->cfg->name, pl_fmt_time(a->start, t1, sizeof(t1)),
			  a->explanation[0] ? "; see " : "", a->explanation);
	c->win_asked = a->asked;
	pl_set_window(c, a->start, a->end, now);
	return true;
}

/* An ARI answer for the deployed leaf: kept in the state and taken into the schedule. */
static void took_answer(struct cert *c, const struct cs_issuer_window *w, time_t now)
{
	struct cs_state_ari *a = &c->st.ari;
	int64_t again = cs_sched_ari_again(w->retry_after, c->pl->cfg->agent.ari_interval);
	bool same = strcmp(a->sha256, c->sha256) == 0 && a->start == (time_t)w->start &&
		    a->end == (time_t)w->end;
	char t1[40], t2[40], t3[40];

	c->ari_next = now + (time_t)again;
	if (!same) {
		snprintf(a->sha256, sizeof(a->sha256), "%s", c->sha256);
		a->start = (time_t)w->start;
		a->end = (time_t)w->end;
		a->asked = now;
	}
	snprintf(a->explanation, sizeof(a->explanation), "%s", w->explanation);
	a->next = c->ari_next;
	/* Every answer would fill the log at info: a new window only. */
	cs_log(same ? CS_LOG_DEBUG : CS_LOG_INFO,
	       "%s: the issuer suggests renewing between %s and %s%s%s; asking again at %s",
	       c->cfg->name, pl_fmt_time(a->start, t1, sizeof(t1)),
	       pl_fmt_time(a->end, t2, sizeof(t2)), w->explanation[0] ? "; see " : "",
	       w->explanation, pl_fmt_time(c->ari_next, t3, sizeof(t3)));
	/* Nothing new: the window is in the schedule already, or was not for this leaf. */
	if (same && ((c->has_window && strcmp(c->win_sha, c->sha256) == 0) ||
		     a->start <= leaf_since(c))) {
		pl_save_state(c); /* the next question's time */
		return;
	}
	if (a->start <= leaf_since(c))
		cs_info("%s: that window opened before this certificate was put in place; "
			"keeping the renew_before schedule",
			c->cfg->name);
	if (!take_window(c, now) || c->stage != PL_IDLE)
		pl_save_state(c);
}

static void on_ari(void *arg, int status, const struct cs_issuer_window *w, const char *error)
{
	struct cert *c = arg;
	struct cs_pipeline *pl = c->pl;
	time_t now = pl_now(pl);

	pl_inflight_dec(pl);
	c->ari_busy = false;
	if (pl->closing || pl->tearing_down || pl->draining) {
		pl_maybe_quiesced(pl);
		return;
	}
	if (strcmp(c->ari_sha, c->sha256) != 0) {
		/* Another leaf was deployed meanwhile: ask about that one. */
		c->ari_next = now;
	} else if (status == 0) {
		took_answer(c, w, now);
	} else if (status == -ENOTSUP) {
		cs_debug("%s: issuer %s gives no renewal windows", c->cfg->name,
			 pl_deployed_issuer(c)->name);
		c->ari_next = 0;
	} else {
		cs_warn("%s: cannot get the renewal window from issuer %s: %s", c->cfg->name,
			pl_deployed_issuer(c)->name, error ? error : strerror(-status));
		c->ari_next = now + ARI_RETRY_S;
	}
	pl_timer_touch(c);
	/* A pass (--once) decides about c now that the issuer has answered. */
	if (pl->once && c->once == ONCE_PENDING && c->stage == PL_IDLE)
		pl_once_checked(c, now);
	pl_arm_timer(pl);
	pl_maybe_quiesced(pl);
}

/*
 * c has been examined (at the start, or its files changed): a window kept in
 * the state for the deployed leaf is taken without asking the issuer, which
 * is asked again at the time kept with it; otherwise the issuer is asked now.
 */
void pl_ari_checked(struct cert *c)
{
	const struct cs_state_ari *a = &c->st.ari;
	time_t now = pl_now(c->pl);
	char t1[40], t2[40], t3[40], t4[40];

	if (a->sha256[0] == '\0' || strcmp(a->sha256, c->sha256) != 0 || a->next <= now) {
		pl_ari_fetch(c);
		return;
	}
	if (!(c->has_window && strcmp(c->win_sha, c->sha256) == 0)) {
		cs_info("%s: renewal window %s .. %s kept from the issuer's answer of %s; "
			"asking again at %s",
			c->cfg->name, pl_fmt_time(a->start, t1, sizeof(t1)),
			pl_fmt_time(a->end, t2, sizeof(t2)), pl_fmt_time(a->asked, t3, sizeof(t3)),
			pl_fmt_time(a->next, t4, sizeof(t4)));
		take_window(c, now);
	}
	c->ari_next = a->next;
	pl_timer_touch(c);
}

/* Asks the issuer (one that gives them: ACME) for the renewal window of the deployed leaf. */
void pl_ari_fetch(struct cert *c)
{
	struct cs_pipeline *pl = c->pl;
	struct cs_der der = { 0 };
	struct pl_issuer *pi;
	cs_material *m;
	int rc;

	c->ari_next = 0;
	/* Closing frees the issuers before work in flight ends: test that first. */
	if (pl->closing || pl->draining || pl->tearing_down || pl->issuers_closing)
		return;
	/* The CA that issued the deployed certificate (of several, with failover) is asked. */
	pi = pl_deployed_issuer(c);
	if (pi->is == NULL || pi->is->ops->renewal_info == NULL || !pl_verdict_ok(c) || c->ari_busy)
		return;
	snprintf(c->ari_sha, sizeof(c->ari_sha), "%s", c->sha256);
	/* Kept as DER between passes: the leaf is decoded for the question (which copies it). */
	m = pl_material_get(c);
	rc = m != NULL && m->leaf != NULL ? cs_issuer_der_of_x509(&der, m->leaf) : -ENODATA;
	cs_material_free(m);
	if (rc == 0)
		rc = pi->is->ops->renewal_info(pi->is, &der, on_ari, c);
	cs_issuer_der_clear(&der);
	if (rc < 0) {
		cs_warn("%s: cannot ask issuer %s for the renewal window: %s", c->cfg->name,
			pi->name, strerror(-rc));
		c->ari_next = pl_now(pl) + ARI_RETRY_S;
		pl_timer_touch(c);
		return;
	}
	c->ari_busy = true;
	pl_inflight_inc(pl);
}
