/*
 * cs_acme_req - the requests of an acme job.
 *
 * Every signed request goes through cs_acme__send_rq(), which takes a nonce
 * from the pool (or fetches one), signs, and on the answer keeps the
 * Replay-Nonce, resends after badNonce (up to 20 times), waits out a short
 * Retry-After on 429/503 (and drops the issuer to one job at a time),
 * registers again when the CA forgot the account, and otherwise reports the
 * problem document verbatim. The answer is kept in the job (struct resp) for
 * the next step.
 */
#include "cs_acme_int.h"

/* ---- requests ----------------------------------------------------------- */

/*
 * Keeps the answer r in j->resp and its nonce in the pool; a 429 or 503
 * drops the issuer to one order at a time. Returns 0, or -1 with the job
 * failed.
 */
static int keep_response(struct job *j, const struct cs_http_response *r)
{
	struct cs_acme *a = j->a;
	char buf[2048];
	struct resp *rs = &j->resp;

	if (cs_http_header(r, "Replay-Nonce", 0, buf, sizeof(buf)) != NULL && buf[0] != '\0')
		cs_acme__nonce_push(a, buf);
	cs_acme__resp_reset(rs);
	rs->code = r->code;
	rs->body = malloc(r->len + 1);
	if (rs->body == NULL) {
		cs_acme__job_fail(j, -ENOMEM, "out of memory");
		return -1;
	}
	memcpy(rs->body, r->body, r->len);
	rs->body[r->len] = '\0';
	rs->len = r->len;
	if (cs_http_header(r, "Location", 0, buf, sizeof(buf)) != NULL)
		rs->location = strdup(buf);
	if (cs_http_header(r, "Retry-After", 0, buf, sizeof(buf)) != NULL) {
		int64_t ra = cs_acme_msg_retry_after(buf, cs_acme__now_s());
		rs->retry_after = ra > 0 ? ra : 0;
	}
	for (size_t i = 0; cs_http_header(r, "Link", i, buf, sizeof(buf)) != NULL; i++)
		rs->n_alts += cs_acme_msg_links(buf, "alternate", rs->alts + rs->n_alts,
						MAX_ALTS - rs->n_alts);
	if (rs->code == 429 || rs->code == 503) {
		/* The CA is at its limit: one order at a time, none new before Retry-After. */
		if (a->limit > 1)
			cs_notice("acme %s: HTTP %ld from the CA: one order at a time for now",
				  a->base.name, rs->code);
		a->limit = 1;
		if (rs->retry_after > 0 && cs_acme__now_s() + rs->retry_after > a->paused_until)
			a->paused_until = cs_acme__now_s() + rs->retry_after;
	}
	return 0;
}

static void on_http(void *arg, const struct cs_http_response *r)
{
	struct job *j = arg;
	struct cs_acme *a = j->a;
	char type[256];
	struct resp *rs = &j->resp;

	j->inflight = NULL;
	if (r->status < 0) {
		/* The server may be gone: start afresh next time (directory, nonces). */
		cs_acme__nonces_clear(a);
		json_decref(a->dir);
		a->dir = NULL;
		cs_acme__job_fail(j, r->status, "%s %s: %s", j->rq.method ? j->rq.method : "POST",
				  j->rq.url, r->error);
		return;
	}
	if (keep_response(j, r) < 0)
		return;
	if (rs->code < 400 || j->rq.method != NULL) {
		if (rs->code >= 400 && !j->rq.accept_errors) {
			j->retry_after = rs->retry_after;
			cs_acme__job_fail(j, -EPROTO, "%s %s: HTTP %ld: %s", j->rq.method, j->rq.url,
					  rs->code, cs_acme__body_text(rs));
			return;
		}
		cs_acme__step(j, j->rq.next);
		return;
	}
	type[0] = '\0';
	cs_acme_msg_problem(rs->body, rs->len, type, sizeof(type));
	if (strcmp(type, PB "badNonce") == 0 && ++j->rq.bad_nonce <= BAD_NONCE_MAX) {
		cs_debug("acme %s: badNonce from %s, retrying (%d)", a->base.name, j->rq.url,
			 j->rq.bad_nonce);
		cs_acme__step(j, cs_acme__send_rq);
		return;
	}
	if ((rs->code == 429 || rs->code == 503) && rs->retry_after > 0 &&
	    rs->retry_after <= RETRY_AFTER_WAIT_MAX && ++j->rq.retries <= 3) {
		cs_info("acme %s: %s: HTTP %ld, retrying in %lld s as the CA asks",
			a->base.name, j->rq.url, rs->code, (long long)rs->retry_after);
		cs_acme__wait_then(j, rs->retry_after * 1000, cs_acme__send_rq);
		return;
	}
	if (strcmp(type, PB "accountDoesNotExist") == 0 && !j->rq.jwk && !j->account_retried) {
		/* The CA forgot the account (a test CA restarted, say): register again. */
		cs_notice("acme %s: the CA does not know account %s; registering again",
			  a->base.name, a->kid ? a->kid : "");
		free(a->kid);
		a->kid = NULL;
		j->account_retried = true;
		cs_acme__step(j, cs_acme__job_restart);
		return;
	}
	j->retry_after = rs->retry_after;
	if (rs->code >= 400 && j->rq.accept_errors) {
		cs_acme__step(j, j->rq.next);
		return;
	}
	cs_acme__job_fail(j, rs->code == 429 || rs->code == 503 ? -EAGAIN : -EPROTO,
			  "POST %s: HTTP %ld: %s", j->rq.url, rs->code, cs_acme__body_text(rs));
}

static void on_nonce(void *arg, const struct cs_http_response *r)
{
	struct job *j = arg;
	struct cs_acme *a = j->a;
	char buf[512];

	j->inflight = NULL;
	if (r->status < 0) {
		json_decref(a->dir);
		a->dir = NULL;
		cs_acme__job_fail(j, r->status, "HEAD %s: %s", cs_acme__dir_url(a, "newNonce"), r->error);
		return;
	}
	if (cs_http_header(r, "Replay-Nonce", 0, buf, sizeof(buf)) == NULL || buf[0] == '\0') {
		cs_acme__job_fail(j, -EPROTO, "HEAD %s: HTTP %ld without a Replay-Nonce",
				  cs_acme__dir_url(a, "newNonce"), r->code);
		return;
	}
	cs_acme__nonce_push(a, buf);
	cs_acme__step(j, cs_acme__send_rq);
}

static void send_signed(struct job *j);

/* Sends j->rq: a plain GET/HEAD, or a JWS POST with a nonce from the pool, signed by the host. */
void cs_acme__send_rq(struct job *j)
{
	struct cs_acme *a = j->a;
	struct cs_http_request hr = { .url = j->rq.url, .accept = j->rq.accept };
	char *nonce = NULL;
	int rc;

	if (j->rq.method != NULL) {
		hr.method = j->rq.method;
		rc = cs_http_send(a->http, &hr, on_http, j, &j->inflight);
		goto sent;
	}
	nonce = cs_acme__nonce_pop(a);
	if (nonce == NULL) {
		struct cs_http_request nr = { .method = "HEAD", .url = cs_acme__dir_url(a, "newNonce") };
		if (nr.url == NULL) {
			cs_acme__job_fail(j, -EPROTO, "the directory has no newNonce");
			return;
		}
		rc = cs_http_send(a->http, &nr, on_nonce, j, &j->inflight);
		goto sent;
	}
	struct cs_acme_host_sign sr = {
		.kid = j->rq.jwk ? NULL : a->kid,
		.nonce = nonce,
		.url = j->rq.url,
		.payload = j->rq.payload,
	};
	cs_acme__host_sign(j, &sr, send_signed);
	free(nonce);
	return;
sent:
	if (rc < 0)
		cs_acme__job_fail(j, rc, "%s: cannot send: %s", j->rq.url, strerror(-rc));
}

/* Posts the JWS the host signed (j->host_text). */
static void send_signed(struct job *j)
{
	struct cs_http_request hr = { .url = j->rq.url, .accept = j->rq.accept };
	int rc;

	if (j->host_rc < 0) {
		cs_acme__job_fail(j, j->host_rc, "%s", j->host_err);
		return;
	}
	hr.method = "POST";
	hr.content_type = "application/jose+json";
	hr.body = j->host_text;
	hr.len = strlen(j->host_text);
	rc = cs_http_send(j->a->http, &hr, on_http, j, &j->inflight);
	free(j->host_text);
	j->host_text = NULL;
	if (rc < 0)
		cs_acme__job_fail(j, rc, "%s: cannot send: %s", j->rq.url, strerror(-rc));
}

/*
 * Starts a request: method NULL for a signed POST (payload NULL: POST-as-GET;
 * the job takes payload). next runs with the answer in j->resp.
 */
void cs_acme__request(struct job *j, const char *method, const char *url, char *payload,
		      unsigned flags, step_fn next)
{
	free(j->rq.url);
	free(j->rq.payload);
	memset(&j->rq, 0, sizeof(j->rq));
	j->rq.method = method;
	j->rq.jwk = flags & RQ_JWK;
	j->rq.accept_errors = flags & RQ_ACCEPT_ERRORS;
	j->rq.accept = flags & RQ_PEM ? "application/pem-certificate-chain" : NULL;
	j->rq.url = url != NULL ? strdup(url) : NULL;
	j->rq.payload = payload;
	j->rq.next = next;
	if (url == NULL) {
		/* Another job dropped the directory after a transport error. */
		cs_acme__job_fail(j, -EPROTO, "the ACME directory is gone (a request to the CA failed)");
		return;
	}
	if (j->rq.url == NULL) {
		cs_acme__job_fail(j, -ENOMEM, "out of memory");
		return;
	}
	cs_acme__send_rq(j);
}

/* Parses the response body as a JSON object (caller decrefs), or fails the job. */
json_t *cs_acme__resp_json(struct job *j)
{
	json_error_t je;
	json_t *o = json_loadb(j->resp.body, j->resp.len, 0, &je);

	if (!json_is_object(o)) {
		json_decref(o);
		cs_acme__job_fail(j, -EPROTO, "%s: the answer is not a JSON object: %.200s", j->rq.url,
				  cs_acme__body_text(&j->resp));
		return NULL;
	}
	return o;
}
