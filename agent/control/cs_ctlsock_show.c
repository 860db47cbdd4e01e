/*
 * cs_ctlsock_show - list and show: a cert's status as JSON. Clients asking
 * for list in the same loop turn share one rendered answer (cs_ctlsock_cmd.c
 * keeps it).
 */
#include "cs_ctlsock_int.h"

#include <string.h>
#include <time.h>

json_t *cs_ctlsock__time_json(time_t t)
{
	struct tm tm;
	char buf[32];

	if (t == 0)
		return json_null();
	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(buf);
}

json_t *cs_ctlsock__str_json(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

/* The drift checks of a cert: one object per verify URL and name. */
static json_t *served_json(const struct cs_cert_status *st)
{
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && i < st->n_served; i++) {
		const struct cs_served *v = &st->served[i];
		json_t *o = json_object();

		if (o == NULL)
			break;
		json_object_set_new(o, CS_PROTO_K_URL, json_string(v->url));
		json_object_set_new(o, CS_PROTO_K_NAME, json_string(v->name));
		json_object_set_new(o, CS_PROTO_K_MATCH,
				    v->match < 0 ? json_null() : json_boolean(v->match));
		json_object_set_new(o, CS_PROTO_K_SHA256,
				    v->sha256[0] ? json_string(v->sha256) : json_null());
		json_object_set_new(o, CS_PROTO_K_ERROR, cs_ctlsock__str_json(v->error));
		json_object_set_new(o, CS_PROTO_K_CHECKED, cs_ctlsock__time_json(v->checked));
		json_array_append_new(a, o);
	}
	return a;
}

/* show's issuers: the list, who issued the deployed cert, the fallbacks. */
static void issuers_json(json_t *o, const struct cs_cert_status *st)
{
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && i < st->n_issuers; i++)
		json_array_append_new(a, json_string(st->issuers[i]));
	json_object_set_new(o, CS_PROTO_K_ISSUERS, a != NULL ? a : json_null());
	json_object_set_new(o, CS_PROTO_K_ISSUED_BY, cs_ctlsock__str_json(st->issued_by));
	json_object_set_new(o, CS_PROTO_K_FALLBACK, cs_ctlsock__str_json(st->fallback));
	json_object_set_new(o, CS_PROTO_K_FALLBACKS, json_integer((json_int_t)st->fallbacks));
	json_object_set_new(o, CS_PROTO_K_TRYING, cs_ctlsock__str_json(st->trying));
	json_object_set_new(o, CS_PROTO_K_TRYING_WHY, cs_ctlsock__str_json(st->trying_why));
}

static json_t *cert_json(const struct cs_cert_status *st, time_t now, bool full)
{
	json_t *o = json_object();
	json_t *names = json_array();

	if (o == NULL || names == NULL) {
		json_decref(o);
		json_decref(names);
		return NULL;
	}
	for (size_t i = 0; i < st->n_names; i++)
		json_array_append_new(names, json_string(st->names[i]));
	json_object_set_new(o, CS_PROTO_K_NAME, json_string(st->name));
	json_object_set_new(o, CS_PROTO_K_STATE, json_string(cs_pipeline_state_name(st->state)));
	json_object_set_new(o, CS_PROTO_K_NAMES, names);
	json_object_set_new(o, CS_PROTO_K_ISSUER, cs_ctlsock__str_json(st->issuer));
	json_object_set_new(o, CS_PROTO_K_SERIAL, cs_ctlsock__str_json(st->serial));
	json_object_set_new(o, CS_PROTO_K_SHA256, cs_ctlsock__str_json(st->sha256));
	json_object_set_new(o, CS_PROTO_K_NOT_BEFORE, cs_ctlsock__time_json(st->not_before));
	json_object_set_new(o, CS_PROTO_K_NOT_AFTER, cs_ctlsock__time_json(st->not_after));
	if (st->not_after != 0) {
		int64_t left = (int64_t)st->not_after - (int64_t)now;
		int64_t days = left >= 0 ? left / 86400 : -((-left + 86399) / 86400);
		json_object_set_new(o, CS_PROTO_K_DAYS_LEFT, json_integer(days));
	} else {
		json_object_set_new(o, CS_PROTO_K_DAYS_LEFT, json_null());
	}
	json_object_set_new(o, CS_PROTO_K_NEXT_RENEWAL, cs_ctlsock__time_json(st->next_renewal));
	json_object_set_new(o, CS_PROTO_K_NEXT_RENEWAL_REASON,
			    cs_ctlsock__str_json(st->next_reason));
	json_object_set_new(o, CS_PROTO_K_LAST_RENEWAL, cs_ctlsock__time_json(st->last_renewal));
	json_object_set_new(o, CS_PROTO_K_FAILURES, json_integer(st->failures));
	json_object_set_new(o, CS_PROTO_K_LAST_ERROR, cs_ctlsock__str_json(st->last_error));
	json_object_set_new(o, CS_PROTO_K_LAST_RELOAD, cs_ctlsock__str_json(st->last_reload));
	json_object_set_new(o, CS_PROTO_K_LAST_VERIFY, cs_ctlsock__str_json(st->last_verify));
	json_object_set_new(o, CS_PROTO_K_VERIFY_OK, st->verify == CS_VERIFY_NONE
						    ? json_null()
						    : json_boolean(st->verify == CS_VERIFY_OK));
	json_object_set_new(o, CS_PROTO_K_STAGE, cs_ctlsock__str_json(st->stage));
	json_object_set_new(o, CS_PROTO_K_STAGE_SINCE, cs_ctlsock__time_json(st->stage_since));
	json_object_set_new(o, CS_PROTO_K_RETRY_AT, cs_ctlsock__time_json(st->retry_at));
	json_object_set_new(o, CS_PROTO_K_RETRY_REASON, cs_ctlsock__str_json(st->retry_reason));
	json_object_set_new(o, CS_PROTO_K_SERVED, served_json(st));
	json_object_set_new(o, CS_PROTO_K_DRIFT,
			    st->n_served > 0 ? json_string(cs_pipeline_drift_name(st->drift)) : json_null());
	json_object_set_new(o, CS_PROTO_K_PENDING_GENERATION,
			    st->pending_gen > 0 ? json_integer(st->pending_gen) : json_null());
	json_object_set_new(o, CS_PROTO_K_ROLLBACK_GENERATION,
			    st->rollback_gen > 0 ? json_integer(st->rollback_gen) : json_null());
	json_object_set_new(o, CS_PROTO_K_WARNING, cs_ctlsock__str_json(st->warning));
	if (full) {
		issuers_json(o, st);
		json_object_set_new(o, CS_PROTO_K_DANE, cs_ctlsock__dane_json(st));
		json_object_set_new(o, CS_PROTO_K_DEPLOYED,
				    json_string(cs_examine_verdict_name(st->verdict)));
		json_object_set_new(o, CS_PROTO_K_DEPLOYED_REASON,
				    st->verdict != CS_EX_OK
					    ? cs_ctlsock__str_json(st->verdict_reason)
					    : json_null());
	}
	return o;
}

bool cs_ctlsock__bad_state(enum cs_cert_state st)
{
	return st == CS_CERT_FAILED || st == CS_CERT_EXPIRED || st == CS_CERT_MISSING;
}

json_t *cs_ctlsock__cmd_list(struct cs_ctlsock *s)
{
	size_t n = s->be.count(s->be.arg);
	json_t *arr = json_array();
	time_t now = time(NULL);

	if (arr == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		struct cs_cert_status st;
		s->be.status(s->be.arg, i, &st);
		if (json_array_append_new(arr, cert_json(&st, now, false)) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return json_pack("{s:b,s:o}", CS_PROTO_K_OK, 1, CS_PROTO_K_CERTS, arr);
}

json_t *cs_ctlsock__cmd_show(struct cs_ctlsock *s, const char *name)
{
	size_t n = s->be.count(s->be.arg);
	time_t now = time(NULL);
	struct cs_cert_status one;

	if (name == NULL)
		return cs_ctlsock__error_json(CS_PROTO_E_BAD_REQUEST, "show needs a \"name\"");
	if (s->be.status_of != NULL) {
		if (s->be.status_of(s->be.arg, name, &one))
			return json_pack("{s:b,s:o}", CS_PROTO_K_OK, 1, CS_PROTO_K_CERT,
					 cert_json(&one, now, true));
		n = 0;
	}
	for (size_t i = 0; i < n; i++) {
		struct cs_cert_status st;
		s->be.status(s->be.arg, i, &st);
		if (strcmp(st.name, name) == 0)
			return json_pack("{s:b,s:o}", CS_PROTO_K_OK, 1, CS_PROTO_K_CERT,
					 cert_json(&st, now, true));
	}
	return cs_ctlsock__error_json(CS_PROTO_E_NOT_FOUND, "no cert \"%s\" in the configuration",
				      name);
}

