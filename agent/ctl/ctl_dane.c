/*
 * ctl_dane - `certsyncctl dane NAME`: a cert's DANE rollover as the agent
 * sees it (show's "dane" object): the records it wants and has published,
 * since when the validating resolver has shown each, the resolver's answer
 * at every owner, how publishing went, and what happens next. Exit status
 * 1 when the rollover is not well (no validated answer, the current
 * record not visible, or publishing failing).
 */
#include "ctl.h"
#include "ctl_online_int.h"
#include "cs_proto.h"

#include <stdio.h>
#include <string.h>

static const char *jstr(json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : dflt;
}

void ctl_dane_line(json_t *c)
{
	json_t *d = json_object_get(c, CS_PROTO_K_DANE);

	if (!json_is_object(d))
		return;
	printf("  %-20s %lld 1 1, %s: %s (renewals that kept the current key: %lld)\n", "dane",
	       (long long)json_integer_value(json_object_get(d, CS_PROTO_K_DANE_USAGE)),
	       json_is_true(json_object_get(d, CS_PROTO_K_OK)) ? "ok" : "NOT OK",
	       jstr(d, CS_PROTO_K_DANE_NEXT, "no look through the resolver yet"),
	       (long long)json_integer_value(json_object_get(d, CS_PROTO_K_DANE_KEPT)));
}

static void print_records(json_t *d, long long usage)
{
	size_t i;
	json_t *r;

	printf("records (wanted and published):\n");
	json_array_foreach(json_object_get(d, CS_PROTO_K_DANE_RECORDS), i, r) {
		const char *role = jstr(r, CS_PROTO_K_DANE_ROLE, "?");
		printf("  %-9s %lld 1 1 %s\n", role, usage, jstr(r, CS_PROTO_K_DANE_DATA, "?"));
		printf("  %-9s %s, %s%s", "",
		       json_is_true(json_object_get(r, CS_PROTO_K_DANE_PUBLISHED)) ? "published"
										  : "not published",
		       jstr(r, CS_PROTO_K_DANE_VISIBLE_SINCE, NULL) ? "visible since " : "not visible",
		       jstr(r, CS_PROTO_K_DANE_VISIBLE_SINCE, ""));
		if (strcmp(role, "retiring") == 0)
			printf(", deleted at %s", jstr(r, CS_PROTO_K_DANE_RETIRE_AT, "?"));
		printf("\n");
	}
}

static void print_view(json_t *d)
{
	size_t i, k;
	json_t *o, *r;

	printf("resolver %s: %s, TTL %lld\n", jstr(d, CS_PROTO_K_DANE_RESOLVER, "?"),
	       json_is_true(json_object_get(d, CS_PROTO_K_DANE_VALIDATED)) ? "validated" :
									      "NOT validated",
	       (long long)json_integer_value(json_object_get(d, CS_PROTO_K_DANE_TTL)));
	if (jstr(d, CS_PROTO_K_DANE_CHECK_ERROR, NULL) != NULL)
		printf("  %s\n", jstr(d, CS_PROTO_K_DANE_CHECK_ERROR, ""));
	json_array_foreach(json_object_get(d, CS_PROTO_K_DANE_VIEW), i, o) {
		int rcode = (int)json_integer_value(json_object_get(o, CS_PROTO_K_DANE_RCODE));
		printf("  %s: %s%s, TTL %lld\n", jstr(o, CS_PROTO_K_DANE_OWNER, "?"),
		       rcode == 0 ? "NOERROR" : rcode == 3 ? "NXDOMAIN" : rcode == 2 ? "SERVFAIL" : "error",
		       json_is_true(json_object_get(o, CS_PROTO_K_DANE_AD)) ? ", ad" : ", NO ad",
		       (long long)json_integer_value(json_object_get(o, CS_PROTO_K_DANE_TTL)));
		json_array_foreach(json_object_get(o, CS_PROTO_K_DANE_RECORDS), k, r)
			printf("    TLSA %s\n", json_string_value(r));
	}
}

static void print_dane(const char *name, json_t *d)
{
	long long usage = json_integer_value(json_object_get(d, CS_PROTO_K_DANE_USAGE));
	size_t i;
	json_t *o;

	printf("%s: DANE %lld 1 1, %s\n", name, usage,
	       json_is_true(json_object_get(d, CS_PROTO_K_OK)) ? "ok" : "NOT OK");
	printf("owners:");
	json_array_foreach(json_object_get(d, CS_PROTO_K_DANE_OWNERS), i, o)
		printf(" %s", json_string_value(o));
	printf("\npublishing: %s, %lld failed update(s)%s%s\n",
	       jstr(d, CS_PROTO_K_DANE_UPDATE, "?"),
	       (long long)json_integer_value(json_object_get(d, CS_PROTO_K_DANE_UPDATE_FAILURES)),
	       jstr(d, CS_PROTO_K_DANE_UPDATE_ERROR, NULL) ? "; failing: " : "",
	       jstr(d, CS_PROTO_K_DANE_UPDATE_ERROR, ""));
	print_records(d, usage);
	print_view(d);
	printf("renewals that kept the current key: %lld\n",
	       (long long)json_integer_value(json_object_get(d, CS_PROTO_K_DANE_KEPT)));
	printf("next: %s\n", jstr(d, CS_PROTO_K_DANE_NEXT, "no look through the resolver yet"));
}

int ctl_dane_main(int argc, char **argv)
{
	const char *name;
	json_t *resp = NULL, *d;
	int rc = ctl_online__name_arg(argc, argv, "dane NAME", &name);

	if (rc != 0)
		return rc < 0 ? 0 : rc;
	rc = ctl_online__simple("dane",
				json_pack("{s:s,s:s}", CS_PROTO_K_CMD, CS_PROTO_CMD_SHOW,
					  CS_PROTO_K_NAME, name),
				&resp);
	if (rc != 0) {
		json_decref(resp);
		return rc;
	}
	d = json_object_get(json_object_get(resp, CS_PROTO_K_CERT), CS_PROTO_K_DANE);
	if (!json_is_object(d)) {
		fprintf(stderr, "certsyncctl dane: %s has no dane in the agent's configuration\n",
			name);
		rc = EX_FAIL;
	} else {
		if (!ctl_json)
			print_dane(name, d);
		if (!json_is_true(json_object_get(d, CS_PROTO_K_OK)))
			rc = EX_FAIL;
	}
	json_decref(resp);
	return rc;
}
