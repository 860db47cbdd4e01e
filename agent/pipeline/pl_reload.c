/* pl_reload - see pl_int.h and cs_pipeline.h. */
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

/* ---- reloads ------------------------------------------------------------ */

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

void pl_rollback(struct cert *c, const char *why);

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
		pl_rollback(c, why);
	} else {
		char msg[1100];
		snprintf(msg, sizeof(msg), "verify failed: %s", summary);
		cs_err("%s: %s", c->cfg->name, msg);
		cs_state_set_error(&c->st, msg);
		pl_save_state(c);
		if (pl->once)
			pl->once_failures++;
	}
	c->after_renewal = false;
	pl_maybe_quiesced(pl);
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
			pl_rollback(c, c->reload_err);
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

void pl_on_reload_result(void *arg, void *owner, const char *reloader,
			     const struct cs_reload_result *res)
{
	struct cs_pipeline *pl = arg;
	struct cert *c = owner;
	char item[300];

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
		pl_save_state(c);
		if (pl->once)
			pl->once_failures++;
	}
	add_reload_item(c, item);
	if (c->pending_reloads > 0 && --c->pending_reloads == 0)
		reloads_reported(c);
}

/* Asks for c's reloads; a burst of requests leads to one reload per service. */
void pl_request_reloads(struct cert *c)
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
