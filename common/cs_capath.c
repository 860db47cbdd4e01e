/*
 * cs_capath - hash links of an OpenSSL CApath directory, full and
 * incremental, and the CAfile bundle next to them. See cs_capath.h for the
 * rules.
 *
 * This file holds the interface: a directory's handle, the names that take
 * part, the full pass (every file read, every bucket decided), the update
 * for the names that changed, publication of one certificate and the
 * report of problems. The picture of the directory is kept by
 * cs_capath_table.c, remembered between runs by cs_capath_cache.c, read by
 * cs_capath_read.c; cs_capath_bucket.c decides and writes a bucket's links,
 * cs_capath_cafile.c the CAfile, cs_capath_pass.c what only a full pass does.
 */
#include "cs_capath_int.h"

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
int cs_capath__parse_link(const char *name, int *crl, uint32_t *hash, int *id)
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

void cs_capath__link_name(const struct bucket *b, int id, char *buf, size_t len)
{
	snprintf(buf, len, "%08x.%s%d", (unsigned)b->hash, b->crl ? "r" : "", id);
}

void cs_capath__report(cs_capath *cp, enum cs_capath_event ev, const char *name,
		       const char *detail)
{
	if (cp->report != NULL)
		cp->report(cp->report_arg, ev, name, detail);
}

/* Announces a change of link name (to target; NULL: removal) about to be made. */
void cs_capath__own_link(cs_capath *cp, const char *name, const char *target)
{
	if (cp->own != NULL)
		cp->own(cp->report_arg, name, target);
}

/* Reports why f is left out and counts it, as an error or a file skipped, when the call counts. */
void cs_capath__report_skip(cs_capath *cp, const struct cfile *f)
{
	cs_capath__report(cp, f->skip_err ? CS_CAPATH_ERROR : CS_CAPATH_SKIPPED, f->name, f->skip);
	if (cp->st == NULL)
		return;
	if (f->skip_err)
		cp->st->errors++;
	else
		cp->st->skipped++;
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

void cs_capath__close_dir(cs_capath *cp)
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

/* Returns where a call counts (st, or dummy when the caller wants no figures), zeroed; empties err. */
static struct cs_capath_stats *call_start(struct cs_capath_stats *st, struct cs_capath_stats *dummy,
					  char *err, size_t errlen)
{
	if (st == NULL)
		st = dummy;
	memset(st, 0, sizeof(*st));
	if (errlen > 0)
		err[0] = '\0';
	return st;
}

/* Records hash link de (index id of bucket crl/hash) as the directory has it; returns 0 or -ENOMEM. */
static int scan_link(cs_capath *cp, const struct dirent *de, int crl, uint32_t hash, int id)
{
	struct stat lst;
	struct bucket *b;
	char target[PATH_MAX];
	ssize_t n;

	/* d_type saves a stat per link where the filesystem gives it. */
	if (de->d_type == DT_UNKNOWN) {
		if (fstatat(cp->dirfd, de->d_name, &lst, AT_SYMLINK_NOFOLLOW) < 0)
			return 0;
	} else {
		lst.st_mode = de->d_type == DT_LNK ? S_IFLNK : S_IFREG;
	}
	b = cs_capath__bucket_get(cp, crl, hash, 1);
	if (b == NULL)
		return -ENOMEM;
	if (!S_ISLNK(lst.st_mode)) {
		cs_capath__bucket_set_link(b, id, NULL, 1);
		return 0;
	}
	n = readlinkat(cp->dirfd, de->d_name, target, sizeof(target) - 1);
	if (n < 0)
		return 0;
	target[n] = '\0';
	return cs_capath__bucket_set_link(b, id, target, 0) < 0 ? -ENOMEM : 0;
}

/* Reads file name into a member of its bucket, or a file skipped; returns 0 or -ENOMEM. */
static int scan_file(cs_capath *cp, const char *name)
{
	struct cfile *f;
	struct bucket *b;

	if (cs_capath__file_find(cp, name) != NULL)
		return 0; /* taken in from a poll, more recently than this */
	if ((f = cs_capath__file_add(cp, name)) == NULL)
		return -ENOMEM;
	if (cs_capath__file_load(cp, f, 1) < 0) {
		cs_capath__file_remove(cp, f); /* gone while we read */
		return 0;
	}
	if (f->kind == KIND_NONE) {
		cs_capath__report_skip(cp, f);
		return 0;
	}
	b = cs_capath__bucket_get(cp, f->kind == KIND_CRL, f->hash, 1);
	if (b == NULL || cs_capath__bucket_add_member(b, f) < 0)
		return -ENOMEM;
	return 0;
}

/*
 * Decides every bucket (taking in polled names between some), then the
 * ones a poll touched after they were written. Returns 0, -ENOMEM, or the
 * last failure of a bucket.
 */
static int decide_all(cs_capath *cp, struct bucket **bv, int rc)
{
	size_t nb = 0;

	for (struct bucket *b = cs_capath__bucket_next(cp, NULL); b != NULL;
	     b = cs_capath__bucket_next(cp, b))
		bv[nb++] = b;
	for (size_t i = 0; i < nb; i++) {
		int r;

		if (i % POLL_EVERY == POLL_EVERY - 1)
			cs_capath__poll_names(cp, &rc);
		if ((r = cs_capath__pass_sync(cp, bv[i])) < 0 && rc != -ENOMEM)
			rc = r;
	}
	/* Buckets a poll touched after they were written, or made: decided again. */
	cs_capath__poll_names(cp, &rc);
	for (struct bucket *b = cs_capath__bucket_next(cp, NULL); b != NULL;
	     b = cs_capath__bucket_next(cp, b)) {
		int r;

		if (b->touched && (r = cs_capath__pass_sync(cp, b)) < 0 && rc != -ENOMEM)
			rc = r;
	}
	return rc;
}

int cs_capath_full(cs_capath *cp, struct cs_capath_stats *st, char *err, size_t errlen)
{
	struct cs_capath_stats dummy;
	DIR *d;
	struct dirent *de;
	struct timespec t0;
	struct bucket **bv = NULL;
	size_t nread = 0;
	int rc = 0, fd;

	st = call_start(st, &dummy, err, errlen);
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
		int crl, id, r = 0;
		uint32_t hash;

		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		if (name[0] == '.' && cs_capath__stale_tmp_link(cp, name))
			continue;
		if (cs_capath__parse_link(name, &crl, &hash, &id)) {
			r = scan_link(cp, de, crl, hash, id);
		} else if (cs_capath_name_eligible(name)) {
			if (++nread % POLL_EVERY == 0)
				cs_capath__poll_names(cp, &rc);
			r = scan_file(cp, name);
		}
		if (r < 0)
			rc = r;
	}
	closedir(d);
	cs_capath__cache_drop(cp);
	if (rc == 0)
		cs_capath__poll_names(cp, &rc);
	/* The buckets as they are now: a poll may add some (and grow the table) meanwhile. */
	if (rc == 0 && (bv = malloc((cp->buckets.n + 1) * sizeof(*bv))) == NULL)
		rc = -ENOMEM;
	if (rc == -ENOMEM) {
		snprintf(err, errlen, "%s: out of memory", cp->dir);
		cs_capath__close_dir(cp);
		cp->st = NULL;
		cs_capath__state_reset(cp);
		return rc;
	}
	rc = decide_all(cp, bv, rc);
	free(bv);
	/* A file that could not be read, or a member left out for an error, is an error. */
	for (struct cfile *f = cs_capath__file_next(cp, NULL); rc == 0 && f != NULL;
	     f = cs_capath__file_next(cp, f))
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

/*
 * Reads file name again after an event: out of its old bucket (*ob) and
 * into its new one (*nb), or skipped (reported when the reason is new).
 * Returns 0, -EIO for a file that cannot be used, or -ENOMEM.
 */
static int update_file(cs_capath *cp, const char *name, struct bucket **ob,
		       struct bucket **nb)
{
	struct cfile *f = cs_capath__file_find(cp, name);
	char *old_skip;
	int rc = 0;

	if (f == NULL && (f = cs_capath__file_add(cp, name)) == NULL)
		return -ENOMEM;
	*ob = f->b;
	if (*ob != NULL) {
		cs_capath__bucket_del_member(*ob, f);
		if (f->linked && f->kind == KIND_CERT)
			cp->cafile_dirty = 1;
		f->linked = 0;
	}
	old_skip = f->skip != NULL && f->kind == KIND_NONE ? strdup(f->skip) : NULL;
	if (cs_capath__file_load(cp, f, 0) < 0) {
		cs_capath__file_remove(cp, f);
	} else if (f->kind == KIND_NONE) {
		if (old_skip == NULL || strcmp(old_skip, f->skip) != 0)
			cs_capath__report_skip(cp, f);
		if (f->skip_err)
			rc = -EIO;
	} else {
		*nb = cs_capath__bucket_get(cp, f->kind == KIND_CRL, f->hash, 1);
		if (*nb == NULL || cs_capath__bucket_add_member(*nb, f) < 0) {
			free(old_skip);
			return -ENOMEM;
		}
		free(f->skip); /* recomputed by the bucket (duplicates) */
		f->skip = old_skip;
		old_skip = NULL;
	}
	free(old_skip);
	return rc;
}

int cs_capath_update(cs_capath *cp, const char *name, struct cs_capath_stats *st, char *err,
		     size_t errlen)
{
	struct cs_capath_stats dummy;
	struct bucket *ob = NULL, *nb = NULL;
	int rc = 0, crl, id;
	uint32_t hash;

	st = call_start(st, &dummy, err, errlen);
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
	if (nb == NULL && (rc = update_file(cp, name, &ob, &nb)) == -ENOMEM)
		goto out;
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
	struct cfile **v = malloc((cp->files.n + 1) * sizeof(*v));
	size_t n = 0;

	if (v == NULL)
		return 0;
	for (struct cfile *f = cs_capath__file_next(cp, NULL); f != NULL;
	     f = cs_capath__file_next(cp, f))
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
