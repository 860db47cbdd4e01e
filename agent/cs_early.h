/*
 * cs_early - the few [agent] keys the agent needs before its configuration
 * is read: where the status socket is (its path, mode and groups) and which
 * state_dir to lock. With thousands of drop-ins the whole read takes seconds;
 * these keys let the socket answer "starting" meanwhile.
 *
 * Only the main file may hold [agent] (cs_config refuses it in a drop-in),
 * so that one file is read, and nothing it includes. The whole read that
 * follows stays the authority: what it says wins, and the socket moves if
 * it differs.
 */
#ifndef CS_EARLY_H
#define CS_EARLY_H

#include <sys/types.h>

struct cs_early {
	char *state_dir;  /* the configuration's default when not set */
	char *socket;     /* likewise */
	mode_t socket_mode;
	gid_t socket_group; /* (gid_t)-1 when not set */
	gid_t admin_group;  /* (gid_t)-1 when not set */
};

/*
 * Reads the [agent] keys of the main configuration file at path into e
 * (free with cs_early_clear). Returns 0, or a negative errno when the file
 * cannot be read or a value is not understood: the caller then reads the
 * whole configuration first, which reports the error properly.
 */
int cs_early_read(const char *path, struct cs_early *e);

/* Frees what cs_early_read stored in e; accepts a zeroed e. */
void cs_early_clear(struct cs_early *e);

#endif
