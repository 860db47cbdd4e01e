/*
 * cs_validate - every reason a set of TLS material is not fit to deploy. See
 * cs_validate.h.
 *
 * Validity dates are judged here, against the caller's `now`, rather than by
 * X509_verify_cert(): that gives one message per certificate with its dates,
 * lets the tests pick the moment, and keeps a date problem from hiding a trust
 * problem (the chain is verified with time checks off).
 */
#include "cs_validate.h"
#include "cs_chain.h"
#include "cs_log.h"
#include "cs_x509.h"

#include <errno.h>
#include <openssl/err.h>
#include <pthread.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int add(struct cs_problems *out, enum cs_problem_code code, int depth, const char *fmt,
	       ...) __attribute__((format(printf, 4, 5)));

static int add(struct cs_problems *out, enum cs_problem_code code, int depth, const char *fmt,
	       ...)
{
	struct cs_problem *v = realloc(out->v, (out->n + 1) * sizeof(*v));
	va_list ap;

	if (v == NULL)
		return -ENOMEM;
	out->v = v;
	v[out->n].code = code;
	v[out->n].depth = depth;
	va_start(ap, fmt);
	vsnprintf(v[out->n].msg, sizeof(v[out->n].msg), fmt, ap);
	va_end(ap);
	out->n++;
	return 0;
}

/* The certificate at depth d of the normalised set: 0 is the leaf. */
static X509 *at_depth(const cs_material *m, int d)
{
	return d == 0 ? m->leaf : sk_X509_value(m->chain, d - 1);
}

static int check_dates(const cs_material *m, time_t now, struct cs_problems *out)
{
	int depth = 1 + sk_X509_num(m->chain);
	char subj[256], when[64];
	time_t t = now;

	for (int d = 0; d < depth; d++) {
		X509 *x = at_depth(m, d);
		const ASN1_TIME *nb = X509_get0_notBefore(x), *na = X509_get0_notAfter(x);
		int rc = 0;

		if (X509_cmp_time(nb, &t) > 0) {
			long days = cs_x509_days_until(nb, now);

			rc = add(out, CS_PROB_NOT_YET_VALID, d,
				 "the certificate %s is not valid yet: its validity starts at %s "
				 "(%s%ld day%s from now)",
				 cs_x509_subject(x, subj, sizeof(subj)),
				 cs_x509_time(nb, 0, when, sizeof(when)), days < 1 ? "less than " : "",
				 days < 1 ? 1L : days, days > 1 ? "s" : "");
		}
		if (rc == 0 && X509_cmp_time(na, &t) < 0) {
			long days = -cs_x509_days_until(na, now);

			rc = add(out, CS_PROB_EXPIRED, d,
				 "the certificate %s has expired: its validity ended at %s (%s%ld "
				 "day%s ago)",
				 cs_x509_subject(x, subj, sizeof(subj)),
				 cs_x509_time(na, 0, when, sizeof(when)), days < 1 ? "less than " : "",
				 days < 1 ? 1L : days, days > 1 ? "s" : "");
		}
		if (rc < 0)
			return rc;
	}
	ERR_clear_error();
	return 0;
}

/* Each certificate of the set is issued by the one after it; nothing is left over. */
static int check_links(const cs_material *m, struct cs_problems *out)
{
	int depth = 1 + sk_X509_num(m->chain);
	char subj[256], next[256], iss[256];

	for (int d = 0; d + 1 < depth; d++) {
		X509 *x = at_depth(m, d), *up = at_depth(m, d + 1);

		if (cs_chain_issued_by(x, up))
			continue;
		if (add(out, CS_PROB_ORDER, d,
			"the chain is not in order: the certificate %s is not issued by %s, "
			"which follows it",
			cs_x509_subject(x, subj, sizeof(subj)),
			cs_x509_subject(up, next, sizeof(next))) < 0)
			return -ENOMEM;
		break; /* the links above a broken one say nothing more */
	}
	for (int i = 0; i < sk_X509_num(m->strays); i++) {
		X509 *x = sk_X509_value(m->strays, i);

		if (add(out, CS_PROB_STRAY, -1,
			"the certificate %s (issued by %s) is not part of the leaf's chain",
			cs_x509_subject(x, subj, sizeof(subj)),
			cs_x509_issuer(x, iss, sizeof(iss))) < 0)
			return -ENOMEM;
	}
	ERR_clear_error();
	return 0;
}

/* The leaf's extended key usage, when it has one, allows what was asked. */
static int check_usage(X509 *leaf, uint32_t want, struct cs_problems *out)
{
	uint32_t have = X509_get_extended_key_usage(leaf);
	char subj[256];
	const char *what;

	ERR_clear_error();
	if ((have & want) == want)
		return 0;
	what = want == XKU_SSL_SERVER ? "a TLS server (serverAuth)"
	       : want == XKU_SSL_CLIENT ? "a TLS client (clientAuth)"
					: "a TLS server and client (serverAuth, clientAuth)";
	return add(out, CS_PROB_USAGE, 0,
		   "the certificate %s may not be used as %s: its extended key usage does not "
		   "allow it",
		   cs_x509_subject(leaf, subj, sizeof(subj)), what) < 0 ? -ENOMEM : 0;
}

static int check_names(X509 *leaf, const char *const *names, struct cs_problems *out)
{
	char subj[256], sans[1024];

	for (size_t i = 0; names[i] != NULL; i++) {
		const char *n = names[i];
		ASN1_OCTET_STRING *ip = a2i_IPADDRESS(n);
		int ok;

		if (ip != NULL) {
			ok = X509_check_ip_asc(leaf, n, 0) == 1;
			ASN1_OCTET_STRING_free(ip);
		} else {
			ok = X509_check_host(leaf, n, strlen(n), 0, NULL) == 1;
		}
		ERR_clear_error();
		if (ok)
			continue;
		cs_x509_sans(leaf, sans, sizeof(sans));
		if (add(out, CS_PROB_NAME, 0,
			"the certificate %s does not cover the name \"%s\" (%s%s)",
			cs_x509_subject(leaf, subj, sizeof(subj)), n,
			sans[0] != '\0' ? "it covers " : "it has no subject alternative names",
			sans) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int check_key(const EVP_PKEY *k, const struct cs_validate_opts *o, const char *whose,
		     struct cs_problems *out)
{
	int min = o->min_rsa_bits > 0 ? o->min_rsa_bits : 2048;
	char desc[64];

	if (o->keytype != CS_KEY_NONE && cs_key_type_of(k) != o->keytype &&
	    add(out, CS_PROB_KEY_TYPE, -1, "the %s is %s, but %s was expected", whose,
		cs_x509_key_desc(k, desc, sizeof(desc)), cs_key_name(o->keytype)) < 0)
		return -ENOMEM;
	if (EVP_PKEY_is_a(k, "RSA") && EVP_PKEY_get_bits(k) < min &&
	    add(out, CS_PROB_KEY_WEAK, -1,
		"the %s is an RSA key of %d bits; at least %d bits are required", whose,
		EVP_PKEY_get_bits(k), min) < 0)
		return -ENOMEM;
	return 0;
}

/* Describes the trust in messages: "CAfile /etc/ssl/ca.pem". */
static void trust_desc(const struct cs_validate_opts *o, X509 *root, char *buf, size_t len)
{
	char subj[256];

	if (o->trust == CS_TRUST_OWN_ROOT)
		snprintf(buf, len, "its own root %s", cs_x509_subject(root, subj, sizeof(subj)));
	else if (o->cafile != NULL && o->cafile2 != NULL)
		snprintf(buf, len, "CAfile %s or CAfile %s", o->cafile, o->cafile2);
	else if (o->cafile != NULL && o->capath != NULL)
		snprintf(buf, len, "CAfile %s or CApath %s", o->cafile, o->capath);
	else if (o->cafile != NULL)
		snprintf(buf, len, "CAfile %s%s", o->cafile,
			 o->system_store ? " or the system's trust store" : "");
	else if (o->capath != NULL)
		snprintf(buf, len, "CApath %s", o->capath);
	else
		snprintf(buf, len, "%s", o->system_store ? "the system's trust store" : "(none)");
}

/* Fills store from o; returns 0, 1 when a problem was added instead, or -ENOMEM. */
static int load_trust(const cs_material *m, const struct cs_validate_opts *o, X509_STORE *store,
		      X509 **root, struct cs_problems *out)
{
	char subj[256], iss[256], msg[400];
	struct stat st;

	if (o->trust == CS_TRUST_OWN_ROOT) {
		int n = sk_X509_num(m->chain);
		X509 *top = n > 0 ? sk_X509_value(m->chain, n - 1) : m->leaf;

		if (!cs_chain_self_signed(top))
			return add(out, CS_PROB_TRUST, n,
				   "the chain ends at %s, issued by %s, which is not in the set: "
				   "there is no root to verify it to",
				   cs_x509_subject(top, subj, sizeof(subj)),
				   cs_x509_issuer(top, iss, sizeof(iss))) < 0 ? -ENOMEM : 1;
		*root = top;
		return X509_STORE_add_cert(store, top) ? 0 : -ENOMEM;
	}
	if (o->system_store && !X509_STORE_set_default_paths(store)) {
		snprintf(msg, sizeof(msg), "cannot load the system's trust store");
		cs_log_ssl_errors(msg, sizeof(msg));
		return add(out, CS_PROB_TRUST, -1, "%s", msg) < 0 ? -ENOMEM : 1;
	}
	if (o->cafile == NULL && o->capath == NULL && !o->system_store)
		return add(out, CS_PROB_TRUST, -1, "no CAfile or CApath given to verify the "
						   "chain against") < 0 ? -ENOMEM : 1;
	if (o->cafile != NULL && !X509_STORE_load_file(store, o->cafile)) {
		snprintf(msg, sizeof(msg), "cannot load the CAfile %s", o->cafile);
		cs_log_ssl_errors(msg, sizeof(msg));
		return add(out, CS_PROB_TRUST, -1, "%s", msg) < 0 ? -ENOMEM : 1;
	}
	if (o->cafile2 != NULL && !X509_STORE_load_file(store, o->cafile2)) {
		snprintf(msg, sizeof(msg), "cannot load the CAfile %s", o->cafile2);
		cs_log_ssl_errors(msg, sizeof(msg));
		return add(out, CS_PROB_TRUST, -1, "%s", msg) < 0 ? -ENOMEM : 1;
	}
	if (o->capath != NULL) {
		if (stat(o->capath, &st) < 0 || !S_ISDIR(st.st_mode))
			return add(out, CS_PROB_TRUST, -1, "the CApath %s is not a directory",
				   o->capath) < 0 ? -ENOMEM : 1;
		if (!X509_STORE_load_path(store, o->capath)) {
			snprintf(msg, sizeof(msg), "cannot use the CApath %s", o->capath);
			cs_log_ssl_errors(msg, sizeof(msg));
			return add(out, CS_PROB_TRUST, -1, "%s", msg) < 0 ? -ENOMEM : 1;
		}
	}
	return 0;
}

/*
 * Loaded trust stores, shared by every validation that names the same files
 * (a renewal pass over thousands of certs of one issuer would otherwise parse
 * the CAfile, or the system's bundle, once per cert). An entry is used only
 * while its files have the same device, inode, size and mtime.
 */
#define STORE_CACHE 8

static struct {
	char key[2 * PATH_MAX + 512];
	X509_STORE *store;
	unsigned long used;
} store_cache[STORE_CACHE];
static unsigned long store_clock;
static pthread_mutex_t store_mu = PTHREAD_MUTEX_INITIALIZER;

static void key_file(char *buf, size_t len, const char *path)
{
	struct stat st;
	size_t used = strlen(buf);

	if (path == NULL)
		snprintf(buf + used, len - used, "|-");
	else if (stat(path, &st) < 0)
		snprintf(buf + used, len - used, "|%s:?", path);
	else
		snprintf(buf + used, len - used, "|%s:%llx:%llx:%lld:%lld.%09ld", path,
			 (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
			 (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

/* Returns a new reference to the cached store for key, or NULL. */
static X509_STORE *store_get(const char *key)
{
	X509_STORE *s = NULL;

	pthread_mutex_lock(&store_mu);
	for (int i = 0; i < STORE_CACHE && s == NULL; i++)
		if (store_cache[i].store != NULL && strcmp(store_cache[i].key, key) == 0 &&
		    X509_STORE_up_ref(store_cache[i].store)) {
			s = store_cache[i].store;
			store_cache[i].used = ++store_clock;
		}
	pthread_mutex_unlock(&store_mu);
	return s;
}

/* Keeps a reference to store under key, in place of the least recently used entry. */
static void store_put(const char *key, X509_STORE *store)
{
	int v = 0;

	if (strlen(key) >= sizeof(store_cache[0].key) || !X509_STORE_up_ref(store))
		return;
	pthread_mutex_lock(&store_mu);
	for (int i = 1; i < STORE_CACHE; i++)
		if (store_cache[i].used < store_cache[v].used)
			v = i;
	X509_STORE_free(store_cache[v].store);
	snprintf(store_cache[v].key, sizeof(store_cache[v].key), "%s", key);
	store_cache[v].store = store;
	store_cache[v].used = ++store_clock;
	pthread_mutex_unlock(&store_mu);
}

__attribute__((destructor)) static void store_cache_free(void)
{
	for (int i = 0; i < STORE_CACHE; i++) {
		X509_STORE_free(store_cache[i].store);
		store_cache[i].store = NULL;
	}
}

static int check_trust(const cs_material *m, const struct cs_validate_opts *o,
		       struct cs_problems *out)
{
	X509_STORE *store = NULL;
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509 *root = NULL;
	char trust[600], subj[256], key[sizeof(store_cache[0].key)] = "";
	int rc = 0;

	/* The set's own root (OWN_ROOT) is part of the set: never shared. */
	if (o->trust != CS_TRUST_OWN_ROOT) {
		snprintf(key, sizeof(key), "%d", o->system_store ? 1 : 0);
		key_file(key, sizeof(key), o->cafile);
		key_file(key, sizeof(key), o->cafile2);
		key_file(key, sizeof(key), o->capath);
		store = store_get(key);
	}
	if (store == NULL) {
		if ((store = X509_STORE_new()) == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		rc = load_trust(m, o, store, &root, out);
		if (rc != 0)
			goto out;
		if (key[0] != '\0')
			store_put(key, store);
	}
	if (ctx == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if (!X509_STORE_CTX_init(ctx, store, m->leaf, m->chain)) {
		rc = -ENOMEM;
		goto out;
	}
	X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_NO_CHECK_TIME);
	if (X509_verify_cert(ctx) != 1) {
		int e = X509_STORE_CTX_get_error(ctx), depth = X509_STORE_CTX_get_error_depth(ctx);
		X509 *at = X509_STORE_CTX_get_current_cert(ctx);

		if (at == NULL)
			at = depth >= 0 && depth <= sk_X509_num(m->chain) ? at_depth(m, depth) :
									      m->leaf;
		trust_desc(o, root, trust, sizeof(trust));
		rc = add(out, CS_PROB_TRUST, depth,
			 "the chain does not verify to %s: %s at depth %d (%s)", trust,
			 X509_verify_cert_error_string(e), depth,
			 cs_x509_subject(at, subj, sizeof(subj)));
	} else if (X509_STORE_CTX_get0_chain(ctx) != NULL &&
		   sk_X509_num(X509_STORE_CTX_get0_chain(ctx)) > 2 + sk_X509_num(m->chain)) {
		/*
		 * The store supplied a certificate between the set and its anchor:
		 * the chain verifies here, but a server sending the set would send
		 * an incomplete chain.
		 */
		int n = sk_X509_num(m->chain);
		X509 *top = n > 0 ? sk_X509_value(m->chain, n - 1) : m->leaf;
		char iss[256];

		trust_desc(o, root, trust, sizeof(trust));
		rc = add(out, CS_PROB_TRUST, n,
			 "the chain is incomplete: it ends at %s, whose issuer %s is not a trust "
			 "anchor of %s and not in the set",
			 cs_x509_subject(top, subj, sizeof(subj)),
			 cs_x509_issuer(top, iss, sizeof(iss)), trust);
	}
out:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return rc < 0 ? rc : 0;
}

int cs_validate(const cs_material *m, const struct cs_validate_opts *o,
		struct cs_problems *out, char *err, size_t errlen)
{
	static const struct cs_validate_opts defaults = { 0 };
	time_t now;
	size_t before = out->n;
	char subj[256];
	int rc = 0;

	if (o == NULL)
		o = &defaults;
	now = o->now != 0 ? o->now : time(NULL);
	if (m->key == NULL && o->require_key)
		rc = add(out, CS_PROB_NO_KEY, -1, "there is no private key");
	if (rc == 0 && m->leaf == NULL)
		rc = add(out, CS_PROB_NO_LEAF, -1, "there is no certificate");
	if (rc == 0 && m->key != NULL && m->leaf != NULL) {
		EVP_PKEY *pub = X509_get0_pubkey(m->leaf);

		if (pub == NULL || EVP_PKEY_eq(m->key, pub) != 1)
			rc = add(out, CS_PROB_KEY_MISMATCH, 0,
				 "the private key does not belong to the certificate %s",
				 cs_x509_subject(m->leaf, subj, sizeof(subj)));
		ERR_clear_error();
	}
	if (rc == 0 && m->key != NULL)
		rc = check_key(m->key, o, "private key", out);
	else if (rc == 0 && m->leaf != NULL && X509_get0_pubkey(m->leaf) != NULL)
		rc = check_key(X509_get0_pubkey(m->leaf), o, "certificate's key", out);
	if (rc == 0 && m->leaf != NULL)
		rc = check_links(m, out);
	if (rc == 0 && m->leaf != NULL && o->eku != 0)
		rc = check_usage(m->leaf, o->eku, out);
	if (rc == 0 && m->leaf != NULL)
		rc = check_dates(m, now, out);
	if (rc == 0 && m->leaf != NULL && o->names != NULL)
		rc = check_names(m->leaf, o->names, out);
	if (rc == 0 && m->leaf != NULL && o->trust != CS_TRUST_NONE)
		rc = check_trust(m, o, out);
	if (rc < 0) {
		snprintf(err, errlen, "validation: out of memory");
		return rc;
	}
	return (int)(out->n - before);
}
