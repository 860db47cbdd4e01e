/*
 * cs_dnsq - one DNS question to one configured resolver: the TLSA RRset of
 * an owner name (RFC 6698) and whether the resolver validated it (the AD
 * bit, RFC 4035 section 3.2.3; RFC 6840 section 5.7). Used for DANE: the
 * agent only trusts what a validating resolver it was told about answers.
 *
 * The question goes over UDP (EDNS0, 1232 bytes, DO set so that a
 * validating resolver returns AD) and again over TCP when the answer is
 * truncated. The answer is parsed with libresolv's ns_parserr. Blocking,
 * bounded by a timeout: call it from a work-queue thread, or through
 * cs_dnsq_tlsa_start. The agent asks through its network process
 * (cs_netproc_dnsq_start), so that the privileged parent never reads a
 * byte a resolver sent.
 */
#ifndef CS_DNSQ_H
#define CS_DNSQ_H

#include "cs_tlsa.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* At most this many TLSA records of one RRset are kept (the rest are counted). */
#define CS_DNSQ_MAX_RECS 16

struct cs_dnsq_answer {
	int rcode;       /* 0 NOERROR, 3 NXDOMAIN, 2 SERVFAIL, ... */
	bool ad;         /* the resolver says it validated the answer */
	uint32_t ttl;    /* the smallest TTL of the TLSA records (0: none) */
	size_t n;        /* records kept in recs */
	size_t n_other;  /* TLSA records not kept (too many, or data of another length) */
	struct cs_tlsa_rec recs[CS_DNSQ_MAX_RECS];
};

/*
 * Parses "ADDRESS:PORT", "[V6]:PORT" or "ADDRESS" (port 53) into a socket
 * address. Returns 0, or -1 with err set.
 */
int cs_dnsq_parse_server(const char *s, void *sockaddr_storage, unsigned *len, char *err,
			 size_t errlen);

/*
 * Reads a DNS answer (len bytes, as a resolver sent it) into *a: its rcode,
 * the AD bit and the TLSA records of its answer section. Returns 0, or
 * -EPROTO when it is not a well-formed DNS message.
 */
int cs_dnsq_parse(const unsigned char *msg, size_t len, struct cs_dnsq_answer *a);

/*
 * Asks server ("ADDR:PORT") for the TLSA records of owner within timeout_ms.
 * Returns 0 with *a filled (an NXDOMAIN or an empty answer is a success with
 * n = 0; a looks at a->rcode and a->ad), or a negative errno with err saying
 * what failed (no answer, a malformed one).
 */
int cs_dnsq_tlsa(const char *server, const char *owner, int timeout_ms, struct cs_dnsq_answer *a,
		 char *err, size_t errlen);

/*
 * What cs_dnsq_tlsa_start calls on the loop: status 0 with the answer a, or
 * a negative errno with err saying what failed (a NULL).
 */
typedef void (*cs_dnsq_cb)(void *arg, int status, const struct cs_dnsq_answer *a,
			   const char *err);

/*
 * cs_dnsq_tlsa on loop's thread pool, cb called on the loop when it ends.
 * Returns 0, or a negative errno (cb is then not called).
 */
int cs_dnsq_tlsa_start(uv_loop_t *loop, const char *server, const char *owner, int timeout_ms,
		       cs_dnsq_cb cb, void *arg);

#endif
