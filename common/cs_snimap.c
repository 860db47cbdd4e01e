/*
 * cs_snimap - Postfix SNI maps and Dovecot local_name includes (see
 * cs_snimap.h). The text of a table is made in memory first; what is on
 * disk is compared with it, and replaced only when it differs.
 */
#include "cs_snimap.h"

#include "cs_atomic.h"
#include "cs_postmap.h"
#include "cs_run.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMP_PREFIX ".certsync-sni-"
#define HEADER "# certsync: generated, do not edit; content sha256 "
#define MAX_READ (1024 * 1024)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* Text made with stdio into memory (open_memstream); p and n are valid after buf_end. */
struct buf {
	FILE *f;
	char *p;
	size_t n;
	bool oom;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct buf *b, const char *fmt, ...)
{
	va_list ap;

	if (b->oom)
		return;
	if (b->f == NULL && (b->f = open_memstream(&b->p, &b->n)) == NULL) {
		b->oom = true;
		return;
	}
	va_start(ap, fmt);
	if (vfprintf(b->f, fmt, ap) < 0)
		b->oom = true;
	va_end(ap);
}

/* Ends the text: b->p holds it NUL-terminated (an empty one too); false when out of memory. */
static bool buf_end(struct buf *b)
{
	put(b, "%s", "");
	if (b->f != NULL && fclose(b->f) != 0)
		b->oom = true;
	b->f = NULL;
	return !b->oom && b->p != NULL;
}

static void buf_free(struct buf *b)
{
	if (b->f != NULL)
		fclose(b->f);
	free(b->p);
	memset(b, 0, sizeof(*b));
}

void cs_snimap_result_free(struct cs_snimap_result *res)
{
	if (res == NULL)
		return;
	for (size_t i = 0; i < res->nmissing; i++)
		free(res->missing[i]);
	free(res->missing);
	free(res->note);
	memset(res, 0, sizeof(*res));
}

static void add_missing(struct cs_snimap_result *res, const char *name, const char *file,
			const char *why)
{
	char **v = realloc(res->missing, (res->nmissing + 1) * sizeof(*v));

	if (v == NULL)
		return;
	res->missing = v;
	if (asprintf(&v[res->nmissing], "%s: %s: %s", name, file, why) >= 0)
		res->nmissing++;
}

/*
 * Reads path (a regular file, not through a final symbolic link of its own,
 * at most MAX_READ bytes) into *data. Returns 0 or a negative errno.
 */
static int read_small(const char *path, bool nofollow, char **data, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (nofollow ? O_NOFOLLOW : 0));
	struct stat st;
	char *p;
	size_t off = 0;
	int rc = 0;

	*data = NULL;
	*len = 0;
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		rc = -errno;
	else if (!S_ISREG(st.st_mode))
		rc = -EINVAL;
	else if (st.st_size > MAX_READ)
		rc = -EFBIG;
	if (rc < 0) {
		close(fd);
		return rc;
	}
	if ((p = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return -ENOMEM;
	}
	while (off < (size_t)st.st_size) {
		ssize_t n = read(fd, p + off, (size_t)st.st_size - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(fd);
	p[off] = '\0';
	*data = p;
	*len = off;
	return 0;
}

/* Whether a path can stand in a map's value or a Dovecot setting as it is. */
static bool plain_path(const char *p)
{
	return p[0] == '/' && strpbrk(p, " \t\n\r,\"\\{}#") == NULL;
}

/* Digest of one file's bytes into ctx; -errno with why when it cannot be read. */
static int digest_file(EVP_MD_CTX *ctx, const char *path)
{
	char *data;
	size_t len;
	int rc = read_small(path, false, &data, &len);

	if (rc < 0)
		return rc;
	EVP_DigestUpdate(ctx, path, strlen(path) + 1);
	EVP_DigestUpdate(ctx, data, len);
	OPENSSL_cleanse(data, len);
	free(data);
	return 0;
}

/* An entry's files, checked for existence: false (and a missing line) when one is not there. */
static bool entry_ready(const struct cs_snimap_entry *e, struct cs_snimap_result *res)
{
	const char *files[2] = { e->key, e->chain };
	struct stat st;

	for (int k = 0; k < 2; k++) {
		if (files[k] == NULL)
			continue;
		if (stat(files[k], &st) < 0) {
			add_missing(res, e->name, files[k], strerror(errno));
			return false;
		}
		if (!S_ISREG(st.st_mode)) {
			add_missing(res, e->name, files[k], "not a regular file");
			return false;
		}
	}
	return true;
}

static int fsync_dir_of(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd, rc = 0;

	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else
		snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* Removes dir and the files in it (a temp directory of ours: no subdirectories). */
static void remove_tmpdir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (d != NULL) {
		while ((de = readdir(d)) != NULL)
			if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
				unlinkat(dirfd(d), de->d_name, 0);
		closedir(d);
	}
	rmdir(dir);
}

/* Writes len bytes to a new file path (O_EXCL) with mode, fsynced unless told not to. */
static int write_new(const char *path, const char *data, size_t len, mode_t mode, bool sync)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode & 0600);
	size_t off = 0;
	int rc = 0;

	if (fd < 0)
		return -errno;
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		off += (size_t)n;
	}
	if (rc == 0 && fchmod(fd, mode) < 0)
		rc = -errno;
	if (rc == 0 && sync && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	return rc;
}

/* ---- Postfix ---- */

/* What postfix_sync carries from one step to the next; all of it is freed at its end. */
struct pfx {
	const struct cs_snimap_opts *o;
	const char *sfx;	/* the database's suffix for o->map_type */
	bool sync;		/* fsync the files and the directory */
	struct buf body, text;	/* the entries' lines; the whole map, header first */
	EVP_MD_CTX *ctx;	/* sha256 of the entries' files, then of the body */
	char *old, *db, *tmp, *src, *tdb;
	size_t oldlen;
};

/* One line per entry whose files are there into p->body, their files' bytes into p->ctx. */
static int pfx_body(struct pfx *p, struct cs_snimap_result *res, char *err, size_t errlen)
{
	const struct cs_snimap_opts *o = p->o;
	int rc;

	for (size_t i = 0; i < o->n; i++) {
		const struct cs_snimap_entry *e = &o->e[i];

		if (!entry_ready(e, res))
			continue;
		if ((e->key != NULL && !plain_path(e->key)) || !plain_path(e->chain)) {
			snprintf(err, errlen, "%s: the files of %s cannot be named in a map (an "
					      "absolute path without spaces, commas or quotes)",
				 o->path, e->name);
			return -EINVAL;
		}
		if (e->key != NULL)
			put(&p->body, "%s %s, %s\n", e->name, e->key, e->chain);
		else
			put(&p->body, "%s %s\n", e->name, e->chain);
		for (int k = 0; k < 2; k++) {
			const char *f = k == 0 ? e->key : e->chain;

			if (f != NULL && (rc = digest_file(p->ctx, f)) < 0) {
				snprintf(err, errlen, "%s: cannot read %s for %s: %s", o->path, f,
					 e->name, strerror(-rc));
				return rc;
			}
		}
		res->entries++;
	}
	return 0;
}

/* The whole map into p->text (a header with the digest, then the body) and the database's name. */
static int pfx_text(struct pfx *p)
{
	unsigned char md[32];
	char hex[65];

	if (!buf_end(&p->body))
		return -ENOMEM;
	EVP_DigestUpdate(p->ctx, p->body.p, p->body.n);
	EVP_DigestFinal_ex(p->ctx, md, NULL);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	put(&p->text, HEADER "%s\n# NAME  key-first files; postmap -F embeds their contents\n%s",
	    hex, p->body.p);
	if (!buf_end(&p->text) || asprintf(&p->db, "%s%s", p->o->path, p->sfx) < 0) {
		p->db = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Whether the map in place is current: the same first line, and the database is there. */
static bool pfx_current(struct pfx *p)
{
	struct stat st;

	return read_small(p->o->path, true, &p->old, &p->oldlen) == 0 &&
	       p->oldlen >= strlen(HEADER) + 65 &&
	       strncmp(p->old, p->text.p, strlen(HEADER) + 65) == 0 && lstat(p->db, &st) == 0 &&
	       S_ISREG(st.st_mode);
}

/* A private directory beside the map (p->tmp), and the names of the map and database in it. */
static int pfx_tmpdir(struct pfx *p, char *err, size_t errlen)
{
	const char *path = p->o->path;
	const char *slash = strrchr(path, '/');
	const char *base = slash != NULL ? slash + 1 : path;
	int dl = slash != NULL ? (int)(slash - path) : 0;
	int rc;

	if (asprintf(&p->tmp, "%.*s/" TMP_PREFIX "XXXXXX", dl, path) < 0) {
		p->tmp = NULL;
		return -ENOMEM;
	}
	if (mkdtemp(p->tmp) == NULL) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot make a temp directory beside it: %s", path,
			 strerror(-rc));
		free(p->tmp);
		p->tmp = NULL;
		return rc;
	}
	if (asprintf(&p->src, "%s/%s", p->tmp, base) < 0 ||
	    asprintf(&p->tdb, "%s/%s%s", p->tmp, base, p->sfx) < 0)
		return -ENOMEM;
	return 0;
}

/* The map written and indexed in the temp directory, then both renamed into place. */
static int pfx_install(struct pfx *p, char *err, size_t errlen)
{
	const struct cs_snimap_opts *o = p->o;
	char perr[1024];
	int fd, rc;

	if ((rc = write_new(p->src, p->text.p, p->text.n, o->mode, p->sync)) < 0) {
		snprintf(err, errlen, "%s: cannot write the new map: %s", o->path, strerror(-rc));
		return rc;
	}
	if ((rc = cs_postmap_run(o->postmap, o->config_dir, true, o->map_type, p->src, perr,
				 sizeof(perr))) < 0) {
		snprintf(err, errlen, "%s: %s; the map in place is unchanged", o->path, perr);
		return rc;
	}
	/* postmap made the database with its own idea of the mode. */
	fd = open(p->tdb, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fchmod(fd, o->mode) < 0 || (p->sync && fsync(fd) < 0)) {
		rc = -errno;
		snprintf(err, errlen, "%s: postmap made no usable %s: %s", o->path, p->sfx,
			 strerror(-rc));
		if (fd >= 0)
			close(fd);
		return rc;
	}
	close(fd);
	if (rename(p->tdb, p->db) < 0 || rename(p->src, o->path) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot put the new map in place: %s", o->path,
			 strerror(-rc));
		return rc;
	}
	if (p->sync && (rc = fsync_dir_of(o->path)) < 0) {
		snprintf(err, errlen, "%s: fsync of its directory: %s", o->path, strerror(-rc));
		return rc;
	}
	return 0;
}

/* The Postfix map and its database made current (see cs_snimap_sync). */
static int postfix_sync(const struct cs_snimap_opts *o, struct cs_snimap_result *res, char *err,
			size_t errlen)
{
	struct pfx p = { .o = o, .sfx = cs_postmap_db_suffix(o->map_type),
			 .sync = !(o->flags & CS_SNIMAP_NO_FSYNC), .ctx = EVP_MD_CTX_new() };
	int rc = 0;

	if (p.sfx == NULL) {
		snprintf(err, errlen, "%s: map type %s cannot hold certificates (hash, btree, lmdb "
				      "or cdb)", o->path, o->map_type ? o->map_type : "(none)");
		EVP_MD_CTX_free(p.ctx);
		return -EINVAL;
	}
	if (p.ctx == NULL || EVP_DigestInit_ex(p.ctx, EVP_sha256(), NULL) != 1) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = pfx_body(&p, res, err, errlen)) < 0 || (rc = pfx_text(&p)) < 0)
		goto out;
	if (pfx_current(&p))
		goto out;
	if ((rc = pfx_tmpdir(&p, err, errlen)) < 0 || (rc = pfx_install(&p, err, errlen)) < 0)
		goto out;
	res->written = true;
out:
	if (rc == -ENOMEM)
		snprintf(err, errlen, "%s: out of memory", o->path);
	if (p.tmp != NULL)
		remove_tmpdir(p.tmp);
	EVP_MD_CTX_free(p.ctx);
	buf_free(&p.body);
	buf_free(&p.text);
	free(p.old);
	free(p.db);
	free(p.tmp);
	free(p.src);
	free(p.tdb);
	return rc;
}

/* ---- Dovecot ---- */

static bool plain_name(const char *s)
{
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '.' || *s == '-' || *s == '_'))
			return false;
	return true;
}

/* What dovecot_sync carries from one step to the next; all of it is freed at its end. */
struct dvc {
	const struct cs_snimap_opts *o;
	struct cs_atomic_opts ao;	/* how the include is written (and put back) */
	struct buf text;		/* the include */
	const char *first;		/* the first name in it, looked for in doveconf's output */
	char *old, *out;		/* the include that was there; doveconf's output */
	size_t oldlen;
	bool had_old;
};

/* The include's text into d->text: a local_name block per entry whose files are there. */
static int dvc_text(struct dvc *d, struct cs_snimap_result *res, char *err, size_t errlen)
{
	const struct cs_snimap_opts *o = d->o;
	bool v24 = o->kind == CS_SNIMAP_DOVECOT24;

	put(&d->text, "# certsync: generated, do not edit; Dovecot %s setting names\n",
	    v24 ? "2.4" : "2.3");
	for (size_t i = 0; i < o->n; i++) {
		const struct cs_snimap_entry *ent = &o->e[i];
		const char *key = ent->key != NULL ? ent->key : ent->chain;

		if (!entry_ready(ent, res))
			continue;
		if (!plain_path(key) || !plain_path(ent->chain)) {
			snprintf(err, errlen, "%s: the files of %s cannot be named in Dovecot's "
					      "configuration (an absolute path without spaces or quotes)",
				 o->path, ent->name);
			return -EINVAL;
		}
		if (d->first == NULL)
			d->first = ent->name;
		put(&d->text, plain_name(ent->name) ? "local_name %s {\n" : "local_name \"%s\" {\n",
		    ent->name);
		if (v24)
			put(&d->text, "  ssl_server_cert_file = %s\n  ssl_server_key_file = %s\n}\n",
			    ent->chain, key);
		else
			put(&d->text, "  ssl_cert = <%s\n  ssl_key = <%s\n}\n", ent->chain, key);
		res->entries++;
	}
	if (!buf_end(&d->text))
		return -ENOMEM;
	return 0;
}

/* Runs doveconf -n (with -c when configured) into out; cs_run's result, e saying why. */
static int dvc_doveconf(const struct cs_snimap_opts *o, char *out, size_t outlen, char *e,
			size_t elen)
{
	char *argv[5];
	int argc = 0;

	argv[argc++] = (char *)(o->doveconf != NULL ? o->doveconf : "doveconf");
	if (o->dovecot_config != NULL) {
		argv[argc++] = (char *)"-c";
		argv[argc++] = (char *)o->dovecot_config;
	}
	argv[argc++] = (char *)"-n";
	argv[argc] = NULL;
	return cs_run(argv, 0, out, outlen, e, elen);
}

/* doveconf refused the new include (rc, e): the old one back or the new one gone; the error. */
static int dvc_refused(struct dvc *d, int rc, const char *e, char *err, size_t errlen)
{
	char e2[512];
	int put_back;

	cs_run_one_line(d->out);
	put_back = d->had_old
			   ? cs_atomic_write(d->o->path, d->old, d->oldlen, &d->ao, e2, sizeof(e2))
			   : (unlink(d->o->path) < 0 ? -errno : 0);
	snprintf(err, errlen, "%s: doveconf -n refused the new include: %.400s%s%.300s; %s",
		 d->o->path, rc < 0 ? e : "", rc < 0 && d->out[0] ? ": " : "", d->out,
		 put_back < 0 ? "and the previous one could not be put back"
		 : d->had_old ? "the previous one is back in place"
			      : "it is removed again");
	return rc < 0 ? rc : -EINVAL;
}

/* A note in res when doveconf's output does not show the first name: the include is not read. */
static void dvc_note(const struct dvc *d, struct cs_snimap_result *res)
{
	const struct cs_snimap_opts *o = d->o;
	char want[300];

	if (d->first == NULL)
		return;
	snprintf(want, sizeof(want), "local_name %s", d->first);
	if (strstr(d->out, want) == NULL &&
	    asprintf(&res->note, "doveconf -n%s%s does not show %s: is %s included "
			     "(!include) by Dovecot's configuration?",
		     o->dovecot_config ? " -c " : "",
		     o->dovecot_config ? o->dovecot_config : "", want, o->path) < 0)
		res->note = NULL;
}

/* The Dovecot include made current and checked with doveconf -n (see cs_snimap_sync). */
static int dovecot_sync(const struct cs_snimap_opts *o, struct cs_snimap_result *res, char *err,
			size_t errlen)
{
	struct dvc d = { .o = o, .ao = { .mode = o->mode, .uid = (uid_t)-1, .gid = (gid_t)-1 } };
	size_t outlen = 256 * 1024;
	char e[512];
	int rc;

	d.ao.flags = (o->flags & CS_SNIMAP_NO_FSYNC) ? CS_ATOMIC_NO_FSYNC : 0;
	if ((rc = dvc_text(&d, res, err, errlen)) < 0)
		goto out;
	if (cs_atomic_same(o->path, d.text.p, d.text.n))
		goto out;
	d.had_old = read_small(o->path, true, &d.old, &d.oldlen) == 0;
	if ((rc = cs_atomic_write(o->path, d.text.p, d.text.n, &d.ao, err, errlen)) < 0)
		goto out;
	/* Dovecot reads it at the next reload: it must accept it now. */
	if ((d.out = malloc(outlen)) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = dvc_doveconf(o, d.out, outlen, e, sizeof(e))) != 0) {
		rc = dvc_refused(&d, rc, e, err, errlen);
		goto out;
	}
	res->written = true;
	dvc_note(&d, res);
out:
	if (rc == -ENOMEM)
		snprintf(err, errlen, "%s: out of memory", o->path);
	buf_free(&d.text);
	free(d.old);
	free(d.out);
	return rc;
}

int cs_snimap_sync(const struct cs_snimap_opts *o, struct cs_snimap_result *res, char *err,
		   size_t errlen)
{
	int rc;

	memset(res, 0, sizeof(*res));
	pthread_mutex_lock(&lock);
	if (o->kind == CS_SNIMAP_POSTFIX)
		rc = postfix_sync(o, res, err, errlen);
	else
		rc = dovecot_sync(o, res, err, errlen);
	pthread_mutex_unlock(&lock);
	return rc;
}

int cs_snimap_sweep(const char *path, char *err, size_t errlen)
{
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX], sub[PATH_MAX * 2];
	struct dirent *de;
	struct stat st;
	int n = 0, rc;
	DIR *d;

	snprintf(dir, sizeof(dir), "%.*s", slash == NULL ? 1 : slash == path ? 1 : (int)(slash - path),
		 slash == NULL ? "." : path);
	pthread_mutex_lock(&lock);
	if ((d = opendir(dir)) == NULL) {
		rc = -errno;
		pthread_mutex_unlock(&lock);
		if (rc == -ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", dir, strerror(-rc));
		return rc;
	}
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) != 0 ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
		remove_tmpdir(sub);
		n++;
	}
	closedir(d);
	pthread_mutex_unlock(&lock);
	rc = cs_atomic_sweep(path, err, errlen);
	return rc < 0 ? rc : n + rc;
}
