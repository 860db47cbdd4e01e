/*
 * pl_publish - the [capath]/[clientcerts] sync of the pipeline: starting it,
 * publishing each issuer's CA (and CRL) into the capaths naming it, and the
 * reloads a sync asks for.
 */
#include "pl_int.h"
#include "cs_registry.h"
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

/* ---- CApath and client certificate directories (cs_capsync) -------------- */

bool pl_capsync_busy(const struct cs_pipeline *pl)
{
	return pl->capsync != NULL && cs_capsync_busy(pl->capsync);
}

void pl_on_capsync_done(void *arg, const struct cs_capsync_report *r)
{
	struct cs_pipeline *pl = arg;
	char changed[1024] = "";

	for (size_t i = 0; i < r->nchanged; i++) {
		size_t used = strlen(changed);
		snprintf(changed + used, sizeof(changed) - used, "%s%s", used ? ", " : "",
			 r->changed[i]);
	}
	if (r->nchanged > 0)
		cs_info("directories brought up to date: %s", changed);
	if (r->nfailed > 0 && pl->once)
		pl->once_failures += (int)r->nfailed;
	if (r->nreloads > 0 && pl->rl != NULL && !pl->tearing_down) {
		struct cs_cfg_list list = { (char **)r->reloads, r->nreloads };
		cs_reloads_request(pl->rl, pl, &list, changed[0] ? changed : "capath", "", "",
				   !pl->once);
	}
	pl_maybe_quiesced(pl);
}

/*
 * Publishes the CA (and CRL) of issuer is, when it has them, into the
 * capaths naming it. A local CA made on first use has none before its first
 * issuance, so this runs at start and after each renewal (unchanged files
 * are not rewritten).
 */
void pl_capsync_publish(struct cs_pipeline *pl, cs_issuer *is)
{
	struct cs_der ca_der = { 0 }, crl_der = { 0 };
	const unsigned char *p;
	X509 *ca = NULL;
	X509_CRL *crl = NULL;

	/* A deploy that ends after SIGTERM closed the issuers must not touch them. */
	if (pl->issuers_closing)
		return;
	if (pl->capsync == NULL || is->ops->ca_material == NULL ||
	    is->ops->ca_material(is, &ca_der, &crl_der) < 0)
		return;
	p = ca_der.p;
	if (ca_der.n > 0 && ca_der.n <= (size_t)INT32_MAX)
		ca = d2i_X509(NULL, &p, (long)ca_der.n);
	p = crl_der.p;
	if (crl_der.n > 0 && crl_der.n <= (size_t)INT32_MAX)
		crl = d2i_X509_CRL(NULL, &p, (long)crl_der.n);
	if (ca != NULL)
		cs_capsync_publish_issuer(pl->capsync, is->name, ca, crl);
	else
		cs_warn("issuer %s: its CA certificate cannot be read", is->name);
	X509_free(ca);
	X509_CRL_free(crl);
	cs_issuer_der_clear(&ca_der);
	cs_issuer_der_clear(&crl_der);
}

static void capsync_publish_issuers(struct cs_pipeline *pl)
{
	for (size_t i = 0; i < pl->n_issuers; i++)
		if (pl->issuers[i]->is != NULL)
			pl_capsync_publish(pl, pl->issuers[i]->is);
}

void pl_capsync_start(struct cs_pipeline *pl)
{
	if (pl->capsync == NULL)
		return;
	capsync_publish_issuers(pl);
	cs_capsync_full(pl->capsync);
}

void pl_capsync_outputs_changed(struct cs_pipeline *pl, const struct cert *c)
{
	struct cs_deploy_outputs o;
	char dir[PATH_MAX];

	if (pl->capsync == NULL)
		return;
	/* The [sni] tables that name c: checked (and retried) after the deploy's own build. */
	if (c->cfg->n_sni > 0)
		cs_capsync_cert_changed(pl->capsync, c->cfg->name);
	/* The daemon hears of them through inotify; --once has no watch. */
	if (!pl->once)
		return;
	cs_deploy_outputs_of(c->cfg, &o);
	for (size_t i = 0; i < o.n; i++) {
		const char *slash = strrchr(o.path[i], '/');
		if (slash == NULL || (size_t)(slash - o.path[i]) >= sizeof(dir))
			continue;
		memcpy(dir, o.path[i], (size_t)(slash - o.path[i]));
		dir[slash - o.path[i]] = '\0';
		cs_capsync_changed(pl->capsync, dir[0] ? dir : "/", slash + 1);
	}
}

/* ---- the local CAs' CRLs ------------------------------------------------- */

/* A CRL refresh in flight: the issuer it is for. */
struct crl_req {
	struct cs_pipeline *pl;
	struct pl_issuer *pi; /* a reference */
};

static void crl_arm(struct cs_pipeline *pl);

static void on_crl_done(void *arg, int status, const char *error)
{
	struct crl_req *r = arg;
	struct cs_pipeline *pl = r->pl;

	pl_inflight_dec(pl);
	if (status < 0 && status != -ECANCELED)
		cs_warn("issuer %s: cannot keep the CRL fresh: %s", r->pi->name,
			error != NULL ? error : strerror(-status));
	else if (status == 0 && r->pi->is != NULL)
		pl_capsync_publish(pl, r->pi->is);
	pl_issuer_unref(r->pi);
	free(r);
	if (!pl_stopping(pl))
		crl_arm(pl);
	pl_maybe_quiesced(pl);
}

/* Asks the local CA pi to read its crl.pem again and sign the next one when due. */
static void crl_refresh(struct cs_pipeline *pl, struct pl_issuer *pi)
{
	struct crl_req *r;

	if (pi->is == NULL || pi->is->ops->crl_refresh == NULL || pl_stopping(pl))
		return;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return;
	r->pl = pl;
	r->pi = pl_issuer_ref(pi);
	pl_inflight_inc(pl);
	if (pi->is->ops->crl_refresh(pi->is, on_crl_done, r) < 0) {
		pl_inflight_dec(pl);
		pl_issuer_unref(pi);
		free(r);
	}
}

static void on_crl_timer(uv_timer_t *t)
{
	struct cs_pipeline *pl = t->data;
	time_t now = pl_now(pl);

	for (size_t i = 0; i < pl->n_issuers; i++) {
		struct pl_issuer *pi = pl->issuers[i];
		time_t due = pi->is != NULL && pi->is->ops->crl_due != NULL
				     ? pi->is->ops->crl_due(pi->is)
				     : 0;
		if (due != 0 && due <= now)
			crl_refresh(pl, pi);
	}
	crl_arm(pl);
}

/* One timer for the earliest moment a local CA's CRL is to be signed again. */
static void crl_arm(struct cs_pipeline *pl)
{
	time_t earliest = 0;

	if (pl->once || pl_stopping(pl))
		return;
	for (size_t i = 0; i < pl->n_issuers; i++) {
		struct pl_issuer *pi = pl->issuers[i];
		time_t due;
		if (pi->is == NULL || pi->is->ops->crl_due == NULL ||
		    (due = pi->is->ops->crl_due(pi->is)) == 0)
			continue;
		if (earliest == 0 || due < earliest)
			earliest = due;
	}
	if (earliest == 0) {
		uv_timer_stop(&pl->crl_timer);
		return;
	}
	int64_t delay = ((int64_t)earliest - (int64_t)pl_now(pl)) * 1000;
	if (delay < 1000)
		delay = 1000; /* a CRL that cannot be signed is not asked for in a loop */
	if (delay > TIMER_MAX_MS)
		delay = TIMER_MAX_MS;
	uv_timer_start(&pl->crl_timer, on_crl_timer, (uint64_t)delay, 0);
}

void pl_crl_start(struct cs_pipeline *pl)
{
	for (size_t i = 0; i < pl->n_issuers; i++)
		crl_refresh(pl, pl->issuers[i]);
}

void pl_crl_changed(struct cs_pipeline *pl, const char *dir)
{
	for (size_t i = 0; i < pl->n_issuers && i < pl->cfg->n_issuers; i++)
		if (cs_registry_issuer_ca_dir(&pl->cfg->issuers[i]) != NULL &&
		    strcmp(cs_registry_issuer_ca_dir(&pl->cfg->issuers[i]), dir) == 0)
			crl_refresh(pl, pl->issuers[i]);
}
