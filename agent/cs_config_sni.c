/*
 * cs_config_sni - the entries of each [sni] section: its certs looked up by
 * name, the files that hold each cert's key and chain for Postfix or
 * Dovecot, one entry per name (a name in two certs is an error); each cert
 * learns its [sni] sections and takes their reloaders.
 */
#include "cs_config_int.h"

/* Postfix looks a wildcard's names up under the parent domain with a leading dot. */
static char *sni_table_name(const struct cs_cfg_sni *n, const char *name)
{
	if (n->type == CS_SNI_POSTFIX && strncmp(name, "*.", 2) == 0)
		return strdup(name + 1);
	return strdup(name);
}

/*
 * The files an [sni] entry names for cert c. Postfix embeds them when the map
 * is built (after each deploy), so one key-first file is best: the bundle,
 * else the live directory's bundle.pem, else keyfile followed by fullchain.
 * Dovecot reads them at each reload: the live pair first (atomic as a pair),
 * else the bundle for both, else keyfile and fullchain (not atomic: warned).
 */
static int sni_files(struct parser *p, const struct cs_cfg_sni *n, const struct cs_cfg_cert *c,
		     char **key, char **chain)
{
	const char *k = NULL, *ch = NULL;
	const char *full = c->fullchain != NULL ? c->fullchain : c->cert;

	if (n->type == CS_SNI_DOVECOT && c->live_dir != NULL) {
		k = c->live_path[4];
		ch = c->live_path[1];
	} else if (c->bundle != NULL) {
		ch = c->bundle;
	} else if (c->live_dir != NULL) {
		ch = c->live_path[0];
	} else if (c->keyfile != NULL && full != NULL) {
		k = c->keyfile;
		ch = full;
		if (n->type == CS_SNI_DOVECOT)
			cs_config__add_warning(
				p->cfg,
				"%s:%d: [sni \"%s\"]: cert %s has separate keyfile and %s: "
				"Dovecot may read them mismatched during a renewal; give the "
				"cert a bundle or a live_dir",
				n->origin.file, n->origin.line, n->name, c->name,
				c->fullchain != NULL ? "fullchain" : "cert");
	} else {
		return -1;
	}
	*key = k != NULL ? strdup(k) : NULL;
	*chain = strdup(ch);
	return 0;
}

struct cert_node {
	struct cs_htab_node node;
	struct cs_cfg_cert *c;
};

static struct cs_cfg_cert *find_cert(const struct cs_htab *t, const char *name)
{
	uint64_t h = cs_htab_hash(name, CS_HTAB_SEED);

	for (struct cs_htab_node *n = cs_htab_first(t, h); n != NULL; n = cs_htab_next(n, h)) {
		struct cert_node *cn = cs_htab_entry(n, struct cert_node, node);
		if (strcmp(cn->c->name, name) == 0)
			return cn->c;
	}
	return NULL;
}

static void list_add_once(struct cs_cfg_list *l, const char *v)
{
	char **n;

	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], v) == 0)
			return;
	if ((n = realloc(l->v, (l->n + 2) * sizeof(*n))) == NULL)
		return;
	l->v = n;
	if ((n[l->n] = strdup(v)) != NULL)
		n[++l->n] = NULL;
}

/* Postfix's config_dir and Dovecot's configuration, from n's reloaders. */
static void take_reload_configs(const struct cs_config *cfg, struct cs_cfg_sni *n)
{
	for (size_t k = 0; k < n->reload.n; k++) {
		const struct cs_cfg_reload *r = cs_config_reload(cfg, n->reload.v[k]);
		if (r == NULL)
			continue;
		if (r->type == CS_RELOAD_POSTFIX && n->config_dir == NULL && r->config_dir)
			n->config_dir = strdup(r->config_dir);
		if (r->type == CS_RELOAD_DOVECOT && n->dovecot_config == NULL && r->config)
			n->dovecot_config = strdup(r->config);
	}
}

/* One [sni] section while its certs are added. */
struct sni_build {
	struct parser *p;
	struct raw_section *s;
	const struct raw_pair *kv; /* certs, where its errors are reported */
	struct cs_cfg_sni *n;
	size_t cap; /* of n->entries */
};

/*
 * An entry of the section for each name of cert c, with the files holding
 * its key and chain; a name that another cert of the section has is an error.
 */
static void add_entries(struct sni_build *b, struct cs_cfg_cert *c, const char *key,
			const char *chain)
{
	struct cs_cfg_sni *n = b->n;
	char err[600];

	for (size_t m = 0; m < c->names.n; m++) {
		struct cs_cfg_sni_entry *e;
		char *tn = sni_table_name(n, c->names.v[m]);

		for (size_t q = 0; tn != NULL && q < n->n_entries; q++) {
			if (strcmp(n->entries[q].name, tn) != 0)
				continue;
			snprintf(err, sizeof(err), "the name %s is in both cert %s and cert %s",
				 c->names.v[m], n->entries[q].cert->name, c->name);
			cs_config__pair_error(b->p, b->s, b->kv, err);
			free(tn);
			tn = NULL;
		}
		if (tn == NULL)
			continue;
		if (n->n_entries == b->cap) {
			b->cap = b->cap ? b->cap * 2 : 8;
			e = realloc(n->entries, b->cap * sizeof(*e));
			if (e == NULL) {
				free(tn);
				return;
			}
			n->entries = e;
		}
		e = &n->entries[n->n_entries++];
		e->name = tn;
		e->cert = c;
		e->key = key != NULL ? strdup(key) : NULL;
		e->chain = strdup(chain);
	}
}

/*
 * Cert c in the section: it learns the section and takes its reload names,
 * and the section gets its entries. A cert listed twice, or with no output
 * holding its key and chain, is an error.
 */
static void add_cert(struct sni_build *b, struct cs_cfg_cert *c)
{
	struct cs_cfg_sni *n = b->n;
	char *key = NULL, *chain = NULL;
	char err[600];

	if (c->n_sni > 0 && c->sni[c->n_sni - 1] == n) {
		snprintf(err, sizeof(err), "cert %s is listed twice", c->name);
		cs_config__pair_error(b->p, b->s, b->kv, err);
		return;
	}
	if (sni_files(b->p, n, c, &key, &chain) < 0) {
		snprintf(err, sizeof(err),
			 "cert %s has no output holding its key and chain (a bundle, "
			 "a live_dir, or keyfile with fullchain or cert)",
			 c->name);
		cs_config__pair_error(b->p, b->s, b->kv, err);
		return;
	}
	const struct cs_cfg_sni **v = realloc((void *)c->sni, (c->n_sni + 1) * sizeof(*v));
	if (v != NULL) {
		v[c->n_sni++] = n;
		c->sni = v;
	}
	for (size_t r = 0; r < n->reload.n; r++)
		list_add_once(&c->reload, n->reload.v[r]);
	add_entries(b, c, key, chain);
	free(key);
	free(chain);
}

/*
 * The entries of each [sni]: its certs looked up, their names and files;
 * each cert learns its sections and takes their reload names.
 */
void cs_config__resolve_snis(struct parser *p, struct raw_section **sni_secs)
{
	struct cs_config *cfg = p->cfg;
	struct cs_htab certs = { 0 };
	struct cert_node *nodes = calloc(cfg->n_certs + 1, sizeof(*nodes));
	char err[600];

	if (nodes == NULL)
		return;
	for (size_t i = 0; i < cfg->n_certs; i++) {
		nodes[i].c = &cfg->certs[i];
		if (cfg->certs[i].name != NULL)
			cs_htab_insert(&certs, &nodes[i].node, cs_htab_hash(cfg->certs[i].name,
									    CS_HTAB_SEED));
	}
	for (size_t i = 0; i < cfg->n_snis; i++) {
		struct sni_build b = { p, sni_secs[i], cs_config__find_pair(sni_secs[i], "certs"),
				       &cfg->snis[i], 0 };

		cs_config__check_refs(p, b.s, "reload", &b.n->reload, "reload",
				      cs_config__has_reload);
		take_reload_configs(cfg, b.n);
		for (size_t k = 0; k < b.n->certs.n; k++) {
			struct cs_cfg_cert *c = find_cert(&certs, b.n->certs.v[k]);

			if (c != NULL) {
				add_cert(&b, c);
				continue;
			}
			snprintf(err, sizeof(err), "no [cert \"%s\"] section is defined",
				 b.n->certs.v[k]);
			cs_config__pair_error(p, b.s, b.kv, err);
		}
	}
	cs_htab_clear(&certs);
	free(nodes);
}
