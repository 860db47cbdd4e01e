/*
 * cs_verify - probes every verify URL of a cert after a reload. See cs_verify.h.
 */
#include "cs_verify.h"
#include "cs_netproc.h"
#include "cs_probe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct run {
	uv_idle_t idle;     /* answers a run without URLs on the next turn */
	size_t left;
	bool ok;
	char summary[4096];
	cs_verify_cb cb;
	void *arg;
};

static void run_free(uv_handle_t *h)
{
	free(h->data);
}

static void finish(struct run *r)
{
	r->cb(r->arg, r->ok, r->summary);
	uv_close((uv_handle_t *)&r->idle, run_free);
}

struct one {
	struct run *run;
	char url[512];
	bool dane; /* checked against a TLSA RRset too */
};

static void on_probe(void *arg, bool ok, const char *served, const char *msg)
{
	struct one *o = arg;
	struct run *r = o->run;
	size_t used = strlen(r->summary);

	(void)served;
	snprintf(r->summary + used, sizeof(r->summary) - used, "%s%s: %s", used ? "; " : "",
		 o->url, ok && !o->dane ? "ok" : msg);
	r->ok &= ok;
	free(o);
	if (--r->left == 0)
		finish(r);
}

static void on_idle(uv_idle_t *h)
{
	uv_idle_stop(h);
	finish(h->data);
}

/* The TLSA records dane holds for url's owner, validated; n = 0: none. */
static struct cs_probe_dane dane_for(const struct cs_verify_dane *dane, const char *url)
{
	struct cs_probe_url u;
	char err[300], owner[CS_DANE_OWNER_MAX];

	if (dane == NULL || cs_probe_url_parse(url, &u, err, sizeof(err)) < 0)
		return (struct cs_probe_dane){ 0 };
	snprintf(owner, sizeof(owner), "_%s._tcp.%s", u.port, u.sni[0] ? u.sni : u.host);
	for (size_t i = 0; i < dane->n; i++)
		if (strcasecmp(dane->owners[i], owner) == 0 && dane->answers[i].ad)
			return (struct cs_probe_dane){ dane->answers[i].recs, dane->answers[i].n };
	return (struct cs_probe_dane){ 0 };
}

int cs_verify_start(uv_loop_t *loop, const struct cs_cfg_list *urls, const char *want_sha256,
		    int bound_ms, cs_verify_cb cb, void *arg)
{
	return cs_verify_start_dane(loop, urls, want_sha256, NULL, bound_ms, cb, arg);
}

int cs_verify_start_dane(uv_loop_t *loop, const struct cs_cfg_list *urls, const char *want_sha256,
			 const struct cs_verify_dane *dane, int bound_ms, cs_verify_cb cb,
			 void *arg)
{
	struct run *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return -ENOMEM;
	r->ok = true;
	r->cb = cb;
	r->arg = arg;
	uv_idle_init(loop, &r->idle);
	r->idle.data = r;
	/* Counted before any probe starts, so that none can finish the run early. */
	r->left = urls->n + 1;
	for (size_t i = 0; i < urls->n; i++) {
		struct one *o = calloc(1, sizeof(*o));
		int rc = o == NULL ? -ENOMEM : 0;

		if (o != NULL) {
			o->run = r;
			struct cs_probe_dane pd = dane_for(dane, urls->v[i]);
			snprintf(o->url, sizeof(o->url), "%s", urls->v[i]);
			o->dane = pd.n > 0;
			rc = cs_netproc_probe_start(loop, urls->v[i], want_sha256,
						    pd.n > 0 ? &pd : NULL, bound_ms, 500, on_probe,
						    o);
		}
		if (rc < 0) {
			size_t used = strlen(r->summary);
			snprintf(r->summary + used, sizeof(r->summary) - used,
				 "%s%s: cannot probe: %s", used ? "; " : "", urls->v[i],
				 strerror(-rc));
			r->ok = false;
			free(o);
			r->left--;
		}
	}
	if (--r->left == 0)
		uv_idle_start(&r->idle, on_idle);
	return 0;
}
