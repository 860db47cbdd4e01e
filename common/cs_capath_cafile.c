/*
 * cs_capath_cafile - the CAfile bundle next to a CApath directory: the
 * linked certificates in the order of their names, PEM, written with the
 * atomic writer only when the set changed.
 */
#include "cs_capath_int.h"

/* ---- CAfile ---- */

int cs_capath__name_cmp(const void *a, const void *b)
{
	return strcmp((*(struct cfile *const *)a)->name, (*(struct cfile *const *)b)->name);
}

/* Collects the linked files of kind k sorted by name; returns a malloc'd array. */
static struct cfile **linked_sorted(const cs_capath *cp, enum kind k, size_t *n)
{
	struct cfile **v = malloc((cp->files.n + 1) * sizeof(*v));

	*n = 0;
	if (v == NULL)
		return NULL;
	for (struct cfile *f = cs_capath__file_next(cp, NULL); f != NULL;
	     f = cs_capath__file_next(cp, f))
		if (f->linked && f->kind == k && (k != KIND_CERT || f->der != NULL))
			v[(*n)++] = f;
	qsort(v, *n, sizeof(*v), cs_capath__name_cmp);
	return v;
}

/* Rewrites the CAfile when its content differs; returns 0 or a negative errno. */
int cs_capath__cafile_sync(cs_capath *cp, char *err, size_t errlen)
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
	for (struct cfile *f = cs_capath__file_next(cp, NULL); f != NULL;
	     f = cs_capath__file_next(cp, f))
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
