/*
 * cs_capath_bucket - the one routine that decides and writes the links of a
 * bucket.
 *
 * The decision for a bucket replays what `openssl rehash` does for it: the
 * bucket's links and files are taken in strcmp order of their names; a link
 * makes an entry for its target remembering the lowest index seen; a file
 * that is not a duplicate makes its entry wanted. Wanted entries whose index
 * is below the number wanted keep it; the others take the lowest free
 * indices in entry order. Only the fixes listed in cs_capath.h differ.
 *
 * An early link (made by a full pass for a polled file, see
 * cs_capath_pass.c) is treated as absent for the decision, and empty
 * indices are filled before any link is re-pointed, so that a file keeps a
 * link while its index moves.
 */
#include "cs_capath_int.h"

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
int cs_capath__bucket_refresh(cs_capath *cp, struct bucket *b)
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

/* Fills items with b's links (early ones left out) and members, sorted by name; returns how many. */
static int collect_items(const struct bucket *b, struct item *items)
{
	int nitems = 0;

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
	return nitems;
}

/*
 * Takes member f, the next item in name order: a duplicate of a wanted
 * entry is skipped, any other makes its entry wanted (up to MAX_COLLISIONS,
 * counted in *needed). A new or changed reason to skip f is reported.
 */
static void take_file(cs_capath *cp, struct bucket *b, struct cfile *f, struct entry *ent,
		      int *nent, int *needed)
{
	struct cfile *dup = NULL;
	struct entry *e;
	char *old_skip = f->skip ? strdup(f->skip) : NULL;

	for (int j = 0; j < *nent && dup == NULL; j++)
		if (ent[j].f != NULL && memcmp(ent[j].f->sha1, f->sha1, SHA1_LEN) == 0)
			dup = ent[j].f;
	free(f->skip);
	f->skip = NULL;
	f->skip_err = 0;
	if (dup != NULL) {
		cs_capath__set_skip(f, 0, "duplicate of ", dup->name);
	} else {
		e = entry_find(ent, *nent, f->name);
		if (e == NULL && *needed >= MAX_COLLISIONS) {
			char why[96];

			snprintf(why, sizeof(why), "more than %d %s with hash %08x", MAX_COLLISIONS,
				 b->crl ? "CRLs" : "certificates", (unsigned)b->hash);
			cs_capath__set_skip(f, 1, "", why);
		} else {
			if (e == NULL) {
				e = &ent[(*nent)++];
				e->target = f->name;
				e->old_id = INT_MAX;
			}
			e->f = f;
			(*needed)++;
		}
	}
	if (f->skip != NULL && (old_skip == NULL || strcmp(old_skip, f->skip) != 0)) {
		cs_capath__report_skip(cp, f);
	}
	free(old_skip);
}

/*
 * Replays openssl rehash over the sorted items: a link makes an entry for
 * its target with the lowest index seen, a member is taken by take_file.
 * Fills ent (*nent entries); returns how many entries are wanted.
 */
static int replay(cs_capath *cp, struct bucket *b, const struct item *items, int nitems,
		  struct entry *ent, int *nent)
{
	int needed = 0;

	for (int i = 0; i < nitems; i++) {
		const struct item *it = &items[i];
		struct entry *e;

		if (it->id < 0) {
			take_file(cp, b, it->f, ent, nent, &needed);
			continue;
		}
		const char *t = b->links[it->id].target;

		e = entry_find(ent, *nent, t);
		if (e == NULL) {
			e = &ent[(*nent)++];
			e->target = t;
			e->old_id = INT_MAX;
		}
		if (it->id < e->old_id)
			e->old_id = it->id;
	}
	return needed;
}

/*
 * Gives each wanted entry an index: its own when below needed, else the
 * lowest free one, blocked indices skipped. Returns the file wanted at each
 * index below *top (malloc'd), or NULL when out of memory.
 */
static struct cfile **assign_indices(const struct bucket *b, const struct entry *ent, int nent,
				     int needed, int *top)
{
	struct cfile **want;
	unsigned char *used;

	*top = needed;
	for (int id = 0; id < b->nlinks && id < *top; id++)
		if (b->links[id].blocked)
			(*top)++;
	want = calloc((size_t)*top + 1, sizeof(*want));
	used = calloc((size_t)*top + 1, 1);
	if (want == NULL || used == NULL) {
		free(want);
		free(used);
		return NULL;
	}
	for (int id = 0; id < *top && id < b->nlinks; id++)
		used[id] = (unsigned char)b->links[id].blocked;
	for (int i = 0; i < nent; i++)
		if (ent[i].f != NULL && ent[i].old_id < needed && !used[ent[i].old_id]) {
			want[ent[i].old_id] = ent[i].f;
			used[ent[i].old_id] = 1;
		}
	for (int i = 0, next = 0; i < nent; i++) {
		if (ent[i].f == NULL || (ent[i].old_id < needed && want[ent[i].old_id] == ent[i].f))
			continue;
		while (next < *top && used[next])
			next++;
		if (next >= *top)
			break; /* cannot happen: top counts every wanted entry */
		want[next] = ent[i].f;
		used[next] = 1;
	}
	free(used);
	return want;
}

/*
 * Makes the links that want asks for and removes the others; returns 0 or
 * the last negative errno (each failure counted and reported).
 */
static int write_links(cs_capath *cp, struct bucket *b, struct cfile **want, int top)
{
	int rc = 0;

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
	return rc;
}

/*
 * Decides and writes the links of b from its members and its current links.
 * Returns 0, or a negative errno when some link could not be made (counted
 * and reported).
 */
int cs_capath__bucket_sync(cs_capath *cp, struct bucket *b)
{
	struct item *items = calloc((size_t)(b->nlinks + b->nmem + 1), sizeof(*items));
	struct entry *ent = calloc((size_t)(b->nlinks + b->nmem + 1), sizeof(*ent));
	struct cfile **want = NULL;
	int nent = 0, needed, top, rc = -ENOMEM;

	if (items == NULL || ent == NULL)
		goto out;
	needed = replay(cp, b, items, collect_items(b, items), ent, &nent);
	want = assign_indices(b, ent, nent, needed, &top);
	if (want != NULL)
		rc = write_links(cp, b, want, top);
out:
	free(items);
	free(ent);
	free(want);
	return rc;
}
