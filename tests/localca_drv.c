/*
 * localca_drv - drives the local-ca issuer from shell tests
 * (tests/integration/localca_*.sh): opens or creates a CA directory, then
 * issues, revokes or generates a CRL. Each issued serial is printed on its
 * own line as soon as index.txt holds it, so that a test killing this
 * program knows which issuances completed.
 *
 *   localca_drv -d DIR [-k CAKEY] [-s SUBJECT] [-V DAYS] [-C DAYS] CMD ...
 *     issue [-n N] [-t KEY] [-u server|client] [-o PREFIX] NAME...
 *         writes PREFIX.pem (leaf), PREFIX.key, PREFIX.chain.pem of the last one
 *     revoke SERIAL [REASON]
 *     gencrl [DAYS]
 */
#include "cs_csr.h"
#include "cs_key.h"
#include "cs_localca.h"
#include "cs_log.h"

#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int usage(void)
{
	fprintf(stderr, "usage: localca_drv -d DIR [-k CAKEY] [-s SUBJECT] [-V DAYS] [-C DAYS] "
			"issue [-n N] [-t KEY] [-u USAGE] [-o PREFIX] NAME... | revoke SERIAL "
			"[REASON] | gencrl [DAYS]\n");
	return 2;
}

static int write_pem(const char *prefix, const char *suffix, X509 *x, STACK_OF(X509) *chain,
		     EVP_PKEY *key)
{
	char path[4096];
	FILE *f;
	int ok = 1;

	snprintf(path, sizeof(path), "%s%s", prefix, suffix);
	if ((f = fopen(path, "w")) == NULL)
		return 0;
	if (x != NULL)
		ok = PEM_write_X509(f, x);
	for (int i = 0; ok && i < sk_X509_num(chain); i++)
		ok = PEM_write_X509(f, sk_X509_value(chain, i));
	if (key != NULL)
		ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	return fclose(f) == 0 && ok;
}

static int cmd_issue(cs_localca *ca, int argc, char **argv)
{
	enum cs_keytype kt = CS_KEY_EC_P256;
	enum cs_usage use = CS_USAGE_SERVER;
	const char *prefix = NULL;
	long count = 1;
	char err[1024];
	int c;

	optind = 1;
	while ((c = getopt(argc, argv, "+n:t:u:o:")) != -1) {
		switch (c) {
		case 'n':
			count = strtol(optarg, NULL, 10);
			break;
		case 't':
			if ((kt = cs_key_parse(optarg)) == CS_KEY_NONE)
				return usage();
			break;
		case 'u':
			if (cs_usage_parse(optarg, &use) < 0)
				return usage();
			break;
		case 'o':
			prefix = optarg;
			break;
		default:
			return usage();
		}
	}
	if (optind >= argc)
		return usage();
	for (long i = 0; i < count; i++) {
		EVP_PKEY *key = cs_key_generate(kt, err, sizeof(err));
		X509_REQ *csr = NULL;
		X509 *leaf = NULL;
		STACK_OF(X509) *chain = NULL;
		char serial[128] = "";
		int rc = 1;

		if (key == NULL ||
		    (csr = cs_csr_new(key, argv + optind, (size_t)(argc - optind), err, sizeof(err))) ==
			    NULL ||
		    cs_localca_issue(ca, csr, argv + optind, (size_t)(argc - optind), use, &leaf, &chain,
				     err, sizeof(err)) < 0) {
			fprintf(stderr, "localca_drv: %s\n", err);
			goto next;
		}
		{
			BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
			char *hex = BN_bn2hex(bn);
			snprintf(serial, sizeof(serial), "%s", hex);
			OPENSSL_free(hex);
			BN_free(bn);
		}
		printf("%s\n", serial);
		fflush(stdout);
		if (prefix != NULL && i == count - 1 &&
		    (!write_pem(prefix, ".pem", leaf, NULL, NULL) ||
		     !write_pem(prefix, ".key", NULL, NULL, key) ||
		     !write_pem(prefix, ".chain.pem", NULL, chain, NULL))) {
			fprintf(stderr, "localca_drv: cannot write %s.*\n", prefix);
			goto next;
		}
		rc = 0;
next:
		EVP_PKEY_free(key);
		X509_REQ_free(csr);
		X509_free(leaf);
		sk_X509_pop_free(chain, X509_free);
		if (rc != 0)
			return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct cs_localca_opts o = {
		.subject = "/C=US/O=certsync tests/CN=certsync Test CA",
		.key = CS_KEY_EC_P256,
		.validity_s = 90 * 86400,
		.ca_validity_s = 3650L * 86400,
	};
	cs_localca *ca = NULL;
	char err[1024];
	int c, rc = 1;

	cs_log_open("localca_drv", CS_LOG_STDERR, CS_LOG_WARN);
	while ((c = getopt(argc, argv, "+d:k:s:V:C:")) != -1) {
		switch (c) {
		case 'd':
			o.dir = optarg;
			break;
		case 'k':
			if ((o.key = cs_key_parse(optarg)) == CS_KEY_NONE)
				return usage();
			break;
		case 's':
			o.subject = optarg;
			break;
		case 'V':
			o.validity_s = strtol(optarg, NULL, 10) * 86400;
			break;
		case 'C':
			o.ca_validity_s = strtol(optarg, NULL, 10) * 86400;
			break;
		default:
			return usage();
		}
	}
	if (o.dir == NULL || optind >= argc)
		return usage();
	if ((ca = cs_localca_open(&o, err, sizeof(err))) == NULL) {
		fprintf(stderr, "localca_drv: %s\n", err);
		return 1;
	}
	argc -= optind;
	argv += optind;
	if (strcmp(argv[0], "issue") == 0) {
		rc = cmd_issue(ca, argc, argv);
	} else if (strcmp(argv[0], "revoke") == 0 && (argc == 2 || argc == 3)) {
		rc = cs_localca_revoke(ca, argv[1], argc == 3 ? argv[2] : NULL, err, sizeof(err));
		if (rc < 0)
			fprintf(stderr, "localca_drv: %s\n", err);
		rc = rc == 0 ? 0 : 1;
	} else if (strcmp(argv[0], "gencrl") == 0 && argc <= 2) {
		long days = argc == 2 ? strtol(argv[1], NULL, 10) : 7;
		rc = cs_localca_gencrl(ca, days * 86400, NULL, err, sizeof(err));
		if (rc < 0)
			fprintf(stderr, "localca_drv: %s\n", err);
		rc = rc == 0 ? 0 : 1;
	} else {
		rc = usage();
	}
	cs_localca_close(ca);
	return rc;
}
