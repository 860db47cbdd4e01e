/*
 * cs_examine - judge what is deployed for one [cert]. See cs_examine.h.
 */
#include "cs_examine.h"
#include "cs_registry.h"
#include "cs_ingest.h"
#include "cs_chain.h"
#include "cs_key.h"
#include "cs_output.h"
#include "cs_validate.h"
#include "cs_x509.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

const char *cs_examine_verdict_name(enum cs_verdict v)
{
	static const char *const names[] = {
		[CS_EX_OK] = "ok",
		[CS_EX_MISSING] = "missing",
		[CS_EX_UNPARSABLE] = "unparsable",
		[CS_EX_MISMATCH] = "mismatched",
		[CS_EX_INCONSISTENT] = "inconsistent",
		[CS_EX_EXPIRED] = "expired",
		[CS_EX_NAMES] = "names not covered",
		[CS_EX_KEYTYPE] = "wrong key type",
		[CS_EX_CHAIN] = "bad chain",
		[CS_EX_FOREIGN] = "foreign",
	};
	return names[v];
}


static enum cs_verdict set(struct cs_examined *ex, enum cs_verdict v, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static enum cs_verdict set(struct cs_examined *ex, enum cs_verdict v, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ex->reason, sizeof(ex->reason), fmt, ap);
	va_end(ap);
	ex->verdict = v;
	return v;
}

/* The examine verdict for the first problem cs_validate found. */
static enum cs_verdict verdict_of(enum cs_problem_code code)
{
	switch (code) {
	case CS_PROB_NO_KEY:
	case CS_PROB_NO_LEAF:
		return CS_EX_UNPARSABLE;
	case CS_PROB_KEY_MISMATCH:
		return CS_EX_MISMATCH;
	case CS_PROB_NAME:
		return CS_EX_NAMES;
	case CS_PROB_NOT_YET_VALID:
	case CS_PROB_EXPIRED:
		return CS_EX_EXPIRED;
	case CS_PROB_KEY_TYPE:
	case CS_PROB_KEY_WEAK:
		return CS_EX_KEYTYPE;
	case CS_PROB_TRUST:
	case CS_PROB_ORDER:
	case CS_PROB_STRAY:
	case CS_PROB_USAGE:
		return CS_EX_CHAIN;
	}
	return CS_EX_UNPARSABLE;
}

/*
 * What c's chains must end in: the trust of c's issuer number k, as its
 * driver says (cs_registry.h). A hand-made configuration without a resolved
 * issuer checks no trust. buf holds the path o may point to.
 */
static void trust_of(const struct cs_cfg_cert *c, size_t k, struct cs_validate_opts *o,
		     char *buf, size_t len)
{
	o->trust = CS_TRUST_NONE;
	if (k < c->n_iss && c->iss_all[k] != NULL)
		cs_registry_issuer_trust(c->iss_all[k], o, buf, len);
	else if (k == 0 && c->iss != NULL)
		cs_registry_issuer_trust(c->iss, o, buf, len);
}

/* Whether every problem of probs is one of trust (the chain ends elsewhere). */
static bool only_trust(const struct cs_problems *probs)
{
	bool only = probs->n > 0;

	for (size_t i = 0; i < probs->n; i++)
		only &= probs->v[i].code == CS_PROB_TRUST;
	return only;
}

enum cs_verdict cs_examine_material(const struct cs_cfg_cert *c, const cs_material *m,
				    time_t now, struct cs_examined *ex)
{
	const char *names[c->names.n + 1];
	const struct cs_validate_opts base = {
		.require_key = true,
		.trust = CS_TRUST_NONE,
		.names = names,
		.now = now,
		.keytype = c->key,
		.eku = c->usage == CS_USAGE_CLIENT ? XKU_SSL_CLIENT : XKU_SSL_SERVER,
	};
	struct cs_validate_opts o;
	struct cs_problems *probs = NULL;
	char err[512] = "", anchor[4096];
	enum cs_verdict v;
	size_t n_trust = c->n_iss > 1 ? c->n_iss : 1;

	for (size_t i = 0; i < c->names.n; i++)
		names[i] = c->names.v[i];
	names[c->names.n] = NULL;
	ex->trusted_by = NULL;
	if (m->leaf != NULL) {
		cs_x509_serial(m->leaf, ex->serial, sizeof(ex->serial));
		cs_fp_cert(m->leaf, CS_DIGEST_SHA256, ex->sha256, sizeof(ex->sha256));
		if (cs_x509_times(m->leaf, &ex->not_before, &ex->not_after) < 0)
			return set(ex, CS_EX_UNPARSABLE,
				   "the certificate's validity dates are unreadable");
	}
	/*
	 * Each issuer of the list in turn, while the chain fails on trust
	 * alone: a certificate from any of them is the cert's own.
	 */
	for (size_t k = 0; k < n_trust; k++) {
		o = base;
		trust_of(c, k, &o, anchor, sizeof(anchor));
		cs_problems_free(probs);
		probs = cs_problems_new();
		if (probs == NULL || cs_validate(m, &o, probs, err, sizeof(err)) < 0) {
			cs_problems_free(probs);
			return set(ex, CS_EX_UNPARSABLE, "%s", err[0] ? err : "out of memory");
		}
		if (probs->n == 0 && k < c->n_iss && c->iss_all[k] != NULL)
			ex->trusted_by = c->iss_all[k]->name;
		if (!only_trust(probs))
			break;
	}
	if (probs->n == 0)
		v = set(ex, CS_EX_OK, "valid");
	else if (only_trust(probs))
		/* Whole, matching, current, but not from this issuer. */
		v = set(ex, CS_EX_FOREIGN, "%s", probs->v[0].msg);
	else
		v = set(ex, verdict_of(probs->v[0].code), "%s", probs->v[0].msg);
	cs_problems_free(probs);
	return v;
}

/* Reads one output into its own set; returns 0, or a verdict with ex set. */
static enum cs_verdict read_output(const char *path, cs_material **out, struct cs_examined *ex)
{
	char err[512] = "", report[1024] = "";
	struct stat sb;
	cs_material *m;
	int rc;

	*out = NULL;
	if (stat(path, &sb) < 0) {
		if (errno == ENOENT)
			return set(ex, CS_EX_MISSING, "%s does not exist", path);
		return set(ex, CS_EX_UNPARSABLE, "%s: %s", path, strerror(errno));
	}
	m = cs_material_new();
	if (m == NULL)
		return set(ex, CS_EX_UNPARSABLE, "out of memory");
	if (cs_ingest_file(m, path, NULL, err, sizeof(err)) < 0) {
		cs_material_free(m);
		return set(ex, CS_EX_UNPARSABLE, "%s", err);
	}
	rc = cs_chain_order(m, report, sizeof(report));
	if (rc < 0 && rc != CS_CHAIN_AMBIGUOUS) {
		cs_material_free(m);
		return set(ex, CS_EX_UNPARSABLE, "%s: cannot order the chain", path);
	}
	/* Strays are judged with the set (cs_validate); here only the order. */
	if (rc != 0 && sk_X509_num(m->strays) == 0) {
		cs_material_free(m);
		return set(ex, CS_EX_CHAIN,
			   "%s holds its certificates out of order (the leaf first, then each "
			   "certificate's issuer)",
			   path);
	}
	*out = m;
	return CS_EX_OK;
}

static bool same_cert(X509 *a, X509 *b)
{
	return a != NULL && b != NULL && X509_cmp(a, b) == 0;
}

/* Puts the n outputs read (got) together in m; 0, or a verdict with ex set. */
static enum cs_verdict assemble(cs_material *m, const char *const *paths,
				const enum cs_output_kind *kinds, cs_material *const *got,
				size_t n, struct cs_examined *ex)
{
	const char *key_from = NULL, *leaf_from = NULL;

	for (size_t i = 0; i < n; i++) {
		cs_material *g = got[i];
		if (g == NULL || kinds[i] == CS_OUT_CHAIN)
			continue;
		if (cs_output_has_key(kinds[i])) {
			if (g->key == NULL)
				return set(ex, CS_EX_UNPARSABLE, "%s holds no private key", paths[i]);
			if (m->key == NULL) {
				EVP_PKEY_up_ref(g->key);
				m->key = g->key;
				key_from = paths[i];
			} else if (EVP_PKEY_eq(m->key, g->key) != 1) {
				return set(ex, CS_EX_INCONSISTENT, "%s holds another key than %s",
					   paths[i], key_from);
			}
		}
		if (kinds[i] == CS_OUT_KEY)
			continue;
		/* Certificates in no chain of the leaf stay in the set, to be refused. */
		for (int k = 0; k < sk_X509_num(g->strays); k++) {
			X509 *x = sk_X509_value(g->strays, k);
			X509_up_ref(x);
			sk_X509_push(m->strays, x);
		}
		if (g->leaf == NULL)
			return set(ex, CS_EX_UNPARSABLE, "%s holds no certificate", paths[i]);
		if (m->leaf == NULL) {
			X509_up_ref(g->leaf);
			m->leaf = g->leaf;
			leaf_from = paths[i];
			for (int k = 0; k < sk_X509_num(g->chain); k++) {
				X509 *x = sk_X509_value(g->chain, k);
				X509_up_ref(x);
				sk_X509_push(m->chain, x);
			}
		} else if (!same_cert(m->leaf, g->leaf)) {
			return set(ex, CS_EX_INCONSISTENT, "%s holds another certificate than %s",
				   paths[i], leaf_from);
		}
	}
	return CS_EX_OK;
}

enum cs_verdict cs_examine(const struct cs_cfg_cert *c, time_t now, struct cs_examined *ex)
{
	/*
	 * The fixed paths, then the files of the live generation (read through
	 * LIVE/NAME, so a missing link is a missing output). Each entry says
	 * whether it brings the key, the certificates, or (a chain file) only
	 * has to be readable.
	 */
	const char *paths[10] = { c->bundle, c->fullchain, c->cert, c->keyfile, c->chain };
	enum cs_output_kind kinds[10] = { CS_OUT_BUNDLE, CS_OUT_FULLCHAIN, CS_OUT_CERT, CS_OUT_KEY,
					  CS_OUT_CHAIN };
	cs_material *got[10] = { NULL };
	cs_material *m = NULL;
	enum cs_verdict v = CS_EX_OK;
	size_t n = 5;

	if (c->live_dir != NULL && c->live_path[0] != NULL)
		for (size_t k = 0; k < 5; k++) {
			paths[n] = c->live_path[kinds[k]];
			kinds[n++] = kinds[k];
		}
	memset(ex, 0, sizeof(*ex));
	for (size_t i = 0; i < n && v == CS_EX_OK; i++)
		if (paths[i] != NULL)
			v = read_output(paths[i], &got[i], ex);
	if (v != CS_EX_OK)
		goto out;

	/* Put one set together: key from bundle or keyfile, leaf from the first that has one. */
	m = cs_material_new();
	if (m == NULL) {
		v = set(ex, CS_EX_UNPARSABLE, "out of memory");
		goto out;
	}
	v = assemble(m, paths, kinds, got, n, ex);
	if (v != CS_EX_OK)
		goto out;
	if (m->leaf == NULL && (got[4] != NULL || got[9] != NULL)) {
		v = set(ex, CS_EX_UNPARSABLE, "only a chain is deployed");
		goto out;
	}
	v = cs_examine_material(c, m, now, ex);
	if (v == CS_EX_OK) {
		ex->m = m;
		m = NULL;
	} else if (m->leaf != NULL) {
		/* Keep the details of what is there, for status, even when unusable. */
		ex->m = m;
		m = NULL;
	}
out:
	cs_material_free(m);
	for (size_t i = 0; i < n; i++)
		cs_material_free(got[i]);
	return v;
}

void cs_examine_clear(struct cs_examined *ex)
{
	cs_material_free(ex->m);
	ex->m = NULL;
}
