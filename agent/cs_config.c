/*
 * cs_config - parse certsync.conf and its drop-ins. See cs_config.h.
 *
 * Two phases. First every file is read with inih into a list of raw sections
 * (type, name, line) holding raw key/value pairs with their lines; a reader
 * callback counts lines so that each pair knows where it came from. Then each
 * raw section is turned into its typed struct through a table of key
 * descriptors, and references between sections are checked. Errors are
 * collected, never fatal, so that one run reports all of them.
 */
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

/* ---- errors ---- */

static void cs_config__add_error(struct cs_cfg_errors *errs, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void cs_config__add_error(struct cs_cfg_errors *errs, const char *fmt, ...)
{
	va_list ap;
	char *msg;
	char **v;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (msg == NULL)
		return;
	v = realloc(errs->v, (errs->n + 1) * sizeof(*v));
	if (v == NULL) {
		free(msg);
		return;
	}
	errs->v = v;
	errs->v[errs->n++] = msg;
}

void cs_cfg_errors_free(struct cs_cfg_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		free(errs->v[i]);
	free(errs->v);
	errs->v = NULL;
	errs->n = 0;
}

/* "[cert "mail"]" or "[agent]", for messages. */
static void cs_config__section_label(const struct raw_section *s, char *out, size_t len)
{
	if (s->name != NULL)
		snprintf(out, len, "[%s \"%s\"]", s->type, s->name);
	else
		snprintf(out, len, "[%s]", s->type);
}

/*
 * A word taken from a line of a configuration file, or "(not shown)" when it
 * does not look like a section type, name or key. A file that is not INI at
 * all (a drop-in that is a link to /etc/shadow, a private key) must never have
 * its content echoed into the terminal or the journal.
 */
static const char *cs_config__shown(const char *word)
{
	size_t n = 0;

	for (const char *q = word; *q; q++, n++)
		if (!isalnum((unsigned char)*q) && *q != '-' && *q != '_' && *q != '.')
			return "(not shown)";
	return (n > 0 && n <= 40) ? word : "(not shown)";
}

static void cs_config__pair_error(struct parser *p, const struct raw_section *s,
				  const struct raw_pair *kv, const char *msg)
{
	char label[300];

	cs_config__section_label(s, label, sizeof(label));
	cs_config__add_error(p->errs, "%s:%d: %s %s: %s", s->file, kv->line, label,
			     cs_config__shown(kv->key), msg);
}

static void cs_config__section_error(struct parser *p, const struct raw_section *s,
				     const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void cs_config__section_error(struct parser *p, const struct raw_section *s,
				     const char *fmt, ...)
{
	char label[300], msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cs_config__section_label(s, label, sizeof(label));
	cs_config__add_error(p->errs, "%s:%d: %s: %s", s->file, s->line, label, msg);
}

/* ---- value parsers ---- */

int cs_cfg_parse_duration(const char *s, int64_t *out, char *err, size_t errlen)
{
	static const struct {
		char unit;
		int64_t seconds;
	} units[] = {
		{ 's', 1 },	   { 'm', 60 },	       { 'h', 3600 },
		{ 'd', 86400 }, { 'w', 7 * 86400 }, { 'y', 365 * 86400 },
	};
	const char *q = s;
	int64_t total = 0;
	bool any = false;

	while (*q != '\0') {
		char *end;
		long long n;

		while (*q == ' ')
			q++;
		if (*q == '\0')
			break;
		if (!isdigit((unsigned char)*q))
			goto bad;
		errno = 0;
		n = strtoll(q, &end, 10);
		if (errno != 0 || n > 1000000)
			goto bad;
		size_t i;
		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (*end == units[i].unit)
				break;
		if (i == sizeof(units) / sizeof(units[0]))
			goto bad;
		total += n * units[i].seconds;
		q = end + 1;
		any = true;
	}
	if (!any || total <= 0)
		goto bad;
	*out = total;
	return 0;
bad:
	snprintf(err, errlen,
		 "'%s' is not a duration (a number with a unit: 30s, 15m, 12h, 90d, 2w, 10y)", s);
	return -1;
}

void cs_cfg_format_duration(int64_t seconds, char *out, size_t outlen)
{
	static const struct {
		const char *unit;
		int64_t seconds;
	} units[] = { { "d", 86400 }, { "h", 3600 }, { "m", 60 }, { "s", 1 } };
	size_t used = 0;
	int parts = 0;

	out[0] = '\0';
	if (seconds <= 0) {
		snprintf(out, outlen, "0s");
		return;
	}
	for (size_t i = 0; i < 4 && parts < 2; i++) {
		int64_t n = seconds / units[i].seconds;
		if (n == 0)
			continue;
		seconds -= n * units[i].seconds;
		used += snprintf(out + used, used < outlen ? outlen - used : 0, "%s%lld%s",
				 parts ? " " : "", (long long)n, units[i].unit);
		parts++;
	}
}

int cs_cfg_parse_span(const char *s, struct cs_cfg_span *out, char *err, size_t errlen)
{
	size_t len = strlen(s);

	memset(out, 0, sizeof(*out));
	if (len > 0 && s[len - 1] == '%') {
		char *end;
		double v;

		errno = 0;
		v = strtod(s, &end);
		if (errno != 0 || end != s + len - 1 || len == 1 || !(v >= 0 && v < 100) ||
		    !isdigit((unsigned char)s[0])) {
			snprintf(err, errlen, "'%s' is not a percentage between 0%% and 99%%", s);
			return -1;
		}
		out->is_percent = true;
		out->percent = v;
		out->set = true;
		return 0;
	}
	if (cs_cfg_parse_duration(s, &out->seconds, err, errlen) < 0) {
		snprintf(err, errlen,
			 "'%s' is neither a percentage of the lifetime (33%%) nor a duration "
			 "(30d, 12h)",
			 s);
		return -1;
	}
	out->set = true;
	return 0;
}

int cs_cfg_parse_mode(const char *s, mode_t *out, char *err, size_t errlen)
{
	char *end;
	unsigned long v;

	if (s[0] != '0' || strlen(s) < 3 || strlen(s) > 5)
		goto bad;
	errno = 0;
	v = strtoul(s, &end, 8);
	if (errno != 0 || *end != '\0' || v > 07777)
		goto bad;
	*out = (mode_t)v;
	return 0;
bad:
	snprintf(err, errlen, "'%s' is not an octal file mode such as 0600 or 0644", s);
	return -1;
}

int cs_cfg_parse_bool(const char *s, bool *out, char *err, size_t errlen)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	snprintf(err, errlen, "'%s' is not yes or no", s);
	return -1;
}

static bool all_digits(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

int cs_cfg_parse_user(const char *s, uid_t *out, char *err, size_t errlen)
{
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (all_digits(s)) {
		*out = (uid_t)strtoul(s, NULL, 10);
		return 0;
	}
	if (getpwnam_r(s, &pw, buf, sizeof(buf), &res) != 0 || res == NULL) {
		snprintf(err, errlen, "unknown user '%s'", s);
		return -1;
	}
	*out = pw.pw_uid;
	return 0;
}

int cs_cfg_parse_group(const char *s, gid_t *out, char *err, size_t errlen)
{
	struct group gr, *res = NULL;
	char buf[8192];

	if (all_digits(s)) {
		*out = (gid_t)strtoul(s, NULL, 10);
		return 0;
	}
	if (getgrnam_r(s, &gr, buf, sizeof(buf), &res) != 0 || res == NULL) {
		snprintf(err, errlen, "unknown group '%s'", s);
		return -1;
	}
	*out = gr.gr_gid;
	return 0;
}

static bool is_ip(const char *s)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

int cs_cfg_parse_name(const char *s, char *err, size_t errlen)
{
	size_t len = strlen(s);
	const char *label = s;

	if (is_ip(s))
		return 0;
	if (len == 0 || len > 253)
		goto bad;
	if (strncmp(s, "*.", 2) == 0)
		label = s + 2;
	for (const char *q = label;;) {
		const char *dot = strchr(q, '.');
		size_t l = dot ? (size_t)(dot - q) : strlen(q);

		if (l == 0 || l > 63 || q[0] == '-' || q[l - 1] == '-')
			goto bad;
		for (size_t i = 0; i < l; i++)
			if (!isalnum((unsigned char)q[i]) && q[i] != '-')
				goto bad;
		if (dot == NULL)
			break;
		q = dot + 1;
	}
	return 0;
bad:
	snprintf(err, errlen,
		 "'%s' is neither a DNS name (letters, digits, hyphens, dots; "
		 "a leading '*.' allowed) nor an IP address",
		 s);
	return -1;
}

/*
 * A verify URL is checked by the parser the probes use (cs_probe_url_parse):
 * what the configuration accepts is exactly what can be probed, and the
 * schemes are listed in one place.
 */
int cs_cfg_parse_verify_url(const char *s, char *err, size_t errlen)
{
	struct cs_probe_url u;
	char why[600];

	if (cs_probe_url_parse(s, &u, why, sizeof(why)) == 0)
		return 0;
	snprintf(err, errlen,
		 "'%s' is not a verify URL (smtp://, submission://, imap://, pop3://, "
		 "sieve://, smtps://, imaps:// or pop3s:// HOST[:PORT][?sni=NAME])",
		 s);
	return -1;
}

static int cs_config__parse_abs_path(const char *s, char *err, size_t errlen)
{
	if (s[0] != '/') {
		snprintf(err, errlen, "'%s' is not an absolute path", s);
		return -1;
	}
	return 0;
}

/* Splits a comma-separated list; empty items are an error. */
static int cs_config__parse_list(const char *s, struct cs_cfg_list *out, char *err, size_t errlen)
{
	const char *q = s;

	memset(out, 0, sizeof(*out));
	for (;;) {
		const char *comma = strchr(q, ',');
		size_t len = comma ? (size_t)(comma - q) : strlen(q);

		while (len > 0 && isspace((unsigned char)*q)) {
			q++;
			len--;
		}
		while (len > 0 && isspace((unsigned char)q[len - 1]))
			len--;
		if (len == 0) {
			snprintf(err, errlen, "empty item in the list '%s'", s);
			return -1;
		}
		char **v = realloc(out->v, (out->n + 1) * sizeof(*v));
		if (v == NULL)
			return -1;
		out->v = v;
		out->v[out->n] = strndup(q, len);
		if (out->v[out->n++] == NULL)
			return -1;
		if (comma == NULL)
			return 0;
		q = comma + 1;
	}
}

static void cs_config__list_free(struct cs_cfg_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* ---- key tables ---- */

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
	V_INCLUDE,
};

struct enum_val {
	const char *name;
	int value;
};

static const struct enum_val cs_config__e_issuer_type[] = { { "local-ca", CS_ISSUER_LOCAL_CA },
							    { "acme", CS_ISSUER_ACME },
							    { NULL, 0 } };
static const struct enum_val e_challenge[] = { { "http-01", CS_CHALLENGE_HTTP01 },
					       { "dns-01", CS_CHALLENGE_DNS01 },
					       { "tls-alpn-01", CS_CHALLENGE_TLSALPN01 },
					       { NULL, 0 } };
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
static const struct enum_val cs_config__e_reload_type[] = { { "postfix", CS_RELOAD_POSTFIX },
							    { "dovecot", CS_RELOAD_DOVECOT },
							    { "exec", CS_RELOAD_EXEC },
							    { "plugin", CS_RELOAD_PLUGIN },
							    { NULL, 0 } };
static const struct enum_val cs_config__e_sni_type[] = { { "postfix", CS_SNI_POSTFIX },
							 { "dovecot", CS_SNI_DOVECOT },
							 { NULL, 0 } };
static const struct enum_val e_sni_map_type[] = { { "hash", 0 },	 { "btree", 1 },
						  { "lmdb", 2 },	 { "cdb", 3 },
						  { NULL, 0 } };
static const struct enum_val e_dovecot_version[] = { { "2.3", 23 }, { "2.4", 24 }, { NULL, 0 } };
static const struct enum_val e_map_type[] = { { "hash", 0 },	 { "lmdb", 1 }, { "cdb", 2 },
					      { "btree", 3 },	 { "texthash", 4 },
					      { NULL, 0 } };

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

#define AG(f) offsetof(struct cs_cfg_agent, f)
static const struct keydef cs_config__agent_keys[] = {
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
	{ "live_dir", V_LIVEDIR, AG(live_dir), ANY, NULL },
	{ "include", V_INCLUDE, 0, ANY, NULL },
	{ NULL, 0, 0, 0, NULL },
};

#define LOCAL T(CS_ISSUER_LOCAL_CA)
#define ACME T(CS_ISSUER_ACME)
#define IS(f) offsetof(struct cs_cfg_issuer, f)
static const struct keydef cs_config__issuer_keys[] = {
	{ "type", V_ENUM, IS(type), ANY, cs_config__e_issuer_type },
	{ "dir", V_PATH, IS(dir), LOCAL, NULL },
	{ "subject", V_STR, IS(subject), LOCAL, NULL },
	{ "key", V_KEYTYPE, IS(key), LOCAL, NULL },
	{ "validity", V_DURATION, IS(validity), LOCAL, NULL },
	{ "ca_validity", V_DURATION, IS(ca_validity), LOCAL, NULL },
	{ "crl_validity", V_DURATION, IS(crl_validity), LOCAL, NULL },
	{ "crl_renew_before", V_SPAN, IS(crl_renew_before), LOCAL, NULL },
	{ "directory", V_STR, IS(directory), ACME, NULL },
	{ "contact", V_CONTACTS, IS(contact), ACME, NULL },
	{ "challenge", V_ENUM, IS(challenge), ACME, e_challenge },
	{ "webroot", V_PATH, IS(webroot), ACME, NULL },
	{ "http_listen", V_HOSTPORT, IS(http_listen), ACME, NULL },
	{ "dns_hook", V_PATH, IS(dns_hook), ACME, NULL },
	{ "ca_bundle", V_PATH, IS(ca_bundle), ACME, NULL },
	{ "trust", V_PATH, IS(trust), ANY, NULL },
	{ "eab_kid", V_STR, IS(eab_kid), ACME, NULL },
	{ "eab_hmac_key", V_STR, IS(eab_hmac_key), ACME, NULL },
	{ "preferred_chain", V_STR, IS(preferred_chain), ACME, NULL },
	{ "profile", V_STR, IS(profile), ACME, NULL },
	{ "account_key", V_KEYTYPE, IS(account_key), ACME, NULL },
	{ "max_orders", V_MAXORDERS, IS(max_orders), ACME, NULL },
	{ NULL, 0, 0, 0, NULL },
};

#define CE(f) offsetof(struct cs_cfg_cert, f)
static const struct keydef cs_config__cert_keys[] = {
	{ "issuer", V_STR, CE(issuer), ANY, NULL },
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
	{ NULL, 0, 0, 0, NULL },
};

#define CP(f) offsetof(struct cs_cfg_capath, f)
static const struct keydef cs_config__capath_keys[] = {
	{ "dir", V_PATH, CP(dir), ANY, NULL },
	{ "cafile", V_PATH, CP(cafile), ANY, NULL },
	{ "issuers", V_LIST, CP(issuers), ANY, NULL },
	{ "reload", V_LIST, CP(reload), ANY, NULL },
	{ NULL, 0, 0, 0, NULL },
};

#define CC(f) offsetof(struct cs_cfg_clientcerts, f)
static const struct keydef cs_config__clientcerts_keys[] = {
	{ "dir", V_PATH, CC(dir), ANY, NULL },
	{ "map", V_PATH, CC(map), ANY, NULL },
	{ "digest", V_ENUM, CC(digest), ANY, e_digest },
	{ "fingerprint", V_ENUM, CC(fingerprint), ANY, e_fp_of },
	{ "map_type", V_STR, CC(map_type), ANY, e_map_type },
	{ "reload", V_LIST, CC(reload), ANY, NULL },
	{ NULL, 0, 0, 0, NULL },
};

#define SN(f) offsetof(struct cs_cfg_sni, f)
static const struct keydef cs_config__sni_keys[] = {
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
static const struct keydef cs_config__reload_keys[] = {
	{ "type", V_ENUM, RL(type), ANY, cs_config__e_reload_type },
	{ "config_dir", V_PATH, RL(config_dir), T(CS_RELOAD_POSTFIX), NULL },
	{ "config", V_PATH, RL(config), T(CS_RELOAD_DOVECOT), NULL },
	{ "pid_file", V_PATH, RL(pid_file), T(CS_RELOAD_DOVECOT), NULL },
	{ "command", V_STR, RL(command), T(CS_RELOAD_EXEC), NULL },
	{ "timeout", V_DURATION, RL(timeout), ANY, NULL },
	{ "plugin", V_STR, RL(plugin), T(CS_RELOAD_PLUGIN), NULL },
	{ "args", V_STR, RL(args), T(CS_RELOAD_PLUGIN), NULL },
	{ NULL, 0, 0, 0, NULL },
};

static const char *cs_config__enum_names(const struct enum_val *e, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (; e->name; e++)
		used += snprintf(buf + used, used < len ? len - used : 0, "%s%s",
				 used ? ", " : "", e->name);
	return buf;
}

static int cs_config__enum_lookup(const struct enum_val *e, const char *s)
{
	for (; e->name; e++)
		if (strcmp(e->name, s) == 0)
			return e->value;
	return -1;
}

/*
 * Stores one value into the struct at base. Returns 0, or -1 with err set.
 * V_INCLUDE is handled by the caller.
 */
static int store_value(const struct keydef *d, void *base, const char *value, char *err,
		       size_t errlen)
{
	char *field = (char *)base + d->off;
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
		free(*(char **)field);
		*(char **)field = strdup(value);
		return 0;
	case V_LIVEDIR:
		if (strcmp(value, "none") != 0 && cs_config__parse_abs_path(value, err, errlen) < 0)
			return -1;
		free(*(char **)field);
		*(char **)field = strdup(value);
		return 0;
	case V_PATH:
		if (cs_config__parse_abs_path(value, err, errlen) < 0)
			return -1;
		free(*(char **)field);
		*(char **)field = strdup(value);
		return 0;
	case V_HOSTPORT: {
		const char *colon = strrchr(value, ':');
		char *end;
		long port;

		if (colon == NULL || colon == value)
			goto bad_hostport;
		port = strtol(colon + 1, &end, 10);
		if (*end != '\0' || port < 1 || port > 65535)
			goto bad_hostport;
		free(*(char **)field);
		*(char **)field = strdup(value);
		return 0;
bad_hostport:
		snprintf(err, errlen, "'%s' is not ADDRESS:PORT (e.g. 0.0.0.0:80 or [::]:80)",
			 value);
		return -1;
	}
	case V_MAXORDERS: {
		char *end;
		unsigned long n;

		errno = 0;
		n = strtoul(value, &end, 10);
		if (!isdigit((unsigned char)*value) || *end != '\0' || errno != 0 || n < 1 ||
		    n > CS_ACME_MAX_ORDERS) {
			snprintf(err, errlen, "'%s' is not a number from 1 to %d", value,
				 CS_ACME_MAX_ORDERS);
			return -1;
		}
		*(unsigned *)field = (unsigned)n;
		return 0;
	}
	case V_DURATION0:
		if (strcmp(value, "0") == 0 || strcmp(value, "0s") == 0) {
			*(int64_t *)field = 0;
			return 0;
		}
		/* fall through */
	case V_DURATION:
		return cs_cfg_parse_duration(value, (int64_t *)field, err, errlen);
	case V_INTERVAL: {
		struct cs_cfg_interval *iv = (struct cs_cfg_interval *)field;
		bool off = strcmp(value, "0") == 0 || strcmp(value, "0s") == 0 ||
			   strcmp(value, "none") == 0;

		if (!off && cs_cfg_parse_duration(value, &iv->seconds, err, errlen) < 0)
			return -1;
		if (off)
			iv->seconds = 0;
		iv->set = true;
		return 0;
	}
	case V_SPAN:
		return cs_cfg_parse_span(value, (struct cs_cfg_span *)field, err, errlen);
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
		return cs_cfg_parse_mode(value, (mode_t *)field, err, errlen);
	case V_BOOL:
		return cs_cfg_parse_bool(value, (bool *)field, err, errlen);
	case V_USER:
		return cs_cfg_parse_user(value, (uid_t *)field, err, errlen);
	case V_GROUP:
		return cs_cfg_parse_group(value, (gid_t *)field, err, errlen);
	case V_LIST:
	case V_NAMES:
	case V_URLS:
	case V_CONTACTS: {
		struct cs_cfg_list l;

		if (cs_config__parse_list(value, &l, err, errlen) < 0) {
			cs_config__list_free(&l);
			return -1;
		}
		for (size_t i = 0; i < l.n; i++) {
			int rc = 0;

			if (d->type == V_NAMES)
				rc = cs_cfg_parse_name(l.v[i], err, errlen);
			else if (d->type == V_URLS)
				rc = cs_cfg_parse_verify_url(l.v[i], err, errlen);
			else if (d->type == V_CONTACTS && strncmp(l.v[i], "mailto:", 7) != 0) {
				snprintf(err, errlen, "'%s' is not a mailto: URL", l.v[i]);
				rc = -1;
			}
			if (rc < 0) {
				cs_config__list_free(&l);
				return -1;
			}
		}
		cs_config__list_free((struct cs_cfg_list *)field);
		*(struct cs_cfg_list *)field = l;
		return 0;
	}
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
	}
	return 0;
}

/* ---- phase 1: reading files ---- */

static void trim(char *s)
{
	char *start = s, *end;

	while (isspace((unsigned char)*start))
		start++;
	end = start + strlen(start);
	while (end > start && isspace((unsigned char)end[-1]))
		end--;
	memmove(s, start, (size_t)(end - start));
	s[end - start] = '\0';
}

static bool valid_section_name(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
			return false;
	return true;
}

static const char *const section_types[] = { "agent",	    "issuer", "cert", "capath",
					      "clientcerts", "sni",    "reload", NULL };

/* Parses a section header line: [type "name"] or [agent]. */
static void start_section(struct parser *p, const char *line)
{
	char buf[MAX_LINE];
	char *close, *type, *name = NULL;
	size_t i;

	p->bad_section = true;
	snprintf(buf, sizeof(buf), "%s", line + 1);
	close = strrchr(buf, ']');
	if (close == NULL) {
		cs_config__add_error(p->errs, "%s:%d: section header without ']'", p->file,
				     p->line);
		return;
	}
	*close = '\0';
	trim(buf);
	type = buf;
	char *sp = strpbrk(buf, " \t");
	if (sp != NULL) {
		*sp = '\0';
		name = sp + 1;
		trim(name);
		size_t nl = strlen(name);
		if (nl < 2 || name[0] != '"' || name[nl - 1] != '"') {
			cs_config__add_error(
				p->errs,
				"%s:%d: [%s]: the section name must be in double quotes: "
				"[%s \"NAME\"]",
				p->file, p->line, cs_config__shown(type), cs_config__shown(type));
			return;
		}
		name[nl - 1] = '\0';
		name++;
	}
	for (i = 0; section_types[i]; i++)
		if (strcmp(type, section_types[i]) == 0)
			break;
	if (section_types[i] == NULL) {
		cs_config__add_error(
			p->errs,
			"%s:%d: [%s]: unknown section (known: agent, issuer, cert, capath, "
			"clientcerts, sni, reload)",
			p->file, p->line, cs_config__shown(type));
		return;
	}
	if (strcmp(type, "agent") == 0) {
		if (name != NULL) {
			cs_config__add_error(p->errs, "%s:%d: [agent]: this section takes no name",
					     p->file, p->line);
			return;
		}
		if (p->is_dropin) {
			cs_config__add_error(
				p->errs,
				"%s:%d: [agent]: only the main configuration file may hold "
				"[agent]",
				p->file, p->line);
			return;
		}
	} else if (name == NULL) {
		cs_config__add_error(p->errs,
				     "%s:%d: [%s]: this section needs a name: [%s \"NAME\"]",
				     p->file, p->line, type, type);
		return;
	} else if (!valid_section_name(name)) {
		cs_config__add_error(
			p->errs,
			"%s:%d: [%s \"%s\"]: a name may hold only letters, digits, '-', '_' "
			"and '.'",
			p->file, p->line, type, name);
		return;
	}
	/* Duplicate section names, in this file or an earlier one. */
	uint64_t h = cs_htab_hash(name != NULL ? name : "", cs_htab_hash(type, CS_HTAB_SEED));
	for (struct cs_htab_node *n = cs_htab_first(&p->sec_index, h); n != NULL;
	     n = cs_htab_next(n, h)) {
		struct raw_section *o = &p->secs[cs_htab_entry(n, struct sec_node, node)->idx];
		if (strcmp(o->type, type) != 0)
			continue;
		if ((name == NULL && o->name == NULL) ||
		    (name != NULL && o->name != NULL && strcmp(name, o->name) == 0)) {
			cs_config__add_error(
				p->errs,
				"%s:%d: [%s%s%s%s]: duplicate section, first defined at %s:%d",
				p->file, p->line, type, name ? " \"" : "", name ? name : "",
				name ? "\"" : "", o->file, o->line);
			return;
		}
	}
	if (p->n_secs == p->cap_secs) {
		size_t cap = p->cap_secs ? p->cap_secs * 2 : 16;
		struct raw_section *secs = realloc(p->secs, cap * sizeof(*secs));
		if (secs == NULL)
			return;
		p->secs = secs;
		p->cap_secs = cap;
	}
	struct sec_node *sn = calloc(1, sizeof(*sn));
	if (sn == NULL)
		return;
	sn->idx = p->n_secs;
	if (cs_htab_insert(&p->sec_index, &sn->node, h) < 0) {
		free(sn);
		return;
	}
	struct raw_section *s = &p->secs[p->n_secs++];
	memset(s, 0, sizeof(*s));
	s->type = strdup(type);
	s->name = name ? strdup(name) : NULL;
	s->file = p->file;
	s->line = p->line;
	s->indexed = sn;
	p->bad_section = false;
}

/*
 * inih's reader: hands over one line at a time so that p->line always names
 * the line the handler is looking at, and checks the lines inih would treat
 * loosely: section headers (validated here) and lines with no '='.
 */
static char *reader(char *str, int num, void *stream)
{
	struct parser *p = stream;

	for (;;) {
		ssize_t len = getline(&p->linebuf, &p->linecap, p->fp);
		if (len < 0)
			return NULL;
		p->line++;
		p->bytes += (size_t)len;
		if (p->bytes > MAX_FILE_BYTES) {
			cs_config__add_error(
				p->errs,
				"%s:%d: the file is larger than %d bytes; not read further",
				p->file, p->line, MAX_FILE_BYTES);
			return NULL;
		}
		char *line = p->linebuf;
		/* A NUL would silently cut the value short: refuse the line instead. */
		if (memchr(line, '\0', (size_t)len) != NULL) {
			cs_config__add_error(p->errs, "%s:%d: the line holds a NUL byte", p->file,
					     p->line);
			continue;
		}
		if (len > MAX_LINE - 2) {
			cs_config__add_error(p->errs, "%s:%d: line longer than %d characters",
					     p->file, p->line, MAX_LINE - 2);
			continue;
		}
		char t[MAX_LINE];
		snprintf(t, sizeof(t), "%s", line);
		trim(t);
		if (t[0] == '\0' || t[0] == '#' || t[0] == ';')
			continue;
		if (t[0] == '[') {
			start_section(p, t);
			/* inih still needs the header to track its own section. */
			snprintf(str, (size_t)num, "%s\n", t);
			return str;
		}
		if (strchr(t, '=') == NULL) {
			/* Never the line itself: it may be a secret from a file that is not ours. */
			cs_config__add_error(p->errs,
					     "%s:%d: expected 'key = value' or a [section] header "
					     "(the line is not shown)",
					     p->file, p->line);
			continue;
		}
		/*
		 * Inline comments start with '#' or ';' after white space, as in
		 * the documented examples; inih alone would only know ';'.
		 */
		for (char *q = t + 1; *q; q++) {
			if ((*q == '#' || *q == ';') && isspace((unsigned char)q[-1])) {
				*q = '\0';
				trim(t);
				break;
			}
		}
		/* Leading white space would make inih treat this as a continuation. */
		if ((int)strlen(t) + 2 > num) {
			cs_config__add_error(p->errs, "%s:%d: line too long", p->file, p->line);
			continue;
		}
		snprintf(str, (size_t)num, "%s\n", t);
		return str;
	}
}

/* Whether name is a key of any section: only then is it shown out of context. */
static bool known_key(const char *name)
{
	static const struct keydef *const tables[] = {
		cs_config__agent_keys,	cs_config__issuer_keys,	     cs_config__cert_keys,
		cs_config__capath_keys, cs_config__clientcerts_keys, cs_config__sni_keys,
		cs_config__reload_keys
	};

	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
		for (const struct keydef *d = tables[t]; d->key; d++)
			if (strcmp(d->key, name) == 0)
				return true;
	return false;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct parser *p = user;

	(void)section;
	if (p->bad_section)
		return 1;
	if (p->n_secs == 0 || p->secs[p->n_secs - 1].file != p->file) {
		if (known_key(name))
			cs_config__add_error(p->errs, "%s:%d: %s: key outside of any section",
					     p->file, p->line, name);
		else
			cs_config__add_error(
				p->errs,
				"%s:%d: 'key = value' outside of any section (the line "
				"is not shown)",
				p->file, p->line);
		return 1;
	}
	struct raw_section *s = &p->secs[p->n_secs - 1];
	for (size_t i = 0; i < s->n_pairs; i++) {
		if (strcmp(s->pairs[i].key, name) == 0) {
			char label[300];
			cs_config__section_label(s, label, sizeof(label));
			cs_config__add_error(
				p->errs, "%s:%d: %s %s: duplicate key, first set at line %d",
				p->file, p->line, label, cs_config__shown(name), s->pairs[i].line);
			return 1;
		}
	}
	struct raw_pair *pairs = realloc(s->pairs, (s->n_pairs + 1) * sizeof(*pairs));
	if (pairs == NULL)
		return 0;
	s->pairs = pairs;
	struct raw_pair *kv = &s->pairs[s->n_pairs++];
	kv->key = strdup(name);
	kv->value = strdup(value);
	kv->line = p->line;
	kv->used = false;
	return 1;
}

static const char *remember_file(struct cs_config *cfg, const char *path)
{
	char **v = realloc(cfg->files.v, (cfg->files.n + 1) * sizeof(*v));

	if (v == NULL)
		return path;
	cfg->files.v = v;
	cfg->files.v[cfg->files.n] = strdup(path);
	return cfg->files.v[cfg->files.n++];
}

/*
 * Who besides root and the agent's own user could change what st describes:
 * writes the reason into why (empty when nobody). A directory with the sticky
 * bit lets nobody replace another user's file in it.
 */
static void who_can_write(const struct stat *st, bool is_dir, char *why, size_t len)
{
	bool sticky = is_dir && (st->st_mode & S_ISVTX);

	why[0] = '\0';
	if (st->st_uid != 0 && st->st_uid != geteuid())
		snprintf(why, len, "owned by uid %lu", (unsigned long)st->st_uid);
	else if ((st->st_mode & S_IWOTH) && !sticky)
		snprintf(why, len, "writable by everyone (mode %04o)", st->st_mode & 07777);
	else if ((st->st_mode & S_IWGRP) && st->st_gid != 0 && !sticky)
		snprintf(why, len, "writable by group %lu (mode %04o)", (unsigned long)st->st_gid,
			 st->st_mode & 07777);
}

/* Remembers when someone other than root or us can change path (st) or its directory. */
static void check_writers(struct parser *p, const char *path, const struct stat *st)
{
	char why[PATH_MAX + 128], dir[PATH_MAX];
	struct stat dst;

	who_can_write(st, false, why, sizeof(why));
	if (why[0] == '\0') {
		snprintf(dir, sizeof(dir), "%s", path);
		char *d = dirname(dir);
		if (stat(d, &dst) == 0) {
			char dwhy[100];
			who_can_write(&dst, true, dwhy, sizeof(dwhy));
			if (dwhy[0] != '\0')
				snprintf(why, sizeof(why), "in the directory %s, %s", d, dwhy);
		}
	}
	if (why[0] == '\0')
		return;
	struct unsafe_file *u = realloc(p->unsafe, (p->n_unsafe + 1) * sizeof(*u));
	if (u == NULL)
		return;
	p->unsafe = u;
	u = &p->unsafe[p->n_unsafe++];
	u->file = p->file;
	snprintf(u->why, sizeof(u->why), "%s", why);
}

/*
 * Opens a configuration file without ever blocking (a FIFO or a device put
 * in its place) and, for a drop-in, without following a symbolic link: the
 * drop-in directory is where others are most likely to be able to put one.
 */
static void cs_config__read_file(struct parser *p, const char *path, bool dropin)
{
	struct stat st;
	FILE *fp;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (dropin ? O_NOFOLLOW : 0));

	if (fd < 0) {
		if (dropin && errno == ELOOP)
			cs_config__add_error(
				p->errs,
				"%s: is a symbolic link; a drop-in must be a regular file "
				"(copy it here, or add its directory to include)",
				path);
		else
			cs_config__add_error(p->errs, "%s: cannot read: %s", path, strerror(errno));
		return;
	}
	if (fstat(fd, &st) < 0) {
		cs_config__add_error(p->errs, "%s: cannot read: %s", path, strerror(errno));
		close(fd);
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		cs_config__add_error(
			p->errs,
			"%s: not a regular file (a FIFO, device, socket or directory); refused",
			path);
		close(fd);
		return;
	}
	if (st.st_size > MAX_FILE_BYTES) {
		cs_config__add_error(p->errs,
				     "%s: %lld bytes, larger than %d: not a configuration file",
				     path, (long long)st.st_size, MAX_FILE_BYTES);
		close(fd);
		return;
	}
	if ((fp = fdopen(fd, "r")) == NULL) {
		cs_config__add_error(p->errs, "%s: cannot read: %s", path, strerror(errno));
		close(fd);
		return;
	}
	p->bytes = 0;
	p->fp = fp;
	p->file = remember_file(p->cfg, path);
	p->line = 0;
	p->bad_section = true; /* until the first header */
	p->is_dropin = dropin;
	check_writers(p, path, &st);
	/* Keys before any section are reported by the handler. */
	p->bad_section = false;
	ini_parse_stream(reader, p, handler, p);
	fclose(fp);
	p->fp = NULL;
}

/* ---- phase 2: typed sections ---- */

static const struct raw_pair *cs_config__find_pair(struct raw_section *s, const char *key)
{
	for (size_t i = 0; i < s->n_pairs; i++)
		if (strcmp(s->pairs[i].key, key) == 0)
			return &s->pairs[i];
	return NULL;
}

/*
 * Stores every pair of s through the key table. subtype selects which keys
 * apply (-1: all that have ANY). Unknown keys and keys of another sub-type
 * are errors.
 */
static void cs_config__apply_keys(struct parser *p, struct raw_section *s,
				  const struct keydef *table, void *base, int subtype,
				  const char *subtype_name)
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
				if (subtype < 0 || (k->applies & T(subtype)))
					used += snprintf(known + used,
							 used < sizeof(known) ? sizeof(known) - used : 0,
							 "%s%s", used ? ", " : "", k->key);
			snprintf(err, sizeof(err), "unknown key (known here: %s)", known);
			cs_config__pair_error(p, s, kv, err);
			continue;
		}
		if (subtype >= 0 && !(d->applies & T(subtype))) {
			snprintf(err, sizeof(err), "not a key of type = %s", subtype_name);
			cs_config__pair_error(p, s, kv, err);
			continue;
		}
		if (store_value(d, base, kv->value, err, sizeof(err)) < 0)
			cs_config__pair_error(p, s, kv, err);
	}
}

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
	a->socket = dup_default(a->socket, "/run/certsync/certsync.sock");
	a->plugin_dir = dup_default(a->plugin_dir, CS_DEFAULT_PLUGINDIR);
	if (a->retry_min > a->retry_max && s != NULL)
		cs_config__section_error(p, s, "retry_min is longer than retry_max");
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

static void build_issuer(struct parser *p, struct raw_section *s, struct cs_cfg_issuer *is)
{
	int type = section_subtype(p, s, cs_config__e_issuer_type);

	is->name = strdup(s->name);
	is->origin = (struct cs_cfg_origin){ s->file, s->line };
	is->key = CS_KEY_EC_P256;
	is->account_key = CS_KEY_EC_P256;
	is->validity = 90 * 86400;
	is->ca_validity = 10 * 365 * 86400;
	if (type < 0)
		return;
	cs_config__apply_keys(p, s, cs_config__issuer_keys, is, type,
			      cs_config__e_issuer_type[type].name);
	if (type == CS_ISSUER_LOCAL_CA) {
		require(p, s, is->dir, "dir", " for type = local-ca (the CA directory)");
		is->subject = dup_default(is->subject, "/O=certsync/CN=certsync local CA");
		if (is->validity > is->ca_validity)
			cs_config__section_error(p, s, "validity is longer than ca_validity");
		if (is->crl_renew_before.set &&
		    (!is->crl_renew_before.is_percent || is->crl_renew_before.percent <= 0 ||
		     is->crl_renew_before.percent >= 100))
			cs_config__pair_error(
				p, s, cs_config__find_pair(s, "crl_renew_before"),
				"a share of the CRL's lifetime between 1% and 99% (50%), not a "
				"duration");
	} else {
		require(p, s, is->directory, "directory", " for type = acme (the directory URL)");
		if (is->directory != NULL && strncmp(is->directory, "https://", 8) != 0 &&
		    strncmp(is->directory, "http://", 7) != 0)
			cs_config__pair_error(p, s, cs_config__find_pair(s, "directory"),
					      "not an http(s) URL");
		if (is->account_key != CS_KEY_EC_P256 && is->account_key != CS_KEY_RSA_2048 &&
		    is->account_key != CS_KEY_RSA_3072 && is->account_key != CS_KEY_RSA_4096)
			cs_config__pair_error(
				p, s, cs_config__find_pair(s, "account_key"),
				"ACME account keys are ec:P-256 (ES256) or rsa:* (RS256)");
		if (is->challenge == CS_CHALLENGE_HTTP01 && is->webroot == NULL &&
		    is->http_listen == NULL)
			cs_config__section_error(
				p, s, "challenge = http-01 needs webroot or http_listen");
		if (is->challenge == CS_CHALLENGE_DNS01 && is->dns_hook == NULL)
			cs_config__section_error(p, s, "challenge = dns-01 needs dns_hook");
		if (is->challenge == CS_CHALLENGE_TLSALPN01 && is->http_listen == NULL)
			cs_config__section_error(
				p, s,
				"challenge = tls-alpn-01 needs http_listen (the address "
				"to answer on, port 443)");
		if ((is->eab_kid == NULL) != (is->eab_hmac_key == NULL))
			cs_config__section_error(p, s, "eab_kid and eab_hmac_key go together");
	}
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

static void build_cert(struct parser *p, struct raw_section *s, struct cs_cfg_cert *c)
{
	c->name = strdup(s->name);
	c->origin = (struct cs_cfg_origin){ s->file, s->line };
	c->key = CS_KEY_EC_P256;
	c->owner = (uid_t)-1;
	c->group = (gid_t)-1;
	c->mode = 0600;
	c->cert_mode = 0644;
	cs_config__apply_keys(p, s, cs_config__cert_keys, c, -1, NULL);
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
	cs_config__apply_keys(p, s, cs_config__reload_keys, r, type,
			      cs_config__e_reload_type[type].name);
	if (type == CS_RELOAD_POSTFIX)
		r->config_dir = dup_default(r->config_dir, "/etc/postfix");
	else if (type == CS_RELOAD_DOVECOT)
		r->config = dup_default(r->config, "/etc/dovecot/dovecot.conf");
	else if (type == CS_RELOAD_EXEC)
		require(p, s, r->command, "command", " for type = exec");
	else
		require(p, s, r->plugin, "plugin", " for type = plugin (the shared object name)");
}

/* Reports each name in list that has no section of the wanted kind. */
static void cs_config__check_refs(struct parser *p, struct raw_section *s, const char *key,
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

static bool cs_config__has_issuer(const struct cs_config *c, const char *n)
{
	return cs_config_issuer(c, n) != NULL;
}

static bool cs_config__has_local_issuer(const struct cs_config *c, const char *n)
{
	const struct cs_cfg_issuer *is = cs_config_issuer(c, n);
	return is != NULL && is->type == CS_ISSUER_LOCAL_CA;
}

static bool cs_config__has_reload(const struct cs_config *c, const char *n)
{
	return cs_config_reload(c, n) != NULL;
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
static void cs_config__check_output_paths(struct parser *p, struct raw_section **cert_secs)
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
static void cs_config__check_system_paths(struct parser *p)
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

static void cs_config__add_warning(struct cs_config *cfg, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void cs_config__add_warning(struct cs_config *cfg, const char *fmt, ...)
{
	struct cs_cfg_errors w = { cfg->warnings.v, cfg->warnings.n };
	va_list ap;
	char msg[PATH_MAX + 400];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cs_config__add_error(&w, "%s", msg);
	cfg->warnings.v = w.v;
	cfg->warnings.n = w.n;
}

/*
 * A file that someone other than root or the agent's user can change must not
 * say what the agent runs: an exec or plugin reloader, a dns_hook or the
 * plugin_dir would hand that person the agent's privileges. Anything else in
 * it is only warned about.
 */
static void cs_config__check_unsafe_files(struct parser *p)
{
	static const struct {
		const char *type, *key, *value; /* value NULL: any */
		const char *what;
	} runs[] = {
		{ "reload", "type", "exec", "an exec reloader runs its command" },
		{ "reload", "type", "plugin", "a plugin reloader loads its shared object" },
		{ "issuer", "dns_hook", NULL, "dns_hook is run" },
		{ "agent", "plugin_dir", NULL, "reloader plugins are loaded from plugin_dir" },
	};

	for (size_t u = 0; u < p->n_unsafe; u++) {
		const struct unsafe_file *f = &p->unsafe[u];
		bool refused = false;

		for (size_t i = 0; i < p->n_secs; i++) {
			struct raw_section *s = &p->secs[i];
			if (s->file != f->file)
				continue;
			for (size_t k = 0; k < sizeof(runs) / sizeof(runs[0]); k++) {
				const struct raw_pair *kv;
				if (strcmp(s->type, runs[k].type) != 0 ||
				    (kv = cs_config__find_pair(s, runs[k].key)) == NULL ||
				    (runs[k].value != NULL &&
				     strcmp(kv->value, runs[k].value) != 0))
					continue;
				char err[PATH_MAX + 400];
				snprintf(err, sizeof(err),
					 "refused: %s with the agent's privileges, and this file is "
					 "%s; only root or the agent's user may be able to change it "
					 "(chmod go-w, chown root)",
					 runs[k].what, f->why);
				cs_config__pair_error(p, s, kv, err);
				refused = true;
			}
		}
		if (!refused)
			cs_config__add_warning(
				p->cfg,
				"%s: %s; only root or the agent's user should be able to "
				"change the configuration (chmod go-w, chown root)",
				f->file, f->why);
	}
}

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

/*
 * The entries of each [sni]: its certs looked up, their names and files;
 * each cert learns its sections and takes their reload names.
 */
static void cs_config__resolve_snis(struct parser *p, struct raw_section **sni_secs)
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
		struct cs_cfg_sni *n = &cfg->snis[i];
		struct raw_section *s = sni_secs[i];
		const struct raw_pair *kv = cs_config__find_pair(s, "certs");
		size_t cap = 0;

		cs_config__check_refs(p, s, "reload", &n->reload, "reload", cs_config__has_reload);
		for (size_t k = 0; k < n->reload.n; k++) {
			const struct cs_cfg_reload *r = cs_config_reload(cfg, n->reload.v[k]);
			if (r == NULL)
				continue;
			if (r->type == CS_RELOAD_POSTFIX && n->config_dir == NULL && r->config_dir)
				n->config_dir = strdup(r->config_dir);
			if (r->type == CS_RELOAD_DOVECOT && n->dovecot_config == NULL && r->config)
				n->dovecot_config = strdup(r->config);
		}
		for (size_t k = 0; k < n->certs.n; k++) {
			struct cs_cfg_cert *c = find_cert(&certs, n->certs.v[k]);
			char *key = NULL, *chain = NULL;

			if (c == NULL) {
				snprintf(err, sizeof(err), "no [cert \"%s\"] section is defined",
					 n->certs.v[k]);
				cs_config__pair_error(p, s, kv, err);
				continue;
			}
			if (c->n_sni > 0 && c->sni[c->n_sni - 1] == n) {
				snprintf(err, sizeof(err), "cert %s is listed twice", c->name);
				cs_config__pair_error(p, s, kv, err);
				continue;
			}
			if (sni_files(p, n, c, &key, &chain) < 0) {
				snprintf(err, sizeof(err),
					 "cert %s has no output holding its key and chain (a bundle, "
					 "a live_dir, or keyfile with fullchain or cert)",
					 c->name);
				cs_config__pair_error(p, s, kv, err);
				continue;
			}
			const struct cs_cfg_sni **v = realloc((void *)c->sni,
							      (c->n_sni + 1) * sizeof(*v));
			if (v != NULL) {
				v[c->n_sni++] = n;
				c->sni = v;
			}
			for (size_t r = 0; r < n->reload.n; r++)
				list_add_once(&c->reload, n->reload.v[r]);
			for (size_t m = 0; m < c->names.n; m++) {
				struct cs_cfg_sni_entry *e;
				char *tn = sni_table_name(n, c->names.v[m]);

				for (size_t q = 0; tn != NULL && q < n->n_entries; q++) {
					if (strcmp(n->entries[q].name, tn) != 0)
						continue;
					snprintf(err, sizeof(err),
						 "the name %s is in both cert %s and cert %s",
						 c->names.v[m], n->entries[q].cert->name, c->name);
					cs_config__pair_error(p, s, kv, err);
					free(tn);
					tn = NULL;
				}
				if (tn == NULL)
					continue;
				if (n->n_entries == cap) {
					cap = cap ? cap * 2 : 8;
					e = realloc(n->entries, cap * sizeof(*e));
					if (e == NULL) {
						free(tn);
						break;
					}
					n->entries = e;
				}
				e = &n->entries[n->n_entries++];
				e->name = tn;
				e->cert = c;
				e->key = key != NULL ? strdup(key) : NULL;
				e->chain = strdup(chain);
			}
			free(key);
			free(chain);
		}
	}
	cs_htab_clear(&certs);
	free(nodes);
}

static void cs_config__build_all(struct parser *p)
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
	if (!cert_secs || !capath_secs || !cc_secs || !sni_secs || !cfg->issuers || !cfg->certs ||
	    !cfg->capaths || !cfg->clientcerts || !cfg->reloads || !cfg->snis) {
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
	}
	build_agent(p, agent);
	for (size_t i = 0; i < cfg->n_certs; i++)
		resolve_live(p, cert_secs[i], &cfg->certs[i]);
	if (cfg->agent.live_dir != NULL && strcmp(cfg->agent.live_dir, "none") == 0) {
		free(cfg->agent.live_dir);
		cfg->agent.live_dir = NULL;
	}

	for (size_t i = 0; i < cfg->n_certs; i++) {
		struct cs_cfg_cert *c = &cfg->certs[i];
		if (c->issuer != NULL) {
			struct cs_cfg_list one = { &c->issuer, 1 };
			cs_config__check_refs(p, cert_secs[i], "issuer", &one, "issuer",
					      cs_config__has_issuer);
		}
		cs_config__check_refs(p, cert_secs[i], "reload", &c->reload, "reload",
				      cs_config__has_reload);
	}
	for (size_t i = 0; i < cfg->n_capaths; i++) {
		cs_config__check_refs(p, capath_secs[i], "reload", &cfg->capaths[i].reload,
				      "reload", cs_config__has_reload);
		const struct raw_pair *kv = cs_config__find_pair(capath_secs[i], "issuers");
		for (size_t k = 0; k < cfg->capaths[i].issuers.n; k++) {
			const char *n = cfg->capaths[i].issuers.v[k];
			if (cs_config__has_local_issuer(cfg, n))
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
	cs_config__resolve_snis(p, sni_secs);
	cs_config__check_output_paths(p, cert_secs);
	cs_config__check_system_paths(p);
	cs_config__check_unsafe_files(p);
out:
	free(cert_secs);
	free(capath_secs);
	free(cc_secs);
	free(sni_secs);
}

/* Reads the drop-ins named by [agent] include, relative to the main file. */
/* The errno of the last directory glob() could not read (glob runs on one thread). */
static int glob_errno;

static int glob_error(const char *path, int e)
{
	(void)path;
	glob_errno = e;
	return 1;
}

static void cs_config__read_includes(struct parser *p, const char *main_path)
{
	struct raw_section *agent = NULL;

	for (size_t i = 0; i < p->n_secs; i++)
		if (strcmp(p->secs[i].type, "agent") == 0)
			agent = &p->secs[i];
	if (agent == NULL)
		return;
	const struct raw_pair *inc = cs_config__find_pair(agent, "include");
	if (inc == NULL)
		return;

	struct cs_cfg_list pats;
	char err[PATH_MAX + 64];
	if (cs_config__parse_list(inc->value, &pats, err, sizeof(err)) < 0) {
		cs_config__pair_error(p, agent, inc, err);
		cs_config__list_free(&pats);
		return;
	}
	char *dircopy = strdup(main_path);
	const char *base = dirname(dircopy);
	for (size_t i = 0; i < pats.n; i++) {
		char pattern[PATH_MAX];
		glob_t g;

		if (pats.v[i][0] == '/')
			snprintf(pattern, sizeof(pattern), "%s", pats.v[i]);
		else
			snprintf(pattern, sizeof(pattern), "%s/%s", base, pats.v[i]);
		glob_errno = 0;
		int rc = glob(pattern, GLOB_ERR, glob_error, &g);
		/* No drop-ins, or no drop-in directory at all: nothing to include. */
		if (rc == GLOB_NOMATCH || (rc == GLOB_ABORTED && glob_errno == ENOENT)) {
			if (rc == GLOB_ABORTED)
				globfree(&g);
			continue;
		}
		if (rc != 0) {
			snprintf(err, sizeof(err), "cannot expand '%s': %s", pattern,
				 glob_errno ? strerror(glob_errno) : "out of memory");
			if (rc == GLOB_ABORTED)
				globfree(&g);
			cs_config__pair_error(p, agent, inc, err);
			continue;
		}
		/* glob() sorts, so drop-ins are read in name order. */
		for (size_t k = 0; k < g.gl_pathc; k++)
			cs_config__read_file(p, g.gl_pathv[k], true);
		globfree(&g);
	}
	free(dircopy);
	cs_config__list_free(&pats);
}

static void cs_config__free_raw(struct parser *p)
{
	for (size_t i = 0; i < p->n_secs; i++) {
		struct raw_section *s = &p->secs[i];
		for (size_t k = 0; k < s->n_pairs; k++) {
			free(s->pairs[k].key);
			free(s->pairs[k].value);
		}
		free(s->pairs);
		free(s->type);
		free(s->name);
		free(s->indexed);
	}
	cs_htab_clear(&p->sec_index);
	free(p->secs);
	free(p->unsafe);
	free(p->linebuf);
}

/* Position of an error "FILE:LINE: ..." for sorting: file order, then line. */
static long error_rank(const char *e, const struct cs_config *cfg)
{
	for (size_t i = 0; i < cfg->files.n; i++) {
		size_t fl = strlen(cfg->files.v[i]);
		if (strncmp(e, cfg->files.v[i], fl) == 0 && e[fl] == ':')
			return (long)i * 10000000L + strtol(e + fl + 1, NULL, 10);
	}
	return 0;
}

/* Puts errors in file and line order (stable: insertion sort, lists are short). */
static void cs_config__sort_errors(struct cs_cfg_errors *errs, const struct cs_config *cfg)
{
	for (size_t i = 1; i < errs->n; i++) {
		char *cur = errs->v[i];
		long r = error_rank(cur, cfg);
		size_t j = i;
		while (j > 0 && error_rank(errs->v[j - 1], cfg) > r) {
			errs->v[j] = errs->v[j - 1];
			j--;
		}
		errs->v[j] = cur;
	}
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
	/* The arrays are complete: a cert may now point at its issuer. */
	for (size_t i = 0; i < cfg->n_certs; i++)
		cfg->certs[i].iss = cs_config_issuer(cfg, cfg->certs[i].issuer);
	return cfg;
}

static void free_issuer(struct cs_cfg_issuer *is)
{
	free(is->name);
	free(is->dir);
	free(is->subject);
	free(is->directory);
	cs_config__list_free(&is->contact);
	free(is->webroot);
	free(is->http_listen);
	free(is->dns_hook);
	free(is->ca_bundle);
	free(is->trust);
	free(is->eab_kid);
	free(is->eab_hmac_key);
	free(is->preferred_chain);
	free(is->profile);
}

static void free_cert(struct cs_cfg_cert *c)
{
	free(c->name);
	free(c->issuer);
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
