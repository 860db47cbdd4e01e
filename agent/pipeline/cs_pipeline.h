/*
 * cs_pipeline - the renewal pipeline of the agent: for every [cert], examine
 * what is deployed, decide when to renew, renew (key, CSR, issuer, validate,
 * deploy with the previous generation kept for rollback), reload the services
 * (debounced) and keep the state in state_dir. One timer for the earliest due
 * moment; inotify for outside changes.
 *
 * The pipeline owns the issuers and reloaders built from the configuration
 * and the per-cert runtime status that the status socket reads.
 */
#ifndef CS_PIPELINE_H
#define CS_PIPELINE_H

#include "cs_config.h"
#include "cs_dane.h"
#include "cs_examine.h"
#include "cs_state.h"

#include "cs_issuer.h"
#include "cs_reloader.h"
#include "cs_verify.h"
#include "cs_fp.h"

struct cs_capsync;

#include <stdbool.h>
#include <uv.h>

enum cs_cert_state {
	CS_CERT_UNKNOWN = 0,
	CS_CERT_VALID,
	CS_CERT_DUE,
	CS_CERT_RENEWING,
	CS_CERT_FAILED,
	CS_CERT_EXPIRED,
	CS_CERT_MISSING,
};
#define CS_CERT_N_STATES (CS_CERT_MISSING + 1)

/* The status of one cert, as the socket and --once report it. */
enum cs_verify_state {
	CS_VERIFY_NONE = 0, /* not checked yet (or no verify URLs) */
	CS_VERIFY_OK,       /* every URL served the deployed certificate */
	CS_VERIFY_FAILED,
};

/* How a renewal ended. */
enum cs_renewal_outcome {
	CS_RENEWAL_VERIFIED = 0, /* deployed, reloaded, and the verify probes saw it */
	CS_RENEWAL_DEPLOYED,     /* deployed and reloaded; nothing to verify (no URLs, not running) */
	CS_RENEWAL_ROLLED_BACK,  /* a reload or the verify refused it: the last good one is back */
	CS_RENEWAL_FAILED,       /* it could not be issued, deployed, or rolled back */
	CS_RENEWAL_ABANDONED,    /* the agent stopped first */
};

/* Returns "verified", "deployed", "rolled_back", "failed" or "abandoned". */
const char *cs_pipeline_outcome_name(enum cs_renewal_outcome o);

/* Called once when a renewal ends: its outcome and, unless it succeeded, why. */
typedef void (*cs_renewal_cb)(void *arg, enum cs_renewal_outcome o, const char *msg);

/* A SHA-256 fingerprint as Postfix writes it (AB:..:EF) and its NUL. */
#define CS_SERVED_SHA256_MAX 96

/*
 * What the last drift check (verify_interval) saw at one verify URL for one
 * name of the certificate, sent as SNI.
 */
struct cs_served {
	const char *url;         /* the verify URL as configured */
	const char *name;        /* the name sent as SNI ("": none) */
	int match;               /* 1: the deployed leaf, 0: another one, -1: not known
				    (not checked yet, or the last probe got no certificate) */
	char sha256[CS_SERVED_SHA256_MAX]; /* the leaf served ("": none) */
	const char *error;       /* why the last probe got no certificate (NULL: it got one) */
	time_t checked;          /* the last probe, 0: never */
};

/* A cert's drift: whether its services serve something else than what is deployed. */
enum cs_drift {
	CS_DRIFT_NONE = 0, /* every answer was the deployed leaf (or nothing checked yet) */
	CS_DRIFT_FOUND,    /* another leaf served: the services are reloaded once, then checked */
	CS_DRIFT_PERSISTS, /* still another leaf after that reload: reported, not reloaded again */
};

/* Returns "none", "found" or "persists". */
const char *cs_pipeline_drift_name(enum cs_drift d);

struct cs_cert_status {
	const char *name;
	enum cs_cert_state state;
	enum cs_verdict verdict;
	const char *verdict_reason;
	const char *issuer;
	const char *serial;
	const char *sha256;
	time_t not_before, not_after;
	time_t next_renewal;
	const char *next_reason;
	time_t last_renewal;
	int failures;
	const char *last_error;
	const char *last_reload; /* "postfix: ok; dovecot: ..." or NULL */
	const char *last_verify; /* "smtp://...: ok; imap://...: serves ..." or NULL */
	enum cs_verify_state verify; /* what the last verify found */
	char *const *names;      /* the configured names */
	size_t n_names;
	const char *stage;       /* the state machine's stage: "idle", "issuing", ... */
	time_t stage_since;
	time_t retry_at;         /* the next attempt after a failure, 0: none */
	const char *retry_reason; /* why (the last failure), NULL: none */
	int pending_gen;         /* issued, not yet deployed (0: none) */
	int rollback_gen;        /* what a rollback would restore (0: nothing) */
	const struct cs_served *served; /* the drift checks, one per URL and name */
	size_t n_served;                /* 0: no drift checks */
	enum cs_drift drift;
	char *const *issuers;    /* the configured issuers, in the order tried */
	size_t n_issuers;
	const char *issued_by;   /* the issuer of the deployed certificate, NULL: unknown */
	const char *fallback;    /* why that is not the first issuer, NULL: it is */
	uint64_t fallbacks;      /* times a renewal moved on to the next issuer */
	const char *trying;      /* a failing renewal's next issuer when not the first, else NULL */
	const char *trying_why;  /* why it moved there */
	const char *warning;     /* about the configuration (a client certificate
				    from an ACME CA), NULL: none */
	/* DANE (cs_dane.h): dane NULL when the cert has no `dane`. */
	const struct cs_cfg_dane *dane_cfg;
	const struct cs_dane_state *dane;
	bool dane_seen;          /* the resolver's view below is there (a look ended) */
	size_t dane_n_owners;
	const char (*dane_owners)[CS_DANE_OWNER_MAX];
	const struct cs_dnsq_answer *dane_answers; /* one per owner */
	uint64_t dane_kept;      /* renewals that kept the current key */
	bool dane_next_ready;    /* the next renewal takes the next key */
	char dane_next[1024];    /* what happens next, for a person */
};

/*
 * What the pipeline uses from outside, so that a test can drive it with
 * its own clock and drivers. A NULL member takes the real one.
 */
struct cs_pipeline_drivers {
	/* The wall clock (default time()). */
	time_t (*now)(void *arg);
	/* Makes the issuer of ci (default: local-ca or acme from the configuration). */
	cs_issuer *(*issuer_new)(void *arg, uv_loop_t *loop, const struct cs_cfg_issuer *ci,
				 const char *state_dir);
	/* Makes the reloader of cr (default: postfix, dovecot, exec or a plugin). */
	cs_reloader *(*reloader_new)(void *arg, uv_loop_t *loop, const struct cs_cfg_reload *cr);
	/* Starts the verify probes, as cs_verify_start. */
	int (*verify_start)(void *arg, uv_loop_t *loop, const struct cs_cfg_list *urls,
			    const char *want_sha256, int bound_ms, cs_verify_cb cb, void *cbarg);
	void *arg;
};

struct cs_pipeline;

/* Returns the name of s ("valid", "due", ...). */
const char *cs_pipeline_state_name(enum cs_cert_state s);

/*
 * Creates the pipeline for cfg on loop (cfg stays owned by the caller and
 * must outlive the pipeline or be replaced with cs_pipeline_apply). Returns
 * NULL with err set.
 */
struct cs_pipeline *cs_pipeline_new(uv_loop_t *loop, const struct cs_config *cfg, char *err,
				    size_t errlen);

/* cs_pipeline_new with drivers (copied; NULL: the real ones). */
struct cs_pipeline *cs_pipeline_new_with(uv_loop_t *loop, const struct cs_config *cfg,
					 const struct cs_pipeline_drivers *drv, char *err,
					 size_t errlen);

/*
 * The wall clock was set (noticed by the pipeline itself through a timerfd;
 * a test with its own clock calls it): every cert is examined again and its
 * renewal scheduled from the new time.
 */
void cs_pipeline_clock_set(struct cs_pipeline *pl);

/*
 * Examines every cert and starts the schedule. With once, renews what is due
 * now, reloads, and calls done_cb(arg, failures) when all of it is finished.
 */
int cs_pipeline_start(struct cs_pipeline *pl, bool once, void (*done_cb)(void *arg, int failures),
		      void *arg);

/*
 * Switches to a new configuration (after SIGHUP). When renewals are in
 * flight the switch waits for them; old_cfg_release(arg, old) is called
 * when the previous configuration is no longer used.
 */
void cs_pipeline_apply(struct cs_pipeline *pl, const struct cs_config *cfg,
		       void (*old_cfg_release)(void *arg, const struct cs_config *old), void *arg);

/*
 * Reloads the services of cert name now (its [reload] list), then verifies
 * what they serve. Returns 0, -ENOENT, or -EBUSY while it renews or stops.
 */
int cs_pipeline_reload(struct cs_pipeline *pl, const char *name);

/*
 * Renews a cert now (force: even when not due; without force a cert that is
 * not due is left alone; a cert being examined renews right after the
 * examination). Returns 0 when a renewal started (then cb, when
 * not NULL, runs once at its end), 1 when the cert is not due (cb never
 * runs), -ENOENT, -EBUSY (the cert is not idle, or a configuration switch or
 * stop is in progress) or -ENOMEM.
 */
int cs_pipeline_renew(struct cs_pipeline *pl, const char *name, bool force, cs_renewal_cb cb,
		      void *arg);

/*
 * Revokes the leaf deployed for cert name with its issuer (ACME: revokeCert;
 * local-ca: index.txt and a new CRL, published to the capaths), giving
 * reason, an RFC 5280 CRLReason code (0 unspecified, 1 keyCompromise, 3
 * affiliationChanged, 4 superseded, 5 cessationOfOperation, ...). Returns 0
 * when cb(arg, status, msg) will run once: status 0 with msg the revoked
 * serial (uppercase hex), after which a forced renewal with a new key has
 * been started; or a negative code with msg saying why. Otherwise returns
 * -ENOENT (no such cert), -EBUSY (renewing, revoking or switching
 * configuration), -ENODATA (nothing deployed), -ENOTSUP (the issuer cannot
 * revoke), -EINVAL (bad reason) or -ENOMEM, and cb never runs.
 */
int cs_pipeline_revoke(struct cs_pipeline *pl, const char *name, int reason,
		       void (*cb)(void *arg, int status, const char *msg), void *arg);

/*
 * Takes the files deployed for cert name as they are, now (no quiet time):
 * a valid certificate that fits the configuration is kept as a generation
 * even when it does not verify to the issuer's trust (someone else's); files
 * that are not usable are reported, not repaired. Returns 0 when
 * cb(arg, status, msg) will run once (status 0: adopted or already the
 * agent's; negative: why not), else -ENOENT, -EBUSY or -ENOMEM.
 */
int cs_pipeline_adopt(struct cs_pipeline *pl, const char *name,
		      void (*cb)(void *arg, int status, const char *msg), void *arg);

/*
 * Gives the pipeline the issuer's suggested renewal window for the leaf now
 * deployed for cert name (ACME ARI, RFC 9773): the renewal moment is then
 * picked inside [start, end) instead of from renew_before. The window is
 * forgotten when another leaf is deployed. Returns 0, -ENOENT or -EINVAL.
 */
int cs_pipeline_set_window(struct cs_pipeline *pl, const char *name, time_t start, time_t end);

/*
 * The [capath]/[clientcerts] sync of the current configuration (for
 * `certsyncctl rehash` and its problems in the status), or NULL when there
 * is none. Valid until the next configuration switch.
 */
struct cs_capsync *cs_pipeline_capsync(struct cs_pipeline *pl);

/* Number of certs and the status of cert i (valid until the next loop turn). */
size_t cs_pipeline_count(const struct cs_pipeline *pl);
void cs_pipeline_status(const struct cs_pipeline *pl, size_t i, struct cs_cert_status *out);

/* The name of cert i (valid until the next configuration switch). */
const char *cs_pipeline_name(const struct cs_pipeline *pl, size_t i);

/* What status says about all certs, kept by the pipeline on every change. */
struct cs_pipeline_summary {
	size_t n_certs;
	size_t per_state[CS_CERT_N_STATES]; /* indexed by enum cs_cert_state */
	time_t next_renewal;                /* the earliest, 0: none */
	const char *next_renewal_cert;      /* its cert (valid until the next loop turn) or NULL */
	size_t n_drifted;                   /* certs whose services serve another leaf */
	const char *drifted_cert;           /* one of them (valid until the next loop turn) or NULL */
};

/* Fills out without looking at every cert. */
void cs_pipeline_summary(const struct cs_pipeline *pl, struct cs_pipeline_summary *out);

/*
 * Calls cb(arg, status) for each cert that is failed, expired or missing, in
 * the configuration's order, without looking at the others (status valid
 * during the call). Returns their number (cb may be NULL to count them).
 */
size_t cs_pipeline_problems(const struct cs_pipeline *pl,
			    void (*cb)(void *arg, const struct cs_cert_status *st), void *arg);

/* The status of the cert called name (found through a hash table): 0, or -ENOENT. */
int cs_pipeline_status_of(const struct cs_pipeline *pl, const char *name,
			  struct cs_cert_status *out);

struct cs_event;

/*
 * Subscribes fn(arg, event) to what happens to the certs (cs_events.h):
 * renewals started and ended, issuances, deploys, reloads, verifies,
 * repairs, adoptions, revocations. Events are published on the loop thread
 * during the pipeline's own work; fn must not call back into the pipeline.
 * The subscription lasts across configuration switches, until
 * cs_pipeline_unsubscribe or the pipeline is closed. Returns 0, -EEXIST or
 * -ENOSPC.
 */
int cs_pipeline_subscribe(struct cs_pipeline *pl, void (*fn)(void *arg, const struct cs_event *ev),
			  void *arg);

/* Takes back a subscription of fn(arg); nothing when there is none. */
void cs_pipeline_unsubscribe(struct cs_pipeline *pl,
			     void (*fn)(void *arg, const struct cs_event *ev), void *arg);

/* Stops timers and watches, waits for in-flight work, then calls close_cb. */
void cs_pipeline_close(struct cs_pipeline *pl, void (*close_cb)(void *arg), void *arg);

#endif
