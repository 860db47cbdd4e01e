/*
 * cs_localca - the local-ca issuer. See cs_localca.h for the directory layout.
 *
 * This module owns one CA directory while it is open: the CA key and
 * certificate in memory, a descriptor of DIR/.certsync.lock, and a mutex.
 * Every change to the directory happens with both held, so that threads of
 * this process and other certsync processes never interleave (`openssl ca`
 * takes no lock; an administrator runs it while certsync is quiet).
 *
 * Files are written the way `openssl ca` writes them, so that either tool can
 * carry on where the other stopped: index.txt lines of six tab-separated
 * fields, serials as even-length uppercase hex, `serial` holding the issued
 * serial plus one, newcerts/SERIAL.pem. Serials are 127 random bits rather
 * than the next value of `serial`, so they are unpredictable and never
 * collide with the ones `openssl ca` hands out from `serial`.
 *
 * This file holds the interface: subject names, opening and closing, and
 * revocation and CRLs (revocation still rewrites index.txt whole). Opening
 * and creating a CA are in cs_localca_setup.c, issuance in
 * cs_localca_issue.c, index.txt in cs_localca_index.c, the file helpers and
 * the lock in cs_localca_file.c; what they share is in cs_localca_int.h.
 */
#include "cs_localca_int.h"
#include "cs_crlreason.h"

/* ---- subject names ---- */

X509_NAME *cs_localca_parse_subject(const char *s, char *err, size_t errlen)
{
	X509_NAME *name = X509_NAME_new();
	X509_NAME *ret = NULL;
	char *copy = NULL, *field, *val;
	const char *p = s;

	if (name == NULL || (copy = malloc(strlen(s) + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (*p != '/') {
		snprintf(err, errlen, "subject \"%s\": must start with '/' (\"/O=Example/CN=Example CA\")",
			 s);
		goto out;
	}
	p++;
	while (*p != '\0') {
		char *q = copy;

		/* One field: up to the next unescaped '/', with "\/" and "\\" unescaped. */
		while (*p != '\0' && *p != '/') {
			if (*p == '\\' && p[1] != '\0')
				p++;
			*q++ = *p++;
		}
		*q = '\0';
		if (*p == '/')
			p++;
		field = copy;
		val = strchr(copy, '=');
		if (val == NULL || val == field || val[1] == '\0') {
			snprintf(err, errlen, "subject \"%s\": \"%s\" is not FIELD=value", s, copy);
			goto out;
		}
		*val++ = '\0';
		if (OBJ_txt2nid(field) == NID_undef) {
			snprintf(err, errlen,
				 "subject \"%s\": unknown field \"%s\" (use C, ST, L, O, OU, CN, "
				 "emailAddress)",
				 s, field);
			goto out;
		}
		if (!X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
						(const unsigned char *)val, -1, -1, 0)) {
			snprintf(err, errlen, "subject \"%s\": bad value for %s", s, field);
			cs_log_ssl_errors(err, errlen);
			goto out;
		}
	}
	if (X509_NAME_entry_count(name) == 0) {
		snprintf(err, errlen, "subject \"%s\" is empty", s);
		goto out;
	}
	ret = name;
	name = NULL;
out:
	free(copy);
	X509_NAME_free(name);
	return ret;
}

cs_localca *cs_localca_open(const struct cs_localca_opts *o, char *err, size_t errlen)
{
	int rc;

	return cs_localca__open_ca(o, true, &rc, err, errlen);
}

void cs_localca_close(cs_localca *ca)
{
	if (ca == NULL)
		return;
	X509_free(ca->cacert);
	EVP_PKEY_free(ca->cakey);
	EVP_MD_free(ca->md);
	X509_CRL_free(ca->crl);
	if (ca->lockfd >= 0)
		close(ca->lockfd);
	pthread_mutex_destroy(&ca->mu);
	pthread_mutex_destroy(&ca->crl_mu);
	cs_localca__sset_clear(&ca->ix_serials);
	cs_localca__sset_clear(&ca->ix_subjects);
	free(ca->dir);
	free(ca);
}

X509 *cs_localca_cacert(cs_localca *ca)
{
	return ca->cacert;
}

uint64_t cs_localca_commits(cs_localca *ca)
{
	return ca != NULL ? atomic_load(&ca->commits) : 0;
}

/* ---- revocation and CRLs ---- */

/* Returns serial_hex as index.txt spells serials (OPENSSL_free), or NULL when not hexadecimal. */
static char *canonical_serial(const char *serial_hex)
{
	BIGNUM *bn = NULL;
	char *canon = NULL;

	if (BN_hex2bn(&bn, serial_hex) == (int)strlen(serial_hex) && strlen(serial_hex) > 0)
		canon = cs_localca__bn_hex(bn);
	BN_free(bn);
	if (canon == NULL)
		ERR_clear_error();
	return canon;
}

/* Writes index.txt as ix with line l replaced by rline (len bytes); returns 0 or -errno, err set. */
static int replace_line(cs_localca *ca, const struct index *ix, const struct index_line *l,
			const char *rline, size_t len, char *err, size_t errlen)
{
	size_t before = (size_t)(l->start - ix->raw), nlen;
	char *newindex = malloc(ix->rawlen + len + 1);
	int rc;

	if (newindex == NULL)
		return -ENOMEM;
	memcpy(newindex, ix->raw, before);
	memcpy(newindex + before, rline, len);
	nlen = before + len;
	/* l->len counts the line's newline; rline brings its own. */
	memcpy(newindex + nlen, ix->raw + before + l->len, ix->rawlen - before - l->len);
	nlen += ix->rawlen - before - l->len;
	rc = cs_localca__write_file(ca->dir, "index.txt", newindex, nlen, 0644, err, errlen);
	free(newindex);
	return rc;
}

int cs_localca_revoke(cs_localca *ca, const char *serial_hex, const char *reason, char *err,
		      size_t errlen)
{
	struct index ix = { 0 };
	struct index_line *l;
	ASN1_TIME *now = NULL;
	char *rline = NULL, *canon;
	bool locked = false;
	int rc = -EINVAL, code = -1, rlen;

	if (errlen > 0)
		err[0] = '\0';
	if (reason != NULL && (code = cs_crlreason_code(reason, CS_CRLREASON_REVOKE, NULL)) < 0) {
		char list[256];

		snprintf(err, errlen, "unknown revocation reason \"%s\" (%s)", reason,
			 cs_crlreason_list(CS_CRLREASON_REVOKE, list, sizeof(list)));
		goto out;
	}
	if ((rc = cs_localca__lock_ca(ca, err, errlen)) < 0)
		goto out;
	locked = true;
	if ((rc = cs_localca__index_read(ca, &ix, err, errlen)) < 0)
		goto out;
	/* "0A" and "a" name the same serial; index.txt spells it the openssl way. */
	if ((canon = canonical_serial(serial_hex)) == NULL) {
		rc = -EINVAL;
		snprintf(err, errlen, "\"%s\" is not a hexadecimal serial", serial_hex);
		goto out;
	}
	l = cs_localca__index_find(&ix, canon);
	OPENSSL_free(canon);
	if (l == NULL || l->f[0][0] != 'V') {
		rc = -ENOENT;
		snprintf(err, errlen, "%s/index.txt: no valid certificate has serial %s%s", ca->dir,
			 serial_hex, l != NULL && l->f[0][0] == 'R' ? " (already revoked)" : "");
		goto out;
	}
	rc = -ENOMEM;
	if ((now = X509_gmtime_adj(NULL, 0)) == NULL)
		goto out;
	rlen = asprintf(&rline, "R\t%s\t%.*s%s%s\t%s\t%s\t%s\n", l->f[1],
			ASN1_STRING_length(now), (const char *)ASN1_STRING_get0_data(now),
			code >= 0 ? "," : "", code >= 0 ? cs_crlreason_name(code) : "", l->f[3], l->f[4],
			l->f[5]);
	if (rlen < 0) {
		rline = NULL;
		goto out;
	}
	if ((rc = replace_line(ca, &ix, l, rline, (size_t)rlen, err, errlen)) < 0)
		goto out;
	cs_notice("%s: revoked serial %s (%s)", ca->dir, l->f[3],
		  code >= 0 ? cs_crlreason_name(code) : "no reason given");
	rc = 0;
out:
	if (rc == -ENOMEM && err[0] == '\0')
		snprintf(err, errlen, "%s: out of memory", ca->dir);
	if (locked)
		cs_localca__unlock_ca(ca);
	cs_localca__index_free(&ix);
	ASN1_TIME_free(now);
	free(rline);
	return rc;
}

/* Adds the revoked entry of index line l to crl. Returns 1, or 0 with err set. */
static int crl_add(cs_localca *ca, X509_CRL *crl, const struct index_line *l, char *err,
		   size_t errlen)
{
	X509_REVOKED *r = X509_REVOKED_new();
	ASN1_TIME *t = ASN1_TIME_new();
	ASN1_ENUMERATED *re = NULL;
	ASN1_INTEGER *sn = NULL;
	BIGNUM *bn = NULL;
	char date[32], *comma;
	int code = -1, ok = 0;

	snprintf(date, sizeof(date), "%s", l->f[2]);
	if ((comma = strchr(date, ',')) != NULL) {
		const char *why = l->f[2] + (comma - date) + 1;
		char w[64];
		*comma = '\0';
		snprintf(w, sizeof(w), "%s", why);
		if ((comma = strchr(w, ',')) != NULL)
			*comma = '\0';
		/* keyTime/CAkeyTime come from `openssl ca -crl_compromise`. */
		if (strcasecmp(w, "keyTime") == 0)
			code = 1;
		else if (strcasecmp(w, "CAkeyTime") == 0)
			code = 2;
		else if (strcasecmp(w, "holdInstruction") == 0)
			code = 6;
		else
			code = cs_crlreason_code(w, CS_CRLREASON_ANY, NULL);
	}
	if (r == NULL || t == NULL || !ASN1_TIME_set_string(t, date)) {
		snprintf(err, errlen, "%s/index.txt: serial %s: bad revocation date \"%s\"", ca->dir,
			 l->f[3], l->f[2]);
		goto out;
	}
	if (!BN_hex2bn(&bn, l->f[3]) || (sn = BN_to_ASN1_INTEGER(bn, NULL)) == NULL) {
		snprintf(err, errlen, "%s/index.txt: bad serial \"%s\"", ca->dir, l->f[3]);
		goto out;
	}
	if (!X509_REVOKED_set_serialNumber(r, sn) || !X509_REVOKED_set_revocationDate(r, t))
		goto ssl_fail;
	/* RFC 5280 5.3.1: unspecified (0) is left out rather than written. */
	if (code > 0) {
		if ((re = ASN1_ENUMERATED_new()) == NULL || !ASN1_ENUMERATED_set(re, code) ||
		    !X509_REVOKED_add1_ext_i2d(r, NID_crl_reason, re, 0, 0))
			goto ssl_fail;
	}
	if (!X509_CRL_add0_revoked(crl, r))
		goto ssl_fail;
	r = NULL;
	ok = 1;
	goto out;
ssl_fail:
	snprintf(err, errlen, "%s: cannot add serial %s to the CRL", ca->dir, l->f[3]);
	cs_log_ssl_errors(err, errlen);
out:
	X509_REVOKED_free(r);
	ASN1_TIME_free(t);
	ASN1_ENUMERATED_free(re);
	ASN1_INTEGER_free(sn);
	BN_free(bn);
	return ok;
}

/* Says that the CRL cannot be built, with OpenSSL's reasons; returns -ENOMEM. */
static int crl_fail(cs_localca *ca, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: cannot build the CRL", ca->dir);
	cs_log_ssl_errors(err, errlen);
	return -ENOMEM;
}

/* Reads DIR/crlnumber into *bn (left NULL without the file); returns 0 or -errno, err set. */
static int read_crlnumber(cs_localca *ca, BIGNUM **bn, char *err, size_t errlen)
{
	char *numbuf = NULL;
	int rc = cs_localca__read_file(ca->dir, "crlnumber", &numbuf, NULL, err, errlen);

	if (rc < 0 && rc != -ENOENT)
		return rc;
	rc = 0;
	if (numbuf != NULL) {
		numbuf[strcspn(numbuf, " \t\r\n")] = '\0';
		if (BN_hex2bn(bn, numbuf) != (int)strlen(numbuf) || numbuf[0] == '\0') {
			rc = -EINVAL;
			snprintf(err, errlen, "%s/crlnumber: \"%s\" is not a hexadecimal number",
				 ca->dir, numbuf);
			ERR_clear_error();
		}
	}
	free(numbuf);
	return rc;
}

/*
 * Builds and signs the CRL of the revoked lines of ix, issued at now and
 * valid next_update_s, numbered bn (no number when NULL). Returns 0 with
 * *out, or -ENOMEM (OpenSSL failed) or -EINVAL (a line crl_add refused)
 * with err set.
 */
static int build_crl(cs_localca *ca, const struct index *ix, const BIGNUM *bn, time_t now,
		     int64_t next_update_s, X509_CRL **out, char *err, size_t errlen)
{
	X509_CRL *crl = NULL;
	ASN1_TIME *t = NULL;
	ASN1_INTEGER *num = NULL;
	X509V3_CTX ctx;
	X509_EXTENSION *aki = NULL;
	int rc = -ENOMEM;

	if ((crl = X509_CRL_new()) == NULL || !X509_CRL_set_version(crl, 1) ||
	    !X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca->cacert)) ||
	    (t = ASN1_TIME_adj(NULL, now, 0, 0)) == NULL || !X509_CRL_set1_lastUpdate(crl, t) ||
	    ASN1_TIME_adj(t, now, (int)(next_update_s / 86400), (long)(next_update_s % 86400)) ==
		    NULL ||
	    !X509_CRL_set1_nextUpdate(crl, t))
		goto ssl_fail;
	rc = -EINVAL;
	for (size_t i = 0; i < ix->n; i++)
		if (ix->lines[i].f[0][0] == 'R' && !crl_add(ca, crl, &ix->lines[i], err, errlen))
			goto out;
	X509V3_set_ctx(&ctx, ca->cacert, NULL, NULL, crl, 0);
	if ((aki = X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid:always")) ==
		    NULL ||
	    !X509_CRL_add_ext(crl, aki, -1))
		goto ssl_fail;
	/* Without a crlnumber file, as `openssl ca -gencrl`, the CRL carries no number. */
	if (bn != NULL && ((num = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
			   !X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0)))
		goto ssl_fail;
	X509_CRL_sort(crl);
	if (X509_CRL_sign(crl, ca->cakey, ca->md) <= 0)
		goto ssl_fail;
	*out = crl;
	crl = NULL;
	rc = 0;
	goto out;
ssl_fail:
	rc = crl_fail(ca, err, errlen);
out:
	X509_CRL_free(crl);
	ASN1_TIME_free(t);
	ASN1_INTEGER_free(num);
	X509_EXTENSION_free(aki);
	return rc;
}

/* Writes DIR/crlnumber as the number after bn; returns 0 or -errno, err set. */
static int write_crlnumber(cs_localca *ca, BIGNUM *bn, char *err, size_t errlen)
{
	char *next = NULL, *line = NULL;
	int linelen, rc;

	if (!BN_add_word(bn, 1) || (next = cs_localca__bn_hex(bn)) == NULL)
		return crl_fail(ca, err, errlen);
	if ((linelen = asprintf(&line, "%s\n", next)) < 0) {
		OPENSSL_free(next);
		return crl_fail(ca, err, errlen);
	}
	rc = cs_localca__write_file(ca->dir, "crlnumber", line, (size_t)linelen, 0644, err, errlen);
	OPENSSL_free(next);
	free(line);
	return rc;
}

int cs_localca_gencrl(cs_localca *ca, int64_t next_update_s, X509_CRL **out, char *err,
		      size_t errlen)
{
	struct index ix = { 0 };
	X509_CRL *crl = NULL;
	BIGNUM *bn = NULL;
	char *pem = NULL;
	size_t pemlen = 0;
	bool locked = false;
	time_t now = time(NULL);
	int rc;

	if (errlen > 0)
		err[0] = '\0';
	if (out != NULL)
		*out = NULL;
	if ((rc = cs_localca__lock_ca(ca, err, errlen)) < 0)
		goto out;
	locked = true;
	if ((rc = cs_localca__index_read(ca, &ix, err, errlen)) < 0 ||
	    (rc = read_crlnumber(ca, &bn, err, errlen)) < 0 ||
	    (rc = build_crl(ca, &ix, bn, now, next_update_s, &crl, err, errlen)) < 0)
		goto out;
	if (cs_localca__pem_of(cs_localca__w_crl, crl, &pem, &pemlen) < 0) {
		rc = crl_fail(ca, err, errlen);
		goto out;
	}
	if ((rc = cs_localca__write_file(ca->dir, "crl.pem", pem, pemlen, 0644, err, errlen)) < 0 ||
	    (bn != NULL && (rc = write_crlnumber(ca, bn, err, errlen)) < 0))
		goto out;
	pthread_mutex_lock(&ca->crl_mu);
	X509_CRL_free(ca->crl);
	ca->crl = crl;
	pthread_mutex_unlock(&ca->crl_mu);
	if (out != NULL) {
		X509_CRL_up_ref(crl);
		*out = crl;
	}
	crl = NULL;
	rc = 0;
out:
	if (locked)
		cs_localca__unlock_ca(ca);
	cs_localca__index_free(&ix);
	X509_CRL_free(crl);
	BN_free(bn);
	free(pem);
	return rc;
}

/* Returns new references to the CA certificate and the latest CRL (or NULL). */
int cs_localca_material(cs_localca *ca, X509 **cacert, X509_CRL **crl)
{
	/* The certificate never changes while open; the CRL has its own short lock. */
	X509_up_ref(ca->cacert);
	*cacert = ca->cacert;
	pthread_mutex_lock(&ca->crl_mu);
	*crl = ca->crl;
	if (*crl != NULL)
		X509_CRL_up_ref(*crl);
	pthread_mutex_unlock(&ca->crl_mu);
	return 0;
}

/* When crl should be signed again: with crl_renew_pct of its lifetime left. */
static time_t crl_due(int renew_pct, const X509_CRL *crl)
{
	const ASN1_TIME *last = X509_CRL_get0_lastUpdate(crl), *next = X509_CRL_get0_nextUpdate(crl);
	struct tm tl, tn;
	int pct = renew_pct > 0 && renew_pct < 100 ? renew_pct : 50;

	if (last == NULL || next == NULL || ASN1_TIME_to_tm(last, &tl) != 1 ||
	    ASN1_TIME_to_tm(next, &tn) != 1)
		return 1; /* unreadable dates: now */
	time_t a = timegm(&tl), b = timegm(&tn);
	return b > a ? a + (time_t)((double)(b - a) * (100 - pct) / 100.0) : a;
}

int cs_localca_crl_refresh(cs_localca *ca, int64_t validity_s, int renew_pct, char *err,
			   size_t errlen)
{
	X509_CRL *fresh = NULL, *cur;
	char *buf = NULL;
	size_t len = 0;
	BIO *b = NULL;
	int rc = cs_localca__read_file(ca->dir, "crl.pem", &buf, &len, err, errlen);

	if (rc == -ENOENT)
		return 0; /* nothing was ever revoked here: no CRL to keep fresh */
	if (rc < 0)
		return rc;
	if ((b = BIO_new_mem_buf(buf, (int)len)) != NULL)
		fresh = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL);
	ERR_clear_error();
	BIO_free(b);
	free(buf);
	pthread_mutex_lock(&ca->crl_mu);
	if (fresh != NULL) {
		/* Readers hold their own references: the old one may go. */
		X509_CRL_free(ca->crl);
		ca->crl = fresh;
	}
	cur = ca->crl;
	time_t due = cur != NULL ? crl_due(renew_pct, cur) : 0;
	pthread_mutex_unlock(&ca->crl_mu);
	if (cur != NULL && due > time(NULL))
		return 0;
	return cs_localca_gencrl(ca, validity_s, NULL, err, errlen);
}

time_t cs_localca_crl_due(cs_localca *ca, int renew_pct)
{
	time_t due = 0;

	pthread_mutex_lock(&ca->crl_mu);
	if (ca->crl != NULL)
		due = crl_due(renew_pct, ca->crl);
	pthread_mutex_unlock(&ca->crl_mu);
	return due;
}

cs_localca *cs_localca_open_ex(const struct cs_localca_opts *o, bool may_create, int *rc,
			       char *err, size_t errlen)
{
	return cs_localca__open_ca(o, may_create, rc, err, errlen);
}

char *cs_localca_serial_hex(const ASN1_INTEGER *serial)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
	char *hex = bn != NULL ? cs_localca__bn_hex(bn) : NULL;

	BN_free(bn);
	return hex;
}
