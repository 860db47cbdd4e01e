/*
 * pl_stats - what the status socket and the metrics ask about all certs at
 * once, kept up to date on every change instead of recomputed per request:
 * the number of certs in each state, the certs with a problem (failed,
 * expired, missing) and the earliest next renewal. Every write of
 * cert->state and cert->due goes through here.
 *
 * The earliest renewal comes from a min-heap of all certs by (due, index in
 * the configuration), so that a tie goes to the first cert in the
 * configuration, as a scan in that order would pick. Its array is sized for
 * every cert when the certs are built, so that keeping it never allocates.
 */
#include "pl_int.h"

#include <assert.h>
#include <stdlib.h>

static bool bad_state(enum cs_cert_state s)
{
	return s == CS_CERT_FAILED || s == CS_CERT_EXPIRED || s == CS_CERT_MISSING;
}

/* ---- the heap of due moments --------------------------------------------- */

static bool earlier(const struct cert *a, const struct cert *b)
{
	return a->due < b->due || (a->due == b->due && a->idx < b->idx);
}

static void dheap_set(struct cs_pipeline *pl, size_t i, struct cert *c)
{
	pl->dheap[i] = c;
	c->dpos = i + 1;
}

static void dsift_up(struct cs_pipeline *pl, size_t i)
{
	struct cert *c = pl->dheap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!earlier(c, pl->dheap[parent]))
			break;
		dheap_set(pl, i, pl->dheap[parent]);
		i = parent;
	}
	dheap_set(pl, i, c);
}

static void dsift_down(struct cs_pipeline *pl, size_t i)
{
	struct cert *c = pl->dheap[i];

	for (;;) {
		size_t l = 2 * i + 1;
		struct cert *m = c;
		size_t mi = i;
		if (l < pl->n_dheap && earlier(pl->dheap[l], m))
			m = pl->dheap[l], mi = l;
		if (l + 1 < pl->n_dheap && earlier(pl->dheap[l + 1], m))
			m = pl->dheap[l + 1], mi = l + 1;
		if (mi == i)
			break;
		dheap_set(pl, i, m);
		i = mi;
	}
	dheap_set(pl, i, c);
}

static void dheap_remove(struct cs_pipeline *pl, struct cert *c)
{
	size_t i = c->dpos - 1;
	struct cert *last = pl->dheap[--pl->n_dheap];

	c->dpos = 0;
	if (last == c)
		return;
	dheap_set(pl, i, last);
	dsift_up(pl, i);
	dsift_down(pl, last->dpos - 1);
}

/* ---- what the stages call ---------------------------------------------------- */

void pl_stats_add(struct cert *c)
{
	struct cs_pipeline *pl = c->pl;

	assert(c->state == CS_CERT_UNKNOWN && c->dpos == 0);
	pl->per_state[c->state]++;
	pl_set_due(c, c->due);
}

void pl_set_state(struct cert *c, enum cs_cert_state s)
{
	struct cs_pipeline *pl = c->pl;

	assert((unsigned)s < CS_CERT_N_STATES);
	if (s == c->state)
		return;
	assert(pl->per_state[c->state] > 0);
	pl->per_state[c->state]--;
	pl->per_state[s]++;
	if (bad_state(c->state) && !bad_state(s)) {
		LIST_REMOVE(c, in_bad);
		pl->n_bad--;
	} else if (!bad_state(c->state) && bad_state(s)) {
		LIST_INSERT_HEAD(&pl->bad, c, in_bad);
		pl->n_bad++;
	}
	c->state = s;
}

void pl_set_due(struct cert *c, time_t due)
{
	struct cs_pipeline *pl = c->pl;

	c->due = due;
	/* Status shows no next renewal for a cert without a moment. */
	if (due == 0) {
		if (c->dpos != 0)
			dheap_remove(pl, c);
		return;
	}
	if (c->dpos == 0) {
		/* pl_build sized the array for every cert. */
		assert(pl->n_dheap < pl->cap_dheap);
		if (pl->n_dheap >= pl->cap_dheap)
			return;
		dheap_set(pl, pl->n_dheap++, c);
	}
	dsift_up(pl, c->dpos - 1);
	dsift_down(pl, c->dpos - 1);
}

void pl_stats_forget_all(struct cs_pipeline *pl)
{
	for (size_t i = 0; i < pl->n_dheap; i++)
		pl->dheap[i]->dpos = 0;
	free(pl->dheap);
	pl->dheap = NULL;
	pl->n_dheap = pl->cap_dheap = 0;
	for (size_t k = 0; k < CS_CERT_N_STATES; k++)
		pl->per_state[k] = 0;
	LIST_INIT(&pl->bad);
	pl->n_bad = 0;
}

/* ---- the interface ---------------------------------------------------------------- */

void cs_pipeline_summary(const struct cs_pipeline *pl, struct cs_pipeline_summary *out)
{
	out->n_certs = pl->n_certs;
	for (size_t k = 0; k < CS_CERT_N_STATES; k++)
		out->per_state[k] = pl->per_state[k];
	out->next_renewal = pl->n_dheap > 0 ? pl->dheap[0]->due : 0;
	out->next_renewal_cert = pl->n_dheap > 0 ? pl->dheap[0]->cfg->name : NULL;
	pl_drift_summary(pl, out);
}

static int by_idx(const void *a, const void *b)
{
	const struct cert *x = *(struct cert *const *)a, *y = *(struct cert *const *)b;

	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

size_t cs_pipeline_problems(const struct cs_pipeline *pl,
			    void (*cb)(void *arg, const struct cs_cert_status *st), void *arg)
{
	struct cert **v;
	struct cert *c;
	size_t n = 0;

	if (pl->n_bad == 0 || cb == NULL)
		return pl->n_bad;
	/* In the configuration's order, as people read a list of names. */
	if ((v = malloc(pl->n_bad * sizeof(*v))) == NULL) {
		LIST_FOREACH(c, &pl->bad, in_bad) {
			struct cs_cert_status st;
			pl_status_of(c, &st);
			cb(arg, &st);
		}
		return pl->n_bad;
	}
	LIST_FOREACH(c, &pl->bad, in_bad)
		v[n++] = c;
	assert(n == pl->n_bad);
	qsort(v, n, sizeof(*v), by_idx);
	for (size_t i = 0; i < n; i++) {
		struct cs_cert_status st;
		pl_status_of(v[i], &st);
		cb(arg, &st);
	}
	free(v);
	return n;
}
