/*
 * cs_capath - hash links of an OpenSSL CApath directory, full and
 * incremental, and the CAfile bundle next to them. See cs_capath.h for the
 * rules; this file holds the in-memory picture of the directory (files by
 * name, buckets by type and hash, the links of each bucket by index) and the
 * one routine that decides and writes the links of a bucket.
 *
 * The decision for a bucket replays what `openssl rehash` does for it: the
 * bucket's links and files are taken in strcmp order of their names; a link
 * makes an entry for its target remembering the lowest index seen; a file
 * that is not a duplicate makes its entry wanted. Wanted entries whose index
 * is below the number wanted keep it; the others take the lowest free
 * indices in entry order. Only the fixes listed in the header differ.
 *
 * A full pass can be told of files that change while it runs (the poll
 * callback): it reads such a file at once and, when the file has no link
 * yet, makes one at the lowest free index of its bucket, marked early. The
 * decision for the bucket at the pass's end treats an early link as absent
 * (what openssl rehash would have found when the pass began), so the end
 * is the same as without it; and it fills empty indices before it re-points
 * any, so the file keeps a link while its index moves.
 */
#include "cs_capath.h"

#include "cs_atomic.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_COLLISIONS 256 /* as openssl rehash */
#define MAX_LINK_ID 65535  /* openssl keeps indices in an unsigned short */
#define SHA1_LEN 20
#define MAX_FILE (16L << 20) /* larger files are no single certificate or CRL */
#define POLL_EVERY 32        /* files read or buckets written between two polls */
#define POLL_MAX 64          /* names taken in at one poll; the rest wait for the next */

enum kind { KIND_NONE = 0, KIND_CERT, KIND_CRL };

struct bucket;

/* What identifies a file's bytes without reading them (as git's index does). */
struct fkey {
	dev_t dev;
	ino_t ino;
	off_t size;
	int64_t mtime_ns, ctime_ns;
};

/* One line of the cache: a file's key and what reading it gave. */
struct centry {
	char *name;
	struct fkey key;
	enum kind kind;
	uint32_t hash;
	unsigned char sha1[SHA1_LEN];
	struct centry *next;
};

struct cfile {
	char *name;
	enum kind kind;
	uint32_t hash;
	unsigned char sha1[SHA1_LEN];
	unsigned char *der; /* certificates: DER, for the CAfile */
	int derlen;
	char *skip;         /* why it is not linked, or NULL */
	int skip_err;       /* the reason is an error, not a rule */
	int linked;
	int keyed;          /* the stat key below is that of the bytes read */
	struct fkey key;
	struct bucket *b;
	struct cfile *next; /* hash chain */
};

struct link {
	char *target; /* NULL: no symlink at this index */
	int blocked;  /* something that is not a symlink has this name */
	int early;    /* made by this full pass for a polled file: absent for the decision */
};

struct bucket {
	int crl;
	uint32_t hash;
	struct link *links;
	int nlinks; /* indices 0..nlinks-1 are allocated */
	struct cfile **mem;
	int nmem, capmem;
	int touched; /* a polled file came or went since the pass last wrote the bucket */
	struct bucket *next;
};

struct cs_capath {
	char *dir;
	char *cafile;
	mode_t cafile_mode;
	unsigned flags;
	cs_capath_report_cb report;
	cs_capath_own_cb own;
	cs_capath_poll_cb poll;
	void *report_arg;
	int scanned;
	int dirfd; /* open during a call */
	unsigned tmpseq;
	int cafile_dirty;
	int wrote; /* a link was made or removed since the directory was opened */
	struct cfile **ftab;
	size_t fsize, fcount;
	struct bucket **btab;
	size_t bsize, bcount;
	struct cs_capath_stats *st;
	char *cache;           /* NULL: no cache */
	struct centry **ctab;  /* the cache as read at the start of a full pass */
	size_t csize;
	EVP_MD *sha1;          /* fetched once: a fetch per file costs as much as the digest */
};

static const char *const suffixes[] = { "pem", "crt", "cer", "crl" };

/* ---- names ---- */

int cs_capath_name_eligible(const char *name)
{
	const char *ext = strrchr(name, '.');

	if (ext == NULL)
		return 0;
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++)
		if (strcasecmp(ext + 1, suffixes[i]) == 0)
			return 1;
	return 0;
}

/* Parses a canonical link name; returns 1 and fills the outputs, or 0. */
static int cs_capath__parse_link(const char *name, int *crl, uint32_t *hash, int *id)
{
	uint32_t h = 0;
	const char *p;
	long v = 0;

	for (int i = 0; i < 8; i++) {
		char c = name[i];

		if (c >= '0' && c <= '9')
			h = h << 4 | (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			h = h << 4 | (uint32_t)(c - 'a' + 10);
		else
			return 0;
	}
	if (name[8] != '.')
		return 0;
	p = name + 9;
	*crl = 0;
	if (*p == 'r') {
		*crl = 1;
		p++;
	}
	if (*p < '0' || *p > '9' || (*p == '0' && p[1] != '\0'))
		return 0;
	for (; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return 0;
		v = v * 10 + (*p - '0');
		if (v > MAX_LINK_ID)
			return 0;
	}
	*hash = h;
	*id = (int)v;
	return 1;
}

int cs_capath_name_is_link(const char *name)
{
	int crl, id;
	uint32_t h;

	return cs_capath__parse_link(name, &crl, &h, &id);
}

static void cs_capath__link_name(const struct bucket *b, int id, char *buf, size_t len)
{
	snprintf(buf, len, "%08x.%s%d", (unsigned)b->hash, b->crl ? "r" : "", id);
}

static void cs_capath__report(cs_capath *cp, enum cs_capath_event ev, const char *name,
			      const char *detail)
{
	if (cp->report != NULL)
		cp->report(cp->report_arg, ev, name, detail);
}

/* Announces a change of link name (to target; NULL: removal) about to be made. */
static void cs_capath__own_link(cs_capath *cp, const char *name, const char *target)
{
	if (cp->own != NULL)
		cp->own(cp->report_arg, name, target);
}

/* ---- tables ---- */

static size_t cs_capath__str_hash(const char *s)
{
	size_t h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static size_t bkey(int crl, uint32_t hash)
{
	return (size_t)hash * 2654435761u + (size_t)crl;
}

static int grow_files(cs_capath *cp)
{
	size_t nsize = cp->fsize ? cp->fsize * 2 : 1024;
	struct cfile **t = calloc(nsize, sizeof(*t));

	if (t == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < cp->fsize; i++)
		for (struct cfile *f = cp->ftab[i], *n; f != NULL; f = n) {
			size_t k = cs_capath__str_hash(f->name) & (nsize - 1);

			n = f->next;
			f->next = t[k];
			t[k] = f;
		}
	free(cp->ftab);
	cp->ftab = t;
	cp->fsize = nsize;
	return 0;
}

static struct cfile *cs_capath__file_find(const cs_capath *cp, const char *name)
{
	if (cp->fsize == 0)
		return NULL;
	for (struct cfile *f = cp->ftab[cs_capath__str_hash(name) & (cp->fsize - 1)]; f != NULL;
	     f = f->next)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

static void cs_capath__file_clear(struct cfile *f)
{
	free(f->der);
	f->der = NULL;
	f->derlen = 0;
	f->kind = KIND_NONE;
}

static void file_free(struct cfile *f)
{
	if (f == NULL)
		return;
	cs_capath__file_clear(f);
	free(f->skip);
	free(f->name);
	free(f);
}

static struct cfile *cs_capath__file_add(cs_capath *cp, const char *name)
{
	struct cfile *f;
	size_t k;

	if ((cp->fcount + 1 > cp->fsize * 2 || cp->fsize == 0) && grow_files(cp) < 0)
		return NULL;
	f = calloc(1, sizeof(*f));
	if (f == NULL || (f->name = strdup(name)) == NULL) {
		free(f);
		return NULL;
	}
	k = cs_capath__str_hash(name) & (cp->fsize - 1);
	f->next = cp->ftab[k];
	cp->ftab[k] = f;
	cp->fcount++;
	return f;
}

static void cs_capath__file_remove(cs_capath *cp, struct cfile *f)
{
	struct cfile **pp = &cp->ftab[cs_capath__str_hash(f->name) & (cp->fsize - 1)];

	for (; *pp != NULL; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			cp->fcount--;
			break;
		}
	file_free(f);
}

static int grow_buckets(cs_capath *cp)
{
	size_t nsize = cp->bsize ? cp->bsize * 2 : 1024;
	struct bucket **t = calloc(nsize, sizeof(*t));

	if (t == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < cp->bsize; i++)
		for (struct bucket *b = cp->btab[i], *n; b != NULL; b = n) {
			size_t k = bkey(b->crl, b->hash) & (nsize - 1);

			n = b->next;
			b->next = t[k];
			t[k] = b;
		}
	free(cp->btab);
	cp->btab = t;
	cp->bsize = nsize;
	return 0;
}

static struct bucket *cs_capath__bucket_get(cs_capath *cp, int crl, uint32_t hash, int create)
{
	struct bucket *b;
	size_t k;

	if (cp->bsize != 0)
		for (b = cp->btab[bkey(crl, hash) & (cp->bsize - 1)]; b != NULL; b = b->next)
			if (b->crl == crl && b->hash == hash)
				return b;
	if (!create)
		return NULL;
	if ((cp->bcount + 1 > cp->bsize * 2 || cp->bsize == 0) && grow_buckets(cp) < 0)
		return NULL;
	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return NULL;
	b->crl = crl;
	b->hash = hash;
	k = bkey(crl, hash) & (cp->bsize - 1);
	b->next = cp->btab[k];
	cp->btab[k] = b;
	cp->bcount++;
	return b;
}

static void bucket_free(struct bucket *b)
{
	for (int i = 0; i < b->nlinks; i++)
		free(b->links[i].target);
	free(b->links);
	free(b->mem);
	free(b);
}

/* Makes index id addressable; returns 0 or -ENOMEM. */
static int bucket_reserve(struct bucket *b, int id)
{
	struct link *n;
	int nn;

	if (id < b->nlinks)
		return 0;
	nn = b->nlinks ? b->nlinks : 4;
	while (nn <= id)
		nn *= 2;
	n = realloc(b->links, (size_t)nn * sizeof(*n));
	if (n == NULL)
		return -ENOMEM;
	memset(n + b->nlinks, 0, (size_t)(nn - b->nlinks) * sizeof(*n));
	b->links = n;
	b->nlinks = nn;
	return 0;
}

/* Records what is at index id; an early link stays early while its target is the same. */
static int cs_capath__bucket_set_link(struct bucket *b, int id, const char *target, int blocked)
{
	char *t = NULL;
	int early;

	if (bucket_reserve(b, id) < 0)
		return -ENOMEM;
	if (target != NULL && (t = strdup(target)) == NULL)
		return -ENOMEM;
	early = b->links[id].early && target != NULL && b->links[id].target != NULL &&
		strcmp(b->links[id].target, target) == 0;
	free(b->links[id].target);
	b->links[id].target = t;
	b->links[id].blocked = blocked;
	b->links[id].early = early;
	return 0;
}

static int cs_capath__bucket_add_member(struct bucket *b, struct cfile *f)
{
	if (b->nmem == b->capmem) {
		int nc = b->capmem ? b->capmem * 2 : 4;
		struct cfile **n = realloc(b->mem, (size_t)nc * sizeof(*n));

		if (n == NULL)
			return -ENOMEM;
		b->mem = n;
		b->capmem = nc;
	}
	b->mem[b->nmem++] = f;
	f->b = b;
	return 0;
}

static void cs_capath__bucket_del_member(struct bucket *b, struct cfile *f)
{
	for (int i = 0; i < b->nmem; i++)
		if (b->mem[i] == f) {
			memmove(b->mem + i, b->mem + i + 1, (size_t)(b->nmem - i - 1) * sizeof(*b->mem));
			b->nmem--;
			break;
		}
	f->b = NULL;
}

static void cs_capath__state_reset(cs_capath *cp)
{
	for (size_t i = 0; i < cp->fsize; i++)
		for (struct cfile *f = cp->ftab[i], *n; f != NULL; f = n) {
			n = f->next;
			file_free(f);
		}
	for (size_t i = 0; i < cp->bsize; i++)
		for (struct bucket *b = cp->btab[i], *n; b != NULL; b = n) {
			n = b->next;
			bucket_free(b);
		}
	free(cp->ftab);
	free(cp->btab);
	cp->ftab = NULL;
	cp->btab = NULL;
	cp->fsize = cp->fcount = cp->bsize = cp->bcount = 0;
	cp->scanned = 0;
}

/* ---- the cache ---- */

static int64_t cs_capath__ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static void cs_capath__key_of(const struct stat *st, struct fkey *k)
{
	k->dev = st->st_dev;
	k->ino = st->st_ino;
	k->size = st->st_size;
	k->mtime_ns = cs_capath__ts_ns(&st->st_mtim);
	k->ctime_ns = cs_capath__ts_ns(&st->st_ctim);
}

static int cs_capath__key_eq(const struct fkey *a, const struct fkey *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}

static void cs_capath__cache_drop(cs_capath *cp)
{
	for (size_t i = 0; i < cp->csize; i++)
		for (struct centry *e = cp->ctab[i], *n; e != NULL; e = n) {
			n = e->next;
			free(e->name);
			free(e);
		}
	free(cp->ctab);
	cp->ctab = NULL;
	cp->csize = 0;
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
 * Reads the cache into cp->ctab. A line that does not parse is ignored, and
 * so is the whole file when it was written for another directory: a stale
 * or torn cache costs a re-read, never a wrong link (every entry is checked
 * against the file's current key before use).
 */
static void cs_capath__cache_load(cs_capath *cp)
{
	FILE *fp;
	char *line = NULL;
	size_t cap = 0, n = 0;
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
		if (cp->csize == 0 || n + 1 > cp->csize) {
			size_t ns = cp->csize ? cp->csize * 2 : 1024;
			struct centry **t = calloc(ns, sizeof(*t));

			if (t == NULL)
				break;
			for (size_t i = 0; i < cp->csize; i++)
				for (struct centry *c = cp->ctab[i], *cn; c != NULL; c = cn) {
					cn = c->next;
					c->next = t[cs_capath__str_hash(c->name) & (ns - 1)];
					t[cs_capath__str_hash(c->name) & (ns - 1)] = c;
				}
			free(cp->ctab);
			cp->ctab = t;
			cp->csize = ns;
		}
		e = calloc(1, sizeof(*e));
		if (e == NULL || (e->name = strdup(line + off)) == NULL) {
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
		e->next = cp->ctab[cs_capath__str_hash(e->name) & (cp->csize - 1)];
		cp->ctab[cs_capath__str_hash(e->name) & (cp->csize - 1)] = e;
		n++;
	}
out:
	free(line);
	fclose(fp);
}

static const struct centry *cs_capath__cache_find(const cs_capath *cp, const char *name)
{
	if (cp->csize == 0)
		return NULL;
	for (struct centry *e = cp->ctab[cs_capath__str_hash(name) & (cp->csize - 1)]; e != NULL;
	     e = e->next)
		if (strcmp(e->name, name) == 0)
			return e;
	return NULL;
}

/*
 * Writes the cache from the files read (when it differs). A file whose
 * ctime is within 2 s of the pass's start is left out: it could still be
 * changed within the same timestamp tick without its key changing (git's
 * "racy" entries).
 */
static void cs_capath__cache_save(cs_capath *cp, int64_t start_ns)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m;
	char err[256];

	if (cp->cache == NULL || (m = open_memstream(&buf, &len)) == NULL)
		return;
	fprintf(m, "%s%s\n", CACHE_MAGIC, cp->dir);
	for (size_t i = 0; i < cp->fsize; i++)
		for (struct cfile *f = cp->ftab[i]; f != NULL; f = f->next) {
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

/* ---- reading a file ---- */

static int no_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf, (void)size, (void)rwflag, (void)u;
	return -1;
}

/* Sets the reason: prefix followed by arg. */
static void cs_capath__set_skip(struct cfile *f, int is_err, const char *prefix, const char *arg)
{
	char buf[512];

	snprintf(buf, sizeof(buf), "%s%s", prefix, arg);
	free(f->skip);
	f->skip = strdup(buf);
	f->skip_err = is_err;
}

/* Steps over one definite-length DER element of tag `tag` (-1: any); returns its end or NULL. */
static const unsigned char *der_elem(const unsigned char *p, const unsigned char *end, int tag,
				     int cls, const unsigned char **content, long *clen)
{
	const unsigned char *q = p;
	long len;
	int t, c, r;

	if (p == NULL || p >= end)
		return NULL;
	r = ASN1_get_object(&q, &len, &t, &c, end - p);
	if ((r & 0x80) || r == 0x21 || (tag >= 0 && (t != tag || c != cls)))
		return NULL;
	if (content != NULL) {
		*content = q;
		*clen = len;
	}
	return q + len;
}

/*
 * The name a link is made for, found by walking the DER of a certificate
 * (subject) or CRL (issuer) field by field. Returns a pointer to the Name's
 * encoding and its end in *nend, or NULL when the structure is not the
 * expected one (the caller then decodes the file as openssl does).
 */
static const unsigned char *der_name(const unsigned char *der, long len, int crl,
				     const unsigned char **nend)
{
	const unsigned char *end = der + len, *p, *tbs, *tend, *name;
	long l;

	p = der_elem(der, end, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &tbs, &l);
	if (p != end)
		return NULL; /* trailing bytes: leave to the full decoder */
	end = tbs + l;
	p = der_elem(tbs, end, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &tbs, &l);
	/* After the to-be-signed part: the signature algorithm and the signature. */
	p = der_elem(p, end, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, NULL, NULL);
	if (der_elem(p, end, V_ASN1_BIT_STRING, V_ASN1_UNIVERSAL, NULL, NULL) != end)
		return NULL;
	tend = tbs + l;
	p = tbs;
	if (crl) {
		if (p < tend && *p == V_ASN1_INTEGER)
			p = der_elem(p, tend, V_ASN1_INTEGER, V_ASN1_UNIVERSAL, NULL, NULL);
		p = der_elem(p, tend, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, NULL, NULL);
		name = p;
		p = der_elem(p, tend, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, NULL, NULL);
	} else {
		if (p < tend && *p == 0xa0)
			p = der_elem(p, tend, 0, V_ASN1_CONTEXT_SPECIFIC, NULL, NULL);
		p = der_elem(p, tend, V_ASN1_INTEGER, V_ASN1_UNIVERSAL, NULL, NULL);
		p = der_elem(p, tend, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, NULL, NULL); /* alg */
		p = der_elem(p, tend, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, NULL, NULL); /* issuer */
		p = der_elem(p, tend, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, NULL, NULL); /* validity */
		name = p;
		p = der_elem(p, tend, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, NULL, NULL); /* subject */
		/* The public key is stepped over, never decoded. */
		if (der_elem(p, tend, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, NULL, NULL) == NULL)
			return NULL;
	}
	if (p == NULL)
		return NULL;
	*nend = p;
	return name;
}

/*
 * The common case read cheaply: the file is one CERTIFICATE or X509 CRL PEM
 * block, nothing else, without headers, of well-formed DER. Fills kind,
 * hash, digest (and the DER when want_der). Returns 1, or 0 when the file
 * needs the full decoder (f is then untouched).
 */
static int parse_fast(cs_capath *cp, struct cfile *f, const char *buf, size_t len, int want_der)
{
	static const char begin[] = "-----BEGIN ";
	const char *b = memmem(buf, len, begin, sizeof(begin) - 1);
	char *name = NULL, *header = NULL;
	unsigned char *der = NULL;
	const unsigned char *nm, *nend;
	long dlen = 0;
	BIO *bio;
	X509_NAME *xn = NULL;
	int ok = 0, crl, hok = 0;
	uint32_t hash;

	if (b == NULL || memmem(b + 1, len - (size_t)(b + 1 - buf), begin, sizeof(begin) - 1))
		return 0;
	bio = BIO_new_mem_buf(buf, (int)len);
	if (bio == NULL || !PEM_read_bio(bio, &name, &header, &der, &dlen) || header[0] != '\0')
		goto out;
	if (strcmp(name, PEM_STRING_X509) == 0)
		crl = 0;
	else if (strcmp(name, PEM_STRING_X509_CRL) == 0)
		crl = 1;
	else
		goto out;
	nm = der_name(der, dlen, crl, &nend);
	if (nm == NULL || (xn = d2i_X509_NAME(NULL, &nm, nend - nm)) == NULL || nm != nend)
		goto out;
	hash = (uint32_t)X509_NAME_hash_ex(xn, NULL, NULL, &hok);
	if (!hok || cp->sha1 == NULL || !EVP_Digest(der, (size_t)dlen, f->sha1, NULL, cp->sha1, NULL))
		goto out;
	f->kind = crl ? KIND_CRL : KIND_CERT;
	f->hash = hash;
	if (want_der && !crl) {
		f->der = der;
		f->derlen = (int)dlen;
		der = NULL;
	}
	ok = 1;
out:
	X509_NAME_free(xn);
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(der);
	BIO_free(bio);
	ERR_clear_error();
	return ok;
}

/* Reads buf as openssl rehash does (PEM_X509_INFO_read_bio) into f. */
static void parse_full(cs_capath *cp, struct cfile *f, const char *buf, size_t len)
{
	STACK_OF(X509_INFO) *inf = NULL;
	X509_INFO *xi;
	const X509_NAME *nm;
	BIO *bio = BIO_new_mem_buf(buf, (int)len);
	int ok = 0;
	unsigned int dlen;

	if (bio == NULL) {
		cs_capath__set_skip(f, 1, "", "out of memory");
		goto out;
	}
	inf = PEM_X509_INFO_read_bio(bio, NULL, no_password, NULL);
	if (inf == NULL) {
		cs_capath__set_skip(f, 0, "", "not readable as PEM");
		goto out;
	}
	if (sk_X509_INFO_num(inf) != 1) {
		cs_capath__set_skip(f, 0, "", "does not contain exactly one certificate or CRL");
		goto out;
	}
	xi = sk_X509_INFO_value(inf, 0);
	if (xi->x509 != NULL) {
		f->kind = KIND_CERT;
		nm = X509_get_subject_name(xi->x509);
		if (!X509_digest(xi->x509, EVP_sha1(), f->sha1, &dlen)) {
			cs_capath__set_skip(f, 1, "", "cannot compute its SHA-1 fingerprint");
			f->kind = KIND_NONE;
			goto out;
		}
		f->derlen = cp->cafile != NULL ? i2d_X509(xi->x509, &f->der) : 0;
		if (f->derlen <= 0) {
			f->der = NULL;
			f->derlen = 0;
		}
	} else if (xi->crl != NULL) {
		f->kind = KIND_CRL;
		nm = X509_CRL_get_issuer(xi->crl);
		if (!X509_CRL_digest(xi->crl, EVP_sha1(), f->sha1, &dlen)) {
			cs_capath__set_skip(f, 1, "", "cannot compute its SHA-1 fingerprint");
			f->kind = KIND_NONE;
			goto out;
		}
	} else {
		cs_capath__set_skip(f, 1, "", "holds neither a certificate nor a CRL");
		goto out;
	}
	f->hash = (uint32_t)X509_NAME_hash_ex(nm, NULL, NULL, &ok);
	if (!ok) {
		cs_capath__set_skip(f, 1, "", "cannot hash its name");
		cs_capath__file_clear(f);
	}
out:
	sk_X509_INFO_pop_free(inf, X509_INFO_free);
	BIO_free(bio);
	ERR_clear_error();
}

/*
 * Reads the whole of the regular file name (at most MAX_FILE bytes) into a
 * malloc'd buffer; *st gets the descriptor's stat. Returns the buffer, or
 * NULL with *why set (a static reason; *is_err says whether it is an error).
 */
static char *read_whole(cs_capath *cp, const char *name, struct stat *st, size_t *len,
			const char **why, int *is_err)
{
	char *buf;
	int fd = openat(cp->dirfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	*len = 0;
	*is_err = 0;
	if (fd < 0) {
		*why = strerror(errno);
		*is_err = 1;
		return NULL;
	}
	/*
	 * Again on the descriptor: the name may have been swapped for a FIFO or
	 * a device since the fstatat before. Symbolic links stay followed: a
	 * CApath directory is often links into a certificate store.
	 */
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		close(fd);
		*why = "not a regular file";
		return NULL;
	}
	if (st->st_size > MAX_FILE) {
		close(fd);
		*why = "too large for a certificate or CRL";
		return NULL;
	}
	/* Read whole: PEM parsing on a file-descriptor BIO reads one byte per call. */
	buf = malloc((size_t)st->st_size + 1);
	while (buf != NULL && *len < (size_t)st->st_size) {
		ssize_t n = read(fd, buf + *len, (size_t)st->st_size - *len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		*len += (size_t)n;
	}
	close(fd);
	if (buf == NULL) {
		*why = "out of memory";
		*is_err = 1;
	}
	return buf;
}

/*
 * Reads dir/f->name into f (kind, hash, digest, DER, or a skip reason).
 * With use_cache, a file whose key matches the cache is not read (no DER).
 * Returns 0, or -ENOENT when the file does not exist (f untouched).
 */
static int cs_capath__file_load(cs_capath *cp, struct cfile *f, int use_cache)
{
	struct stat st;
	const struct centry *ce;
	struct fkey key;
	const char *why;
	char *buf;
	size_t len;
	int is_err;

	if (fstatat(cp->dirfd, f->name, &st, 0) < 0) {
		if (errno == ENOENT) {
			struct stat lst;

			/* A dangling symlink exists but cannot be read. */
			if (fstatat(cp->dirfd, f->name, &lst, AT_SYMLINK_NOFOLLOW) < 0)
				return -ENOENT;
		}
		cs_capath__file_clear(f);
		f->keyed = 0;
		cs_capath__set_skip(f, 1, "cannot be read: ", strerror(errno));
		return 0;
	}
	cs_capath__file_clear(f);
	f->keyed = 0;
	free(f->skip);
	f->skip = NULL;
	f->skip_err = 0;
	if (!S_ISREG(st.st_mode)) {
		cs_capath__set_skip(f, 0, "", "not a regular file");
		return 0;
	}
	cs_capath__key_of(&st, &key);
	if (use_cache && (ce = cs_capath__cache_find(cp, f->name)) != NULL &&
	    cs_capath__key_eq(&ce->key, &key)) {
		f->kind = ce->kind;
		f->hash = ce->hash;
		memcpy(f->sha1, ce->sha1, SHA1_LEN);
		f->key = key;
		f->keyed = 1;
		return 0;
	}
	buf = read_whole(cp, f->name, &st, &len, &why, &is_err);
	if (buf == NULL) {
		cs_capath__set_skip(f, is_err,
				    is_err && strcmp(why, "out of memory") != 0 ? "cannot be read: " : "",
				    why);
		return 0;
	}
	if (!parse_fast(cp, f, buf, len, cp->cafile != NULL))
		parse_full(cp, f, buf, len);
	if (f->kind != KIND_NONE) {
		cs_capath__key_of(&st, &f->key);
		f->keyed = 1;
	}
	free(buf);
	return 0;
}

/*
 * Gives a linked certificate read from the cache its DER (for the CAfile).
 * Returns 0, or -1 when the file no longer holds the same certificate.
 */
static int cs_capath__file_der(cs_capath *cp, struct cfile *f)
{
	struct cfile tmp;
	int rc = -1;

	memset(&tmp, 0, sizeof(tmp));
	tmp.name = f->name;
	if (cs_capath__file_load(cp, &tmp, 0) == 0 && tmp.kind == KIND_CERT && tmp.der != NULL &&
	    memcmp(tmp.sha1, f->sha1, SHA1_LEN) == 0) {
		f->der = tmp.der;
		f->derlen = tmp.derlen;
		tmp.der = NULL;
		rc = 0;
	}
	free(tmp.der);
	free(tmp.skip);
	return rc;
}

/* ---- the decision for one bucket ---- */

struct item {
	char name[32];      /* link name, or empty for a file */
	const char *sort;   /* the name the item sorts by */
	int id;             /* link index, or -1 for a file */
	struct cfile *f;    /* file items */
};

struct entry {
	const char *target;
	int old_id;
	struct cfile *f; /* non-NULL: wanted */
};

static int item_cmp(const void *a, const void *b)
{
	return strcmp(((const struct item *)a)->sort, ((const struct item *)b)->sort);
}

static struct entry *entry_find(struct entry *e, int n, const char *target)
{
	for (int i = 0; i < n; i++)
		if (strcmp(e[i].target, target) == 0)
			return &e[i];
	return NULL;
}

/* Re-reads the links of b from the directory (indices up to the known ones and one past). */
static int cs_capath__bucket_refresh(cs_capath *cp, struct bucket *b)
{
	int top = b->nlinks;
	char name[32], target[PATH_MAX];

	if (top < b->nmem + 1)
		top = b->nmem + 1;
	for (int id = 0; id <= top && id <= MAX_LINK_ID; id++) {
		struct stat st;
		ssize_t n;
		int r;

		cs_capath__link_name(b, id, name, sizeof(name));
		if (fstatat(cp->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (id < b->nlinks)
				r = cs_capath__bucket_set_link(b, id, NULL, 0);
			else
				continue;
		} else if (!S_ISLNK(st.st_mode)) {
			r = cs_capath__bucket_set_link(b, id, NULL, 1);
		} else {
			n = readlinkat(cp->dirfd, name, target, sizeof(target) - 1);
			if (n < 0)
				r = cs_capath__bucket_set_link(b, id, NULL, 0);
			else {
				target[n] = '\0';
				r = cs_capath__bucket_set_link(b, id, target, 0);
			}
			if (id == top && top < MAX_LINK_ID)
				top++; /* keep going while links continue */
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* Points link id of b at target through a temporary name; returns 0 or -errno. */
static int make_link(cs_capath *cp, struct bucket *b, int id, const char *target)
{
	char name[32], tmp[96];
	struct stat st;

	int announced = 0;

	cs_capath__link_name(b, id, name, sizeof(name));
	/*
	 * Nothing known at this index: create it in place (one system call; a
	 * bucket is filled lowest index first, so no gap shows meanwhile). If
	 * something appeared there since, fall through to the careful way.
	 */
	if (id >= b->nlinks || (b->links[id].target == NULL && !b->links[id].blocked)) {
		cs_capath__own_link(cp, name, target);
		announced = 1;
		if (symlinkat(target, cp->dirfd, name) == 0) {
			cp->wrote = 1;
			cs_capath__report(cp, CS_CAPATH_LINKED, name, target);
			return cs_capath__bucket_set_link(b, id, target, 0);
		}
	}
	if (fstatat(cp->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISLNK(st.st_mode)) {
		cs_capath__report(cp, CS_CAPATH_ERROR, name, "not a symbolic link: left alone");
		cs_capath__bucket_set_link(b, id, NULL, 1);
		return -EEXIST;
	}
	for (;;) {
		snprintf(tmp, sizeof(tmp), ".%s.%ld.%u.tmp", name, (long)getpid(), cp->tmpseq++);
		if (symlinkat(target, cp->dirfd, tmp) == 0)
			break;
		if (errno != EEXIST) {
			int e = errno;

			cs_capath__report(cp, CS_CAPATH_ERROR, name, strerror(e));
			return -e;
		}
	}
	cp->wrote = 1;
	if (!announced)
		cs_capath__own_link(cp, name, target);
	if (renameat(cp->dirfd, tmp, cp->dirfd, name) < 0) {
		int e = errno;

		unlinkat(cp->dirfd, tmp, 0);
		cs_capath__report(cp, CS_CAPATH_ERROR, name, strerror(e));
		return -e;
	}
	if (b->links != NULL && id < b->nlinks && b->links[id].target != NULL)
		cs_capath__report(cp, CS_CAPATH_UNLINKED, name, b->links[id].target);
	cs_capath__report(cp, CS_CAPATH_LINKED, name, target);
	return cs_capath__bucket_set_link(b, id, target, 0);
}

static int drop_link(cs_capath *cp, struct bucket *b, int id)
{
	char name[32];
	struct stat st;

	cs_capath__link_name(b, id, name, sizeof(name));
	if (fstatat(cp->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
		cs_capath__own_link(cp, name, NULL);
		if (unlinkat(cp->dirfd, name, 0) < 0 && errno != ENOENT) {
			int e = errno;

			cs_capath__report(cp, CS_CAPATH_ERROR, name, strerror(e));
			return -e;
		}
	}
	cp->wrote = 1;
	cs_capath__report(cp, CS_CAPATH_UNLINKED, name, b->links[id].target);
	if (cp->st != NULL)
		cp->st->unlinked++;
	return cs_capath__bucket_set_link(b, id, NULL, 0);
}

/*
 * Decides and writes the links of b from its members and its current links.
 * Returns 0, or a negative errno when some link could not be made (counted
 * and reported).
 */
static int cs_capath__bucket_sync(cs_capath *cp, struct bucket *b)
{
	int nitems = 0, nent = 0, needed = 0, rc = 0, top;
	struct item *items = NULL;
	struct entry *ent = NULL;
	struct cfile **want = NULL;
	unsigned char *used = NULL;

	items = calloc((size_t)(b->nlinks + b->nmem + 1), sizeof(*items));
	ent = calloc((size_t)(b->nlinks + b->nmem + 1), sizeof(*ent));
	if (items == NULL || ent == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (int id = 0; id < b->nlinks; id++) {
		/* An early link was not there when the pass began: openssl would not see it. */
		if (b->links[id].target == NULL || b->links[id].early)
			continue;
		cs_capath__link_name(b, id, items[nitems].name, sizeof(items[nitems].name));
		items[nitems].sort = items[nitems].name;
		items[nitems].id = id;
		nitems++;
	}
	for (int i = 0; i < b->nmem; i++) {
		items[nitems].sort = b->mem[i]->name;
		items[nitems].id = -1;
		items[nitems].f = b->mem[i];
		nitems++;
	}
	qsort(items, (size_t)nitems, sizeof(*items), item_cmp);

	for (int i = 0; i < nitems; i++) {
		struct item *it = &items[i];
		struct entry *e;

		if (it->id >= 0) {
			const char *t = b->links[it->id].target;

			e = entry_find(ent, nent, t);
			if (e == NULL) {
				e = &ent[nent++];
				e->target = t;
				e->old_id = INT_MAX;
			}
			if (it->id < e->old_id)
				e->old_id = it->id;
			continue;
		}
		struct cfile *f = it->f, *dup = NULL;
		char *old_skip = f->skip ? strdup(f->skip) : NULL;

		for (int j = 0; j < nent && dup == NULL; j++)
			if (ent[j].f != NULL && memcmp(ent[j].f->sha1, f->sha1, SHA1_LEN) == 0)
				dup = ent[j].f;
		free(f->skip);
		f->skip = NULL;
		f->skip_err = 0;
		if (dup != NULL) {
			cs_capath__set_skip(f, 0, "duplicate of ", dup->name);
		} else {
			e = entry_find(ent, nent, f->name);
			if (e == NULL && needed >= MAX_COLLISIONS) {
				char why[96];

				snprintf(why, sizeof(why), "more than %d %s with hash %08x",
					 MAX_COLLISIONS, b->crl ? "CRLs" : "certificates",
					 (unsigned)b->hash);
				cs_capath__set_skip(f, 1, "", why);
			} else {
				if (e == NULL) {
					e = &ent[nent++];
					e->target = f->name;
					e->old_id = INT_MAX;
				}
				e->f = f;
				needed++;
			}
		}
		if (f->skip != NULL && (old_skip == NULL || strcmp(old_skip, f->skip) != 0)) {
			cs_capath__report(cp, f->skip_err ? CS_CAPATH_ERROR : CS_CAPATH_SKIPPED, f->name,
			       f->skip);
			if (cp->st != NULL) {
				if (f->skip_err)
					cp->st->errors++;
				else
					cp->st->skipped++;
			}
		}
		free(old_skip);
	}

	/* Indices: kept below `needed`, others fill the lowest free, blocked ones skipped. */
	top = needed;
	for (int id = 0; id < b->nlinks && id < top; id++)
		if (b->links[id].blocked)
			top++;
	want = calloc((size_t)top + 1, sizeof(*want));
	used = calloc((size_t)top + 1, 1);
	if (want == NULL || used == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (int id = 0; id < top && id < b->nlinks; id++)
		used[id] = (unsigned char)b->links[id].blocked;
	for (int i = 0; i < nent; i++)
		if (ent[i].f != NULL && ent[i].old_id < needed && !used[ent[i].old_id]) {
			want[ent[i].old_id] = ent[i].f;
			used[ent[i].old_id] = 1;
		}
	for (int i = 0, next = 0; i < nent; i++) {
		if (ent[i].f == NULL || (ent[i].old_id < needed && want[ent[i].old_id] == ent[i].f))
			continue;
		while (next < top && used[next])
			next++;
		if (next >= top)
			break; /* cannot happen: top counts every wanted entry */
		want[next] = ent[i].f;
		used[next] = 1;
	}

	for (int i = 0; i < b->nmem; i++)
		b->mem[i]->linked = 0;
	/*
	 * Empty indices first, then the ones re-pointed: a file whose link
	 * moves (an early link that is not at its place) gets the new one
	 * before its old index goes to another file.
	 */
	for (int round = 0; round < 2; round++)
		for (int id = 0; id < top; id++) {
			struct cfile *f = want[id];
			const char *cur = id < b->nlinks ? b->links[id].target : NULL;

			if (f == NULL || (cur == NULL) != (round == 0))
				continue;
			if (cur == NULL || strcmp(cur, f->name) != 0) {
				int r = make_link(cp, b, id, f->name);

				if (r < 0) {
					rc = r;
					if (cp->st != NULL)
						cp->st->errors++;
					continue;
				}
				if (cp->st != NULL)
					cp->st->linked++;
				if (f->kind == KIND_CERT)
					cp->cafile_dirty = 1;
			}
			f->linked = 1;
		}
	for (int id = b->nlinks - 1; id >= 0; id--) {
		if (b->links[id].target == NULL || (id < top && want[id] != NULL))
			continue;
		int r = drop_link(cp, b, id);

		if (r < 0) {
			rc = r;
			if (cp->st != NULL)
				cp->st->errors++;
		}
		if (!b->crl)
			cp->cafile_dirty = 1;
	}
	for (int id = 0; id < b->nlinks; id++)
		b->links[id].early = 0;
out:
	free(items);
	free(ent);
	free(want);
	free(used);
	return rc;
}

/* ---- CAfile ---- */

static int cs_capath__name_cmp(const void *a, const void *b)
{
	return strcmp((*(struct cfile *const *)a)->name, (*(struct cfile *const *)b)->name);
}

/* Collects the linked files of kind k sorted by name; returns a malloc'd array. */
static struct cfile **linked_sorted(const cs_capath *cp, enum kind k, size_t *n)
{
	struct cfile **v = malloc((cp->fcount + 1) * sizeof(*v));

	*n = 0;
	if (v == NULL)
		return NULL;
	for (size_t i = 0; i < cp->fsize; i++)
		for (struct cfile *f = cp->ftab[i]; f != NULL; f = f->next)
			if (f->linked && f->kind == k && (k != KIND_CERT || f->der != NULL))
				v[(*n)++] = f;
	qsort(v, *n, sizeof(*v), cs_capath__name_cmp);
	return v;
}

/* Rewrites the CAfile when its content differs; returns 0 or a negative errno. */
static int cs_capath__cafile_sync(cs_capath *cp, char *err, size_t errlen)
{
	size_t n = 0;
	struct cfile **v;
	BIO *mem = NULL;
	char *data;
	long len;
	int rc = 0;

	cp->cafile_dirty = 0;
	if (cp->cafile == NULL)
		return 0;
	/* Certificates known from the cache were not read: read those linked now. */
	for (size_t i = 0; i < cp->fsize; i++)
		for (struct cfile *f = cp->ftab[i]; f != NULL; f = f->next)
			if (f->linked && f->kind == KIND_CERT && f->der == NULL)
				cs_capath__file_der(cp, f);
	v = linked_sorted(cp, KIND_CERT, &n);
	mem = BIO_new(BIO_s_mem());
	if (v == NULL || mem == NULL) {
		rc = -ENOMEM;
		snprintf(err, errlen, "%s: out of memory", cp->cafile);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (!PEM_write_bio(mem, "CERTIFICATE", "", v[i]->der, v[i]->derlen)) {
			rc = -ENOMEM;
			snprintf(err, errlen, "%s: out of memory", cp->cafile);
			goto out;
		}
	len = BIO_get_mem_data(mem, &data);
	if (!cs_atomic_same(cp->cafile, data, (size_t)len)) {
		struct cs_atomic_opts ao = { cp->cafile_mode, (uid_t)-1, (gid_t)-1,
					     (cp->flags & CS_CAPATH_NO_FSYNC) ? CS_ATOMIC_NO_FSYNC : 0 };
		char msg[64];

		rc = cs_atomic_write(cp->cafile, data, (size_t)len, &ao, err, errlen);
		if (rc == 0) {
			snprintf(msg, sizeof(msg), "%zu certificates", n);
			cs_capath__report(cp, CS_CAPATH_CAFILE, cp->cafile, msg);
			if (cp->st != NULL)
				cp->st->cafile_written = 1;
		} else {
			cs_capath__report(cp, CS_CAPATH_ERROR, cp->cafile, err);
		}
	}
out:
	BIO_free(mem);
	free(v);
	return rc;
}

/* ---- public ---- */

cs_capath *cs_capath_new(const char *dir, const struct cs_capath_opts *opts, char *err,
			 size_t errlen)
{
	cs_capath *cp = calloc(1, sizeof(*cp));

	if (cp == NULL || (cp->dir = strdup(dir)) == NULL)
		goto fail;
	cp->dirfd = -1;
	cp->cafile_mode = 0644;
	if (opts != NULL) {
		if (opts->cafile != NULL && (cp->cafile = strdup(opts->cafile)) == NULL)
			goto fail;
		if (opts->cafile_mode != 0)
			cp->cafile_mode = opts->cafile_mode;
		cp->flags = opts->flags;
		cp->report = opts->report;
		cp->own = opts->own;
		cp->poll = opts->poll;
		cp->report_arg = opts->report_arg;
		if (opts->cache != NULL && (cp->cache = strdup(opts->cache)) == NULL)
			goto fail;
	}
	cp->sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
	ERR_clear_error();
	return cp;
fail:
	snprintf(err, errlen, "%s: out of memory", dir);
	if (cp != NULL) {
		free(cp->dir);
		free(cp->cafile);
	}
	free(cp);
	return NULL;
}

void cs_capath_free(cs_capath *cp)
{
	if (cp == NULL)
		return;
	cs_capath__state_reset(cp);
	cs_capath__cache_drop(cp);
	EVP_MD_free(cp->sha1);
	free(cp->cache);
	free(cp->dir);
	free(cp->cafile);
	free(cp);
}

const char *cs_capath_dir(const cs_capath *cp)
{
	return cp->dir;
}

static int open_dir(cs_capath *cp, char *err, size_t errlen)
{
	cp->dirfd = open(cp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cp->dirfd < 0) {
		int e = errno;

		snprintf(err, errlen, "%s: %s", cp->dir, strerror(e));
		return -e;
	}
	return 0;
}

static void cs_capath__close_dir(cs_capath *cp)
{
	if (cp->dirfd >= 0) {
		/* Nothing to make durable when no link changed (an agent start). */
		if (!(cp->flags & CS_CAPATH_NO_FSYNC) && cp->wrote)
			fsync(cp->dirfd);
		cp->wrote = 0;
		close(cp->dirfd);
	}
	cp->dirfd = -1;
}

/*
 * Removes a temporary link (".HHHHHHHH.N.PID.SEQ.tmp", a symlink) left by a
 * writer that was killed between symlink and rename: its process is gone.
 * Returns 1 when name had that form (removed or not), else 0.
 */
static int cs_capath__stale_tmp_link(cs_capath *cp, const char *name)
{
	char buf[96], *p_seq, *p_pid;
	size_t len = strlen(name);
	int crl, id;
	uint32_t hash;
	long pid;
	struct stat st;

	if (len < 4 || len >= sizeof(buf) || strcmp(name + len - 4, ".tmp") != 0)
		return 0;
	memcpy(buf, name + 1, len - 5);
	buf[len - 5] = '\0'; /* "HHHHHHHH.N.PID.SEQ" */
	p_seq = strrchr(buf, '.');
	if (p_seq == NULL)
		return 0;
	*p_seq++ = '\0';
	p_pid = strrchr(buf, '.');
	if (p_pid == NULL)
		return 0;
	*p_pid++ = '\0';
	if (!cs_capath__parse_link(buf, &crl, &hash, &id) || p_pid[0] == '\0' ||
	    strspn(p_pid, "0123456789") != strlen(p_pid) || p_seq[0] == '\0' ||
	    strspn(p_seq, "0123456789") != strlen(p_seq))
		return 0;
	pid = strtol(p_pid, NULL, 10);
	if (fstatat(cp->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode) &&
	    pid != (long)getpid() && kill((pid_t)pid, 0) < 0 && errno == ESRCH &&
	    unlinkat(cp->dirfd, name, 0) == 0)
		cs_capath__report(cp, CS_CAPATH_UNLINKED, name, "temporary link of a killed writer");
	return 1;
}

/* True when link id of b is on disk what b says (a symlink to the same target, or absent). */
static int cs_capath__link_as_known(cs_capath *cp, const struct bucket *b, int id)
{
	const struct link *l = id < b->nlinks ? &b->links[id] : NULL;
	char name[32], target[PATH_MAX];
	ssize_t n;

	cs_capath__link_name(b, id, name, sizeof(name));
	n = readlinkat(cp->dirfd, name, target, sizeof(target) - 1);
	if (n < 0)
		return errno == ENOENT && (l == NULL || (l->target == NULL && !l->blocked));
	target[n] = '\0';
	return l != NULL && l->target != NULL && strcmp(l->target, target) == 0;
}

static void cs_capath__count_linked(cs_capath *cp, struct cs_capath_stats *st)
{
	st->certs = st->crls = 0;
	for (size_t i = 0; i < cp->fsize; i++)
		for (struct cfile *f = cp->ftab[i]; f != NULL; f = f->next)
			if (f->linked) {
				if (f->kind == KIND_CERT)
					st->certs++;
				else if (f->kind == KIND_CRL)
					st->crls++;
			}
}

/* Ends a call: CAfile, counts, message for errors. */
static int cs_capath__finish(cs_capath *cp, int rc, int force_cafile, char *err, size_t errlen)
{
	if (force_cafile || cp->cafile_dirty) {
		char cerr[512] = "";
		int r = cs_capath__cafile_sync(cp, cerr, sizeof(cerr));

		if (r < 0 && rc == 0) {
			snprintf(err, errlen, "%s", cerr);
			rc = r;
		}
	}
	cs_capath__close_dir(cp);
	if (cp->st != NULL)
		cs_capath__count_linked(cp, cp->st);
	if (rc < 0 && err[0] == '\0')
		snprintf(err, errlen, "%s: %u file(s) or link(s) could not be read or written", cp->dir,
			 cp->st ? cp->st->errors : 0u);
	cp->st = NULL;
	return rc;
}

/*
 * Gives f, just taken in by a full pass, a link at the lowest free index of
 * its bucket b, unless a link to it, or to a member with the same bytes, is
 * there already. Nothing else of the bucket changes: the pass's end decides
 * the bucket whole. Returns 0 or -ENOMEM; a link that cannot be made now is
 * left to the pass's end.
 */
static int link_early(cs_capath *cp, struct bucket *b, struct cfile *f)
{
	char name[32];
	int id, r = cs_capath__bucket_refresh(cp, b);

	if (r < 0)
		return r;
	for (id = 0; id < b->nlinks; id++) {
		const char *t = b->links[id].target;

		if (t == NULL)
			continue;
		if (strcmp(t, f->name) == 0)
			return 0;
		for (int i = 0; i < b->nmem; i++)
			if (b->mem[i] != f && strcmp(b->mem[i]->name, t) == 0 &&
			    memcmp(b->mem[i]->sha1, f->sha1, SHA1_LEN) == 0)
				return 0;
	}
	for (id = 0; id < b->nlinks && (b->links[id].target != NULL || b->links[id].blocked); id++)
		;
	if (id >= MAX_COLLISIONS)
		return 0;
	cs_capath__link_name(b, id, name, sizeof(name));
	cs_capath__own_link(cp, name, f->name);
	if (symlinkat(f->name, cp->dirfd, name) < 0)
		return 0;
	cp->wrote = 1;
	cs_capath__report(cp, CS_CAPATH_LINKED, name, f->name);
	if (cp->st != NULL)
		cp->st->linked++;
	if (f->kind == KIND_CERT)
		cp->cafile_dirty = 1;
	if (cs_capath__bucket_set_link(b, id, f->name, 0) < 0)
		return -ENOMEM;
	b->links[id].early = 1;
	return 0;
}

/*
 * Takes in name, a file the poll callback says changed while a full pass
 * runs: reads it again, or forgets it when it is gone, and gives a
 * certificate or CRL an early link. The buckets it leaves and joins are
 * marked for the pass's end. Returns 0 or -ENOMEM.
 */
static int take_in(cs_capath *cp, const char *name)
{
	struct cfile *f;
	struct bucket *b;
	char *old_skip = NULL;
	int rc = 0;

	if (name[0] == '\0' || strchr(name, '/') != NULL || !cs_capath_name_eligible(name))
		return 0;
	f = cs_capath__file_find(cp, name);
	if (f == NULL && (f = cs_capath__file_add(cp, name)) == NULL)
		return -ENOMEM;
	if (f->b != NULL) {
		f->b->touched = 1;
		cs_capath__bucket_del_member(f->b, f);
	}
	f->linked = 0;
	if (f->skip != NULL && f->kind == KIND_NONE && (old_skip = strdup(f->skip)) == NULL)
		return -ENOMEM;
	if (cs_capath__file_load(cp, f, 0) < 0) {
		cs_capath__file_remove(cp, f);
		goto out;
	}
	if (f->kind == KIND_NONE) {
		/* Reported once: the pass may have read it before it was named. */
		if (old_skip == NULL || strcmp(old_skip, f->skip) != 0) {
			cs_capath__report(cp, f->skip_err ? CS_CAPATH_ERROR : CS_CAPATH_SKIPPED, f->name, f->skip);
			if (f->skip_err)
				cp->st->errors++;
			else
				cp->st->skipped++;
		}
		goto out;
	}
	b = cs_capath__bucket_get(cp, f->kind == KIND_CRL, f->hash, 1);
	if (b == NULL || cs_capath__bucket_add_member(b, f) < 0) {
		rc = -ENOMEM;
		goto out;
	}
	b->touched = 1;
	rc = link_early(cp, b, f);
out:
	free(old_skip);
	return rc;
}

/* Takes in what the poll callback names (at most POLL_MAX); a -ENOMEM goes to *rc. */
static void cs_capath__poll_names(cs_capath *cp, int *rc)
{
	char name[NAME_MAX + 1];

	if (cp->poll == NULL)
		return;
	for (int i = 0; i < POLL_MAX && cp->poll(cp->report_arg, name, sizeof(name)) == 1; i++) {
		name[sizeof(name) - 1] = '\0';
		if (take_in(cp, name) == -ENOMEM)
			*rc = -ENOMEM;
	}
}

/* Writes bucket b as decided now; returns 0, -EIO or -ENOMEM. */
static int cs_capath__pass_sync(cs_capath *cp, struct bucket *b)
{
	int r;

	b->touched = 0;
	r = cs_capath__bucket_sync(cp, b);
	if (r < 0)
		return r == -ENOMEM ? r : -EIO;
	return 0;
}

int cs_capath_full(cs_capath *cp, struct cs_capath_stats *st, char *err, size_t errlen)
{
	struct cs_capath_stats dummy;
	DIR *d;
	struct dirent *de;
	struct timespec t0;
	struct bucket **bv = NULL;
	size_t nb = 0, nread = 0;
	int rc = 0, fd;

	memset(&dummy, 0, sizeof(dummy));
	if (st == NULL)
		st = &dummy;
	memset(st, 0, sizeof(*st));
	if (errlen > 0)
		err[0] = '\0';
	cs_capath__state_reset(cp);
	clock_gettime(CLOCK_REALTIME, &t0);
	if ((rc = open_dir(cp, err, errlen)) < 0)
		return rc;
	cs_capath__cache_load(cp);
	cp->st = st;
	fd = dup(cp->dirfd);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (d == NULL) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		snprintf(err, errlen, "%s: %s", cp->dir, strerror(e));
		cs_capath__close_dir(cp);
		cp->st = NULL;
		return -e;
	}
	cs_capath__poll_names(cp, &rc);
	while (rc == 0 && (de = readdir(d)) != NULL) {
		const char *name = de->d_name;
		int crl, id;
		uint32_t hash;

		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		if (name[0] == '.' && cs_capath__stale_tmp_link(cp, name))
			continue;
		if (cs_capath__parse_link(name, &crl, &hash, &id)) {
			struct stat lst;
			struct bucket *b;
			char target[PATH_MAX];
			ssize_t n;

			/* d_type saves a stat per link where the filesystem gives it. */
			if (de->d_type == DT_UNKNOWN) {
				if (fstatat(cp->dirfd, name, &lst, AT_SYMLINK_NOFOLLOW) < 0)
					continue;
			} else {
				lst.st_mode = de->d_type == DT_LNK ? S_IFLNK : S_IFREG;
			}
			b = cs_capath__bucket_get(cp, crl, hash, 1);
			if (b == NULL) {
				rc = -ENOMEM;
				break;
			}
			if (!S_ISLNK(lst.st_mode)) {
				cs_capath__bucket_set_link(b, id, NULL, 1);
				continue;
			}
			n = readlinkat(cp->dirfd, name, target, sizeof(target) - 1);
			if (n < 0)
				continue;
			target[n] = '\0';
			if (cs_capath__bucket_set_link(b, id, target, 0) < 0) {
				rc = -ENOMEM;
				break;
			}
			continue;
		}
		if (!cs_capath_name_eligible(name))
			continue;
		if (++nread % POLL_EVERY == 0)
			cs_capath__poll_names(cp, &rc);
		if (cs_capath__file_find(cp, name) != NULL)
			continue; /* taken in from a poll, more recently than this */
		struct cfile *f = cs_capath__file_add(cp, name);

		if (f == NULL) {
			rc = -ENOMEM;
			break;
		}
		if (cs_capath__file_load(cp, f, 1) < 0) {
			cs_capath__file_remove(cp, f); /* gone while we read */
			continue;
		}
		if (f->kind == KIND_NONE) {
			cs_capath__report(cp, f->skip_err ? CS_CAPATH_ERROR : CS_CAPATH_SKIPPED, f->name,
			       f->skip);
			if (f->skip_err)
				st->errors++;
			else
				st->skipped++;
			continue;
		}
		struct bucket *b = cs_capath__bucket_get(cp, f->kind == KIND_CRL, f->hash, 1);

		if (b == NULL || cs_capath__bucket_add_member(b, f) < 0) {
			rc = -ENOMEM;
			break;
		}
	}
	closedir(d);
	cs_capath__cache_drop(cp);
	if (rc == 0)
		cs_capath__poll_names(cp, &rc);
	/* The buckets as they are now: a poll may add some (and grow the table) meanwhile. */
	if (rc == 0 && (bv = malloc((cp->bcount + 1) * sizeof(*bv))) == NULL)
		rc = -ENOMEM;
	if (rc == -ENOMEM) {
		snprintf(err, errlen, "%s: out of memory", cp->dir);
		cs_capath__close_dir(cp);
		cp->st = NULL;
		cs_capath__state_reset(cp);
		return rc;
	}
	for (size_t i = 0; i < cp->bsize; i++)
		for (struct bucket *b = cp->btab[i]; b != NULL; b = b->next)
			bv[nb++] = b;
	for (size_t i = 0; i < nb; i++) {
		int r;

		if (i % POLL_EVERY == POLL_EVERY - 1)
			cs_capath__poll_names(cp, &rc);
		if ((r = cs_capath__pass_sync(cp, bv[i])) < 0 && rc != -ENOMEM)
			rc = r;
	}
	free(bv);
	/* Buckets a poll touched after they were written, or made: decided again. */
	cs_capath__poll_names(cp, &rc);
	for (size_t i = 0; i < cp->bsize; i++)
		for (struct bucket *b = cp->btab[i]; b != NULL; b = b->next) {
			int r;

			if (b->touched && (r = cs_capath__pass_sync(cp, b)) < 0 && rc != -ENOMEM)
				rc = r;
		}
	/* A file that could not be read, or a member left out for an error, is an error. */
	for (size_t i = 0; rc == 0 && i < cp->fsize; i++)
		for (struct cfile *f = cp->ftab[i]; f != NULL; f = f->next)
			if (f->skip_err) {
				rc = -EIO;
				break;
			}
	cp->scanned = 1;
	cs_capath__cache_save(cp, cs_capath__ts_ns(&t0));
	if (rc == -ENOMEM && err[0] == '\0')
		snprintf(err, errlen, "%s: out of memory", cp->dir);
	return cs_capath__finish(cp, rc, 1, err, errlen);
}

int cs_capath_update(cs_capath *cp, const char *name, struct cs_capath_stats *st, char *err,
		     size_t errlen)
{
	struct cs_capath_stats dummy;
	struct bucket *ob = NULL, *nb = NULL;
	struct cfile *f;
	int rc = 0, crl, id;
	uint32_t hash;

	memset(&dummy, 0, sizeof(dummy));
	if (st == NULL)
		st = &dummy;
	memset(st, 0, sizeof(*st));
	if (errlen > 0)
		err[0] = '\0';
	if (!cp->scanned) {
		snprintf(err, errlen, "%s: no full pass yet", cp->dir);
		return -EINVAL;
	}
	if (name[0] == '\0' || strchr(name, '/') != NULL || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0)
		return 0;
	if (cs_capath__parse_link(name, &crl, &hash, &id)) {
		/*
		 * Most events for link names are those of links this handle made
		 * itself (a full pass makes thousands): when the link is as
		 * this handle left it, there is nothing to do.
		 */
		nb = cs_capath__bucket_get(cp, crl, hash, 0);
		if (nb != NULL && (rc = open_dir(cp, err, errlen)) == 0) {
			int same = cs_capath__link_as_known(cp, nb, id);

			cs_capath__close_dir(cp);
			if (same) {
				cs_capath__count_linked(cp, st);
				return 0;
			}
		}
		rc = 0;
		nb = cs_capath__bucket_get(cp, crl, hash, 1);
		if (nb == NULL) {
			snprintf(err, errlen, "%s: out of memory", cp->dir);
			return -ENOMEM;
		}
	} else if (!cs_capath_name_eligible(name)) {
		return 0;
	}
	if ((rc = open_dir(cp, err, errlen)) < 0)
		return rc;
	cp->st = st;
	if (nb == NULL) {
		f = cs_capath__file_find(cp, name);
		if (f == NULL && (f = cs_capath__file_add(cp, name)) == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		ob = f->b;
		if (ob != NULL) {
			cs_capath__bucket_del_member(ob, f);
			if (f->linked && f->kind == KIND_CERT)
				cp->cafile_dirty = 1;
			f->linked = 0;
		}
		char *old_skip = f->skip != NULL && f->kind == KIND_NONE ? strdup(f->skip) : NULL;

		if (cs_capath__file_load(cp, f, 0) < 0) {
			cs_capath__file_remove(cp, f);
			f = NULL;
		} else if (f->kind == KIND_NONE) {
			if (old_skip == NULL || strcmp(old_skip, f->skip) != 0) {
				cs_capath__report(cp, f->skip_err ? CS_CAPATH_ERROR : CS_CAPATH_SKIPPED,
				       f->name, f->skip);
				if (f->skip_err)
					st->errors++;
				else
					st->skipped++;
			}
			if (f->skip_err)
				rc = -EIO;
		} else {
			nb = cs_capath__bucket_get(cp, f->kind == KIND_CRL, f->hash, 1);
			if (nb == NULL || cs_capath__bucket_add_member(nb, f) < 0) {
				free(old_skip);
				rc = -ENOMEM;
				goto out;
			}
			free(f->skip); /* recomputed by the bucket (duplicates) */
			f->skip = old_skip;
			old_skip = NULL;
		}
		free(old_skip);
	}
	struct bucket *todo[2] = { ob, nb };

	for (int i = 0; i < 2; i++) {
		int r;

		if (todo[i] == NULL || (i == 1 && todo[1] == todo[0]))
			continue;
		r = cs_capath__bucket_refresh(cp, todo[i]);
		if (r == 0)
			r = cs_capath__bucket_sync(cp, todo[i]);
		if (r < 0)
			rc = r == -ENOMEM ? r : -EIO;
	}
out:
	if (rc == -ENOMEM)
		snprintf(err, errlen, "%s: out of memory", cp->dir);
	return cs_capath__finish(cp, rc, 0, err, errlen);
}

int cs_capath_publish(cs_capath *cp, const char *name, X509 *x, X509_CRL *crl,
		      struct cs_capath_stats *st, char *err, size_t errlen)
{
	BIO *mem = BIO_new(BIO_s_mem());
	struct cs_atomic_opts ao = { 0644, (uid_t)-1, (gid_t)-1,
				     (cp->flags & CS_CAPATH_NO_FSYNC) ? CS_ATOMIC_NO_FSYNC : 0 };
	char *path = NULL, *data;
	long len;
	int rc = 0;

	if (st != NULL)
		memset(st, 0, sizeof(*st));
	if (strchr(name, '/') != NULL || !cs_capath_name_eligible(name) ||
	    cs_capath_name_is_link(name) || (x == NULL && crl == NULL)) {
		snprintf(err, errlen, "%s/%s: not a name for a certificate or CRL file", cp->dir,
			 name);
		rc = -EINVAL;
		goto out;
	}
	if (mem == NULL || asprintf(&path, "%s/%s", cp->dir, name) < 0 ||
	    !(x != NULL ? PEM_write_bio_X509(mem, x) : PEM_write_bio_X509_CRL(mem, crl))) {
		path = NULL;
		snprintf(err, errlen, "%s/%s: out of memory", cp->dir, name);
		rc = -ENOMEM;
		goto out;
	}
	len = BIO_get_mem_data(mem, &data);
	if (!cs_atomic_same(path, data, (size_t)len)) {
		rc = cs_atomic_write(path, data, (size_t)len, &ao, err, errlen);
		if (rc < 0)
			goto out;
	}
	rc = cs_capath_update(cp, name, st, err, errlen);
out:
	ERR_clear_error();
	BIO_free(mem);
	free(path);
	return rc;
}

size_t cs_capath_problems(const cs_capath *cp, cs_capath_report_cb cb, void *arg)
{
	struct cfile **v = malloc((cp->fcount + 1) * sizeof(*v));
	size_t n = 0;

	if (v == NULL)
		return 0;
	for (size_t i = 0; i < cp->fsize; i++)
		for (struct cfile *f = cp->ftab[i]; f != NULL; f = f->next)
			if (f->skip != NULL)
				v[n++] = f;
	qsort(v, n, sizeof(*v), cs_capath__name_cmp);
	for (size_t i = 0; i < n && cb != NULL; i++)
		cb(arg, v[i]->skip_err ? CS_CAPATH_ERROR : CS_CAPATH_SKIPPED, v[i]->name,
		   v[i]->skip);
	free(v);
	return n;
}

int cs_capath_rehash(const char *dir, const struct cs_capath_opts *opts,
		     struct cs_capath_stats *st, char *err, size_t errlen)
{
	cs_capath *cp = cs_capath_new(dir, opts, err, errlen);
	int rc;

	if (cp == NULL)
		return -ENOMEM;
	rc = cs_capath_full(cp, st, err, errlen);
	cs_capath_free(cp);
	return rc;
}
