/*
 * ctl_offline - certsyncctl commands that work on files without an agent.
 */
#include "ctl.h"

#include <stddef.h>

const struct ctl_cmd ctl_offline_cmds[] = {
	{ NULL, NULL, NULL, NULL },
};
