/*
 * cs_ctlsock_agent - the status socket wired to the agent's pipeline
 * (cs_ctlsock_for_agent), so that cs_agent.c needs three calls. The server
 * subscribes to the pipeline's events; the pipeline keeps its subscribers
 * across SIGHUP (it is the same pipeline), and so do the counters.
 */
#include "cs_ctlsock_int.h"
#include "cs_capsync.h"
#include "cs_early.h"
#include "cs_log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t pl_count(void *arg)
{
	return cs_pipeline_count(arg);
}

static void pl_status(void *arg, size_t i, struct cs_cert_status *out)
{
	cs_pipeline_status(arg, i, out);
}

static bool pl_status_of(void *arg, const char *name, struct cs_cert_status *out)
{
	return cs_pipeline_status_of(arg, name, out) == 0;
}

static const char *pl_name(void *arg, size_t i)
{
	return cs_pipeline_name(arg, i);
}

static void pl_summary(void *arg, struct cs_pipeline_summary *out)
{
	cs_pipeline_summary(arg, out);
}

static size_t pl_problems(void *arg, void (*cb)(void *cbarg, const struct cs_cert_status *st),
			  void *cbarg)
{
	return cs_pipeline_problems(arg, cb, cbarg);
}

static int pl_renew(void *arg, const char *name, bool force, cs_renewal_cb cb, void *cbarg)
{
	return cs_pipeline_renew(arg, name, force, cb, cbarg);
}

static int pl_adopt(void *arg, const char *name,
		    void (*done)(void *cbarg, int status, const char *msg), void *cbarg)
{
	return cs_pipeline_adopt(arg, name, done, cbarg);
}

static int pl_revoke(void *arg, const char *name, int reason,
		     void (*done)(void *cbarg, int status, const char *msg), void *cbarg)
{
	return cs_pipeline_revoke(arg, name, reason, done, cbarg);
}

static int pl_subscribe(void *arg, void (*fn)(void *, const struct cs_event *), void *fnarg)
{
	return cs_pipeline_subscribe(arg, fn, fnarg);
}

static void pl_unsubscribe(void *arg, void (*fn)(void *, const struct cs_event *), void *fnarg)
{
	cs_pipeline_unsubscribe(arg, fn, fnarg);
}

static int pl_reload(void *arg, const char *name, char *err, size_t errlen)
{
	int rc = cs_pipeline_reload(arg, name);

	if (rc == -ENOENT)
		snprintf(err, errlen, "no [cert \"%s\"] in the configuration", name);
	else if (rc == -EBUSY)
		snprintf(err, errlen, "%s is being renewed, rolled back or the agent is stopping; "
				      "try again", name);
	else if (rc == 0)
		cs_notice("status socket: reload of the services of %s requested", name);
	return rc;
}

static int pl_rehash(void *arg, const char *name, char *err, size_t errlen)
{
	struct cs_capsync *cs = cs_pipeline_capsync(arg);

	if (cs == NULL) {
		snprintf(err, errlen, "no [capath] or [clientcerts] section is configured%s",
			 name != NULL ? "" : " (or they could not be set up: see the log)");
		return -ENOENT;
	}
	if (name == NULL) {
		cs_capsync_full(cs);
		cs_notice("status socket: rehash of every [capath] and [clientcerts] requested");
		return 0;
	}
	if (cs_capsync_rehash(cs, name) < 0) {
		snprintf(err, errlen, "no [capath] or [clientcerts] \"%s\" in the configuration",
			 name);
		return -ENOENT;
	}
	cs_notice("status socket: rehash of %s requested", name);
	return 0;
}

static size_t pl_capath_problems(void *arg,
				 void (*cb)(void *, const char *, const char *, const char *),
				 void *cbarg)
{
	struct cs_capsync *cs = cs_pipeline_capsync(arg);

	return cs != NULL ? cs_capsync_problems(cs, cb, cbarg) : 0;
}

static void opts_of(const struct cs_config *cfg, bool listen, struct cs_ctlsock_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->path = listen ? cfg->agent.socket : NULL;
	o->mode = cfg->agent.socket_mode;
	o->group = cfg->agent.socket_group;
	o->admin_group = cfg->agent.admin_group;
	o->metrics_file = cfg->agent.metrics_file;
}

static const struct cs_ctlsock_backend agent_backend = {
	.count = pl_count,   .status = pl_status, .status_of = pl_status_of,
	.name = pl_name,     .summary = pl_summary, .problems = pl_problems,
	.renew = pl_renew,
	.reload = pl_reload, .rehash = pl_rehash, .capath_problems = pl_capath_problems,
	.revoke = pl_revoke, .adopt = pl_adopt,
	.subscribe = pl_subscribe, .unsubscribe = pl_unsubscribe,
};

/* Returns the agent's socket and metrics writer for cfg and pl, or NULL (logged). */
struct cs_ctlsock *cs_ctlsock_for_agent(uv_loop_t *loop, const struct cs_config *cfg,
					struct cs_pipeline *pl, bool listen)
{
	struct cs_ctlsock_backend be = agent_backend;
	struct cs_ctlsock_opts o;
	struct cs_ctlsock *s;
	char err[1024];

	be.arg = pl;
	opts_of(cfg, listen, &o);
	s = cs_ctlsock_new(loop, &o, &be, err, sizeof(err));
	if (s == NULL && o.path != NULL) {
		cs_err("status socket: %s; running without it", err);
		o.path = NULL;
		s = cs_ctlsock_new(loop, &o, &be, err, sizeof(err));
	}
	if (s == NULL)
		cs_err("status socket and metrics: %s", err);
	else if (o.path != NULL)
		cs_info("status socket listening on %s (mode %04o)", o.path, (unsigned)o.mode);
	return s;
}

/* Applies a new configuration to s (errors logged); accepts NULL. */
void cs_ctlsock_apply_config(struct cs_ctlsock *s, const struct cs_config *cfg, bool listen)
{
	struct cs_ctlsock_opts o;
	char err[1024];
	const char *before;

	if (s == NULL)
		return;
	opts_of(cfg, listen, &o);
	before = cs_ctlsock_path(s);
	bool moved = (before == NULL) != (o.path == NULL) ||
		     (before != NULL && o.path != NULL && strcmp(before, o.path) != 0);
	if (cs_ctlsock_apply(s, &o, err, sizeof(err)) < 0)
		cs_err("status socket: %s; keeping the previous one", err);
	else if (moved && o.path != NULL)
		cs_notice("status socket now listening on %s", o.path);
}

/* Returns a socket at e's path that answers "starting" until attached, or NULL (logged). */
struct cs_ctlsock *cs_ctlsock_for_start(uv_loop_t *loop, const struct cs_early *e)
{
	struct cs_ctlsock_backend none = { 0 };
	struct cs_ctlsock_opts o = {
		.path = e->socket,
		.mode = e->socket_mode,
		.group = e->socket_group,
		.admin_group = e->admin_group,
	};
	struct cs_ctlsock *s;
	char err[1024];

	s = cs_ctlsock_new(loop, &o, &none, err, sizeof(err));
	if (s == NULL) {
		cs_err("status socket: %s; trying again once the configuration is read", err);
		return NULL;
	}
	s->starting = "reading the configuration";
	cs_info("status socket open on %s while the configuration is read", o.path);
	return s;
}

/* Serves pl from s (made by cs_ctlsock_for_start) under cfg; the waiting requests are answered. */
void cs_ctlsock_attach_agent(struct cs_ctlsock *s, const struct cs_config *cfg,
			     struct cs_pipeline *pl)
{
	struct client *next;

	cs_ctlsock__unsubscribe(s);
	s->be = agent_backend;
	s->be.arg = pl;
	s->starting = NULL;
	cs_ctlsock__subscribe(s);
	cs_ctlsock_apply_config(s, cfg, true);
	if (s->lis != NULL)
		cs_info("status socket listening on %s (mode %04o)", s->lis->path,
			(unsigned)s->lis->mode);
	for (struct client *c = LIST_FIRST(&s->clients); c != NULL; c = next) {
		next = LIST_NEXT(c, link);
		if (!c->waiting)
			continue;
		c->waiting = false;
		uv_timer_again(&c->timer);
		cs_ctlsock__process(c);
		if (cs_ctlsock__can_read(c))
			uv_read_start((uv_stream_t *)&c->pipe, cs_ctlsock__on_alloc,
				      cs_ctlsock__on_read);
	}
}

/* Says what the agent is doing while it starts (a static string). */
void cs_ctlsock_set_starting(struct cs_ctlsock *s, const char *what)
{
	if (s != NULL && s->starting != NULL)
		s->starting = what;
}
