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

/* Answers one request line. */
void cs_ctlsock__handle(struct client *c, const char *line, size_t len)
{
	struct cs_ctlsock *s = c->s;
	json_error_t jerr;
	json_t *req = NULL, *resp = NULL;
	const char *cmd = NULL, *name = NULL;
	char bare[16];
	bool change = false;

	/* req stays NULL for a bare command: json_object_get(NULL, ...) is NULL. */
	if (bare_command(line, len, bare)) {
		cmd = bare;
	} else {
		req = json_loadb(line, len, 0, &jerr);
		if (req == NULL || !json_is_object(req)) {
			s->ag.requests_error++;
			cs_ctlsock__send_json(c, req == NULL
					     ? cs_ctlsock__error_json("bad_request", "malformed JSON: %s", jerr.text)
					     : cs_ctlsock__error_json("bad_request",
							  "a request is a JSON object with \"cmd\""));
			json_decref(req);
			return;
		}
		cmd = json_string_value(json_object_get(req, "cmd"));
		name = json_string_value(json_object_get(req, "name"));
	}
	if (cmd == NULL) {
		resp = cs_ctlsock__error_json("bad_request", "a request needs \"cmd\" (a string)");
		goto out;
	}
	change = strcmp(cmd, "renew") == 0 || strcmp(cmd, "rehash") == 0 ||
		 strcmp(cmd, "reload") == 0 || strcmp(cmd, "revoke") == 0 ||
		 strcmp(cmd, "adopt") == 0;
	if (c->access < 1 || (change && c->access < 2)) {
		s->ag.requests_refused++;
		cs_notice("status socket: refused \"%s\" from uid %u", cmd, (unsigned)c->uid);
		cs_ctlsock__send_json(c, cs_ctlsock__error_json("refused",
					"permission denied: uid %u may not %s (%s)",
					(unsigned)c->uid, change ? "change anything" : "read the status",
					change ? "needs uid 0 or admin_group"
					       : "needs socket_group or admin_group"));
		json_decref(req);
		return;
	}
	if (change && s->list_cache != NULL) {
		cs_ctlsock__answer_unref(s->list_cache); /* this may change what list says */
		s->list_cache = NULL;
	}
	if (strcmp(cmd, "list") == 0) {
		uint64_t t = uv_now(s->loop);
		if (s->list_cache == NULL || s->list_cache_at != t) {
			resp = cs_ctlsock__cmd_list(s);
			if (resp == NULL)
				goto out;
			cs_ctlsock__answer_unref(s->list_cache);
			s->list_cache = cs_ctlsock__answer_json(resp);
			s->list_cache_at = t;
			if (s->list_cache == NULL) {
				cs_ctlsock__close_client(c);
				json_decref(req);
				return;
			}
		}
		s->ag.requests_ok++;
		cs_ctlsock__send_answer(c, s->list_cache);
		json_decref(req);
		return;
	} else if (strcmp(cmd, "show") == 0)
		resp = cs_ctlsock__cmd_show(s, name);
	else if (strcmp(cmd, "status") == 0) {
		struct answer *a = cs_ctlsock__status_answer(s);
		if (a == NULL)
			goto out;
		s->ag.requests_ok++;
		cs_ctlsock__send_answer(c, a);
		json_decref(req);
		return;
	} else if (strcmp(cmd, "renew") == 0) {
		resp = cs_ctlsock__cmd_renew(c, name, json_is_true(json_object_get(req, "force")),
				 json_is_true(json_object_get(req, "wait")));
		if (resp == NULL && c->deferred != NULL) {
			json_decref(req);
			return;
		}
	}
	else if (strcmp(cmd, "reload") == 0)
		resp = name == NULL ? cs_ctlsock__error_json("bad_request", "reload needs a \"name\"")
				    : cs_ctlsock__cmd_hook(s, "reload", name, s->be.reload);
	else if (strcmp(cmd, "rehash") == 0)
		resp = cs_ctlsock__cmd_hook(s, "rehash", name, s->be.rehash);
	else if (strcmp(cmd, "metrics") == 0)
		resp = cs_ctlsock__cmd_metrics(s);
	else if (strcmp(cmd, "adopt") == 0) {
		resp = cs_ctlsock__cmd_adopt(c, name);
		if (resp == NULL && c->deferred != NULL) {
			json_decref(req);
			return;
		}
	} else if (strcmp(cmd, "revoke") == 0) {
		resp = cs_ctlsock__cmd_revoke(c, name, json_object_get(req, "reason"));
		if (resp == NULL && c->deferred != NULL) {
			json_decref(req);
			return;
		}
	} else
		resp = cs_ctlsock__error_json("bad_request", "unknown command \"%s\"", cmd);
out:
	if (resp == NULL)
		resp = cs_ctlsock__error_json("internal", "out of memory");
	if (json_is_true(json_object_get(resp, "ok")))
		s->ag.requests_ok++;
	else
		s->ag.requests_error++;
	cs_ctlsock__send_json(c, resp);
	json_decref(req);
}

