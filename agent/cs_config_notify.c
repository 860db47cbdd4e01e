/*
 * cs_config_notify - [notify "NAME"] sections: who is told about failures,
 * recoveries, renewals and near expiries, by a command or by mail through
 * the local sendmail; its keys, defaults and checks (the events named in
 * `on` exist, a way to tell is given, the certs named exist).
 */
#include "cs_config_int.h"

static const struct enum_val e_on[] = { { "failure", CS_NOTIFY_FAILURE },
					{ "recovery", CS_NOTIFY_RECOVERY },
					{ "renewal", CS_NOTIFY_RENEWAL },
					{ "expiry_warning", CS_NOTIFY_EXPIRY },
					{ NULL, 0 } };

#define NO(f) offsetof(struct cs_cfg_notify, f)
static const struct keydef notify_keys[] = {
	{ "on", V_LIST, NO(on_list), ANY, NULL },
	{ "command", V_STR, NO(command), ANY, NULL },
	{ "mail_to", V_LIST, NO(mail_to), ANY, NULL },
	{ "mail_from", V_STR, NO(mail_from), ANY, NULL },
	{ "sendmail", V_PATH, NO(sendmail), ANY, NULL },
	{ "certs", V_LIST, NO(certs), ANY, NULL },
	{ "interval", V_DURATION, NO(interval), ANY, NULL },
	{ "timeout", V_DURATION, NO(timeout), ANY, NULL },
	{ NULL, 0, 0, 0, NULL },
};

/* The `on` list into bits; errors at its line. */
static void parse_on(struct parser *p, struct raw_section *s, struct cs_cfg_notify *n)
{
	const struct raw_pair *kv = cs_config__find_pair(s, "on");
	char names[200], err[400];

	if (n->on_list.n == 0) {
		n->on = CS_NOTIFY_FAILURE | CS_NOTIFY_RECOVERY | CS_NOTIFY_EXPIRY;
		return;
	}
	for (size_t i = 0; i < n->on_list.n; i++) {
		int v = cs_config__enum_lookup(e_on, n->on_list.v[i]);
		if (v < 0) {
			snprintf(err, sizeof(err), "'%s' is not one of: %s", n->on_list.v[i],
				 cs_config__enum_names(e_on, names, sizeof(names)));
			cs_config__pair_error(p, s, kv, err);
			continue;
		}
		n->on |= (unsigned)v;
	}
}

void cs_config__build_notify(struct parser *p, struct raw_section *s, struct cs_cfg_notify *n)
{
	const struct raw_pair *kv;

	n->name = strdup(s->name);
	n->origin = (struct cs_cfg_origin){ s->file, s->line };
	n->interval = 3600;
	n->timeout = 30;
	cs_config__apply_keys(p, s, notify_keys, n, -1, NULL);
	parse_on(p, s, n);
	if (n->command == NULL && n->mail_to.n == 0 &&
	    cs_config__find_pair(s, "command") == NULL && cs_config__find_pair(s, "mail_to") == NULL)
		cs_config__section_error(p, s, "nothing to tell with: set command = PROGRAM ARGS... "
					 "or mail_to = ADDRESS (through the local sendmail)");
	for (size_t i = 0; i < n->mail_to.n; i++)
		if (strchr(n->mail_to.v[i], '@') == NULL || n->mail_to.v[i][0] == '-' ||
		    strpbrk(n->mail_to.v[i], " \t<>\"'") != NULL)
			if ((kv = cs_config__find_pair(s, "mail_to")) != NULL)
				cs_config__pair_error(p, s, kv, "not a mail address (user@domain)");
	if (n->mail_from != NULL && (n->mail_from[0] == '-' || strpbrk(n->mail_from, " \t<>") != NULL))
		cs_config__pair_error(p, s, cs_config__find_pair(s, "mail_from"),
				      "not a mail address (user@domain)");
	if (n->sendmail == NULL)
		n->sendmail = strdup("/usr/sbin/sendmail");
}

static bool has_cert(const struct cs_config *c, const char *n)
{
	return cs_config_cert(c, n) != NULL;
}

void cs_config__check_notify(struct parser *p)
{
	size_t k = 0;

	for (size_t i = 0; i < p->n_secs && k < p->cfg->n_notifies; i++) {
		struct raw_section *s = &p->secs[i];
		if (strcmp(s->type, "notify") != 0)
			continue;
		cs_config__check_refs(p, s, "certs", &p->cfg->notifies[k++].certs, "cert", has_cert);
	}
}

void cs_config__free_notify(struct cs_cfg_notify *n)
{
	cs_config__free_values(notify_keys, n);
	free(n->name);
}
