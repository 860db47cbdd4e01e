/*
 * cs_acme_hook - runs the dns-01 hook (or any short helper program) on the
 * libuv loop: no shell, stdin from nowhere, its output to our stderr (the
 * agent's log), killed when it overruns its time, its exit status handed to
 * a callback. Also builds the hook's environment: ours plus CERTSYNC_*
 * variables, in the manner of uacme's hooks.
 */
#ifndef CS_ACME_HOOK_H
#define CS_ACME_HOOK_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Called once: the exit status, or 128 + N when signal N ended the program. */
typedef void (*cs_acme_hook_cb)(void *arg, int64_t status);

/*
 * Runs argv[0] with argv and env (NULL: ours), SIGKILLed after timeout_ms.
 * Returns 0 when cb will run once, or a negative libuv code when the program
 * could not be started (cb never runs). The memory is the module's: it goes
 * when libuv has closed the process and timer handles.
 */
int cs_acme_hook_run(uv_loop_t *loop, char *const *argv, char *const *env, uint64_t timeout_ms,
		     cs_acme_hook_cb cb, void *arg);

/*
 * Returns our environment without any CERTSYNC_* variable, plus
 * CERTSYNC_vars[i][0]=vars[i][1] for each of the n pairs (free with
 * cs_acme_hook_env_free), or NULL on ENOMEM.
 */
char **cs_acme_hook_env(const char *const (*vars)[2], size_t n);

/* Frees an environment from cs_acme_hook_env; accepts NULL. */
void cs_acme_hook_env_free(char **env);

#endif
