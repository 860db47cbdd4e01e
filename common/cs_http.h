/*
 * cs_http - HTTP(S) requests on the libuv loop through libcurl's multi
 * interface: every socket libcurl opens is watched with a uv_poll_t and its
 * timeout with one uv_timer_t (CURLMOPT_SOCKETFUNCTION/TIMERFUNCTION driving
 * curl_multi_socket_action), so that a transfer never blocks the loop.
 *
 * Generic: it knows nothing of ACME. One cs_http holds the trust settings
 * (a CA bundle) and the connection cache shared by its requests; its memory is
 * freed by cs_http_close once libuv has closed every handle.
 */
#ifndef CS_HTTP_H
#define CS_HTTP_H

#include <stddef.h>
#include <uv.h>

typedef struct cs_http cs_http;
typedef struct cs_http_req cs_http_req;

struct cs_http_opts {
	const char *ca_bundle;  /* PEM file of trusted CAs; NULL: libcurl's default */
	const char *user_agent; /* NULL: "certsync/VERSION" */
	long connect_timeout_s; /* 0: 30 s */
	long timeout_s;         /* whole transfer; 0: 120 s */
	size_t max_body;        /* larger responses fail; 0: 4 MiB */
};

struct cs_http_response {
	int status;        /* 0: a response came; negative: transport failure */
	long code;         /* HTTP status code when status is 0 */
	const char *body;  /* NUL-terminated (binary bodies may hold NULs) */
	size_t len;
	char *const *headers; /* "Name: value" lines of the final response */
	size_t n_headers;
	const char *error; /* on failure: what went wrong, for a person */
};

/* Called once per request on the loop thread; res and its strings live until it returns. */
typedef void (*cs_http_cb)(void *arg, const struct cs_http_response *res);

struct cs_http_request {
	const char *method;       /* "GET", "HEAD", "POST" */
	const char *url;
	const char *content_type; /* of the body, or NULL */
	const char *accept;       /* or NULL */
	const void *body;         /* POST: copied before cs_http_send returns */
	size_t len;
};

/*
 * Returns a client on loop (close with cs_http_close), or NULL with err set.
 * The process has called curl_global_init once, in main(), before.
 */
cs_http *cs_http_new(uv_loop_t *loop, const struct cs_http_opts *o, char *err, size_t errlen);

/*
 * Starts rq. Returns 0 when cb will run exactly once (and *out, when out is
 * not NULL, names the request until then), or a negative code when it could
 * not start (cb never runs).
 */
int cs_http_send(cs_http *h, const struct cs_http_request *rq, cs_http_cb cb, void *arg,
		 cs_http_req **out);

/* Stops a request before its callback ran; the callback never runs. */
void cs_http_cancel(cs_http_req *r);

/*
 * Closes the client: callbacks of pending requests run with -ECANCELED, then
 * the memory is freed once every libuv handle is closed, then close_cb (may be
 * NULL) runs. Accepts NULL. Safe to call from a request's callback.
 */
void cs_http_close(cs_http *h, void (*close_cb)(void *arg), void *arg);

/*
 * Returns the value of the first header named name (case-insensitive),
 * skipping the first idx matches, with surrounding blanks removed, in buf;
 * or NULL when there is no such header.
 */
const char *cs_http_header(const struct cs_http_response *res, const char *name, size_t idx,
			   char *buf, size_t buflen);

#endif
