/*
 * cs_inisect - the pairs of one section of one INI file, read with inih as
 * certsync's configuration files are read: the file opened without blocking
 * (a FIFO or a device put in its place is refused) and only when it is a
 * regular file of at most CS_INISECT_MAX_BYTES; each line trimmed first (an
 * indented line is not a continuation) and a comment after white space
 * ('#' or ';') dropped. Nothing the file includes is read.
 *
 * certsyncd reads the [agent] keys it needs before its configuration with it
 * (cs_early), certsyncctl -c the status socket's path.
 */
#ifndef CS_INISECT_H
#define CS_INISECT_H

#include <stddef.h>

#define CS_INISECT_MAX_BYTES (1024 * 1024) /* as cs_config: larger is not a configuration */

/* Called for each key = value of the section, in file order. */
typedef void (*cs_inisect_fn)(void *arg, const char *key, const char *value);

/*
 * Calls fn for each pair of [section] in the file at path. Returns 0; or a
 * negative errno when the file cannot be read, err then "PATH: why"; or the
 * number of the first line that is neither a [section] header nor
 * key = value, err then "PATH:LINE: ..." (the pairs of the other lines were
 * passed to fn). err may be NULL.
 */
int cs_inisect_read(const char *path, const char *section, cs_inisect_fn fn, void *arg,
		    char *err, size_t errlen);

#endif
