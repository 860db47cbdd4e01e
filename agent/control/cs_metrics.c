/*
 * cs_metrics - Prometheus text exposition of the agent's status, and the
 * counters kept from the pipeline's events. See cs_metrics.h.
 *
 * Every family is written in one piece (HELP, TYPE, then all its samples),
 * as the format requires; label values are escaped (backslash, quote,
 * newline). Certs without a deployed certificate have no timestamp samples
 * rather than a misleading zero.
 */
#include "cs_metrics.h"
#include "cs_atomic.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RELOADERS 64

struct reload_count {
	char *reloader;
	uint64_t ok, not_running, failed;
};

struct cs_metrics {
	uint64_t renew_ok, renew_failed;
	struct reload_count *reloads;
	size_t n_reloads;
};

struct buf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap * 2 + (size_t)n + 1;
		char *p = realloc(b->p, cap);
		if (p == NULL) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

/* Label values: \ " and newline escaped, as the exposition format asks. */
static void put_label(struct buf *b, const char *s)
{
	for (; s != NULL && *s; s++) {
		if (*s == '\\')
			put(b, "\\\\");
		else if (*s == '"')
			put(b, "\\\"");
		else if (*s == '\n')
			put(b, "\\n");
		else
			put(b, "%c", *s);
	}
}

static void family(struct buf *b, const char *name, const char *type, const char *help)
{
	put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void cert_sample(struct buf *b, const char *metric, const char *cert, long long v)
{
	put(b, "%s{name=\"", metric);
	put_label(b, cert);
	put(b, "\"} %lld\n", v);
}

/* Returns a tracker with zero counters (free with cs_metrics_free), or NULL. */
struct cs_metrics *cs_metrics_new(void)
{
	return calloc(1, sizeof(struct cs_metrics));
}

/* Frees m; accepts NULL. */
void cs_metrics_free(struct cs_metrics *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n_reloads; i++)
		free(m->reloads[i].reloader);
	free(m->reloads);
	free(m);
}

static struct reload_count *reload_count(struct cs_metrics *m, const char *name, size_t len)
{
	for (size_t i = 0; i < m->n_reloads; i++)
		if (strlen(m->reloads[i].reloader) == len &&
		    memcmp(m->reloads[i].reloader, name, len) == 0)
			return &m->reloads[i];
	if (m->n_reloads >= MAX_RELOADERS)
		return NULL;
	struct reload_count *v = realloc(m->reloads, (m->n_reloads + 1) * sizeof(*v));
	if (v == NULL)
		return NULL;
	m->reloads = v;
	struct reload_count *r = &v[m->n_reloads];
	memset(r, 0, sizeof(*r));
	r->reloader = strndup(name, len);
	if (r->reloader == NULL)
		return NULL;
	m->n_reloads++;
	return r;
}

/* Counts ev: a renewal's end by its result, a service's reload by its result. */
void cs_metrics_count(struct cs_metrics *m, const struct cs_event *ev)
{
	struct reload_count *r;

	switch (ev->type) {
	case CS_EVENT_RENEWED:
		m->renew_ok++;
		break;
	case CS_EVENT_ROLLED_BACK:
		m->renew_failed++;
		break;
	case CS_EVENT_FAILED:
		/* A renewal abandoned because the agent stops is no failure. */
		if (ev->outcome == CS_RENEWAL_FAILED)
			m->renew_failed++;
		break;
	case CS_EVENT_RELOADED:
		if (ev->service == NULL ||
		    (r = reload_count(m, ev->service, strlen(ev->service))) == NULL)
			break;
		if (ev->result == CS_EVENT_OK)
			r->ok++;
		else if (ev->result == CS_EVENT_NOT_RUNNING)
			r->not_running++;
		else
			r->failed++;
		break;
	default:
		break;
	}
}

/* The result a last_reload text gives for reloader (1 ok, 0 failed, -1 absent). */
static int reload_ok(const char *text, const char *reloader, size_t len)
{
	const char *p = text;

	while (p != NULL && *p) {
		const char *end = strstr(p, "; ");
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n > len + 2 && strncmp(p, reloader, len) == 0 && p[len] == ':')
			return strncmp(p + len + 2, "failed", 6) == 0 ? 0 : 1;
		p = end ? end + 2 : NULL;
	}
	return -1;
}

static void render_reload_gauges(struct buf *b, const struct cs_cert_status *v, size_t n)
{
	family(b, "certsync_cert_last_reload_ok", "gauge",
	       "Whether the last reload of each service after a change of the cert succeeded "
	       "(1) or failed (0).");
	for (size_t i = 0; i < n; i++) {
		const char *p = v[i].last_reload;
		while (p != NULL && *p) {
			const char *end = strstr(p, "; ");
			size_t len = end ? (size_t)(end - p) : strlen(p);
			const char *colon = memchr(p, ':', len);
			if (colon != NULL && colon > p) {
				int ok = reload_ok(v[i].last_reload, p, (size_t)(colon - p));
				put(b, "certsync_cert_last_reload_ok{name=\"");
				put_label(b, v[i].name);
				put(b, "\",reloader=\"");
				char r[256];
				snprintf(r, sizeof(r), "%.*s", (int)(colon - p), p);
				put_label(b, r);
				put(b, "\"} %d\n", ok > 0 ? 1 : 0);
			}
			p = end ? end + 2 : NULL;
		}
	}
}

static void render_verify_gauges(struct buf *b, const struct cs_cert_status *v, size_t n)
{
	family(b, "certsync_verify_ok", "gauge",
	       "Whether the services served the deployed certificate at the last verify "
	       "(1) or not (0); absent while not checked.");
	for (size_t i = 0; i < n; i++) {
		if (v[i].verify == CS_VERIFY_NONE)
			continue;
		put(b, "certsync_verify_ok{name=\"");
		put_label(b, v[i].name);
		put(b, "\"} %d\n", v[i].verify == CS_VERIFY_OK);
	}
}

static void render_served_gauges(struct buf *b, const struct cs_cert_status *v, size_t n)
{
	family(b, "certsync_served_match", "gauge",
	       "Whether a verify URL served the deployed certificate for a name at the last "
	       "drift check (1) or another one (0); absent while not checked or without an "
	       "answer.");
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < v[i].n_served; k++) {
			const struct cs_served *s = &v[i].served[k];
			if (s->match < 0)
				continue;
			put(b, "certsync_served_match{cert=\"");
			put_label(b, v[i].name);
			put(b, "\",url=\"");
			put_label(b, s->url);
			put(b, "\",name=\"");
			put_label(b, s->name);
			put(b, "\"} %d\n", s->match);
		}
}

static const enum cs_cert_state all_states[] = {
	CS_CERT_VALID,   CS_CERT_DUE,     CS_CERT_RENEWING, CS_CERT_FAILED,
	CS_CERT_EXPIRED, CS_CERT_MISSING, CS_CERT_UNKNOWN,
};
#define N_STATES (sizeof(all_states) / sizeof(all_states[0]))

/* The agent's build, start and the moment these numbers were taken. */
static void render_head(struct buf *b, const struct cs_metrics_agent *ag, time_t now)
{
	family(b, "certsync_build_info", "gauge", "The certsync version running (always 1).");
	put(b, "certsync_build_info{version=\"%s\"} 1\n", CS_VERSION);
	family(b, "certsync_agent_start_time_seconds", "gauge",
	       "When the agent started, seconds since the epoch.");
	put(b, "certsync_agent_start_time_seconds %lld\n", (long long)ag->start_time);
	family(b, "certsync_metrics_generated_timestamp_seconds", "gauge",
	       "When these numbers were taken, seconds since the epoch.");
	put(b, "certsync_metrics_generated_timestamp_seconds %lld\n", (long long)now);
}

/* Certs in each state, and each cert's state. */
static void render_states(struct buf *b, const struct cs_cert_status *v, size_t n)
{
	size_t per_state[N_STATES] = { 0 };

	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < N_STATES; k++)
			if (v[i].state == all_states[k])
				per_state[k]++;
	family(b, "certsync_certs", "gauge", "Number of configured certs in each state.");
	for (size_t k = 0; k < N_STATES; k++)
		put(b, "certsync_certs{state=\"%s\"} %zu\n", cs_pipeline_state_name(all_states[k]),
		    per_state[k]);

	family(b, "certsync_cert_state", "gauge",
	       "The state of each cert: 1 for the state it is in, 0 for the others.");
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < N_STATES; k++) {
			put(b, "certsync_cert_state{name=\"");
			put_label(b, v[i].name);
			put(b, "\",state=\"%s\"} %d\n", cs_pipeline_state_name(all_states[k]),
			    v[i].state == all_states[k]);
		}
}

/* Which issuer issued each deployed cert, and how often renewals fell back. */
static void render_cert_issuers(struct buf *b, const struct cs_cert_status *v, size_t n)
{
	family(b, "certsync_cert_issuer_info", "gauge",
	       "The issuer of the deployed certificate (always 1); fallback=\"1\" when it is "
	       "not the first of the cert's list.");
	for (size_t i = 0; i < n; i++) {
		if (v[i].issued_by == NULL)
			continue;
		put(b, "certsync_cert_issuer_info{name=\"");
		put_label(b, v[i].name);
		put(b, "\",issuer=\"");
		put_label(b, v[i].issued_by);
		put(b, "\",fallback=\"%d\"} 1\n",
		    v[i].n_issuers > 0 && strcmp(v[i].issued_by, v[i].issuers[0]) != 0);
	}
	family(b, "certsync_issuer_fallbacks_total", "counter",
	       "Times a failing renewal of the cert moved on to the next issuer of its list "
	       "(kept in the state across restarts).");
	for (size_t i = 0; i < n; i++)
		cert_sample(b, "certsync_issuer_fallbacks_total", v[i].name,
			    (long long)v[i].fallbacks);
}

/* The DANE rollovers: well or not, the next key usable, failed updates, kept keys. */
static void render_dane(struct buf *b, const struct cs_cert_status *v, size_t n)
{
	static const struct {
		const char *name, *type, *help;
	} f[] = {
		{ "certsync_dane_ok", "gauge",
		  "1 when the cert's TLSA records are as they should be: the validating resolver "
		  "answers with AD and shows the current key's record, and the last update "
		  "worked; 0 otherwise (certsyncctl dane NAME says why)." },
		{ "certsync_dane_next_ready", "gauge",
		  "1 when the staged next key's TLSA record has been visible for 2 x TTL, so that "
		  "the next renewal takes that key." },
		{ "certsync_dane_update_failures_total", "counter",
		  "TLSA record updates (nsupdate or dane_hook) that failed." },
		{ "certsync_dane_current_key_kept_total", "counter",
		  "Renewals that kept the current key because the next key's record was not yet "
		  "visible for 2 x TTL (kept in state_dir/dane)." },
	};

	for (size_t k = 0; k < sizeof(f) / sizeof(f[0]); k++) {
		family(b, f[k].name, f[k].type, f[k].help);
		for (size_t i = 0; i < n; i++) {
			const struct cs_dane_state *d = v[i].dane;
			long long x[] = { d != NULL && cs_dane_ok(d), v[i].dane_next_ready,
					  d != NULL ? (long long)d->update_failures : 0,
					  (long long)v[i].dane_kept };
			if (v[i].dane_cfg != NULL)
				cert_sample(b, f[k].name, v[i].name, x[k]);
		}
	}
}

/* Each cert's times, failures and deployed files. */
static void render_cert_gauges(struct buf *b, const struct cs_cert_status *v, size_t n)
{
	family(b, "certsync_cert_not_before_timestamp_seconds", "gauge",
	       "notBefore of the deployed certificate, seconds since the epoch.");
	for (size_t i = 0; i < n; i++)
		if (v[i].not_before != 0)
			cert_sample(b, "certsync_cert_not_before_timestamp_seconds", v[i].name,
				    (long long)v[i].not_before);
	family(b, "certsync_cert_not_after_timestamp_seconds", "gauge",
	       "notAfter of the deployed certificate, seconds since the epoch.");
	for (size_t i = 0; i < n; i++)
		if (v[i].not_after != 0)
			cert_sample(b, "certsync_cert_not_after_timestamp_seconds", v[i].name,
				    (long long)v[i].not_after);
	family(b, "certsync_cert_next_renewal_timestamp_seconds", "gauge",
	       "When the agent plans to renew the cert next, seconds since the epoch.");
	for (size_t i = 0; i < n; i++)
		if (v[i].next_renewal != 0)
			cert_sample(b, "certsync_cert_next_renewal_timestamp_seconds", v[i].name,
				    (long long)v[i].next_renewal);
	family(b, "certsync_cert_last_renewal_timestamp_seconds", "gauge",
	       "When the cert was last renewed successfully, seconds since the epoch.");
	for (size_t i = 0; i < n; i++)
		if (v[i].last_renewal != 0)
			cert_sample(b, "certsync_cert_last_renewal_timestamp_seconds", v[i].name,
				    (long long)v[i].last_renewal);
	family(b, "certsync_cert_failures", "gauge",
	       "Consecutive failed renewal attempts of the cert (0 after a success).");
	for (size_t i = 0; i < n; i++)
		cert_sample(b, "certsync_cert_failures", v[i].name, v[i].failures);
	family(b, "certsync_cert_deployed_ok", "gauge",
	       "Whether the deployed files hold a usable, consistent key and certificate "
	       "(1) or not (0).");
	for (size_t i = 0; i < n; i++)
		cert_sample(b, "certsync_cert_deployed_ok", v[i].name, v[i].verdict == CS_EX_OK);
	render_cert_issuers(b, v, n);
	render_dane(b, v, n);
}

/* Renewals and reloads since the agent started, counted from the pipeline's events. */
static void render_counters(struct buf *b, const struct cs_metrics *m)
{
	family(b, "certsync_renewals_total", "counter",
	       "Renewal attempts seen since the agent started, by result.");
	put(b, "certsync_renewals_total{result=\"success\"} %llu\n",
	    (unsigned long long)m->renew_ok);
	put(b, "certsync_renewals_total{result=\"failure\"} %llu\n",
	    (unsigned long long)m->renew_failed);
	family(b, "certsync_reloads_total", "counter",
	       "Service reloads seen since the agent started, by reloader and result.");
	for (size_t i = 0; i < m->n_reloads; i++) {
		static const char *const res[] = { "ok", "not_running", "failed" };
		uint64_t val[] = { m->reloads[i].ok, m->reloads[i].not_running,
				   m->reloads[i].failed };
		for (size_t k = 0; k < 3; k++) {
			put(b, "certsync_reloads_total{reloader=\"");
			put_label(b, m->reloads[i].reloader);
			put(b, "\",result=\"%s\"} %llu\n", res[k], (unsigned long long)val[k]);
		}
	}
}

/* CApath problems, the status socket and the metrics file. */
static void render_agent(struct buf *b, const struct cs_metrics_agent *ag)
{
	family(b, "certsync_capath_problems", "gauge",
	       "Files skipped or left out and sections whose pass failed in the [capath] and "
	       "[clientcerts] directories, after the last pass.");
	if (ag->capath_problems >= 0)
		put(b, "certsync_capath_problems %ld\n", ag->capath_problems);
	family(b, "certsync_ctlsock_clients", "gauge", "Status socket clients connected now.");
	put(b, "certsync_ctlsock_clients %u\n", ag->clients);
	family(b, "certsync_ctlsock_requests_total", "counter",
	       "Status socket requests since the agent started, by result.");
	put(b, "certsync_ctlsock_requests_total{result=\"ok\"} %llu\n",
	    (unsigned long long)ag->requests_ok);
	put(b, "certsync_ctlsock_requests_total{result=\"error\"} %llu\n",
	    (unsigned long long)ag->requests_error);
	put(b, "certsync_ctlsock_requests_total{result=\"refused\"} %llu\n",
	    (unsigned long long)ag->requests_refused);
	if (ag->netproc) {
		family(b, "certsync_netproc_up", "gauge",
		       "Whether the unprivileged network process runs now (1) or not (0).");
		put(b, "certsync_netproc_up %d\n", ag->netproc_up);
		family(b, "certsync_netproc_restarts_total", "counter",
		       "Times the network process was started again after it died or was killed.");
		put(b, "certsync_netproc_restarts_total %llu\n",
		    (unsigned long long)ag->netproc_restarts);
		family(b, "certsync_netproc_violations_total", "counter",
		       "Protocol violations the network process was killed for.");
		put(b, "certsync_netproc_violations_total %llu\n",
		    (unsigned long long)ag->netproc_violations);
	}
	family(b, "certsync_metrics_file_write_failures_total", "counter",
	       "Failed writes of the metrics_file since the agent started.");
	put(b, "certsync_metrics_file_write_failures_total %llu\n",
	    (unsigned long long)ag->metrics_writes_failed);
}

/* Returns the exposition text (malloc'd, the caller frees it) or NULL on ENOMEM. */
char *cs_metrics_render(const struct cs_metrics *m, const struct cs_cert_status *v, size_t n,
			const struct cs_metrics_agent *ag, time_t now)
{
	struct buf b = { 0 };

	b.cap = 4096 + n * 1024;
	b.p = malloc(b.cap);
	if (b.p == NULL)
		return NULL;
	b.p[0] = '\0';

	render_head(&b, ag, now);
	render_states(&b, v, n);
	render_cert_gauges(&b, v, n);
	render_reload_gauges(&b, v, n);
	render_verify_gauges(&b, v, n);
	render_served_gauges(&b, v, n);
	render_counters(&b, m);
	render_agent(&b, ag);

	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

/* Returns the exposition text of pl's status (malloc'd) or NULL on ENOMEM. */
char *cs_metrics_render_pipeline(const struct cs_metrics *m, const struct cs_pipeline *pl,
				 const struct cs_metrics_agent *ag)
{
	size_t n = pl != NULL ? cs_pipeline_count(pl) : 0;
	struct cs_cert_status *v = calloc(n ? n : 1, sizeof(*v));
	char *text;

	if (v == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		cs_pipeline_status(pl, i, &v[i]);
	text = cs_metrics_render(m, v, n, ag, time(NULL));
	free(v);
	return text;
}

/* Writes text to path atomically (0644); returns 0 or a negative errno with err set. */
int cs_metrics_write_file(const char *path, const char *text, char *err, size_t errlen)
{
	struct cs_atomic_opts o = { .mode = 0644, .uid = (uid_t)-1, .gid = (gid_t)-1 };

	return cs_atomic_write(path, text, strlen(text), &o, err, errlen);
}
