/*
 * cs_acme_host_local - the local host of the acme issuer (cs_acme_host.h):
 * the side that holds the account key and may touch the file system, in the
 * process that runs it. It loads the account key from
 * STATE_DIR/acme/NAME/account.key or makes one (mode 0600) on the work
 * queue, signs JWS and the External Account Binding with it, writes and
 * removes the webroot's token files (work queue), runs dns_hook (on the loop,
 * through cs_acme_hook) with its environment, and binds http_listen.
 *
 * It checks what it is asked rather than trusting the client: a token that
 * is not base64url never becomes a path, the key authorization is made here
 * from the token and the key's thumbprint, and a challenge of a kind this
 * issuer has no webroot or dns_hook for is refused.
 *
 * Each call is a struct req. Work and hooks answer from their completion;
 * what is answered at once (a signature, an EAB, a refusal) waits in ready
 * for the host's timer, so that no callback runs inside a call.
 */
#include "cs_acme_host.h"
#include "cs_acme_hook.h"
#include "cs_acme_http01.h"
#include "cs_acme_jws.h"
#include "cs_atomic.h"
#include "cs_b64url.h"
#include "cs_log.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#define HOOK_TIMEOUT_MS (300 * 1000)

enum req_kind { REQ_KEY, REQ_TEXT, REQ_DONE, REQ_FD };

struct lhost;

/* One call, from the op to its callback. */
struct req {
	struct lhost *h;
	TAILQ_ENTRY(req) link; /* in h->ready, waiting for the timer */
	enum req_kind kind;
	union {
		cs_acme_host_key_cb key;
		cs_acme_host_text_cb text;
		cs_acme_host_done_cb done;
		cs_acme_host_fd_cb fd;
	} cb;
	void *arg;
	uv_work_t work;
	void (*work_fn)(struct req *r);
	/* the answer */
	int status;
	char err[512];
	char *text;    /* REQ_TEXT */
	int fd;        /* REQ_FD */
	EVP_PKEY *key; /* REQ_KEY: loaded or made on the work queue */
	bool existed;
	/* what the work needs */
	char *file, *keyauth;
};

struct lhost {
	uv_loop_t *loop;
	/* read by work on the pool too: never changed after cs_acme_host_local_new */
	char *name, *acct_dir, *key_path, *webroot, *http_listen, *dns_hook, *eab_kid,
		*eab_hmac_key;
	enum cs_keytype keytype;
	/* the loop's */
	EVP_PKEY *key;
	bool key_existed;
	char *thumb;
	uv_timer_t timer;
	TAILQ_HEAD(req_list, req) ready;
	unsigned pending; /* calls not answered yet */
	bool closing, torn;
	void (*close_cb)(void *);
	void *close_arg;
};

/* True when token is non-empty base64url, at most 256 characters: never a path. */
bool cs_acme_host_token_ok(const char *t)
{
	if (t == NULL || *t == '\0' || strlen(t) > 256)
		return false;
	for (; *t; t++)
		if (!((*t >= 'A' && *t <= 'Z') || (*t >= 'a' && *t <= 'z') ||
		      (*t >= '0' && *t <= '9') || *t == '-' || *t == '_'))
			return false;
	return true;
}

/* ---- calls and answers ---------------------------------------------------- */

/* A new call of kind on host, or NULL with *rc: -ECANCELED once the host is closing, -ENOMEM. */
static struct req *req_new(void *host, enum req_kind kind, void *arg, int *rc)
{
	struct lhost *h = host;
	struct req *r;

	*rc = h->closing ? -ECANCELED : -ENOMEM;
	if (h->closing || (r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->h = h;
	r->kind = kind;
	r->arg = arg;
	r->fd = -1;
	h->pending++;
	return r;
}

static void on_timer_closed(uv_handle_t *t)
{
	struct lhost *h = t->data;
	void (*cb)(void *) = h->close_cb;
	void *arg = h->close_arg;

	EVP_PKEY_free(h->key);
	free(h->thumb);
	free(h->name);
	free(h->acct_dir);
	free(h->key_path);
	free(h->webroot);
	free(h->http_listen);
	free(h->dns_hook);
	free(h->eab_kid);
	if (h->eab_hmac_key != NULL)
		OPENSSL_cleanse(h->eab_hmac_key, strlen(h->eab_hmac_key));
	free(h->eab_hmac_key);
	free(h);
	if (cb != NULL)
		cb(arg);
}

static void maybe_free(struct lhost *h)
{
	if (!h->closing || h->pending > 0 || h->torn)
		return;
	h->torn = true;
	uv_close((uv_handle_t *)&h->timer, on_timer_closed);
}

/* Calls r's callback with its answer (-ECANCELED once the host is closing) and frees r. */
static void answer(struct req *r)
{
	struct lhost *h = r->h;
	const char *e = r->status != 0 ? r->err : NULL;

	if (h->closing && r->status == 0) {
		r->status = -ECANCELED;
		snprintf(r->err, sizeof(r->err), "cancelled: the host is closing");
		e = r->err;
		if (r->fd >= 0)
			close(r->fd);
		r->fd = -1;
	}
	switch (r->kind) {
	case REQ_KEY: {
		unsigned char *der = NULL;
		int n = r->status == 0 ? i2d_PUBKEY(h->key, &der) : 0;
		struct cs_der pub = { der, n > 0 ? (size_t)n : 0 };
		if (r->status == 0 && n <= 0)
			r->cb.key(r->arg, -ENOMEM, NULL, false,
				  "cannot encode the account key's public key");
		else if (r->status == 0)
			r->cb.key(r->arg, 0, &pub, r->existed, NULL);
		else
			r->cb.key(r->arg, r->status, NULL, false, e);
		OPENSSL_free(der);
		break;
	}
	case REQ_TEXT:
		r->cb.text(r->arg, r->status, r->status == 0 ? r->text : NULL, e);
		break;
	case REQ_DONE:
		r->cb.done(r->arg, r->status, e);
		break;
	case REQ_FD:
		r->cb.fd(r->arg, r->status, r->status == 0 ? r->fd : -1, e);
		break;
	}
	EVP_PKEY_free(r->key);
	free(r->text);
	free(r->file);
	free(r->keyauth);
	free(r);
	h->pending--;
	maybe_free(h);
}

static void on_ready(uv_timer_t *t)
{
	struct lhost *h = t->data;
	struct req_list now = TAILQ_HEAD_INITIALIZER(now);
	struct req *r;

	/* Those queued by a callback wait for the next turn. */
	TAILQ_CONCAT(&now, &h->ready, link);
	while ((r = TAILQ_FIRST(&now)) != NULL) {
		TAILQ_REMOVE(&now, r, link);
		answer(r);
	}
}

/* Answers r from the host's timer, not inside the call. */
static int ready(struct req *r)
{
	struct lhost *h = r->h;

	TAILQ_INSERT_TAIL(&h->ready, r, link);
	if (!uv_is_active((uv_handle_t *)&h->timer))
		uv_timer_start(&h->timer, on_ready, 0, 0);
	return 0;
}

/* Answers r with status (< 0) and the message fmt, from the host's timer. */
static int fail(struct req *r, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct req *r, int status, const char *fmt, ...)
{
	va_list ap;

	r->status = status;
	va_start(ap, fmt);
	vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
	return ready(r);
}

static void work_cb(uv_work_t *w)
{
	struct req *r = w->data;

	r->work_fn(r);
}

static void adopt_key(struct req *r);

static void after_work_cb(uv_work_t *w, int status)
{
	struct req *r = w->data;

	(void)status;
	if (r->kind == REQ_KEY)
		adopt_key(r);
	answer(r);
}

/* Runs fn(r) on the work queue; r is answered after it. */
static int run_work(struct req *r, void (*fn)(struct req *))
{
	int rc;

	r->work_fn = fn;
	r->work.data = r;
	rc = uv_queue_work(r->h->loop, &r->work, work_cb, after_work_cb);
	if (rc < 0)
		return fail(r, rc, "cannot queue work: %s", uv_strerror(rc));
	return 0;
}

/* ---- the account key --------------------------------------------------- */

static int write_key(EVP_PKEY *key, const char *path, char *err, size_t errlen);

static void work_key(struct req *r)
{
	struct lhost *h = r->h;
	FILE *f;
	struct stat sb;

	if (mkdir(h->acct_dir, 0700) < 0 && errno != EEXIST) {
		/* STATE_DIR/acme first, then STATE_DIR/acme/NAME. */
		char *parent = strdup(h->acct_dir), *slash;
		if (parent != NULL && (slash = strrchr(parent, '/')) != NULL) {
			*slash = '\0';
			mkdir(parent, 0700);
		}
		free(parent);
		if (mkdir(h->acct_dir, 0700) < 0 && errno != EEXIST) {
			r->status = -errno;
			snprintf(r->err, sizeof(r->err), "%s: cannot create: %s",
				 h->acct_dir, strerror(errno));
			return;
		}
	}
	f = fopen(h->key_path, "re");
	if (f != NULL) {
		if (fstat(fileno(f), &sb) == 0 && (sb.st_mode & 077) != 0)
			cs_warn("acme %s: %s is readable by others (mode %o)", h->name,
				h->key_path, (unsigned)(sb.st_mode & 0777));
		r->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
		if (r->key == NULL || cs_acme_jws_alg(r->key) == NULL) {
			r->status = -EINVAL;
			snprintf(r->err, sizeof(r->err),
				 "%s: not a P-256, P-384 or RSA private key in PEM", h->key_path);
			cs_log_ssl_errors(r->err, sizeof(r->err));
			return;
		}
		r->existed = true;
		return;
	}
	if (errno != ENOENT) {
		r->status = -errno;
		snprintf(r->err, sizeof(r->err), "%s: cannot open: %s", h->key_path,
			 strerror(errno));
		return;
	}
	r->key = cs_key_generate(h->keytype, r->err, sizeof(r->err));
	if (r->key == NULL) {
		r->status = -EINVAL;
		return;
	}
	r->status = write_key(r->key, h->key_path, r->err, sizeof(r->err));
}

/* Writes key as PEM to path with mode 0600 set before any byte; returns 0 or -errno. */
static int write_key(EVP_PKEY *key, const char *path, char *err, size_t errlen)
{
	struct cs_atomic_opts ao = { .mode = 0600, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL;
	long len;
	int rc;

	if (b == NULL || !PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL)) {
		BIO_free(b);
		snprintf(err, errlen, "cannot encode the account key");
		return -ENOMEM;
	}
	len = BIO_get_mem_data(b, &data);
	rc = cs_atomic_write(path, data, (size_t)len, &ao, err, errlen);
	OPENSSL_cleanse(data, (size_t)len);
	BIO_free(b);
	return rc;
}

/* Keeps the key r loaded or made, unless the host has one already (r then answers with it). */
static void adopt_key(struct req *r)
{
	struct lhost *h = r->h;

	if (r->status < 0 || h->key != NULL) {
		r->existed = h->key_existed;
		return;
	}
	h->thumb = cs_acme_jws_thumbprint(r->key);
	if (h->thumb == NULL) {
		r->status = -ENOMEM;
		snprintf(r->err, sizeof(r->err), "cannot compute the account key's thumbprint");
		return;
	}
	h->key = r->key;
	r->key = NULL;
	h->key_existed = r->existed;
	if (!h->key_existed)
		cs_notice("acme %s: new account key %s (%s)", h->name, h->key_path,
			  cs_acme_jws_alg(h->key));
}

static int host_account_key(void *host, void *call, cs_acme_host_key_cb cb, void *arg)
{
	struct lhost *h = host;
	struct req *r;
	int rc;

	(void)call;
	if ((r = req_new(h, REQ_KEY, arg, &rc)) == NULL)
		return rc;
	r->cb.key = cb;
	if (h->key != NULL) {
		r->existed = h->key_existed;
		return ready(r);
	}
	return run_work(r, work_key);
}

/* ---- signatures ----------------------------------------------------------- */

static int host_sign(void *host, void *call, const struct cs_acme_host_sign *s,
		     cs_acme_host_text_cb cb, void *arg)
{
	struct lhost *h = host;
	struct req *r;
	int rc;

	(void)call;
	if ((r = req_new(h, REQ_TEXT, arg, &rc)) == NULL)
		return rc;
	r->cb.text = cb;
	if (h->key == NULL)
		return fail(r, -EINVAL, "no account key loaded yet");
	r->text = cs_acme_jws_sign(h->key, s->kid, s->nonce, s->url, s->payload, r->err,
				   sizeof(r->err));
	if (r->text == NULL)
		r->status = -EINVAL;
	return ready(r);
}

static int host_eab(void *host, void *call, const char *url, cs_acme_host_text_cb cb, void *arg)
{
	struct lhost *h = host;
	struct req *r;
	json_t *eab;
	int rc;

	(void)call;
	if ((r = req_new(h, REQ_TEXT, arg, &rc)) == NULL)
		return rc;
	r->cb.text = cb;
	if (h->eab_kid == NULL || h->eab_hmac_key == NULL)
		return fail(r, -EINVAL, "no eab_kid and eab_hmac_key configured");
	if (h->key == NULL)
		return fail(r, -EINVAL, "no account key loaded yet");
	if (url == NULL)
		return fail(r, -EINVAL, "no newAccount URL");
	eab = cs_acme_jws_eab(h->eab_kid, h->eab_hmac_key, h->key, url, r->err, sizeof(r->err));
	if (eab == NULL) {
		r->status = -EINVAL; /* with r->err set */
		return ready(r);
	}
	r->text = json_dumps(eab, JSON_COMPACT);
	json_decref(eab);
	if (r->text == NULL)
		return fail(r, -ENOMEM, "out of memory");
	return ready(r);
}

/* ---- challenges: webroot token files ---------------------------------------- */

static void work_token_file(struct req *r)
{
	struct lhost *h = r->h;
	char *d1 = NULL, *d2 = NULL;
	struct cs_atomic_opts ao = {
		.mode = 0644, .uid = (uid_t)-1, .gid = (gid_t)-1, .flags = CS_ATOMIC_NO_FSYNC
	};

	if (asprintf(&d1, "%s/.well-known", h->webroot) < 0 ||
	    asprintf(&d2, "%s/.well-known/acme-challenge", h->webroot) < 0) {
		r->status = -ENOMEM;
		snprintf(r->err, sizeof(r->err), "out of memory");
		goto out;
	}
	if ((mkdir(d1, 0755) < 0 && errno != EEXIST) || (mkdir(d2, 0755) < 0 && errno != EEXIST)) {
		r->status = -errno;
		snprintf(r->err, sizeof(r->err), "%s: cannot create: %s", d2,
			 strerror(errno));
		goto out;
	}
	/* Token files are public and short-lived: no fsync, but still never half-written. */
	r->status = cs_atomic_write(r->file, r->keyauth, strlen(r->keyauth), &ao, r->err,
				     sizeof(r->err));
out:
	free(d1);
	free(d2);
}

static void work_unlink(struct req *r)
{
	if (unlink(r->file) < 0 && errno != ENOENT) {
		r->status = -errno;
		snprintf(r->err, sizeof(r->err), "%s: cannot remove: %s", r->file, strerror(errno));
	}
}

/* ---- challenges: dns_hook ------------------------------------------------ */

static void on_hook_done(void *arg, int64_t status)
{
	struct req *r = arg;

	r->status = (int)status;
	if (status != 0)
		snprintf(r->err, sizeof(r->err), "dns_hook %s exited with status %lld", r->h->dns_hook,
			 (long long)status);
	answer(r);
}

/*
 * Runs dns_hook VERB NAME VALUE for r (c its challenge); r is answered with
 * its exit status, or a negative libuv code when it did not start.
 */
static void run_hook(struct req *r, const char *verb, const struct cs_acme_host_chall *c)
{
	struct lhost *h = r->h;
	unsigned char md[SHA256_DIGEST_LENGTH];
	char *value, *name = NULL, **env = NULL;
	int rc = UV_ENOMEM;

	SHA256((const unsigned char *)r->keyauth, strlen(r->keyauth), md);
	value = cs_b64url_encode(md, sizeof(md));
	if (value == NULL || asprintf(&name, "_acme-challenge.%s", c->ident) < 0) {
		name = NULL;
		goto fail;
	}
	const char *vars[][2] = {
		{ "METHOD", verb },	 { "RECORD", name },
		{ "VALUE", value },	 { "IDENTIFIER", c->ident },
		{ "CERT", c->cert_name != NULL ? c->cert_name : "" }, { "ISSUER", h->name },
	};
	env = cs_acme_hook_env(vars, sizeof(vars) / sizeof(vars[0]));
	if (env == NULL)
		goto fail;
	char *const args[] = { h->dns_hook, (char *)verb, name, value, NULL };
	rc = cs_acme_hook_run(h->loop, args, env, HOOK_TIMEOUT_MS, on_hook_done, r);
	if (rc < 0)
		goto fail;
	cs_info("acme %s: %s: dns_hook %s %s", h->name,
		c->cert_name != NULL && c->cert_name[0] != '\0' ? c->cert_name : c->ident, verb, name);
	cs_acme_hook_env_free(env);
	free(value);
	free(name);
	return;
fail:
	cs_acme_hook_env_free(env);
	free(value);
	free(name);
	cs_err("acme %s: dns_hook %s cannot run: %s", h->name, h->dns_hook, uv_strerror(rc));
	fail(r, rc, "dns_hook %s cannot run: %s", h->dns_hook, uv_strerror(rc));
}

static int host_challenge(void *host, void *call, const struct cs_acme_host_chall *c, bool set,
			  cs_acme_host_done_cb cb, void *arg)
{
	struct lhost *h = host;
	struct req *r;
	int rc;

	(void)call;
	if ((r = req_new(h, REQ_DONE, arg, &rc)) == NULL)
		return rc;
	r->cb.done = cb;
	/* The token becomes a file name: never a path, never "..". */
	if (!cs_acme_host_token_ok(c->token))
		return fail(r, -EINVAL, "refused: the token is not base64url");
	if (c->ident == NULL || c->ident[0] == '\0')
		return fail(r, -EINVAL, "refused: a challenge without an identifier");
	if (h->thumb == NULL)
		return fail(r, -EINVAL, "no account key loaded yet");
	if (asprintf(&r->keyauth, "%s.%s", c->token, h->thumb) < 0) {
		r->keyauth = NULL;
		return fail(r, -ENOMEM, "out of memory");
	}
	if (c->type == CS_ACME_DNS01) {
		if (h->dns_hook == NULL)
			return fail(r, -EINVAL, "refused: no dns_hook for a dns-01 challenge");
		run_hook(r, set ? "add" : "del", c);
		return 0;
	}
	if (h->webroot == NULL)
		return fail(r, -EINVAL, "refused: no webroot for an http-01 token file");
	if (asprintf(&r->file, "%s/.well-known/acme-challenge/%s", h->webroot, c->token) < 0) {
		r->file = NULL;
		return fail(r, -ENOMEM, "out of memory");
	}
	return run_work(r, set ? work_token_file : work_unlink);
}

/* ---- http_listen ------------------------------------------------------------ */

static int host_listen(void *host, void *call, cs_acme_host_fd_cb cb, void *arg)
{
	struct lhost *h = host;
	struct req *r;
	int rc;

	(void)call;
	if ((r = req_new(h, REQ_FD, arg, &rc)) == NULL)
		return rc;
	r->cb.fd = cb;
	if (h->http_listen == NULL)
		return fail(r, -EINVAL, "refused: no http_listen");
	r->fd = cs_acme_http01_listen_fd(h->http_listen, r->err, sizeof(r->err));
	if (r->fd < 0) {
		r->status = r->fd;
		r->fd = -1;
	}
	return ready(r);
}

/* ---- the host ----------------------------------------------------------------- */

static void host_close(void *host, void (*close_cb)(void *arg), void *arg)
{
	struct lhost *h = host;

	if (h == NULL || h->closing)
		return;
	h->closing = true;
	h->close_cb = close_cb;
	h->close_arg = arg;
	maybe_free(h);
}

const struct cs_acme_host_ops cs_acme_host_local_ops = {
	.account_key = host_account_key,
	.sign = host_sign,
	.eab = host_eab,
	.challenge = host_challenge,
	.listen = host_listen,
	.close = host_close,
};

static char *xstrdup(const char *s, bool *ok)
{
	char *d = s != NULL ? strdup(s) : NULL;

	if (s != NULL && d == NULL)
		*ok = false;
	return d;
}

void *cs_acme_host_local_new(uv_loop_t *loop, const char *name, const struct cs_acme_opts *o,
			     const char *state_dir, char *err, size_t errlen)
{
	struct lhost *h;
	bool ok = true;

	if (state_dir == NULL) {
		snprintf(err, errlen, "no state_dir for the account key");
		return NULL;
	}
	h = calloc(1, sizeof(*h));
	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->loop = loop;
	h->keytype = o->account_key != CS_KEY_NONE ? o->account_key : CS_KEY_EC_P256;
	TAILQ_INIT(&h->ready);
	h->name = xstrdup(name, &ok);
	h->webroot = xstrdup(o->webroot, &ok);
	h->http_listen = xstrdup(o->http_listen, &ok);
	h->dns_hook = xstrdup(o->dns_hook, &ok);
	h->eab_kid = xstrdup(o->eab_kid, &ok);
	h->eab_hmac_key = xstrdup(o->eab_hmac_key, &ok);
	/* One account directory per issuer; '/' in a name must not climb out of it. */
	if (asprintf(&h->acct_dir, "%s/acme/%s", state_dir, name) < 0) {
		h->acct_dir = NULL;
		ok = false;
	} else {
		for (char *p = h->acct_dir + strlen(state_dir) + 6; *p; p++)
			if (*p == '/')
				*p = '_';
	}
	if (ok && asprintf(&h->key_path, "%s/account.key", h->acct_dir) < 0) {
		h->key_path = NULL;
		ok = false;
	}
	uv_timer_init(loop, &h->timer);
	h->timer.data = h;
	if (!ok) {
		snprintf(err, errlen, "out of memory");
		host_close(h, NULL, NULL);
		return NULL;
	}
	return h;
}
