/*
 * cs_config_error - the errors and warnings of the configuration. Every error
 * is "FILE:LINE: [section] key: message" (or without the key, for a whole
 * section), collected rather than fatal so that one run reports all of them,
 * then put in file and line order. A word from a file is echoed only when it
 * looks like a section type, name or key (cs_config__shown).
 */
#include "cs_config_int.h"

void cs_config__add_error(struct cs_cfg_errors *errs, const char *fmt, ...)
{
	va_list ap;
	char *msg;
	char **v;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (msg == NULL)
		return;
	v = realloc(errs->v, (errs->n + 1) * sizeof(*v));
	if (v == NULL) {
		free(msg);
		return;
	}
	errs->v = v;
	errs->v[errs->n++] = msg;
}

void cs_config_errors_free(struct cs_cfg_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		free(errs->v[i]);
	free(errs->v);
	errs->v = NULL;
	errs->n = 0;
}

/* "[cert "mail"]" or "[agent]", for messages. */
void cs_config__section_label(const struct raw_section *s, char *out, size_t len)
{
	if (s->name != NULL)
		snprintf(out, len, "[%s \"%s\"]", s->type, s->name);
	else
		snprintf(out, len, "[%s]", s->type);
}

/*
 * A word taken from a line of a configuration file, or "(not shown)" when it
 * does not look like a section type, name or key. A file that is not INI at
 * all (a drop-in that is a link to /etc/shadow, a private key) must never have
 * its content echoed into the terminal or the journal.
 */
const char *cs_config__shown(const char *word)
{
	size_t n = 0;

	for (const char *q = word; *q; q++, n++)
		if (!isalnum((unsigned char)*q) && *q != '-' && *q != '_' && *q != '.')
			return "(not shown)";
	return (n > 0 && n <= 40) ? word : "(not shown)";
}

void cs_config__pair_error(struct parser *p, const struct raw_section *s, const struct raw_pair *kv,
			   const char *msg)
{
	char label[300];

	cs_config__section_label(s, label, sizeof(label));
	cs_config__add_error(p->errs, "%s:%d: %s %s: %s", s->file, kv->line, label,
			     cs_config__shown(kv->key), msg);
}

void cs_config__section_error(struct parser *p, const struct raw_section *s, const char *fmt, ...)
{
	char label[300], msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cs_config__section_label(s, label, sizeof(label));
	cs_config__add_error(p->errs, "%s:%d: %s: %s", s->file, s->line, label, msg);
}

void cs_config__add_warning(struct cs_config *cfg, const char *fmt, ...)
{
	struct cs_cfg_errors w = { cfg->warnings.v, cfg->warnings.n };
	va_list ap;
	char msg[PATH_MAX + 400];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cs_config__add_error(&w, "%s", msg);
	cfg->warnings.v = w.v;
	cfg->warnings.n = w.n;
}

/* Position of an error "FILE:LINE: ..." for sorting: file order, then line. */
static long error_rank(const char *e, const struct cs_config *cfg)
{
	for (size_t i = 0; i < cfg->files.n; i++) {
		size_t fl = strlen(cfg->files.v[i]);
		if (strncmp(e, cfg->files.v[i], fl) == 0 && e[fl] == ':')
			return (long)i * 10000000L + strtol(e + fl + 1, NULL, 10);
	}
	return 0;
}

/* Puts errors in file and line order (stable: insertion sort, lists are short). */
void cs_config__sort_errors(struct cs_cfg_errors *errs, const struct cs_config *cfg)
{
	for (size_t i = 1; i < errs->n; i++) {
		char *cur = errs->v[i];
		long r = error_rank(cur, cfg);
		size_t j = i;
		while (j > 0 && error_rank(errs->v[j - 1], cfg) > r) {
			errs->v[j] = errs->v[j - 1];
			j--;
		}
		errs->v[j] = cur;
	}
}
