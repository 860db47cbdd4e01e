/*
 * cs_notify - the [notify] sections at work (see cs_notify.h). The event
 * subscriber only queues (a subscriber must not call back into the
 * pipeline); a zero timer then reads each cert's status, decides what each
 * section tells (its rate limits, per section and cert), and hands the
 * programs to the work queue. A job holds copies of everything it needs,
 * so that it outlives a new configuration or the notifier itself.
 */
#include "cs_notify.h"

#include "cs_acme_hook.h"
#include "cs_argv.h"
#include "cs_events.h"
#include "cs_htab.h"
#include "cs_log.h"
#include "cs_pipeline.h"
#include "cs_run.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum kind { K_FAILURE = 0, K_RECOVERY, K_RENEWAL, K_EXPIRY, K_N };
static const char *const kind_names[K_N] = { "failure", "recovery", "renewal", "expiry_warning" };
static const unsigned kind_bits[K_N] = { CS_NOTIFY_FAILURE, CS_NOTIFY_RECOVERY, CS_NOTIFY_RENEWAL,
					 CS_NOTIFY_EXPIRY };

/* What one section told about one cert, and when. */
struct told {
	struct cs_htab_node node;
	bool failing;      /* a failure was told, no recovery yet */
	time_t last[K_N];
	char key[];        /* "SECTION\nCERT" */
};

/* An event waiting for the timer. */
struct pending {
	struct pending *next;
	bool failed;       /* FAILED or ROLLED_BACK; else RENEWED */
	time_t time;
	char *text;        /* why it failed, NULL: nothing said */
	char cert[];
};

struct cs_notify {
	uv_loop_t *loop;
	const struct cs_config *cfg;
	struct cs_pipeline *pl;
	uv_timer_t timer;
	struct cs_htab told;
	struct pending *head, **tail;
	char host[256];
};

/* One program to run: everything copied. */
struct job {
	uv_work_t req;
	char **argv, **env;
	char *input;       /* standard input (a mail), NULL: none */
	size_t inlen;
	int timeout_ms;
	int rc;
	char what[600];    /* "notify NAME: failure of mail by mail to ..." for the log */
	char out[1024], err[600];
};

static void job_free(struct job *j)
{
	cs_argv_free(j->argv);
	cs_acme_hook_env_free(j->env);
	free(j->input);
	free(j);
}

static void job_work(uv_work_t *req)
{
	struct job *j = req->data;

	j->rc = j->input != NULL ? cs_run_input(j->argv, j->env, j->input, j->inlen, j->timeout_ms,
						 j->out, sizeof(j->out), j->err, sizeof(j->err))
				 : cs_run_env(j->argv, j->env, j->timeout_ms, j->out, sizeof(j->out),
					      j->err, sizeof(j->err));
}

static void job_done(uv_work_t *req, int status)
{
	struct job *j = req->data;

	(void)status;
	for (char *q = j->out; *q != '\0'; q++)
		if ((unsigned char)*q < 0x20)
			*q = ' ';
	if (j->rc == 0)
		cs_info("%s: told", j->what);
	else if (j->rc < 0)
		cs_warn("%s: not told: %s (renewals go on)", j->what, j->err);
	else
		cs_warn("%s: not told: %s exited with status %d%s%s (renewals go on)", j->what,
			j->argv[0], j->rc, j->out[0] ? ": " : "", j->out);
	job_free(j);
}

static void job_start(struct cs_notify *n, struct job *j)
{
	j->req.data = j;
	if (uv_queue_work(n->loop, &j->req, job_work, job_done) < 0) {
		cs_warn("%s: not told: cannot queue the program", j->what);
		job_free(j);
	}
}

/* ---- what is told: the variables and the mail -------------------------- */

static void fmt_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (t == 0) {
		snprintf(buf, len, "-");
		return;
	}
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The facts of one message, for its variables and its text. */
struct facts {
	const struct cs_cfg_notify *s;
	const struct cs_cert_status *st;
	enum kind kind;
	const char *host, *error;
	char next[32], not_after[32], failures[16];
};

static char **facts_env(const struct facts *f)
{
	const char *const vars[][2] = {
		{ "EVENT", kind_names[f->kind] },
		{ "CERT", f->st->name },
		{ "NOTIFY", f->s->name },
		{ "HOST", f->host },
		{ "STATE", cs_pipeline_state_name(f->st->state) },
		{ "ERROR", f->error != NULL ? f->error : "" },
		{ "NEXT_ATTEMPT", f->next },
		{ "NOT_AFTER", f->not_after },
		{ "SERIAL", f->st->serial != NULL ? f->st->serial : "" },
		{ "ISSUER", f->st->issued_by != NULL ? f->st->issued_by : f->st->issuer },
		{ "FAILURES", f->failures },
	};

	return cs_acme_hook_env(vars, sizeof(vars) / sizeof(vars[0]));
}

static const char *subject_of(const struct facts *f, char *buf, size_t len)
{
	const char *name = f->st->name;

	switch (f->kind) {
	case K_FAILURE:
		snprintf(buf, len, "certsync on %s: renewal of %s FAILED", f->host, name);
		break;
	case K_RECOVERY:
		snprintf(buf, len, "certsync on %s: %s renewed again", f->host, name);
		break;
	case K_RENEWAL:
		snprintf(buf, len, "certsync on %s: %s renewed", f->host, name);
		break;
	default:
		snprintf(buf, len, "certsync on %s: %s expires %s and is not renewed", f->host,
			 name, f->not_after);
		break;
	}
	return buf;
}

/* The mail: headers, the facts, and the cert's status as certsyncctl show says it. */
static char *mail_text(const struct facts *f, size_t *len)
{
	char subj[400], t1[32], t2[32];
	size_t size = 0;
	char *text = NULL;
	FILE *m = open_memstream(&text, &size);

	if (m == NULL)
		return NULL;
	fprintf(m, "To: %s", f->s->mail_to.v[0]);
	for (size_t i = 1; i < f->s->mail_to.n; i++)
		fprintf(m, ", %s", f->s->mail_to.v[i]);
	fprintf(m, "\nSubject: %s\nAuto-Submitted: auto-generated\nMIME-Version: 1.0\n"
		   "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n",
		subject_of(f, subj, sizeof(subj)));
	fprintf(m, "%s\n\n", subj);
	fprintf(m, "  %-14s %s\n  %-14s %s\n", "certificate", f->st->name, "event",
		kind_names[f->kind]);
	if (f->error != NULL)
		fprintf(m, "  %-14s %s\n", "error", f->error);
	fprintf(m, "  %-14s %s\n  %-14s %s\n\n", "next attempt", f->next, "not after",
		f->not_after);
	fprintf(m, "certsyncctl show %s:\n", f->st->name);
	fprintf(m, "  %-20s %s\n", "state", cs_pipeline_state_name(f->st->state));
	fprintf(m, "  %-20s %s\n", "issuer", f->st->issued_by ? f->st->issued_by : f->st->issuer);
	fprintf(m, "  %-20s %s\n", "serial", f->st->serial ? f->st->serial : "-");
	fmt_time(f->st->next_renewal, t1, sizeof(t1));
	fmt_time(f->st->last_renewal, t2, sizeof(t2));
	fprintf(m, "  %-20s %s (%s)\n  %-20s %s\n", "next renewal", t1,
		f->st->next_reason ? f->st->next_reason : "-", "last renewal", t2);
	fprintf(m, "  %-20s %d\n  %-20s %s\n", "failures", f->st->failures, "last error",
		f->st->last_error ? f->st->last_error : "-");
	fprintf(m, "  %-20s %s\n  %-20s %s\n\n", "last reload",
		f->st->last_reload ? f->st->last_reload : "-", "last verify",
		f->st->last_verify ? f->st->last_verify : "-");
	fprintf(m, "-- \ncertsyncd on %s, [notify \"%s\"]: one message of a kind per certificate "
		   "every %llds at most.\n",
		f->host, f->s->name, (long long)f->s->interval);
	if (fclose(m) != 0) {
		free(text);
		return NULL;
	}
	*len = size;
	return text;
}

/* The jobs that tell f: its command, and its mail. */
static void tell(struct cs_notify *n, const struct facts *f)
{
	const struct cs_cfg_notify *s = f->s;
	char err[300];

	for (int way = 0; way < 2; way++) {
		struct job *j;
		if ((way == 0 && s->command == NULL) || (way == 1 && s->mail_to.n == 0))
			continue;
		if ((j = calloc(1, sizeof(*j))) == NULL)
			return;
		j->timeout_ms = (int)(s->timeout * 1000);
		j->env = facts_env(f);
		snprintf(j->what, sizeof(j->what), "notify %s: %s of %s %s %s", s->name,
			 kind_names[f->kind], f->st->name, way == 0 ? "by" : "by mail to",
			 way == 0 ? s->command : s->mail_to.v[0]);
		if (way == 0) {
			j->argv = cs_argv_split(s->command, err, sizeof(err));
		} else {
			j->input = mail_text(f, &j->inlen);
			j->argv = calloc(s->mail_to.n + 6, sizeof(char *));
			size_t a = 0;
			if (j->argv != NULL) {
				j->argv[a++] = strdup(s->sendmail);
				j->argv[a++] = strdup("-i");
				if (s->mail_from != NULL) {
					j->argv[a++] = strdup("-f");
					j->argv[a++] = strdup(s->mail_from);
				}
				j->argv[a++] = strdup("--");
				for (size_t i = 0; i < s->mail_to.n; i++)
					j->argv[a++] = strdup(s->mail_to.v[i]);
			}
		}
		if (j->argv == NULL || j->env == NULL || (way == 1 && j->input == NULL)) {
			cs_warn("%s: not told: out of memory", j->what);
			job_free(j);
			continue;
		}
		job_start(n, j);
	}
}

/* ---- deciding: what each section tells, at most how often ---------------- */

static struct told *told_get(struct cs_notify *n, const char *section, const char *cert)
{
	char key[600];
	uint64_t h;
	struct told *t;

	snprintf(key, sizeof(key), "%s\n%s", section, cert);
	h = cs_htab_hash(key, CS_HTAB_SEED);
	for (struct cs_htab_node *x = cs_htab_first(&n->told, h); x; x = cs_htab_next(x, h)) {
		t = cs_htab_entry(x, struct told, node);
		if (strcmp(t->key, key) == 0)
			return t;
	}
	if ((t = calloc(1, sizeof(*t) + strlen(key) + 1)) == NULL)
		return NULL;
	strcpy(t->key, key);
	if (cs_htab_insert(&n->told, &t->node, h) < 0) {
		free(t);
		return NULL;
	}
	return t;
}

static bool covers(const struct cs_cfg_notify *s, const char *cert)
{
	for (size_t i = 0; i < s->certs.n; i++)
		if (strcmp(s->certs.v[i], cert) == 0)
			return true;
	return s->certs.n == 0;
}

/* Whether kind may be told now (its bit is on, its interval has passed), and notes it. */
static bool may_tell(const struct cs_cfg_notify *s, struct told *t, enum kind k, time_t now)
{
	if (!(s->on & kind_bits[k]) || (t->last[k] != 0 && now - t->last[k] < s->interval))
		return false;
	t->last[k] = now;
	return true;
}

/* The kinds section s tells about the event p of a cert whose status is st. */
static unsigned decide(const struct cs_cfg_notify *s, struct told *t, const struct pending *p,
		       const struct cs_cert_status *st)
{
	unsigned kinds = 0;
	time_t life = st->not_after - st->not_before;

	if (p->failed) {
		/* Once per failing streak, reminded after the interval. */
		if ((!t->failing || p->time - t->last[K_FAILURE] >= s->interval) &&
		    may_tell(s, t, K_FAILURE, p->time)) {
			kinds |= 1u << K_FAILURE;
			t->failing = true;
		}
		if (st->not_after != 0 && life > 0 && st->not_after - p->time < life / 3 &&
		    may_tell(s, t, K_EXPIRY, p->time))
			kinds |= 1u << K_EXPIRY;
		return kinds;
	}
	if (t->failing && (s->on & CS_NOTIFY_RECOVERY))
		kinds |= 1u << K_RECOVERY;
	t->failing = false;
	t->last[K_FAILURE] = 0;
	if (may_tell(s, t, K_RENEWAL, p->time))
		kinds |= 1u << K_RENEWAL;
	return kinds;
}

static void handle(struct cs_notify *n, const struct pending *p)
{
	struct cs_cert_status st;

	if (cs_pipeline_status_of(n->pl, p->cert, &st) < 0)
		return;
	for (size_t i = 0; i < n->cfg->n_notifies; i++) {
		const struct cs_cfg_notify *s = &n->cfg->notifies[i];
		struct told *t;
		unsigned kinds;
		if (!covers(s, p->cert) || (t = told_get(n, s->name, p->cert)) == NULL)
			continue;
		kinds = decide(s, t, p, &st);
		for (int k = 0; k < K_N; k++) {
			if (!(kinds & (1u << k)))
				continue;
			struct facts f = { .s = s, .st = &st, .kind = (enum kind)k, .host = n->host,
					   .error = p->failed ? (p->text ? p->text : st.last_error)
							      : NULL };
			fmt_time(st.retry_at != 0 ? st.retry_at : st.next_renewal, f.next,
				 sizeof(f.next));
			fmt_time(st.not_after, f.not_after, sizeof(f.not_after));
			snprintf(f.failures, sizeof(f.failures), "%d", st.failures);
			tell(n, &f);
		}
	}
}

static void on_timer(uv_timer_t *h)
{
	struct cs_notify *n = h->data;
	struct pending *p = n->head;

	n->head = NULL;
	n->tail = &n->head;
	while (p != NULL) {
		struct pending *next = p->next;
		if (n->pl != NULL && n->cfg != NULL)
			handle(n, p);
		free(p->text);
		free(p);
		p = next;
	}
}

/* The pipeline's subscriber: queues the renewals that ended, for the timer. */
static void on_event(void *arg, const struct cs_event *ev)
{
	struct cs_notify *n = arg;
	struct pending *p;
	bool failed = ev->type == CS_EVENT_FAILED || ev->type == CS_EVENT_ROLLED_BACK;

	if ((!failed && ev->type != CS_EVENT_RENEWED) || n->cfg == NULL || n->cfg->n_notifies == 0)
		return;
	if ((p = calloc(1, sizeof(*p) + strlen(ev->cert) + 1)) == NULL)
		return;
	strcpy(p->cert, ev->cert);
	p->failed = failed;
	p->time = ev->time;
	p->text = ev->text != NULL ? strdup(ev->text) : NULL;
	*n->tail = p;
	n->tail = &p->next;
	uv_timer_start(&n->timer, on_timer, 0, 0);
}

/* ---- life ---------------------------------------------------------------- */

struct cs_notify *cs_notify_new(uv_loop_t *loop, const struct cs_config *cfg)
{
	struct cs_notify *n = calloc(1, sizeof(*n));

	if (n == NULL)
		return NULL;
	n->loop = loop;
	n->cfg = cfg;
	n->tail = &n->head;
	if (gethostname(n->host, sizeof(n->host) - 1) < 0 || n->host[0] == '\0')
		snprintf(n->host, sizeof(n->host), "localhost");
	uv_timer_init(loop, &n->timer);
	n->timer.data = n;
	return n;
}

int cs_notify_attach(struct cs_notify *n, struct cs_pipeline *pl)
{
	n->pl = pl;
	return cs_pipeline_subscribe(pl, on_event, n);
}

void cs_notify_apply(struct cs_notify *n, const struct cs_config *cfg)
{
	if (n != NULL)
		n->cfg = cfg;
}

static void on_closed(uv_handle_t *h)
{
	struct cs_notify *n = h->data;
	struct pending *p = n->head;

	while (p != NULL) {
		struct pending *next = p->next;
		free(p->text);
		free(p);
		p = next;
	}
	for (size_t b = 0; b < n->told.nb; b++)
		while (!SLIST_EMPTY(&n->told.b[b])) {
			struct cs_htab_node *x = SLIST_FIRST(&n->told.b[b]);
			SLIST_REMOVE_HEAD(&n->told.b[b], link);
			free(cs_htab_entry(x, struct told, node));
		}
	cs_htab_clear(&n->told);
	free(n);
}

void cs_notify_close(struct cs_notify *n)
{
	if (n == NULL)
		return;
	if (n->pl != NULL)
		cs_pipeline_unsubscribe(n->pl, on_event, n);
	n->pl = NULL;
	n->cfg = NULL;
	uv_timer_stop(&n->timer);
	uv_close((uv_handle_t *)&n->timer, on_closed);
}
