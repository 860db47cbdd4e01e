/*
 * cs_state - per-certificate agent state in JSON (jansson). See cs_state.h.
 */
#include "cs_state.h"
#include "cs_atomic.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int state_path(const char *state_dir, const char *name, char *out, size_t len)
{
	int n = snprintf(out, len, "%s/certs/%s.json", state_dir, name);
	return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}

int cs_state_mkdirs(const char *dir, mode_t mode, char *err, size_t errlen)
{
	char buf[PATH_MAX];

	if (snprintf(buf, sizeof(buf), "%s", dir) >= (int)sizeof(buf)) {
		snprintf(err, errlen, "%s: path too long", dir);
		return -ENAMETOOLONG;
	}
	for (char *p = buf + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			*p = '\0';
			if (mkdir(buf, mode) < 0 && errno != EEXIST) {
				int e = errno;
				snprintf(err, errlen, "cannot create directory %s: %s", buf, strerror(e));
				return -e;
			}
			*p = c;
			if (c == '\0')
				break;
		}
	}
	return 0;
}

void cs_state_set_error(struct cs_state *st, const char *msg)
{
	free(st->last_error);
	st->last_error = msg ? strdup(msg) : NULL;
}

void cs_state_drop_gen(struct cs_state *st, int n)
{
	for (size_t i = 0; i < st->n_gens; i++) {
		if (st->gens[i].n != n)
			continue;
		memmove(&st->gens[i], &st->gens[i + 1], (st->n_gens - i - 1) * sizeof(st->gens[0]));
		st->n_gens--;
		return;
	}
}

void cs_state_push_gen(struct cs_state *st, const struct cs_state_gen *g)
{
	cs_state_drop_gen(st, g->n);
	size_t keep = st->n_gens < CS_STATE_GENERATIONS ? st->n_gens : CS_STATE_GENERATIONS - 1;

	memmove(&st->gens[1], &st->gens[0], keep * sizeof(st->gens[0]));
	st->gens[0] = *g;
	st->n_gens = keep + 1;
}

void cs_state_clear(struct cs_state *st)
{
	free(st->last_error);
	memset(st, 0, sizeof(*st));
}

static void copy_str(char *dst, size_t len, json_t *v)
{
	const char *s = json_string_value(v);
	snprintf(dst, len, "%s", s ? s : "");
}

/*
 * Which issuer of the cert's list issued the deployed generation, why not the
 * first, the failing renewal's place in the list (failover), and the profile
 * the generation was ordered with.
 */
static void load_issuer_facts(struct cs_state *st, json_t *root)
{
	copy_str(st->fallback, sizeof(st->fallback), json_object_get(root, "fallback"));
	st->fallbacks = (uint64_t)json_integer_value(json_object_get(root, "fallbacks"));
	json_t *fo = json_object_get(root, "failover");
	if (json_is_object(fo)) {
		st->issuer_idx = (int)json_integer_value(json_object_get(fo, "issuer_index"));
		st->issuer_failures = (int)json_integer_value(json_object_get(fo, "failures"));
		st->renew_at = (time_t)json_integer_value(json_object_get(fo, "renew_at"));
		copy_str(st->failover_why, sizeof(st->failover_why), json_object_get(fo, "why"));
		if (st->issuer_idx < 0 || st->issuer_failures < 0)
			st->issuer_idx = st->issuer_failures = 0;
	}
	st->profile_known = json_is_string(json_object_get(root, "profile"));
	copy_str(st->profile, sizeof(st->profile), json_object_get(root, "profile"));
}

/* The CA's last renewal-information answer, dropped when it does not hold together. */
static void load_ari(struct cs_state_ari *a, json_t *ari)
{
	if (!json_is_object(ari))
		return;
	copy_str(a->sha256, sizeof(a->sha256), json_object_get(ari, "sha256"));
	a->start = (time_t)json_integer_value(json_object_get(ari, "start"));
	a->end = (time_t)json_integer_value(json_object_get(ari, "end"));
	copy_str(a->explanation, sizeof(a->explanation), json_object_get(ari, "explanation"));
	a->asked = (time_t)json_integer_value(json_object_get(ari, "asked"));
	a->next = (time_t)json_integer_value(json_object_get(ari, "next"));
	if (a->sha256[0] == '\0' || a->end < a->start)
		memset(a, 0, sizeof(*a));
}

static void save_issuer_facts(json_t *root, const struct cs_state *st)
{
	if (st->fallback[0] != '\0')
		json_object_set_new(root, "fallback", json_string(st->fallback));
	if (st->fallbacks > 0)
		json_object_set_new(root, "fallbacks", json_integer((json_int_t)st->fallbacks));
	if (st->renew_at > 0)
		json_object_set_new(root, "failover",
				    json_pack("{s:i, s:i, s:I, s:s}", "issuer_index", st->issuer_idx,
					      "failures", st->issuer_failures, "renew_at",
					      (json_int_t)st->renew_at, "why", st->failover_why));
	if (st->profile_known)
		json_object_set_new(root, "profile", json_string(st->profile));
}

static json_t *ari_json(const struct cs_state_ari *a)
{
	return json_pack("{s:s, s:I, s:I, s:s, s:I, s:I}", "sha256", a->sha256, "start",
			 (json_int_t)a->start, "end", (json_int_t)a->end, "explanation",
			 a->explanation, "asked", (json_int_t)a->asked, "next", (json_int_t)a->next);
}

int cs_state_load(const char *state_dir, const char *name, struct cs_state *st, char *err,
		  size_t errlen)
{
	char path[PATH_MAX];
	json_error_t jerr;
	json_t *root;

	memset(st, 0, sizeof(*st));
	st->next_gen = 1;
	if (state_path(state_dir, name, path, sizeof(path)) < 0) {
		snprintf(err, errlen, "%s/certs/%s.json: path too long", state_dir, name);
		return -ENAMETOOLONG;
	}
	root = json_load_file(path, 0, &jerr);
	if (root == NULL) {
		struct stat sb;
		if (stat(path, &sb) < 0 && errno == ENOENT)
			return 0;
		char aside[PATH_MAX + 16];
		snprintf(aside, sizeof(aside), "%s.corrupt", path);
		rename(path, aside);
		snprintf(err, errlen, "%s:%d: unreadable state (%s); moved aside to %s", path,
			 jerr.line, jerr.text, aside);
		return 1;
	}
	st->last_attempt = (time_t)json_integer_value(json_object_get(root, "last_attempt"));
	st->last_success = (time_t)json_integer_value(json_object_get(root, "last_success"));
	st->failures = (int)json_integer_value(json_object_get(root, "failures"));
	const char *e = json_string_value(json_object_get(root, "last_error"));
	st->last_error = e ? strdup(e) : NULL;
	st->next_attempt = (time_t)json_integer_value(json_object_get(root, "next_attempt"));
	st->retry_after = json_integer_value(json_object_get(root, "retry_after"));
	st->next_due = (time_t)json_integer_value(json_object_get(root, "next_due"));
	st->next_gen = (int)json_integer_value(json_object_get(root, "next_generation"));
	if (st->next_gen < 1)
		st->next_gen = 1;
	copy_str(st->issuer, sizeof(st->issuer), json_object_get(root, "issuer"));
	load_issuer_facts(st, root);
	st->pending_gen = (int)json_integer_value(json_object_get(root, "pending_generation"));
	if (st->pending_gen < 0 || st->pending_gen >= st->next_gen)
		st->pending_gen = 0;
	json_t *seen = json_object_get(root, "seen");
	if (json_is_object(seen)) {
		struct cs_state_seen *sn = &st->seen;
		copy_str(sn->fp, sizeof(sn->fp), json_object_get(seen, "fp"));
		copy_str(sn->serial, sizeof(sn->serial), json_object_get(seen, "serial"));
		copy_str(sn->sha256, sizeof(sn->sha256), json_object_get(seen, "sha256"));
		sn->not_before = (time_t)json_integer_value(json_object_get(seen, "not_before"));
		sn->not_after = (time_t)json_integer_value(json_object_get(seen, "not_after"));
		sn->adopted = json_is_true(json_object_get(seen, "adopted"));
		if (strlen(sn->fp) != 64 || sn->sha256[0] == '\0')
			memset(sn, 0, sizeof(*sn));
	}
	load_ari(&st->ari, json_object_get(root, "ari"));
	json_t *gens = json_object_get(root, "generations");
	size_t i;
	json_t *g;
	json_array_foreach(gens, i, g) {
		if (st->n_gens == CS_STATE_GENERATIONS)
			break;
		struct cs_state_gen *sg = &st->gens[st->n_gens++];
		sg->n = (int)json_integer_value(json_object_get(g, "n"));
		copy_str(sg->serial, sizeof(sg->serial), json_object_get(g, "serial"));
		copy_str(sg->sha256, sizeof(sg->sha256), json_object_get(g, "sha256"));
		sg->not_after = (time_t)json_integer_value(json_object_get(g, "not_after"));
		sg->deployed = (time_t)json_integer_value(json_object_get(g, "deployed"));
	}
	json_decref(root);
	return 0;
}

int cs_state_save(const char *state_dir, const char *name, const struct cs_state *st,
		  char *err, size_t errlen)
{
	char path[PATH_MAX], dir[PATH_MAX];
	json_t *root = json_object(), *gens = json_array();
	int rc;

	if (state_path(state_dir, name, path, sizeof(path)) < 0) {
		snprintf(err, errlen, "%s/certs/%s.json: path too long", state_dir, name);
		json_decref(root);
		json_decref(gens);
		return -ENAMETOOLONG;
	}
	json_object_set_new(root, "last_attempt", json_integer(st->last_attempt));
	json_object_set_new(root, "last_success", json_integer(st->last_success));
	json_object_set_new(root, "failures", json_integer(st->failures));
	json_object_set_new(root, "last_error",
			    st->last_error ? json_string(st->last_error) : json_null());
	json_object_set_new(root, "next_attempt", json_integer(st->next_attempt));
	json_object_set_new(root, "retry_after", json_integer(st->retry_after));
	json_object_set_new(root, "next_due", json_integer(st->next_due));
	json_object_set_new(root, "next_generation", json_integer(st->next_gen));
	if (st->pending_gen > 0)
		json_object_set_new(root, "pending_generation", json_integer(st->pending_gen));
	if (st->issuer[0] != '\0')
		json_object_set_new(root, "issuer", json_string(st->issuer));
	save_issuer_facts(root, st);
	for (size_t i = 0; i < st->n_gens; i++) {
		const struct cs_state_gen *g = &st->gens[i];
		json_array_append_new(gens, json_pack("{s:i, s:s, s:s, s:I, s:I}", "n", g->n,
						      "serial", g->serial, "sha256", g->sha256,
						      "not_after", (json_int_t)g->not_after,
						      "deployed", (json_int_t)g->deployed));
	}
	json_object_set_new(root, "generations", gens);
	if (st->seen.fp[0] != '\0')
		json_object_set_new(root, "seen",
				    json_pack("{s:s, s:s, s:s, s:I, s:I, s:b}", "fp", st->seen.fp,
					      "serial", st->seen.serial, "sha256", st->seen.sha256,
					      "not_before", (json_int_t)st->seen.not_before,
					      "not_after", (json_int_t)st->seen.not_after, "adopted",
					      st->seen.adopted));
	if (st->ari.sha256[0] != '\0')
		json_object_set_new(root, "ari", ari_json(&st->ari));
	char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(root);
	if (text == NULL) {
		snprintf(err, errlen, "%s: cannot encode state", path);
		return -ENOMEM;
	}
	size_t len = strlen(text);
	text[len] = '\0';
	struct cs_atomic_opts o = { .mode = 0600, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	char *withnl = malloc(len + 2);
	if (withnl == NULL) {
		free(text);
		return -ENOMEM;
	}
	memcpy(withnl, text, len);
	withnl[len] = '\n';
	/* A pass that changed nothing writes nothing (no fsync, no mkdir). */
	if (cs_atomic_same(path, withnl, len + 1)) {
		free(withnl);
		free(text);
		return 0;
	}
	snprintf(dir, sizeof(dir), "%s/certs", state_dir);
	if ((rc = cs_state_mkdirs(dir, 0700, err, errlen)) < 0) {
		free(withnl);
		free(text);
		return rc;
	}
	rc = cs_atomic_write(path, withnl, len + 1, &o, err, errlen);
	free(withnl);
	free(text);
	return rc;
}
