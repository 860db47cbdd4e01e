/*
 * np_proto - the schema of the messages between certsyncd and netproc
 * (see np_proto.h): every field of every type with its kind, its largest
 * size and whether it is required or repeated.
 */
#include "np_proto.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define U(tag, max, fl) { (tag), CS_FK_U64, (fl), (max) }
#define S(tag, max, fl) { (tag), CS_FK_STR, (fl), (max) }
#define B(tag, max, fl) { (tag), CS_FK_BYTES, (fl), (max) }
#define REQ CS_FF_REQUIRED
#define REP CS_FF_REPEATED

/* Sizes: a URL or path 4 KiB, a name 255, a certificate or CSR 64 KiB, an error 1 KiB. */
#define URL_MAX 4096
#define NAME_MAX_ 255
#define DER_MAX 65536
#define ERR_MAX 1024

static const struct cs_frame_fielddef f_open[] = {
	S(NP_T_NAME, NAME_MAX_, REQ),	     S(NP_T_DIRECTORY, URL_MAX, REQ),
	S(NP_T_CONTACT, URL_MAX, REP),	     U(NP_T_CHALLENGE, 1, REQ),
	S(NP_T_WEBROOT, URL_MAX, 0),	     S(NP_T_LISTEN, NAME_MAX_, 0),
	S(NP_T_HOOK, URL_MAX, 0),	     S(NP_T_CA_BUNDLE, URL_MAX, 0),
	S(NP_T_EAB_KID, URL_MAX, 0),	     S(NP_T_CHAIN_PREF, NAME_MAX_, 0),
	S(NP_T_PROFILE, NAME_MAX_, 0),	     U(NP_T_POLL_TIMEOUT, 0, 0),
	U(NP_T_MAX_ORDERS, 1000, 0),
};
static const struct cs_frame_fielddef f_close[] = { { 0, CS_FK_U64, 0, 0 } };
static const struct cs_frame_fielddef f_issue[] = {
	U(NP_T_ISSUER, 0, REQ),		     S(NP_T_CERT_NAME, NAME_MAX_, REQ),
	S(NP_T_DNSNAME, NAME_MAX_, REQ | REP), U(NP_T_USAGE, 255, 0),
	B(NP_T_CSR, DER_MAX, REQ),	     B(NP_T_REPLACES, DER_MAX, 0),
	S(NP_T_ORDER_URL, URL_MAX, 0),
};
static const struct cs_frame_fielddef f_order[] = { S(NP_T_ORDER_URL, URL_MAX, REQ) };
static const struct cs_frame_fielddef f_revoke[] = {
	U(NP_T_ISSUER, 0, REQ), B(NP_T_LEAF, DER_MAX, REQ), U(NP_T_REASON, 11, 0),
};
static const struct cs_frame_fielddef f_ari[] = {
	U(NP_T_ISSUER, 0, REQ), B(NP_T_LEAF, DER_MAX, REQ),
};
static const struct cs_frame_fielddef f_key[] = {
	B(NP_T_PUBKEY, DER_MAX, REQ), U(NP_T_EXISTED, 1, REQ),
};
static const struct cs_frame_fielddef f_text[] = { S(NP_T_TEXT, 262144, REQ) };
static const struct cs_frame_fielddef f_status[] = {
	U(NP_T_STATUS, 0xffff, REQ), U(NP_T_NEGATIVE, 1, 0), S(NP_T_ERROR, ERR_MAX, 0),
};
static const struct cs_frame_fielddef f_test[] = { S(NP_T_WHAT, URL_MAX, REQ) };
static const struct cs_frame_fielddef f_probe[] = {
	S(NP_T_URL, 512, REQ), S(NP_T_WANT, 256, REQ), U(NP_T_BOUND, 3600000, REQ),
	U(NP_T_RETRY, 3600000, REQ), B(NP_T_TLSA, 3 + CS_TLSA_DATA_MAX, REP),
};
static const struct cs_frame_fielddef f_probed[] = {
	U(NP_T_OK, 1, REQ), S(NP_T_SERVED, 256, 0), S(NP_T_TEXT, ERR_MAX, 0),
};

static const struct cs_frame_fielddef f_dnsq[] = {
	S(NP_T_RESOLVER, NAME_MAX_, REQ), S(NP_T_OWNER, NAME_MAX_, REQ), U(NP_T_BOUND, 60000, REQ),
};
static const struct cs_frame_fielddef f_dnsa[] = {
	U(NP_T_STATUS, 0xffff, REQ), U(NP_T_NEGATIVE, 1, 0),	 S(NP_T_ERROR, ERR_MAX, 0),
	U(NP_T_RCODE, 0xfff, 0),     U(NP_T_AD, 1, 0),		 U(NP_T_TTL, 0xffffffff, 0),
	U(NP_T_OTHER, 0xffff, 0),    B(NP_T_TLSA, 3 + CS_TLSA_DATA_MAX, REP),
};

static const struct cs_frame_fielddef f_log[] = {
	U(NP_T_LEVEL, 4, REQ), S(NP_T_TEXT, 4096, REQ),
};
static const struct cs_frame_fielddef f_hostkey[] = {
	U(NP_T_ISSUER, 0, REQ), U(NP_T_REQ, 0, REQ),
};
static const struct cs_frame_fielddef f_sign[] = {
	U(NP_T_ISSUER, 0, REQ), U(NP_T_REQ, 0, REQ),	  S(NP_T_KID, URL_MAX, 0),
	S(NP_T_NONCE, 1024, REQ), S(NP_T_URL, URL_MAX, REQ), S(NP_T_PAYLOAD, 131072, 0),
};
static const struct cs_frame_fielddef f_eab[] = {
	U(NP_T_ISSUER, 0, REQ), U(NP_T_REQ, 0, REQ), S(NP_T_URL, URL_MAX, REQ),
};
static const struct cs_frame_fielddef f_chall[] = {
	U(NP_T_ISSUER, 0, REQ),	     U(NP_T_REQ, 0, REQ),	S(NP_T_CERT_NAME, NAME_MAX_, 0),
	U(NP_T_SET, 1, REQ),	     U(NP_T_CHALLENGE, 1, REQ), S(NP_T_IDENT, NAME_MAX_, REQ),
	S(NP_T_TOKEN, 256, REQ),
};
static const struct cs_frame_fielddef f_issued[] = {
	U(NP_T_STATUS, 0xffff, REQ), U(NP_T_NEGATIVE, 1, 0), S(NP_T_ERROR, ERR_MAX, 0),
	B(NP_T_LEAF, DER_MAX, 0),     B(NP_T_CHAIN, DER_MAX, REP), U(NP_T_RETRY_AFTER, 0, 0),
};
static const struct cs_frame_fielddef f_window[] = {
	U(NP_T_STATUS, 0xffff, REQ),	U(NP_T_NEGATIVE, 1, 0), S(NP_T_ERROR, ERR_MAX, 0),
	U(NP_T_START, 0, 0),		U(NP_T_END, 0, 0),	U(NP_T_RETRY_AFTER, 0, 0),
	S(NP_T_TEXT, 512, 0),
};

#define M(type, fields) { (type), #type, (fields), sizeof(fields) / sizeof((fields)[0]) }
#define M0(type) { (type), #type, f_close, 0 }

static const struct cs_frame_msgdef msgs[] = {
	M(NP_P_OPEN, f_open),	  M0(NP_P_CLOSE),	 M(NP_P_ISSUE, f_issue),
	M(NP_P_REVOKE, f_revoke), M(NP_P_ARI, f_ari),
	M(NP_P_KEY, f_key),	  M(NP_P_TEXT, f_text),	 M(NP_P_DONE, f_status),
	M0(NP_P_FD),		  M(NP_P_FAIL, f_status), M(NP_P_TEST, f_test),
	M0(NP_N_READY),		  M(NP_N_LOG, f_log),	 M(NP_N_KEY, f_hostkey),
	M(NP_N_SIGN, f_sign),	  M(NP_N_EAB, f_eab),	 M(NP_N_CHALL, f_chall),
	M(NP_N_LISTEN, f_hostkey), M(NP_N_ISSUED, f_issued), M(NP_N_DONE, f_status),
	M(NP_N_WINDOW, f_window), M(NP_N_TEST, f_test),	 M(NP_P_PROBE, f_probe),
	M(NP_N_PROBED, f_probed), M(NP_N_ORDER, f_order),	 M(NP_P_DNSQ, f_dnsq),
	M(NP_N_DNSA, f_dnsa),
};

const struct cs_frame_schema np_proto_schema = { msgs, sizeof(msgs) / sizeof(msgs[0]) };

bool np_proto_from_parent(uint16_t t)
{
	return t < NP_N_READY;
}

void np_proto_put_status(struct cs_frame_buf *b, int status)
{
	cs_frame_u64(b, NP_T_STATUS, (uint64_t)(status < 0 ? -status : status) & 0xffff);
	if (status < 0)
		cs_frame_u64(b, NP_T_NEGATIVE, 1);
}

int np_proto_get_status(const struct cs_frame_msg *m)
{
	int st = (int)cs_frame_u64_of(m, NP_T_STATUS, 0);

	return cs_frame_u64_of(m, NP_T_NEGATIVE, 0) ? -st : st;
}

void np_proto_put_tlsa(struct cs_frame_buf *b, const struct cs_probe_dane *d)
{
	unsigned char rec[3 + CS_TLSA_DATA_MAX];

	for (size_t i = 0; d != NULL && i < d->n; i++) {
		const struct cs_tlsa_rec *t = &d->recs[i];
		size_t len = t->len < CS_TLSA_DATA_MAX ? t->len : CS_TLSA_DATA_MAX;

		rec[0] = t->usage;
		rec[1] = t->selector;
		rec[2] = t->mtype;
		memcpy(rec + 3, t->data, len);
		cs_frame_bytes(b, NP_T_TLSA, rec, 3 + len);
	}
}

int np_proto_get_tlsa(const struct cs_frame_msg *m, struct cs_tlsa_rec *out,
		      struct cs_probe_dane *d, char *err, size_t errlen)
{
	size_t n = cs_frame_count(m, NP_T_TLSA);

	*d = (struct cs_probe_dane){ out, 0 };
	if (n > CS_PROBE_DANE_MAX) {
		snprintf(err, errlen, "%zu TLSA records: at most %d are checked", n,
			 CS_PROBE_DANE_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		const struct cs_frame_field *f = cs_frame_get(m, NP_T_TLSA, i);

		if (f->n < 4 || f->n > 3 + CS_TLSA_DATA_MAX) {
			snprintf(err, errlen, "TLSA record %zu: %zu bytes", i + 1, f->n);
			return -EINVAL;
		}
		memset(&out[i], 0, sizeof(out[i]));
		out[i].usage = f->p[0];
		out[i].selector = f->p[1];
		out[i].mtype = f->p[2];
		out[i].len = f->n - 3;
		memcpy(out[i].data, f->p + 3, out[i].len);
	}
	d->n = n;
	return cs_probe_dane_check(d, err, errlen);
}

void np_proto_put_answer(struct cs_frame_buf *b, const struct cs_dnsq_answer *a)
{
	cs_frame_u64(b, NP_T_RCODE, (uint64_t)a->rcode & 0xfff);
	cs_frame_u64(b, NP_T_AD, a->ad ? 1 : 0);
	cs_frame_u64(b, NP_T_TTL, a->ttl);
	cs_frame_u64(b, NP_T_OTHER, a->n_other > 0xffff ? 0xffff : a->n_other);
	np_proto_put_tlsa(b, &(struct cs_probe_dane){ (struct cs_tlsa_rec *)a->recs, a->n });
}

int np_proto_get_answer(const struct cs_frame_msg *m, struct cs_dnsq_answer *a, char *err,
			size_t errlen)
{
	struct cs_tlsa_rec recs[CS_PROBE_DANE_MAX];
	struct cs_probe_dane d;
	size_t n = cs_frame_count(m, NP_T_TLSA);

	memset(a, 0, sizeof(*a));
	if (n > CS_DNSQ_MAX_RECS) {
		snprintf(err, errlen, "%zu TLSA records: at most %d are kept", n, CS_DNSQ_MAX_RECS);
		return -EINVAL;
	}
	if (np_proto_get_tlsa(m, recs, &d, err, errlen) < 0)
		return -EINVAL;
	a->rcode = (int)cs_frame_u64_of(m, NP_T_RCODE, 0);
	a->ad = cs_frame_u64_of(m, NP_T_AD, 0) != 0;
	a->ttl = (uint32_t)cs_frame_u64_of(m, NP_T_TTL, 0);
	a->n_other = (size_t)cs_frame_u64_of(m, NP_T_OTHER, 0);
	a->n = d.n;
	memcpy(a->recs, recs, d.n * sizeof(recs[0]));
	return 0;
}
