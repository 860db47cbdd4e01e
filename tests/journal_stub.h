/*
 * journal_stub - sd_journal_sendv replaced at link time (check_journal only):
 * every entry the agent would have written to the journal, kept in memory
 * for the suite to read.
 */
#ifndef CS_JOURNAL_STUB_H
#define CS_JOURNAL_STUB_H

/* Entries written since the last reset. */
int journal_stub_count(void);

/*
 * The value of field name in entry i (0 = the first since the reset), or
 * NULL when that entry has no such field (or there is no entry i).
 */
const char *journal_stub_field(int i, const char *name);

/* Forgets every entry; the next call to sd_journal_sendv answers err (0: success). */
void journal_stub_reset(int err);

#endif
