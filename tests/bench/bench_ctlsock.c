/*
 * bench_ctlsock - load generator for the status socket: C client threads,
 * each on its own connection, send one request line, read the whole answer
 * line, and repeat for a fixed time. Prints requests per second and the
 * latency distribution; every answer must start with {"ok":true.
 *
 *   bench_ctlsock -s SOCKET [-c CLIENTS] [-d SECONDS] [-r REQUEST]
 *
 * Run by tests/bench/ctlsock_load.sh (see README.md), never by ctest.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct worker {
	pthread_t th;
	double *lat;
	size_t n, cap;
	size_t bad, bytes;
	int err;
};

static const char *sock_path;
static const char *request = "{\"cmd\":\"list\"}\n";
static double deadline;
static pthread_barrier_t start;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *run(void *arg)
{
	struct worker *w = arg;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t cap = 1 << 20, len;
	char *buf = malloc(cap);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	if (buf == NULL || fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		w->err = errno;
		pthread_barrier_wait(&start);
		free(buf);
		return NULL;
	}
	pthread_barrier_wait(&start);
	while (now() < deadline) {
		double t0 = now();
		size_t rl = strlen(request);
		if (write(fd, request, rl) != (ssize_t)rl) {
			w->err = errno;
			break;
		}
		len = 0;
		for (;;) {
			if (len == cap) {
				cap *= 2;
				buf = realloc(buf, cap);
			}
			ssize_t r = read(fd, buf + len, cap - len);
			if (r <= 0) {
				w->err = r < 0 ? errno : EPIPE;
				goto out;
			}
			len += (size_t)r;
			if (buf[len - 1] == '\n')
				break;
		}
		if (w->n == w->cap) {
			w->cap = w->cap ? w->cap * 2 : 1024;
			w->lat = realloc(w->lat, w->cap * sizeof(double));
		}
		w->lat[w->n++] = now() - t0;
		w->bytes += len;
		if (strncmp(buf, "{\"ok\":true", 10) != 0)
			w->bad++;
	}
out:
	close(fd);
	free(buf);
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int clients = 200, opt;
	double secs = 10;
	char *req = NULL;

	while ((opt = getopt(argc, argv, "s:c:d:r:")) != -1) {
		switch (opt) {
		case 's':
			sock_path = optarg;
			break;
		case 'c':
			clients = atoi(optarg);
			break;
		case 'd':
			secs = atof(optarg);
			break;
		case 'r':
			if (asprintf(&req, "%s\n", optarg) < 0)
				return 1;
			request = req;
			break;
		default:
			fprintf(stderr, "usage: bench_ctlsock -s SOCKET [-c CLIENTS] [-d SECONDS] "
					"[-r REQUEST]\n");
			return 2;
		}
	}
	if (sock_path == NULL || clients < 1 || secs <= 0) {
		fprintf(stderr, "bench_ctlsock: -s SOCKET is needed\n");
		return 2;
	}
	struct worker *w = calloc((size_t)clients, sizeof(*w));
	pthread_barrier_init(&start, NULL, (unsigned)clients + 1);
	deadline = now() + 3600;
	for (int i = 0; i < clients; i++)
		pthread_create(&w[i].th, NULL, run, &w[i]);
	deadline = now() + secs;
	pthread_barrier_wait(&start);
	double t0 = now();
	for (int i = 0; i < clients; i++)
		pthread_join(w[i].th, NULL);
	double elapsed = now() - t0;

	size_t total = 0, bad = 0, errs = 0, bytes = 0;
	for (int i = 0; i < clients; i++) {
		total += w[i].n;
		bad += w[i].bad;
		bytes += w[i].bytes;
		errs += w[i].err != 0;
	}
	double *all = malloc((total ? total : 1) * sizeof(double));
	size_t k = 0;
	for (int i = 0; i < clients; i++) {
		memcpy(all + k, w[i].lat, w[i].n * sizeof(double));
		k += w[i].n;
		free(w[i].lat);
	}
	qsort(all, total, sizeof(double), cmp);
	printf("clients %d, %.1f s: %zu answers (%zu not ok), %zu clients with errors\n", clients,
	       elapsed, total, bad, errs);
	if (total > 0)
		printf("%.0f requests/s, %.1f MB/s; latency p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, "
		       "max %.1f ms; %.0f bytes per answer\n",
		       total / elapsed, bytes / elapsed / 1e6, all[total / 2] * 1e3,
		       all[(size_t)(total * 0.90)] * 1e3, all[(size_t)(total * 0.99)] * 1e3,
		       all[total - 1] * 1e3, (double)bytes / (double)total);
	free(all);
	free(w);
	free(req);
	return bad || errs || total == 0 ? 1 : 0;
}
