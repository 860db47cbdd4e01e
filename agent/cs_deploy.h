/*
 * cs_deploy - putting one set of material in place for a [cert]: validate it
 * against the configuration, keep it as a numbered generation under
 * state_dir/generations/NAME/N.pem (so that a broken or deleted output can be
 * repaired and a failed deploy rolled back), then write every configured
 * output through the atomic writer. Also the content digests with which the
 * pipeline tells its own writes from an administrator's.
 *
 * Everything here is synchronous file work: the pipeline calls it from the
 * libuv work queue, never on the loop thread.
 */
#ifndef CS_DEPLOY_H
#define CS_DEPLOY_H

#include "cs_config.h"
#include "cs_material.h"
#include "cs_output.h"

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct cs_examined; /* cs_examine.h */

#define CS_DEPLOY_MAX_OUTPUTS 10

/*
 * The configured outputs of a cert: first the fixed paths, in the order they
 * are written (path[0] to path[n_fixed - 1]), then, with live_dir, the five
 * files of the live generation as LIVE/NAME/FILE (in the order of enum
 * cs_output_kind), which are written together by one swap of the link.
 */
struct cs_deploy_outputs {
	size_t n;
	size_t n_fixed;
	const char *path[CS_DEPLOY_MAX_OUTPUTS]; /* borrowed from the configuration */
	enum cs_output_kind kind[CS_DEPLOY_MAX_OUTPUTS];
};

/* SHA-256 of each output's bytes, in the order of cs_deploy_outputs. */
struct cs_deploy_digests {
	bool valid;                                 /* false: nothing recorded yet */
	bool present[CS_DEPLOY_MAX_OUTPUTS];
	unsigned char sha256[CS_DEPLOY_MAX_OUTPUTS][32];
};

/* Fills *out with the outputs c configures. */
void cs_deploy_outputs_of(const struct cs_cfg_cert *c, struct cs_deploy_outputs *out);

/* Reads every output of c and records its digest (or its absence) in *out. */
void cs_deploy_digest_files(const struct cs_cfg_cert *c, struct cs_deploy_digests *out);

/*
 * The fingerprint of everything an examination of c's outputs depends on,
 * as 64 hex digits in out: the outputs' bytes (d), the paths and what each
 * holds, the names, key type and usage asked for, the issuer and the stat
 * (device, inode, size, mtime, ctime) of its trust anchors (the local CA's
 * certificate, `trust`, `ca_bundle`, the system store). Equal fingerprints
 * mean an examination would find the same (apart from the time, which the
 * caller checks against the validity it kept). Runs on the work queue.
 */
void cs_deploy_fingerprint(const struct cs_cfg_cert *c, const struct cs_deploy_digests *d,
			   char out[65]);

/* Returns true when a and b record the same bytes for every output. */
bool cs_deploy_digests_equal(const struct cs_deploy_digests *a, const struct cs_deploy_digests *b);

/*
 * Deploys m for c at time now: first puts m in order (cs_chain_order; the
 * leaf first, then each issuer), refusing a set whose order cannot be told;
 * refuses (-EINVAL, reason in err) material that cs_examine_material does not
 * find valid (key, names, usage, order, strays, trust of c's issuer); when gen > 0 first stores m as
 * generation gen under state_dir (nothing is pruned here: see
 * cs_deploy_prune_gens); then swaps c's live directory to m (one rename of
 * the link, see cs_livedir.h) and writes each fixed-path output. When an
 * output cannot be written, the outputs already replaced (and the live
 * link) are put back from prev (when not NULL) and the error names the file. On success *written (may be NULL)
 * holds the digests of what was written. Returns 0 or a negative code.
 */
int cs_deploy(const struct cs_cfg_cert *c, cs_material *m, const cs_material *prev,
	      const char *state_dir, int gen, time_t now, struct cs_deploy_digests *written,
	      char *err, size_t errlen);

/*
 * cs_deploy, with m examined once for the whole deploy: ex ends up holding
 * the examination of m (leaf details, verdict, reason; not m itself) for the
 * caller to keep, success or not (ex->m is left as it was). When
 * examined is true, ex already holds the caller's cs_examine_material of m
 * as cs_deploy_load_gen returned it, and is used as it is unless the chain
 * had to be put in another order.
 */
int cs_deploy_examined(const struct cs_cfg_cert *c, cs_material *m, const cs_material *prev,
		       const char *state_dir, int gen, time_t now, struct cs_examined *ex,
		       bool examined, struct cs_deploy_digests *written, char *err,
		       size_t errlen);

/*
 * Writes into out the name of the live generation directory of the leaf
 * whose SHA-256 is sha256 (Postfix format, as cs_fp_cert and the state
 * spell it): its first 16 hex digits, lowercase; "" when sha256 is not one.
 */
void cs_deploy_live_id(const char *sha256, char out[17]);

/*
 * Removes c's live generation directories other than those of the leaves in
 * sha256 (n of them, Postfix format) and the one LIVE/NAME leads to. Returns
 * the number removed (0 without live_dir), or a negative code with err set.
 */
int cs_deploy_prune_live(const struct cs_cfg_cert *c, const char *const *sha256, size_t n,
			 char *err, size_t errlen);

/* Stores m as generation gen of cert name (0600 bundle). Returns 0 or a negative code. */
int cs_deploy_save_gen(const char *state_dir, const char *name, int gen, const cs_material *m,
		       char *err, size_t errlen);

/*
 * Deletes every stored generation of cert name whose number is below
 * keep_from and not in keep (the pipeline keeps the deployed one, the
 * rollback target and a pending one; numbers from keep_from on may be
 * written right now). Returns the number removed, or a negative code with
 * err set.
 */
int cs_deploy_prune_gens(const char *state_dir, const char *name, const int *keep, size_t n_keep,
			 int keep_from, char *err, size_t errlen);

/*
 * Reads generation gen of cert name into *out (caller frees with
 * cs_material_free). Returns 0, -ENOENT, or another negative code with err set.
 */
int cs_deploy_load_gen(const char *state_dir, const char *name, int gen, cs_material **out,
		       char *err, size_t errlen);

/* Writes the path of generation gen of cert name into buf; returns 0 or -ENAMETOOLONG. */
int cs_deploy_gen_path(const char *state_dir, const char *name, int gen, char *buf, size_t len);

#endif
