/*
 * cs_run - run a program and wait for it, with a deadline: the one way the
 * blocking helpers (postmap, doveconf) are started. No shell: argv as given,
 * the program looked up in PATH. Standard input is /dev/null; standard
 * output and error go to one pipe, of which the first outlen - 1 bytes are
 * kept (the rest is read and dropped, so that a chatty child never blocks).
 *
 * Blocks the calling thread: call it from a work-queue thread, never from
 * the event loop.
 */
#ifndef CS_RUN_H
#define CS_RUN_H

#include <stddef.h>

/*
 * Runs argv[0] with argv, waits at most timeout_ms (0: 60 s) and kills it
 * (SIGKILL) past that. out (outlen > 0) gets its output, NUL-terminated,
 * trailing white space removed. Returns its exit status (0..255), or a
 * negative errno: -ETIMEDOUT when it was killed for the deadline, -EINTR
 * when a signal killed it, other codes when it could not start; err then
 * says what happened, naming the program.
 */
int cs_run(char *const argv[], int timeout_ms, char *out, size_t outlen, char *err,
	   size_t errlen);

/* Turns out's newlines into spaces (for a one-line log message). */
void cs_run_one_line(char *out);

#endif
