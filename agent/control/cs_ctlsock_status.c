/*
 * cs_ctlsock_status - the status answer, and its cache: status is answered
 * from the last rendered answer for as long as everything it is made of is
 * the same (status_key), so that a status request costs a read, a few
 * comparisons and a write.
 */
#include "cs_ctlsock_int.h"
#include "cs_netproc.h"
#include "cs_capsync.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static void add_problem(void *arg, const char *section, const char *file, const char *reason)
{
	json_array_append_new(arg, json_pack("{s:s,s:s,s:s}", CS_PROTO_K_SECTION, section,
					     CS_PROTO_K_FILE, file ? file : "", CS_PROTO_K_REASON,
					     reason ? reason : ""));
}

static void add_cert_problem(void *arg, const struct cs_cert_status *st)
{
	json_array_append_new(arg,
			      json_pack("{s:s,s:s,s:o,s:i}", CS_PROTO_K_NAME, st->name,
					CS_PROTO_K_STATE, cs_pipeline_state_name(st->state),
					CS_PROTO_K_LAST_ERROR, cs_ctlsock__str_json(st->last_error),
					CS_PROTO_K_FAILURES, st->failures));
}

/*
 * What status says about all certs: from the backend's summary when it
 * keeps one, else by looking at each cert. Calls problem(arg, status) for
 * each cert with a problem when problem is not NULL.
 */
static void summarize(struct cs_ctlsock *s, struct cs_pipeline_summary *sum,
		      void (*problem)(void *arg, const struct cs_cert_status *st), void *arg)
{
	memset(sum, 0, sizeof(*sum));
	if (s->starting != NULL)
		return; /* no certs yet */
	if (s->be.summary != NULL && s->be.problems != NULL) {
		s->be.summary(s->be.arg, sum);
		if (problem != NULL)
			s->be.problems(s->be.arg, problem, arg);
		return;
	}
	sum->n_certs = s->be.count(s->be.arg);
	for (size_t i = 0; i < sum->n_certs; i++) {
		struct cs_cert_status st;
		s->be.status(s->be.arg, i, &st);
		if ((unsigned)st.state < CS_CERT_N_STATES)
			sum->per_state[st.state]++;
		if (problem != NULL && cs_ctlsock__bad_state(st.state))
			problem(arg, &st);
		if (st.drift != CS_DRIFT_NONE && sum->n_drifted++ == 0)
			sum->drifted_cert = st.name;
		if (st.next_renewal != 0 &&
		    (sum->next_renewal == 0 || st.next_renewal < sum->next_renewal)) {
			sum->next_renewal = st.next_renewal;
			sum->next_renewal_cert = st.name;
		}
	}
}

static json_t *cmd_status(struct cs_ctlsock *s)
{
	static const enum cs_cert_state states[] = {
		CS_CERT_VALID,   CS_CERT_DUE,     CS_CERT_RENEWING, CS_CERT_FAILED,
		CS_CERT_EXPIRED, CS_CERT_MISSING, CS_CERT_UNKNOWN,
	};
	struct cs_pipeline_summary sum;
	json_t *by = json_object(), *problems = json_array();

	summarize(s, &sum, add_cert_problem, problems);
	for (size_t k = 0; k < sizeof(states) / sizeof(states[0]); k++)
		json_object_set_new(by, cs_pipeline_state_name(states[k]),
				    json_integer((json_int_t)sum.per_state[states[k]]));
	json_t *cap = json_array();
	if (s->be.capath_problems != NULL && s->starting == NULL)
		s->be.capath_problems(s->be.arg, add_problem, cap);
	if (s->starting != NULL)
		return json_pack(
			"{s:b,s:s,s:I,s:o,s:I,s:I,s:o,s:o,s:o,s:o,s:o,s:I,s:o,s:s}", CS_PROTO_K_OK,
			1, CS_PROTO_K_VERSION, CS_VERSION, CS_PROTO_K_PID, (json_int_t)getpid(),
			CS_PROTO_K_STARTED, cs_ctlsock__time_json(s->ag.start_time),
			CS_PROTO_K_UPTIME, (json_int_t)(time(NULL) - s->ag.start_time),
			CS_PROTO_K_CERTS, (json_int_t)0, CS_PROTO_K_STATES, by, CS_PROTO_K_PROBLEMS,
			problems, CS_PROTO_K_NEXT_RENEWAL, json_null(),
			CS_PROTO_K_NEXT_RENEWAL_CERT, json_null(), CS_PROTO_K_CAPATH_PROBLEMS, cap,
			CS_PROTO_K_DRIFTED, (json_int_t)0, CS_PROTO_K_DRIFTED_CERT, json_null(),
			CS_PROTO_K_STARTING, s->starting);
	json_t *st = json_pack("{s:b,s:s,s:I,s:o,s:I,s:I,s:o,s:o,s:o,s:o,s:o,s:I,s:o}", CS_PROTO_K_OK, 1,
			 CS_PROTO_K_VERSION, CS_VERSION, CS_PROTO_K_PID, (json_int_t)getpid(),
			 CS_PROTO_K_STARTED, cs_ctlsock__time_json(s->ag.start_time),
			 CS_PROTO_K_UPTIME, (json_int_t)(time(NULL) - s->ag.start_time),
			 CS_PROTO_K_CERTS, (json_int_t)sum.n_certs, CS_PROTO_K_STATES, by,
			 CS_PROTO_K_PROBLEMS, problems, CS_PROTO_K_NEXT_RENEWAL,
			 cs_ctlsock__time_json(sum.next_renewal), CS_PROTO_K_NEXT_RENEWAL_CERT,
			 cs_ctlsock__str_json(sum.next_renewal_cert), CS_PROTO_K_CAPATH_PROBLEMS,
			 cap, CS_PROTO_K_DRIFTED, (json_int_t)sum.n_drifted,
			 CS_PROTO_K_DRIFTED_CERT, cs_ctlsock__str_json(sum.drifted_cert));
	if (st != NULL && cs_netproc_enabled()) {
		struct cs_netproc_stats np;
		cs_netproc_stats(&np);
		json_object_set_new(st, CS_PROTO_K_NETPROC,
				    json_pack("{s:I,s:I,s:I,s:I}", CS_PROTO_K_PID, (json_int_t)np.pid,
					      CS_PROTO_K_RESTARTS, (json_int_t)np.restarts,
					      CS_PROTO_K_VIOLATIONS, (json_int_t)np.violations,
					      CS_PROTO_K_IN_FLIGHT, (json_int_t)np.requests));
	}
	return st;
}

static void key_put(struct keybuf *k, const void *data, size_t n)
{
	if (k->failed)
		return;
	if (k->len + n > k->cap) {
		size_t cap = k->cap ? k->cap : 512;
		while (cap < k->len + n)
			cap *= 2;
		unsigned char *p = realloc(k->p, cap);
		if (p == NULL) {
			k->failed = true;
			return;
		}
		k->p = p;
		k->cap = cap;
	}
	memcpy(k->p + k->len, data, n);
	k->len += n;
}

/* A string (or NULL) such that no two sequences of them give the same bytes. */
static void key_str(struct keybuf *k, const char *str)
{
	unsigned char tag = str != NULL;

	key_put(k, &tag, 1);
	if (str != NULL)
		key_put(k, str, strlen(str) + 1);
}

static void key_tag(struct keybuf *k, char tag)
{
	key_put(k, &tag, 1);
}

static void key_cert_problem(void *arg, const struct cs_cert_status *st)
{
	key_tag(arg, 'P');
	key_str(arg, st->name);
	key_put(arg, &st->state, sizeof(st->state));
	key_str(arg, st->last_error);
	key_put(arg, &st->failures, sizeof(st->failures));
}

static void key_capath_problem(void *arg, const char *section, const char *file,
			       const char *reason)
{
	key_tag(arg, 'C');
	key_str(arg, section);
	key_str(arg, file);
	key_str(arg, reason);
}

/*
 * Writes into k every input of cmd_status but the constants (version,
 * pid): what the agent is doing while it starts, its start, the second now
 * (uptime), the summary, each cert problem and each CApath problem. Two
 * equal keys make the same answer. Costs a summary and a walk over the
 * problems, nothing per cert.
 */
static void status_key(struct cs_ctlsock *s, struct keybuf *k)
{
	struct cs_pipeline_summary sum;
	time_t now = time(NULL);

	k->len = 0;
	k->failed = false;
	key_str(k, s->starting);
	key_put(k, &s->ag.start_time, sizeof(s->ag.start_time));
	key_put(k, &now, sizeof(now));
	summarize(s, &sum, key_cert_problem, k);
	key_tag(k, 'E');
	key_put(k, &sum.n_certs, sizeof(sum.n_certs));
	key_put(k, sum.per_state, sizeof(sum.per_state));
	key_put(k, &sum.next_renewal, sizeof(sum.next_renewal));
	key_str(k, sum.next_renewal_cert);
	key_put(k, &sum.n_drifted, sizeof(sum.n_drifted));
	key_str(k, sum.drifted_cert);
	if (s->be.capath_problems != NULL && s->starting == NULL)
		s->be.capath_problems(s->be.arg, key_capath_problem, k);
	key_tag(k, 'E');
}

/*
 * Returns the status answer (borrowed from s->status_cache), rendered again
 * only when its key changed: hundreds of clients asking each second get the
 * same bytes without a JSON document being built for each. NULL on ENOMEM.
 */
struct answer *cs_ctlsock__status_answer(struct cs_ctlsock *s)
{
	struct keybuf swap;
	struct answer *a;
	json_t *j;

	status_key(s, &s->key_new);
	if (s->status_cache != NULL && !s->key_new.failed && !s->status_key.failed &&
	    s->key_new.len == s->status_key.len &&
	    memcmp(s->key_new.p, s->status_key.p, s->key_new.len) == 0)
		return s->status_cache;
	if ((j = cmd_status(s)) == NULL || (a = cs_ctlsock__answer_json(j)) == NULL)
		return NULL;
	cs_ctlsock__answer_unref(s->status_cache);
	s->status_cache = a;
	swap = s->status_key;
	s->status_key = s->key_new;
	s->key_new = swap;
	return a;
}

