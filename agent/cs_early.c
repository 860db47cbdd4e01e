/*
 * cs_early - the [agent] keys read before the configuration (see
 * cs_early.h). The file is read by cs_inisect, as certsyncctl -c reads it;
 * the defaults are the configuration's (cs_config.c); the values are parsed
 * by the configuration's own functions.
 */
#include "cs_early.h"
#include "cs_config.h"
#include "cs_inisect.h"
#include "cs_proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct early_parse {
	struct cs_early *e;
	int rc;
};

static int set_path(char **dst, const char *value)
{
	char *p;

	if (value[0] != '/')
		return -EINVAL; /* the whole read says why */
	if ((p = strdup(value)) == NULL)
		return -ENOMEM;
	free(*dst);
	*dst = p;
	return 0;
}

static void on_pair(void *arg, const char *key, const char *value)
{
	struct early_parse *ep = arg;
	struct cs_early *e = ep->e;
	char err[256];
	int rc = 0;

	if (ep->rc < 0)
		return;
	if (strcmp(key, "state_dir") == 0)
		rc = set_path(&e->state_dir, value);
	else if (strcmp(key, "socket") == 0)
		rc = set_path(&e->socket, value);
	else if (strcmp(key, "socket_mode") == 0)
		rc = cs_config_parse_mode(value, &e->socket_mode, err, sizeof(err)) < 0 ? -EINVAL : 0;
	else if (strcmp(key, "socket_group") == 0)
		rc = cs_config_parse_group(value, &e->socket_group, err, sizeof(err)) < 0 ? -EINVAL
										       : 0;
	else if (strcmp(key, "admin_group") == 0)
		rc = cs_config_parse_group(value, &e->admin_group, err, sizeof(err)) < 0 ? -EINVAL
										      : 0;
	if (rc < 0)
		ep->rc = rc;
}

int cs_early_read(const char *path, struct cs_early *e)
{
	struct early_parse ep = { .e = e, .rc = 0 };
	int rc;

	memset(e, 0, sizeof(*e));
	e->socket_mode = 0660;
	e->socket_group = (gid_t)-1;
	e->admin_group = (gid_t)-1;
	rc = cs_inisect_read(path, "agent", on_pair, &ep, NULL, 0);
	if (rc == 0)
		rc = ep.rc;
	else if (rc > 0)
		rc = -EINVAL; /* a syntax error on line rc */
	if (rc == 0 && ((e->state_dir == NULL && set_path(&e->state_dir, "/var/lib/certsync") < 0) ||
			(e->socket == NULL &&
			 set_path(&e->socket, CS_PROTO_SOCKET_PATH) < 0)))
		rc = -ENOMEM;
	if (rc < 0)
		cs_early_clear(e);
	return rc;
}

void cs_early_clear(struct cs_early *e)
{
	free(e->state_dir);
	free(e->socket);
	e->state_dir = NULL;
	e->socket = NULL;
}
