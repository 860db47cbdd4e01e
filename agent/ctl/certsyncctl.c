/*
 * certsyncctl - the command-line client of certsync: commands that talk to
 * the running agent over its status socket, and offline commands on
 * certificate files.
 */
#include "ctl.h"
#include "cs_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
	fprintf(out, "usage: certsyncctl [-c CONFIG | -s SOCKET] [--json] [--help] [--version] "
		     "COMMAND [ARGS]\n\n"
		     "  -s, --socket SOCKET  the agent's status socket (default %s)\n"
		     "  -c, --config CONFIG  the socket that [agent] socket names in the agent's\n"
		     "                       configuration file CONFIG (-s wins)\n"
		     "      --json           the agent's answer as JSON, for scripts\n\n"
		     "Agent commands (status socket):\n",
		CS_PROTO_SOCKET_PATH);
	for (const struct ctl_cmd *c = ctl_online_cmds; c->name != NULL; c++)
		fprintf(out, "  %-50s %s\n", c->usage, c->help);
	fprintf(out, "\nOffline commands (no agent needed):\n");
	for (const struct ctl_cmd *c = ctl_offline_cmds; c->name != NULL; c++)
		fprintf(out, "  %-50s %s\n", c->usage, c->help);
	fprintf(out, "\nExit status: 0 ok, 1 a cert failed or the request was refused, 2 bad usage,\n"
		     "3 the agent cannot be reached. See certsyncctl(8).\n");
}

/*
 * Whether argv[*i] is the global option shrt or lng with its path ("-s P",
 * "--socket P" or "--socket=P"): then *value is the path and *i is past it.
 * Returns 1 taken, 0 another option, -1 no path (said on stderr).
 */
static int path_option(int argc, char **argv, int *i, const char *shrt, const char *lng,
		       const char **value)
{
	const char *a = argv[*i];
	size_t n = strlen(lng);

	if (strncmp(a, lng, n) == 0 && a[n] == '=') {
		*value = a + n + 1;
		*i += 1;
		return 1;
	}
	if (strcmp(a, shrt) != 0 && strcmp(a, lng) != 0)
		return 0;
	if (*i + 1 >= argc) {
		fprintf(stderr, "certsyncctl: %s needs a path\n", a);
		return -1;
	}
	*value = argv[*i + 1];
	*i += 2;
	return 1;
}

int main(int argc, char **argv)
{
	int i = 1, rc;

	/* Global options, before the command. */
	while (i < argc && argv[i][0] == '-') {
		if ((rc = path_option(argc, argv, &i, "-s", "--socket", &ctl_socket_path)) != 0 ||
		    (rc = path_option(argc, argv, &i, "-c", "--config", &ctl_config_path)) != 0) {
			if (rc < 0)
				return 2;
		} else if (strcmp(argv[i], "--json") == 0) {
			ctl_json = true;
			i++;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("certsyncctl %s\n", CS_VERSION);
			return 0;
		} else {
			fprintf(stderr, "certsyncctl: unknown option '%s' (try --help)\n", argv[i]);
			return 2;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[i], "help") == 0) {
		usage(stdout);
		return 0;
	}
	for (const struct ctl_cmd *c = ctl_online_cmds; c->name != NULL; c++)
		if (strcmp(argv[i], c->name) == 0)
			return c->run(argc - i, argv + i);
	for (const struct ctl_cmd *c = ctl_offline_cmds; c->name != NULL; c++)
		if (strcmp(argv[i], c->name) == 0)
			return c->run(argc - i, argv + i);
	fprintf(stderr, "certsyncctl: unknown command '%s' (try --help)\n", argv[i]);
	return 2;
}
