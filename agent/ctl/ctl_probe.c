/*
 * ctl_probe - `certsyncctl probe URL`: what a mail server presents over
 * STARTTLS or implicit TLS, as `openssl s_client -starttls smtp` shows it
 * when troubleshooting, and whether it is the certificate in a deployed file.
 *
 * With --tlsa (repeatable), DANE: whether one of the TLSA records given
 * authenticates the served chain, as a DANE-validating SMTP client decides.
 *
 * Exit status: 0 the server presented a certificate (and, with --expect, the
 * expected one; with --tlsa, one a record authenticates), 1 it did not or it
 * is another one, 2 bad usage.
 */
#include "ctl.h"

#include "cs_chain.h"
#include "cs_fp.h"
#include "cs_ingest.h"
#include "cs_probe.h"
#include "cs_x509.h"

#include <ctype.h>
#include <getopt.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void probe_usage(FILE *out)
{
	fprintf(out,
		"usage: certsyncctl probe URL [--expect FILE] [--tlsa \"U S M HEX\"]...\n"
		"                   [--wait SECONDS] [--timeout SECONDS] [--json]\n\n"
		"Connects to URL, negotiates TLS and shows the certificates the server presents:\n"
		"  smtp://HOST[:25]  submission://HOST[:587]  imap://HOST[:143]  pop3://HOST[:110]\n"
		"  sieve://HOST[:4190] (ManageSieve)\n"
		"      plaintext, then STARTTLS (SMTP, IMAP, ManageSieve) or STLS (POP3)\n"
		"  smtps://HOST[:465]  imaps://HOST[:993]  pop3s://HOST[:995]   implicit TLS\n"
		"The server name sent (SNI) is HOST when it is a name; ?sni=NAME sets another.\n\n"
		"  --expect FILE     compare the served leaf with the leaf in FILE (any format\n"
		"                    inspect reads: the deployed bundle, fullchain or cert)\n"
		"  --tlsa \"U S M HEX\" a TLSA record (as certsyncctl tlsa prints it, without the\n"
		"                    owner): check with DANE that a record given authenticates\n"
		"                    the served chain; usages 2 and 3 count (RFC 7672), matching\n"
		"                    types 1 and 2; repeat for an RRset (at most 32 records)\n"
		"  --wait SECONDS    with --expect or --tlsa, try again until it matches or\n"
		"                    SECONDS pass (a reload is asynchronous)\n"
		"  --timeout SECONDS for one connection (default 10)\n"
		"  --json            one JSON document instead of text\n\n"
		"Exit status: 0 served (and matching with --expect, authenticated with --tlsa),\n"
		"1 connection or TLS failure, another certificate served or no TLSA record\n"
		"matching, 2 bad usage.\n");
}

/* The SHA-256 fingerprint of FILE's leaf into fp; returns 0 or 1 after a message. */
static int expected_fp(const char *path, char *fp, size_t len)
{
	struct cs_ingest_opts io = { 0 };
	cs_material *m = cs_material_new();
	char err[1024];
	int status = 1;

	if (m == NULL || cs_ingest_file(m, path, &io, err, sizeof(err)) < 0) {
		fprintf(stderr, "certsyncctl probe: %s\n", m == NULL ? "out of memory" : err);
		goto out;
	}
	if (cs_chain_normalise(m, NULL, 0) < 0 || m->leaf == NULL) {
		fprintf(stderr, "certsyncctl probe: %s: no certificate in the file\n", path);
		goto out;
	}
	if (cs_fp_cert(m->leaf, CS_DIGEST_SHA256, fp, len) != 0) {
		fprintf(stderr, "certsyncctl probe: %s: cannot encode the certificate\n", path);
		goto out;
	}
	status = 0;
out:
	cs_material_free(m);
	return status;
}

static const char *role(STACK_OF(X509) *chain, int i)
{
	X509 *x = sk_X509_value(chain, i);

	if (i == 0)
		return "leaf (served first)";
	return cs_chain_self_signed(x) ? "root" : "intermediate";
}

static void print_text(const struct cs_probe_url *u, const char *url,
		       const struct cs_probe_result *r, time_t now)
{
	printf("%s: %s, %s%s%s, %s, %s\n", url, u->implicit_tls ? "implicit TLS" : "STARTTLS",
	       u->sni[0] ? "SNI " : "no SNI", u->sni, "", r->tls_version, r->cipher);
	for (int i = 0; i < sk_X509_num(r->chain); i++)
		ctl_print_cert(sk_X509_value(r->chain, i), i + 1, role(r->chain, i), now);
}

static json_t *result_json(const char *url, const struct cs_probe_result *r)
{
	json_t *o = json_object(), *certs = json_array();
	char buf[2048], fp[CS_FP_MAX];

	json_object_set_new(o, "url", json_string(url));
	json_object_set_new(o, "tls_version", json_string(r->tls_version));
	json_object_set_new(o, "cipher", json_string(r->cipher));
	for (int i = 0; i < sk_X509_num(r->chain); i++) {
		X509 *x = sk_X509_value(r->chain, i);
		json_t *c = json_object();

		json_object_set_new(c, "subject", json_string(cs_x509_subject(x, buf, sizeof(buf))));
		json_object_set_new(c, "sans", json_string(cs_x509_sans(x, buf, sizeof(buf))));
		json_object_set_new(c, "issuer", json_string(cs_x509_issuer(x, buf, sizeof(buf))));
		json_object_set_new(c, "serial", json_string(cs_x509_serial(x, buf, sizeof(buf))));
		json_object_set_new(c, "not_after", json_string(cs_x509_time(
								X509_get0_notAfter(x), 1, buf,
								sizeof(buf))));
		json_object_set_new(c, "days_left", json_integer(cs_x509_days_until(
								X509_get0_notAfter(x), time(NULL))));
		if (cs_fp_cert(x, CS_DIGEST_SHA256, fp, sizeof(fp)) == 0)
			json_object_set_new(c, "sha256", json_string(fp));
		json_array_append_new(certs, c);
	}
	json_object_set_new(o, "certificates", certs);
	return o;
}

/* Parses a positive number of seconds; returns it or -1. */
static double seconds(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	return end == s || *end != '\0' || v < 0 || v > 86400 ? -1 : v;
}

/*
 * Probes u into r, with DANE when dane has records; with want (the expected
 * fingerprint, "" for none) or DANE tries again every 250 ms until the
 * served leaf is that one and DANE authenticates it, or wait_s seconds pass.
 * Returns cs_probe_run_dane's result for the last try; *match says whether
 * the served leaf is want.
 */
static int probe_until(const struct cs_probe_url *u, const struct cs_probe_dane *dane,
		       const char *want, double wait_s, double timeout_s,
		       struct cs_probe_result *r, bool *match)
{
	char served[CS_FP_MAX] = "";
	struct timespec start, t;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		cs_probe_result_clear(r);
		rc = cs_probe_run_dane(u, dane, (int)(timeout_s * 1000), r);
		if (rc == 0) {
			cs_fp_cert(sk_X509_value(r->chain, 0), CS_DIGEST_SHA256, served,
				   sizeof(served));
			*match = strcmp(served, want) == 0;
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (((want[0] == '\0' || *match) && (!r->dane.checked || r->dane.ok)) ||
		    (double)(t.tv_sec - start.tv_sec) + (t.tv_nsec - start.tv_nsec) / 1e9 >= wait_s)
			return rc;
		nanosleep(&(struct timespec){ .tv_nsec = 250000000 }, NULL);
	}
}

/* What DANE said, as JSON: ok, the record that matched and its depth, the text. */
static json_t *dane_json(const struct cs_probe_dane_result *d)
{
	json_t *o = json_object();

	json_object_set_new(o, "ok", json_boolean(d->ok));
	if (d->ok) {
		json_object_set_new(o, "usage", json_integer(d->usage));
		json_object_set_new(o, "selector", json_integer(d->selector));
		json_object_set_new(o, "matching", json_integer(d->mtype));
		json_object_set_new(o, "depth", json_integer(d->depth));
	}
	json_object_set_new(o, "text", json_string(d->text));
	return o;
}

/*
 * Prints what the server at url served (r) and, with expect, whether it is
 * want; with DANE, whether a record authenticated it.
 */
static void probe_report(const struct cs_probe_url *u, const char *url,
			 const struct cs_probe_result *r, const char *expect, const char *want,
			 bool match, bool json)
{
	if (json) {
		json_t *o = result_json(url, r);
		char *s;

		if (expect != NULL) {
			json_object_set_new(o, "expect_file", json_string(expect));
			json_object_set_new(o, "expect_sha256", json_string(want));
			json_object_set_new(o, "matches", json_boolean(match));
		}
		if (r->dane.checked)
			json_object_set_new(o, "dane", dane_json(&r->dane));
		s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (s != NULL)
			printf("%s\n", s);
		free(s);
		json_decref(o);
	} else {
		print_text(u, url, r, time(NULL));
		if (expect != NULL && match)
			printf("  matches %s: yes\n", expect);
		else if (expect != NULL)
			printf("  matches %s: NO (it holds sha256 %s)\n", expect, want);
		if (r->dane.checked)
			printf("  DANE: %s%s\n", r->dane.ok ? "yes, " : "NO, ", r->dane.text);
	}
}

/* What the command line asks for. */
struct probe_args {
	const char *expect, *url;
	double wait_s, timeout_s;
	bool json;
	struct cs_tlsa_rec tlsa[CS_PROBE_DANE_MAX];
	size_t n_tlsa;
};

/*
 * Parses "USAGE SELECTOR MATCHING HEX" (the hex may be split by blanks, as
 * in zone files) into t. Returns 0, or 2 after a message.
 */
static int parse_tlsa(const char *s, struct cs_tlsa_rec *t)
{
	unsigned usage, selector, mtype;
	char err[256];
	int off = 0;

	memset(t, 0, sizeof(*t));
	if (sscanf(s, "%u %u %u %n", &usage, &selector, &mtype, &off) != 3 || off == 0 ||
	    usage > 255 || selector > 255 || mtype > 255)
		goto bad;
	t->usage = (unsigned char)usage;
	t->selector = (unsigned char)selector;
	t->mtype = (unsigned char)mtype;
	for (const char *p = s + off; *p != '\0'; p++) {
		int hi, lo;

		if (isspace((unsigned char)*p))
			continue;
		hi = OPENSSL_hexchar2int((unsigned char)p[0]);
		lo = p[1] != '\0' ? OPENSSL_hexchar2int((unsigned char)p[1]) : -1;
		if (hi < 0 || lo < 0 || t->len == CS_TLSA_DATA_MAX)
			goto bad;
		t->data[t->len++] = (unsigned char)(hi << 4 | lo);
		p++;
	}
	if (cs_probe_dane_check(&(struct cs_probe_dane){ t, 1 }, err, sizeof(err)) < 0) {
		fprintf(stderr, "certsyncctl probe: --tlsa '%s': %s\n", s, err);
		return 2;
	}
	return 0;
bad:
	fprintf(stderr, "certsyncctl probe: --tlsa '%s': expected \"USAGE SELECTOR MATCHING HEX\""
		" (at most 64 bytes of hex)\n", s);
	return 2;
}

/* Parses the command line into a; returns -1 to go on, or the exit status. */
static int probe_args(int argc, char **argv, struct probe_args *a)
{
	static const struct option longopts[] = {
		{ "expect", required_argument, NULL, 'e' },
		{ "tlsa", required_argument, NULL, 'T' },
		{ "wait", required_argument, NULL, 'w' },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'e':
			a->expect = optarg;
			break;
		case 'T':
			if (a->n_tlsa == CS_PROBE_DANE_MAX) {
				fprintf(stderr, "certsyncctl probe: at most %d --tlsa records\n",
					CS_PROBE_DANE_MAX);
				return 2;
			}
			if (parse_tlsa(optarg, &a->tlsa[a->n_tlsa++]) != 0)
				return 2;
			break;
		case 'w':
		case 't':
			if (seconds(optarg) < 0) {
				fprintf(stderr, "certsyncctl probe: --%s %s: expected seconds\n",
					c == 'w' ? "wait" : "timeout", optarg);
				return 2;
			}
			*(c == 'w' ? &a->wait_s : &a->timeout_s) = seconds(optarg);
			break;
		case 'j':
			a->json = true;
			break;
		case 'h':
			probe_usage(stdout);
			return 0;
		default:
			probe_usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 1) {
		probe_usage(stderr);
		return 2;
	}
	a->url = argv[optind];
	return -1;
}

int ctl_probe_main(int argc, char **argv)
{
	struct probe_args a = { .timeout_s = 10 };
	bool match = false;
	char want[CS_FP_MAX] = "", err[512];
	struct cs_probe_url u;
	struct cs_probe_result r = { 0 };
	struct cs_probe_dane dane;
	int rc = probe_args(argc, argv, &a);

	if (rc >= 0)
		return rc;
	dane = (struct cs_probe_dane){ a.tlsa, a.n_tlsa };
	if (cs_probe_url_parse(a.url, &u, err, sizeof(err)) < 0) {
		fprintf(stderr, "certsyncctl probe: %s\n", err);
		return 2;
	}
	if (a.expect != NULL && expected_fp(a.expect, want, sizeof(want)) != 0)
		return 1;
	if (probe_until(&u, &dane, want, a.wait_s, a.timeout_s, &r, &match) < 0) {
		fprintf(stderr, "certsyncctl probe: %s: %s\n", a.url, r.error);
		cs_probe_result_clear(&r);
		return 1;
	}
	probe_report(&u, a.url, &r, a.expect, want, match, a.json);
	rc = (a.expect != NULL && !match) || (r.dane.checked && !r.dane.ok) ? 1 : 0;
	cs_probe_result_clear(&r);
	return rc;
}
