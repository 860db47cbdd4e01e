/*
 * cs_config_int.h - what the files of cs_config share, and nothing outside
 * them may use: the raw sections as read (pairs with their lines), the
 * parser's state while files are read and sections built, the key tables'
 * types, and the functions one file calls in another (named cs_config__*).
 * The interface is cs_config.h.
 */
#ifndef CS_CONFIG_INT_H
#define CS_CONFIG_INT_H

#include "cs_config.h"
#include "cs_acme.h"
#include "cs_fp.h"
#include "cs_htab.h"
#include "cs_log.h"
#include "cs_probe.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <ini.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_LINE 4096
/* No configuration file comes near this; a larger one is not meant for us. */
#define MAX_FILE_BYTES (1024 * 1024)

struct raw_pair {
	char *key;
	char *value;
	int line;
	bool used;
};

/* A section in the parser's index by (type, name); allocated on its own, since
   the array of sections moves as it grows. */
struct sec_node {
	struct cs_htab_node node;
	size_t idx; /* in parser.secs */
};

struct raw_section {
	char *type; /* "agent", "cert", ... */
	char *name; /* NULL for [agent] */
	const char *file;
	int line;
	struct raw_pair *pairs;
	size_t n_pairs;
	struct sec_node *indexed;
};

struct parser {
	struct cs_config *cfg;
	struct cs_cfg_errors *errs;
	struct raw_section *secs;
	size_t n_secs, cap_secs;
	struct cs_htab sec_index; /* sections by (type, name): duplicates without a scan */
	/* the file being read */
	FILE *fp;
	const char *file;
	int line;
	bool bad_section; /* pairs of a malformed header are dropped */
	bool is_dropin;
	char *linebuf; /* getline's buffer for the file being read */
	size_t linecap;
	size_t bytes; /* read so far from the file */
	/* files that someone other than root or the agent's user may change */
	struct unsafe_file {
		const char *file;
		char why[PATH_MAX + 128];
	} *unsafe;
	size_t n_unsafe;
};

enum vtype {
	V_STR,
	V_PATH,
	V_LIVEDIR, /* an absolute path, or "none" */
	V_DURATION,
	V_DURATION0, /* a duration, or 0 ("0", "0s") */
	V_INTERVAL,  /* a duration, or 0 / none (struct cs_cfg_interval) */
	V_SPAN,
	V_KEYTYPE,
	V_MODE,
	V_BOOL,
	V_USER,
	V_GROUP,
	V_LIST,
	V_NAMES,
	V_URLS,
	V_CONTACTS,
	V_ENUM,
	V_LOGLEVEL,
	V_HOSTPORT,
	V_MAXORDERS, /* 1 to CS_ACME_MAX_ORDERS, an unsigned */
	V_COUNT,     /* 1 to CS_CFG_MAX_COUNT, an unsigned */
	V_DANE,      /* "3 1 1", "2 1 1" or "none": the usage, an int (0: none) */
	V_PORTS,     /* a list of TCP ports, 1 to 65535 */
	V_INCLUDE,
	V_REFUSED, /* recognised only to be refused: err says why (refused_keys) */
};

struct enum_val {
	const char *name;
	int value;
};

/* Sub-type masks: which keys a section of a given type accepts. */
#define ANY 0xffu
#define T(x) (1u << (x))

struct keydef {
	const char *key;
	enum vtype type;
	size_t off;
	unsigned applies;	  /* mask of sub-types (issuer or reload type) */
	const struct enum_val *e; /* for V_ENUM and V_STR enums stored as strings */
};

/* cs_config_error.c: errors and warnings, their order */
/* Appends a message to errs (which owns it); nothing on ENOMEM. */
void cs_config__add_error(struct cs_cfg_errors *errs, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Writes "[type "name"]" or "[agent]" into out. */
void cs_config__section_label(const struct raw_section *s, char *out, size_t len);
/* Returns word, or "(not shown)" when it does not look like a type, name or key. */
const char *cs_config__shown(const char *word);
/* Adds the error "FILE:LINE: [section] key: msg" at the line of kv. */
void cs_config__pair_error(struct parser *p, const struct raw_section *s,
			   const struct raw_pair *kv, const char *msg);
/* Adds the error "FILE:LINE: [section]: message" at the section's header. */
void cs_config__section_error(struct parser *p, const struct raw_section *s, const char *fmt,
			      ...) __attribute__((format(printf, 3, 4)));
/* Appends a warning to cfg->warnings (which owns it). */
void cs_config__add_warning(struct cs_config *cfg, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Puts errs in the order of cfg's files, then of lines (stable). */
void cs_config__sort_errors(struct cs_cfg_errors *errs, const struct cs_config *cfg);

/* cs_config_value.c: values the public parsers do not cover */
/* Returns 0 when s is an absolute path, or -1 with err set. */
int cs_config__parse_abs_path(const char *s, char *err, size_t errlen);
/* Splits s at commas into out (freed by the caller with cs_config__list_free, also on -1). */
int cs_config__parse_list(const char *s, struct cs_cfg_list *out, char *err, size_t errlen);
/* Frees l's items and array and empties it. */
void cs_config__list_free(struct cs_cfg_list *l);

/* cs_config.c: the key tables and storing values */
/* The names of the sub-types of [issuer], [reload] and [sni] (key "type"). */
extern const struct enum_val cs_config__e_reload_type[];
extern const struct enum_val cs_config__e_sni_type[];
/* The keys of each section, ended by a NULL key. */
extern const struct keydef cs_config__agent_keys[];
extern const struct keydef cs_config__issuer_keys[];
extern const struct keydef cs_config__cert_keys[];
extern const struct keydef cs_config__capath_keys[];
extern const struct keydef cs_config__clientcerts_keys[];
extern const struct keydef cs_config__sni_keys[];
extern const struct keydef cs_config__reload_keys[];
/* Returns buf holding the names of e, comma-separated. */
const char *cs_config__enum_names(const struct enum_val *e, char *buf, size_t len);
/* Returns the value named s in e, or -1. */
int cs_config__enum_lookup(const struct enum_val *e, const char *s);
/* Stores every pair of s into base through table; each bad pair is an error. */
void cs_config__apply_keys(struct parser *p, struct raw_section *s, const struct keydef *table,
			   void *base, int subtype, const char *subtype_name);

/*
 * Which keys of a table a section takes: those whose mask has subtype (-1:
 * every key), or, when allowed is set (a driver's keys, cs_registry.h), those
 * in always or allowed. type_name is for "not a key of type = ...".
 */
struct cs_config__keyset {
	int subtype;
	const char *type_name;
	const char *const *always;
	const char *const *allowed;
};
/* Stores every pair of s through table, as ks says; unknown keys are errors. */
void cs_config__apply_keyset(struct parser *p, struct raw_section *s, const struct keydef *table,
			     void *base, const struct cs_config__keyset *ks);
/* Whether the NULL-terminated list l (NULL: empty) holds key. */
bool cs_config__in_list(const char *const *l, const char *key);
/* "key=value" appended to l: 0 or -ENOMEM. */
int cs_config__list_push(struct cs_cfg_list *l, const char *key, const char *value);
/* Whether table has key. */
bool cs_config__has_key(const struct keydef *table, const char *key);
/* Stores value through d into base (0), or -1 with err set. */
int cs_config__store_value(const struct keydef *d, void *base, const char *value, char *err,
			   size_t errlen);
/* Frees what the values of table's keys hold in base (strings, lists). */
void cs_config__free_values(const struct keydef *table, void *base);

/* cs_config_read.c: phase one */
/* Reads path (a drop-in when dropin) into p's raw sections; failures are errors. */
void cs_config__read_file(struct parser *p, const char *path, bool dropin);
/* Reads the drop-ins that [agent] include names, relative to main_path. */
void cs_config__read_includes(struct parser *p, const char *main_path);
/* Returns the pair of s with key (owned by s), or NULL. */
const struct raw_pair *cs_config__find_pair(struct raw_section *s, const char *key);
/* Refuses what a file others may change says the agent runs; warns of the rest. */
void cs_config__check_unsafe_files(struct parser *p);
/* Frees p's raw sections, their index and the reader's buffers. */
void cs_config__free_raw(struct parser *p);

/* cs_config_build.c: phase two */
/* Builds p->cfg from p's raw sections, then runs the checks across sections. */
void cs_config__build_all(struct parser *p);

/* cs_config_check.c: checks across sections */
/* Reports each name in list for which exists finds no section of kind. */
void cs_config__check_refs(struct parser *p, struct raw_section *s, const char *key,
			   const struct cs_cfg_list *list, const char *kind,
			   bool (*exists)(const struct cs_config *, const char *));
/* True when cfg has a [reload "n"]. */
bool cs_config__has_reload(const struct cs_config *c, const char *n);
/* Reports the issuers and reloaders that certs, capaths and clientcerts name but lack. */
void cs_config__check_references(struct parser *p, struct raw_section **cert_secs,
				 struct raw_section **capath_secs, struct raw_section **cc_secs);
/* Reports each output that two certs write (cert_secs in the order of p->cfg->certs). */
void cs_config__check_output_paths(struct parser *p, struct raw_section **cert_secs);
/* Reports each output under /proc, /sys or /dev. */
void cs_config__check_system_paths(struct parser *p);
/*
 * Warns about each cert that wants a client certificate (usage = client, or
 * an output in a [clientcerts] dir) from an ACME issuer, and keeps the
 * warning in its client_warning (cert_secs as for check_output_paths).
 */
void cs_config__check_client_usage(struct parser *p, struct raw_section **cert_secs);

/*
 * The DANE keys of each cert hang together (cs_config_dane.c): defaults set,
 * what is missing or set without `dane` reported (cert_secs as for
 * check_output_paths).
 */
void cs_config__check_dane(struct parser *p, struct raw_section **cert_secs);

/* A [notify] section (cs_config_notify.c): its keys, defaults and checks. */
void cs_config__build_notify(struct parser *p, struct raw_section *s, struct cs_cfg_notify *n);
/* The [cert]s the [notify] sections name exist. */
void cs_config__check_notify(struct parser *p);
/* Frees what a [notify] section holds. */
void cs_config__free_notify(struct cs_cfg_notify *n);

/* cs_config_sni.c: the entries of [sni] */
/* Fills each [sni]'s entries and its certs' sni and reload (sni_secs in cfg's order). */
void cs_config__resolve_snis(struct parser *p, struct raw_section **sni_secs);

#endif
