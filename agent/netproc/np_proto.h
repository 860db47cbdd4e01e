/*
 * np_proto - the messages between certsyncd and its network process
 * (netproc), and their schema: which fields each type has, of which kind,
 * how long, which are required. Both sides decode every frame against it
 * (cs_frame_parse) before they look at a field, and a frame either side
 * did not expect from the other is a protocol violation.
 *
 * Direction is part of the type: NP_P_* go from the parent to netproc,
 * NP_N_* from netproc to the parent. A frame's id is the request it belongs
 * to (an issue, revoke or renewal-info call of the parent; 0 for none), or
 * for host calls (netproc asking the parent to sign, to set a challenge up,
 * ...) the call's own number, which the answer repeats.
 */
#ifndef NP_PROTO_H
#define NP_PROTO_H

#include "cs_dnsq.h"
#include "cs_frame.h"
#include "cs_probe.h"

#include <stdbool.h>
#include <stdint.h>

enum np_type {
	/* parent -> netproc */
	NP_P_OPEN = 1,   /* an acme issuer: id = its number */
	NP_P_CLOSE,      /* id = the issuer's number */
	NP_P_ISSUE,      /* id = request */
	NP_P_REVOKE,     /* id = request */
	NP_P_ARI,        /* id = request */
	NP_P_KEY,        /* answer to NP_N_KEY: id = host call */
	NP_P_TEXT,       /* answer to NP_N_SIGN / NP_N_EAB */
	NP_P_DONE,       /* answer to NP_N_CHALL */
	NP_P_FD,         /* answer to NP_N_LISTEN, with a listening socket beside it */
	NP_P_FAIL,       /* a host call refused or failed */
	NP_P_TEST,       /* test builds only: do a forbidden thing, say what happened */
	NP_P_PROBE,      /* id = request: a verify probe */
	NP_P_DNSQ,       /* id = request: a TLSA question to the DANE resolver */

	/* netproc -> parent */
	NP_N_READY = 32, /* sandboxed; ready for work */
	NP_N_LOG,        /* a line of netproc's log */
	NP_N_KEY,        /* host call: the account key's public half */
	NP_N_SIGN,       /* host call: a JWS */
	NP_N_EAB,        /* host call: the external account binding */
	NP_N_CHALL,      /* host call: set a challenge up or take it down */
	NP_N_LISTEN,     /* host call: a socket listening on http_listen */
	NP_N_ISSUED,     /* id = request: the issue call's result */
	NP_N_DONE,       /* id = request: the revoke call's result */
	NP_N_WINDOW,     /* id = request: the renewal-info call's result */
	NP_N_TEST,       /* test builds only: the answer to NP_P_TEST */
	NP_N_PROBED,     /* id = request: the probe's result */
	NP_N_ORDER,      /* id = request: the order it created (resumed by the next netproc) */
	NP_N_DNSA,       /* id = request: the resolver's answer, parsed (np_proto_put_answer) */
};

enum np_tag {
	NP_T_ISSUER = 1,   /* u64: the issuer's number */
	NP_T_REQ,          /* u64: the request a host call is made for */
	NP_T_NAME,         /* str */
	NP_T_DIRECTORY,
	NP_T_CONTACT,
	NP_T_CHALLENGE,    /* u64: enum cs_acme_challenge */
	NP_T_WEBROOT,      /* str: present when http-01 uses a webroot */
	NP_T_LISTEN,       /* str: http_listen */
	NP_T_HOOK,         /* str: dns_hook (for messages only) */
	NP_T_CA_BUNDLE,    /* str: a path inside netproc's root */
	NP_T_EAB_KID,
	NP_T_CHAIN_PREF,
	NP_T_PROFILE,
	NP_T_POLL_TIMEOUT, /* u64 seconds */
	NP_T_MAX_ORDERS,   /* u64 */
	NP_T_CERT_NAME,
	NP_T_DNSNAME,      /* str, repeated */
	NP_T_USAGE,        /* u64 */
	NP_T_CSR,          /* bytes: DER */
	NP_T_REPLACES,     /* bytes: DER */
	NP_T_LEAF,         /* bytes: DER */
	NP_T_CHAIN,        /* bytes: DER, repeated, in order */
	NP_T_REASON,       /* u64: CRLReason + 1 (0: none) */
	NP_T_STATUS,       /* u64: 0, or the positive errno / exit status */
	NP_T_NEGATIVE,     /* u64: 1 when STATUS is a negative code */
	NP_T_ERROR,        /* str */
	NP_T_PUBKEY,       /* bytes: SubjectPublicKeyInfo DER */
	NP_T_EXISTED,      /* u64: 0/1 */
	NP_T_KID,
	NP_T_NONCE,
	NP_T_URL,
	NP_T_PAYLOAD,      /* str: JSON; absent for POST-as-GET */
	NP_T_TEXT,         /* str */
	NP_T_SET,          /* u64: 1 set up, 0 take down */
	NP_T_IDENT,
	NP_T_TOKEN,
	NP_T_LEVEL,        /* u64: enum cs_log_level */
	NP_T_START,        /* u64: time */
	NP_T_END,          /* u64: time */
	NP_T_RETRY_AFTER,  /* u64: seconds */
	NP_T_WHAT,         /* str: NP_P_TEST's order, NP_N_TEST's answer */
	NP_T_WANT,         /* str: the SHA-256 a probe wants served */
	NP_T_BOUND,        /* u64: ms */
	NP_T_RETRY,        /* u64: ms */
	NP_T_OK,           /* u64: 0/1 */
	NP_T_SERVED,       /* str: the SHA-256 served */
	NP_T_ORDER_URL,    /* str: an order to resume (NP_P_ISSUE) or created (NP_N_ORDER) */
	NP_T_TLSA,         /* bytes, repeated: a TLSA record a probe checks (np_proto_put_tlsa) */
	NP_T_RESOLVER,     /* str: "ADDR:PORT" of the validating resolver */
	NP_T_OWNER,        /* str: the TLSA owner name asked for */
	NP_T_RCODE,        /* u64: the answer's rcode */
	NP_T_AD,           /* u64: 0/1, the answer's AD bit */
	NP_T_TTL,          /* u64: the smallest TTL of the TLSA records */
	NP_T_OTHER,        /* u64: TLSA records of the answer not kept */
};

/* The schema of every message, for cs_frame_parse. */
extern const struct cs_frame_schema np_proto_schema;

/* True when type t travels from the parent to netproc (else from netproc to the parent). */
bool np_proto_from_parent(uint16_t t);

/* A status field pair (NP_T_STATUS, NP_T_NEGATIVE) written and read back. */
void np_proto_put_status(struct cs_frame_buf *b, int status);
int np_proto_get_status(const struct cs_frame_msg *m);

/*
 * A probe's TLSA records, each an NP_T_TLSA field: usage, selector, matching
 * type, then the association data.
 */
void np_proto_put_tlsa(struct cs_frame_buf *b, const struct cs_probe_dane *d);

/*
 * The NP_T_TLSA fields of m into out (room for CS_PROBE_DANE_MAX records)
 * and d (pointing at out). Returns 0, or -EINVAL with why in err: more than
 * CS_PROBE_DANE_MAX, a field shorter than 4 bytes, data of another length
 * than its matching type's (32 for SHA-256, 64 for SHA-512) or another
 * matching type.
 */
int np_proto_get_tlsa(const struct cs_frame_msg *m, struct cs_tlsa_rec *out,
		      struct cs_probe_dane *d, char *err, size_t errlen);

/* A resolver's answer (cs_dnsq.h) as fields of b: rcode, AD, TTL, the records as NP_T_TLSA. */
void np_proto_put_answer(struct cs_frame_buf *b, const struct cs_dnsq_answer *a);

/*
 * The answer in m into *a. Returns 0, or -EINVAL with why in err: more than
 * CS_DNSQ_MAX_RECS records, or one np_proto_get_tlsa refuses.
 */
int np_proto_get_answer(const struct cs_frame_msg *m, struct cs_dnsq_answer *a, char *err,
			size_t errlen);

#endif
