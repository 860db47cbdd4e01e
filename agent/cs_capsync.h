/*
 * cs_capsync - the agent's [capath] and [clientcerts] sections kept in sync
 * with their directories: hash links and CAfile (cs_capath), local-ca
 * certificates and CRLs published into the capaths that name their issuer,
 * and client-certificate maps with postmap (cs_clientmap); and its [sni]
 * sections kept in step with their certs' outputs (cs_snimap).
 *
 * All file work runs on the libuv work queue, one job at a time, so the loop
 * never waits on a directory scan or on postmap. Requests made while a job
 * runs are merged into the next one (a burst of inotify events becomes one
 * job). When a job ends, done_cb runs on the loop thread with the [reload]
 * names of the sections that changed something on disk, each once.
 *
 * Events for the hash links a section's own pass or update made are
 * recognised and dropped (they would otherwise queue a name per link, and
 * past a few hundred a second full pass). While a capath's full pass runs,
 * events for its certificate and CRL files are handed to the pass, which
 * links a new file at once instead of after the pass.
 *
 * How the agent drives it:
 *   start:            cs_capsync_new(), watch cs_capsync_dirs(), cs_capsync_full()
 *   inotify event:    cs_capsync_changed(dir, name) with the directory as declared
 *   IN_Q_OVERFLOW:    cs_capsync_full()
 *   SIGHUP:           cs_capsync_close() the old one, cs_capsync_new() + full on the new config
 *   local-ca CA/CRL:  cs_capsync_publish_issuer() after the issuer has its CA (and CRL)
 *   cert outputs:     cs_capsync_cert_changed() after a deploy, rollback or repair
 *   --once:           cs_capsync_full(), run the loop until done_cb, read the report
 *   status:           cs_capsync_problems()
 */
#ifndef CS_CAPSYNC_H
#define CS_CAPSYNC_H

#include "cs_config.h"

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct cs_capsync;

/* What one job did; valid during the callback only. */
struct cs_capsync_report {
	const char *const *reloads; /* [reload] names to run, each once */
	size_t nreloads;
	const char *const *changed; /* "capath NAME" / "clientcerts NAME" that changed */
	size_t nchanged;
	size_t nfailed;             /* sections whose pass failed (see problems, log) */
	bool full;                  /* the job included a full pass of every section */
};

typedef void (*cs_capsync_done_cb)(void *arg, const struct cs_capsync_report *r);

/* Called for each current problem: section "capath NAME", file ("" for the section), reason. */
typedef void (*cs_capsync_problem_cb)(void *arg, const char *section, const char *file,
				      const char *reason);

/*
 * Creates the module for the [capath] and [clientcerts] sections of cfg
 * (copied: cfg may be freed afterwards). Nothing is read until a pass is
 * requested. Returns it (close with cs_capsync_close) or NULL with err set.
 */
struct cs_capsync *cs_capsync_new(uv_loop_t *loop, const struct cs_config *cfg,
				  cs_capsync_done_cb done_cb, void *arg, char *err, size_t errlen);

/*
 * The directories to watch (capath and clientcerts dirs, absolute, as in the
 * configuration); *n gets their number. Owned by cs; valid until it closes.
 */
const char *const *cs_capsync_dirs(const struct cs_capsync *cs, size_t *n);

/* Requests a full pass of every section (start, queue overflow, `certsyncctl rehash`). */
void cs_capsync_full(struct cs_capsync *cs);

/*
 * Requests a full pass of the sections named name ([capath] or [clientcerts]
 * NAME; both when both exist). Returns 0, or -ENOENT when there is none.
 */
int cs_capsync_rehash(struct cs_capsync *cs, const char *name);

/*
 * An inotify event: name (a bare file name; "" for the directory itself)
 * changed in dir. A capath updates only the buckets of that name; a
 * clientcerts directory rebuilds its map. Directories that no section uses
 * are ignored. Returns true when some section uses dir.
 */
bool cs_capsync_changed(struct cs_capsync *cs, const char *dir, const char *name);

/*
 * The outputs of [cert] cert changed (deployed, rolled back, repaired):
 * every [sni] that names it is brought up to date (the deploy did it
 * already when it could; this pass retries and reports). Returns the number
 * of sections concerned.
 */
size_t cs_capsync_cert_changed(struct cs_capsync *cs, const char *cert);

/*
 * Publishes the CA certificate ca (and crl, may be NULL) of the local-ca
 * issuer `issuer` into every capath whose `issuers` names it, as
 * ISSUER-ca.pem and ISSUER-ca.crl. References are taken; the caller keeps
 * its own. Returns the number of capaths concerned.
 */
size_t cs_capsync_publish_issuer(struct cs_capsync *cs, const char *issuer, X509 *ca,
				 X509_CRL *crl);

/* True while a job runs or a request waits. */
bool cs_capsync_busy(const struct cs_capsync *cs);

/*
 * Calls cb for each problem known after the last job: files skipped or left
 * out (with the reason) and sections whose pass failed. Loop thread only.
 * Returns their number.
 */
size_t cs_capsync_problems(const struct cs_capsync *cs, cs_capsync_problem_cb cb, void *arg);

/*
 * Closes cs: no new job starts; once the running one (if any) has ended,
 * everything is freed and close_cb (may be NULL) runs. done_cb is not called
 * for a job that ends after the close. May be called from done_cb (cs is
 * then freed when done_cb returns). Accepts NULL.
 */
void cs_capsync_close(struct cs_capsync *cs, void (*close_cb)(void *arg), void *arg);

#endif
