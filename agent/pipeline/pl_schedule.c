/*
 * pl_schedule - when each cert is due: from the deployed leaf (renew_before,
 * jitter, the issuer's ARI window) or, after a failure, the next attempt the
 * backoff chose; and one libuv timer for the earliest due moment of all idle
 * certs, whose expiry starts their renewals.
 */
#include "pl_int.h"
#include "cs_csr.h"
#include "cs_key.h"
#include "cs_localca.h"
#include "cs_registry.h"
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

/* Whether the deployed certificate's issuer is one of the cert's list. */
static bool issuer_listed(const struct cert *c)
{
	for (size_t k = 0; k < c->n_issuers; k++)
		if (strcmp(c->st.issuer, c->issuers[k]->name) == 0)
			return true;
	return false;
}

char *pl_fmt_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (t == 0) {
		snprintf(buf, len, "never");
		return buf;
	}
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
	return buf;
}

char *pl_fmt_delay(int64_t s, char *buf, size_t len)
{
	if (s <= 0)
		snprintf(buf, len, "now");
	else
		cs_config_format_duration(s, buf, len);
	return buf;
}

/* ---- schedule ----------------------------------------------------------- */

bool pl_verdict_ok(const struct cert *c)
{
	/* Someone else's certificate is usable too: it is renewed on schedule. */
	return (c->verdict == CS_EX_OK || c->verdict == CS_EX_FOREIGN) && pl_material_has(c);
}

time_t pl_due_by_rule(const struct cert *c, time_t now, const char **reason)
{
	const struct cs_config *cfg = c->pl->cfg;
	struct cs_sched_in in = {
		.now = now,
		.not_before = c->not_before,
		.not_after = c->not_after,
		.renew_before = c->cfg->renew_before.set ? c->cfg->renew_before
							 : cfg->agent.renew_before,
		.renew_before_own = c->cfg->renew_before.set,
		.jitter = c->cfg->jitter.set ? c->cfg->jitter : cfg->agent.jitter,
		.seed = c->seed,
		.has_window = c->has_window && strcmp(c->win_sha, c->sha256) == 0,
		.window_start = c->win_start,
		.window_end = c->win_end,
		.window_asked = c->win_asked,
	};

	return cs_sched_due(&in, reason);
}

const char *pl_profile_of(const struct cert *c)
{
	const char *name = pl_deployed_issuer(c)->name, *p = NULL;

	/* The profile of the issuer that issued the deployed certificate (of the cert's list). */
	if (c->cfg->n_iss == 0) /* a configuration made by hand (the test suites) */
		p = cs_registry_issuer_profile(c->cfg->iss);
	for (size_t k = 0; k < c->cfg->n_iss; k++)
		if (c->cfg->iss_all[k] != NULL && strcmp(c->cfg->iss_all[k]->name, name) == 0)
			p = cs_registry_issuer_profile(c->cfg->iss_all[k]);
	return p != NULL ? p : "";
}

/*
 * Whether the issuer's profile differs from the one the deployed certificate
 * was ordered with (a state from before profiles were kept says nothing),
 * with the reason in c->due_why.
 */
static bool profile_changed(struct cert *c)
{
	const char *want = pl_profile_of(c);

	if (!c->st.profile_known || strcmp(c->st.issuer, c->cfg->issuer) != 0 ||
	    strcmp(c->st.profile, want) == 0)
		return false;
	snprintf(c->due_why, sizeof(c->due_why),
		 "the issuer's profile changed: the certificate was ordered with %s%s, "
		 "the configuration asks for %s%s",
		 c->st.profile[0] ? "profile " : "no profile", c->st.profile,
		 want[0] ? "profile " : "no profile", want);
	return true;
}

/* Sets c->due and c->state from what is deployed and the failure history. */
void pl_schedule(struct cert *c, time_t now)
{
	enum cs_cert_state state;
	time_t due;

	if (pl_verdict_ok(c)) {
		due = pl_due_by_rule(c, now, &c->due_reason);
		state = due <= now ? CS_CERT_DUE : CS_CERT_VALID;
	} else {
		due = now;
		c->due_reason = "nothing usable is deployed";
		state = c->verdict == CS_EX_MISSING   ? CS_CERT_MISSING
			: c->verdict == CS_EX_EXPIRED ? CS_CERT_EXPIRED
						      : CS_CERT_DUE;
	}
	/* The [cert]'s list no longer names the deployed certificate's issuer: renew now. */
	if (pl_verdict_ok(c) && c->st.issuer[0] != '\0' && !issuer_listed(c) && due > now) {
		due = now;
		c->due_reason = "the [cert]'s issuer changed";
		state = CS_CERT_DUE;
	}
	/* Ordered with another profile than the issuer's now (lego #3205): renew now. */
	if (pl_verdict_ok(c) && due > now && profile_changed(c)) {
		due = now;
		c->due_reason = c->due_why;
		state = CS_CERT_DUE;
	}
	/*
	 * A failed renewal is tried again when its backoff ends, even when the
	 * certificate itself is not due (a forced renewal that was rolled back).
	 */
	if (c->st.failures > 0) {
		due = c->st.next_attempt;
		c->due_reason = "retry after a failure";
	}
	/* Failing renewals show, unless what is deployed is already gone or expired. */
	if (c->st.failures > 0 && state != CS_CERT_MISSING && state != CS_CERT_EXPIRED)
		state = CS_CERT_FAILED;
	/* Until a renewal has ended (verified or not), it is not "valid" yet. */
	if (c->renewal != NULL)
		state = CS_CERT_RENEWING;
	pl_set_state(c, state);
	pl_set_due(c, due);
	c->st.next_due = c->due;
	pl_timer_touch(c);
}

/* ---- the timer: one for the earliest moment of all idle certs ------------ */

/* When c needs the timer: its due moment, or its next ARI question if earlier. */
static time_t wake_of(const struct cert *c)
{
	time_t k = c->due;

	if (c->ari_next != 0 && !c->ari_busy && c->ari_next < k)
		k = c->ari_next;
	if (c->dane_next != 0 && !c->dane_busy && c->dane_next < k)
		k = c->dane_next;
	return k;
}

static void heap_set(struct cs_pipeline *pl, size_t i, struct cert *c)
{
	pl->heap[i] = c;
	c->hpos = i + 1;
}

static void sift_up(struct cs_pipeline *pl, size_t i)
{
	struct cert *c = pl->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (pl->heap[parent]->hkey <= c->hkey)
			break;
		heap_set(pl, i, pl->heap[parent]);
		i = parent;
	}
	heap_set(pl, i, c);
}

static void sift_down(struct cs_pipeline *pl, size_t i)
{
	struct cert *c = pl->heap[i];

	for (;;) {
		size_t l = 2 * i + 1, m = i;
		time_t k = c->hkey;
		if (l < pl->n_heap && pl->heap[l]->hkey < k)
			m = l, k = pl->heap[l]->hkey;
		if (l + 1 < pl->n_heap && pl->heap[l + 1]->hkey < k)
			m = l + 1;
		if (m == i)
			break;
		heap_set(pl, i, pl->heap[m]);
		i = m;
	}
	heap_set(pl, i, c);
}

static void heap_remove(struct cs_pipeline *pl, struct cert *c)
{
	size_t i = c->hpos - 1;
	struct cert *last = pl->heap[--pl->n_heap];

	c->hpos = 0;
	if (last == c)
		return;
	heap_set(pl, i, last);
	sift_up(pl, i);
	sift_down(pl, last->hpos - 1);
}

/*
 * Files c under its current moment: called whenever that moment may have
 * become earlier (a new due moment, an ARI answer) and when c becomes idle.
 */
void pl_timer_touch(struct cert *c)
{
	struct cs_pipeline *pl = c->pl;

	c->hkey = wake_of(c);
	if (c->hpos != 0) {
		sift_up(pl, c->hpos - 1);
		sift_down(pl, c->hpos - 1);
		return;
	}
	if (c->stage != PL_IDLE)
		return;
	if (pl->n_heap == pl->cap_heap) {
		size_t cap = pl->cap_heap ? pl->cap_heap * 2 : 64;
		struct cert **v = realloc(pl->heap, cap * sizeof(*v));
		if (v == NULL) {
			cs_err("%s: cannot schedule: out of memory", c->cfg->name);
			return;
		}
		pl->heap = v;
		pl->cap_heap = cap;
	}
	pl->n_heap++;
	heap_set(pl, pl->n_heap - 1, c);
	sift_up(pl, pl->n_heap - 1);
}

/* Empties the heap (the certs are going away). */
void pl_timer_forget_all(struct cs_pipeline *pl)
{
	for (size_t i = 0; i < pl->n_heap; i++)
		pl->heap[i]->hpos = 0;
	free(pl->heap);
	pl->heap = NULL;
	pl->n_heap = pl->cap_heap = 0;
}

/* Corrects the top of the heap until it holds an idle cert under its true moment. */
static struct cert *heap_top(struct cs_pipeline *pl)
{
	while (pl->n_heap > 0) {
		struct cert *c = pl->heap[0];
		time_t k = wake_of(c);
		if (c->stage != PL_IDLE) {
			heap_remove(pl, c); /* filed again when it is idle */
		} else if (k != c->hkey) {
			c->hkey = k;
			sift_down(pl, 0);
		} else {
			return c;
		}
	}
	return NULL;
}

/* Adds to *v the certs filed at or before now under heap index i (keys are never late). */
static void collect_due(struct cs_pipeline *pl, size_t i, time_t now, struct cert ***v,
			size_t *n, size_t *cap)
{
	while (i < pl->n_heap && pl->heap[i]->hkey <= now) {
		if (*n == *cap) {
			size_t nc = *cap ? *cap * 2 : 16;
			struct cert **p = realloc(*v, nc * sizeof(*p));
			if (p == NULL)
				return;
			*v = p;
			*cap = nc;
		}
		(*v)[(*n)++] = pl->heap[i];
		collect_due(pl, 2 * i + 1, now, v, n, cap);
		i = 2 * i + 2;
	}
}

static int by_idx(const void *a, const void *b)
{
	const struct cert *x = *(struct cert *const *)a, *y = *(struct cert *const *)b;

	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static void on_timer(uv_timer_t *t)
{
	struct cs_pipeline *pl = t->data;
	time_t now = pl_now(pl);
	struct cert **due = NULL;
	size_t n = 0, cap = 0;

	/* The certs whose moment has come, in the configuration's order. */
	collect_due(pl, 0, now, &due, &n, &cap);
	if (n > 1)
		qsort(due, n, sizeof(*due), by_idx);
	for (size_t i = 0; i < n; i++) {
		struct cert *c = due[i];
		if (c->stage != PL_IDLE)
			continue;
		/* The DANE look first: a renewal due now takes the key it says. */
		if (c->dane_next != 0 && c->dane_next <= now && !c->dane_busy)
			pl_dane_look(c);
		if (c->due <= now &&
		    !pl_renewal_start(c, false, pl_verdict_ok(c) ? c->due_reason : c->reason)) {
			pl_set_due(c, now + (time_t)pl->cfg->agent.retry_min); /* no busy loop */
			pl_timer_touch(c);
		}
		if (c->stage == PL_IDLE && c->ari_next != 0 && c->ari_next <= now)
			pl_ari_fetch(c);
	}
	free(due);
	pl_arm_timer(pl);
}

/* One timer for the earliest due moment of all idle certs. */
void pl_arm_timer(struct cs_pipeline *pl)
{
	struct cert *c;

	if (pl->once || pl->closing || pl->draining || pl->tearing_down)
		return;
	if ((c = heap_top(pl)) == NULL) {
		uv_timer_stop(&pl->timer);
		return;
	}
	int64_t delay = (int64_t)c->hkey * 1000 - pl_now_ms(pl);
	if (delay < 0)
		delay = 0;
	if (delay > TIMER_MAX_MS)
		delay = TIMER_MAX_MS;
	uv_timer_start(&pl->timer, on_timer, (uint64_t)delay, 0);
}

void pl_log_schedule(const struct cert *c, time_t now)
{
	char t1[40], t2[40], d[48];

	if (c->due <= now)
		snprintf(d, sizeof(d), "now");
	else
		snprintf(d, sizeof(d), "in %s", pl_fmt_delay(c->due - now, t2, sizeof(t2)));
	if (pl_verdict_ok(c))
		cs_info("%s: valid until %s; next renewal %s (%s: %s)", c->cfg->name,
			pl_fmt_time(c->not_after, t1, sizeof(t1)), pl_fmt_time(c->due, t2, sizeof(t2)), d,
			c->due_reason);
	else
		cs_info("%s: next attempt %s (%s: %s)", c->cfg->name,
			pl_fmt_time(c->due, t2, sizeof(t2)), d, c->due_reason);
}
