/*
 * cs_ctlsock_renew - renew, reload and rehash. A renew all starts its
 * renewals in paced slices (renew_all_turn) so that it does not hold the
 * loop; renew --wait answers when the last of its renewals has ended.
 */
#include "cs_ctlsock_int.h"
#include "cs_log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* What a renew request without wait answers for one cert: NULL when there is no such cert. */
static const char *renew_result(int rc)
{
	if (rc == -ENOENT)
		return NULL;
	if (rc == -EBUSY)
		return CS_PROTO_R_BUSY;
	if (rc < 0)
		return CS_PROTO_R_ERROR;
	return rc == 1 ? CS_PROTO_R_NOT_DUE : CS_PROTO_R_STARTED;
}

/* One cert of a renew --wait: the request it belongs to. */
struct renew_waiter {
	struct deferred *d;
	char *name;
};

static void renew_add_result(json_t *results, const char *name, const char *result,
			     const char *msg)
{
	json_t *o = json_pack("{s:s,s:s}", CS_PROTO_K_NAME, name, CS_PROTO_K_RESULT, result);

	if (o != NULL && msg != NULL)
		json_object_set_new(o, CS_PROTO_K_MESSAGE, json_string(msg));
	json_array_append_new(results, o);
}

/*
 * The answer to a renew once every renewal of it has ended (at once without
 * wait). For all, results holds the certs that were not just "not due", and
 * counts says how many answered each way.
 */
static json_t *renew_wait_answer(struct deferred *d)
{
	json_t *one;

	if (strcmp(d->name, CS_PROTO_ALL) == 0)
		return json_pack("{s:b,s:O,s:{s:I,s:I,s:I,s:I}}", CS_PROTO_K_OK, 1,
				 CS_PROTO_K_RESULTS, d->results, CS_PROTO_K_COUNTS,
				 CS_PROTO_K_STARTED, (json_int_t)d->n_started, CS_PROTO_K_NOT_DUE,
				 (json_int_t)d->n_not_due, CS_PROTO_K_BUSY, (json_int_t)d->n_busy,
				 CS_PROTO_K_ERROR, (json_int_t)d->n_error);
	one = json_array_get(d->results, 0);
	if (one == NULL)
		return cs_ctlsock__error_json(CS_PROTO_E_INTERNAL, "no result");
	json_t *o = json_deep_copy(one);
	json_object_set_new(o, CS_PROTO_K_OK, json_true());
	return o;
}

static void on_renewal_end(void *arg, enum cs_renewal_outcome o, const char *msg)
{
	struct renew_waiter *w = arg;
	struct deferred *d = w->d;

	cs_notice("status socket: renew %s: %s%s%s", w->name, cs_pipeline_outcome_name(o),
		  msg ? ": " : "", msg ? msg : "");
	renew_add_result(d->results, w->name, cs_pipeline_outcome_name(o), msg);
	free(w->name);
	free(w);
	if (--d->left == 0)
		cs_ctlsock__deferred_answer(d, d->c != NULL ? renew_wait_answer(d) : NULL, true);
}

/* Counts the immediate answer r of one cert of a renew all. */
static void renew_count(struct deferred *d, int rc)
{
	if (rc == 0)
		d->n_started++;
	else if (rc == 1)
		d->n_not_due++;
	else if (rc == -EBUSY)
		d->n_busy++;
	else
		d->n_error++;
}

/* The name of cert i, borrowed from the backend (its configuration outlives the request). */
static const char *cert_name(struct cs_ctlsock *s, size_t i)
{
	struct cs_cert_status st;

	if (s->be.name != NULL)
		return s->be.name(s->be.arg, i);
	s->be.status(s->be.arg, i, &st);
	return st.name;
}

/* How long one slice may spend starting the renewals of a renew all. */
#define RENEW_SLICE_NS 1000000

/*
 * Asks the backend to renew cert, one of the request d. For a single cert
 * sets *resp when there is no such cert.
 */
static void renew_cert(struct cs_ctlsock *s, struct deferred *d, const char *cert, json_t **resp)
{
	struct renew_waiter *w = NULL;
	int rc;

	if (d->wait && (w = calloc(1, sizeof(*w))) != NULL) {
		w->d = d;
		w->name = strdup(cert);
	}
	if (d->wait && (w == NULL || w->name == NULL)) {
		rc = -ENOMEM;
	} else {
		if (w != NULL)
			d->left++;
		rc = s->be.renew(s->be.arg, cert, d->force, w ? on_renewal_end : NULL, w);
		if (rc != 0 && w != NULL)
			d->left--;
	}
	if (d->all)
		renew_count(d, rc);
	if (rc != 0 || !d->wait) {
		const char *r = renew_result(rc);
		if (r == NULL && !d->all) {
			*resp = cs_ctlsock__error_json(CS_PROTO_E_NOT_FOUND,
						       "no cert \"%s\" in the configuration",
						       d->name);
		} else if (!d->all || rc != 1) {
			renew_add_result(d->results, cert, r ? r : CS_PROTO_R_ERROR, NULL);
			if (!d->all)
				cs_notice("status socket: renew %s%s: %s", d->name,
					  d->force ? " (forced)" : "", r);
		}
	}
	if (rc != 0 && w != NULL) {
		free(w->name);
		free(w);
	}
}

/*
 * Renews the certs of a renew all from d->next on, for at most
 * RENEW_SLICE_NS (at least one cert). Returns true once every cert has
 * been asked for.
 */
static bool renew_slice(struct cs_ctlsock *s, struct deferred *d)
{
	uint64_t t0 = uv_hrtime(), until = t0 + RENEW_SLICE_NS;
	/*
	 * The count is asked again on each turn: the configuration may have
	 * changed between turns (the name of cert i is borrowed for one turn).
	 */
	size_t n = s->be.count(s->be.arg);

	while (d->next < n) {
		/*
		 * Borrowed: the backend's configuration changes only between
		 * loop turns, so the name stays valid through this iteration
		 * even when the renewal ends inside the call.
		 */
		const char *cert = cert_name(s, d->next++);
		json_t *none = NULL; /* set only for a single cert */
		if (cert != NULL)
			renew_cert(s, d, cert, &none);
		if (uv_hrtime() >= until)
			break;
	}
	s->renew_pause_ms = (uv_hrtime() - t0 + 999999) / 1000000;
	return d->next >= n;
}

/* Logs what a renew all started once every cert has been asked for. */
static void renew_all_logged(const struct deferred *d)
{
	cs_notice("status socket: renew all%s%s: %zu started, %zu not due, %zu busy%s",
		  d->force ? " (forced)" : "", d->wait ? " (waiting)" : "", d->n_started,
		  d->n_not_due, d->n_busy, d->n_error > 0 ? ", some failed to start" : "");
}

/*
 * One more slice of the oldest renew all still starting renewals. Once it
 * has asked for every cert it is answered (or waits for its renewals, with
 * wait), as cmd_renew would have answered it at once.
 */
static void renew_all_turn(uv_timer_t *t)
{
	struct cs_ctlsock *s = t->data;
	struct deferred *d = STAILQ_FIRST(&s->renew_all);

	if (d != NULL && renew_slice(s, d)) {
		STAILQ_REMOVE_HEAD(&s->renew_all, rlink);
		renew_all_logged(d);
		if (--d->left == 0)
			cs_ctlsock__deferred_answer(d, d->c != NULL ? renew_wait_answer(d) : NULL,
						    true);
	}
	if (!STAILQ_EMPTY(&s->renew_all))
		uv_timer_start(&s->rtimer, renew_all_turn, s->renew_pause_ms, 0);
}

/*
 * renew NAME|all [force] [wait]. With wait the answer comes when every
 * renewal started has ended (NULL returned, c->deferred set); busy and
 * not_due are answered at once. Renew all lists in its results only the
 * certs that were not simply not due (the count says how many were): with
 * nothing due, the answer is a few bytes whatever the number of certs.
 *
 * Starting a renewal costs the loop a few milliseconds (the deployed key is
 * decoded), so renew all starts them in slices of at most RENEW_SLICE_NS,
 * each followed by a pause as long, and answers once it has asked for every
 * cert (NULL returned, c->deferred set until then): other clients are
 * served between the slices instead of waiting seconds behind a thousand
 * renewals.
 */
json_t *cs_ctlsock__cmd_renew(struct client *c, const char *name, bool force, bool wait)
{
	struct cs_ctlsock *s = c->s;
	struct deferred *d = NULL;
	json_t *resp = NULL;

	if (name == NULL)
		return cs_ctlsock__error_json(CS_PROTO_E_BAD_REQUEST,
					      "renew needs a \"name\" (a cert or \"all\")");
	if ((d = calloc(1, sizeof(*d))) == NULL || (d->name = strdup(name)) == NULL ||
	    (d->results = json_array()) == NULL)
		goto out;
	d->c = c;
	d->all = strcmp(name, CS_PROTO_ALL) == 0;
	d->force = force;
	d->wait = wait;
	d->left = 1; /* held until every renewal has been asked for */
	if (d->all) {
		if (!renew_slice(s, d)) {
			/* The rest on the next turns (renew_all_turn). */
			uv_read_stop((uv_stream_t *)&c->pipe);
			c->deferred = d;
			STAILQ_INSERT_TAIL(&s->renew_all, d, rlink);
			if (!uv_is_active((uv_handle_t *)&s->rtimer))
				uv_timer_start(&s->rtimer, renew_all_turn, s->renew_pause_ms, 0);
			return NULL;
		}
		renew_all_logged(d);
	} else {
		renew_cert(s, d, name, &resp);
	}
	if (--d->left > 0) {
		/* Renewals are running: answer when the last one ends. */
		uv_read_stop((uv_stream_t *)&c->pipe);
		c->deferred = d;
		d = NULL;
		goto out;
	}
	if (resp == NULL)
		resp = renew_wait_answer(d);
out:
	if (d != NULL) {
		json_decref(d->results);
		free(d->name);
		free(d);
	}
	return resp;
}

json_t *cs_ctlsock__cmd_hook(struct cs_ctlsock *s, const char *cmd, const char *name,
			int (*hook)(void *, const char *, char *, size_t))
{
	char err[512] = "";
	int rc;

	if (hook == NULL)
		return cs_ctlsock__error_json(CS_PROTO_E_UNAVAILABLE,
				  "%s is not available yet: the pipeline has no %s step this "
				  "agent can trigger",
				  cmd, cmd);
	rc = hook(s->be.arg, name, err, sizeof(err));
	if (rc == -ENOENT)
		return cs_ctlsock__error_json(CS_PROTO_E_NOT_FOUND, "%s",
					      err[0] ? err : "no such name");
	if (rc < 0)
		return cs_ctlsock__error_json(CS_PROTO_E_FAILED, "%s",
					      err[0] ? err : strerror(-rc));
	return json_pack("{s:b}", CS_PROTO_K_OK, 1);
}

