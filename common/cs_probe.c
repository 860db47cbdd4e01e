/*
 * cs_probe - the TLS probe of verify URLs. See cs_probe.h.
 *
 * The plaintext dialogue before STARTTLS is read one byte at a time, so that
 * nothing the server sends after its "go ahead" reply is consumed as
 * plaintext (the STARTTLS command-injection class of bugs): the TLS
 * handshake starts exactly where the reply ended.
 */
#include "cs_probe.h"
#include "cs_fp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const struct {
	const char *scheme;
	enum cs_probe_proto proto;
	bool implicit;
	const char *port;
} schemes[] = {
	{ "smtp", CS_PROBE_SMTP, false, "25" },	 { "submission", CS_PROBE_SMTP, false, "587" },
	{ "imap", CS_PROBE_IMAP, false, "143" }, { "pop3", CS_PROBE_POP3, false, "110" },
	{ "smtps", CS_PROBE_SMTP, true, "465" }, { "imaps", CS_PROBE_IMAP, true, "993" },
	{ "pop3s", CS_PROBE_POP3, true, "995" }, { "sieve", CS_PROBE_SIEVE, false, "4190" },
};

int cs_probe_url_parse(const char *s, struct cs_probe_url *u, char *err, size_t errlen)
{
	const char *sep = strstr(s, "://"), *h, *hend, *p, *q;
	size_t i, n;
	unsigned char addr[16];

	memset(u, 0, sizeof(*u));
	for (i = 0; sep != NULL && i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (strlen(schemes[i].scheme) == (size_t)(sep - s) &&
		    strncmp(s, schemes[i].scheme, (size_t)(sep - s)) == 0)
			break;
	if (sep == NULL || i == sizeof(schemes) / sizeof(schemes[0])) {
		snprintf(err, errlen,
			 "'%s': expected smtp://, submission://, imap://, pop3://, sieve://, "
			 "smtps://, imaps:// or pop3s://HOST[:PORT]",
			 s);
		return -EINVAL;
	}
	snprintf(u->scheme, sizeof(u->scheme), "%s", schemes[i].scheme);
	u->proto = schemes[i].proto;
	u->implicit_tls = schemes[i].implicit;
	snprintf(u->port, sizeof(u->port), "%s", schemes[i].port);
	h = sep + 3;
	q = strchr(h, '?');
	if (*h == '[') {
		hend = strchr(h, ']');
		if (hend == NULL || (q != NULL && hend > q))
			goto bad;
		h++;
		p = hend + 1;
	} else {
		hend = h + strcspn(h, ":/?");
		p = hend;
	}
	n = (size_t)(hend - h);
	if (n == 0 || n >= sizeof(u->host))
		goto bad;
	memcpy(u->host, h, n);
	if (*p == ':') {
		char *end;
		long port = strtol(p + 1, &end, 10);

		if (end == p + 1 || port < 1 || port > 65535 || (*end != '\0' && *end != '?' &&
								 *end != '/'))
			goto bad;
		snprintf(u->port, sizeof(u->port), "%ld", port);
		p = end;
	}
	if (*p == '/')
		p++;
	if (*p == '?') {
		if (strncmp(p, "?sni=", 5) != 0 || strlen(p + 5) >= sizeof(u->sni))
			goto bad;
		snprintf(u->sni, sizeof(u->sni), "%s", p + 5);
	} else if (*p != '\0') {
		goto bad;
	} else if (inet_pton(AF_INET, u->host, addr) != 1 &&
		   inet_pton(AF_INET6, u->host, addr) != 1) {
		snprintf(u->sni, sizeof(u->sni), "%s", u->host);
	}
	return 0;
bad:
	snprintf(err, errlen, "'%s': expected %s://HOST[:PORT][?sni=NAME]", s, u->scheme);
	return -EINVAL;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left before deadline, at least 0. */
static int left(long long deadline)
{
	long long l = deadline - now_ms();

	return l > 0 ? (int)l : 0;
}

/* Waits until fd is ready for events; returns 0, or -ETIMEDOUT / -errno. */
static int wait_fd(int fd, short events, long long deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };

	for (;;) {
		int n = poll(&pfd, 1, left(deadline));

		if (n > 0)
			return 0;
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

/* Connects a non-blocking socket to u within the deadline; returns the fd or -errno. */
static int dial(const struct cs_probe_url *u, long long deadline, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG }, *res,
			*ai;
	int rc = getaddrinfo(u->host, u->port, &hints, &res), fd = -1, last = -ECONNREFUSED;

	if (rc != 0) {
		snprintf(err, errlen, "%s: cannot resolve: %s", u->host, gai_strerror(rc));
		return -EHOSTUNREACH;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		int soerr = 0;
		socklen_t sl = sizeof(soerr);

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			last = -errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno == EINPROGRESS) {
			rc = wait_fd(fd, POLLOUT, deadline);
			if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 &&
			    soerr == 0)
				break;
			last = rc < 0 ? rc : -soerr;
		} else {
			last = -errno;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		snprintf(err, errlen, "cannot connect to %s port %s: %s", u->host, u->port,
			 strerror(-last));
	return fd < 0 ? last : fd;
}

/* Reads one line (up to \n) into buf without reading past it; returns its length or -errno. */
static int read_line(int fd, char *buf, size_t len, long long deadline)
{
	size_t n = 0;

	for (;;) {
		char c;
		ssize_t r = recv(fd, &c, 1, 0);

		if (r == 1) {
			if (n + 1 < len)
				buf[n++] = c;
			if (c == '\n')
				break;
			continue;
		}
		if (r == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		int rc = wait_fd(fd, POLLIN, deadline);
		if (rc < 0)
			return rc;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	return (int)n;
}

static int send_all(int fd, const char *s, long long deadline)
{
	size_t len = strlen(s);

	while (len > 0) {
		ssize_t w = send(fd, s, len, MSG_NOSIGNAL);

		if (w > 0) {
			s += w;
			len -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		int rc = wait_fd(fd, POLLOUT, deadline);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/*
 * Reads an SMTP reply (continuation lines "250-...") and returns its code, or
 * -errno; the last line goes to last, and *has_starttls tells whether a line
 * announced STARTTLS.
 */
static int smtp_reply(int fd, long long deadline, char *last, size_t len, bool *has_starttls)
{
	char line[1024];

	for (;;) {
		int rc = read_line(fd, line, sizeof(line), deadline);

		if (rc < 0)
			return rc;
		if (rc < 3 || line[0] < '1' || line[0] > '5')
			return -EPROTO;
		if (has_starttls != NULL && rc >= 12 && strncasecmp(line + 4, "STARTTLS", 8) == 0)
			*has_starttls = true;
		if (line[3] != '-') {
			snprintf(last, len, "%s", line);
			return atoi(line);
		}
	}
}

/* The message of a dialogue that failed on the wire (rc) before TLS; returns rc. */
static int fail_io(const struct cs_probe_url *u, int rc, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s port %s: %s before TLS", u->host, u->port,
		 rc == -ETIMEDOUT ? "timed out"
		 : rc == -EPROTO  ? "not a valid reply"
				  : strerror(-rc));
	return rc;
}

/* The message of a server that answered line where it should have said yes; -EPROTO. */
static int fail_refused(const struct cs_probe_url *u, const char *line, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s port %s: the server refused: \"%.200s\"", u->host, u->port, line);
	return -EPROTO;
}

/* The message of a server that does not announce STARTTLS; -EPROTONOSUPPORT. */
static int fail_not_offered(const struct cs_probe_url *u, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s port %s: the server does not offer STARTTLS", u->host, u->port);
	return -EPROTONOSUPPORT;
}

/* SMTP: a 220 greeting, an EHLO reply 250 that offers STARTTLS, STARTTLS answered 220. */
static int smtp_starttls(int fd, const struct cs_probe_url *u, long long deadline, char *err,
			 size_t errlen)
{
	char line[1024] = "";
	bool offered = false;
	int rc;

	if ((rc = smtp_reply(fd, deadline, line, sizeof(line), NULL)) < 0)
		return fail_io(u, rc, err, errlen);
	if (rc != 220)
		return fail_refused(u, line, err, errlen);
	if ((rc = send_all(fd, "EHLO certsync-probe.invalid\r\n", deadline)) < 0 ||
	    (rc = smtp_reply(fd, deadline, line, sizeof(line), &offered)) < 0)
		return fail_io(u, rc, err, errlen);
	if (rc != 250)
		return fail_refused(u, line, err, errlen);
	if (!offered)
		return fail_not_offered(u, err, errlen);
	if ((rc = send_all(fd, "STARTTLS\r\n", deadline)) < 0 ||
	    (rc = smtp_reply(fd, deadline, line, sizeof(line), NULL)) < 0)
		return fail_io(u, rc, err, errlen);
	if (rc != 220)
		return fail_refused(u, line, err, errlen);
	return 0;
}

/* IMAP: a "* OK" greeting, then "cs1 STARTTLS" answered "cs1 OK" after any untagged lines. */
static int imap_starttls(int fd, const struct cs_probe_url *u, long long deadline, char *err,
			 size_t errlen)
{
	char line[1024] = "";
	int rc;

	if ((rc = read_line(fd, line, sizeof(line), deadline)) < 0)
		return fail_io(u, rc, err, errlen);
	if (strncmp(line, "* OK", 4) != 0)
		return fail_refused(u, line, err, errlen);
	if ((rc = send_all(fd, "cs1 STARTTLS\r\n", deadline)) < 0)
		return fail_io(u, rc, err, errlen);
	do {
		if ((rc = read_line(fd, line, sizeof(line), deadline)) < 0)
			return fail_io(u, rc, err, errlen);
	} while (strncmp(line, "* ", 2) == 0);
	if (strncmp(line, "cs1 OK", 6) != 0)
		return fail_refused(u, line, err, errlen);
	return 0;
}

/* POP3: a "+OK" greeting, then STLS answered "+OK". */
static int pop3_starttls(int fd, const struct cs_probe_url *u, long long deadline, char *err,
			 size_t errlen)
{
	char line[1024] = "";
	int rc;

	if ((rc = read_line(fd, line, sizeof(line), deadline)) < 0)
		return fail_io(u, rc, err, errlen);
	if (strncmp(line, "+OK", 3) != 0)
		return fail_refused(u, line, err, errlen);
	if ((rc = send_all(fd, "STLS\r\n", deadline)) < 0 ||
	    (rc = read_line(fd, line, sizeof(line), deadline)) < 0)
		return fail_io(u, rc, err, errlen);
	if (strncmp(line, "+OK", 3) != 0)
		return fail_refused(u, line, err, errlen);
	return 0;
}

/* ManageSieve: capabilities that name STARTTLS ending in OK, then STARTTLS answered OK. */
static int sieve_starttls(int fd, const struct cs_probe_url *u, long long deadline, char *err,
			  size_t errlen)
{
	char line[1024] = "";
	bool offered = false;
	int rc;

	/* Capabilities, one quoted string per line, then OK (RFC 5804 1.7). */
	for (;;) {
		if ((rc = read_line(fd, line, sizeof(line), deadline)) < 0)
			return fail_io(u, rc, err, errlen);
		if (strncasecmp(line, "\"STARTTLS\"", 10) == 0)
			offered = true;
		if (line[0] != '"')
			break;
	}
	if (strncasecmp(line, "OK", 2) != 0)
		return fail_refused(u, line, err, errlen);
	if (!offered)
		return fail_not_offered(u, err, errlen);
	if ((rc = send_all(fd, "STARTTLS\r\n", deadline)) < 0 ||
	    (rc = read_line(fd, line, sizeof(line), deadline)) < 0)
		return fail_io(u, rc, err, errlen);
	if (strncasecmp(line, "OK", 2) != 0)
		return fail_refused(u, line, err, errlen);
	return 0;
}

/* The plaintext dialogue up to the point where TLS starts; returns 0 or -errno. */
static int starttls(int fd, const struct cs_probe_url *u, long long deadline, char *err,
		    size_t errlen)
{
	switch (u->proto) {
	case CS_PROBE_SMTP:
		return smtp_starttls(fd, u, deadline, err, errlen);
	case CS_PROBE_IMAP:
		return imap_starttls(fd, u, deadline, err, errlen);
	case CS_PROBE_POP3:
		return pop3_starttls(fd, u, deadline, err, errlen);
	case CS_PROBE_SIEVE:
		return sieve_starttls(fd, u, deadline, err, errlen);
	}
	return -EINVAL;
}

/* Drains the OpenSSL error queue into buf after prefix. */
static void ssl_error(char *buf, size_t len, const char *prefix)
{
	unsigned long e = ERR_get_error();
	char reason[256] = "no details";

	if (e != 0)
		ERR_error_string_n(e, reason, sizeof(reason));
	snprintf(buf, len, "%s: %s", prefix, reason);
	ERR_clear_error();
}

int cs_probe_dane_check(const struct cs_probe_dane *d, char *err, size_t errlen)
{
	if (d == NULL || d->n == 0)
		return 0;
	if (d->n > CS_PROBE_DANE_MAX || d->recs == NULL) {
		snprintf(err, errlen, "%zu TLSA records: at most %d are checked", d->n,
			 CS_PROBE_DANE_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < d->n; i++) {
		const struct cs_tlsa_rec *t = &d->recs[i];
		size_t want = t->mtype == 1 ? 32 : t->mtype == 2 ? 64 : 0;

		if (want == 0) {
			snprintf(err, errlen,
				 "TLSA record %zu: matching type %u (1 SHA-256 or 2 SHA-512 only)",
				 i + 1, t->mtype);
			return -EINVAL;
		}
		if (t->len != want) {
			snprintf(err, errlen,
				 "TLSA record %zu: %zu bytes of data for matching type %u, not %zu",
				 i + 1, t->len, t->mtype, want);
			return -EINVAL;
		}
	}
	return 0;
}

/*
 * A client context, with DANE turned on when d has records. Returns it, or
 * NULL with why in r->error.
 */
static SSL_CTX *client_ctx(const struct cs_probe_dane *d, const char *where,
			   struct cs_probe_result *r)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL || (d != NULL && d->n > 0 && SSL_CTX_dane_enable(ctx) <= 0)) {
		ssl_error(r->error, sizeof(r->error), where);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/*
 * DANE on ssl (its context DANE-enabled) for the base domain of u, with the
 * records of d that an SMTP client uses (RFC 7672: DANE-TA and DANE-EE, no
 * name checks for DANE-EE). Returns how many were taken, or -1 (OpenSSL's
 * error queue says why).
 */
static int dane_setup(SSL *ssl, const struct cs_probe_url *u, const struct cs_probe_dane *d)
{
	int added = 0;

	if (SSL_dane_enable(ssl, u->sni[0] != '\0' ? u->sni : u->host) <= 0)
		return -1;
	SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
	for (size_t i = 0; i < d->n; i++) {
		const struct cs_tlsa_rec *t = &d->recs[i];
		int rc;

		if ((t->usage != 2 && t->usage != 3) || t->selector > 1)
			continue;
		rc = SSL_dane_tlsa_add(ssl, t->usage, t->selector, t->mtype, t->data, t->len);
		if (rc < 0)
			return -1;
		if (rc > 0)
			added++;
	}
	ERR_clear_error();
	return added;
}

/* What DANE said of the completed handshake on ssl, added records having been given, into r. */
static void dane_outcome(SSL *ssl, int added, struct cs_probe_result *r)
{
	struct cs_probe_dane_result *dr = &r->dane;
	long vr = SSL_get_verify_result(ssl);
	uint8_t usage, selector, mtype;
	const unsigned char *data;
	size_t dlen;
	int depth = -1;

	dr->checked = true;
	if (added > 0 && vr == X509_V_OK)
		depth = SSL_get0_dane_tlsa(ssl, &usage, &selector, &mtype, &data, &dlen);
	if (depth >= 0) {
		dr->ok = true;
		dr->depth = depth;
		dr->usage = usage;
		dr->selector = selector;
		dr->mtype = mtype;
		snprintf(dr->text, sizeof(dr->text), "TLSA %u %u %u matches at depth %d", usage,
			 selector, mtype, depth);
		return;
	}
	if (added == 0)
		snprintf(dr->text, sizeof(dr->text),
			 "no usable TLSA record (an SMTP client uses only 2 and 3, selector 0 or 1)");
	else
		snprintf(dr->text, sizeof(dr->text),
			 "no TLSA record matches the served chain (%s)",
			 X509_verify_cert_error_string(vr));
	snprintf(r->error, sizeof(r->error), "DANE: %s", dr->text);
}

/* Copies the chain ssl's peer served into r->chain; returns 0 or -errno with r->error set. */
static int take_chain(SSL *ssl, const char *where, struct cs_probe_result *r)
{
	STACK_OF(X509) *served = SSL_get_peer_cert_chain(ssl);

	if (served == NULL || sk_X509_num(served) == 0) {
		snprintf(r->error, sizeof(r->error), "%s: the server sent no certificate", where);
		return -EPROTO;
	}
	r->chain = sk_X509_new_null();
	for (int i = 0; r->chain != NULL && i < sk_X509_num(served); i++) {
		X509 *x = sk_X509_value(served, i);
		if (X509_up_ref(x))
			sk_X509_push(r->chain, x);
	}
	if (r->chain == NULL) {
		snprintf(r->error, sizeof(r->error), "%s: out of memory", where);
		return -ENOMEM;
	}
	return 0;
}

/* SSL_connect on ssl over fd until done or the deadline; returns 0 or -errno with r->error set. */
static int connect_tls(SSL *ssl, int fd, long long deadline, const char *where,
		       struct cs_probe_result *r)
{
	for (;;) {
		int ret = SSL_connect(ssl);

		if (ret == 1)
			return 0;
		int e = SSL_get_error(ssl, ret), w;
		if (e == SSL_ERROR_WANT_READ)
			w = wait_fd(fd, POLLIN, deadline);
		else if (e == SSL_ERROR_WANT_WRITE)
			w = wait_fd(fd, POLLOUT, deadline);
		else {
			ssl_error(r->error, sizeof(r->error), where);
			return -EPROTO;
		}
		if (w < 0) {
			snprintf(r->error, sizeof(r->error), "%s: %s", where,
				 w == -ETIMEDOUT ? "timed out" : strerror(-w));
			return w;
		}
	}
}

/* The TLS handshake on the connected fd, with DANE when d has records; fills r. 0 or -errno. */
static int handshake(int fd, const struct cs_probe_url *u, const struct cs_probe_dane *d,
		     long long deadline, struct cs_probe_result *r)
{
	SSL_CTX *ctx;
	SSL *ssl = NULL;
	char where[300];
	int rc = -EPROTO, added = 0;

	snprintf(where, sizeof(where), "%s port %s: TLS handshake failed", u->host, u->port);
	if ((ctx = client_ctx(d, where, r)) == NULL)
		return -ENOMEM;
	if ((ssl = SSL_new(ctx)) == NULL || !SSL_set_fd(ssl, fd)) {
		ssl_error(r->error, sizeof(r->error), where);
		rc = -ENOMEM;
		goto out;
	}
	/* We report and compare what is served; trust is not this probe's question
	   (DANE's answer is read after the handshake, which it does not stop). */
	SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
	if (u->sni[0] != '\0' && !SSL_set_tlsext_host_name(ssl, u->sni)) {
		ssl_error(r->error, sizeof(r->error), where);
		goto out;
	}
	if (d != NULL && d->n > 0 && (added = dane_setup(ssl, u, d)) < 0) {
		ssl_error(r->error, sizeof(r->error), "DANE: cannot set up");
		goto out;
	}
	if ((rc = connect_tls(ssl, fd, deadline, where, r)) < 0 ||
	    (rc = take_chain(ssl, where, r)) < 0)
		goto out;
	snprintf(r->tls_version, sizeof(r->tls_version), "%s", SSL_get_version(ssl));
	snprintf(r->cipher, sizeof(r->cipher), "%s", SSL_get_cipher_name(ssl));
	if (d != NULL && d->n > 0)
		dane_outcome(ssl, added, r);
	/* A polite close; the server's answer does not matter. */
	SSL_shutdown(ssl);
out:
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	return rc;
}

int cs_probe_run(const struct cs_probe_url *u, int timeout_ms, struct cs_probe_result *r)
{
	return cs_probe_run_dane(u, NULL, timeout_ms, r);
}

int cs_probe_run_dane(const struct cs_probe_url *u, const struct cs_probe_dane *dane,
		      int timeout_ms, struct cs_probe_result *r)
{
	long long deadline = now_ms() + timeout_ms;
	int fd, rc;

	memset(r, 0, sizeof(*r));
	if ((rc = cs_probe_dane_check(dane, r->error, sizeof(r->error))) < 0)
		return rc;
	fd = dial(u, deadline, r->error, sizeof(r->error));
	if (fd < 0)
		return fd;
	if (!u->implicit_tls && (rc = starttls(fd, u, deadline, r->error, sizeof(r->error))) < 0)
		goto out;
	rc = handshake(fd, u, dane, deadline, r);
out:
	close(fd);
	return rc;
}

void cs_probe_result_clear(struct cs_probe_result *r)
{
	sk_X509_pop_free(r->chain, X509_free);
	memset(r, 0, sizeof(*r));
}

/* ---- the asynchronous verify ---- */

struct verify {
	uv_work_t work;
	uv_timer_t timer;
	struct cs_probe_url url;
	struct cs_tlsa_rec tlsa[CS_PROBE_DANE_MAX]; /* a copy of the caller's records */
	size_t n_tlsa;
	char want[CS_FP_MAX];
	char served[CS_FP_MAX];
	char msg[1200];
	long long deadline;
	int retry_ms;
	bool ok;
	cs_probe_cb cb;
	void *arg;
};

/* The message of an attempt that got the chain of r, served[] and ok set. */
static void verify_message(struct verify *v, const struct cs_probe_result *r)
{
	char dane[300] = "";

	if (r->dane.checked)
		snprintf(dane, sizeof(dane), "; DANE: %s", r->dane.text);
	if (strcmp(v->served, v->want) == 0)
		snprintf(v->msg, sizeof(v->msg), "%s://%s:%s serves the deployed certificate%s",
			 v->url.scheme, v->url.host, v->url.port, dane);
	else
		snprintf(v->msg, sizeof(v->msg),
			 "%s://%s:%s serves sha256 %s, not the deployed %s%s", v->url.scheme,
			 v->url.host, v->url.port, v->served, v->want, dane);
}

static void verify_attempt(uv_work_t *w)
{
	struct verify *v = w->data;
	struct cs_probe_dane dane = { v->tlsa, v->n_tlsa };
	struct cs_probe_result r;
	int per = left(v->deadline);

	/* One attempt never runs past the bound, but gets at least a second. */
	if (per < 1000)
		per = 1000;
	if (cs_probe_run_dane(&v->url, &dane, per, &r) < 0) {
		snprintf(v->msg, sizeof(v->msg), "%s", r.error);
		v->served[0] = '\0';
		return;
	}
	if (cs_fp_cert(sk_X509_value(r.chain, 0), CS_DIGEST_SHA256, v->served,
		       sizeof(v->served)) != 0)
		v->served[0] = '\0';
	v->ok = strcmp(v->served, v->want) == 0 && (!r.dane.checked || r.dane.ok);
	verify_message(v, &r);
	cs_probe_result_clear(&r);
}

static void verify_free(uv_handle_t *h)
{
	free(h->data);
}

static void verify_after(uv_work_t *w, int status);

static void verify_again(uv_timer_t *t)
{
	struct verify *v = t->data;

	if (uv_queue_work(t->loop, &v->work, verify_attempt, verify_after) < 0) {
		v->cb(v->arg, false, v->served, "cannot queue the probe");
		uv_close((uv_handle_t *)&v->timer, verify_free);
	}
}

static void verify_after(uv_work_t *w, int status)
{
	struct verify *v = w->data;

	if (status == 0 && !v->ok && left(v->deadline) > v->retry_ms) {
		uv_timer_start(&v->timer, verify_again, (uint64_t)v->retry_ms, 0);
		return;
	}
	if (status != 0)
		snprintf(v->msg, sizeof(v->msg), "probe cancelled");
	v->cb(v->arg, status == 0 && v->ok, v->served, v->msg);
	uv_close((uv_handle_t *)&v->timer, verify_free);
}

int cs_probe_verify_start(uv_loop_t *loop, const char *url, const char *want_sha256,
			  const struct cs_probe_dane *dane, int bound_ms, int retry_ms,
			  cs_probe_cb cb, void *arg)
{
	struct verify *v = calloc(1, sizeof(*v));
	char err[512];
	int rc;

	if (v == NULL)
		return -ENOMEM;
	if ((rc = cs_probe_url_parse(url, &v->url, err, sizeof(err))) < 0 ||
	    (rc = cs_probe_dane_check(dane, err, sizeof(err))) < 0) {
		free(v);
		return rc;
	}
	if (dane != NULL && dane->n > 0) {
		memcpy(v->tlsa, dane->recs, dane->n * sizeof(dane->recs[0]));
		v->n_tlsa = dane->n;
	}
	snprintf(v->want, sizeof(v->want), "%s", want_sha256);
	v->deadline = now_ms() + bound_ms;
	v->retry_ms = retry_ms > 0 ? retry_ms : 250;
	v->cb = cb;
	v->arg = arg;
	v->work.data = v;
	uv_timer_init(loop, &v->timer);
	v->timer.data = v;
	if ((rc = uv_queue_work(loop, &v->work, verify_attempt, verify_after)) < 0) {
		uv_close((uv_handle_t *)&v->timer, verify_free);
		return rc;
	}
	return 0;
}
