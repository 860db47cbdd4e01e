/*
 * cs_sni - [sni] sections as cs_snimap options (see cs_sni.h).
 */
#include "cs_sni.h"

#include "cs_log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void cs_sni_opts_free(struct cs_snimap_opts *o)
{
	struct cs_snimap_entry *e = (struct cs_snimap_entry *)o->e;

	for (size_t i = 0; e != NULL && i < o->n; i++) {
		free((char *)e[i].name);
		free((char *)e[i].key);
		free((char *)e[i].chain);
	}
	free(e);
	free((char *)o->path);
	free((char *)o->map_type);
	free((char *)o->config_dir);
	free((char *)o->dovecot_config);
	memset(o, 0, sizeof(*o));
}

static bool dup_or_null(const char *s, const char **out)
{
	*out = NULL;
	return s == NULL || (*out = strdup(s)) != NULL;
}

int cs_sni_opts_dup(const struct cs_cfg_sni *n, struct cs_snimap_opts *o)
{
	struct cs_snimap_entry *e = calloc(n->n_entries + 1, sizeof(*e));

	memset(o, 0, sizeof(*o));
	o->kind = n->type == CS_SNI_POSTFIX	 ? CS_SNIMAP_POSTFIX
		  : n->dovecot_version == 24 ? CS_SNIMAP_DOVECOT24
					     : CS_SNIMAP_DOVECOT23;
	o->mode = n->mode;
	o->e = e;
	if (e == NULL || !dup_or_null(n->type == CS_SNI_POSTFIX ? n->map : n->conf, &o->path) ||
	    !dup_or_null(n->map_type, &o->map_type) || !dup_or_null(n->config_dir, &o->config_dir) ||
	    !dup_or_null(n->dovecot_config, &o->dovecot_config))
		goto nomem;
	for (size_t i = 0; i < n->n_entries; i++, o->n++)
		if (!dup_or_null(n->entries[i].name, &e[i].name) ||
		    !dup_or_null(n->entries[i].key, &e[i].key) ||
		    !dup_or_null(n->entries[i].chain, &e[i].chain)) {
			o->n++;
			goto nomem;
		}
	return 0;
nomem:
	cs_sni_opts_free(o);
	return -ENOMEM;
}

void cs_sni_after_deploy(const struct cs_cfg_cert *c)
{
	for (size_t i = 0; i < c->n_sni; i++) {
		const struct cs_cfg_sni *n = c->sni[i];
		struct cs_snimap_opts o;
		struct cs_snimap_result res;
		char err[2048];

		if (cs_sni_opts_dup(n, &o) < 0) {
			cs_err("sni %s: out of memory", n->name);
			continue;
		}
		if (cs_snimap_sync(&o, &res, err, sizeof(err)) < 0)
			cs_err("sni %s: after the deploy of %s: %s", n->name, c->name, err);
		else if (res.written)
			cs_info("sni %s: wrote %s (%zu names) for %s", n->name, o.path, res.entries,
				c->name);
		for (size_t k = 0; k < res.nmissing; k++)
			cs_notice("sni %s: left out %s", n->name, res.missing[k]);
		cs_snimap_result_free(&res);
		cs_sni_opts_free(&o);
	}
}
