/*
 * cs_acme_int.h - what the files of the acme issuer share, and nothing
 * outside them may use: the issuer (struct cs_acme), a job (struct job) and
 * its steps, and the functions one file of the issuer calls in another
 * (named cs_acme__*). The interface is cs_acme.h.
 */
#ifndef CS_ACME_INT_H
#define CS_ACME_INT_H

#include "cs_acme.h"
#include "cs_acme_host.h"
#include "cs_acme_http01.h"
#include "cs_acme_jws.h"
#include "cs_atomic.h"
#include "cs_b64url.h"
#include "cs_http.h"
#include "cs_log.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NONCE_POOL 8
#define BAD_NONCE_MAX 20 /* at 50% rejection (Pebble's test mode), 10 failed one request in 2000 */
#define RETRY_AFTER_WAIT_MAX 60 /* longer waits are handed back to the scheduler */
#define MAX_ALTS 8
#define POLL_FIRST_MS 20
#define POLL_MAX_MS 8000
#define MAX_ORDERS_DEFAULT 4
#define PB "urn:ietf:params:acme:error:"

enum job_kind { JOB_ISSUE, JOB_REVOKE, JOB_ARI };

struct chall {
	enum cs_acme_challenge type;
	char *url, *token, *keyauth, *ident;
	bool set_up;
	bool by_host; /* a webroot token file or a DNS record (else the responder's entry) */
};

struct resp {
	long code;
	char *body;
	size_t len;
	char *location;
	int64_t retry_after;
	char *alts[MAX_ALTS];
	size_t n_alts;
};

struct job;
typedef void (*step_fn)(struct job *j);

struct job {
	struct cs_acme *a;
	TAILQ_ENTRY(job) link; /* in a->queue, then in a->running */
	uv_timer_t timer;      /* polls and waits; the job's memory goes in its close callback */
	enum job_kind kind;
	/* issue */
	char *cert_name;
	char **names;
	size_t n_names;
	char *csr64;
	char *replaces; /* ARI certID of req->replaces */
	char *resume;   /* req->resume_order: go on with it, not a new order */
	void (*order_created)(void *arg, const char *url);
	cs_issue_cb issue_cb;
	/* revoke */
	char *cert64;
	int reason;
	cs_issuer_done_cb done_cb;
	/* renewal info */
	char *certid;
	cs_issuer_window_cb ari_cb;
	void *arg;

	/* order progress */
	char *order_url, *finalize_url, *cert_url;
	json_t *authzs;
	size_t idx;
	struct chall *ch;
	size_t n_ch;
	bool finalized, replaces_dropped, account_retried, validating;
	int64_t poll_started, poll_delay_ms;
	char *chain_pem;
	char *alts[MAX_ALTS];
	size_t n_alts, alt_idx;
	struct cs_issuer_window win;

	/* the request in flight */
	struct {
		const char *method; /* NULL: a signed POST */
		char *url;
		char *payload; /* NULL: POST-as-GET */
		const char *accept;
		bool jwk, accept_errors;
		int bad_nonce, retries;
		step_fn next;
	} rq;
	struct resp resp;
	cs_http_req *inflight;
	step_fn timer_next;
	bool on_timer, in_host, cancelled, cleaning;

	/* a call to the host (in_host until it calls back): its answer for host_next */
	step_fn host_next;
	int host_rc;
	char host_err[512];
	char *host_text;    /* a JWS, or the EAB object */
	EVP_PKEY *host_key; /* the account key's public half */
	bool host_existed;
	TAILQ_ENTRY(job) listen_link; /* in a->listen_waiters: waiting for the responder */

	int status;
	int64_t retry_after;
	char error[1024];
};

struct cs_acme {
	cs_issuer base;
	/* webroot, http_listen, dns_hook and eab_kid: which way, and for messages only */
	char *directory, *webroot, *http_listen, *dns_hook, *ca_bundle, *eab_kid,
		*preferred_chain, *profile;
	char **contact;
	size_t n_contact;
	enum cs_acme_challenge challenge;
	int64_t poll_timeout_s;
	const struct cs_acme_host_ops *host_ops;
	void *host; /* the issuer's: closed last */

	cs_http *http;
	uv_timer_t timer;
	json_t *dir;
	EVP_PKEY *key; /* the account key's public half only */
	bool key_existed;
	char *thumb;
	char *kid;
	char *nonces[NONCE_POOL];
	size_t n_nonces;
	cs_acme_http01 *responder;
	bool listen_pending; /* the host is asked for the responder's socket */
	char listen_err[512];
	TAILQ_HEAD(, job) listen_waiters;

	TAILQ_HEAD(job_list, job) queue, running;
	unsigned n_running;  /* jobs in running */
	unsigned max_orders; /* jobs that may run at once */
	unsigned limit;      /* as many now: 1 after a 429 or 503, climbing back to max_orders */
	int64_t paused_until; /* no order starts before (a CA's Retry-After), in s */
	unsigned dying;      /* job timers being closed */
	bool closing, torn;
	int open; /* timer, http client, responder, host not yet closed */
	void (*close_cb)(void *);
	void *close_arg;
};

#define RQ_JWK 0x1           /* sign with the JWK (newAccount), not the kid */
#define RQ_ACCEPT_ERRORS 0x2 /* hand 4xx/5xx answers to next rather than failing */
#define RQ_PEM 0x4           /* Accept: application/pem-certificate-chain */

/* cs_acme.c */
void cs_acme__job_start(struct job *j);
void cs_acme__job_restart(struct job *j);
void cs_acme__run_next(struct cs_acme *a);
void cs_acme__maybe_free(struct cs_acme *a);

/* cs_acme_job.c */
int64_t cs_acme__now_s(void);
const char *cs_acme__dir_url(struct cs_acme *a, const char *key);
void cs_acme__resp_reset(struct resp *r);
void cs_acme__nonce_push(struct cs_acme *a, const char *n);
char *cs_acme__nonce_pop(struct cs_acme *a);
void cs_acme__nonces_clear(struct cs_acme *a);
const char *cs_acme__body_text(struct resp *r);
void cs_acme__job_free(struct job *j);
int cs_acme__parse_chain(const char *pem, X509 **leaf, STACK_OF(X509) **chain);
void cs_acme__job_end(struct job *j);
void cs_acme__job_fail(struct job *j, int status, const char *fmt, ...)
		       __attribute__((format(printf, 3, 4)));
void cs_acme__step(struct job *j, step_fn next);
void cs_acme__wait_then(struct job *j, int64_t ms, step_fn next);
void cs_acme__host_key(struct job *j, step_fn next);
void cs_acme__host_sign(struct job *j, const struct cs_acme_host_sign *r, step_fn next);
void cs_acme__host_eab(struct job *j, const char *url, step_fn next);
void cs_acme__host_chall(struct job *j, struct chall *c, bool set, step_fn next);

/* cs_acme_req.c */
void cs_acme__send_rq(struct job *j);
void cs_acme__request(struct job *j, const char *method, const char *url, char *payload,
		      unsigned flags, step_fn next);
json_t *cs_acme__resp_json(struct job *j);

/* cs_acme_account.c */
void cs_acme__on_directory(struct job *j);
void cs_acme__after_key(struct job *j);
void cs_acme__new_account(struct job *j);

/* cs_acme_order.c */
void cs_acme__new_order(struct job *j);
void cs_acme__resume_order(struct job *j);

#endif
