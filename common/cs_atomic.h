/*
 * cs_atomic - crash-safe replacement of one file.
 *
 * A temp file is created in the target's directory with O_EXCL|O_NOFOLLOW and
 * the final mode, owner and group are applied with fchown/fchmod before the
 * first byte is written; then write, fsync, rename over the target, fsync of
 * the directory. Readers see the old file or the new one, never a mix. On any
 * error the old file is untouched and the temp file is removed.
 */
#ifndef CS_ATOMIC_H
#define CS_ATOMIC_H

#include <stddef.h>
#include <sys/types.h>

/* Replace the file a final symlink names: only a link owned by root or the
   effective uid is followed (-EPERM otherwise). */
#define CS_ATOMIC_FOLLOW_SYMLINK 0x1
#define CS_ATOMIC_NO_FSYNC 0x2       /* skip fsyncs (tests, benchmarks only) */

struct cs_atomic_opts {
	mode_t mode; /* final mode, e.g. 0600 for anything holding a key */
	uid_t uid;   /* (uid_t)-1: leave as created (the caller's) */
	gid_t gid;   /* (gid_t)-1: leave as created */
	unsigned flags;
};

/*
 * Replaces path with len bytes of data. Returns 0 or a negative errno, with a
 * message naming the path in err.
 */
int cs_atomic_write(const char *path, const void *data, size_t len,
		    const struct cs_atomic_opts *opts, char *err, size_t errlen);

/*
 * Returns 1 when path exists and holds exactly len bytes of data (so that a
 * rewrite can be skipped and its inode kept), else 0.
 */
int cs_atomic_same(const char *path, const void *data, size_t len);

/*
 * Removes the temp files that writers of path killed before their rename left
 * behind (".NAME.XXXXXXXXXXXX" in path's directory, regular files only).
 * Call it only when no other writer of path runs. Returns the number removed
 * or a negative errno, with a message in err.
 */
int cs_atomic_sweep(const char *path, char *err, size_t errlen);

/*
 * As cs_atomic_sweep, but only temp files owned by the effective uid or by
 * owner ((uid_t)-1: none other), the owner a writer gave them with fchown.
 */
int cs_atomic_sweep_owned(const char *path, uid_t owner, char *err, size_t errlen);

/*
 * Removes the temp files of killed writers of any file in dir whose name
 * ends in suffix (NULL: any name), owned by the effective uid: for
 * directories only this process writes to, where the final names are not
 * known in advance (state_dir/generations/NAME/N.pem). Returns the number
 * removed or a negative errno, with a message in err.
 */
int cs_atomic_sweep_dir(const char *dir, const char *suffix, char *err, size_t errlen);

#endif
