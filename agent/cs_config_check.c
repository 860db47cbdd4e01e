/*
 * cs_config_check - checks across sections: references to sections that do
 * not exist, two certs writing the same file (by the identity of its
 * directory, so that "//", "/./" and links to a directory are seen through),
 * and outputs under /proc, /sys or /dev.
 */
#include "cs_config_int.h"
#include "cs_registry.h"

/* Reports each name in list that has no section of the wanted kind. */
void cs_config__check_refs(struct parser *p, struct raw_section *s, const char *key,
			   const struct cs_cfg_list *list, const char *kind,
			   bool (*exists)(const struct cs_config *, const char *))
{
	const struct raw_pair *kv = cs_config__find_pair(s, key);

	for (size_t i = 0; i < list->n; i++) {
		if (exists(p->cfg, list->v[i]))
			continue;
		char err[400];
		snprintf(err, sizeof(err), "no [%s \"%s\"] section is defined", kind, list->v[i]);
		if (kv != NULL)
			cs_config__pair_error(p, s, kv, err);
		else
			cs_config__section_error(p, s, "%s", err);
	}
}

static bool has_issuer(const struct cs_config *c, const char *n)
{
	return cs_config_issuer(c, n) != NULL;
}

static bool has_local_issuer(const struct cs_config *c, const char *n)
{
	const struct cs_cfg_issuer *is = cs_config_issuer(c, n);
	/* A CA kept on this host: the driver has a CA directory. */
	return is != NULL && is->driver != NULL && is->driver->ca_dir != NULL;
}

bool cs_config__has_reload(const struct cs_config *c, const char *n)
{
	return cs_config_reload(c, n) != NULL;
}

/*
 * The names a [cert], [capath] or [clientcerts] section gives of other
 * sections (issuer, reload, a capath's local-ca issuers) are those of
 * sections that exist. The arrays are the raw sections of cfg's certs,
 * capaths and clientcerts, in their order.
 */
void cs_config__check_references(struct parser *p, struct raw_section **cert_secs,
				 struct raw_section **capath_secs, struct raw_section **cc_secs)
{
	struct cs_config *cfg = p->cfg;

	for (size_t i = 0; i < cfg->n_certs; i++) {
		struct cs_cfg_cert *c = &cfg->certs[i];
		cs_config__check_refs(p, cert_secs[i], "issuer", &c->issuers, "issuer",
				      has_issuer);
		cs_config__check_refs(p, cert_secs[i], "reload", &c->reload, "reload",
				      cs_config__has_reload);
	}
	for (size_t i = 0; i < cfg->n_capaths; i++) {
		cs_config__check_refs(p, capath_secs[i], "reload", &cfg->capaths[i].reload,
				      "reload", cs_config__has_reload);
		const struct raw_pair *kv = cs_config__find_pair(capath_secs[i], "issuers");
		for (size_t k = 0; k < cfg->capaths[i].issuers.n; k++) {
			const char *n = cfg->capaths[i].issuers.v[k];
			if (has_local_issuer(cfg, n))
				continue;
			char err[400];
			snprintf(err, sizeof(err), "no [issuer \"%s\"] of type local-ca is defined",
				 n);
			cs_config__pair_error(p, capath_secs[i], kv, err);
		}
	}
	for (size_t i = 0; i < cfg->n_clientcerts; i++)
		cs_config__check_refs(p, cc_secs[i], "reload", &cfg->clientcerts[i].reload,
				      "reload", cs_config__has_reload);
}

/* Copies path to buf with "//" and "/./" collapsed (what the kernel ignores). */
static void lexical_path(const char *path, char *buf, size_t len)
{
	size_t o = 0;

	for (const char *q = path; *q != '\0' && o + 1 < len; q++) {
		if (*q == '/' && o > 0 && buf[o - 1] == '/')
			continue;
		if (*q == '.' && o > 0 && buf[o - 1] == '/' && (q[1] == '/' || q[1] == '\0')) {
			if (q[1] == '/')
				q++;
			continue;
		}
		buf[o++] = *q;
	}
	buf[o] = '\0';
}

/*
 * The identity of an output file: its directory's device and inode and its
 * name, so that "out//x.pem", "out/./x.pem" and a symbolic link to the
 * directory are one file; the lexical path ("//" and "/./" collapsed) while
 * the directory does not exist. dirkey caches the last directory looked up.
 */
static char *output_identity(const char *path, char *lastdir, size_t lastlen, char *dirkey,
			     size_t dirkeylen)
{
	char lex[PATH_MAX], *out = NULL;
	const char *slash;
	struct stat st;

	lexical_path(path, lex, sizeof(lex));
	slash = strrchr(lex, '/');
	if (slash == NULL)
		return asprintf(&out, "L:%s", lex) < 0 ? NULL : out;
	char dir[PATH_MAX];
	size_t dl = slash - lex > 0 ? (size_t)(slash - lex) : 1;
	memcpy(dir, lex, dl);
	dir[dl] = '\0';
	if (strcmp(dir, lastdir) != 0) {
		snprintf(lastdir, lastlen, "%s", dir);
		if (stat(dir, &st) == 0)
			snprintf(dirkey, dirkeylen, "D:%llx:%llx", (unsigned long long)st.st_dev,
				 (unsigned long long)st.st_ino);
		else
			snprintf(dirkey, dirkeylen, "L:%s", dir);
	}
	return asprintf(&out, "%s/%s", dirkey, slash + 1) < 0 ? NULL : out;
}

struct out_id {
	char *id;
	const char *path;
	size_t cert, order;
	const char *key;
};

static int out_id_cmp(const void *a, const void *b)
{
	const struct out_id *x = a, *y = b;
	int c = strcmp(x->id, y->id);

	return c != 0 ? c : (x->order > y->order) - (x->order < y->order);
}

/*
 * Two certs must never write the same file: they would overwrite each other
 * (and repair over each other forever). Sorted by identity: O(N log N) for
 * thousands of certs.
 */
void cs_config__check_output_paths(struct parser *p, struct raw_section **cert_secs)
{
	struct out_id *v = calloc(p->cfg->n_certs * 5 + 1, sizeof(*v));
	char lastdir[PATH_MAX] = "", dirkey[PATH_MAX + 8] = "";
	size_t n = 0;

	if (v == NULL)
		return;
	for (size_t i = 0; i < p->cfg->n_certs; i++) {
		struct cs_cfg_cert *c = &p->cfg->certs[i];
		const char *paths[5] = { c->bundle, c->fullchain, c->cert, c->chain, c->keyfile };
		static const char *const keys[5] = { "bundle", "fullchain", "cert", "chain",
						     "keyfile" };
		for (size_t k = 0; k < 5; k++) {
			if (paths[k] == NULL)
				continue;
			char *id = output_identity(paths[k], lastdir, sizeof(lastdir), dirkey,
						   sizeof(dirkey));
			if (id == NULL)
				continue;
			v[n] = (struct out_id){ id, paths[k], i, n, keys[k] };
			n++;
		}
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), out_id_cmp);
	for (size_t a = 0, b; a < n; a = b) {
		for (b = a + 1; b < n && strcmp(v[a].id, v[b].id) == 0; b++) {
			char err[1200];
			const struct out_id *first = &v[a], *dup = &v[b];
			if (strcmp(first->path, dup->path) == 0)
				snprintf(err, sizeof(err), "%s is also written as %s of [cert \"%s\"]",
					 dup->path, first->key, p->cfg->certs[first->cert].name);
			else
				snprintf(err, sizeof(err),
					 "%s is the same file as %s, written as %s of [cert \"%s\"]",
					 dup->path, first->path, first->key,
					 p->cfg->certs[first->cert].name);
			cs_config__pair_error(p, cert_secs[dup->cert],
					      cs_config__find_pair(cert_secs[dup->cert], dup->key),
					      err);
		}
	}
	for (size_t i = 0; i < n; i++)
		free(v[i].id);
	free(v);
}

/*
 * Whether path's directory is dir: the same inode once both exist, else the
 * same lexical path.
 */
static bool in_dir(const char *path, const char *dir)
{
	char lex[PATH_MAX], dlex[PATH_MAX];
	struct stat a, b;
	char *slash;

	lexical_path(path, lex, sizeof(lex));
	lexical_path(dir, dlex, sizeof(dlex));
	if ((slash = strrchr(lex, '/')) == NULL)
		return false;
	*slash = '\0';
	if (lex[0] == '\0')
		snprintf(lex, sizeof(lex), "/");
	size_t dl = strlen(dlex);
	while (dl > 1 && dlex[dl - 1] == '/')
		dlex[--dl] = '\0';
	if (stat(lex, &a) == 0 && stat(dlex, &b) == 0)
		return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
	return strcmp(lex, dlex) == 0;
}

/* The [clientcerts] whose dir one of c's outputs with the leaf is in, or NULL. */
static const struct cs_cfg_clientcerts *feeds_clientcerts(const struct cs_config *cfg,
							  const struct cs_cfg_cert *c)
{
	const char *paths[3] = { c->bundle, c->fullchain, c->cert };

	for (size_t i = 0; i < cfg->n_clientcerts; i++)
		for (size_t k = 0; k < 3; k++)
			if (paths[k] != NULL && cfg->clientcerts[i].dir != NULL &&
			    in_dir(paths[k], cfg->clientcerts[i].dir))
				return &cfg->clientcerts[i];
	return NULL;
}

/*
 * Let's Encrypt stopped putting the clientAuth extended key usage in its
 * certificates (2026) and other public CAs follow the root programs: a
 * client certificate asked of an ACME CA may come without it, and then TLS
 * servers refuse it as a client certificate. A warning, not an error: a
 * private ACME CA may still issue it.
 */
void cs_config__check_client_usage(struct parser *p, struct raw_section **cert_secs)
{
	struct cs_config *cfg = p->cfg;

	for (size_t i = 0; i < cfg->n_certs; i++) {
		struct cs_cfg_cert *c = &cfg->certs[i];
		const struct cs_cfg_clientcerts *cc;
		char why[600], msg[1024];

		if (c->issuer == NULL || !cs_registry_issuer_is_acme(cs_config_issuer(cfg, c->issuer)))
			continue;
		cc = feeds_clientcerts(cfg, c);
		if (c->usage == CS_USAGE_CLIENT)
			snprintf(why, sizeof(why), "usage = client");
		else if (cc != NULL)
			snprintf(why, sizeof(why), "its certificate is in the dir of [clientcerts \"%s\"]",
				 cc->name);
		else
			continue;
		snprintf(msg, sizeof(msg),
			 "%s, but issuer %s is an ACME CA: Let's Encrypt no longer puts the "
			 "clientAuth extended key usage in its certificates (and other public CAs "
			 "follow), so servers may refuse this certificate as a client "
			 "certificate; use a local-ca issuer (or a private CA) for client "
			 "certificates",
			 why, c->issuer);
		free(c->client_warning);
		c->client_warning = strdup(msg);
		cs_config__add_warning(cfg, "%s:%d: [cert \"%s\"]: %s", cert_secs[i]->file,
				       cert_secs[i]->line, c->name, msg);
	}
}

/*
 * "/proc", "/sys" or "/dev" when path is in one of them, lexically or once the
 * nearest existing parent directory is resolved (symlinks, "..", "//").
 */
static const char *system_tree(const char *path)
{
	static const char *const trees[] = { "/proc", "/sys", "/dev" };
	char buf[PATH_MAX], real[PATH_MAX];
	const char *cand[2] = { buf, NULL };
	size_t o = 0;

	/* Lexically: collapse "//" and "/./". */
	for (const char *q = path; *q && o + 1 < sizeof(buf); q++) {
		if (*q == '/' && o > 0 && buf[o - 1] == '/')
			continue;
		if (*q == '.' && o > 0 && buf[o - 1] == '/' && (q[1] == '/' || q[1] == '\0'))
			continue;
		buf[o++] = *q;
	}
	buf[o] = '\0';
	/* The nearest ancestor that exists, resolved. */
	snprintf(real, sizeof(real), "%s", path);
	for (;;) {
		char *slash = strrchr(real, '/');
		if (slash == NULL || slash == real)
			break;
		*slash = '\0';
		char res[PATH_MAX];
		if (realpath(real, res) != NULL) {
			size_t rl = strlen(res);
			snprintf(res + rl, sizeof(res) - rl, "/%s", path + (slash - real) + 1);
			snprintf(real, sizeof(real), "%s", res);
			cand[1] = real;
			break;
		}
	}
	for (size_t c = 0; c < 2 && cand[c] != NULL; c++)
		for (size_t i = 0; i < 3; i++) {
			size_t n = strlen(trees[i]);
			if (strncmp(cand[c], trees[i], n) == 0 &&
			    (cand[c][n] == '/' || cand[c][n] == '\0'))
				return trees[i];
		}
	return NULL;
}

/* Files the agent writes must be ordinary files, never kernel or device nodes. */
void cs_config__check_system_paths(struct parser *p)
{
	static const struct {
		const char *type, *key;
	} outputs[] = {
		{ "cert", "bundle" },	 { "cert", "fullchain" },     { "cert", "cert" },
		{ "cert", "chain" },	 { "cert", "keyfile" },	      { "capath", "dir" },
		{ "capath", "cafile" },	 { "clientcerts", "map" },    { "agent", "state_dir" },
		{ "agent", "metrics_file" }, { "agent", "live_dir" },     { "cert", "live_dir" },
		{ "sni", "map" },	     { "sni", "conf" },
	};

	for (size_t i = 0; i < p->n_secs; i++) {
		struct raw_section *s = &p->secs[i];
		for (size_t k = 0; k < sizeof(outputs) / sizeof(outputs[0]); k++) {
			if (strcmp(s->type, outputs[k].type) != 0)
				continue;
			const struct raw_pair *kv = cs_config__find_pair(s, outputs[k].key);
			const char *tree;
			if (kv == NULL || kv->value[0] != '/' || (tree = system_tree(kv->value)) == NULL)
				continue;
			char err[PATH_MAX + 200];
			snprintf(err, sizeof(err),
				 "%s is under %s: certsync writes only ordinary files, never under "
				 "/proc, /sys or /dev",
				 kv->value, tree);
			cs_config__pair_error(p, s, kv, err);
		}
	}
}
