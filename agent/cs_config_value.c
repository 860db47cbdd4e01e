/*
 * cs_config_value - the parsers of single values, public (cs_cfg_parse_*:
 * durations, percentages or durations, file modes, yes or no, users and
 * groups, DNS names and addresses, verify URLs; and cs_config_format_duration)
 * and internal (absolute paths, comma-separated lists). Each writes its
 * message into err, which the caller puts after "FILE:LINE: [section] key: ".
 */
#include "cs_config_int.h"

int cs_config_parse_duration(const char *s, int64_t *out, char *err, size_t errlen)
{
	static const struct {
		char unit;
		int64_t seconds;
	} units[] = {
		{ 's', 1 },	   { 'm', 60 },	       { 'h', 3600 },
		{ 'd', 86400 }, { 'w', 7 * 86400 }, { 'y', 365 * 86400 },
	};
	const char *q = s;
	int64_t total = 0;
	bool any = false;

	while (*q != '\0') {
		char *end;
		long long n;

		while (*q == ' ')
			q++;
		if (*q == '\0')
			break;
		if (!isdigit((unsigned char)*q))
			goto bad;
		errno = 0;
		n = strtoll(q, &end, 10);
		if (errno != 0 || n > 1000000)
			goto bad;
		size_t i;
		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (*end == units[i].unit)
				break;
		if (i == sizeof(units) / sizeof(units[0]))
			goto bad;
		total += n * units[i].seconds;
		q = end + 1;
		any = true;
	}
	if (!any || total <= 0)
		goto bad;
	*out = total;
	return 0;
bad:
	snprintf(err, errlen,
		 "'%s' is not a duration (a number with a unit: 30s, 15m, 12h, 90d, 2w, 10y)", s);
	return -1;
}

void cs_config_format_duration(int64_t seconds, char *out, size_t outlen)
{
	static const struct {
		const char *unit;
		int64_t seconds;
	} units[] = { { "d", 86400 }, { "h", 3600 }, { "m", 60 }, { "s", 1 } };
	size_t used = 0;
	int parts = 0;

	out[0] = '\0';
	if (seconds <= 0) {
		snprintf(out, outlen, "0s");
		return;
	}
	for (size_t i = 0; i < 4 && parts < 2; i++) {
		int64_t n = seconds / units[i].seconds;
		if (n == 0)
			continue;
		seconds -= n * units[i].seconds;
		used += snprintf(out + used, used < outlen ? outlen - used : 0, "%s%lld%s",
				 parts ? " " : "", (long long)n, units[i].unit);
		parts++;
	}
}

int cs_config_parse_span(const char *s, struct cs_cfg_span *out, char *err, size_t errlen)
{
	size_t len = strlen(s);

	memset(out, 0, sizeof(*out));
	if (len > 0 && s[len - 1] == '%') {
		char *end;
		double v;

		errno = 0;
		v = strtod(s, &end);
		if (errno != 0 || end != s + len - 1 || len == 1 || !(v >= 0 && v < 100) ||
		    !isdigit((unsigned char)s[0])) {
			snprintf(err, errlen, "'%s' is not a percentage between 0%% and 99%%", s);
			return -1;
		}
		out->is_percent = true;
		out->percent = v;
		out->set = true;
		return 0;
	}
	if (cs_config_parse_duration(s, &out->seconds, err, errlen) < 0) {
		snprintf(err, errlen,
			 "'%s' is neither a percentage of the lifetime (33%%) nor a duration "
			 "(30d, 12h)",
			 s);
		return -1;
	}
	out->set = true;
	return 0;
}

int cs_config_parse_mode(const char *s, mode_t *out, char *err, size_t errlen)
{
	char *end;
	unsigned long v;

	if (s[0] != '0' || strlen(s) < 3 || strlen(s) > 5)
		goto bad;
	errno = 0;
	v = strtoul(s, &end, 8);
	if (errno != 0 || *end != '\0' || v > 07777)
		goto bad;
	*out = (mode_t)v;
	return 0;
bad:
	snprintf(err, errlen, "'%s' is not an octal file mode such as 0600 or 0644", s);
	return -1;
}

int cs_config_parse_bool(const char *s, bool *out, char *err, size_t errlen)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	snprintf(err, errlen, "'%s' is not yes or no", s);
	return -1;
}

static bool all_digits(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

int cs_config_parse_user(const char *s, uid_t *out, char *err, size_t errlen)
{
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (all_digits(s)) {
		*out = (uid_t)strtoul(s, NULL, 10);
		return 0;
	}
	if (getpwnam_r(s, &pw, buf, sizeof(buf), &res) != 0 || res == NULL) {
		snprintf(err, errlen, "unknown user '%s'", s);
		return -1;
	}
	*out = pw.pw_uid;
	return 0;
}

int cs_config_parse_group(const char *s, gid_t *out, char *err, size_t errlen)
{
	struct group gr, *res = NULL;
	char buf[8192];

	if (all_digits(s)) {
		*out = (gid_t)strtoul(s, NULL, 10);
		return 0;
	}
	if (getgrnam_r(s, &gr, buf, sizeof(buf), &res) != 0 || res == NULL) {
		snprintf(err, errlen, "unknown group '%s'", s);
		return -1;
	}
	*out = gr.gr_gid;
	return 0;
}

static bool is_ip(const char *s)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

int cs_config_parse_name(const char *s, char *err, size_t errlen)
{
	size_t len = strlen(s);
	const char *label = s;

	if (is_ip(s))
		return 0;
	if (len == 0 || len > 253)
		goto bad;
	if (strncmp(s, "*.", 2) == 0)
		label = s + 2;
	for (const char *q = label;;) {
		const char *dot = strchr(q, '.');
		size_t l = dot ? (size_t)(dot - q) : strlen(q);

		if (l == 0 || l > 63 || q[0] == '-' || q[l - 1] == '-')
			goto bad;
		for (size_t i = 0; i < l; i++)
			if (!isalnum((unsigned char)q[i]) && q[i] != '-')
				goto bad;
		if (dot == NULL)
			break;
		q = dot + 1;
	}
	return 0;
bad:
	snprintf(err, errlen,
		 "'%s' is neither a DNS name (letters, digits, hyphens, dots; "
		 "a leading '*.' allowed) nor an IP address",
		 s);
	return -1;
}

/*
 * A verify URL is checked by the parser the probes use (cs_probe_url_parse):
 * what the configuration accepts is exactly what can be probed, and the
 * schemes are listed in one place.
 */
int cs_config_parse_verify_url(const char *s, char *err, size_t errlen)
{
	struct cs_probe_url u;
	char why[600];

	if (cs_probe_url_parse(s, &u, why, sizeof(why)) == 0)
		return 0;
	snprintf(err, errlen,
		 "'%s' is not a verify URL (smtp://, submission://, imap://, pop3://, "
		 "sieve://, smtps://, imaps:// or pop3s:// HOST[:PORT][?sni=NAME])",
		 s);
	return -1;
}

int cs_config__parse_abs_path(const char *s, char *err, size_t errlen)
{
	if (s[0] != '/') {
		snprintf(err, errlen, "'%s' is not an absolute path", s);
		return -1;
	}
	return 0;
}

/* Splits a comma-separated list; empty items are an error. */
int cs_config__parse_list(const char *s, struct cs_cfg_list *out, char *err, size_t errlen)
{
	const char *q = s;

	memset(out, 0, sizeof(*out));
	for (;;) {
		const char *comma = strchr(q, ',');
		size_t len = comma ? (size_t)(comma - q) : strlen(q);

		while (len > 0 && isspace((unsigned char)*q)) {
			q++;
			len--;
		}
		while (len > 0 && isspace((unsigned char)q[len - 1]))
			len--;
		if (len == 0) {
			snprintf(err, errlen, "empty item in the list '%s'", s);
			return -1;
		}
		char **v = realloc(out->v, (out->n + 1) * sizeof(*v));
		if (v == NULL)
			return -1;
		out->v = v;
		out->v[out->n] = strndup(q, len);
		if (out->v[out->n++] == NULL)
			return -1;
		if (comma == NULL)
			return 0;
		q = comma + 1;
	}
}

void cs_config__list_free(struct cs_cfg_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}
