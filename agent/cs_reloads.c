/*
 * cs_reloads - debounced reloads, one per service for a burst of renewals.
 * See cs_reloads.h.
 */
#include "cs_reloads.h"
#include "cs_registry.h"
#include "cs_log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEBOUNCE_MS 1000      /* quiet time before reloading */
#define DEBOUNCE_MAX_MS 10000 /* longest wait after the first request */

struct request {
	void *owner;
	char *name, *files, *serial;
};

struct slot {
	struct cs_reloads *rs;
	cs_reloader *r;
	bool running;
	struct request *batch, *flight;
	size_t n_batch, n_flight;
	char names[1024], files[4096], serials[1024];
};

struct cs_reloads {
	uv_loop_t *loop;
	uv_timer_t timer;
	uint64_t first; /* loop time of the first request not yet flushed; 0: none */
	struct slot *slots;
	size_t n;
	unsigned running;
	cs_reloads_cb cb;
	void *arg;
	void (*close_cb)(void *arg);
	void *close_arg;
};

static void free_requests(struct request *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].files);
		free(v[i].serial);
	}
	free(v);
}

struct cs_reloads *cs_reloads_new(uv_loop_t *loop, const struct cs_config *cfg,
				  cs_reloader *(*factory)(void *farg, uv_loop_t *loop,
							  const struct cs_cfg_reload *cr),
				  void *farg, cs_reloads_cb cb, void *arg)
{
	struct cs_reloads *rs = calloc(1, sizeof(*rs));

	if (rs == NULL)
		return NULL;
	rs->slots = calloc(cfg->n_reloads + 1, sizeof(*rs->slots));
	if (rs->slots == NULL) {
		free(rs);
		return NULL;
	}
	rs->loop = loop;
	rs->cb = cb;
	rs->arg = arg;
	for (size_t i = 0; i < cfg->n_reloads; i++) {
		rs->slots[i].rs = rs;
		rs->slots[i].r = factory != NULL
					 ? factory(farg, loop, &cfg->reloads[i])
					 : cs_registry_reloader_open(loop, &cfg->reloads[i], cfg->agent.plugin_dir);
		if (rs->slots[i].r == NULL)
			break;
		rs->n++;
	}
	uv_timer_init(loop, &rs->timer);
	rs->timer.data = rs;
	return rs;
}

static void append(char *buf, size_t len, const char *s)
{
	size_t used = strlen(buf);

	snprintf(buf + used, len - used, "%s%s", used ? " " : "", s);
}

static void start(struct slot *s);

static void on_timer(uv_timer_t *t)
{
	cs_reloads_flush(t->data);
}

static void on_reloaded(void *arg, const struct cs_reload_result *res)
{
	struct slot *s = arg;
	struct cs_reloads *rs = s->rs;
	struct request *v = s->flight;
	size_t n = s->n_flight;

	if (res->status == 0)
		cs_notice("reload %s: %s (for %s)", s->r->name,
			  res->not_running ? "the service is not running" : "done", s->names);
	else
		cs_err("reload %s failed (for %s): %s", s->r->name, s->names, res->message);
	s->running = false;
	rs->running--;
	s->flight = NULL;
	s->n_flight = 0;
	for (size_t i = 0; i < n; i++)
		rs->cb(rs->arg, v[i].owner, s->r->name, res);
	free_requests(v, n);
	/* Asked for again while it ran: once more, after the quiet time. */
	if (s->n_batch > 0 && !uv_is_active((uv_handle_t *)&rs->timer))
		uv_timer_start(&rs->timer, on_timer, DEBOUNCE_MS, 0);
	rs->cb(rs->arg, NULL, s->r->name, res);
}

static void start(struct slot *s)
{
	struct cs_reloads *rs = s->rs;
	struct cs_reload_ctx ctx = { s->names, s->files, s->serials };
	int rc;

	s->names[0] = s->files[0] = s->serials[0] = '\0';
	for (size_t i = 0; i < s->n_batch; i++) {
		append(s->names, sizeof(s->names), s->batch[i].name);
		append(s->files, sizeof(s->files), s->batch[i].files);
		append(s->serials, sizeof(s->serials), s->batch[i].serial);
	}
	s->flight = s->batch;
	s->n_flight = s->n_batch;
	s->batch = NULL;
	s->n_batch = 0;
	s->running = true;
	rs->running++;
	rc = s->r->ops->reload(s->r, &ctx, on_reloaded, s);
	if (rc < 0) {
		struct cs_reload_result res = { .status = rc };
		snprintf(res.message, sizeof(res.message), "cannot start: %s", strerror(-rc));
		on_reloaded(s, &res);
	}
}

void cs_reloads_flush(struct cs_reloads *rs)
{
	uv_timer_stop(&rs->timer);
	rs->first = 0;
	for (size_t i = 0; i < rs->n; i++)
		if (rs->slots[i].n_batch > 0 && !rs->slots[i].running)
			start(&rs->slots[i]);
}

static int add(struct slot *s, void *owner, const char *name, const char *files,
	       const char *serial)
{
	struct request *q = NULL;

	for (size_t k = 0; k < s->n_batch; k++)
		if (s->batch[k].owner == owner)
			q = &s->batch[k];
	if (q == NULL) {
		struct request *v = realloc(s->batch, (s->n_batch + 1) * sizeof(*v));
		if (v == NULL)
			return -ENOMEM;
		s->batch = v;
		q = &v[s->n_batch++];
		memset(q, 0, sizeof(*q));
		q->owner = owner;
	}
	free(q->name);
	free(q->files);
	free(q->serial);
	q->name = strdup(name);
	q->files = strdup(files);
	q->serial = strdup(serial);
	if (q->name == NULL || q->files == NULL || q->serial == NULL)
		return -ENOMEM;
	return 0;
}

size_t cs_reloads_request(struct cs_reloads *rs, void *owner, const struct cs_cfg_list *list,
			  const char *name, const char *files, const char *serial, bool debounce)
{
	size_t asked = 0;

	for (size_t i = 0; i < list->n; i++) {
		struct slot *s = NULL;
		for (size_t k = 0; k < rs->n && s == NULL; k++)
			if (strcmp(rs->slots[k].r->name, list->v[i]) == 0)
				s = &rs->slots[k];
		if (s == NULL)
			continue;
		if (add(s, owner, name, files, serial) < 0) {
			cs_err("%s: reload %s: out of memory", name, s->r->name);
			continue;
		}
		asked++;
	}
	if (asked == 0 || !debounce)
		return asked;
	/* Each request restarts the quiet time, until the first waited long enough. */
	uint64_t now = uv_now(rs->loop);
	if (rs->first == 0)
		rs->first = now;
	if (now - rs->first + DEBOUNCE_MS <= DEBOUNCE_MAX_MS ||
	    !uv_is_active((uv_handle_t *)&rs->timer))
		uv_timer_start(&rs->timer, on_timer, DEBOUNCE_MS, 0);
	return asked;
}

bool cs_reloads_pending(const struct cs_reloads *rs)
{
	for (size_t i = 0; i < rs->n; i++)
		if (rs->slots[i].n_batch > 0)
			return true;
	return false;
}

unsigned cs_reloads_running(const struct cs_reloads *rs)
{
	return rs->running;
}

static void on_closed(uv_handle_t *h)
{
	struct cs_reloads *rs = h->data;
	void (*cb)(void *) = rs->close_cb;
	void *arg = rs->close_arg;

	for (size_t i = 0; i < rs->n; i++) {
		free_requests(rs->slots[i].batch, rs->slots[i].n_batch);
		cs_reloader_close(rs->slots[i].r);
	}
	free(rs->slots);
	free(rs);
	if (cb)
		cb(arg);
}

void cs_reloads_close(struct cs_reloads *rs, void (*close_cb)(void *arg), void *arg)
{
	if (rs == NULL) {
		if (close_cb)
			close_cb(arg);
		return;
	}
	rs->close_cb = close_cb;
	rs->close_arg = arg;
	uv_close((uv_handle_t *)&rs->timer, on_closed);
}
