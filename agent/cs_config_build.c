/*
 * cs_config_build - phase two: every raw section turned into its typed struct
 * ([agent], [issuer], [cert] with its live directory, [capath],
 * [clientcerts], [sni], [reload]): defaults, the keys stored through the
 * section's table, required keys and the rules within one section. Then
 * cs_config__build_all runs the checks across sections.
 */
#include "cs_config_int.h"
#include "cs_proto.h"
#include "cs_registry.h"

static void require(struct parser *p, struct raw_section *s, const void *value, const char *key,
		    const char *why)
{
	/* A key that is present but bad has had its own error already. */
	if (value == NULL && cs_config__find_pair(s, key) == NULL)
		cs_config__section_error(p, s, "'%s' is required%s", key, why ? why : "");
}

static char *dup_default(char *v, const char *def)
{
	return v != NULL ? v : strdup(def);
}

static void build_agent(struct parser *p, struct raw_section *s)
{
	struct cs_cfg_agent *a = &p->cfg->agent;

	if (s != NULL)
		cs_config__apply_keys(p, s, cs_config__agent_keys, a, -1, NULL);
	a->state_dir = dup_default(a->state_dir, "/var/lib/certsync");
	a->socket = dup_default(a->socket, CS_PROTO_SOCKET_PATH);
	a->plugin_dir = dup_default(a->plugin_dir, CS_DEFAULT_PLUGINDIR);
	if (a->retry_min > a->retry_max && s != NULL)
		cs_config__section_error(p, s, "retry_min is longer than retry_max");
	if (a->ari_interval > 12 * 3600 && s != NULL)
		cs_config__section_error(p, s, "ari_interval is longer than 12h (the renewal "
					 "window is asked for at least twice a day)");
}

/* Looks up the sub-type key ("type") first, so that the right keys apply. */
static int section_subtype(struct parser *p, struct raw_section *s, const struct enum_val *e)
{
	const struct raw_pair *kv = cs_config__find_pair(s, "type");
	char names[256], err[400];
	int v;

	if (kv == NULL) {
		cs_config__section_error(p, s, "'type' is required (one of: %s)",
					 cs_config__enum_names(e, names, sizeof(names)));
		return -1;
	}
	v = cs_config__enum_lookup(e, kv->value);
	if (v < 0) {
		snprintf(err, sizeof(err), "'%s' is not one of: %s", kv->value,
			 cs_config__enum_names(e, names, sizeof(names)));
		cs_config__pair_error(p, s, kv, err);
	}
	return v;
}

/* A driver's check reports through the parser: the section, and a key of it when given. */
struct issuer_check {
	struct parser *p;
	struct raw_section *s;
};

static void issuer_check_error(void *ctx, const char *key, const char *msg)
{
	struct issuer_check *ic = ctx;
	const struct raw_pair *kv = key != NULL ? cs_config__find_pair(ic->s, key) : NULL;

	if (kv != NULL)
		cs_config__pair_error(ic->p, ic->s, kv, msg);
	else
		cs_config__section_error(ic->p, ic->s, "%s", msg);
}

static bool issuer_check_given(void *ctx, const char *key)
{
	struct issuer_check *ic = ctx;

	return cs_config__find_pair(ic->s, key) != NULL;
}

/* The driver named by "type", looked up first so that the right keys apply. */
static const struct cs_issuer_driver *issuer_driver(struct parser *p, struct raw_section *s)
{
	const struct raw_pair *kv = cs_config__find_pair(s, "type");
	const struct cs_issuer_driver *d;
	char names[256], err[400];

	cs_registry_issuer_types(names, sizeof(names));
	if (kv == NULL) {
		cs_config__section_error(p, s, "'type' is required (one of: %s)", names);
		return NULL;
	}
	if ((d = cs_registry_issuer(kv->value)) == NULL) {
		snprintf(err, sizeof(err), "'%s' is not one of: %s", kv->value, names);
		cs_config__pair_error(p, s, kv, err);
	}
	return d;
}

/*
 * One pair of an [issuer] of driver d: type and trust are every type's,
 * the driver's typed keys go to its cfg, its untyped ones to params.
 */
static void issuer_pair(struct parser *p, struct raw_section *s, struct cs_cfg_issuer *is,
			const struct raw_pair *kv)
{
	const struct cs_issuer_driver *d = is->driver;
	const struct keydef *k = NULL;
	void *base = is;
	char err[1024];

	if (strcmp(kv->key, "type") == 0)
		return;
	if (cs_config__has_key(cs_config__issuer_keys, kv->key)) {
		for (k = cs_config__issuer_keys; strcmp(k->key, kv->key) != 0; k++)
			;
	} else {
		for (k = d->cfg_keys; k != NULL && k->key && strcmp(k->key, kv->key) != 0; k++)
			;
		base = is->cfg;
	}
	if (k != NULL && k->key != NULL) {
		if (cs_config__store_value(k, base, kv->value, err, sizeof(err)) < 0)
			cs_config__pair_error(p, s, kv, err);
		return;
	}
	if (cs_config__in_list(d->keys, kv->key)) {
		if (cs_config__list_push(&is->params, kv->key, kv->value) < 0)
			cs_config__pair_error(p, s, kv, "out of memory");
		return;
	}
	if (cs_registry_issuer_key_known(kv->key)) {
		snprintf(err, sizeof(err), "not a key of type = %s", d->type);
	} else {
		/* What this type takes: type and trust, then the driver's keys. */
		size_t used = snprintf(err, sizeof(err), "unknown key (known here: type, trust");
		for (k = d->cfg_keys; k != NULL && k->key && used < sizeof(err); k++)
			used += snprintf(err + used, sizeof(err) - used, ", %s", k->key);
		for (const char *const *u = d->keys; u != NULL && *u && used < sizeof(err); u++)
			used += snprintf(err + used, sizeof(err) - used, ", %s", *u);
		if (used < sizeof(err))
			snprintf(err + used, sizeof(err) - used, ")");
	}
	cs_config__pair_error(p, s, kv, err);
}

static void build_issuer(struct parser *p, struct raw_section *s, struct cs_cfg_issuer *is)
{
	const struct cs_issuer_driver *d = issuer_driver(p, s);
	struct issuer_check ic = { p, s };
	const struct cs_registry_check ck = { issuer_check_error, issuer_check_given, &ic };

	is->name = strdup(s->name);
	is->origin = (struct cs_cfg_origin){ s->file, s->line };
	if (d == NULL)
		return;
	is->driver = d;
	if ((is->type = strdup(d->type)) == NULL ||
	    (d->cfg_size > 0 && (is->cfg = calloc(1, d->cfg_size)) == NULL)) {
		cs_config__section_error(p, s, "out of memory");
		return;
	}
	if (d->cfg_defaults != NULL)
		d->cfg_defaults(is->cfg);
	for (size_t i = 0; i < s->n_pairs; i++)
		issuer_pair(p, s, is, &s->pairs[i]);
	if (d->check != NULL)
		d->check(is, &ck);
}

/*
 * mode is that of the files holding the private key (bundle, keyfile): owner
 * read/write and group read at most (0640), the same rule the deploy applies,
 * so that no configuration passes --check-config and then fails every deploy.
 * cert_mode (certificates and chains, public) may be readable by anyone, but
 * never world-writable nor setuid, setgid or sticky.
 */
static void check_modes(struct parser *p, struct raw_section *s, const struct cs_cfg_cert *c)
{
	const struct raw_pair *kv = cs_config__find_pair(s, "mode");
	const char *why = NULL;
	char err[400];

	if (kv != NULL && (c->mode & ~(mode_t)0640) != 0) {
		if (c->mode & 0007)
			why = "files holding the private key must not be readable by others";
		else if (c->mode & 07000)
			why = "files holding the private key must not be setuid, setgid or sticky";
		else if (c->mode & 0111)
			why = "files holding the private key must not be executable";
		else
			why = "files holding the private key must not be group-writable (a member "
			      "of the group could replace the key)";
		snprintf(err, sizeof(err), "%04o: %s (use 0600 or 0640)", c->mode & 07777, why);
		cs_config__pair_error(p, s, kv, err);
	}
	kv = cs_config__find_pair(s, "cert_mode");
	if (kv != NULL && (c->cert_mode & 07002) != 0) {
		snprintf(err, sizeof(err), "%04o: certificate files must not be %s (use 0644)",
			 c->cert_mode & 07777,
			 (c->cert_mode & 07000) ? "setuid, setgid or sticky" : "world-writable");
		cs_config__pair_error(p, s, kv, err);
	}
}

/*
 * `issuer = a, b, ...`: the issuers in the order they are tried, each named
 * once, at most CS_CFG_MAX_ISSUERS; issuer is the first (the primary).
 */
static void build_issuer_list(struct parser *p, struct raw_section *s, struct cs_cfg_cert *c)
{
	const struct raw_pair *kv = cs_config__find_pair(s, "issuer");
	char err[300];

	if (kv == NULL || c->issuers.n == 0)
		return;
	if (c->issuers.n > CS_CFG_MAX_ISSUERS) {
		snprintf(err, sizeof(err), "%zu issuers: at most %d may be listed", c->issuers.n,
			 CS_CFG_MAX_ISSUERS);
		cs_config__pair_error(p, s, kv, err);
		return;
	}
	for (size_t i = 1; i < c->issuers.n; i++)
		for (size_t k = 0; k < i; k++)
			if (strcmp(c->issuers.v[i], c->issuers.v[k]) == 0) {
				snprintf(err, sizeof(err), "issuer \"%s\" is listed twice",
					 c->issuers.v[i]);
				cs_config__pair_error(p, s, kv, err);
				return;
			}
	c->issuer = strdup(c->issuers.v[0]);
}

static void build_cert(struct parser *p, struct raw_section *s, struct cs_cfg_cert *c)
{
	c->name = strdup(s->name);
	c->origin = (struct cs_cfg_origin){ s->file, s->line };
	c->key = CS_KEY_EC_P256;
	c->owner = (uid_t)-1;
	c->group = (gid_t)-1;
	c->mode = 0600;
	c->cert_mode = 0644;
	c->failover_after = CS_CFG_FAILOVER_AFTER;
	cs_config__apply_keys(p, s, cs_config__cert_keys, c, -1, NULL);
	build_issuer_list(p, s, c);
	require(p, s, c->issuer, "issuer", NULL);
	if (c->names.n == 0 && cs_config__find_pair(s, "names") == NULL)
		cs_config__section_error(
			p, s, "'names' is required (the DNS names and addresses to certify)");
	if ((c->fullchain || c->cert) && !cs_config__find_pair(s, "bundle") &&
	    !cs_config__find_pair(s, "keyfile"))
		cs_config__section_error(
			p, s,
			"the certificate is written without its key: set keyfile or "
			"bundle too");
	check_modes(p, s, c);
}

const char *const cs_cfg_live_files[CS_CFG_LIVE_FILES] = {
	"bundle.pem", "fullchain.pem", "cert.pem", "chain.pem", "privkey.pem",
};

/*
 * The cert's live directory: its own live_dir, else [agent]'s; "none" is
 * none. With one, LIVE/NAME must not begin with '.' (it would stand beside
 * LIVE/.gen, or be it), and no fixed-path output may be inside LIVE, where
 * the agent keeps only what it swaps. Also the check that a cert has an
 * output at all, which needs [agent] read first.
 */
static void resolve_live(struct parser *p, struct raw_section *s, struct cs_cfg_cert *c)
{
	const char *live = c->live_dir != NULL ? c->live_dir : p->cfg->agent.live_dir;
	const struct raw_pair *kv = cs_config__find_pair(s, "live_dir");
	const char *paths[5] = { c->bundle, c->fullchain, c->cert, c->chain, c->keyfile };
	static const char *const keys[5] = { "bundle", "fullchain", "cert", "chain", "keyfile" };
	char *dir = NULL;

	if (live != NULL && strcmp(live, "none") != 0 && (dir = strdup(live)) != NULL)
		for (size_t l = strlen(dir); l > 1 && dir[l - 1] == '/'; l--)
			dir[l - 1] = '\0';
	free(c->live_dir);
	c->live_dir = dir;
	if (!cs_config__find_pair(s, "bundle") && !cs_config__find_pair(s, "fullchain") &&
	    !cs_config__find_pair(s, "cert") && !cs_config__find_pair(s, "chain") &&
	    !cs_config__find_pair(s, "keyfile") && c->live_dir == NULL)
		cs_config__section_error(
			p, s,
			"no output: set at least one of bundle, fullchain, cert, chain, "
			"keyfile, live_dir");
	if (c->live_dir == NULL)
		return;
	if (c->name[0] == '.') {
		if (kv != NULL)
			cs_config__pair_error(
				p, s, kv,
				"a cert's name must not begin with '.' when live_dir is in use "
				"(its link would stand beside the generations in .gen)");
		else
			cs_config__section_error(
				p, s,
				"the name must not begin with '.' when live_dir is in use "
				"([agent] live_dir; its link would stand beside the "
				"generations in .gen; or set live_dir = none here)");
		return;
	}
	size_t dl = strlen(c->live_dir);
	for (size_t k = 0; k < 5; k++) {
		if (paths[k] == NULL || strncmp(paths[k], c->live_dir, dl) != 0 ||
		    (paths[k][dl] != '/' && dl > 1))
			continue;
		char err[PATH_MAX + 200];
		snprintf(err, sizeof(err),
			 "%s is inside live_dir %s, where the agent keeps only the links and "
			 "generations it swaps",
			 paths[k], c->live_dir);
		cs_config__pair_error(p, s, cs_config__find_pair(s, keys[k]), err);
	}
	for (size_t k = 0; k < CS_CFG_LIVE_FILES; k++)
		if (asprintf(&c->live_path[k], "%s/%s/%s", dl > 1 ? c->live_dir : "", c->name,
			     cs_cfg_live_files[k]) < 0)
			c->live_path[k] = NULL;
}

static void build_capath(struct parser *p, struct raw_section *s, struct cs_cfg_capath *c)
{
	c->name = strdup(s->name);
	c->origin = (struct cs_cfg_origin){ s->file, s->line };
	cs_config__apply_keys(p, s, cs_config__capath_keys, c, -1, NULL);
	require(p, s, c->dir, "dir", " (the hashed CA directory)");
}

static void build_clientcerts(struct parser *p, struct raw_section *s,
			      struct cs_cfg_clientcerts *c)
{
	c->name = strdup(s->name);
	c->origin = (struct cs_cfg_origin){ s->file, s->line };
	c->digest = CS_DIGEST_SHA256;
	cs_config__apply_keys(p, s, cs_config__clientcerts_keys, c, -1, NULL);
	require(p, s, c->dir, "dir", " (the directory of client certificates)");
	require(p, s, c->map, "map", " (the Postfix lookup table to write)");
	c->map_type = dup_default(c->map_type, "hash");
}

static void build_sni(struct parser *p, struct raw_section *s, struct cs_cfg_sni *n)
{
	int type = section_subtype(p, s, cs_config__e_sni_type);

	n->name = strdup(s->name);
	n->origin = (struct cs_cfg_origin){ s->file, s->line };
	n->dovecot_version = 23;
	if (type < 0)
		return;
	n->mode = type == CS_SNI_POSTFIX ? 0600 : 0644;
	cs_config__apply_keys(p, s, cs_config__sni_keys, n, type, cs_config__e_sni_type[type].name);
	require(p, s, n->certs.n > 0 ? "" : NULL, "certs", " (the [cert] sections it serves)");
	if (type == CS_SNI_POSTFIX) {
		require(p, s, n->map, "map",
			" (the source file of tls_server_sni_maps; postmap -F builds MAP.db)");
		n->map_type = dup_default(n->map_type, "hash");
	} else {
		require(p, s, n->conf, "conf", " (the include file of local_name blocks to write)");
	}
}

static void build_reload(struct parser *p, struct raw_section *s, struct cs_cfg_reload *r)
{
	int type = section_subtype(p, s, cs_config__e_reload_type);

	r->name = strdup(s->name);
	r->origin = (struct cs_cfg_origin){ s->file, s->line };
	r->timeout = 60;
	if (type < 0)
		return;
	/* The registry says which keys each type of reloader takes. */
	static const char *const always[] = { "type", NULL };
	const struct cs_reloader_driver *d = cs_registry_reloader(cs_config__e_reload_type[type].name);
	struct cs_config__keyset ks = { .subtype = type,
					.type_name = cs_config__e_reload_type[type].name,
					.always = always,
					.allowed = d != NULL ? d->keys : always };
	r->type_name = cs_config__e_reload_type[type].name;
	cs_config__apply_keyset(p, s, cs_config__reload_keys, r, &ks);
	if (type == CS_RELOAD_POSTFIX)
		r->config_dir = dup_default(r->config_dir, "/etc/postfix");
	else if (type == CS_RELOAD_DOVECOT)
		r->config = dup_default(r->config, "/etc/dovecot/dovecot.conf");
	else if (type == CS_RELOAD_EXEC)
		require(p, s, r->command, "command", " for type = exec");
	else
		require(p, s, r->plugin, "plugin", " for type = plugin (the shared object name)");
}

void cs_config__build_all(struct parser *p)
{
	struct cs_config *cfg = p->cfg;
	struct raw_section *agent = NULL;
	struct raw_section **cert_secs = calloc(p->n_secs + 1, sizeof(*cert_secs));
	struct raw_section **capath_secs = calloc(p->n_secs + 1, sizeof(*capath_secs));
	struct raw_section **cc_secs = calloc(p->n_secs + 1, sizeof(*cc_secs));
	struct raw_section **sni_secs = calloc(p->n_secs + 1, sizeof(*sni_secs));

	cfg->issuers = calloc(p->n_secs + 1, sizeof(*cfg->issuers));
	cfg->certs = calloc(p->n_secs + 1, sizeof(*cfg->certs));
	cfg->capaths = calloc(p->n_secs + 1, sizeof(*cfg->capaths));
	cfg->clientcerts = calloc(p->n_secs + 1, sizeof(*cfg->clientcerts));
	cfg->reloads = calloc(p->n_secs + 1, sizeof(*cfg->reloads));
	cfg->snis = calloc(p->n_secs + 1, sizeof(*cfg->snis));
	cfg->notifies = calloc(p->n_secs + 1, sizeof(*cfg->notifies));
	if (!cert_secs || !capath_secs || !cc_secs || !sni_secs || !cfg->issuers || !cfg->certs ||
	    !cfg->capaths || !cfg->clientcerts || !cfg->reloads || !cfg->snis || !cfg->notifies) {
		cs_config__add_error(p->errs, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < p->n_secs; i++) {
		struct raw_section *s = &p->secs[i];
		if (strcmp(s->type, "agent") == 0)
			agent = s;
		else if (strcmp(s->type, "issuer") == 0)
			build_issuer(p, s, &cfg->issuers[cfg->n_issuers++]);
		else if (strcmp(s->type, "cert") == 0) {
			cert_secs[cfg->n_certs] = s;
			build_cert(p, s, &cfg->certs[cfg->n_certs++]);
		} else if (strcmp(s->type, "capath") == 0) {
			capath_secs[cfg->n_capaths] = s;
			build_capath(p, s, &cfg->capaths[cfg->n_capaths++]);
		} else if (strcmp(s->type, "clientcerts") == 0) {
			cc_secs[cfg->n_clientcerts] = s;
			build_clientcerts(p, s, &cfg->clientcerts[cfg->n_clientcerts++]);
		} else if (strcmp(s->type, "sni") == 0) {
			sni_secs[cfg->n_snis] = s;
			build_sni(p, s, &cfg->snis[cfg->n_snis++]);
		} else if (strcmp(s->type, "reload") == 0)
			build_reload(p, s, &cfg->reloads[cfg->n_reloads++]);
		else if (strcmp(s->type, "notify") == 0)
			cs_config__build_notify(p, s, &cfg->notifies[cfg->n_notifies++]);
	}
	build_agent(p, agent);
	for (size_t i = 0; i < cfg->n_certs; i++)
		resolve_live(p, cert_secs[i], &cfg->certs[i]);
	if (cfg->agent.live_dir != NULL && strcmp(cfg->agent.live_dir, "none") == 0) {
		free(cfg->agent.live_dir);
		cfg->agent.live_dir = NULL;
	}
	cs_config__check_references(p, cert_secs, capath_secs, cc_secs);
	cs_config__resolve_snis(p, sni_secs);
	cs_config__check_output_paths(p, cert_secs);
	cs_config__check_client_usage(p, cert_secs);
	cs_config__check_dane(p, cert_secs);
	cs_config__check_notify(p);
	cs_config__check_system_paths(p);
	cs_config__check_unsafe_files(p);
out:
	free(cert_secs);
	free(capath_secs);
	free(cc_secs);
	free(sni_secs);
}
