/*
 * cs_config_read - phase one: configuration files read into raw sections.
 *
 * A file is opened without blocking and, for a drop-in, without following a
 * link; inih reads it through our reader, which hands it one line at a time
 * (so that every pair knows its line), validates section headers itself and
 * refuses what inih would take loosely (NUL bytes, lines with no '=', long
 * lines). Sections are indexed by (type, name) so that duplicates are found
 * without a scan. [agent] include names the drop-ins, read in name order.
 * A file that someone other than root or the agent's user can change is
 * remembered, and what it may say is checked once every section is built.
 */
#include "cs_config_int.h"

static void trim(char *s)
{
	char *start = s, *end;

	while (isspace((unsigned char)*start))
		start++;
	end = start + strlen(start);
	while (end > start && isspace((unsigned char)end[-1]))
		end--;
	memmove(s, start, (size_t)(end - start));
	s[end - start] = '\0';
}

static bool valid_section_name(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
			return false;
	return true;
}

static const char *const section_types[] = { "agent", "issuer", "cert",	 "capath", "clientcerts",
					      "sni",   "reload", "notify", NULL };

/*
 * Splits a section header line, [type "name"] or [agent], copied into buf:
 * *typep and *namep (NULL without a name) point into buf. Returns 0, or -1
 * once the error is reported.
 */
static int split_header(struct parser *p, const char *line, char *buf, size_t len, char **typep,
			char **namep)
{
	char *close, *name = NULL;

	snprintf(buf, len, "%s", line + 1);
	close = strrchr(buf, ']');
	if (close == NULL) {
		cs_config__add_error(p->errs, "%s:%d: section header without ']'", p->file,
				     p->line);
		return -1;
	}
	*close = '\0';
	trim(buf);
	char *sp = strpbrk(buf, " \t");
	if (sp != NULL) {
		*sp = '\0';
		name = sp + 1;
		trim(name);
		size_t nl = strlen(name);
		if (nl < 2 || name[0] != '"' || name[nl - 1] != '"') {
			cs_config__add_error(
				p->errs,
				"%s:%d: [%s]: the section name must be in double quotes: "
				"[%s \"NAME\"]",
				p->file, p->line, cs_config__shown(buf), cs_config__shown(buf));
			return -1;
		}
		name[nl - 1] = '\0';
		name++;
	}
	*typep = buf;
	*namep = name;
	return 0;
}

/*
 * Whether a section of this type may stand here with this name (or none):
 * a known type, [agent] without a name and only in the main file, any other
 * with a name of letters, digits, '-', '_' and '.'. Reports it when not.
 */
static bool header_allowed(struct parser *p, const char *type, const char *name)
{
	size_t i;

	for (i = 0; section_types[i]; i++)
		if (strcmp(type, section_types[i]) == 0)
			break;
	if (section_types[i] == NULL) {
		cs_config__add_error(
			p->errs,
			"%s:%d: [%s]: unknown section (known: agent, issuer, cert, capath, "
			"clientcerts, sni, reload)",
			p->file, p->line, cs_config__shown(type));
		return false;
	}
	if (strcmp(type, "agent") == 0) {
		if (name != NULL) {
			cs_config__add_error(p->errs, "%s:%d: [agent]: this section takes no name",
					     p->file, p->line);
			return false;
		}
		if (p->is_dropin) {
			cs_config__add_error(
				p->errs,
				"%s:%d: [agent]: only the main configuration file may hold "
				"[agent]",
				p->file, p->line);
			return false;
		}
	} else if (name == NULL) {
		cs_config__add_error(p->errs,
				     "%s:%d: [%s]: this section needs a name: [%s \"NAME\"]",
				     p->file, p->line, type, type);
		return false;
	} else if (!valid_section_name(name)) {
		cs_config__add_error(
			p->errs,
			"%s:%d: [%s \"%s\"]: a name may hold only letters, digits, '-', '_' "
			"and '.'",
			p->file, p->line, type, name);
		return false;
	}
	return true;
}

/* The section of this type and name (hashed as h) read before, or NULL. */
static const struct raw_section *find_section(const struct parser *p, const char *type,
					      const char *name, uint64_t h)
{
	for (struct cs_htab_node *n = cs_htab_first(&p->sec_index, h); n != NULL;
	     n = cs_htab_next(n, h)) {
		const struct raw_section *o =
			&p->secs[cs_htab_entry(n, struct sec_node, node)->idx];
		if (strcmp(o->type, type) != 0)
			continue;
		if ((name == NULL && o->name == NULL) ||
		    (name != NULL && o->name != NULL && strcmp(name, o->name) == 0))
			return o;
	}
	return NULL;
}

/* A new, zeroed section at the end of p->secs, in the index under h; NULL without memory. */
static struct raw_section *add_section(struct parser *p, uint64_t h)
{
	if (p->n_secs == p->cap_secs) {
		size_t cap = p->cap_secs ? p->cap_secs * 2 : 16;
		struct raw_section *secs = realloc(p->secs, cap * sizeof(*secs));
		if (secs == NULL)
			return NULL;
		p->secs = secs;
		p->cap_secs = cap;
	}
	struct sec_node *sn = calloc(1, sizeof(*sn));
	if (sn == NULL)
		return NULL;
	sn->idx = p->n_secs;
	if (cs_htab_insert(&p->sec_index, &sn->node, h) < 0) {
		free(sn);
		return NULL;
	}
	struct raw_section *s = &p->secs[p->n_secs++];
	memset(s, 0, sizeof(*s));
	s->indexed = sn;
	return s;
}

/*
 * Parses a section header line: [type "name"] or [agent]. Until the next
 * header, the pairs of a header that is refused are dropped (bad_section).
 */
static void start_section(struct parser *p, const char *line)
{
	char buf[MAX_LINE];
	char *type, *name;
	const struct raw_section *o;
	struct raw_section *s;

	p->bad_section = true;
	if (split_header(p, line, buf, sizeof(buf), &type, &name) < 0 ||
	    !header_allowed(p, type, name))
		return;
	/* Duplicate section names, in this file or an earlier one. */
	uint64_t h = cs_htab_hash(name != NULL ? name : "", cs_htab_hash(type, CS_HTAB_SEED));
	if ((o = find_section(p, type, name, h)) != NULL) {
		cs_config__add_error(p->errs,
				     "%s:%d: [%s%s%s%s]: duplicate section, first defined at %s:%d",
				     p->file, p->line, type, name ? " \"" : "", name ? name : "",
				     name ? "\"" : "", o->file, o->line);
		return;
	}
	if ((s = add_section(p, h)) == NULL)
		return;
	s->type = strdup(type);
	s->name = name ? strdup(name) : NULL;
	s->file = p->file;
	s->line = p->line;
	p->bad_section = false;
}

/*
 * inih's reader: hands over one line at a time so that p->line always names
 * the line the handler is looking at, and checks the lines inih would treat
 * loosely: section headers (validated here) and lines with no '='.
 */
static char *reader(char *str, int num, void *stream)
{
	struct parser *p = stream;

	for (;;) {
		ssize_t len = getline(&p->linebuf, &p->linecap, p->fp);
		if (len < 0)
			return NULL;
		p->line++;
		p->bytes += (size_t)len;
		if (p->bytes > MAX_FILE_BYTES) {
			cs_config__add_error(
				p->errs,
				"%s:%d: the file is larger than %d bytes; not read further",
				p->file, p->line, MAX_FILE_BYTES);
			return NULL;
		}
		char *line = p->linebuf;
		/* A NUL would silently cut the value short: refuse the line instead. */
		if (memchr(line, '\0', (size_t)len) != NULL) {
			cs_config__add_error(p->errs, "%s:%d: the line holds a NUL byte", p->file,
					     p->line);
			continue;
		}
		if (len > MAX_LINE - 2) {
			cs_config__add_error(p->errs, "%s:%d: line longer than %d characters",
					     p->file, p->line, MAX_LINE - 2);
			continue;
		}
		char t[MAX_LINE];
		snprintf(t, sizeof(t), "%s", line);
		trim(t);
		if (t[0] == '\0' || t[0] == '#' || t[0] == ';')
			continue;
		if (t[0] == '[') {
			start_section(p, t);
			/* inih still needs the header to track its own section. */
			snprintf(str, (size_t)num, "%s\n", t);
			return str;
		}
		if (strchr(t, '=') == NULL) {
			/* Never the line itself: it may be a secret from a file that is not ours. */
			cs_config__add_error(p->errs,
					     "%s:%d: expected 'key = value' or a [section] header "
					     "(the line is not shown)",
					     p->file, p->line);
			continue;
		}
		/*
		 * Inline comments start with '#' or ';' after white space, as in
		 * the documented examples; inih alone would only know ';'.
		 */
		for (char *q = t + 1; *q; q++) {
			if ((*q == '#' || *q == ';') && isspace((unsigned char)q[-1])) {
				*q = '\0';
				trim(t);
				break;
			}
		}
		/* Leading white space would make inih treat this as a continuation. */
		if ((int)strlen(t) + 2 > num) {
			cs_config__add_error(p->errs, "%s:%d: line too long", p->file, p->line);
			continue;
		}
		snprintf(str, (size_t)num, "%s\n", t);
		return str;
	}
}

/* Whether name is a key of any section: only then is it shown out of context. */
static bool known_key(const char *name)
{
	static const struct keydef *const tables[] = {
		cs_config__agent_keys,	cs_config__issuer_keys,	     cs_config__cert_keys,
		cs_config__capath_keys, cs_config__clientcerts_keys, cs_config__sni_keys,
		cs_config__reload_keys
	};

	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
		for (const struct keydef *d = tables[t]; d->key; d++)
			if (strcmp(d->key, name) == 0)
				return true;
	return false;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct parser *p = user;

	(void)section;
	if (p->bad_section)
		return 1;
	if (p->n_secs == 0 || p->secs[p->n_secs - 1].file != p->file) {
		if (known_key(name))
			cs_config__add_error(p->errs, "%s:%d: %s: key outside of any section",
					     p->file, p->line, name);
		else
			cs_config__add_error(
				p->errs,
				"%s:%d: 'key = value' outside of any section (the line "
				"is not shown)",
				p->file, p->line);
		return 1;
	}
	struct raw_section *s = &p->secs[p->n_secs - 1];
	for (size_t i = 0; i < s->n_pairs; i++) {
		if (strcmp(s->pairs[i].key, name) == 0) {
			char label[300];
			cs_config__section_label(s, label, sizeof(label));
			cs_config__add_error(
				p->errs, "%s:%d: %s %s: duplicate key, first set at line %d",
				p->file, p->line, label, cs_config__shown(name), s->pairs[i].line);
			return 1;
		}
	}
	struct raw_pair *pairs = realloc(s->pairs, (s->n_pairs + 1) * sizeof(*pairs));
	if (pairs == NULL)
		return 0;
	s->pairs = pairs;
	struct raw_pair *kv = &s->pairs[s->n_pairs++];
	kv->key = strdup(name);
	kv->value = strdup(value);
	kv->line = p->line;
	kv->used = false;
	return 1;
}

static const char *remember_file(struct cs_config *cfg, const char *path)
{
	char **v = realloc(cfg->files.v, (cfg->files.n + 1) * sizeof(*v));

	if (v == NULL)
		return path;
	cfg->files.v = v;
	cfg->files.v[cfg->files.n] = strdup(path);
	return cfg->files.v[cfg->files.n++];
}

/*
 * Who besides root and the agent's own user could change what st describes:
 * writes the reason into why (empty when nobody). A directory with the sticky
 * bit lets nobody replace another user's file in it.
 */
static void who_can_write(const struct stat *st, bool is_dir, char *why, size_t len)
{
	bool sticky = is_dir && (st->st_mode & S_ISVTX);

	why[0] = '\0';
	if (st->st_uid != 0 && st->st_uid != geteuid())
		snprintf(why, len, "owned by uid %lu", (unsigned long)st->st_uid);
	else if ((st->st_mode & S_IWOTH) && !sticky)
		snprintf(why, len, "writable by everyone (mode %04o)", st->st_mode & 07777);
	else if ((st->st_mode & S_IWGRP) && st->st_gid != 0 && !sticky)
		snprintf(why, len, "writable by group %lu (mode %04o)", (unsigned long)st->st_gid,
			 st->st_mode & 07777);
}

/* Remembers when someone other than root or us can change path (st) or its directory. */
static void check_writers(struct parser *p, const char *path, const struct stat *st)
{
	char why[PATH_MAX + 128], dir[PATH_MAX];
	struct stat dst;

	who_can_write(st, false, why, sizeof(why));
	if (why[0] == '\0') {
		snprintf(dir, sizeof(dir), "%s", path);
		char *d = dirname(dir);
		if (stat(d, &dst) == 0) {
			char dwhy[100];
			who_can_write(&dst, true, dwhy, sizeof(dwhy));
			if (dwhy[0] != '\0')
				snprintf(why, sizeof(why), "in the directory %s, %s", d, dwhy);
		}
	}
	if (why[0] == '\0')
		return;
	struct unsafe_file *u = realloc(p->unsafe, (p->n_unsafe + 1) * sizeof(*u));
	if (u == NULL)
		return;
	p->unsafe = u;
	u = &p->unsafe[p->n_unsafe++];
	u->file = p->file;
	snprintf(u->why, sizeof(u->why), "%s", why);
}

/*
 * Opens a configuration file without ever blocking (a FIFO or a device put
 * in its place) and, for a drop-in, without following a symbolic link: the
 * drop-in directory is where others are most likely to be able to put one.
 */
void cs_config__read_file(struct parser *p, const char *path, bool dropin)
{
	struct stat st;
	FILE *fp;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (dropin ? O_NOFOLLOW : 0));

	if (fd < 0) {
		if (dropin && errno == ELOOP)
			cs_config__add_error(
				p->errs,
				"%s: is a symbolic link; a drop-in must be a regular file "
				"(copy it here, or add its directory to include)",
				path);
		else
			cs_config__add_error(p->errs, "%s: cannot read: %s", path, strerror(errno));
		return;
	}
	if (fstat(fd, &st) < 0) {
		cs_config__add_error(p->errs, "%s: cannot read: %s", path, strerror(errno));
		close(fd);
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		cs_config__add_error(
			p->errs,
			"%s: not a regular file (a FIFO, device, socket or directory); refused",
			path);
		close(fd);
		return;
	}
	if (st.st_size > MAX_FILE_BYTES) {
		cs_config__add_error(p->errs,
				     "%s: %lld bytes, larger than %d: not a configuration file",
				     path, (long long)st.st_size, MAX_FILE_BYTES);
		close(fd);
		return;
	}
	if ((fp = fdopen(fd, "r")) == NULL) {
		cs_config__add_error(p->errs, "%s: cannot read: %s", path, strerror(errno));
		close(fd);
		return;
	}
	p->bytes = 0;
	p->fp = fp;
	p->file = remember_file(p->cfg, path);
	p->line = 0;
	p->bad_section = true; /* until the first header */
	p->is_dropin = dropin;
	check_writers(p, path, &st);
	/* Keys before any section are reported by the handler. */
	p->bad_section = false;
	ini_parse_stream(reader, p, handler, p);
	fclose(fp);
	p->fp = NULL;
}

const struct raw_pair *cs_config__find_pair(struct raw_section *s, const char *key)
{
	for (size_t i = 0; i < s->n_pairs; i++)
		if (strcmp(s->pairs[i].key, key) == 0)
			return &s->pairs[i];
	return NULL;
}

/*
 * A file that someone other than root or the agent's user can change must not
 * say what the agent runs: an exec or plugin reloader, a dns_hook or the
 * plugin_dir would hand that person the agent's privileges. Anything else in
 * it is only warned about.
 */
void cs_config__check_unsafe_files(struct parser *p)
{
	static const struct {
		const char *type, *key, *value; /* value NULL: any */
		const char *what;
	} runs[] = {
		{ "reload", "type", "exec", "an exec reloader runs its command" },
		{ "reload", "type", "plugin", "a plugin reloader loads its shared object" },
		{ "issuer", "dns_hook", NULL, "dns_hook is run" },
		{ "agent", "plugin_dir", NULL, "reloader plugins are loaded from plugin_dir" },
	};

	for (size_t u = 0; u < p->n_unsafe; u++) {
		const struct unsafe_file *f = &p->unsafe[u];
		bool refused = false;

		for (size_t i = 0; i < p->n_secs; i++) {
			struct raw_section *s = &p->secs[i];
			if (s->file != f->file)
				continue;
			for (size_t k = 0; k < sizeof(runs) / sizeof(runs[0]); k++) {
				const struct raw_pair *kv;
				if (strcmp(s->type, runs[k].type) != 0 ||
				    (kv = cs_config__find_pair(s, runs[k].key)) == NULL ||
				    (runs[k].value != NULL &&
				     strcmp(kv->value, runs[k].value) != 0))
					continue;
				char err[PATH_MAX + 400];
				snprintf(err, sizeof(err),
					 "refused: %s with the agent's privileges, and this file is "
					 "%s; only root or the agent's user may be able to change it "
					 "(chmod go-w, chown root)",
					 runs[k].what, f->why);
				cs_config__pair_error(p, s, kv, err);
				refused = true;
			}
		}
		if (!refused)
			cs_config__add_warning(
				p->cfg,
				"%s: %s; only root or the agent's user should be able to "
				"change the configuration (chmod go-w, chown root)",
				f->file, f->why);
	}
}

/* Reads the drop-ins named by [agent] include, relative to the main file. */
/* The errno of the last directory glob() could not read (glob runs on one thread). */
static int glob_errno;

static int glob_error(const char *path, int e)
{
	(void)path;
	glob_errno = e;
	return 1;
}

void cs_config__read_includes(struct parser *p, const char *main_path)
{
	struct raw_section *agent = NULL;

	for (size_t i = 0; i < p->n_secs; i++)
		if (strcmp(p->secs[i].type, "agent") == 0)
			agent = &p->secs[i];
	if (agent == NULL)
		return;
	const struct raw_pair *inc = cs_config__find_pair(agent, "include");
	if (inc == NULL)
		return;

	struct cs_cfg_list pats;
	char err[PATH_MAX + 64];
	if (cs_config__parse_list(inc->value, &pats, err, sizeof(err)) < 0) {
		cs_config__pair_error(p, agent, inc, err);
		cs_config__list_free(&pats);
		return;
	}
	char *dircopy = strdup(main_path);
	const char *base = dirname(dircopy);
	for (size_t i = 0; i < pats.n; i++) {
		char pattern[PATH_MAX];
		glob_t g;

		if (pats.v[i][0] == '/')
			snprintf(pattern, sizeof(pattern), "%s", pats.v[i]);
		else
			snprintf(pattern, sizeof(pattern), "%s/%s", base, pats.v[i]);
		glob_errno = 0;
		int rc = glob(pattern, GLOB_ERR, glob_error, &g);
		/* No drop-ins, or no drop-in directory at all: nothing to include. */
		if (rc == GLOB_NOMATCH || (rc == GLOB_ABORTED && glob_errno == ENOENT)) {
			if (rc == GLOB_ABORTED)
				globfree(&g);
			continue;
		}
		if (rc != 0) {
			snprintf(err, sizeof(err), "cannot expand '%s': %s", pattern,
				 glob_errno ? strerror(glob_errno) : "out of memory");
			if (rc == GLOB_ABORTED)
				globfree(&g);
			cs_config__pair_error(p, agent, inc, err);
			continue;
		}
		/* glob() sorts, so drop-ins are read in name order. */
		for (size_t k = 0; k < g.gl_pathc; k++)
			cs_config__read_file(p, g.gl_pathv[k], true);
		globfree(&g);
	}
	free(dircopy);
	cs_config__list_free(&pats);
}

void cs_config__free_raw(struct parser *p)
{
	for (size_t i = 0; i < p->n_secs; i++) {
		struct raw_section *s = &p->secs[i];
		for (size_t k = 0; k < s->n_pairs; k++) {
			free(s->pairs[k].key);
			free(s->pairs[k].value);
		}
		free(s->pairs);
		free(s->type);
		free(s->name);
		free(s->indexed);
	}
	cs_htab_clear(&p->sec_index);
	free(p->secs);
	free(p->unsafe);
	free(p->linebuf);
}
