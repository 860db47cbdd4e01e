/*
 * ctl_tlsa - `certsyncctl tlsa`: a DANE TLSA record for a certificate file
 * in zone-file syntax, from the file's leaf (as fingerprint finds it) or
 * its topmost issuer.
 *
 * Exit status: 0 printed, 1 a file could not be read, 2 bad usage.
 */
#include "ctl.h"

#include "cs_fp.h"
#include "cs_ingest.h"

#include <getopt.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void tlsa_usage(FILE *out)
{
	fprintf(out,
		"usage: certsyncctl tlsa [--usage 2|3] [--selector 0|1] [--matching 1|2]\n"
		"                   [--host H] [--port P] [--proto tcp|udp]\n"
		"                   [--password-file F | --password-env VAR] FILE\n\n"
		"Prints a DANE TLSA record (RFC 6698, RFC 7671) for FILE in zone-file syntax:\n"
		"  _25._tcp.mail.example.com. IN TLSA 3 1 1 <hex>\n\n"
		"  --usage U      3 DANE-EE: the leaf itself (default); 2 DANE-TA: the topmost\n"
		"                 issuer in FILE, which the server must send in its chain\n"
		"  --selector S   1 SubjectPublicKeyInfo (default; survives key reuse),\n"
		"                 0 the whole certificate\n"
		"  --matching M   1 SHA-256 (default), 2 SHA-512\n"
		"  --host H       owner name (default: the leaf's first DNS name)\n"
		"  --port P       port (default 25, SMTP)\n"
		"  --proto P      tcp (default) or udp\n"
		"  --password-file F, --password-env VAR   as for inspect\n");
}

/* Parses a small non-negative integer in [lo, hi]; returns it or -1. */
static long small_int(const char *s, long lo, long hi)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (end == s || *end != '\0' || v < lo || v > hi)
		return -1;
	return v;
}

/* The first DNS name of x's subjectAltName, else its CN, into buf; false if none. */
static bool first_dns_name(X509 *x, char *buf, size_t len)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	bool found = false;

	for (int i = 0; !found && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

		if (g->type != GEN_DNS)
			continue;
		snprintf(buf, len, "%.*s", ASN1_STRING_length(g->d.dNSName),
			 (const char *)ASN1_STRING_get0_data(g->d.dNSName));
		found = buf[0] != '\0';
	}
	GENERAL_NAMES_free(gens);
	if (!found && X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf,
						(int)len) > 0)
		found = true;
	ERR_clear_error();
	return found;
}

/* tlsa's options. */
struct tlsa_args {
	long usage, selector, matching, port;
	const char *host;  /* NULL: the leaf's first DNS name */
	const char *proto; /* "tcp" or "udp" */
	const char *pwfile, *pwenv;
};

/*
 * Parses tlsa's options into a; optind is then FILE. Returns -1 when tlsa is
 * to run, else its exit status (0 after --help, 2 after a message).
 */
static int tlsa_args(int argc, char **argv, struct tlsa_args *a)
{
	static const struct option longopts[] = {
		{ "usage", required_argument, NULL, 'u' },
		{ "selector", required_argument, NULL, 's' },
		{ "matching", required_argument, NULL, 'm' },
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'P' },
		{ "proto", required_argument, NULL, 'T' },
		{ "password-file", required_argument, NULL, 'p' },
		{ "password-env", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'u':
			if ((a->usage = small_int(optarg, 2, 3)) < 0)
				goto bad;
			break;
		case 's':
			if ((a->selector = small_int(optarg, 0, 1)) < 0)
				goto bad;
			break;
		case 'm':
			if ((a->matching = small_int(optarg, 1, 2)) < 0)
				goto bad;
			break;
		case 'P':
			if ((a->port = small_int(optarg, 1, 65535)) < 0)
				goto bad;
			break;
		case 'H':
			if (*optarg == '\0')
				goto bad;
			a->host = optarg;
			break;
		case 'T':
			if (strcmp(optarg, "tcp") != 0 && strcmp(optarg, "udp") != 0)
				goto bad;
			a->proto = optarg;
			break;
		case 'p':
			a->pwfile = optarg;
			break;
		case 'e':
			a->pwenv = optarg;
			break;
		case 'h':
			tlsa_usage(stdout);
			return 0;
		default:
			tlsa_usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 1 || (a->pwfile != NULL && a->pwenv != NULL)) {
		tlsa_usage(stderr);
		return 2;
	}
	return -1;
bad:
	fprintf(stderr, "certsyncctl tlsa: invalid value '%s' (see --help)\n", optarg);
	return 2;
}

/* Prints the TLSA record of m (read from file) as a says; returns 0 or 1 after a message. */
static int tlsa_print(const cs_material *m, const char *file, const struct tlsa_args *a)
{
	char data[EVP_MAX_MD_SIZE * 2 + 1], name[256];
	const char *host = a->host;
	X509 *x = m->leaf;

	if (a->usage == 2) {
		int n = sk_X509_num(m->chain);

		if (n == 0) {
			fprintf(stderr, "certsyncctl tlsa: %s: --usage 2 needs the issuer "
					"certificates in the file (a fullchain or bundle)\n",
				file);
			return 1;
		}
		x = sk_X509_value(m->chain, n - 1);
	}
	if (host == NULL) {
		if (!first_dns_name(m->leaf, name, sizeof(name))) {
			fprintf(stderr, "certsyncctl tlsa: %s: the certificate names no host; "
					"give --host\n", file);
			return 1;
		}
		host = name;
	}
	if (cs_tlsa_data(x, (int)a->selector, (int)a->matching, data, sizeof(data)) != 0) {
		fprintf(stderr, "certsyncctl tlsa: %s: cannot encode the certificate\n", file);
		ERR_clear_error();
		return 1;
	}
	printf("_%ld._%s.%s%s IN TLSA %ld %ld %ld %s\n", a->port, a->proto, host,
	       host[strlen(host) - 1] == '.' ? "" : ".", a->usage, a->selector, a->matching,
	       data);
	return 0;
}

int ctl_tlsa_main(int argc, char **argv)
{
	struct tlsa_args a = {
		.usage = 3, .selector = 1, .matching = 1, .port = 25, .proto = "tcp",
	};
	cs_material *m;
	char *pw = NULL;
	int status;

	if ((status = tlsa_args(argc, argv, &a)) >= 0)
		return status;
	if (ctl_password("tlsa", a.pwfile, a.pwenv, &pw) != 0)
		return 1;
	m = ctl_load_leaf("tlsa", argv[optind], pw);
	status = m != NULL ? tlsa_print(m, argv[optind], &a) : 1;
	cs_material_free(m);
	cs_ingest_password_free(pw);
	return status;
}
