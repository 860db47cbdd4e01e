/*
 * ctl_config - certsyncctl -c CONFIG: the status socket's path from the
 * [agent] socket key of the agent's main configuration file, read as the
 * agent reads that key before its whole configuration (cs_inisect, as
 * cs_early does): the main file only ([agent] may not be in a drop-in).
 */
#include "ctl.h"

#include "cs_inisect.h"
#include "cs_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *ctl_config_path;

/* The last [agent] socket of the file, as written (NULL: none). */
static void on_pair(void *arg, const char *key, const char *value)
{
	char **socket = arg;

	if (strcmp(key, "socket") != 0)
		return;
	free(*socket);
	*socket = strdup(value);
}

int ctl_config_socket(void)
{
	char err[1024], *socket = NULL;
	int rc;

	if (ctl_socket_path != NULL || ctl_config_path == NULL)
		return 0;
	rc = cs_inisect_read(ctl_config_path, "agent", on_pair, &socket, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "certsyncctl: %s\n", err);
		free(socket);
		return 2;
	}
	if (socket != NULL && socket[0] != '/') {
		fprintf(stderr, "certsyncctl: %s: [agent] socket: '%s' is not an absolute path\n",
			ctl_config_path, socket);
		free(socket);
		return 2;
	}
	/* Kept until the process ends, as the other global options are. */
	ctl_socket_path = socket != NULL ? socket : CS_PROTO_SOCKET_PATH;
	return 0;
}
