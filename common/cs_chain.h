/*
 * cs_chain - put a cs_material set in the order servers must send it: the
 * leaf that matches the private key first, then each issuer of the one
 * before (matched by AKI/SKI or names and a verified signature) up to a
 * self-signed root or the last issuer present. Duplicates are dropped and
 * certificates on no such path are kept aside as strays.
 */
#ifndef CS_CHAIN_H
#define CS_CHAIN_H

#include "cs_material.h"

#include <stdbool.h>
#include <stddef.h>

/*
 * Rebuilds m->leaf, m->chain and m->strays from all the certificates in them
 * (in that order, so a freshly ingested set, whose certificates are all in
 * m->strays, is taken in file order). The leaf is the certificate whose public
 * key matches m->key; without a key, or when none matches, it is the
 * certificate that issues no other and has the longest chain. One line per
 * dropped duplicate or stray is written into report (may be NULL). Returns
 * the number of strays, or a negative code with a message in report.
 */
int cs_chain_normalise(cs_material *m, char *report, size_t reportlen);

/*
 * Puts m in order as cs_chain_normalise does, and says whether it had to.
 * Returns 0 when m was already in order (its leaf, then its chain, then
 * nothing else), 1 when it was reordered, CS_CHAIN_AMBIGUOUS (m left
 * normalised, the reason in report) when it was out of order and more than
 * one certificate of the set could issue a certificate of the path found, so
 * that which order the sender meant cannot be told, or another negative code
 * with a message in report.
 */
int cs_chain_order(cs_material *m, char *report, size_t reportlen);

#define CS_CHAIN_AMBIGUOUS (-4096)

/* Returns true when issuer issued x: AKI/SKI (or names) match and the signature verifies. */
bool cs_chain_issued_by(X509 *x, X509 *issuer);

/* Returns true when x is self-issued and its signature verifies with its own key. */
bool cs_chain_self_signed(X509 *x);

#endif
