/*
 * cs_capath_read - reading one file of a CApath directory: whether it is a
 * certificate or a CRL (or neither, and why it is skipped), its subject
 * hash and its SHA-1, through a fast DER walk of the subject where it can
 * and OpenSSL's decoder otherwise; certificates keep their DER for the
 * CAfile. Files over MAX_FILE are not read.
 */
#include "cs_capath_int.h"

/* ---- reading a file ---- */

static int no_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf, (void)size, (void)rwflag, (void)u;
	return -1;
}

/* Sets the reason: prefix followed by arg. */
void cs_capath__set_skip(struct cfile *f, int is_err, const char *prefix, const char *arg)
{
	char buf[512];

	snprintf(buf, sizeof(buf), "%s%s", prefix, arg);
	free(f->skip);
	f->skip = strdup(buf);
	f->skip_err = is_err;
}

/* Steps over one definite-length DER element of tag `tag` (-1: any); returns its end or NULL. */
static const unsigned char *der_elem(const unsigned char *p, const unsigned char *end, int tag,
				     int cls, const unsigned char **content, long *clen)
{
	const unsigned char *q = p;
	long len;
	int t, c, r;

	if (p == NULL || p >= end)
		return NULL;
	r = ASN1_get_object(&q, &len, &t, &c, end - p);
	if ((r & 0x80) || r == 0x21 || (tag >= 0 && (t != tag || c != cls)))
		return NULL;
	if (content != NULL) {
		*content = q;
		*clen = len;
	}
	return q + len;
}

/*
 * The name a link is made for, found by walking the DER of a certificate
 * (subject) or CRL (issuer) field by field. Returns a pointer to the Name's
 * encoding and its end in *nend, or NULL when the structure is not the
 * expected one (the caller then decodes the file as openssl does).
 */
static const unsigned char *der_name(const unsigned char *der, long len, int crl,
				     const unsigned char **nend)
{
	const unsigned char *end = der + len, *p, *tbs, *tend, *name;
	long l;

	p = der_elem(der, end, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &tbs, &l);
	if (p != end)
		return NULL; /* trailing bytes: leave to the full decoder */
	end = tbs + l;
	p = der_elem(tbs, end, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &tbs, &l);
	/* After the to-be-signed part: the signature algorithm and the signature. */
	p = der_elem(p, end, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, NULL, NULL);
	if (der_elem(p, end, V_ASN1_BIT_STRING, V_ASN1_UNIVERSAL, NULL, NULL) != end)
		return NULL;
	tend = tbs + l;
	p = tbs;
	if (crl) {
		if (p < tend && *p == V_ASN1_INTEGER)
			p = der_elem(p, tend, V_ASN1_INTEGER, V_ASN1_UNIVERSAL, NULL, NULL);
		p = der_elem(p, tend, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, NULL, NULL);
		name = p;
		p = der_elem(p, tend, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, NULL, NULL);
	} else {
		if (p < tend && *p == 0xa0)
			p = der_elem(p, tend, 0, V_ASN1_CONTEXT_SPECIFIC, NULL, NULL);
		p = der_elem(p, tend, V_ASN1_INTEGER, V_ASN1_UNIVERSAL, NULL, NULL);
		p = der_elem(p, tend, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, NULL, NULL); /* alg */
		p = der_elem(p, tend, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, NULL, NULL); /* issuer */
		p = der_elem(p, tend, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, NULL, NULL); /* validity */
		name = p;
		p = der_elem(p, tend, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, NULL, NULL); /* subject */
		/* The public key is stepped over, never decoded. */
		if (der_elem(p, tend, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, NULL, NULL) == NULL)
			return NULL;
	}
	if (p == NULL)
		return NULL;
	*nend = p;
	return name;
}

/*
 * The common case read cheaply: the file is one CERTIFICATE or X509 CRL PEM
 * block, nothing else, without headers, of well-formed DER. Fills kind,
 * hash, digest (and the DER when want_der). Returns 1, or 0 when the file
 * needs the full decoder (f is then untouched).
 */
static int parse_fast(cs_capath *cp, struct cfile *f, const char *buf, size_t len, int want_der)
{
	static const char begin[] = "-----BEGIN ";
	const char *b = memmem(buf, len, begin, sizeof(begin) - 1);
	char *name = NULL, *header = NULL;
	unsigned char *der = NULL;
	const unsigned char *nm, *nend;
	long dlen = 0;
	BIO *bio;
	X509_NAME *xn = NULL;
	int ok = 0, crl, hok = 0;
	uint32_t hash;

	if (b == NULL || memmem(b + 1, len - (size_t)(b + 1 - buf), begin, sizeof(begin) - 1))
		return 0;
	bio = BIO_new_mem_buf(buf, (int)len);
	if (bio == NULL || !PEM_read_bio(bio, &name, &header, &der, &dlen) || header[0] != '\0')
		goto out;
	if (strcmp(name, PEM_STRING_X509) == 0)
		crl = 0;
	else if (strcmp(name, PEM_STRING_X509_CRL) == 0)
		crl = 1;
	else
		goto out;
	nm = der_name(der, dlen, crl, &nend);
	if (nm == NULL || (xn = d2i_X509_NAME(NULL, &nm, nend - nm)) == NULL || nm != nend)
		goto out;
	hash = (uint32_t)X509_NAME_hash_ex(xn, NULL, NULL, &hok);
	if (!hok || cp->sha1 == NULL || !EVP_Digest(der, (size_t)dlen, f->sha1, NULL, cp->sha1, NULL))
		goto out;
	f->kind = crl ? KIND_CRL : KIND_CERT;
	f->hash = hash;
	if (want_der && !crl) {
		f->der = der;
		f->derlen = (int)dlen;
		der = NULL;
	}
	ok = 1;
out:
	X509_NAME_free(xn);
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(der);
	BIO_free(bio);
	ERR_clear_error();
	return ok;
}

/* Reads buf as openssl rehash does (PEM_X509_INFO_read_bio) into f. */
static void parse_full(cs_capath *cp, struct cfile *f, const char *buf, size_t len)
{
	STACK_OF(X509_INFO) *inf = NULL;
	X509_INFO *xi;
	const X509_NAME *nm;
	BIO *bio = BIO_new_mem_buf(buf, (int)len);
	int ok = 0;
	unsigned int dlen;

	if (bio == NULL) {
		cs_capath__set_skip(f, 1, "", "out of memory");
		goto out;
	}
	inf = PEM_X509_INFO_read_bio(bio, NULL, no_password, NULL);
	if (inf == NULL) {
		cs_capath__set_skip(f, 0, "", "not readable as PEM");
		goto out;
	}
	if (sk_X509_INFO_num(inf) != 1) {
		cs_capath__set_skip(f, 0, "", "does not contain exactly one certificate or CRL");
		goto out;
	}
	xi = sk_X509_INFO_value(inf, 0);
	if (xi->x509 != NULL) {
		f->kind = KIND_CERT;
		nm = X509_get_subject_name(xi->x509);
		if (!X509_digest(xi->x509, EVP_sha1(), f->sha1, &dlen)) {
			cs_capath__set_skip(f, 1, "", "cannot compute its SHA-1 fingerprint");
			f->kind = KIND_NONE;
			goto out;
		}
		f->derlen = cp->cafile != NULL ? i2d_X509(xi->x509, &f->der) : 0;
		if (f->derlen <= 0) {
			f->der = NULL;
			f->derlen = 0;
		}
	} else if (xi->crl != NULL) {
		f->kind = KIND_CRL;
		nm = X509_CRL_get_issuer(xi->crl);
		if (!X509_CRL_digest(xi->crl, EVP_sha1(), f->sha1, &dlen)) {
			cs_capath__set_skip(f, 1, "", "cannot compute its SHA-1 fingerprint");
			f->kind = KIND_NONE;
			goto out;
		}
	} else {
		cs_capath__set_skip(f, 1, "", "holds neither a certificate nor a CRL");
		goto out;
	}
	f->hash = (uint32_t)X509_NAME_hash_ex(nm, NULL, NULL, &ok);
	if (!ok) {
		cs_capath__set_skip(f, 1, "", "cannot hash its name");
		cs_capath__file_clear(f);
	}
out:
	sk_X509_INFO_pop_free(inf, X509_INFO_free);
	BIO_free(bio);
	ERR_clear_error();
}

/*
 * Reads the whole of the regular file name (at most MAX_FILE bytes) into a
 * malloc'd buffer; *st gets the descriptor's stat. Returns the buffer, or
 * NULL with *why set (a static reason; *is_err says whether it is an error).
 */
static char *read_whole(cs_capath *cp, const char *name, struct stat *st, size_t *len,
			const char **why, int *is_err)
{
	char *buf;
	int fd = openat(cp->dirfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	*len = 0;
	*is_err = 0;
	if (fd < 0) {
		*why = strerror(errno);
		*is_err = 1;
		return NULL;
	}
	/*
	 * Again on the descriptor: the name may have been swapped for a FIFO or
	 * a device since the fstatat before. Symbolic links stay followed: a
	 * CApath directory is often links into a certificate store.
	 */
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		close(fd);
		*why = "not a regular file";
		return NULL;
	}
	if (st->st_size > MAX_FILE) {
		close(fd);
		*why = "too large for a certificate or CRL";
		return NULL;
	}
	/* Read whole: PEM parsing on a file-descriptor BIO reads one byte per call. */
	buf = malloc((size_t)st->st_size + 1);
	while (buf != NULL && *len < (size_t)st->st_size) {
		ssize_t n = read(fd, buf + *len, (size_t)st->st_size - *len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		*len += (size_t)n;
	}
	close(fd);
	if (buf == NULL) {
		*why = "out of memory";
		*is_err = 1;
	}
	return buf;
}

/*
 * Reads dir/f->name into f (kind, hash, digest, DER, or a skip reason).
 * With use_cache, a file whose key matches the cache is not read (no DER).
 * Returns 0, or -ENOENT when the file does not exist (f untouched).
 */
int cs_capath__file_load(cs_capath *cp, struct cfile *f, int use_cache)
{
	struct stat st;
	const struct centry *ce;
	struct fkey key;
	const char *why;
	char *buf;
	size_t len;
	int is_err;

	if (fstatat(cp->dirfd, f->name, &st, 0) < 0) {
		if (errno == ENOENT) {
			struct stat lst;

			/* A dangling symlink exists but cannot be read. */
			if (fstatat(cp->dirfd, f->name, &lst, AT_SYMLINK_NOFOLLOW) < 0)
				return -ENOENT;
		}
		cs_capath__file_clear(f);
		f->keyed = 0;
		cs_capath__set_skip(f, 1, "cannot be read: ", strerror(errno));
		return 0;
	}
	cs_capath__file_clear(f);
	f->keyed = 0;
	free(f->skip);
	f->skip = NULL;
	f->skip_err = 0;
	if (!S_ISREG(st.st_mode)) {
		cs_capath__set_skip(f, 0, "", "not a regular file");
		return 0;
	}
	cs_capath__key_of(&st, &key);
	if (use_cache && (ce = cs_capath__cache_find(cp, f->name)) != NULL &&
	    cs_capath__key_eq(&ce->key, &key)) {
		f->kind = ce->kind;
		f->hash = ce->hash;
		memcpy(f->sha1, ce->sha1, SHA1_LEN);
		f->key = key;
		f->keyed = 1;
		return 0;
	}
	buf = read_whole(cp, f->name, &st, &len, &why, &is_err);
	if (buf == NULL) {
		cs_capath__set_skip(f, is_err,
				    is_err && strcmp(why, "out of memory") != 0 ? "cannot be read: " : "",
				    why);
		return 0;
	}
	if (!parse_fast(cp, f, buf, len, cp->cafile != NULL))
		parse_full(cp, f, buf, len);
	if (f->kind != KIND_NONE) {
		cs_capath__key_of(&st, &f->key);
		f->keyed = 1;
	}
	free(buf);
	return 0;
}

/*
 * Gives a linked certificate read from the cache its DER (for the CAfile).
 * Returns 0, or -1 when the file no longer holds the same certificate.
 */
int cs_capath__file_der(cs_capath *cp, struct cfile *f)
{
	struct cfile tmp;
	int rc = -1;

	memset(&tmp, 0, sizeof(tmp));
	tmp.name = f->name;
	if (cs_capath__file_load(cp, &tmp, 0) == 0 && tmp.kind == KIND_CERT && tmp.der != NULL &&
	    memcmp(tmp.sha1, f->sha1, SHA1_LEN) == 0) {
		f->der = tmp.der;
		f->derlen = tmp.derlen;
		tmp.der = NULL;
		rc = 0;
	}
	free(tmp.der);
	free(tmp.skip);
	return rc;
}
