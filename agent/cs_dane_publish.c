/*
 * cs_dane_publish - puts a cert's TLSA records in DNS (see cs_dane.h):
 * RFC 2136 dynamic updates through nsupdate (TSIG-signed, one transaction
 * for every owner, so that the RRset never holds half a change), or the
 * operator's dane_hook. Runs on a work-queue thread through cs_run.
 */
#include "cs_dane.h"

#include "cs_acme_hook.h"
#include "cs_atomic.h"
#include "cs_run.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define UPDATE_TIMEOUT_MS 30000

size_t cs_dane_owners(const struct cs_cfg_cert *c, char (*out)[CS_DANE_OWNER_MAX], size_t max)
{
	size_t n = 0;

	for (size_t p = 0; p < c->dane.ports.n; p++)
		for (size_t h = 0; h < c->dane.names.n && n < max; h++)
			snprintf(out[n++], CS_DANE_OWNER_MAX, "_%s._tcp.%s", c->dane.ports.v[p],
				 c->dane.names.v[h]);
	return n;
}

/* A program's output on one line: line ends and other controls become spaces. */
static const char *one_line(char *s)
{
	for (char *q = s; *q != '\0'; q++)
		if ((unsigned char)*q < 0x20 || *q == 0x7f)
			*q = ' ';
	return s[0] ? s : "(no output)";
}

/*
 * A program's outcome (cs_run's rc) into 0, or -1 with err: cs_run's own
 * words (why) when it did not run to its end, else "WHAT exited with status
 * N: its output".
 */
static int outcome(int rc, const char *why, char *out, const char *what, char *err, size_t errlen)
{
	if (rc == 0)
		return 0;
	if (rc < 0)
		snprintf(err, errlen, "%s", why);
	else
		snprintf(err, errlen, "%s exited with status %d: %s", what, rc, one_line(out));
	return -1;
}

/* "server ADDR PORT" for dane_server "ADDR:PORT" or "[V6]:PORT". */
static void server_line(const char *hostport, char *out, size_t len)
{
	const char *colon = strrchr(hostport, ':');
	int hlen = (int)(colon - hostport);

	if (hostport[0] == '[')
		snprintf(out, len, "server %.*s %s\n", hlen - 2, hostport + 1, colon + 1);
	else
		snprintf(out, len, "server %.*s %s\n", hlen, hostport, colon + 1);
}

/* The nsupdate script for ch into a new string (NULL on ENOMEM). */
static char *nsupdate_script(const struct cs_cfg_cert *c, const struct cs_dane_changes *ch)
{
	char owners[CS_DANE_MAX_OWNERS][CS_DANE_OWNER_MAX], line[600];
	size_t n = cs_dane_owners(c, owners, CS_DANE_MAX_OWNERS), size = 0;
	FILE *f;
	char *text = NULL;

	if ((f = open_memstream(&text, &size)) == NULL)
		return NULL;
	server_line(c->dane.server, line, sizeof(line));
	fputs(line, f);
	if (c->dane.zone != NULL)
		fprintf(f, "zone %s\n", c->dane.zone);
	for (size_t o = 0; o < n; o++) {
		for (size_t i = 0; i < ch->n_del; i++)
			fprintf(f, "update delete %s. IN TLSA %d 1 1 %s\n", owners[o], c->dane.usage,
				ch->del[i]);
		for (size_t i = 0; i < ch->n_add; i++)
			fprintf(f, "update add %s. %lld IN TLSA %d 1 1 %s\n", owners[o],
				(long long)c->dane.ttl, c->dane.usage, ch->add[i]);
	}
	fputs("send\n", f);
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

static int by_nsupdate(const struct cs_cfg_cert *c, const char *state_dir,
		       const struct cs_dane_changes *ch, char *err, size_t errlen)
{
	struct cs_atomic_opts ao = { .mode = 0600, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	char path[4200], out[1024], why[600], tsecs[16], what[300];
	char *text = nsupdate_script(c, ch);
	int rc;

	if (text == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(path, sizeof(path), "%s/dane/%s.nsupdate", state_dir, c->name);
	rc = cs_atomic_write(path, text, strlen(text), &ao, err, errlen);
	free(text);
	if (rc < 0)
		return -1;
	snprintf(tsecs, sizeof(tsecs), "%d", UPDATE_TIMEOUT_MS / 1000 / 2);
	char *argv[] = { "nsupdate", "-k", c->dane.tsig_key, "-t", tsecs, path, NULL };
	rc = cs_run(argv, UPDATE_TIMEOUT_MS, out, sizeof(out), why, sizeof(why));
	unlink(path);
	snprintf(what, sizeof(what), "nsupdate to %s", c->dane.server);
	return outcome(rc, why, out, what, err, errlen);
}

/* dane_hook ACTION OWNER "U 1 1 HEX", with CERTSYNC_* details. Returns 0 or -1 with err. */
static int hook_one(const struct cs_cfg_cert *c, const char *action, const char *owner,
		    const char *hex, char *err, size_t errlen)
{
	char rec[200], ttl[24], out[1024], why[600], what[700];
	int rc;

	snprintf(rec, sizeof(rec), "%d 1 1 %s", c->dane.usage, hex);
	snprintf(ttl, sizeof(ttl), "%lld", (long long)c->dane.ttl);
	const char *const vars[][2] = { { "CERT", c->name },	   { "DANE_ACTION", action },
					{ "DANE_OWNER", owner },   { "DANE_RECORD", rec },
					{ "DANE_TTL", ttl } };
	char **env = cs_acme_hook_env(vars, sizeof(vars) / sizeof(vars[0]));
	char *argv[] = { c->dane.hook, (char *)action, (char *)owner, rec, NULL };

	if (env == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rc = cs_run_env(argv, env, UPDATE_TIMEOUT_MS, out, sizeof(out), why, sizeof(why));
	cs_acme_hook_env_free(env);
	snprintf(what, sizeof(what), "%s %s %s", c->dane.hook, action, owner);
	return outcome(rc, why, out, what, err, errlen);
}

static int by_hook(const struct cs_cfg_cert *c, const struct cs_dane_changes *ch, char *err,
		   size_t errlen)
{
	char owners[CS_DANE_MAX_OWNERS][CS_DANE_OWNER_MAX];
	size_t n = cs_dane_owners(c, owners, CS_DANE_MAX_OWNERS);

	/* Adds first: the RRset never lacks the record being served. */
	for (size_t o = 0; o < n; o++)
		for (size_t i = 0; i < ch->n_add; i++)
			if (hook_one(c, "add", owners[o], ch->add[i], err, errlen) < 0)
				return -1;
	for (size_t o = 0; o < n; o++)
		for (size_t i = 0; i < ch->n_del; i++)
			if (hook_one(c, "del", owners[o], ch->del[i], err, errlen) < 0)
				return -1;
	return 0;
}

int cs_dane_publish(const struct cs_cfg_cert *c, const char *state_dir,
		    const struct cs_dane_changes *ch, char *err, size_t errlen)
{
	if (ch->n_add == 0 && ch->n_del == 0)
		return 0;
	switch (c->dane.update) {
	case CS_DANE_UPDATE_RFC2136:
		return by_nsupdate(c, state_dir, ch, err, errlen);
	case CS_DANE_UPDATE_HOOK:
		return by_hook(c, ch, err, errlen);
	default:
		return 0; /* by hand */
	}
}
