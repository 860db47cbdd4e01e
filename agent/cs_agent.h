/*
 * cs_agent - the running agent: owns the event loop's handles, the current
 * configuration, signal handling (SIGTERM/SIGINT stop, SIGHUP reloads the
 * configuration) and the service manager notifications.
 */
#ifndef CS_AGENT_H
#define CS_AGENT_H

#include "cs_config.h"

#include <stdbool.h>
#include <uv.h>

struct cs_agent;

/*
 * Creates an agent on loop for the configuration at config_path, already
 * loaded into cfg (the agent takes ownership of cfg; NULL for
 * cs_agent_start_reading). Returns NULL on ENOMEM.
 * Free with cs_agent_free after the loop has stopped.
 */
struct cs_agent *cs_agent_new(uv_loop_t *loop, const char *config_path, struct cs_config *cfg);

/*
 * Starts the agent's work and its signal handlers; with once, runs one full
 * pass and stops the loop when it is done. Returns 0 or a negative errno.
 */
int cs_agent_start(struct cs_agent *a, bool once);

struct cs_early;

/*
 * Starts an agent created without a configuration (cfg NULL): the status
 * socket from e answers "starting" at once while the configuration is read
 * (and the outputs swept) on the work queue; then the agent runs as
 * cs_agent_start(a, false) would. Configuration errors are logged and the
 * agent stops with exit status 2. The caller holds the lock of
 * e->state_dir. keep_log_level: --log-level was given. Returns 0 or a
 * negative errno.
 */
int cs_agent_start_reading(struct cs_agent *a, const struct cs_early *e, bool keep_log_level);

/* Re-reads the configuration; on errors logs them all and keeps the old one. */
int cs_agent_reload(struct cs_agent *a);

/* Stops gracefully: no new work, in-flight work finishes, handles close. */
void cs_agent_stop(struct cs_agent *a);

/* Returns the process exit status the agent asks for (0, 1 or 2). */
int cs_agent_exit_status(const struct cs_agent *a);

/* Frees the agent; accepts NULL. The loop must have no pending agent handles. */
void cs_agent_free(struct cs_agent *a);

/* Sends a service manager notification ("READY=1") when NOTIFY_SOCKET is set. */
void cs_agent_notify(const char *state);

#endif
