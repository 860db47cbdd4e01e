/*
 * cs_acme_http01 - the built-in http-01 responder: a small HTTP/1.x server on
 * the libuv loop that answers GET /.well-known/acme-challenge/TOKEN with the
 * key authorization of a token it was given, 404 for anything else, and
 * closes every connection after one answer. It listens only while a
 * challenge is outstanding (the ACME issuer opens and closes it per order).
 */
#ifndef CS_ACME_HTTP01_H
#define CS_ACME_HTTP01_H

#include <stddef.h>
#include <uv.h>

typedef struct cs_acme_http01 cs_acme_http01;

/*
 * Listens on listen ("ADDR:PORT", "[V6ADDR]:PORT"). Returns the responder
 * (close with cs_acme_http01_close), or NULL with err set. The same as
 * cs_acme_http01_open_fd on the socket of cs_acme_http01_listen_fd.
 */
cs_acme_http01 *cs_acme_http01_new(uv_loop_t *loop, const char *listen, char *err,
				   size_t errlen);

/*
 * Returns a TCP socket (close-on-exec, non-blocking; the caller owns it)
 * bound to listen ("ADDR:PORT", "[V6ADDR]:PORT") and listening, or a negative
 * libuv code with err set: "http_listen ADDR:PORT: not ADDR:PORT", or
 * "http_listen ADDR:PORT: cannot listen: REASON". It does no I/O on a loop:
 * the side that may bind the port makes it, the responder may run elsewhere.
 */
int cs_acme_http01_listen_fd(const char *listen, char *err, size_t errlen);

/*
 * Answers on fd, a listening TCP socket, which the responder takes in every
 * case (closed on failure). Returns the responder, or NULL with err set.
 */
cs_acme_http01 *cs_acme_http01_open_fd(uv_loop_t *loop, int fd, char *err, size_t errlen);

/* Returns the port it listens on (useful after listening on port 0). */
int cs_acme_http01_port(cs_acme_http01 *s);

/*
 * At most this many connections are kept open; a new one beyond closes the
 * oldest (a flood of idle connections cannot use up the agent's descriptors
 * nor keep the CA's validator out).
 */
#define CS_ACME_HTTP01_MAX_CONNS 64

/* The number of connections open now. */
int cs_acme_http01_conns(const cs_acme_http01 *s);

/* Answers token with keyauth from now on; returns 0 or -ENOMEM. */
int cs_acme_http01_add(cs_acme_http01 *s, const char *token, const char *keyauth);

/* Stops answering token. */
void cs_acme_http01_remove(cs_acme_http01 *s, const char *token);

/*
 * Stops listening, drops open connections and frees the responder once
 * libuv has closed every handle; then close_cb (may be NULL). Accepts NULL.
 */
void cs_acme_http01_close(cs_acme_http01 *s, void (*close_cb)(void *arg), void *arg);

/* Parses "ADDR:PORT" or "[ADDR]:PORT" into *ss; returns 0 or a negative libuv code. */
int cs_acme_http01_parse_addr(const char *s, struct sockaddr_storage *ss);

#endif
