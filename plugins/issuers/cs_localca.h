/*
 * cs_localca - the local-ca issuer: certsync as its own CA, in the directory
 * layout of the OpenSSL `ca` command, so that a CA made with `CA.pl -newca`
 * works unchanged and `openssl ca` keeps working on one that certsync made:
 *
 *   DIR/cacert.pem          CA certificate
 *   DIR/private/cakey.pem   CA key (0600, directory 0700)
 *   DIR/index.txt           V/R/E lines, as `openssl ca` writes them
 *   DIR/index.txt.attr      unique_subject = no (renewals reuse subjects)
 *   DIR/serial              next serial, hex
 *   DIR/crlnumber           next CRL number, hex
 *   DIR/newcerts/SERIAL.pem every issued certificate
 *   DIR/crl.pem             the latest CRL
 *
 * Updates of index.txt, serial and crlnumber go through the atomic writer,
 * under an flock on DIR/.certsync.lock, so that a crash never leaves half a
 * line and two writers never interleave.
 */
#ifndef CS_LOCALCA_H
#define CS_LOCALCA_H

#include "cs_issuer.h"
#include "cs_key.h"

#include <openssl/x509.h>
#include <stdbool.h>
#include <stdint.h>

struct cs_localca_opts {
	const char *dir;
	const char *subject;   /* "/C=US/O=Example/CN=Example CA", used when creating */
	enum cs_keytype key;   /* CA key type, used when creating */
	int64_t validity_s;    /* of issued certificates */
	int64_t ca_validity_s; /* of a CA certificate created here */
	int64_t crl_validity_s; /* of a CRL made here; 0: validity_s, at least 7 days */
	int crl_renew_pct;      /* re-sign with this % of the CRL's lifetime left; 0: 50 */
};

typedef struct cs_localca cs_localca;

/*
 * Opens the CA in o->dir, creating it when the directory is empty or absent,
 * adopting an existing one otherwise. Returns it (close with
 * cs_localca_close) or NULL with err set.
 */
cs_localca *cs_localca_open(const struct cs_localca_opts *o, char *err, size_t errlen);

/* Closes the CA; accepts NULL. */
void cs_localca_close(cs_localca *ca);

/* The CA certificate (borrowed: valid until cs_localca_close). */
X509 *cs_localca_cacert(cs_localca *ca);

/*
 * Issues a certificate for csr's key with the given names and usage. On
 * success returns 0 with *leaf and *chain (the CA certificate) owned by the
 * caller; else a negative code with err set. Safe to call from a worker
 * thread; calls for one CA are serialised.
 */
int cs_localca_issue(cs_localca *ca, X509_REQ *csr, char *const *names, size_t n,
		     enum cs_usage usage, X509 **leaf, STACK_OF(X509) **chain, char *err,
		     size_t errlen);

/* One request of a group (cs_localca_issue_batch). */
struct cs_localca_req {
	X509_REQ *csr;
	char *const *names;
	size_t n;
	enum cs_usage usage;
	char *err;    /* the caller's buffer for this request's error */
	size_t errlen;
	/* out: 0 with leaf and chain (the caller's), or a negative code with err set */
	int status;
	X509 *leaf;
	STACK_OF(X509) *chain;
};

/*
 * Issues a group of requests as one commit: every certificate is signed and
 * its newcerts file written, then the files are synced, their index.txt
 * lines appended with one write and one fsync, and `serial` written once.
 * Each request that returns status 0 is durable. Returns 0 when at least
 * one was issued (or n is 0), else the last request's error.
 */
int cs_localca_issue_batch(cs_localca *ca, struct cs_localca_req *reqs, size_t n);

/*
 * How many groups cs_localca_issue_batch committed (appended to index.txt)
 * since ca was opened; 0 for NULL. Safe from any thread.
 */
uint64_t cs_localca_commits(cs_localca *ca);

/*
 * Marks the certificate with serial_hex revoked in index.txt with reason
 * (unspecified, keyCompromise, CACompromise, affiliationChanged, superseded,
 * cessationOfOperation, certificateHold; NULL: unspecified). Returns 0,
 * -ENOENT when no valid certificate has that serial, or another negative code.
 */
int cs_localca_revoke(cs_localca *ca, const char *serial_hex, const char *reason, char *err,
		      size_t errlen);

/*
 * Generates a CRL of every revoked certificate, valid for next_update_s,
 * numbered from crlnumber (which is then advanced), and writes DIR/crl.pem.
 * Returns 0 and the CRL in *out (caller frees; out may be NULL).
 */
int cs_localca_gencrl(cs_localca *ca, int64_t next_update_s, X509_CRL **out, char *err,
		      size_t errlen);

/* Parses "/C=US/O=Ex/CN=Name" into a name (caller frees), or NULL with err set. */
X509_NAME *cs_localca_parse_subject(const char *s, char *err, size_t errlen);

/*
 * The asynchronous issuer over a CA in o->dir (see cs_issuer.h): signing runs
 * on the libuv work queue, one piece of work at a time; issuances that wait
 * behind the running one go together as one group (cs_localca_issue_batch,
 * at most 64). Every request gets its own answer, after its certificate is
 * durable: a request the CA refuses (a bad name, key or signature, a subject
 * still valid under unique_subject) fails alone; when the group's commit
 * fails (index.txt, serial, newcerts/ cannot be read, written or synced),
 * every request of the group fails with that error. An existing CA is read
 * at once (its faults make this return NULL); a CA still to be created is
 * made by the first request on the work queue, and until then ca_material
 * returns -EAGAIN. NULL with err set.
 *
 * Besides issue, its table has revoke (the certificate marked in index.txt,
 * then a new DIR/crl.pem, valid as long as the certificates it issues, at
 * least 7 days; in the FIFO after the requests before it; reason 0
 * unspecified ... 6 certificateHold), crl_refresh (DIR/crl.pem read again,
 * as `openssl ca -gencrl` may have written it, and the next CRL signed when
 * less than crl_renew_pct of its lifetime is left, or none can be read while
 * a crlnumber exists; no CRL at all is left so) and crl_due (lastUpdate +
 * (100 - crl_renew_pct)% of the current CRL's lifetime, 0: none).
 */
cs_issuer *cs_localca_issuer_new(uv_loop_t *loop, const char *name,
				 const struct cs_localca_opts *o, char *err, size_t errlen);

/*
 * What cs_localca_issuer.c uses of the CA (safe from a worker thread):
 * new references to the CA certificate and the latest CRL (NULL when none);
 * DIR/crl.pem read again and the next CRL signed (valid validity_s) when less
 * than renew_pct % of the current one's lifetime is left (nothing when no CRL
 * was ever made); the moment that is due (0: no CRL); the name of a CRL
 * reason code as index.txt spells it (NULL when there is none); opening
 * without creating (rc -EAGAIN when the CA does not exist yet); a serial as
 * index.txt spells it (OPENSSL_free).
 */
int cs_localca_material(cs_localca *ca, X509 **cacert, X509_CRL **crl);
int cs_localca_crl_refresh(cs_localca *ca, int64_t validity_s, int renew_pct, char *err,
			   size_t errlen);
time_t cs_localca_crl_due(cs_localca *ca, int renew_pct);
cs_localca *cs_localca_open_ex(const struct cs_localca_opts *o, bool may_create, int *rc,
			       char *err, size_t errlen);
char *cs_localca_serial_hex(const ASN1_INTEGER *serial);

/* cs_localca_commits of the issuer's CA: 0 before the CA is open. Loop thread. */
uint64_t cs_localca_issuer_commits(cs_issuer *is);

#endif
