/* pl_rollback - see pl_int.h and cs_pipeline.h. */
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

/* ---- rollback after a failed reload or verify ------------------------------ */

struct rollback_job {
	uv_work_t req;
	struct cert *c;
	const struct cs_cfg_cert *cfg;
	const char *state_dir;
	int gen;
	time_t now;
	int rc;
	struct cs_deploy_digests written;
	struct cs_examined ex;
	char why[1100];
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
	j->rc = cs_deploy(j->cfg, m, NULL, j->state_dir, 0, j->now, &j->written, j->err,
			  sizeof(j->err));
	if (j->rc == 0)
		cs_examine_material(j->cfg, m, j->now, &j->ex);
	if (j->rc == 0)
		j->ex.m = m;
	else
		cs_material_free(m);
}

static void rollback_done(uv_work_t *req, int status)
{
	struct rollback_job *j = req->data;
	struct cert *c = j->c;
	struct cs_pipeline *pl = c->pl;
	struct cs_backoff b = { pl->cfg->agent.retry_min, pl->cfg->agent.retry_max };
	time_t now = time(NULL);
	char msg[3000], d[40];

	(void)status;
	pl->inflight--;
	if (j->rc < 0) {
		snprintf(msg, sizeof(msg),
			 "%s; rolling back to generation %d failed (%s): the new certificate "
			 "serial %s (sha256 %s) stays deployed",
			 j->why, j->gen, j->err, c->new_serial, c->new_sha);
	} else {
		pl_take_examined(c, &j->ex);
		c->known = j->written;
		pl_push_gen(c, j->gen, now);
		snprintf(msg, sizeof(msg),
			 "%s; rolled back to generation %d (serial %s, sha256 %s); the refused "
			 "certificate was serial %s (sha256 %s)",
			 j->why, j->gen, c->serial, c->sha256, c->new_serial, c->new_sha);
	}
	cs_examined_clear(&j->ex);
	free(j);
	cs_err("%s: %s", c->cfg->name, msg);
	cs_state_set_error(&c->st, msg);
	c->st.failures++;
	int64_t delay = cs_sched_backoff(&b, c->st.failures, now, pl_verdict_ok(c) ? c->not_after : 0,
					 0, c->seed);
	c->st.next_attempt = now + (time_t)delay;
	pl_schedule(c, now);
	if (!pl->once)
		cs_notice("%s: next renewal attempt in %s", c->cfg->name,
			  pl_fmt_delay(delay, d, sizeof(d)));
	if (pl->once && c->once != ONCE_FAILED) {
		c->once = ONCE_FAILED;
		pl->once_failures++;
	}
	pl_save_state(c);
	pl_rewatch(pl);
	pl_cert_idle(c);
	/* Make the services load the restored files; its outcome ends the story. */
	c->after_renewal = false;
	c->rolling_back = true;
	pl_request_reloads(c);
	pl_arm_timer(pl);
	pl_maybe_quiesced(pl);
}

/* Restores generation c->rollback_gen because of why (a failed reload or probe). */
void pl_rollback(struct cert *c, const char *why)
{
	struct cs_pipeline *pl = c->pl;
	struct rollback_job *j;

	c->after_renewal = false;
	snprintf(c->new_serial, sizeof(c->new_serial), "%s", c->serial);
	snprintf(c->new_sha, sizeof(c->new_sha), "%s", c->sha256);
	if (c->busy || (j = calloc(1, sizeof(*j))) == NULL) {
		char msg[1300];
		snprintf(msg, sizeof(msg), "%s; cannot roll back now (%s)", why,
			 c->busy ? "another job runs for this certificate" : "out of memory");
		cs_err("%s: %s", c->cfg->name, msg);
		cs_state_set_error(&c->st, msg);
		pl_save_state(c);
		return;
	}
	j->req.data = j;
	j->c = c;
	j->cfg = c->cfg;
	j->state_dir = pl->cfg->agent.state_dir;
	j->gen = c->rollback_gen;
	j->now = time(NULL);
	snprintf(j->why, sizeof(j->why), "%s", why);
	cs_warn("%s: %s; rolling back to generation %d", c->cfg->name, why, j->gen);
	if (uv_queue_work(pl->loop, &j->req, rollback_work, rollback_done) < 0) {
		cs_err("%s: %s; cannot queue the rollback", c->cfg->name, why);
		free(j);
		return;
	}
	c->busy = true;
	pl->inflight++;
}
