/*
 * np_sandbox_drv - driver for tests/integration/netproc_sandbox.sh: does
 * what netproc does around its cage. Prepares ROOT with CAFILE as an extra
 * file (/extra/test/ca.pem), enters the sandbox, prints the Uid, CapEff,
 * NoNewPrivs and Seccomp lines of its /proc/self/status (opened before the
 * chroot), tries to open each --open PATH, then either makes the --forbid
 * call or does an HTTPS GET of URL through cs_http (libcurl on libuv, the
 * threaded resolver) trusting only /extra/test/ca.pem.
 *
 * usage: np_sandbox_drv ROOT CAFILE URL [--user USER] [--open PATH]...
 *                       [--wait] [--forbid fork|exec|mount|openw|socket]
 * --wait: after the status lines, print "waiting" and read stdin to its end
 * (the test looks at /proc/PID meanwhile). Exit status: 0 when the GET
 * answered 200, 1 otherwise; a forbidden call kills it with SIGSYS (openw
 * and socket must fail with EACCES instead: exit 0 when they do).
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "cs_http.h"
#include "np_sandbox.h"

static int got_code = -1;

static void on_response(void *arg, const struct cs_http_response *res)
{
	if (res->status == 0) {
		printf("GET: %ld, %zu bytes\n", res->code, res->len);
		got_code = (int)res->code;
	} else {
		printf("GET failed: %s\n", res->error != NULL ? res->error : "?");
	}
	cs_http_close(arg, NULL, NULL);
}

/* The lines of /proc/self/status the test asserts, from fd (opened before the chroot). */
static void print_status(int fd)
{
	static const char *const keys[] = {"Uid:", "Gid:", "Groups:", "CapEff:", "CapPrm:",
					   "CapBnd:", "NoNewPrivs:", "Seccomp:"};
	char buf[8192], *line, *save = NULL;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	size_t i;

	if (n <= 0) {
		printf("status: unreadable\n");
		return;
	}
	buf[n] = '\0';
	for (line = strtok_r(buf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
		for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (strncmp(line, keys[i], strlen(keys[i])) == 0)
				printf("%s\n", line);
}

/* The call the filter must refuse; returns only when it was refused with an errno. */
static int forbidden(const char *what)
{
	int fd;

	fflush(stdout);
	if (strcmp(what, "fork") == 0) {
		pid_t p = fork();

		if (p == 0)
			_exit(0);
		printf("fork: %s\n", p < 0 ? strerror(errno) : "a child was made");
		return 1;
	}
	if (strcmp(what, "exec") == 0) {
		execl("/bin/true", "true", (char *)NULL);
		printf("exec: %s\n", strerror(errno));
		return 1;
	}
	if (strcmp(what, "mount") == 0) {
		int rc = mount("none", "/", "tmpfs", 0, NULL);

		printf("mount: %s\n", rc == 0 ? "mounted" : strerror(errno));
		return 1;
	}
	if (strcmp(what, "openw") == 0) {
		fd = open("/etc/hosts", O_WRONLY | O_APPEND);
		printf("open for writing: %s\n", fd < 0 ? strerror(errno) : "opened");
		return fd < 0 && errno == EACCES ? 0 : 1;
	}
	if (strcmp(what, "socket") == 0) {
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		printf("socket(AF_UNIX): %s\n", fd < 0 ? strerror(errno) : "made");
		return fd < 0 && errno == EACCES ? 0 : 1;
	}
	printf("unknown --forbid %s\n", what);
	return 2;
}

int main(int argc, char **argv)
{
	struct np_sandbox_opts so = {0};
	struct np_root_file extra;
	struct cs_http_opts ho = {.ca_bundle = "/extra/test/ca.pem", .timeout_s = 20};
	struct cs_http_request rq = {.method = "GET"};
	const char *opens[8], *forbid = NULL;
	size_t n_open = 0, i;
	char err[512], buf[64];
	int wait = 0, status_fd, a;
	uv_loop_t loop;
	cs_http *h;

	if (argc < 4) {
		fprintf(stderr, "usage: %s ROOT CAFILE URL [--user U] [--open PATH]... [--wait] "
				"[--forbid fork|exec|mount|openw|socket]\n", argv[0]);
		return 2;
	}
	so.root = argv[1];
	extra.src = argv[2];
	extra.dst = "/extra/test/ca.pem";
	rq.url = argv[3];
	for (a = 4; a < argc; a++) {
		if (strcmp(argv[a], "--user") == 0 && a + 1 < argc)
			so.user = argv[++a];
		else if (strcmp(argv[a], "--open") == 0 && a + 1 < argc && n_open < 8)
			opens[n_open++] = argv[++a];
		else if (strcmp(argv[a], "--forbid") == 0 && a + 1 < argc)
			forbid = argv[++a];
		else if (strcmp(argv[a], "--wait") == 0)
			wait = 1;
		else
			return fprintf(stderr, "bad argument %s\n", argv[a]), 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return fprintf(stderr, "curl_global_init failed\n"), 1;
	if (np_sandbox_prepare(so.root, &extra, 1, err, sizeof(err)) < 0)
		return fprintf(stderr, "prepare: %s\n", err), 1;
	status_fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (np_sandbox_enter(&so, err, sizeof(err)) < 0)
		return fprintf(stderr, "enter: %s\n", err), 1;
	print_status(status_fd);
	if (wait) {
		printf("waiting\n");
		while (read(0, buf, sizeof(buf)) > 0)
			;
	}
	for (i = 0; i < n_open; i++) {
		int fd = open(opens[i], O_RDONLY);

		printf("open %s: %s\n", opens[i], fd < 0 ? strerror(errno) : "opened");
		if (fd >= 0)
			close(fd);
	}
	if (forbid != NULL)
		return forbidden(forbid);
	if (uv_loop_init(&loop) != 0)
		return fprintf(stderr, "uv_loop_init failed\n"), 1;
	h = cs_http_new(&loop, &ho, err, sizeof(err));
	if (h == NULL)
		return fprintf(stderr, "cs_http_new: %s\n", err), 1;
	if (cs_http_send(h, &rq, on_response, h, NULL) < 0)
		return fprintf(stderr, "cs_http_send failed\n"), 1;
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	return got_code == 200 ? 0 : 1;
}
