/*
 * cs_postmap - postmap's file suffixes and its invocation (see cs_postmap.h).
 */
#include "cs_postmap.h"

#include "cs_run.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *cs_postmap_db_suffix(const char *type)
{
	if (type == NULL)
		return NULL;
	if (strcmp(type, "hash") == 0 || strcmp(type, "btree") == 0)
		return ".db";
	if (strcmp(type, "lmdb") == 0)
		return ".lmdb";
	if (strcmp(type, "cdb") == 0)
		return ".cdb";
	if (strcmp(type, "dbm") == 0 || strcmp(type, "sdbm") == 0)
		return ".pag";
	return NULL;
}

int cs_postmap_run(const char *postmap, const char *config_dir, bool embed_files,
		   const char *type, const char *map, char *err, size_t errlen)
{
	char *arg = NULL, out[2048], e[512];
	char *argv[7];
	int rc, argc = 0;

	if (postmap == NULL)
		postmap = "postmap";
	if (asprintf(&arg, "%s:%s", type, map) < 0) {
		snprintf(err, errlen, "%s: out of memory", map);
		return -ENOMEM;
	}
	argv[argc++] = (char *)postmap;
	if (config_dir != NULL) {
		argv[argc++] = (char *)"-c";
		argv[argc++] = (char *)config_dir;
	}
	if (embed_files)
		argv[argc++] = (char *)"-F";
	argv[argc++] = arg;
	argv[argc] = NULL;
	rc = cs_run(argv, 0, out, sizeof(out), e, sizeof(e));
	cs_run_one_line(out);
	if (rc < 0)
		snprintf(err, errlen, "postmap %s: %s%s%s", arg, e, out[0] ? ": " : "", out);
	else if (rc > 0)
		snprintf(err, errlen, "postmap %s: exit %d: %s", arg, rc,
			 out[0] ? out : "(no output)");
	free(arg);
	return rc == 0 ? 0 : rc < 0 ? rc : -EIO;
}
