/*
 * cs_dane - the rules of a DANE rollover (see cs_dane.h): roles, the
 * changes an update makes, what a look through the resolver shows.
 */
#include "cs_dane.h"

#include <stdio.h>
#include <string.h>

static struct cs_dane_rec *find(struct cs_dane_state *st, const char *hex)
{
	for (size_t i = 0; i < st->n; i++)
		if (strcmp(st->r[i].hex, hex) == 0)
			return &st->r[i];
	return NULL;
}

/* The record hex with role, added when it is not followed yet. */
static void want(struct cs_dane_state *st, const char *hex, int role)
{
	struct cs_dane_rec *r = find(st, hex);

	if (r == NULL) {
		if (st->n == CS_DANE_MAX) {
			/* Full of retiring records: the oldest one goes first. */
			memmove(&st->r[0], &st->r[1], (st->n - 1) * sizeof(st->r[0]));
			st->n--;
		}
		r = &st->r[st->n++];
		memset(r, 0, sizeof(*r));
		snprintf(r->hex, sizeof(r->hex), "%s", hex);
	}
	r->role = role;
	r->retire_at = 0;
}

void cs_dane_plan(struct cs_dane_state *st, const char *cur, const char *next, int64_t now,
		  int64_t wait)
{
	bool has_cur = cur != NULL && *cur != '\0', has_next = next != NULL && *next != '\0';

	for (size_t i = 0; i < st->n; i++) {
		struct cs_dane_rec *r = &st->r[i];
		bool wanted = (has_cur && strcmp(r->hex, cur) == 0) ||
			      (has_next && strcmp(r->hex, next) == 0);
		if (!wanted && r->role != CS_DANE_RETIRING) {
			r->role = CS_DANE_RETIRING;
			r->retire_at = now + wait;
		}
	}
	/* next first: a staged key equal to the deployed one is the current key. */
	if (has_next)
		want(st, next, CS_DANE_NEXT);
	if (has_cur)
		want(st, cur, CS_DANE_CURRENT);
}

void cs_dane_changes(const struct cs_dane_state *st, int64_t now, struct cs_dane_changes *ch)
{
	memset(ch, 0, sizeof(*ch));
	for (size_t i = 0; i < st->n; i++) {
		const struct cs_dane_rec *r = &st->r[i];
		if (r->role != CS_DANE_RETIRING && !r->published)
			ch->add[ch->n_add++] = r->hex;
		else if (r->role == CS_DANE_RETIRING && now >= r->retire_at)
			ch->del[ch->n_del++] = r->hex;
	}
}

void cs_dane_updated(struct cs_dane_state *st, const struct cs_dane_changes *ch, bool ok,
		     const char *err, int64_t now)
{
	st->updated_at = now;
	st->update_failed = !ok;
	snprintf(st->update_err, sizeof(st->update_err), "%s", ok || err == NULL ? "" : err);
	if (!ok) {
		st->update_failures++;
		return;
	}
	for (size_t i = 0; i < ch->n_add; i++) {
		struct cs_dane_rec *r = find(st, ch->add[i]);
		if (r != NULL)
			r->published = true;
	}
	for (size_t i = 0; i < ch->n_del; i++) {
		struct cs_dane_rec *r = find(st, ch->del[i]);
		if (r == NULL)
			continue;
		size_t at = (size_t)(r - st->r);
		memmove(r, r + 1, (st->n - at - 1) * sizeof(*r));
		st->n--;
	}
}

/* Whether answer a holds the record "usage 1 1 hex". */
static bool holds(const struct cs_dnsq_answer *a, int usage, const char *hex)
{
	char h[CS_DANE_HEX + 64];

	for (size_t i = 0; i < a->n; i++) {
		const struct cs_tlsa_rec *t = &a->recs[i];
		if (t->usage == usage && t->selector == 1 && t->mtype == 1 &&
		    cs_tlsa_rec_hex(t, h, sizeof(h)) == 0 && strcmp(h, hex) == 0)
			return true;
	}
	return false;
}

void cs_dane_observe(struct cs_dane_state *st, int usage, const struct cs_dnsq_answer *answers,
		     size_t n, const char *err, int64_t now)
{
	bool validated = err == NULL && n > 0;

	st->checked_at = now;
	for (size_t i = 0; validated && i < n; i++) {
		validated = answers[i].ad && (answers[i].rcode == 0 || answers[i].rcode == 3);
		if (validated && answers[i].ttl > st->ttl)
			st->ttl = answers[i].ttl;
	}
	st->validated = validated;
	if (err != NULL)
		snprintf(st->check_err, sizeof(st->check_err), "%s", err);
	else if (!validated)
		snprintf(st->check_err, sizeof(st->check_err),
			 "the resolver's answer is not validated (no AD bit, or an error)");
	else
		st->check_err[0] = '\0';
	for (size_t i = 0; i < st->n; i++) {
		struct cs_dane_rec *r = &st->r[i];
		bool everywhere = validated;
		for (size_t k = 0; everywhere && k < n; k++)
			everywhere = holds(&answers[k], usage, r->hex);
		if (!everywhere) {
			/* Not (or no longer) there: the wait starts again when it is. */
			if (validated)
				r->visible_since = 0;
			continue;
		}
		if (r->visible_since == 0)
			r->visible_since = now;
		r->published = true;
	}
}

int64_t cs_dane_wait(const struct cs_dane_state *st, int64_t ttl_conf)
{
	int64_t ttl = (int64_t)st->ttl > ttl_conf ? (int64_t)st->ttl : ttl_conf;

	return 2 * ttl;
}

const struct cs_dane_rec *cs_dane_role(const struct cs_dane_state *st, int role)
{
	for (size_t i = 0; i < st->n; i++)
		if (st->r[i].role == role)
			return &st->r[i];
	return NULL;
}

bool cs_dane_next_ready(const struct cs_dane_state *st, int64_t now, int64_t ttl_conf,
			int64_t *left)
{
	const struct cs_dane_rec *r = cs_dane_role(st, CS_DANE_NEXT);
	int64_t wait = cs_dane_wait(st, ttl_conf);

	*left = -1;
	if (r == NULL || r->visible_since == 0 || !st->validated)
		return false;
	*left = r->visible_since + wait - now;
	if (*left <= 0) {
		*left = 0;
		return true;
	}
	return false;
}

bool cs_dane_ok(const struct cs_dane_state *st)
{
	const struct cs_dane_rec *cur = cs_dane_role(st, CS_DANE_CURRENT);

	return st->validated && !st->update_failed && cur != NULL && cur->visible_since != 0;
}
