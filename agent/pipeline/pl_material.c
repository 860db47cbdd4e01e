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

#include <errno.h>
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

int pl_material_encode(const cs_material *m, struct pl_der *out)
{
	struct der_buf b = { 0 };
	unsigned char *der;
	int len;

	out->p = NULL;
	out->len = 0;
	if (m == NULL || (m->key == NULL && m->leaf == NULL))
		return 0;
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
	if (b.oom || b.len == 0) {
		/* It holds a private key. */
		if (b.p != NULL)
			OPENSSL_cleanse(b.p, b.cap);
		free(b.p);
		return b.oom ? -ENOMEM : 0;
	}
	out->p = b.p;
	out->len = b.len;
	return 0;
}

void pl_der_clear(struct pl_der *d)
{
	if (d->p != NULL)
		OPENSSL_cleanse(d->p, d->len);
	free(d->p);
	d->p = NULL;
	d->len = 0;
}

/* Keeps d (taken) as what c has deployed, dropping what was kept. */
static void keep_der(struct cert *c, struct pl_der *d)
{
	/* It holds a private key. */
	if (c->dep != NULL)
		OPENSSL_cleanse(c->dep, c->dep_len);
	free(c->dep);
	c->dep = d->p;
	c->dep_len = d->len;
	c->dep_lazy = false;
	d->p = NULL;
	d->len = 0;
}

void pl_material_keep(struct cert *c, cs_material *m)
{
	struct pl_der d = { 0 };

	if (pl_material_encode(m, &d) < 0)
		cs_err("%s: cannot keep the deployed material: out of memory", c->cfg->name);
	keep_der(c, &d);
	cs_material_free(m);
}

void pl_material_keep_encoded(struct cert *c, cs_material *m, struct pl_der *d)
{
	if (d == NULL || d->p == NULL) {
		pl_material_keep(c, m);
		return;
	}
	keep_der(c, d);
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

int pl_material_ref(const struct cert *c, struct pl_material_ref *r)
{
	memset(r, 0, sizeof(*r));
	r->name = c->cfg->name;
	r->state_dir = c->pl->cfg->agent.state_dir;
	snprintf(r->serial, sizeof(r->serial), "%s", c->serial);
	if (c->dep != NULL) {
		if ((r->der = malloc(c->dep_len)) == NULL)
			return -ENOMEM;
		memcpy(r->der, c->dep, c->dep_len);
		r->len = c->dep_len;
		r->set = true;
		return 0;
	}
	if (!c->dep_lazy)
		return 0;
	/* The generation that holds the deployed leaf. */
	for (size_t i = 0; i < c->st.n_gens && !r->set; i++)
		if (strcmp(c->st.gens[i].sha256, c->sha256) == 0) {
			r->gen = c->st.gens[i].n;
			snprintf(r->sha256, sizeof(r->sha256), "%s", c->sha256);
			r->set = true;
		}
	return 0;
}

void pl_material_ref_clear(struct pl_material_ref *r)
{
	if (r->der != NULL)
		OPENSSL_cleanse(r->der, r->len);
	free(r->der);
	memset(r, 0, sizeof(*r));
}

/* The generation r names, read and checked against the leaf's digest. */
static cs_material *load_gen(const struct pl_material_ref *r, char *err, size_t errlen)
{
	char sha[CS_FP_MAX];
	cs_material *m = NULL;

	if (cs_deploy_load_gen(r->state_dir, r->name, r->gen, &m, err, errlen) < 0)
		return NULL;
	if (m->leaf != NULL && cs_fp_cert(m->leaf, CS_DIGEST_SHA256, sha, sizeof(sha)) == 0 &&
	    strcmp(sha, r->sha256) == 0)
		return m;
	snprintf(err, errlen, "generation %d holds another certificate", r->gen);
	cs_material_free(m);
	return NULL;
}

/* Reads the record at *off of r; returns its DER and length, or NULL at the end. */
static const unsigned char *next_record(const struct pl_material_ref *r, size_t *off, long *len)
{
	size_t o = *off;

	if (o + 4 > r->len)
		return NULL;
	*len = (long)(((unsigned long)r->der[o] << 24) | ((unsigned long)r->der[o + 1] << 16) |
		      ((unsigned long)r->der[o + 2] << 8) | r->der[o + 3]);
	if ((size_t)*len > r->len - o - 4)
		return NULL;
	*off = o + 4 + (size_t)*len;
	return r->der + o + 4;
}

cs_material *pl_material_ref_decode(const struct pl_material_ref *r, char *err, size_t errlen)
{
	const unsigned char *der, *p;
	cs_material *m;
	size_t off = 0;
	long len;

	if (!r->set) {
		snprintf(err, errlen, "nothing deployed is known");
		return NULL;
	}
	if (r->der == NULL)
		return load_gen(r, err, errlen);
	if ((m = cs_material_new()) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if ((der = next_record(r, &off, &len)) == NULL ||
	    (len > 0 && (p = der, m->key = d2i_AutoPrivateKey(NULL, &p, len)) == NULL))
		goto fail;
	if ((der = next_record(r, &off, &len)) == NULL ||
	    (len > 0 && (p = der, m->leaf = d2i_X509(NULL, &p, len)) == NULL))
		goto fail;
	while ((der = next_record(r, &off, &len)) != NULL) {
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
	snprintf(err, errlen, "cannot decode the deployed material kept in memory");
	cs_material_free(m);
	return NULL;
}

cs_material *pl_material_get(const struct cert *c)
{
	struct pl_material_ref r;
	cs_material *m = NULL;
	char err[600] = "out of memory";

	if (!pl_material_has(c))
		return NULL;
	if (pl_material_ref(c, &r) == 0)
		m = pl_material_ref_decode(&r, err, sizeof(err));
	if (m == NULL)
		cs_err("%s: cannot read the deployed material (%s): %s", c->cfg->name, c->serial,
		       err);
	pl_material_ref_clear(&r);
	return m;
}
