/*
 * cs_ctlsock_cmd - one request line of the status socket: parsed (or seen
 * to be a bare {"cmd":"WORD"}), authorised against the client's access, and
 * handed to the command's handler; its answer counted and sent.
 */
#include "cs_ctlsock_int.h"
#include "cs_log.h"

#include <string.h>

/*
 * Whether line is exactly {"cmd":"WORD"} (WORD lower-case letters, as
 * certsyncctl sends status, list and metrics): WORD is then copied to cmd.
 * Such a line means what the JSON parser would make of it, without a parse.
 */
static bool bare_command(const char *line, size_t len, char cmd[16])
{
	static const char head[] = "{\"cmd\":\"";
	size_t hl = sizeof(head) - 1, n;

	if (len < hl + 3 || len - hl - 2 >= 16 || memcmp(line, head, hl) != 0 ||
	    memcmp(line + len - 2, "\"}", 2) != 0)
		return false;
	n = len - hl - 2;
	for (size_t i = 0; i < n; i++)
		if (line[hl + i] < 'a' || line[hl + i] > 'z')
			return false;
	memcpy(cmd, line + hl, n);
	cmd[n] = '\0';
	return true;
}

/*
 * A command's handler returns the answer to send (NULL: out of memory), or
 * sets *done when the client has its answer already, will have it later
 * (c->deferred) or was closed.
 */
typedef json_t *cmd_fn(struct client *c, json_t *req, const char *name, bool *done);

/* list: clients asking in the same loop turn get the same bytes. */
static json_t *run_list(struct client *c, json_t *req, const char *name, bool *done)
{
	struct cs_ctlsock *s = c->s;
	uint64_t t = uv_now(s->loop);
	json_t *resp;

	(void)req;
	(void)name;
	if (s->list_cache == NULL || s->list_cache_at != t) {
		resp = cs_ctlsock__cmd_list(s);
		if (resp == NULL)
			return NULL;
		cs_ctlsock__answer_unref(s->list_cache);
		s->list_cache = cs_ctlsock__answer_json(resp);
		s->list_cache_at = t;
		if (s->list_cache == NULL) {
			cs_ctlsock__close_client(c);
			*done = true;
			return NULL;
		}
	}
	s->ag.requests_ok++;
	cs_ctlsock__send_answer(c, s->list_cache);
	*done = true;
	return NULL;
}

static json_t *run_show(struct client *c, json_t *req, const char *name, bool *done)
{
	(void)req;
	(void)done;
	return cs_ctlsock__cmd_show(c->s, name);
}

static json_t *run_status(struct client *c, json_t *req, const char *name, bool *done)
{
	struct answer *a = cs_ctlsock__status_answer(c->s);

	(void)req;
	(void)name;
	if (a == NULL)
		return NULL;
	c->s->ag.requests_ok++;
	cs_ctlsock__send_answer(c, a);
	*done = true;
	return NULL;
}

static json_t *run_renew(struct client *c, json_t *req, const char *name, bool *done)
{
	json_t *resp =
		cs_ctlsock__cmd_renew(c, name, json_is_true(json_object_get(req, CS_PROTO_K_FORCE)),
				      json_is_true(json_object_get(req, CS_PROTO_K_WAIT)));

	*done = resp == NULL && c->deferred != NULL;
	return resp;
}

static json_t *run_reload(struct client *c, json_t *req, const char *name, bool *done)
{
	(void)req;
	(void)done;
	if (name == NULL)
		return cs_ctlsock__error_json(CS_PROTO_E_BAD_REQUEST, "reload needs a \"name\"");
	return cs_ctlsock__cmd_hook(c->s, CS_PROTO_CMD_RELOAD, name, c->s->be.reload);
}

static json_t *run_rehash(struct client *c, json_t *req, const char *name, bool *done)
{
	(void)req;
	(void)done;
	return cs_ctlsock__cmd_hook(c->s, CS_PROTO_CMD_REHASH, name, c->s->be.rehash);
}

static json_t *run_metrics(struct client *c, json_t *req, const char *name, bool *done)
{
	(void)req;
	(void)name;
	(void)done;
	return cs_ctlsock__cmd_metrics(c->s);
}

static json_t *run_adopt(struct client *c, json_t *req, const char *name, bool *done)
{
	json_t *resp = cs_ctlsock__cmd_adopt(c, name);

	(void)req;
	*done = resp == NULL && c->deferred != NULL;
	return resp;
}

static json_t *run_revoke(struct client *c, json_t *req, const char *name, bool *done)
{
	json_t *resp = cs_ctlsock__cmd_revoke(c, name, json_object_get(req, CS_PROTO_K_REASON));

	*done = resp == NULL && c->deferred != NULL;
	return resp;
}

enum { ACCESS_READ = 1, ACCESS_CHANGE = 2 };

/*
 * The commands, the access a client needs for each (that of
 * cs_ctlsock_access) and their handlers. A command not in the table is a
 * bad_request, refused first to a client that may not read.
 */
static const struct {
	const char *name;
	int access;
	cmd_fn *run;
} commands[] = {
	{ CS_PROTO_CMD_LIST, ACCESS_READ, run_list },
	{ CS_PROTO_CMD_SHOW, ACCESS_READ, run_show },
	{ CS_PROTO_CMD_STATUS, ACCESS_READ, run_status },
	{ CS_PROTO_CMD_RENEW, ACCESS_CHANGE, run_renew },
	{ CS_PROTO_CMD_RELOAD, ACCESS_CHANGE, run_reload },
	{ CS_PROTO_CMD_REHASH, ACCESS_CHANGE, run_rehash },
	{ CS_PROTO_CMD_METRICS, ACCESS_READ, run_metrics },
	{ CS_PROTO_CMD_ADOPT, ACCESS_CHANGE, run_adopt },
	{ CS_PROTO_CMD_REVOKE, ACCESS_CHANGE, run_revoke },
};

/*
 * Reads line into *req (NULL for a bare command: json_object_get(NULL, ...)
 * is NULL), *cmd and *name (NULL when missing; valid while *req and bare
 * are). Returns false when the line is no JSON object: that is answered.
 */
static bool parse_line(struct client *c, const char *line, size_t len, char bare[16],
		       json_t **req, const char **cmd, const char **name)
{
	json_error_t jerr;

	*req = NULL;
	*name = NULL;
	if (bare_command(line, len, bare)) {
		*cmd = bare;
		return true;
	}
	*req = json_loadb(line, len, 0, &jerr);
	if (*req == NULL || !json_is_object(*req)) {
		c->s->ag.requests_error++;
		cs_ctlsock__send_json(
			c, *req == NULL
				   ? cs_ctlsock__error_json(CS_PROTO_E_BAD_REQUEST,
							    "malformed JSON: %s", jerr.text)
				   : cs_ctlsock__error_json(
					     CS_PROTO_E_BAD_REQUEST,
					     "a request is a JSON object with \"cmd\""));
		json_decref(*req);
		return false;
	}
	*cmd = json_string_value(json_object_get(*req, CS_PROTO_K_CMD));
	*name = json_string_value(json_object_get(*req, CS_PROTO_K_NAME));
	return true;
}

/* Answers that c may not run cmd (a command that changes something when change). */
static void refuse(struct client *c, const char *cmd, bool change)
{
	c->s->ag.requests_refused++;
	cs_notice("status socket: refused \"%s\" from uid %u", cmd, (unsigned)c->uid);
	cs_ctlsock__send_json(
		c, cs_ctlsock__error_json(
			   CS_PROTO_E_REFUSED, "permission denied: uid %u may not %s (%s)",
			   (unsigned)c->uid, change ? "change anything" : "read the status",
			   change ? "needs uid 0 or admin_group"
				  : "needs socket_group or admin_group"));
}

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

/* Answers one request line. */
void cs_ctlsock__handle(struct client *c, const char *line, size_t len)
{
	struct cs_ctlsock *s = c->s;
	json_t *req, *resp = NULL;
	const char *cmd, *name;
	char bare[16];
	bool change, done = false;
	size_t i;

	if (!parse_line(c, line, len, bare, &req, &cmd, &name))
		return;
	if (cmd == NULL) {
		resp = cs_ctlsock__error_json(CS_PROTO_E_BAD_REQUEST,
					      "a request needs \"cmd\" (a string)");
		goto out;
	}
	for (i = 0; i < N_COMMANDS; i++)
		if (strcmp(cmd, commands[i].name) == 0)
			break;
	change = i < N_COMMANDS && commands[i].access == ACCESS_CHANGE;
	if (c->access < ACCESS_READ || (change && c->access < ACCESS_CHANGE)) {
		refuse(c, cmd, change);
		json_decref(req);
		return;
	}
	if (change && s->list_cache != NULL) {
		cs_ctlsock__answer_unref(s->list_cache); /* this may change what list says */
		s->list_cache = NULL;
	}
	if (i == N_COMMANDS) {
		resp = cs_ctlsock__error_json(CS_PROTO_E_BAD_REQUEST, "unknown command \"%s\"",
					      cmd);
		goto out;
	}
	resp = commands[i].run(c, req, name, &done);
	if (done) {
		json_decref(req);
		return;
	}
out:
	if (resp == NULL)
		resp = cs_ctlsock__error_json(CS_PROTO_E_INTERNAL, "out of memory");
	if (json_is_true(json_object_get(resp, CS_PROTO_K_OK)))
		s->ag.requests_ok++;
	else
		s->ag.requests_error++;
	cs_ctlsock__send_json(c, resp);
	json_decref(req);
}
