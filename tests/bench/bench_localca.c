/*
 * bench_localca - how fast the local-ca issuer issues: N ECDSA P-256
 * certificates, each with a new key and CSR, into a fresh CA directory, with
 * every index.txt/serial/newcerts write fsynced as in production. Prints
 * certificates per second, the CPU time per certificate (user + system: on a
 * machine shared with other work it moves less than the rate) and the peak
 * resident memory (ru_maxrss).
 *
 *   bench_localca [-n N] [-d DIR]    (DIR must be absent or empty; default: a temp dir)
 */
#include "cs_csr.h"
#include "cs_key.h"
#include "cs_localca.h"
#include "cs_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* User and system time of ru, in seconds. */
static double cpu_s(const struct rusage *ru)
{
	return (double)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) +
	       (double)(ru->ru_utime.tv_usec + ru->ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv)
{
	struct cs_localca_opts o = {
		.subject = "/C=US/O=certsync bench/CN=certsync Bench CA",
		.key = CS_KEY_EC_P256,
		.validity_s = 90 * 86400,
		.ca_validity_s = 3650L * 86400,
	};
	char tmpl[] = "/tmp/bench_localca.XXXXXX", err[1024], name[64];
	char *names[2] = { name, "127.0.0.1" };
	struct rusage ru, ru0;
	cs_localca *ca;
	long n = 1000, burst = 1, prefill = 0;
	double t0, t1;
	int c;

	cs_log_open("bench_localca", CS_LOG_STDERR, CS_LOG_WARN);
	while ((c = getopt(argc, argv, "n:d:b:p:")) != -1) {
		switch (c) {
		case 'n':
			n = strtol(optarg, NULL, 10);
			break;
		case 'b':
			burst = strtol(optarg, NULL, 10);
			if (burst < 1 || burst > 4096)
				burst = 1;
			break;
		case 'p':
			prefill = strtol(optarg, NULL, 10);
			break;
		case 'd':
			o.dir = optarg;
			break;
		default:
			fprintf(stderr, "usage: bench_localca [-n N] [-b BURST] [-p PREFILL] [-d DIR]\n");
			return 2;
		}
	}
	if (o.dir == NULL) {
		if (mkdtemp(tmpl) == NULL) {
			perror("mkdtemp");
			return 1;
		}
		o.dir = tmpl;
	}
	if ((ca = cs_localca_open(&o, err, sizeof(err))) == NULL) {
		fprintf(stderr, "bench_localca: %s\n", err);
		return 1;
	}
	if (prefill > 0) {
		/* An index that already names PREFILL certificates (lines only, as openssl writes them). */
		char path[4200];
		FILE *fp;

		snprintf(path, sizeof(path), "%s/index.txt", o.dir);
		if ((fp = fopen(path, "a")) == NULL) {
			perror(path);
			return 1;
		}
		for (long i = 0; i < prefill; i++)
			fprintf(fp, "V\t361231000000Z\t\t%032lX\tunknown\t/CN=prefill%ld.bench.example\n",
				i + 1, i);
		fclose(fp);
	}
	struct cs_localca_req *reqs = calloc((size_t)burst, sizeof(*reqs));
	char (*bnames)[64] = calloc((size_t)burst, 64), *(*bn)[2] = calloc((size_t)burst, sizeof(*bn));
	char (*errs)[1024] = calloc((size_t)burst, 1024);
	double first = 0, lastk = 0, tk = 0;

	(void)names;
	getrusage(RUSAGE_SELF, &ru0);
	t0 = now_s();
	tk = t0;
	for (long i = 0; i < n; i += burst) {
		long k = n - i < burst ? n - i : burst;

		for (long j = 0; j < k; j++) {
			EVP_PKEY *key;

			snprintf(bnames[j], 64, "host%ld.bench.example", i + j);
			bn[j][0] = bnames[j];
			bn[j][1] = "127.0.0.1";
			reqs[j] = (struct cs_localca_req){ .names = bn[j], .n = 2,
							   .usage = CS_USAGE_SERVER, .err = errs[j],
							   .errlen = sizeof(errs[j]) };
			if ((key = cs_key_generate(CS_KEY_EC_P256, err, sizeof(err))) == NULL ||
			    (reqs[j].csr = cs_csr_new(key, bn[j], 2, err, sizeof(err))) == NULL) {
				fprintf(stderr, "bench_localca: %s\n", err);
				return 1;
			}
			EVP_PKEY_free(key);
		}
		cs_localca_issue_batch(ca, reqs, (size_t)k);
		for (long j = 0; j < k; j++) {
			if (reqs[j].status < 0) {
				fprintf(stderr, "bench_localca: certificate %ld: %s\n", i + j + 1,
					errs[j]);
				cs_localca_close(ca);
				return 1;
			}
			X509_REQ_free(reqs[j].csr);
			X509_free(reqs[j].leaf);
			sk_X509_pop_free(reqs[j].chain, X509_free);
		}
		/* ms per certificate over the first and the last 10% */
		if (i + k >= n / 10 && first == 0)
			first = (now_s() - t0) * 1e3 / (double)(i + k);
		if (i + k > n - n / 10 && tk == t0)
			tk = now_s(), lastk = (double)(i + k);
	}
	t1 = now_s();
	free(reqs);
	free(bnames);
	free(bn);
	free(errs);
	cs_localca_close(ca);
	getrusage(RUSAGE_SELF, &ru);
	printf("issued %ld ECDSA P-256 certificates (key generation included) in bursts of %ld "
	       "onto an index of %ld lines in %.2f s: %.1f certificates/s; "
	       "%.3f ms each over the first 10%%, %.3f ms over the last; CPU %.3f ms each; "
	       "peak RSS %ld KiB; CA in %s\n",
	       n, burst, prefill, t1 - t0, (double)n / (t1 - t0), first,
	       n - lastk > 0 ? (t1 - tk) * 1e3 / ((double)n - lastk) : 0.0,
	       (cpu_s(&ru) - cpu_s(&ru0)) * 1e3 / (double)(n > 0 ? n : 1),
	       ru.ru_maxrss, o.dir);
	return 0;
}
