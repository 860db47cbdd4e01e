/*
 * pl_watch - what each cert must hear about through inotify (its outputs, a
 * symbolic link's target, a linked directory) and the checks a change leads to.
 */
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

/* ---- watching ------------------------------------------------------------ */

static void add_interest(struct cert *c, const char *path)
{
	char a[PATH_MAX], b[PATH_MAX];

	snprintf(a, sizeof(a), "%s", path);
	snprintf(b, sizeof(b), "%s", path);
	struct interest *v = realloc(c->interest, (c->n_interest + 1) * sizeof(*v));
	if (v == NULL)
		return;
	c->interest = v;
	v[c->n_interest].dir = strdup(dirname(a));
	v[c->n_interest].name = strdup(basename(b));
	if (v[c->n_interest].dir == NULL || v[c->n_interest].name == NULL) {
		free(v[c->n_interest].dir);
		free(v[c->n_interest].name);
		return;
	}
	c->n_interest++;
}

void pl_clear_interest(struct cert *c)
{
	for (size_t i = 0; i < c->n_interest; i++) {
		free(c->interest[i].dir);
		free(c->interest[i].name);
	}
	free(c->interest);
	c->interest = NULL;
	c->n_interest = 0;
}

/*
 * What c must hear about: each output in its directory; the file a symbolic
 * link at the output leads to; and a symbolic link standing for the
 * output's directory, in the directory above (a swap of either is a change).
 */
static void compute_interest(struct cert *c)
{
	struct cs_deploy_outputs o;
	char real[PATH_MAX], d[PATH_MAX];
	struct stat sb;

	pl_clear_interest(c);
	cs_deploy_outputs_of(c->cfg, &o);
	for (size_t i = 0; i < o.n; i++) {
		add_interest(c, o.path[i]);
		if (realpath(o.path[i], real) != NULL && strcmp(real, o.path[i]) != 0)
			add_interest(c, real);
		snprintf(d, sizeof(d), "%s", o.path[i]);
		char *dir = dirname(d);
		if (lstat(dir, &sb) == 0 && S_ISLNK(sb.st_mode))
			add_interest(c, dir);
	}
}

void pl_rewatch(struct cs_pipeline *pl)
{
	const char **dirs = NULL;
	size_t n = 0;

	if (pl->watch == NULL)
		return;
	for (size_t i = 0; i < pl->n_certs; i++) {
		struct cert *c = pl->certs[i];
		compute_interest(c);
		for (size_t k = 0; k < c->n_interest; k++) {
			bool seen = false;
			for (size_t m = 0; m < n && !seen; m++)
				seen = strcmp(dirs[m], c->interest[k].dir) == 0;
			if (seen)
				continue;
			const char **v = realloc(dirs, (n + 1) * sizeof(*v));
			if (v == NULL)
				break;
			dirs = v;
			dirs[n++] = c->interest[k].dir;
		}
	}
	if (pl->capsync != NULL) {
		size_t nc = 0;
		const char *const *cd = cs_capsync_dirs(pl->capsync, &nc);
		for (size_t k = 0; k < nc; k++) {
			bool seen = false;
			for (size_t m = 0; m < n && !seen; m++)
				seen = strcmp(dirs[m], cd[k]) == 0;
			if (seen)
				continue;
			const char **v = realloc(dirs, (n + 1) * sizeof(*v));
			if (v == NULL)
				break;
			dirs = v;
			dirs[n++] = cd[k];
		}
	}
	cs_watch_set(pl->watch, dirs, n);
	free(dirs);
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

void pl_on_watch(void *arg, const char *dir, const char *name, uint32_t mask)
{
	struct cs_pipeline *pl = arg;
	bool dir_event = name[0] == '\0';

	if (pl->closing || pl->tearing_down)
		return;
	if (pl->capsync != NULL)
		cs_capsync_changed(pl->capsync, dir, name);
	if ((mask & IN_CREATE) && !dir_event) {
		/* A new regular file is judged once written (IN_CLOSE_WRITE); a new
		 * symbolic link is complete at once. */
		char p[PATH_MAX];
		struct stat sb;
		snprintf(p, sizeof(p), "%s/%s", dir, name);
		if (lstat(p, &sb) < 0 || !S_ISLNK(sb.st_mode))
			return;
	}
	for (size_t i = 0; i < pl->n_certs; i++) {
		struct cert *c = pl->certs[i];
		for (size_t k = 0; k < c->n_interest; k++) {
			if (strcmp(c->interest[k].dir, dir) != 0 ||
			    (!dir_event && strcmp(c->interest[k].name, name) != 0))
				continue;
			cs_debug("%s: change in %s/%s (mask %#x)", c->cfg->name, dir, name,
				 (unsigned)mask);
			pl_schedule_check(c);
			break;
		}
	}
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
