/*
 * cs_validate - decide whether a normalised cs_material set is fit to deploy,
 * and say every reason it is not: each problem is its own entry with its own
 * message, so a person (or the agent's status) sees all of them at once.
 *
 * The set is expected to be normalised (cs_chain_normalise): leaf first,
 * chain nearest issuer first. Validation never changes the set; it checks
 * that the order holds (each certificate issued by the next), that nothing is
 * left over, and with a trust store that the top of the chain is issued by an
 * anchor of that store (an intermediate taken from the store instead of the
 * set is a problem: a server would send an incomplete chain).
 */
#ifndef CS_VALIDATE_H
#define CS_VALIDATE_H

#include "cs_key.h"
#include "cs_material.h"
#include "cs_problems.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Which trust the chain must verify to. */
enum cs_trust {
	CS_TRUST_NONE = 0, /* do not verify the chain */
	CS_TRUST_OWN_ROOT, /* the set's own self-signed top certificate */
	CS_TRUST_STORE,    /* cafile and/or capath (and/or the system's store) */
};

struct cs_validate_opts {
	bool require_key;         /* a set without a key is a problem (deployable bundles) */
	enum cs_trust trust;
	const char *cafile;       /* CS_TRUST_STORE: PEM bundle of trusted CAs, or NULL */
	const char *capath;       /* CS_TRUST_STORE: hashed directory, or NULL */
	const char *cafile2;      /* CS_TRUST_STORE: a second PEM bundle, or NULL */
	bool system_store;        /* CS_TRUST_STORE: OpenSSL's default paths as well */
	uint32_t eku;             /* XKU_SSL_SERVER and/or XKU_SSL_CLIENT the leaf must
				     allow (when it has an extended key usage); 0: any */
	const char *const *names; /* DNS names or IP addresses the leaf must cover,
				     NULL-terminated; NULL: not checked */
	time_t now;               /* the moment validity is judged at; 0: time(NULL) */
	enum cs_keytype keytype;  /* CS_KEY_NONE: any type */
	int min_rsa_bits;         /* 0: 2048 */
};

/*
 * Checks m against o and appends one entry to out per problem found. Returns
 * the number of problems (0: fit to deploy), or a negative code with a
 * message in err when the check itself could not run (out of memory; a
 * CAfile/CApath that cannot be loaded is reported as a CS_PROB_TRUST problem).
 */
int cs_validate(const cs_material *m, const struct cs_validate_opts *o,
		struct cs_problems *out, char *err, size_t errlen);

#endif
