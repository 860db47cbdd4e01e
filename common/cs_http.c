/*
 * cs_http - libcurl multi driven by libuv.
 *
 * libcurl tells us which sockets to watch for what (socket callback) and when
 * to call it back without I/O (timer callback); we translate that into one
 * uv_poll_t per socket and one uv_timer_t per client, and hand readiness back
 * with curl_multi_socket_action. Finished transfers are collected with
 * curl_multi_info_read after every action.
 *
 * Ownership: a cs_http owns its multi handle, its timer, the poll contexts of
 * the sockets libcurl has announced, and its pending requests (a list). Poll
 * and timer memory is freed only in libuv close callbacks; the client itself
 * when the last of them has run after cs_http_close.
 *
 * Re-entrancy: callbacks may send new requests or close the client. While
 * finished transfers are being dispatched (depth > 0), a close only marks the
 * client; the teardown runs when dispatching unwinds.
 */
#include "cs_http.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

struct cs_http {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t timer;
	char *ca_bundle;
	char *user_agent;
	long connect_timeout_s, timeout_s;
	size_t max_body;
	LIST_HEAD(, cs_http_req) reqs; /* pending */
	int open_handles;         /* timer and poll handles not yet closed */
	int depth;                /* > 0 while dispatching callbacks */
	bool closing;
	bool torn_down;
	void (*close_cb)(void *);
	void *close_arg;
};

struct cs_http_req {
	cs_http *h;
	LIST_ENTRY(cs_http_req) link; /* in h->reqs */
	CURL *easy;
	struct curl_slist *hdrs;
	cs_http_cb cb;
	void *arg;
	char *body;
	size_t len, cap;
	bool too_big;
	char **resp_headers;
	size_t n_resp_headers;
	char errbuf[CURL_ERROR_SIZE];
};

struct sock_ctx {
	uv_poll_t poll;
	curl_socket_t fd;
	cs_http *h;
};

static void on_handle_closed(uv_handle_t *hd);

static void maybe_free(cs_http *h)
{
	if (!h->torn_down || h->open_handles > 0)
		return;
	void (*cb)(void *) = h->close_cb;
	void *arg = h->close_arg;
	free(h->ca_bundle);
	free(h->user_agent);
	free(h);
	if (cb != NULL)
		cb(arg);
}

static void on_handle_closed(uv_handle_t *hd)
{
	cs_http *h = hd->data;

	if (hd->type == UV_POLL)
		free(hd); /* the uv_poll_t is the first member of struct sock_ctx */
	h->open_handles--;
	maybe_free(h);
}

static void free_req(struct cs_http_req *r)
{
	if (r->easy != NULL)
		curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->hdrs);
	for (size_t i = 0; i < r->n_resp_headers; i++)
		free(r->resp_headers[i]);
	free(r->resp_headers);
	free(r->body);
	free(r);
}

static void unlink_req(struct cs_http_req *r)
{
	LIST_REMOVE(r, link);
}

static void finish(struct cs_http_req *r, int status, const char *error)
{
	struct cs_http_response res = {
		.status = status,
		.body = r->body != NULL ? r->body : "",
		.len = r->len,
		.headers = r->resp_headers,
		.n_headers = r->n_resp_headers,
		.error = error,
	};

	if (status == 0)
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &res.code);
	r->cb(r->arg, &res);
	free_req(r);
}

static void teardown(cs_http *h)
{
	h->torn_down = true;
	while (!LIST_EMPTY(&h->reqs)) {
		struct cs_http_req *r = LIST_FIRST(&h->reqs);
		unlink_req(r);
		curl_multi_remove_handle(h->multi, r->easy);
		finish(r, -ECANCELED, "cancelled");
	}
	curl_multi_cleanup(h->multi);
	h->multi = NULL;
	uv_close((uv_handle_t *)&h->timer, on_handle_closed);
}

static void check_done(cs_http *h)
{
	CURLMsg *msg;
	int left;

	h->depth++;
	while (h->multi != NULL && !h->closing &&
	       (msg = curl_multi_info_read(h->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		struct cs_http_req *r = NULL;
		CURLcode rc = msg->data.result;
		char err[CURL_ERROR_SIZE + 64];

		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		curl_multi_remove_handle(h->multi, r->easy);
		unlink_req(r);
		if (rc == CURLE_OK) {
			finish(r, 0, NULL);
			continue;
		}
		if (r->too_big)
			snprintf(err, sizeof(err), "the response is larger than %zu bytes",
				 h->max_body);
		else
			snprintf(err, sizeof(err), "%s", r->errbuf[0] ? r->errbuf
								   : curl_easy_strerror(rc));
		finish(r, rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT
			  : rc == CURLE_COULDNT_CONNECT   ? -ECONNREFUSED
							  : -EIO,
		       err);
	}
	h->depth--;
	if (h->depth == 0 && h->closing && !h->torn_down)
		teardown(h);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
	struct sock_ctx *ctx = (struct sock_ctx *)p;
	cs_http *h = ctx->h;
	int flags = 0, running;

	if (status < 0)
		flags = CURL_CSELECT_ERR;
	else {
		if (events & UV_READABLE)
			flags |= CURL_CSELECT_IN;
		if (events & UV_WRITABLE)
			flags |= CURL_CSELECT_OUT;
	}
	curl_multi_socket_action(h->multi, ctx->fd, flags, &running);
	check_done(h);
}

static void on_timeout(uv_timer_t *t)
{
	cs_http *h = t->data;
	int running;

	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(h);
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	cs_http *h = userp;
	struct sock_ctx *ctx = socketp;
	int events = 0;

	if (what == CURL_POLL_REMOVE) {
		if (ctx != NULL) {
			uv_poll_stop(&ctx->poll);
			uv_close((uv_handle_t *)&ctx->poll, on_handle_closed);
			curl_multi_assign(h->multi, s, NULL);
		}
		return 0;
	}
	if (ctx == NULL) {
		ctx = calloc(1, sizeof(*ctx));
		if (ctx == NULL)
			return -1;
		if (uv_poll_init_socket(h->loop, &ctx->poll, s) < 0) {
			free(ctx);
			return -1;
		}
		ctx->fd = s;
		ctx->h = h;
		ctx->poll.data = h;
		h->open_handles++;
		curl_multi_assign(h->multi, s, ctx);
	}
	if (what & CURL_POLL_IN)
		events |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		events |= UV_WRITABLE;
	uv_poll_start(&ctx->poll, events, on_poll);
	return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	cs_http *h = userp;

	if (timeout_ms < 0)
		uv_timer_stop(&h->timer);
	else /* 0 too goes through the timer: libcurl must not be re-entered from here */
		uv_timer_start(&h->timer, on_timeout, (uint64_t)timeout_ms, 0);
	return 0;
}

cs_http *cs_http_new(uv_loop_t *loop, const struct cs_http_opts *o, char *err, size_t errlen)
{
	cs_http *h;

	h = calloc(1, sizeof(*h));
	if (h == NULL)
		goto fail;
	h->loop = loop;
	h->connect_timeout_s = o->connect_timeout_s > 0 ? o->connect_timeout_s : 30;
	h->timeout_s = o->timeout_s > 0 ? o->timeout_s : 120;
	h->max_body = o->max_body > 0 ? o->max_body : 4u << 20;
	if (o->ca_bundle != NULL && (h->ca_bundle = strdup(o->ca_bundle)) == NULL)
		goto fail_h;
	if (o->user_agent != NULL)
		h->user_agent = strdup(o->user_agent);
	else if (asprintf(&h->user_agent, "certsync/%s", CS_VERSION) < 0)
		h->user_agent = NULL;
	if (h->user_agent == NULL)
		goto fail_h;
	h->multi = curl_multi_init();
	if (h->multi == NULL)
		goto fail_h;
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	uv_timer_init(loop, &h->timer);
	h->timer.data = h;
	h->open_handles = 1;
	return h;
fail_h:
	free(h->ca_bundle);
	free(h->user_agent);
	free(h);
fail:
	snprintf(err, errlen, "out of memory");
	return NULL;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct cs_http_req *r = arg;
	size_t n = size * nmemb;

	if (r->len + n > r->h->max_body) {
		r->too_big = true;
		return 0;
	}
	if (r->len + n + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		while (cap < r->len + n + 1)
			cap *= 2;
		char *b = realloc(r->body, cap);
		if (b == NULL)
			return 0;
		r->body = b;
		r->cap = cap;
	}
	memcpy(r->body + r->len, ptr, n);
	r->len += n;
	r->body[r->len] = '\0';
	return n;
}

static size_t on_header(char *ptr, size_t size, size_t nitems, void *arg)
{
	struct cs_http_req *r = arg;
	size_t n = size * nitems;
	char *line, **v;

	/* A new status line (after 100 Continue, say) starts a new header set. */
	if (n >= 5 && strncmp(ptr, "HTTP/", 5) == 0) {
		for (size_t i = 0; i < r->n_resp_headers; i++)
			free(r->resp_headers[i]);
		r->n_resp_headers = 0;
		return n;
	}
	while (n > 0 && (ptr[n - 1] == '\r' || ptr[n - 1] == '\n'))
		n--;
	if (n == 0 || memchr(ptr, ':', n) == NULL)
		return size * nitems;
	if (r->n_resp_headers >= 200)
		return 0;
	v = realloc(r->resp_headers, (r->n_resp_headers + 1) * sizeof(*v));
	if (v == NULL)
		return 0;
	r->resp_headers = v;
	line = strndup(ptr, n);
	if (line == NULL)
		return 0;
	v[r->n_resp_headers++] = line;
	return size * nitems;
}

int cs_http_send(cs_http *h, const struct cs_http_request *rq, cs_http_cb cb, void *arg,
		 cs_http_req **out)
{
	struct cs_http_req *r;
	char line[256];

	if (h->closing)
		return -ECANCELED;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return -ENOMEM;
	r->h = h;
	r->cb = cb;
	r->arg = arg;
	r->easy = curl_easy_init();
	if (r->easy == NULL)
		goto fail;
	CURL *e = r->easy;
	curl_easy_setopt(e, CURLOPT_URL, rq->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
#if CURL_AT_LEAST_VERSION(7, 85, 0)
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, h->connect_timeout_s);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, h->timeout_s);
	curl_easy_setopt(e, CURLOPT_USERAGENT, h->user_agent);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	if (h->ca_bundle != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_bundle);
	/* Never wait for a 100 Continue: the servers we talk to do not send one. */
	r->hdrs = curl_slist_append(NULL, "Expect:");
	if (r->hdrs == NULL)
		goto fail;
	if (rq->content_type != NULL) {
		snprintf(line, sizeof(line), "Content-Type: %s", rq->content_type);
		struct curl_slist *l = curl_slist_append(r->hdrs, line);
		if (l == NULL)
			goto fail;
		r->hdrs = l;
	}
	if (rq->accept != NULL) {
		snprintf(line, sizeof(line), "Accept: %s", rq->accept);
		struct curl_slist *l = curl_slist_append(r->hdrs, line);
		if (l == NULL)
			goto fail;
		r->hdrs = l;
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
	if (strcmp(rq->method, "HEAD") == 0) {
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	} else if (strcmp(rq->method, "POST") == 0) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->len);
		curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, rq->body != NULL ? rq->body : "");
	} else if (strcmp(rq->method, "GET") != 0) {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, rq->method);
	}
	if (curl_multi_add_handle(h->multi, e) != CURLM_OK)
		goto fail;
	LIST_INSERT_HEAD(&h->reqs, r, link);
	if (out != NULL)
		*out = r;
	return 0;
fail:
	free_req(r);
	return -ENOMEM;
}

void cs_http_cancel(cs_http_req *r)
{
	if (r == NULL)
		return;
	unlink_req(r);
	curl_multi_remove_handle(r->h->multi, r->easy);
	free_req(r);
}

void cs_http_close(cs_http *h, void (*close_cb)(void *arg), void *arg)
{
	if (h == NULL)
		return;
	if (h->closing) /* a second close only replaces nothing: keep the first callback */
		return;
	h->closing = true;
	h->close_cb = close_cb;
	h->close_arg = arg;
	if (h->depth == 0)
		teardown(h);
}

const char *cs_http_header(const struct cs_http_response *res, const char *name, size_t idx,
			   char *buf, size_t buflen)
{
	size_t nlen = strlen(name);

	for (size_t i = 0; i < res->n_headers; i++) {
		const char *l = res->headers[i];
		if (strncasecmp(l, name, nlen) != 0 || l[nlen] != ':')
			continue;
		if (idx-- > 0)
			continue;
		const char *v = l + nlen + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		size_t n = strlen(v);
		while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
			n--;
		if (n >= buflen)
			n = buflen - 1;
		memcpy(buf, v, n);
		buf[n] = '\0';
		return buf;
	}
	return NULL;
}
