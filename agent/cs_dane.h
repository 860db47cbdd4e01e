/*
 * cs_dane - the DANE rollover of one certificate: which TLSA records it
 * wants published ("current + next", RFC 7671 section 8.1), which are in
 * DNS as a validating resolver sees them and since when, and whether a
 * renewal may move to the staged next key. Pure rules on a plain struct
 * (checked with a fake clock in check_dane), plus the files they live in:
 * state_dir/dane/NAME.json (the records and their history) and
 * state_dir/dane/NAME.key (the staged next key, 0600).
 *
 * The records are "U 1 1": the SHA-256 of a SubjectPublicKeyInfo, the
 * server's key for U = 3, the issuer's for U = 2. A record's life:
 *   wanted (current or next) -> added by an update -> seen, validated, at
 *   every owner (visible_since) -> [next] usable once seen for 2 x TTL ->
 *   [current replaced] retiring -> deleted 2 x TTL later.
 */
#ifndef CS_DANE_H
#define CS_DANE_H

#include "cs_config.h"
#include "cs_dnsq.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CS_DANE_MAX 6       /* records followed (current, next, the retiring) */
#define CS_DANE_HEX 65      /* a SHA-256 in hex and its NUL */

enum cs_dane_role { CS_DANE_CURRENT = 0, CS_DANE_NEXT, CS_DANE_RETIRING };

struct cs_dane_rec {
	char hex[CS_DANE_HEX];  /* the association data */
	int role;               /* enum cs_dane_role */
	bool published;         /* an update added it (or the resolver showed it) */
	int64_t visible_since;  /* since when every owner's validated answer has
				   held it; 0: not (now) */
	int64_t retire_at;      /* CS_DANE_RETIRING: deleted from then on */
};

struct cs_dane_state {
	struct cs_dane_rec r[CS_DANE_MAX];
	size_t n;
	uint32_t ttl;           /* the largest TTL a validated answer gave */
	int64_t checked_at;     /* the last look through the resolver (0: none) */
	bool validated;         /* every owner answered, with AD */
	char check_err[300];    /* why the last look failed ("": it did not) */
	int64_t updated_at;     /* the last update that ran (0: none) */
	bool update_failed;     /* the last update failed */
	char update_err[300];
	uint64_t update_failures; /* updates that failed, ever (a counter) */
	uint64_t kept;          /* renewals that kept the current key because the next
				   one was not ready (a counter; the pipeline's loop
				   thread owns it) */
};

/* The changes an update makes: records to add and to delete. */
struct cs_dane_changes {
	const char *add[CS_DANE_MAX], *del[CS_DANE_MAX];
	size_t n_add, n_del;
};

/*
 * Sets the roles for the deployed key's (or issuer's) record cur and the
 * staged next key's record next ("" or NULL: none): a record that was
 * current and is neither starts retiring, to be deleted at now + wait.
 */
void cs_dane_plan(struct cs_dane_state *st, const char *cur, const char *next, int64_t now,
		  int64_t wait);

/* What an update should do now: add what is wanted and not published,
   delete what has retired. Points into st. */
void cs_dane_changes(const struct cs_dane_state *st, int64_t now, struct cs_dane_changes *ch);

/* After an update that made ch (ok) or failed with err. */
void cs_dane_updated(struct cs_dane_state *st, const struct cs_dane_changes *ch, bool ok,
		     const char *err, int64_t now);

/*
 * After a look through the resolver: answers[i] for each owner (usage the
 * records must have). A record is visible when every answer is validated
 * and holds it. err: why the look failed (NULL: it did not).
 */
void cs_dane_observe(struct cs_dane_state *st, int usage, const struct cs_dnsq_answer *answers,
		     size_t n, const char *err, int64_t now);

/* 2 x the TTL to wait: the larger of the one answered and ttl_conf. */
int64_t cs_dane_wait(const struct cs_dane_state *st, int64_t ttl_conf);

/* The record of role (NULL: none). */
const struct cs_dane_rec *cs_dane_role(const struct cs_dane_state *st, int role);

/*
 * Whether a renewal may move to the next key: its record has been visible
 * for cs_dane_wait. *left gets the seconds still to wait (-1: not visible).
 */
bool cs_dane_next_ready(const struct cs_dane_state *st, int64_t now, int64_t ttl_conf,
			int64_t *left);

/* Whether all is well: validated, the current record visible, no failed update. */
bool cs_dane_ok(const struct cs_dane_state *st);

/* Loads state_dir/dane/name.json (missing: empty). Returns 0, or -1 with err. */
int cs_dane_load(const char *state_dir, const char *name, struct cs_dane_state *st, char *err,
		 size_t errlen);

/* Writes it (atomically). Returns 0, or -1 with err. */
int cs_dane_save(const char *state_dir, const char *name, const struct cs_dane_state *st,
		 char *err, size_t errlen);

/*
 * The staged next key state_dir/dane/name.key: read (NULL with *err empty
 * when there is none), or written (0600 before its first byte).
 */
EVP_PKEY *cs_dane_key_read(const char *state_dir, const char *name, char *err, size_t errlen);
int cs_dane_key_write(const char *state_dir, const char *name, EVP_PKEY *key, char *err,
		      size_t errlen);

/* ---- cs_dane_publish.c: what the configuration says to do -------------- */

#define CS_DANE_OWNER_MAX 300
#define CS_DANE_MAX_OWNERS 16

/*
 * The TLSA owner names of c: "_PORT._tcp.NAME" for each of dane_ports and
 * dane_names (at most max). Returns how many.
 */
size_t cs_dane_owners(const struct cs_cfg_cert *c, char (*out)[CS_DANE_OWNER_MAX], size_t max);

/*
 * Makes ch in DNS as c's dane_update says: one nsupdate transaction (TSIG,
 * to dane_server) for every owner, or dane_hook once per owner and change.
 * Nothing for dane_update = none. Blocking (a work-queue thread). Returns
 * 0, or -1 with err saying what failed (the program's own words).
 */
int cs_dane_publish(const struct cs_cfg_cert *c, const char *state_dir,
		    const struct cs_dane_changes *ch, char *err, size_t errlen);

#endif
