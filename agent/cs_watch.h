/*
 * cs_watch - directory watches through Linux inotify, driven by the event
 * loop. libuv's own uv_fs_event_t drops IN_Q_OVERFLOW and never reports
 * IN_CLOSE_WRITE, so this module calls inotify_init1() itself and polls its
 * descriptor with a uv_poll_t: the loop sleeps until the kernel has events.
 *
 * The caller declares the whole set of directories it wants watched with
 * cs_watch_set(); the module adds what is new, removes what is gone, and
 * re-adds a directory whose path now leads somewhere else (a swapped
 * symbolic link), so that callers can simply re-declare the set after any
 * change; or adds and removes one directory at a time with cs_watch_add()
 * and cs_watch_remove(). Each event is reported as (directory as declared,
 * file name, mask), once for every declared path that leads to the watched
 * directory; a queue overflow is reported once, as "rescan everything".
 */
#ifndef CS_WATCH_H
#define CS_WATCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/inotify.h>
#include <uv.h>

/* The events cs_watch asks the kernel for. */
#define CS_WATCH_MASK                                                                    \
	(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE |          \
	 IN_DELETE_SELF | IN_MOVE_SELF)

struct cs_watch;

/* Called for each event in a watched directory; name is "" for the directory itself. */
typedef void (*cs_watch_cb)(void *arg, const char *dir, const char *name, uint32_t mask);

/* Called when the kernel dropped events: everything must be looked at again. */
typedef void (*cs_watch_overflow_cb)(void *arg);

/*
 * Creates a watcher on loop. Returns it (close with cs_watch_close) or NULL
 * with err set (inotify unavailable, out of descriptors).
 */
struct cs_watch *cs_watch_new(uv_loop_t *loop, cs_watch_cb cb, cs_watch_overflow_cb overflow_cb,
			      void *arg, char *err, size_t errlen);

/*
 * Makes dirs (n absolute paths) the set of watched directories. Directories
 * that cannot be watched (absent, no permission) are logged and skipped; a
 * later call retries them. Returns the number of directories watched.
 */
size_t cs_watch_set(struct cs_watch *w, const char *const *dirs, size_t n);

/*
 * Adds dir (an absolute path) to the set, or, when it is there already,
 * watches it again if it is not watched or its path now leads to another
 * directory. Returns 0 when it is watched, -ENOENT when it cannot be (absent,
 * no permission: logged; a later call retries) or -ENOMEM.
 */
int cs_watch_add(struct cs_watch *w, const char *dir);

/* Removes dir from the set (nothing when it is not there). */
void cs_watch_remove(struct cs_watch *w, const char *dir);

/* Returns the number of directories currently watched. */
size_t cs_watch_count(const struct cs_watch *w);

/* Stops watching and frees w once its handle has closed; accepts NULL. */
void cs_watch_close(struct cs_watch *w, void (*close_cb)(void *arg), void *arg);

#endif
