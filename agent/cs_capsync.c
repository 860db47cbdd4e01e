/*
 * cs_capsync - [capath] and [clientcerts] sections driven from the event
 * loop (see cs_capsync.h). Each section has requests pending (touched on
 * the loop thread only) and, while a job runs, a copy of them the worker
 * thread works through; results come back to the loop thread in the
 * after-work callback. uv_queue_work orders the two, so no lock is needed
 * for them.
 *
 * Two things are shared with the worker while a job runs, under cs->lock:
 *
 * - The inbox of a capath whose full pass runs: names of files that change
 *   meanwhile, which the pass takes in between its chunks (cs_capath's poll
 *   callback), so that a file dropped in during an agent's first pass is
 *   linked at once rather than after the pass. What the pass did not take
 *   is requested as usual when the job ends.
 *
 * - The links the section's handle is changing (cs_capath's own callback):
 *   per link name, the target it was last given (NULL: removed) and how
 *   many of its inotify events are still to come. An event for a link name
 *   that is expected, with the link on disk as the handle left it, is the
 *   handle's own and is dropped: a pass making 10,000 links would otherwise
 *   queue 10,000 names, and past MAX_PENDING_NAMES another full pass. An
 *   event for a link that differs (an operator's) goes on as before. Every
 *   event of a job has been read by the end of the loop turn that runs its
 *   after-work callback (the events are queued before the job's completion
 *   is signalled, and the loop polls both at once), so what is left of the
 *   jobs before the one that just ended is forgotten then.
 */
#include "cs_capsync.h"
#include "cs_capsync_int.h"

#include "cs_atomic.h"
#include "cs_capath.h"
#include "cs_clientmap.h"
#include "cs_log.h"
#include "cs_sni.h"

#include "cs_htab.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>


static char **list_dup(const struct cs_cfg_list *l, size_t *n)
{
	char **v = calloc(l->n + 1, sizeof(*v));

	*n = 0;
	if (v == NULL)
		return NULL;
	for (size_t i = 0; i < l->n; i++) {
		if ((v[i] = strdup(l->v[i])) == NULL)
			return v; /* caller sees *n short of l->n */
		(*n)++;
	}
	return v;
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; v != NULL && i < n; i++)
		free(v[i]);
	free(v);
}

static void plist_free(struct plist *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->v[i].file);
		free(p->v[i].reason);
	}
	free(p->v);
	p->v = NULL;
	p->n = 0;
}

void cs_capsync__plist_add(struct plist *p, const char *file, const char *reason)
{
	struct problem *n = realloc(p->v, (p->n + 1) * sizeof(*n));

	if (n == NULL)
		return;
	p->v = n;
	n[p->n].file = strdup(file);
	n[p->n].reason = strdup(reason);
	if (n[p->n].file == NULL || n[p->n].reason == NULL) {
		free(n[p->n].file);
		free(n[p->n].reason);
		return;
	}
	p->n++;
}

static void pubs_free(struct pub *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		X509_free(v[i].x);
		X509_CRL_free(v[i].crl);
	}
	free(v);
}

static void own_drop(struct section *s, struct own *o)
{
	cs_htab_remove(&s->own, &o->node);
	TAILQ_REMOVE(&s->own_q, o, q);
	free(o->target);
	free(o);
}

/* Forgets the own links last changed before job `job` (all of them: UINT_MAX). */
static void own_prune(struct section *s, unsigned job)
{
	struct own *o;

	while ((o = TAILQ_FIRST(&s->own_q)) != NULL && o->job < job)
		own_drop(s, o);
}

struct own *cs_capsync__own_find(const struct section *s, const char *name)
{
	uint64_t h = cs_htab_hash(name, CS_HTAB_SEED);

	for (struct cs_htab_node *n = cs_htab_first(&s->own, h); n != NULL; n = cs_htab_next(n, h)) {
		struct own *o = cs_htab_entry(n, struct own, node);

		if (strcmp(o->name, name) == 0)
			return o;
	}
	return NULL;
}

static void section_free(struct section *s)
{
	free(s->label);
	free(s->name);
	free(s->dir);
	strv_free(s->reload, s->nreload);
	free(s->cafile);
	strv_free(s->issuers, s->nissuers);
	cs_capath_free(s->cp);
	free(s->map);
	free(s->cache);
	free(s->map_type);
	free(s->config_dir);
	cs_sni_opts_free(&s->sni);
	strv_free(s->sni_certs, s->n_sni_certs);
	strv_free(s->p_names, s->p_n);
	pubs_free(s->p_pubs, s->p_npub);
	strv_free(s->j_names, s->j_n);
	pubs_free(s->j_pubs, s->j_npub);
	plist_free(&s->j_problems);
	plist_free(&s->problems);
	for (size_t i = s->in_head; i < s->in_n; i++)
		free(s->inbox[i]);
	free(s->inbox);
	if (s->own_q.tqh_last != NULL) /* initialised */
		own_prune(s, UINT_MAX);
	cs_htab_clear(&s->own);
}

static void capsync_free(struct cs_capsync *cs)
{
	void (*cb)(void *) = cs->close_cb;
	void *arg = cs->close_arg;

	for (size_t i = 0; i < cs->ns; i++)
		section_free(&cs->s[i]);
	free(cs->s);
	free(cs->dirs);
	uv_mutex_destroy(&cs->lock);
	free(cs);
	if (cb != NULL)
		cb(arg);
}


/* ---- the loop side ---- */

static bool section_pending(const struct section *s)
{
	return s->p_full || s->p_n > 0 || s->p_npub > 0;
}

static void after_work_cb(uv_work_t *w, int status);

static void maybe_start(struct cs_capsync *cs)
{
	bool any = false;

	if (cs->running || cs->closing)
		return;
	cs->job_full = true;
	for (size_t i = 0; i < cs->ns; i++) {
		struct section *s = &cs->s[i];

		s->j_ran = section_pending(s);
		if (!s->j_ran) {
			cs->job_full = false;
			continue;
		}
		any = true;
		s->j_full = s->p_full;
		s->j_pass = s->is_capath && (s->j_full || !s->scanned);
		if (!s->j_full)
			cs->job_full = false;
		s->j_names = s->p_names;
		s->j_n = s->p_n;
		s->j_pubs = s->p_pubs;
		s->j_npub = s->p_npub;
		s->p_full = false;
		s->p_names = NULL;
		s->p_n = 0;
		s->p_pubs = NULL;
		s->p_npub = 0;
		s->j_changed = s->j_failed = false;
		plist_free(&s->j_problems);
	}
	if (!any)
		return;
	cs->seq++;
	cs->work.data = cs;
	if (uv_queue_work(cs->loop, &cs->work, cs_capsync__work, after_work_cb) == 0) {
		cs->running = true;
		return;
	}
	/* Cannot happen with a live loop; run it here rather than lose it. */
	cs_capsync__work(&cs->work);
	after_work_cb(&cs->work, 0);
}

static bool in_list(const char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return true;
	return false;
}

static void request_name(struct section *s, const char *name);

/* Requests as usual the names the ended full pass did not take from its inbox. */
static void inbox_leftovers(struct section *s)
{
	char **v;
	size_t head, n;

	uv_mutex_lock(&s->cs->lock);
	v = s->inbox;
	head = s->in_head;
	n = s->in_n;
	s->inbox = NULL;
	s->in_head = s->in_n = 0;
	uv_mutex_unlock(&s->cs->lock);
	for (size_t i = head; i < n; i++) {
		request_name(s, v[i]);
		free(v[i]);
	}
	free(v);
}

/*
 * A section the ended job ran: logged, its leftover inbox requested again,
 * its own links pruned, the job's names and publications dropped, and the
 * job's problems made the section's.
 */
static void section_job_end(struct cs_capsync *cs, struct section *s)
{
	s->j_ran = false;
	/* One line per job and section: what started it, for whoever wonders why. */
	cs_debug("%s: job %u ended: %s, %zu name(s), %zu publication(s)%s", s->label, cs->seq,
		 s->j_pass || s->j_full ? "full pass" : "no full pass", s->j_n, s->j_npub,
		 s->j_changed ? ", changed" : "");
	if (s->j_pass)
		inbox_leftovers(s);
	s->j_pass = false;
	if (s->is_capath) {
		uv_mutex_lock(&cs->lock);
		own_prune(s, cs->seq);
		uv_mutex_unlock(&cs->lock);
	}
	strv_free(s->j_names, s->j_n);
	s->j_names = NULL;
	s->j_n = 0;
	pubs_free(s->j_pubs, s->j_npub);
	s->j_pubs = NULL;
	s->j_npub = 0;
	plist_free(&s->problems);
	s->problems = s->j_problems;
	s->j_problems = (struct plist){ NULL, 0 };
}

static void after_work_cb(uv_work_t *w, int status)
{
	struct cs_capsync *cs = w->data;
	const char **reloads = calloc(1, sizeof(*reloads)), **changed;
	size_t nr = 0, nc = 0, nf = 0, cap_r = 0;
	struct cs_capsync_report rep;

	(void)status;
	cs->running = false;
	changed = calloc(cs->ns + 1, sizeof(*changed));
	for (size_t i = 0; i < cs->ns; i++) {
		struct section *s = &cs->s[i];

		if (!s->j_ran)
			continue;
		section_job_end(cs, s);
		if (s->j_failed)
			nf++;
		if (!s->j_changed)
			continue;
		if (changed != NULL)
			changed[nc++] = s->label;
		for (size_t k = 0; k < s->nreload; k++) {
			if (reloads == NULL || in_list(reloads, nr, s->reload[k]))
				continue;
			if (nr + 1 >= cap_r) {
				const char **n;

				cap_r = cap_r ? cap_r * 2 : 8;
				n = realloc(reloads, cap_r * sizeof(*n));
				if (n == NULL)
					continue;
				reloads = n;
			}
			reloads[nr++] = s->reload[k];
		}
	}
	if (cs->closing) {
		free(reloads);
		free(changed);
		capsync_free(cs);
		return;
	}
	rep = (struct cs_capsync_report){ reloads, nr, changed, nc, nf, cs->job_full };
	/* The callback may close cs: the close is then finished here, after it. */
	cs->in_cb = true;
	if (cs->cb != NULL)
		cs->cb(cs->arg, &rep);
	cs->in_cb = false;
	free(reloads);
	free(changed);
	if (!cs->closing)
		maybe_start(cs);
	else if (!cs->running) /* else a job done_cb started frees it when it ends */
		capsync_free(cs);
}

/* ---- the sections, from the configuration ---- */

/* A [capath] section's own settings into s, its reload list in *rl; 0 or -ENOMEM. */
static int capath_section(struct section *s, const struct cs_config *cfg,
			  const struct cs_cfg_capath *c, const struct cs_cfg_list **rl)
{
	s->is_capath = true;
	s->name = strdup(c->name);
	s->dir = strdup(c->dir);
	if (c->cafile != NULL && (s->cafile = strdup(c->cafile)) == NULL)
		return -ENOMEM;
	/*
	 * The state directory is the agent's own; a cache next to the
	 * CA files would be read by anyone with the directory and
	 * would fire the agent's own inotify watch on every write.
	 */
	if (cfg->agent.state_dir != NULL &&
	    asprintf(&s->cache, "%s/capath-%s.cache", cfg->agent.state_dir, c->name) < 0) {
		s->cache = NULL;
		return -ENOMEM;
	}
	s->issuers = list_dup(&c->issuers, &s->nissuers);
	if (s->issuers == NULL || s->nissuers != c->issuers.n)
		return -ENOMEM;
	*rl = &c->reload;
	return 0;
}

/* An [sni] section into s, label and reload list included; 0 or -ENOMEM. */
static int sni_section(struct section *s, const struct cs_cfg_sni *c)
{
	s->is_sni = true;
	s->name = strdup(c->name);
	if (s->name == NULL || cs_sni_opts_dup(c, &s->sni) < 0 ||
	    asprintf(&s->label, "sni %s", c->name) < 0) {
		s->label = NULL;
		return -ENOMEM;
	}
	s->sni_certs = list_dup(&c->certs, &s->n_sni_certs);
	if (s->sni_certs == NULL || s->n_sni_certs != c->certs.n)
		return -ENOMEM;
	s->reload = list_dup(&c->reload, &s->nreload);
	if (s->reload == NULL || s->nreload != c->reload.n)
		return -ENOMEM;
	return 0;
}

/* A [clientcerts] section's own settings into s, its reload list in *rl; 0 or -ENOMEM. */
static int clientcerts_section(struct section *s, const struct cs_config *cfg,
			       const struct cs_cfg_clientcerts *c, const struct cs_cfg_list **rl)
{
	s->name = strdup(c->name);
	s->dir = strdup(c->dir);
	s->map = strdup(c->map);
	s->map_type = strdup(c->map_type != NULL ? c->map_type : "hash");
	s->digest = c->digest;
	s->pubkey = c->fingerprint == CS_FP_OF_PUBKEY;
	if (s->map == NULL || s->map_type == NULL)
		return -ENOMEM;
	*rl = &c->reload;
	/* postmap reads the main.cf of the Postfix instance it is for. */
	for (size_t k = 0; k < (*rl)->n && s->config_dir == NULL; k++) {
		const struct cs_cfg_reload *r = cs_config_reload(cfg, (*rl)->v[k]);

		if (r != NULL && r->type == CS_RELOAD_POSTFIX && r->config_dir != NULL &&
		    (s->config_dir = strdup(r->config_dir)) == NULL)
			return -ENOMEM;
	}
	return 0;
}

/* Section i of cfg (the capaths, then the clientcerts, then the snis) into s; 0 or -ENOMEM. */
static int section_init(struct cs_capsync *cs, struct section *s, const struct cs_config *cfg,
			size_t i)
{
	const struct cs_cfg_list *rl;
	size_t want;

	s->cs = cs;
	TAILQ_INIT(&s->own_q);

	if (i < cfg->n_capaths) {
		if (capath_section(s, cfg, &cfg->capaths[i], &rl) < 0)
			return -ENOMEM;
	} else if (i >= cfg->n_capaths + cfg->n_clientcerts) {
		return sni_section(s, &cfg->snis[i - cfg->n_capaths - cfg->n_clientcerts]);
	} else {
		if (clientcerts_section(s, cfg, &cfg->clientcerts[i - cfg->n_capaths], &rl) < 0)
			return -ENOMEM;
	}
	/* A capath or clientcerts section: its label, reloads, and its directory watched once. */
	if (s->name == NULL || s->dir == NULL ||
	    asprintf(&s->label, "%s %s", s->is_capath ? "capath" : "clientcerts", s->name) < 0) {
		s->label = NULL;
		return -ENOMEM;
	}
	want = rl->n;
	s->reload = list_dup(rl, &s->nreload);
	if (s->reload == NULL || s->nreload != want)
		return -ENOMEM;
	if (!in_list((const char *const *)cs->dirs, cs->ndirs, s->dir))
		cs->dirs[cs->ndirs++] = s->dir;
	return 0;
}

/* ---- public ---- */

struct cs_capsync *cs_capsync_new(uv_loop_t *loop, const struct cs_config *cfg,
				  cs_capsync_done_cb done_cb, void *arg, char *err, size_t errlen)
{
	struct cs_capsync *cs = calloc(1, sizeof(*cs));
	size_t n = cfg->n_capaths + cfg->n_clientcerts + cfg->n_snis;

	if (cs == NULL)
		goto nomem;
	if (uv_mutex_init(&cs->lock) < 0) {
		free(cs);
		cs = NULL;
		goto nomem;
	}
	cs->loop = loop;
	cs->cb = done_cb;
	cs->arg = arg;
	cs->s = calloc(n + 1, sizeof(*cs->s));
	cs->dirs = calloc(n + 1, sizeof(*cs->dirs));
	if (cs->s == NULL || cs->dirs == NULL)
		goto nomem;
	/* cs->ns counts a section before it is filled in: a half-made one is freed too. */
	for (size_t i = 0; i < n; i++)
		if (section_init(cs, &cs->s[cs->ns++], cfg, i) < 0)
			goto nomem;
	return cs;
nomem:
	snprintf(err, errlen, "capath/clientcerts/sni: out of memory");
	if (cs != NULL && cs->s != NULL)
		for (size_t i = 0; i < cs->ns; i++)
			section_free(&cs->s[i]);
	if (cs != NULL) {
		free(cs->s);
		free(cs->dirs);
		uv_mutex_destroy(&cs->lock);
	}
	free(cs);
	return NULL;
}

const char *const *cs_capsync_dirs(const struct cs_capsync *cs, size_t *n)
{
	*n = cs->ndirs;
	return (const char *const *)cs->dirs;
}

static void request_full(struct section *s)
{
	s->p_full = true;
	strv_free(s->p_names, s->p_n);
	s->p_names = NULL;
	s->p_n = 0;
}

void cs_capsync_full(struct cs_capsync *cs)
{
	for (size_t i = 0; i < cs->ns; i++)
		request_full(&cs->s[i]);
	maybe_start(cs);
}

int cs_capsync_rehash(struct cs_capsync *cs, const char *name)
{
	int found = 0;

	for (size_t i = 0; i < cs->ns; i++)
		if (strcmp(cs->s[i].name, name) == 0) {
			request_full(&cs->s[i]);
			found = 1;
		}
	if (!found)
		return -ENOENT;
	maybe_start(cs);
	return 0;
}

/* Adds name to the pending names of s (once); falls back to a full pass when too many. */
static void request_name(struct section *s, const char *name)
{
	char **n;

	if (s->p_full)
		return;
	if (!s->is_capath) {
		/* The map is rebuilt from the whole directory (or config): one marker is enough. */
		if (s->p_n > 0)
			return;
		name = "";
	}
	for (size_t i = 0; i < s->p_n; i++)
		if (strcmp(s->p_names[i], name) == 0)
			return;
	if (s->p_n >= MAX_PENDING_NAMES) {
		request_full(s);
		return;
	}
	n = realloc(s->p_names, (s->p_n + 1) * sizeof(*n));
	if (n == NULL) {
		request_full(s);
		return;
	}
	s->p_names = n;
	if ((n[s->p_n] = strdup(name)) == NULL) {
		request_full(s);
		return;
	}
	s->p_n++;
}

/* True when name (in s->dir) is the section's map or a file postmap made from it. */
static bool is_map_file(const struct section *s, const char *name)
{
	size_t dl = strlen(s->dir), nl = strlen(name);

	while (dl > 1 && s->dir[dl - 1] == '/')
		dl--;
	if (strncmp(s->map, s->dir, dl) != 0 || s->map[dl] != '/' || strchr(s->map + dl + 1, '/'))
		return false;
	return strncmp(name, s->map + dl + 1, strlen(s->map + dl + 1)) == 0 &&
	       nl >= strlen(s->map + dl + 1);
}

/*
 * True when the event for link name in s is one of the handle's own changes
 * (expected, and the link on disk as the handle left it); counts it off.
 */
static bool own_event(struct cs_capsync *cs, struct section *s, const char *name)
{
	struct own *o;
	char want[NAME_MAX + 1], path[PATH_MAX], got[NAME_MAX + 1];
	bool removed = false, known = false;
	ssize_t n;

	uv_mutex_lock(&cs->lock);
	o = cs_capsync__own_find(s, name);
	if (o != NULL) {
		known = true;
		removed = o->target == NULL;
		snprintf(want, sizeof(want), "%s", removed ? "" : o->target);
		assert(o->count > 0);
		if (--o->count == 0)
			own_drop(s, o);
	}
	uv_mutex_unlock(&cs->lock);
	if (!known || snprintf(path, sizeof(path), "%s/%s", s->dir, name) >= (int)sizeof(path))
		return false;
	n = readlink(path, got, sizeof(got) - 1);
	if (removed)
		return n < 0 && errno == ENOENT;
	if (n < 0)
		return false;
	got[n] = '\0';
	return strcmp(got, want) == 0;
}

/* Gives name to the running full pass of s; false when s has none running. */
static bool to_inbox(struct cs_capsync *cs, struct section *s, const char *name)
{
	char **v, *d;
	bool ok = false;

	if (!cs->running || !s->j_ran || !s->j_pass || (d = strdup(name)) == NULL)
		return false;
	uv_mutex_lock(&cs->lock);
	if (s->in_head == s->in_n) /* all taken: start over */
		s->in_head = s->in_n = 0;
	if (s->in_n - s->in_head < MAX_PENDING_NAMES &&
	    (v = realloc(s->inbox, (s->in_n + 1) * sizeof(*v))) != NULL) {
		s->inbox = v;
		v[s->in_n++] = d;
		ok = true;
	}
	uv_mutex_unlock(&cs->lock);
	if (!ok)
		free(d);
	return ok;
}

bool cs_capsync_changed(struct cs_capsync *cs, const char *dir, const char *name)
{
	bool used = false;

	for (size_t i = 0; i < cs->ns; i++) {
		struct section *s = &cs->s[i];

		if (s->is_sni || strcmp(s->dir, dir) != 0)
			continue;
		used = true;
		if (name[0] == '\0')
			request_full(s); /* the directory itself moved or was replaced */
		else if (s->is_capath && !cs_capath_name_eligible(name) &&
			 !cs_capath_name_is_link(name))
			continue; /* temp files, other extensions: openssl ignores them too */
		else if (s->is_capath && cs_capath_name_is_link(name) && own_event(cs, s, name))
			continue; /* a link this section's pass or update made */
		else if (s->is_capath && cs_capath_name_eligible(name) && to_inbox(cs, s, name))
			continue; /* taken in by the full pass that runs */
		else if (!s->is_capath && (name[0] == '.' || is_map_file(s, name)))
			continue; /* temp files of writers; the map and its .db if kept here */
		else
			request_name(s, name);
	}
	if (used)
		maybe_start(cs);
	return used;
}

size_t cs_capsync_cert_changed(struct cs_capsync *cs, const char *cert)
{
	size_t n = 0;

	for (size_t i = 0; i < cs->ns; i++) {
		struct section *s = &cs->s[i];

		if (!s->is_sni || !in_list((const char *const *)s->sni_certs, s->n_sni_certs, cert))
			continue;
		request_name(s, "");
		n++;
	}
	if (n > 0)
		maybe_start(cs);
	return n;
}

size_t cs_capsync_publish_issuer(struct cs_capsync *cs, const char *issuer, X509 *ca,
				 X509_CRL *crl)
{
	size_t n = 0;

	for (size_t i = 0; i < cs->ns; i++) {
		struct section *s = &cs->s[i];
		struct pub *v;

		if (!s->is_capath || !in_list((const char *const *)s->issuers, s->nissuers, issuer))
			continue;
		n++;
		for (int k = 0; k < 2; k++) {
			struct pub *p;

			if ((k == 0 && ca == NULL) || (k == 1 && crl == NULL))
				continue;
			v = realloc(s->p_pubs, (s->p_npub + 1) * sizeof(*v));
			if (v == NULL)
				continue;
			s->p_pubs = v;
			p = &v[s->p_npub];
			memset(p, 0, sizeof(*p));
			if (asprintf(&p->name, "%s-ca.%s", issuer, k ? "crl" : "pem") < 0)
				continue;
			if (k == 0 && X509_up_ref(ca))
				p->x = ca;
			else if (k == 1 && X509_CRL_up_ref(crl))
				p->crl = crl;
			else {
				free(p->name);
				continue;
			}
			s->p_npub++;
		}
	}
	if (n > 0)
		maybe_start(cs);
	return n;
}

bool cs_capsync_busy(const struct cs_capsync *cs)
{
	if (cs->running)
		return true;
	for (size_t i = 0; i < cs->ns; i++)
		if (section_pending(&cs->s[i]))
			return true;
	return false;
}

size_t cs_capsync_problems(const struct cs_capsync *cs, cs_capsync_problem_cb cb, void *arg)
{
	size_t n = 0;

	for (size_t i = 0; i < cs->ns; i++)
		for (size_t k = 0; k < cs->s[i].problems.n; k++, n++)
			if (cb != NULL)
				cb(arg, cs->s[i].label, cs->s[i].problems.v[k].file,
				   cs->s[i].problems.v[k].reason);
	return n;
}

void cs_capsync_close(struct cs_capsync *cs, void (*close_cb)(void *arg), void *arg)
{
	if (cs == NULL)
		return;
	cs->closing = true;
	cs->close_cb = close_cb;
	cs->close_arg = arg;
	if (!cs->running && !cs->in_cb)
		capsync_free(cs);
}
