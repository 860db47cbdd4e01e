/*
 * cs_ingest - read keys, certificates and CRLs in whatever format they come
 * in. See cs_ingest.h.
 *
 * PEM files are walked block by block with PEM_read_bio() so that every
 * problem can name the block and the line it starts on: administrators fix
 * files by hand, and "line 57" is what lets them. Everything else is tried as
 * DER in a fixed order. Buffers that may hold key material are wiped before
 * they are freed.
 */
#include "cs_ingest.h"
#include "cs_log.h"
#include "cs_pkcs12.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/pkcs7.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Larger inputs are not certificate material; refusing them bounds memory. */
#define INGEST_MAX_BYTES (64u * 1024 * 1024)
/* Far above what any tool writes (OpenSSL: 2048, Windows: 2000-10000). */
#define PKCS12_MAX_ITER 1000000

struct ingest {
	cs_material *m;
	const char *name;
	const char *password;
	struct cs_ingest_info *info;
	char *err;
	size_t errlen;
};

static void set_err(struct ingest *in, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void set_err(struct ingest *in, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (in->err == NULL || in->errlen == 0)
		return;
	n = snprintf(in->err, in->errlen, "%s: ", in->name);
	if (n < 0 || (size_t)n >= in->errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(in->err + n, in->errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

static void ssl_tail(struct ingest *in)
{
	if (in->err != NULL && in->errlen > 0)
		cs_log_ssl_errors(in->err, in->errlen);
	else
		ERR_clear_error();
}

static int add_cert(struct ingest *in, X509 *x)
{
	if (sk_X509_push(in->m->strays, x) <= 0) {
		X509_free(x);
		set_err(in, "out of memory");
		return -ENOMEM;
	}
	in->info->certs++;
	return 0;
}

static int add_crl(struct ingest *in, X509_CRL *c)
{
	if (sk_X509_CRL_push(in->m->crls, c) <= 0) {
		X509_CRL_free(c);
		set_err(in, "out of memory");
		return -ENOMEM;
	}
	in->info->crls++;
	return 0;
}

/* where: "" for a DER file, " (block 2, line 31)" for a PEM block. */
static int add_key(struct ingest *in, EVP_PKEY *k, const char *where)
{
	if (in->m->key != NULL) {
		EVP_PKEY_free(k);
		set_err(in, "a second private key%s; a set holds exactly one key, "
			    "split the file or remove the extra key", where);
		return -EEXIST;
	}
	in->m->key = k;
	in->info->keys++;
	return 0;
}

/* Certificates and CRLs of a signed (certs-only) PKCS#7; takes p7. */
static int add_pkcs7(struct ingest *in, PKCS7 *p7, const char *where)
{
	STACK_OF(X509) *certs = NULL;
	STACK_OF(X509_CRL) *crls = NULL;
	int rc = 0;

	in->info->pkcs7++;
	if (PKCS7_type_is_signed(p7) && p7->d.sign != NULL) {
		certs = p7->d.sign->cert;
		crls = p7->d.sign->crl;
	} else if (PKCS7_type_is_signedAndEnveloped(p7) && p7->d.signed_and_enveloped != NULL) {
		certs = p7->d.signed_and_enveloped->cert;
		crls = p7->d.signed_and_enveloped->crl;
	} else {
		set_err(in, "the PKCS#7 structure%s holds no certificates (it is not of type "
			    "signedData)", where);
		rc = -EBADMSG;
		goto out;
	}
	for (int i = 0; rc == 0 && i < sk_X509_num(certs); i++) {
		X509 *x = sk_X509_value(certs, i);

		if (!X509_up_ref(x)) {
			set_err(in, "out of memory");
			rc = -ENOMEM;
			break;
		}
		rc = add_cert(in, x);
	}
	for (int i = 0; rc == 0 && i < sk_X509_CRL_num(crls); i++) {
		X509_CRL *c = sk_X509_CRL_value(crls, i);

		if (!X509_CRL_up_ref(c)) {
			set_err(in, "out of memory");
			rc = -ENOMEM;
			break;
		}
		rc = add_crl(in, c);
	}
out:
	PKCS7_free(p7);
	return rc;
}

static int password_cb(char *buf, int size, int rwflag, void *u)
{
	const char *pw = u;
	size_t n = strlen(pw);

	(void)rwflag;
	if (size <= 0)
		return -1;
	if (n > (size_t)size)
		n = (size_t)size;
	memcpy(buf, pw, n);
	return (int)n;
}

static int refuse_encrypted(struct ingest *in, const char *where)
{
	set_err(in, "the private key%s is encrypted and no password was given; Postfix "
		    "cannot use encrypted keys: give the password with --password-file or "
		    "--password-env to store the key decrypted", where);
	return -ENOKEY;
}

static int wrong_password(struct ingest *in, const char *what, const char *where)
{
	set_err(in, "cannot decrypt %s%s: wrong password", what, where);
	ERR_clear_error();
	return -EKEYREJECTED;
}

/* Decodes one PEM private-key block; data may be decrypted in place. */
static int pem_key(struct ingest *in, const char *type, const char *header,
		   unsigned char *data, long len, const char *where)
{
	const unsigned char *p = data;
	EVP_PKEY *k = NULL;

	if (strcmp(type, PEM_STRING_PKCS8) == 0) {
		X509_SIG *sig;
		PKCS8_PRIV_KEY_INFO *p8;

		if (in->password == NULL)
			return refuse_encrypted(in, where);
		sig = d2i_X509_SIG(NULL, &p, len);
		if (sig == NULL) {
			set_err(in, "the encrypted private key%s is corrupt", where);
			ssl_tail(in);
			return -EBADMSG;
		}
		p8 = PKCS8_decrypt(sig, in->password, (int)strlen(in->password));
		X509_SIG_free(sig);
		if (p8 == NULL)
			return wrong_password(in, "the private key", where);
		k = EVP_PKCS82PKEY(p8);
		PKCS8_PRIV_KEY_INFO_free(p8);
	} else {
		EVP_CIPHER_INFO cipher;
		int pktype = EVP_PKEY_NONE;

		if (!PEM_get_EVP_CIPHER_INFO((char *)header, &cipher)) {
			set_err(in, "the private key%s has an unreadable encryption header "
				    "(Proc-Type/DEK-Info)", where);
			ssl_tail(in);
			return -EBADMSG;
		}
		if (cipher.cipher != NULL) {
			if (in->password == NULL)
				return refuse_encrypted(in, where);
			if (!PEM_do_header(&cipher, data, &len, password_cb,
					   (void *)in->password))
				return wrong_password(in, "the private key", where);
		}
		if (strcmp(type, PEM_STRING_RSA) == 0)
			pktype = EVP_PKEY_RSA;
		else if (strcmp(type, PEM_STRING_ECPRIVATEKEY) == 0)
			pktype = EVP_PKEY_EC;
		else if (strcmp(type, PEM_STRING_DSA) == 0)
			pktype = EVP_PKEY_DSA;
		p = data;
		if (pktype != EVP_PKEY_NONE)
			k = d2i_PrivateKey(pktype, NULL, &p, len);
		else
			k = d2i_AutoPrivateKey(NULL, &p, len);
		/* A wrong legacy password usually fails the padding check, but
		 * one time in 256 it decrypts to garbage instead. */
		if (k == NULL && cipher.cipher != NULL)
			return wrong_password(in, "the private key", where);
	}
	if (k == NULL) {
		set_err(in, "the private key%s cannot be decoded", where);
		ssl_tail(in);
		return -EBADMSG;
	}
	return add_key(in, k, where);
}

/* Is this the block type of a private key that pem_key() understands? */
static bool is_key_block(const char *type)
{
	return strcmp(type, PEM_STRING_PKCS8INF) == 0 || strcmp(type, PEM_STRING_PKCS8) == 0 ||
	       strcmp(type, PEM_STRING_RSA) == 0 || strcmp(type, PEM_STRING_ECPRIVATEKEY) == 0 ||
	       strcmp(type, PEM_STRING_DSA) == 0;
}

/* where: " (block 2, line 31)"; label: "PEM block 2 at line 31", for messages. */
static int pem_block(struct ingest *in, const char *type, const char *header,
		     unsigned char *data, long len, const char *where, const char *label)
{
	const unsigned char *p = data;

	if (strcmp(type, PEM_STRING_X509) == 0 || strcmp(type, PEM_STRING_X509_OLD) == 0) {
		X509 *x = d2i_X509(NULL, &p, len);

		if (x == NULL) {
			set_err(in, "the certificate%s cannot be decoded", where);
			ssl_tail(in);
			return -EBADMSG;
		}
		return add_cert(in, x);
	}
	if (strcmp(type, PEM_STRING_X509_TRUSTED) == 0) {
		X509 *x = d2i_X509_AUX(NULL, &p, len);

		if (x == NULL) {
			set_err(in, "the trusted certificate%s cannot be decoded", where);
			ssl_tail(in);
			return -EBADMSG;
		}
		return add_cert(in, x);
	}
	if (strcmp(type, PEM_STRING_X509_CRL) == 0) {
		X509_CRL *c = d2i_X509_CRL(NULL, &p, len);

		if (c == NULL) {
			set_err(in, "the CRL%s cannot be decoded", where);
			ssl_tail(in);
			return -EBADMSG;
		}
		return add_crl(in, c);
	}
	if (strcmp(type, PEM_STRING_PKCS7) == 0) {
		PKCS7 *p7 = d2i_PKCS7(NULL, &p, len);

		if (p7 == NULL) {
			set_err(in, "the PKCS#7 structure%s cannot be decoded", where);
			ssl_tail(in);
			return -EBADMSG;
		}
		return add_pkcs7(in, p7, where);
	}
	if (is_key_block(type))
		return pem_key(in, type, header, data, len, where);
	/* openssl ecparam -genkey writes the curve before the key by default. */
	if (strcmp(type, PEM_STRING_ECPARAMETERS) == 0)
		return 0;
	if (strcmp(type, PEM_STRING_X509_REQ) == 0 || strcmp(type, PEM_STRING_X509_REQ_OLD) == 0) {
		set_err(in, "%s is a certificate request (CSR), not a certificate; "
			    "send it to the CA and use the certificate it returns", label);
		return -EBADMSG;
	}
	set_err(in, "%s is of type \"%s\", which certsync does not use (expected "
		    "PRIVATE KEY, CERTIFICATE, X509 CRL or PKCS7)", label, type);
	return -EBADMSG;
}

/*
 * Line numbers of the lines PEM_read_bio() accepts as BEGIN lines, in order,
 * so the n-th block read can be reported by the line it starts on.
 */
static size_t *begin_lines(const char *s, size_t len, size_t *count)
{
	size_t *v = NULL, n = 0, cap = 0, line = 1;
	const char *p = s, *end = s + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t ll = (size_t)((nl != NULL ? nl : end) - p);

		if (ll > 0 && p[ll - 1] == '\r')
			ll--;
		if (ll >= 16 && memcmp(p, "-----BEGIN ", 11) == 0 &&
		    memcmp(p + ll - 5, "-----", 5) == 0) {
			if (n == cap) {
				size_t ncap = cap ? cap * 2 : 16;
				size_t *nv = realloc(v, ncap * sizeof(*v));

				if (nv == NULL)
					break;
				v = nv;
				cap = ncap;
			}
			v[n++] = line;
		}
		if (nl == NULL)
			break;
		p = nl + 1;
		line++;
	}
	*count = n;
	return v;
}

static int ingest_pem(struct ingest *in, const char *data, size_t len)
{
	size_t nlines = 0, *lines = begin_lines(data, len, &nlines);
	BIO *bio = BIO_new_mem_buf(data, (int)len);
	int rc = 0, blocks = 0;

	in->info->format = CS_FMT_PEM;
	if (bio == NULL) {
		set_err(in, "out of memory");
		free(lines);
		return -ENOMEM;
	}
	for (;;) {
		char *type = NULL, *header = NULL, where[64], label[64];
		unsigned char *body = NULL;
		long blen = 0;
		size_t line = (size_t)blocks < nlines ? lines[blocks] : 0;

		if (line > 0) {
			snprintf(where, sizeof(where), " (block %d, line %zu)", blocks + 1, line);
			snprintf(label, sizeof(label), "PEM block %d at line %zu", blocks + 1, line);
		} else {
			snprintf(where, sizeof(where), " (block %d)", blocks + 1);
			snprintf(label, sizeof(label), "PEM block %d", blocks + 1);
		}
		ERR_clear_error();
		if (!PEM_read_bio(bio, &type, &header, &body, &blen)) {
			unsigned long e = ERR_peek_last_error();

			if (ERR_GET_LIB(e) == ERR_LIB_PEM &&
			    ERR_GET_REASON(e) == PEM_R_NO_START_LINE && (size_t)blocks >= nlines) {
				ERR_clear_error();
				if (blocks == 0) {
					set_err(in, "contains \"-----BEGIN\" but no PEM block "
						    "(no line of the form -----BEGIN TYPE-----)");
					rc = -EBADMSG;
				}
			} else {
				if (line > 0)
					set_err(in, "PEM block %d starting at line %zu is truncated "
						    "or corrupt (a BEGIN line without its END line, "
						    "or bad base64)", blocks + 1, line);
				else
					set_err(in, "PEM block %d is truncated or corrupt (a BEGIN "
						    "line without its END line, or bad base64)",
						blocks + 1);
				ssl_tail(in);
				rc = -EBADMSG;
			}
			break;
		}
		blocks++;
		rc = pem_block(in, type, header, body, blen, where, label);
		OPENSSL_free(type);
		OPENSSL_free(header);
		OPENSSL_clear_free(body, (size_t)blen);
		if (rc < 0)
			break;
	}
	BIO_free(bio);
	free(lines);
	return rc;
}

/*
 * The contents of p12 with pw; without a MAC to tell which password is right,
 * and none given, the empty and the absent password are both tried, as
 * openssl pkcs12 does.
 */
static int parse_pkcs12(struct ingest *in, PKCS12 *p12, const char *pw, bool mac, EVP_PKEY **k,
			X509 **cert, STACK_OF(X509) **ca)
{
	char why[400];
	int rc = cs_pkcs12_parse(p12, pw, k, cert, ca, why, sizeof(why));

	if (rc == -EKEYREJECTED && !mac && pw == NULL) {
		ERR_clear_error();
		rc = cs_pkcs12_parse(p12, "", k, cert, ca, why, sizeof(why));
		if (rc == -EKEYREJECTED) {
			set_err(in, "the PKCS#12 file is protected by a password and none was "
				    "given: give it with --password-file or --password-env");
			ERR_clear_error();
			return -ENOKEY;
		}
	}
	if (rc == -EKEYREJECTED && !mac)
		return wrong_password(in, "the PKCS#12 file", "");
	if (rc == CS_PKCS12_ENOLEGACY) {
		set_err(in, "%s", why);
		ERR_clear_error();
		return -ENOPROTOOPT;
	}
	if (rc < 0) {
		set_err(in, "%s", why);
		ssl_tail(in);
		return rc == -EKEYREJECTED ? -EBADMSG : rc;
	}
	ERR_clear_error();
	return 0;
}

static int ingest_pkcs12(struct ingest *in, PKCS12 *p12)
{
	const char *pw = in->password;
	EVP_PKEY *k = NULL;
	X509 *cert = NULL;
	STACK_OF(X509) *ca = NULL;
	int rc = 0;

	in->info->format = CS_FMT_PKCS12;
	/* What the DER probes before this one left in the queue is not about this file. */
	ERR_clear_error();
	if (PKCS12_mac_present(p12)) {
		const ASN1_INTEGER *iter = NULL;
		long n;

		/* The file sets the MAC's iteration count: a huge one would stall us. */
		PKCS12_get0_mac(NULL, NULL, NULL, &iter, p12);
		n = iter != NULL ? ASN1_INTEGER_get(iter) : 1;
		if (n < 1 || n > PKCS12_MAX_ITER) {
			set_err(in, "the PKCS#12 file asks for %ld MAC iterations (at most %d are "
				    "accepted)", n, PKCS12_MAX_ITER);
			ERR_clear_error();
			rc = -EBADMSG;
			goto out;
		}
		if (pw != NULL) {
			if (!PKCS12_verify_mac(p12, pw, -1)) {
				rc = wrong_password(in, "the PKCS#12 file", " (MAC check failed)");
				goto out;
			}
		} else if (PKCS12_verify_mac(p12, "", 0)) {
			pw = "";
		} else if (!PKCS12_verify_mac(p12, NULL, 0)) {
			set_err(in, "the PKCS#12 file is protected by a password and none was "
				    "given: give it with --password-file or --password-env");
			ERR_clear_error();
			rc = -ENOKEY;
			goto out;
		}
	}
	rc = parse_pkcs12(in, p12, pw, PKCS12_mac_present(p12), &k, &cert, &ca);
	if (rc < 0)
		goto out;
	if (k != NULL) {
		rc = add_key(in, k, "");
		k = NULL;
	}
	if (rc == 0 && cert != NULL) {
		rc = add_cert(in, cert);
		cert = NULL;
	}
	while (rc == 0 && sk_X509_num(ca) > 0)
		rc = add_cert(in, sk_X509_shift(ca));
out:
	EVP_PKEY_free(k);
	X509_free(cert);
	sk_X509_pop_free(ca, X509_free);
	PKCS12_free(p12);
	return rc;
}

/* DER decoders accept a prefix; a file is only "DER X" when X is all of it. */
#define WHOLE(p, data, len) ((p) == (const unsigned char *)(data) + (len))

static int ingest_der(struct ingest *in, const unsigned char *data, size_t len)
{
	const unsigned char *p;
	long l = (long)len;

	p = data;
	X509 *x = d2i_X509(NULL, &p, l);
	if (x != NULL && WHOLE(p, data, len)) {
		in->info->format = CS_FMT_DER_CERT;
		return add_cert(in, x);
	}
	X509_free(x);

	p = data;
	PKCS7 *p7 = d2i_PKCS7(NULL, &p, l);
	if (p7 != NULL && WHOLE(p, data, len)) {
		in->info->format = CS_FMT_PKCS7_DER;
		return add_pkcs7(in, p7, "");
	}
	PKCS7_free(p7);

	p = data;
	PKCS12 *p12 = d2i_PKCS12(NULL, &p, l);
	if (p12 != NULL && WHOLE(p, data, len))
		return ingest_pkcs12(in, p12);
	PKCS12_free(p12);

	p = data;
	X509_CRL *crl = d2i_X509_CRL(NULL, &p, l);
	if (crl != NULL && WHOLE(p, data, len)) {
		in->info->format = CS_FMT_DER_CRL;
		return add_crl(in, crl);
	}
	X509_CRL_free(crl);

	p = data;
	X509_SIG *sig = d2i_X509_SIG(NULL, &p, l);
	if (sig != NULL && WHOLE(p, data, len)) {
		PKCS8_PRIV_KEY_INFO *p8;
		EVP_PKEY *k;

		in->info->format = CS_FMT_DER_KEY;
		if (in->password == NULL) {
			X509_SIG_free(sig);
			return refuse_encrypted(in, "");
		}
		p8 = PKCS8_decrypt(sig, in->password, (int)strlen(in->password));
		X509_SIG_free(sig);
		if (p8 == NULL)
			return wrong_password(in, "the private key", "");
		k = EVP_PKCS82PKEY(p8);
		PKCS8_PRIV_KEY_INFO_free(p8);
		if (k == NULL) {
			set_err(in, "the private key cannot be decoded");
			ssl_tail(in);
			return -EBADMSG;
		}
		return add_key(in, k, "");
	}
	X509_SIG_free(sig);

	p = data;
	EVP_PKEY *k = d2i_AutoPrivateKey(NULL, &p, l);
	if (k != NULL && WHOLE(p, data, len)) {
		in->info->format = CS_FMT_DER_KEY;
		return add_key(in, k, "");
	}
	EVP_PKEY_free(k);

	ERR_clear_error();
	set_err(in, "not a PEM, DER, PKCS#7 or PKCS#12 file");
	return -EBADMSG;
}

int cs_ingest_buffer_info(cs_material *m, const void *data, size_t len, const char *name,
			  const struct cs_ingest_opts *opts, struct cs_ingest_info *info,
			  char *err, size_t errlen)
{
	struct cs_ingest_info dummy;
	struct ingest in = {
		.m = m,
		.name = name != NULL ? name : "(buffer)",
		.password = opts != NULL ? opts->password : NULL,
		.info = info != NULL ? info : &dummy,
		.err = err,
		.errlen = errlen,
	};

	memset(in.info, 0, sizeof(*in.info));
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (len == 0) {
		set_err(&in, "empty file: not a PEM, DER, PKCS#7 or PKCS#12 file");
		return -EBADMSG;
	}
	if (len > INGEST_MAX_BYTES || len > INT_MAX) {
		set_err(&in, "too large (%zu bytes) to be certificate material", len);
		return -EFBIG;
	}
	if (memmem(data, len, "-----BEGIN", 10) != NULL)
		return ingest_pem(&in, data, len);
	return ingest_der(&in, data, len);
}

int cs_ingest_buffer(cs_material *m, const void *data, size_t len, const char *name,
		     const struct cs_ingest_opts *opts, char *err, size_t errlen)
{
	return cs_ingest_buffer_info(m, data, len, name, opts, NULL, err, errlen);
}

/* Reads all of fd into a malloc'd buffer; returns 0 or -errno. */
static int slurp(int fd, unsigned char **out, size_t *outlen)
{
	unsigned char *buf = NULL;
	size_t cap = 0, used = 0;

	for (;;) {
		ssize_t n;

		if (used == cap) {
			size_t ncap = cap ? cap * 2 : 16384;
			unsigned char *nb;

			if (cap > INGEST_MAX_BYTES) {
				OPENSSL_clear_free(buf, cap);
				return -EFBIG;
			}
			/* Grow by copying so no stale copy of a key is left in freed memory. */
			nb = OPENSSL_malloc(ncap);
			if (nb == NULL) {
				OPENSSL_clear_free(buf, cap);
				return -ENOMEM;
			}
			if (used > 0)
				memcpy(nb, buf, used);
			OPENSSL_clear_free(buf, cap);
			buf = nb;
			cap = ncap;
		}
		n = read(fd, buf + used, cap - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = -errno;

			OPENSSL_clear_free(buf, cap);
			return e;
		}
		if (n == 0)
			break;
		used += (size_t)n;
	}
	*out = buf;
	*outlen = used;
	/* Callers wipe `used` bytes only: the rest of the buffer never held data. */
	return 0;
}

int cs_ingest_file_info(cs_material *m, const char *path, const struct cs_ingest_opts *opts,
			struct cs_ingest_info *info, char *err, size_t errlen)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	int fd, rc;

	bool regular = opts != NULL && (opts->flags & CS_INGEST_REGULAR_ONLY);
	struct stat st;

	if (info != NULL)
		memset(info, 0, sizeof(*info));
	fd = open(path, O_RDONLY | O_CLOEXEC | (regular ? O_NONBLOCK | O_NOFOLLOW : 0));
	if (fd < 0) {
		rc = -errno;
		if (regular && rc == -ELOOP)
			snprintf(err, errlen, "%s: is a symbolic link; not followed (put the file "
					      "itself there)", path);
		else
			snprintf(err, errlen, "%s: cannot open: %s", path, strerror(-rc));
		return rc;
	}
	/* On the descriptor: what was checked is what is read. */
	if (regular && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
		snprintf(err, errlen, "%s: not a regular file (a FIFO, device, socket or "
				      "directory); refused", path);
		close(fd);
		return -EINVAL;
	}
	rc = slurp(fd, &buf, &len);
	close(fd);
	if (rc < 0) {
		if (rc == -EFBIG)
			snprintf(err, errlen, "%s: too large to be certificate material", path);
		else
			snprintf(err, errlen, "%s: cannot read: %s", path, strerror(-rc));
		return rc;
	}
	rc = cs_ingest_buffer_info(m, buf, len, path, opts, info, err, errlen);
	OPENSSL_clear_free(buf, len);
	return rc;
}

int cs_ingest_file(cs_material *m, const char *path, const struct cs_ingest_opts *opts,
		   char *err, size_t errlen)
{
	return cs_ingest_file_info(m, path, opts, NULL, err, errlen);
}

const char *cs_ingest_format_name(enum cs_ingest_format f)
{
	switch (f) {
	case CS_FMT_PEM:
		return "PEM";
	case CS_FMT_DER_CERT:
		return "DER certificate";
	case CS_FMT_DER_CRL:
		return "DER CRL";
	case CS_FMT_DER_KEY:
		return "DER private key";
	case CS_FMT_PKCS7_DER:
		return "PKCS#7 (DER)";
	case CS_FMT_PKCS12:
		return "PKCS#12";
	case CS_FMT_UNKNOWN:
		break;
	}
	return "unknown";
}

char *cs_ingest_password_read(const char *file, const char *env, char *err, size_t errlen)
{
	char *pw = NULL;

	if (file != NULL) {
		unsigned char *buf = NULL;
		size_t len = 0, n;
		int fd = open(file, O_RDONLY | O_CLOEXEC), rc;

		if (fd < 0) {
			snprintf(err, errlen, "%s: cannot open password file: %s", file,
				 strerror(errno));
			return NULL;
		}
		rc = slurp(fd, &buf, &len);
		close(fd);
		if (rc < 0) {
			snprintf(err, errlen, "%s: cannot read password file: %s", file,
				 strerror(-rc));
			return NULL;
		}
		/* Like openssl's -passin file:, the password is the first line. */
		for (n = 0; n < len && buf[n] != '\n' && buf[n] != '\r'; n++)
			;
		pw = OPENSSL_malloc(n + 1);
		if (pw != NULL) {
			memcpy(pw, buf, n);
			pw[n] = '\0';
		} else {
			snprintf(err, errlen, "%s: out of memory", file);
		}
		OPENSSL_clear_free(buf, len);
		return pw;
	}
	if (env != NULL) {
		const char *v = getenv(env);

		if (v == NULL) {
			snprintf(err, errlen, "environment variable %s (for the password) is not set",
				 env);
			return NULL;
		}
		pw = OPENSSL_strdup(v);
		if (pw == NULL)
			snprintf(err, errlen, "%s: out of memory", env);
		return pw;
	}
	snprintf(err, errlen, "no password file or environment variable given");
	return NULL;
}

void cs_ingest_password_free(char *password)
{
	if (password != NULL)
		OPENSSL_clear_free(password, strlen(password));
}
