/*
 * pl_watch - what each cert must hear about through inotify (its outputs, a
 * symbolic link's target, a linked directory) and the checks a change leads to.
 */
#include "pl_int.h"
#include "cs_registry.h"
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

/* ---- watching ------------------------------------------------------------ */

/*
 * The watch set is kept incrementally: a cert's interests are recomputed
 * when that cert has been examined or deployed (pl_watch_cert), directories
 * are counted by the interests in them, and an event finds its certs through
 * the (dir, name) index. Nothing here is proportional to the number of certs
 * but pl_rewatch, which runs at the start, after a new configuration and
 * after an inotify overflow.
 */

static uint64_t interest_hash(const char *dir, const char *name)
{
	return cs_htab_hash(name, cs_htab_hash("/", cs_htab_hash(dir, CS_HTAB_SEED)));
}

static struct pl_wdir *find_wdir(const struct cs_pipeline *pl, const char *path)
{
	uint64_t h = cs_htab_hash(path, CS_HTAB_SEED);

	for (struct cs_htab_node *n = cs_htab_first(&pl->wdirs, h); n != NULL;
	     n = cs_htab_next(n, h)) {
		struct pl_wdir *d = cs_htab_entry(n, struct pl_wdir, node);
		if (strcmp(d->path, path) == 0)
			return d;
	}
	return NULL;
}

/*
 * Returns a reference on the directory path, watched (or watched again when
 * its path now leads elsewhere: a swapped link); NULL on ENOMEM.
 */
static struct pl_wdir *wdir_ref(struct cs_pipeline *pl, const char *path)
{
	struct pl_wdir *d = find_wdir(pl, path);

	if (d == NULL) {
		if ((d = calloc(1, sizeof(*d))) == NULL || (d->path = strdup(path)) == NULL ||
		    cs_htab_insert(&pl->wdirs, &d->node, cs_htab_hash(path, CS_HTAB_SEED)) < 0) {
			if (d != NULL)
				free(d->path);
			free(d);
			return NULL;
		}
		LIST_INIT(&d->interests);
	}
	d->refs++;
	cs_watch_add(pl->watch, path);
	return d;
}

static void wdir_unref(struct cs_pipeline *pl, struct pl_wdir *d)
{
	assert(d->refs > 0);
	if (--d->refs > 0)
		return;
	assert(LIST_EMPTY(&d->interests));
	if (pl->watch != NULL)
		cs_watch_remove(pl->watch, d->path);
	cs_htab_remove(&pl->wdirs, &d->node);
	free(d->path);
	free(d);
}

/* Adds (dir, name) of path to v[*n] (room for it is there). */
static void add_interest(struct cert *c, const char *path, struct interest **v, size_t *n)
{
	struct cs_pipeline *pl = c->pl;
	char a[PATH_MAX], b[PATH_MAX];
	struct interest *in = calloc(1, sizeof(*in));

	snprintf(a, sizeof(a), "%s", path);
	snprintf(b, sizeof(b), "%s", path);
	if (in == NULL || (in->name = strdup(basename(b))) == NULL)
		goto fail;
	if ((in->d = wdir_ref(pl, dirname(a))) == NULL)
		goto fail;
	if (cs_htab_insert(&pl->interests, &in->node, interest_hash(in->d->path, in->name)) < 0) {
		wdir_unref(pl, in->d);
		goto fail;
	}
	in->c = c;
	LIST_INSERT_HEAD(&in->d->interests, in, in_dir);
	v[(*n)++] = in;
	return;
fail:
	if (in != NULL)
		free(in->name);
	free(in);
}

static void free_interests(struct cs_pipeline *pl, struct interest **v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct interest *in = v[i];
		cs_htab_remove(&pl->interests, &in->node);
		LIST_REMOVE(in, in_dir);
		wdir_unref(pl, in->d);
		free(in->name);
		free(in);
	}
	free(v);
}

void pl_clear_interest(struct cert *c)
{
	free_interests(c->pl, c->interest, c->n_interest);
	c->interest = NULL;
	c->n_interest = 0;
}

/*
 * What c must hear about: each output in its directory; the file a symbolic
 * link at the output leads to; and a symbolic link standing for the
 * output's directory, in the directory above (a swap of either is a change).
 * The new interests are taken before the old ones are let go, so that a
 * directory both still need is never unwatched in between.
 */
void pl_watch_cert(struct cert *c)
{
	struct cs_deploy_outputs o;
	char real[PATH_MAX], d[PATH_MAX];
	struct stat sb;
	struct interest **v;
	size_t n = 0;

	if (c->pl->watch == NULL)
		return;
	cs_deploy_outputs_of(c->cfg, &o);
	if ((v = calloc(3 * o.n + 1, sizeof(*v))) == NULL)
		return;
	for (size_t i = 0; i < o.n; i++) {
		add_interest(c, o.path[i], v, &n);
		if (realpath(o.path[i], real) != NULL && strcmp(real, o.path[i]) != 0)
			add_interest(c, real, v, &n);
		snprintf(d, sizeof(d), "%s", o.path[i]);
		char *dir = dirname(d);
		if (lstat(dir, &sb) == 0 && S_ISLNK(sb.st_mode))
			add_interest(c, dir, v, &n);
	}
	free_interests(c->pl, c->interest, c->n_interest);
	c->interest = v;
	c->n_interest = n;
	/* The few [capath]/[clientcerts] directories: watched again once they exist. */
	for (size_t i = 0; i < c->pl->n_cap_dirs; i++)
		cs_watch_add(c->pl->watch, c->pl->cap_dirs[i]->path);
}

/* Lets go of the capsync's and the local CAs' directories (before they go away). */
void pl_unwatch_capsync(struct cs_pipeline *pl)
{
	for (size_t i = 0; i < pl->n_cap_dirs; i++)
		wdir_unref(pl, pl->cap_dirs[i]);
	free(pl->cap_dirs);
	pl->cap_dirs = NULL;
	pl->n_cap_dirs = 0;
}

/* Recomputes every cert's interests and the capsync's directories. */
void pl_rewatch(struct cs_pipeline *pl)
{
	if (pl->watch == NULL)
		return;
	for (size_t i = 0; i < pl->n_certs; i++)
		pl_watch_cert(pl->certs[i]);
	pl_rewatch_capsync(pl);
}

/* Recomputes the capsync's directories (the certs' come with their first examination). */
void pl_rewatch_capsync(struct cs_pipeline *pl)
{
	if (pl->watch == NULL)
		return;
	struct pl_wdir **old = pl->cap_dirs;
	size_t n_old = pl->n_cap_dirs;
	pl->cap_dirs = NULL;
	pl->n_cap_dirs = 0;
	if (pl->capsync != NULL) {
		size_t nc = 0;
		const char *const *cd = cs_capsync_dirs(pl->capsync, &nc);
		if ((pl->cap_dirs = calloc(nc + pl->cfg->n_issuers + 1, sizeof(*pl->cap_dirs))) !=
		    NULL)
			for (size_t k = 0; k < nc; k++)
				if ((pl->cap_dirs[pl->n_cap_dirs] = wdir_ref(pl, cd[k])) != NULL)
					pl->n_cap_dirs++;
	} else {
		pl->cap_dirs = calloc(pl->cfg->n_issuers + 1, sizeof(*pl->cap_dirs));
	}
	/* The local CAs' directories: a crl.pem written by `openssl ca -gencrl`. */
	for (size_t k = 0; pl->cap_dirs != NULL && k < pl->cfg->n_issuers; k++)
		if (cs_registry_issuer_ca_dir(&pl->cfg->issuers[k]) != NULL &&
		    (pl->cap_dirs[pl->n_cap_dirs] =
			     wdir_ref(pl, cs_registry_issuer_ca_dir(&pl->cfg->issuers[k]))) != NULL)
			pl->n_cap_dirs++;
	for (size_t i = 0; i < n_old; i++)
		wdir_unref(pl, old[i]);
	free(old);
}

void pl_schedule_check(struct cert *c)
{
	if (c->stage != PL_IDLE) {
		c->dirty = true;
		return;
	}
	/* Restarted by each event: the outputs are judged once they are quiet. */
	uv_timer_start(&c->check_timer, pl_on_check_timer,
		       c->pl->cfg->agent.settle > 0 ? (uint64_t)c->pl->cfg->agent.settle * 1000
						    : CHECK_DELAY_MS,
		       0);
}

/* Adds c to hit once per event; false on ENOMEM. */
static bool add_hit(struct cert *c, unsigned mark, struct cert ***hit, size_t *n, size_t *cap)
{
	if (c->watch_mark == mark)
		return true;
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 8;
		struct cert **v = realloc(*hit, nc * sizeof(*v));
		if (v == NULL)
			return false;
		*hit = v;
		*cap = nc;
	}
	c->watch_mark = mark;
	(*hit)[(*n)++] = c;
	return true;
}

static int by_idx(const void *a, const void *b)
{
	const struct cert *x = *(struct cert *const *)a, *y = *(struct cert *const *)b;

	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

void pl_on_watch(void *arg, const char *dir, const char *name, uint32_t mask)
{
	struct cs_pipeline *pl = arg;
	bool dir_event = name[0] == '\0';

	if (pl->closing || pl->tearing_down)
		return;
	if (pl->capsync != NULL)
		cs_capsync_changed(pl->capsync, dir, name);
	if (strcmp(name, "crl.pem") == 0)
		pl_crl_changed(pl, dir);
	if ((mask & IN_CREATE) && !dir_event) {
		/* A new regular file is judged once written (IN_CLOSE_WRITE); a new
		 * symbolic link is complete at once. */
		char p[PATH_MAX];
		struct stat sb;
		snprintf(p, sizeof(p), "%s/%s", dir, name);
		if (lstat(p, &sb) < 0 || !S_ISLNK(sb.st_mode))
			return;
	}
	/* The certs concerned, each once, in the configuration's order. */
	struct cert **hit = NULL;
	size_t n = 0, cap = 0;
	unsigned mark = ++pl->watch_seq;
	if (dir_event) {
		struct pl_wdir *d = find_wdir(pl, dir);
		struct interest *in;
		if (d != NULL)
			LIST_FOREACH(in, &d->interests, in_dir)
				if (!add_hit(in->c, mark, &hit, &n, &cap))
					break;
	} else {
		uint64_t h = interest_hash(dir, name);
		for (struct cs_htab_node *p = cs_htab_first(&pl->interests, h); p != NULL;
		     p = cs_htab_next(p, h)) {
			struct interest *in = cs_htab_entry(p, struct interest, node);
			if (strcmp(in->name, name) == 0 && strcmp(in->d->path, dir) == 0 &&
			    !add_hit(in->c, mark, &hit, &n, &cap))
				break;
		}
	}
	if (n > 1)
		qsort(hit, n, sizeof(*hit), by_idx);
	for (size_t i = 0; i < n; i++) {
		cs_debug("%s: change in %s/%s (mask %#x)", hit[i]->cfg->name, dir, name,
			 (unsigned)mask);
		pl_schedule_check(hit[i]);
	}
	free(hit);
}

void pl_on_overflow(void *arg)
{
	struct cs_pipeline *pl = arg;

	for (size_t i = 0; i < pl->n_certs; i++) {
		pl->certs[i]->full_check = true;
		pl_schedule_check(pl->certs[i]);
	}
	if (pl->capsync != NULL)
		cs_capsync_full(pl->capsync);
	pl_rewatch(pl);
}
