/*
 * cs_netproc_int.h - what the files of cs_netproc share and nothing else
 * may use: the supervisor's state, the proxy issuer, the requests in flight
 * and the host calls (see cs_netproc.h for the module).
 */
#ifndef CS_NETPROC_INT_H
#define CS_NETPROC_INT_H

#include "cs_netproc.h"
#include "cs_acme_host.h"
#include "cs_chan.h"
#include "cs_log.h"
#include "np_permit.h"
#include "np_proto.h"
#include "np_sandbox.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_SENDS 6         /* a request sent to this many netprocs that died fails */
#define BACKOFF_FIRST_MS 200
#define BACKOFF_MAX_MS 30000
#define YOUNG_MS 60000 /* a netproc that dies younger, having answered nothing, delays the next */
#define READY_TIMEOUT_MS 15000
#define STOP_TIMEOUT_MS 3000

struct chall_rec {
	LIST_ENTRY(chall_rec) link;
	enum cs_acme_challenge type;
	char *ident, *token, *cert_name;
};

struct px;

/* A request of the pipeline's (issue, revoke, renewal info, probe, DNS) in flight. */
struct preq {
	TAILQ_ENTRY(preq) link;
	uint64_t id;
	struct px *px; /* NULL for a probe */
	struct np_permit_req pr;
	char *cert_name;
	char **names;
	enum cs_usage usage;
	struct cs_der replaces;
	char *url, *want; /* NP_PROBE; NP_DNSQ: the resolver, the owner name */
	struct cs_tlsa_rec *tlsa; /* NP_PROBE: the records DANE checks, n_tlsa of them */
	size_t n_tlsa;
	char *order_url;  /* NP_ISSUE: the order netproc created, for the next one to resume */
	int bound_ms, retry_ms;
	union {
		cs_issue_cb issue;
		cs_issuer_done_cb done;
		cs_issuer_window_cb window;
		cs_probe_cb probe;
		cs_dnsq_cb dnsq;
	} cb;
	void *arg;
	unsigned gen;   /* the netproc it was sent to, 0: not sent */
	unsigned sends;
	bool answered;  /* the pipeline has its answer (cancelled): wait for netproc's only */
	LIST_HEAD(, chall_rec) challs; /* set up and not yet taken down */
};

/* The proxy issuer. */
struct px {
	cs_issuer base;
	TAILQ_ENTRY(px) link;
	uint64_t id;
	struct np_permit_issuer pi;
	struct cs_acme_opts o; /* strings owned, to open it again in each netproc */
	void *host;            /* the local host: account key, tokens, hooks, http_listen */
	unsigned refs;         /* requests and host calls referring to it, and the timer */
	bool closed;
	uv_timer_t timer;
	void (*close_cb)(void *);
	void *close_arg;
};

/* A host call netproc made, running in the local host. */
struct pcall {
	struct px *px;
	unsigned gen;
	uint64_t id, req;
	uint16_t type;
	struct chall_rec *ch; /* NP_N_CHALL */
	bool set;
};

enum sup_state { SUP_IDLE, SUP_STARTING, SUP_READY, SUP_DYING, SUP_STOPPING };

struct cs_netproc__sup {
	uv_loop_t *loop;
	char *program, *user, *root;
	bool enabled;
	enum sup_state state;
	uv_process_t proc;
	bool proc_open;
	cs_chan *chan;
	uv_timer_t timer; /* restart backoff, ready timeout, stop timeout */
	bool timer_open;
	unsigned gen;
	uint64_t next_req, next_issuer;
	uint64_t starts, restarts, violations;
	unsigned young_deaths;
	bool proven; /* this netproc answered a request with success */
	bool ready;  /* this netproc said NP_N_READY */
	uint64_t started_ms;
	TAILQ_HEAD(, px) issuers;
	TAILQ_HEAD(, preq) reqs;
	unsigned n_open; /* proxies not closed */
};

void cs_netproc__start(void);
void cs_netproc__px_unref(struct px *p);

/* The one supervisor of the process (netproc is one per agent). */
extern struct cs_netproc__sup cs_netproc__s;
#define S cs_netproc__s

/* cs_netproc.c: the supervisor */
void cs_netproc__send_buf(struct cs_frame_buf *b, int fd);
void cs_netproc__start(void);
void cs_netproc__stop(void);
bool cs_netproc__needed(void);
bool cs_netproc__alive(unsigned gen);
void cs_netproc__maybe_stop(void);
int cs_netproc__prepare_root(char *err, size_t errlen);

/* cs_netproc_proxy.c: the proxy issuer and its requests */
void cs_netproc__send_open(struct px *p);
void cs_netproc__send_req(struct preq *r);
struct preq *cs_netproc__req_find(uint64_t id);
void cs_netproc__req_free(struct preq *r);
void cs_netproc__req_fail(struct preq *r, int status, const char *error);
void cs_netproc__req_cleanup_challs(struct preq *r);
void cs_netproc__chall_takedown(struct px *p, struct chall_rec *c);
void cs_netproc__answer_req(struct preq *r, const struct cs_frame_msg *m);
void cs_netproc__chall_free(struct chall_rec *c);
void cs_netproc__px_unref(struct px *p);

/* cs_netproc_host.c: the host calls netproc makes, run here */
void cs_netproc__host_call(const struct cs_frame_msg *m);

#endif
