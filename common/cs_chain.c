/*
 * cs_chain - order a set of certificates as leaf, issuers, root. See
 * cs_chain.h.
 *
 * Issuer links are tried depth first from the leaf, so that with cross-signed
 * intermediates the path that reaches a self-signed root is preferred over a
 * dead end. Signature checks are the expensive part; each pair is verified at
 * most once, and the search has a budget so that a hostile file with many
 * look-alike certificates cannot make it run for long.
 */
#include "cs_chain.h"
#include "cs_x509.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHAIN_MAX_DEPTH 32
#define CHAIN_BUDGET 20000

/* The cheap half of the issuer test: identifiers or names line up. */
static bool names_match(X509 *x, X509 *issuer)
{
	const ASN1_OCTET_STRING *akid = X509_get0_authority_key_id(x);
	const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(issuer);

	if (akid != NULL && skid != NULL)
		return ASN1_OCTET_STRING_cmp(akid, skid) == 0;
	return X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(issuer)) == 0;
}

static bool signature_ok(X509 *x, X509 *issuer)
{
	EVP_PKEY *pk;
	int ok;

	ERR_set_mark();
	pk = X509_get0_pubkey(issuer);
	ok = pk != NULL && X509_verify(x, pk) == 1;
	ERR_pop_to_mark();
	return ok;
}

bool cs_chain_issued_by(X509 *x, X509 *issuer)
{
	return names_match(x, issuer) && signature_ok(x, issuer);
}

bool cs_chain_self_signed(X509 *x)
{
	return cs_chain_issued_by(x, x);
}

struct search {
	X509 **pool;
	int n;
	signed char *link; /* link[i * n + j]: -1 unknown, else does j issue i */
	signed char *self; /* self[i]: -1 unknown, else is i self-signed */
	bool *used;
	int cur[CHAIN_MAX_DEPTH];
	int best[CHAIN_MAX_DEPTH];
	int bestlen;
	bool best_rooted;
	long budget;
};

static bool s_issues(struct search *s, int i, int j)
{
	signed char *l = &s->link[(size_t)i * (size_t)s->n + (size_t)j];

	if (*l < 0)
		*l = cs_chain_issued_by(s->pool[i], s->pool[j]);
	return *l == 1;
}

static bool s_self(struct search *s, int i)
{
	if (s->self[i] < 0)
		s->self[i] = cs_chain_self_signed(s->pool[i]);
	return s->self[i] == 1;
}

static void s_offer(struct search *s, int len, bool rooted)
{
	/* A path to a root beats a dead end; then the longer one uses more of the file. */
	if ((rooted && !s->best_rooted) || (rooted == s->best_rooted && len > s->bestlen)) {
		memcpy(s->best, s->cur, (size_t)len * sizeof(int));
		s->bestlen = len;
		s->best_rooted = rooted;
	}
}

static void s_walk(struct search *s, int idx, int depth)
{
	bool extended = false;

	s->cur[depth] = idx;
	if (--s->budget < 0)
		return;
	if (s_self(s, idx)) {
		s_offer(s, depth + 1, true);
		return;
	}
	if (depth + 1 < CHAIN_MAX_DEPTH) {
		s->used[idx] = true;
		for (int j = 0; j < s->n && s->budget >= 0; j++) {
			if (j == idx || s->used[j] || !names_match(s->pool[idx], s->pool[j]))
				continue;
			if (!s_issues(s, idx, j))
				continue;
			extended = true;
			s_walk(s, j, depth + 1);
		}
		s->used[idx] = false;
	}
	if (!extended)
		s_offer(s, depth + 1, false);
}

/* Finds the best path from start into s->best; returns its length. */
static int s_path(struct search *s, int start)
{
	s->bestlen = 0;
	s->best_rooted = false;
	s->budget = CHAIN_BUDGET;
	memset(s->used, 0, (size_t)s->n * sizeof(bool));
	s_walk(s, start, 0);
	return s->bestlen;
}

static void report_add(char *report, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void report_add(char *report, size_t len, const char *fmt, ...)
{
	static const char more[] = "(more lines not shown)\n";
	char line[1024];
	size_t used, n;
	va_list ap;

	if (report == NULL || len == 0)
		return;
	used = strlen(report);
	if (used >= sizeof(more) - 1 && strcmp(report + used - (sizeof(more) - 1), more) == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	n = strlen(line);
	/* Whole lines only, keeping room to say that some were left out. */
	if (used + n + sizeof(more) <= len)
		memcpy(report + used, line, n + 1);
	else if (used + sizeof(more) <= len)
		memcpy(report + used, more, sizeof(more));
}

/* Moves every certificate of m into one stack, leaf first; NULL on ENOMEM. */
static STACK_OF(X509) *take_all(cs_material *m)
{
	STACK_OF(X509) *all = sk_X509_new_null();
	STACK_OF(X509) *parts[2] = { m->chain, m->strays };

	if (all == NULL)
		return NULL;
	if (m->leaf != NULL) {
		if (!sk_X509_push(all, m->leaf))
			goto fail;
		m->leaf = NULL;
	}
	for (int p = 0; p < 2; p++)
		while (sk_X509_num(parts[p]) > 0) {
			X509 *x = sk_X509_shift(parts[p]);

			if (!sk_X509_push(all, x)) {
				sk_X509_unshift(parts[p], x);
				goto fail;
			}
		}
	return all;
fail:
	/* Put back what was taken, so m stays complete. */
	while (sk_X509_num(all) > 0)
		sk_X509_push(m->strays, sk_X509_pop(all));
	sk_X509_free(all);
	return NULL;
}

static void drop_duplicates(STACK_OF(X509) *all, char *report, size_t len)
{
	char subj[256];

	for (int i = 1; i < sk_X509_num(all); i++)
		for (int j = 0; j < i; j++)
			if (X509_cmp(sk_X509_value(all, i), sk_X509_value(all, j)) == 0) {
				X509 *dup = sk_X509_delete(all, i);

				report_add(report, len, "dropped a duplicate of certificate %s\n",
					   cs_x509_subject(dup, subj, sizeof(subj)));
				X509_free(dup);
				i--;
				break;
			}
}

static int pick_leaf(cs_material *m, struct search *s, char *report, size_t len)
{
	int leaf = -1, bestlen = 0;
	char subj[256];

	if (m->key != NULL)
		for (int i = 0; i < s->n && leaf < 0; i++) {
			EVP_PKEY *pk = X509_get0_pubkey(s->pool[i]);

			if (pk != NULL && EVP_PKEY_eq(m->key, pk) == 1)
				leaf = i;
		}
	ERR_clear_error();
	if (leaf >= 0)
		return leaf;
	/* Without a matching key, the bottom of the longest chain is the best guess. */
	for (int i = 0; i < s->n; i++) {
		bool issues_other = false;
		int l;

		for (int j = 0; j < s->n && !issues_other; j++)
			if (j != i && names_match(s->pool[j], s->pool[i]) && s_issues(s, j, i))
				issues_other = true;
		if (issues_other)
			continue;
		l = s_path(s, i);
		if (l > bestlen) {
			bestlen = l;
			leaf = i;
		}
	}
	if (leaf < 0 && s->n > 0)
		leaf = 0; /* every certificate issues another: a loop of cross-signatures */
	if (leaf >= 0 && m->key != NULL)
		report_add(report, len, "no certificate matches the private key; taking %s as "
					"the leaf\n",
			   cs_x509_subject(s->pool[leaf], subj, sizeof(subj)));
	return leaf;
}

int cs_chain_normalise(cs_material *m, char *report, size_t reportlen)
{
	STACK_OF(X509) *all;
	struct search s = { 0 };
	int rc = 0, leaf, strays = 0;
	char subj[256], iss[256];

	if (report != NULL && reportlen > 0)
		report[0] = '\0';
	all = take_all(m);
	if (all == NULL) {
		report_add(report, reportlen, "out of memory\n");
		return -ENOMEM;
	}
	drop_duplicates(all, report, reportlen);
	s.n = sk_X509_num(all);
	if (s.n == 0)
		goto out;
	s.pool = calloc((size_t)s.n, sizeof(X509 *));
	s.link = malloc((size_t)s.n * (size_t)s.n);
	s.self = malloc((size_t)s.n);
	s.used = calloc((size_t)s.n, sizeof(bool));
	if (s.pool == NULL || s.link == NULL || s.self == NULL || s.used == NULL) {
		report_add(report, reportlen, "out of memory\n");
		rc = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < s.n; i++)
		s.pool[i] = sk_X509_value(all, i);
	memset(s.link, -1, (size_t)s.n * (size_t)s.n);
	memset(s.self, -1, (size_t)s.n);

	leaf = pick_leaf(m, &s, report, reportlen);
	s_path(&s, leaf);
	m->leaf = s.pool[s.best[0]];
	s.pool[s.best[0]] = NULL;
	for (int i = 1; i < s.bestlen; i++) {
		if (!sk_X509_push(m->chain, s.pool[s.best[i]]))
			break; /* left in the pool: it becomes a stray below */
		s.pool[s.best[i]] = NULL;
	}
	for (int i = 0; i < s.n; i++) {
		if (s.pool[i] == NULL)
			continue;
		report_add(report, reportlen, "certificate %s (issued by %s) is not part of the "
					      "leaf's chain\n",
			   cs_x509_subject(s.pool[i], subj, sizeof(subj)),
			   cs_x509_issuer(s.pool[i], iss, sizeof(iss)));
		if (!sk_X509_push(m->strays, s.pool[i]))
			X509_free(s.pool[i]);
		s.pool[i] = NULL;
		strays++;
	}
	rc = strays;
out:
	if (rc < 0) {
		/* Nothing was placed yet: give the certificates back as strays. */
		while (sk_X509_num(all) > 0)
			if (!sk_X509_push(m->strays, sk_X509_shift(all)))
				break;
		sk_X509_pop_free(all, X509_free);
	} else {
		sk_X509_free(all);
	}
	free(s.pool);
	free(s.link);
	free(s.self);
	free(s.used);
	return rc;
}

/* Pushes a new reference to each certificate of m, in m's order; NULL on ENOMEM. */
static STACK_OF(X509) *snapshot(const cs_material *m)
{
	STACK_OF(X509) *v = sk_X509_new_null();
	STACK_OF(X509) *parts[2] = { m->chain, m->strays };

	if (v == NULL)
		return NULL;
	if (m->leaf != NULL && (!X509_up_ref(m->leaf) || !sk_X509_push(v, m->leaf)))
		goto fail;
	for (int p = 0; p < 2; p++)
		for (int i = 0; i < sk_X509_num(parts[p]); i++) {
			X509 *x = sk_X509_value(parts[p], i);

			if (!X509_up_ref(x))
				goto fail;
			if (!sk_X509_push(v, x)) {
				X509_free(x);
				goto fail;
			}
		}
	return v;
fail:
	sk_X509_pop_free(v, X509_free);
	return NULL;
}

/* True when before, repeats left out, is exactly m's leaf then m's chain. */
static bool same_order(STACK_OF(X509) *before, const cs_material *m)
{
	int want = 1 + sk_X509_num(m->chain), next = 0;

	if (m->leaf == NULL || sk_X509_num(m->strays) > 0)
		return m->leaf == NULL && sk_X509_num(before) == 0;
	for (int i = 0; i < sk_X509_num(before); i++) {
		X509 *x = sk_X509_value(before, i);
		bool repeat = false;

		for (int j = 0; j < i && !repeat; j++)
			repeat = X509_cmp(x, sk_X509_value(before, j)) == 0;
		if (repeat)
			continue;
		if (next >= want || X509_cmp(x, next == 0 ? m->leaf
							  : sk_X509_value(m->chain, next - 1)) != 0)
			return false;
		next++;
	}
	return next == want;
}

/*
 * Returns the first certificate of m's path that more than one other
 * certificate of m could have issued, or NULL when every link is the only
 * one possible.
 */
static X509 *first_fork(const cs_material *m)
{
	int n = 1 + sk_X509_num(m->chain) + sk_X509_num(m->strays);
	X509 *v[2 * CHAIN_MAX_DEPTH];

	if (n > (int)(sizeof(v) / sizeof(v[0])))
		return m->leaf; /* too many to tell: never guess */
	v[0] = m->leaf;
	for (int i = 0; i < sk_X509_num(m->chain); i++)
		v[1 + i] = sk_X509_value(m->chain, i);
	for (int i = 0; i < sk_X509_num(m->strays); i++)
		v[1 + sk_X509_num(m->chain) + i] = sk_X509_value(m->strays, i);
	for (int i = 0; i < 1 + sk_X509_num(m->chain); i++) {
		int issuers = 0;

		for (int j = 0; j < n; j++)
			if (j != i && X509_cmp(v[i], v[j]) != 0 && cs_chain_issued_by(v[i], v[j]))
				issuers++;
		if (issuers > 1)
			return v[i];
	}
	return NULL;
}

int cs_chain_order(cs_material *m, char *report, size_t reportlen)
{
	STACK_OF(X509) *before = snapshot(m);
	char subj[256];
	X509 *fork;
	int rc;

	if (before == NULL) {
		if (report != NULL && reportlen > 0)
			snprintf(report, reportlen, "out of memory\n");
		return -ENOMEM;
	}
	rc = cs_chain_normalise(m, report, reportlen);
	if (rc < 0)
		goto out;
	if (same_order(before, m)) {
		rc = 0;
		goto out;
	}
	rc = 1;
	if (m->leaf != NULL && (fork = first_fork(m)) != NULL) {
		report_add(report, reportlen, "the certificates are out of order and cannot be "
					      "put in order unambiguously: more than one of them "
					      "could have issued %s\n",
			   cs_x509_subject(fork, subj, sizeof(subj)));
		rc = CS_CHAIN_AMBIGUOUS;
	}
	ERR_clear_error();
out:
	sk_X509_pop_free(before, X509_free);
	return rc;
}
