/*
 * atomic_drv - test driver for tests/integration/atomic_*.sh: sweeps the temp
 * files a killed predecessor left, then replaces TARGET with the contents of
 * FILE1, FILE2, FILE1, ... through the atomic writer (mode 0600, with fsync)
 * until killed, or COUNT times when COUNT is given. Exit 1 on a write error,
 * with the writer's message on stderr.
 *
 *   atomic_drv TARGET FILE1 FILE2 [COUNT]
 */
#include "cs_atomic.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	struct cs_atomic_opts o = { .mode = 0600, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	char *data[2], err[1024];
	size_t len[2];
	long count = argc > 4 ? atol(argv[4]) : -1;

	if (argc < 4) {
		fprintf(stderr, "usage: atomic_drv TARGET FILE1 FILE2 [COUNT]\n");
		return 2;
	}
	for (int i = 0; i < 2; i++)
		if ((data[i] = cs_test_read(argv[2 + i], &len[i])) == NULL) {
			perror(argv[2 + i]);
			return 2;
		}
	if (cs_atomic_sweep(argv[1], err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	for (long n = 0; count < 0 || n < count; n++) {
		if (cs_atomic_write(argv[1], data[n & 1], len[n & 1], &o, err, sizeof(err)) < 0) {
			fprintf(stderr, "%s\n", err);
			return 1;
		}
	}
	free(data[0]);
	free(data[1]);
	return 0;
}
