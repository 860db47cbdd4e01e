/*
 * cs_events - the subscriber list of the pipeline's events, and the log's
 * subscriber. See cs_events.h for the rules.
 */
#include "cs_events.h"
#include "cs_log.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

const char *cs_events_type_name(enum cs_event_type t)
{
	static const char *const names[CS_EVENT_N] = {
		[CS_EVENT_RENEWAL_STARTED] = "renewal_started",
		[CS_EVENT_ISSUED] = "issued",
		[CS_EVENT_DEPLOYED] = "deployed",
		[CS_EVENT_RELOADED] = "reloaded",
		[CS_EVENT_VERIFIED] = "verified",
		[CS_EVENT_RENEWED] = "renewed",
		[CS_EVENT_FAILED] = "failed",
		[CS_EVENT_ROLLED_BACK] = "rolled_back",
		[CS_EVENT_REPAIRED] = "repaired",
		[CS_EVENT_ADOPTED] = "adopted",
		[CS_EVENT_REVOKED] = "revoked",
		[CS_EVENT_CHANGED] = "changed",
	};

	return (unsigned)t < CS_EVENT_N ? names[t] : "?";
}

const char *cs_events_result_name(enum cs_event_result r)
{
	switch (r) {
	case CS_EVENT_OK:
		return "ok";
	case CS_EVENT_NOT_RUNNING:
		return "not_running";
	case CS_EVENT_ERROR:
		return "failed";
	}
	return "?";
}

/* Returns 0, -EEXIST or -ENOSPC. */
int cs_events_subscribe(struct cs_events *e, cs_event_fn fn, void *arg)
{
	assert(!e->publishing);
	for (unsigned i = 0; i < e->n; i++)
		if (e->sub[i].fn == fn && e->sub[i].arg == arg)
			return -EEXIST;
	if (e->n == CS_EVENTS_MAX)
		return -ENOSPC;
	e->sub[e->n].fn = fn;
	e->sub[e->n].arg = arg;
	e->n++;
	return 0;
}

/* Removes fn(arg), keeping the others' order. */
void cs_events_unsubscribe(struct cs_events *e, cs_event_fn fn, void *arg)
{
	assert(!e->publishing);
	for (unsigned i = 0; i < e->n; i++)
		if (e->sub[i].fn == fn && e->sub[i].arg == arg) {
			memmove(&e->sub[i], &e->sub[i + 1], (e->n - i - 1) * sizeof(e->sub[0]));
			e->n--;
			return;
		}
}

/* Calls each subscriber with ev, in subscription order. */
void cs_events_publish(struct cs_events *e, const struct cs_event *ev)
{
	assert(!e->publishing); /* a subscriber called back into the publisher */
	e->publishing = true;
	for (unsigned i = 0; i < e->n; i++)
		e->sub[i].fn(e->sub[i].arg, ev);
	e->publishing = false;
}

/* The details of ev, as cs_events_log writes them between parentheses. */
size_t cs_events_describe(const struct cs_event *ev, char *d, size_t len)
{
	size_t used = 0;

	if (len == 0)
		return 0;
	d[0] = '\0';
#define ADD(...)                                                                          \
	do {                                                                              \
		if (used < len)                                                           \
			used += (size_t)snprintf(d + used, len - used, "%s",              \
						 used ? ", " : "");                       \
		if (used < len)                                                           \
			used += (size_t)snprintf(d + used, len - used, __VA_ARGS__);      \
	} while (0)
	if (ev->renewal != 0)
		ADD("renewal %u", ev->renewal);
	switch (ev->type) {
	case CS_EVENT_RELOADED:
		ADD("service %s %s", ev->service ? ev->service : "?",
		    cs_events_result_name(ev->result));
		break;
	case CS_EVENT_VERIFIED:
	case CS_EVENT_REVOKED:
		ADD("%s", cs_events_result_name(ev->result));
		break;
	case CS_EVENT_RENEWED:
	case CS_EVENT_FAILED:
	case CS_EVENT_ROLLED_BACK:
		ADD("outcome %s", cs_pipeline_outcome_name(ev->outcome));
		break;
	default:
		break;
	}
	if (ev->gen > 0)
		ADD("generation %d", ev->gen);
#undef ADD
	return used < len ? used : len - 1;
}

/* One debug line: the type and the numbers; the texts are logged by the pipeline already. */
void cs_events_log(void *arg, const struct cs_event *ev)
{
	char d[400];

	(void)arg;
	cs_events_describe(ev, d, sizeof(d));
	cs_debug("%s: event %s%s%s%s", ev->cert ? ev->cert : "?", cs_events_type_name(ev->type),
		 d[0] ? " (" : "", d, d[0] ? ")" : "");
}
