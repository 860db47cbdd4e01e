/*
 * cs_acme_account - the directory, the account key and the account.
 *
 * The first job of an issuer reads the directory, asks the host for the
 * account key (which it loads or makes; the issuer keeps only its public
 * half, for the JWK and the thumbprint) and finds or creates the account
 * (with the host's external account binding when configured).
 */
#include "cs_acme_int.h"

/* ---- directory, account key, account ----------------------------------- */

void cs_acme__on_directory(struct job *j)
{
	struct cs_acme *a = j->a;
	json_t *d = cs_acme__resp_json(j);

	if (d == NULL)
		return;
	if (!json_is_string(json_object_get(d, "newNonce")) ||
	    !json_is_string(json_object_get(d, "newAccount")) ||
	    !json_is_string(json_object_get(d, "newOrder"))) {
		json_decref(d);
		cs_acme__job_fail(j, -EPROTO, "%s: not an ACME directory (newNonce, newAccount, newOrder)",
				  a->directory);
		return;
	}
	json_decref(a->dir);
	a->dir = d;
	cs_debug("acme %s: directory %s read%s", a->base.name, a->directory,
		 cs_acme__dir_url(a, "renewalInfo") ? " (with renewalInfo)" : "");
	cs_acme__job_start(j);
}


void cs_acme__after_key(struct job *j)
{
	struct cs_acme *a = j->a;

	if (j->host_rc < 0) {
		cs_acme__job_fail(j, j->host_rc, "account key: %s", j->host_err);
		return;
	}
	if (cs_acme_jws_alg(j->host_key) == NULL) {
		cs_acme__job_fail(j, -EINVAL, "account key: neither P-256, P-384 nor RSA");
		return;
	}
	free(a->thumb);
	a->thumb = cs_acme_jws_thumbprint(j->host_key);
	if (a->thumb == NULL) {
		cs_acme__job_fail(j, -ENOMEM, "cannot compute the account key's thumbprint");
		return;
	}
	a->key = j->host_key;
	j->host_key = NULL;
	a->key_existed = j->host_existed;
	cs_acme__job_start(j);
}

static void on_account(struct job *j)
{
	struct cs_acme *a = j->a;
	char type[256] = "";

	if (j->resp.code >= 400) {
		cs_acme_msg_problem(j->resp.body, j->resp.len, type, sizeof(type));
		if (a->key_existed && strcmp(type, PB "accountDoesNotExist") == 0) {
			/* The key is ours but has no account at this CA yet. */
			a->key_existed = false;
			cs_acme__job_start(j);
			return;
		}
		cs_acme__job_fail(j, -EPROTO, "POST %s: HTTP %ld: %s", j->rq.url, j->resp.code,
				  cs_acme__body_text(&j->resp));
		return;
	}
	if (j->resp.location == NULL) {
		cs_acme__job_fail(j, -EPROTO, "POST %s: no Location for the account", j->rq.url);
		return;
	}
	free(a->kid); /* two jobs may have registered again after accountDoesNotExist */
	a->kid = strdup(j->resp.location);
	if (a->kid == NULL) {
		cs_acme__job_fail(j, -ENOMEM, "out of memory");
		return;
	}
	cs_notice("acme %s: account %s (%s)", a->base.name, a->kid,
		  j->resp.code == 201 ? "created" : "found");
	cs_acme__job_start(j);
}

static void account_request(struct job *j);

void cs_acme__new_account(struct job *j)
{
	struct cs_acme *a = j->a;
	const char *url = cs_acme__dir_url(a, "newAccount");

	/* A new account with EAB: the host MACs the key's JWK for url first. */
	if (!a->key_existed && a->eab_kid != NULL && url != NULL) {
		cs_acme__host_eab(j, url, account_request);
		return;
	}
	account_request(j);
}

/* Sends newAccount (with j->host_text as the externalAccountBinding when there is one). */
static void account_request(struct job *j)
{
	struct cs_acme *a = j->a;
	const char *url = cs_acme__dir_url(a, "newAccount");
	json_t *p = json_object();
	char *payload;

	if (p == NULL)
		goto nomem;
	if (a->key_existed) {
		json_object_set_new(p, "onlyReturnExisting", json_true());
	} else {
		json_t *contact = json_array(), *meta = json_object_get(a->dir, "meta");
		for (size_t i = 0; i < a->n_contact; i++)
			json_array_append_new(contact, json_string(a->contact[i]));
		if (a->n_contact > 0)
			json_object_set(p, "contact", contact);
		json_decref(contact);
		if (json_object_get(meta, "termsOfService") != NULL)
			json_object_set_new(p, "termsOfServiceAgreed", json_true());
		if (a->eab_kid != NULL && url != NULL) {
			json_t *eab = j->host_rc == 0 && j->host_text != NULL
					      ? json_loads(j->host_text, 0, NULL)
					      : NULL;
			if (!json_is_object(eab)) {
				json_decref(eab);
				json_decref(p);
				cs_acme__job_fail(j, j->host_rc < 0 ? j->host_rc : -EPROTO,
						  "external account binding: %s",
						  j->host_rc < 0 ? j->host_err : "not a JSON object");
				return;
			}
			json_object_set_new(p, "externalAccountBinding", eab);
		} else if (json_is_true(json_object_get(meta, "externalAccountRequired"))) {
			json_decref(p);
			cs_acme__job_fail(j, -EINVAL,
					  "the CA requires external account binding: set eab_kid and "
					  "eab_hmac_key");
			return;
		}
	}
	payload = json_dumps(p, JSON_COMPACT);
	json_decref(p);
	if (payload == NULL)
		goto nomem;
	cs_acme__request(j, NULL, url, payload, RQ_JWK | RQ_ACCEPT_ERRORS, on_account);
	return;
nomem:
	cs_acme__job_fail(j, -ENOMEM, "out of memory");
}
