/*
 * cs_htab - intrusive chained hash table. See cs_htab.h.
 */
#include "cs_htab.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

uint64_t cs_htab_hash(const char *s, uint64_t h)
{
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ull;
	}
	return h;
}

static int grow(struct cs_htab *t)
{
	size_t nb = t->nb ? t->nb * 2 : 64;
	struct cs_htab_chain *b = calloc(nb, sizeof(*b));
	struct cs_htab_node *n;

	if (b == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < t->nb; i++)
		while ((n = SLIST_FIRST(&t->b[i])) != NULL) {
			SLIST_REMOVE_HEAD(&t->b[i], link);
			SLIST_INSERT_HEAD(&b[n->hash & (nb - 1)], n, link);
		}
	free(t->b);
	t->b = b;
	t->nb = nb;
	return 0;
}

int cs_htab_insert(struct cs_htab *t, struct cs_htab_node *node, uint64_t hash)
{
	/* A table that cannot grow still works, with longer chains. */
	if ((t->nb == 0 || t->n >= t->nb) && grow(t) < 0 && t->nb == 0)
		return -ENOMEM;
	node->hash = hash;
	SLIST_INSERT_HEAD(&t->b[hash & (t->nb - 1)], node, link);
	t->n++;
	return 0;
}

void cs_htab_remove(struct cs_htab *t, struct cs_htab_node *node)
{
	struct cs_htab_chain *c;
	struct cs_htab_node *n;

	assert(t->nb > 0);
	c = &t->b[node->hash & (t->nb - 1)];
	SLIST_FOREACH(n, c, link)
		if (n == node) {
			SLIST_REMOVE(c, node, cs_htab_node, link);
			assert(t->n > 0);
			t->n--;
			return;
		}
	assert(!"cs_htab_remove: node not in the table");
}

struct cs_htab_node *cs_htab_first(const struct cs_htab *t, uint64_t hash)
{
	struct cs_htab_node *n;

	if (t->nb == 0)
		return NULL;
	for (n = SLIST_FIRST(&t->b[hash & (t->nb - 1)]); n != NULL && n->hash != hash;
	     n = SLIST_NEXT(n, link))
		;
	return n;
}

struct cs_htab_node *cs_htab_next(const struct cs_htab_node *node, uint64_t hash)
{
	struct cs_htab_node *n;

	for (n = SLIST_NEXT(node, link); n != NULL && n->hash != hash; n = SLIST_NEXT(n, link))
		;
	return n;
}

void cs_htab_clear(struct cs_htab *t)
{
	free(t->b);
	t->b = NULL;
	t->nb = 0;
	t->n = 0;
}
