/*
 * pl_revoke - revoking the deployed leaf with its issuer (REVOKING), then a
 * forced renewal with a new key so that the revoked leaf does not stay.
 */
#include "pl_int.h"
#include "cs_crlreason.h"
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

/* A revocation in flight: what the caller asked for and who to tell. */
struct revoke_job {
	struct cert *c;
	struct pl_issuer *issuer; /* a reference */
	int reason;
	char serial[80];
	void (*cb)(void *arg, int status, const char *msg);
	void *arg;
};

/*
 * The issuer has answered: on success the CA's new material (a local CA's
 * CRL) is published and a forced renewal started (with a new key: see
 * fresh_key), so that the revoked leaf does not stay deployed.
 */
static void on_revoked(void *arg, int status, const char *error)
{
	struct revoke_job *rj = arg;
	struct cert *c = rj->c;
	struct cs_pipeline *pl = c->pl;
	char msg[1024];
	int rc;

	pl_inflight_dec(pl);
	pl_step(c, PL_EV_REVOKED);
	pl_event_publish(c, (struct cs_event){ .type = CS_EVENT_REVOKED, .serial = rj->serial,
		.result = status < 0 ? CS_EVENT_ERROR : CS_EVENT_OK, .text = error });
	pl_cert_idle(c); /* before a renewal may start below */
	if (status < 0) {
		snprintf(msg, sizeof(msg), "issuer %s: cannot revoke %s: %s", rj->issuer->name,
			 rj->serial, error != NULL && error[0] ? error : strerror(-status));
		cs_warn("%s: %s", c->cfg->name, msg);
		rj->cb(rj->arg, status, msg);
		goto out;
	}
	cs_notice("%s: revoked certificate %s with issuer %s (reason %s)", c->cfg->name,
		  rj->serial, rj->issuer->name, cs_crlreason_name(rj->reason));
	if (rj->issuer->is != NULL)
		pl_capsync_publish(pl, rj->issuer->is);
	if (pl_stopping(pl)) {
		cs_warn("%s: the revoked certificate is renewed once the agent is back at work",
			c->cfg->name);
	} else {
		pl_set_due(c, pl_now(pl));
		pl_timer_touch(c);
		c->due_reason = "revoked";
		rc = cs_pipeline_renew(pl, c->cfg->name, true, NULL, NULL);
		/* -EBUSY: a renewal asked for meanwhile started; fresh_key holds for it. */
		if (rc < 0 && rc != -EBUSY)
			cs_err("%s: cannot start the renewal of the revoked certificate: %s",
			       c->cfg->name, strerror(-rc));
	}
	rj->cb(rj->arg, 0, rj->serial);
out:
	pl_issuer_unref(rj->issuer);
	free(rj);
	pl_arm_timer(pl);
	pl_maybe_quiesced(pl);
}

/* Revokes leaf, the one deployed for idle c; as cs_pipeline_revoke. */
static int revoke_leaf(struct cert *c, X509 *leaf, int reason,
		       void (*cb)(void *arg, int status, const char *msg), void *arg)
{
	struct cs_pipeline *pl = c->pl;
	struct revoke_job *rj;
	struct cs_der der = { 0 };
	struct pl_issuer *pi = pl_deployed_issuer(c);
	int rc;

	if (pi->is == NULL)
		return -EBUSY;
	if (pi->is->ops->revoke == NULL)
		return -ENOTSUP;
	if (cs_issuer_der_of_x509(&der, leaf) < 0)
		return -ENOMEM;
	if ((rj = calloc(1, sizeof(*rj))) == NULL) {
		cs_issuer_der_clear(&der);
		return -ENOMEM;
	}
	rj->c = c;
	rj->issuer = pl_issuer_ref(pi);
	rj->reason = reason;
	rj->cb = cb;
	rj->arg = arg;
	cs_x509_serial(leaf, rj->serial, sizeof(rj->serial));
	cs_notice("%s: revoking certificate %s with issuer %s (reason %s)", c->cfg->name,
		  rj->serial, pi->name, cs_crlreason_name(reason));
	/* Counted before the call, in case the issuer answers before it returns. */
	pl_step(c, PL_EV_REVOKE);
	pl_inflight_inc(pl);
	/* A renewal starting from now on makes a new key, even before the answer. */
	c->fresh_key = true;
	rc = pi->is->ops->revoke(pi->is, &der, reason, on_revoked, rj);
	cs_issuer_der_clear(&der);
	if (rc < 0) {
		pl_step(c, PL_EV_REVOKED);
		pl_inflight_dec(pl);
		pl_issuer_unref(rj->issuer);
		free(rj);
		pl_cert_idle(c);
		return rc;
	}
	return 0;
}

int cs_pipeline_revoke(struct cs_pipeline *pl, const char *name, int reason,
		       void (*cb)(void *arg, int status, const char *msg), void *arg)
{
	struct cert *c;
	cs_material *m;
	int rc;

	if (!cs_crlreason_valid(reason, CS_CRLREASON_REVOKE))
		return -EINVAL;
	if ((c = pl_find(pl, name)) == NULL)
		return -ENOENT;
	if (c->stage != PL_IDLE || pl_stopping(pl) || c->issuer->is == NULL)
		return -EBUSY;
	/* Kept as DER between passes: the leaf is decoded for this request. */
	m = pl_material_get(c);
	rc = m != NULL && m->leaf != NULL ? revoke_leaf(c, m->leaf, reason, cb, arg) : -ENODATA;
	cs_material_free(m);
	return rc;
}
