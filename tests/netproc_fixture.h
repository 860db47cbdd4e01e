/*
 * netproc_fixture.h - what the parent's permitted-request table (np_permit)
 * is checked against in check_netproc.c and fuzzed against in
 * tests/fuzz/fuzz_netproc.c: one acme issuer (a contact, http-01 on
 * http_listen, profile tlsserver) and five requests in flight: 1 an issue for
 * two names with a CSR, 2 a revoke (reason 4), 3 a renewal-info, 4 a probe,
 * 5 a TLSA question to the DANE resolver.
 * Static: each includer gets its own copy.
 */
#ifndef NETPROC_FIXTURE_H
#define NETPROC_FIXTURE_H

#include "np_permit.h"

static char *fx_contact[] = { "mailto:hostmaster@example.test" };
static char *fx_names[] = { "a.example.test", "b.example.test" };
static unsigned char fx_csr[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };
static unsigned char fx_leaf[] = { 0x30, 0x03, 0x02, 0x01, 0x02 };
static const struct np_permit_issuer fx_issuer = {
	.contact = fx_contact, .n_contact = 1, .challenge = CS_ACME_HTTP01, .listen = true,
	.profile = "tlsserver",
};
static struct np_permit_req fx_reqs[5];

static const struct np_permit_issuer *fx_find_issuer(void *arg, uint64_t id)
{
	(void)arg;
	return id == 1 ? &fx_issuer : NULL;
}

static struct np_permit_req *fx_find_req(void *arg, uint64_t id)
{
	(void)arg;
	return id >= 1 && id <= 5 ? &fx_reqs[id - 1] : NULL;
}

/* The five requests as new (challenge counts at zero). */
static void fx_reset(void)
{
	fx_reqs[0] = (struct np_permit_req){ .kind = NP_ISSUE, .issuer = 1, .names = fx_names,
					     .n_names = 2, .csr = { fx_csr, sizeof(fx_csr) },
					     .reason = -1 };
	fx_reqs[1] = (struct np_permit_req){ .kind = NP_REVOKE, .issuer = 1,
					     .leaf = { fx_leaf, sizeof(fx_leaf) }, .reason = 4 };
	fx_reqs[2] = (struct np_permit_req){ .kind = NP_ARI, .issuer = 1,
					     .leaf = { fx_leaf, sizeof(fx_leaf) }, .reason = -1 };
	fx_reqs[3] = (struct np_permit_req){ .kind = NP_PROBE, .reason = -1 };
	fx_reqs[4] = (struct np_permit_req){ .kind = NP_DNSQ, .reason = -1 };
}

#endif
