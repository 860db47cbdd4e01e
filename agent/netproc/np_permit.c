/*
 * np_permit - what netproc may send, checked frame by frame (see np_permit.h).
 */
#include "np_permit.h"
#include "cs_acme_host.h"
#include "cs_b64url.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CHALL_PER_NAME 4 /* set up and taken down, twice (an order retried once) */

static int refuse(char *why, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int refuse(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return -EPERM;
}

/* True when every key of object o is one of keys (NULL-terminated). */
static bool only_keys(json_t *o, const char *const *keys)
{
	const char *k;
	json_t *v;

	json_object_foreach(o, k, v) {
		size_t i;
		for (i = 0; keys[i] != NULL && strcmp(keys[i], k) != 0; i++)
			;
		if (keys[i] == NULL)
			return false;
	}
	return true;
}

/* True when s is base64url of exactly d. */
static bool b64_is(json_t *s, const struct cs_der *d)
{
	const char *t = json_string_value(s);
	size_t n = 0;
	unsigned char *p;
	bool same;

	if (t == NULL || d->n == 0)
		return false;
	p = cs_b64url_decode(t, strlen(t), &n);
	same = p != NULL && n == d->n && memcmp(p, d->p, n) == 0;
	free(p);
	return same;
}

static bool has_name(const struct np_permit_req *r, const char *name)
{
	for (size_t i = 0; i < r->n_names; i++)
		if (strcasecmp(r->names[i], name) == 0)
			return true;
	return false;
}

/* A newOrder's identifiers: exactly the request's names, each once. */
static bool identifiers_ok(const struct np_permit_req *r, json_t *ids)
{
	size_t i, n = json_array_size(ids);
	json_t *id;

	if (!json_is_array(ids) || n != r->n_names)
		return false;
	json_array_foreach(ids, i, id) {
		const char *type = json_string_value(json_object_get(id, "type"));
		const char *value = json_string_value(json_object_get(id, "value"));
		if (type == NULL || value == NULL || json_object_size(id) != 2 ||
		    (strcmp(type, "dns") != 0 && strcmp(type, "ip") != 0) || !has_name(r, value))
			return false;
		for (size_t k = 0; k < i; k++)
			if (strcasecmp(json_string_value(json_object_get(json_array_get(ids, k),
									 "value")), value) == 0)
				return false;
	}
	return true;
}

/* A newAccount: only the configured contact, the terms, the binding, or a lookup. */
static int check_new_account(const struct np_permit_issuer *is, json_t *p, char *why, size_t len)
{
	static const char *const keys[] = { "onlyReturnExisting", "contact", "termsOfServiceAgreed",
					    "externalAccountBinding", NULL };
	json_t *contact = json_object_get(p, "contact"), *c;
	size_t i;

	if (!only_keys(p, keys))
		return refuse(why, len, "a newAccount with keys no renewal sends");
	if (json_object_get(p, "onlyReturnExisting") != NULL &&
	    !json_is_true(json_object_get(p, "onlyReturnExisting")))
		return refuse(why, len, "a newAccount with onlyReturnExisting not true");
	if (json_object_get(p, "externalAccountBinding") != NULL && !is->eab)
		return refuse(why, len, "an external account binding the issuer does not have");
	if (contact == NULL)
		return 0;
	if (!json_is_array(contact) || json_array_size(contact) != is->n_contact)
		return refuse(why, len, "a newAccount with another contact than configured");
	json_array_foreach(contact, i, c)
		if (!json_is_string(c) || strcmp(json_string_value(c), is->contact[i]) != 0)
			return refuse(why, len, "a newAccount with another contact than configured");
	return 0;
}

/* A payload signed with the account's kid, for request r. */
static int check_kid_payload(const struct np_permit_issuer *is, struct np_permit_req *r, json_t *p,
			     char *why, size_t len)
{
	static const char *const order_keys[] = { "identifiers", "replaces", "profile", NULL };
	static const char *const revoke_keys[] = { "certificate", "reason", NULL };

	if (json_object_size(p) == 0)
		return r->kind == NP_ISSUE && r->ordered
			       ? 0
			       : refuse(why, len, "a challenge answer outside an order");
	if (json_object_get(p, "identifiers") != NULL) {
		json_t *prof = json_object_get(p, "profile"), *rep = json_object_get(p, "replaces");
		if (r->kind != NP_ISSUE || !only_keys(p, order_keys))
			return refuse(why, len, "a newOrder outside an issue request");
		if (!identifiers_ok(r, json_object_get(p, "identifiers")))
			return refuse(why, len, "a newOrder for other names than the request's");
		if (prof != NULL && (is->profile == NULL || !json_is_string(prof) ||
				     strcmp(json_string_value(prof), is->profile) != 0))
			return refuse(why, len, "a newOrder with another profile than configured");
		if (rep != NULL && (!json_is_string(rep) ||
				    strspn(json_string_value(rep), "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij"
								   "klmnopqrstuvwxyz0123456789-_.") !=
					    strlen(json_string_value(rep))))
			return refuse(why, len, "a newOrder with a malformed replaces");
		r->ordered = true;
		return 0;
	}
	if (json_object_get(p, "csr") != NULL) {
		if (r->kind != NP_ISSUE || json_object_size(p) != 1)
			return refuse(why, len, "a finalize outside an issue request");
		if (!r->ordered)
			return refuse(why, len, "a finalize before any newOrder");
		if (!b64_is(json_object_get(p, "csr"), &r->csr))
			return refuse(why, len, "a finalize with another CSR than the parent's");
		return 0;
	}
	if (json_object_get(p, "certificate") != NULL) {
		json_t *reason = json_object_get(p, "reason");
		if (r->kind != NP_REVOKE || !only_keys(p, revoke_keys))
			return refuse(why, len, "a revokeCert outside a revoke request");
		if (!b64_is(json_object_get(p, "certificate"), &r->leaf))
			return refuse(why, len, "a revokeCert of another certificate than asked");
		if ((reason == NULL) != (r->reason < 0) ||
		    (reason != NULL && json_integer_value(reason) != r->reason))
			return refuse(why, len, "a revokeCert with another reason than asked");
		return 0;
	}
	return refuse(why, len, "a signature for a request no renewal makes");
}

static int check_sign(const struct np_permit_issuer *is, struct np_permit_req *r,
		      const struct cs_frame_msg *m, char *why, size_t len)
{
	const char *payload = cs_frame_str_of(m, NP_T_PAYLOAD);
	json_error_t je;
	json_t *p;
	int rc;

	if (payload == NULL)
		return 0; /* POST-as-GET: reads what the account may read anyway */
	p = json_loads(payload, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(p)) {
		json_decref(p);
		return refuse(why, len, "a payload to sign that is not a JSON object");
	}
	rc = cs_frame_str_of(m, NP_T_KID) == NULL ? check_new_account(is, p, why, len)
						  : check_kid_payload(is, r, p, why, len);
	json_decref(p);
	return rc;
}

static int check_chall(const struct np_permit_issuer *is, struct np_permit_req *r,
		       const struct cs_frame_msg *m, char *why, size_t len)
{
	if (r->kind != NP_ISSUE)
		return refuse(why, len, "a challenge outside an issue request");
	if (!r->ordered)
		return refuse(why, len, "a challenge before any newOrder");
	if (cs_frame_u64_of(m, NP_T_CHALLENGE, 99) != (uint64_t)is->challenge)
		return refuse(why, len, "a challenge of another type than configured");
	if (!has_name(r, cs_frame_str_of(m, NP_T_IDENT)))
		return refuse(why, len, "a challenge for a name the request does not have");
	if (!cs_acme_host_token_ok(cs_frame_str_of(m, NP_T_TOKEN)))
		return refuse(why, len, "a challenge token that is not base64url");
	if (++r->n_chall > CHALL_PER_NAME * r->n_names)
		return refuse(why, len, "more challenges than the request's names need");
	return 0;
}

/* A resolver's answer: records of the kinds and sizes an answer may hold, and not too many. */
static int check_answer(const struct cs_frame_msg *m, char *why, size_t len)
{
	struct cs_dnsq_answer a;
	char err[200];

	if (np_proto_get_answer(m, &a, err, sizeof(err)) < 0)
		return refuse(why, len, "a DNS answer that no parse gives: %s", err);
	return 0;
}

/* A host call (NP_N_KEY .. NP_N_LISTEN) for request r of issuer is. */
static int check_call(const struct np_permit_issuer *is, struct np_permit_req *r,
		      const struct cs_frame_msg *m, char *why, size_t len)
{
	if (r->kind == NP_ARI || r->kind == NP_PROBE || r->kind == NP_DNSQ)
		return refuse(why, len, "%s for a %s request", m->def->name,
			      r->kind == NP_ARI ? "renewal-info" : r->kind == NP_PROBE ? "probe" :
										 "DNS");
	switch (m->type) {
	case NP_N_KEY:
		return 0;
	case NP_N_SIGN:
		return check_sign(is, r, m, why, len);
	case NP_N_EAB:
		return is->eab ? 0 : refuse(why, len, "EAB for an issuer without one");
	case NP_N_CHALL:
		return check_chall(is, r, m, why, len);
	default: /* NP_N_LISTEN */
		if (r->kind != NP_ISSUE || !is->listen)
			return refuse(why, len, "a socket for an issuer without http_listen");
		if (!r->ordered)
			return refuse(why, len, "a socket before any newOrder");
		return 0;
	}
}

static int check(const struct np_permit_ctx *ctx, const struct cs_frame_msg *m, char *why,
		 size_t len)
{
	const struct np_permit_issuer *is;
	struct np_permit_req *r;

	if (np_proto_from_parent(m->type))
		return refuse(why, len, "%s travels the other way", m->def->name);
	switch (m->type) {
	case NP_N_READY:
	case NP_N_LOG:
		return 0;
	case NP_N_TEST:
		return ctx->test_build ? 0 : refuse(why, len, "NP_N_TEST in a release build");
	case NP_N_ORDER:
		r = ctx->req(ctx->arg, m->id);
		if (r == NULL || r->kind != NP_ISSUE || !r->ordered)
			return refuse(why, len, "an order for request %llu, which did not sign one",
				      (unsigned long long)m->id);
		return 0;
	case NP_N_ISSUED:
	case NP_N_DONE:
	case NP_N_WINDOW:
	case NP_N_PROBED:
	case NP_N_DNSA:
		r = ctx->req(ctx->arg, m->id);
		if (r == NULL)
			return refuse(why, len, "%s for request %llu, which is not in flight",
				      m->def->name, (unsigned long long)m->id);
		if ((m->type == NP_N_ISSUED) != (r->kind == NP_ISSUE) ||
		    (m->type == NP_N_DONE) != (r->kind == NP_REVOKE) ||
		    (m->type == NP_N_PROBED) != (r->kind == NP_PROBE) ||
		    (m->type == NP_N_DNSA) != (r->kind == NP_DNSQ))
			return refuse(why, len, "%s answers a request of another kind", m->def->name);
		return m->type == NP_N_DNSA ? check_answer(m, why, len) : 0;
	}
	is = ctx->issuer(ctx->arg, cs_frame_u64_of(m, NP_T_ISSUER, 0));
	if (is == NULL)
		return refuse(why, len, "%s names an issuer never opened", m->def->name);
	r = ctx->req(ctx->arg, cs_frame_u64_of(m, NP_T_REQ, 0));
	if (r == NULL || r->issuer != cs_frame_u64_of(m, NP_T_ISSUER, 0))
		return refuse(why, len, "%s for no request of that issuer in flight", m->def->name);
	return check_call(is, r, m, why, len);
}

int np_permit_check(const struct np_permit_ctx *ctx, const unsigned char *frame, size_t n,
		    struct cs_frame_msg *m, char *why, size_t whylen)
{
	int rc = cs_frame_parse(&np_proto_schema, frame, n, m, why, whylen);

	if (rc < 0)
		return -EBADMSG;
	rc = check(ctx, m, why, whylen);
	if (rc < 0)
		cs_frame_msg_free(m);
	return rc;
}
