/*
 * cs_problems - a list of problems found in a set of TLS material, each its
 * own entry with a code, the certificate it is about and a message: what
 * cs_validate reports (see cs_validate.h).
 */
#ifndef CS_PROBLEMS_H
#define CS_PROBLEMS_H

#include <stdbool.h>
#include <stddef.h>

enum cs_problem_code {
	CS_PROB_NO_KEY = 1,    /* the set has no private key */
	CS_PROB_NO_LEAF,       /* the set has no certificate */
	CS_PROB_KEY_MISMATCH,  /* the key does not belong to the leaf */
	CS_PROB_TRUST,         /* the chain does not verify to the trust */
	CS_PROB_NAME,          /* a requested name is not covered by the leaf */
	CS_PROB_NOT_YET_VALID, /* a certificate's notBefore is after now */
	CS_PROB_EXPIRED,       /* a certificate's notAfter is before now */
	CS_PROB_KEY_TYPE,      /* the key is not of the expected type */
	CS_PROB_KEY_WEAK,      /* RSA key smaller than the minimum */
	CS_PROB_ORDER,         /* a certificate is not issued by the one after it */
	CS_PROB_STRAY,         /* a certificate of the set is in no chain of the leaf */
	CS_PROB_USAGE,         /* the leaf's extended key usage does not allow the use */
};

struct cs_problem {
	enum cs_problem_code code;
	int depth; /* certificate the problem is about: 0 leaf, 1 first issuer...; -1 none */
	char msg[512];
};

struct cs_problems {
	size_t n;
	struct cs_problem *v;
};

/* Returns an empty list (caller frees with cs_problems_free), NULL on ENOMEM. */
struct cs_problems *cs_problems_new(void);

/* Frees the list and its entries; accepts NULL. */
void cs_problems_free(struct cs_problems *p);

/* Returns true when p holds a problem with the given code. */
bool cs_problems_has(const struct cs_problems *p, enum cs_problem_code code);

#endif
