/*
 * cs_localca_index - index.txt: read whole and split into its six fields
 * (revocation and CRLs), and kept between issuances as two sets (every
 * serial it names, the subjects of its valid certificates) brought up to
 * date from what was appended since, so that an issuance does not read the
 * whole file again.
 */
#include "cs_localca_int.h"

/* ---- index.txt ---- */

void cs_localca__index_free(struct index *ix)
{
	free(ix->raw);
	free(ix->split);
	free(ix->lines);
	memset(ix, 0, sizeof(*ix));
}

/* Reads and checks DIR/index.txt into ix. Returns 0 or a negative code with err set. */
int cs_localca__index_read(cs_localca *ca, struct index *ix, char *err, size_t errlen)
{
	size_t cap = 0, lineno = 0;
	char *p, *line;
	int rc;

	memset(ix, 0, sizeof(*ix));
	rc = cs_localca__read_file(ca->dir, "index.txt", &ix->raw, &ix->rawlen, err, errlen);
	if (rc == -ENOENT) {
		snprintf(err, errlen, "%s/index.txt: no such file", ca->dir);
		return rc;
	}
	if (rc < 0)
		return rc;
	if ((ix->split = malloc(ix->rawlen + 1)) == NULL)
		goto nomem;
	memcpy(ix->split, ix->raw, ix->rawlen + 1);
	for (p = ix->split; *p != '\0'; p = line) {
		char *nl = strchr(p, '\n'), *q = p;
		struct index_line *l;

		lineno++;
		line = nl != NULL ? nl + 1 : p + strlen(p);
		if (nl != NULL)
			*nl = '\0';
		if (*p == '\0')
			continue;
		if (ix->n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct index_line *nl2 = realloc(ix->lines, ncap * sizeof(*nl2));
			if (nl2 == NULL)
				goto nomem;
			ix->lines = nl2;
			cap = ncap;
		}
		l = &ix->lines[ix->n];
		l->start = ix->raw + (p - ix->split);
		l->len = (size_t)(line - p);
		for (int i = 0; i < 6; i++) {
			char *tab = strchr(q, '\t');
			l->f[i] = q;
			if (i < 5) {
				if (tab == NULL) {
					snprintf(err, errlen,
						 "%s/index.txt line %zu: %d fields, not 6 "
						 "tab-separated ones",
						 ca->dir, lineno, i + 1);
					return -EINVAL;
				}
				*tab = '\0';
				q = tab + 1;
			}
		}
		if (strchr("VRE", l->f[0][0]) == NULL || l->f[0][1] != '\0' || l->f[3][0] == '\0') {
			snprintf(err, errlen,
				 "%s/index.txt line %zu: status \"%s\" is not V, R or E, or the "
				 "serial is empty",
				 ca->dir, lineno, l->f[0]);
			return -EINVAL;
		}
		ix->n++;
	}
	return 0;
nomem:
	snprintf(err, errlen, "%s/index.txt: out of memory", ca->dir);
	return -ENOMEM;
}

struct index_line *cs_localca__index_find(struct index *ix, const char *serial_hex)
{
	for (size_t i = 0; i < ix->n; i++)
		if (strcasecmp(ix->lines[i].f[3], serial_hex) == 0)
			return &ix->lines[i];
	return NULL;
}

/* Reads index.txt.attr: true unless it says unique_subject = yes (or is absent). */
bool cs_localca__subjects_may_repeat(cs_localca *ca)
{
	char *buf = NULL, *save = NULL, err[256];
	bool ret = false;

	if (cs_localca__read_file(ca->dir, "index.txt.attr", &buf, NULL, err, sizeof(err)) < 0)
		return false;
	for (char *l = strtok_r(buf, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
		char key[64], val[64];

		/* Read as openssl reads it: y, t, 1 and "on" mean yes. */
		if (sscanf(l, " %63[^= ] = %63s", key, val) == 2 &&
		    strcmp(key, "unique_subject") == 0)
			ret = !(strchr("yYtT1", val[0]) != NULL || strcasecmp(val, "on") == 0);
	}
	free(buf);
	return ret;
}

/* ---- what index.txt holds, kept between issuances ---- */

/*
 * A set of strings (serials, subjects of valid certificates), chained by
 * FNV-1a hash: each issuance looks a serial and a subject up in O(1)
 * instead of scanning every line of index.txt.
 */

static size_t sset_hash(const char *s)
{
	size_t h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)(*s >= 'a' && *s <= 'z' ? *s - 32 : *s)) * 16777619u;
	return h;
}

void cs_localca__sset_clear(struct sset *ss)
{
	struct sset_ent *e;

	for (size_t i = 0; i < ss->size; i++)
		while ((e = SLIST_FIRST(&ss->t[i])) != NULL) {
			SLIST_REMOVE_HEAD(&ss->t[i], link);
			free(e);
		}
	free(ss->t);
	memset(ss, 0, sizeof(*ss));
}

/* Serials compare without case, as index_find does; subjects exactly. */
bool cs_localca__sset_has(const struct sset *ss, const char *s, bool nocase)
{
	struct sset_ent *e;

	if (ss->size == 0)
		return false;
	SLIST_FOREACH(e, &ss->t[sset_hash(s) & (ss->size - 1)], link)
		if ((nocase ? strcasecmp(e->s, s) : strcmp(e->s, s)) == 0)
			return true;
	return false;
}

int cs_localca__sset_add(struct sset *ss, const char *s)
{
	size_t len = strlen(s);
	struct sset_ent *e;

	if (ss->n + 1 > ss->size) {
		size_t ns = ss->size ? ss->size * 2 : 1024;
		struct sset_bucket *t = calloc(ns, sizeof(*t)); /* all empty */

		if (t == NULL)
			return -ENOMEM;
		for (size_t i = 0; i < ss->size; i++)
			while ((e = SLIST_FIRST(&ss->t[i])) != NULL) {
				SLIST_REMOVE_HEAD(&ss->t[i], link);
				SLIST_INSERT_HEAD(&t[sset_hash(e->s) & (ns - 1)], e, link);
			}
		free(ss->t);
		ss->t = t;
		ss->size = ns;
	}
	if ((e = malloc(sizeof(*e) + len + 1)) == NULL)
		return -ENOMEM;
	memcpy(e->s, s, len + 1);
	SLIST_INSERT_HEAD(&ss->t[sset_hash(s) & (ss->size - 1)], e, link);
	ss->n++;
	return 0;
}

static bool stat_same(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/*
 * Brings ca->ix (serials, valid subjects, whether the file ends in a
 * newline) up to date with DIR/index.txt: nothing to do when its stat is
 * the one this process left (the common case: only we append); else the
 * file is read again (`openssl ca` or a revocation rewrote it). A last line
 * cut short by a crash during an append (fewer than 6 fields, no newline)
 * is cut off: its certificate was never handed out. Called with the lock
 * held. Returns 0 or a negative code with err set.
 */
int cs_localca__index_sync(cs_localca *ca, char *err, size_t errlen)
{
	struct index ix = { 0 };
	struct stat sb;
	char *p = NULL;
	int rc;

	if ((p = cs_localca__path_join(ca->dir, "index.txt")) == NULL)
		return -ENOMEM;
	if (ca->ix_valid && stat(p, &sb) == 0 && stat_same(&sb, &ca->ix_stat)) {
		free(p);
		return 0;
	}
	ca->ix_valid = false;
	cs_localca__sset_clear(&ca->ix_serials);
	cs_localca__sset_clear(&ca->ix_subjects);
	rc = cs_localca__read_file(ca->dir, "index.txt", &ix.raw, &ix.rawlen, err, errlen);
	if (rc == 0 && ix.rawlen > 0 && ix.raw[ix.rawlen - 1] != '\n') {
		char *last = memrchr(ix.raw, '\n', ix.rawlen);
		size_t keep = last != NULL ? (size_t)(last - ix.raw) + 1 : 0;
		int tabs = 0;

		for (size_t i = keep; i < ix.rawlen; i++)
			tabs += ix.raw[i] == '\t';
		if (tabs < 5) {
			cs_notice("%s/index.txt: dropping a last line cut short (%zu bytes)", ca->dir,
				  ix.rawlen - keep);
			if (truncate(p, (off_t)keep) < 0) {
				rc = -errno;
				snprintf(err, errlen, "%s: cannot truncate: %s", p, strerror(errno));
			}
		}
	}
	free(ix.raw);
	ix.raw = NULL;
	if (rc == 0)
		rc = cs_localca__index_read(ca, &ix, err, errlen);
	if (rc == 0 && stat(p, &sb) < 0)
		rc = -errno;
	for (size_t i = 0; rc == 0 && i < ix.n; i++) {
		if (cs_localca__sset_add(&ca->ix_serials, ix.lines[i].f[3]) < 0 ||
		    (ix.lines[i].f[0][0] == 'V' && cs_localca__sset_add(&ca->ix_subjects, ix.lines[i].f[5]) < 0)) {
			rc = -ENOMEM;
			snprintf(err, errlen, "%s/index.txt: out of memory", ca->dir);
		}
	}
	if (rc == 0) {
		ca->ix_stat = sb;
		ca->ix_nl = ix.rawlen == 0 || ix.raw[ix.rawlen - 1] == '\n';
		ca->ix_valid = true;
	}
	cs_localca__index_free(&ix);
	free(p);
	return rc;
}
