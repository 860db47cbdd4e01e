/*
 * ctl_online_int.h - what the files of certsyncctl's online commands
 * (ctl_online.c, ctl_online_conn.c) share: the exit statuses and the
 * request to the agent.
 */
#ifndef CS_CTL_ONLINE_INT_H
#define CS_CTL_ONLINE_INT_H

#include <jansson.h>

#define EX_FAIL 1
#define EX_USAGE 2
#define EX_UNREACHABLE 3
#define EX_BUSY 4 /* renew --wait: the agent was busy with that certificate */
#define CTL_ONLINE_READ_TIMEOUT_MS 30000

/* How long to wait for an answer, in ms (renew --wait: --timeout). */
extern int ctl_online__read_timeout_ms;

/*
 * Sends req (taken) on a new connection; with --json prints the answer
 * line. Returns 0 when the answer says ok, else an exit status (the
 * agent's error printed); *resp is the answer (the caller frees it) or NULL.
 */
int ctl_online__simple(const char *cmd, json_t *req, json_t **resp);

/*
 * Parses an online command's options and its one argument (NAME) into
 * *name. Returns 0, EX_USAGE or -1 (help shown).
 */
int ctl_online__name_arg(int argc, char **argv, const char *usage, const char **name);

/* show's "dane" line for cert object c (ctl_dane.c); nothing without DANE. */
void ctl_dane_line(json_t *c);

#endif
