/*
 * pl_drift - the drift checks of a cert: every verify_interval (jittered),
 * while the cert is idle, each verify URL is probed for every name of the
 * certificate (sent as SNI) and the leaf served is compared with the one
 * deployed (cert.sha256). A service that serves another leaf (a reload that
 * did not take, an old file restored by hand, a second instance) is reloaded
 * once through the state machine (IDLE --reload--> RELOADING, then the usual
 * verify, as `certsyncctl reload`) and checked again as soon as the cert is
 * idle. When the re-check still finds the same leaf served where the same
 * one is deployed, the drift is reported (log at err, the cert's last error,
 * status, metric) and never reloaded again for, until something changes:
 * another deployment, another leaf served, or `certsyncctl reload` (whose
 * reload then counts as the one reload). A drift check renews nothing and
 * rolls nothing back.
 *
 * Owns: struct pl_drift (one per cert with verify URLs and an interval),
 * its timer and what status shows (struct cs_served). The probes run in
 * netproc (cs_netproc_probe_start; in-process, on the work queue, without
 * privilege separation), one at a time per cert and for at most
 * PL_DRIFT_RUNNING certs at a time, each counted in pl->inflight. Nothing of
 * it is kept across restarts: a start checks within about a minute.
 */
#include "pl_int.h"
#include "pl_drift.h"
#include "cs_probe.h"
#include "cs_netproc.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PL_DRIFT_RUNNING 2      /* certs checked at a time: each holds a work-queue thread */
#define PL_DRIFT_BUSY_MS 60000  /* a busy cert is looked at again after this (or its interval) */
#define PL_DRIFT_WAIT_MS 1000   /* a cert that found no free slot waits this, plus up to as much */
#define PL_DRIFT_RECHECK_MS 200 /* the re-check after a reload, once the cert is idle */

/*
 * One verify URL for one name: how it is probed, and the reload made for its
 * drift. Kept small (a few hundred bytes with cs_served): 10,000 certs with
 * three URLs and two names each have 60,000 of them.
 */
struct entry {
	char *probe;           /* the URL probed (with ?sni=NAME) */
	char *name;
	char *error;           /* the last probe's failure, NULL: none */
	uint64_t reloaded_for; /* leaf_key of what it served when reloaded for; 0: not */
};

struct pl_drift {
	uv_timer_t timer;
	struct cs_pipeline *pl;
	struct cert *c;
	int64_t interval_s;
	size_t n;
	struct cs_served *served; /* n: what status shows */
	struct entry *e;          /* n: beside it */
	size_t at;                /* the probe in flight while running */
	bool running;
	bool reloading;            /* a drift's (or the operator's) reload: re-check after it */
	bool changed;              /* a result went to or from "another leaf" in this check */
	bool stale;                /* a reload ended while the check ran: check again */
	char want[CS_FP_MAX];      /* the deployed leaf this check compares with */
	char reloaded_dep[CS_FP_MAX]; /* the deployed leaf when the reload was made ("": none) */
	enum cs_drift state;
	LIST_ENTRY(pl_drift) in_drifted; /* in pl->drifted while state is not NONE */
	void (*close_cb)(void *arg);     /* pl_drift_close's */
	void *close_arg;
};

#define DRIFT_ERROR_PREFIX "drift: "

const char *cs_pipeline_drift_name(enum cs_drift d)
{
	switch (d) {
	case CS_DRIFT_NONE:
		return "none";
	case CS_DRIFT_FOUND:
		return "found";
	case CS_DRIFT_PERSISTS:
		return "persists";
	}
	return "?";
}

/* ---- the arithmetic (pl_drift.h) ---- */

uint64_t pl_drift_random(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

int64_t pl_drift_next_ms(int64_t interval_s, uint64_t r)
{
	int64_t base = interval_s * 1000;
	int64_t span = base * PL_DRIFT_JITTER_PCT / 100; /* each side */
	int64_t ms = base - span + (span > 0 ? (int64_t)(r % (uint64_t)(2 * span + 1)) : 0);

	return ms < 1000 ? 1000 : ms;
}

int64_t pl_drift_first_ms(int64_t interval_s, size_t n_certs, uint64_t r)
{
	uint64_t spread = PL_DRIFT_FIRST_SPAN_MS;
	int64_t first, one = pl_drift_next_ms(interval_s, r >> 32 | r << 32);

	if ((uint64_t)n_certs * PL_DRIFT_FIRST_PER_CERT_MS > spread)
		spread = (uint64_t)n_certs * PL_DRIFT_FIRST_PER_CERT_MS;
	first = PL_DRIFT_FIRST_MIN_MS + (int64_t)(r % (spread + 1));
	return one < first ? one : first;
}

/* ---- building ---- */

static int64_t interval_of(const struct cert *c)
{
	const struct cs_cfg_interval *iv = &c->cfg->verify_interval;

	return iv->set ? iv->seconds : c->pl->cfg->agent.verify_interval.seconds;
}

static int add_entry(struct pl_drift *d, const char *url, const char *probe, const char *name)
{
	struct entry *e = &d->e[d->n];
	struct cs_served *s = &d->served[d->n];

	d->n++; /* freed with the others from now on */
	if ((e->probe = strdup(probe)) == NULL || (e->name = strdup(name)) == NULL)
		return -ENOMEM;
	s->url = url;
	s->name = e->name;
	s->match = -1;
	return 0;
}

static void drift_free(struct pl_drift *d)
{
	for (size_t i = 0; d != NULL && i < d->n; i++) {
		free(d->e[i].probe);
		free(d->e[i].name);
		free(d->e[i].error);
	}
	if (d != NULL) {
		free(d->e);
		free(d->served);
	}
	free(d);
}

/* True when name can be sent as SNI: not a wildcard, not an address (RFC 6066, 3). */
static bool sni_name(const char *name)
{
	unsigned char addr[16];

	return name[0] != '*' && inet_pton(AF_INET, name, addr) != 1 &&
	       inet_pton(AF_INET6, name, addr) != 1;
}

/*
 * The entries of c: each verify URL with an explicit ?sni= as it is; any
 * other once for each name of the certificate that can be sent as SNI (not
 * a wildcard or an address), or as it is when there is none.
 */
static int build_entries(struct pl_drift *d, const struct cs_cfg_cert *cfg)
{
	size_t per = cfg->names.n > 0 ? cfg->names.n : 1;
	char probe[1024], err[512];

	d->served = calloc(cfg->verify.n * per, sizeof(*d->served));
	d->e = calloc(cfg->verify.n * per, sizeof(*d->e));
	if (d->served == NULL || d->e == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->verify.n; i++) {
		const char *url = cfg->verify.v[i];
		struct cs_probe_url u;
		size_t added = 0;

		/* The configuration checked every URL with the same parser. */
		if (cs_probe_url_parse(url, &u, err, sizeof(err)) < 0)
			continue;
		if (strchr(url, '?') == NULL) {
			for (size_t k = 0; k < cfg->names.n; k++) {
				const char *name = cfg->names.v[k];
				if (!sni_name(name))
					continue;
				snprintf(probe, sizeof(probe), "%s?sni=%s", url, name);
				if (add_entry(d, url, probe, name) < 0)
					return -ENOMEM;
				added++;
			}
		}
		if (added == 0 && add_entry(d, url, url, u.sni) < 0)
			return -ENOMEM;
	}
	return 0;
}

int pl_drift_new(struct cert *c)
{
	struct pl_drift *d;
	int64_t iv = interval_of(c);

	c->drift = NULL;
	if (iv <= 0 || c->cfg->verify.n == 0)
		return 0;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return -ENOMEM;
	d->pl = c->pl;
	d->c = c;
	d->interval_s = iv;
	if (build_entries(d, c->cfg) < 0) {
		drift_free(d);
		return -ENOMEM;
	}
	uv_timer_init(c->pl->loop, &d->timer);
	d->timer.data = d;
	c->drift = d;
	return 0;
}

/* ---- checking ---- */

static void on_timer(uv_timer_t *t);

static void arm(struct pl_drift *d, int64_t ms)
{
	uv_timer_start(&d->timer, on_timer, (uint64_t)ms, 0);
}

static void arm_next(struct pl_drift *d)
{
	arm(d, pl_drift_next_ms(d->interval_s, pl_drift_random(&d->pl->drift_rng)));
}

/* Looks at a cert that was busy again after a minute (or its interval when that is shorter). */
static void arm_busy(struct pl_drift *d)
{
	int64_t ms = pl_drift_next_ms(d->interval_s, pl_drift_random(&d->pl->drift_rng));

	arm(d, ms < PL_DRIFT_BUSY_MS ? ms : PL_DRIFT_BUSY_MS);
}

static void set_state(struct pl_drift *d, enum cs_drift s)
{
	struct cs_pipeline *pl = d->pl;

	if (d->state == CS_DRIFT_NONE && s != CS_DRIFT_NONE) {
		LIST_INSERT_HEAD(&pl->drifted, d, in_drifted);
		pl->n_drifted++;
	} else if (d->state != CS_DRIFT_NONE && s == CS_DRIFT_NONE) {
		assert(pl->n_drifted > 0);
		LIST_REMOVE(d, in_drifted);
		pl->n_drifted--;
	}
	d->state = s;
}

/* What the probe of entry i found: served ("" when nothing was), msg for a person. */
static void record(struct pl_drift *d, size_t i, const char *served, const char *msg)
{
	struct cs_served *s = &d->served[i];
	const char *cert = d->c->cfg->name;
	int was = s->match;
	bool same = strcmp(s->sha256, served) == 0;

	s->checked = pl_now(d->pl);
	if (served[0] == '\0') {
		if (s->error == NULL)
			cs_warn("%s: drift check of %s (name %s): no certificate: %s", cert, s->url,
				s->name[0] ? s->name : "none", msg);
		free(d->e[i].error);
		d->e[i].error = strdup(msg);
		s->error = d->e[i].error != NULL ? d->e[i].error : "out of memory";
		s->match = -1;
		s->sha256[0] = '\0';
		d->changed |= was == 0;
		return;
	}
	free(d->e[i].error);
	d->e[i].error = NULL;
	s->error = NULL;
	snprintf(s->sha256, sizeof(s->sha256), "%s", served);
	s->match = strcmp(served, d->want) == 0;
	if (s->match == 0 && (was != 0 || !same)) {
		cs_warn("%s: drift: %s (name %s) serves sha256 %s, not the deployed %s", cert,
			s->url, s->name[0] ? s->name : "none", served, d->want);
		d->changed = true;
	} else if (s->match == 1 && was == 0) {
		cs_notice("%s: drift cleared: %s (name %s) serves the deployed certificate again",
			  cert, s->url, s->name[0] ? s->name : "none");
		d->changed = true;
	}
}

/* A leaf served, as a number that is never 0 (FNV-1a of its fingerprint). */
static uint64_t leaf_key(const char *sha256)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *sha256; sha256++)
		h = (h ^ (unsigned char)*sha256) * 0x100000001b3ULL;
	return h | 1;
}

/* Forgets the drift error this module put in the cert's state, if it is still there. */
static void clear_error(struct cert *c)
{
	const char *e = c->st.last_error;

	if (e != NULL && strncmp(e, DRIFT_ERROR_PREFIX, strlen(DRIFT_ERROR_PREFIX)) == 0)
		cs_state_set_error(&c->st, NULL);
}

/* Remembers that a reload is made for what is served now (drift or operator). */
static void mark_reloaded(struct pl_drift *d)
{
	snprintf(d->reloaded_dep, sizeof(d->reloaded_dep), "%s", d->c->sha256);
	for (size_t i = 0; i < d->n; i++)
		d->e[i].reloaded_for = d->served[i].match == 0 ? leaf_key(d->served[i].sha256) : 0;
}

/* The answers about an idle cert: drift cleared, one reload for it, or a drift that persists. */
static void judge(struct pl_drift *d)
{
	struct cs_pipeline *pl = d->pl;
	struct cert *c = d->c;
	const struct cs_served *first = NULL;
	size_t drifting = 0, fresh = 0;
	char msg[1024];

	for (size_t i = 0; i < d->n; i++) {
		if (d->served[i].match != 0)
			continue;
		drifting++;
		first = first != NULL ? first : &d->served[i];
		if (strcmp(d->reloaded_dep, d->want) != 0 ||
		    d->e[i].reloaded_for != leaf_key(d->served[i].sha256))
			fresh++;
	}
	if (drifting == 0) {
		if (d->state != CS_DRIFT_NONE) {
			cs_notice("%s: drift cleared: the services serve the deployed certificate",
				  c->cfg->name);
			set_state(d, CS_DRIFT_NONE);
			clear_error(c);
			pl_save_state(c);
		}
		d->reloaded_dep[0] = '\0';
		for (size_t i = 0; i < d->n; i++)
			d->e[i].reloaded_for = 0;
	} else if (fresh > 0) {
		cs_warn("%s: drift: %zu of %zu probe(s) saw another certificate than the deployed "
			"one (sha256 %s): reloading the services once",
			c->cfg->name, drifting, d->n, d->want);
		mark_reloaded(d);
		set_state(d, CS_DRIFT_FOUND);
		d->reloading = true;
		pl_step(c, PL_EV_RELOAD);
		pl_reload_start(c);
		pl_flush_reloads(pl);
		return; /* the re-check comes when the cert is idle again (pl_drift_idle) */
	} else if (d->state != CS_DRIFT_PERSISTS) {
		snprintf(msg, sizeof(msg),
			 DRIFT_ERROR_PREFIX "%s (name %s) still serves sha256 %s, not the deployed "
					    "%s, after a reload; not reloaded again for it",
			 first->url, first->name[0] ? first->name : "none", first->sha256, d->want);
		cs_err("%s: %s%s", c->cfg->name, msg,
		       drifting > 1 ? " (and other URLs or names, see certsyncctl show)" : "");
		cs_state_set_error(&c->st, msg);
		set_state(d, CS_DRIFT_PERSISTS);
		pl_save_state(c);
	}
	arm_next(d);
}

/* Every probe of the check has answered: judge, then reload once, report, or wait. */
static void check_over(struct pl_drift *d)
{
	struct cs_pipeline *pl = d->pl;
	struct cert *c = d->c;

	assert(pl->drift_running > 0);
	pl->drift_running--;
	d->running = false;
	if (pl_stopping(pl)) {
		pl_maybe_quiesced(pl); /* may tear everything down: d is not touched after it */
		return;
	}
	if (strcmp(c->sha256, d->want) != 0) {
		/* Another certificate was deployed meanwhile: the answers are about the old one. */
		for (size_t i = 0; i < d->n; i++)
			d->served[i].match = -1;
		d->stale = false;
		arm(d, PL_DRIFT_RECHECK_MS);
		return;
	}
	if (d->changed) {
		pl_save_state(c);
		/* Subscribers hear of the new answers (the metrics file shows them). */
		pl_event_publish(c, (struct cs_event){ .type = CS_EVENT_CHANGED });
	}
	d->changed = false;
	if (d->stale) {
		/* A reload ended during the check: what it saw may predate it. */
		d->stale = false;
		arm(d, PL_DRIFT_RECHECK_MS);
		return;
	}
	if (d->reloading)
		return; /* a reload is under way: pl_drift_idle checks again after it */
	if (c->stage != PL_IDLE || c->queued.set) {
		arm_busy(d); /* work started meanwhile: judge when it is over */
		return;
	}
	judge(d);
}

static void probe_next(struct pl_drift *d);

static void on_probe(void *arg, bool ok, const char *served, const char *msg)
{
	struct pl_drift *d = arg;

	(void)ok; /* judged against want in record(), with the served leaf */
	pl_inflight_dec(d->pl);
	record(d, d->at, served, msg);
	d->at++;
	probe_next(d);
}

/* Starts the next probe of the check, or ends the check when there is none. */
static void probe_next(struct pl_drift *d)
{
	struct cs_pipeline *pl = d->pl;
	int64_t t = d->c->cfg->verify_timeout > 0 ? d->c->cfg->verify_timeout : 30;
	int bound = (int)t * 1000;

	while (d->at < d->n && !pl_stopping(pl)) {
		int rc;

		pl_inflight_inc(pl);
		/* A bound equal to the retry time: one attempt, not a wait for a change. */
		rc = cs_netproc_probe_start(pl->loop, d->e[d->at].probe, d->want, NULL, bound,
					    bound, on_probe, d);
		if (rc == 0)
			return;
		pl_inflight_dec(pl);
		record(d, d->at, "", strerror(-rc));
		d->at++;
	}
	check_over(d);
}

static void on_timer(uv_timer_t *t)
{
	struct pl_drift *d = t->data;
	struct cs_pipeline *pl = d->pl;
	struct cert *c = d->c;

	if (c == NULL || pl_stopping(pl) || d->running)
		return;
	if (!pl_verdict_ok(c) || c->sha256[0] == '\0') {
		arm_next(d); /* nothing deployed to compare with */
		return;
	}
	if (c->stage != PL_IDLE) {
		arm_busy(d);
		return;
	}
	if (pl->drift_running >= PL_DRIFT_RUNNING) {
		arm(d, PL_DRIFT_WAIT_MS +
			       (int64_t)(pl_drift_random(&pl->drift_rng) % PL_DRIFT_WAIT_MS));
		return;
	}
	pl->drift_running++;
	d->running = true;
	d->changed = false;
	d->at = 0;
	snprintf(d->want, sizeof(d->want), "%s", c->sha256);
	cs_debug("%s: drift check of %zu URL(s) and name(s)", c->cfg->name, d->n);
	probe_next(d);
}

/* ---- what the rest of the pipeline calls ---- */

void pl_drift_start_all(struct cs_pipeline *pl)
{
	if (pl->once)
		return;
	if (pl->drift_rng == 0)
		pl->drift_rng = (uint64_t)pl_now_ms(pl) ^ ((uint64_t)getpid() << 32);
	for (size_t i = 0; i < pl->n_certs; i++) {
		struct pl_drift *d = pl->certs[i]->drift;
		if (d != NULL)
			arm(d, pl_drift_first_ms(d->interval_s, pl->n_certs,
						  pl_drift_random(&pl->drift_rng)));
	}
}

void pl_drift_idle(struct cert *c)
{
	struct pl_drift *d = c->drift;

	if (d == NULL || !d->reloading || pl_stopping(c->pl))
		return;
	d->reloading = false;
	if (d->running)
		d->stale = true; /* check_over checks again */
	else
		arm(d, PL_DRIFT_RECHECK_MS);
}

void pl_drift_reload_asked(struct cert *c)
{
	struct pl_drift *d = c->drift;

	if (d == NULL || c->pl->once)
		return;
	/* The operator's reload is the one reload of the drift seen now; a re-check follows. */
	mark_reloaded(d);
	if (d->state == CS_DRIFT_PERSISTS)
		set_state(d, CS_DRIFT_FOUND);
	d->reloading = true;
}

void pl_drift_stop(struct cert *c)
{
	if (c->drift != NULL)
		uv_timer_stop(&c->drift->timer);
}

static void on_drift_closed(uv_handle_t *h)
{
	struct pl_drift *d = h->data;
	void (*cb)(void *) = d->close_cb;
	void *arg = d->close_arg;

	drift_free(d);
	cb(arg);
}

bool pl_drift_close(struct cert *c, void (*cb)(void *arg), void *arg)
{
	struct pl_drift *d = c->drift;

	if (d == NULL)
		return false;
	assert(!d->running);
	set_state(d, CS_DRIFT_NONE);
	c->drift = NULL;
	d->c = NULL;
	d->close_cb = cb;
	d->close_arg = arg;
	uv_close((uv_handle_t *)&d->timer, on_drift_closed);
	return true;
}

void pl_drift_status(const struct cert *c, struct cs_cert_status *out)
{
	const struct pl_drift *d = c->drift;

	if (d == NULL)
		return;
	out->served = d->served;
	out->n_served = d->n;
	out->drift = d->state;
}

void pl_drift_summary(const struct cs_pipeline *pl, struct cs_pipeline_summary *out)
{
	out->n_drifted = pl->n_drifted;
	out->drifted_cert =
		LIST_EMPTY(&pl->drifted) ? NULL : LIST_FIRST(&pl->drifted)->c->cfg->name;
}
