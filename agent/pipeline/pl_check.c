/*
 * pl_check - examining a cert's outputs (CHECKING) on the work queue: the
 * digests tell the agent's own writes from others'; a valid certificate put
 * there by an administrator is adopted as a generation; unusable outputs are
 * repaired from the newest valid generation, after which the services reload.
 */
#include "pl_int.h"
#include "cs_csr.h"
#include "cs_key.h"
#include "cs_localca.h"
#include "cs_sched.h"
#include "cs_verify.h"
#include "cs_x509.h"

#include <assert.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- details of the deployed material ------------------------------------ */

/* Takes ex's verdict and the leaf's details (not its material). */
static void take_details(struct cert *c, const struct cs_examined *ex)
{
	c->verdict = ex->verdict;
	pl_text_set(&c->reason, 1024, "%s", ex->reason);
	c->not_before = ex->not_before;
	c->not_after = ex->not_after;
	snprintf(c->serial, sizeof(c->serial), "%s", ex->serial);
	snprintf(c->sha256, sizeof(c->sha256), "%s", ex->sha256);
	c->seed = cs_sched_seed(c->sha256, strlen(c->sha256)) ^
		  cs_sched_seed(c->cfg->name, strlen(c->cfg->name));
}

/* Takes over ex's findings (and its material) as what c has deployed. */
void pl_take_examined(struct cert *c, struct cs_examined *ex, struct pl_der *der)
{
	pl_material_keep_encoded(c, ex->m, der);
	ex->m = NULL;
	take_details(c, ex);
}

void pl_push_gen(struct cert *c, int n, time_t now)
{
	struct cs_state_gen g = { .n = n, .not_after = c->not_after, .deployed = now };

	snprintf(g.serial, sizeof(g.serial), "%s", c->serial);
	snprintf(g.sha256, sizeof(g.sha256), "%.99s", c->sha256);
	cs_state_push_gen(&c->st, &g);
	if (n >= c->st.next_gen)
		c->st.next_gen = n + 1;
}

/* ---- check: digest, examine, adopt or repair ------------------------------ */

enum check_outcome {
	CHECK_UNCHANGED, /* the same bytes as at the last examination in this process */
	CHECK_KNOWN,     /* the same as the state last saw them valid: not decoded */
	CHECK_EXAMINED,
	CHECK_ADOPTED,
	CHECK_REPAIRED,
};

struct check_job {
	uv_work_t req;
	struct cert *c;
	const struct cs_cfg_cert *cfg;
	const char *state_dir;
	time_t now;
	bool full;
	bool load_state;
	struct cs_state st; /* copy (or loaded) */
	int state_rc;
	char state_err[512];
	struct cs_deploy_digests known, seen;
	bool no_repair; /* repairs have stopped for this cert */
	bool adopt;     /* certsyncctl adopt: take the files as they are */
	enum check_outcome outcome;
	struct cs_examined ex;
	char fp[65];            /* cs_deploy_fingerprint of what was read */
	struct pl_der der;      /* ex.m encoded, off the loop */
	int gen;                /* adopted: its number; repaired: where from */
	char repair_err[1024];  /* why a repair was not possible */
	char adopt_err[512];
	bool first; /* one of pl_examine_all's (counted in pl->first_running) */
};

/*
 * At the first examination after a start: true when the outputs are what the
 * state last saw valid, under the same configuration and trust anchors, and
 * still inside their validity; their details are then taken from the state
 * without decoding anything (the key is never decoded just to compare it).
 */
static bool known_valid(struct check_job *j)
{
	const struct cs_state_seen *sn = &j->st.seen;
	char path[PATH_MAX];

	if (sn->fp[0] == '\0' || j->st.n_gens == 0 ||
	    strcmp(j->st.gens[0].sha256, sn->sha256) != 0 || j->now < sn->not_before ||
	    j->now >= sn->not_after)
		return false;
	cs_deploy_fingerprint(j->cfg, &j->seen, j->fp);
	if (strcmp(j->fp, sn->fp) != 0)
		return false;
	/* The deployed material is read from there when a renewal needs it. */
	if (cs_deploy_gen_path(j->state_dir, j->cfg->name, j->st.gens[0].n, path,
			       sizeof(path)) < 0 ||
	    access(path, R_OK) < 0)
		return false;
	return true;
}

static void check_examine(struct check_job *j);

static void check_work(uv_work_t *req)
{
	struct check_job *j = req->data;

	check_examine(j);
	if (j->ex.m != NULL && j->outcome != CHECK_UNCHANGED && j->outcome != CHECK_KNOWN)
		pl_material_encode(j->ex.m, &j->der);
}

/* Valid outputs not the newest generation: kept as one if they may be (CHECK_ADOPTED). */
static void adopt_valid(struct check_job *j)
{
	const struct cs_cfg_cert *cfg = j->cfg;

	if (j->ex.verdict == CS_EX_OK && j->st.n_gens > 0 &&
	    strcmp(j->st.gens[0].sha256, j->ex.sha256) == 0)
		return;
	/*
	 * Not from the issuer: kept where it is (never reverted) until
	 * its renewal, unless the administrator says it is theirs to
	 * keep (allow_foreign, certsyncctl adopt).
	 */
	if (j->ex.verdict == CS_EX_FOREIGN && !cfg->allow_foreign && !j->adopt)
		return;
	/* Another valid certificate that fits: keep it as a generation too. */
	j->gen = j->st.next_gen;
	if (cs_deploy_save_gen(j->state_dir, cfg->name, j->gen, j->ex.m, j->adopt_err,
			       sizeof(j->adopt_err)) < 0)
		j->gen = 0;
	j->outcome = CHECK_ADOPTED;
}

/* Deploys generation n again if it is still valid (CHECK_REPAIRED); false if not. */
static bool repair_from(struct check_job *j, int n)
{
	const struct cs_cfg_cert *cfg = j->cfg;
	cs_material *m = NULL;
	struct cs_examined gx;
	char err[512];

	memset(&gx, 0, sizeof(gx));
	if (cs_deploy_load_gen(j->state_dir, cfg->name, n, &m, err, sizeof(err)) < 0) {
		snprintf(j->repair_err, sizeof(j->repair_err), "%s", err);
		return false;
	}
	enum cs_verdict gv = cs_examine_material(cfg, m, j->now, &gx);
	/* A generation of someone else's certificate was adopted on purpose. */
	if (gv != CS_EX_OK && gv != CS_EX_FOREIGN) {
		snprintf(j->repair_err, sizeof(j->repair_err), "generation %d: %.900s", n,
			 gx.reason);
		cs_material_free(m);
		return false;
	}
	if (cs_deploy_examined(cfg, m, NULL, j->state_dir, 0, j->now, &gx, true, &j->seen, err,
			       sizeof(err)) < 0) {
		snprintf(j->repair_err, sizeof(j->repair_err), "%s", err);
		cs_material_free(m);
		return false;
	}
	/* The generation's examination, with why the outputs needed the repair. */
	snprintf(gx.reason, sizeof(gx.reason), "%s", j->ex.reason);
	cs_examine_clear(&j->ex);
	j->ex = gx;
	j->ex.m = m;
	j->gen = n;
	j->outcome = CHECK_REPAIRED;
	cs_deploy_fingerprint(cfg, &j->seen, j->fp);
	return true;
}

/* Unusable outputs: puts back the newest generation that is still valid. */
static void repair(struct check_job *j)
{
	j->repair_err[0] = '\0';
	if (j->adopt) {
		snprintf(j->repair_err, sizeof(j->repair_err),
			 "not repaired: adopting takes the files as they are");
		return;
	}
	if (j->no_repair) {
		snprintf(j->repair_err, sizeof(j->repair_err),
			 "repairs stopped: the outputs kept changing");
		return;
	}
	for (size_t i = 0; i < j->st.n_gens; i++)
		if (repair_from(j, j->st.gens[i].n))
			return;
}

static void check_examine(struct check_job *j)
{
	const struct cs_cfg_cert *cfg = j->cfg;

	if (j->load_state)
		j->state_rc = cs_state_load(j->state_dir, cfg->name, &j->st, j->state_err,
					    sizeof(j->state_err));
	cs_deploy_digest_files(cfg, &j->seen);
	if (!j->full && cs_deploy_digests_equal(&j->seen, &j->known)) {
		j->outcome = CHECK_UNCHANGED;
		return;
	}
	if (j->load_state && !j->adopt && known_valid(j)) {
		j->outcome = CHECK_KNOWN;
		return;
	}
	j->outcome = CHECK_EXAMINED;
	cs_examine(cfg, j->now, &j->ex);
	/* known_valid may have computed it for these bytes already. */
	if (j->fp[0] == '\0')
		cs_deploy_fingerprint(cfg, &j->seen, j->fp);
	if (j->ex.verdict == CS_EX_FOREIGN && j->st.n_gens > 0 &&
	    strcmp(j->st.gens[0].sha256, j->ex.sha256) == 0) {
		/* Someone else's, but adopted: the agent's own now. */
		j->ex.verdict = CS_EX_OK;
		snprintf(j->ex.reason, sizeof(j->ex.reason), PL_REASON_ADOPTED);
	}
	if (j->ex.verdict == CS_EX_OK || j->ex.verdict == CS_EX_FOREIGN)
		adopt_valid(j);
	else
		repair(j);
}

/*
 * Keeps the time of a repair; the PL_REPAIRS_MAX-th within a minute stops
 * further repairs with an error that says why (a loop with another writer).
 */
static void count_repair(struct cert *c, time_t now)
{
	char msg[1024];

	memmove(&c->repairs[1], &c->repairs[0], (PL_REPAIRS_MAX - 1) * sizeof(c->repairs[0]));
	c->repairs[0] = now;
	if (c->repairs[PL_REPAIRS_MAX - 1] == 0 || now - c->repairs[PL_REPAIRS_MAX - 1] > 60)
		return;
	c->repairs_stopped = true;
	snprintf(msg, sizeof(msg),
		 "repaired %d times within a minute: something else keeps writing these outputs "
		 "(another [cert] writing the same file under another name, a configuration "
		 "manager, a second agent); repairs are stopped until a renewal succeeds, "
		 "`certsyncctl renew %s --force` or a new configuration",
		 PL_REPAIRS_MAX, c->cfg->name);
	cs_err("%s: %s", c->cfg->name, msg);
	cs_state_set_error(&c->st, msg);
	c->st.failures++;
	c->st.next_attempt = now + (time_t)c->pl->cfg->agent.retry_max;
}

/* Takes the details the state kept of the deployed outputs (CHECK_KNOWN). */
static void take_known(struct cert *c)
{
	const struct cs_state_seen *sn = &c->st.seen;
	struct cs_examined ex = {
		.verdict = CS_EX_OK,
		.not_before = sn->not_before,
		.not_after = sn->not_after,
	};

	snprintf(ex.reason, sizeof(ex.reason), "%s", sn->adopted ? PL_REASON_ADOPTED : "valid");
	snprintf(ex.serial, sizeof(ex.serial), "%s", sn->serial);
	snprintf(ex.sha256, sizeof(ex.sha256), "%s", sn->sha256);
	pl_material_lazy(c);
	take_details(c, &ex);
	cs_info("%s: deployed certificate %s is valid (as last examined)", c->cfg->name,
		c->serial);
}

/* Tells whoever asked for an adoption how the examination went. */
static void adopt_answer(struct cert *c, const struct check_job *j)
{
	void (*cb)(void *, int, const char *) = c->adopt_cb;
	void *arg = c->adopt_arg;
	char msg[1200];

	c->adopt_cb = NULL;
	c->adopt_arg = NULL;
	if (cb == NULL)
		return;
	if (j->outcome == CHECK_ADOPTED && j->gen > 0) {
		snprintf(msg, sizeof(msg), "adopted %s as generation %d", c->serial, j->gen);
		cb(arg, 0, msg);
	} else if (j->outcome == CHECK_ADOPTED) {
		snprintf(msg, sizeof(msg), "cannot keep %s as a generation: %s", c->serial,
			 j->adopt_err);
		cb(arg, -EIO, msg);
	} else if (pl_verdict_ok(c) && c->verdict == CS_EX_OK) {
		snprintf(msg, sizeof(msg), "%s is the agent's generation %d already", c->serial,
			 c->st.n_gens > 0 ? c->st.gens[0].n : 0);
		cb(arg, 0, msg);
	} else {
		snprintf(msg, sizeof(msg), "the files cannot be adopted: %s", c->reason);
		cb(arg, -EINVAL, msg);
	}
}

void pl_cert_idle(struct cert *c)
{
	assert(c->stage == PL_IDLE);
	if (c->queued.set)
		pl_start_queued(c);
	pl_timer_touch(c);
	if (c->dirty && !c->pl->closing && !c->pl->tearing_down) {
		c->dirty = false;
		pl_schedule_check(c);
	}
	pl_drift_idle(c);
}

/* Takes over the job's state (loaded, or its copy freed) and what it read. */
static void take_job_state(struct cert *c, struct check_job *j)
{
	if (j->load_state) {
		if (j->state_rc != 0)
			cs_warn("%s: %s", c->cfg->name, j->state_err);
		cs_state_clear(&c->st);
		c->st = j->st;
		c->state_loaded = true;
	} else {
		free(j->st.last_error);
	}
	c->known = j->seen;
	/* Unchanged: the same bytes as the fingerprint already kept. */
	if (j->outcome != CHECK_UNCHANGED)
		memcpy(c->known_fp, j->fp, sizeof(c->known_fp));
}

/* CHECK_EXAMINED: takes what was found and says what it means. */
static void took_examined(struct cert *c, struct check_job *j)
{
	char t1[40];

	pl_take_examined(c, &j->ex, &j->der);
	if (c->verdict == CS_EX_FOREIGN) {
		cs_warn("%s: the deployed certificate %s is not from issuer %s (%s); it is "
			"kept until its renewal on %s; `certsyncctl adopt %s` (or "
			"allow_foreign = yes) takes it as the agent's own",
			c->cfg->name, c->serial, c->cfg->issuer, c->reason,
			pl_fmt_time(c->not_after, t1, sizeof(t1)), c->cfg->name);
		return;
	}
	if (pl_verdict_ok(c)) {
		cs_info("%s: deployed certificate %s is valid", c->cfg->name, c->serial);
		return;
	}
	if (j->repair_err[0])
		cs_warn("%s: %s; no generation to repair it from (%s); it needs a new "
			"certificate",
			c->cfg->name, c->reason, j->repair_err);
	else
		cs_warn("%s: %s; it needs a new certificate", c->cfg->name, c->reason);
}

/* CHECK_ADOPTED: takes the certificate as a generation, settling earlier failures. */
static void took_adopted(struct cert *c, struct check_job *j, time_t now)
{
	char t1[40];

	pl_take_examined(c, &j->ex, &j->der);
	if (c->verdict == CS_EX_FOREIGN) {
		cs_notice("%s: adopting certificate %s although it is not from issuer %s "
			  "(%s), as %s",
			  c->cfg->name, c->serial, c->cfg->issuer, c->reason,
			  j->adopt ? "asked" : "allow_foreign = yes says");
		c->verdict = CS_EX_OK;
		pl_text_set(&c->reason, 1024, PL_REASON_ADOPTED);
	} else if (c->st.n_gens == 0)
		cs_notice("%s: adopting the deployed certificate %s (valid until %s)",
			  c->cfg->name, c->serial, pl_fmt_time(c->not_after, t1, sizeof(t1)));
	else
		cs_notice("%s: the deployed files now hold another valid certificate "
			  "(serial %s, valid until %s) that fits the configuration; "
			  "accepting it",
			  c->cfg->name, c->serial, pl_fmt_time(c->not_after, t1, sizeof(t1)));
	if (j->gen > 0)
		pl_push_gen(c, j->gen, now);
	else
		cs_warn("%s: cannot keep the accepted certificate as a generation: %s",
			c->cfg->name, j->adopt_err);
	/* The administrator's choice settles earlier failures. */
	c->st.failures = 0;
	c->st.next_attempt = 0;
	c->st.retry_after = 0;
	cs_state_set_error(&c->st, NULL);
	pl_event_publish(c, (struct cs_event){ .type = CS_EVENT_ADOPTED, .gen = j->gen,
					       .serial = c->serial });
}

/* CHECK_REPAIRED: counts the repair and takes the generation put back. */
static void took_repaired(struct cert *c, struct check_job *j, time_t now)
{
	count_repair(c, now);
	pl_take_examined(c, &j->ex, &j->der);
	c->verdict = CS_EX_OK;
	cs_notice("%s: repaired from generation %d (%s)", c->cfg->name, j->gen, c->reason);
	pl_text_set(&c->reason, 1024, "valid");
	pl_event_publish(c, (struct cs_event){ .type = CS_EVENT_REPAIRED, .gen = j->gen,
					       .serial = c->serial, .text = c->reason });
	pl_once_finish(c, ONCE_REPAIRED);
	pl_capsync_outputs_changed(c->pl, c);
}

/*
 * One pass (pl->once), c idle and examined (and its ARI question answered):
 * renews what is due now, or is done.
 */
void pl_once_checked(struct cert *c, time_t now)
{
	/* One pass: what is due now is renewed now, backoff or not. */
	if (!pl_verdict_ok(c) ||
	    (pl_verdict_ok(c) && c->due <= now)) {
		if (!pl_renewal_start(c, false,
				      pl_verdict_ok(c) ? c->due_reason : c->reason))
			pl_once_finish(c, ONCE_FAILED);
	} else {
		pl_once_finish(c, ONCE_VALID);
	}
}

static void check_done(uv_work_t *req, int status)
{
	struct check_job *j = req->data;
	struct cert *c = j->c;
	struct cs_pipeline *pl = c->pl;
	time_t now = pl_now(pl);
	bool was_ok = pl_verdict_ok(c);

	(void)status;
	pl_inflight_dec(pl);
	assert(c->stage == PL_CHECKING);
	if (j->first) {
		assert(pl->first_running > 0);
		pl->first_running--;
		pl_feed_checks(pl); /* the next one, while this one is taken in */
	}
	take_job_state(c, j);
	switch (j->outcome) {
	case CHECK_UNCHANGED:
		break;
	case CHECK_KNOWN:
		take_known(c);
		break;
	case CHECK_EXAMINED:
		took_examined(c, j);
		break;
	case CHECK_ADOPTED:
		took_adopted(c, j, now);
		break;
	case CHECK_REPAIRED:
		took_repaired(c, j, now);
		break;
	}
	if (j->adopt)
		adopt_answer(c, j);
	/* A certificate that verifies to an issuer's trust is that issuer's. */
	if (c->verdict == CS_EX_OK && c->st.issuer[0] == '\0' &&
	    (j->outcome == CHECK_EXAMINED || j->outcome == CHECK_ADOPTED))
		snprintf(c->st.issuer, sizeof(c->st.issuer), "%s",
			 j->ex.trusted_by ? j->ex.trusted_by : c->cfg->issuer);
	enum check_outcome outcome = j->outcome;
	cs_examine_clear(&j->ex);
	pl_der_clear(&j->der);
	free(j);
	if (outcome != CHECK_UNCHANGED || !was_ok) {
		pl_schedule(c, now);
		pl_save_state(c);
		if (!pl->once && !pl->closing)
			pl_log_schedule(c, now);
		if (outcome != CHECK_ADOPTED && outcome != CHECK_REPAIRED)
			pl_event_publish(c, (struct cs_event){ .type = CS_EVENT_CHANGED });
	}
	pl_watch_cert(c);
	if (outcome == CHECK_REPAIRED) {
		/* The services load the restored files, and are verified. */
		pl_step(c, PL_EV_REPAIRED);
		pl_reload_start(c);
		pl_arm_timer(pl);
		pl_maybe_quiesced(pl);
		return;
	}
	pl_step(c, PL_EV_CHECKED);
	pl_cert_idle(c);
	if (outcome != CHECK_UNCHANGED && pl_verdict_ok(c) && c->stage == PL_IDLE)
		pl_ari_checked(c);
	pl_dane_checked(c);
	/* A pass decides once the issuer has said whether the window has begun (on_ari). */
	if (pl->once && c->stage == PL_IDLE && !c->ari_busy)
		pl_once_checked(c, now);
	pl_arm_timer(pl);
	pl_maybe_quiesced(pl);
}

/* Queues the examination of c (first: one of pl_examine_all's); 0 or -1 (logged). */
static int queue_check(struct cert *c, bool first)
{
	struct cs_pipeline *pl = c->pl;
	struct check_job *j;

	j = calloc(1, sizeof(*j));
	if (j == NULL) {
		cs_err("%s: cannot examine: out of memory", c->cfg->name);
		return -1;
	}
	j->req.data = j;
	j->c = c;
	j->cfg = c->cfg;
	j->state_dir = pl->cfg->agent.state_dir;
	j->now = pl_now(pl);
	j->full = c->full_check || !c->known.valid;
	j->load_state = !c->state_loaded;
	if (!j->load_state) {
		j->st = c->st;
		j->st.last_error = NULL;
	}
	j->known = c->known;
	j->no_repair = c->repairs_stopped;
	j->adopt = c->adopt_cb != NULL;
	if (j->adopt) {
		/* The current files as they are: examined even if unchanged, never repaired. */
		j->full = true;
		j->known.valid = false;
	}
	j->first = first;
	if (uv_queue_work(pl->loop, &j->req, check_work, check_done) < 0) {
		cs_err("%s: cannot examine: cannot queue work", c->cfg->name);
		free(j);
		return -1;
	}
	c->full_check = false;
	return 0;
}

void pl_start_check(struct cert *c)
{
	struct cs_pipeline *pl = c->pl;

	if (c->stage != PL_IDLE) {
		c->dirty = true;
		return;
	}
	if (pl_stopping(pl) || queue_check(c, false) < 0)
		return;
	pl_step(c, PL_EV_CHECK);
	pl_inflight_inc(pl);
}

/*
 * Examines every cert (the start of a run, and after a new configuration).
 * Every idle cert is CHECKING at once, as if each examination were queued
 * (nothing renews it unexamined; a renewal asked for meanwhile waits for
 * the examination, as always), but at most PL_FIRST_CHECKS are queued at a
 * time, each cert's files watched just before: with thousands of certs the
 * loop turns stay short (the status socket answers meanwhile) and only that
 * many jobs hold memory at once.
 */
void pl_examine_all(struct cs_pipeline *pl)
{
	pl_capsync_start(pl);
	pl_crl_start(pl);
	for (size_t i = 0; i < pl->n_certs; i++) {
		struct cert *c = pl->certs[i];
		c->full_check = true;
		if (c->stage != PL_IDLE) {
			c->dirty = true; /* examined when it is idle again */
			continue;
		}
		if (pl_stopping(pl))
			continue;
		pl_step(c, PL_EV_CHECK);
		pl_inflight_inc(pl);
		STAILQ_INSERT_TAIL(&pl->firstq, c, in_firstq);
	}
	pl_feed_checks(pl);
}

/*
 * Queues first examinations up to PL_FIRST_CHECKS running; when the
 * pipeline stops, the ones not queued end unexamined (the caller then
 * looks whether it is quiet).
 */
void pl_feed_checks(struct cs_pipeline *pl)
{
	struct cert *c;

	while ((c = STAILQ_FIRST(&pl->firstq)) != NULL) {
		if (!pl_stopping(pl) && pl->first_running >= PL_FIRST_CHECKS)
			break;
		STAILQ_REMOVE_HEAD(&pl->firstq, in_firstq);
		assert(c->stage == PL_CHECKING);
		if (!pl_stopping(pl)) {
			pl_watch_cert(c); /* before the files are read: no change is missed */
			if (queue_check(c, true) == 0) {
				pl->first_running++;
				continue;
			}
		}
		pl_step(c, PL_EV_CHECKED);
		pl_inflight_dec(pl);
		pl_timer_touch(c);
	}
}

void pl_on_check_timer(uv_timer_t *t)
{
	pl_start_check(t->data);
}
