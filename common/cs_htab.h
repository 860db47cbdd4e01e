/*
 * cs_htab - an intrusive hash table of chained nodes, for finding one of
 * many objects by a key without a scan (a certificate by name, the certs
 * that watch a file, a metrics record by name).
 *
 * The table owns only its bucket array: the nodes are members of the
 * caller's objects (find the object with cs_htab_entry), and keys are the
 * caller's to compare. A lookup walks the chain of one hash:
 *
 *	for (n = cs_htab_first(t, h); n != NULL; n = cs_htab_next(n, h))
 *		if (strcmp(cs_htab_entry(n, struct cert, node)->name, name) == 0) ...
 *
 * The table grows as nodes are added (doubling while more nodes than buckets)
 * and never moves a node. Not thread-safe.
 */
#ifndef CS_HTAB_H
#define CS_HTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

struct cs_htab_node {
	SLIST_ENTRY(cs_htab_node) link; /* in its bucket's chain */
	uint64_t hash;
};

SLIST_HEAD(cs_htab_chain, cs_htab_node);

struct cs_htab {
	struct cs_htab_chain *b; /* the chains, all empty when calloc'd */
	size_t nb; /* a power of two, or 0 before the first insert */
	size_t n;
};

#define cs_htab_entry(node, type, member) ((type *)(void *)((char *)(node)-offsetof(type, member)))

/* Returns the FNV-1a hash of s continued from h (start with CS_HTAB_SEED). */
#define CS_HTAB_SEED 0xcbf29ce484222325ull
uint64_t cs_htab_hash(const char *s, uint64_t h);

/* Adds node under hash (a node may be in one table at a time); returns 0 or -ENOMEM. */
int cs_htab_insert(struct cs_htab *t, struct cs_htab_node *node, uint64_t hash);

/* Removes node, which must be in t. */
void cs_htab_remove(struct cs_htab *t, struct cs_htab_node *node);

/* Returns the first node with hash, or NULL; the next one after node with cs_htab_next. */
struct cs_htab_node *cs_htab_first(const struct cs_htab *t, uint64_t hash);
struct cs_htab_node *cs_htab_next(const struct cs_htab_node *node, uint64_t hash);

/* Frees the buckets (not the nodes) and empties t. */
void cs_htab_clear(struct cs_htab *t);

#endif
