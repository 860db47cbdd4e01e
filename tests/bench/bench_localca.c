/*
 * bench_localca - how fast the local-ca issuer issues: N ECDSA P-256
 * certificates, each with a new key and CSR, into a fresh CA directory, with
 * every index.txt/serial/newcerts write fsynced as in production. Prints
 * certificates per second and the peak resident memory (ru_maxrss).
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
	struct rusage ru;
	cs_localca *ca;
	long n = 1000;
	double t0, t1;
	int c;

	cs_log_open("bench_localca", CS_LOG_STDERR, CS_LOG_WARN);
	while ((c = getopt(argc, argv, "n:d:")) != -1) {
		switch (c) {
		case 'n':
			n = strtol(optarg, NULL, 10);
			break;
		case 'd':
			o.dir = optarg;
			break;
		default:
			fprintf(stderr, "usage: bench_localca [-n N] [-d DIR]\n");
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
	t0 = now_s();
	for (long i = 0; i < n; i++) {
		EVP_PKEY *key;
		X509_REQ *csr = NULL;
		X509 *leaf = NULL;
		STACK_OF(X509) *chain = NULL;
		int rc = -1;

		snprintf(name, sizeof(name), "host%ld.bench.example", i);
		if ((key = cs_key_generate(CS_KEY_EC_P256, err, sizeof(err))) != NULL &&
		    (csr = cs_csr_new(key, names, 2, err, sizeof(err))) != NULL)
			rc = cs_localca_issue(ca, csr, names, 2, CS_USAGE_SERVER, &leaf, &chain, err,
					      sizeof(err));
		EVP_PKEY_free(key);
		X509_REQ_free(csr);
		X509_free(leaf);
		sk_X509_pop_free(chain, X509_free);
		if (rc < 0) {
			fprintf(stderr, "bench_localca: certificate %ld: %s\n", i + 1, err);
			cs_localca_close(ca);
			return 1;
		}
	}
	t1 = now_s();
	cs_localca_close(ca);
	getrusage(RUSAGE_SELF, &ru);
	printf("issued %ld ECDSA P-256 certificates (key generation included) in %.2f s: "
	       "%.1f certificates/s; peak RSS %ld KiB; CA in %s\n",
	       n, t1 - t0, (double)n / (t1 - t0), ru.ru_maxrss, o.dir);
	return 0;
}
