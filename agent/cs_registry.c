/*
 * cs_registry - the tables of issuer and reloader drivers (see cs_registry.h),
 * with the built-in ones: what each makes of its configuration section. This
 * is the one file of the agent that names concrete drivers.
 */
#include "cs_registry.h"
#include "cs_acme.h"
#include "cs_netproc.h"
#include "cs_config_int.h"
#include "cs_localca.h"
#include "cs_log.h"
#include "cs_validate.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* ---- local-ca -------------------------------------------------------------- */

#define LC(f) offsetof(struct cs_cfg_localca, f)
static const struct keydef localca_keys[] = {
	{ "dir", V_PATH, LC(dir), ANY, NULL },
	{ "subject", V_STR, LC(subject), ANY, NULL },
	{ "key", V_KEYTYPE, LC(key), ANY, NULL },
	{ "validity", V_DURATION, LC(validity), ANY, NULL },
	{ "ca_validity", V_DURATION, LC(ca_validity), ANY, NULL },
	{ "crl_validity", V_DURATION, LC(crl_validity), ANY, NULL },
	{ "crl_renew_before", V_SPAN, LC(crl_renew_before), ANY, NULL },
	{ NULL, 0, 0, 0, NULL },
};

static void localca_defaults(void *cfg)
{
	struct cs_cfg_localca *lc = cfg;

	lc->key = CS_KEY_EC_P256;
	lc->validity = 90 * 86400;
	lc->ca_validity = 10 * 365 * 86400;
}

static void localca_check(struct cs_cfg_issuer *ci, const struct cs_registry_check *ck)
{
	struct cs_cfg_localca *lc = ci->cfg;

	if (lc->dir == NULL && !ck->given(ck->ctx, "dir"))
		ck->error(ck->ctx, NULL, "'dir' is required for type = local-ca (the CA directory)");
	if (lc->subject == NULL)
		lc->subject = strdup("/O=certsync/CN=certsync local CA");
	if (lc->validity > lc->ca_validity)
		ck->error(ck->ctx, NULL, "validity is longer than ca_validity");
	if (lc->crl_renew_before.set &&
	    (!lc->crl_renew_before.is_percent || lc->crl_renew_before.percent <= 0 ||
	     lc->crl_renew_before.percent >= 100))
		ck->error(ck->ctx, "crl_renew_before",
			  "a share of the CRL's lifetime between 1% and 99% (50%), not a duration");
}

static cs_issuer *localca_open(uv_loop_t *loop, const struct cs_cfg_issuer *ci,
			       const char *state_dir, char *err, size_t errlen)
{
	const struct cs_cfg_localca *lc = ci->cfg;
	struct cs_localca_opts o = {
		.dir = lc->dir,
		.subject = lc->subject,
		.key = lc->key,
		.validity_s = lc->validity,
		.ca_validity_s = lc->ca_validity,
		.crl_validity_s = lc->crl_validity,
		.crl_renew_pct = lc->crl_renew_before.set && lc->crl_renew_before.is_percent
					 ? (int)lc->crl_renew_before.percent
					 : 50,
	};

	(void)state_dir;
	return cs_localca_issuer_new(loop, ci->name, &o, err, errlen);
}

static const char *localca_ca_dir(const struct cs_cfg_issuer *ci)
{
	return ((const struct cs_cfg_localca *)ci->cfg)->dir;
}

/*
 * Its own CA certificate, and the roots given besides in trust (a previous
 * CA, or the CA of certificates migrated); a CA not created yet has issued
 * nothing, so then only those.
 */
static void localca_trust(const struct cs_cfg_issuer *ci, struct cs_validate_opts *o, char *buf,
			  size_t len)
{
	struct stat st;

	o->trust = CS_TRUST_STORE;
	snprintf(buf, len, "%s/cacert.pem", localca_ca_dir(ci));
	o->cafile = buf;
	if (ci->trust != NULL && stat(ci->trust, &st) == 0 && S_ISDIR(st.st_mode))
		o->capath = ci->trust;
	else
		o->cafile2 = ci->trust;
	if (ci->trust != NULL && stat(buf, &st) < 0 && errno == ENOENT) {
		o->cafile = o->cafile2;
		o->cafile2 = NULL;
	}
}

static size_t localca_work_dirs(const struct cs_cfg_issuer *ci, char dirs[][4096], size_t max)
{
	static const char *const subs[] = { "", "/private", "/newcerts" };
	const char *dir = localca_ca_dir(ci);
	size_t n = 0;

	for (size_t k = 0; dir != NULL && k < 3 && n < max; k++)
		if (snprintf(dirs[n], 4096, "%s%s", dir, subs[k]) < 4096)
			n++;
	return n;
}

/* ---- acme ------------------------------------------------------------------- */

static const struct enum_val e_challenge[] = { { "http-01", CS_CHALLENGE_HTTP01 },
					       { "dns-01", CS_CHALLENGE_DNS01 },
					       { "tls-alpn-01", CS_CHALLENGE_TLSALPN01 },
					       { NULL, 0 } };

#define AC(f) offsetof(struct cs_cfg_acme, f)
static const struct keydef acme_keys[] = {
	{ "directory", V_STR, AC(directory), ANY, NULL },
	{ "contact", V_CONTACTS, AC(contact), ANY, NULL },
	{ "challenge", V_ENUM, AC(challenge), ANY, e_challenge },
	{ "webroot", V_PATH, AC(webroot), ANY, NULL },
	{ "http_listen", V_HOSTPORT, AC(http_listen), ANY, NULL },
	{ "dns_hook", V_PATH, AC(dns_hook), ANY, NULL },
	{ "ca_bundle", V_PATH, AC(ca_bundle), ANY, NULL },
	{ "eab_kid", V_STR, AC(eab_kid), ANY, NULL },
	{ "eab_hmac_key", V_STR, AC(eab_hmac_key), ANY, NULL },
	{ "preferred_chain", V_STR, AC(preferred_chain), ANY, NULL },
	{ "profile", V_STR, AC(profile), ANY, NULL },
	{ "account_key", V_KEYTYPE, AC(account_key), ANY, NULL },
	{ "max_orders", V_MAXORDERS, AC(max_orders), ANY, NULL },
	{ NULL, 0, 0, 0, NULL },
};

static void acme_defaults(void *cfg)
{
	((struct cs_cfg_acme *)cfg)->account_key = CS_KEY_EC_P256;
}

static void acme_check(struct cs_cfg_issuer *issuer, const struct cs_registry_check *ck)
{
	const struct cs_cfg_acme *ci = issuer->cfg;
	void (*report)(void *ctx, const char *key, const char *msg) = ck->error;
	void *ctx = ck->ctx;

	if (ci->directory == NULL && !ck->given(ctx, "directory"))
		report(ctx, NULL, "'directory' is required for type = acme (the directory URL)");
	if (ci->directory != NULL && strncmp(ci->directory, "https://", 8) != 0 &&
	    strncmp(ci->directory, "http://", 7) != 0)
		report(ctx, "directory", "not an http(s) URL");
	if (ci->account_key != CS_KEY_EC_P256 && ci->account_key != CS_KEY_RSA_2048 &&
	    ci->account_key != CS_KEY_RSA_3072 && ci->account_key != CS_KEY_RSA_4096)
		report(ctx, "account_key", "ACME account keys are ec:P-256 (ES256) or rsa:* (RS256)");
	if (ci->challenge == CS_CHALLENGE_HTTP01 && ci->webroot == NULL && ci->http_listen == NULL)
		report(ctx, NULL, "challenge = http-01 needs webroot or http_listen");
	if (ci->challenge == CS_CHALLENGE_DNS01 && ci->dns_hook == NULL)
		report(ctx, NULL, "challenge = dns-01 needs dns_hook");
	if (ci->challenge == CS_CHALLENGE_TLSALPN01 && ci->http_listen == NULL)
		report(ctx, NULL,
		       "challenge = tls-alpn-01 needs http_listen (the address to answer on, "
		       "port 443)");
	if ((ci->eab_kid == NULL) != (ci->eab_hmac_key == NULL))
		report(ctx, NULL, "eab_kid and eab_hmac_key go together");
}

static cs_issuer *acme_open(uv_loop_t *loop, const struct cs_cfg_issuer *issuer,
			    const char *state_dir, char *err, size_t errlen)
{
	const struct cs_cfg_acme *ci = issuer->cfg;
	struct cs_acme_opts o = {
		.directory = ci->directory,
		.contact = ci->contact.v,
		.n_contact = ci->contact.n,
		.challenge = ci->challenge == CS_CHALLENGE_DNS01 ? CS_ACME_DNS01 : CS_ACME_HTTP01,
		.webroot = ci->webroot,
		.http_listen = ci->http_listen,
		.dns_hook = ci->dns_hook,
		.ca_bundle = ci->ca_bundle,
		.eab_kid = ci->eab_kid,
		.eab_hmac_key = ci->eab_hmac_key,
		.preferred_chain = ci->preferred_chain,
		.profile = ci->profile,
		.account_key = ci->account_key,
		.max_orders = ci->max_orders,
	};

	if (ci->challenge == CS_CHALLENGE_TLSALPN01) {
		snprintf(err, errlen, "challenge tls-alpn-01 is not implemented");
		return NULL;
	}
	if (cs_netproc_enabled()) /* the daemon: the client runs in netproc */
		return cs_netproc_acme_new(loop, issuer->name, &o, state_dir, err, errlen);
	return cs_acme_issuer_new(loop, issuer->name, &o, state_dir, err, errlen);
}

/* The roots in trust when given, else ca_bundle and the system's store. */
static void acme_trust(const struct cs_cfg_issuer *ci, struct cs_validate_opts *o, char *buf,
		       size_t len)
{
	struct stat st;

	(void)buf;
	(void)len;
	o->trust = CS_TRUST_STORE;
	if (ci->trust != NULL) {
		if (stat(ci->trust, &st) == 0 && S_ISDIR(st.st_mode))
			o->capath = ci->trust;
		else
			o->cafile = ci->trust;
	} else {
		o->cafile = ((const struct cs_cfg_acme *)ci->cfg)->ca_bundle;
		o->system_store = true;
	}
}

static size_t acme_work_dirs(const struct cs_cfg_issuer *ci, char dirs[][4096], size_t max)
{
	const char *webroot = ((const struct cs_cfg_acme *)ci->cfg)->webroot;

	if (webroot == NULL || max == 0 ||
	    snprintf(dirs[0], 4096, "%s/.well-known/acme-challenge", webroot) >= 4096)
		return 0;
	return 1;
}

/* ---- the issuer table ------------------------------------------------------ */

#define MAX_ISSUER_DRIVERS 16

static const struct cs_issuer_driver builtin_issuers[] = {
	{ .type = "local-ca",
	  .cfg_keys = localca_keys,
	  .cfg_size = sizeof(struct cs_cfg_localca),
	  .cfg_defaults = localca_defaults,
	  .check = localca_check,
	  .open = localca_open,
	  .ca_dir = localca_ca_dir,
	  .trust = localca_trust,
	  .work_dirs = localca_work_dirs },
	{ .type = "acme",
	  .cfg_keys = acme_keys,
	  .cfg_size = sizeof(struct cs_cfg_acme),
	  .cfg_defaults = acme_defaults,
	  .check = acme_check,
	  .open = acme_open,
	  .trust = acme_trust,
	  .work_dirs = acme_work_dirs },
};

static const struct cs_issuer_driver *issuers[MAX_ISSUER_DRIVERS] = { &builtin_issuers[0],
								       &builtin_issuers[1] };
static size_t n_issuers = 2;

bool cs_registry_issuer_is_acme(const struct cs_cfg_issuer *ci)
{
	return ci != NULL && ci->driver == &builtin_issuers[1];
}

const char *cs_registry_issuer_profile(const struct cs_cfg_issuer *ci)
{
	const struct cs_cfg_acme *a;

	if (!cs_registry_issuer_is_acme(ci) || ci->cfg == NULL)
		return NULL;
	a = ci->cfg;
	return a->profile != NULL && a->profile[0] != '\0' ? a->profile : NULL;
}

const struct cs_issuer_driver *cs_registry_issuer(const char *type)
{
	for (size_t i = 0; type != NULL && i < n_issuers; i++)
		if (strcmp(issuers[i]->type, type) == 0)
			return issuers[i];
	return NULL;
}

int cs_registry_add_issuer(const struct cs_issuer_driver *d)
{
	if (cs_registry_issuer(d->type) != NULL)
		return -EEXIST;
	if (n_issuers == MAX_ISSUER_DRIVERS)
		return -ENOSPC;
	issuers[n_issuers++] = d;
	return 0;
}

bool cs_registry_issuer_key_known(const char *key)
{
	for (size_t i = 0; i < n_issuers; i++) {
		if (cs_config__in_list(issuers[i]->keys, key))
			return true;
		for (const struct keydef *k = issuers[i]->cfg_keys; k != NULL && k->key; k++)
			if (strcmp(k->key, key) == 0)
				return true;
	}
	return false;
}

const char *cs_registry_issuer_types(char *buf, size_t len)
{
	size_t used = 0;

	if (len > 0)
		buf[0] = '\0';
	for (size_t i = 0; i < n_issuers && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
					 issuers[i]->type);
	return buf;
}

cs_issuer *cs_registry_issuer_open(uv_loop_t *loop, const struct cs_cfg_issuer *ci,
				   const char *state_dir)
{
	const struct cs_issuer_driver *d = ci->driver;
	char err[1024] = "", msg[1200];
	cs_issuer *is = NULL;

	if (d == NULL)
		snprintf(err, sizeof(err), "no issuer driver of type \"%s\"",
			 ci->type != NULL ? ci->type : "");
	else if ((is = d->open(loop, ci, state_dir, err, sizeof(err))) != NULL)
		return is;
	if (err[0] == '\0')
		snprintf(err, sizeof(err), "the %s driver could not make it", d->type);
	snprintf(msg, sizeof(msg), "issuer %s cannot be used: %s", ci->name, err);
	cs_err("%s", msg);
	return cs_issuer_broken_new(loop, ci->name, msg);
}

const char *cs_registry_issuer_ca_dir(const struct cs_cfg_issuer *ci)
{
	return ci->driver != NULL && ci->driver->ca_dir != NULL ? ci->driver->ca_dir(ci) : NULL;
}

void cs_registry_issuer_trust(const struct cs_cfg_issuer *ci, struct cs_validate_opts *o,
			      char *buf, size_t len)
{
	if (ci->driver != NULL && ci->driver->trust != NULL)
		ci->driver->trust(ci, o, buf, len);
}

size_t cs_registry_issuer_work_dirs(const struct cs_cfg_issuer *ci, char dirs[][4096],
				    size_t max)
{
	return ci->driver != NULL && ci->driver->work_dirs != NULL
		       ? ci->driver->work_dirs(ci, dirs, max)
		       : 0;
}

/* ---- reloaders -------------------------------------------------------------- */

static cs_reloader *postfix_open(uv_loop_t *loop, const struct cs_cfg_reload *cr,
				 const char *plugin_dir, char *err, size_t errlen)
{
	(void)plugin_dir;
	return cs_reloader_postfix_new(loop, cr->name, cr->config_dir, cr->timeout, err, errlen);
}

static cs_reloader *dovecot_open(uv_loop_t *loop, const struct cs_cfg_reload *cr,
				 const char *plugin_dir, char *err, size_t errlen)
{
	(void)plugin_dir;
	return cs_reloader_dovecot_new(loop, cr->name, cr->config, cr->pid_file, cr->timeout, err,
				       errlen);
}

static cs_reloader *exec_open(uv_loop_t *loop, const struct cs_cfg_reload *cr,
			      const char *plugin_dir, char *err, size_t errlen)
{
	(void)plugin_dir;
	return cs_reloader_exec_new(loop, cr->name, cr->command, cr->timeout, err, errlen);
}

static cs_reloader *plugin_open(uv_loop_t *loop, const struct cs_cfg_reload *cr,
				const char *plugin_dir, char *err, size_t errlen)
{
	return cs_reloader_plugin_new(loop, cr->name, plugin_dir, cr->plugin, cr->args,
				      cr->timeout, err, errlen);
}

static const char *const postfix_keys[] = { "config_dir", "timeout", NULL };
static const char *const dovecot_keys[] = { "config", "pid_file", "timeout", NULL };
static const char *const exec_keys[] = { "command", "timeout", NULL };
static const char *const plugin_keys[] = { "plugin", "args", "timeout", NULL };

static const struct cs_reloader_driver reloaders[] = {
	{ "postfix", postfix_keys, postfix_open },
	{ "dovecot", dovecot_keys, dovecot_open },
	{ "exec", exec_keys, exec_open },
	{ "plugin", plugin_keys, plugin_open },
};
#define N_RELOADERS (sizeof(reloaders) / sizeof(reloaders[0]))

const struct cs_reloader_driver *cs_registry_reloader(const char *type)
{
	for (size_t i = 0; type != NULL && i < N_RELOADERS; i++)
		if (strcmp(reloaders[i].type, type) == 0)
			return &reloaders[i];
	return NULL;
}

const char *cs_registry_reloader_types(char *buf, size_t len)
{
	size_t used = 0;

	if (len > 0)
		buf[0] = '\0';
	for (size_t i = 0; i < N_RELOADERS && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
					 reloaders[i].type);
	return buf;
}

cs_reloader *cs_registry_reloader_open(uv_loop_t *loop, const struct cs_cfg_reload *cr,
				       const char *plugin_dir)
{
	const struct cs_reloader_driver *d = cs_registry_reloader(cr->type_name);
	char err[1024] = "", msg[1200];
	cs_reloader *r = NULL;

	if (d == NULL)
		snprintf(err, sizeof(err), "no reloader driver of type \"%s\"",
			 cr->type_name != NULL ? cr->type_name : "");
	else if ((r = d->open(loop, cr, plugin_dir, err, sizeof(err))) != NULL)
		return r;
	snprintf(msg, sizeof(msg), "reload %s cannot be used: %s", cr->name, err);
	cs_err("%s", msg);
	return cs_reloader_broken_new(loop, cr->name, msg);
}
