/*
 * cs_ctlsock_defer - commands answered when the backend calls back (adopt,
 * revoke, renew --wait): until then their client is not read from, so that
 * answers keep the order of the requests.
 */
#include "cs_ctlsock_int.h"
#include "cs_crlreason.h"
#include "cs_log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The answer to a revoke the backend has finished (NULL on ENOMEM). */
static json_t *revoke_answer(const struct deferred *d, int status, const char *msg)
{
	if (status < 0)
		return cs_ctlsock__error_json(CS_PROTO_E_FAILED, "%s",
					      msg != NULL ? msg : strerror(-status));
	cs_notice("status socket: revoke %s: revoked %s (reason %s)", d->name, msg, d->reason);
	return json_pack("{s:b,s:s,s:s,s:s}", CS_PROTO_K_OK, 1, CS_PROTO_K_NAME, d->name,
			 CS_PROTO_K_SERIAL, msg != NULL ? msg : "?", CS_PROTO_K_REASON, d->reason);
}

/* Sends the deferred answer resp (taken) to d's client, if it is still there, and frees d. */
void cs_ctlsock__deferred_answer(struct deferred *d, json_t *resp, bool ok)
{
	struct client *c = d->c;

	if (c != NULL) {
		struct cs_ctlsock *s = c->s;

		c->deferred = NULL;
		if (ok)
			s->ag.requests_ok++;
		else
			s->ag.requests_error++;
		cs_ctlsock__send_json(c, resp != NULL ? resp
						      : cs_ctlsock__error_json(CS_PROTO_E_INTERNAL,
									       "out of memory"));
		if (!c->closing) {
			uv_timer_again(&c->timer);
			cs_ctlsock__process(c);
			if (cs_ctlsock__can_read(c))
				uv_read_start((uv_stream_t *)&c->pipe, cs_ctlsock__on_alloc,
					      cs_ctlsock__on_read);
		}
	} else {
		json_decref(resp);
	}
	json_decref(d->results);
	free(d->name);
	free(d);
}

/* The answer to an adopt the backend has finished (NULL on ENOMEM). */
static json_t *adopt_answer(const struct deferred *d, int status, const char *msg)
{
	if (status < 0)
		return cs_ctlsock__error_json(CS_PROTO_E_FAILED, "%s",
					      msg != NULL ? msg : strerror(-status));
	cs_notice("status socket: adopt %s: %s", d->name, msg != NULL ? msg : "done");
	return json_pack("{s:b,s:s,s:s}", CS_PROTO_K_OK, 1, CS_PROTO_K_NAME, d->name,
			 CS_PROTO_K_RESULT, msg != NULL ? msg : "adopted");
}

/*
 * The backend's answer to a deferred command (revoke, adopt): kept for the
 * caller when it comes before the backend has returned, else sent with the
 * command's own answer function.
 */
static void on_deferred_done(void *arg, int status, const char *msg)
{
	struct deferred *d = arg;

	if (d->in_call) {
		d->answered = true;
		d->status = status;
		snprintf(d->msg, sizeof(d->msg), "%s", msg != NULL ? msg : strerror(-status));
		return;
	}
	cs_ctlsock__deferred_answer(d, d->c != NULL ? d->answer(d, status, msg) : NULL,
				    status == 0);
}

/*
 * Takes the deployed files of name as they are (certsyncctl adopt). Returns
 * NULL when the answer is deferred (c->deferred set), else the answer now.
 */
json_t *cs_ctlsock__cmd_adopt(struct client *c, const char *name)
{
	struct cs_ctlsock *s = c->s;
	struct deferred *d;
	int rc;

	if (name == NULL)
		return cs_ctlsock__error_json(CS_PROTO_E_BAD_REQUEST, "adopt needs a \"name\"");
	if (s->be.adopt == NULL)
		return cs_ctlsock__error_json(CS_PROTO_E_UNAVAILABLE,
					      "adopt is not available in this agent");
	if ((d = calloc(1, sizeof(*d))) == NULL || (d->name = strdup(name)) == NULL) {
		free(d);
		return NULL;
	}
	d->c = c;
	d->answer = adopt_answer;
	d->in_call = true;
	rc = s->be.adopt(s->be.arg, name, on_deferred_done, d);
	d->in_call = false;
	if (rc == 0 && !d->answered) {
		c->deferred = d;
		uv_read_stop((uv_stream_t *)&c->pipe);
		return NULL;
	}
	json_t *resp =
		rc == 0 ? adopt_answer(d, d->status, d->msg)
		: rc == -ENOENT
			? cs_ctlsock__error_json(CS_PROTO_E_NOT_FOUND,
						 "no cert \"%s\" in the configuration", name)
		: rc == -EBUSY
			? cs_ctlsock__error_json(
				  CS_PROTO_E_FAILED,
				  "%s is busy (being checked, renewed, reloaded or revoked); "
				  "try again when that is done",
				  name)
			: cs_ctlsock__error_json(CS_PROTO_E_FAILED, "cannot adopt %s: %s", name,
						 strerror(-rc));
	free(d->name);
	free(d);
	return resp;
}

/*
 * Starts a revocation. Returns NULL when the answer is deferred (c->deferred
 * set, answered by on_deferred_done), else the answer now.
 */
json_t *cs_ctlsock__cmd_revoke(struct client *c, const char *name, json_t *jreason)
{
	struct cs_ctlsock *s = c->s;
	const char *reason = "unspecified";
	struct deferred *d;
	int code = -1, rc;

	if (name == NULL)
		return cs_ctlsock__error_json(CS_PROTO_E_BAD_REQUEST, "revoke needs a \"name\"");
	if (jreason != NULL && !json_is_string(jreason))
		return cs_ctlsock__error_json(CS_PROTO_E_BAD_REQUEST, "\"reason\" is a string");
	if (jreason != NULL)
		reason = json_string_value(jreason);
	/* The reasons a client may give (cs_crlreason: CS_CRLREASON_CLIENT). */
	code = cs_crlreason_code(reason, CS_CRLREASON_CLIENT, &reason);
	if (code < 0) {
		char list[256];

		return cs_ctlsock__error_json(
			CS_PROTO_E_BAD_REQUEST, "unknown revocation reason \"%s\" (%s)", reason,
			cs_crlreason_list(CS_CRLREASON_CLIENT, list, sizeof(list)));
	}
	if (s->be.revoke == NULL)
		return cs_ctlsock__error_json(CS_PROTO_E_UNAVAILABLE,
					      "revoke is not available in this agent");
	if ((d = calloc(1, sizeof(*d))) == NULL || (d->name = strdup(name)) == NULL) {
		free(d);
		return NULL;
	}
	d->c = c;
	d->reason = reason; /* static: from cs_crlreason */
	d->in_call = true;
	d->answer = revoke_answer;
	rc = s->be.revoke(s->be.arg, name, code, on_deferred_done, d);
	d->in_call = false;
	if (rc == 0 && !d->answered) {
		c->deferred = d;
		uv_read_stop((uv_stream_t *)&c->pipe);
		return NULL;
	}
	if (rc == 0) {
		json_t *resp = revoke_answer(d, d->status, d->msg);
		free(d->name);
		free(d);
		return resp;
	}
	free(d->name);
	free(d);
	if (rc == -ENOENT)
		return cs_ctlsock__error_json(CS_PROTO_E_NOT_FOUND,
					      "no cert \"%s\" in the configuration", name);
	if (rc == -EBUSY)
		return cs_ctlsock__error_json(CS_PROTO_E_FAILED,
				  "%s is busy (being checked, renewed, reloaded or revoked, or the "
				  "agent is switching its configuration); try again when that is "
				  "done",
				  name);
	if (rc == -ENODATA)
		return cs_ctlsock__error_json(
			CS_PROTO_E_FAILED, "nothing is deployed for %s: no certificate to revoke",
			name);
	if (rc == -ENOTSUP)
		return cs_ctlsock__error_json(
			CS_PROTO_E_UNAVAILABLE,
			"the issuer of %s cannot revoke: only acme and local-ca issuers can", name);
	return cs_ctlsock__error_json(CS_PROTO_E_FAILED, "cannot revoke %s: %s", name,
				      strerror(-rc));
}

