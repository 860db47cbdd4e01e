/*
 * check_metrics - the Prometheus exposition of cs_metrics: a strict parser of
 * the text format (families in one piece, TYPE before samples, label syntax
 * and escaping, numeric values, no duplicate series) run over rendered
 * output, promtool when it is installed, the numbers an operator alerts on,
 * the counters counted from the pipeline's events (exactly: what happens
 * between two renders counts as often as it happens), and the atomic file
 * write.
 */
#include "cs_metrics.h"
#include "testutil.h"

#include <check.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *names_mail[] = { "mail.example.test", "smtp.example.test" };

/* The drift checks of "mail": one match, one other leaf, one without an answer. */
static const struct cs_served served_mail[] = {
	{ .url = "smtp://127.0.0.1:25", .name = "mail.example.test", .match = 1, .checked = 1700400000 },
	{ .url = "smtp://127.0.0.1:25", .name = "smtp.example.test", .match = 0, .checked = 1700400000 },
	{ .url = "imaps://[::1]:993", .name = "mail.example.test", .match = -1, .checked = 1700400000 },
};

static void two_certs(struct cs_cert_status v[2])
{
	memset(v, 0, 2 * sizeof(v[0]));
	v[0].name = "mail";
	v[0].state = CS_CERT_VALID;
	v[0].verdict = CS_EX_OK;
	v[0].issuer = "local";
	v[0].serial = "0A1B";
	v[0].not_before = 1700000000;
	v[0].not_after = 1702592000;
	v[0].next_renewal = 1701700000;
	v[0].next_reason = "33% of the lifetime left";
	v[0].last_renewal = 1700000100;
	v[0].last_reload = "postfix: ok; dovecot: failed";
	v[0].names = names_mail;
	v[0].n_names = 2;
	v[0].served = served_mail;
	v[0].n_served = sizeof(served_mail) / sizeof(served_mail[0]);
	v[0].drift = CS_DRIFT_FOUND;
	/* A name a label must escape, with nothing deployed. */
	v[1].name = "we\"ird\\na\nme";
	v[1].state = CS_CERT_MISSING;
	v[1].verdict = CS_EX_MISSING;
	v[1].failures = 3;
	v[1].last_error = "deploy: no such directory";
}

/* ---- a strict parser of the text format ---------------------------------- */

struct family {
	char name[128];
	char type[16];
	bool has_samples;
};

static bool name_ok(const char *s, size_t n)
{
	if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':'))
			return false;
	return true;
}

/*
 * Checks text; returns NULL when it is valid, else a message (static). Each
 * series (name plus labels as written) is recorded in series (n_series).
 */
static const char *parse_exposition(const char *text, char ***series, size_t *n_series)
{
	static char msg[512];
	struct family fam[64];
	size_t n_fam = 0;
	const char *line = text;
	int lineno = 0;
	struct family *cur = NULL;

	*series = NULL;
	*n_series = 0;
	if (text[0] == '\0' || text[strlen(text) - 1] != '\n')
		return "empty, or the last line has no newline";
	while (*line) {
		const char *end = strchr(line, '\n');
		size_t len = (size_t)(end - line);
		char buf[4096];
		lineno++;
		if (len >= sizeof(buf))
			return "line too long";
		memcpy(buf, line, len);
		buf[len] = '\0';
		line = end + 1;
		if (strncmp(buf, "# HELP ", 7) == 0 || strncmp(buf, "# TYPE ", 7) == 0) {
			char *name = buf + 7, *sp = strchr(name, ' ');
			if (sp == NULL || !name_ok(name, (size_t)(sp - name)))
				goto bad;
			*sp = '\0';
			struct family *f = NULL;
			for (size_t i = 0; i < n_fam; i++)
				if (strcmp(fam[i].name, name) == 0)
					f = &fam[i];
			if (f == NULL) {
				if (n_fam == 64)
					return "too many families";
				f = &fam[n_fam++];
				memset(f, 0, sizeof(*f));
				snprintf(f->name, sizeof(f->name), "%.120s", name);
			} else if (f != cur || f->has_samples) {
				snprintf(msg, sizeof(msg), "line %d: %.100s described again", lineno, name);
				return msg;
			}
			if (buf[2] == 'T') {
				const char *t = sp + 1;
				if (strcmp(t, "gauge") && strcmp(t, "counter") && strcmp(t, "untyped") &&
				    strcmp(t, "histogram") && strcmp(t, "summary"))
					goto bad;
				if (f->type[0])
					goto bad;
				snprintf(f->type, sizeof(f->type), "%s", t);
			} else if (sp[1] == '\0') {
				goto bad; /* empty help */
			}
			cur = f;
			continue;
		}
		if (buf[0] == '#')
			goto bad;
		/* A sample: name{label="value",...} number */
		size_t nlen = strcspn(buf, "{ ");
		if (!name_ok(buf, nlen))
			goto bad;
		if (cur == NULL || strlen(cur->name) != nlen || strncmp(cur->name, buf, nlen) != 0 ||
		    cur->type[0] == '\0') {
			snprintf(msg, sizeof(msg), "line %d: sample outside its family: %.200s", lineno,
				 buf);
			return msg;
		}
		if (strcmp(cur->type, "counter") == 0 &&
		    (nlen < 6 || strncmp(buf + nlen - 6, "_total", 6) != 0))
			goto bad;
		cur->has_samples = true;
		char *p = buf + nlen;
		if (*p == '{') {
			p++;
			while (*p != '}') {
				size_t ln = strcspn(p, "=");
				if (!name_ok(p, ln) || p[ln] != '=' || p[ln + 1] != '"')
					goto bad;
				p += ln + 2;
				while (*p != '"') {
					if (*p == '\0')
						goto bad;
					if (*p == '\\') {
						if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
							goto bad;
						p++;
					}
					p++;
				}
				p++;
				if (*p == ',')
					p++;
				else if (*p != '}')
					goto bad;
			}
			p++;
		}
		if (*p != ' ')
			goto bad;
		size_t klen = (size_t)(p - buf);
		char *vend;
		double v = strtod(p + 1, &vend);
		if (vend == p + 1 || (*vend != '\0' && *vend != ' ') || isnan(v))
			goto bad;
		for (size_t i = 0; i < *n_series; i++)
			if (strlen((*series)[i]) == klen && strncmp((*series)[i], buf, klen) == 0) {
				snprintf(msg, sizeof(msg), "line %d: duplicate series %.200s", lineno, buf);
				return msg;
			}
		*series = realloc(*series, (*n_series + 1) * sizeof(char *));
		(*series)[(*n_series)++] = strndup(buf, klen);
	}
	return NULL;
bad:
	snprintf(msg, sizeof(msg), "line %d is not valid exposition text", lineno);
	return msg;
}

static void free_series(char **s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(s[i]);
	free(s);
}

static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	const char *p = text;

	while ((p = strstr(p, line)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return true;
		p += n;
	}
	return false;
}

#define ck_line(text, line) ck_assert_msg(has_line(text, line), "missing line: %s\n%s", line, text)

static const struct cs_metrics_agent agent0 = { .start_time = 1700000000, .clients = 2,
						 .requests_ok = 5, .requests_refused = 1 };

START_TEST(test_metrics_format_strict)
{
	struct cs_cert_status v[2];
	struct cs_metrics *m = cs_metrics_new();
	char **series;
	size_t n;

	two_certs(v);
	char *text = cs_metrics_render(m, v, 2, &agent0, 1700500000);
	ck_assert_ptr_nonnull(text);
	const char *err = parse_exposition(text, &series, &n);
	ck_assert_msg(err == NULL, "%s\n%s", err ? err : "", text);
	ck_assert_uint_gt(n, 30);
	free_series(series, n);

	/* Nothing configured is still valid exposition text. */
	char *empty = cs_metrics_render(m, NULL, 0, &agent0, 1700500000);
	err = parse_exposition(empty, &series, &n);
	ck_assert_msg(err == NULL, "%s\n%s", err ? err : "", empty);
	free_series(series, n);
	free(empty);

	/* The parser itself refuses what it must. */
	static const char *const bad[] = {
		"x 1\n",                                         /* no TYPE */
		"# TYPE a gauge\na{l=\"v} 1\n",                  /* open quote */
		"# TYPE a gauge\na 1\n# TYPE b gauge\na 2\n",    /* family split */
		"# TYPE a gauge\na{l=\"x\"} 1\na{l=\"x\"} 2\n",  /* duplicate */
		"# TYPE a_total counter\na_total one\n",         /* not a number */
		"# TYPE a counter\na 1\n",                       /* counter without _total */
		"# TYPE a gauge\na{l=\"\\q\"} 1\n",              /* bad escape */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(parse_exposition(bad[i], &series, &n) != NULL, "accepted: %s", bad[i]);
		free_series(series, n);
	}
	free(text);
	cs_metrics_free(m);
}
END_TEST

START_TEST(test_metrics_promtool)
{
	struct cs_cert_status v[2];
	struct cs_metrics *m = cs_metrics_new();
	char *dir, *path, *cmd, *out = NULL;
	int rc;

	if (cs_test_run("command -v promtool >/dev/null", NULL) != 0) {
		fprintf(stderr, "promtool not installed: test_metrics_promtool checks nothing\n");
		cs_metrics_free(m);
		return;
	}
	two_certs(v);
	char *text = cs_metrics_render(m, v, 2, &agent0, 1700500000);
	dir = cs_test_mkdtemp();
	path = cs_test_write(dir, "m.prom", text, 0644);
	ck_assert_int_gt(asprintf(&cmd, "promtool check metrics < %s", path), 0);
	rc = cs_test_run(cmd, &out);
	ck_assert_msg(rc == 0, "promtool: %s\n%s", out ? out : "", text);
	free(out);
	free(cmd);
	free(path);
	cs_test_rmrf(dir);
	free(dir);
	free(text);
	cs_metrics_free(m);
}
END_TEST

START_TEST(test_metrics_values)
{
	struct cs_cert_status v[2];
	struct cs_metrics *m = cs_metrics_new();

	two_certs(v);
	char *t = cs_metrics_render(m, v, 2, &agent0, 1700500000);
	ck_line(t, "certsync_build_info{version=\"" CS_VERSION "\"} 1");
	ck_line(t, "certsync_cert_not_after_timestamp_seconds{name=\"mail\"} 1702592000");
	ck_line(t, "certsync_cert_not_before_timestamp_seconds{name=\"mail\"} 1700000000");
	ck_line(t, "certsync_cert_next_renewal_timestamp_seconds{name=\"mail\"} 1701700000");
	ck_line(t, "certsync_cert_last_renewal_timestamp_seconds{name=\"mail\"} 1700000100");
	ck_line(t, "certsync_cert_state{name=\"mail\",state=\"valid\"} 1");
	ck_line(t, "certsync_cert_state{name=\"mail\",state=\"failed\"} 0");
	ck_line(t, "certsync_cert_failures{name=\"mail\"} 0");
	ck_line(t, "certsync_cert_deployed_ok{name=\"mail\"} 1");
	ck_line(t, "certsync_cert_last_reload_ok{name=\"mail\",reloader=\"postfix\"} 1");
	ck_line(t, "certsync_cert_last_reload_ok{name=\"mail\",reloader=\"dovecot\"} 0");
	ck_line(t, "certsync_certs{state=\"valid\"} 1");
	ck_line(t, "certsync_certs{state=\"missing\"} 1");
	ck_line(t, "certsync_certs{state=\"failed\"} 0");
	ck_line(t, "certsync_ctlsock_clients 2");
	ck_line(t, "certsync_ctlsock_requests_total{result=\"refused\"} 1");
	ck_line(t, "certsync_agent_start_time_seconds 1700000000");
	/* The escaped name; no timestamps for a cert with nothing deployed. */
	ck_line(t, "certsync_cert_failures{name=\"we\\\"ird\\\\na\\nme\"} 3");
	ck_line(t, "certsync_cert_state{name=\"we\\\"ird\\\\na\\nme\",state=\"missing\"} 1");
	ck_assert_ptr_null(strstr(t, "certsync_cert_not_after_timestamp_seconds{name=\"we"));
	ck_assert_ptr_null(strstr(t, "certsync_cert_next_renewal_timestamp_seconds{name=\"we"));
	/* One series per URL and name; none for a probe without an answer. */
	ck_line(t, "certsync_served_match{cert=\"mail\",url=\"smtp://127.0.0.1:25\","
		   "name=\"mail.example.test\"} 1");
	ck_line(t, "certsync_served_match{cert=\"mail\",url=\"smtp://127.0.0.1:25\","
		   "name=\"smtp.example.test\"} 0");
	ck_assert_ptr_null(strstr(t, "certsync_served_match{cert=\"mail\",url=\"imaps"));
	ck_assert_ptr_nonnull(strstr(t, "# HELP certsync_served_match "));
	free(t);
	cs_metrics_free(m);
}
END_TEST

/* An event of the pipeline about cert, as cs_metrics_count receives it. */
static void event(struct cs_metrics *m, enum cs_event_type type, const char *cert,
		  enum cs_renewal_outcome o, const char *service, enum cs_event_result r)
{
	struct cs_event ev = { .type = type, .cert = cert, .time = 1700600000, .renewal = 7,
			       .outcome = o, .service = service, .result = r };

	cs_metrics_count(m, &ev);
}

#define RENEWED(m, cert, o) event(m, CS_EVENT_RENEWED, cert, o, NULL, CS_EVENT_OK)
#define FAILED(m, cert, o) event(m, CS_EVENT_FAILED, cert, o, NULL, CS_EVENT_OK)
#define RELOADED(m, cert, svc, r) event(m, CS_EVENT_RELOADED, cert, CS_RENEWAL_VERIFIED, svc, r)
/* An event that carries no outcome, service or result. */
#define STEP(m, type, cert) event(m, type, cert, CS_RENEWAL_VERIFIED, NULL, CS_EVENT_OK)

START_TEST(test_metrics_counters_from_events)
{
	struct cs_cert_status v[2];
	struct cs_metrics *m = cs_metrics_new();
	char *t;

	two_certs(v);
	/* mail was renewed after the agent started; the failures of the other are history. */
	const enum cs_event_type steps[] = { CS_EVENT_RENEWAL_STARTED, CS_EVENT_ISSUED,
					     CS_EVENT_DEPLOYED };
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
		STEP(m, steps[i], "mail");
	RENEWED(m, "mail", CS_RENEWAL_VERIFIED);
	t = cs_metrics_render(m, v, 2, &agent0, 1700500000);
	ck_line(t, "certsync_renewals_total{result=\"success\"} 1");
	ck_line(t, "certsync_renewals_total{result=\"failure\"} 0");
	free(t);
	/* Rendering again changes nothing. */
	t = cs_metrics_render(m, v, 2, &agent0, 1700500001);
	ck_line(t, "certsync_renewals_total{result=\"success\"} 1");
	free(t);
	/* A renewal of mail and its reloads, two more failures of the other. */
	RENEWED(m, "mail", CS_RENEWAL_DEPLOYED);
	FAILED(m, "we\"ird", CS_RENEWAL_FAILED);
	FAILED(m, "we\"ird", CS_RENEWAL_FAILED);
	RELOADED(m, "mail", "postfix", CS_EVENT_OK);
	RELOADED(m, "mail", "dovecot", CS_EVENT_NOT_RUNNING);
	t = cs_metrics_render(m, v, 2, &agent0, 1700600010);
	ck_line(t, "certsync_renewals_total{result=\"success\"} 2");
	ck_line(t, "certsync_renewals_total{result=\"failure\"} 2");
	ck_line(t, "certsync_reloads_total{reloader=\"postfix\",result=\"ok\"} 1");
	ck_line(t, "certsync_reloads_total{reloader=\"dovecot\",result=\"not_running\"} 1");
	ck_line(t, "certsync_reloads_total{reloader=\"dovecot\",result=\"failed\"} 0");
	free(t);
	/* Another renewal within the same second. */
	RENEWED(m, "mail", CS_RENEWAL_VERIFIED);
	t = cs_metrics_render(m, v, 2, &agent0, 1700600011);
	ck_line(t, "certsync_renewals_total{result=\"success\"} 3");
	free(t);
	/* A success after failures; a rollback is a failure; an abandoned renewal is neither. */
	RENEWED(m, "we\"ird", CS_RENEWAL_VERIFIED);
	t = cs_metrics_render(m, v, 2, &agent0, 1700700010);
	ck_line(t, "certsync_renewals_total{result=\"success\"} 4");
	ck_line(t, "certsync_renewals_total{result=\"failure\"} 2");
	free(t);
	event(m, CS_EVENT_ROLLED_BACK, "mail", CS_RENEWAL_ROLLED_BACK, NULL, CS_EVENT_OK);
	FAILED(m, "mail", CS_RENEWAL_ABANDONED);
	t = cs_metrics_render(m, v, 2, &agent0, 1700700011);
	ck_line(t, "certsync_renewals_total{result=\"success\"} 4");
	ck_line(t, "certsync_renewals_total{result=\"failure\"} 3");
	free(t);
	cs_metrics_free(m);
}
END_TEST

/*
 * Exact: what happens between two renders is counted as often as it
 * happens, even when it leaves the status as it was (two renewals, two
 * reloads with the same results, a failure then a success). Counting from
 * status snapshots saw one renewal, no reload and no failure here.
 */
START_TEST(test_metrics_counters_exact)
{
	struct cs_cert_status v[2];
	struct cs_metrics *m = cs_metrics_new();
	char *t;

	two_certs(v);
	t = cs_metrics_render(m, v, 2, &agent0, 1700500000);
	ck_line(t, "certsync_renewals_total{result=\"success\"} 0");
	free(t);
	for (int i = 0; i < 2; i++) {
		RENEWED(m, "mail", CS_RENEWAL_VERIFIED);
		RELOADED(m, "mail", "postfix", CS_EVENT_OK);
		RELOADED(m, "mail", "dovecot", CS_EVENT_ERROR);
	}
	FAILED(m, "we\"ird", CS_RENEWAL_FAILED);
	RENEWED(m, "we\"ird", CS_RENEWAL_DEPLOYED);
	/* The same snapshot: only the events tell. */
	t = cs_metrics_render(m, v, 2, &agent0, 1700500100);
	ck_line(t, "certsync_renewals_total{result=\"success\"} 3");
	ck_line(t, "certsync_renewals_total{result=\"failure\"} 1");
	ck_line(t, "certsync_reloads_total{reloader=\"postfix\",result=\"ok\"} 2");
	ck_line(t, "certsync_reloads_total{reloader=\"dovecot\",result=\"failed\"} 2");
	ck_line(t, "certsync_reloads_total{reloader=\"dovecot\",result=\"ok\"} 0");
	/* The gauges still come from the snapshot. */
	ck_line(t, "certsync_cert_last_reload_ok{name=\"mail\",reloader=\"dovecot\"} 0");
	/* Counters with samples are still valid exposition text. */
	char **series;
	size_t n;
	const char *err = parse_exposition(t, &series, &n);
	ck_assert_msg(err == NULL, "%s\n%s", err ? err : "", t);
	free_series(series, n);
	free(t);
	cs_metrics_free(m);
}
END_TEST

/* A cert whose state shows past renewals and failures: no event, nothing counted. */
START_TEST(test_metrics_history_not_counted)
{
	struct cs_cert_status v[1];
	struct cs_metrics *m = cs_metrics_new();
	char *t;

	memset(v, 0, sizeof(v));
	v[0].name = "mail";
	v[0].state = CS_CERT_UNKNOWN; /* not examined yet: its state is not loaded */
	t = cs_metrics_render(m, v, 1, &agent0, 1700000050);
	free(t);
	/* Loaded: renewed long before the start, 4 failures in the past. */
	v[0].state = CS_CERT_FAILED;
	v[0].last_renewal = 1600000000;
	v[0].failures = 4;
	t = cs_metrics_render(m, v, 1, &agent0, 1700000100);
	ck_line(t, "certsync_renewals_total{result=\"success\"} 0");
	ck_line(t, "certsync_renewals_total{result=\"failure\"} 0");
	free(t);
	/* Events that are no renewal's end and no reload count nothing. */
	STEP(m, CS_EVENT_REPAIRED, "mail");
	STEP(m, CS_EVENT_ADOPTED, "mail");
	event(m, CS_EVENT_VERIFIED, "mail", CS_RENEWAL_VERIFIED, NULL, CS_EVENT_ERROR);
	STEP(m, CS_EVENT_REVOKED, "mail");
	STEP(m, CS_EVENT_CHANGED, "mail");
	t = cs_metrics_render(m, v, 1, &agent0, 1700000200);
	ck_line(t, "certsync_renewals_total{result=\"success\"} 0");
	ck_line(t, "certsync_renewals_total{result=\"failure\"} 0");
	ck_assert_ptr_null(strstr(t, "certsync_reloads_total{"));
	free(t);
	cs_metrics_free(m);
}
END_TEST

START_TEST(test_metrics_write_file)
{
	char *dir = cs_test_mkdtemp(), *path, *back, err[512];
	struct stat st;
	size_t len;

	ck_assert_int_gt(asprintf(&path, "%s/certsync.prom", dir), 0);
	ck_assert_int_eq(cs_metrics_write_file(path, "# TYPE a gauge\na 1\n", err, sizeof(err)), 0);
	ck_assert_int_eq(cs_metrics_write_file(path, "# TYPE a gauge\na 2\n", err, sizeof(err)), 0);
	back = cs_test_read(path, &len);
	ck_assert_str_eq(back, "# TYPE a gauge\na 2\n");
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0644);
	free(back);
	free(path);
	/* A directory that does not exist: an error naming the path. */
	ck_assert_int_eq(asprintf(&path, "%s/nodir/x.prom", dir) > 0, 1);
	ck_assert_int_lt(cs_metrics_write_file(path, "x\n", err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(strstr(err, "nodir"));
	free(path);
	cs_test_rmrf(dir);
	free(dir);
}
END_TEST

Suite *metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_metrics_format_strict);
	tcase_add_test(tc, test_metrics_promtool);
	tcase_add_test(tc, test_metrics_values);
	tcase_add_test(tc, test_metrics_counters_from_events);
	tcase_add_test(tc, test_metrics_counters_exact);
	tcase_add_test(tc, test_metrics_history_not_counted);
	tcase_add_test(tc, test_metrics_write_file);
	suite_add_tcase(s, tc);
	return s;
}
