/*
 * journal_stub - sd_journal_sendv, linked into check_journal ahead of
 * libsystemd: it records each entry's fields instead of sending them to
 * journald. See journal_stub.h.
 */
#include "journal_stub.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#define STUB_ENTRIES 64
#define STUB_FIELDS 16

static struct {
	char *field[STUB_FIELDS]; /* "NAME=value", NUL-terminated copies */
	int n;
} entries[STUB_ENTRIES];
static int n_entries;
static int answer;

int sd_journal_sendv(const struct iovec *iov, int n);

/* The journal's writer, as libsystemd declares it: records, then answers. */
int sd_journal_sendv(const struct iovec *iov, int n)
{
	if (answer < 0)
		return answer;
	if (n_entries == STUB_ENTRIES || n > STUB_FIELDS)
		return -E2BIG;
	for (int k = 0; k < n; k++) {
		char *f = malloc(iov[k].iov_len + 1);

		if (f == NULL)
			return -ENOMEM;
		memcpy(f, iov[k].iov_base, iov[k].iov_len);
		f[iov[k].iov_len] = '\0';
		entries[n_entries].field[k] = f;
	}
	entries[n_entries].n = n;
	n_entries++;
	return 0;
}

int journal_stub_count(void)
{
	return n_entries;
}

const char *journal_stub_field(int i, const char *name)
{
	size_t len = strlen(name);

	if (i < 0 || i >= n_entries)
		return NULL;
	for (int k = 0; k < entries[i].n; k++)
		if (strncmp(entries[i].field[k], name, len) == 0 && entries[i].field[k][len] == '=')
			return entries[i].field[k] + len + 1;
	return NULL;
}

void journal_stub_reset(int err)
{
	for (int i = 0; i < n_entries; i++)
		for (int k = 0; k < entries[i].n; k++)
			free(entries[i].field[k]);
	n_entries = 0;
	answer = err;
}
