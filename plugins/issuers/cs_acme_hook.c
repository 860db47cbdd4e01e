/*
 * cs_acme_hook - helper programs on the loop, started with cs_run_start
 * (which owns the process, the deadline and the reaping); this file turns
 * its outcome into an exit status and builds the environment.
 */
#include "cs_acme_hook.h"
#include "cs_run.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

struct run {
	cs_acme_hook_cb cb;
	void *arg;
};

static void on_ended(void *arg, const struct cs_run_result *res)
{
	struct run r = *(struct run *)arg;

	free(arg);
	r.cb(r.arg, res->term_signal != 0 ? 128 + res->term_signal : res->status);
}

int cs_acme_hook_run(uv_loop_t *loop, char *const *argv, char *const *env, uint64_t timeout_ms,
		     cs_acme_hook_cb cb, void *arg)
{
	struct run *r = malloc(sizeof(*r));
	/* Its output goes to our log stream (stderr), never to our stdout. */
	struct cs_run_opts o = { .argv = argv, .env = env, .timeout_ms = (int)timeout_ms };
	int rc;

	if (r == NULL)
		return UV_ENOMEM;
	r->cb = cb;
	r->arg = arg;
	rc = cs_run_start(loop, &o, on_ended, r, NULL);
	if (rc < 0)
		free(r);
	return rc;
}

char **cs_acme_hook_env(const char *const (*vars)[2], size_t n)
{
	size_t count = 0, k = 0;
	char **env;

	for (char **e = environ; *e != NULL; e++)
		count++;
	env = calloc(count + n + 1, sizeof(char *));
	if (env == NULL)
		return NULL;
	for (char **e = environ; *e != NULL; e++)
		if (strncmp(*e, "CERTSYNC_", 9) != 0)
			env[k++] = *e;
	for (size_t i = 0; i < n; i++, k++) {
		if (asprintf(&env[k], "CERTSYNC_%s=%s", vars[i][0], vars[i][1]) < 0) {
			env[k] = NULL;
			cs_acme_hook_env_free(env);
			return NULL;
		}
	}
	env[k] = NULL;
	return env;
}

void cs_acme_hook_env_free(char **env)
{
	if (env == NULL)
		return;
	/* Only the CERTSYNC_* strings are ours; the rest belong to environ. */
	for (char **e = env; *e != NULL; e++)
		if (strncmp(*e, "CERTSYNC_", 9) == 0)
			free(*e);
	free(env);
}
