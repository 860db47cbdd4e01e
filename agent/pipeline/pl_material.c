/*
 * pl_material - the deployed material of a cert between passes: kept as DER
 * (key, leaf, chain; about 1.5 KB) instead of decoded OpenSSL objects (ten
 * times that), and decoded again only for the rare steps that need it: a
 * renewal (the key with reuse_key, the leaf it replaces, the set to put back
 * when a deploy stops half-way), a revocation and an ARI question.
 *
 * A start that finds the outputs as the state last saw them keeps nothing
 * (dep_lazy): the generation kept under state_dir with the same leaf is the
 * deployed material, read from there when a step needs it.
 *
 * The layout is a sequence of (4-byte big-endian length, DER) records: the
 * private key (i2d_PrivateKey), the leaf, then the chain in order.
 */
#include "pl_int.h"
#include "cs_fp.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct der_buf {
	unsigned char *p;
	size_t len, cap;
	bool oom;
};

static void put_record(struct der_buf *b, unsigned char *der, int len)
{
	if (b->oom || len < 0) {
		b->oom = true;
		return;
	}
	if (b->len + 4 + (size_t)len > b->cap) {
		size_t cap = (b->len + 4 + (size_t)len) * 2;
		unsigned char *p = realloc(b->p, cap);
		if (p == NULL) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	b->p[b->len++] = (unsigned char)((unsigned)len >> 24);
	b->p[b->len++] = (unsigned char)((unsigned)len >> 16);
	b->p[b->len++] = (unsigned char)((unsigned)len >> 8);
	b->p[b->len++] = (unsigned char)len;
	memcpy(b->p + b->len, der, (size_t)len);
	b->len += (size_t)len;
}

void pl_material_keep(struct cert *c, cs_material *m)
{
	struct der_buf b = { 0 };
	unsigned char *der;
	int len;

	/* It holds a private key. */
	if (c->dep != NULL)
		OPENSSL_cleanse(c->dep, c->dep_len);
	free(c->dep);
	c->dep = NULL;
	c->dep_len = 0;
	c->dep_lazy = false;
	if (m == NULL)
		return;
	if (m->key != NULL || m->leaf != NULL) {
		/* An empty record stands for a key or leaf that is not there. */
		der = NULL;
		len = m->key != NULL ? i2d_PrivateKey(m->key, &der) : 0;
		put_record(&b, der, len);
		OPENSSL_clear_free(der, len > 0 ? (size_t)len : 0);
		der = NULL;
		len = m->leaf != NULL ? i2d_X509(m->leaf, &der) : 0;
		put_record(&b, der, len);
		OPENSSL_free(der);
		for (int i = 0; i < sk_X509_num(m->chain); i++) {
			der = NULL;
			len = i2d_X509(sk_X509_value(m->chain, i), &der);
			put_record(&b, der, len);
			OPENSSL_free(der);
		}
	}
	if (b.oom || b.len == 0) {
		if (b.p != NULL)
			OPENSSL_cleanse(b.p, b.cap);
		free(b.p);
		if (b.oom)
			cs_err("%s: cannot keep the deployed material: out of memory", c->cfg->name);
	} else {
		c->dep = b.p;
		c->dep_len = b.len;
	}
	cs_material_free(m);
}

void pl_material_lazy(struct cert *c)
{
	pl_material_keep(c, NULL);
	c->dep_lazy = true;
}

bool pl_material_has(const struct cert *c)
{
	return c->dep != NULL || c->dep_lazy;
}

/* The generation that holds c's deployed leaf, read and checked (dep_lazy). */
static cs_material *load_deployed_gen(const struct cert *c)
{
	const char *state_dir = c->pl->cfg->agent.state_dir;
	char err[512] = "no generation holds it", sha[CS_FP_MAX];
	cs_material *m = NULL;

	for (size_t i = 0; i < c->st.n_gens; i++) {
		if (strcmp(c->st.gens[i].sha256, c->sha256) != 0)
			continue;
		if (cs_deploy_load_gen(state_dir, c->cfg->name, c->st.gens[i].n, &m, err,
				       sizeof(err)) < 0)
			break;
		if (m->leaf != NULL &&
		    cs_fp_cert(m->leaf, CS_DIGEST_SHA256, sha, sizeof(sha)) == 0 &&
		    strcmp(sha, c->sha256) == 0)
			return m;
		snprintf(err, sizeof(err), "generation %d holds another certificate",
			 c->st.gens[i].n);
		break;
	}
	cs_err("%s: cannot read the deployed material (%s): %s", c->cfg->name, c->serial, err);
	cs_material_free(m);
	return NULL;
}

/* Reads the record at *off; returns its DER and length, or NULL at the end. */
static const unsigned char *next_record(const struct cert *c, size_t *off, long *len)
{
	size_t o = *off;

	if (o + 4 > c->dep_len)
		return NULL;
	*len = (long)(((unsigned long)c->dep[o] << 24) | ((unsigned long)c->dep[o + 1] << 16) |
		      ((unsigned long)c->dep[o + 2] << 8) | c->dep[o + 3]);
	if ((size_t)*len > c->dep_len - o - 4)
		return NULL;
	*off = o + 4 + (size_t)*len;
	return c->dep + o + 4;
}

cs_material *pl_material_get(const struct cert *c)
{
	const unsigned char *der, *p;
	cs_material *m;
	size_t off = 0;
	long len;

	if (c->dep == NULL && c->dep_lazy)
		return load_deployed_gen(c);
	if (c->dep == NULL || (m = cs_material_new()) == NULL)
		return NULL;
	if ((der = next_record(c, &off, &len)) == NULL ||
	    (len > 0 && (p = der, m->key = d2i_AutoPrivateKey(NULL, &p, len)) == NULL))
		goto fail;
	if ((der = next_record(c, &off, &len)) == NULL ||
	    (len > 0 && (p = der, m->leaf = d2i_X509(NULL, &p, len)) == NULL))
		goto fail;
	while ((der = next_record(c, &off, &len)) != NULL) {
		X509 *x;
		p = der;
		if ((x = d2i_X509(NULL, &p, len)) == NULL)
			goto fail;
		if (sk_X509_push(m->chain, x) <= 0) {
			X509_free(x);
			goto fail;
		}
	}
	return m;
fail:
	cs_err("%s: cannot decode the deployed material kept in memory", c->cfg->name);
	cs_material_free(m);
	return NULL;
}
