/*
 * fuzz_netproc - arbitrary frames from a (compromised) network process to
 * the parent's decoder and permitted-request table (np_permit_check), as the
 * parent sees them: the issuer and the five requests in flight of
 * tests/netproc_fixture.h (an issue, a revoke, a renewal-info, a probe, a
 * DNS question). A DNS answer the table lets through must decode
 * (np_proto_get_answer) into at most CS_DNSQ_MAX_RECS records, each of its
 * matching type's length.
 * The input is cut into frames at each length prefix, so that one run checks
 * a sequence (the challenge counter carries over between frames). Each frame
 * is also read the way netproc reads the parent's: against the schema, and
 * a probe's TLSA records through np_proto_get_tlsa (at most
 * CS_PROBE_DANE_MAX, each of its matching type's length). Seeds in
 * corpus/netproc: probe_tlsa (a 3 1 1 and a 2 0 2 record), probed, both;
 * dnsa (an answer with a 3 1 1 and a 2 1 2 record), dnsa_failed.
 */
#include "../netproc_fixture.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Frame p as netproc takes one from the parent; a probe's records must hold to their rules. */
static void as_netproc(const uint8_t *p, size_t n)
{
	struct cs_tlsa_rec recs[CS_PROBE_DANE_MAX];
	struct cs_probe_dane d;
	struct cs_frame_msg m;
	char why[256];

	if (cs_frame_parse(&np_proto_schema, p, n, &m, why, sizeof(why)) < 0)
		return;
	if (m.type == NP_P_PROBE && np_proto_get_tlsa(&m, recs, &d, why, sizeof(why)) == 0) {
		if (d.n > CS_PROBE_DANE_MAX)
			abort();
		for (size_t i = 0; i < d.n; i++)
			if (d.recs[i].len != (d.recs[i].mtype == 1 ? 32u : 64u))
				abort();
	}
	cs_frame_msg_free(&m);
}

/* A DNS answer the table let through: the parent takes it as np_permit checked it. */
static void as_parent_answer(const struct cs_frame_msg *m)
{
	struct cs_dnsq_answer a;
	char why[256];

	if (np_proto_get_answer(m, &a, why, sizeof(why)) < 0 || a.n > CS_DNSQ_MAX_RECS)
		abort();
	for (size_t i = 0; i < a.n; i++)
		if (a.recs[i].len != (a.recs[i].mtype == 1 ? 32u : 64u))
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct np_permit_ctx ctx = { fx_find_issuer, fx_find_req, NULL, false };
	struct cs_frame_msg m;
	char why[512];

	fx_reset();
	while (size >= 4) {
		size_t n = 4 + ((size_t)data[0] << 24 | (size_t)data[1] << 16 |
				(size_t)data[2] << 8 | data[3]);
		if (n > size)
			n = size;
		if (np_permit_check(&ctx, data, n, &m, why, sizeof(why)) == 0) {
			if (m.type == NP_N_DNSA)
				as_parent_answer(&m);
			cs_frame_msg_free(&m);
		}
		as_netproc(data, n);
		data += n;
		size -= n;
	}
	return 0;
}
