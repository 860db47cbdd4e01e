/*
 * test_reloader - a reloader plugin for tests/check_reload.c, built against
 * the installed ABI header only. args: "write FILE" appends the reload info
 * to FILE; "fail" fails; "sleep N" blocks N seconds; "refuse" makes open()
 * refuse. Built a second time with TEST_ABI=99 to stand for a plugin of
 * another certsync version, and a third time without the entry point.
 */
#include "certsync/reloader_plugin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef TEST_ABI
#define TEST_ABI CERTSYNC_RELOADER_ABI_VERSION
#endif

struct h {
	char args[512];
};

static void *t_open(const char *name, const char *args, char *err, size_t errlen)
{
	struct h *h;

	if (strcmp(args, "refuse") == 0) {
		snprintf(err, errlen, "args 'refuse' given to %s", name);
		return NULL;
	}
	h = calloc(1, sizeof(*h));
	if (h != NULL)
		snprintf(h->args, sizeof(h->args), "%s", args);
	return h;
}

static int t_reload(void *handle, const struct certsync_reload_info *info, char *msg,
		    size_t msglen)
{
	struct h *h = handle;

	if (strncmp(h->args, "write ", 6) == 0) {
		FILE *f = fopen(h->args + 6, "a");
		if (f == NULL) {
			snprintf(msg, msglen, "cannot open %s", h->args + 6);
			return -errno;
		}
		fprintf(f, "names=%s files=%s serial=%s\n", info->names, info->files, info->serial);
		fclose(f);
		snprintf(msg, msglen, "wrote %s", h->args + 6);
		return 0;
	}
	if (strncmp(h->args, "sleep ", 6) == 0) {
		sleep((unsigned)atoi(h->args + 6));
		return 0;
	}
	snprintf(msg, msglen, "the service said no");
	return -EIO;
}

static void t_close(void *handle)
{
	free(handle);
}

#ifndef TEST_NO_ENTRY
static const struct certsync_reloader_plugin desc = {
	.abi_version = TEST_ABI,
	.type = "test",
	.open = t_open,
	.reload = t_reload,
	.close = t_close,
};

const struct certsync_reloader_plugin *certsync_reloader_plugin(void)
{
	return &desc;
}
#else
/* Keeps the functions referenced when the entry point is left out. */
void *test_reloader_unused[] = { (void *)t_open, (void *)t_reload, (void *)t_close };
#endif
