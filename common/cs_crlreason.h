/*
 * cs_crlreason - the RFC 5280 CRLReason codes and their names as `openssl
 * ca` spells them in index.txt: the one table behind certsyncctl revoke,
 * the pipeline's revocations and the local CA's index.txt and CRLs.
 */
#ifndef CS_CRLREASON_H
#define CS_CRLREASON_H

#include <stddef.h>

/* Sets of reasons (flags): which ones a caller accepts. */
#define CS_CRLREASON_ANY    0x0 /* every named reason, removeFromCRL (8) included */
#define CS_CRLREASON_REVOKE 0x1 /* a revocation may give it: codes 0 to 6 */
#define CS_CRLREASON_CLIENT 0x2 /* certsyncctl revoke may ask for it */

/* Returns the name of code, or NULL when it names no reason. */
const char *cs_crlreason_name(int code);

/*
 * Returns the code of name (case-insensitive) when the reason is in every
 * set of flags, else -1. *canon (if not NULL) gets the name as the table
 * spells it (static).
 */
int cs_crlreason_code(const char *name, unsigned flags, const char **canon);

/* Returns 1 when code names a reason in every set of flags, else 0. */
int cs_crlreason_valid(int code, unsigned flags);

/*
 * Writes the names of the reasons in flags, in code order, as
 * "unspecified, keyCompromise, ..." (for error messages) into buf; returns buf.
 */
const char *cs_crlreason_list(unsigned flags, char *buf, size_t len);

#endif
