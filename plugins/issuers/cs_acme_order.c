/*
 * cs_acme_order - one order, from newOrder to the certificate chain.
 *
 * An order (with "replaces" for ARI when the CA offers it, dropped if the CA
 * refuses it) is followed through its authorizations: one challenge of the
 * configured type each, set up as a webroot token file, an entry of the
 * built-in http-01 responder, or a DNS record through dns_hook. Then the
 * order is polled POLL_FIRST_MS after the challenges were answered (at once
 * when the CA said they are valid) and again POLL_FIRST_MS after finalize,
 * then at twice the previous interval up to POLL_MAX_MS, or as the CA's
 * Retry-After says. The chain is downloaded, and with preferred_chain the
 * alternates are tried for one whose top issuer has that name.
 */
#include "cs_acme_int.h"

/* ---- orders ------------------------------------------------------------- */

static void authz_next(struct job *j);
static void poll_order(struct job *j);
static void finalize(struct job *j);
static void download(struct job *j);

static int take_order(struct job *j, json_t *o)
{
	const char *fin = json_string_value(json_object_get(o, "finalize"));
	const char *cert = json_string_value(json_object_get(o, "certificate"));
	json_t *az = json_object_get(o, "authorizations");

	if (fin != NULL && j->finalize_url == NULL)
		j->finalize_url = strdup(fin);
	if (cert != NULL && j->cert_url == NULL)
		j->cert_url = strdup(cert);
	if (json_is_array(az) && j->authzs == NULL)
		j->authzs = json_incref(az);
	if (j->finalize_url == NULL || j->authzs == NULL) {
		cs_acme__job_fail(j, -EPROTO, "%s: an order without finalize or authorizations: %.300s",
				  j->rq.url, cs_acme__body_text(&j->resp));
		return -1;
	}
	return 0;
}

/* Polls the order after Retry-After, or the next interval, which then doubles. */
static void poll_later(struct job *j)
{
	int64_t ms = j->resp.retry_after > 0 ? j->resp.retry_after * 1000 : j->poll_delay_ms;

	if (j->resp.retry_after <= 0)
		j->poll_delay_ms = j->poll_delay_ms * 2 > POLL_MAX_MS ? POLL_MAX_MS
								      : j->poll_delay_ms * 2;
	cs_acme__wait_then(j, ms, poll_order);
}

/* Goes on from an order object according to its status. */
static void order_status(struct job *j, json_t *o)
{
	const char *st = json_string_value(json_object_get(o, "status"));

	if (take_order(j, o) < 0)
		return;
	cs_info("acme %s: %s: order %s is %s", j->a->base.name, j->cert_name, j->order_url,
		st ? st : "(no status)");
	if (st != NULL && strcmp(st, "valid") == 0) {
		if (j->cert_url == NULL) {
			cs_acme__job_fail(j, -EPROTO, "%s: a valid order without a certificate URL",
					  j->order_url);
			return;
		}
		download(j);
	} else if (st != NULL && strcmp(st, "ready") == 0 && !j->finalized) {
		finalize(j);
	} else if (st != NULL && (strcmp(st, "pending") == 0 || strcmp(st, "ready") == 0 ||
				  strcmp(st, "processing") == 0)) {
		if (cs_acme__now_s() - j->poll_started > j->a->poll_timeout_s) {
			cs_acme__job_fail(j, -ETIMEDOUT, "order %s still %s after %lld s", j->order_url, st,
					  (long long)j->a->poll_timeout_s);
			return;
		}
		poll_later(j);
	} else {
		/* invalid: the reason is in the order's or a challenge's error, reported verbatim. */
		cs_acme__job_fail(j, -EPROTO, "order %s is %s: %s", j->order_url, st ? st : "(no status)",
				  cs_acme__body_text(&j->resp));
	}
}

static void on_order(struct job *j)
{
	char type[256] = "";
	json_t *o;

	if (j->resp.code >= 400) {
		cs_acme_msg_problem(j->resp.body, j->resp.len, type, sizeof(type));
		if (j->replaces != NULL && !j->replaces_dropped &&
		    (strcmp(type, PB "alreadyReplaced") == 0 || strcmp(type, PB "malformed") == 0 ||
		     strcmp(type, PB "conflict") == 0)) {
			/* The CA would not take "replaces": order without it rather than not at all. */
			cs_warn("acme %s: %s: the CA refused replaces=%s (%s); ordering without it",
				j->a->base.name, j->cert_name, j->replaces, type);
			j->replaces_dropped = true;
			cs_acme__new_order(j);
			return;
		}
		j->retry_after = j->resp.retry_after;
		cs_acme__job_fail(j, j->resp.code == 429 ? -EAGAIN : -EPROTO, "POST %s: HTTP %ld: %s",
				  j->rq.url, j->resp.code, cs_acme__body_text(&j->resp));
		return;
	}
	if (j->resp.location == NULL) {
		cs_acme__job_fail(j, -EPROTO, "POST %s: no Location for the order", j->rq.url);
		return;
	}
	j->order_url = strdup(j->resp.location);
	if (j->order_url != NULL && j->order_created != NULL)
		j->order_created(j->arg, j->order_url);
	o = cs_acme__resp_json(j);
	if (o == NULL)
		return;
	const char *st = json_string_value(json_object_get(o, "status"));
	if (take_order(j, o) < 0) {
		json_decref(o);
		return;
	}
	cs_info("acme %s: %s: order %s is %s", j->a->base.name, j->cert_name, j->order_url,
		st ? st : "(no status)");
	if (st != NULL && strcmp(st, "pending") == 0) {
		json_decref(o);
		j->idx = 0;
		authz_next(j);
		return;
	}
	order_status(j, o);
	json_decref(o);
}

/* The answer to the POST-as-GET of an order to resume: on from its status, or a new order. */
static void on_resumed(struct job *j)
{
	const char *st;
	json_t *o;

	if (j->resp.code >= 400) {
		cs_notice("acme %s: %s: cannot resume order %s (HTTP %ld); ordering anew",
			  j->a->base.name, j->cert_name, j->resume, j->resp.code);
		cs_acme__new_order(j);
		return;
	}
	o = cs_acme__resp_json(j);
	if (o == NULL)
		return;
	st = json_string_value(json_object_get(o, "status"));
	if (st == NULL || strcmp(st, "invalid") == 0) {
		json_decref(o);
		cs_notice("acme %s: %s: order %s is %s; ordering anew", j->a->base.name, j->cert_name,
			  j->resume, st ? st : "without a status");
		cs_acme__new_order(j);
		return;
	}
	j->order_url = strdup(j->resume);
	if (j->order_url == NULL || take_order(j, o) < 0) {
		json_decref(o);
		if (j->order_url == NULL)
			cs_acme__job_fail(j, -ENOMEM, "out of memory");
		return;
	}
	cs_notice("acme %s: %s: resuming order %s (%s)", j->a->base.name, j->cert_name, j->resume,
		  st);
	if (strcmp(st, "pending") == 0) {
		json_decref(o);
		j->idx = 0;
		authz_next(j);
		return;
	}
	order_status(j, o);
	json_decref(o);
}

/* Goes on with the order an earlier attempt of this request created (req->resume_order). */
void cs_acme__resume_order(struct job *j)
{
	j->poll_started = cs_acme__now_s();
	j->poll_delay_ms = POLL_FIRST_MS;
	cs_acme__request(j, NULL, j->resume, NULL, RQ_ACCEPT_ERRORS, on_resumed);
}

void cs_acme__new_order(struct job *j)
{
	struct cs_acme *a = j->a;
	const char *profile = NULL, *replaces = NULL;
	char *payload;

	if (a->profile != NULL) {
		if (cs_acme_msg_profile_offered(a->dir, a->profile))
			profile = a->profile;
		else
			cs_warn("acme %s: the CA does not offer profile %s; ordering without it",
				a->base.name, a->profile);
	}
	if (j->replaces != NULL && !j->replaces_dropped && cs_acme__dir_url(a, "renewalInfo") != NULL)
		replaces = j->replaces;
	payload = cs_acme_msg_new_order(j->names, j->n_names, replaces, profile);
	if (payload == NULL) {
		cs_acme__job_fail(j, -ENOMEM, "out of memory");
		return;
	}
	j->poll_started = cs_acme__now_s();
	j->poll_delay_ms = POLL_FIRST_MS;
	cs_acme__request(j, NULL, cs_acme__dir_url(a, "newOrder"), payload, RQ_ACCEPT_ERRORS, on_order);
}

/* ---- authorizations and challenges -------------------------------------- */

static void after_token_file(struct job *j)
{
	if (j->host_rc < 0) {
		cs_acme__job_fail(j, j->host_rc, "http-01 webroot: %s", j->host_err);
		return;
	}
	j->ch[j->n_ch - 1].set_up = true;
	j->idx++;
	authz_next(j);
}

static void after_add_hook(struct job *j)
{
	struct chall *c = &j->ch[j->n_ch - 1];

	if (j->host_rc != 0) {
		/* Nothing to take back: a failed add is not set up (the hook says so). */
		cs_acme__job_fail(j, -EIO, "dns_hook %s add _acme-challenge.%s failed with status %d%s%s",
				  j->a->dns_hook, c->ident, j->host_rc, j->host_rc < 0 ? ": " : "",
				  j->host_rc < 0 ? j->host_err : "");
		return;
	}
	c->set_up = true;
	j->idx++;
	authz_next(j);
}

/* Answers the newest challenge of j on the responder, which is there now, or fails j. */
static void responder_ready(struct job *j)
{
	struct cs_acme *a = j->a;
	struct chall *c = &j->ch[j->n_ch - 1];

	if (a->responder == NULL) {
		cs_acme__job_fail(j, -EADDRINUSE, "http-01 responder: %s", a->listen_err);
		return;
	}
	if (cs_acme_http01_add(a->responder, c->token, c->keyauth) < 0) {
		cs_acme__job_fail(j, -ENOMEM, "out of memory");
		return;
	}
	c->set_up = true;
	j->idx++;
	authz_next(j);
}

/* The host's listening socket (or why there is none): the responder, then every job waiting for it. */
static void on_listen(void *arg, int status, int fd, const char *error)
{
	struct cs_acme *a = arg;
	struct job *j;
	TAILQ_HEAD(, job) waiting = TAILQ_HEAD_INITIALIZER(waiting);

	a->listen_pending = false;
	snprintf(a->listen_err, sizeof(a->listen_err), "%s", error != NULL ? error : "");
	if (status == 0 && (a->closing || a->responder != NULL)) {
		if (fd >= 0)
			close(fd);
	} else if (status == 0) {
		a->responder = cs_acme_http01_open_fd(a->base.loop, fd, a->listen_err,
						      sizeof(a->listen_err));
	} else if (a->listen_err[0] == '\0') {
		snprintf(a->listen_err, sizeof(a->listen_err), "%s", strerror(-status));
	}
	/* A job that fails now may make another ask again: it waits for that answer. */
	TAILQ_CONCAT(&waiting, &a->listen_waiters, listen_link);
	while ((j = TAILQ_FIRST(&waiting)) != NULL) {
		TAILQ_REMOVE(&waiting, j, listen_link);
		j->in_host = false;
		cs_acme__step(j, responder_ready);
	}
}

/* Returns the challenge of type want in chs, or NULL with the types offered listed in offered. */
static json_t *find_challenge(json_t *chs, const char *want, char *offered, size_t len)
{
	size_t i;
	json_t *ch;

	json_array_foreach(chs, i, ch) {
		const char *t = json_string_value(json_object_get(ch, "type"));
		if (t == NULL)
			continue;
		if (strcmp(t, want) == 0)
			return ch;
		size_t used = strlen(offered);
		snprintf(offered + used, len - used, "%s%s", used ? ", " : "", t);
	}
	return NULL;
}

/* Sets challenge c up (a DNS record, a webroot token file or a responder entry), then goes on. */
static void set_up(struct job *j, struct chall *c)
{
	struct cs_acme *a = j->a;
	int rc;

	if (c->type == CS_ACME_DNS01) {
		c->by_host = true;
		cs_acme__host_chall(j, c, true, after_add_hook);
	} else if (a->webroot != NULL) {
		c->by_host = true;
		cs_acme__host_chall(j, c, true, after_token_file);
	} else if (a->responder != NULL) {
		responder_ready(j);
	} else {
		/* The host binds http_listen once for all the jobs that wait. */
		j->in_host = true;
		TAILQ_INSERT_TAIL(&a->listen_waiters, j, listen_link);
		if (a->listen_pending)
			return;
		a->listen_pending = true;
		rc = a->host_ops->listen(a->host, j->arg, on_listen, a);
		if (rc < 0)
			on_listen(a, rc, -1, NULL);
	}
}

static void on_authz(struct job *j)
{
	struct cs_acme *a = j->a;
	json_t *az = cs_acme__resp_json(j), *ch;
	const char *st, *ident, *want = a->challenge == CS_ACME_DNS01 ? "dns-01" : "http-01";
	char offered[256] = "";

	if (az == NULL)
		return;
	st = json_string_value(json_object_get(az, "status"));
	ident = json_string_value(json_object_get(json_object_get(az, "identifier"), "value"));
	if (st != NULL && strcmp(st, "valid") == 0) {
		json_decref(az);
		j->idx++;
		authz_next(j);
		return;
	}
	if (st == NULL || strcmp(st, "pending") != 0 || ident == NULL) {
		cs_acme__job_fail(j, -EPROTO, "authorization %s is %s: %s", j->rq.url, st ? st : "(no status)",
				  cs_acme__body_text(&j->resp));
		json_decref(az);
		return;
	}
	ch = find_challenge(json_object_get(az, "challenges"), want, offered, sizeof(offered));
	if (ch == NULL) {
		cs_acme__job_fail(j, -ENOTSUP, "the CA offers no %s challenge for %s (offers: %s)", want,
				  ident, offered[0] ? offered : "none");
		json_decref(az);
		return;
	}
	const char *token = json_string_value(json_object_get(ch, "token"));
	const char *url = json_string_value(json_object_get(ch, "url"));
	if (!cs_acme_host_token_ok(token) || url == NULL) {
		cs_acme__job_fail(j, -EPROTO, "authorization %s: a %s challenge without a usable token or url",
				  j->rq.url, want);
		json_decref(az);
		return;
	}
	struct chall *arr = realloc(j->ch, (j->n_ch + 1) * sizeof(*arr));
	if (arr == NULL) {
		json_decref(az);
		cs_acme__job_fail(j, -ENOMEM, "out of memory");
		return;
	}
	j->ch = arr;
	struct chall *c = &j->ch[j->n_ch++];
	memset(c, 0, sizeof(*c));
	c->type = a->challenge;
	c->url = strdup(url);
	c->token = strdup(token);
	c->ident = strdup(ident);
	/* The responder's answer; the host makes its own for token files and DNS records. */
	if (asprintf(&c->keyauth, "%s.%s", token, a->thumb) < 0)
		c->keyauth = NULL;
	json_decref(az);
	if (c->url == NULL || c->token == NULL || c->ident == NULL || c->keyauth == NULL) {
		cs_acme__job_fail(j, -ENOMEM, "out of memory");
		return;
	}
	cs_info("acme %s: %s: %s challenge for %s", a->base.name, j->cert_name, want, c->ident);
	set_up(j, c);
}

static void respond_next(struct job *j);

static void on_responded(struct job *j)
{
	json_t *c = json_loadb(j->resp.body, j->resp.len, 0, NULL);
	const char *st = json_string_value(json_object_get(c, "status"));

	if (st == NULL || strcmp(st, "valid") != 0)
		j->validating = true;
	json_decref(c);
	j->idx++;
	respond_next(j);
}

/*
 * Tells the CA, challenge after challenge, that it may validate; then polls
 * the order: at once when every challenge is valid already, else soon.
 */
static void respond_next(struct job *j)
{
	if (j->idx >= j->n_ch) {
		if (j->validating)
			poll_later(j);
		else
			poll_order(j);
		return;
	}
	char *payload = strdup("{}");
	if (payload == NULL) {
		cs_acme__job_fail(j, -ENOMEM, "out of memory");
		return;
	}
	cs_acme__request(j, NULL, j->ch[j->idx].url, payload, 0, on_responded);
}

static void authz_next(struct job *j)
{
	if (j->idx >= json_array_size(j->authzs)) {
		j->idx = 0;
		respond_next(j);
		return;
	}
	const char *url = json_string_value(json_array_get(j->authzs, j->idx));
	if (url == NULL) {
		cs_acme__job_fail(j, -EPROTO, "order %s: an authorization that is not a URL", j->order_url);
		return;
	}
	cs_acme__request(j, NULL, url, NULL, 0, on_authz);
}

/* ---- polling, finalizing, downloading ----------------------------------- */

static void on_order_polled(struct job *j)
{
	json_t *o = cs_acme__resp_json(j);

	if (o == NULL)
		return;
	order_status(j, o);
	json_decref(o);
}

static void poll_order(struct job *j)
{
	cs_acme__request(j, NULL, j->order_url, NULL, 0, on_order_polled);
}

static void on_finalized(struct job *j)
{
	json_t *o = cs_acme__resp_json(j);

	if (o == NULL)
		return;
	j->finalized = true;
	j->poll_delay_ms = POLL_FIRST_MS; /* the certificate is usually there at once */
	order_status(j, o);
	json_decref(o);
}

static void finalize(struct job *j)
{
	json_t *p = json_pack("{s:s}", "csr", j->csr64);
	char *payload = p != NULL ? json_dumps(p, JSON_COMPACT) : NULL;

	json_decref(p);
	if (payload == NULL) {
		cs_acme__job_fail(j, -ENOMEM, "out of memory");
		return;
	}
	j->finalized = true;
	cs_acme__request(j, NULL, j->finalize_url, payload, 0, on_finalized);
}

/* Returns the issuer CN of the last certificate of a PEM chain, in buf ("" when none). */
static const char *top_issuer_cn(const char *pem, char *buf, size_t len)
{
	X509 *leaf = NULL;
	STACK_OF(X509) *chain = NULL;

	buf[0] = '\0';
	if (cs_acme__parse_chain(pem, &leaf, &chain) == 0) {
		X509 *top = sk_X509_num(chain) > 0 ? sk_X509_value(chain, sk_X509_num(chain) - 1)
						   : leaf;
		X509_NAME_get_text_by_NID(X509_get_issuer_name(top), NID_commonName, buf, (int)len);
		X509_free(leaf);
		sk_X509_pop_free(chain, X509_free);
	}
	return buf;
}

static void try_alternate(struct job *j);

static void on_alternate(struct job *j)
{
	char cn[256];

	if (j->resp.code < 400 &&
	    strcmp(top_issuer_cn(j->resp.body, cn, sizeof(cn)), j->a->preferred_chain) == 0) {
		cs_info("acme %s: %s: using the alternate chain %s (issued by %s)", j->a->base.name,
			j->cert_name, j->rq.url, cn);
		free(j->chain_pem);
		j->chain_pem = strdup(j->resp.body);
		if (j->chain_pem == NULL)
			cs_acme__job_fail(j, -ENOMEM, "out of memory");
		else
			cs_acme__job_end(j);
		return;
	}
	j->alt_idx++;
	try_alternate(j);
}

static void try_alternate(struct job *j)
{
	if (j->alt_idx >= j->n_alts) {
		cs_info("acme %s: %s: no chain under %s; keeping the default one", j->a->base.name,
			j->cert_name, j->a->preferred_chain);
		cs_acme__job_end(j);
		return;
	}
	cs_acme__request(j, NULL, j->alts[j->alt_idx], NULL, RQ_PEM | RQ_ACCEPT_ERRORS, on_alternate);
}

static void on_certificate(struct job *j)
{
	char cn[256];

	j->chain_pem = strdup(j->resp.body);
	if (j->chain_pem == NULL) {
		cs_acme__job_fail(j, -ENOMEM, "out of memory");
		return;
	}
	for (size_t i = 0; i < j->resp.n_alts; i++) {
		j->alts[j->n_alts++] = j->resp.alts[i];
		j->resp.alts[i] = NULL;
	}
	j->resp.n_alts = 0;
	if (j->a->preferred_chain == NULL ||
	    strcmp(top_issuer_cn(j->chain_pem, cn, sizeof(cn)), j->a->preferred_chain) == 0) {
		cs_acme__job_end(j);
		return;
	}
	j->alt_idx = 0;
	try_alternate(j);
}

static void download(struct job *j)
{
	cs_acme__request(j, NULL, j->cert_url, NULL, RQ_PEM, on_certificate);
}
