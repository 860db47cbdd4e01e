/*
 * cs_lock - one agent per state_dir: an exclusive flock(2) on
 * state_dir/certsyncd.lock, held for the life of the process, the file
 * holding the holder's PID so that a second agent can name it.
 */
#ifndef CS_LOCK_H
#define CS_LOCK_H

#include <stddef.h>

#define CS_LOCK_FILE "certsyncd.lock"

/*
 * Creates state_dir if needed and takes the lock. Returns the descriptor that
 * holds it (close it, or exit, to release), or a negative errno with a message
 * in err: -EWOULDBLOCK when another process holds it (its PID named).
 */
int cs_lock_state_dir(const char *state_dir, char *err, size_t errlen);

/* Writes the calling process's PID into state_dir's lock file (again after a fork). */
int cs_lock_write_pid(const char *state_dir);

#endif
