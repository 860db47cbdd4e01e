/*
 * cs_run - run a program with a deadline: the one way every child process
 * is started. No shell: argv as given, the program looked up in PATH.
 * Standard input is /dev/null; standard output and error go to one pipe, of
 * which a bounded part is kept (the rest is read and dropped, so that a
 * chatty child never blocks). Past its deadline the child is killed with
 * SIGKILL; it is reaped in every case.
 *
 * Two flavours: cs_run blocks the calling thread (call it from a work-queue
 * thread: postmap, doveconf); cs_run_start runs on the libuv loop and calls
 * back (the reloaders, the dns-01 hook).
 */
#ifndef CS_RUN_H
#define CS_RUN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

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

/* cs_run with env as the child's environment (NULL: ours). */
int cs_run_env(char *const argv[], char *const env[], int timeout_ms, char *out, size_t outlen,
	       char *err, size_t errlen);

/* cs_run_env with the inlen bytes of input as the child's standard input. */
int cs_run_input(char *const argv[], char *const env[], const void *input, size_t inlen,
		 int timeout_ms, char *out, size_t outlen, char *err, size_t errlen);

/* How cs_run_start runs a program. */
struct cs_run_opts {
	char *const *argv; /* argv[0] looked up in PATH; needed until cs_run_start returns */
	char *const *env;  /* the child's environment, NULL: ours; likewise */
	int timeout_ms;    /* 0: 60 s */
	size_t out_max;    /* keep at most out_max - 1 bytes of output; 0: the output
			      goes to our standard error (the log) instead */
	int stderr_tty;    /* standard error is a pseudo-terminal (falls back to the
			      pipe); its CR LF line ends are read as LF */
};

/* What cs_run_start's callback gets: the same outcomes cs_run returns. */
struct cs_run_result {
	int status;      /* exit status (0..255), -ETIMEDOUT (killed for the
			    deadline) or -EINTR (a signal killed it) */
	int term_signal; /* the signal that ended it, 0 if none */
	const char *out; /* its output, NUL-terminated, trailing white space removed */
	size_t out_len;
	const char *err; /* when status < 0: what happened, naming the program */
};

/* Called once on the loop thread when the program has ended and its output is read. */
typedef void (*cs_run_cb)(void *arg, const struct cs_run_result *res);

typedef struct cs_run_job cs_run_job;

/*
 * Starts o->argv[0] on loop. Returns 0 when cb will run once (*job, if
 * job is not NULL, then names the run until cb runs), or a negative errno
 * when the program could not be started: cb never runs then. The memory is
 * the module's and goes when libuv has closed its handles, after cb.
 */
int cs_run_start(uv_loop_t *loop, const struct cs_run_opts *o, cs_run_cb cb, void *arg,
		 cs_run_job **job);

/*
 * For a caller that goes away while its run is in flight: the child is
 * killed (SIGKILL) and still reaped, and cb will not run.
 */
void cs_run_cancel(cs_run_job *job);

/* Turns out's newlines into spaces (for a one-line log message). */
void cs_run_one_line(char *out);

#endif
