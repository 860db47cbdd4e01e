/*
 * ctl - the commands of certsyncctl. Offline commands (files only, no agent)
 * live in ctl_offline.c (inspect, convert) and ctl_fp.c (fingerprint, tlsa);
 * commands that talk to the status socket come later.
 */
#ifndef CS_CTL_H
#define CS_CTL_H

#include <openssl/x509.h>
#include <time.h>

struct ctl_cmd {
	const char *name;
	/* argv[0] is the command name; returns the process exit status. */
	int (*run)(int argc, char **argv);
	const char *usage; /* one line: "inspect [--json] FILE..." */
	const char *help;  /* one line of description */
};

/* The offline commands, terminated by an entry whose name is NULL. */
extern const struct ctl_cmd ctl_offline_cmds[];

int ctl_inspect_main(int argc, char **argv);     /* ctl_offline.c */
int ctl_convert_main(int argc, char **argv);     /* ctl_offline.c */
int ctl_fingerprint_main(int argc, char **argv); /* ctl_fp.c */
int ctl_tlsa_main(int argc, char **argv);        /* ctl_fp.c */
int ctl_probe_main(int argc, char **argv);       /* ctl_probe.c */

/* Prints certificate n (role "leaf", "intermediate", ...) as inspect shows it. */
void ctl_print_cert(X509 *x, int n, const char *role, time_t now);

#endif
