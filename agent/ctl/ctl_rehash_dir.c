/*
 * ctl_rehash_dir - `certsyncctl rehash-dir DIR...`: one full pass of the
 * CApath hashing (cs_capath) on each directory, without an agent, printing
 * what it changed (links made and removed) and each file it skipped, with
 * the reason.
 * The result is the set of links `openssl rehash` makes (see cs_capath.h for
 * the few cases where openssl would leave a gap or a stale link).
 *
 * Exit status: 0 every directory done, 1 a directory, file or link could not
 * be read or written, 2 bad usage.
 */
#include "ctl.h"

#include "cs_capath.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
	fprintf(out,
		"usage: certsyncctl rehash-dir [--cafile FILE] [--quiet] DIR...\n\n"
		"Makes the HHHHHHHH.N (certificate) and HHHHHHHH.rN (CRL) links OpenSSL looks\n"
		"up in a CApath directory, as `openssl rehash` does, and removes stale ones.\n"
		"Regular files are never changed. Prints each link made or removed and each\n"
		"file skipped with the reason.\n\n"
		"Exit status: 0 done, 1 a directory, file or link could not be read or\n"
		"written, 2 bad usage.\n\n"
		"  --cafile FILE   also write the certificates as one PEM bundle (one DIR only)\n"
		"  --quiet         print only problems\n");
}

struct out_ctx {
	const char *dir;
	int quiet;
};

static void print_event(void *arg, enum cs_capath_event ev, const char *name, const char *detail)
{
	const struct out_ctx *o = arg;

	switch (ev) {
	case CS_CAPATH_LINKED:
		if (!o->quiet)
			printf("%s: link %s -> %s\n", o->dir, name, detail);
		break;
	case CS_CAPATH_UNLINKED:
		if (!o->quiet)
			printf("%s: unlink %s (was -> %s)\n", o->dir, name, detail);
		break;
	case CS_CAPATH_SKIPPED:
		printf("%s: skip %s: %s\n", o->dir, name, detail);
		break;
	case CS_CAPATH_ERROR:
		fprintf(stderr, "certsyncctl rehash-dir: %s/%s: %s\n", o->dir, name, detail);
		break;
	case CS_CAPATH_CAFILE:
		if (!o->quiet)
			printf("%s: wrote %s (%s)\n", o->dir, name, detail);
		break;
	}
}

/* Runs `certsyncctl rehash-dir`; returns the exit status. */
int ctl_rehash_dir_main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "cafile", required_argument, NULL, 'c' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cafile = NULL;
	int quiet = 0, c, status = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:qh", lopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			cafile = optarg;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc || (cafile != NULL && argc - optind != 1)) {
		usage(stderr);
		return 2;
	}
	for (int i = optind; i < argc; i++) {
		struct out_ctx o = { argv[i], quiet };
		struct cs_capath_opts opts = { .cafile = cafile, .report = print_event,
					       .report_arg = &o };
		struct cs_capath_stats st;
		char err[1024];
		int rc = cs_capath_rehash(argv[i], &opts, &st, err, sizeof(err));

		if (rc < 0) {
			fprintf(stderr, "certsyncctl rehash-dir: %s\n", err);
			status = 1;
		}
		if (!quiet)
			printf("%s: %u certificates, %u CRLs linked; %u links made, %u removed, "
			       "%u files skipped\n",
			       argv[i], st.certs, st.crls, st.linked, st.unlinked, st.skipped);
	}
	return status;
}
