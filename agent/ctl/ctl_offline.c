/*
 * ctl_offline - what certsyncctl's offline commands share: their table (the
 * commands themselves are one file each: ctl_inspect.c, ctl_convert.c,
 * ctl_fingerprint.c, ctl_tlsa.c, ctl_probe.c, ctl_rehash_dir.c), the
 * password options, a certificate printed as inspect shows it, and a file
 * read into a normalised set with its leaf.
 */
#include "ctl.h"

#include "cs_chain.h"
#include "cs_fp.h"
#include "cs_ingest.h"
#include "cs_x509.h"

#include <openssl/err.h>
#include <stdio.h>
#include <time.h>

const struct ctl_cmd ctl_offline_cmds[] = {
	{ "inspect", ctl_inspect_main,
	  "inspect [--json] [--password-file F] FILE...",
	  "show keys, certificates, chain order and key match in files" },
	{ "convert", ctl_convert_main,
	  "convert IN... OUT --to KIND [--mode M]",
	  "DER/PKCS#7/PKCS#12/PEM in, ordered PEM out (bundle, fullchain, cert, chain, key)" },
	{ "fingerprint", ctl_fingerprint_main,
	  "fingerprint FILE [--digest D] [--pubkey]",
	  "certificate or public-key fingerprint, as Postfix prints it" },
	{ "tlsa", ctl_tlsa_main, "tlsa FILE [--selector 0|1] [--matching 1|2]",
	  "DANE TLSA record for the certificate" },
	{ "probe", ctl_probe_main, "probe URL [--expect FILE] [--wait S]",
	  "the certificate a server presents (STARTTLS or implicit TLS)" },
	{ "rehash-dir", ctl_rehash_dir_main, "rehash-dir [--cafile F] DIR...", "hash links of CApath directories, as openssl rehash makes them" },
	{ NULL, NULL, NULL, NULL },
};

int ctl_password(const char *cmd, const char *file, const char *env, char **pw)
{
	char err[512];

	*pw = NULL;
	if (file == NULL && env == NULL)
		return 0;
	*pw = cs_ingest_password_read(file, env, err, sizeof(err));
	if (*pw == NULL) {
		fprintf(stderr, "certsyncctl %s: %s\n", cmd, err);
		return 1;
	}
	return 0;
}

void ctl_print_cert(X509 *x, int n, const char *role, time_t now)
{
	char buf[2048], fp[CS_FP_MAX];
	const ASN1_TIME *nb = X509_get0_notBefore(x), *na = X509_get0_notAfter(x);
	EVP_PKEY *pk = X509_get0_pubkey(x);
	long days = cs_x509_days_until(na, now);

	printf("  certificate %d: %s\n", n, role);
	printf("    subject:    %s\n", cs_x509_subject(x, buf, sizeof(buf)));
	cs_x509_sans(x, buf, sizeof(buf));
	printf("    SANs:       %s\n", buf[0] != '\0' ? buf : "(none)");
	printf("    issuer:     %s\n", cs_x509_issuer(x, buf, sizeof(buf)));
	printf("    serial:     %s\n", cs_x509_serial(x, buf, sizeof(buf)));
	printf("    not before: %s\n", cs_x509_time(nb, 0, buf, sizeof(buf)));
	printf("    not after:  %s", cs_x509_time(na, 0, buf, sizeof(buf)));
	if (X509_cmp_time(na, &now) < 0)
		printf(" (expired %s%ld day%s ago)\n", days == 0 ? "less than " : "",
		       days == 0 ? 1L : -days, days == -1 || days == 0 ? "" : "s");
	else
		printf(" (%ld day%s left)\n", days, days == 1 ? "" : "s");
	printf("    key:        %s\n", pk != NULL ? cs_x509_key_desc(pk, buf, sizeof(buf))
						 : "unreadable");
	if (cs_fp_cert(x, CS_DIGEST_SHA256, fp, sizeof(fp)) == 0)
		printf("    sha256:     %s\n", fp);
	ERR_clear_error();
}

/*
 * Reads path into a normalised set. Returns it (caller frees), or NULL after
 * printing a message for cmd on stderr.
 */
cs_material *ctl_load_leaf(const char *cmd, const char *path, const char *pw)
{
	struct cs_ingest_opts io = { .password = pw };
	cs_material *m = cs_material_new();
	char err[1024];

	if (m == NULL) {
		fprintf(stderr, "certsyncctl %s: out of memory\n", cmd);
		return NULL;
	}
	if (cs_ingest_file(m, path, &io, err, sizeof(err)) < 0) {
		fprintf(stderr, "certsyncctl %s: %s\n", cmd, err);
		goto fail;
	}
	if (cs_chain_normalise(m, err, sizeof(err)) < 0) {
		fprintf(stderr, "certsyncctl %s: %s: %s\n", cmd, path, err);
		goto fail;
	}
	if (m->leaf == NULL) {
		fprintf(stderr, "certsyncctl %s: %s: no certificate in the file\n", cmd, path);
		goto fail;
	}
	return m;
fail:
	cs_material_free(m);
	return NULL;
}
