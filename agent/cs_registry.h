/*
 * cs_registry - the drivers the agent knows: one table of issuer types and one
 * of reloader types, each entry {type, configuration keys, constructor}, as
 * Postfix's dict_open.c has for its maps. The configuration parser asks the
 * registry which types exist and which keys each accepts; the pipeline asks it
 * to make an issuer or a reloader from a section. Neither names a concrete
 * driver: only this module (cs_registry.c) knows local-ca, acme, postfix,
 * dovecot, exec and plugin.
 *
 * A driver that is unknown, or whose constructor fails, becomes a surrogate
 * that fails each call with a message saying why, so that the agent runs on
 * and shows the problem in status, metrics and the log.
 *
 * To add a driver: write it behind the cs_issuer_ops (or cs_reloader_ops)
 * table, then add an entry here (or call cs_registry_add_issuer before the
 * configuration is read, as a test does). Not thread-safe: the registry is
 * filled before the loop starts and read on the loop thread.
 */
#ifndef CS_REGISTRY_H
#define CS_REGISTRY_H

#include "cs_issuer.h"
#include "cs_reloader.h"

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "cs_config.h"

struct cs_cfg_reload;
struct cs_validate_opts;
struct keydef; /* cs_config_int.h: a typed key of the configuration */

/* The values of a local-ca [issuer] (its cfg). */
struct cs_cfg_localca {
	char *dir;
	char *subject;
	enum cs_keytype key;
	int64_t validity;     /* seconds */
	int64_t ca_validity;  /* seconds */
	int64_t crl_validity; /* seconds; 0: validity (at least 7 days) */
	struct cs_cfg_span crl_renew_before; /* a share of the CRL's lifetime; !set: 50% */
};

enum cs_challenge {
	CS_CHALLENGE_HTTP01 = 0,
	CS_CHALLENGE_DNS01,
	CS_CHALLENGE_TLSALPN01,
};

/* The values of an acme [issuer] (its cfg). */
struct cs_cfg_acme {
	char *directory;
	struct cs_cfg_list contact;
	enum cs_challenge challenge;
	char *webroot;
	char *http_listen;
	char *dns_hook;
	char *ca_bundle; /* trust for the ACME server, and for chains without trust */
	char *eab_kid;
	char *eab_hmac_key;
	char *preferred_chain;
	char *profile;
	enum cs_keytype account_key;
	unsigned max_orders; /* orders in flight at once; 0: the issuer's default (4) */
};

/*
 * What a driver's check gets from the parser: error reports one problem of
 * the section, key naming the key it is about (NULL: the section as a whole;
 * the parser adds the file and line); given says whether the section has the
 * key at all (a key given with a bad value has had its error already, so a
 * "required" check asks this rather than whether the value is set).
 */
struct cs_registry_check {
	void (*error)(void *ctx, const char *key, const char *msg);
	bool (*given)(void *ctx, const char *key);
	void *ctx;
};

struct cs_issuer_driver {
	const char *type; /* the value of `type =` in [issuer] */
	/*
	 * The keys of [issuer] this type accepts besides `type` and `trust`:
	 * typed ones (cfg_keys, a table of struct keydef ending with a NULL key,
	 * whose offsets are into a struct of cfg_size bytes that the parser
	 * allocates as ci->cfg, cfg_defaults fills first and the parser frees
	 * with what its values hold), and untyped ones (keys, NULL-terminated),
	 * kept as "key=value" in ci->params for the driver to read.
	 */
	const struct keydef *cfg_keys;
	size_t cfg_size;
	void (*cfg_defaults)(void *cfg);
	const char *const *keys;
	/*
	 * Optional: defaults and the rules within one section, after its keys were
	 * stored; problems go to report.
	 */
	void (*check)(struct cs_cfg_issuer *ci, const struct cs_registry_check *ck);
	/* Makes the issuer of ci, or NULL with err set. */
	cs_issuer *(*open)(uv_loop_t *loop, const struct cs_cfg_issuer *ci,
			   const char *state_dir, char *err, size_t errlen);
	/* Optional: the directory of a CA kept on this host (its files are watched). */
	const char *(*ca_dir)(const struct cs_cfg_issuer *ci);
	/*
	 * Optional: what chains of certificates from ci must end in (buf, len:
	 * room for a path o may point to). Without it, nothing is checked.
	 */
	void (*trust)(const struct cs_cfg_issuer *ci, struct cs_validate_opts *o, char *buf,
		      size_t len);
	/*
	 * Optional: the directories where the driver writes through temporary
	 * names, which the start-up sweep cleans. Fills dirs (room for max),
	 * returns how many.
	 */
	size_t (*work_dirs)(const struct cs_cfg_issuer *ci, char dirs[][4096], size_t max);
};

struct cs_reloader_driver {
	const char *type; /* the value of `type =` in [reload] */
	const char *const *keys; /* accepted besides type, NULL-terminated */
	cs_reloader *(*open)(uv_loop_t *loop, const struct cs_cfg_reload *cr,
			     const char *plugin_dir, char *err, size_t errlen);
};

/* The issuer driver of type, or NULL. */
const struct cs_issuer_driver *cs_registry_issuer(const char *type);

/*
 * Adds an issuer driver (d must outlive the registry's use). Returns 0,
 * -EEXIST when its type is taken, -ENOSPC when the table is full.
 */
int cs_registry_add_issuer(const struct cs_issuer_driver *d);

/* Whether some issuer driver has a key of that name (typed or not). */
bool cs_registry_issuer_key_known(const char *key);

/* Whether ci is of the built-in type acme (an ACME CA). */
bool cs_registry_issuer_is_acme(const struct cs_cfg_issuer *ci);

/*
 * The profile ci asks its CA for (acme's `profile`), borrowed from ci;
 * NULL when it asks for none or its type has no profiles.
 */
const char *cs_registry_issuer_profile(const struct cs_cfg_issuer *ci);

/* The issuer types, "a, b, c", into buf (for messages). */
const char *cs_registry_issuer_types(char *buf, size_t len);

/*
 * Makes the issuer of ci with its driver; an unknown driver, or one that
 * fails, gives the surrogate (logged). NULL only on ENOMEM.
 */
cs_issuer *cs_registry_issuer_open(uv_loop_t *loop, const struct cs_cfg_issuer *ci,
				   const char *state_dir);

/* The CA directory of ci's driver (NULL: none on this host). */
const char *cs_registry_issuer_ca_dir(const struct cs_cfg_issuer *ci);

/* o's trust for certificates of ci (nothing when its driver says none). */
void cs_registry_issuer_trust(const struct cs_cfg_issuer *ci, struct cs_validate_opts *o,
			      char *buf, size_t len);

/* ci's driver's work directories (see work_dirs); 0 when none. */
size_t cs_registry_issuer_work_dirs(const struct cs_cfg_issuer *ci, char dirs[][4096],
				    size_t max);

/* The reloader driver of type, or NULL; likewise the list of types. */
const struct cs_reloader_driver *cs_registry_reloader(const char *type);
const char *cs_registry_reloader_types(char *buf, size_t len);

/* Makes the reloader of cr (the surrogate when it cannot). NULL only on ENOMEM. */
cs_reloader *cs_registry_reloader_open(uv_loop_t *loop, const struct cs_cfg_reload *cr,
				       const char *plugin_dir);

#endif
