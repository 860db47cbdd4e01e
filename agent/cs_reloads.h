/*
 * cs_reloads - the reloaders of a configuration ([reload] sections), driven
 * with a debounce: renewals ask for the reloads of their services, and after
 * a quiet second (at most ten seconds after the first request) each service
 * with requests is reloaded once for all of them. A service whose reload is
 * still running is reloaded again when that one ends, if more was asked.
 *
 * Each request names an owner (the pipeline's cert); when a reload ends,
 * the result is reported once per owner that was in it, then once with a
 * NULL owner ("this reload is over").
 */
#ifndef CS_RELOADS_H
#define CS_RELOADS_H

#include "cs_config.h"
#include "cs_reloader.h"

#include <stdbool.h>
#include <uv.h>

struct cs_reloads;

/* Result of reloader for owner (NULL: the reload is over, after all owners). */
typedef void (*cs_reloads_cb)(void *arg, void *owner, const char *reloader,
			      const struct cs_reload_result *res);

/*
 * Creates the reloaders of cfg on loop (a reloader that cannot be made
 * becomes one that fails with the reason); factory, when not NULL, makes
 * them instead (a test's fake services). Returns NULL on ENOMEM.
 */
struct cs_reloads *cs_reloads_new(uv_loop_t *loop, const struct cs_config *cfg,
				  cs_reloader *(*factory)(void *farg, uv_loop_t *loop,
							  const struct cs_cfg_reload *cr),
				  void *farg, cs_reloads_cb cb, void *arg);

/*
 * Asks for the reloaders named in list on behalf of owner, for the cert
 * name with its files (space-separated) and serial (all copied). A second
 * request of the same owner before the reload replaces the first. With
 * debounce the reload starts after the quiet time; without, it waits for
 * cs_reloads_flush. Returns the number of reloaders asked for.
 */
size_t cs_reloads_request(struct cs_reloads *r, void *owner, const struct cs_cfg_list *list,
			  const char *name, const char *files, const char *serial, bool debounce);

/* Starts every reload that has requests and is not running, now. */
void cs_reloads_flush(struct cs_reloads *r);

/* Returns true when requests wait for a reload. */
bool cs_reloads_pending(const struct cs_reloads *r);

/* Returns the number of reloads running. */
unsigned cs_reloads_running(const struct cs_reloads *r);

/*
 * Frees r once its timer has closed, then calls close_cb (may be NULL).
 * Nothing may be running; pending requests are dropped. Accepts NULL.
 */
void cs_reloads_close(struct cs_reloads *r, void (*close_cb)(void *arg), void *arg);

#endif
