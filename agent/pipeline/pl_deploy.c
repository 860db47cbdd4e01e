/*
 * pl_deploy - putting a renewal's material in place (DEPLOYING). The
 * material is either what the issuer just returned, stored first as a new
 * generation, or a generation stored by an earlier attempt whose deploy
 * failed (the state's pending_gen): that one is deployed again, without a
 * new order, as long as it is still valid and fits the configuration. When
 * the outputs cannot be written, the stored generation stays pending for
 * the next attempt. Success leads to the reloads (pl_reload).
 */
#include "pl_int.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void deploy_work(uv_work_t *req)
{
	struct renew_job *j = req->data;
	char path[4096];

	if (j->m == NULL) {
		/* What is deployed now, to put back if the deploy stops half-way. */
		if (j->prev_usable && j->prev == NULL)
			(void)pl_renew_decode_prev(j); /* kept in j->prev */
		/* The pending generation: read it back and judge it again. */
		j->rc = cs_deploy_load_gen(j->state_dir, j->cfg->name, j->gen, &j->m, j->err,
					   sizeof(j->err));
		if (j->rc == 0 && cs_examine_material(j->cfg, j->m, j->now, &j->ex) != CS_EX_OK) {
			snprintf(j->err, sizeof(j->err), "generation %d: %.900s", j->gen,
				 j->ex.reason);
			j->rc = -ESTALE;
		}
		if (j->rc < 0) {
			j->unusable = true;
			return;
		}
		if ((j->rc = pl_dane_gate(j, j->m)) < 0)
			return;
		/* Stored already: written to the outputs only; examined above. */
		j->rc = cs_deploy_examined(j->cfg, j->m, j->prev, j->state_dir, 0, j->now, &j->ex,
					   true, &j->written, j->err, sizeof(j->err));
	} else if ((j->rc = pl_dane_gate(j, j->m)) < 0) {
		/* Kept: deployed without a new order once its record is published. */
		char why[300];
		j->stored = cs_deploy_save_gen(j->state_dir, j->cfg->name, j->gen, j->m, why,
					       sizeof(why)) == 0;
	} else {
		j->rc = cs_deploy_examined(j->cfg, j->m, j->prev, j->state_dir, j->gen, j->now,
					   &j->ex, false, &j->written, j->err, sizeof(j->err));
		/* Stored but not in place: the next attempt deploys it instead of ordering. */
		j->stored = j->rc < 0 &&
			    cs_deploy_gen_path(j->state_dir, j->cfg->name, j->gen, path,
					       sizeof(path)) == 0 &&
			    access(path, F_OK) == 0;
	}
	if (j->rc == 0) {
		cs_deploy_fingerprint(j->cfg, &j->written, j->written_fp);
		pl_material_encode(j->m, &j->der);
	}
}

static void deploy_done(uv_work_t *req, int status)
{
	struct renew_job *j = req->data;
	struct cert *c = j->c;
	struct cs_pipeline *pl = c->pl;
	struct renewal *r = c->renewal;
	time_t now = pl_now(pl);
	char t1[40], t2[40], d[40], msg[1300];

	(void)status;
	pl_inflight_dec(pl);
	pl_renew_prev_report(j);
	assert(c->stage == PL_DEPLOYING && r != NULL);
	if (j->unusable) {
		cs_warn("%s: the pending generation cannot be used (%s); ordering a new certificate",
			c->cfg->name, j->err);
		c->st.pending_gen = 0;
		pl_renew_job_free(j);
		pl_step(c, PL_EV_REISSUE);
		pl_keygen_start(c);
		return;
	}
	if (j->rc < 0) {
		if (j->stored)
			c->st.pending_gen = j->gen;
		snprintf(msg, sizeof(msg), "deploy: %s%s", j->err,
			 c->st.pending_gen > 0 ? " (the certificate is kept; the next attempt "
						 "deploys it without a new order)"
					       : "");
		pl_renew_job_free(j);
		pl_renewal_fail(c, msg, 0);
		return;
	}
	j->ex.m = j->m;
	j->m = NULL;
	pl_take_examined(c, &j->ex, &j->der);
	c->known = j->written;
	memcpy(c->known_fp, j->written_fp, sizeof(c->known_fp));
	r->gen = j->gen;
	snprintf(r->new_serial, sizeof(r->new_serial), "%s", c->serial);
	snprintf(r->new_sha, sizeof(r->new_sha), "%s", c->sha256);
	pl_push_gen(c, j->gen, now);
	c->st.pending_gen = 0;
	pl_renewal_note_issuer(c);
	snprintf(c->st.profile, sizeof(c->st.profile), "%s", pl_profile_of(c));
	c->st.profile_known = true;
	c->st.last_success = now;
	c->fresh_key = false; /* a revoked key is no longer deployed */
	pl_schedule(c, now);
	cs_notice("%s: renewed: serial %s, valid until %s, generation %d; next renewal %s (in %s)",
		  c->cfg->name, c->serial, pl_fmt_time(c->not_after, t1, sizeof(t1)), j->gen,
		  pl_fmt_time(c->due, t2, sizeof(t2)), pl_fmt_delay(c->due - now, d, sizeof(d)));
	pl_renew_job_free(j);
	pl_once_finish(c, ONCE_RENEWED);
	pl_capsync_outputs_changed(pl, c);
	if (r->issuer->is != NULL)
		pl_capsync_publish(pl, r->issuer->is);
	pl_save_state(c);
	pl_watch_cert(c);
	pl_step(c, PL_EV_DEPLOYED);
	pl_event_publish(c, (struct cs_event){ .type = CS_EVENT_DEPLOYED, .gen = r->gen,
					       .serial = c->serial });
	pl_reload_start(c);
	pl_ari_fetch(c);
}

/* Queues j (material in j->m, or generation j->gen to load) for c. */
static void queue_deploy(struct cert *c, struct renew_job *j)
{
	struct cs_pipeline *pl = c->pl;

	j->now = pl_now(pl);
	if (uv_queue_work(pl->loop, &j->req, deploy_work, deploy_done) < 0) {
		pl_renew_job_free(j);
		pl_renewal_fail(c, "cannot queue the deploy", 0);
		return;
	}
	pl_inflight_inc(pl);
}

void pl_deploy_issued(struct cert *c, struct renew_job *j)
{
	assert(c->stage == PL_DEPLOYING);
	j->gen = c->st.next_gen++;
	queue_deploy(c, j);
}

void pl_deploy_pending(struct cert *c)
{
	struct renew_job *j;

	assert(c->stage == PL_DEPLOYING && c->st.pending_gen > 0);
	if ((j = pl_renew_job_new(c)) == NULL) {
		pl_renewal_fail(c, "out of memory", 0);
		return;
	}
	j->gen = c->st.pending_gen;
	queue_deploy(c, j);
}
