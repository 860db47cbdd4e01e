/*
 * cs_config_dane - the DANE keys of a [cert] hang together: `dane` turns
 * them on; the ports and hosts default to 25 and the cert's own names; how
 * records are published (dane_update, dane_server, dane_tsig_key, dane_hook)
 * is complete; a dane_* key without `dane` is an error, not a silent no-op.
 */
#include "cs_config_int.h"
#include "cs_dnsq.h"

#include <arpa/inet.h>
#include <sys/socket.h>

/* The dane_* keys other than dane itself, for the "set without dane" check. */
static const char *const dane_keys[] = { "dane_ports",	  "dane_names",	   "dane_update",
					 "dane_server",	  "dane_tsig_key", "dane_zone",
					 "dane_hook",	  "dane_resolver", "dane_ttl",
					 NULL };

/* Whether name is a DNS name a TLSA owner can be made of (no wildcard, no address). */
static bool host_name(const char *name)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return strncmp(name, "*.", 2) != 0 && inet_pton(AF_INET, name, buf) != 1 &&
	       inet_pton(AF_INET6, name, buf) != 1;
}

/* Puts the defaults of the keys not set into d. Returns 0 or -ENOMEM. */
static int dane_defaults(struct cs_cfg_cert *c)
{
	struct cs_cfg_dane *d = &c->dane;
	bool names_given = d->names.n > 0;
	char err[64];

	if (d->ports.n == 0 && cs_config__parse_list("25", &d->ports, err, sizeof(err)) < 0)
		return -ENOMEM;
	for (size_t i = 0; !names_given && i < c->names.n; i++) {
		if (!host_name(c->names.v[i]))
			continue;
		char **v = realloc(d->names.v, (d->names.n + 1) * sizeof(*v));
		if (v == NULL)
			return -ENOMEM;
		d->names.v = v;
		if ((v[d->names.n] = strdup(c->names.v[i])) == NULL)
			return -ENOMEM;
		d->names.n++;
	}
	if (d->resolver == NULL && (d->resolver = strdup("127.0.0.1:53")) == NULL)
		return -ENOMEM;
	if (d->ttl == 0)
		d->ttl = 3600;
	if (d->update == CS_DANE_UPDATE_UNSET && d->hook != NULL)
		d->update = CS_DANE_UPDATE_HOOK;
	return 0;
}

/* What is missing or contradictory in c's DANE keys, as errors on s. */
static void dane_complete(struct parser *p, struct raw_section *s, struct cs_cfg_cert *c)
{
	struct cs_cfg_dane *d = &c->dane;

	const struct raw_pair *names = cs_config__find_pair(s, "dane_names");
	const struct raw_pair *res = cs_config__find_pair(s, "dane_resolver");
	struct sockaddr_storage ss;
	unsigned sslen;
	char err[300];

	if (res != NULL && cs_dnsq_parse_server(d->resolver, &ss, &sslen, err, sizeof(err)) < 0)
		cs_config__pair_error(p, s, res, err);

	for (size_t i = 0; names != NULL && i < d->names.n; i++)
		if (!host_name(d->names.v[i]))
			cs_config__pair_error(p, s, names, "a TLSA record's host cannot be a "
					      "wildcard or an address");
	if (d->names.n == 0)
		cs_config__section_error(p, s, "dane is set but the cert has no host name to publish "
					 "TLSA records for (names are wildcards or addresses): "
					 "set dane_names");
	switch (d->update) {
	case CS_DANE_UPDATE_UNSET:
		cs_config__section_error(p, s, "dane is set but not how records are published: set "
					 "dane_update = rfc2136 (with dane_server and "
					 "dane_tsig_key), dane_hook = PROGRAM, or dane_update = "
					 "none (by hand, as `certsyncctl dane %s` says)",
					 c->name);
		break;
	case CS_DANE_UPDATE_RFC2136:
		if (d->server == NULL || d->tsig_key == NULL)
			cs_config__section_error(p, s, "dane_update = rfc2136 needs dane_server "
						 "(the zone's primary, ADDRESS:PORT) and "
						 "dane_tsig_key (a TSIG key file for nsupdate -k)");
		if (d->hook != NULL)
			cs_config__pair_error(p, s, cs_config__find_pair(s, "dane_hook"),
					      "dane_hook and dane_update = rfc2136 exclude each other");
		break;
	case CS_DANE_UPDATE_HOOK:
		if (d->hook == NULL)
			cs_config__section_error(p, s, "dane_update = hook needs dane_hook = PROGRAM");
		break;
	default:
		break;
	}
}

void cs_config__check_dane(struct parser *p, struct raw_section **cert_secs)
{
	struct cs_config *cfg = p->cfg;

	for (size_t i = 0; i < cfg->n_certs; i++) {
		struct cs_cfg_cert *c = &cfg->certs[i];
		struct raw_section *s = cert_secs[i];

		if (c->dane.usage == 0) {
			for (const char *const *k = dane_keys; *k != NULL; k++) {
				const struct raw_pair *kv = cs_config__find_pair(s, *k);
				if (kv != NULL)
					cs_config__pair_error(p, s, kv, "set, but dane is not "
							      "(dane = 3 1 1 turns DANE on)");
			}
			continue;
		}
		if (dane_defaults(c) < 0) {
			cs_config__section_error(p, s, "out of memory");
			continue;
		}
		dane_complete(p, s, c);
	}
}
