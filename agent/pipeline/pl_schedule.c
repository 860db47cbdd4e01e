/*
 * pl_schedule - when each cert is due: from the deployed leaf (renew_before,
 * jitter, the issuer's ARI window) or, after a failure, the next attempt the
 * backoff chose; and one libuv timer for the earliest due moment of all idle
 * certs, whose expiry starts their renewals.
 */
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

char *pl_fmt_time(time_t t, char *buf, size_t len)
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

char *pl_fmt_delay(int64_t s, char *buf, size_t len)
{
	if (s <= 0)
		snprintf(buf, len, "now");
	else
		cs_cfg_format_duration(s, buf, len);
	return buf;
}

/* ---- schedule ----------------------------------------------------------- */

bool pl_verdict_ok(const struct cert *c)
{
	return c->verdict == CS_EX_OK && c->m != NULL;
}

/* Sets c->due and c->state from what is deployed and the failure history. */
void pl_schedule(struct cert *c, time_t now)
{
	const struct cs_config *cfg = c->pl->cfg;

	if (pl_verdict_ok(c)) {
		struct cs_sched_in in = {
			.now = now,
			.not_before = c->not_before,
			.not_after = c->not_after,
			.renew_before = c->cfg->renew_before.set ? c->cfg->renew_before
								 : cfg->agent.renew_before,
			.renew_before_own = c->cfg->renew_before.set,
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
	/*
	 * A failed renewal is tried again when its backoff ends, even when the
	 * certificate itself is not due (a forced renewal that was rolled back).
	 */
	if (c->st.failures > 0) {
		c->due = c->st.next_attempt;
		c->due_reason = "retry after a failure";
	}
	/* Failing renewals show, unless what is deployed is already gone or expired. */
	if (c->st.failures > 0 && c->state != CS_CERT_MISSING && c->state != CS_CERT_EXPIRED)
		c->state = CS_CERT_FAILED;
	/* Until a renewal has ended (verified or not), it is not "valid" yet. */
	if (c->renewal != NULL)
		c->state = CS_CERT_RENEWING;
	c->st.next_due = c->due;
}

static void on_timer(uv_timer_t *t)
{
	struct cs_pipeline *pl = t->data;
	time_t now = pl_now(pl);

	for (size_t i = 0; i < pl->n_certs; i++) {
		struct cert *c = pl->certs[i];
		if (c->stage != PL_IDLE)
			continue;
		if (c->due <= now &&
		    !pl_renewal_start(c, false, pl_verdict_ok(c) ? c->due_reason : c->reason))
			c->due = now + (time_t)pl->cfg->agent.retry_min; /* no busy loop */
		if (c->stage == PL_IDLE && c->ari_next != 0 && c->ari_next <= now)
			pl_ari_fetch(c);
	}
	pl_arm_timer(pl);
}

/* One timer for the earliest due moment of all idle certs. */
void pl_arm_timer(struct cs_pipeline *pl)
{
	time_t earliest = 0;
	bool any = false;

	if (pl->once || pl->closing || pl->draining || pl->tearing_down)
		return;
	for (size_t i = 0; i < pl->n_certs; i++) {
		struct cert *c = pl->certs[i];
		if (c->stage != PL_IDLE)
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
	int64_t delay = (int64_t)earliest * 1000 - pl_now_ms(pl);
	if (delay < 0)
		delay = 0;
	if (delay > TIMER_MAX_MS)
		delay = TIMER_MAX_MS;
	uv_timer_start(&pl->timer, on_timer, (uint64_t)delay, 0);
}

void pl_log_schedule(const struct cert *c, time_t now)
{
	char t1[40], t2[40], d[48];

	if (c->due <= now)
		snprintf(d, sizeof(d), "now");
	else
		snprintf(d, sizeof(d), "in %s", pl_fmt_delay(c->due - now, t2, sizeof(t2)));
	if (pl_verdict_ok(c))
		cs_info("%s: valid until %s; next renewal %s (%s: %s)", c->cfg->name,
			pl_fmt_time(c->not_after, t1, sizeof(t1)), pl_fmt_time(c->due, t2, sizeof(t2)), d,
			c->due_reason);
	else
		cs_info("%s: next attempt %s (%s: %s)", c->cfg->name,
			pl_fmt_time(c->due, t2, sizeof(t2)), d, c->due_reason);
}
