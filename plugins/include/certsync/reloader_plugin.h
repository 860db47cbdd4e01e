/*
 * certsync/reloader_plugin.h - the ABI of third-party reloader plugins for
 * certsyncd. Installed with certsync; a plugin includes only this header.
 *
 * A plugin is a shared object in the agent's plugin_dir, named by
 *
 *   [reload "NAME"]
 *   type    = plugin
 *   plugin  = myreloader.so
 *   args    = free-form text handed to open()
 *   timeout = 30s
 *
 * It exports one function, certsync_reloader_plugin(), returning a static
 * descriptor whose abi_version is CERTSYNC_RELOADER_ABI_VERSION as the plugin
 * was compiled. The agent refuses a plugin with another ABI version (it
 * reports it; the other reloaders keep working).
 *
 * Threads: open() and close() run on the agent's main thread and must be
 * quick. reload() runs on a worker thread and may block (run a command, talk
 * to a socket) but should return within the configured timeout: when it does
 * not, the agent reports a timeout and ignores the late result. reload() of
 * one handle is never called twice at the same time.
 */
#ifndef CERTSYNC_RELOADER_PLUGIN_H
#define CERTSYNC_RELOADER_PLUGIN_H

#include <stddef.h>

#define CERTSYNC_RELOADER_ABI_VERSION 1

/* What was renewed: space-separated lists, never NULL (may be ""). */
struct certsync_reload_info {
	const char *names;  /* the [cert] names */
	const char *files;  /* the files deployed */
	const char *serial; /* the new serials, uppercase hex */
};

struct certsync_reloader_plugin {
	unsigned abi_version; /* CERTSYNC_RELOADER_ABI_VERSION */
	const char *type;     /* a short name for logs, e.g. "haproxy" */
	/*
	 * Returns a handle for [reload "name"] with its args (may be ""), or NULL
	 * with a message for the administrator in err.
	 */
	void *(*open)(const char *name, const char *args, char *err, size_t errlen);
	/*
	 * Makes the service load the new material. Returns 0 when it did, a
	 * negative errno value when it failed; either way msg says what happened.
	 */
	int (*reload)(void *handle, const struct certsync_reload_info *info, char *msg,
		      size_t msglen);
	/* Frees the handle. */
	void (*close)(void *handle);
};

/* The one symbol a plugin exports. */
const struct certsync_reloader_plugin *certsync_reloader_plugin(void);

#endif
