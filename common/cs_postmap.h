/*
 * cs_postmap - Postfix's postmap, for the maps the agent writes (client
 * certificate fingerprints, SNI maps): which indexed file it makes for a
 * table type, and running it (through cs_run: a deadline, the output kept
 * for the message). Blocks: work queue only.
 */
#ifndef CS_POSTMAP_H
#define CS_POSTMAP_H

#include <stdbool.h>
#include <stddef.h>

/*
 * The file postmap makes next to MAP for type: ".db" (hash, btree), ".lmdb",
 * ".cdb", ".pag" (dbm, sdbm); NULL for a type with no such file (texthash)
 * or one it does not know.
 */
const char *cs_postmap_db_suffix(const char *type);

/*
 * Runs `postmap [-c config_dir] [-F] type:map` (postmap NULL: "postmap" in
 * PATH; -F when embed_files: the values are files whose contents go into
 * the map) and waits for it. Returns 0, or a negative code with "postmap
 * TYPE:MAP: ..." and its output (or why it could not start) in err.
 */
int cs_postmap_run(const char *postmap, const char *config_dir, bool embed_files,
		   const char *type, const char *map, char *err, size_t errlen);

#endif
