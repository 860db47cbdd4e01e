/*
 * pl_renewal - the life of one renewal: how it starts (with a new key, or by
 * deploying a generation that was issued earlier and never put in place),
 * and how it ends. The end is the one place where failures are counted and
 * the next attempt is scheduled, whatever step failed: issue, deploy,
 * reload, verify, or a rollback. The rules (certsyncd(8), FAILURES):
 *
 *  - every failed renewal counts, forced or not, and the next attempt waits
 *    retry_min doubled per failure (with up to 20% jitter) up to retry_max,
 *    at most a quarter of the time the deployed certificate has left, and at
 *    most CS_SCHED_EXPIRED_CAP while nothing valid is deployed; never less
 *    than the issuer's Retry-After;
 *  - the attempt is due at that moment even when the certificate itself is
 *    not (a rolled-back forced renewal is tried again);
 *  - only a renewal that ended verified (or deployed with nothing to verify)
 *    clears the failures;
 *  - generations: the deployed one, the one before it and a pending one are
 *    kept; others are pruned after the state naming them is saved;
 *  - failover: a cert with several issuers renews with the first; after each
 *    failure cs_sched_failover says whether the next attempt goes to the next
 *    issuer of the list (then after retry_min, whatever Retry-After the
 *    failed one asked for; after the last, back to the first with the usual
 *    backoff). A success starts the next renewal with the first again.
 *
 * Also the issuer handles that renewals hold references on.
 */
#include "pl_int.h"
#include "cs_sched.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *cs_pipeline_outcome_name(enum cs_renewal_outcome o)
{
	switch (o) {
	case CS_RENEWAL_VERIFIED:
		return "verified";
	case CS_RENEWAL_DEPLOYED:
		return "deployed";
	case CS_RENEWAL_ROLLED_BACK:
		return "rolled_back";
	case CS_RENEWAL_FAILED:
		return "failed";
	case CS_RENEWAL_ABANDONED:
		return "abandoned";
	}
	return "?";
}

struct pl_issuer *pl_issuer_ref(struct pl_issuer *pi)
{
	pi->refs++;
	return pi;
}

void pl_issuer_unref(struct pl_issuer *pi)
{
	assert(pi->refs > 0);
	if (--pi->refs > 0)
		return;
	/* The issuer itself was closed by the pipeline; only the handle is left. */
	assert(pi->is == NULL);
	free(pi->name);
	free(pi);
}

/*
 * The generation a rollback restores: the one deployed now, when it is
 * valid, the agent's own, and not revoked (a revoke asks for a new key).
 */
static int rollback_target(const struct cert *c)
{
	if (!pl_verdict_ok(c) || c->fresh_key || c->st.n_gens == 0 ||
	    strcmp(c->st.gens[0].sha256, c->sha256) != 0)
		return 0;
	return c->st.gens[0].n;
}

/* The issuer the next attempt goes to: where the failover rule left it. */
static struct pl_issuer *current_issuer(struct cert *c)
{
	if (c->st.issuer_idx < 0 || (size_t)c->st.issuer_idx >= c->n_issuers) {
		c->st.issuer_idx = 0; /* a shorter list since: the first again */
		c->st.issuer_failures = 0;
	}
	return c->issuers[c->st.issuer_idx];
}

bool pl_renewal_start(struct cert *c, bool forced, const char *why)
{
	struct cs_pipeline *pl = c->pl;
	struct renewal *r;
	struct pl_issuer *pi = current_issuer(c);
	char t[40];

	if (c->stage != PL_IDLE || pl_stopping(pl) || pi->is == NULL)
		return false;
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		cs_err("%s: cannot renew: out of memory", c->cfg->name);
		return false;
	}
	r->id = ++pl->renewal_seq;
	r->issuer = pl_issuer_ref(pi);
	r->forced = forced;
	r->rollback_gen = rollback_target(c);
	SLIST_INIT(&r->waiters);
	c->renewal = r;
	pl_set_state(c, CS_CERT_RENEWING);
	c->st.last_attempt = pl_now(pl);
	if (c->st.renew_at == 0)
		c->st.renew_at = c->st.last_attempt;
	pl_event_publish(c, (struct cs_event){ .type = CS_EVENT_RENEWAL_STARTED });
	if (c->st.pending_gen > 0) {
		cs_notice("%s: deploying generation %d, issued earlier and not yet in place (%s)",
			  c->cfg->name, c->st.pending_gen, why);
		pl_step(c, PL_EV_REDEPLOY);
		pl_deploy_pending(c);
	} else {
		cs_notice("%s: renewing with issuer %s (%s%s%s)%s%s", c->cfg->name, pi->name, why,
			  pl_verdict_ok(c) && !forced ? ", due " : "",
			  pl_verdict_ok(c) && !forced ? pl_fmt_time(c->due, t, sizeof(t)) : "",
			  pi != c->issuer ? "; fallback: " : "",
			  pi != c->issuer ? c->st.failover_why : "");
		pl_step(c, PL_EV_RENEW);
		pl_keygen_start(c);
	}
	return true;
}

/*
 * The failover rule after a failure on issuer pi: stays, or moves the next
 * attempt to the next issuer of the list (logged, counted). Returns true
 * when it moved to an issuer not yet tried in this round (not back to the
 * first): that one is tried soon, without the failed one's Retry-After.
 */
static bool failover(struct cert *c, struct pl_issuer *pi, const char *msg, int64_t retry_after)
{
	time_t now = pl_now(c->pl);
	struct cs_failover_in in = {
		.failures = ++c->st.issuer_failures,
		.after = c->cfg->failover_after,
		.now = now,
		.renew_at = c->st.renew_at,
		.not_after = pl_verdict_ok(c) ? c->not_after : 0,
		.retry_after = retry_after,
	};
	enum cs_failover why;
	char reason[120];

	/* A generation issued and not yet deployed goes in place next: no order. */
	if (c->n_issuers < 2 || c->st.pending_gen > 0 ||
	    (why = cs_sched_failover(&in)) == CS_FAILOVER_STAY)
		return false;
	if (why == CS_FAILOVER_FAILURES)
		snprintf(reason, sizeof(reason), "%d failures in a row", in.failures);
	else
		snprintf(reason, sizeof(reason), "%s", cs_sched_failover_name(why));
	size_t next = ((size_t)c->st.issuer_idx + 1) % c->n_issuers;
	c->st.issuer_idx = (int)next;
	c->st.issuer_failures = 0;
	if (next == 0) {
		cs_warn("%s: every issuer failed (the last, %s: %s); back to the first, issuer %s",
			c->cfg->name, pi->name, reason, c->issuers[0]->name);
		c->st.failover_why[0] = '\0';
		return false;
	}
	c->st.fallbacks++;
	snprintf(c->st.failover_why, sizeof(c->st.failover_why), "issuer %s failed (%s): %.300s",
		 pi->name, reason, msg ? msg : "no reason given");
	cs_warn("%s: falling back from issuer %s to issuer %s: %s", c->cfg->name, pi->name,
		c->issuers[next]->name, reason);
	return true;
}

/* Keeps the failure in the state and says when the next attempt is. */
static void count_failure(struct cert *c, struct pl_issuer *pi, const char *msg,
			  int64_t retry_after)
{
	struct cs_pipeline *pl = c->pl;
	struct cs_backoff b = { pl->cfg->agent.retry_min, pl->cfg->agent.retry_max };
	time_t now = pl_now(pl);
	char d[40], t[40];

	c->st.failures++;
	c->st.retry_after = retry_after;
	cs_state_set_error(&c->st, msg);
	/* Another issuer next: soon, whatever this one asked for. */
	bool moved = failover(c, pi, msg, retry_after);
	int64_t delay = cs_sched_backoff(&b, moved ? 1 : c->st.failures, now,
					 pl_verdict_ok(c) ? c->not_after : 0,
					 moved ? 0 : retry_after, c->seed);
	c->st.next_attempt = now + (time_t)delay;
	if (pl->once)
		cs_err("%s: renewal failed: %s", c->cfg->name, msg);
	else
		cs_err("%s: renewal failed (%d in a row): %s; next attempt in %s (%lld s, at %s)",
		       c->cfg->name, c->st.failures, msg, pl_fmt_delay(delay, d, sizeof(d)),
		       (long long)delay, pl_fmt_time(c->st.next_attempt, t, sizeof(t)));
}

/* The event that tells how a renewal ended. */
static enum cs_event_type end_event(enum cs_renewal_outcome o)
{
	switch (o) {
	case CS_RENEWAL_VERIFIED:
	case CS_RENEWAL_DEPLOYED:
		return CS_EVENT_RENEWED;
	case CS_RENEWAL_ROLLED_BACK:
		return CS_EVENT_ROLLED_BACK;
	case CS_RENEWAL_FAILED:
	case CS_RENEWAL_ABANDONED:
		break;
	}
	return CS_EVENT_FAILED;
}

void pl_renewal_end(struct cert *c, enum cs_renewal_outcome o, const char *msg,
		    int64_t retry_after)
{
	struct cs_pipeline *pl = c->pl;
	struct renewal *r = c->renewal;
	struct pl_waiter *w;
	time_t now = pl_now(pl);

	assert(r != NULL);
	assert(c->stage == PL_IDLE);
	c->renewal = NULL;
	switch (o) {
	case CS_RENEWAL_VERIFIED:
	case CS_RENEWAL_DEPLOYED:
		c->st.failures = 0;
		c->st.next_attempt = 0;
		c->st.retry_after = 0;
		c->st.pending_gen = 0;
		cs_state_set_error(&c->st, NULL);
		/* The next renewal starts with the first issuer again. */
		c->st.issuer_idx = 0;
		c->st.issuer_failures = 0;
		c->st.renew_at = 0;
		c->st.failover_why[0] = '\0';
		c->repairs_stopped = false;
		memset(c->repairs, 0, sizeof(c->repairs));
		msg = NULL;
		break;
	case CS_RENEWAL_ABANDONED:
		cs_info("%s: renewal abandoned while stopping (%s)", c->cfg->name,
			msg ? msg : "nothing done yet");
		if (c->st.failures == 0)
			c->st.renew_at = 0; /* nothing failed: no renewal under way */
		break;
	case CS_RENEWAL_ROLLED_BACK:
	case CS_RENEWAL_FAILED:
		count_failure(c, r->issuer, msg, retry_after);
		if (pl->once && c->once != ONCE_FAILED) {
			pl_once_set(c, ONCE_FAILED);
			pl->once_failures++;
		}
		break;
	}
	if (o == CS_RENEWAL_FAILED && r->gen > 0 && c->st.pending_gen != r->gen &&
	    strcmp(r->new_sha, c->sha256) == 0)
		/* Deployed, then neither verified nor rolled back: say so plainly. */
		c->verify = CS_VERIFY_FAILED;
	/* Before anything that may start the next renewal (pl_cert_idle). */
	pl_event_publish(c, (struct cs_event){ .type = end_event(o), .renewal = r->id,
					       .outcome = o, .text = msg, .issuer = r->issuer->name,
					       .serial = r->new_serial[0] ? r->new_serial : NULL });
	pl_schedule(c, now);
	pl_issuer_unref(r->issuer);
	pl_save_state(c);
	pl_cert_idle(c);
	if (!pl->once && !pl->closing)
		pl_log_schedule(c, now);
	/* Last: a waiter's answer may lead its client to ask for more at once. */
	while ((w = SLIST_FIRST(&r->waiters)) != NULL) {
		SLIST_REMOVE_HEAD(&r->waiters, next);
		w->cb(w->arg, o, msg);
		free(w);
	}
	free(r);
	pl_arm_timer(pl);
	pl_maybe_quiesced(pl);
}

void pl_renewal_fail(struct cert *c, const char *msg, int64_t retry_after)
{
	struct cs_pipeline *pl = c->pl;

	pl_step(c, PL_EV_FAILED);
	pl_renewal_end(c, pl->closing || pl->tearing_down ? CS_RENEWAL_ABANDONED : CS_RENEWAL_FAILED,
		       msg, retry_after);
}

void pl_renewal_note_issuer(struct cert *c)
{
	struct renewal *r = c->renewal;

	snprintf(c->st.issuer, sizeof(c->st.issuer), "%s", r->issuer->name);
	if (r->issuer == c->issuer)
		c->st.fallback[0] = '\0';
	else
		snprintf(c->st.fallback, sizeof(c->st.fallback), "%s",
			 c->st.failover_why[0] ? c->st.failover_why
					       : "an earlier issuer of the list failed");
}

struct pl_issuer *pl_deployed_issuer(const struct cert *c)
{
	for (size_t k = 0; c->st.issuer[0] != '\0' && k < c->n_issuers; k++)
		if (strcmp(c->issuers[k]->name, c->st.issuer) == 0)
			return c->issuers[k];
	return c->issuer;
}
