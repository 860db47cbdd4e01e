/*
 * cs_capath_table - the in-memory picture of a CApath directory: the files
 * by name and the buckets by kind (certificate or CRL) and subject hash,
 * each bucket with its members and its links by index. Both are cs_htab
 * tables whose nodes are members of the files and buckets. It owns their
 * memory: cs_capath__state_reset frees it all.
 */
#include "cs_capath_int.h"

/* ---- tables ---- */

static uint64_t bkey(int crl, uint32_t hash)
{
	return (uint64_t)hash * 2654435761u + (uint64_t)crl;
}

/* The node after n in the table's order (the first for NULL), or NULL. */
static struct cs_htab_node *node_after(const struct cs_htab *t, const struct cs_htab_node *n)
{
	size_t i = 0;

	if (n != NULL) {
		if (SLIST_NEXT(n, link) != NULL)
			return SLIST_NEXT(n, link);
		i = (n->hash & (t->nb - 1)) + 1;
	}
	for (; i < t->nb; i++)
		if (!SLIST_EMPTY(&t->b[i]))
			return SLIST_FIRST(&t->b[i]);
	return NULL;
}

static struct cfile *file_of(struct cs_htab_node *n)
{
	return n != NULL ? cs_htab_entry(n, struct cfile, node) : NULL;
}

static struct bucket *bucket_of(struct cs_htab_node *n)
{
	return n != NULL ? cs_htab_entry(n, struct bucket, node) : NULL;
}

struct cfile *cs_capath__file_find(const cs_capath *cp, const char *name)
{
	uint64_t h = cs_htab_hash(name, CS_HTAB_SEED);

	for (struct cs_htab_node *n = cs_htab_first(&cp->files, h); n != NULL;
	     n = cs_htab_next(n, h))
		if (strcmp(file_of(n)->name, name) == 0)
			return file_of(n);
	return NULL;
}

/* Returns the file after f (the first for NULL), or NULL: every file once while none is added. */
struct cfile *cs_capath__file_next(const cs_capath *cp, const struct cfile *f)
{
	return file_of(node_after(&cp->files, f != NULL ? &f->node : NULL));
}

void cs_capath__file_clear(struct cfile *f)
{
	free(f->der);
	f->der = NULL;
	f->derlen = 0;
	f->kind = KIND_NONE;
}

static void file_free(struct cfile *f)
{
	if (f == NULL)
		return;
	cs_capath__file_clear(f);
	free(f->skip);
	free(f->name);
	free(f);
}

struct cfile *cs_capath__file_add(cs_capath *cp, const char *name)
{
	struct cfile *f = calloc(1, sizeof(*f));

	if (f == NULL || (f->name = strdup(name)) == NULL ||
	    cs_htab_insert(&cp->files, &f->node, cs_htab_hash(name, CS_HTAB_SEED)) < 0) {
		if (f != NULL)
			free(f->name);
		free(f);
		return NULL;
	}
	return f;
}

void cs_capath__file_remove(cs_capath *cp, struct cfile *f)
{
	cs_htab_remove(&cp->files, &f->node);
	file_free(f);
}

struct bucket *cs_capath__bucket_get(cs_capath *cp, int crl, uint32_t hash, int create)
{
	uint64_t k = bkey(crl, hash);
	struct bucket *b;

	for (struct cs_htab_node *n = cs_htab_first(&cp->buckets, k); n != NULL;
	     n = cs_htab_next(n, k))
		if ((b = bucket_of(n))->crl == crl && b->hash == hash)
			return b;
	if (!create)
		return NULL;
	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return NULL;
	b->crl = crl;
	b->hash = hash;
	if (cs_htab_insert(&cp->buckets, &b->node, k) < 0) {
		free(b);
		return NULL;
	}
	return b;
}

/* Returns the bucket after b (the first for NULL), or NULL: every bucket once while none is made. */
struct bucket *cs_capath__bucket_next(const cs_capath *cp, const struct bucket *b)
{
	return bucket_of(node_after(&cp->buckets, b != NULL ? &b->node : NULL));
}

static void bucket_free(struct bucket *b)
{
	for (int i = 0; i < b->nlinks; i++)
		free(b->links[i].target);
	free(b->links);
	free(b->mem);
	free(b);
}

/* Makes index id addressable; returns 0 or -ENOMEM. */
static int bucket_reserve(struct bucket *b, int id)
{
	struct link *n;
	int nn;

	if (id < b->nlinks)
		return 0;
	nn = b->nlinks ? b->nlinks : 4;
	while (nn <= id)
		nn *= 2;
	n = realloc(b->links, (size_t)nn * sizeof(*n));
	if (n == NULL)
		return -ENOMEM;
	memset(n + b->nlinks, 0, (size_t)(nn - b->nlinks) * sizeof(*n));
	b->links = n;
	b->nlinks = nn;
	return 0;
}

/* Records what is at index id; an early link stays early while its target is the same. */
int cs_capath__bucket_set_link(struct bucket *b, int id, const char *target, int blocked)
{
	char *t = NULL;
	int early;

	if (bucket_reserve(b, id) < 0)
		return -ENOMEM;
	if (target != NULL && (t = strdup(target)) == NULL)
		return -ENOMEM;
	early = b->links[id].early && target != NULL && b->links[id].target != NULL &&
		strcmp(b->links[id].target, target) == 0;
	free(b->links[id].target);
	b->links[id].target = t;
	b->links[id].blocked = blocked;
	b->links[id].early = early;
	return 0;
}

int cs_capath__bucket_add_member(struct bucket *b, struct cfile *f)
{
	if (b->nmem == b->capmem) {
		int nc = b->capmem ? b->capmem * 2 : 4;
		struct cfile **n = realloc(b->mem, (size_t)nc * sizeof(*n));

		if (n == NULL)
			return -ENOMEM;
		b->mem = n;
		b->capmem = nc;
	}
	b->mem[b->nmem++] = f;
	f->b = b;
	return 0;
}

void cs_capath__bucket_del_member(struct bucket *b, struct cfile *f)
{
	for (int i = 0; i < b->nmem; i++)
		if (b->mem[i] == f) {
			memmove(b->mem + i, b->mem + i + 1, (size_t)(b->nmem - i - 1) * sizeof(*b->mem));
			b->nmem--;
			break;
		}
	f->b = NULL;
}

void cs_capath__state_reset(cs_capath *cp)
{
	struct cs_htab_node *n;

	for (size_t i = 0; i < cp->files.nb; i++)
		while ((n = SLIST_FIRST(&cp->files.b[i])) != NULL) {
			SLIST_REMOVE_HEAD(&cp->files.b[i], link);
			file_free(file_of(n));
		}
	for (size_t i = 0; i < cp->buckets.nb; i++)
		while ((n = SLIST_FIRST(&cp->buckets.b[i])) != NULL) {
			SLIST_REMOVE_HEAD(&cp->buckets.b[i], link);
			bucket_free(bucket_of(n));
		}
	cs_htab_clear(&cp->files);
	cs_htab_clear(&cp->buckets);
	cp->scanned = 0;
}
