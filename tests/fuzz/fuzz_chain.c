/*
 * fuzz_chain - libFuzzer target: arbitrary PEM sequences into the chain
 * checks that run before every deploy. The input is a set as an issuer
 * would send it (key and certificates, the first certificate taken as the
 * leaf, the others as its chain, in the order given), optionally followed by
 * a line "--trust--" and the trust anchors (PEM) the chain must end in. The
 * set is validated as it came (unordered), put in order (cs_chain_order),
 * and validated again against the anchors, with names and a usage. Any
 * crash, leak, hang or undefined behaviour is a bug.
 */
#include "cs_chain.h"
#include "cs_ingest.h"
#include "cs_validate.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char trust_path[] = "/tmp/fuzz_chain.XXXXXX";
static int trust_fd = -1;

/* Writes the anchors to the scratch file; returns false when it cannot. */
static bool write_trust(const uint8_t *p, size_t n)
{
	if (trust_fd < 0) {
		trust_fd = mkstemp(trust_path);
		if (trust_fd < 0)
			return false;
		/* Gone from the directory at once; read through /proc/self/fd. */
		unlink(trust_path);
		snprintf(trust_path, sizeof(trust_path), "/proc/self/fd/%d", trust_fd);
	}
	if (ftruncate(trust_fd, 0) < 0 || pwrite(trust_fd, p, n, 0) != (ssize_t)n)
		return false;
	return true;
}

/* The set as an issuer's answer: first certificate the leaf, the rest its chain. */
static void as_answer(cs_material *m)
{
	while (sk_X509_num(m->strays) > 0) {
		X509 *x = sk_X509_shift(m->strays);

		if (m->leaf == NULL)
			m->leaf = x;
		else if (!sk_X509_push(m->chain, x))
			X509_free(x);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char sep[] = "\n--trust--\n";
	static const char *const names[] = { "leaf.example.test", "127.0.0.1", NULL };
	struct cs_ingest_opts io = { .password = NULL };
	struct cs_validate_opts vo = {
		.require_key = true,
		.names = names,
		.now = 1700000000,
		.eku = XKU_SSL_SERVER,
	};
	const uint8_t *cut = NULL;
	cs_material *m = cs_material_new();
	struct cs_problems *p = cs_problems_new();
	char err[1024], report[4096];
	size_t setlen = size;

	if (m == NULL || p == NULL)
		goto out;
	for (size_t i = 0; i + sizeof(sep) - 1 <= size; i++)
		if (memcmp(data + i, sep, sizeof(sep) - 1) == 0) {
			cut = data + i + sizeof(sep) - 1;
			setlen = i;
			break;
		}
	if (cut != NULL && write_trust(cut, size - (size_t)(cut - data))) {
		vo.trust = CS_TRUST_STORE;
		vo.cafile = trust_path;
	} else {
		vo.trust = CS_TRUST_OWN_ROOT;
	}
	cs_ingest_buffer(m, data, setlen, "fuzz", &io, err, sizeof(err));
	as_answer(m);
	/* Not in order yet: the checks must hold on whatever they are given. */
	cs_validate(m, &vo, p, err, sizeof(err));
	if (cs_chain_order(m, report, sizeof(report)) < 0 && m->leaf == NULL)
		goto out;
	vo.eku = XKU_SSL_CLIENT;
	cs_validate(m, &vo, p, err, sizeof(err));
out:
	cs_problems_free(p);
	cs_material_free(m);
	ERR_clear_error();
	return 0;
}
