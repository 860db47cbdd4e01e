/*
 * cs_livedir - a set of files that changes as one: DIR/NAME is a symbolic
 * link to .gen/NAME/ID, a directory holding every file of one generation,
 * and a new generation is put in place with one rename(2) of the link.
 *
 *   DIR/NAME -> .gen/NAME/ID           (relative, so DIR may be moved)
 *   DIR/.gen/NAME/ID/privkey.pem ...   (the files, with their own modes)
 *
 * A new directory is built under a temporary name (".ID.<12 hex>", mode 0700
 * while it fills; each file created O_EXCL|O_NOFOLLOW, given its owner and
 * final mode before the first byte, written and fsynced), fsynced and renamed
 * to ID; then a link made under a temporary name (".NAME.<12 hex>") is
 * renamed over DIR/NAME and DIR is fsynced. A crash at any moment leaves
 * DIR/NAME naming a complete directory (the old one or the new one);
 * cs_livedir_sweep removes what an interrupted swap left.
 *
 * The same ID again (a repair, a rollback to material kept there) reuses
 * the directory when it holds exactly the files, else replaces it with a
 * complete copy through renameat2(RENAME_EXCHANGE), so that the link never
 * names a directory being filled.
 *
 * Knows nothing of certificates: the caller names the files and their bytes.
 */
#ifndef CS_LIVEDIR_H
#define CS_LIVEDIR_H

#include <stddef.h>
#include <sys/types.h>

/* The directory below DIR that holds every NAME's generation directories. */
#define CS_LIVEDIR_GEN ".gen"

struct cs_livedir_file {
	const char *name; /* a plain file name */
	const void *data;
	size_t len;
	mode_t mode;
};

/* The moments of a swap, for tests that stop it there (see hook). */
enum cs_livedir_step {
	CS_LIVEDIR_FILE_OPENED, /* a file created with its final mode, nothing written */
	CS_LIVEDIR_FILE_WRITTEN,
	CS_LIVEDIR_DIR_BUILT,   /* the temporary directory complete and synced */
	CS_LIVEDIR_DIR_NAMED,   /* renamed to ID */
	CS_LIVEDIR_LINK_MADE,   /* the temporary link made, not yet renamed */
	CS_LIVEDIR_LINK_SWAPPED,
};

struct cs_livedir_opts {
	uid_t uid;      /* owner of the files and directories; (uid_t)-1: the caller */
	gid_t gid;      /* (gid_t)-1: the caller's */
	unsigned flags; /* CS_ATOMIC_NO_FSYNC (tests and benchmarks only) */
	/* Tests only: called at each step with the directory and the name concerned. */
	void (*hook)(enum cs_livedir_step step, int dirfd, const char *name, void *arg);
	void *hook_arg;
};

/*
 * Makes DIR/NAME lead to .gen/NAME/ID holding exactly the n files f (DIR,
 * DIR/.gen and DIR/.gen/NAME are created 0755 when missing). DIR/NAME that
 * exists as anything but a link of the form ".gen/NAME/X" is never touched:
 * -EEXIST. Returns 0 or a negative errno with a message naming the path in err.
 */
int cs_livedir_swap(const char *dir, const char *name, const char *id,
		    const struct cs_livedir_file *f, size_t n, const struct cs_livedir_opts *o,
		    char *err, size_t errlen);

/*
 * Writes into id the generation DIR/NAME leads to. Returns 0, -ENOENT when
 * there is no DIR/NAME, -EEXIST when it is not a link this module makes.
 */
int cs_livedir_current(const char *dir, const char *name, char *id, size_t len);

/*
 * Removes the generation directories of NAME other than the n_keep in keep
 * and the one DIR/NAME leads to; only names of the form the caller gives
 * (letters and digits) are considered. Returns the number removed or a
 * negative errno with err set.
 */
int cs_livedir_prune(const char *dir, const char *name, const char *const *keep, size_t n_keep,
		     char *err, size_t errlen);

/*
 * Removes what interrupted swaps of NAME left: temporary links in DIR and
 * temporary or replaced directories in DIR/.gen/NAME. Call it only while no
 * swap of NAME runs. Returns the number removed or a negative errno.
 */
int cs_livedir_sweep(const char *dir, const char *name, char *err, size_t errlen);

#endif
