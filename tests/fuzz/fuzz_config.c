/*
 * fuzz_config - libFuzzer target for the configuration parser: any bytes as
 * a certsync.conf must give either a configuration or a list of errors, each
 * naming file:line, never a crash, a leak or a hang. Inputs that ask for an
 * include are skipped: an include names other files of the machine (a fuzzer
 * would find /dev/zero), which is the administrator's choice, not input.
 */
#include "cs_config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cs_cfg_errors errs = { 0 };
	struct cs_config *cfg;
	char path[64];
	int fd;

	if (memmem(data, size, "include", 7) != NULL)
		return 0;
	fd = memfd_create("fuzz.conf", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	if (size > 0 && write(fd, data, size) != (ssize_t)size)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	cfg = cs_config_load(path, &errs);
	if (cfg == NULL) {
		/* Every error names the file (and, from the parser, a line). */
		for (size_t i = 0; i < errs.n; i++)
			if (strncmp(errs.v[i], path, strlen(path)) != 0)
				abort();
		cs_config_errors_free(&errs);
	}
	cs_config_free(cfg);
	close(fd);
	return 0;
}
