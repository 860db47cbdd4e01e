/*
 * cs_config - parse certsync.conf and its drop-ins. See cs_config.h.
 *
 * Two phases. First every file is read with inih into a list of raw sections
 * (type, name, line) holding raw key/value pairs with their lines; a reader
 * callback counts lines so that each pair knows where it came from
 * (cs_config_read.c). Then each raw section is turned into its typed struct
 * through a table of key descriptors (cs_config_build.c), and references
 * between sections are checked (cs_config_check.c, cs_config_sni.c). Errors
 * are collected, never fatal, so that one run reports all of them
 * (cs_config_error.c).
 *
 * This file holds the key tables, which say every key a section accepts, its
 * type and where it is stored, and how one value is stored through them; the
 * load that runs both phases; freeing and lookups.
 */
#include "cs_config_int.h"
#include "cs_registry.h"

static const struct enum_val e_usage[] = { { "server", CS_USAGE_SERVER },
					   { "client", CS_USAGE_CLIENT },
					   { NULL, 0 } };
static const struct enum_val e_fp_of[] = { { "cert", CS_FP_OF_CERT },
					   { "pubkey", CS_FP_OF_PUBKEY },
					   { NULL, 0 } };
static const struct enum_val e_digest[] = { { "sha256", CS_DIGEST_SHA256 },
					    { "sha1", CS_DIGEST_SHA1 },
					    { "md5", CS_DIGEST_MD5 },
					    { NULL, 0 } };
const struct enum_val cs_config__e_reload_type[] = { { "postfix", CS_RELOAD_POSTFIX },
						     { "dovecot", CS_RELOAD_DOVECOT },
						     { "exec", CS_RELOAD_EXEC },
						     { "plugin", CS_RELOAD_PLUGIN },
						     { NULL, 0 } };
const struct enum_val cs_config__e_sni_type[] = { { "postfix", CS_SNI_POSTFIX },
						  { "dovecot", CS_SNI_DOVECOT },
						  { NULL, 0 } };
static const struct enum_val e_sni_map_type[] = { { "hash", 0 },	 { "btree", 1 },
						  { "lmdb", 2 },	 { "cdb", 3 },
						  { NULL, 0 } };
static const struct enum_val e_dovecot_version[] = { { "2.3", 23 }, { "2.4", 24 }, { NULL, 0 } };
static const struct enum_val e_map_type[] = { { "hash", 0 },	 { "lmdb", 1 }, { "cdb", 2 },
					      { "btree", 3 },	 { "texthash", 4 },
					      { NULL, 0 } };

static const struct enum_val e_dane_update[] = { { "none", CS_DANE_UPDATE_NONE },
						 { "rfc2136", CS_DANE_UPDATE_RFC2136 },
						 { "hook", CS_DANE_UPDATE_HOOK },
						 { NULL, 0 } };

#define AG(f) offsetof(struct cs_cfg_agent, f)
const struct keydef cs_config__agent_keys[] = {
	{ "state_dir", V_PATH, AG(state_dir), ANY, NULL },
	{ "socket", V_PATH, AG(socket), ANY, NULL },
	{ "socket_group", V_GROUP, AG(socket_group), ANY, NULL },
	{ "socket_mode", V_MODE, AG(socket_mode), ANY, NULL },
	{ "admin_group", V_GROUP, AG(admin_group), ANY, NULL },
	{ "plugin_dir", V_PATH, AG(plugin_dir), ANY, NULL },
	{ "metrics_file", V_PATH, AG(metrics_file), ANY, NULL },
	{ "log_level", V_LOGLEVEL, AG(log_level), ANY, NULL },
	{ "renew_before", V_SPAN, AG(renew_before), ANY, NULL },
	{ "jitter", V_SPAN, AG(jitter), ANY, NULL },
	{ "retry_min", V_DURATION, AG(retry_min), ANY, NULL },
	{ "retry_max", V_DURATION, AG(retry_max), ANY, NULL },
	{ "settle", V_DURATION0, AG(settle), ANY, NULL },
	{ "verify_interval", V_INTERVAL, AG(verify_interval), ANY, NULL },
	{ "ari_interval", V_DURATION, AG(ari_interval), ANY, NULL },
	{ "live_dir", V_LIVEDIR, AG(live_dir), ANY, NULL },
	{ "include", V_INCLUDE, 0, ANY, NULL },
	{ NULL, 0, 0, 0, NULL },
};

#define IS(f) offsetof(struct cs_cfg_issuer, f)
const struct keydef cs_config__issuer_keys[] = {
	/* Every type's keys; the driver's own are in its table (cs_registry.c). */
	{ "type", V_STR, IS(type), ANY, NULL },
	{ "trust", V_PATH, IS(trust), ANY, NULL },
	{ NULL, 0, 0, 0, NULL },
};

#define CE(f) offsetof(struct cs_cfg_cert, f)
const struct keydef cs_config__cert_keys[] = {
	{ "issuer", V_LIST, CE(issuers), ANY, NULL },
	{ "failover_after", V_COUNT, CE(failover_after), ANY, NULL },
	{ "names", V_NAMES, CE(names), ANY, NULL },
	{ "key", V_KEYTYPE, CE(key), ANY, NULL },
	{ "usage", V_ENUM, CE(usage), ANY, e_usage },
	{ "reuse_key", V_BOOL, CE(reuse_key), ANY, NULL },
	{ "allow_foreign", V_BOOL, CE(allow_foreign), ANY, NULL },
	{ "bundle", V_PATH, CE(bundle), ANY, NULL },
	{ "fullchain", V_PATH, CE(fullchain), ANY, NULL },
	{ "cert", V_PATH, CE(cert), ANY, NULL },
	{ "chain", V_PATH, CE(chain), ANY, NULL },
	{ "keyfile", V_PATH, CE(keyfile), ANY, NULL },
	{ "live_dir", V_LIVEDIR, CE(live_dir), ANY, NULL },
	{ "owner", V_USER, CE(owner), ANY, NULL },
	{ "group", V_GROUP, CE(group), ANY, NULL },
	{ "mode", V_MODE, CE(mode), ANY, NULL },
	{ "cert_mode", V_MODE, CE(cert_mode), ANY, NULL },
	{ "reload", V_LIST, CE(reload), ANY, NULL },
	{ "verify", V_URLS, CE(verify), ANY, NULL },
	{ "verify_timeout", V_DURATION, CE(verify_timeout), ANY, NULL },
	{ "verify_interval", V_INTERVAL, CE(verify_interval), ANY, NULL },
	{ "renew_before", V_SPAN, CE(renew_before), ANY, NULL },
	{ "jitter", V_SPAN, CE(jitter), ANY, NULL },
	{ "dane", V_DANE, CE(dane.usage), ANY, NULL },
	{ "dane_ports", V_PORTS, CE(dane.ports), ANY, NULL },
	{ "dane_names", V_NAMES, CE(dane.names), ANY, NULL },
	{ "dane_update", V_ENUM, CE(dane.update), ANY, e_dane_update },
	{ "dane_server", V_HOSTPORT, CE(dane.server), ANY, NULL },
	{ "dane_tsig_key", V_PATH, CE(dane.tsig_key), ANY, NULL },
	{ "dane_zone", V_STR, CE(dane.zone), ANY, NULL },
	{ "dane_hook", V_PATH, CE(dane.hook), ANY, NULL },
	{ "dane_resolver", V_HOSTPORT, CE(dane.resolver), ANY, NULL },
	{ "dane_ttl", V_DURATION, CE(dane.ttl), ANY, NULL },
	/* Refused (refusal()): known so that the message says why. */
	{ "must_staple", V_REFUSED, 0, ANY, NULL },
	{ "ocsp_must_staple", V_REFUSED, 0, ANY, NULL },
	{ NULL, 0, 0, 0, NULL },
};

#define CP(f) offsetof(struct cs_cfg_capath, f)
const struct keydef cs_config__capath_keys[] = {
	{ "dir", V_PATH, CP(dir), ANY, NULL },
	{ "cafile", V_PATH, CP(cafile), ANY, NULL },
	{ "issuers", V_LIST, CP(issuers), ANY, NULL },
	{ "reload", V_LIST, CP(reload), ANY, NULL },
	{ NULL, 0, 0, 0, NULL },
};

#define CC(f) offsetof(struct cs_cfg_clientcerts, f)
const struct keydef cs_config__clientcerts_keys[] = {
	{ "dir", V_PATH, CC(dir), ANY, NULL },
	{ "map", V_PATH, CC(map), ANY, NULL },
	{ "digest", V_ENUM, CC(digest), ANY, e_digest },
	{ "fingerprint", V_ENUM, CC(fingerprint), ANY, e_fp_of },
	{ "map_type", V_STR, CC(map_type), ANY, e_map_type },
	{ "reload", V_LIST, CC(reload), ANY, NULL },
	{ NULL, 0, 0, 0, NULL },
};

#define SN(f) offsetof(struct cs_cfg_sni, f)
const struct keydef cs_config__sni_keys[] = {
	{ "type", V_ENUM, SN(type), ANY, cs_config__e_sni_type },
	{ "certs", V_LIST, SN(certs), ANY, NULL },
	{ "map", V_PATH, SN(map), T(CS_SNI_POSTFIX), NULL },
	{ "map_type", V_STR, SN(map_type), T(CS_SNI_POSTFIX), e_sni_map_type },
	{ "conf", V_PATH, SN(conf), T(CS_SNI_DOVECOT), NULL },
	{ "dovecot_version", V_ENUM, SN(dovecot_version), T(CS_SNI_DOVECOT), e_dovecot_version },
	{ "mode", V_MODE, SN(mode), ANY, NULL },
	{ "reload", V_LIST, SN(reload), ANY, NULL },
	{ NULL, 0, 0, 0, NULL },
};

#define RL(f) offsetof(struct cs_cfg_reload, f)
/* Which type takes which key is the registry's reloader table (cs_registry.c). */
const struct keydef cs_config__reload_keys[] = {
	{ "type", V_ENUM, RL(type), ANY, cs_config__e_reload_type },
	{ "config_dir", V_PATH, RL(config_dir), ANY, NULL },
	{ "config", V_PATH, RL(config), ANY, NULL },
	{ "pid_file", V_PATH, RL(pid_file), ANY, NULL },
	{ "command", V_STR, RL(command), ANY, NULL },
	{ "timeout", V_DURATION, RL(timeout), ANY, NULL },
	{ "plugin", V_STR, RL(plugin), ANY, NULL },
	{ "args", V_STR, RL(args), ANY, NULL },
	{ NULL, 0, 0, 0, NULL },
};

const char *cs_config__enum_names(const struct enum_val *e, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (; e->name; e++)
		used += snprintf(buf + used, used < len ? len - used : 0, "%s%s",
				 used ? ", " : "", e->name);
	return buf;
}

int cs_config__enum_lookup(const struct enum_val *e, const char *s)
{
	for (; e->name; e++)
		if (strcmp(e->name, s) == 0)
			return e->value;
	return -1;
}

/* Whether value is ADDRESS:PORT with a port from 1 to 65535. */
static bool is_hostport(const char *value)
{
	const char *colon = strrchr(value, ':');
	char *end;
	long port;

	if (colon == NULL || colon == value)
		return false;
	port = strtol(colon + 1, &end, 10);
	return *end == '\0' && port >= 1 && port <= 65535;
}

/* A decimal TCP port, 1 to 65535. */
static bool is_port(const char *s)
{
	char *end;
	long n = strtol(s, &end, 10);

	return isdigit((unsigned char)*s) && *end == '\0' && n >= 1 && n <= 65535;
}

/* V_DANE: "U S M" with U 2 or 3, S 1, M 1 (the records certsync publishes), or "none". */
static int store_dane(int *usage, const char *value, char *err, size_t errlen)
{
	unsigned u, sel, m;
	char tail;

	if (strcmp(value, "none") == 0 || strcmp(value, "no") == 0) {
		*usage = 0;
		return 0;
	}
	if (sscanf(value, "%u %u %u%c", &u, &sel, &m, &tail) != 3 || (u != 2 && u != 3) ||
	    sel != 1 || m != 1) {
		snprintf(err, errlen,
			 "'%s' is not a record type certsync publishes: \"3 1 1\" (the "
			 "server's key) or \"2 1 1\" (the issuer's key), or none",
			 value);
		return -1;
	}
	*usage = (int)u;
	return 0;
}

/*
 * The string types (V_STR, with the names of its enum when it has one,
 * V_LIVEDIR, V_PATH, V_HOSTPORT): checked, then a copy replaces what *field
 * held. Returns 0, or -1 with err set.
 */
static int store_string(const struct keydef *d, char **field, const char *value, char *err,
			size_t errlen)
{
	char names[256];

	switch (d->type) {
	case V_STR:
		if (*value == '\0') {
			snprintf(err, errlen, "empty value");
			return -1;
		}
		if (d->e != NULL && cs_config__enum_lookup(d->e, value) < 0) {
			snprintf(err, errlen, "'%s' is not one of: %s", value,
				 cs_config__enum_names(d->e, names, sizeof(names)));
			return -1;
		}
		break;
	case V_LIVEDIR:
		if (strcmp(value, "none") != 0 && cs_config__parse_abs_path(value, err, errlen) < 0)
			return -1;
		break;
	case V_PATH:
		if (cs_config__parse_abs_path(value, err, errlen) < 0)
			return -1;
		break;
	default: /* V_HOSTPORT */
		if (!is_hostport(value)) {
			snprintf(err, errlen,
				 "'%s' is not ADDRESS:PORT (e.g. 0.0.0.0:80 or [::]:80)", value);
			return -1;
		}
		break;
	}
	free(*field);
	*field = strdup(value);
	return 0;
}

/* V_MAXORDERS, V_COUNT: 1 to max. Returns 0, or -1 with err set. */
static int store_count(unsigned *field, const char *value, unsigned max, char *err, size_t errlen)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(value, &end, 10);
	if (!isdigit((unsigned char)*value) || *end != '\0' || errno != 0 || n < 1 ||
	    n > max) {
		snprintf(err, errlen, "'%s' is not a number from 1 to %u", value, max);
		return -1;
	}
	*field = (unsigned)n;
	return 0;
}

/* V_INTERVAL: a duration, or 0 / none (off). Returns 0, or -1 with err set. */
static int store_interval(struct cs_cfg_interval *iv, const char *value, char *err, size_t errlen)
{
	bool off = strcmp(value, "0") == 0 || strcmp(value, "0s") == 0 ||
		   strcmp(value, "none") == 0;

	if (!off && cs_config_parse_duration(value, &iv->seconds, err, errlen) < 0)
		return -1;
	if (off)
		iv->seconds = 0;
	iv->set = true;
	return 0;
}

/*
 * The list types: every item of V_NAMES a DNS name or an address, of V_URLS
 * a verify URL, of V_CONTACTS a mailto: URL; the list replaces what *field
 * held. Returns 0, or -1 with err set.
 */
static int store_list(enum vtype type, struct cs_cfg_list *field, const char *value, char *err,
		      size_t errlen)
{
	struct cs_cfg_list l;

	if (cs_config__parse_list(value, &l, err, errlen) < 0) {
		cs_config__list_free(&l);
		return -1;
	}
	for (size_t i = 0; i < l.n; i++) {
		int rc = 0;

		if (type == V_NAMES)
			rc = cs_config_parse_name(l.v[i], err, errlen);
		else if (type == V_URLS)
			rc = cs_config_parse_verify_url(l.v[i], err, errlen);
		else if (type == V_PORTS && !is_port(l.v[i])) {
			snprintf(err, errlen, "'%s' is not a TCP port (1 to 65535)", l.v[i]);
			rc = -1;
		} else if (type == V_CONTACTS && strncmp(l.v[i], "mailto:", 7) != 0) {
			snprintf(err, errlen, "'%s' is not a mailto: URL", l.v[i]);
			rc = -1;
		}
		if (rc < 0) {
			cs_config__list_free(&l);
			return -1;
		}
	}
	cs_config__list_free(field);
	*field = l;
	return 0;
}

/*
 * Why a V_REFUSED key is refused, into err. Returns 0 when its value asks
 * for nothing (a no), -1 otherwise.
 */
static int refusal(const struct keydef *d, const char *value, char *err, size_t errlen)
{
	bool on;

	if (cs_config_parse_bool(value, &on, err, errlen) == 0 && !on)
		return 0;
	if (strstr(d->key, "must_staple") != NULL) {
		snprintf(err, errlen,
			 "refused: OCSP must-staple is no longer possible: the CAs stopped "
			 "OCSP (Let's Encrypt ended its OCSP service in 2025), so a "
			 "certificate that demands a stapled OCSP answer could not be served; "
			 "remove the key");
		return -1;
	}
	snprintf(err, errlen, "refused");
	return -1;
}

/*
 * Stores one value into the struct at base. Returns 0, or -1 with err set.
 * V_INCLUDE is handled by the caller.
 */
int cs_config__store_value(const struct keydef *d, void *base, const char *value, char *err,
		       size_t errlen)
{
	char *field = (char *)base + d->off;
	char names[256];

	switch (d->type) {
	case V_STR:
	case V_LIVEDIR:
	case V_PATH:
	case V_HOSTPORT:
		return store_string(d, (char **)field, value, err, errlen);
	case V_MAXORDERS:
		return store_count((unsigned *)field, value, CS_ACME_MAX_ORDERS, err, errlen);
	case V_COUNT:
		return store_count((unsigned *)field, value, CS_CFG_MAX_COUNT, err, errlen);
	case V_DURATION0:
		if (strcmp(value, "0") == 0 || strcmp(value, "0s") == 0) {
			*(int64_t *)field = 0;
			return 0;
		}
		/* fall through */
	case V_DURATION:
		return cs_config_parse_duration(value, (int64_t *)field, err, errlen);
	case V_INTERVAL:
		return store_interval((struct cs_cfg_interval *)field, value, err, errlen);
	case V_SPAN:
		return cs_config_parse_span(value, (struct cs_cfg_span *)field, err, errlen);
	case V_KEYTYPE: {
		enum cs_keytype t = cs_key_parse(value);
		if (t == CS_KEY_NONE) {
			snprintf(err, errlen, "'%s' is not a key type (one of: %s)", value,
				 cs_key_names());
			return -1;
		}
		*(enum cs_keytype *)field = t;
		return 0;
	}
	case V_MODE:
		return cs_config_parse_mode(value, (mode_t *)field, err, errlen);
	case V_BOOL:
		return cs_config_parse_bool(value, (bool *)field, err, errlen);
	case V_USER:
		return cs_config_parse_user(value, (uid_t *)field, err, errlen);
	case V_GROUP:
		return cs_config_parse_group(value, (gid_t *)field, err, errlen);
	case V_LIST:
	case V_NAMES:
	case V_URLS:
	case V_CONTACTS:
	case V_PORTS:
		return store_list(d->type, (struct cs_cfg_list *)field, value, err, errlen);
	case V_DANE:
		return store_dane((int *)field, value, err, errlen);
	case V_ENUM: {
		int v = cs_config__enum_lookup(d->e, value);
		if (v < 0) {
			snprintf(err, errlen, "'%s' is not one of: %s", value,
				 cs_config__enum_names(d->e, names, sizeof(names)));
			return -1;
		}
		*(int *)field = v;
		return 0;
	}
	case V_LOGLEVEL: {
		int v = cs_log_level_parse(value);
		if (v < 0) {
			snprintf(err, errlen,
				 "'%s' is not a log level (error, warning, notice, info, debug)",
				 value);
			return -1;
		}
		*(int *)field = v;
		return 0;
	}
	case V_INCLUDE:
		return 0;
	case V_REFUSED:
		return refusal(d, value, err, errlen);
	}
	return 0;
}

bool cs_config__in_list(const char *const *l, const char *key)
{
	for (; l != NULL && *l != NULL; l++)
		if (strcmp(*l, key) == 0)
			return true;
	return false;
}

/* Whether key d applies to a section of this sub-type or driver (see cs_config__keyset). */
static bool applies(const struct keydef *d, const struct cs_config__keyset *ks)
{
	if (ks->allowed != NULL)
		return cs_config__in_list(ks->always, d->key) || cs_config__in_list(ks->allowed, d->key);
	return ks->subtype < 0 || (d->applies & T(ks->subtype));
}

int cs_config__list_push(struct cs_cfg_list *l, const char *key, const char *value)
{
	char **v = realloc(l->v, (l->n + 1) * sizeof(*v));

	if (v == NULL)
		return -ENOMEM;
	l->v = v;
	if (asprintf(&v[l->n], "%s=%s", key, value) < 0)
		return -ENOMEM;
	l->n++;
	return 0;
}

void cs_config__apply_keyset(struct parser *p, struct raw_section *s, const struct keydef *table,
			     void *base, const struct cs_config__keyset *ks)
{
	for (size_t i = 0; i < s->n_pairs; i++) {
		struct raw_pair *kv = &s->pairs[i];
		const struct keydef *d;
		char err[1024];

		for (d = table; d->key; d++)
			if (strcmp(d->key, kv->key) == 0)
				break;
		if (d->key == NULL) {
			char known[512];
			size_t used = 0;
			known[0] = '\0';
			for (const struct keydef *k = table; k->key; k++)
				if (applies(k, ks) && k->type != V_REFUSED)
					used += snprintf(known + used,
							 used < sizeof(known) ? sizeof(known) - used : 0,
							 "%s%s", used ? ", " : "", k->key);
			snprintf(err, sizeof(err), "unknown key (known here: %s)", known);
			cs_config__pair_error(p, s, kv, err);
			continue;
		}
		if (!applies(d, ks)) {
			snprintf(err, sizeof(err), "not a key of type = %s", ks->type_name);
			cs_config__pair_error(p, s, kv, err);
			continue;
		}
		if (cs_config__store_value(d, base, kv->value, err, sizeof(err)) < 0)
			cs_config__pair_error(p, s, kv, err);
	}
}

void cs_config__free_values(const struct keydef *table, void *base)
{
	for (const struct keydef *d = table; d != NULL && d->key; d++) {
		void *field = (char *)base + d->off;
		switch (d->type) {
		case V_STR:
		case V_LIVEDIR:
		case V_PATH:
		case V_HOSTPORT:
			free(*(char **)field);
			*(char **)field = NULL;
			break;
		case V_LIST:
		case V_NAMES:
		case V_URLS:
		case V_CONTACTS:
		case V_PORTS:
			cs_config__list_free((struct cs_cfg_list *)field);
			break;
		default:
			break; /* a number, an enum, a span: nothing held */
		}
	}
}

bool cs_config__has_key(const struct keydef *table, const char *key)
{
	for (; table->key; table++)
		if (strcmp(table->key, key) == 0)
			return true;
	return false;
}

/*
 * Stores every pair of s through the key table. subtype selects which keys
 * apply (-1: all that have ANY). Unknown keys and keys of another sub-type
 * are errors.
 */
void cs_config__apply_keys(struct parser *p, struct raw_section *s, const struct keydef *table,
			   void *base, int subtype, const char *subtype_name)
{
	struct cs_config__keyset ks = { .subtype = subtype, .type_name = subtype_name };

	cs_config__apply_keyset(p, s, table, base, &ks);
}

struct cs_config *cs_config_load(const char *path, struct cs_cfg_errors *errs)
{
	struct parser p;
	struct cs_config *cfg = calloc(1, sizeof(*cfg));

	memset(errs, 0, sizeof(*errs));
	if (cfg == NULL) {
		cs_config__add_error(errs, "%s: out of memory", path);
		return NULL;
	}
	cfg->agent.socket_group = (gid_t)-1;
	cfg->agent.admin_group = (gid_t)-1;
	cfg->agent.socket_mode = 0660;
	cfg->agent.log_level = CS_LOG_INFO;
	cfg->agent.retry_min = 60;
	cfg->agent.retry_max = 6 * 3600;
	cfg->agent.settle = 3;
	cfg->agent.verify_interval.seconds = 6 * 3600;
	cfg->agent.ari_interval = 6 * 3600;

	memset(&p, 0, sizeof(p));
	p.cfg = cfg;
	p.errs = errs;
	cs_config__read_file(&p, path, false);
	if (errs->n == 0 || cfg->files.n > 0)
		cs_config__read_includes(&p, path);
	cs_config__build_all(&p);
	cs_config__free_raw(&p);
	cs_config__sort_errors(errs, cfg);
	if (errs->n > 0) {
		cs_config_free(cfg);
		return NULL;
	}
	/* The arrays are complete: a cert may now point at its issuers. */
	for (size_t i = 0; i < cfg->n_certs; i++) {
		struct cs_cfg_cert *c = &cfg->certs[i];
		for (size_t k = 0; k < c->issuers.n && k < CS_CFG_MAX_ISSUERS; k++)
			c->iss_all[c->n_iss++] = cs_config_issuer(cfg, c->issuers.v[k]);
		c->iss = c->n_iss > 0 ? c->iss_all[0] : NULL;
	}
	return cfg;
}

static void free_issuer(struct cs_cfg_issuer *is)
{
	free(is->name);
	free(is->type);
	free(is->trust);
	if (is->cfg != NULL && is->driver != NULL)
		cs_config__free_values(is->driver->cfg_keys, is->cfg);
	free(is->cfg);
	cs_config__list_free(&is->params);
}
static void free_cert(struct cs_cfg_cert *c)
{
	free(c->name);
	free(c->issuer);
	cs_config__list_free(&c->issuers);
	cs_config__list_free(&c->names);
	free(c->bundle);
	free(c->fullchain);
	free(c->cert);
	free(c->chain);
	free(c->keyfile);
	free(c->live_dir);
	for (size_t k = 0; k < CS_CFG_LIVE_FILES; k++)
		free(c->live_path[k]);
	cs_config__list_free(&c->reload);
	cs_config__list_free(&c->verify);
	free((void *)c->sni);
	free(c->client_warning);
	cs_config__list_free(&c->dane.ports);
	cs_config__list_free(&c->dane.names);
	free(c->dane.server);
	free(c->dane.tsig_key);
	free(c->dane.zone);
	free(c->dane.hook);
	free(c->dane.resolver);
}

void cs_config_free(struct cs_config *cfg)
{
	if (cfg == NULL)
		return;
	cs_config__list_free(&cfg->files);
	cs_config__list_free(&cfg->warnings);
	free(cfg->agent.state_dir);
	free(cfg->agent.socket);
	free(cfg->agent.plugin_dir);
	free(cfg->agent.metrics_file);
	free(cfg->agent.live_dir);
	for (size_t i = 0; i < cfg->n_issuers; i++)
		free_issuer(&cfg->issuers[i]);
	free(cfg->issuers);
	for (size_t i = 0; i < cfg->n_certs; i++)
		free_cert(&cfg->certs[i]);
	free(cfg->certs);
	for (size_t i = 0; i < cfg->n_capaths; i++) {
		struct cs_cfg_capath *c = &cfg->capaths[i];
		free(c->name);
		free(c->dir);
		free(c->cafile);
		cs_config__list_free(&c->issuers);
		cs_config__list_free(&c->reload);
	}
	free(cfg->capaths);
	for (size_t i = 0; i < cfg->n_clientcerts; i++) {
		struct cs_cfg_clientcerts *c = &cfg->clientcerts[i];
		free(c->name);
		free(c->dir);
		free(c->map);
		free(c->map_type);
		cs_config__list_free(&c->reload);
	}
	free(cfg->clientcerts);
	for (size_t i = 0; i < cfg->n_reloads; i++) {
		struct cs_cfg_reload *r = &cfg->reloads[i];
		free(r->name);
		free(r->config_dir);
		free(r->config);
		free(r->pid_file);
		free(r->command);
		free(r->plugin);
		free(r->args);
	}
	free(cfg->reloads);
	for (size_t i = 0; cfg->notifies != NULL && i < cfg->n_notifies; i++)
		cs_config__free_notify(&cfg->notifies[i]);
	free(cfg->notifies);
	for (size_t i = 0; i < cfg->n_snis; i++) {
		struct cs_cfg_sni *n = &cfg->snis[i];
		free(n->name);
		cs_config__list_free(&n->certs);
		free(n->map);
		free(n->map_type);
		free(n->conf);
		cs_config__list_free(&n->reload);
		free(n->config_dir);
		free(n->dovecot_config);
		for (size_t k = 0; k < n->n_entries; k++) {
			free(n->entries[k].name);
			free(n->entries[k].key);
			free(n->entries[k].chain);
		}
		free(n->entries);
	}
	free(cfg->snis);
	free(cfg);
}

const struct cs_cfg_issuer *cs_config_issuer(const struct cs_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_issuers; i++)
		if (cfg->issuers[i].name && strcmp(cfg->issuers[i].name, name) == 0)
			return &cfg->issuers[i];
	return NULL;
}

const struct cs_cfg_reload *cs_config_reload(const struct cs_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_reloads; i++)
		if (cfg->reloads[i].name && strcmp(cfg->reloads[i].name, name) == 0)
			return &cfg->reloads[i];
	return NULL;
}

const struct cs_cfg_cert *cs_config_cert(const struct cs_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_certs; i++)
		if (cfg->certs[i].name && strcmp(cfg->certs[i].name, name) == 0)
			return &cfg->certs[i];
	return NULL;
}
