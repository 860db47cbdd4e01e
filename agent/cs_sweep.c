/*
 * cs_sweep - temp files of killed writers, removed at start. See cs_sweep.h.
 *
 * Only names of the atomic writer's own pattern (".NAME.<12 hex digits>",
 * see cs_atomic.c) are touched, only regular files, and only those owned by
 * the agent's uid (or, for an output, the owner the configuration gives it,
 * which the writer sets with fchown before the first byte).
 */
#include "cs_sweep.h"
#include "cs_registry.h"
#include "cs_atomic.h"
#include "cs_htab.h"
#include "cs_livedir.h"
#include "cs_log.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int report(int n, const char *where, const char *err)
{
	if (n > 0)
		cs_notice("removed %d temporary file(s) left by an interrupted write in %s", n,
			  where);
	else if (n < 0 && n != -ENOENT)
		cs_warn("cannot sweep temporary files: %s", err);
	return n > 0 ? n : 0;
}

/*
 * The outputs are swept one directory at a time: with thousands of certs in
 * one directory, sweeping each output on its own would read that directory
 * once per output. Each directory is read once for names that look like the
 * writer's temp files (".BASE.<12 hex digits>"); only the outputs such a
 * name belongs to are then swept (cs_atomic_sweep_owned: its own match and
 * owner check), in the configuration's order. A directory that cannot be
 * read has each of its outputs swept on its own, which reports the error.
 */
struct out {
	struct cs_htab_node node; /* in outs, by (dir, base) */
	char path[PATH_MAX];      /* what is swept: the output, or a symbolic link's target */
	size_t dirlen;            /* the file name starts at path + dirlen + 1 */
	bool named;               /* path is DIR/NAME */
	uid_t owner;
	bool sweep;
};

struct outs {
	struct out *v;
	size_t n, cap;
	struct cs_htab by_name;
};

static uint64_t out_hash(const char *dir, size_t dirlen, const char *base)
{
	char d[PATH_MAX];

	snprintf(d, sizeof(d), "%.*s", (int)dirlen, dir);
	return cs_htab_hash(base, cs_htab_hash("/", cs_htab_hash(d, CS_HTAB_SEED)));
}

static void add_output(struct outs *o, const char *path, uid_t owner)
{
	char real[PATH_MAX];
	struct stat sb;
	struct out *t;

	if (path == NULL)
		return;
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 64;
		struct out *v = realloc(o->v, cap * sizeof(*v));
		if (v == NULL)
			return;
		o->v = v;
		o->cap = cap;
	}
	t = &o->v[o->n++];
	memset(t, 0, sizeof(*t));
	if (lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode) && realpath(path, real) != NULL)
		path = real;
	snprintf(t->path, sizeof(t->path), "%s", path);
	t->owner = owner;
	const char *slash = strrchr(t->path, '/');
	if (slash == NULL || slash[1] == '\0') {
		t->sweep = true; /* the writer's own check reports it */
		return;
	}
	t->named = true;
	t->dirlen = (size_t)(slash - t->path);
}

static struct out *find_output(struct outs *o, const char *dir, size_t dirlen, const char *base,
			       size_t baselen)
{
	char b[NAME_MAX + 1];
	uint64_t h;

	snprintf(b, sizeof(b), "%.*s", (int)baselen, base);
	h = out_hash(dir, dirlen, b);
	for (struct cs_htab_node *n = cs_htab_first(&o->by_name, h); n != NULL;
	     n = cs_htab_next(n, h)) {
		struct out *t = cs_htab_entry(n, struct out, node);
		if (t->dirlen == dirlen && strncmp(t->path, dir, dirlen) == 0 &&
		    strcmp(t->path + t->dirlen + 1, b) == 0)
			return t;
	}
	return NULL;
}

/* Marks the outputs of the directory of t (not read yet) that have temp-looking files. */
static void scan_dir(struct outs *o, const struct out *t)
{
	char dir[PATH_MAX];
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "%.*s", (int)t->dirlen, t->path);
	if ((d = opendir(dir[0] ? dir : "/")) == NULL) {
		for (size_t i = 0; i < o->n; i++)
			if (o->v[i].named && o->v[i].dirlen == t->dirlen &&
			    strncmp(o->v[i].path, t->path, t->dirlen) == 0)
				o->v[i].sweep = true;
		return;
	}
	while ((de = readdir(d)) != NULL) {
		size_t nl = strlen(de->d_name);
		struct out *x;
		if (de->d_name[0] != '.' || nl < 1 + 1 + 1 + 12 || de->d_name[nl - 13] != '.')
			continue;
		x = find_output(o, t->path, t->dirlen, de->d_name + 1, nl - 14);
		if (x != NULL)
			x->sweep = true;
	}
	closedir(d);
}

static int sweep_outputs(struct outs *o)
{
	char err[PATH_MAX + 128];
	struct cs_htab dirs = { 0 };
	struct cs_htab_node *dn = NULL;
	int n = 0;

	/* Index the outputs first. */
	if (o->n > 0 && (dn = calloc(o->n, sizeof(*dn))) == NULL) {
		for (size_t i = 0; i < o->n; i++)
			o->v[i].sweep = true;
	}
	for (size_t i = 0; i < o->n && dn != NULL; i++) {
		struct out *t = &o->v[i];
		if (!t->named)
			continue;
		if (cs_htab_insert(&o->by_name, &t->node,
				   out_hash(t->path, t->dirlen, t->path + t->dirlen + 1)) < 0)
			t->sweep = true;
	}
	/* Then read each directory once (noted by its first output). */
	for (size_t i = 0; i < o->n && dn != NULL; i++) {
		struct out *t = &o->v[i];
		if (!t->named)
			continue;
		uint64_t h = out_hash(t->path, t->dirlen, "");
		bool seen = false;
		for (struct cs_htab_node *x = cs_htab_first(&dirs, h); x != NULL && !seen;
		     x = cs_htab_next(x, h)) {
			const struct out *f = &o->v[x - dn];
			seen = f->dirlen == t->dirlen && strncmp(f->path, t->path, t->dirlen) == 0;
		}
		if (!seen && cs_htab_insert(&dirs, &dn[i], h) == 0)
			scan_dir(o, t);
		else if (!seen)
			t->sweep = true;
	}
	for (size_t i = 0; i < o->n; i++)
		if (o->v[i].sweep)
			n += report(cs_atomic_sweep_owned(o->v[i].path, o->v[i].owner, err, sizeof(err)),
				    o->v[i].path, err);
	cs_htab_clear(&dirs);
	cs_htab_clear(&o->by_name);
	free(dn);
	free(o->v);
	return n;
}

static int sweep_dir(const char *dir, const char *suffix)
{
	char err[PATH_MAX + 128];

	return report(cs_atomic_sweep_dir(dir, suffix, err, sizeof(err)), dir, err);
}

/* Sweeps every subdirectory of parent (state_dir/generations/NAME, state_dir/acme/NAME). */
static int sweep_subdirs(const char *parent, const char *suffix)
{
	struct dirent *de;
	int n = 0;
	DIR *d = opendir(parent);

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		char sub[PATH_MAX];
		struct stat sb;

		if (de->d_name[0] == '.' ||
		    snprintf(sub, sizeof(sub), "%s/%s", parent, de->d_name) >= (int)sizeof(sub) ||
		    lstat(sub, &sb) != 0 || !S_ISDIR(sb.st_mode))
			continue;
		n += sweep_dir(sub, suffix);
	}
	closedir(d);
	return n;
}

int cs_sweep_all(const struct cs_config *cfg)
{
	char p[PATH_MAX];
	int n = 0;

	struct outs o = { 0 };

	for (size_t i = 0; i < cfg->n_certs; i++) {
		const struct cs_cfg_cert *c = &cfg->certs[i];
		add_output(&o, c->bundle, c->owner);
		add_output(&o, c->fullchain, c->owner);
		add_output(&o, c->cert, c->owner);
		add_output(&o, c->chain, c->owner);
		add_output(&o, c->keyfile, c->owner);
	}
	add_output(&o, cfg->agent.metrics_file, (uid_t)-1);
	n += sweep_outputs(&o);
	/* Live directories: temporary links in LIVE, unfinished generations in LIVE/.gen/NAME. */
	for (size_t i = 0; i < cfg->n_certs; i++) {
		const struct cs_cfg_cert *c = &cfg->certs[i];
		char err[PATH_MAX + 128];
		if (c->live_dir != NULL)
			n += report(cs_livedir_sweep(c->live_dir, c->name, err, sizeof(err)),
				    c->live_dir, err);
	}
	if (snprintf(p, sizeof(p), "%s/certs", cfg->agent.state_dir) < (int)sizeof(p))
		n += sweep_dir(p, ".json");
	if (snprintf(p, sizeof(p), "%s/generations", cfg->agent.state_dir) < (int)sizeof(p))
		n += sweep_subdirs(p, ".pem");
	if (snprintf(p, sizeof(p), "%s/acme", cfg->agent.state_dir) < (int)sizeof(p))
		n += sweep_subdirs(p, NULL);
	for (size_t i = 0; i < cfg->n_issuers; i++) {
		/* Where each issuer writes through temporary names (its CA, a webroot). */
		char dirs[4][4096];
		size_t nd = cs_registry_issuer_work_dirs(&cfg->issuers[i], dirs, 4);
		for (size_t k = 0; k < nd; k++)
			n += sweep_dir(dirs[k], NULL);
	}
	return n;
}
