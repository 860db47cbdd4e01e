/*
 * certsyncd - the certsync agent: parses the command line, loads the
 * configuration, sets up logging and runs the event loop.
 */
#include "cs_agent.h"
#include "cs_config.h"
#include "cs_early.h"
#include "cs_journal.h"
#include "cs_lock.h"
#include "cs_log.h"
#include "cs_netproc.h"
#include "np_child.h"

#include <curl/curl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

static void usage(FILE *out)
{
	fprintf(out,
		"usage: certsyncd [-c FILE] [-f] [--once] [--check-config] [--log-level LEVEL]\n"
		"\n"
		"  -c, --config FILE    configuration file (default %s)\n"
		"  -f, --foreground     stay in the foreground and log to stderr (run by\n"
		"                       systemd, with or without -f: to the journal)\n"
		"      --once           one full pass (examine, renew or repair what is due,\n"
		"                       deploy, reload), a summary line, then exit: 0 all\n"
		"                       well, 1 something failed, 2 configuration error\n"
		"      --check-config   report every error in the configuration and exit\n"
		"                       (0: valid, 2: errors)\n"
		"      --log-level L    error, warning, notice, info (default) or debug\n"
		"  -h, --help           this text\n"
		"      --version        the version\n"
		"\n"
		"Signals: SIGTERM/SIGINT stop, SIGHUP re-reads the configuration.\n"
		"See certsyncd(8) and certsync.conf(5).\n",
		CS_DEFAULT_CONFIG);
}

enum { OPT_ONCE = 256, OPT_CHECK, OPT_VERSION, OPT_LOGLEVEL };

static const struct option long_opts[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "foreground", no_argument, NULL, 'f' },
	{ "once", no_argument, NULL, OPT_ONCE },
	{ "check-config", no_argument, NULL, OPT_CHECK },
	{ "log-level", required_argument, NULL, OPT_LOGLEVEL },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

static int check_config(const char *path)
{
	struct cs_cfg_errors errs;
	struct cs_config *cfg = cs_config_load(path, &errs);

	if (cfg == NULL) {
		for (size_t i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.v[i]);
		fprintf(stderr, "%s: %zu error(s)\n", path, errs.n);
		cs_config_errors_free(&errs);
		return 2;
	}
	for (size_t i = 0; i < cfg->warnings.n; i++)
		fprintf(stderr, "warning: %s\n", cfg->warnings.v[i]);
	printf("%s: configuration OK (%zu file(s): %zu cert(s), %zu issuer(s), %zu capath(s), "
	       "%zu clientcerts, %zu sni, %zu reloader(s))\n",
	       path, cfg->files.n, cfg->n_certs, cfg->n_issuers, cfg->n_capaths,
	       cfg->n_clientcerts, cfg->n_snis, cfg->n_reloads);
	cs_config_free(cfg);
	return 0;
}

/*
 * Privilege separation: the acme issuers' network side and the verify probes
 * run in netproc, this binary run again (cs_netproc.h), rooted in
 * STATE_DIR/netproc.
 */
static void enable_netproc(const char *state_dir)
{
	cs_netproc_enable("/proc/self/exe", NULL, state_dir);
}

/*
 * certsyncd -f with the socket up before the configuration is read (see
 * cs_agent_start_reading). Returns the exit status; frees e.
 */
static int run_reading(const char *config, struct cs_early *e, bool keep_log_level)
{
	char lock_err[PATH_MAX + 256];
	struct cs_agent *agent;
	uv_loop_t loop;
	int rc, status;

	/* One agent per state_dir, before the socket is touched. */
	if (cs_lock_state_dir(e->state_dir, lock_err, sizeof(lock_err)) < 0) {
		cs_err("%s", lock_err);
		cs_early_clear(e);
		return 1;
	}
	enable_netproc(e->state_dir);
	if ((rc = uv_loop_init(&loop)) < 0) {
		cs_err("cannot create the event loop: %s", uv_strerror(rc));
		cs_early_clear(e);
		return 1;
	}
	if ((agent = cs_agent_new(&loop, config, NULL)) == NULL) {
		cs_err("out of memory");
		cs_early_clear(e);
		uv_loop_close(&loop);
		return 1;
	}
	rc = cs_agent_start_reading(agent, e, keep_log_level);
	cs_early_clear(e);
	if (rc < 0) {
		cs_agent_stop(agent);
		uv_run(&loop, UV_RUN_DEFAULT);
		cs_agent_free(agent);
		uv_loop_close(&loop);
		return 1;
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	status = cs_agent_exit_status(agent);
	cs_agent_free(agent);
	if (uv_loop_close(&loop) != 0)
		cs_warn("event loop closed with handles still open");
	if (status != 2)
		cs_notice("certsyncd stopped");
	return status;
}

/* The command line. */
struct args {
	const char *config;
	bool foreground, once, check;
	int log_level; /* -1: not given */
};

/* Reads argv into a; returns -1 to go on, else the exit status (help, version, bad usage). */
static int parse_args(int argc, char **argv, struct args *a)
{
	int c;

	*a = (struct args){ .config = CS_DEFAULT_CONFIG, .log_level = -1 };
	while ((c = getopt_long(argc, argv, "c:fh", long_opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			a->config = optarg;
			break;
		case 'f':
			a->foreground = true;
			break;
		case OPT_ONCE:
			a->once = true;
			break;
		case OPT_CHECK:
			a->check = true;
			break;
		case OPT_LOGLEVEL:
			a->log_level = cs_log_level_parse(optarg);
			if (a->log_level < 0) {
				fprintf(stderr, "certsyncd: --log-level: '%s' is not one of error, "
						"warning, notice, info, debug\n",
					optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		case OPT_VERSION:
			printf("certsyncd %s\n", CS_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "certsyncd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	return -1;
}

/*
 * Process-wide setup, once, before any thread. libuv writes with write(): a
 * status socket client that hangs up before its answer would otherwise kill
 * the agent with SIGPIPE (children started with uv_spawn get the default
 * disposition back). libcurl (the acme issuer's cs_http) is initialised here
 * and cleaned up at exit. Returns 0 or -1 (said on stderr).
 */
static int process_setup(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "certsyncd: libcurl cannot be initialised\n");
		return -1;
	}
	atexit(curl_global_cleanup);
	return 0;
}

/* The whole configuration, its errors and warnings logged; NULL when it has errors. */
static struct cs_config *load_config(const struct args *a)
{
	struct cs_cfg_errors errs;
	struct cs_config *cfg = cs_config_load(a->config, &errs);

	if (cfg == NULL) {
		for (size_t i = 0; i < errs.n; i++)
			cs_err("%s", errs.v[i]);
		cs_err("%s: %zu error(s); not starting", a->config, errs.n);
		cs_config_errors_free(&errs);
		return NULL;
	}
	if (a->log_level < 0)
		cs_log_set_level((enum cs_log_level)cfg->agent.log_level);
	for (size_t i = 0; i < cfg->warnings.n; i++)
		cs_warn("%s", cfg->warnings.v[i]);
	return cfg;
}

/*
 * What comes before the loop: the state_dir lock, the descriptor limit, and
 * detaching. Returns 0, or -1 (logged).
 */
static int prepare(const struct args *a, const struct cs_config *cfg)
{
	/*
	 * One agent per state_dir, taken before detaching so that a refusal
	 * reaches the terminal; the descriptor stays open (and locked) until
	 * exit, through daemon()'s fork, and is never closed explicitly.
	 */
	char lock_err[PATH_MAX + 256];
	int lock_fd = cs_lock_state_dir(cfg->agent.state_dir, lock_err, sizeof(lock_err));
	if (lock_fd < 0) {
		cs_err("%s", lock_err);
		return -1;
	}
	enable_netproc(cfg->agent.state_dir);

	/*
	 * Descriptors: the soft limit up to the hard one (the default soft 1024
	 * is less than the status socket's clients, renewals and watches need).
	 */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rlim_t want = rl.rlim_max;
		rl.rlim_cur = want;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			cs_warn("cannot raise the limit of open files to %llu: %m",
				(unsigned long long)want);
	}

	if (!a->foreground && daemon(0, 0) < 0) {
		cs_err("cannot detach from the terminal: %m");
		return -1;
	}
	if (!a->foreground && cs_lock_write_pid(cfg->agent.state_dir) < 0)
		cs_warn("cannot write PID %ld into %s/%s: %m", (long)getpid(),
			cfg->agent.state_dir, CS_LOCK_FILE);
	return 0;
}

/* Runs the agent over cfg (which it takes) until it stops; returns the exit status. */
static int run_agent(const struct args *a, struct cs_config *cfg)
{
	uv_loop_t loop;
	int rc = uv_loop_init(&loop);
	if (rc < 0) {
		cs_err("cannot create the event loop: %s", uv_strerror(rc));
		cs_config_free(cfg);
		return 1;
	}
	struct cs_agent *agent = cs_agent_new(&loop, a->config, cfg);
	if (agent == NULL) {
		cs_err("out of memory");
		cs_config_free(cfg);
		uv_loop_close(&loop);
		return 1;
	}
	if (cs_agent_start(agent, a->once) < 0) {
		cs_agent_stop(agent);
		uv_run(&loop, UV_RUN_DEFAULT);
		cs_agent_free(agent);
		uv_loop_close(&loop);
		return 1;
	}
	cs_notice("certsyncd %s started%s", CS_VERSION, a->once ? " (one pass)" : "");
	uv_run(&loop, UV_RUN_DEFAULT);
	int status = cs_agent_exit_status(agent);
	cs_agent_free(agent);
	if (uv_loop_close(&loop) != 0)
		cs_warn("event loop closed with handles still open");
	cs_notice("certsyncd stopped");
	return status;
}

int main(int argc, char **argv)
{
	struct args a;
	int rc;

	/* The network process: certsyncd started by itself (cs_netproc.c), nothing else. */
	if (argc > 1 && strcmp(argv[1], "--netproc") == 0)
		return np_child_main(argc, argv);
	rc = parse_args(argc, argv, &a);
	if (rc >= 0)
		return rc;
	if (a.check)
		return check_config(a.config);
	if (process_setup() < 0)
		return 1;

	/* --once is for scripts and terminals: it always logs to stderr. */
	if (a.once)
		a.foreground = true;
	/* The journal when systemd runs us (cs_journal.h), else stderr or syslog. */
	cs_journal_log_open("certsyncd", a.foreground,
			    a.log_level >= 0 ? (enum cs_log_level)a.log_level : CS_LOG_INFO);

	/*
	 * In the foreground (as under systemd) the status socket comes first:
	 * it answers "starting" while thousands of drop-ins are read.
	 */
	struct cs_early early;
	if (a.foreground && !a.once && cs_early_read(a.config, &early) == 0)
		return run_reading(a.config, &early, a.log_level >= 0);

	struct cs_config *cfg = load_config(&a);
	if (cfg == NULL)
		return 2;
	if (prepare(&a, cfg) < 0) {
		cs_config_free(cfg);
		return 1;
	}
	return run_agent(&a, cfg);
}
