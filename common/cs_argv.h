/*
 * cs_argv - a command line split into words the way a shell would, without
 * running one: for the command of an exec reloader.
 */
#ifndef CS_ARGV_H
#define CS_ARGV_H

#include <stddef.h>

/*
 * Splits a command line into argv without a shell: white space separates,
 * single quotes keep everything literal, double quotes allow \" and \\.
 * Returns a NULL-terminated malloc'd vector (free with cs_argv_free), or NULL
 * with err set (unterminated quote, empty command).
 */
char **cs_argv_split(const char *cmd, char *err, size_t errlen);

/* Frees a vector from cs_argv_split; accepts NULL. */
void cs_argv_free(char **argv);

#endif
