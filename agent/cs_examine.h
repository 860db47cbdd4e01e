/*
 * cs_examine - look at what is deployed for one [cert]: read every configured
 * output through the toolkit and say whether it is usable as it is, and if
 * not, why (missing, unparsable, key and certificate that do not belong
 * together, outputs that disagree, expired, names not covered, another key
 * type than configured).
 */
#ifndef CS_EXAMINE_H
#define CS_EXAMINE_H

#include "cs_config.h"
#include "cs_material.h"
#include "cs_fp.h"

#include <time.h>

enum cs_verdict {
	CS_EX_OK = 0,
	CS_EX_MISSING,      /* an output file does not exist */
	CS_EX_UNPARSABLE,   /* an output cannot be read as what it should hold */
	CS_EX_MISMATCH,     /* key and leaf do not belong together */
	CS_EX_INCONSISTENT, /* outputs hold different certificates or keys */
	CS_EX_EXPIRED,      /* notAfter passed (or notBefore not reached) */
	CS_EX_NAMES,        /* the leaf does not cover every configured name */
	CS_EX_KEYTYPE,      /* the key is not of the configured type */
	CS_EX_CHAIN,        /* the chain is out of order, incomplete, holds a stray
			       certificate, does not end at the issuer's trust, or
			       the leaf's key usage does not fit */
	CS_EX_FOREIGN,      /* usable in every other way, but it does not verify to
			       the issuer's trust: someone else's certificate */
};

struct cs_examined {
	enum cs_verdict verdict;
	char reason[1024];  /* for people: which file, what is wrong */
	cs_material *m;     /* key, leaf and chain found (NULL when unusable) */
	time_t not_before, not_after;
	char serial[80];
	char sha256[CS_FP_MAX];
	const char *trusted_by; /* the [issuer] of c's list whose trust the chain ends
				   in (borrowed from the configuration); NULL: none */
};

/* Returns a short name for v ("ok", "missing", ...). */
const char *cs_examine_verdict_name(enum cs_verdict v);

/*
 * Examines the outputs of c at time now into *ex (release with
 * cs_examine_clear). Returns ex->verdict.
 */
enum cs_verdict cs_examine(const struct cs_cfg_cert *c, time_t now, struct cs_examined *ex);

/*
 * Checks a complete set (key, leaf, chain) against c at time now, as
 * cs_examine does for what it read; fills verdict, reason and the leaf
 * details of ex but does not take m. Returns the verdict.
 */
enum cs_verdict cs_examine_material(const struct cs_cfg_cert *c, const cs_material *m,
				    time_t now, struct cs_examined *ex);

/* Frees what ex owns. */
void cs_examine_clear(struct cs_examined *ex);

#endif
