/*
 * pl_dane - a cert's DANE rollover in the pipeline (the rules are
 * cs_dane.c's): a periodic look that stages the next key and publishes
 * "current + next" (deleting what has retired) on the work queue, then asks
 * the validating resolver what it sees, through netproc; the key a renewal
 * takes (the next one only once its record has been visible for 2 x TTL,
 * else the current one); what show, `certsyncctl dane` and the metrics say.
 */
#include "pl_int.h"
#include "cs_key.h"
#include "cs_netproc.h"
#include "cs_tlsa.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DANE_QUERY_MS 5000

struct dane_job;

/* One owner's question: its answer goes to j->ans[i]. */
struct dane_q {
	struct dane_job *j;
	size_t i;
};

/*
 * One look: a copy of the state in, the new state and the resolver's view
 * out. On the work queue: the next key staged and the records published;
 * then the questions, through netproc (cs_netproc_dnsq_start); then, on the
 * work queue again, the state saved.
 */
struct dane_job {
	uv_work_t req;
	struct cert *c;
	const struct cs_cfg_cert *cfg;
	const char *state_dir;
	time_t now;
	char cur[CS_DANE_HEX];   /* the deployed key's (or issuer's) record, "": none */
	struct cs_dane_state st;
	size_t n_owners;
	char owners[CS_DANE_MAX_OWNERS][CS_DANE_OWNER_MAX];
	struct cs_dnsq_answer ans[CS_DANE_MAX_OWNERS];
	struct dane_q q[CS_DANE_MAX_OWNERS];
	size_t pending;         /* questions not answered yet, and 1 while they are asked */
	char qerr[600];         /* the first question that failed, "": none */
	char next[CS_DANE_HEX];
	bool staged, updated;   /* a new next key was made; an update ran */
	struct cs_dane_changes ch;
	char add_log[600], key_err[400], save_err[400];
};

/* Seconds between two looks: half the TTL, from 1 s to 5 min. */
static time_t dane_interval(const struct cs_cfg_cert *cfg)
{
	int64_t s = cfg->dane.ttl / 2;

	return (time_t)(s < 1 ? 1 : s > 300 ? 300 : s);
}

struct pl_dane *pl_dane_get(struct cert *c)
{
	char err[400];

	if (c->cfg->dane.usage == 0)
		return NULL;
	if (c->dane != NULL)
		return c->dane;
	if ((c->dane = calloc(1, sizeof(*c->dane))) == NULL)
		return NULL;
	if (cs_dane_load(c->pl->cfg->agent.state_dir, c->cfg->name, &c->dane->st, err,
			 sizeof(err)) < 0)
		cs_warn("%s: DANE: %s (starting afresh)", c->cfg->name, err);
	c->dane->n_owners = cs_dane_owners(c->cfg, c->dane->owners, CS_DANE_MAX_OWNERS);
	return c->dane;
}

/* The staged next key: read, or made when missing, of another type, or deployed already. */
static void stage_next(struct dane_job *j)
{
	char hex[CS_DANE_HEX] = "";
	EVP_PKEY *k = cs_dane_key_read(j->state_dir, j->cfg->name, j->key_err, sizeof(j->key_err));

	if (k != NULL && (cs_key_type_of(k) != j->cfg->key ||
			  cs_tlsa_key_data(k, 1, hex, sizeof(hex)) < 0 || strcmp(hex, j->cur) == 0)) {
		EVP_PKEY_free(k);
		k = NULL;
	}
	if (k == NULL) {
		k = cs_key_generate(j->cfg->key, j->key_err, sizeof(j->key_err));
		if (k == NULL || cs_dane_key_write(j->state_dir, j->cfg->name, k, j->key_err,
						   sizeof(j->key_err)) < 0 ||
		    cs_tlsa_key_data(k, 1, hex, sizeof(hex)) < 0) {
			EVP_PKEY_free(k);
			return;
		}
		j->staged = true;
	}
	j->key_err[0] = '\0';
	snprintf(j->next, sizeof(j->next), "%s", hex);
	EVP_PKEY_free(k);
}

/* Work queue: the next key staged, the records planned and published. */
static void dane_work(uv_work_t *req)
{
	struct dane_job *j = req->data;
	const struct cs_cfg_dane *d = &j->cfg->dane;
	char err[600] = "";

	if (d->usage == 3)
		stage_next(j);
	cs_dane_plan(&j->st, j->cur, j->next, j->now, cs_dane_wait(&j->st, d->ttl));
	cs_dane_changes(&j->st, j->now, &j->ch);
	if ((j->ch.n_add > 0 || j->ch.n_del > 0) && d->update != CS_DANE_UPDATE_NONE) {
		int rc = cs_dane_publish(j->cfg, j->state_dir, &j->ch, err, sizeof(err));
		cs_dane_updated(&j->st, &j->ch, rc == 0, err, j->now);
		j->updated = true;
	}
	j->n_owners = cs_dane_owners(j->cfg, j->owners, CS_DANE_MAX_OWNERS);
}

/* Work queue: the state saved. */
static void dane_save(uv_work_t *req)
{
	struct dane_job *j = req->data;

	if (cs_dane_save(j->state_dir, j->cfg->name, &j->st, j->save_err, sizeof(j->save_err)) < 0)
		return;
	j->save_err[0] = '\0';
}

static void dane_done(uv_work_t *req, int status);

/* One answer (or failure) less to wait for; after the last, the view observed and saved. */
static void dane_answered(struct dane_job *j)
{
	struct cs_pipeline *pl = j->c->pl;

	if (--j->pending > 0)
		return;
	cs_dane_observe(&j->st, j->cfg->dane.usage, j->ans, j->n_owners,
			j->qerr[0] ? j->qerr : NULL, j->now);
	if (pl_stopping(pl) || uv_queue_work(pl->loop, &j->req, dane_save, dane_done) < 0) {
		snprintf(j->save_err, sizeof(j->save_err), "the state was not saved this time");
		dane_done(&j->req, UV_ECANCELED);
	}
}

static void on_answer(void *arg, int status, const struct cs_dnsq_answer *a, const char *err)
{
	struct dane_q *q = arg;
	struct dane_job *j = q->j;

	if (status == 0 && a != NULL)
		j->ans[q->i] = *a;
	else if (j->qerr[0] == '\0')
		snprintf(j->qerr, sizeof(j->qerr), "%s", err && err[0] ? err : strerror(-status));
	dane_answered(j);
}

/* After the publishing: a question for each owner, asked by netproc. */
static void dane_published(uv_work_t *req, int status)
{
	struct dane_job *j = req->data;
	struct cs_pipeline *pl = j->c->pl;
	int rc;

	(void)status;
	j->pending = 1;
	for (size_t i = 0; i < j->n_owners && !pl_stopping(pl); i++) {
		j->q[i] = (struct dane_q){ j, i };
		j->pending++;
		rc = cs_netproc_dnsq_start(pl->loop, j->cfg->dane.resolver, j->owners[i],
					   DANE_QUERY_MS, on_answer, &j->q[i]);
		if (rc < 0) {
			j->pending--;
			if (j->qerr[0] == '\0')
				snprintf(j->qerr, sizeof(j->qerr), "resolver %s: cannot ask for %s TLSA: %s",
					 j->cfg->dane.resolver, j->owners[i], strerror(-rc));
		}
	}
	dane_answered(j);
}

/* The log lines of a look: what changed, and problems when they change. */
static void dane_log(struct cert *c, struct pl_dane *d, const struct dane_job *j)
{
	const char *name = c->cfg->name;
	int64_t left;

	if (j->staged)
		cs_notice("%s: DANE: staged a new next key (TLSA %d 1 1 %s)", name,
			  c->cfg->dane.usage, j->next);
	if (j->key_err[0])
		cs_err("%s: DANE: cannot stage the next key: %s", name, j->key_err);
	if (j->save_err[0])
		cs_err("%s: DANE: %s", name, j->save_err);
	if (j->updated && !j->st.update_failed)
		cs_notice("%s: DANE: TLSA records updated (%zu added, %zu deleted, at %zu owners)",
			  name, j->ch.n_add, j->ch.n_del, j->n_owners);
	if (j->st.update_failed && strcmp(d->logged_update, j->st.update_err) != 0)
		cs_err("%s: DANE: cannot publish TLSA records: %s", name, j->st.update_err);
	snprintf(d->logged_update, sizeof(d->logged_update), "%s",
		 j->st.update_failed ? j->st.update_err : "");
	if (j->st.check_err[0] && strcmp(d->logged_check, j->st.check_err) != 0)
		cs_warn("%s: DANE: %s", name, j->st.check_err);
	snprintf(d->logged_check, sizeof(d->logged_check), "%s", j->st.check_err);
	bool ready = cs_dane_next_ready(&j->st, j->now, c->cfg->dane.ttl, &left);
	if (ready && !d->ready_logged)
		cs_info("%s: DANE: the next key's TLSA record has been visible for 2 x TTL at "
			"every owner: the next renewal takes that key",
			name);
	d->ready_logged = ready;
}

static void dane_done(uv_work_t *req, int status)
{
	struct dane_job *j = req->data;
	struct cert *c = j->c;
	struct cs_pipeline *pl = c->pl;
	struct pl_dane *d = c->dane;

	(void)status;
	pl_inflight_dec(pl);
	c->dane_busy = false;
	if (pl_stopping(pl) || d == NULL) {
		free(j);
		pl_maybe_quiesced(pl);
		return;
	}
	dane_log(c, d, j);
	/* The loop counts kept keys: a renewal may have counted one during the look. */
	j->st.kept = d->st.kept;
	d->st = j->st;
	d->n_owners = j->n_owners;
	memcpy(d->owners, j->owners, sizeof(d->owners));
	memcpy(d->ans, j->ans, sizeof(d->ans));
	d->have_view = true;
	free(j);
	c->dane_next = pl_now(pl) + dane_interval(c->cfg);
	pl_timer_touch(c);
	pl_event_publish(c, (struct cs_event){ .type = CS_EVENT_CHANGED });
	pl_arm_timer(pl);
	pl_maybe_quiesced(pl);
}

/* The record of the deployed material: its key (3 1 1) or its issuer's (2 1 1); "" when none. */
static void deployed_record(const struct cert *c, char *hex, size_t len)
{
	cs_material *m = pl_verdict_ok(c) ? pl_material_get(c) : NULL;

	hex[0] = '\0';
	if (m != NULL && c->cfg->dane.usage == 3 && m->key != NULL &&
	    cs_tlsa_key_data(m->key, 1, hex, len) < 0)
		hex[0] = '\0';
	if (m != NULL && c->cfg->dane.usage == 2 && sk_X509_num(m->chain) > 0 &&
	    cs_tlsa_data(sk_X509_value(m->chain, 0), 1, 1, hex, len) < 0)
		hex[0] = '\0';
	cs_material_free(m);
}

void pl_dane_look(struct cert *c)
{
	struct cs_pipeline *pl = c->pl;
	struct pl_dane *d;
	struct dane_job *j;

	c->dane_next = 0;
	if (pl->once || pl_stopping(pl) || c->dane_busy)
		return;
	if ((d = pl_dane_get(c)) == NULL || (j = calloc(1, sizeof(*j))) == NULL) {
		c->dane_next = pl_now(pl) + 60;
		return;
	}
	j->req.data = j;
	j->c = c;
	j->cfg = c->cfg;
	j->state_dir = pl->cfg->agent.state_dir;
	j->now = pl_now(pl);
	j->st = d->st;
	deployed_record(c, j->cur, sizeof(j->cur));
	if (uv_queue_work(pl->loop, &j->req, dane_work, dane_published) < 0) {
		free(j);
		c->dane_next = pl_now(pl) + 60;
		return;
	}
	c->dane_busy = true;
	pl_inflight_inc(pl);
}

void pl_dane_checked(struct cert *c)
{
	if (c->cfg->dane.usage != 0 && c->dane_next == 0 && !c->dane_busy) {
		c->dane_next = pl_now(c->pl);
		pl_timer_touch(c);
	}
}

/* The records j may deploy: the deployed one's and those the resolver shows. */
static void gate_plan(struct cert *c, const struct pl_dane *d, struct renew_job *j)
{
	char cur[CS_DANE_HEX];

	deployed_record(c, cur, sizeof(cur));
	/* Nothing deployed yet: no record can match anything; nothing to break. */
	if (cur[0] == '\0')
		return;
	j->dane_gate = true;
	j->dane_usage = c->cfg->dane.usage;
	snprintf(j->dane_allow[j->dane_n_allow++], CS_DANE_HEX, "%s", cur);
	for (size_t i = 0; i < d->st.n && d->st.validated; i++)
		if (d->st.r[i].visible_since != 0)
			snprintf(j->dane_allow[j->dane_n_allow++], CS_DANE_HEX, "%s", d->st.r[i].hex);
}

int pl_dane_gate(struct renew_job *j, const cs_material *m)
{
	char hex[CS_DANE_HEX] = "";

	if (!j->dane_gate)
		return 0;
	if (j->dane_usage == 3 && m->key != NULL)
		(void)cs_tlsa_key_data(m->key, 1, hex, sizeof(hex));
	else if (j->dane_usage == 2 && sk_X509_num(m->chain) > 0)
		(void)cs_tlsa_data(sk_X509_value(m->chain, 0), 1, 1, hex, sizeof(hex));
	for (size_t i = 0; hex[0] && i < j->dane_n_allow; i++)
		if (strcmp(hex, j->dane_allow[i]) == 0)
			return 0;
	snprintf(j->err, sizeof(j->err),
		 "DANE: refusing to deploy: no published, validated TLSA record matches the new "
		 "certificate's %s (%d 1 1 %s); `certsyncctl dane %s` shows what is published",
		 j->dane_usage == 3 ? "key" : "issuer", j->dane_usage, hex[0] ? hex : "?",
		 j->cfg->name);
	return -EPERM;
}

void pl_dane_key_plan(struct cert *c, struct renew_job *j)
{
	struct pl_dane *d = pl_dane_get(c);
	const struct cs_dane_rec *next;
	int64_t left;
	time_t now = pl_now(c->pl);

	if (d == NULL)
		return;
	gate_plan(c, d, j);
	if (c->cfg->dane.usage != 3)
		return;
	j->dane = true;
	next = cs_dane_role(&d->st, CS_DANE_NEXT);
	if (next != NULL)
		snprintf(j->dane_hex, sizeof(j->dane_hex), "%s", next->hex);
	j->dane_next = cs_dane_next_ready(&d->st, now, c->cfg->dane.ttl, &left) || c->fresh_key;
	/* A pass does not look at DNS: what the state says may be stale. */
	if (c->pl->once && !c->fresh_key) {
		j->dane_next = false;
		snprintf(j->dane_note, sizeof(j->dane_note),
			 "certsyncd --once does not look at DNS (a rollover needs the running "
			 "agent)");
	} else if (j->dane_next)
		snprintf(j->dane_note, sizeof(j->dane_note), "%s",
			 c->fresh_key ? "the old key was revoked" :
				       "its TLSA record has been visible for 2 x TTL");
	else if (left < 0)
		snprintf(j->dane_note, sizeof(j->dane_note),
			 "the next key's TLSA record is not visible (validated) through %s yet",
			 c->cfg->dane.resolver);
	else
		snprintf(j->dane_note, sizeof(j->dane_note),
			 "the next key's TLSA record has been visible for %llds of the %llds "
			 "(2 x TTL) needed",
			 (long long)(cs_dane_wait(&d->st, c->cfg->dane.ttl) - left),
			 (long long)cs_dane_wait(&d->st, c->cfg->dane.ttl));
}

/* Work queue: the staged key when the plan says so and it is the one whose record was seen. */
static EVP_PKEY *staged_key(struct renew_job *j)
{
	char hex[CS_DANE_HEX], err[400];
	EVP_PKEY *k = cs_dane_key_read(j->state_dir, j->cfg->name, err, sizeof(err));

	if (k != NULL && (cs_key_type_of(k) != j->cfg->key ||
			  cs_tlsa_key_data(k, 1, hex, sizeof(hex)) < 0 ||
			  (j->dane_next && strcmp(hex, j->dane_hex) != 0))) {
		EVP_PKEY_free(k);
		k = NULL;
	}
	return k;
}

EVP_PKEY *pl_dane_key_pick(struct renew_job *j, const cs_material *m)
{
	bool have_cur = m != NULL && m->key != NULL && cs_key_type_of(m->key) == j->cfg->key;
	EVP_PKEY *k = NULL;

	/* The next key when its time has come, or when there is no current one to keep. */
	if (j->dane_next || !have_cur)
		k = staged_key(j);
	if (k != NULL) {
		j->dane_used = have_cur ? PL_DANE_KEY_NEXT : PL_DANE_KEY_FIRST;
		return k;
	}
	if (have_cur) {
		EVP_PKEY_up_ref(m->key);
		j->dane_used = PL_DANE_KEY_CURRENT;
		return m->key;
	}
	/* Nothing deployed: no record can match anything yet; the first look publishes it. */
	j->dane_used = m == NULL || m->key == NULL ? PL_DANE_KEY_FIRST_NEW : PL_DANE_KEY_NEW;
	return NULL;
}

void pl_dane_key_report(struct cert *c, const struct renew_job *j)
{
	struct pl_dane *d = c->dane;

	switch (j->dane_used) {
	case PL_DANE_KEY_NEXT:
		cs_notice("%s: DANE: renewing with the staged next key (%s)", c->cfg->name,
			  j->dane_note);
		break;
	case PL_DANE_KEY_CURRENT:
		if (d != NULL)
			d->st.kept++;
		cs_notice("%s: DANE: renewing with the current key: %s", c->cfg->name, j->dane_note);
		break;
	case PL_DANE_KEY_FIRST:
	case PL_DANE_KEY_FIRST_NEW:
		cs_notice("%s: DANE: no certificate deployed yet: the first one takes %s key; its "
			  "TLSA record is published at the agent's first look",
			  c->cfg->name, j->dane_used == PL_DANE_KEY_FIRST ? "the staged" : "a new");
		break;
	case PL_DANE_KEY_NEW:
		cs_warn("%s: DANE: neither the current key (of another type than key =) nor a "
			"staged one can be used: a new key, which is deployed only once its TLSA "
			"record has been published",
			c->cfg->name);
		break;
	default:
		break;
	}
}

/* What happens next, for a person, into buf. */
static void dane_next_text(const struct cert *c, const struct pl_dane *d, time_t now, char *buf,
			   size_t len)
{
	const struct cs_dane_state *st = &d->st;
	const struct cs_dane_rec *next = cs_dane_role(st, CS_DANE_NEXT);
	char t1[40], t2[40];
	int64_t left;
	bool ready = cs_dane_next_ready(st, now, c->cfg->dane.ttl, &left);
	size_t at;

	pl_fmt_time(c->due, t2, sizeof(t2));
	if (!d->have_view)
		snprintf(buf, len, "the first look through the resolver has not ended yet");
	else if (st->update_failed)
		snprintf(buf, len, "publishing fails (%.300s): tried again at %s; the renewal at %s "
			 "keeps the current key",
			 st->update_err, pl_fmt_time(c->dane_next, t1, sizeof(t1)), t2);
	else if (!st->validated)
		snprintf(buf, len, "no validated answer from %s (%.300s): the renewal at %s keeps the "
			 "current key",
			 c->cfg->dane.resolver, st->check_err, t2);
	else if (c->cfg->dane.usage == 2)
		snprintf(buf, len, "the issuer's key is published; the renewal at %s keeps the "
			 "issuer", t2);
	else if (ready)
		snprintf(buf, len, "the renewal at %s takes the next key; then a new next key is "
			 "staged and the current record retires 2 x TTL later", t2);
	else if (next != NULL && left >= 0)
		snprintf(buf, len, "the next key becomes usable at %s (its record seen for 2 x "
			 "TTL); a renewal before then keeps the current key",
			 pl_fmt_time(now + (time_t)left, t1, sizeof(t1)));
	else
		snprintf(buf, len, "waiting for the next key's record to appear through %s; the "
			 "renewal at %s keeps the current key",
			 c->cfg->dane.resolver, t2);
	for (size_t i = 0; i < st->n; i++) {
		if (st->r[i].role != CS_DANE_RETIRING || (at = strlen(buf)) + 2 >= len)
			continue;
		snprintf(buf + at, len - at, "; %.12s... is deleted at %s", st->r[i].hex,
			 pl_fmt_time(st->r[i].retire_at, t1, sizeof(t1)));
	}
}

void pl_dane_status(const struct cert *c, struct cs_cert_status *out)
{
	const struct pl_dane *d = c->dane;
	int64_t left;
	time_t now;

	if (c->cfg->dane.usage == 0)
		return;
	out->dane_cfg = &c->cfg->dane;
	if (d == NULL)
		return;
	now = pl_now(c->pl);
	out->dane = &d->st;
	out->dane_seen = d->have_view;
	out->dane_n_owners = d->n_owners;
	out->dane_owners = (const char(*)[CS_DANE_OWNER_MAX])d->owners;
	out->dane_answers = d->ans;
	out->dane_kept = d->st.kept;
	out->dane_next_ready = c->cfg->dane.usage == 3 &&
			       cs_dane_next_ready(&d->st, now, c->cfg->dane.ttl, &left);
	dane_next_text(c, d, now, out->dane_next, sizeof(out->dane_next));
}
