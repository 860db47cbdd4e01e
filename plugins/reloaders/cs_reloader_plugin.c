/*
 * cs_reloader_plugin - reloaders from shared objects in plugin_dir, through the
 * versioned ABI of certsync/reloader_plugin.h. A plugin that cannot be
 * loaded, lacks the entry point or has another ABI version is refused with a
 * message; the caller replaces it with the broken surrogate, so that the
 * agent and its other reloaders keep working.
 *
 * The plugin's reload() runs on the libuv work queue. If it outlives the
 * timeout, the caller is told at the timeout and the late result is dropped
 * when the worker returns (the job owns itself until then).
 */
#include "cs_reloader.h"
#include "certsync/reloader_plugin.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct plugin_reloader {
	cs_reloader base;
	void *dl;
	const struct certsync_reloader_plugin *p;
	void *handle;
	int64_t timeout_ms;
	struct job *job; /* in flight, or NULL */
	int late;        /* timed-out reloads still running in a worker */
	bool closing;    /* closed while late ones run: freed by the last of them */
};

struct job {
	uv_work_t work;
	uv_timer_t timer;
	struct plugin_reloader *r; /* NULL once the caller has been answered */
	struct plugin_reloader *owner;
	const struct certsync_reloader_plugin *p; /* what the worker calls */
	void *handle;
	char names[1024], files[4096], serial[512];
	int status;
	char msg[1024];
	bool worker_done, timer_closed;
	cs_reload_cb cb;
	void *arg;
};

static void job_run(uv_work_t *w)
{
	struct job *j = w->data;
	struct certsync_reload_info info = { j->names, j->files, j->serial };

	j->msg[0] = '\0';
	j->status = j->p->reload(j->handle, &info, j->msg, sizeof(j->msg));
	j->msg[sizeof(j->msg) - 1] = '\0';
}

static void job_maybe_free(struct job *j)
{
	if (j->worker_done && j->timer_closed)
		free(j);
}

static void timer_closed(uv_handle_t *h)
{
	struct job *j = h->data;

	j->timer_closed = true;
	job_maybe_free(j);
}

/* Answers the caller once, with status and message. */
static void answer(struct job *j, int status, const char *msg)
{
	struct cs_reload_result res = { .status = status };

	snprintf(res.message, sizeof(res.message), "%s", msg);
	if (j->r != NULL)
		j->r->job = NULL;
	j->r = NULL;
	j->cb(j->arg, &res);
}

static void really_close(struct plugin_reloader *r);

static void job_after(uv_work_t *w, int status)
{
	struct job *j = w->data;

	j->worker_done = true;
	if (j->r == NULL && --j->owner->late == 0 && j->owner->closing)
		really_close(j->owner);
	if (j->r != NULL) {
		char msg[1100];

		if (status != 0)
			snprintf(msg, sizeof(msg), "cancelled");
		else
			snprintf(msg, sizeof(msg), "%s", j->msg[0] ? j->msg : j->status == 0 ? "ok"
												: "failed");
		uv_timer_stop(&j->timer);
		uv_close((uv_handle_t *)&j->timer, timer_closed);
		answer(j, status != 0 ? -ECANCELED : j->status > 0 ? -j->status : j->status, msg);
		return;
	}
	job_maybe_free(j);
}

static void job_timeout(uv_timer_t *t)
{
	struct job *j = t->data;
	char msg[256];

	snprintf(msg, sizeof(msg), "the plugin did not return within %lld s",
		 (long long)(j->r->timeout_ms / 1000));
	uv_close((uv_handle_t *)&j->timer, timer_closed);
	j->r->late++;
	answer(j, -ETIMEDOUT, msg);
}

static int plugin_reload(cs_reloader *base, const struct cs_reload_ctx *ctx, cs_reload_cb cb,
			 void *arg)
{
	struct plugin_reloader *r = (struct plugin_reloader *)base;
	struct job *j;
	int rc;

	if (r->job != NULL)
		return -EBUSY;
	j = calloc(1, sizeof(*j));
	if (j == NULL)
		return -ENOMEM;
	j->r = r;
	j->owner = r;
	j->p = r->p;
	j->handle = r->handle;
	j->cb = cb;
	j->arg = arg;
	snprintf(j->names, sizeof(j->names), "%s", ctx && ctx->names ? ctx->names : "");
	snprintf(j->files, sizeof(j->files), "%s", ctx && ctx->files ? ctx->files : "");
	snprintf(j->serial, sizeof(j->serial), "%s", ctx && ctx->serial ? ctx->serial : "");
	j->work.data = j;
	if ((rc = uv_queue_work(base->loop, &j->work, job_run, job_after)) < 0) {
		free(j);
		return rc;
	}
	uv_timer_init(base->loop, &j->timer);
	j->timer.data = j;
	uv_timer_start(&j->timer, job_timeout, (uint64_t)r->timeout_ms, 0);
	r->job = j;
	return 0;
}

static void really_close(struct plugin_reloader *r)
{
	if (r->handle != NULL)
		r->p->close(r->handle);
	if (r->dl != NULL)
		dlclose(r->dl);
	free(r->base.name);
	free(r);
}

static void plugin_close(cs_reloader *base)
{
	struct plugin_reloader *r = (struct plugin_reloader *)base;

	/* A timed-out reload still in a worker keeps the handle and code alive. */
	if (r->late > 0)
		r->closing = true;
	else
		really_close(r);
}

static const struct cs_reloader_ops ops_plugin = { "plugin", plugin_reload, plugin_close };

cs_reloader *cs_reloader_plugin_new(uv_loop_t *loop, const char *name, const char *plugin_dir,
				    const char *plugin, const char *args, int64_t timeout_s,
				    char *err, size_t errlen)
{
	const struct certsync_reloader_plugin *(*entry)(void);
	struct plugin_reloader *r = calloc(1, sizeof(*r));
	char path[PATH_MAX];

	if (r == NULL || (r->base.name = strdup(name)) == NULL) {
		free(r);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->base.ops = &ops_plugin;
	r->base.loop = loop;
	r->timeout_ms = (timeout_s > 0 ? timeout_s : 60) * 1000;
	/* Only from plugin_dir: a name with a slash could load any file. */
	if (strchr(plugin, '/') != NULL) {
		snprintf(err, errlen, "plugin '%s': give a file name in plugin_dir %s, not a path",
			 plugin, plugin_dir);
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/%s", plugin_dir, plugin);
	r->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (r->dl == NULL) {
		snprintf(err, errlen, "plugin %s cannot be loaded: %s", path, dlerror());
		goto fail;
	}
	*(void **)&entry = dlsym(r->dl, "certsync_reloader_plugin");
	if (entry == NULL) {
		snprintf(err, errlen, "plugin %s has no certsync_reloader_plugin() entry point",
			 path);
		goto fail;
	}
	r->p = entry();
	if (r->p == NULL || r->p->abi_version != CERTSYNC_RELOADER_ABI_VERSION) {
		snprintf(err, errlen,
			 "plugin %s was built for reloader ABI version %u; this certsyncd has "
			 "version %u: rebuild it against this certsync's reloader_plugin.h",
			 path, r->p != NULL ? r->p->abi_version : 0, CERTSYNC_RELOADER_ABI_VERSION);
		goto fail;
	}
	if (r->p->open == NULL || r->p->reload == NULL || r->p->close == NULL) {
		snprintf(err, errlen, "plugin %s lacks open, reload or close", path);
		goto fail;
	}
	err[0] = '\0';
	r->handle = r->p->open(name, args != NULL ? args : "", err, errlen);
	if (r->handle == NULL) {
		char msg[512];

		snprintf(msg, sizeof(msg), "%s", err[0] ? err : "no reason given");
		snprintf(err, errlen, "plugin %s refused [reload \"%s\"]: %s", path, name, msg);
		goto fail;
	}
	return &r->base;
fail:
	if (r->dl != NULL)
		dlclose(r->dl);
	free(r->base.name);
	free(r);
	return NULL;
}
