/*
 * cs_ctlsock_dane - show's "dane" object: the records wanted and published
 * (with their roles and since when the resolver has shown them), how they
 * are published and how that went, the validating resolver's view at every
 * owner, and what happens next. `certsyncctl dane NAME` prints it.
 */
#include "cs_ctlsock_int.h"

#include <stdio.h>

static const char *const roles[] = { "current", "next", "retiring" };
static const char *const updates[] = { "unset", "none", "rfc2136", "hook" };

static json_t *records_json(const struct cs_dane_state *d)
{
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && i < d->n; i++) {
		const struct cs_dane_rec *r = &d->r[i];
		json_array_append_new(
			a, json_pack("{s:s,s:s,s:b,s:o,s:o}", CS_PROTO_K_DANE_ROLE,
				     roles[r->role], CS_PROTO_K_DANE_DATA, r->hex,
				     CS_PROTO_K_DANE_PUBLISHED, r->published,
				     CS_PROTO_K_DANE_VISIBLE_SINCE,
				     cs_ctlsock__time_json((time_t)r->visible_since),
				     CS_PROTO_K_DANE_RETIRE_AT,
				     cs_ctlsock__time_json((time_t)r->retire_at)));
	}
	return a;
}

/* Each owner's answer: rcode, AD, TTL and the records as "U S M HEX". */
static json_t *view_json(const struct cs_cert_status *st)
{
	json_t *a = json_array();
	char hex[2 * CS_TLSA_DATA_MAX + 1], rec[2 * CS_TLSA_DATA_MAX + 16];

	for (size_t i = 0; a != NULL && st->dane_seen && i < st->dane_n_owners; i++) {
		const struct cs_dnsq_answer *ans = &st->dane_answers[i];
		json_t *recs = json_array();
		for (size_t k = 0; recs != NULL && k < ans->n; k++) {
			const struct cs_tlsa_rec *r = &ans->recs[k];
			if (cs_tlsa_rec_hex(r, hex, sizeof(hex)) < 0)
				continue;
			snprintf(rec, sizeof(rec), "%u %u %u %s", r->usage, r->selector, r->mtype,
				 hex);
			json_array_append_new(recs, json_string(rec));
		}
		json_array_append_new(a, json_pack("{s:s,s:i,s:b,s:I,s:o}", CS_PROTO_K_DANE_OWNER,
						   st->dane_owners[i], CS_PROTO_K_DANE_RCODE,
						   ans->rcode, CS_PROTO_K_DANE_AD, ans->ad,
						   CS_PROTO_K_DANE_TTL, (json_int_t)ans->ttl,
						   CS_PROTO_K_DANE_RECORDS,
						   recs ? recs : json_null()));
	}
	return a;
}

json_t *cs_ctlsock__dane_json(const struct cs_cert_status *st)
{
	const struct cs_cfg_dane *cfg = st->dane_cfg;
	const struct cs_dane_state *d = st->dane;
	json_t *o, *owners;

	if (cfg == NULL)
		return json_null();
	if ((o = json_object()) == NULL || (owners = json_array()) == NULL) {
		json_decref(o);
		return json_null();
	}
	for (size_t p = 0; p < cfg->ports.n; p++)
		for (size_t h = 0; h < cfg->names.n; h++) {
			char owner[CS_DANE_OWNER_MAX];
			snprintf(owner, sizeof(owner), "_%s._tcp.%s", cfg->ports.v[p], cfg->names.v[h]);
			json_array_append_new(owners, json_string(owner));
		}
	json_object_set_new(o, CS_PROTO_K_DANE_USAGE, json_integer(cfg->usage));
	json_object_set_new(o, CS_PROTO_K_DANE_OWNERS, owners);
	json_object_set_new(o, CS_PROTO_K_DANE_UPDATE, json_string(updates[cfg->update]));
	json_object_set_new(o, CS_PROTO_K_DANE_RESOLVER, json_string(cfg->resolver));
	json_object_set_new(o, CS_PROTO_K_OK, json_boolean(d != NULL && cs_dane_ok(d)));
	if (d == NULL)
		return o;
	json_object_set_new(o, CS_PROTO_K_DANE_RECORDS, records_json(d));
	json_object_set_new(o, CS_PROTO_K_DANE_UPDATE_ERROR,
			    cs_ctlsock__str_json(d->update_failed ? d->update_err : NULL));
	json_object_set_new(o, CS_PROTO_K_DANE_UPDATE_FAILURES,
			    json_integer((json_int_t)d->update_failures));
	json_object_set_new(o, CS_PROTO_K_DANE_VALIDATED, json_boolean(d->validated));
	json_object_set_new(o, CS_PROTO_K_DANE_CHECK_ERROR,
			    cs_ctlsock__str_json(d->check_err[0] ? d->check_err : NULL));
	json_object_set_new(o, CS_PROTO_K_DANE_TTL, json_integer(d->ttl));
	json_object_set_new(o, CS_PROTO_K_DANE_VIEW, view_json(st));
	json_object_set_new(o, CS_PROTO_K_DANE_NEXT_READY, json_boolean(st->dane_next_ready));
	json_object_set_new(o, CS_PROTO_K_DANE_KEPT, json_integer((json_int_t)st->dane_kept));
	json_object_set_new(o, CS_PROTO_K_DANE_NEXT, json_string(st->dane_next));
	return o;
}
