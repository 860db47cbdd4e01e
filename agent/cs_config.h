/*
 * cs_config - certsync.conf and its drop-ins, parsed (with inih) into one
 * immutable struct cs_config.
 *
 * Parsing is strict and never stops at the first mistake: every unknown
 * section or key, bad value, duplicate and dangling reference becomes one
 * error "FILE:LINE: [section] key: message" in the error list, so that
 * `certsyncd --check-config` can print them all. A configuration with errors
 * is never handed to the agent: the caller keeps running on the old one.
 */
#ifndef CS_CONFIG_H
#define CS_CONFIG_H

#include "cs_issuer.h"
#include "cs_key.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Where a value came from, for messages that point at the configuration. */
struct cs_cfg_origin {
	const char *file; /* owned by struct cs_config's file list */
	int line;
};

/* renew_before / jitter: a share of the lifetime or a fixed duration. */
struct cs_cfg_span {
	bool is_percent;
	double percent;  /* 0..100 when is_percent */
	int64_t seconds; /* otherwise */
	bool set;        /* false: not given, use the default */
};

/* verify_interval: how often the served certificates are checked. */
struct cs_cfg_interval {
	int64_t seconds; /* 0: never ("0" or "none") */
	bool set;        /* false: not given, use the default */
};

struct cs_cfg_list {
	char **v;
	size_t n;
};

struct cs_cfg_agent {
	char *state_dir;
	char *socket;
	gid_t socket_group; /* (gid_t)-1 when not set */
	gid_t admin_group;  /* (gid_t)-1 when not set */
	mode_t socket_mode;
	char *plugin_dir;
	char *metrics_file; /* NULL when not set */
	int log_level;      /* enum cs_log_level */
	struct cs_cfg_span renew_before;
	struct cs_cfg_span jitter;
	int64_t retry_min; /* first retry after a failure, seconds (default 1m) */
	int64_t retry_max; /* longest wait between retries (default 6h) */
	int64_t settle;    /* quiet time before judging outputs others changed, s (default 3; 0: 100 ms) */
	char *live_dir;    /* default live directory of every cert; NULL: none */
	struct cs_cfg_interval verify_interval; /* drift checks (default 6h) */
	int64_t ari_interval; /* asking an ACME CA for the renewal window when it
				 says no Retry-After, s (default 6h, at most 12h) */
};

struct cs_issuer_driver;

/*
 * An [issuer]: its driver (from the registry, cs_registry.h, by `type`),
 * the key every type has (trust), and the driver's own values: the typed
 * keys it declares are stored in its configuration struct (cfg; for the
 * built-in drivers struct cs_cfg_localca and struct cs_cfg_acme, in
 * cs_registry.h), any other key it declares as "key=value" in params.
 */
struct cs_cfg_issuer {
	char *name;
	struct cs_cfg_origin origin;
	char *type;                            /* `type =` as written */
	const struct cs_issuer_driver *driver; /* its driver; NULL only in a refused configuration */
	char *trust;      /* CA file or hashed directory the chains end in, or that a
			     local CA accepts besides its own certificate (the driver says) */
	void *cfg;        /* the driver's values (its cfg_size bytes), NULL when it has none */
	struct cs_cfg_list params; /* "key=value" of the driver's untyped keys */
};

/*
 * The files of one generation in a live directory, indexed by enum
 * cs_output_kind (bundle, fullchain, cert, chain, key): bundle.pem,
 * fullchain.pem, cert.pem, chain.pem, privkey.pem.
 */
#define CS_CFG_LIVE_FILES 5
extern const char *const cs_cfg_live_files[CS_CFG_LIVE_FILES];

/* At most this many issuers in a [cert]'s `issuer` list. */
#define CS_CFG_MAX_ISSUERS 8
/* The largest value of a count (`failover_after`). */
#define CS_CFG_MAX_COUNT 100
/* failover_after when not set. */
#define CS_CFG_FAILOVER_AFTER 3

/* dane_update: how a cert's TLSA records are published (0: not said). */
enum cs_dane_update {
	CS_DANE_UPDATE_UNSET = 0,
	CS_DANE_UPDATE_NONE,    /* by hand: certsyncctl dane NAME says what */
	CS_DANE_UPDATE_RFC2136, /* nsupdate -k dane_tsig_key to dane_server */
	CS_DANE_UPDATE_HOOK,    /* dane_hook add|del OWNER RECORD */
};

/* A [cert]'s DANE keys (certsync.conf(5), "DANE"). */
struct cs_cfg_dane {
	int usage;                /* `dane = U 1 1`: 3 (DANE-EE) or 2 (DANE-TA); 0: off */
	struct cs_cfg_list ports; /* dane_ports: TCP ports (default 25) */
	struct cs_cfg_list names; /* dane_names: the hosts (default: the cert's names
				     that are not wildcards or addresses) */
	int update;               /* enum cs_dane_update */
	char *server;             /* dane_server: the zone's primary, ADDRESS:PORT */
	char *tsig_key;           /* dane_tsig_key: a key file nsupdate -k reads */
	char *zone;               /* dane_zone: NULL: nsupdate finds it */
	char *hook;               /* dane_hook: PROGRAM */
	char *resolver;           /* dane_resolver: a validating resolver (default
				     127.0.0.1:53) */
	int64_t ttl;              /* dane_ttl: of the records published, s (default 1h) */
};

struct cs_cfg_cert {
	char *name;
	struct cs_cfg_origin origin;
	char *issuer;          /* name of the first [issuer] of the list (the primary) */
	const struct cs_cfg_issuer *iss; /* that issuer, set once the configuration is
					    loaded; NULL in hand-made configurations
					    (then chains are not checked for trust) */
	struct cs_cfg_list issuers; /* `issuer = a, b, ...`: every [issuer], in the order
				       tried (issuers.v[0] equals issuer) */
	const struct cs_cfg_issuer *iss_all[CS_CFG_MAX_ISSUERS]; /* those issuers, set
					    with iss (iss_all[0] == iss) */
	size_t n_iss;          /* entries of iss_all; 0 in hand-made configurations */
	unsigned failover_after; /* failures in a row on one issuer before the next is
				    tried (cs_sched_failover); default CS_CFG_FAILOVER_AFTER */
	struct cs_cfg_list names;
	enum cs_keytype key;
	enum cs_usage usage;
	bool reuse_key;
	bool allow_foreign; /* adopt certificates that do not verify to the issuer */
	char *bundle, *fullchain, *cert, *chain, *keyfile;
	char *live_dir;        /* LIVE: LIVE/NAME leads to the current generation's
				  files (cs_livedir.h); NULL: none (`live_dir = none`,
				  or none in [agent]) */
	char *live_path[CS_CFG_LIVE_FILES]; /* LIVE/NAME/FILE for each of
					       cs_cfg_live_files; NULL without live_dir */
	uid_t owner;           /* (uid_t)-1 when not set */
	gid_t group;           /* (gid_t)-1 when not set */
	mode_t mode;           /* for files holding the key */
	mode_t cert_mode;      /* for files without the key */
	struct cs_cfg_list reload; /* names of [reload] sections */
	struct cs_cfg_list verify; /* URLs */
	int64_t verify_timeout;    /* seconds a probe may wait for the new certificate; 0: 30 */
	struct cs_cfg_interval verify_interval; /* overrides [agent] when set */
	struct cs_cfg_span renew_before; /* overrides [agent] when set */
	struct cs_cfg_span jitter;
	const struct cs_cfg_sni *const *sni; /* the [sni] sections that name this cert */
	size_t n_sni;
	char *client_warning; /* a client certificate asked of an ACME CA, which may
				 leave out clientAuth (`show`); NULL: none */
	struct cs_cfg_dane dane;
};

struct cs_cfg_capath {
	char *name;
	struct cs_cfg_origin origin;
	char *dir;
	char *cafile;
	struct cs_cfg_list issuers; /* local-ca issuers whose CA is published here */
	struct cs_cfg_list reload;
};

enum cs_fp_of { CS_FP_OF_CERT = 0, CS_FP_OF_PUBKEY };

struct cs_cfg_clientcerts {
	char *name;
	struct cs_cfg_origin origin;
	char *dir;
	char *map;
	int digest;     /* enum cs_digest */
	enum cs_fp_of fingerprint;
	char *map_type; /* hash | lmdb | cdb | texthash (no postmap) */
	struct cs_cfg_list reload;
};

enum cs_sni_type { CS_SNI_POSTFIX = 0, CS_SNI_DOVECOT };

/* One server name of an [sni] section and the files its server reads for it. */
struct cs_cfg_sni_entry {
	char *name;  /* as the table takes it: "*.example.com" is ".example.com" for Postfix */
	const struct cs_cfg_cert *cert;
	char *key;   /* NULL: chain holds the key first (a bundle) */
	char *chain; /* the leaf and its chain */
};

/*
 * [sni "NAME"]: a per-name table of the certs it lists, for Postfix
 * (tls_server_sni_maps, built with postmap -F) or Dovecot (an include of
 * local_name blocks). Its reload names are added to each of its certs'.
 */
struct cs_cfg_sni {
	char *name;
	struct cs_cfg_origin origin;
	enum cs_sni_type type;
	struct cs_cfg_list certs; /* [cert] names */
	char *map;                /* postfix: the map's source file */
	char *map_type;           /* postfix: hash (default), btree, lmdb, cdb */
	char *conf;               /* dovecot: the include file written */
	int dovecot_version;      /* dovecot: 23 or 24 (setting names) */
	mode_t mode;              /* of the files written (postfix 0600, dovecot 0644) */
	struct cs_cfg_list reload;
	char *config_dir;         /* postmap -c: a postfix reloader's config_dir; NULL: none */
	char *dovecot_config;     /* doveconf -c: a dovecot reloader's config; NULL: none */
	struct cs_cfg_sni_entry *entries;
	size_t n_entries;
};

enum cs_reload_type {
	CS_RELOAD_POSTFIX = 0,
	CS_RELOAD_DOVECOT,
	CS_RELOAD_EXEC,
	CS_RELOAD_PLUGIN,
};

struct cs_cfg_reload {
	char *name;
	struct cs_cfg_origin origin;
	enum cs_reload_type type;
	const char *type_name; /* `type =`: the name of its driver in the registry */
	char *config_dir; /* postfix */
	char *config;     /* dovecot */
	char *pid_file;   /* dovecot, optional */
	char *command;    /* exec: argv with shell-like quoting, no shell */
	int64_t timeout;  /* seconds, exec and plugin */
	char *plugin;     /* plugin: shared object name in plugin_dir */
	char *args;       /* plugin: free-form string handed to the plugin */
};

/* What a [notify] section tells about (`on =`), as bits. */
enum cs_notify_on {
	CS_NOTIFY_FAILURE = 1,  /* a renewal failed (once, until it recovers) */
	CS_NOTIFY_RECOVERY = 2, /* a renewal succeeded after a failure was told */
	CS_NOTIFY_RENEWAL = 4,  /* a renewal succeeded */
	CS_NOTIFY_EXPIRY = 8,   /* a failing cert has less than a third of its lifetime left */
};

/* [notify "NAME"]: who is told what, and how (certsync.conf(5), [notify]). */
struct cs_cfg_notify {
	char *name;
	struct cs_cfg_origin origin;
	unsigned on;              /* enum cs_notify_on bits (default failure, recovery,
				     expiry_warning) */
	struct cs_cfg_list on_list; /* `on =` as written */
	char *command;            /* argv with shell-like quoting, no shell; NULL: none */
	struct cs_cfg_list mail_to; /* addresses; empty: no mail */
	char *mail_from;          /* the envelope sender, NULL: sendmail's default */
	char *sendmail;           /* default /usr/sbin/sendmail */
	struct cs_cfg_list certs; /* the [cert]s it covers; empty: all */
	int64_t interval;         /* one message per cert and kind at most this often, s
				     (default 1h) */
	int64_t timeout;          /* the command's and sendmail's deadline, s (default 30) */
};

struct cs_config {
	struct cs_cfg_list files; /* every file read, main file first */
	struct cs_cfg_agent agent;
	struct cs_cfg_issuer *issuers;
	size_t n_issuers;
	struct cs_cfg_cert *certs;
	size_t n_certs;
	struct cs_cfg_capath *capaths;
	size_t n_capaths;
	struct cs_cfg_clientcerts *clientcerts;
	size_t n_clientcerts;
	struct cs_cfg_reload *reloads;
	size_t n_reloads;
	struct cs_cfg_sni *snis;
	size_t n_snis;
	struct cs_cfg_notify *notifies;
	size_t n_notifies;
	/* Complaints that do not stop the configuration from being used ("FILE: ..."). */
	struct cs_cfg_list warnings;
};

/* Every error found, in file and line order. */
struct cs_cfg_errors {
	char **v;
	size_t n;
};

/*
 * Parses the file at path and everything it includes. Returns the
 * configuration (free with cs_config_free) when there were no errors, else
 * NULL with all errors in *errs (free with cs_config_errors_free).
 */
struct cs_config *cs_config_load(const char *path, struct cs_cfg_errors *errs);

/* Frees the configuration; accepts NULL. */
void cs_config_free(struct cs_config *cfg);

/* Frees the strings in errs and empties it. */
void cs_config_errors_free(struct cs_cfg_errors *errs);

/* Lookups by name; return NULL when there is no such section. */
const struct cs_cfg_issuer *cs_config_issuer(const struct cs_config *cfg, const char *name);
const struct cs_cfg_reload *cs_config_reload(const struct cs_config *cfg, const char *name);
const struct cs_cfg_cert *cs_config_cert(const struct cs_config *cfg, const char *name);

/*
 * Value parsers, shared with the tests and the command line. Each returns 0,
 * or -1 with a message for a person in err.
 */
int cs_config_parse_duration(const char *s, int64_t *out, char *err, size_t errlen);
int cs_config_parse_span(const char *s, struct cs_cfg_span *out, char *err, size_t errlen);
int cs_config_parse_mode(const char *s, mode_t *out, char *err, size_t errlen);
int cs_config_parse_bool(const char *s, bool *out, char *err, size_t errlen);
int cs_config_parse_user(const char *s, uid_t *out, char *err, size_t errlen);
int cs_config_parse_group(const char *s, gid_t *out, char *err, size_t errlen);
int cs_config_parse_name(const char *s, char *err, size_t errlen);
int cs_config_parse_verify_url(const char *s, char *err, size_t errlen);

/* Formats a duration for people: "90d", "12h", "1d 6h". */
void cs_config_format_duration(int64_t seconds, char *out, size_t outlen);

#endif
