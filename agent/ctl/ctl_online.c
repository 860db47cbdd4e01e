/*
 * ctl_online - certsyncctl commands that talk to a running certsyncd over its
 * status socket: status, list, show, renew, rehash, reload, revoke, metrics.
 *
 * One connection per command; requests and answers are single JSON lines
 * (see cs_proto.h), sent and read by ctl_online_conn.c. Tables for
 * people by default (colour only on a terminal), the agent's JSON as it
 * came with --json.
 *
 * Exit status: 0 all well; 1 the agent refused or could not do it, or a cert
 * shown is failed, expired or missing; 2 bad usage; 3 the agent cannot be
 * reached.
 */
#include "ctl.h"
#include "ctl_online_int.h"
#include "cs_proto.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Global options, set by certsyncctl.c (or by -s/-c/--json after the command). */
const char *ctl_socket_path;
bool ctl_json;

const struct ctl_cmd ctl_online_cmds[] = {
	{ "status", ctl_status_main, "status", "the agent: version, uptime, certs by state, problems" },
	{ "list", ctl_list_main, "list", "every cert: state, days left, expiry, next renewal" },
	{ "show", ctl_show_main, "show NAME", "everything the agent knows about one cert" },
	{ "renew", ctl_renew_main, "renew NAME|all [--force] [--wait [--timeout S]]",
	  "renew a cert now (when due, or always with --force)" },
	{ "rehash", ctl_rehash_main, "rehash [NAME]",
	  "full pass of a [capath]/[clientcerts] (all without NAME)" },
	{ "reload", ctl_reload_main, "reload NAME", "reload the services of a cert" },
	{ "revoke", ctl_revoke_main, "revoke NAME [--reason R]",
	  "revoke the deployed certificate of a cert and issue a new one" },
	{ "adopt", ctl_adopt_main, "adopt NAME",
	  "take the files deployed for a cert as they are (someone else's certificate too)" },
	{ "dane", ctl_dane_main, "dane NAME",
	  "DANE: the TLSA records published and wanted, the resolver's view, what comes next" },
	{ "metrics", ctl_metrics_main, "metrics", "the Prometheus metrics (text format)" },
	{ NULL, NULL, NULL, NULL },
};

/* ---- presentation --------------------------------------------------------- */

static bool use_colour(void)
{
	const char *term = getenv("TERM");

	return isatty(STDOUT_FILENO) && getenv("NO_COLOR") == NULL && term != NULL &&
	       strcmp(term, "dumb") != 0;
}

static const char *state_colour(const char *state)
{
	if (state == NULL)
		return "";
	if (strcmp(state, "valid") == 0)
		return "\033[32m";
	if (strcmp(state, "due") == 0 || strcmp(state, "renewing") == 0)
		return "\033[33m";
	if (strcmp(state, "unknown") == 0)
		return "";
	return "\033[1;31m";
}

static bool bad_state(const char *state)
{
	return state != NULL && (strcmp(state, "failed") == 0 || strcmp(state, "expired") == 0 ||
				 strcmp(state, "missing") == 0);
}

static const char *jstr(json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : dflt;
}

static time_t parse_time(const char *s)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (s == NULL || strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm) == NULL)
		return 0;
	return timegm(&tm);
}

/* "2026-11-23 16:47" from an answer's time, or "-". */
static const char *short_time(const char *iso, char *buf, size_t len)
{
	time_t t = parse_time(iso);
	struct tm tm;

	if (t == 0)
		return "-";
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M", &tm);
	return buf;
}

/* "[#####-----]": the share of the lifetime left. */
static void days_bar(json_t *cert, char *out, size_t len)
{
	time_t nb = parse_time(jstr(cert, CS_PROTO_K_NOT_BEFORE, NULL));
	time_t na = parse_time(jstr(cert, CS_PROTO_K_NOT_AFTER, NULL));
	time_t now = time(NULL);
	int filled = 0;

	if (na == 0 || nb == 0 || na <= nb) {
		snprintf(out, len, "%s", "");
		return;
	}
	double share = (double)(na - now) / (double)(na - nb);
	if (share < 0)
		share = 0;
	if (share > 1)
		share = 1;
	filled = (int)(share * 10 + 0.5);
	if (filled < 0 || filled > 10)
		filled = 10;
	static const char hashes[] = "##########", dashes[] = "----------";

	snprintf(out, len, "[%s%s]", hashes + (10 - filled), dashes + filled);
}

static void days_text(json_t *cert, char *out, size_t len)
{
	json_t *d = json_object_get(cert, CS_PROTO_K_DAYS_LEFT);
	time_t na = parse_time(jstr(cert, CS_PROTO_K_NOT_AFTER, NULL));

	if (!json_is_integer(d)) {
		snprintf(out, len, "-");
		return;
	}
	if (json_integer_value(d) == 0 && na > time(NULL))
		snprintf(out, len, "%lldh", (long long)(na - time(NULL)) / 3600);
	else
		snprintf(out, len, "%lld", (long long)json_integer_value(d));
}

static void print_list(json_t *certs)
{
	bool colour = use_colour();
	size_t wname = 4, wstate = 5, i;
	json_t *c;
	char bar[32], days[32], t1[32], t2[32];

	json_array_foreach(certs, i, c) {
		size_t n = strlen(jstr(c, CS_PROTO_K_NAME, ""));
		size_t s = strlen(jstr(c, CS_PROTO_K_STATE, ""));
		if (n > wname)
			wname = n;
		if (s > wstate)
			wstate = s;
	}
	printf("%-*s  %-*s  %5s %-12s  %-16s  %-16s  %4s  %s\n", (int)wname, "NAME", (int)wstate,
	       "STATE", "DAYS", "", "NOT AFTER", "NEXT RENEWAL", "FAIL", "LAST ERROR");
	json_array_foreach(certs, i, c) {
		const char *state = jstr(c, CS_PROTO_K_STATE, "?");
		const char *err = jstr(c, CS_PROTO_K_LAST_ERROR, "");
		days_bar(c, bar, sizeof(bar));
		days_text(c, days, sizeof(days));
		printf("%-*s  %s%-*s%s  %5s %-12s  %-16s  %-16s  %4lld  %.60s\n", (int)wname,
		       jstr(c, CS_PROTO_K_NAME, "?"), colour ? state_colour(state) : "",
		       (int)wstate, state, colour ? "\033[0m" : "", days, bar,
		       short_time(jstr(c, CS_PROTO_K_NOT_AFTER, NULL), t1, sizeof(t1)),
		       short_time(jstr(c, CS_PROTO_K_NEXT_RENEWAL, NULL), t2, sizeof(t2)),
		       (long long)json_integer_value(json_object_get(c, CS_PROTO_K_FAILURES)), err);
	}
}

static void print_field(const char *label, const char *value)
{
	printf("  %-20s %s\n", label, value != NULL ? value : "-");
}

/*
 * show's issuer lines: the list when there are several, who issued the
 * deployed certificate and why not the first, the issuer a failing renewal
 * moved on to.
 */
static void print_issuers(json_t *c)
{
	json_t *a = json_object_get(c, CS_PROTO_K_ISSUERS);
	char buf[2048];
	size_t len = 0;

	if (json_array_size(a) > 1) {
		buf[0] = '\0';
		for (size_t i = 0; i < json_array_size(a) && len < sizeof(buf); i++)
			len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s",
						i ? ", " : "",
						json_string_value(json_array_get(a, i)) ?: "?");
		print_field("issuers", buf);
	}
	print_field("issued by", jstr(c, CS_PROTO_K_ISSUED_BY, NULL));
	if (json_array_size(a) > 1)
		print_field("fallback", jstr(c, CS_PROTO_K_FALLBACK, NULL));
	if (json_integer_value(json_object_get(c, CS_PROTO_K_FALLBACKS)) > 0) {
		snprintf(buf, sizeof(buf), "%lld",
			 (long long)json_integer_value(json_object_get(c, CS_PROTO_K_FALLBACKS)));
		print_field("fallbacks", buf);
	}
	if (jstr(c, CS_PROTO_K_TRYING, NULL) != NULL) {
		snprintf(buf, sizeof(buf), "%s (%s)", jstr(c, CS_PROTO_K_TRYING, "?"),
			 jstr(c, CS_PROTO_K_TRYING_WHY, "no reason given"));
		print_field("next issuer", buf);
	}
}

/* The drift checks: the verdict, then one line per verify URL and name. */
static void print_served(json_t *c)
{
	json_t *served = json_object_get(c, CS_PROTO_K_SERVED), *v;
	char buf[1024];
	size_t i;

	if (!json_is_string(json_object_get(c, CS_PROTO_K_DRIFT)))
		return;
	print_field("served drift", jstr(c, CS_PROTO_K_DRIFT, "?"));
	json_array_foreach(served, i, v) {
		json_t *m = json_object_get(v, CS_PROTO_K_MATCH);
		const char *name = jstr(v, CS_PROTO_K_NAME, "");

		if (jstr(v, CS_PROTO_K_CHECKED, NULL) == NULL)
			snprintf(buf, sizeof(buf), "%s (name %s): not checked yet",
				 jstr(v, CS_PROTO_K_URL, "?"), name[0] ? name : "none");
		else if (json_is_true(m))
			snprintf(buf, sizeof(buf), "%s (name %s): deployed certificate, at %s",
				 jstr(v, CS_PROTO_K_URL, "?"), name[0] ? name : "none",
				 jstr(v, CS_PROTO_K_CHECKED, "?"));
		else if (json_is_false(m))
			snprintf(buf, sizeof(buf),
				 "%s (name %s): OTHER certificate sha256 %s, at %s",
				 jstr(v, CS_PROTO_K_URL, "?"), name[0] ? name : "none",
				 jstr(v, CS_PROTO_K_SHA256, "?"), jstr(v, CS_PROTO_K_CHECKED, "?"));
		else
			snprintf(buf, sizeof(buf), "%s (name %s): no answer (%s), at %s",
				 jstr(v, CS_PROTO_K_URL, "?"), name[0] ? name : "none",
				 jstr(v, CS_PROTO_K_ERROR, "no reason given"),
				 jstr(v, CS_PROTO_K_CHECKED, "?"));
		print_field(i == 0 ? "served" : "", buf);
	}
}

static void print_cert(json_t *c)
{
	bool colour = use_colour();
	const char *state = jstr(c, CS_PROTO_K_STATE, "?");
	char bar[32], days[32], buf[4096] = "";
	size_t i;
	json_t *n;

	printf("%s\n", jstr(c, CS_PROTO_K_NAME, "?"));
	printf("  %-20s %s%s%s\n", "state", colour ? state_colour(state) : "", state,
	       colour ? "\033[0m" : "");
	json_array_foreach(json_object_get(c, CS_PROTO_K_NAMES), i, n) {
		size_t used = strlen(buf);
		snprintf(buf + used, sizeof(buf) - used, "%s%s", i ? ", " : "",
			 json_string_value(n));
	}
	print_field("names", buf);
	if (jstr(c, CS_PROTO_K_STAGE, NULL) != NULL) {
		snprintf(buf, sizeof(buf), "%s since %s", jstr(c, CS_PROTO_K_STAGE, "?"),
			 jstr(c, CS_PROTO_K_STAGE_SINCE, "?"));
		print_field("stage", buf);
	}
	if (jstr(c, CS_PROTO_K_RETRY_AT, NULL) != NULL) {
		snprintf(buf, sizeof(buf), "%s (%s)", jstr(c, CS_PROTO_K_RETRY_AT, "?"),
			 jstr(c, CS_PROTO_K_RETRY_REASON, "no reason given"));
		print_field("next attempt", buf);
	}
	if (json_is_integer(json_object_get(c, CS_PROTO_K_PENDING_GENERATION))) {
		snprintf(buf, sizeof(buf), "%lld (issued, not yet deployed)",
			 (long long)json_integer_value(
				 json_object_get(c, CS_PROTO_K_PENDING_GENERATION)));
		print_field("pending generation", buf);
	}
	if (json_is_integer(json_object_get(c, CS_PROTO_K_ROLLBACK_GENERATION))) {
		snprintf(buf, sizeof(buf), "%lld",
			 (long long)json_integer_value(
				 json_object_get(c, CS_PROTO_K_ROLLBACK_GENERATION)));
		print_field("rollback generation", buf);
	}
	print_field("issuer", jstr(c, CS_PROTO_K_ISSUER, NULL));
	print_issuers(c);
	if (jstr(c, CS_PROTO_K_WARNING, NULL) != NULL)
		print_field("warning", jstr(c, CS_PROTO_K_WARNING, NULL));
	print_field("serial", jstr(c, CS_PROTO_K_SERIAL, NULL));
	print_field("sha256", jstr(c, CS_PROTO_K_SHA256, NULL));
	print_field("not before", jstr(c, CS_PROTO_K_NOT_BEFORE, NULL));
	print_field("not after", jstr(c, CS_PROTO_K_NOT_AFTER, NULL));
	days_bar(c, bar, sizeof(bar));
	days_text(c, days, sizeof(days));
	snprintf(buf, sizeof(buf), "%s %s", days, bar);
	print_field("days left", buf);
	snprintf(buf, sizeof(buf), "%s (%s)", jstr(c, CS_PROTO_K_NEXT_RENEWAL, "-"),
		 jstr(c, CS_PROTO_K_NEXT_RENEWAL_REASON, "no reason given"));
	print_field("next renewal", buf);
	print_field("last renewal", jstr(c, CS_PROTO_K_LAST_RENEWAL, "never"));
	snprintf(buf, sizeof(buf), "%lld",
		 (long long)json_integer_value(json_object_get(c, CS_PROTO_K_FAILURES)));
	print_field("failures", buf);
	print_field("last error", jstr(c, CS_PROTO_K_LAST_ERROR, NULL));
	print_field("last reload", jstr(c, CS_PROTO_K_LAST_RELOAD, NULL));
	print_field("last verify", jstr(c, CS_PROTO_K_LAST_VERIFY, NULL));
	ctl_dane_line(c);
	print_served(c);
	if (json_object_get(c, CS_PROTO_K_DEPLOYED) != NULL) {
		const char *why = jstr(c, CS_PROTO_K_DEPLOYED_REASON, NULL);
		snprintf(buf, sizeof(buf), "%s%s%s", jstr(c, CS_PROTO_K_DEPLOYED, "?"),
			 why ? ": " : "", why ? why : "");
		print_field("deployed files", buf);
	}
}

/* ---- commands ------------------------------------------------------------- */

enum { OPT_JSON = 256, OPT_FORCE, OPT_WAIT, OPT_ALL, OPT_TIMEOUT, OPT_REASON, OPT_HELP };

static const struct option online_opts[] = {
	{ "json", no_argument, NULL, OPT_JSON },
	{ "socket", required_argument, NULL, 's' },
	{ "config", required_argument, NULL, 'c' },
	{ "force", no_argument, NULL, OPT_FORCE },
	{ "wait", no_argument, NULL, OPT_WAIT },
	{ "all", no_argument, NULL, OPT_ALL },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "reason", required_argument, NULL, OPT_REASON },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

struct args {
	bool force, wait, all;
	long timeout;
	const char *reason; /* revoke --reason, or NULL */
	char *pos[4];
	int n_pos;
};

/*
 * Parses the options every online command shares and, with -c and no -s,
 * takes the socket path from the configuration; returns 0, EX_USAGE or -1
 * (help shown).
 */
static int parse(int argc, char **argv, const char *usage, int min_pos, int max_pos, struct args *a)
{
	int c;

	memset(a, 0, sizeof(*a));
	a->timeout = 600;
	optind = 1;
	while ((c = getopt_long(argc, argv, "s:c:h", online_opts, NULL)) != -1) {
		switch (c) {
		case OPT_JSON:
			ctl_json = true;
			break;
		case 's':
			ctl_socket_path = optarg;
			break;
		case 'c':
			ctl_config_path = optarg;
			break;
		case OPT_FORCE:
			a->force = true;
			break;
		case OPT_WAIT:
			a->wait = true;
			break;
		case OPT_ALL:
			a->all = true;
			break;
		case OPT_TIMEOUT: {
			char *end;
			a->timeout = strtol(optarg, &end, 10);
			if (*end != '\0' || a->timeout <= 0) {
				fprintf(stderr, "certsyncctl: --timeout wants seconds, not '%s'\n",
					optarg);
				return EX_USAGE;
			}
			break;
		}
		case OPT_REASON:
			a->reason = optarg;
			break;
		case 'h':
		case OPT_HELP:
			printf("usage: certsyncctl [-c CONFIG | -s SOCKET] [--json] %s\nSee certsyncctl(8).\n",
			       usage);
			return -1;
		default:
			fprintf(stderr, "usage: certsyncctl [-c CONFIG | -s SOCKET] [--json] %s\n", usage);
			return EX_USAGE;
		}
	}
	for (int i = optind; i < argc; i++) {
		if (a->n_pos >= max_pos || a->n_pos >= 4) {
			fprintf(stderr,
				"certsyncctl: unexpected argument '%s'\nusage: certsyncctl %s\n",
				argv[i], usage);
			return EX_USAGE;
		}
		a->pos[a->n_pos++] = argv[i];
	}
	if (a->n_pos < min_pos) {
		fprintf(stderr, "usage: certsyncctl [-c CONFIG | -s SOCKET] [--json] %s\n", usage);
		return EX_USAGE;
	}
	return ctl_config_socket();
}

/* The network process's line of status: running or not, restarts, violations (absent: none). */
static void print_netproc(json_t *np)
{
	if (!json_is_object(np))
		return;
	printf("netproc: %s, restarted %lld times, %lld protocol violations\n",
	       json_integer_value(json_object_get(np, CS_PROTO_K_PID)) > 0 ? "running" : "not running",
	       (long long)json_integer_value(json_object_get(np, CS_PROTO_K_RESTARTS)),
	       (long long)json_integer_value(json_object_get(np, CS_PROTO_K_VIOLATIONS)));
}

/* certsyncctl status; returns the exit status. */
int ctl_status_main(int argc, char **argv)
{
	struct args a;
	json_t *resp = NULL, *p;
	int rc = parse(argc, argv, "status", 0, 0, &a);
	size_t i;

	if (rc != 0)
		return rc < 0 ? 0 : rc;
	rc = ctl_online__simple("status", json_pack("{s:s}", CS_PROTO_K_CMD, CS_PROTO_CMD_STATUS),
				&resp);
	if (rc == 0) {
		json_t *states = json_object_get(resp, CS_PROTO_K_STATES);
		const char *k;
		json_t *v;
		char buf[1024] = "";
		long long up = json_integer_value(json_object_get(resp, CS_PROTO_K_UPTIME));
		json_object_foreach(states, k, v) {
			if (json_integer_value(v) == 0)
				continue;
			size_t used = strlen(buf);
			snprintf(buf + used, sizeof(buf) - used, "%s%lld %s", used ? ", " : "",
				 (long long)json_integer_value(v), k);
		}
		if (!ctl_json) {
			printf("certsyncd %s (pid %lld), up %lldd %lldh %lldm\n",
			       jstr(resp, CS_PROTO_K_VERSION, "?"),
			       (long long)json_integer_value(json_object_get(resp, CS_PROTO_K_PID)),
			       up / 86400, up % 86400 / 3600, up % 3600 / 60);
			if (json_is_string(json_object_get(resp, CS_PROTO_K_STARTING)))
				printf("starting: %s\n", jstr(resp, CS_PROTO_K_STARTING, "?"));
			print_netproc(json_object_get(resp, CS_PROTO_K_NETPROC));
			printf("certs: %lld%s%s%s\n",
			       (long long)json_integer_value(
				       json_object_get(resp, CS_PROTO_K_CERTS)),
			       buf[0] ? " (" : "", buf, buf[0] ? ")" : "");
			printf("next renewal: %s%s%s%s\n",
			       jstr(resp, CS_PROTO_K_NEXT_RENEWAL, "none"),
			       json_is_string(json_object_get(resp, CS_PROTO_K_NEXT_RENEWAL_CERT))
				       ? " ("
				       : "",
			       jstr(resp, CS_PROTO_K_NEXT_RENEWAL_CERT, ""),
			       json_is_string(json_object_get(resp, CS_PROTO_K_NEXT_RENEWAL_CERT))
				       ? ")"
				       : "");
		}
		json_array_foreach(json_object_get(resp, CS_PROTO_K_PROBLEMS), i, p) {
			if (!ctl_json)
				printf("problem: %s is %s (%lld failure(s)): %s\n",
				       jstr(p, CS_PROTO_K_NAME, "?"),
				       jstr(p, CS_PROTO_K_STATE, "?"),
				       (long long)json_integer_value(
					       json_object_get(p, CS_PROTO_K_FAILURES)),
				       jstr(p, CS_PROTO_K_LAST_ERROR, "no error recorded"));
			rc = EX_FAIL;
		}
		if (json_integer_value(json_object_get(resp, CS_PROTO_K_DRIFTED)) > 0) {
			if (!ctl_json)
				printf("problem: %lld cert(s) served other than deployed (e.g. %s; "
				       "see certsyncctl show)\n",
				       (long long)json_integer_value(
					       json_object_get(resp, CS_PROTO_K_DRIFTED)),
				       jstr(resp, CS_PROTO_K_DRIFTED_CERT, "?"));
			rc = EX_FAIL;
		}
		json_array_foreach(json_object_get(resp, CS_PROTO_K_CAPATH_PROBLEMS), i, p) {
			const char *file = jstr(p, CS_PROTO_K_FILE, "");
			if (!ctl_json)
				printf("problem: %s: %s%s%s\n", jstr(p, CS_PROTO_K_SECTION, "?"),
				       file, file[0] ? ": " : "", jstr(p, CS_PROTO_K_REASON, "?"));
			rc = EX_FAIL;
		}
	}
	json_decref(resp);
	return rc;
}

/* certsyncctl list; returns the exit status. */
int ctl_list_main(int argc, char **argv)
{
	struct args a;
	json_t *resp = NULL, *c;
	int rc = parse(argc, argv, "list", 0, 0, &a);
	size_t i;

	if (rc != 0)
		return rc < 0 ? 0 : rc;
	rc = ctl_online__simple("list", json_pack("{s:s}", CS_PROTO_K_CMD, CS_PROTO_CMD_LIST),
				&resp);
	if (rc == 0) {
		json_t *certs = json_object_get(resp, CS_PROTO_K_CERTS);
		if (!ctl_json)
			print_list(certs);
		json_array_foreach(certs, i, c)
			if (bad_state(jstr(c, CS_PROTO_K_STATE, NULL)))
				rc = EX_FAIL;
	}
	json_decref(resp);
	return rc;
}

int ctl_online__name_arg(int argc, char **argv, const char *usage, const char **name)
{
	struct args a;
	int rc = parse(argc, argv, usage, 1, 1, &a);

	*name = rc == 0 ? a.pos[0] : NULL;
	return rc;
}

/* certsyncctl show NAME; returns the exit status. */
int ctl_show_main(int argc, char **argv)
{
	struct args a;
	json_t *resp = NULL;
	int rc = parse(argc, argv, "show NAME", 1, 1, &a);

	if (rc != 0)
		return rc < 0 ? 0 : rc;
	rc = ctl_online__simple("show",
		    json_pack("{s:s,s:s}", CS_PROTO_K_CMD, CS_PROTO_CMD_SHOW, CS_PROTO_K_NAME,
			      a.pos[0]),
		    &resp);
	if (rc == 0) {
		json_t *c = json_object_get(resp, CS_PROTO_K_CERT);
		if (!ctl_json)
			print_cert(c);
		if (bad_state(jstr(c, CS_PROTO_K_STATE, NULL)))
			rc = EX_FAIL;
	}
	json_decref(resp);
	return rc;
}

/* What a renew result means for a person. */
static const char *renew_words(const char *res)
{
	static const struct {
		const char *result, *words;
	} w[] = {
		{ CS_PROTO_R_STARTED, "renewal started" },
		{ CS_PROTO_R_NOT_DUE, "not due (use --force to renew anyway)" },
		{ CS_PROTO_R_BUSY, "busy (a renewal, reload, revoke or check is in flight)" },
		{ "verified", "renewed, deployed, reloaded and verified" },
		{ "deployed", "renewed, deployed and reloaded (nothing to verify)" },
		{ "rolled_back", "rolled back" },
		{ "failed", "failed" },
		{ "abandoned", "abandoned (the agent stopped)" },
	};
	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
		if (strcmp(res, w[i].result) == 0)
			return w[i].words;
	return res;
}

/* The exit status a renew result gives (the worst of all wins). */
static int renew_status(const char *res, bool wait)
{
	if (strcmp(res, CS_PROTO_R_BUSY) == 0)
		return wait ? EX_BUSY : 0;
	if (strcmp(res, CS_PROTO_R_STARTED) == 0 || strcmp(res, CS_PROTO_R_NOT_DUE) == 0 ||
	    strcmp(res, "verified") == 0 || strcmp(res, "deployed") == 0)
		return 0;
	return EX_FAIL;
}

/*
 * certsyncctl renew NAME|all [--force] [--wait [--timeout S]]; returns the
 * exit status. With --wait the agent answers when every renewal it started
 * has ended: verified, deployed, rolled back, failed or abandoned.
 */
int ctl_renew_main(int argc, char **argv)
{
	struct args a;
	json_t *resp = NULL, *r;
	const char *name;
	size_t i;
	int rc = parse(argc, argv, "renew NAME|all [--force] [--wait [--timeout S]]", 0, 2, &a);

	if (rc != 0)
		return rc < 0 ? 0 : rc;
	/* "renew mail force" and "renew all" as well as --force and --all. */
	if (a.n_pos == 2 && strcmp(a.pos[1], "force") == 0) {
		a.force = true;
		a.n_pos = 1;
	}
	if (a.n_pos == 1 && a.all) {
		fprintf(stderr, "certsyncctl renew: a NAME or --all, not both\n");
		return EX_USAGE;
	}
	if (a.n_pos > 1 || (a.n_pos == 0 && !a.all)) {
		fprintf(stderr, "usage: certsyncctl renew NAME|all [--force] [--wait]\n");
		return EX_USAGE;
	}
	name = a.all ? CS_PROTO_ALL : a.pos[0];
	if (a.wait)
		ctl_online__read_timeout_ms =
			a.timeout > INT_MAX / 1000 ? INT_MAX : (int)(a.timeout * 1000);
	rc = ctl_online__simple("renew",
		    json_pack("{s:s,s:s,s:b,s:b}", CS_PROTO_K_CMD, CS_PROTO_CMD_RENEW,
			      CS_PROTO_K_NAME, name, CS_PROTO_K_FORCE, a.force, CS_PROTO_K_WAIT,
			      a.wait),
		    &resp);
	if (rc == EX_UNREACHABLE && a.wait)
		fprintf(stderr, "certsyncctl renew: the renewal may still be running; see "
				"certsyncctl show\n");
	if (rc != 0)
		goto out;
	json_t *results = json_object_get(resp, CS_PROTO_K_RESULTS);
	if (results == NULL) {
		results = json_array();
		json_array_append(results, resp);
	} else {
		json_incref(results);
	}
	json_array_foreach(results, i, r) {
		const char *res = jstr(r, CS_PROTO_K_RESULT, "?");
		const char *msg = jstr(r, CS_PROTO_K_MESSAGE, "");
		int st = renew_status(res, a.wait);
		if (!ctl_json)
			printf("%s: %s%s%s\n", jstr(r, CS_PROTO_K_NAME, "?"), renew_words(res),
			       msg[0] ? ": " : "", msg);
		if (st == EX_FAIL || (st == EX_BUSY && rc == 0))
			rc = st;
	}
	json_decref(results);
	/* renew all lists only the certs that were not simply not due. */
	json_t *not_due =
		json_object_get(json_object_get(resp, CS_PROTO_K_COUNTS), CS_PROTO_K_NOT_DUE);
	if (!ctl_json && json_integer_value(not_due) > 0)
		printf("%lld %scertificate(s): %s\n", (long long)json_integer_value(not_due),
		       i > 0 ? "other " : "", renew_words(CS_PROTO_R_NOT_DUE));
out:
	json_decref(resp);
	return rc;
}


static int named(int argc, char **argv, const char *cmd, const char *usage, int min)
{
	struct args a;
	json_t *resp = NULL, *req;
	int rc = parse(argc, argv, usage, min, 1, &a);

	if (rc != 0)
		return rc < 0 ? 0 : rc;
	req = a.n_pos ? json_pack("{s:s,s:s}", CS_PROTO_K_CMD, cmd, CS_PROTO_K_NAME, a.pos[0])
		      : json_pack("{s:s}", CS_PROTO_K_CMD, cmd);
	rc = ctl_online__simple(cmd, req, &resp);
	if (rc == 0 && !ctl_json)
		printf("%s%s%s: requested\n", cmd, a.n_pos ? " " : "", a.n_pos ? a.pos[0] : "");
	json_decref(resp);
	return rc;
}

/* certsyncctl rehash [NAME]; returns the exit status. */
int ctl_rehash_main(int argc, char **argv)
{
	return named(argc, argv, CS_PROTO_CMD_REHASH, "rehash [NAME]", 0);
}

/* certsyncctl reload NAME; returns the exit status. */
int ctl_reload_main(int argc, char **argv)
{
	return named(argc, argv, CS_PROTO_CMD_RELOAD, "reload NAME", 1);
}

/*
 * certsyncctl revoke NAME [--reason R]; returns the exit status. The agent
 * answers once the issuer has (an ACME CA is asked over the network).
 */
int ctl_revoke_main(int argc, char **argv)
{
	struct args a;
	json_t *resp = NULL, *req;
	int rc = parse(argc, argv, "revoke NAME [--reason R]", 1, 1, &a);

	if (rc != 0)
		return rc < 0 ? 0 : rc;
	req = a.reason != NULL ? json_pack("{s:s,s:s,s:s}", CS_PROTO_K_CMD, CS_PROTO_CMD_REVOKE,
					   CS_PROTO_K_NAME, a.pos[0], CS_PROTO_K_REASON, a.reason)
			       : json_pack("{s:s,s:s}", CS_PROTO_K_CMD, CS_PROTO_CMD_REVOKE,
					   CS_PROTO_K_NAME, a.pos[0]);
	rc = ctl_online__simple("revoke", req, &resp);
	if (rc == 0 && !ctl_json)
		printf("revoked %s (reason %s); a new certificate is being issued\n",
		       jstr(resp, CS_PROTO_K_SERIAL, "?"),
		       jstr(resp, CS_PROTO_K_REASON, "unspecified"));
	json_decref(resp);
	return rc;
}

/* certsyncctl adopt NAME; returns the exit status (the agent answers once it has looked). */
int ctl_adopt_main(int argc, char **argv)
{
	struct args a;
	json_t *resp = NULL;
	int rc = parse(argc, argv, "adopt NAME", 1, 1, &a);

	if (rc != 0)
		return rc < 0 ? 0 : rc;
	rc = ctl_online__simple("adopt",
		    json_pack("{s:s,s:s}", CS_PROTO_K_CMD, CS_PROTO_CMD_ADOPT, CS_PROTO_K_NAME,
			      a.pos[0]),
		    &resp);
	if (rc == 0 && !ctl_json)
		printf("%s: %s\n", a.pos[0], jstr(resp, CS_PROTO_K_RESULT, "adopted"));
	json_decref(resp);
	return rc;
}

/* certsyncctl metrics; returns the exit status. */
int ctl_metrics_main(int argc, char **argv)
{
	struct args a;
	json_t *resp = NULL;
	int rc = parse(argc, argv, "metrics", 0, 0, &a);

	if (rc != 0)
		return rc < 0 ? 0 : rc;
	rc = ctl_online__simple("metrics", json_pack("{s:s}", CS_PROTO_K_CMD, CS_PROTO_CMD_METRICS),
				&resp);
	if (rc == 0 && !ctl_json)
		fputs(jstr(resp, CS_PROTO_K_METRICS, ""), stdout);
	json_decref(resp);
	return rc;
}
