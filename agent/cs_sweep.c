/*
 * cs_sweep - temp files of killed writers, removed at start. See cs_sweep.h.
 *
 * Only names of the atomic writer's own pattern (".NAME.<12 hex digits>",
 * see cs_atomic.c) are touched, only regular files, and only those owned by
 * the agent's uid (or, for an output, the owner the configuration gives it,
 * which the writer sets with fchown before the first byte).
 */
#include "cs_sweep.h"
#include "cs_atomic.h"
#include "cs_log.h"

#include <dirent.h>
#include <errno.h>
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

/* Temp files of one output file; a symlinked output is written in its target's directory. */
static int sweep_output(const char *path, uid_t owner)
{
	char real[PATH_MAX], err[PATH_MAX + 128];
	struct stat sb;
	const char *p = path;

	if (path == NULL)
		return 0;
	if (lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode) && realpath(path, real) != NULL)
		p = real;
	return report(cs_atomic_sweep_owned(p, owner, err, sizeof(err)), p, err);
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

	for (size_t i = 0; i < cfg->n_certs; i++) {
		const struct cs_cfg_cert *c = &cfg->certs[i];
		n += sweep_output(c->bundle, c->owner);
		n += sweep_output(c->fullchain, c->owner);
		n += sweep_output(c->cert, c->owner);
		n += sweep_output(c->chain, c->owner);
		n += sweep_output(c->keyfile, c->owner);
	}
	n += sweep_output(cfg->agent.metrics_file, (uid_t)-1);
	if (snprintf(p, sizeof(p), "%s/certs", cfg->agent.state_dir) < (int)sizeof(p))
		n += sweep_dir(p, ".json");
	if (snprintf(p, sizeof(p), "%s/generations", cfg->agent.state_dir) < (int)sizeof(p))
		n += sweep_subdirs(p, ".pem");
	if (snprintf(p, sizeof(p), "%s/acme", cfg->agent.state_dir) < (int)sizeof(p))
		n += sweep_subdirs(p, NULL);
	for (size_t i = 0; i < cfg->n_issuers; i++) {
		const struct cs_cfg_issuer *is = &cfg->issuers[i];
		if (is->type == CS_ISSUER_LOCAL_CA && is->dir != NULL) {
			static const char *const subs[] = { "", "/private", "/newcerts" };
			for (size_t k = 0; k < 3; k++)
				if (snprintf(p, sizeof(p), "%s%s", is->dir, subs[k]) < (int)sizeof(p))
					n += sweep_dir(p, NULL);
		} else if (is->type == CS_ISSUER_ACME && is->webroot != NULL &&
			   snprintf(p, sizeof(p), "%s/.well-known/acme-challenge", is->webroot) <
				   (int)sizeof(p)) {
			n += sweep_dir(p, NULL);
		}
	}
	return n;
}
