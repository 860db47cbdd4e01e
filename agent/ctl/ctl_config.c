/*
 * ctl_config - certsyncctl -c CONFIG: the status socket's path from the
 * [agent] socket key of the agent's main configuration file, read as the
 * agent reads that key before its whole configuration (cs_inisect, as
 * cs_early does): the main file only ([agent] may not be in a drop-in).
 */
#include "ctl.h"

#include "cs_inisect.h"
#include "cs_proto.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *ctl_config_path;

/* The last [agent] socket of the file, as written. */
struct found {
	char *socket; /* NULL: none */
	bool oom;
};

static void on_pair(void *arg, const char *key, const char *value)
{
	struct found *f = arg;

	if (strcmp(key, "socket") != 0)
		return;
	free(f->socket);
	if ((f->socket = strdup(value)) == NULL)
		f->oom = true;
}

int ctl_config_socket(void)
{
	struct found f = { 0 };
	char err[1024];
	int rc;

	if (ctl_socket_path != NULL || ctl_config_path == NULL)
		return 0;
	rc = cs_inisect_read(ctl_config_path, "agent", on_pair, &f, err, sizeof(err));
	if (rc == 0 && f.oom) {
		snprintf(err, sizeof(err), "%s: out of memory", ctl_config_path);
	} else if (rc == 0 && f.socket != NULL && f.socket[0] != '/') {
		snprintf(err, sizeof(err), "%s: [agent] socket: '%s' is not an absolute path",
			 ctl_config_path, f.socket);
	} else if (rc == 0) {
		/* Kept until the process ends, as the other global options are. */
		ctl_socket_path = f.socket != NULL ? f.socket : CS_PROTO_SOCKET_PATH;
		return 0;
	}
	fprintf(stderr, "certsyncctl: %s\n", err);
	free(f.socket);
	return 2;
}
