/*
 * cs_state - what the agent remembers about each certificate across restarts,
 * kept as one JSON file per cert under state_dir/certs/NAME.json and written
 * with the atomic writer: the deployed generation, the last renewal and its
 * result, failures and the last error, when the next attempt is due, and the
 * history of generations kept for rollback.
 */
#ifndef CS_STATE_H
#define CS_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define CS_STATE_GENERATIONS 3 /* generations kept under state_dir for rollback */

struct cs_state_gen {
	int n;               /* generation number, increasing */
	char serial[80];     /* hex */
	char sha256[100];    /* Postfix format */
	time_t not_after;
	time_t deployed;
};

/*
 * What the last examination of the deployed outputs found, when they were
 * valid: with the fingerprint of everything the verdict depended on (the
 * outputs' bytes, the configuration that judged them, the issuer's trust
 * anchors), a later start whose fingerprint is the same takes these details
 * instead of decoding the files again. fp[0] == '\0': nothing recorded.
 */
struct cs_state_seen {
	char fp[65];         /* hex SHA-256, cs_deploy_fingerprint */
	char serial[80];
	char sha256[100];    /* of the leaf, Postfix format; equals gens[0].sha256 */
	time_t not_before, not_after;
	bool adopted;        /* "valid (adopted)": someone else's, taken on purpose */
};

/*
 * The issuer's last answer about the renewal window (ACME ARI, RFC 9773) of
 * the leaf with digest sha256: kept so that a restart takes the window into
 * the schedule and asks again only at `next`. sha256[0] == '\0': none.
 */
struct cs_state_ari {
	char sha256[200];       /* of the leaf asked about, Postfix format (CS_FP_MAX) */
	time_t start, end;      /* the suggested window */
	char explanation[512];  /* the CA's explanation URL, or "" */
	time_t asked;           /* when this window (start, end) was first given */
	time_t next;            /* when to ask again (Retry-After, bounded) */
};

struct cs_state {
	time_t last_attempt;   /* 0: never */
	time_t last_success;   /* 0: never */
	int failures;          /* consecutive */
	char *last_error;      /* NULL when none; malloc'd */
	time_t next_attempt;   /* earliest retry after a failure, 0 when none */
	time_t next_due;       /* when the pipeline plans the next renewal, 0: unknown */
	int64_t retry_after;   /* the issuer asked to wait this long, seconds */
	int next_gen;          /* number of the next generation */
	char issuer[128];      /* the [issuer] of the deployed generation ("": unknown) */
	char fallback[512];    /* why that issuer, not the cert's first, issued it ("": it
				  is the first, or unknown) */
	uint64_t fallbacks;    /* times a renewal moved on to the next issuer of the list */
	/* The renewal under way, failing (failover, cs_sched_failover): */
	int issuer_idx;        /* the issuer of the cert's list it tries now (0: the first) */
	int issuer_failures;   /* failures in a row on that issuer */
	time_t renew_at;       /* its first attempt; 0: no renewal failing */
	char failover_why[512]; /* why it moved to issuer_idx ("": it did not) */
	bool profile_known;    /* profile says what the deployed generation was
				  ordered with (false: from before it was kept, or
				  adopted) */
	char profile[128];     /* the issuer's profile it was ordered with ("": none) */
	int pending_gen;       /* issued and kept, not yet deployed (0: none): the
				  next attempt deploys it instead of ordering again */
	struct cs_state_gen gens[CS_STATE_GENERATIONS]; /* newest first */
	size_t n_gens;
	struct cs_state_seen seen;
	struct cs_state_ari ari;  /* absent from older state files: none */
};

/*
 * Loads state_dir/certs/name.json into *st. A missing file is an empty state
 * (returns 0); a corrupt one is reported in err, renamed aside to
 * NAME.json.corrupt and also gives an empty state (returns 1).
 */
int cs_state_load(const char *state_dir, const char *name, struct cs_state *st, char *err,
		  size_t errlen);

/* Writes st atomically; returns 0 or a negative errno with err set. */
int cs_state_save(const char *state_dir, const char *name, const struct cs_state *st,
		  char *err, size_t errlen);

/* Sets last_error (copied; NULL clears). */
void cs_state_set_error(struct cs_state *st, const char *msg);

/*
 * Adds g as the newest generation (an entry with the same number moves to the
 * front), dropping the oldest beyond the limit.
 */
void cs_state_push_gen(struct cs_state *st, const struct cs_state_gen *g);

/* Removes generation n from the list (a refused one); no-op when absent. */
void cs_state_drop_gen(struct cs_state *st, int n);

/* Frees what st owns (not st itself). */
void cs_state_clear(struct cs_state *st);

/* Creates dir and its parents with mode (existing ones are left alone). */
int cs_state_mkdirs(const char *dir, mode_t mode, char *err, size_t errlen);

#endif
