/*
 * cs_capsync_int.h - what the files of cs_capsync share: the sections, the
 * module's state, and the few functions both the loop side (cs_capsync.c)
 * and the worker side (cs_capsync_work.c) call.
 */
#ifndef CS_CAPSYNC_INT_H
#define CS_CAPSYNC_INT_H

#include "cs_capath.h"
#include "cs_capsync.h"
#include "cs_htab.h"
#include "cs_snimap.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>
#include <uv.h>

/* More pending names than this in one section: a full pass is cheaper. */
#define MAX_PENDING_NAMES 512

struct problem {
	char *file;
	char *reason;
};

struct plist {
	struct problem *v;
	size_t n;
};

struct pub {
	char *name;
	X509 *x;
	X509_CRL *crl;
};

/* A link the section's handle changed, whose inotify events are still to come. */
struct own {
	struct cs_htab_node node;
	TAILQ_ENTRY(own) q; /* oldest change first */
	char *target;       /* what it was last given; NULL: removed */
	unsigned count;     /* events to come */
	unsigned job;       /* the job of the last change */
	char name[];
};

TAILQ_HEAD(own_q, own);

struct section {
	struct cs_capsync *cs;
	bool is_capath;
	bool is_sni;
	char *label; /* "capath NAME" */
	char *name;
	char *dir;
	char **reload;
	size_t nreload;
	/* capath */
	char *cafile;
	char *cache; /* state_dir/capath-NAME.cache: what the last full pass read */
	char **issuers;
	size_t nissuers;
	cs_capath *cp;
	/* clientcerts */
	char *map;
	char *map_type;
	char *config_dir; /* postmap -c, from a postfix reloader of the section */
	int digest;
	bool pubkey;
	/* sni */
	struct cs_snimap_opts sni;
	char **sni_certs; /* the [cert] names it serves */
	size_t n_sni_certs;
	bool scanned; /* first full pass done (temp files swept) */
	/* requests, loop thread */
	bool p_full;
	char **p_names;
	size_t p_n;
	struct pub *p_pubs;
	size_t p_npub;
	/* the running job, worker thread */
	bool j_full;
	char **j_names;
	size_t j_n;
	struct pub *j_pubs;
	size_t j_npub;
	bool j_changed;
	bool j_failed;
	bool j_ran;
	struct plist j_problems;
	bool j_pass; /* loop thread: the running job makes a full pass of this capath */
	/* shared with the worker, under cs->lock */
	char **inbox; /* names for the running full pass, taken from in_head on */
	size_t in_head, in_n;
	struct cs_htab own; /* struct own by link name */
	struct own_q own_q;
	/* after the last job, loop thread */
	struct plist problems;
};

struct cs_capsync {
	uv_loop_t *loop;
	cs_capsync_done_cb cb;
	void *arg;
	struct section *s;
	size_t ns;
	char **dirs;
	size_t ndirs;
	uv_work_t work;
	uv_mutex_t lock; /* the inboxes and own links, between the loop and the worker */
	unsigned seq;    /* jobs started */
	bool running;
	bool in_cb; /* done_cb is running */
	bool closing;
	bool job_full;
	void (*close_cb)(void *arg);
	void *close_arg;
};

/* Adds a problem (file "" for the section) to p; dropped when out of memory. */
void cs_capsync__plist_add(struct plist *p, const char *file, const char *reason);

/* The own-link record of name in s, or NULL; under cs->lock. */
struct own *cs_capsync__own_find(const struct section *s, const char *name);

/* The work-queue side of a job: every section that has requests does its pass. */
void cs_capsync__work(uv_work_t *w);

#endif
