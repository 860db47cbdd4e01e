/*
 * pl_reload - the services after a change (RELOADING, then VERIFYING): ask
 * the reloaders of the cert (debounced by cs_reloads: one reload per service
 * for a burst of renewals), collect one result per reloader, then probe the
 * verify URLs until they serve the deployed leaf. After a renewal, a failed
 * reload or probe rolls back to the last good generation (pl_rollback);
 * after a repair or `certsyncctl reload` it is reported. Where the reload
 * and verify end, the renewal ends (pl_renewal_end).
 */
#include "pl_int.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

bool pl_reloads_pending(const struct cs_pipeline *pl)
{
	return pl->rl != NULL && cs_reloads_pending(pl->rl);
}

bool pl_reloads_busy(const struct cs_pipeline *pl)
{
	return pl->rl != NULL && (cs_reloads_pending(pl->rl) || cs_reloads_running(pl->rl) > 0);
}

void pl_flush_reloads(struct cs_pipeline *pl)
{
	if (pl->rl != NULL)
		cs_reloads_flush(pl->rl);
}

static void add_reload_item(struct cert *c, const char *item)
{
	pl_text_append(&c->last_reload, 1024, "; ", item);
}

/* The reload (and verify) is over: back to IDLE, ending the renewal with o when there is one. */
static void settle(struct cert *c, enum cs_renewal_outcome o, const char *msg)
{
	pl_step(c, PL_EV_SETTLED);
	if (c->renewal != NULL) {
		pl_renewal_end(c, o, msg, 0);
		return;
	}
	pl_cert_idle(c);
	pl_arm_timer(c->pl);
	pl_maybe_quiesced(c->pl);
}

/*
 * The services refused what a renewal deployed (why): roll back when there
 * is a good generation to go back to, else end the renewal as failed.
 */
static void refused(struct cert *c, const char *why)
{
	struct renewal *r = c->renewal;
	char msg[2000];

	if (r->rollback_gen > 0 && !pl_stopping(c->pl)) {
		pl_step(c, PL_EV_REFUSED);
		pl_rollback(c, why);
		return;
	}
	snprintf(msg, sizeof(msg), "%.1500s; %s: the new certificate (serial %s) stays deployed, "
		 "unverified", why, pl_stopping(c->pl) ? "stopping" : "nothing valid to roll back to",
		 r->new_serial);
	settle(c, CS_RENEWAL_FAILED, msg);
}

static void on_verified(void *arg, bool ok, const char *summary)
{
	struct cert *c = arg;
	struct cs_pipeline *pl = c->pl;
	char msg[2200];

	pl_inflight_dec(pl);
	assert(c->stage == PL_VERIFYING);
	pl_text_set(&c->last_verify, 2048, "%s", summary);
	c->verify = ok ? CS_VERIFY_OK : CS_VERIFY_FAILED;
	pl_event_publish(c, (struct cs_event){ .type = CS_EVENT_VERIFIED,
					       .result = ok ? CS_EVENT_OK : CS_EVENT_ERROR,
					       .serial = c->serial, .text = summary });
	if (ok) {
		cs_notice("%s: verified: %s", c->cfg->name, summary);
		settle(c, CS_RENEWAL_VERIFIED, NULL);
		return;
	}
	snprintf(msg, sizeof(msg), "verify failed: %s", summary);
	if (c->renewal != NULL) {
		refused(c, msg);
		return;
	}
	cs_err("%s: %s", c->cfg->name, msg);
	cs_state_set_error(&c->st, msg);
	pl_save_state(c);
	if (pl->once)
		pl->once_failures++;
	settle(c, CS_RENEWAL_FAILED, msg);
}

/* Every reloader asked for c has reported: decide what comes next. */
static void round_over(struct cert *c)
{
	struct cs_pipeline *pl = c->pl;
	struct renewal *r = c->renewal;
	int bound = (int)(c->cfg->verify_timeout > 0 ? c->cfg->verify_timeout : 30) * 1000;
	int rc;

	assert(c->stage == PL_RELOADING);
	if (r != NULL && r->rolled_back) {
		/* The restored files are loaded (or the services still balk): the end. */
		settle(c, CS_RENEWAL_ROLLED_BACK, r->error);
		return;
	}
	if (c->round.failed) {
		if (r != NULL)
			refused(c, c->round.err);
		else
			settle(c, CS_RENEWAL_FAILED, c->round.err);
		return;
	}
	if (c->cfg->verify.n == 0 || pl->closing || pl->tearing_down) {
		settle(c, CS_RENEWAL_DEPLOYED, NULL);
		return;
	}
	if (c->round.skipped) {
		cs_warn("%s: not verified: a service is not running", c->cfg->name);
		pl_text_set(&c->last_verify, 2048, "not checked: a service is not running");
		c->verify = CS_VERIFY_NONE;
		settle(c, CS_RENEWAL_DEPLOYED, NULL);
		return;
	}
	pl_step(c, PL_EV_RELOADED);
	pl_inflight_inc(pl);
	struct cs_verify_dane vd = { 0 };
	if (c->dane != NULL && c->dane->have_view)
		vd = (struct cs_verify_dane){ (const char(*)[CS_DANE_OWNER_MAX])c->dane->owners,
					      c->dane->ans, c->dane->n_owners };
	rc = pl->drv.verify_start != NULL
		     ? pl->drv.verify_start(pl->drv.arg, pl->loop, &c->cfg->verify, c->sha256,
					    bound, on_verified, c)
		     : cs_verify_start_dane(pl->loop, &c->cfg->verify, c->sha256,
					    vd.n > 0 ? &vd : NULL, bound, on_verified, c);
	if (rc < 0) {
		pl_inflight_dec(pl);
		cs_err("%s: cannot start the verify probes", c->cfg->name);
		pl_text_set(&c->last_verify, 2048, "cannot start the verify probes");
		c->verify = CS_VERIFY_NONE;
		settle(c, CS_RENEWAL_DEPLOYED, NULL);
	}
}

void pl_on_reload_result(void *arg, void *owner, const char *reloader,
			 const struct cs_reload_result *res)
{
	struct cs_pipeline *pl = arg;
	struct cert *c = owner;
	char item[300], msg[1200];

	if (c == NULL) {
		pl_maybe_quiesced(pl);
		return;
	}
	if (owner == (void *)pl) {
		/* Asked for by the CApath/clientcerts sync: logged by cs_reloads. */
		if (res->status != 0 && pl->once)
			pl->once_failures++;
		return;
	}
	if (c->stage != PL_RELOADING || c->round.pending == 0) {
		cs_err("%s: internal error: a reload result (%s) while %s", c->cfg->name, reloader,
		       pl_stage_name(c->stage));
		assert(!"reload result outside a reload round");
		return;
	}
	if (res->status == 0 || res->not_running) {
		/* A service that is not running is reported, not a failure. */
		snprintf(item, sizeof(item), "%s: %s", reloader,
			 res->not_running ? "not running" : "ok");
		if (res->not_running) {
			cs_warn("%s: %s is not running: %s", c->cfg->name, reloader, res->message);
			c->round.skipped = true;
		}
	} else {
		snprintf(item, sizeof(item), "%s: failed", reloader);
		snprintf(msg, sizeof(msg), "reload %s failed: %s", reloader, res->message);
		if (!c->round.failed)
			pl_text_set(&c->round.err, 1024, "%.1000s", msg);
		c->round.failed = true;
		cs_err("%s: %s", c->cfg->name, msg);
		if (c->renewal != NULL && c->renewal->rolled_back) {
			/* Keep why it was rolled back; add that the services still balk. */
			size_t used = strlen(c->renewal->error);
			snprintf(c->renewal->error + used, sizeof(c->renewal->error) - used,
				 "; after the rollback: %.1000s", msg);
		} else if (c->renewal == NULL) {
			cs_state_set_error(&c->st, msg);
			pl_save_state(c);
		}
		if (pl->once)
			pl->once_failures++;
	}
	add_reload_item(c, item);
	pl_event_publish(c, (struct cs_event){
		.type = CS_EVENT_RELOADED, .service = reloader, .serial = c->serial,
		.result = res->not_running ? CS_EVENT_NOT_RUNNING
			  : res->status == 0 ? CS_EVENT_OK : CS_EVENT_ERROR,
		.text = res->status == 0 && !res->not_running ? NULL : res->message });
	if (--c->round.pending == 0) {
		pl_inflight_dec(pl);
		round_over(c);
	}
}

void pl_reload_start(struct cert *c)
{
	struct cs_pipeline *pl = c->pl;
	struct cs_deploy_outputs o;
	char files[4096] = "";

	assert(c->stage == PL_RELOADING);
	free(c->round.err);
	memset(&c->round, 0, sizeof(c->round));
	if (pl->rl == NULL || c->cfg->reload.n == 0) {
		round_over(c); /* nothing to reload: verify at once */
		return;
	}
	cs_deploy_outputs_of(c->cfg, &o);
	for (size_t k = 0; k < o.n; k++) {
		size_t used = strlen(files);
		snprintf(files + used, sizeof(files) - used, "%s%s", used ? " " : "", o.path[k]);
	}
	free(c->last_reload);
	c->last_reload = NULL;
	/* once: all reloads run together at the end of the pass */
	c->round.pending = (unsigned)cs_reloads_request(pl->rl, c, &c->cfg->reload, c->cfg->name,
							files, c->serial, !pl->once);
	if (c->round.pending == 0) {
		round_over(c);
		return;
	}
	/*
	 * The round is work in flight until its last result: cs_reloads tells
	 * the owners of one reload one after another, after it stopped counting
	 * the reload as running, and an owner told first must not find the
	 * pipeline quiet (--once done, or torn down) while another still waits.
	 */
	pl_inflight_inc(pl);
}
