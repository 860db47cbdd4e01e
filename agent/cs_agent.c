/*
 * cs_agent - the running agent: signals, configuration reloads and service
 * manager notifications around the work of the pipeline. See cs_agent.h.
 */
#include "cs_agent.h"
#include "cs_notify.h"
#include "cs_ctlsock.h"
#include "cs_events.h"
#include "cs_early.h"
#include "cs_journal.h"
#include "cs_lock.h"
#include "cs_log.h"
#include "cs_pipeline.h"
#include "cs_sweep.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#ifdef CS_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

struct cs_agent {
	uv_loop_t *loop;
	char *config_path;
	struct cs_config *cfg; /* the newest configuration handed to the pipeline */
	struct cs_pipeline *pl;
	struct cs_ctlsock *sock; /* status socket and metrics file */
	struct cs_notify *notify; /* the [notify] sections */
	uv_signal_t sig_term, sig_int, sig_hup;
	bool started;
	bool stopping;
	bool once;
	int exit_status;

	/* cs_agent_start_reading: the configuration read on the work queue. */
	uv_work_t read_req;
	bool reading, reread, keep_log_level;
	char *locked_dir; /* the state_dir locked before the read */
	struct cs_config *read_cfg;
	struct cs_cfg_errors read_errs;
	int swept;
};

void cs_agent_notify(const char *state)
{
#ifdef CS_HAVE_SYSTEMD
	if (getenv("NOTIFY_SOCKET") != NULL)
		sd_notify(0, state);
#else
	(void)state;
#endif
}

static void log_summary(const struct cs_agent *a)
{
	const struct cs_config *c = a->cfg;

	cs_info("configuration %s: %zu cert(s), %zu issuer(s), %zu capath(s), "
		"%zu clientcerts map(s), %zu sni table(s), %zu reloader(s)",
		a->config_path, c->n_certs, c->n_issuers, c->n_capaths, c->n_clientcerts,
		c->n_snis, c->n_reloads);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct cs_agent *a = h->data;

	if (signum == SIGHUP) {
		if (a->reading) {
			/* The read under way may predate the change: read again after it. */
			a->reread = true;
			return;
		}
		cs_agent_reload(a);
		return;
	}
	cs_notice("%s received, stopping", strsignal(signum));
	cs_agent_stop(a);
}

struct cs_agent *cs_agent_new(uv_loop_t *loop, const char *config_path, struct cs_config *cfg)
{
	struct cs_agent *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return NULL;
	a->config_path = strdup(config_path);
	if (a->config_path == NULL) {
		free(a);
		return NULL;
	}
	a->loop = loop;
	a->cfg = cfg;
	return a;
}

static int start_signal(struct cs_agent *a, uv_signal_t *h, int signum)
{
	int rc = uv_signal_init(a->loop, h);

	if (rc < 0)
		return rc;
	h->data = a;
	return uv_signal_start(h, on_signal, signum);
}

static void on_pass_done(void *arg, int failures)
{
	struct cs_agent *a = arg;

	a->exit_status = failures > 0 ? 1 : 0;
	cs_agent_stop(a);
}

/* The pipeline no longer uses old: free it (it may be the newest one, refused while stopping). */
static void release_config(void *arg, const struct cs_config *old)
{
	struct cs_agent *a = arg;

	if (old == a->cfg)
		a->cfg = NULL;
	cs_config_free((struct cs_config *)old);
}

/*
 * The work queue's threads (key generation, signing, examinations, file
 * writes) run CS_WORKER_NICE below the loop's priority: when renewals keep
 * both cores busy, the loop (status socket, metrics, timers) still gets the
 * CPU as soon as it has something to do. One job per thread of the pool
 * (libuv's UV_THREADPOOL_SIZE, default 4) lowers its own thread, each
 * waiting for the others so that no thread takes two; a pool of another size
 * than read here only means a second's wait, never a deadlock.
 */
#define CS_WORKER_NICE 10
#define CS_WORKERS_MAX 1024 /* libuv's limit */

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	size_t want, lowered;
	uv_work_t reqs[CS_WORKERS_MAX];
} workers = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static void lower_work(uv_work_t *req)
{
	struct timespec until;
	int base;

	(void)req;
	errno = 0;
	base = getpriority(PRIO_PROCESS, 0); /* this thread's, inherited from the loop's */
	if (errno == 0) {
		int nice = base + CS_WORKER_NICE > 19 ? 19 : base + CS_WORKER_NICE;
		/* On Linux PRIO_PROCESS with a thread id sets that thread only. */
		if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice) < 0)
			cs_debug("cannot lower a worker thread's priority: %s", strerror(errno));
	}
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 1;
	pthread_mutex_lock(&workers.mu);
	workers.lowered++;
	pthread_cond_broadcast(&workers.cv);
	while (workers.lowered < workers.want)
		if (pthread_cond_timedwait(&workers.cv, &workers.mu, &until) != 0)
			break;
	pthread_mutex_unlock(&workers.mu);
}

static void lower_done(uv_work_t *req, int status)
{
	(void)req;
	(void)status;
}

/* Queues the jobs that lower the work queue's threads (once per process). */
static void lower_workers(uv_loop_t *loop)
{
	const char *env = getenv("UV_THREADPOOL_SIZE");
	long n = env != NULL ? strtol(env, NULL, 10) : 4;

	if (workers.want > 0)
		return;
	if (n < 1)
		n = 1;
	if (n > CS_WORKERS_MAX)
		n = CS_WORKERS_MAX;
	workers.want = (size_t)n;
	for (long i = 0; i < n; i++)
		if (uv_queue_work(loop, &workers.reqs[i], lower_work, lower_done) < 0)
			break;
}

static int start_signals(struct cs_agent *a)
{
	int rc;

	if (a->started)
		return 0;
	if ((rc = start_signal(a, &a->sig_term, SIGTERM)) < 0 ||
	    (rc = start_signal(a, &a->sig_int, SIGINT)) < 0 ||
	    (rc = start_signal(a, &a->sig_hup, SIGHUP)) < 0) {
		cs_err("cannot install signal handlers: %s", uv_strerror(rc));
		return rc;
	}
	a->started = true;
	lower_workers(a->loop);
	return 0;
}

/* Builds the pipeline on a->cfg (swept already) and starts it. */
static int run(struct cs_agent *a)
{
	char err[512];

	a->pl = cs_pipeline_new(a->loop, a->cfg, err, sizeof(err));
	if (a->pl == NULL) {
		cs_err("%s", err);
		return -ENOMEM;
	}
	/*
	 * One debug line per event, or with the journal one structured entry
	 * (cs_journal.h); the status socket subscribes next (counters).
	 */
	cs_journal_names(a->cfg);
	cs_pipeline_subscribe(a->pl,
			      cs_log_get_sink() == CS_LOG_JOURNAL ? cs_journal_event : cs_events_log,
			      NULL);
	/* Messages for people ([notify]): not for a pass, whose summary is its own message. */
	if (!a->once && a->notify == NULL && (a->notify = cs_notify_new(a->loop, a->cfg)) != NULL)
		cs_notify_attach(a->notify, a->pl);
	if (a->sock != NULL)
		cs_ctlsock_attach_agent(a->sock, a->cfg, a->pl);
	else
		a->sock = cs_ctlsock_for_agent(a->loop, a->cfg, a->pl, !a->once);
	cs_pipeline_start(a->pl, a->once, on_pass_done, a);
	cs_agent_notify("READY=1\nSTATUS=running");
	return 0;
}

int cs_agent_start(struct cs_agent *a, bool once)
{
	int rc;

	a->once = once;
	/* Until a pass finishes, a stop (SIGTERM) means it did not. */
	a->exit_status = once ? 1 : 0;
	if ((rc = start_signals(a)) < 0)
		return rc;
	log_summary(a);
	/* No writer runs yet (and no other agent: certsyncd holds the state_dir lock). */
	cs_sweep_all(a->cfg);
	return run(a);
}

/* On the work queue: the configuration, and the sweep that needs it. */
static void read_work(uv_work_t *req)
{
	struct cs_agent *a = req->data;

	a->read_cfg = cs_config_load(a->config_path, &a->read_errs);
	/* No writer runs yet: the pipeline does not exist (and the state_dir is locked). */
	if (a->read_cfg != NULL && a->locked_dir != NULL &&
	    strcmp(a->read_cfg->agent.state_dir, a->locked_dir) == 0)
		a->swept = cs_sweep_all(a->read_cfg);
	else
		a->swept = -1;
}

static void read_done(uv_work_t *req, int status)
{
	struct cs_agent *a = req->data;
	struct cs_config *cfg = a->read_cfg;
	char err[PATH_MAX + 256];

	(void)status;
	a->reading = false;
	a->read_cfg = NULL;
	if (cfg == NULL) {
		for (size_t i = 0; i < a->read_errs.n; i++)
			cs_err("%s", a->read_errs.v[i]);
		cs_err("%s: %zu error(s); not starting", a->config_path, a->read_errs.n);
		cs_config_errors_free(&a->read_errs);
		a->exit_status = 2;
		cs_agent_stop(a);
		return;
	}
	if (a->stopping) {
		cs_config_free(cfg);
		return;
	}
	if (!a->keep_log_level)
		cs_log_set_level((enum cs_log_level)cfg->agent.log_level);
	for (size_t i = 0; i < cfg->warnings.n; i++)
		cs_warn("%s", cfg->warnings.v[i]);
	a->cfg = cfg;
	if (a->swept < 0) {
		/* The early read named another state_dir: lock (and sweep) the real one. */
		if (cs_lock_state_dir(cfg->agent.state_dir, err, sizeof(err)) < 0) {
			cs_err("%s", err);
			a->exit_status = 1;
			cs_agent_stop(a);
			return;
		}
		cs_sweep_all(cfg);
	}
	log_summary(a);
	if (run(a) < 0) {
		a->exit_status = 1;
		cs_agent_stop(a);
		return;
	}
	cs_notice("certsyncd %s started", CS_VERSION);
	if (a->reread)
		cs_agent_reload(a);
}

int cs_agent_start_reading(struct cs_agent *a, const struct cs_early *e, bool keep_log_level)
{
	int rc;

	assert(a->cfg == NULL);
	a->once = false;
	a->exit_status = 0;
	a->keep_log_level = keep_log_level;
	if ((a->locked_dir = strdup(e->state_dir)) == NULL)
		return -ENOMEM;
	if ((rc = start_signals(a)) < 0)
		return rc;
	a->sock = cs_ctlsock_for_start(a->loop, e);
	a->read_req.data = a;
	if ((rc = uv_queue_work(a->loop, &a->read_req, read_work, read_done)) < 0) {
		cs_err("cannot read the configuration: %s", uv_strerror(rc));
		return rc;
	}
	a->reading = true;
	return 0;
}

int cs_agent_reload(struct cs_agent *a)
{
	struct cs_cfg_errors errs;
	struct cs_config *cfg;

	cs_agent_notify("RELOADING=1");
	cs_notice("SIGHUP: re-reading %s", a->config_path);
	cfg = cs_config_load(a->config_path, &errs);
	if (cfg == NULL) {
		for (size_t i = 0; i < errs.n; i++)
			cs_err("%s", errs.v[i]);
		cs_err("%zu error(s) in the new configuration; keeping the previous one",
		       errs.n);
		cs_config_errors_free(&errs);
		cs_agent_notify("READY=1\nSTATUS=running (configuration reload failed)");
		return -EINVAL;
	}
	for (size_t i = 0; i < cfg->warnings.n; i++)
		cs_warn("%s", cfg->warnings.v[i]);
	if (a->pl != NULL && !a->stopping) {
		a->cfg = cfg;
		cs_journal_names(cfg);
		cs_pipeline_apply(a->pl, cfg, release_config, a);
		cs_ctlsock_apply_config(a->sock, cfg, !a->once);
		cs_notify_apply(a->notify, cfg);
	} else {
		cs_config_free(a->cfg);
		a->cfg = cfg;
	}
	cs_notice("configuration reloaded");
	log_summary(a);
	cs_agent_notify("READY=1\nSTATUS=running");
	return 0;
}

static void on_close(uv_handle_t *h)
{
	(void)h;
}

static void on_pipeline_closed(void *arg)
{
	struct cs_agent *a = arg;

	a->pl = NULL;
}

void cs_agent_stop(struct cs_agent *a)
{
	if (a->stopping)
		return;
	a->stopping = true;
	cs_agent_notify("STOPPING=1");
	if (a->started) {
		uv_close((uv_handle_t *)&a->sig_term, on_close);
		uv_close((uv_handle_t *)&a->sig_int, on_close);
		uv_close((uv_handle_t *)&a->sig_hup, on_close);
	}
	cs_ctlsock_close(a->sock, NULL, NULL);
	a->sock = NULL;
	cs_notify_close(a->notify);
	a->notify = NULL;
	if (a->pl != NULL)
		cs_pipeline_close(a->pl, on_pipeline_closed, a);
}

int cs_agent_exit_status(const struct cs_agent *a)
{
	return a->exit_status;
}

void cs_agent_free(struct cs_agent *a)
{
	if (a == NULL)
		return;
	cs_config_free(a->cfg);
	free(a->locked_dir);
	free(a->config_path);
	free(a);
}
