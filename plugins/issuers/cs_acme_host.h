/*
 * cs_acme_host - what the acme client asks of the side that holds the keys
 * and may touch the file system: the account key's public half, signatures
 * (JWS) made with it, the External Account Binding, challenges set up and
 * taken down (webroot token files, dns_hook), and a listening socket for the
 * built-in http-01 responder.
 *
 * The acme client (cs_acme) never opens a file, runs a program, binds a port
 * or holds a private key itself: it calls these operations. In one process
 * they are the local host (cs_acme_host_local_new); with privilege separation
 * the client runs in the network process and its host forwards each call to
 * the parent, which checks it against what the renewal in flight may ask and
 * then runs the local host there.
 *
 * Every operation is asynchronous: it returns 0 and calls cb exactly once,
 * later, on the loop thread (or returns a negative code and never calls it).
 * call is the arg the issuer's issue/revoke/renewal_info was given for the job
 * on whose behalf the operation runs (NULL for none); the local host ignores
 * it, a forwarding host uses it to say which request the operation belongs to.
 */
#ifndef CS_ACME_HOST_H
#define CS_ACME_HOST_H

#include "cs_acme.h"
#include "cs_issuer.h"

#include <stdbool.h>
#include <uv.h>

/*
 * A challenge as the client sees it (borrowed for the call only); the host
 * derives the key authorization itself.
 */
struct cs_acme_host_chall {
	enum cs_acme_challenge type; /* http-01 (webroot token file) or dns-01 (dns_hook) */
	const char *ident;           /* the identifier being validated */
	const char *token;           /* the CA's token: base64url characters only, else refused */
	const char *cert_name;       /* for the hook's environment and the log; may be "" */
};

/*
 * A request to sign: the protected header names the key by kid, or by its JWK
 * when kid is NULL. Borrowed for the call only (the host copies what it keeps).
 */
struct cs_acme_host_sign {
	const char *kid;
	const char *nonce;
	const char *url;
	const char *payload; /* a JSON text, NULL for a POST-as-GET */
};

/* status 0 with pub (the account key's SubjectPublicKeyInfo, DER; valid during cb) and existed. */
typedef void (*cs_acme_host_key_cb)(void *arg, int status, const struct cs_der *pub, bool existed,
				    const char *error);
/* status 0 with text (a JWS, or the EAB object, as JSON text; valid during cb). */
typedef void (*cs_acme_host_text_cb)(void *arg, int status, const char *text, const char *error);
/*
 * For challenge: status 0, a negative code, or for a dns_hook that ran and
 * failed its exit status (> 0); error says what went wrong.
 */
typedef void (*cs_acme_host_done_cb)(void *arg, int status, const char *error);
/* status 0 with fd, a listening TCP socket the callee now owns. */
typedef void (*cs_acme_host_fd_cb)(void *arg, int status, int fd, const char *error);

struct cs_acme_host_ops {
	/* Loads the account key, or makes and saves one (0600) on first use. */
	int (*account_key)(void *host, void *call, cs_acme_host_key_cb cb, void *arg);
	/* A flattened JWS over r (RFC 8555 section 6.2), signed with the account key. */
	int (*sign)(void *host, void *call, const struct cs_acme_host_sign *r,
		    cs_acme_host_text_cb cb, void *arg);
	/* The externalAccountBinding object for a newAccount request to url. */
	int (*eab)(void *host, void *call, const char *url, cs_acme_host_text_cb cb, void *arg);
	/* Sets c up (set true) or takes it down (set false). */
	int (*challenge)(void *host, void *call, const struct cs_acme_host_chall *c, bool set,
			 cs_acme_host_done_cb cb, void *arg);
	/* A socket listening on the configured http_listen address. */
	int (*listen)(void *host, void *call, cs_acme_host_fd_cb cb, void *arg);
	/*
	 * Frees the host once its calls have called back (the client closes it
	 * when none is pending; a call still running then is answered with
	 * -ECANCELED), then calls close_cb (may be NULL).
	 */
	void (*close)(void *host, void (*close_cb)(void *arg), void *arg);
};

/*
 * The local host of acme issuer name: account key at
 * STATE_DIR/acme/NAME/account.key (a new one of kind o->account_key),
 * webroot / dns_hook / http_listen / EAB from o (copied). NULL with err set.
 * It runs file work on the work queue and dns_hook on the loop, and calls
 * back from a timer for what it answers at once (sign, eab).
 */
void *cs_acme_host_local_new(uv_loop_t *loop, const char *name, const struct cs_acme_opts *o,
			     const char *state_dir, char *err, size_t errlen);
extern const struct cs_acme_host_ops cs_acme_host_local_ops;

/* True when token is non-empty base64url (A-Z a-z 0-9 - _), at most 256 characters. */
bool cs_acme_host_token_ok(const char *token);

#endif
