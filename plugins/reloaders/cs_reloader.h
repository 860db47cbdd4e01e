/*
 * cs_reloader - the interface between the pipeline and the things that make
 * a service pick up new material (postfix, dovecot, exec, plugins). A
 * reloader is a base struct plus a table of operations; implementations
 * embed struct cs_reloader first.
 *
 * reload() is asynchronous: it returns at once and calls back on the loop
 * thread when the service has been told (and, where possible, has accepted).
 */
#ifndef CS_RELOADER_H
#define CS_RELOADER_H

#include <stdint.h>
#include <uv.h>

/* What was renewed, handed to reloaders (exec: as environment variables). */
struct cs_reload_ctx {
	const char *names;  /* CERTSYNC_NAME: cert names, space-separated */
	const char *files;  /* CERTSYNC_FILES: deployed files, space-separated */
	const char *serial; /* CERTSYNC_SERIAL: serials, space-separated */
};

struct cs_reload_result {
	int status;         /* 0 ok; negative code on failure */
	int not_running;    /* 1 when the service was not running (reported, not fatal) */
	char message[1024]; /* what happened, for people (command output on failure) */
};

typedef struct cs_reloader cs_reloader;
typedef void (*cs_reload_cb)(void *arg, const struct cs_reload_result *res);

struct cs_reloader_ops {
	const char *type;
	/* Starts a reload; returns 0 when cb will run exactly once, else a negative code. */
	int (*reload)(cs_reloader *r, const struct cs_reload_ctx *ctx, cs_reload_cb cb, void *arg);
	/* Frees the reloader; no reload may be in flight. */
	void (*close)(cs_reloader *r);
};

struct cs_reloader {
	const struct cs_reloader_ops *ops;
	uv_loop_t *loop;
	char *name; /* the [reload "NAME"] */
};

/* Built-in reloaders; each returns NULL with err set on bad arguments. */
cs_reloader *cs_reloader_postfix_new(uv_loop_t *loop, const char *name, const char *config_dir,
				     int64_t timeout_s, char *err, size_t errlen);
cs_reloader *cs_reloader_dovecot_new(uv_loop_t *loop, const char *name, const char *config,
				     const char *pid_file, int64_t timeout_s, char *err,
				     size_t errlen);
cs_reloader *cs_reloader_exec_new(uv_loop_t *loop, const char *name, const char *command,
				  int64_t timeout_s, char *err, size_t errlen);

/*
 * A reloader from the shared object plugin_dir/plugin (see
 * certsync/reloader_plugin.h), opened with args. NULL with err set when it
 * cannot be loaded, has another ABI version or refuses the arguments.
 */
cs_reloader *cs_reloader_plugin_new(uv_loop_t *loop, const char *name, const char *plugin_dir,
				    const char *plugin, const char *args, int64_t timeout_s,
				    char *err, size_t errlen);

/*
 * A reloader that fails every call with msg: stands in for one that could
 * not be created, so that the agent keeps running and reports the error.
 */
cs_reloader *cs_reloader_broken_new(uv_loop_t *loop, const char *name, const char *msg);

/* Frees r; accepts NULL. */
void cs_reloader_close(cs_reloader *r);

#endif
