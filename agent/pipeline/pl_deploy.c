/* pl_deploy - see pl_int.h and cs_pipeline.h. */
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

void pl_deploy_work(uv_work_t *req)
{
	struct renew_job *j = req->data;

	j->rc = cs_deploy(j->cfg, j->m, j->prev, j->state_dir, j->gen, j->now, &j->written,
			  j->err, sizeof(j->err));
	if (j->rc == 0)
		cs_examine_material(j->cfg, j->m, j->now, &j->ex);
}

void pl_deploy_done(uv_work_t *req, int status)
{
	struct renew_job *j = req->data;
	struct cert *c = j->c;
	struct cs_pipeline *pl = c->pl;
	time_t now = time(NULL);
	char t1[40], t2[40], d[40];

	(void)status;
	pl->inflight--;
	if (j->rc < 0) {
		char msg[1100];
		snprintf(msg, sizeof(msg), "deploy: %s", j->err);
		pl_renew_failed(j, msg, 0);
		return;
	}
	j->ex.m = j->m;
	j->m = NULL;
	pl_take_examined(c, &j->ex);
	c->known = j->written;
	pl_push_gen(c, j->gen, now);
	c->st.last_success = now;
	c->st.failures = 0;
	c->fresh_key = false; /* a revoked key is no longer deployed; retries kept away from it */
	c->st.next_attempt = 0;
	c->st.retry_after = 0;
	cs_state_set_error(&c->st, NULL);
	pl_schedule(c, now);
	cs_notice("%s: renewed: serial %s, valid until %s, generation %d; next renewal %s (in %s)",
		  c->cfg->name, c->serial, pl_fmt_time(c->not_after, t1, sizeof(t1)), j->gen,
		  pl_fmt_time(c->due, t2, sizeof(t2)), pl_fmt_delay(c->due - now, d, sizeof(d)));
	pl_renew_job_free(j);
	pl_once_finish(c, ONCE_RENEWED);
	pl_capsync_publish(pl, c->issuer);
	/* The generation before this one, for a rollback when the services refuse it. */
	c->after_renewal = true;
	c->rolling_back = false;
	c->rollback_gen = c->st.n_gens > 1 ? c->st.gens[1].n : 0;
	pl_request_reloads(c);
	pl_save_state(c);
	pl_rewatch(pl);
	pl_cert_idle(c);
	pl_ari_fetch(c);
	pl_arm_timer(pl);
	pl_maybe_quiesced(pl);
}
