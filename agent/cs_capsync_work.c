/*
 * cs_capsync_work - the worker side of cs_capsync (see cs_capsync.h): on a
 * thread of the libuv work queue, each section with requests does its pass:
 * a capath's full pass or updates and publications (cs_capath), a
 * clientcerts map (cs_clientmap), an [sni] table (cs_snimap). Results stay
 * in the section for the loop side's after-work callback.
 */
#include "cs_capsync_int.h"

#include "cs_atomic.h"
#include "cs_clientmap.h"
#include "cs_log.h"
#include "cs_sni.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void capath_report(void *arg, enum cs_capath_event ev, const char *name, const char *detail)
{
	const struct section *s = arg;

	switch (ev) {
	case CS_CAPATH_LINKED:
		cs_info("%s: %s/%s -> %s", s->label, s->dir, name, detail);
		break;
	case CS_CAPATH_UNLINKED:
		cs_info("%s: removed %s/%s (was -> %s)", s->label, s->dir, name, detail);
		break;
	case CS_CAPATH_SKIPPED:
		cs_notice("%s: skipped %s/%s: %s", s->label, s->dir, name, detail);
		break;
	case CS_CAPATH_ERROR:
		cs_err("%s: %s/%s: %s", s->label, s->dir, name, detail);
		break;
	case CS_CAPATH_CAFILE:
		cs_info("%s: wrote %s (%s)", s->label, name, detail);
		break;
	}
}

/* cs_capath's own callback: the handle is about to change link name. */
static void capath_own(void *arg, const char *name, const char *target)
{
	struct section *s = arg;
	struct cs_capsync *cs = s->cs;
	struct own *o;
	char *t = NULL;

	if (target != NULL && (t = strdup(target)) == NULL)
		return; /* its event then goes on as a stranger's: one update for nothing */
	uv_mutex_lock(&cs->lock);
	o = cs_capsync__own_find(s, name);
	if (o == NULL) {
		size_t len = strlen(name) + 1;

		o = calloc(1, sizeof(*o) + len);
		if (o == NULL || cs_htab_insert(&s->own, &o->node, cs_htab_hash(name, CS_HTAB_SEED)) < 0) {
			free(o);
			free(t);
			goto out;
		}
		memcpy(o->name, name, len);
	} else {
		TAILQ_REMOVE(&s->own_q, o, q);
	}
	free(o->target);
	o->target = t;
	o->count++;
	o->job = cs->seq;
	TAILQ_INSERT_TAIL(&s->own_q, o, q);
out:
	uv_mutex_unlock(&cs->lock);
}

/* cs_capath's poll callback: the next name of the inbox. */
static int capath_poll(void *arg, char *name, size_t len)
{
	struct section *s = arg;
	int got = 0;

	uv_mutex_lock(&s->cs->lock);
	if (s->in_head < s->in_n) {
		snprintf(name, len, "%s", s->inbox[s->in_head]);
		free(s->inbox[s->in_head++]);
		got = 1;
	}
	uv_mutex_unlock(&s->cs->lock);
	return got;
}

static void collect_problem(void *arg, enum cs_capath_event ev, const char *name,
			    const char *detail)
{
	(void)ev;
	cs_capsync__plist_add(arg, name, detail);
}

static bool stats_changed(const struct cs_capath_stats *st)
{
	return st->linked > 0 || st->unlinked > 0 || st->cafile_written;
}

/* Removes temp files of killed writers of the files this section writes. */
static void sweep(struct section *s)
{
	char err[512], *p;

	if (s->is_capath) {
		if (s->cafile != NULL && cs_atomic_sweep(s->cafile, err, sizeof(err)) < 0)
			cs_warn("%s: %s", s->label, err);
		if (s->cache != NULL && cs_atomic_sweep(s->cache, err, sizeof(err)) < 0)
			cs_warn("%s: %s", s->label, err);
		for (size_t i = 0; i < s->nissuers; i++)
			for (int k = 0; k < 2; k++) {
				if (asprintf(&p, "%s/%s-ca.%s", s->dir, s->issuers[i],
					     k ? "crl" : "pem") < 0)
					continue;
				if (cs_atomic_sweep(p, err, sizeof(err)) < 0)
					cs_warn("%s: %s", s->label, err);
				free(p);
			}
	} else if (cs_atomic_sweep(s->map, err, sizeof(err)) < 0) {
		cs_warn("%s: %s", s->label, err);
	}
}

static void fail(struct section *s, const char *err)
{
	cs_err("%s: %s", s->label, err);
	s->j_failed = true;
	cs_capsync__plist_add(&s->j_problems, "", err);
}

static void work_capath(struct section *s)
{
	struct cs_capath_stats st;
	char err[1024];
	int rc;

	if (s->cp == NULL) {
		struct cs_capath_opts o = { .cafile = s->cafile, .report = capath_report,
					    .report_arg = s, .cache = s->cache, .own = capath_own,
					    .poll = capath_poll };

		s->cp = cs_capath_new(s->dir, &o, err, sizeof(err));
		if (s->cp == NULL) {
			fail(s, err);
			return;
		}
	}
	if (s->j_full || !s->scanned) {
		if (!s->scanned)
			sweep(s);
		rc = cs_capath_full(s->cp, &st, err, sizeof(err));
		if (rc == 0 || rc == -EIO)
			s->scanned = true;
		if (stats_changed(&st))
			s->j_changed = true;
		if (rc < 0 && rc != -EIO) {
			fail(s, err);
			return;
		}
		if (rc == -EIO)
			s->j_failed = true;
	}
	for (size_t i = 0; i < s->j_npub; i++) {
		struct pub *p = &s->j_pubs[i];

		rc = cs_capath_publish(s->cp, p->name, p->x, p->crl, &st, err, sizeof(err));
		if (stats_changed(&st))
			s->j_changed = true;
		if (rc < 0)
			fail(s, err);
		else
			cs_info("%s: published %s/%s", s->label, s->dir, p->name);
	}
	for (size_t i = 0; !s->j_full && i < s->j_n; i++) {
		rc = cs_capath_update(s->cp, s->j_names[i], &st, err, sizeof(err));
		if (stats_changed(&st))
			s->j_changed = true;
		if (rc < 0 && rc != -EIO)
			fail(s, err);
	}
	cs_capath_problems(s->cp, collect_problem, &s->j_problems);
}

static void work_clientcerts(struct section *s)
{
	struct cs_clientmap_opts o = {
		.dir = s->dir, .map = s->map, .digest = (enum cs_digest)s->digest,
		.pubkey = s->pubkey, .map_type = s->map_type, .config_dir = s->config_dir,
	};
	struct cs_clientmap_result res;
	char err[1024];
	int rc;

	if (!s->scanned)
		sweep(s);
	s->scanned = true;
	rc = cs_clientmap_build(&o, &res, err, sizeof(err));
	if (res.map_written || res.postmap_run)
		s->j_changed = true;
	for (size_t i = 0; i < res.nproblems; i++) {
		cs_notice("%s: left %s/%s out of %s: %s", s->label, s->dir, res.problems[i].file,
			  s->map, res.problems[i].reason);
		cs_capsync__plist_add(&s->j_problems, res.problems[i].file, res.problems[i].reason);
	}
	if (rc < 0)
		fail(s, err);
	else if (res.map_written)
		cs_info("%s: wrote %s (%zu entries)%s", s->label, s->map, res.entries,
			res.postmap_run ? " and ran postmap" : "");
	cs_clientmap_result_free(&res);
}

static void work_sni(struct section *s)
{
	struct cs_snimap_result res;
	char err[2048];
	int rc;

	if (!s->scanned) {
		if (cs_snimap_sweep(s->sni.path, err, sizeof(err)) < 0)
			cs_warn("%s: %s", s->label, err);
		s->scanned = true;
	}
	rc = cs_snimap_sync(&s->sni, &res, err, sizeof(err));
	if (res.written)
		s->j_changed = true;
	for (size_t i = 0; i < res.nmissing; i++) {
		cs_notice("%s: left out of %s: %s", s->label, s->sni.path, res.missing[i]);
		cs_capsync__plist_add(&s->j_problems, s->sni.path, res.missing[i]);
	}
	if (rc < 0)
		fail(s, err);
	else if (res.written)
		cs_info("%s: wrote %s (%zu names)", s->label, s->sni.path, res.entries);
	if (res.note != NULL) {
		cs_warn("%s: %s", s->label, res.note);
		cs_capsync__plist_add(&s->j_problems, s->sni.path, res.note);
	}
	cs_snimap_result_free(&res);
}

void cs_capsync__work(uv_work_t *w)
{
	struct cs_capsync *cs = w->data;

	for (size_t i = 0; i < cs->ns; i++) {
		struct section *s = &cs->s[i];

		if (!s->j_ran)
			continue;
		if (s->is_capath)
			work_capath(s);
		else if (s->is_sni)
			work_sni(s);
		else
			work_clientcerts(s);
	}
}
