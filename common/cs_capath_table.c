/*
 * cs_capath_table - the in-memory picture of a CApath directory: the files
 * by name and the buckets by kind (certificate or CRL) and subject hash,
 * each bucket with its members and its links by index. Both are chained
 * hash tables that double as they fill. It owns their memory:
 * cs_capath__state_reset frees it all.
 */
#include "cs_capath_int.h"

/* ---- tables ---- */

size_t cs_capath__str_hash(const char *s)
{
	size_t h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static size_t bkey(int crl, uint32_t hash)
{
	return (size_t)hash * 2654435761u + (size_t)crl;
}

static int grow_files(cs_capath *cp)
{
	size_t nsize = cp->fsize ? cp->fsize * 2 : 1024;
	struct cfile **t = calloc(nsize, sizeof(*t));

	if (t == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < cp->fsize; i++)
		for (struct cfile *f = cp->ftab[i], *n; f != NULL; f = n) {
			size_t k = cs_capath__str_hash(f->name) & (nsize - 1);

			n = f->next;
			f->next = t[k];
			t[k] = f;
		}
	free(cp->ftab);
	cp->ftab = t;
	cp->fsize = nsize;
	return 0;
}

struct cfile *cs_capath__file_find(const cs_capath *cp, const char *name)
{
	if (cp->fsize == 0)
		return NULL;
	for (struct cfile *f = cp->ftab[cs_capath__str_hash(name) & (cp->fsize - 1)]; f != NULL;
	     f = f->next)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
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
	struct cfile *f;
	size_t k;

	if ((cp->fcount + 1 > cp->fsize * 2 || cp->fsize == 0) && grow_files(cp) < 0)
		return NULL;
	f = calloc(1, sizeof(*f));
	if (f == NULL || (f->name = strdup(name)) == NULL) {
		free(f);
		return NULL;
	}
	k = cs_capath__str_hash(name) & (cp->fsize - 1);
	f->next = cp->ftab[k];
	cp->ftab[k] = f;
	cp->fcount++;
	return f;
}

void cs_capath__file_remove(cs_capath *cp, struct cfile *f)
{
	struct cfile **pp = &cp->ftab[cs_capath__str_hash(f->name) & (cp->fsize - 1)];

	for (; *pp != NULL; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			cp->fcount--;
			break;
		}
	file_free(f);
}

static int grow_buckets(cs_capath *cp)
{
	size_t nsize = cp->bsize ? cp->bsize * 2 : 1024;
	struct bucket **t = calloc(nsize, sizeof(*t));

	if (t == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < cp->bsize; i++)
		for (struct bucket *b = cp->btab[i], *n; b != NULL; b = n) {
			size_t k = bkey(b->crl, b->hash) & (nsize - 1);

			n = b->next;
			b->next = t[k];
			t[k] = b;
		}
	free(cp->btab);
	cp->btab = t;
	cp->bsize = nsize;
	return 0;
}

struct bucket *cs_capath__bucket_get(cs_capath *cp, int crl, uint32_t hash, int create)
{
	struct bucket *b;
	size_t k;

	if (cp->bsize != 0)
		for (b = cp->btab[bkey(crl, hash) & (cp->bsize - 1)]; b != NULL; b = b->next)
			if (b->crl == crl && b->hash == hash)
				return b;
	if (!create)
		return NULL;
	if ((cp->bcount + 1 > cp->bsize * 2 || cp->bsize == 0) && grow_buckets(cp) < 0)
		return NULL;
	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return NULL;
	b->crl = crl;
	b->hash = hash;
	k = bkey(crl, hash) & (cp->bsize - 1);
	b->next = cp->btab[k];
	cp->btab[k] = b;
	cp->bcount++;
	return b;
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
	for (size_t i = 0; i < cp->fsize; i++)
		for (struct cfile *f = cp->ftab[i], *n; f != NULL; f = n) {
			n = f->next;
			file_free(f);
		}
	for (size_t i = 0; i < cp->bsize; i++)
		for (struct bucket *b = cp->btab[i], *n; b != NULL; b = n) {
			n = b->next;
			bucket_free(b);
		}
	free(cp->ftab);
	free(cp->btab);
	cp->ftab = NULL;
	cp->btab = NULL;
	cp->fsize = cp->fcount = cp->bsize = cp->bcount = 0;
	cp->scanned = 0;
}
