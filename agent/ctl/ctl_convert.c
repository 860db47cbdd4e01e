/*
 * ctl_convert - `certsyncctl convert`: DER, PKCS#7 and PKCS#12 turned into
 * the PEM files Postfix and Dovecot read, in the right order and with the
 * right mode.
 *
 * Exit status: 0 written, 1 a problem with the files, 2 bad usage.
 */
#include "ctl.h"

#include "cs_chain.h"
#include "cs_ingest.h"
#include "cs_output.h"
#include "cs_x509.h"

#include <errno.h>
#include <getopt.h>
#include <openssl/err.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void convert_usage(FILE *out)
{
	fprintf(out,
		"usage: certsyncctl convert IN... OUT --to bundle|fullchain|cert|chain|key\n"
		"                   [--mode MODE] [--password-file F | --password-env VAR]\n\n"
		"Reads every IN (PEM, DER, PKCS#7 or PKCS#12, detected from the content),\n"
		"puts the certificates in order (leaf, then each issuer) and writes OUT\n"
		"atomically as PEM:\n"
		"  bundle     key, leaf, chain (Postfix smtpd_tls_chain_files)\n"
		"  fullchain  leaf, chain\n"
		"  cert       leaf\n"
		"  chain      the issuers only\n"
		"  key        the private key, unencrypted (Postfix cannot use encrypted keys)\n\n"
		"  --mode MODE          octal mode of OUT (default 0600 with a key, 0644 without)\n"
		"  --password-file F    password for encrypted keys and PKCS#12 (first line of F)\n"
		"  --password-env VAR   the same, from environment variable VAR\n");
}

static int parse_mode(const char *s, mode_t *mode)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 8);
	if (errno != 0 || end == s || *end != '\0' || v > 07777)
		return -1;
	*mode = (mode_t)v;
	return 0;
}

/* convert's options. */
struct convert_args {
	struct ctl_pw_opts po;
	struct cs_atomic_opts ao; /* ao.mode: --mode, or the default of the kind */
	enum cs_output_kind kind; /* --to */
};

/*
 * Parses convert's options into a; optind is then the first IN. Returns -1
 * when convert is to run, else its exit status (0 after --help, 2 after a
 * message).
 */
static int convert_args(int argc, char **argv, struct convert_args *a)
{
	static const struct option longopts[] = {
		{ "to", required_argument, NULL, 't' },
		{ "mode", required_argument, NULL, 'm' },
		{ "password-file", required_argument, NULL, 'p' },
		{ "password-env", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool have_kind = false, have_mode = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (cs_output_parse(optarg, &a->kind) != 0) {
				fprintf(stderr, "certsyncctl convert: --to %s: expected bundle, "
						"fullchain, cert, chain or key\n", optarg);
				return 2;
			}
			have_kind = true;
			break;
		case 'm':
			if (parse_mode(optarg, &a->ao.mode) != 0) {
				fprintf(stderr, "certsyncctl convert: --mode %s: expected an octal "
						"mode such as 0600\n", optarg);
				return 2;
			}
			have_mode = true;
			break;
		case 'p':
			a->po.file = optarg;
			break;
		case 'e':
			a->po.env = optarg;
			break;
		case 'h':
			convert_usage(stdout);
			return 0;
		default:
			convert_usage(stderr);
			return 2;
		}
	}
	if (!have_kind || argc - optind < 2 || (a->po.file != NULL && a->po.env != NULL)) {
		if (!have_kind && argc - optind >= 2)
			fprintf(stderr, "certsyncctl convert: --to is required\n");
		convert_usage(stderr);
		return 2;
	}
	if (!have_mode)
		a->ao.mode = cs_output_has_key(a->kind) ? 0600 : 0644;
	return -1;
}

/*
 * Reads the n files in into one set, puts it in order and writes out as
 * a says; the notes of the ordering go to stderr. Returns 0, or 1 after a
 * message.
 */
static int convert_files(char **in, int n, const char *out, const struct convert_args *a,
			 const char *pw)
{
	struct cs_ingest_opts io = { .password = pw };
	cs_material *m = cs_material_new();
	char err[1024], report[32768], subj[256];
	int rc, status = 1;

	if (m == NULL) {
		fprintf(stderr, "certsyncctl convert: out of memory\n");
		goto out;
	}
	for (int i = 0; i < n; i++) {
		rc = cs_ingest_file(m, in[i], &io, err, sizeof(err));
		if (rc < 0) {
			fprintf(stderr, "certsyncctl convert: %s\n", err);
			goto out;
		}
	}
	rc = cs_chain_normalise(m, report, sizeof(report));
	if (rc < 0) {
		fprintf(stderr, "certsyncctl convert: %s", report);
		goto out;
	}
	for (char *p = strtok(report, "\n"); p != NULL; p = strtok(NULL, "\n"))
		fprintf(stderr, "certsyncctl convert: note: %s\n", p);
	/* A bundle whose key is not the leaf's would be refused by Postfix at run time. */
	if (m->key != NULL && m->leaf != NULL && a->kind == CS_OUT_BUNDLE &&
	    EVP_PKEY_eq(m->key, X509_get0_pubkey(m->leaf)) != 1) {
		fprintf(stderr, "certsyncctl convert: %s: the private key does not belong to "
				"the certificate %s\n",
			in[0], cs_x509_subject(m->leaf, subj, sizeof(subj)));
		goto out;
	}
	ERR_clear_error();
	rc = cs_output_write(m, a->kind, out, &a->ao, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "certsyncctl convert: %s\n", err);
		goto out;
	}
	status = 0;
out:
	cs_material_free(m);
	return status;
}

int ctl_convert_main(int argc, char **argv)
{
	struct convert_args a = {
		.ao = { .uid = (uid_t)-1, .gid = (gid_t)-1 },
		.kind = CS_OUT_BUNDLE,
	};
	char *pw = NULL;
	int status;

	if ((status = convert_args(argc, argv, &a)) >= 0)
		return status;
	if (ctl_password("convert", a.po.file, a.po.env, &pw) != 0)
		return 1;
	status = convert_files(argv + optind, argc - 1 - optind, argv[argc - 1], &a, pw);
	cs_ingest_password_free(pw);
	return status;
}
