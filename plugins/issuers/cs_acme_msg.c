/*
 * cs_acme_msg - ACME message parsing and building without I/O.
 *
 * Parsers are strict about what they rely on and lenient about the rest:
 * unknown members are ignored (RFC 8555 lets servers add them), but a window
 * without a start and an end, or a time without a zone, is refused rather
 * than guessed at.
 */
#include "cs_acme_msg.h"
#include "cs_b64url.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

int cs_acme_msg_problem(const char *body, size_t len, char *type, size_t typelen)
{
	json_t *j = json_loadb(body, len, 0, NULL);
	const char *t;
	int rc = -1;

	if (j == NULL)
		return -1;
	t = json_string_value(json_object_get(j, "type"));
	if (json_is_object(j) && t != NULL) {
		snprintf(type, typelen, "%s", t);
		rc = 0;
	}
	json_decref(j);
	return rc;
}

int64_t cs_acme_msg_retry_after(const char *value, int64_t now)
{
	struct tm tm;
	const char *end;
	char *e;

	while (*value == ' ' || *value == '\t')
		value++;
	if (isdigit((unsigned char)*value)) {
		long long v = strtoll(value, &e, 10);
		while (*e == ' ' || *e == '\t')
			e++;
		if (*e != '\0' || v < 0)
			return -1;
		return v;
	}
	memset(&tm, 0, sizeof(tm));
	end = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (end == NULL || *end != '\0')
		return -1;
	int64_t t = (int64_t)timegm(&tm);
	return t > now ? t - now : 0;
}

size_t cs_acme_msg_links(const char *value, const char *rel, char **urls, size_t max)
{
	const char *p = value;
	size_t added = 0;

	while (*p != '\0' && added < max) {
		const char *lt = strchr(p, '<'), *gt;
		if (lt == NULL || (gt = strchr(lt, '>')) == NULL)
			break;
		/* Parameters run to the next link ("," followed by "<") or the end. */
		const char *params = gt + 1, *next = strchr(params, '<');
		size_t plen = next != NULL ? (size_t)(next - params) : strlen(params);
		char *pv = strndup(params, plen), *save = NULL, *tok;
		int match = 0;
		if (pv == NULL)
			break;
		for (tok = strtok_r(pv, ";,", &save); tok != NULL; tok = strtok_r(NULL, ";,", &save)) {
			while (*tok == ' ' || *tok == '\t')
				tok++;
			if (strncasecmp(tok, "rel=", 4) != 0)
				continue;
			char *v = tok + 4;
			size_t vl = strlen(v);
			while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
				v[--vl] = '\0';
			if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
				v[vl - 1] = '\0';
				v++;
			}
			/* rel may list several space-separated relation types. */
			char *s2 = NULL;
			for (char *r = strtok_r(v, " ", &s2); r != NULL; r = strtok_r(NULL, " ", &s2))
				if (strcasecmp(r, rel) == 0)
					match = 1;
		}
		free(pv);
		if (match) {
			char *u = strndup(lt + 1, (size_t)(gt - lt - 1));
			if (u == NULL)
				break;
			urls[added++] = u;
		}
		p = gt + 1;
	}
	return added;
}

static int digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

int cs_acme_msg_time(const char *s, int64_t *out)
{
	struct tm tm;
	int y, mo, d, h, mi, se, oh = 0, om = 0, sign = 0;
	const char *p = s;

	memset(&tm, 0, sizeof(tm));
	if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
	    digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' '))
		return -1;
	p++;
	if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
	    digits(&p, 2, &se))
		return -1;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -1;
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p++ == '+' ? 1 : -1;
		if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om))
			return -1;
	} else {
		return -1;
	}
	if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	*out = (int64_t)timegm(&tm) - sign * (oh * 3600 + om * 60);
	return 0;
}

char *cs_acme_msg_new_order(char *const *names, size_t n, const char *replaces,
			    const char *profile)
{
	json_t *o = json_object(), *ids = json_array();
	char *s = NULL;
	unsigned char buf[16];

	if (o == NULL || ids == NULL)
		goto out;
	for (size_t i = 0; i < n; i++) {
		int ip = inet_pton(AF_INET, names[i], buf) == 1 ||
			 inet_pton(AF_INET6, names[i], buf) == 1;
		if (json_array_append_new(ids, json_pack("{s:s, s:s}", "type", ip ? "ip" : "dns",
							 "value", names[i])) < 0)
			goto out;
	}
	if (json_object_set(o, "identifiers", ids) < 0)
		goto out;
	if (replaces != NULL && json_object_set_new(o, "replaces", json_string(replaces)) < 0)
		goto out;
	if (profile != NULL && json_object_set_new(o, "profile", json_string(profile)) < 0)
		goto out;
	s = json_dumps(o, JSON_COMPACT);
out:
	json_decref(ids);
	json_decref(o);
	return s;
}

int cs_acme_msg_profile_offered(json_t *directory, const char *profile)
{
	json_t *profiles = json_object_get(json_object_get(directory, "meta"), "profiles");

	return json_is_object(profiles) && json_object_get(profiles, profile) != NULL;
}

char *cs_acme_msg_certid(X509 *cert, char *err, size_t errlen)
{
	const ASN1_OCTET_STRING *kid = X509_get0_authority_key_id(cert);
	const ASN1_INTEGER *serial = X509_get0_serialNumber(cert);
	unsigned char *der = NULL;
	char *a = NULL, *b = NULL, *out = NULL;
	int len;

	if (kid == NULL || ASN1_STRING_length(kid) == 0) {
		snprintf(err, errlen, "the certificate has no authority key identifier");
		return NULL;
	}
	len = i2d_ASN1_INTEGER((ASN1_INTEGER *)serial, &der);
	/* Tag, a short-form length (serials are at most 20 octets), then the content octets. */
	if (len < 3 || der[1] >= 0x80 || der[1] != len - 2) {
		snprintf(err, errlen, "the certificate's serial number cannot be encoded");
		goto out;
	}
	a = cs_b64url_encode(ASN1_STRING_get0_data(kid), (size_t)ASN1_STRING_length(kid));
	b = cs_b64url_encode(der + 2, (size_t)len - 2);
	if (a == NULL || b == NULL || asprintf(&out, "%s.%s", a, b) < 0) {
		out = NULL;
		snprintf(err, errlen, "out of memory");
	}
out:
	OPENSSL_free(der);
	free(a);
	free(b);
	return out;
}

char *cs_acme_msg_certid_der(const struct cs_der *cert, char *err, size_t errlen)
{
	const unsigned char *p = cert->p;
	X509 *x = cert->n <= (size_t)INT32_MAX ? d2i_X509(NULL, &p, (long)cert->n) : NULL;
	char *out;

	if (x == NULL) {
		snprintf(err, errlen, "not a DER certificate");
		return NULL;
	}
	out = cs_acme_msg_certid(x, err, errlen);
	X509_free(x);
	return out;
}

int cs_acme_msg_ari(const char *body, size_t len, struct cs_issuer_window *w, char *err,
		    size_t errlen)
{
	json_error_t je;
	json_t *j = json_loadb(body, len, 0, &je), *win;
	const char *start, *end, *expl;
	int rc = -1;

	if (j == NULL) {
		snprintf(err, errlen, "renewalInfo is not JSON: %s", je.text);
		return -1;
	}
	win = json_object_get(j, "suggestedWindow");
	start = json_string_value(json_object_get(win, "start"));
	end = json_string_value(json_object_get(win, "end"));
	if (start == NULL || end == NULL) {
		snprintf(err, errlen, "renewalInfo has no suggestedWindow with start and end");
		goto out;
	}
	if (cs_acme_msg_time(start, &w->start) < 0 || cs_acme_msg_time(end, &w->end) < 0) {
		snprintf(err, errlen, "renewalInfo: bad time in suggestedWindow (%s, %s)", start,
			 end);
		goto out;
	}
	if (w->end < w->start) {
		snprintf(err, errlen, "renewalInfo: the window ends (%s) before it starts (%s)",
			 end, start);
		goto out;
	}
	expl = json_string_value(json_object_get(j, "explanationURL"));
	snprintf(w->explanation, sizeof(w->explanation), "%s", expl != NULL ? expl : "");
	rc = 0;
out:
	json_decref(j);
	return rc;
}
