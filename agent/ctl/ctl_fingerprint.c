/*
 * ctl_fingerprint - `certsyncctl fingerprint`: the digest of a certificate
 * or its public key in Postfix's format (relay_clientcerts,
 * check_ccert_access, smtp_tls_fingerprint_cert_match). It reads any format
 * the toolkit ingests and uses the file's leaf: the certificate that matches
 * the file's key, or without a key the one at the bottom of the chain.
 *
 * Exit status: 0 printed, 1 a file could not be read, 2 bad usage.
 */
#include "ctl.h"

#include "cs_fp.h"
#include "cs_ingest.h"

#include <getopt.h>
#include <openssl/err.h>
#include <stdbool.h>
#include <stdio.h>

static void fingerprint_usage(FILE *out)
{
	fprintf(out,
		"usage: certsyncctl fingerprint [--digest sha256|sha1|md5] [--pubkey]\n"
		"                   [--password-file F | --password-env VAR] FILE...\n\n"
		"Prints the fingerprint of each FILE's leaf certificate as Postfix prints it\n"
		"(uppercase hex pairs joined by colons), the same value as\n"
		"`openssl x509 -noout -fingerprint -sha256`. With more than one FILE each\n"
		"line starts with the file name.\n\n"
		"  --digest D           sha256 (default), sha1 or md5, as\n"
		"                       smtpd_tls_fingerprint_digest\n"
		"  --pubkey             digest of the public key (SubjectPublicKeyInfo) instead\n"
		"                       of the certificate: it survives a renewal that keeps\n"
		"                       the key (check_ccert_access, relay_clientcerts)\n"
		"  --password-file F    password for encrypted keys and PKCS#12 (first line of F)\n"
		"  --password-env VAR   the same, from environment variable VAR\n");
}

int ctl_fingerprint_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "digest", required_argument, NULL, 'd' },
		{ "pubkey", no_argument, NULL, 'k' },
		{ "password-file", required_argument, NULL, 'p' },
		{ "password-env", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum cs_digest dg = CS_DIGEST_SHA256;
	const char *pwfile = NULL, *pwenv = NULL;
	bool pubkey = false;
	char *pw = NULL, fp[CS_FP_MAX];
	int c, status = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (cs_digest_parse(optarg, &dg) != 0) {
				fprintf(stderr, "certsyncctl fingerprint: --digest %s: expected "
						"sha256, sha1 or md5\n", optarg);
				return 2;
			}
			break;
		case 'k':
			pubkey = true;
			break;
		case 'p':
			pwfile = optarg;
			break;
		case 'e':
			pwenv = optarg;
			break;
		case 'h':
			fingerprint_usage(stdout);
			return 0;
		default:
			fingerprint_usage(stderr);
			return 2;
		}
	}
	if (optind >= argc || (pwfile != NULL && pwenv != NULL)) {
		fingerprint_usage(stderr);
		return 2;
	}
	if (ctl_password("fingerprint", pwfile, pwenv, &pw) != 0)
		return 1;
	for (int i = optind; i < argc; i++) {
		cs_material *m = ctl_load_leaf("fingerprint", argv[i], pw);
		int rc;

		if (m == NULL) {
			status = 1;
			continue;
		}
		rc = pubkey ? cs_fp_pubkey(m->leaf, dg, fp, sizeof(fp))
			    : cs_fp_cert(m->leaf, dg, fp, sizeof(fp));
		if (rc != 0) {
			fprintf(stderr, "certsyncctl fingerprint: %s: cannot encode the %s\n",
				argv[i], pubkey ? "public key" : "certificate");
			ERR_clear_error();
			status = 1;
		} else if (argc - optind > 1) {
			printf("%s: %s\n", argv[i], fp);
		} else {
			printf("%s\n", fp);
		}
		cs_material_free(m);
	}
	cs_ingest_password_free(pw);
	return status;
}
