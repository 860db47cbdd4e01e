/*
 * ctl - the commands of certsyncctl. Offline commands (files only, no agent)
 * are one file each (ctl_inspect.c, ctl_convert.c, ctl_fingerprint.c,
 * ctl_tlsa.c, ctl_probe.c, ctl_rehash_dir.c), with their table and what
 * they share in ctl_offline.c; commands that talk to the status socket are
 * in ctl_online.c.
 */
#ifndef CS_CTL_H
#define CS_CTL_H

#include "cs_material.h"

#include <openssl/x509.h>
#include <stdbool.h>
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
/* The commands that talk to the agent's status socket (ctl_online.c). */
extern const struct ctl_cmd ctl_online_cmds[];

/*
 * Global options of the online commands: -s SOCKET (NULL: the default or
 * -c's), -c CONFIG (NULL: none), --json.
 */
extern const char *ctl_socket_path;
extern const char *ctl_config_path;
extern bool ctl_json;

/*
 * -c CONFIG for an online command (ctl_config.c): unless -s was given, sets
 * ctl_socket_path from the [agent] socket key of the file (the default
 * socket when it has none). Returns 0, or 2 (bad usage) after a message
 * naming the file, and the line when the file does not parse.
 */
int ctl_config_socket(void);

int ctl_inspect_main(int argc, char **argv);     /* ctl_inspect.c */
int ctl_convert_main(int argc, char **argv);     /* ctl_convert.c */
int ctl_fingerprint_main(int argc, char **argv); /* ctl_fingerprint.c */
int ctl_tlsa_main(int argc, char **argv);        /* ctl_tlsa.c */
int ctl_probe_main(int argc, char **argv);       /* ctl_probe.c */
int ctl_status_main(int argc, char **argv);      /* ctl_online.c */
int ctl_list_main(int argc, char **argv);        /* ctl_online.c */
int ctl_show_main(int argc, char **argv);        /* ctl_online.c */
int ctl_dane_main(int argc, char **argv);        /* ctl_dane.c */
int ctl_renew_main(int argc, char **argv);       /* ctl_online.c */
int ctl_rehash_main(int argc, char **argv);      /* ctl_online.c */
int ctl_reload_main(int argc, char **argv);      /* ctl_online.c */
int ctl_revoke_main(int argc, char **argv);      /* ctl_online.c */
int ctl_adopt_main(int argc, char **argv);       /* ctl_online.c */
int ctl_metrics_main(int argc, char **argv);     /* ctl_online.c */
int ctl_rehash_dir_main(int argc, char **argv);  /* ctl_rehash_dir.c */

/* The password options of inspect and convert. */
struct ctl_pw_opts {
	const char *file; /* --password-file */
	const char *env;  /* --password-env */
};

/*
 * Reads the password of --password-file F or --password-env VAR (neither:
 * *pw = NULL). Returns 0, or 1 after a message for cmd on stderr; free *pw
 * with cs_ingest_password_free.
 */
int ctl_password(const char *cmd, const char *file, const char *env, char **pw);

/* Prints certificate n (role "leaf", "intermediate", ...) as inspect shows it. */
void ctl_print_cert(X509 *x, int n, const char *role, time_t now);

/*
 * Reads path into a normalised set that has a leaf (fingerprint, tlsa).
 * Returns it (free with cs_material_free), or NULL after printing a message
 * for cmd on stderr.
 */
cs_material *ctl_load_leaf(const char *cmd, const char *path, const char *pw);

#endif
