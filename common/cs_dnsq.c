/*
 * cs_dnsq - the TLSA RRset of a name from one resolver (see cs_dnsq.h).
 */
#include "cs_dnsq.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <poll.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define Q_TLSA 52
#define UDP_SIZE 1232
#define MAX_MSG 65535

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cs_dnsq_parse_server(const char *s, void *ss, unsigned *len, char *err, size_t errlen)
{
	char host[128];
	const char *port = NULL;
	struct sockaddr_in *v4 = ss;
	struct sockaddr_in6 *v6 = ss;
	long p = 53;
	char *end;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || (size_t)(close - s - 1) >= sizeof(host))
			goto bad;
		snprintf(host, sizeof(host), "%.*s", (int)(close - s - 1), s + 1);
		if (close[1] == ':')
			port = close + 2;
		else if (close[1] != '\0')
			goto bad;
	} else {
		const char *colon = strchr(s, ':');
		size_t n = colon != NULL ? (size_t)(colon - s) : strlen(s);
		if (n == 0 || n >= sizeof(host) || (colon != NULL && strchr(colon + 1, ':')))
			goto bad;
		snprintf(host, sizeof(host), "%.*s", (int)n, s);
		port = colon != NULL ? colon + 1 : NULL;
	}
	if (port != NULL) {
		p = strtol(port, &end, 10);
		if (*port == '\0' || *end != '\0' || p < 1 || p > 65535)
			goto bad;
	}
	memset(ss, 0, sizeof(struct sockaddr_in6));
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)p);
		*len = sizeof(*v4);
		return 0;
	}
	memset(ss, 0, sizeof(struct sockaddr_in6));
	if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)p);
		*len = sizeof(*v6);
		return 0;
	}
bad:
	snprintf(err, errlen, "'%s' is not a resolver address (ADDRESS:PORT, [V6]:PORT or ADDRESS)",
		 s);
	return -1;
}

/*
 * The question for owner's TLSA records into q (RD, AD; an OPT record with
 * DO). Returns its length, or -1 when owner is not a valid name.
 */
static int build_query(const char *owner, uint16_t id, unsigned char *q, size_t qlen)
{
	static const unsigned char head[] = { 0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 1 };
	static const unsigned char tail[] = { 0, Q_TLSA, 0, 1,
					      /* OPT: root, type 41, size, ext-rcode 0,
						 version 0, DO, no options */
					      0, 0, 41, UDP_SIZE >> 8, UDP_SIZE & 0xff, 0, 0,
					      0x80, 0, 0, 0 };
	size_t at = 12;
	const char *p = owner;

	if (qlen < 12 + 256 + sizeof(tail))
		return -1;
	q[0] = (unsigned char)(id >> 8);
	q[1] = (unsigned char)id;
	memcpy(q + 2, head, sizeof(head));
	while (*p != '\0') {
		const char *dot = strchr(p, '.');
		size_t n = dot != NULL ? (size_t)(dot - p) : strlen(p);
		if (n == 0 || n > 63 || at - 12 + n + 2 > 255)
			return -1;
		q[at++] = (unsigned char)n;
		memcpy(q + at, p, n);
		at += n;
		p += n;
		if (*p == '.')
			p++;
	}
	if (at == 12)
		return -1;
	q[at++] = 0;
	memcpy(q + at, tail, sizeof(tail));
	return (int)(at + sizeof(tail));
}

/* Waits for fd to be readable until deadline. Returns 0, or -ETIMEDOUT. */
static int wait_in(int fd, long long deadline)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	long long left;
	int rc;

	do {
		left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		rc = poll(&pfd, 1, (int)left);
	} while (rc < 0 && errno == EINTR);
	return rc > 0 ? 0 : -ETIMEDOUT;
}

/* Reads exactly n bytes (TCP) until deadline. Returns 0 or a negative errno. */
static int read_full(int fd, unsigned char *buf, size_t n, long long deadline)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r;
		int rc = wait_in(fd, deadline);
		if (rc < 0)
			return rc;
		r = read(fd, buf + got, n - got);
		if (r == 0)
			return -ECONNRESET;
		if (r < 0 && errno != EINTR && errno != EAGAIN)
			return -errno;
		got += r > 0 ? (size_t)r : 0;
	}
	return 0;
}

/*
 * Sends q to the resolver at sa over UDP (tcp false) or TCP and reads the
 * answer with q's id into resp. Returns its length, or a negative errno.
 */
static int exchange(const struct sockaddr *sa, socklen_t salen, bool tcp, const unsigned char *q,
		    int qlen, unsigned char *resp, size_t resplen, long long deadline)
{
	int fd = socket(sa->sa_family, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
	unsigned char pre[2] = { (unsigned char)(qlen >> 8), (unsigned char)qlen };
	int rc = -EIO;

	if (fd < 0)
		return -errno;
	if (connect(fd, sa, salen) < 0) {
		rc = -errno;
		goto out;
	}
	if ((tcp && write(fd, pre, 2) != 2) || write(fd, q, (size_t)qlen) != qlen) {
		rc = -errno;
		goto out;
	}
	for (;;) {
		ssize_t n;
		if (tcp) {
			if ((rc = read_full(fd, pre, 2, deadline)) < 0)
				goto out;
			n = pre[0] << 8 | pre[1];
			if ((size_t)n > resplen || (rc = read_full(fd, resp, (size_t)n, deadline)) < 0) {
				rc = rc < 0 ? rc : -EMSGSIZE;
				goto out;
			}
		} else {
			if ((rc = wait_in(fd, deadline)) < 0)
				goto out;
			n = recv(fd, resp, resplen, 0);
			if (n < 0) {
				rc = errno == EINTR || errno == EAGAIN ? -EAGAIN : -errno;
				if (rc == -EAGAIN)
					continue;
				goto out;
			}
		}
		/* An answer (QR) to this question; anything else is dropped. */
		if (n >= 12 && resp[0] == q[0] && resp[1] == q[1] && (resp[2] & 0x80)) {
			rc = (int)n;
			goto out;
		}
		if (tcp) {
			rc = -EPROTO;
			goto out;
		}
	}
out:
	close(fd);
	return rc;
}

/* Reads the TLSA records of the answer section of msg into a. */
static void take_records(ns_msg *msg, struct cs_dnsq_answer *a)
{
	for (int i = 0; i < ns_msg_count(*msg, ns_s_an); i++) {
		ns_rr rr;
		const unsigned char *rd;
		size_t dlen;

		if (ns_parserr(msg, ns_s_an, i, &rr) < 0)
			break;
		if (ns_rr_type(rr) != Q_TLSA || ns_rr_class(rr) != ns_c_in)
			continue;
		rd = ns_rr_rdata(rr);
		dlen = ns_rr_rdlen(rr) >= 3 ? (size_t)ns_rr_rdlen(rr) - 3 : 0;
		if (a->n == CS_DNSQ_MAX_RECS || ns_rr_rdlen(rr) < 3 ||
		    !((rd[2] == 1 && dlen == 32) || (rd[2] == 2 && dlen == 64))) {
			a->n_other++;
			continue;
		}
		struct cs_tlsa_rec *r = &a->recs[a->n++];
		r->usage = rd[0];
		r->selector = rd[1];
		r->mtype = rd[2];
		memcpy(r->data, rd + 3, dlen);
		r->len = dlen;
		if (a->ttl == 0 || ns_rr_ttl(rr) < a->ttl)
			a->ttl = ns_rr_ttl(rr);
	}
}

int cs_dnsq_tlsa(const char *server, const char *owner, int timeout_ms, struct cs_dnsq_answer *a,
		 char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	unsigned sslen;
	unsigned char q[512], *resp;
	uint16_t id;
	long long deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 5000);
	int qlen, n;

	memset(a, 0, sizeof(*a));
	if (cs_dnsq_parse_server(server, &ss, &sslen, err, errlen) < 0)
		return -EINVAL;
	if (RAND_bytes((unsigned char *)&id, sizeof(id)) != 1)
		id = (uint16_t)getpid();
	if ((qlen = build_query(owner, id, q, sizeof(q))) < 0) {
		snprintf(err, errlen, "'%s' is not a DNS name", owner);
		return -EINVAL;
	}
	if ((resp = malloc(MAX_MSG)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	n = exchange((struct sockaddr *)&ss, sslen, false, q, qlen, resp, UDP_SIZE * 4, deadline);
	if (n > 0 && (resp[2] & 0x02)) /* TC: the whole answer over TCP */
		n = exchange((struct sockaddr *)&ss, sslen, true, q, qlen, resp, MAX_MSG, deadline);
	if (n < 0) {
		snprintf(err, errlen, "resolver %s: no answer for %s TLSA: %s", server, owner,
			 n == -ETIMEDOUT ? "timed out" : strerror(-n));
		free(resp);
		return n;
	}
	if (cs_dnsq_parse(resp, (size_t)n, a) < 0) {
		snprintf(err, errlen, "resolver %s: malformed answer for %s TLSA", server, owner);
		free(resp);
		return -EPROTO;
	}
	free(resp);
	return 0;
}

int cs_dnsq_parse(const unsigned char *msg_buf, size_t len, struct cs_dnsq_answer *a)
{
	ns_msg msg;

	memset(a, 0, sizeof(*a));
	if (len > MAX_MSG || ns_initparse(msg_buf, (int)len, &msg) < 0)
		return -EPROTO;
	a->rcode = ns_msg_getflag(msg, ns_f_rcode);
	a->ad = ns_msg_getflag(msg, ns_f_ad) != 0;
	if (a->rcode == ns_r_noerror)
		take_records(&msg, a);
	return 0;
}

/* A question on the thread pool. */
struct dnsq_job {
	uv_work_t req;
	char *server, *owner;
	int timeout_ms, status;
	struct cs_dnsq_answer a;
	char err[600];
	cs_dnsq_cb cb;
	void *arg;
};

static void dnsq_work(uv_work_t *req)
{
	struct dnsq_job *j = req->data;

	j->status = cs_dnsq_tlsa(j->server, j->owner, j->timeout_ms, &j->a, j->err, sizeof(j->err));
}

static void dnsq_done(uv_work_t *req, int status)
{
	struct dnsq_job *j = req->data;

	if (status < 0 && j->status == 0) {
		j->status = status;
		snprintf(j->err, sizeof(j->err), "resolver %s: the question for %s was cancelled",
			 j->server, j->owner);
	}
	j->cb(j->arg, j->status, j->status == 0 ? &j->a : NULL, j->err);
	free(j->server);
	free(j->owner);
	free(j);
}

int cs_dnsq_tlsa_start(uv_loop_t *loop, const char *server, const char *owner, int timeout_ms,
		       cs_dnsq_cb cb, void *arg)
{
	struct dnsq_job *j = calloc(1, sizeof(*j));
	int rc;

	if (j == NULL || (j->server = strdup(server)) == NULL || (j->owner = strdup(owner)) == NULL) {
		if (j != NULL)
			free(j->server);
		free(j);
		return -ENOMEM;
	}
	j->req.data = j;
	j->timeout_ms = timeout_ms;
	j->cb = cb;
	j->arg = arg;
	if ((rc = uv_queue_work(loop, &j->req, dnsq_work, dnsq_done)) < 0) {
		free(j->server);
		free(j->owner);
		free(j);
		return rc;
	}
	return 0;
}
