/*
 * cs_netproc - privilege separation: the acme issuers' network side runs in
 * netproc, an unprivileged, sandboxed child (np_child.c), and the issuer the
 * pipeline holds is a proxy that forwards its calls over a socketpair.
 *
 * The parent keeps every key and does every privileged thing netproc asks
 * for (signing a JWS with the account key, writing a webroot token, running
 * dns_hook, binding http_listen) after checking the request against what the
 * renewal in flight may need (np_permit). It starts netproc when the first
 * acme issuer opens and stops it when the last one closes; it restarts it
 * when it dies (with a backoff when it dies young) and sends it the requests
 * that were in flight again; a protocol violation kills it and fails the
 * requests in flight instead.
 */
#ifndef CS_NETPROC_H
#define CS_NETPROC_H

#include "cs_acme.h"
#include "cs_dnsq.h"
#include "cs_issuer.h"
#include "cs_probe.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/*
 * Turns privilege separation on for the acme issuers opened from now on:
 * netproc is program (certsyncd itself) run as `program --netproc ROOT
 * [USER]`, sandboxed in ROOT = STATE_DIR/netproc (a directory of copies the
 * parent refreshes before each start). user NULL: certsync, else nobody.
 * Without it (the test suites' in-process use) acme issuers run in-process.
 */
void cs_netproc_enable(const char *program, const char *user, const char *state_dir);
bool cs_netproc_enabled(void);

/* The acme issuer NAME, its client in netproc. NULL with err set. */
cs_issuer *cs_netproc_acme_new(uv_loop_t *loop, const char *name, const struct cs_acme_opts *o,
			       const char *state_dir, char *err, size_t errlen);

/*
 * The verify probe of cs_probe_verify_start (cs_probe.h), same contract
 * (dane NULL or empty: no DANE; its records copied): run in netproc when
 * privilege separation is on (started for it if no acme issuer keeps it
 * running), in this process otherwise.
 */
int cs_netproc_probe_start(uv_loop_t *loop, const char *url, const char *want_sha256,
			   const struct cs_probe_dane *dane, int bound_ms, int retry_ms,
			   cs_probe_cb cb, void *arg);

/*
 * A TLSA question to the DANE resolver server ("ADDR:PORT"), as
 * cs_dnsq_tlsa_start (cs_dnsq.h) asks it: in netproc when privilege
 * separation is on (started for it if needed), so that the parent never
 * parses what a resolver sent; on this process's thread pool otherwise. The
 * answer comes back parsed and checked (np_permit). Returns 0, or a negative
 * errno (cb is then not called).
 */
int cs_netproc_dnsq_start(uv_loop_t *loop, const char *server, const char *owner, int timeout_ms,
			  cs_dnsq_cb cb, void *arg);

struct cs_netproc_stats {
	int pid;             /* netproc's pid, 0 when not running */
	uint64_t starts;     /* times started */
	uint64_t restarts;   /* times started again after it died or was killed */
	uint64_t violations; /* protocol violations seen */
	uint64_t requests;   /* requests in flight */
};
void cs_netproc_stats(struct cs_netproc_stats *st);

#endif
