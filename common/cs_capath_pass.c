/*
 * cs_capath_pass - what only a full pass over a CApath directory does
 * besides reading and deciding: removing the temporary links a killed
 * writer left, and taking in the files that change while it runs.
 *
 * A full pass can be told of files that change while it runs (the poll
 * callback): it reads such a file at once and, when the file has no link
 * yet, makes one at the lowest free index of its bucket, marked early. The
 * decision for the bucket at the pass's end treats an early link as absent
 * (what openssl rehash would have found when the pass began), so the end
 * is the same as without it.
 */
#include "cs_capath_int.h"

/*
 * Removes a temporary link (".HHHHHHHH.N.PID.SEQ.tmp", a symlink) left by a
 * writer that was killed between symlink and rename: its process is gone.
 * Returns 1 when name had that form (removed or not), else 0.
 */
int cs_capath__stale_tmp_link(cs_capath *cp, const char *name)
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
int cs_capath__link_as_known(cs_capath *cp, const struct bucket *b, int id)
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

void cs_capath__count_linked(cs_capath *cp, struct cs_capath_stats *st)
{
	st->certs = st->crls = 0;
	for (struct cfile *f = cs_capath__file_next(cp, NULL); f != NULL;
	     f = cs_capath__file_next(cp, f))
		if (f->linked) {
			if (f->kind == KIND_CERT)
				st->certs++;
			else if (f->kind == KIND_CRL)
				st->crls++;
		}
}

/* Ends a call: CAfile, counts, message for errors. */
int cs_capath__finish(cs_capath *cp, int rc, int force_cafile, char *err, size_t errlen)
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
		if (old_skip == NULL || strcmp(old_skip, f->skip) != 0)
			cs_capath__report_skip(cp, f);
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
void cs_capath__poll_names(cs_capath *cp, int *rc)
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
int cs_capath__pass_sync(cs_capath *cp, struct bucket *b)
{
	int r;

	b->touched = 0;
	r = cs_capath__bucket_sync(cp, b);
	if (r < 0)
		return r == -ENOMEM ? r : -EIO;
	return 0;
}
