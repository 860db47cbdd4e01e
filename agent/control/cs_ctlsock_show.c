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
		json_object_set_new(o, "url", json_string(v->url));
		json_object_set_new(o, "name", json_string(v->name));
		json_object_set_new(o, "match", v->match < 0 ? json_null() : json_boolean(v->match));
		json_object_set_new(o, "sha256", v->sha256[0] ? json_string(v->sha256) : json_null());
		json_object_set_new(o, "error", cs_ctlsock__str_json(v->error));
		json_object_set_new(o, "checked", cs_ctlsock__time_json(v->checked));
		json_array_append_new(a, o);
	}
	return a;
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
	json_object_set_new(o, "name", json_string(st->name));
	json_object_set_new(o, "state", json_string(cs_cert_state_name(st->state)));
	json_object_set_new(o, "names", names);
	json_object_set_new(o, "issuer", cs_ctlsock__str_json(st->issuer));
	json_object_set_new(o, "serial", cs_ctlsock__str_json(st->serial));
	json_object_set_new(o, "sha256", cs_ctlsock__str_json(st->sha256));
	json_object_set_new(o, "not_before", cs_ctlsock__time_json(st->not_before));
	json_object_set_new(o, "not_after", cs_ctlsock__time_json(st->not_after));
	if (st->not_after != 0) {
		int64_t left = (int64_t)st->not_after - (int64_t)now;
		int64_t days = left >= 0 ? left / 86400 : -((-left + 86399) / 86400);
		json_object_set_new(o, "days_left", json_integer(days));
	} else {
		json_object_set_new(o, "days_left", json_null());
	}
	json_object_set_new(o, "next_renewal", cs_ctlsock__time_json(st->next_renewal));
	json_object_set_new(o, "next_renewal_reason", cs_ctlsock__str_json(st->next_reason));
	json_object_set_new(o, "last_renewal", cs_ctlsock__time_json(st->last_renewal));
	json_object_set_new(o, "failures", json_integer(st->failures));
	json_object_set_new(o, "last_error", cs_ctlsock__str_json(st->last_error));
	json_object_set_new(o, "last_reload", cs_ctlsock__str_json(st->last_reload));
	json_object_set_new(o, "last_verify", cs_ctlsock__str_json(st->last_verify));
	json_object_set_new(o, "verify_ok", st->verify == CS_VERIFY_NONE
						    ? json_null()
						    : json_boolean(st->verify == CS_VERIFY_OK));
	json_object_set_new(o, "stage", cs_ctlsock__str_json(st->stage));
	json_object_set_new(o, "stage_since", cs_ctlsock__time_json(st->stage_since));
	json_object_set_new(o, "retry_at", cs_ctlsock__time_json(st->retry_at));
	json_object_set_new(o, "retry_reason", cs_ctlsock__str_json(st->retry_reason));
	json_object_set_new(o, "served", served_json(st));
	json_object_set_new(o, "drift", st->n_served > 0 ? json_string(cs_drift_name(st->drift))
							 : json_null());
	json_object_set_new(o, "pending_generation",
			    st->pending_gen > 0 ? json_integer(st->pending_gen) : json_null());
	json_object_set_new(o, "rollback_generation",
			    st->rollback_gen > 0 ? json_integer(st->rollback_gen) : json_null());
	if (full) {
		json_object_set_new(o, "deployed", json_string(cs_verdict_name(st->verdict)));
		json_object_set_new(o, "deployed_reason",
				    st->verdict != CS_EX_OK ? cs_ctlsock__str_json(st->verdict_reason)
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
	return json_pack("{s:b,s:o}", "ok", 1, "certs", arr);
}

json_t *cs_ctlsock__cmd_show(struct cs_ctlsock *s, const char *name)
{
	size_t n = s->be.count(s->be.arg);
	time_t now = time(NULL);
	struct cs_cert_status one;

	if (name == NULL)
		return cs_ctlsock__error_json("bad_request", "show needs a \"name\"");
	if (s->be.status_of != NULL) {
		if (s->be.status_of(s->be.arg, name, &one))
			return json_pack("{s:b,s:o}", "ok", 1, "cert", cert_json(&one, now, true));
		n = 0;
	}
	for (size_t i = 0; i < n; i++) {
		struct cs_cert_status st;
		s->be.status(s->be.arg, i, &st);
		if (strcmp(st.name, name) == 0)
			return json_pack("{s:b,s:o}", "ok", 1, "cert", cert_json(&st, now, true));
	}
	return cs_ctlsock__error_json("not_found", "no cert \"%s\" in the configuration", name);
}

