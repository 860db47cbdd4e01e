/* pl_save - see pl_int.h and cs_pipeline.h. */
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
	const char *state_dir;
	const char *name;
	struct cs_state snap;
	int rc;
	char err[512];
};

static void save_work(uv_work_t *req)
{
	struct save_job *j = req->data;

	j->rc = cs_state_save(j->state_dir, j->name, &j->snap, j->err, sizeof(j->err));
}

static void save_done(uv_work_t *req, int status)
{
	struct save_job *j = req->data;
	struct cert *c = j->c;
	struct cs_pipeline *pl = c->pl;

	(void)status;
	if (j->rc < 0)
		cs_err("%s: cannot save the state: %s", c->cfg->name, j->err);
	cs_state_clear(&j->snap);
	free(j);
	c->saving = false;
	pl->inflight--;
	if (c->save_again) {
		c->save_again = false;
		pl_save_state(c);
	}
	pl_maybe_quiesced(pl);
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
	j->state_dir = pl->cfg->agent.state_dir;
	j->name = c->cfg->name;
	j->snap = c->st;
	j->snap.last_error = c->st.last_error ? strdup(c->st.last_error) : NULL;
	if (uv_queue_work(pl->loop, &j->req, save_work, save_done) < 0) {
		cs_err("%s: cannot save the state: cannot queue work", c->cfg->name);
		cs_state_clear(&j->snap);
		free(j);
		return;
	}
	c->saving = true;
	pl->inflight++;
}
