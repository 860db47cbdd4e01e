/*
 * cs_capath_cache - the cache file of a CApath directory: for each file the
 * key of its bytes (device, inode, size, mtime and ctime, as git's index
 * keeps them) and what reading it gave (kind, subject hash, SHA-1), so that a
 * full pass reads again only the files whose key changed. A cache that does
 * not name this directory in its first line, or does not parse, is ignored;
 * it is written with the atomic writer at the end of a pass.
 */
#include "cs_capath_int.h"

/* ---- the cache ---- */

int64_t cs_capath__ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

void cs_capath__key_of(const struct stat *st, struct fkey *k)
{
	k->dev = st->st_dev;
	k->ino = st->st_ino;
	k->size = st->st_size;
	k->mtime_ns = cs_capath__ts_ns(&st->st_mtim);
	k->ctime_ns = cs_capath__ts_ns(&st->st_ctim);
}

int cs_capath__key_eq(const struct fkey *a, const struct fkey *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}

void cs_capath__cache_drop(cs_capath *cp)
{
	for (size_t i = 0; i < cp->cached.nb; i++)
		for (struct cs_htab_node *n; (n = SLIST_FIRST(&cp->cached.b[i])) != NULL;) {
			struct centry *e = cs_htab_entry(n, struct centry, node);

			SLIST_REMOVE_HEAD(&cp->cached.b[i], link);
			free(e->name);
			free(e);
		}
	cs_htab_clear(&cp->cached);
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

#define CACHE_MAGIC "certsync-capath-cache 1 "

/*
 * Reads the cache into cp->cached. A line that does not parse is ignored, and
 * so is the whole file when it was written for another directory: a stale
 * or torn cache costs a re-read, never a wrong link (every entry is checked
 * against the file's current key before use).
 */
void cs_capath__cache_load(cs_capath *cp)
{
	FILE *fp;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	cs_capath__cache_drop(cp);
	if (cp->cache == NULL || (fp = fopen(cp->cache, "re")) == NULL)
		return;
	len = getline(&line, &cap, fp);
	if (len <= 0 || strncmp(line, CACHE_MAGIC, strlen(CACHE_MAGIC)) != 0 ||
	    line[len - 1] != '\n' || (size_t)len - 1 != strlen(CACHE_MAGIC) + strlen(cp->dir) ||
	    strncmp(line + strlen(CACHE_MAGIC), cp->dir, strlen(cp->dir)) != 0)
		goto out;
	while ((len = getline(&line, &cap, fp)) > 0) {
		unsigned long long dev, ino;
		long long size, mt, ct;
		unsigned hash;
		char kind, sha[2 * SHA1_LEN + 1];
		int off = 0;
		struct centry *e;

		if (line[len - 1] != '\n')
			break; /* torn */
		line[len - 1] = '\0';
		if (sscanf(line, "%llx %llx %lld %lld %lld %c %8x %40s %n", &dev, &ino, &size, &mt,
			   &ct, &kind, &hash, sha, &off) != 8 ||
		    off == 0 || line[off] == '\0' || (kind != 'c' && kind != 'r') ||
		    strlen(sha) != 2 * SHA1_LEN)
			continue;
		e = calloc(1, sizeof(*e));
		if (e == NULL || (e->name = strdup(line + off)) == NULL ||
		    cs_htab_insert(&cp->cached, &e->node, cs_htab_hash(e->name, CS_HTAB_SEED)) < 0) {
			if (e != NULL)
				free(e->name);
			free(e);
			break;
		}
		e->key = (struct fkey){ (dev_t)dev, (ino_t)ino, (off_t)size, mt, ct };
		e->kind = kind == 'c' ? KIND_CERT : KIND_CRL;
		e->hash = hash;
		for (int i = 0; i < SHA1_LEN; i++) {
			int hi = hexval(sha[2 * i]), lo = hexval(sha[2 * i + 1]);

			if (hi < 0 || lo < 0)
				hi = lo = 0;
			e->sha1[i] = (unsigned char)(hi << 4 | lo);
		}
	}
out:
	free(line);
	fclose(fp);
}

const struct centry *cs_capath__cache_find(const cs_capath *cp, const char *name)
{
	uint64_t h = cs_htab_hash(name, CS_HTAB_SEED);

	for (struct cs_htab_node *n = cs_htab_first(&cp->cached, h); n != NULL;
	     n = cs_htab_next(n, h)) {
		const struct centry *e = cs_htab_entry(n, struct centry, node);

		if (strcmp(e->name, name) == 0)
			return e;
	}
	return NULL;
}

/*
 * Writes the cache from the files read (when it differs). A file whose
 * ctime is within 2 s of the pass's start is left out: it could still be
 * changed within the same timestamp tick without its key changing (git's
 * "racy" entries).
 */
void cs_capath__cache_save(cs_capath *cp, int64_t start_ns)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m;
	char err[256];

	if (cp->cache == NULL || (m = open_memstream(&buf, &len)) == NULL)
		return;
	fprintf(m, "%s%s\n", CACHE_MAGIC, cp->dir);
	for (struct cfile *f = cs_capath__file_next(cp, NULL); f != NULL;
	     f = cs_capath__file_next(cp, f)) {
		if (!f->keyed || f->kind == KIND_NONE || strchr(f->name, '\n') != NULL ||
		    f->key.ctime_ns >= start_ns - 2000000000LL)
			continue;
		fprintf(m, "%llx %llx %lld %lld %lld %c %08x ",
			(unsigned long long)f->key.dev, (unsigned long long)f->key.ino,
			(long long)f->key.size, (long long)f->key.mtime_ns,
			(long long)f->key.ctime_ns, f->kind == KIND_CERT ? 'c' : 'r',
			(unsigned)f->hash);
		for (int k = 0; k < SHA1_LEN; k++)
			fprintf(m, "%02x", f->sha1[k]);
		fprintf(m, " %s\n", f->name);
	}
	if (fclose(m) == 0 && !cs_atomic_same(cp->cache, buf, len)) {
		/* No fsync: a cache lost in a crash is rebuilt by the next pass. */
		struct cs_atomic_opts ao = { 0600, (uid_t)-1, (gid_t)-1, CS_ATOMIC_NO_FSYNC };

		int rc = cs_atomic_write(cp->cache, buf, len, &ao, err, sizeof(err));
		/* Only a speed-up: no state directory (yet) is no problem to report. */
		if (rc < 0 && rc != -ENOENT)
			cs_capath__report(cp, CS_CAPATH_ERROR, cp->cache, err);
	}
	free(buf);
}
