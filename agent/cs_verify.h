/*
 * cs_verify - after a reload, the proof that the services serve what was
 * deployed: every verify URL of a [cert] is probed (cs_probe, in netproc) until its
 * leaf's SHA-256 equals the deployed one or a bound passes (reloads are
 * asynchronous: doveadm reload only signals the master), all URLs at once.
 * One callback with the verdict and a line per URL for the status.
 */
#ifndef CS_VERIFY_H
#define CS_VERIFY_H

#include "cs_config.h"
#include "cs_dane.h"

#include <stdbool.h>
#include <uv.h>

/*
 * ok: every URL served want_sha256. summary: "smtp://127.0.0.1:25: ok;
 * imap://...: serves sha256 A, not the deployed B" (valid during the call).
 */
typedef void (*cs_verify_cb)(void *arg, bool ok, const char *summary);

/*
 * Probes each URL of urls until it serves want_sha256 (Postfix format) or
 * bound_ms passes. Returns 0 when cb will run once on the loop thread, or a
 * negative errno (cb will not run). With no URLs, cb runs on the next loop turn.
 */
int cs_verify_start(uv_loop_t *loop, const struct cs_cfg_list *urls, const char *want_sha256,
		    int bound_ms, cs_verify_cb cb, void *arg);

/*
 * The TLSA RRsets a validating resolver gave for a cert's DANE owners
 * ("_25._tcp.mail.example.com"), one answer per owner.
 */
struct cs_verify_dane {
	const char (*owners)[CS_DANE_OWNER_MAX];
	const struct cs_dnsq_answer *answers;
	size_t n;
};

/*
 * cs_verify_start, and each URL whose "_PORT._tcp.NAME" (NAME: its SNI
 * name, else its host) is one of dane's owners with a validated answer must
 * also be authenticated by that TLSA RRset (the probe's DANE check, as a
 * DANE-validating sender would do). dane NULL: cs_verify_start.
 */
int cs_verify_start_dane(uv_loop_t *loop, const struct cs_cfg_list *urls, const char *want_sha256,
			 const struct cs_verify_dane *dane, int bound_ms, cs_verify_cb cb,
			 void *arg);

#endif
