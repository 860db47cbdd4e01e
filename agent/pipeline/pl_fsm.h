/*
 * pl_fsm - the state machine of one certificate: which stage it is in (the
 * work under way for it) and which events may move it on. The table is the
 * whole contract: an event that is not in it for the current stage is a bug
 * in the caller, rejected and logged (and an assertion in debug builds).
 *
 *   IDLE --check--> CHECKING --checked--> IDLE
 *                            --repaired--> RELOADING
 *   IDLE --renew--> KEYGEN --key_ready--> ISSUING --issued--> DEPLOYING
 *   IDLE --redeploy--> DEPLOYING (a generation issued earlier, not yet in place)
 *   DEPLOYING --reissue--> KEYGEN (that generation is no longer usable)
 *   DEPLOYING --deployed--> RELOADING --reloaded--> VERIFYING --settled--> IDLE
 *   RELOADING|VERIFYING --refused--> ROLLING_BACK --rolled_back--> RELOADING
 *   RELOADING --settled--> IDLE (nothing to verify, or after a rollback)
 *   KEYGEN|ISSUING|DEPLOYING|ROLLING_BACK --failed--> IDLE
 *   IDLE --reload--> RELOADING;  IDLE --revoke--> REVOKING --revoked--> IDLE
 *   IDLE --close--> CLOSING (the end)
 *
 * Stages with work in flight (every one but IDLE and CLOSING) end only
 * through their own completion event, so nothing can be freed under a job.
 * A renewal or reload asked for while CHECKING (milliseconds) is queued and starts as
 * soon as the cert is idle; in any other stage it is refused as busy.
 */
#ifndef CS_PL_FSM_H
#define CS_PL_FSM_H

enum pl_stage {
	PL_IDLE = 0,
	PL_CHECKING,
	PL_KEYGEN,
	PL_ISSUING,
	PL_DEPLOYING,
	PL_RELOADING,
	PL_VERIFYING,
	PL_ROLLING_BACK,
	PL_REVOKING,
	PL_CLOSING,
	PL_N_STAGES
};

enum pl_event {
	PL_EV_CHECK = 0,   /* examine the outputs (start, watch event, clock step) */
	PL_EV_CHECKED,     /* the examination ended without a repair */
	PL_EV_REPAIRED,    /* it put a stored generation back: the services reload */
	PL_EV_RENEW,       /* a renewal starts with a key */
	PL_EV_REDEPLOY,    /* a renewal starts with the pending generation */
	PL_EV_KEY_READY,   /* key and CSR made: ask the issuer */
	PL_EV_ISSUED,      /* the issuer answered with a certificate */
	PL_EV_REISSUE,     /* the pending generation is unusable: order anew */
	PL_EV_DEPLOYED,    /* the outputs hold the new material */
	PL_EV_FAILED,      /* a step of the renewal (or the rollback) failed */
	PL_EV_RELOAD,      /* reload the services (certsyncctl reload, a drift check) */
	PL_EV_RELOADED,    /* every reload reported: verify what is served */
	PL_EV_SETTLED,     /* the end of a reload (and verify): nothing more to do */
	PL_EV_REFUSED,     /* a reload or the verify failed after a renewal */
	PL_EV_ROLLED_BACK, /* the last good generation is back in place */
	PL_EV_REVOKE,      /* revoke the deployed leaf */
	PL_EV_REVOKED,     /* the issuer answered the revocation (either way) */
	PL_EV_CLOSE,       /* the pipeline is going away */
	PL_N_EVENTS
};

/* Returns the stage that ev leads to from s, or -1 when ev is not allowed in s. */
int pl_fsm_next(enum pl_stage s, enum pl_event ev);

/* Returns the lower-case name of s ("idle", "rolling_back", ...) or "?". */
const char *pl_stage_name(enum pl_stage s);

/* Returns the lower-case name of ev ("check", "rolled_back", ...) or "?". */
const char *pl_event_name(enum pl_event ev);

#endif
