/*
 * fuzz_dnsq - libFuzzer target: arbitrary bytes as a resolver's answer to
 * the DANE question (cs_dnsq_parse: libresolv's parser, then the TLSA
 * records taken from the answer section). What it keeps must be within its
 * bounds: at most CS_DNSQ_MAX_RECS records, each of usage/selector/matching
 * type and a 32- or 64-byte digest as the matching type says. Any crash,
 * out-of-bounds read, undefined behaviour or abort is a bug.
 */
#include "cs_dnsq.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cs_dnsq_answer a;

	if (cs_dnsq_parse(data, size, &a) < 0)
		return 0;
	if (a.n > CS_DNSQ_MAX_RECS)
		abort();
	for (size_t i = 0; i < a.n; i++)
		if (!((a.recs[i].mtype == 1 && a.recs[i].len == 32) ||
		      (a.recs[i].mtype == 2 && a.recs[i].len == 64)))
			abort();
	return 0;
}
