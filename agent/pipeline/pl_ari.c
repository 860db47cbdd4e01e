/*
 * pl_ari - asking an ACME issuer for the renewal window of the deployed leaf
 * (RFC 9773) and taking it into the schedule; a window that opened before the
 * leaf was put in place is taken as meant for its predecessor.
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

#define ARI_POLL_S (6 * 3600)   /* ask again this often (RFC 9773 suggests hours) */
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
		int64_t again = w->retry_after > 0 ? w->retry_after : ARI_POLL_S;
		if (again < 60)
			again = 60;
		if (again > 86400)
			again = 86400;
		c->ari_next = now + (time_t)again;
		cs_info("%s: the issuer suggests renewing between %s and %s%s%s", c->cfg->name,
			pl_fmt_time((time_t)w->start, (char[40]){ 0 }, 40),
			pl_fmt_time((time_t)w->end, (char[40]){ 0 }, 40),
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
			pl_set_window(c, (time_t)w->start, (time_t)w->end, now);
	} else if (status == -ENOTSUP) {
		cs_debug("%s: issuer %s gives no renewal windows", c->cfg->name, c->issuer->name);
		c->ari_next = 0;
	} else {
		cs_warn("%s: cannot get the renewal window from issuer %s: %s", c->cfg->name,
			c->issuer->name, error ? error : strerror(-status));
		c->ari_next = now + ARI_RETRY_S;
	}
	pl_timer_touch(c);
	pl_arm_timer(pl);
	pl_maybe_quiesced(pl);
}

/* Asks the issuer (one that gives them: ACME) for the renewal window of the deployed leaf. */
void pl_ari_fetch(struct cert *c)
{
	struct cs_pipeline *pl = c->pl;
	struct cs_der der = { 0 };
	cs_material *m;
	int rc;

	c->ari_next = 0;
	/* Closing frees the issuers before work in flight ends: test that first. */
	if (pl->closing || pl->draining || pl->tearing_down || pl->issuers_closing ||
	    c->issuer->is == NULL || c->issuer->is->ops->renewal_info == NULL || !pl_verdict_ok(c) || c->ari_busy || pl->once)
		return;
	snprintf(c->ari_sha, sizeof(c->ari_sha), "%s", c->sha256);
	/* Kept as DER between passes: the leaf is decoded for the question (which copies it). */
	m = pl_material_get(c);
	rc = m != NULL && m->leaf != NULL ? cs_issuer_der_of_x509(&der, m->leaf) : -ENODATA;
	cs_material_free(m);
	if (rc == 0)
		rc = c->issuer->is->ops->renewal_info(c->issuer->is, &der, on_ari, c);
	cs_issuer_der_clear(&der);
	if (rc < 0) {
		cs_warn("%s: cannot ask issuer %s for the renewal window: %s", c->cfg->name,
			c->issuer->name, strerror(-rc));
		c->ari_next = pl_now(pl) + ARI_RETRY_S;
		pl_timer_touch(c);
		return;
	}
	c->ari_busy = true;
	pl_inflight_inc(pl);
}
