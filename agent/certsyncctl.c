/*
 * certsyncctl - the command-line client of certsync: offline commands on
 * certificate files, and (later) the agent's status socket.
 */
#include "ctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
	fprintf(out, "usage: certsyncctl [--help] [--version] COMMAND [ARGS]\n\n"
		     "Offline commands (no agent needed):\n");
	for (const struct ctl_cmd *c = ctl_offline_cmds; c->name != NULL; c++)
		fprintf(out, "  %-50s %s\n", c->usage, c->help);
	fprintf(out, "\nSee certsyncctl(8).\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("certsyncctl %s\n", CS_VERSION);
		return 0;
	}
	for (const struct ctl_cmd *c = ctl_offline_cmds; c->name != NULL; c++)
		if (strcmp(argv[1], c->name) == 0)
			return c->run(argc - 1, argv + 1);
	fprintf(stderr, "certsyncctl: unknown command '%s' (try --help)\n", argv[1]);
	return 2;
}
