/*
 * check_ctlsock - the status socket server on its own, with a fake backend:
 * the access rules, the protocol answers, pipelined requests answered in
 * order, the request size limit, the idle timeout, the socket file (mode,
 * stale one replaced, live one and non-socket left alone, removed at close)
 * and the metrics file written after an event of the backend.
 *
 * The server runs on a libuv loop in the test's thread; the client runs in a
 * second thread with plain blocking sockets and records what it saw; the
 * assertions run after the loop has finished.
 */
#include "cs_ctlsock.h"
#include "cs_events.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ---- a fake backend ---------------------------------------------------- */

static char *names_a[] = { "a.example.test" };
static int renews;
static char renewed[64];
static bool renewed_force;
/* Certs after alpha, beta and gamma are c3, c4, ... (renewed slowly); gamma fails when set. */
static size_t n_certs = 3;
static int gamma_failed; /* set by a client thread: read with __atomic_load_n */
static char cnames[64][8];

static size_t fake_count(void *arg)
{
	(void)arg;
	return n_certs;
}

static const struct cs_served served_beta[] = {
	{ .url = "smtp://127.0.0.1:25", .name = "a.example.test", .match = 0, .sha256 = "AB:CD",
	  .checked = 1700000000 },
};

static void fake_status(void *arg, size_t i, struct cs_cert_status *out)
{
	static const char *const n[] = { "alpha", "beta", "gamma" };
	bool failed = i == 1 || (i == 2 && __atomic_load_n(&gamma_failed, __ATOMIC_SEQ_CST));

	(void)arg;
	memset(out, 0, sizeof(*out));
	snprintf(cnames[i], sizeof(cnames[i]), "c%zu", i);
	out->name = i < 3 ? n[i] : cnames[i];
	out->state = failed ? CS_CERT_FAILED : CS_CERT_VALID;
	out->issuer = "local";
	out->serial = "01AB";
	out->not_before = 1700000000;
	out->not_after = time(NULL) + 10 * 86400 + 100;
	out->next_renewal = 1700500000;
	out->next_reason = "33% left";
	out->failures = failed ? 2 : 0;
	out->last_error = failed ? "issuer said no" : NULL;
	out->names = names_a;
	out->n_names = 1;
	if (i == 1) {
		/* beta's service serves another leaf after the reload its drift asked for. */
		out->served = served_beta;
		out->n_served = 1;
		out->drift = CS_DRIFT_PERSISTS;
	}
}

static int fake_renew(void *arg, const char *name, bool force, cs_renewal_cb cb, void *cbarg)
{
	(void)cb;
	(void)cbarg;
	(void)arg;
	if (strcmp(name, "gamma") == 0)
		return -EBUSY;
	if (name[0] == 'c' && (size_t)atoi(name + 1) >= 3 && (size_t)atoi(name + 1) < n_certs)
		usleep(300); /* starting a renewal takes a while: renew all is sliced */
	else if (strcmp(name, "alpha") != 0 && strcmp(name, "beta") != 0)
		return -ENOENT;
	renews++;
	snprintf(renewed, sizeof(renewed), "%s", name);
	renewed_force = force;
	return 0;
}

/*
 * revoke: "alpha" is answered 100 ms later from a timer on the server's loop
 * (as an issuer answers), "beta" has nothing deployed, the rest is unknown.
 */
static uv_loop_t *revoke_loop;
static uv_timer_t revoke_timer;
static int revoke_reason;
static void (*revoke_done)(void *, int, const char *);
static void *revoke_cbarg;

static void on_revoke_timer(uv_timer_t *t)
{
	revoke_done(revoke_cbarg, 0, "01AB");
	uv_close((uv_handle_t *)t, NULL);
}

static int fake_revoke(void *arg, const char *name, int reason,
		       void (*done)(void *, int, const char *), void *cbarg)
{
	(void)arg;
	if (strcmp(name, "beta") == 0)
		return -ENODATA;
	if (strcmp(name, "alpha") != 0)
		return -ENOENT;
	revoke_reason = reason;
	revoke_done = done;
	revoke_cbarg = cbarg;
	uv_timer_init(revoke_loop, &revoke_timer);
	uv_timer_start(&revoke_timer, on_revoke_timer, 100, 0);
	return 0;
}

/* The server's subscription to the fake's events (NULL: none). */
static void (*sub_fn)(void *, const struct cs_event *);
static void *sub_arg;

static int fake_subscribe(void *arg, void (*fn)(void *, const struct cs_event *), void *fnarg)
{
	(void)arg;
	ck_assert_ptr_null(sub_fn);
	sub_fn = fn;
	sub_arg = fnarg;
	return 0;
}

static void fake_unsubscribe(void *arg, void (*fn)(void *, const struct cs_event *), void *fnarg)
{
	(void)arg;
	ck_assert(sub_fn == fn && sub_arg == fnarg);
	sub_fn = NULL;
	sub_arg = NULL;
}

static const struct cs_ctlsock_backend fake = {
	.count = fake_count, .status = fake_status, .renew = fake_renew, .revoke = fake_revoke,
	.subscribe = fake_subscribe, .unsubscribe = fake_unsubscribe,
};

/* ---- loop and client thread -------------------------------------------------- */

struct fx {
	uv_loop_t loop;
	uv_async_t done;
	struct cs_ctlsock *s;
	char *dir, path[100];
	void (*client)(struct fx *);
	/* What the client saw. */
	char *answers[512];
	int n_answers;
	bool eof;
	double eof_after;
	int connect_errno;
};

static void on_closed(void *arg)
{
	struct fx *f = arg;

	f->s = NULL;
}

static void on_done(uv_async_t *h)
{
	struct fx *f = h->data;

	cs_ctlsock_close(f->s, on_closed, f);
	uv_close((uv_handle_t *)&f->done, NULL);
}

static void *client_main(void *arg)
{
	struct fx *f = arg;

	f->client(f);
	uv_async_send(&f->done);
	return NULL;
}

static int cconnect(struct fx *f)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%.100s", f->path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		f->connect_errno = errno;
		close(fd);
		return -1;
	}
	return fd;
}

static void wr(int fd, const void *p, size_t n)
{
	ssize_t r = write(fd, p, n);

	(void)r; /* a short write shows up as a missing answer */
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Reads answer lines until n are in f->answers or EOF/timeout (ms). */
static void read_answers(struct fx *f, int fd, int n, int timeout_ms)
{
	static char buf[1 << 20];
	size_t len = 0;
	double start = now_s();

	while (f->n_answers < n) {
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, timeout_ms) <= 0)
			return;
		ssize_t r = read(fd, buf + len, sizeof(buf) - len - 1);
		if (r <= 0) {
			f->eof = true;
			f->eof_after = now_s() - start;
			return;
		}
		len += (size_t)r;
		char *nl;
		while ((nl = memchr(buf, '\n', len)) != NULL && f->n_answers < 512) {
			f->answers[f->n_answers++] = strndup(buf, (size_t)(nl - buf));
			len -= (size_t)(nl - buf) + 1;
			memmove(buf, nl + 1, len);
		}
	}
}

static void wait_eof(struct fx *f, int fd, int timeout_ms)
{
	char c;
	double start = now_s();
	struct pollfd p = { fd, POLLIN, 0 };

	while (poll(&p, 1, timeout_ms) > 0) {
		if (read(fd, &c, 1) <= 0) {
			f->eof = true;
			f->eof_after = now_s() - start;
			return;
		}
	}
}

static void fx_init(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	f->dir = cs_test_mkdtemp();
	snprintf(f->path, sizeof(f->path), "%s/ctl.sock", f->dir);
	ck_assert_int_eq(uv_loop_init(&f->loop), 0);
	revoke_loop = &f->loop;
	revoke_reason = -1;
	renews = 0;
	renewed[0] = '\0';
	n_certs = 3;
	gamma_failed = 0;
}

static void fx_start(struct fx *f, struct cs_ctlsock_opts *o)
{
	char err[512];

	o->path = f->path;
	if (o->mode == 0)
		o->mode = 0660;
	if (o->group == 0)
		o->group = (gid_t)-1;
	if (o->admin_group == 0)
		o->admin_group = (gid_t)-1;
	f->s = cs_ctlsock_new(&f->loop, o, &fake, err, sizeof(err));
	ck_assert_msg(f->s != NULL, "%s", err);
}

/* Runs client in a thread against the server until it is done; closes the server. */
static void fx_run(struct fx *f, void (*client)(struct fx *))
{
	pthread_t th;

	f->client = client;
	uv_async_init(&f->loop, &f->done, on_done);
	f->done.data = f;
	ck_assert_int_eq(pthread_create(&th, NULL, client_main, f), 0);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	pthread_join(th, NULL);
	ck_assert_ptr_null(f->s); /* closed and freed */
}

static void fx_free(struct fx *f)
{
	for (int i = 0; i < f->n_answers; i++)
		free(f->answers[i]);
	ck_assert_int_eq(uv_loop_close(&f->loop), 0); /* no handle left behind */
	cs_test_rmrf(f->dir);
	free(f->dir);
}

static json_t *answer(struct fx *f, int i)
{
	json_error_t e;
	json_t *j;

	ck_assert_int_lt(i, f->n_answers);
	j = json_loads(f->answers[i], 0, &e);
	ck_assert_msg(j != NULL, "answer %d is not JSON: %s", i, f->answers[i]);
	return j;
}

static const char *jcode(json_t *j)
{
	return json_string_value(json_object_get(j, "code"));
}

/* ---- tests --------------------------------------------------------------------- */

static const struct {
	uid_t uid;
	gid_t gid;
	gid_t groups[3];
	size_t n;
	gid_t sock, admin;
	int want;
} access_cases[] = {
	{ 0, 0, { 0 }, 0, 100, 200, 2 },          /* root */
	{ 1000, 1000, { 0 }, 0, 100, 200, 0 },    /* stranger */
	{ 1000, 100, { 0 }, 0, 100, 200, 1 },     /* primary group is socket_group */
	{ 1000, 1000, { 5, 100 }, 2, 100, 200, 1 }, /* supplementary socket_group */
	{ 1000, 1000, { 200 }, 1, 100, 200, 2 },  /* admin_group member */
	{ 1000, 200, { 0 }, 0, 100, 200, 2 },     /* admin as primary group */
	{ 1000, 1000, { 0 }, 0, (gid_t)-1, 200, 1 }, /* no socket_group: the file mode decides */
	{ 1000, 1000, { 0 }, 0, 100, (gid_t)-1, 0 }, /* no admin_group: only root changes */
	{ 4242, 1000, { 0 }, 0, 100, 200, 2 },    /* the agent's own uid */
};

START_TEST(test_ctlsock_access)
{
	int rc = cs_ctlsock_access(access_cases[_i].uid, access_cases[_i].gid,
				   access_cases[_i].groups, access_cases[_i].n,
				   access_cases[_i].sock, access_cases[_i].admin, 4242);
	ck_assert_int_eq(rc, access_cases[_i].want);
}
END_TEST

static void client_protocol(struct fx *f)
{
	int fd = cconnect(f);
	const char *req = "{\"cmd\":\"list\"}\n"
			  "{\"cmd\":\"show\",\"name\":\"beta\"}\n"
			  "{\"cmd\":\"show\",\"name\":\"nosuch\"}\n"
			  "{\"cmd\":\"renew\",\"name\":\"alpha\",\"force\":true}\n"
			  "{\"cmd\":\"renew\",\"name\":\"gamma\"}\n"
			  "{\"cmd\":\"renew\",\"name\":\"nosuch\"}\n"
			  "{\"cmd\":\"rehash\"}\n"
			  "not json\n"
			  "\n"
			  "{\"cmd\":\"status\"}\r\n"
			  "{\"cmd\":\"metrics\"}";

	if (fd < 0)
		return;
	wr(fd, req, strlen(req));
	shutdown(fd, SHUT_WR); /* the last request has no newline: still answered */
	read_answers(f, fd, 10, 5000);
	wait_eof(f, fd, 5000);
	close(fd);
}

START_TEST(test_ctlsock_protocol)
{
	struct fx f;
	struct cs_ctlsock_opts o = { 0 };
	json_t *j, *c;

	fx_init(&f);
	fx_start(&f, &o);
	fx_run(&f, client_protocol);
	ck_assert_int_eq(f.n_answers, 10);
	ck_assert(f.eof);

	j = answer(&f, 0);
	ck_assert(json_is_true(json_object_get(j, "ok")));
	ck_assert_uint_eq(json_array_size(json_object_get(j, "certs")), 3);
	c = json_array_get(json_object_get(j, "certs"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(c, "name")), "alpha");
	ck_assert_str_eq(json_string_value(json_object_get(c, "state")), "valid");
	ck_assert_int_eq(json_integer_value(json_object_get(c, "days_left")), 10);
	ck_assert_str_eq(json_string_value(json_object_get(c, "not_before")),
			 "2023-11-14T22:13:20Z");
	ck_assert(json_is_null(json_object_get(c, "last_error")));
	ck_assert(json_is_null(json_object_get(c, "drift"))); /* no drift checks */
	ck_assert_uint_eq(json_array_size(json_object_get(c, "served")), 0);
	json_decref(j);

	j = answer(&f, 1);
	c = json_object_get(j, "cert");
	ck_assert_str_eq(json_string_value(json_object_get(c, "state")), "failed");
	ck_assert_str_eq(json_string_value(json_object_get(c, "last_error")), "issuer said no");
	ck_assert_int_eq(json_integer_value(json_object_get(c, "failures")), 2);
	ck_assert_str_eq(json_string_value(json_object_get(c, "next_renewal_reason")), "33% left");
	ck_assert_str_eq(json_string_value(json_object_get(c, "drift")), "persists");
	json_t *sv = json_array_get(json_object_get(c, "served"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(sv, "url")), "smtp://127.0.0.1:25");
	ck_assert_str_eq(json_string_value(json_object_get(sv, "name")), "a.example.test");
	ck_assert(json_is_false(json_object_get(sv, "match")));
	ck_assert_str_eq(json_string_value(json_object_get(sv, "sha256")), "AB:CD");
	ck_assert_str_eq(json_string_value(json_object_get(sv, "checked")), "2023-11-14T22:13:20Z");
	ck_assert(json_is_null(json_object_get(sv, "error")));
	json_decref(j);

	j = answer(&f, 2);
	ck_assert_str_eq(jcode(j), "not_found");
	json_decref(j);
	j = answer(&f, 3);
	ck_assert_str_eq(json_string_value(json_object_get(j, "result")), "started");
	json_decref(j);
	ck_assert_int_eq(renews, 1);
	ck_assert_str_eq(renewed, "alpha");
	ck_assert(renewed_force);
	j = answer(&f, 4);
	ck_assert_str_eq(json_string_value(json_object_get(j, "result")), "busy");
	json_decref(j);
	j = answer(&f, 5);
	ck_assert_str_eq(jcode(j), "not_found");
	json_decref(j);
	j = answer(&f, 6);
	ck_assert_str_eq(jcode(j), "unavailable");
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(j, "error")),
				     "rehash is not available yet"));
	json_decref(j);
	j = answer(&f, 7);
	ck_assert_str_eq(jcode(j), "bad_request");
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(j, "error")),
				     "malformed JSON"));
	json_decref(j);
	j = answer(&f, 8); /* the empty line is skipped */
	ck_assert_int_eq(json_integer_value(json_object_get(j, "certs")), 3);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "states"), "failed")),
			 1);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "drifted")), 1);
	ck_assert_str_eq(json_string_value(json_object_get(j, "drifted_cert")), "beta");
	json_decref(j);
	j = answer(&f, 9);
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(j, "metrics")),
				     "certsync_cert_state{name=\"beta\",state=\"failed\"} 1\n"));
	json_decref(j);
	fx_free(&f);
}
END_TEST

static void client_pipelined(struct fx *f)
{
	int fd = cconnect(f), fd2 = cconnect(f);
	char req[200 * 40], *p = req;

	if (fd < 0 || fd2 < 0)
		return;
	for (int i = 0; i < 200; i++)
		p += sprintf(p, "{\"cmd\":\"show\",\"name\":\"%s\"}\n", i % 2 ? "beta" : "alpha");
	/* Two clients with 200 requests each in flight at once: both served fully. */
	wr(fd, req, (size_t)(p - req));
	wr(fd2, req, (size_t)(p - req));
	read_answers(f, fd, 200, 5000);
	read_answers(f, fd2, 400, 5000);
	close(fd);
	close(fd2);
}

START_TEST(test_ctlsock_pipelined_in_order)
{
	struct fx f;
	struct cs_ctlsock_opts o = { 0 };

	fx_init(&f);
	fx_start(&f, &o);
	fx_run(&f, client_pipelined);
	/* 200 requests in one write: answered in order, over several loop turns. */
	ck_assert_int_eq(f.n_answers, 400);
	for (int i = 0; i < 400; i++)
		ck_assert_ptr_nonnull(strstr(f.answers[i], i % 2 ? "\"name\":\"beta\""
								 : "\"name\":\"alpha\""));
	fx_free(&f);
}
END_TEST

/* A revoke answered later, then two more requests in the same write, then EOF. */
static void client_revoke(struct fx *f)
{
	static const char req[] =
		"{\"cmd\":\"revoke\",\"name\":\"alpha\",\"reason\":\"keyCompromise\"}\n"
		"{\"cmd\":\"show\",\"name\":\"beta\"}\n"
		"{\"cmd\":\"revoke\",\"name\":\"beta\"}\n"
		"{\"cmd\":\"revoke\",\"name\":\"alpha\",\"reason\":\"CACompromise\"}\n";
	int fd = cconnect(f);

	if (fd < 0)
		return;
	wr(fd, req, sizeof(req) - 1);
	shutdown(fd, SHUT_WR);
	read_answers(f, fd, 4, 5000);
	wait_eof(f, fd, 5000);
	close(fd);
}

START_TEST(test_ctlsock_revoke_deferred_in_order)
{
	struct fx f;
	struct cs_ctlsock_opts o = { 0 };
	json_t *j;

	fx_init(&f);
	fx_start(&f, &o);
	fx_run(&f, client_revoke);
	ck_assert_int_eq(f.n_answers, 4);
	/* The deferred answer first, although the next ones were ready at once. */
	j = answer(&f, 0);
	ck_assert_msg(json_is_true(json_object_get(j, "ok")), "%s", f.answers[0]);
	ck_assert_str_eq(json_string_value(json_object_get(j, "serial")), "01AB");
	ck_assert_str_eq(json_string_value(json_object_get(j, "reason")), "keyCompromise");
	ck_assert_int_eq(revoke_reason, 1);
	json_decref(j);
	ck_assert_ptr_nonnull(strstr(f.answers[1], "\"name\":\"beta\""));
	j = answer(&f, 2);
	ck_assert_str_eq(jcode(j), "failed");
	ck_assert_ptr_nonnull(strstr(f.answers[2], "nothing is deployed for beta"));
	json_decref(j);
	j = answer(&f, 3);
	ck_assert_str_eq(jcode(j), "bad_request");
	json_decref(j);
	ck_assert(f.eof); /* closed after the last answer, not before the deferred one */
	fx_free(&f);
}
END_TEST

/* Goes away before the deferred answer: the answer is dropped, nothing else. */
static void client_revoke_gone(struct fx *f)
{
	static const char req[] = "{\"cmd\":\"revoke\",\"name\":\"alpha\"}\n";
	int fd = cconnect(f);

	if (fd < 0)
		return;
	wr(fd, req, sizeof(req) - 1);
	usleep(20000);
	close(fd);
}

START_TEST(test_ctlsock_revoke_client_gone)
{
	struct fx f;
	struct cs_ctlsock_opts o = { 0 };

	fx_init(&f);
	fx_start(&f, &o);
	fx_run(&f, client_revoke_gone);
	ck_assert_int_eq(revoke_reason, 0); /* unspecified by default */
	fx_free(&f); /* the loop ran the late callback; ASan checks what it touched */
}
END_TEST

static void client_too_long(struct fx *f)
{
	int fd = cconnect(f);
	char big[3000];

	if (fd < 0)
		return;
	memset(big, 'x', sizeof(big));
	big[0] = '{';
	wr(fd, big, sizeof(big));
	read_answers(f, fd, 1, 5000);
	wait_eof(f, fd, 5000);
	close(fd);
}

START_TEST(test_ctlsock_too_long)
{
	struct fx f;
	struct cs_ctlsock_opts o = { .max_request = 1024 };
	json_t *j;

	fx_init(&f);
	fx_start(&f, &o);
	fx_run(&f, client_too_long);
	ck_assert_int_eq(f.n_answers, 1);
	j = answer(&f, 0);
	ck_assert_str_eq(jcode(j), "too_long");
	json_decref(j);
	ck_assert(f.eof); /* and the connection is closed */
	fx_free(&f);
}
END_TEST

static void client_idle(struct fx *f)
{
	int busy = cconnect(f), lazy = cconnect(f);

	if (busy < 0 || lazy < 0)
		return;
	wr(lazy, "{\"cmd\":\"li", 10); /* half a line, then nothing */
	/* The busy one completes a request every 100 ms for 800 ms: it stays. */
	for (int i = 0; i < 8; i++) {
		wr(busy, "{\"cmd\":\"status\"}\n", 17);
		usleep(100000);
	}
	read_answers(f, busy, 8, 2000);
	wait_eof(f, lazy, 2000);
	close(busy);
	close(lazy);
}

START_TEST(test_ctlsock_idle_timeout)
{
	struct fx f;
	struct cs_ctlsock_opts o = { .idle_ms = 300 };

	fx_init(&f);
	fx_start(&f, &o);
	fx_run(&f, client_idle);
	ck_assert_int_eq(f.n_answers, 8);
	ck_assert(f.eof);
	/* The lazy client was dropped about idle_ms after connecting, not at the end. */
	ck_assert_msg(f.eof_after < 0.2, "lazy client dropped %.2f s after the busy one finished",
		      f.eof_after);
	fx_free(&f);
}
END_TEST

static void client_nothing(struct fx *f)
{
	int fd = cconnect(f);

	if (fd >= 0)
		close(fd);
}

START_TEST(test_ctlsock_file_mode_and_removal)
{
	struct fx f;
	struct cs_ctlsock_opts o = { .mode = 0640 };
	struct stat st;

	fx_init(&f);
	fx_start(&f, &o);
	ck_assert_int_eq(lstat(f.path, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 0640);
	ck_assert_str_eq(cs_ctlsock_path(f.s), f.path);
	fx_run(&f, client_nothing);
	ck_assert_int_eq(f.connect_errno, 0);
	ck_assert_int_eq(lstat(f.path, &st), -1); /* removed at close */
	/* No temporary directory left next to it. */
	char *cmd, *out = NULL;
	ck_assert_int_gt(asprintf(&cmd, "ls -A %s", f.dir), 0);
	cs_test_run(cmd, &out);
	ck_assert_str_eq(out, "");
	free(out);
	free(cmd);
	fx_free(&f);
}
END_TEST

static int bind_at(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%.100s", path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

START_TEST(test_ctlsock_stale_replaced)
{
	struct fx f;
	struct cs_ctlsock_opts o = { 0 };
	struct stat before, after;

	fx_init(&f);
	/* A crashed agent's socket: bound, nobody listening any more. */
	close(bind_at(f.path));
	ck_assert_int_eq(lstat(f.path, &before), 0);
	fx_start(&f, &o);
	ck_assert_int_eq(lstat(f.path, &after), 0);
	ck_assert(before.st_ino != after.st_ino);
	fx_run(&f, client_nothing);
	ck_assert_int_eq(f.connect_errno, 0);
	fx_free(&f);
}
END_TEST

START_TEST(test_ctlsock_live_not_stolen)
{
	struct fx f;
	struct cs_ctlsock_opts o = { .mode = 0660, .group = (gid_t)-1, .admin_group = (gid_t)-1 };
	char err[512];
	struct stat before, after;

	fx_init(&f);
	int live = bind_at(f.path);
	ck_assert_int_eq(listen(live, 5), 0);
	ck_assert_int_eq(lstat(f.path, &before), 0);
	o.path = f.path;
	ck_assert_ptr_null(cs_ctlsock_new(&f.loop, &o, &fake, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "another process is listening"));
	uv_run(&f.loop, UV_RUN_DEFAULT); /* the half-made server closes its handles */
	ck_assert_int_eq(lstat(f.path, &after), 0);
	ck_assert(before.st_ino == after.st_ino); /* still the live one */
	close(live);

	/* Not a socket at all: left alone. */
	unlink(f.path);
	free(cs_test_write(NULL, f.path, "precious\n", 0644));
	ck_assert_ptr_null(cs_ctlsock_new(&f.loop, &o, &fake, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "is not a socket"));
	uv_run(&f.loop, UV_RUN_DEFAULT);
	size_t len;
	char *back = cs_test_read(f.path, &len);
	ck_assert_str_eq(back, "precious\n");
	free(back);
	fx_free(&f);
}
END_TEST

static struct fx *mf;
static uv_async_t event_async;

/* On the loop: the backend publishes that alpha was renewed, as the pipeline does. */
static void on_event_async(uv_async_t *h)
{
	struct cs_event ev = { .type = CS_EVENT_RENEWED, .cert = "alpha", .time = time(NULL),
			       .renewal = 1, .outcome = CS_RENEWAL_VERIFIED };

	ck_assert_ptr_nonnull(sub_fn);
	sub_fn(sub_arg, &ev);
	uv_close((uv_handle_t *)h, NULL);
}

static void client_event(struct fx *f)
{
	char *mpath;
	struct stat st;

	(void)f;
	ck_assert_int_gt(asprintf(&mpath, "%s/m.prom", mf->dir), 0);
	usleep(100000);
	unlink(mpath);
	uv_async_send(&event_async);
	for (int i = 0; i < 40 && stat(mpath, &st) < 0; i++)
		usleep(25000);
	f->connect_errno = stat(mpath, &st) == 0 ? 0 : ENOENT;
	free(mpath);
}

START_TEST(test_ctlsock_metrics_file)
{
	struct fx f;
	struct cs_ctlsock_opts o = { 0 };
	char *mpath, *text;
	size_t len;

	fx_init(&f);
	mf = &f;
	ck_assert_int_gt(asprintf(&mpath, "%s/m.prom", f.dir), 0);
	o.metrics_file = mpath;
	fx_start(&f, &o);
	ck_assert_ptr_nonnull(sub_fn); /* subscribed to the backend's events */
	uv_async_init(&f.loop, &event_async, on_event_async);
	fx_run(&f, client_event);
	ck_assert_msg(f.connect_errno == 0, "no metrics file within 1 s of an event");
	ck_assert_ptr_null(sub_fn); /* the subscription was taken back at close */
	text = cs_test_read(mpath, &len);
	ck_assert_ptr_nonnull(strstr(text, "certsync_cert_failures{name=\"beta\"} 2\n"));
	/* The event was counted. */
	ck_assert_ptr_nonnull(strstr(text, "certsync_renewals_total{result=\"success\"} 1\n"));
	free(text);
	free(mpath);
	fx_free(&f);
}
END_TEST

/* status, the same again, then again once gamma has failed. */
static void client_status_changes(struct fx *f)
{
	static const char req[] = "{\"cmd\":\"status\"}\n";
	int fd = cconnect(f);

	if (fd < 0)
		return;
	wr(fd, req, sizeof(req) - 1);
	wr(fd, req, sizeof(req) - 1);
	read_answers(f, fd, 2, 5000);
	__atomic_store_n(&gamma_failed, 1, __ATOMIC_SEQ_CST);
	wr(fd, req, sizeof(req) - 1);
	read_answers(f, fd, 3, 5000);
	close(fd);
}

START_TEST(test_ctlsock_status_follows_changes)
{
	struct fx f;
	struct cs_ctlsock_opts o = { 0 };

	fx_init(&f);
	fx_start(&f, &o);
	fx_run(&f, client_status_changes);
	ck_assert_int_eq(f.n_answers, 3);
	json_t *a = answer(&f, 0), *c = answer(&f, 2);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(a, "states"), "failed")),
			 1);
	ck_assert_int_eq(json_array_size(json_object_get(a, "problems")), 1);
	/* The rendered answer is kept, not a stale one: gamma's failure shows at once. */
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(c, "states"), "failed")),
			 2);
	ck_assert_int_eq(json_array_size(json_object_get(c, "problems")), 2);
	ck_assert_str_eq(json_string_value(json_object_get(
				 json_array_get(json_object_get(c, "problems"), 1), "name")),
			 "gamma");
	json_decref(a);
	json_decref(c);
	fx_free(&f);
}
END_TEST

/* renew all over 40 certs (sliced over several turns), then status: answered in order. */
static void client_renew_all_sliced(struct fx *f)
{
	static const char req[] = "{\"cmd\":\"renew\",\"name\":\"all\",\"force\":true}\n"
				  "{\"cmd\":\"status\"}\n";
	int fd = cconnect(f);

	if (fd < 0)
		return;
	wr(fd, req, sizeof(req) - 1);
	read_answers(f, fd, 2, 5000);
	close(fd);
}

START_TEST(test_ctlsock_renew_all_sliced)
{
	struct fx f;
	struct cs_ctlsock_opts o = { 0 };

	fx_init(&f);
	n_certs = 40;
	fx_start(&f, &o);
	fx_run(&f, client_renew_all_sliced);
	ck_assert_int_eq(f.n_answers, 2);
	json_t *r = answer(&f, 0), *st = answer(&f, 1);
	json_t *counts = json_object_get(r, "counts");
	ck_assert(json_is_true(json_object_get(r, "ok")));
	ck_assert_int_eq(json_integer_value(json_object_get(counts, "started")), 39);
	ck_assert_int_eq(json_integer_value(json_object_get(counts, "busy")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(counts, "not_due")), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(counts, "error")), 0);
	ck_assert_int_eq(json_array_size(json_object_get(r, "results")), 40);
	ck_assert_int_eq(renews, 39);
	ck_assert_int_eq(json_integer_value(json_object_get(st, "certs")), 40);
	json_decref(r);
	json_decref(st);
	fx_free(&f);
}
END_TEST

Suite *ctlsock_suite(void)
{
	Suite *s = suite_create("ctlsock");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_ctlsock_access, 0,
			    sizeof(access_cases) / sizeof(access_cases[0]));
	tcase_add_test(tc, test_ctlsock_protocol);
	tcase_add_test(tc, test_ctlsock_pipelined_in_order);
	tcase_add_test(tc, test_ctlsock_revoke_deferred_in_order);
	tcase_add_test(tc, test_ctlsock_revoke_client_gone);
	tcase_add_test(tc, test_ctlsock_too_long);
	tcase_add_test(tc, test_ctlsock_idle_timeout);
	tcase_add_test(tc, test_ctlsock_file_mode_and_removal);
	tcase_add_test(tc, test_ctlsock_stale_replaced);
	tcase_add_test(tc, test_ctlsock_live_not_stolen);
	tcase_add_test(tc, test_ctlsock_metrics_file);
	tcase_add_test(tc, test_ctlsock_status_follows_changes);
	tcase_add_test(tc, test_ctlsock_renew_all_sliced);
	suite_add_tcase(s, tc);
	return s;
}
