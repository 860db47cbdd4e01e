/*
 * cs_netproc - the parent's side of privilege separation (see cs_netproc.h):
 * the supervisor of netproc (start, restart with backoff, stop) and the
 * frames it sends, each checked by np_permit before it is acted on. The
 * proxy issuer is in cs_netproc_proxy.c, the host calls in cs_netproc_host.c.
 */
#include "cs_netproc_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

extern char **environ;

struct cs_netproc__sup cs_netproc__s = { .issuers = TAILQ_HEAD_INITIALIZER(cs_netproc__s.issuers),
					 .reqs = TAILQ_HEAD_INITIALIZER(cs_netproc__s.reqs) };

/* ---- sending ------------------------------------------------------------ */

void cs_netproc__send_buf(struct cs_frame_buf *b, int fd)
{
	if (cs_frame_end(b) == 0 && S.chan != NULL && S.state == SUP_READY)
		cs_chan_send(S.chan, b->p, b->n, fd);
	cs_frame_buf_free(b);
}

/* ---- netproc's frames -------------------------------------------------- */

static const struct np_permit_issuer *permit_issuer(void *arg, uint64_t id)
{
	struct px *p;

	(void)arg;
	TAILQ_FOREACH(p, &S.issuers, link)
		if (p->id == id)
			return &p->pi;
	return NULL;
}

static struct np_permit_req *permit_req(void *arg, uint64_t id)
{
	struct preq *r = cs_netproc__req_find(id);

	(void)arg;
	/* Only requests sent to this netproc; a cancelled one may still get its answer. */
	if (r == NULL || r->gen != S.gen)
		return NULL;
	return &r->pr;
}

static void sup_kill(const char *why);

static void on_ready(void)
{
	struct px *p;
	struct preq *r, *next;

	S.state = SUP_READY;
	S.ready = true;
	uv_timer_stop(&S.timer);
	cs_info("netproc: ready (pid %d)", S.proc.pid);
	TAILQ_FOREACH(p, &S.issuers, link)
		cs_netproc__send_open(p);
	for (r = TAILQ_FIRST(&S.reqs); r != NULL; r = next) {
		next = TAILQ_NEXT(r, link);
		if (r->answered)
			cs_netproc__req_free(r); /* its netproc died: no answer is coming */
		else
			cs_netproc__send_req(r);
	}
#ifdef CS_NETPROC_TEST
	/* Test builds: what a compromised netproc would try, on the first start only. */
	const char *t = getenv("CERTSYNC_TEST_NETPROC");
	if (t != NULL && S.gen == 1) {
		char *copy = strdup(t), *save = NULL;
		for (char *w = copy ? strtok_r(copy, ",", &save) : NULL; w != NULL;
		     w = strtok_r(NULL, ",", &save)) {
			struct cs_frame_buf b = { 0 };
			cs_frame_begin(&b, NP_P_TEST, 0);
			cs_frame_str(&b, NP_T_WHAT, w);
			cs_netproc__send_buf(&b, -1);
		}
		free(copy);
	}
#endif
}

/* A line of netproc's log, into ours: one line, whatever it holds. */
static void log_line(const struct cs_frame_msg *m)
{
	char line[4097];

	snprintf(line, sizeof(line), "%s", cs_frame_str_of(m, NP_T_TEXT));
	for (char *c = line; *c != '\0'; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	cs_log((enum cs_log_level)cs_frame_u64_of(m, NP_T_LEVEL, CS_LOG_INFO), "%s", line);
}

static void on_frame(void *arg, const unsigned char *frame, size_t n)
{
	struct np_permit_ctx ctx = { permit_issuer, permit_req, NULL, false };
	struct cs_frame_msg m;
	char why[512];
	struct preq *r;

	(void)arg;
#ifdef CS_NETPROC_TEST
	ctx.test_build = true;
#endif
	if (S.state != SUP_STARTING && S.state != SUP_READY)
		return;
	if (np_permit_check(&ctx, frame, n, &m, why, sizeof(why)) < 0) {
		sup_kill(why);
		return;
	}
	if ((m.type == NP_N_READY) != (S.state == SUP_STARTING)) {
		cs_frame_msg_free(&m);
		sup_kill(S.state == SUP_STARTING ? "a message before NP_N_READY" : "NP_N_READY twice");
		return;
	}
	switch (m.type) {
	case NP_N_READY:
		on_ready();
		break;
	case NP_N_LOG:
		log_line(&m);
		break;
	case NP_N_ISSUED:
	case NP_N_DONE:
	case NP_N_WINDOW:
	case NP_N_PROBED:
	case NP_N_DNSA:
		r = cs_netproc__req_find(m.id);
		cs_netproc__answer_req(r, &m);
		break;
	case NP_N_TEST:
		cs_notice("netproc test: %s", cs_frame_str_of(&m, NP_T_WHAT));
		break;
	case NP_N_ORDER: /* kept for a netproc that would take the request over */
		r = cs_netproc__req_find(m.id);
		free(r->order_url);
		r->order_url = strdup(cs_frame_str_of(&m, NP_T_ORDER_URL));
		break;
	default: /* NP_N_KEY, _SIGN, _EAB, _CHALL, _LISTEN: np_permit found its request */
		cs_netproc__host_call(&m);
	}
	cs_frame_msg_free(&m);
}

/* ---- the supervisor ---------------------------------------------------- */

static void on_chan_error(void *arg, int status, const char *why)
{
	(void)arg;
	if (S.state == SUP_STOPPING)
		return;
	/* A frame too large or a flood of descriptors is netproc's doing: a violation. */
	if (status == -EMSGSIZE || status == -EBADMSG) {
		sup_kill(why);
		return;
	}
	/*
	 * End of file, a reset or POLLERR (libuv says EBADF): netproc is dying or
	 * dead; make sure, and its exit (on_proc_exit) sends its requests again.
	 */
	if (status != 0)
		cs_info("netproc: its channel failed (%s): it is gone", why);
	if (S.proc_open)
		kill(S.proc.pid, SIGKILL);
}

static void on_timer(uv_timer_t *t)
{
	(void)t;
	switch (S.state) {
	case SUP_IDLE:
		cs_netproc__start();
		break;
	case SUP_STARTING:
		sup_kill("it did not say it was ready in time");
		break;
	case SUP_STOPPING:
		if (S.proc_open)
			kill(S.proc.pid, SIGKILL);
		break;
	default:
		break;
	}
}

static void timer_start(uint64_t ms)
{
	if (!S.timer_open) {
		uv_timer_init(S.loop, &S.timer);
		S.timer_open = true;
	}
	uv_timer_start(&S.timer, on_timer, ms, 0);
}

static void on_timer_closed(uv_handle_t *h);

/* No timer any more: nothing waits for a start, a ready or a stop. */
static void timer_close(void)
{
	if (S.timer_open && !uv_is_closing((uv_handle_t *)&S.timer)) {
		uv_timer_stop(&S.timer);
		uv_close((uv_handle_t *)&S.timer, on_timer_closed);
	}
}

static void on_proc_closed(uv_handle_t *h)
{
	(void)h;
	S.proc_open = false;
	if (S.state == SUP_IDLE && cs_netproc__needed() &&
	    !(S.timer_open && uv_is_active((uv_handle_t *)&S.timer)))
		cs_netproc__start();
}

static void on_timer_closed(uv_handle_t *h)
{
	(void)h;
	S.timer_open = false;
}

/* Nothing can reach the network now: every request that waits fails with why. */
static void fail_waiting(const char *why)
{
	while (!TAILQ_EMPTY(&S.reqs)) {
		struct preq *r = TAILQ_FIRST(&S.reqs);
		cs_netproc__req_fail(r, -EIO, why);
		cs_netproc__req_free(r);
	}
}

/* What is left of a netproc that is gone: requests are sent again or failed. */
static void after_death(bool violation, const char *why)
{
	struct preq *r;

again: /* a callback may change the list: start over after each */
	TAILQ_FOREACH(r, &S.reqs, link) {
		if (r->gen == 0)
			continue;
		cs_netproc__req_cleanup_challs(r);
		r->gen = 0;
		if (r->answered) {
			cs_netproc__req_free(r);
			goto again;
		}
		if (violation || r->sends >= MAX_SENDS) {
			char msg[768];
			snprintf(msg, sizeof(msg), "the network process %s: %s",
				 violation ? "was stopped" : "died too often during this request", why);
			cs_netproc__req_fail(r, -EPROTO, msg);
			cs_netproc__req_free(r);
			goto again;
		}
	}
}

static void on_proc_exit(uv_process_t *proc, int64_t status, int sig)
{
	char why[128];
	uint64_t age = uv_now(S.loop) - S.started_ms, delay = 0;
	bool was_killed = S.state == SUP_DYING;

	if (sig != 0)
		snprintf(why, sizeof(why), "killed by signal %d", sig);
	else
		snprintf(why, sizeof(why), "exited with status %lld", (long long)status);
	if (S.chan != NULL) {
		cs_chan_close(S.chan);
		S.chan = NULL;
	}
	uv_close((uv_handle_t *)proc, on_proc_closed);
	if (S.state == SUP_STOPPING || !cs_netproc__needed()) {
		S.state = SUP_IDLE;
		after_death(false, why);
		if (cs_netproc__needed()) /* asked for again while it stopped */
			timer_start(0);
		else
			timer_close();
		return;
	}
	if (!was_killed) {
		struct preq *r;
		unsigned n = 0;
		TAILQ_FOREACH(r, &S.reqs, link)
			n += r->gen != 0 && !r->answered;
		cs_err("netproc (pid %d) %s; starting it again (%u requests in flight, to be sent "
		       "again)", proc->pid, why, n);
	}
	after_death(was_killed, was_killed ? "it broke the protocol" : why);
	/*
	 * One that never said it was ready cannot start (a missing user, a
	 * sandbox the kernel refuses): what waits fails now, as when it cannot
	 * be spawned, rather than wait through restart after restart.
	 */
	if (!S.ready) {
		char msg[256];
		snprintf(msg, sizeof(msg),
			 "the network process %s before it was ready (see the log)", why);
		fail_waiting(msg);
	}
	S.state = SUP_IDLE;
	S.young_deaths = age < YOUNG_MS && !S.proven ? S.young_deaths + 1 : 0;
	if (S.young_deaths > 1) {
		delay = BACKOFF_FIRST_MS << (S.young_deaths < 10 ? S.young_deaths - 2 : 8);
		if (delay > BACKOFF_MAX_MS)
			delay = BACKOFF_MAX_MS;
	}
	S.restarts++;
	/* Started again after the pause when something still needs it, else when asked. */
	if (cs_netproc__needed())
		timer_start(delay);
	else
		timer_close();
}

/* A protocol violation (or a hang): log it, kill netproc; its death fails the requests. */
static void sup_kill(const char *why)
{
	if (S.state == SUP_DYING || S.state == SUP_STOPPING || S.state == SUP_IDLE)
		return;
	S.violations++;
	cs_err("netproc (pid %d) broke the protocol: %s; killing it and failing the requests "
	       "in flight", S.proc.pid, why);
	S.state = SUP_DYING;
	if (S.chan != NULL) {
		cs_chan_close(S.chan);
		S.chan = NULL;
	}
	kill(S.proc.pid, SIGKILL);
}

/* ---- netproc's stderr: what it says before (or without) its channel ---- */

struct errpipe {
	uv_pipe_t pipe;
	char line[1024];
	size_t len;
};

static void on_errpipe_closed(uv_handle_t *h)
{
	free(h->data);
}

static void err_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	static char chunk[4096];

	(void)h;
	(void)hint;
	*buf = uv_buf_init(chunk, sizeof(chunk));
}

/* Each line netproc writes to stderr goes to the log, control characters masked. */
static void on_err_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct errpipe *e = st->data;

	if (n < 0) {
		if (e->len > 0)
			cs_err("netproc: %.*s", (int)e->len, e->line);
		uv_close((uv_handle_t *)st, on_errpipe_closed);
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		char c = buf->base[i];
		if (c == '\n' || e->len == sizeof(e->line)) {
			cs_err("netproc: %.*s", (int)e->len, e->line);
			e->len = 0;
			if (c == '\n')
				continue;
		}
		e->line[e->len++] = (unsigned char)c < 0x20 || c == 0x7f ? '?' : c;
	}
}

/* The environment netproc gets: the sanitizers' and the tests' variables, nothing else. */
static char **child_env(void)
{
	static const char *const keep[] = { "ASAN_OPTIONS=", "UBSAN_OPTIONS=", "LSAN_OPTIONS=",
					    "TZ=", "CERTSYNC_TEST_", NULL };
	size_t n = 0;
	char **env = calloc(64, sizeof(char *));

	for (char **e = environ; env != NULL && *e != NULL && n < 63; e++)
		for (size_t i = 0; keep[i] != NULL; i++)
			if (strncmp(*e, keep[i], strlen(keep[i])) == 0) {
				env[n++] = *e;
				break;
			}
	return env;
}

/* Refreshes the root's copies (the issuers' ca_bundle files among them). */
int cs_netproc__prepare_root(char *err, size_t errlen)
{
	struct np_root_file extra[64];
	char dst[64][64];
	size_t n = 0;
	struct px *p;

	TAILQ_FOREACH(p, &S.issuers, link) {
		if (p->o.ca_bundle == NULL || n >= 64)
			continue;
		snprintf(dst[n], sizeof(dst[n]), "/extra/%llu.pem", (unsigned long long)p->id);
		extra[n] = (struct np_root_file){ p->o.ca_bundle, dst[n] };
		n++;
	}
	return np_sandbox_prepare(S.root, extra, n, err, errlen);
}

void cs_netproc__start(void)
{
	int sv[2], rc;
	char err[512] = "";
	char *args[] = { S.program, "--netproc", S.root, S.user, NULL };
	struct errpipe *ep = calloc(1, sizeof(*ep));
	uv_stdio_container_t stdio[4] = {
		{ .flags = UV_IGNORE },
		{ .flags = UV_IGNORE },
		{ .flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE },
		{ .flags = UV_INHERIT_FD },
	};
	uv_process_options_t po = { .exit_cb = on_proc_exit, .file = S.program, .args = args,
				    .stdio_count = 4, .stdio = stdio };

	if (S.state != SUP_IDLE || S.proc_open || !cs_netproc__needed() || S.root == NULL ||
	    ep == NULL) {
		free(ep);
		return;
	}
	if (cs_netproc__prepare_root(err, sizeof(err)) < 0) {
		cs_err("netproc: cannot prepare its root %s: %s", S.root, err);
		free(ep);
		goto failed;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		cs_err("netproc: socketpair: %s", strerror(errno));
		free(ep);
		goto failed;
	}
	uv_pipe_init(S.loop, &ep->pipe, 0);
	ep->pipe.data = ep;
	stdio[2].data.stream = (uv_stream_t *)&ep->pipe;
	stdio[3].data.fd = sv[1];
	po.env = child_env();
	rc = po.env != NULL ? uv_spawn(S.loop, &S.proc, &po) : UV_ENOMEM;
	free(po.env);
	close(sv[1]);
	if (rc < 0) {
		close(sv[0]);
		uv_close((uv_handle_t *)&ep->pipe, on_errpipe_closed);
		cs_err("netproc: cannot start %s: %s", S.program, uv_strerror(rc));
		goto failed;
	}
	uv_read_start((uv_stream_t *)&ep->pipe, err_alloc, on_err_read);
	S.proc_open = true;
	S.chan = cs_chan_open(S.loop, sv[0], CS_FRAME_MAX, on_frame, on_chan_error, NULL);
	if (S.chan == NULL) {
		close(sv[0]);
		kill(S.proc.pid, SIGKILL);
		S.state = SUP_DYING;
		return;
	}
	S.gen++;
	S.starts++;
	S.proven = false;
	S.ready = false;
	S.started_ms = uv_now(S.loop);
	S.state = SUP_STARTING;
	cs_info("netproc: started (pid %d)", S.proc.pid);
	timer_start(READY_TIMEOUT_MS);
	return;
failed:
	/* Nothing can reach the CA: fail what waits, try again later. */
	after_death(false, err[0] ? err : "it cannot start");
	fail_waiting("the network process cannot start (see the log)");
	S.restarts++;
	if (cs_netproc__needed())
		timer_start(BACKOFF_MAX_MS);
	else
		timer_close();
}

/* True while the netproc of generation gen runs and talks to us. */
bool cs_netproc__alive(unsigned gen)
{
	return gen == S.gen && S.state == SUP_READY;
}

/* While an acme issuer is open or a request (a probe) waits. */
bool cs_netproc__needed(void)
{
	struct preq *r;

	if (S.n_open > 0)
		return true;
	TAILQ_FOREACH(r, &S.reqs, link)
		if (!r->answered)
			return true;
	return false;
}

void cs_netproc__maybe_stop(void)
{
	if (!cs_netproc__needed())
		cs_netproc__stop();
}

/* Nothing needs netproc any more: it goes (it exits when its channel closes). */
void cs_netproc__stop(void)
{
	if (S.state == SUP_IDLE) {
		timer_close();
		return;
	}
	S.state = SUP_STOPPING;
	if (S.chan != NULL) {
		cs_chan_close(S.chan);
		S.chan = NULL;
	}
	timer_start(STOP_TIMEOUT_MS);
}

void cs_netproc_enable(const char *program, const char *user, const char *state_dir)
{
#ifdef CS_NETPROC_TEST
	/* Test builds: under valgrind /proc/self/exe is valgrind; a test may name another. */
	if (getenv("CERTSYNC_TEST_NETPROC_PROGRAM") != NULL)
		program = getenv("CERTSYNC_TEST_NETPROC_PROGRAM");
#endif
	free(S.program);
	free(S.user);
	free(S.root);
	S.program = strdup(program);
	S.user = user != NULL ? strdup(user) : NULL;
	if (asprintf(&S.root, "%s/netproc", state_dir) < 0)
		S.root = NULL;
	S.enabled = S.program != NULL && S.root != NULL;
}

bool cs_netproc_enabled(void)
{
	return S.enabled;
}

void cs_netproc_stats(struct cs_netproc_stats *st)
{
	struct preq *r;

	memset(st, 0, sizeof(*st));
	st->pid = S.proc_open && S.state != SUP_IDLE ? S.proc.pid : 0;
	st->starts = S.starts;
	st->restarts = S.restarts;
	st->violations = S.violations;
	TAILQ_FOREACH(r, &S.reqs, link)
		st->requests += !r->answered;
}
