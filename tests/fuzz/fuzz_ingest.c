/*
 * fuzz_ingest - libFuzzer target: arbitrary bytes through the path every
 * file certsync reads takes (ingest, normalise, validate, and the printing
 * of what was found). Any crash, leak or undefined behaviour is a bug; an
 * error return is the expected outcome for almost every input.
 */
#include "cs_chain.h"
#include "cs_ingest.h"
#include "cs_validate.h"
#include "cs_x509.h"

#include <openssl/err.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void describe(X509 *x)
{
	char buf[1024];

	cs_x509_subject(x, buf, sizeof(buf));
	cs_x509_issuer(x, buf, sizeof(buf));
	cs_x509_sans(x, buf, sizeof(buf));
	cs_x509_serial(x, buf, sizeof(buf));
	cs_x509_time(X509_get0_notAfter(x), 1, buf, sizeof(buf));
	cs_x509_days_until(X509_get0_notBefore(x), 1700000000);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "leaf.example.test", "127.0.0.1", NULL };
	/* No password: key derivation cost is set by the file, and would only
	 * measure PBKDF2. Encrypted inputs still exercise the refusal paths. */
	struct cs_ingest_opts io = { .password = NULL };
	struct cs_validate_opts vo = {
		.require_key = true,
		.trust = CS_TRUST_OWN_ROOT,
		.names = names,
		.now = 1700000000,
		.keytype = CS_KEY_EC_P256,
	};
	cs_material *m = cs_material_new();
	struct cs_problems *p = cs_problems_new();
	char err[1024], report[4096], buf[128];

	if (m == NULL || p == NULL)
		goto out;
	/* Even a failed ingest leaves a partial set that must be safe to use. */
	cs_ingest_buffer(m, data, size, "fuzz", &io, err, sizeof(err));
	if (cs_chain_normalise(m, report, sizeof(report)) < 0)
		goto out;
	cs_validate(m, &vo, p, err, sizeof(err));
	if (m->leaf != NULL)
		describe(m->leaf);
	for (int i = 0; i < sk_X509_num(m->chain); i++)
		describe(sk_X509_value(m->chain, i));
	for (int i = 0; i < sk_X509_num(m->strays); i++)
		describe(sk_X509_value(m->strays, i));
	cs_x509_key_desc(m->key, buf, sizeof(buf));
out:
	cs_problems_free(p);
	cs_material_free(m);
	ERR_clear_error();
	return 0;
}
