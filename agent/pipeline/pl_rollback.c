/*
 * pl_rollback - the services refused what a renewal deployed (ROLLING_BACK):
 * the last good generation, kept under state_dir since it was deployed, is
 * validated and written back like any deploy; the refused generation leaves
 * the list (its file is pruned with the next save). The services are then
 * reloaded with the restored files, and that reload ends the renewal as
 * rolled back. A rollback that cannot happen ends it as failed, saying that
 * the new certificate stays deployed unverified.
 */
#include "pl_int.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rollback_job {
	uv_work_t req;
	struct cert *c;
	const struct cs_cfg_cert *cfg;
	const char *state_dir;
	int gen;
	time_t now;
	int rc;
	struct cs_deploy_digests written;
	char written_fp[65];
	struct pl_der der; /* the restored set encoded, off the loop */
	struct cs_examined ex;
	char err[1024];
};

static void rollback_work(uv_work_t *req)
{
	struct rollback_job *j = req->data;
	cs_material *m = NULL;

	j->rc = cs_deploy_load_gen(j->state_dir, j->cfg->name, j->gen, &m, j->err, sizeof(j->err));
	if (j->rc < 0)
		return;
	/* Validated like any deploy: never a key beside the wrong certificate. */
	j->rc = cs_deploy_examined(j->cfg, m, NULL, j->state_dir, 0, j->now, &j->ex, false,
				   &j->written, j->err, sizeof(j->err));
	if (j->rc == 0) {
		cs_deploy_fingerprint(j->cfg, &j->written, j->written_fp);
		pl_material_encode(m, &j->der);
		j->ex.m = m;
	}
	else
		cs_material_free(m);
}

static void rollback_done(uv_work_t *req, int status)
{
	struct rollback_job *j = req->data;
	struct cert *c = j->c;
	struct cs_pipeline *pl = c->pl;
	struct renewal *r = c->renewal;
	time_t now = pl_now(pl);
	char msg[sizeof(r->error)];

	(void)status;
	pl_inflight_dec(pl);
	assert(c->stage == PL_ROLLING_BACK && r != NULL);
	if (j->rc < 0) {
		snprintf(msg, sizeof(msg),
			 "%.1500s; rolling back to generation %d failed (%.900s): the new "
			 "certificate serial %s stays deployed, unverified",
			 r->error, j->gen, j->err, r->new_serial);
		cs_examine_clear(&j->ex);
		pl_der_clear(&j->der);
		free(j);
		pl_renewal_fail(c, msg, 0);
		return;
	}
	pl_take_examined(c, &j->ex, &j->der);
	c->known = j->written;
	memcpy(c->known_fp, j->written_fp, sizeof(c->known_fp));
	pl_push_gen(c, j->gen, now);
	cs_state_drop_gen(&c->st, r->gen);
	snprintf(msg, sizeof(msg),
		 "%.1400s; rolled back to generation %d (serial %s, sha256 %s); the refused "
		 "certificate was serial %s (sha256 %s)",
		 r->error, j->gen, c->serial, c->sha256, r->new_serial, r->new_sha);
	snprintf(r->error, sizeof(r->error), "%s", msg);
	r->rolled_back = true;
	cs_warn("%s: %s", c->cfg->name, msg);
	cs_examine_clear(&j->ex);
	pl_der_clear(&j->der);
	free(j);
	pl_save_state(c);
	pl_watch_cert(c);
	pl_capsync_outputs_changed(pl, c);
	/* Make the services load the restored files; that reload ends the renewal. */
	pl_step(c, PL_EV_ROLLED_BACK);
	pl_reload_start(c);
}

void pl_rollback(struct cert *c, const char *why)
{
	struct cs_pipeline *pl = c->pl;
	struct renewal *r = c->renewal;
	struct rollback_job *j;

	assert(c->stage == PL_ROLLING_BACK && r != NULL && r->rollback_gen > 0);
	snprintf(r->error, sizeof(r->error), "%s", why);
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		pl_renewal_fail(c, "cannot roll back: out of memory", 0);
		return;
	}
	j->req.data = j;
	j->c = c;
	j->cfg = c->cfg;
	j->state_dir = pl->cfg->agent.state_dir;
	j->gen = r->rollback_gen;
	j->now = pl_now(pl);
	cs_warn("%s: %s; rolling back to generation %d", c->cfg->name, why, j->gen);
	if (uv_queue_work(pl->loop, &j->req, rollback_work, rollback_done) < 0) {
		free(j);
		pl_renewal_fail(c, "cannot queue the rollback", 0);
		return;
	}
	pl_inflight_inc(pl);
}
