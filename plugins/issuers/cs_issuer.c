/*
 * cs_issuer - shared parts of the issuer interface (see cs_issuer.h).
 */
#include "cs_issuer.h"

/*
 * The broken issuer: stands in for one that could not be set up, failing each
 * request (on the next loop turn, as the interface promises) with the reason.
 */
#include "cs_log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

struct broken_issuer {
	struct cs_issuer base;
	char *msg;
};

struct broken_req {
	uv_timer_t timer;
	cs_issue_cb cb;
	void *arg;
	char msg[1024];
};

static void broken_req_closed(uv_handle_t *h)
{
	free(h->data);
}

static void broken_fire(uv_timer_t *t)
{
	struct broken_req *r = t->data;
	struct cs_issue_result res = { .status = -EINVAL };

	snprintf(res.error, sizeof(res.error), "%s", r->msg);
	r->cb(&res, r->arg);
	uv_close((uv_handle_t *)t, broken_req_closed);
}

static int broken_issue(cs_issuer *is, const struct cs_issue_request *req, cs_issue_cb cb,
			void *arg)
{
	struct broken_issuer *b = (struct broken_issuer *)is;
	struct broken_req *r = calloc(1, sizeof(*r));

	(void)req;
	if (r == NULL)
		return -ENOMEM;
	r->cb = cb;
	r->arg = arg;
	snprintf(r->msg, sizeof(r->msg), "%s", b->msg);
	uv_timer_init(is->loop, &r->timer);
	r->timer.data = r;
	uv_timer_start(&r->timer, broken_fire, 0, 0);
	return 0;
}

static void broken_close(cs_issuer *is, void (*close_cb)(void *arg), void *arg)
{
	struct broken_issuer *b = (struct broken_issuer *)is;

	free(b->msg);
	free(b->base.name);
	free(b);
	if (close_cb)
		close_cb(arg);
}

static const struct cs_issuer_ops broken_ops = {
	.type = "broken",
	.issue = broken_issue,
	.ca_material = NULL,
	.close = broken_close,
};

cs_issuer *cs_issuer_broken_new(uv_loop_t *loop, const char *name, const char *msg)
{
	struct broken_issuer *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return NULL;
	b->base.ops = &broken_ops;
	b->base.loop = loop;
	b->base.name = strdup(name);
	b->msg = strdup(msg);
	return &b->base;
}
