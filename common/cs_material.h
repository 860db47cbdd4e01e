/*
 * cs_material - one set of TLS material in memory: a private key, the leaf
 * certificate that matches it, the chain of issuers above the leaf (nearest
 * first), CRLs, and certificates that belong to no chain.
 *
 * The set owns everything it points to; cs_material_free() releases all of it.
 */
#ifndef CS_MATERIAL_H
#define CS_MATERIAL_H

#include <openssl/evp.h>
#include <openssl/x509.h>

typedef struct cs_material {
	EVP_PKEY *key;              /* may be NULL */
	X509 *leaf;                 /* may be NULL */
	STACK_OF(X509) *chain;      /* issuers of the leaf, nearest first; never NULL */
	STACK_OF(X509_CRL) *crls;   /* never NULL */
	STACK_OF(X509) *strays;     /* certificates in no chain of the leaf; never NULL */
} cs_material;

/* Returns an empty set (caller frees with cs_material_free), NULL on ENOMEM. */
cs_material *cs_material_new(void);

/* Frees the set and all it owns; accepts NULL. */
void cs_material_free(cs_material *m);

#endif
