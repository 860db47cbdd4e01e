/*
 * pl_fsm - the transition table of a certificate's state machine, and the
 * one function (pl_step, in pl_int.h) that moves a certificate through it.
 */
#include "pl_fsm.h"
#include "pl_int.h"

#include <assert.h>
#include <stdlib.h>

/* next[stage][event]: the stage after event, 0 meaning "not allowed" (IDLE is encoded as +1). */
#define TO(s) ((s) + 1)

static const signed char next[PL_N_STAGES][PL_N_EVENTS] = {
	[PL_IDLE] = {
		[PL_EV_CHECK] = TO(PL_CHECKING),
		[PL_EV_RENEW] = TO(PL_KEYGEN),
		[PL_EV_REDEPLOY] = TO(PL_DEPLOYING),
		[PL_EV_RELOAD] = TO(PL_RELOADING),
		[PL_EV_REVOKE] = TO(PL_REVOKING),
		[PL_EV_CLOSE] = TO(PL_CLOSING),
	},
	[PL_CHECKING] = {
		[PL_EV_CHECKED] = TO(PL_IDLE),
		[PL_EV_REPAIRED] = TO(PL_RELOADING),
	},
	[PL_KEYGEN] = {
		[PL_EV_KEY_READY] = TO(PL_ISSUING),
		[PL_EV_FAILED] = TO(PL_IDLE),
	},
	[PL_ISSUING] = {
		[PL_EV_ISSUED] = TO(PL_DEPLOYING),
		[PL_EV_FAILED] = TO(PL_IDLE),
	},
	[PL_DEPLOYING] = {
		[PL_EV_DEPLOYED] = TO(PL_RELOADING),
		[PL_EV_REISSUE] = TO(PL_KEYGEN),
		[PL_EV_FAILED] = TO(PL_IDLE),
	},
	[PL_RELOADING] = {
		[PL_EV_RELOADED] = TO(PL_VERIFYING),
		[PL_EV_SETTLED] = TO(PL_IDLE),
		[PL_EV_REFUSED] = TO(PL_ROLLING_BACK),
	},
	[PL_VERIFYING] = {
		[PL_EV_SETTLED] = TO(PL_IDLE),
		[PL_EV_REFUSED] = TO(PL_ROLLING_BACK),
	},
	[PL_ROLLING_BACK] = {
		[PL_EV_ROLLED_BACK] = TO(PL_RELOADING),
		[PL_EV_FAILED] = TO(PL_IDLE),
	},
	[PL_REVOKING] = {
		[PL_EV_REVOKED] = TO(PL_IDLE),
	},
	[PL_CLOSING] = { 0 },
};

int pl_fsm_next(enum pl_stage s, enum pl_event ev)
{
	if ((unsigned)s >= PL_N_STAGES || (unsigned)ev >= PL_N_EVENTS || next[s][ev] == 0)
		return -1;
	return next[s][ev] - 1;
}

const char *pl_stage_name(enum pl_stage s)
{
	static const char *const names[PL_N_STAGES] = {
		[PL_IDLE] = "idle",		[PL_CHECKING] = "checking",
		[PL_KEYGEN] = "keygen",		[PL_ISSUING] = "issuing",
		[PL_DEPLOYING] = "deploying",	[PL_RELOADING] = "reloading",
		[PL_VERIFYING] = "verifying",	[PL_ROLLING_BACK] = "rolling_back",
		[PL_REVOKING] = "revoking",	[PL_CLOSING] = "closing",
	};
	return (unsigned)s < PL_N_STAGES ? names[s] : "?";
}

const char *pl_event_name(enum pl_event ev)
{
	static const char *const names[PL_N_EVENTS] = {
		[PL_EV_CHECK] = "check",	   [PL_EV_CHECKED] = "checked",
		[PL_EV_REPAIRED] = "repaired",	   [PL_EV_RENEW] = "renew",
		[PL_EV_REDEPLOY] = "redeploy",	   [PL_EV_KEY_READY] = "key_ready",
		[PL_EV_ISSUED] = "issued",	   [PL_EV_REISSUE] = "reissue",
		[PL_EV_DEPLOYED] = "deployed",	   [PL_EV_FAILED] = "failed",
		[PL_EV_RELOAD] = "reload",	   [PL_EV_RELOADED] = "reloaded",
		[PL_EV_SETTLED] = "settled",	   [PL_EV_REFUSED] = "refused",
		[PL_EV_ROLLED_BACK] = "rolled_back", [PL_EV_REVOKE] = "revoke",
		[PL_EV_REVOKED] = "revoked",	   [PL_EV_CLOSE] = "close",
	};
	return (unsigned)ev < PL_N_EVENTS ? names[ev] : "?";
}

bool pl_step(struct cert *c, enum pl_event ev)
{
	int to = pl_fsm_next(c->stage, ev);

	if (to < 0) {
		cs_err("%s: internal error: event %s is not allowed in stage %s (ignored)",
		       c->cfg->name, pl_event_name(ev), pl_stage_name(c->stage));
		assert(!"event not allowed in this stage");
		return false;
	}
	cs_debug("%s: %s --%s--> %s", c->cfg->name, pl_stage_name(c->stage), pl_event_name(ev),
		 pl_stage_name((enum pl_stage)to));
	c->stage = (enum pl_stage)to;
	c->stage_since = pl_now(c->pl);
	return true;
}
