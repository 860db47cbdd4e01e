/*
 * pl_save - writing a cert's state file on the work queue (one save per cert
 * at a time; a change during a save is saved again afterwards) and, after a
 * save made while no renewal was under way, pruning the generations that the
 * saved state no longer names.
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

/* ---- state saves ---------------------------------------------------- */

struct save_job {
	uv_work_t req;
	struct cert *c;
	const struct cs_cfg_cert *cfg;
	const char *state_dir;
	const char *name;
	struct cs_state snap;
	bool prune; /* no renewal was under way: generations it does not name can go */
	int rc;
	char err[512];
};

static void save_work(uv_work_t *req)
{
	struct save_job *j = req->data;

	j->rc = cs_state_save(j->state_dir, j->name, &j->snap, j->err, sizeof(j->err));
	if (j->rc == 0 && j->prune) {
		/* Only what the saved state no longer names: never the deployed one. */
		int keep[CS_STATE_GENERATIONS + 1];
		size_t n = 0;
		for (size_t i = 0; i < j->snap.n_gens; i++)
			keep[n++] = j->snap.gens[i].n;
		if (j->snap.pending_gen > 0)
			keep[n++] = j->snap.pending_gen;
		if (cs_deploy_prune_gens(j->state_dir, j->name, keep, n, j->snap.next_gen, j->err,
					 sizeof(j->err)) < 0)
			j->rc = 1;
		/* The live generation directories of the same generations, and the linked one. */
		const char *sha[CS_STATE_GENERATIONS];
		for (size_t i = 0; i < j->snap.n_gens; i++)
			sha[i] = j->snap.gens[i].sha256;
		if (cs_deploy_prune_live(j->cfg, sha, j->snap.n_gens, j->err, sizeof(j->err)) < 0)
			j->rc = 1;
	}
}

static void save_done(uv_work_t *req, int status)
{
	struct save_job *j = req->data;
	struct cert *c = j->c;
	struct cs_pipeline *pl = c->pl;

	(void)status;
	if (j->rc < 0)
		cs_err("%s: cannot save the state: %s", c->cfg->name, j->err);
	else if (j->rc > 0)
		cs_warn("%s: cannot remove an old generation: %s", c->cfg->name, j->err);
	cs_state_clear(&j->snap);
	free(j);
	c->saving = false;
	pl_inflight_dec(pl);
	if (c->save_again) {
		c->save_again = false;
		pl_save_state(c);
	}
	pl_maybe_quiesced(pl);
}

/*
 * Records in c's state what the outputs were when last found valid (their
 * fingerprint and the leaf's details), for the first examination after the
 * next start (pl_check's CHECK_KNOWN); anything else clears the record.
 */
static void note_seen(struct cert *c)
{
	struct cs_state_seen *sn = &c->st.seen;

	memset(sn, 0, sizeof(*sn));
	if (c->verdict != CS_EX_OK || !pl_material_has(c) || c->known_fp[0] == '\0' ||
	    !c->known.valid || c->st.n_gens == 0 || strcmp(c->st.gens[0].sha256, c->sha256) != 0)
		return;
	snprintf(sn->fp, sizeof(sn->fp), "%s", c->known_fp);
	snprintf(sn->serial, sizeof(sn->serial), "%s", c->serial);
	snprintf(sn->sha256, sizeof(sn->sha256), "%.99s", c->sha256);
	sn->not_before = c->not_before;
	sn->not_after = c->not_after;
	sn->adopted = c->reason != NULL && strcmp(c->reason, PL_REASON_ADOPTED) == 0;
}

/* Writes a snapshot of c's state in the background; one save per cert at a time. */
void pl_save_state(struct cert *c)
{
	struct cs_pipeline *pl = c->pl;
	struct save_job *j;

	/* Never over what is on disk before it has been read. */
	if (!c->state_loaded)
		return;
	if (c->saving) {
		c->save_again = true;
		return;
	}
	j = calloc(1, sizeof(*j));
	if (j == NULL) {
		cs_err("%s: cannot save the state: out of memory", c->cfg->name);
		return;
	}
	j->req.data = j;
	j->c = c;
	j->cfg = c->cfg;
	j->state_dir = pl->cfg->agent.state_dir;
	j->name = c->cfg->name;
	note_seen(c);
	j->snap = c->st;
	j->prune = c->renewal == NULL;
	j->snap.last_error = c->st.last_error ? strdup(c->st.last_error) : NULL;
	if (uv_queue_work(pl->loop, &j->req, save_work, save_done) < 0) {
		cs_err("%s: cannot save the state: cannot queue work", c->cfg->name);
		cs_state_clear(&j->snap);
		free(j);
		return;
	}
	c->saving = true;
	pl_inflight_inc(pl);
}
