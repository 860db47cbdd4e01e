/*
 * fuzz_ctlsock - libFuzzer target for the status socket's request handling
 * (agent/control/cs_ctlsock.c): the bytes are sent, as they are, by a client of a
 * real server running in this process on a Unix socket in a scratch
 * directory, over two fake certificates. The server splits them into lines
 * (CR LF, a last line without its newline, over-long lines), parses each as
 * JSON and answers it with the access of its own uid (read and change), so
 * that every command and its arguments are reached. The client reads until
 * the server hangs up; every answer must be one JSON object per line with
 * "ok". Any crash, leak, hang or undefined behaviour is a bug.
 */
#include "cs_ctlsock.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uv_loop_t loop;
static struct cs_ctlsock *srv;
static char sock_path[108];
static char *const names[] = { "mail.example.test", "smtp.example.test" };

static size_t be_count(void *arg)
{
	(void)arg;
	return 2;
}

static void be_status(void *arg, size_t i, struct cs_cert_status *o)
{
	(void)arg;
	memset(o, 0, sizeof(*o));
	o->name = i == 0 ? "mail" : "web";
	o->state = i == 0 ? CS_CERT_VALID : CS_CERT_FAILED;
	o->issuer = "local";
	o->serial = "01";
	o->sha256 = "00";
	o->not_before = 1700000000;
	o->not_after = 1700000000 + 86400 * 30;
	o->next_renewal = 1700000000 + 86400 * 20;
	o->next_reason = "renew_before";
	o->failures = (int)i;
	o->last_error = i == 0 ? NULL : "deploy: \"quoted\" \x01 error";
	o->names = names;
	o->n_names = 2;
}

static int be_renew(void *arg, const char *name, bool force, cs_renewal_cb cb, void *cbarg)
{
	(void)cb;
	(void)cbarg;
	(void)arg;
	(void)force;
	if (strcmp(name, "all") == 0 || strcmp(name, "mail") == 0)
		return 0;
	return strcmp(name, "web") == 0 ? -EBUSY : -ENOENT;
}

static int be_hook(void *arg, const char *name, char *err, size_t errlen)
{
	(void)arg;
	if (name != NULL && strcmp(name, "mail") != 0) {
		snprintf(err, errlen, "no such section \"%s\"", name);
		return -ENOENT;
	}
	return 0;
}

static size_t be_problems(void *arg, void (*cb)(void *, const char *, const char *, const char *),
			  void *cbarg)
{
	(void)arg;
	if (cb != NULL)
		cb(cbarg, "trust", "bad.pem", "not a certificate");
	return 1;
}

static char sock_dir[64];

static void remove_socket(void)
{
	unlink(sock_path);
	rmdir(sock_dir);
}

static void setup(void)
{
	static const struct cs_ctlsock_backend be = {
		.count = be_count, .status = be_status, .renew = be_renew,
		.reload = be_hook, .rehash = be_hook, .capath_problems = be_problems,
	};
	char dir[] = "/tmp/fuzz-ctlsock.XXXXXX", err[256];

	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(sock_path, sizeof(sock_path), "%s/s", dir);
	struct cs_ctlsock_opts o = {
		.path = sock_path,
		.mode = 0600,
		.group = (gid_t)-1,
		.admin_group = (gid_t)-1,
		/* Small, so that over-long requests are cheap to reach. */
		.max_request = 4096,
	};
	/* As certsyncd's main() does: a client that hangs up must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	uv_loop_init(&loop);
	srv = cs_ctlsock_new(&loop, &o, &be, err, sizeof(err));
	if (srv == NULL) {
		fprintf(stderr, "fuzz_ctlsock: %s\n", err);
		abort();
	}
	snprintf(sock_dir, sizeof(sock_dir), "%s", dir);
	atexit(remove_socket);
}

/* Checks each complete answer line in buf[0..len) and returns the bytes used. */
static size_t check_answers(const char *buf, size_t len)
{
	size_t off = 0;
	const char *nl;

	while ((nl = memchr(buf + off, '\n', len - off)) != NULL) {
		json_t *j = json_loadb(buf + off, (size_t)(nl - (buf + off)), 0, NULL);
		if (j == NULL || !json_is_boolean(json_object_get(j, "ok")))
			abort();
		json_decref(j);
		off = (size_t)(nl - buf) + 1;
	}
	return off;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	static char *in;
	static const size_t cap = 1 << 20;
	size_t sent = 0, got = 0;
	bool closed_w = false;
	int fd, spins = 0;

	if (srv == NULL) {
		setup();
		in = malloc(cap);
		if (in == NULL)
			abort();
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		abort();
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		abort();
	/* Send what the input holds, read the answers, and let the server run,
	   until it hangs up (after the last answer, or a too_long one). */
	for (;;) {
		if (!closed_w) {
			if (sent < size) {
				ssize_t w = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
				if (w > 0)
					sent += (size_t)w;
				else if (w < 0 && errno != EAGAIN)
					closed_w = true; /* the server closed early */
			}
			if (sent == size && !closed_w) {
				shutdown(fd, SHUT_WR);
				closed_w = true;
			}
		}
		ssize_t r = recv(fd, in + got, cap - got, 0);
		if (r == 0)
			break;
		if (r > 0) {
			got += (size_t)r;
			size_t used = check_answers(in, got);
			memmove(in, in + used, got - used);
			got -= used;
			if (got == cap)
				abort(); /* an answer line of a megabyte */
			continue;
		}
		if (errno != EAGAIN && errno != ECONNRESET)
			abort();
		if (errno == ECONNRESET)
			break;
		uv_run(&loop, UV_RUN_NOWAIT);
		if (++spins > 1000000)
			abort(); /* the server neither answers nor hangs up */
		if (spins % 64 == 0) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			poll(&p, 1, 1);
		}
	}
	/* Whatever is left is a last answer without its newline: not allowed. */
	if (got != 0)
		abort();
	close(fd);
	/* Let the server see the hang-up and free the client. */
	for (int i = 0; i < 4; i++)
		uv_run(&loop, UV_RUN_NOWAIT);
	return 0;
}
