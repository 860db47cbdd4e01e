/*
 * cs_clientmap - the client-certificate fingerprint map and its postmap run
 * (see cs_clientmap.h). One pass reads the whole directory: client
 * certificate directories hold tens or hundreds of files, and a full pass
 * keeps the map a pure function of the directory.
 */
#include "cs_clientmap.h"
#include "cs_postmap.h"

#include "cs_atomic.h"
#include "cs_ingest.h"
#include "cs_material.h"
#include "cs_x509.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct line {
	char *file;
	char fp[CS_FP_MAX];
	char name[256];
};

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add_problem(struct cs_clientmap_result *res, const char *file, const char *reason)
{
	struct cs_clientmap_problem *n =
		realloc(res->problems, (res->nproblems + 1) * sizeof(*n));

	if (n == NULL)
		return -ENOMEM;
	res->problems = n;
	n[res->nproblems].file = strdup(file);
	n[res->nproblems].reason = strdup(reason);
	if (n[res->nproblems].file == NULL || n[res->nproblems].reason == NULL) {
		free(n[res->nproblems].file);
		free(n[res->nproblems].reason);
		return -ENOMEM;
	}
	res->nproblems++;
	return 0;
}

/* The name of the map entry: the subject CN, else the file name; no control characters. */
static void entry_name(X509 *x, const char *file, char *out, size_t outlen)
{
	X509_NAME *sub = X509_get_subject_name(x);
	int i = X509_NAME_get_index_by_NID(sub, NID_commonName, -1);
	unsigned char *utf8 = NULL;
	int n = -1;

	if (i >= 0)
		n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(sub, i)));
	if (n > 0)
		snprintf(out, outlen, "%.*s", n, (const char *)utf8);
	else
		snprintf(out, outlen, "%s", file);
	OPENSSL_free(utf8);
	for (char *p = out; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
}

/* Drops a leading "PATH: " that cs_ingest puts in front of its messages. */
static const char *without_path(const char *msg, const char *path)
{
	size_t n = strlen(path);

	if (strncmp(msg, path, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ')
		return msg + n + 2;
	return msg;
}

/*
 * Reads one file into *ln; returns 1 when it gives a map line, 0 when it is
 * a problem (recorded), or a negative errno (ENOMEM).
 */
static int read_one(const struct cs_clientmap_opts *o, const char *file, time_t now,
		    struct line *ln, struct cs_clientmap_result *res)
{
	char *path = NULL, err[512], why[640];
	cs_material *m = cs_material_new();
	X509 *x = NULL;
	int rc = 0, r;

	if (m == NULL || asprintf(&path, "%s/%s", o->dir, file) < 0) {
		cs_material_free(m);
		return -ENOMEM;
	}
	/* Anyone who can drop a file here could drop a FIFO or a link too. */
	struct cs_ingest_opts io = { .flags = CS_INGEST_REGULAR_ONLY };
	r = cs_ingest_file(m, path, &io, err, sizeof(err));
	if (r < 0) {
		snprintf(why, sizeof(why), "unreadable: %s", without_path(err, path));
		rc = add_problem(res, file, why);
		goto out;
	}
	if (m->leaf != NULL)
		x = m->leaf;
	else if (sk_X509_num(m->strays) > 0)
		x = sk_X509_value(m->strays, 0);
	else if (sk_X509_num(m->chain) > 0)
		x = sk_X509_value(m->chain, 0);
	if (x == NULL) {
		rc = add_problem(res, file, "holds no certificate");
		goto out;
	}
	if (X509_cmp_time(X509_get0_notAfter(x), &now) < 0) {
		char t[64];

		snprintf(why, sizeof(why), "expired on %s",
			 cs_x509_time(X509_get0_notAfter(x), 0, t, sizeof(t)));
		rc = add_problem(res, file, why);
		goto out;
	}
	r = o->pubkey ? cs_fp_pubkey(x, o->digest, ln->fp, sizeof(ln->fp))
		      : cs_fp_cert(x, o->digest, ln->fp, sizeof(ln->fp));
	if (r < 0) {
		rc = add_problem(res, file, "cannot compute its fingerprint");
		goto out;
	}
	entry_name(x, file, ln->name, sizeof(ln->name));
	ln->file = strdup(file);
	rc = ln->file == NULL ? -ENOMEM : 1;
out:
	ERR_clear_error();
	cs_material_free(m);
	free(path);
	return rc;
}

/*
 * The file names of dir (no dot files, no directories), sorted;
 * NULL-terminated. Links, FIFOs and devices are listed so that reading them
 * reports them by name: they are refused there, never opened blocking.
 */
static char **list_dir(const char *dir, size_t *n, int *rc)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **v = NULL;
	size_t cap = 0;

	*n = 0;
	*rc = 0;
	if (d == NULL) {
		*rc = -errno;
		return NULL;
	}
	while ((de = readdir(d)) != NULL) {
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    S_ISDIR(st.st_mode))
			continue;
		if (*n + 2 > cap) {
			char **nv;

			cap = cap ? cap * 2 : 32;
			nv = realloc(v, cap * sizeof(*nv));
			if (nv == NULL)
				goto nomem;
			v = nv;
		}
		if ((v[*n] = strdup(de->d_name)) == NULL)
			goto nomem;
		(*n)++;
	}
	closedir(d);
	if (v == NULL && (v = calloc(1, sizeof(*v))) == NULL) {
		*rc = -ENOMEM;
		return NULL;
	}
	v[*n] = NULL;
	qsort(v, *n, sizeof(*v), str_cmp);
	return v;
nomem:
	closedir(d);
	for (size_t i = 0; i < *n; i++)
		free(v[i]);
	free(v);
	*rc = -ENOMEM;
	return NULL;
}

/* True when the indexed file of map is missing or older than the map. */
static int db_stale(const char *type, const char *map)
{
	const char *sfx = cs_postmap_db_suffix(type);
	char *db;
	struct stat sm, sd;
	int stale = 1;

	if (sfx == NULL || asprintf(&db, "%s%s", map, sfx) < 0)
		return 1;
	if (stat(map, &sm) == 0 && stat(db, &sd) == 0 &&
	    (sd.st_mtim.tv_sec > sm.st_mtim.tv_sec ||
	     (sd.st_mtim.tv_sec == sm.st_mtim.tv_sec && sd.st_mtim.tv_nsec >= sm.st_mtim.tv_nsec)))
		stale = 0;
	free(db);
	return stale;
}

/*
 * Reads the files in order into lines (*nlines of them give a line); a file
 * with the fingerprint of an earlier one is a problem instead. 0, or a
 * negative errno (ENOMEM); *nlines counts the lines that hold a file even then.
 */
static int read_lines(const struct cs_clientmap_opts *o, char **files, size_t nfiles,
		      time_t now, struct line *lines, size_t *nlines,
		      struct cs_clientmap_result *res)
{
	for (size_t i = 0; i < nfiles; i++) {
		struct line *ln = &lines[*nlines];
		int r = read_one(o, files[i], now, ln, res);

		if (r < 0)
			return r;
		if (r == 0)
			continue;
		for (size_t j = 0; j < *nlines; j++)
			if (strcmp(lines[j].fp, ln->fp) == 0) {
				char why[512];

				snprintf(why, sizeof(why), "same fingerprint as %s", lines[j].file);
				free(ln->file);
				ln->file = NULL;
				r = add_problem(res, files[i], why);
				if (r < 0)
					return r;
				break;
			}
		if (ln->file != NULL)
			(*nlines)++;
	}
	return 0;
}

/* The map into *text (*tlen bytes): a header line postmap ignores, one line per certificate. */
static int make_text(const struct cs_clientmap_opts *o, const struct line *lines, size_t nlines,
		     char **text, size_t *tlen)
{
	size_t tcap = 0;

	for (size_t i = 0; i <= nlines; i++) {
		char buf[CS_FP_MAX + 600];
		int k;

		if (i == 0)
			k = snprintf(buf, sizeof(buf),
				     "# Written by certsync from %s (%s of the %s); do not edit.\n",
				     o->dir, cs_digest_name(o->digest),
				     o->pubkey ? "public key" : "certificate");
		else
			k = snprintf(buf, sizeof(buf), "%s %s\n", lines[i - 1].fp,
				     lines[i - 1].name);
		if (*tlen + (size_t)k + 1 > tcap) {
			char *nt;

			tcap = (*tlen + (size_t)k + 1) * 2;
			nt = realloc(*text, tcap);
			if (nt == NULL)
				return -ENOMEM;
			*text = nt;
		}
		memcpy(*text + *tlen, buf, (size_t)k);
		*tlen += (size_t)k;
	}
	return 0;
}

int cs_clientmap_build(const struct cs_clientmap_opts *o, struct cs_clientmap_result *res,
		       char *err, size_t errlen)
{
	time_t now = o->now ? o->now : time(NULL);
	size_t nfiles = 0, nlines = 0;
	char **files;
	struct line *lines = NULL;
	char *text = NULL;
	size_t tlen = 0;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	if (errlen > 0)
		err[0] = '\0';
	files = list_dir(o->dir, &nfiles, &rc);
	if (files == NULL) {
		snprintf(err, errlen, "%s: %s", o->dir, strerror(-rc));
		return rc;
	}
	lines = calloc(nfiles + 1, sizeof(*lines));
	if (lines == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = read_lines(o, files, nfiles, now, lines, &nlines, res)) < 0 ||
	    (rc = make_text(o, lines, nlines, &text, &tlen)) < 0)
		goto out;
	res->entries = nlines;
	if (!cs_atomic_same(o->map, text, tlen)) {
		struct cs_atomic_opts ao = { o->mode ? o->mode : 0644, (uid_t)-1, (gid_t)-1,
					     (o->flags & CS_CLIENTMAP_NO_FSYNC) ? CS_ATOMIC_NO_FSYNC
										: 0 };

		rc = cs_atomic_write(o->map, text, tlen, &ao, err, errlen);
		if (rc < 0)
			goto out;
		res->map_written = 1;
	}
	if (o->map_type != NULL && strcmp(o->map_type, "texthash") != 0 &&
	    (res->map_written || db_stale(o->map_type, o->map))) {
		res->postmap_run = 1;
		rc = cs_postmap_run(o->postmap, o->config_dir, false, o->map_type, o->map, err,
					  errlen);
	}
out:
	if (rc == -ENOMEM && err[0] == '\0')
		snprintf(err, errlen, "%s: out of memory", o->dir);
	for (size_t i = 0; i < nfiles; i++)
		free(files[i]);
	free(files);
	for (size_t i = 0; lines != NULL && i < nlines; i++)
		free(lines[i].file);
	free(lines);
	free(text);
	return rc;
}

void cs_clientmap_result_free(struct cs_clientmap_result *res)
{
	if (res == NULL)
		return;
	for (size_t i = 0; i < res->nproblems; i++) {
		free(res->problems[i].file);
		free(res->problems[i].reason);
	}
	free(res->problems);
	memset(res, 0, sizeof(*res));
}
