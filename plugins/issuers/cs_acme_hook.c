/*
 * cs_acme_hook - helper programs on the loop.
 *
 * One run owns a uv_process_t and a uv_timer_t (the deadline). The exit
 * callback stops the timer, reports, and closes both handles; the memory is
 * freed when the second close callback has run, so the caller never has to
 * wait for the handles after its callback.
 */
#include "cs_acme_hook.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

struct run {
	uv_process_t proc; /* first: the handles' memory is the run's */
	uv_timer_t timer;
	cs_acme_hook_cb cb;
	void *arg;
	int open;
};

static void on_closed(uv_handle_t *h)
{
	struct run *r = h->data;

	if (--r->open == 0)
		free(r);
}

static void on_deadline(uv_timer_t *t)
{
	struct run *r = t->data;

	uv_process_kill(&r->proc, SIGKILL);
}

static void on_exit_cb(uv_process_t *p, int64_t exit_status, int term_signal)
{
	struct run *r = p->data;

	uv_timer_stop(&r->timer);
	r->cb(term_signal != 0 ? 128 + term_signal : exit_status, r->arg);
	uv_close((uv_handle_t *)&r->proc, on_closed);
	uv_close((uv_handle_t *)&r->timer, on_closed);
}

int cs_acme_hook_run(uv_loop_t *loop, char *const *argv, char *const *env, uint64_t timeout_ms,
		     cs_acme_hook_cb cb, void *arg)
{
	struct run *r = calloc(1, sizeof(*r));
	uv_process_options_t po;
	uv_stdio_container_t stdio[3];
	int rc;

	if (r == NULL)
		return UV_ENOMEM;
	r->cb = cb;
	r->arg = arg;
	r->proc.data = r;
	r->timer.data = r;
	uv_timer_init(loop, &r->timer);
	memset(&po, 0, sizeof(po));
	stdio[0].flags = UV_IGNORE;
	/* Its output goes to our log stream (stderr), never to our stdout. */
	stdio[1].flags = UV_INHERIT_FD;
	stdio[1].data.fd = 2;
	stdio[2].flags = UV_INHERIT_FD;
	stdio[2].data.fd = 2;
	po.file = argv[0];
	po.args = (char **)argv;
	po.env = (char **)env;
	po.stdio = stdio;
	po.stdio_count = 3;
	po.exit_cb = on_exit_cb;
	rc = uv_spawn(loop, &r->proc, &po);
	r->open = 2;
	if (rc < 0) {
		/* A failed spawn still initialised the handle: it must be closed too. */
		uv_close((uv_handle_t *)&r->proc, on_closed);
		uv_close((uv_handle_t *)&r->timer, on_closed);
		return rc;
	}
	uv_timer_start(&r->timer, on_deadline, timeout_ms, 0);
	return 0;
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
