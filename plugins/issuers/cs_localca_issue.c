/*
 * cs_localca_issue - issuing certificates from an open CA.
 *
 * Issuance commits a group of requests at once (cs_localca_issue_batch):
 * the newcerts/SERIAL.pem files are written and fsynced, then their lines
 * are appended to index.txt with one write and one fsync, then `serial` is
 * replaced through the atomic writer. A crash leaves at worst certificate
 * files that no index line names (never handed to anyone), a stale `serial`
 * (unused by us), or a last index line cut short, which the next issuance
 * cuts off. The leaf takes the request's key, checked to be of a kind
 * certsync issues for.
 */
#include "cs_localca_int.h"

/* ---- issuing ---- */

/* Returns 1 when k is a key type certsync issues for, with a description in kd. */
static int leaf_key_ok(EVP_PKEY *k, char *kd, size_t kdlen)
{
	cs_x509_key_desc(k, kd, kdlen);
	return cs_key_type_of(k) != CS_KEY_NONE;
}

/*
 * The key of csr as a key of OpenSSL's built-in kind (RSA, or EC on a named
 * curve), decoded from the request's SubjectPublicKeyInfo bytes; NULL for
 * another type (Ed25519) or a key that does not decode so. X509_set_pubkey
 * encodes such a key itself, where a provider's key goes through OpenSSL
 * 3.0's encoder and then its decoder: 0.3 ms, some 40% of an issuance's CPU.
 */
static EVP_PKEY *builtin_pubkey(X509_REQ *csr)
{
	const unsigned char *bits, *p;
	unsigned char *der = NULL;
	ASN1_OBJECT *alg;
	X509_ALGOR *algor;
	const void *pval;
	EVP_PKEY *k = NULL;
	int blen, ptype, dlen;

	if (!X509_PUBKEY_get0_param(&alg, &bits, &blen, &algor, X509_REQ_get_X509_PUBKEY(csr)))
		return NULL;
	p = bits;
	switch (OBJ_obj2nid(alg)) {
	case NID_rsaEncryption:
		k = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, blen);
		break;
	case NID_X9_62_id_ecPublicKey:
		/* The curve's name as ECParameters, then the point on that curve. */
		X509_ALGOR_get0(NULL, &ptype, &pval, algor);
		if (ptype != V_ASN1_OBJECT || (dlen = i2d_ASN1_OBJECT(pval, &der)) <= 0)
			break;
		p = der;
		k = d2i_KeyParams(EVP_PKEY_EC, NULL, &p, dlen);
		p = bits;
		if (k != NULL && d2i_PublicKey(EVP_PKEY_EC, &k, &p, blen) == NULL) {
			EVP_PKEY_free(k);
			k = NULL;
		}
		OPENSSL_free(der);
		break;
	default:
		break;
	}
	return k;
}

/* Returns true when x carries csr's SubjectPublicKeyInfo byte for byte. */
static bool same_spki(X509 *x, X509_REQ *csr)
{
	const unsigned char *a, *b;
	X509_ALGOR *aa, *ba;
	int alen, blen;

	return X509_PUBKEY_get0_param(NULL, &a, &alen, &aa, X509_get_X509_PUBKEY(x)) &&
	       X509_PUBKEY_get0_param(NULL, &b, &blen, &ba, X509_REQ_get_X509_PUBKEY(csr)) &&
	       alen == blen && memcmp(a, b, (size_t)alen) == 0 && X509_ALGOR_cmp(aa, ba) == 0;
}

/* Sets x's key to csr's key pub, the same bytes the request carries. Returns 1 or 0. */
static int set_leaf_key(X509 *x, X509_REQ *csr, EVP_PKEY *pub)
{
	EVP_PKEY *k;
	int ok;

	ERR_set_mark();
	k = builtin_pubkey(csr);
	ok = k != NULL && X509_set_pubkey(x, k) && same_spki(x, csr);
	EVP_PKEY_free(k);
	ERR_pop_to_mark(); /* a failure here only means the slower way */
	/* Any doubt takes OpenSSL's own way, which re-encodes pub. */
	return ok || X509_set_pubkey(x, pub);
}

/* Builds and signs the leaf for csr (its key pub). Returns it or NULL with err set. */
static X509 *make_leaf(cs_localca *ca, X509_REQ *csr, EVP_PKEY *pub, const BIGNUM *serial,
		       char *const *names, size_t n, enum cs_usage usage, char *err,
		       size_t errlen)
{
	X509 *x = X509_new(), *ret = NULL;
	X509_EXTENSION *san = NULL;
	X509_NAME *subj = NULL;
	X509V3_CTX ctx;
	time_t now = time(NULL);
	char cn[65];
	const char *ku = EVP_PKEY_is_a(pub, "RSA") ? "critical,digitalSignature,keyEncipherment"
						   : "critical,digitalSignature";

	snprintf(cn, sizeof(cn), "%s", names[0]);
	if (x == NULL || (subj = X509_NAME_new()) == NULL ||
	    !X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8, (unsigned char *)cn, -1, -1,
					0) ||
	    !X509_set_version(x, 2) ||
	    BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) == NULL ||
	    !X509_set_subject_name(x, subj) ||
	    !X509_set_issuer_name(x, X509_get_subject_name(ca->cacert)) ||
	    !cs_localca__set_validity(x, now, ca->validity_s) || !set_leaf_key(x, csr, pub))
		goto ssl_fail;
	/* Never valid beyond the CA: such a certificate would fail before its notAfter. */
	if (ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(ca->cacert)) > 0 &&
	    !X509_set1_notAfter(x, X509_get0_notAfter(ca->cacert)))
		goto ssl_fail;
	X509V3_set_ctx(&ctx, ca->cacert, x, NULL, NULL, 0);
	if (!cs_localca__add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") ||
	    !cs_localca__add_ext(x, &ctx, NID_key_usage, ku) ||
	    !cs_localca__add_ext(x, &ctx, NID_ext_key_usage,
				 usage == CS_USAGE_CLIENT ? "clientAuth" : "serverAuth") ||
	    !cs_localca__add_ext(x, &ctx, NID_subject_key_identifier, "hash") ||
	    !cs_localca__add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always"))
		goto ssl_fail;
	if ((san = cs_csr_san_ext(names, n, err, errlen)) == NULL)
		goto out;
	if (!X509_add_ext(x, san, -1))
		goto ssl_fail;
	if (X509_sign(x, ca->cakey, ca->md) <= 0)
		goto ssl_fail;
	ret = x;
	x = NULL;
	goto out;
ssl_fail:
	snprintf(err, errlen, "%s: cannot build the certificate for %s", ca->dir, names[0]);
	cs_log_ssl_errors(err, errlen);
out:
	X509_EXTENSION_free(san);
	X509_NAME_free(subj);
	X509_free(x);
	return ret;
}

/* Checks that names are usable: at least one, none empty or holding control bytes. */
static int check_names(char *const *names, size_t n, char *err, size_t errlen)
{
	if (n == 0) {
		snprintf(err, errlen, "no names to issue for");
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		const unsigned char *s = (const unsigned char *)names[i];
		if (s == NULL || *s == '\0') {
			snprintf(err, errlen, "name %zu is empty", i + 1);
			return -EINVAL;
		}
		for (; *s != '\0'; s++)
			if (*s <= ' ' || *s == 0x7f || *s == '/') {
				snprintf(err, errlen, "name \"%s\" holds a space, '/' or control byte",
					 names[i]);
				return -EINVAL;
			}
	}
	return 0;
}

static void req_fail(struct cs_localca_req *r, int rc, const char *msg)
{
	if (r->status == 0) {
		r->status = rc;
		snprintf(r->err, r->errlen, "%s", msg);
	}
	X509_free(r->leaf);
	r->leaf = NULL;
}

/* Everything about one request decided under the lock, before anything is committed. */
struct pending {
	BIGNUM *serial;
	char *hex;
	char *line;
	int fd;
};

/* Closes and removes the newcerts file p reserved for a request that failed. */
static void drop_newcert(cs_localca *ca, struct pending *p)
{
	char name[PATH_MAX];

	if (p->fd < 0)
		return;
	close(p->fd);
	p->fd = -1;
	snprintf(name, sizeof(name), "%s/newcerts/%s.pem", ca->dir, p->hex);
	unlink(name);
}

/* Checks each request's names and key; one that fails gets its status and message. */
static void check_requests(cs_localca *ca, struct cs_localca_req *reqs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct cs_localca_req *r = &reqs[i];
		EVP_PKEY *pub = NULL;
		char kd[64];

		r->leaf = NULL;
		r->chain = NULL;
		r->status = 0;
		if (r->errlen > 0)
			r->err[0] = '\0';
		if ((r->status = check_names(r->names, r->n, r->err, r->errlen)) < 0)
			continue;
		if ((pub = X509_REQ_get_pubkey(r->csr)) == NULL || X509_REQ_verify(r->csr, pub) != 1) {
			r->status = -EINVAL;
			snprintf(r->err, r->errlen,
				 "%s: the request for %s carries no key or a bad signature", ca->dir,
				 r->names[0]);
			cs_log_ssl_errors(r->err, r->errlen);
		} else if (!leaf_key_ok(pub, kd, sizeof(kd))) {
			r->status = -EINVAL;
			snprintf(r->err, r->errlen, "%s: the request for %s has a %s key, none of %s",
				 ca->dir, r->names[0], kd, cs_key_names());
		}
		EVP_PKEY_free(pub);
	}
}

/*
 * Picks r's serial and reserves newcerts/SERIAL.pem for it (p->fd).
 * Returns 0, or -1 with r failed.
 */
static int reserve_serial(cs_localca *ca, struct cs_localca_req *r, struct pending *p)
{
	char err[1024], name[PATH_MAX];
	int oe;

	/*
	 * 127 random bits collide with nothing in practice; checked all the
	 * same, against index.txt and by creating newcerts/SERIAL.pem with
	 * O_EXCL, which also reserves the name (a new name: written in
	 * place, made durable with the group below).
	 */
	for (int attempt = 0; attempt < 10 && p->fd < 0; attempt++) {
		BN_free(p->serial);
		OPENSSL_free(p->hex);
		p->hex = NULL;
		if ((p->serial = cs_localca__random_serial()) == NULL ||
		    (p->hex = cs_localca__bn_hex(p->serial)) == NULL)
			break;
		if (cs_localca__sset_has(&ca->ix_serials, p->hex, true)) {
			errno = EEXIST;
			continue;
		}
		snprintf(name, sizeof(name), "%s/newcerts/%s.pem", ca->dir, p->hex);
		if ((p->fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0 &&
		    errno != EEXIST)
			break;
	}
	if (p->fd >= 0)
		return 0;
	oe = p->hex == NULL ? ENOMEM : errno;
	if (oe == ENOMEM)
		snprintf(err, sizeof(err), "%s: out of memory", ca->dir);
	else if (oe == EEXIST)
		snprintf(err, sizeof(err), "%s: cannot find an unused serial", ca->dir);
	else
		snprintf(err, sizeof(err), "%s/newcerts/%s.pem: cannot create: %s", ca->dir, p->hex,
			 strerror(oe));
	req_fail(r, -oe, err);
	return -1;
}

/*
 * Signs r's leaf with p's serial, writes it to the newcerts file reserved
 * for it and makes its index.txt line (p->line), which the sets kept of
 * index.txt then hold. A request that fails loses its file.
 */
static void sign_one(cs_localca *ca, struct cs_localca_req *r, struct pending *p, bool may_repeat)
{
	char err[1024], *subj = NULL, *pem = NULL;
	size_t pemlen;
	EVP_PKEY *pub;
	int e;

	pub = X509_REQ_get_pubkey(r->csr);
	r->leaf = make_leaf(ca, r->csr, pub, p->serial, r->names, r->n, r->usage, r->err,
			    r->errlen);
	EVP_PKEY_free(pub);
	if (r->leaf == NULL) {
		r->status = -EINVAL;
		drop_newcert(ca, p);
		return;
	}
	if ((subj = X509_NAME_oneline(X509_get_subject_name(r->leaf), NULL, 0)) == NULL ||
	    cs_localca__pem_of(cs_localca__w_x509, r->leaf, &pem, &pemlen) < 0) {
		snprintf(err, sizeof(err), "%s: cannot issue for %s: out of memory", ca->dir,
			 r->names[0]);
		req_fail(r, -ENOMEM, err);
		drop_newcert(ca, p);
		goto out;
	}
	if (!may_repeat && cs_localca__sset_has(&ca->ix_subjects, subj, false)) {
		snprintf(err, sizeof(err),
			 "%s/index.txt.attr asks for unique subjects and %s is still valid: "
			 "revoke it or set unique_subject = no",
			 ca->dir, subj);
		req_fail(r, -EEXIST, err);
		drop_newcert(ca, p);
		goto out;
	}
	e = cs_localca__write_all(p->fd, pem, pemlen);
	if (e < 0) {
		snprintf(err, sizeof(err), "%s/newcerts/%s.pem: cannot write: %s", ca->dir, p->hex,
			 strerror(-e));
		drop_newcert(ca, p);
		req_fail(r, e, err);
		goto out;
	}
	/* Start the write-back now, so that the fsyncs below find it done. */
	sync_file_range(p->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	if (asprintf(&p->line, "V\t%.*s\t\t%s\tunknown\t%s\n",
		     ASN1_STRING_length(X509_get0_notAfter(r->leaf)),
		     (const char *)ASN1_STRING_get0_data(X509_get0_notAfter(r->leaf)), p->hex,
		     subj) < 0 ||
	    cs_localca__sset_add(&ca->ix_serials, p->hex) < 0 ||
	    cs_localca__sset_add(&ca->ix_subjects, subj) < 0) {
		p->line = NULL;
		ca->ix_valid = false;
		req_fail(r, -ENOMEM, "out of memory");
		drop_newcert(ca, p);
	}
out:
	free(pem);
	OPENSSL_free(subj);
}

/*
 * The group's certificates are durable before index.txt names them: a
 * crash leaves at worst certificate files that no line names.
 */
static void sync_newcerts(cs_localca *ca, struct cs_localca_req *reqs, struct pending *pd,
			  size_t n)
{
	char err[1024];

	for (size_t i = 0; i < n; i++) {
		if (pd[i].fd < 0)
			continue;
		if (fsync(pd[i].fd) < 0 && reqs[i].status == 0) {
			snprintf(err, sizeof(err), "%s/newcerts/%s.pem: cannot sync: %s", ca->dir,
				 pd[i].hex, strerror(errno));
			req_fail(&reqs[i], -EIO, err);
		}
		close(pd[i].fd);
		pd[i].fd = -1;
	}
}

/*
 * Appends the lines of the requests still standing to index.txt, once
 * newcerts/ is durable. Returns how many (*last: the serial of the last
 * one), or a negative errno with err set.
 */
static int append_index(cs_localca *ca, struct cs_localca_req *reqs, struct pending *pd,
			size_t n, const BIGNUM **last, char *err, size_t errlen)
{
	char name[PATH_MAX], *buf = NULL;
	size_t buflen = 0;
	FILE *m;
	int rc = 0, fd = -1, issued = 0;

	if ((m = open_memstream(&buf, &buflen)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", ca->dir);
		return -ENOMEM;
	}
	if (!ca->ix_nl)
		fputc('\n', m);
	for (size_t i = 0; i < n; i++)
		if (reqs[i].status == 0 && pd[i].line != NULL) {
			fputs(pd[i].line, m);
			*last = pd[i].serial;
			issued++;
		}
	fclose(m);
	if (issued == 0)
		goto out;
	if ((rc = cs_localca__fsync_dir(ca->dir, "newcerts")) < 0) {
		snprintf(err, errlen, "%s/newcerts: cannot sync: %s", ca->dir, strerror(-rc));
		goto out;
	}
	/*
	 * Appended, as `openssl ca` readers accept: the cost of an issuance does
	 * not grow with the index. One fsync for the group.
	 */
	snprintf(name, sizeof(name), "%s/index.txt", ca->dir);
	fd = open(name, O_WRONLY | O_APPEND | O_CLOEXEC);
	ca->ix_valid = false; /* until the append is known whole */
	if (fd < 0 || (rc = cs_localca__write_all(fd, buf, buflen)) < 0 || fsync(fd) < 0 ||
	    fstat(fd, &ca->ix_stat) < 0) {
		rc = rc < 0 ? rc : -errno;
		snprintf(err, errlen, "%s/index.txt: cannot append: %s", ca->dir, strerror(-rc));
		goto out;
	}
	ca->ix_valid = true;
	ca->ix_nl = true;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc < 0 ? rc : issued;
}

/* Writes `serial` as `openssl ca` leaves it: the serial after last. Returns 0 or -errno, err set. */
static int write_serial(cs_localca *ca, const BIGNUM *last, char *err, size_t errlen)
{
	BIGNUM *next = BN_dup(last);
	char *line = NULL, *nexthex = NULL;
	int linelen = -1, rc;

	if (next != NULL && BN_add_word(next, 1) && (nexthex = cs_localca__bn_hex(next)) != NULL)
		linelen = asprintf(&line, "%s\n", nexthex);
	BN_free(next);
	OPENSSL_free(nexthex);
	if (linelen < 0) {
		snprintf(err, errlen, "%s: out of memory", ca->dir);
		return -ENOMEM;
	}
	rc = cs_localca__write_file(ca->dir, "serial", line, (size_t)linelen, 0644, err, errlen);
	free(line);
	return rc;
}

/* Gives each request still standing its chain (the CA certificate) and logs its serial. */
static void hand_out(cs_localca *ca, struct cs_localca_req *reqs, struct pending *pd, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct cs_localca_req *r = &reqs[i];
		char *subj;

		if (r->status < 0)
			continue;
		if ((r->chain = sk_X509_new_null()) == NULL || !X509_up_ref(ca->cacert) ||
		    !sk_X509_push(r->chain, ca->cacert)) {
			sk_X509_pop_free(r->chain, X509_free);
			r->chain = NULL;
			req_fail(r, -ENOMEM, "out of memory");
			continue;
		}
		subj = X509_NAME_oneline(X509_get_subject_name(r->leaf), NULL, 0);
		cs_info("%s: issued serial %s to %s", ca->dir, pd[i].hex, subj ? subj : "?");
		OPENSSL_free(subj);
	}
}

int cs_localca_issue_batch(cs_localca *ca, struct cs_localca_req *reqs, size_t n)
{
	struct pending *pd = calloc(n + 1, sizeof(*pd));
	char err[1024] = "";
	const BIGNUM *last = NULL;
	bool may_repeat, locked = false;
	int rc = 0, issued = 0;

	check_requests(ca, reqs, n);
	if (pd == NULL) {
		rc = -ENOMEM;
		snprintf(err, sizeof(err), "%s: out of memory", ca->dir);
		goto fail_all;
	}
	for (size_t i = 0; i < n; i++)
		pd[i].fd = -1;
	if ((rc = cs_localca__lock_ca(ca, err, sizeof(err))) < 0)
		goto fail_all;
	locked = true;
	if (ca->newcerts_unswept) {
		cs_localca__remove_stale_temps(ca, "newcerts");
		ca->newcerts_unswept = false;
	}
	if ((rc = cs_localca__index_sync(ca, err, sizeof(err))) < 0)
		goto fail_all;
	may_repeat = cs_localca__subjects_may_repeat(ca);

	/* Sign each and write its newcerts file; nothing names it yet. */
	for (size_t i = 0; i < n; i++)
		if (reqs[i].status >= 0 && reserve_serial(ca, &reqs[i], &pd[i]) == 0)
			sign_one(ca, &reqs[i], &pd[i], may_repeat);
	sync_newcerts(ca, reqs, pd, n);
	if ((rc = append_index(ca, reqs, pd, n, &last, err, sizeof(err))) < 0)
		goto fail_all;
	issued = rc;
	rc = 0;
	if (issued == 0)
		goto out;
	if ((rc = write_serial(ca, last, err, sizeof(err))) < 0)
		goto fail_all;
	atomic_fetch_add(&ca->commits, 1);
	hand_out(ca, reqs, pd, n);
	goto out;
fail_all:
	for (size_t i = 0; i < n; i++)
		req_fail(&reqs[i], rc < 0 ? rc : -EIO, err);
out:
	if (locked)
		cs_localca__unlock_ca(ca);
	for (size_t i = 0; pd != NULL && i < n; i++) {
		if (pd[i].fd >= 0)
			close(pd[i].fd);
		BN_free(pd[i].serial);
		OPENSSL_free(pd[i].hex);
		free(pd[i].line);
	}
	free(pd);
	for (size_t i = 0; i < n; i++)
		if (reqs[i].status < 0 && reqs[i].errlen > 0 && reqs[i].err[0] != '\0')
			rc = reqs[i].status;
	return issued > 0 || n == 0 ? 0 : rc < 0 ? rc : -EIO;
}

int cs_localca_issue(cs_localca *ca, X509_REQ *csr, char *const *names, size_t n,
		     enum cs_usage usage, X509 **leaf, STACK_OF(X509) **chain, char *err,
		     size_t errlen)
{
	struct cs_localca_req r = { .csr = csr, .names = names, .n = n, .usage = usage,
				    .err = err, .errlen = errlen };

	cs_localca_issue_batch(ca, &r, 1);
	*leaf = r.leaf;
	*chain = r.chain;
	return r.status;
}
