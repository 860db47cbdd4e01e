/*
 * ctl_inspect - `certsyncctl inspect`: what is inside certificate files and
 * whether certsync would change their order.
 *
 * Exit status: 0 all well, 1 a problem with the files, 2 bad usage.
 */
#include "ctl.h"

#include "cs_chain.h"
#include "cs_fp.h"
#include "cs_ingest.h"
#include "cs_key.h"
#include "cs_x509.h"

#include <getopt.h>
#include <jansson.h>
#include <openssl/err.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void inspect_usage(FILE *out)
{
	fprintf(out,
		"usage: certsyncctl inspect [--json] [--password-file F | --password-env VAR] "
		"FILE...\n\n"
		"Shows what each FILE holds (PEM, DER, PKCS#7 or PKCS#12, detected from the\n"
		"content): the private key, each certificate in the order certsync would use\n"
		"(leaf, intermediates, root, then strays) with subject, SANs, issuer, serial,\n"
		"validity and SHA-256 fingerprint, whether the file's order is right and\n"
		"whether the key matches the leaf.\n\n"
		"Exit status: 0 all files read and in order, 1 a file could not be read,\n"
		"its chain order is wrong, it holds a certificate that is not part of the\n"
		"leaf's chain, or its key does not match its leaf, 2 bad usage.\n\n"
		"  --json               one JSON document instead of text\n"
		"  --password-file F    password for encrypted keys and PKCS#12 (first line of F)\n"
		"  --password-env VAR   the same, from environment variable VAR\n");
}

static const char *role_of(const cs_material *m, X509 *x, int depth)
{
	if (depth == 0)
		return cs_chain_self_signed(x) ? "leaf (self-signed)" : "leaf";
	if (depth > 0)
		return cs_chain_self_signed(x) ? "root" : "intermediate";
	return "stray";
}

/* The normalised order of m: leaf, chain. Returns a new stack (no references taken). */
static STACK_OF(X509) *placed(const cs_material *m)
{
	STACK_OF(X509) *v = sk_X509_new_null();

	if (v == NULL)
		return NULL;
	if (m->leaf != NULL)
		sk_X509_push(v, m->leaf);
	for (int i = 0; i < sk_X509_num(m->chain); i++)
		sk_X509_push(v, sk_X509_value(m->chain, i));
	return v;
}

/*
 * True when the certificates of the placed order appear in the file in the
 * same order (strays and repeated copies aside).
 */
static bool order_ok(STACK_OF(X509) *file_order, STACK_OF(X509) *want)
{
	int next = 0;

	for (int i = 0; i < sk_X509_num(file_order); i++) {
		X509 *x = sk_X509_value(file_order, i);
		int pos = -1;

		for (int j = 0; j < sk_X509_num(want); j++)
			if (X509_cmp(x, sk_X509_value(want, j)) == 0)
				pos = j;
		if (pos < 0 || pos < next)
			continue; /* a stray, or a repeat of one already seen */
		if (pos != next)
			return false;
		next++;
	}
	return true;
}

static void key_text(const EVP_PKEY *k, char *buf, size_t len)
{
	char desc[64];
	enum cs_keytype t = cs_key_type_of(k);

	cs_x509_key_desc(k, desc, sizeof(desc));
	if (EVP_PKEY_is_a(k, "RSA"))
		snprintf(desc, sizeof(desc), "RSA");
	if (t != CS_KEY_NONE)
		snprintf(buf, len, "%s, %d bits (certsync key type %s)", desc,
			 EVP_PKEY_get_bits(k), cs_key_name(t));
	else
		snprintf(buf, len, "%s, %d bits (not a key type certsync generates)", desc,
			 EVP_PKEY_get_bits(k));
}

static json_t *cert_json(const cs_material *m, X509 *x, int depth, time_t now)
{
	char buf[2048], fp[CS_FP_MAX];
	json_t *o = json_object(), *sans = json_array();
	const ASN1_TIME *nb = X509_get0_notBefore(x), *na = X509_get0_notAfter(x);
	EVP_PKEY *pk = X509_get0_pubkey(x);

	json_object_set_new(o, "role", json_string(role_of(m, x, depth)));
	json_object_set_new(o, "subject", json_string(cs_x509_subject(x, buf, sizeof(buf))));
	cs_x509_sans(x, buf, sizeof(buf));
	for (char *p = buf, *q; *p != '\0'; p = q) {
		q = strstr(p, ", ");
		if (q != NULL)
			*q = '\0', q += 2;
		else
			q = p + strlen(p);
		json_array_append_new(sans, json_string(p));
	}
	json_object_set_new(o, "sans", sans);
	json_object_set_new(o, "issuer", json_string(cs_x509_issuer(x, buf, sizeof(buf))));
	json_object_set_new(o, "serial", json_string(cs_x509_serial(x, buf, sizeof(buf))));
	json_object_set_new(o, "not_before", json_string(cs_x509_time(nb, 1, buf, sizeof(buf))));
	json_object_set_new(o, "not_after", json_string(cs_x509_time(na, 1, buf, sizeof(buf))));
	json_object_set_new(o, "days_left", json_integer(cs_x509_days_until(na, now)));
	json_object_set_new(o, "key", json_string(pk != NULL ? cs_x509_key_desc(pk, buf, sizeof(buf))
							      : "unreadable"));
	if (cs_fp_cert(x, CS_DIGEST_SHA256, fp, sizeof(fp)) == 0)
		json_object_set_new(o, "sha256", json_string(fp));
	ERR_clear_error();
	return o;
}

static void cert_text(const cs_material *m, X509 *x, int n, int depth, time_t now)
{
	ctl_print_cert(x, n, role_of(m, x, depth), now);
}

/* Copies the (file-ordered) strays of a fresh ingest, taking references. */
static STACK_OF(X509) *file_order_of(const cs_material *m)
{
	STACK_OF(X509) *v = sk_X509_new_null();

	for (int i = 0; v != NULL && i < sk_X509_num(m->strays); i++) {
		X509 *x = sk_X509_value(m->strays, i);

		if (!X509_up_ref(x) || !sk_X509_push(v, x)) {
			sk_X509_pop_free(v, X509_free);
			return NULL;
		}
	}
	return v;
}

/* What inspect found in one file, for the text or the JSON report. */
struct finding {
	const char *path;
	cs_material *m;
	struct cs_ingest_info info;
	STACK_OF(X509) *want; /* the placed order: leaf, chain */
	bool ok;              /* the file's order is the placed one, with no strays */
	bool match;           /* the key belongs to the leaf (both present) */
	char *report;         /* cs_chain_normalise's notes, one a line; strtok'd */
};

/* The file's key as inspect --json shows it (null without one). */
static json_t *key_json(EVP_PKEY *k)
{
	char buf[512];
	enum cs_keytype t;
	json_t *key;

	if (k == NULL)
		return json_null();
	t = cs_key_type_of(k);
	key = json_object();
	json_object_set_new(key, "type", json_string(cs_x509_key_desc(k, buf, sizeof(buf))));
	json_object_set_new(key, "bits", json_integer(EVP_PKEY_get_bits(k)));
	json_object_set_new(key, "certsync_type",
			    t != CS_KEY_NONE ? json_string(cs_key_name(t)) : json_null());
	return key;
}

/* Fills jf, the file's object of inspect --json, with what f found. */
static void inspect_json(const struct finding *f, json_t *jf, time_t now)
{
	const cs_material *m = f->m;
	json_t *certs, *notes;
	char buf[512];

	snprintf(buf, sizeof(buf), "%s%s", cs_ingest_format_name(f->info.format),
		 f->info.format == CS_FMT_PEM && f->info.pkcs7 > 0 ? " (PKCS#7)" : "");
	json_object_set_new(jf, "format", json_string(buf));
	json_object_set_new(jf, "key", key_json(m->key));
	certs = json_array();
	for (int i = 0; i < sk_X509_num(f->want); i++)
		json_array_append_new(certs, cert_json(m, sk_X509_value(f->want, i), i, now));
	for (int i = 0; i < sk_X509_num(m->strays); i++)
		json_array_append_new(certs, cert_json(m, sk_X509_value(m->strays, i), -1,
						       now));
	json_object_set_new(jf, "certificates", certs);
	json_object_set_new(jf, "crls", json_integer(sk_X509_CRL_num(m->crls)));
	json_object_set_new(jf, "chain_order", json_string(sk_X509_num(f->want) == 0 ? "none"
								  : f->ok ? "ok"
									  : "wrong"));
	json_object_set_new(jf, "key_matches_leaf",
			    m->key != NULL && m->leaf != NULL ? json_boolean(f->match)
							      : json_null());
	notes = json_array();
	for (char *p = strtok(f->report, "\n"); p != NULL; p = strtok(NULL, "\n"))
		json_array_append_new(notes, json_string(p));
	json_object_set_new(jf, "notes", notes);
}

/* The "chain order:" line of inspect's text. */
static void print_chain_order(const struct finding *f)
{
	const cs_material *m = f->m;
	char buf[512];

	if (sk_X509_num(f->want) == 0) {
		printf("  chain order: no certificates\n");
	} else if (f->ok) {
		printf("  chain order: ok\n");
	} else if (sk_X509_num(m->strays) > 0) {
		printf("  chain order: wrong (not part of the leaf's chain: ");
		for (int i = 0; i < sk_X509_num(m->strays); i++)
			printf("%s%s", i > 0 ? "; " : "",
			       cs_x509_subject(sk_X509_value(m->strays, i), buf, sizeof(buf)));
		printf(")\n");
	} else {
		printf("  chain order: wrong (certsync would reorder: ");
		for (int i = 0; i < sk_X509_num(f->want); i++)
			printf("%s%s", i > 0 ? " > " : "",
			       cs_x509_subject(sk_X509_value(f->want, i), buf, sizeof(buf)));
		printf(")\n");
	}
}

/* Prints what f found as inspect's text. */
static void inspect_text(const struct finding *f, time_t now)
{
	const cs_material *m = f->m;
	const struct cs_ingest_info *info = &f->info;
	char buf[512];
	int n = 0;

	printf("%s: %s%s, %d private key%s, %d certificate%s, %d CRL%s\n", f->path,
	       cs_ingest_format_name(info->format),
	       info->format == CS_FMT_PEM && info->pkcs7 > 0 ? " (PKCS#7)" : "", info->keys,
	       info->keys == 1 ? "" : "s",
	       info->certs, info->certs == 1 ? "" : "s", info->crls, info->crls == 1 ? "" : "s");
	if (m->key != NULL) {
		key_text(m->key, buf, sizeof(buf));
		printf("  private key: %s\n", buf);
	}
	for (int i = 0; i < sk_X509_num(f->want); i++)
		cert_text(m, sk_X509_value(f->want, i), ++n, i, now);
	for (int i = 0; i < sk_X509_num(m->strays); i++)
		cert_text(m, sk_X509_value(m->strays, i), ++n, -1, now);
	for (char *p = strtok(f->report, "\n"); p != NULL; p = strtok(NULL, "\n"))
		printf("  note: %s\n", p);
	print_chain_order(f);
	if (m->key == NULL)
		printf("  key matches leaf: no key in the file\n");
	else if (m->leaf == NULL)
		printf("  key matches leaf: no certificate in the file\n");
	else
		printf("  key matches leaf: %s\n", f->match ? "yes" : "no");
}

/* Inspects one file; returns 0, or 1 when it could not be read. */
static int inspect_one(const char *path, const struct cs_ingest_opts *io, bool json,
		       json_t *files, time_t now)
{
	struct finding f = { .path = path, .m = cs_material_new() };
	cs_material *m = f.m;
	STACK_OF(X509) *file_order = NULL;
	char err[1024], report[32768];
	json_t *jf = NULL;
	int rc, status = 0;

	if (m == NULL) {
		fprintf(stderr, "certsyncctl inspect: out of memory\n");
		return 1;
	}
	rc = cs_ingest_file_info(m, path, io, &f.info, err, sizeof(err));
	if (json) {
		jf = json_object();
		json_object_set_new(jf, "file", json_string(path));
		json_array_append_new(files, jf);
	}
	if (rc < 0) {
		fprintf(stderr, "certsyncctl inspect: %s\n", err);
		if (json)
			json_object_set_new(jf, "error", json_string(err));
		status = 1;
		goto out;
	}
	file_order = file_order_of(m);
	rc = cs_chain_normalise(m, report, sizeof(report));
	f.want = placed(m);
	f.report = report;
	if (rc < 0 || file_order == NULL || f.want == NULL) {
		fprintf(stderr, "certsyncctl inspect: %s: out of memory\n", path);
		status = 1;
		goto out;
	}
	/* A certificate in no chain of the leaf would be sent to clients as well. */
	f.ok = order_ok(file_order, f.want) && sk_X509_num(m->strays) == 0;
	if (m->key != NULL && m->leaf != NULL)
		f.match = EVP_PKEY_eq(m->key, X509_get0_pubkey(m->leaf)) == 1;
	ERR_clear_error();
	/* Either would make a server refuse or mis-serve the file. */
	if (!f.ok || (m->key != NULL && m->leaf != NULL && !f.match))
		status = 1;
	if (json)
		inspect_json(&f, jf, now);
	else
		inspect_text(&f, now);
out:
	sk_X509_free(f.want);
	sk_X509_pop_free(file_order, X509_free);
	cs_material_free(m);
	return status;
}

int ctl_inspect_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "password-file", required_argument, NULL, 'p' },
		{ "password-env", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl_pw_opts po = { 0 };
	struct cs_ingest_opts io = { 0 };
	bool json = false;
	json_t *root = NULL, *files = NULL;
	char *pw = NULL;
	int c, status = 0;
	time_t now = time(NULL);

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'p':
			po.file = optarg;
			break;
		case 'e':
			po.env = optarg;
			break;
		case 'h':
			inspect_usage(stdout);
			return 0;
		default:
			inspect_usage(stderr);
			return 2;
		}
	}
	if (optind >= argc || (po.file != NULL && po.env != NULL)) {
		inspect_usage(stderr);
		return 2;
	}
	if (ctl_password("inspect", po.file, po.env, &pw) != 0)
		return 1;
	io.password = pw;
	if (json) {
		root = json_object();
		files = json_array();
		json_object_set_new(root, "files", files);
	}
	for (int i = optind; i < argc; i++) {
		if (!json && i > optind)
			printf("\n");
		if (inspect_one(argv[i], &io, json, files, now) != 0)
			status = 1;
	}
	if (json) {
		char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

		if (s != NULL)
			printf("%s\n", s);
		free(s);
		json_decref(root);
	}
	cs_ingest_password_free(pw);
	return status;
}
