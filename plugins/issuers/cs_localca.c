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
 * Issuance commits a group of requests at once (cs_localca_issue_batch):
 * the newcerts/SERIAL.pem files are written and fsynced, then their lines
 * are appended to index.txt with one write and one fsync, then `serial` is
 * replaced through the atomic writer. A crash leaves at worst certificate
 * files that no index line names (never handed to anyone), a stale `serial`
 * (unused by us), or a last index line cut short, which the next issuance
 * cuts off. Revocation still rewrites index.txt whole.
 *
 * Creating a CA writes DIR/.certsync-creating first and removes it last: a
 * directory holding that marker and no cacert.pem is a creation that was cut
 * short, and is created again.
 */
#include "cs_localca.h"
#include "cs_atomic.h"
#include "cs_csr.h"
#include "cs_log.h"
#include "cs_x509.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOCK_NAME ".certsync.lock"
#define CREATING_NAME ".certsync-creating"
#define INDEX_MAX (256L * 1024 * 1024)

/* A set of strings: see index_sync. */
struct sset_ent {
	struct sset_ent *next;
	char s[];
};

struct sset {
	struct sset_ent **t;
	size_t size, n;
};

static void cs_localca__sset_clear(struct sset *ss);

struct cs_localca {
	char *dir;
	int64_t validity_s;
	X509 *cacert;
	EVP_PKEY *cakey;
	EVP_MD *md; /* what cakey signs with, fetched once (NULL: EdDSA, no digest) */
	X509_CRL *crl; /* latest DIR/crl.pem, or NULL; under crl_mu */
	/* newcerts/ is swept at the first issuance, on the work queue: at 10,000
	   certificates reading it takes 15 ms, and an agent opens its CAs on the loop. */
	bool newcerts_unswept;
	int lockfd;
	pthread_mutex_t mu;     /* held with the flock for every change in the directory */
	pthread_mutex_t crl_mu; /* only around ca->crl, so that readers never wait on a writer */
	/* index.txt as this process last saw it (under mu and the flock) */
	bool ix_valid;
	bool ix_nl; /* it ends with a newline (or is empty) */
	struct stat ix_stat;
	struct sset ix_serials;  /* every serial it names */
	struct sset ix_subjects; /* subjects of its valid certificates */
	atomic_uint_fast64_t commits; /* groups appended to index.txt since the open */
};

/* The CRL reasons as `openssl ca` spells them in index.txt, by code. */
static const char *const crl_reasons[] = {
	"unspecified",	      "keyCompromise", "CACompromise",	 "affiliationChanged",
	"superseded",	      "cessationOfOperation", "certificateHold", NULL,
	"removeFromCRL",
};
#define N_REASONS (sizeof(crl_reasons) / sizeof(crl_reasons[0]))

/* ---- small file helpers ---- */

static char *cs_localca__path_join(const char *dir, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

/*
 * Reads the whole of dir/name into a NUL-terminated malloc'd buffer. Returns
 * 0, -ENOENT when it does not exist, or another negative code with err set.
 */
static int cs_localca__read_file(const char *dir, const char *name, char **buf, size_t *len, char *err,
		     size_t errlen)
{
	char *path = cs_localca__path_join(dir, name), *b = NULL;
	struct stat sb;
	size_t used = 0;
	int fd = -1, rc = 0;

	*buf = NULL;
	if (path == NULL)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		if (rc != -ENOENT)
			snprintf(err, errlen, "%s: cannot open: %s", path, strerror(-rc));
		goto out;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size > INDEX_MAX) {
		rc = -EINVAL;
		snprintf(err, errlen, "%s: not a regular file of reasonable size", path);
		goto out;
	}
	b = malloc((size_t)sb.st_size + 1);
	if (b == NULL) {
		rc = -ENOMEM;
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	while (used < (size_t)sb.st_size) {
		ssize_t n = read(fd, b + used, (size_t)sb.st_size - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			snprintf(err, errlen, "%s: cannot read: %s", path, strerror(-rc));
			goto out;
		}
		if (n == 0)
			break;
		used += (size_t)n;
	}
	b[used] = '\0';
	*buf = b;
	b = NULL;
	if (len != NULL)
		*len = used;
out:
	free(b);
	if (fd >= 0)
		close(fd);
	free(path);
	return rc;
}

/*
 * Replaces dir/name with data through the atomic writer. An existing file
 * keeps its mode (and owner, where we may set it); a new one gets mode.
 */
static int cs_localca__write_file(const char *dir, const char *name, const void *data, size_t len,
		      mode_t mode, char *err, size_t errlen)
{
	struct cs_atomic_opts ao = { .mode = mode, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	char *path = cs_localca__path_join(dir, name);
	struct stat sb;
	int rc;

	if (path == NULL)
		return -ENOMEM;
	if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
		ao.mode = sb.st_mode & 07777;
		if (sb.st_uid != geteuid())
			ao.uid = sb.st_uid;
		if (sb.st_gid != getegid())
			ao.gid = sb.st_gid;
	}
	rc = cs_atomic_write(path, data, len, &ao, err, errlen);
	free(path);
	return rc;
}

/* Writes x as PEM into a malloc'd buffer (*out, *len). Returns 0 or -ENOMEM. */
static int cs_localca__pem_of(int (*w)(BIO *, void *), void *x, char **out, size_t *len)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p = NULL;
	long n;
	int rc = -ENOMEM;

	*out = NULL;
	if (b == NULL || !w(b, x))
		goto out;
	n = BIO_get_mem_data(b, &p);
	if (n <= 0 || (*out = malloc((size_t)n)) == NULL)
		goto out;
	memcpy(*out, p, (size_t)n);
	*len = (size_t)n;
	rc = 0;
out:
	BIO_free(b); /* a memory BIO clears its buffer when freed */
	return rc;
}

static int cs_localca__w_x509(BIO *b, void *x)
{
	return PEM_write_bio_X509(b, x);
}

static int cs_localca__w_crl(BIO *b, void *x)
{
	return PEM_write_bio_X509_CRL(b, x);
}

static int cs_localca__w_key(BIO *b, void *x)
{
	return PEM_write_bio_PrivateKey(b, x, NULL, NULL, 0, NULL, NULL);
}

/* Hex of a positive integer as `openssl ca` writes it: uppercase, even length, "00" for 0. */
static char *cs_localca__bn_hex(const BIGNUM *bn)
{
	char *h;

	if (BN_is_zero(bn))
		return OPENSSL_strdup("00");
	h = BN_bn2hex(bn);
	return h;
}

/* ---- locking ---- */

static int cs_localca__lock_ca(cs_localca *ca, char *err, size_t errlen)
{
	pthread_mutex_lock(&ca->mu);
	while (flock(ca->lockfd, LOCK_EX) < 0) {
		int rc = -errno;
		if (rc == -EINTR)
			continue;
		snprintf(err, errlen, "%s/%s: cannot lock: %s", ca->dir, LOCK_NAME,
			 strerror(-rc));
		pthread_mutex_unlock(&ca->mu);
		return rc;
	}
	return 0;
}

static void cs_localca__unlock_ca(cs_localca *ca)
{
	flock(ca->lockfd, LOCK_UN);
	pthread_mutex_unlock(&ca->mu);
}

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

/* ---- certificate building ---- */

/* Adds extension nid with value (openssl.cnf syntax) in context ctx. */
static int cs_localca__add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	int ok;

	if (ext == NULL)
		return 0;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

/* A random positive serial of 127 bits, never zero. Returns it or NULL. */
static BIGNUM *cs_localca__random_serial(void)
{
	unsigned char b[16];
	BIGNUM *bn;

	if (RAND_bytes(b, sizeof(b)) != 1)
		return NULL;
	b[0] &= 0x7f;
	if (b[0] == 0)
		b[0] = 0x01; /* full length, so every serial has 32 hex digits */
	bn = BN_bin2bn(b, sizeof(b), NULL);
	OPENSSL_cleanse(b, sizeof(b));
	return bn;
}

/* Sets the validity of x to [now, now + secs]. Returns 1 or 0. */
static int cs_localca__set_validity(X509 *x, time_t now, int64_t secs)
{
	int days = (int)(secs / 86400);
	long rest = (long)(secs % 86400);

	return ASN1_TIME_adj(X509_getm_notBefore(x), now, 0, 0) != NULL &&
	       ASN1_TIME_adj(X509_getm_notAfter(x), now, days, rest) != NULL;
}

/* The self-signed CA certificate for key. Returns it or NULL with err set. */
static X509 *make_cacert(EVP_PKEY *key, X509_NAME *subj, int64_t validity_s, char *err,
			 size_t errlen)
{
	X509 *x = X509_new(), *ret = NULL;
	BIGNUM *serial = cs_localca__random_serial();
	X509V3_CTX ctx;

	if (x == NULL || serial == NULL || !X509_set_version(x, 2) ||
	    BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) == NULL ||
	    !X509_set_subject_name(x, subj) || !X509_set_issuer_name(x, subj) ||
	    !cs_localca__set_validity(x, time(NULL), validity_s) || !X509_set_pubkey(x, key))
		goto ssl_fail;
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	if (!X509V3_set_issuer_pkey(&ctx, key) ||
	    !cs_localca__add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE") ||
	    !cs_localca__add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") ||
	    !cs_localca__add_ext(x, &ctx, NID_subject_key_identifier, "hash") ||
	    !cs_localca__add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always"))
		goto ssl_fail;
	if (X509_sign(x, key, cs_csr_sign_md(key)) <= 0)
		goto ssl_fail;
	ret = x;
	x = NULL;
	goto out;
ssl_fail:
	snprintf(err, errlen, "cannot build the CA certificate");
	cs_log_ssl_errors(err, errlen);
out:
	BN_free(serial);
	X509_free(x);
	return ret;
}

/* ---- creating and adopting ---- */

static int no_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* Loads and checks cacert.pem and private/cakey.pem into ca. Returns 0 or a negative code. */
static int load_ca(cs_localca *ca, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	BIO *b = NULL;
	int rc;

	if ((rc = cs_localca__read_file(ca->dir, "cacert.pem", &buf, &len, err, errlen)) < 0) {
		if (rc == -ENOENT)
			snprintf(err, errlen, "%s/cacert.pem: no such file", ca->dir);
		goto out;
	}
	rc = -EINVAL;
	if ((b = BIO_new_mem_buf(buf, (int)len)) == NULL ||
	    (ca->cacert = PEM_read_bio_X509(b, NULL, NULL, NULL)) == NULL) {
		snprintf(err, errlen, "%s/cacert.pem: no PEM certificate", ca->dir);
		cs_log_ssl_errors(err, errlen);
		goto out;
	}
	if (X509_check_ca(ca->cacert) == 0) {
		snprintf(err, errlen, "%s/cacert.pem: not a CA certificate (no basicConstraints CA:TRUE)",
			 ca->dir);
		goto out;
	}
	BIO_free(b);
	b = NULL;
	free(buf);
	buf = NULL;
	if ((rc = cs_localca__read_file(ca->dir, "private/cakey.pem", &buf, &len, err, errlen)) < 0) {
		if (rc == -ENOENT)
			snprintf(err, errlen, "%s/private/cakey.pem: no such file", ca->dir);
		goto out;
	}
	rc = -EINVAL;
	if ((b = BIO_new_mem_buf(buf, (int)len)) == NULL ||
	    (ca->cakey = PEM_read_bio_PrivateKey(b, NULL, no_password, NULL)) == NULL) {
		snprintf(err, errlen,
			 "%s/private/cakey.pem: no unencrypted PEM private key (an encrypted CA "
			 "key cannot be used unattended)",
			 ca->dir);
		cs_log_ssl_errors(err, errlen);
		goto out;
	}
	{
		char *kp = cs_localca__path_join(ca->dir, "private/cakey.pem");
		struct stat sb;

		/* Not refused (the administrator's choice), but worth a word. */
		if (kp != NULL && stat(kp, &sb) == 0 && (sb.st_mode & 077) != 0)
			cs_warn("%s: the CA key is readable by others than its owner (mode %04o)",
				kp, (unsigned)(sb.st_mode & 07777));
		free(kp);
	}
	if (X509_check_private_key(ca->cacert, ca->cakey) != 1) {
		snprintf(err, errlen, "%s/private/cakey.pem does not match %s/cacert.pem", ca->dir,
			 ca->dir);
		ERR_clear_error();
		goto out;
	}
	rc = 0;
out:
	BIO_free(b);
	if (buf != NULL)
		OPENSSL_cleanse(buf, len);
	free(buf);
	return rc;
}

/* Loads DIR/crl.pem into ca->crl when there is one. Returns 0 or a negative code. */
static int load_crl(cs_localca *ca, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	BIO *b = NULL;
	int rc = cs_localca__read_file(ca->dir, "crl.pem", &buf, &len, err, errlen);

	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	if ((b = BIO_new_mem_buf(buf, (int)len)) == NULL ||
	    (ca->crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL)) == NULL) {
		/* A bad crl.pem is replaced by the next gencrl; it does not stop issuing. */
		cs_warn("%s/crl.pem: no PEM CRL; ignored until the next one is generated",
			ca->dir);
		ERR_clear_error();
	}
	BIO_free(b);
	free(buf);
	return 0;
}

/* mkdir that accepts an existing directory; applies mode to a new one. */
static int make_dir(const char *path, mode_t mode, char *err, size_t errlen)
{
	struct stat sb;

	int rc;

	/* chmod because mkdir's mode passes through the umask. */
	if (mkdir(path, mode) == 0 && chmod(path, mode) == 0)
		return 0;
	rc = -errno;
	if (rc == -EEXIST && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
		return 0;
	snprintf(err, errlen, "%s: cannot create directory: %s", path, strerror(-rc));
	return rc;
}

/* Creates a new CA in ca->dir (which is empty but for our lock and marker). */
static int create_ca(cs_localca *ca, const struct cs_localca_opts *o, char *err, size_t errlen)
{
	static const char attr[] = "unique_subject = no\n";
	X509_NAME *subj = NULL;
	char *pem = NULL, *sub = NULL;
	size_t len = 0;
	int rc = -EINVAL;

	if (o->subject == NULL || o->key == CS_KEY_NONE || o->ca_validity_s <= 0) {
		snprintf(err, errlen, "%s: to create a CA there, subject, key and ca_validity are needed",
			 ca->dir);
		goto out;
	}
	if ((subj = cs_localca_parse_subject(o->subject, err, errlen)) == NULL)
		goto out;
	if ((rc = cs_localca__write_file(ca->dir, CREATING_NAME, "", 0, 0600, err, errlen)) < 0)
		goto out;
	rc = -ENOMEM;
	if ((sub = cs_localca__path_join(ca->dir, "private")) == NULL)
		goto out;
	if ((rc = make_dir(sub, 0700, err, errlen)) < 0)
		goto out;
	free(sub);
	if ((sub = cs_localca__path_join(ca->dir, "newcerts")) == NULL)
		goto out;
	if ((rc = make_dir(sub, 0755, err, errlen)) < 0)
		goto out;
	if ((rc = cs_localca__write_file(ca->dir, "index.txt", "", 0, 0644, err, errlen)) < 0 ||
	    (rc = cs_localca__write_file(ca->dir, "index.txt.attr", attr, sizeof(attr) - 1, 0644, err,
			     errlen)) < 0 ||
	    (rc = cs_localca__write_file(ca->dir, "serial", "01\n", 3, 0644, err, errlen)) < 0 ||
	    (rc = cs_localca__write_file(ca->dir, "crlnumber", "01\n", 3, 0644, err, errlen)) < 0)
		goto out;
	rc = -EINVAL;
	if ((ca->cakey = cs_key_generate(o->key, err, errlen)) == NULL)
		goto out;
	if ((ca->cacert = make_cacert(ca->cakey, subj, o->ca_validity_s, err, errlen)) == NULL)
		goto out;
	rc = -ENOMEM;
	if (cs_localca__pem_of(cs_localca__w_key, ca->cakey, &pem, &len) < 0)
		goto out;
	/* Written with 0600 before its first byte; a leftover from a cut creation is replaced. */
	rc = cs_localca__write_file(ca->dir, "private/cakey.pem", pem, len, 0600, err, errlen);
	OPENSSL_cleanse(pem, len);
	free(pem);
	pem = NULL;
	if (rc < 0)
		goto out;
	rc = -ENOMEM;
	if (cs_localca__pem_of(cs_localca__w_x509, ca->cacert, &pem, &len) < 0)
		goto out;
	if ((rc = cs_localca__write_file(ca->dir, "cacert.pem", pem, len, 0644, err, errlen)) < 0)
		goto out;
	free(sub);
	if ((sub = cs_localca__path_join(ca->dir, CREATING_NAME)) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	unlink(sub);
	cs_notice("%s: created CA \"%s\" (%s key)", ca->dir, o->subject, cs_key_name(o->key));
	rc = 0;
out:
	if (rc == -ENOMEM && err[0] == '\0')
		snprintf(err, errlen, "%s: out of memory", ca->dir);
	free(pem);
	free(sub);
	X509_NAME_free(subj);
	return rc;
}

/*
 * Decides what ca->dir holds: 1 for a CA to adopt, 0 for nothing (create one
 * there), or a negative code with err set for something else.
 */
static int survey_dir(cs_localca *ca, char *err, size_t errlen)
{
	DIR *d = opendir(ca->dir);
	struct dirent *e;
	bool cacert = false, creating = false, other = false;
	char first_other[256] = "";

	if (d == NULL) {
		snprintf(err, errlen, "%s: cannot open directory: %s", ca->dir, strerror(errno));
		return -errno;
	}
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    strcmp(e->d_name, LOCK_NAME) == 0)
			continue;
		if (strcmp(e->d_name, "cacert.pem") == 0)
			cacert = true;
		else if (strcmp(e->d_name, CREATING_NAME) == 0)
			creating = true;
		else if (!other) {
			other = true;
			snprintf(first_other, sizeof(first_other), "%s", e->d_name);
		}
	}
	closedir(d);
	if (cacert && creating) {
		/* Cut short after cacert.pem was in place: the CA is complete. */
		char *p = cs_localca__path_join(ca->dir, CREATING_NAME);
		if (p != NULL)
			unlink(p);
		free(p);
	}
	if (cacert)
		return 1;
	if (creating || !other)
		return 0;
	snprintf(err, errlen,
		 "%s: holds no cacert.pem but is not empty (%s): refusing to create a CA over "
		 "it",
		 ca->dir, first_other);
	return -EEXIST;
}

static bool cs_localca__subjects_may_repeat(cs_localca *ca);

/*
 * Brings an adopted directory up to what issuing needs, creating only what
 * is missing or in the way: index.txt, index.txt.attr, newcerts/.
 */
static int complete_layout(cs_localca *ca, char *err, size_t errlen)
{
	static const char attr[] = "unique_subject = no\n";
	char *p = NULL;
	struct stat sb;
	int rc = -ENOMEM;

	if ((p = cs_localca__path_join(ca->dir, "newcerts")) == NULL)
		goto out;
	if ((rc = make_dir(p, 0755, err, errlen)) < 0)
		goto out;
	free(p);
	if ((p = cs_localca__path_join(ca->dir, "index.txt")) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if (stat(p, &sb) < 0 && (rc = cs_localca__write_file(ca->dir, "index.txt", "", 0, 0644, err, errlen)) < 0)
		goto out;
	free(p);
	if ((p = cs_localca__path_join(ca->dir, "index.txt.attr")) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	/*
	 * Renewal issues a certificate for a subject whose previous certificate is
	 * still valid, which `openssl ca` refuses under unique_subject = yes, its
	 * default without the file and what it writes there on its first run. So
	 * adopting a CA sets unique_subject = no, once, and says so; a yes set after
	 * that is honoured (see cs_localca_issue).
	 */
	if ((stat(p, &sb) < 0 || !cs_localca__subjects_may_repeat(ca))) {
		if ((rc = cs_localca__write_file(ca->dir, "index.txt.attr", attr, sizeof(attr) - 1, 0644, err,
				     errlen)) < 0)
			goto out;
		cs_notice("%s/index.txt.attr: set unique_subject = no, so that certificates can be "
			  "renewed before they expire",
			  ca->dir);
	}
	rc = 0;
out:
	free(p);
	return rc;
}

/*
 * Removes what a killed writer left in dir/sub: the atomic writer's temp
 * files, named ".NAME.XXXXXXXXXXXX" (12 hex digits) beside the file they were
 * to replace. Only names of our files are touched, and only under the lock,
 * when no writer of ours is at work.
 */
static void cs_localca__remove_stale_temps(cs_localca *ca, const char *sub)
{
	static const char *const ours[] = { "index.txt", "index.txt.attr", "serial", "crlnumber",
					    "crl.pem",   "cacert.pem",     "cakey.pem", CREATING_NAME };
	char *path = sub[0] != '\0' ? cs_localca__path_join(ca->dir, sub) : strdup(ca->dir);
	DIR *d = path != NULL ? opendir(path) : NULL;
	struct dirent *e;

	while (d != NULL && (e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name), base;
		bool match = false;

		if (e->d_name[0] != '.' || len < 15 || e->d_name[len - 13] != '.' ||
		    strspn(e->d_name + len - 12, "0123456789abcdef") != 12)
			continue;
		base = len - 14;
		for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
			if (strlen(ours[i]) == base && strncmp(e->d_name + 1, ours[i], base) == 0)
				match = true;
		/* newcerts/SERIAL.pem */
		if (base > 4 && strncmp(e->d_name + 1 + base - 4, ".pem", 4) == 0 &&
		    strspn(e->d_name + 1, "0123456789ABCDEF") == base - 4)
			match = true;
		if (match && unlinkat(dirfd(d), e->d_name, 0) == 0)
			cs_info("%s/%s: removed, left over by a writer that was stopped", path,
				e->d_name);
	}
	if (d != NULL)
		closedir(d);
	free(path);
}

/*
 * Opens the CA in o->dir. When there is none yet, creates it if may_create,
 * else returns NULL with *rcp = -EAGAIN and err untouched.
 */
static cs_localca *cs_localca__open_ca(const struct cs_localca_opts *o, bool may_create, int *rcp, char *err,
			   size_t errlen)
{
	cs_localca *ca = calloc(1, sizeof(*ca)), *ret = NULL;
	char *lockpath = NULL;
	bool locked = false;
	int rc;

	*rcp = -EINVAL;

	if (errlen > 0)
		err[0] = '\0';
	if (ca == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ca->lockfd = -1;
	pthread_mutex_init(&ca->mu, NULL);
	pthread_mutex_init(&ca->crl_mu, NULL);
	if ((ca->dir = strdup(o->dir)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	ca->validity_s = o->validity_s > 0 ? o->validity_s : 90 * 86400;
	if (!may_create && access(ca->dir, F_OK) < 0 && errno == ENOENT) {
		*rcp = -EAGAIN;
		goto out;
	}
	if (make_dir(ca->dir, 0755, err, errlen) < 0)
		goto out;
	if ((lockpath = cs_localca__path_join(ca->dir, LOCK_NAME)) == NULL)
		goto out;
	ca->lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (ca->lockfd < 0) {
		snprintf(err, errlen, "%s: cannot open: %s", lockpath, strerror(errno));
		goto out;
	}
	if (cs_localca__lock_ca(ca, err, errlen) < 0)
		goto out;
	locked = true;
	cs_localca__remove_stale_temps(ca, "");
	if (may_create)
		cs_localca__remove_stale_temps(ca, "newcerts");
	else
		ca->newcerts_unswept = true;
	cs_localca__remove_stale_temps(ca, "private");
	if ((rc = survey_dir(ca, err, errlen)) < 0)
		goto out;
	if (rc == 0 && !may_create) {
		*rcp = -EAGAIN;
		goto out;
	}
	if (rc == 0) {
		if (create_ca(ca, o, err, errlen) < 0)
			goto out;
	} else {
		if (load_ca(ca, err, errlen) < 0 || complete_layout(ca, err, errlen) < 0)
			goto out;
		if (cs_key_type_of(ca->cakey) == CS_KEY_NONE) {
			char kd[64];
			cs_warn("%s: CA key is %s, none of certsync's key types; used as it is",
				ca->dir, cs_x509_key_desc(ca->cakey, kd, sizeof(kd)));
		}
	}
	if (load_crl(ca, err, errlen) < 0)
		goto out;
	if (cs_csr_sign_md(ca->cakey) != NULL &&
	    (ca->md = EVP_MD_fetch(NULL, EVP_MD_get0_name(cs_csr_sign_md(ca->cakey)), NULL)) ==
		    NULL) {
		snprintf(err, errlen, "%s: cannot fetch the signing digest", ca->dir);
		cs_log_ssl_errors(err, errlen);
		goto out;
	}
	ret = ca;
	ca = NULL;
	*rcp = 0;
out:
	if (locked)
		cs_localca__unlock_ca(ret != NULL ? ret : ca);
	free(lockpath);
	cs_localca_close(ca);
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

/* ---- index.txt ---- */

/* One line of index.txt, split in place: status, expiry, revocation, serial, file, subject. */
struct index_line {
	char *f[6];
	const char *start; /* of the line in the unsplit buffer */
	size_t len;        /* of the line, newline included */
};

struct index {
	char *raw;   /* the file as read */
	char *split; /* a copy with fields cut by NULs */
	size_t rawlen;
	struct index_line *lines;
	size_t n;
};

static void cs_localca__index_free(struct index *ix)
{
	free(ix->raw);
	free(ix->split);
	free(ix->lines);
	memset(ix, 0, sizeof(*ix));
}

/* Reads and checks DIR/index.txt into ix. Returns 0 or a negative code with err set. */
static int cs_localca__index_read(cs_localca *ca, struct index *ix, char *err, size_t errlen)
{
	size_t cap = 0, lineno = 0;
	char *p, *line;
	int rc;

	memset(ix, 0, sizeof(*ix));
	rc = cs_localca__read_file(ca->dir, "index.txt", &ix->raw, &ix->rawlen, err, errlen);
	if (rc == -ENOENT) {
		snprintf(err, errlen, "%s/index.txt: no such file", ca->dir);
		return rc;
	}
	if (rc < 0)
		return rc;
	if ((ix->split = malloc(ix->rawlen + 1)) == NULL)
		goto nomem;
	memcpy(ix->split, ix->raw, ix->rawlen + 1);
	for (p = ix->split; *p != '\0'; p = line) {
		char *nl = strchr(p, '\n'), *q = p;
		struct index_line *l;

		lineno++;
		line = nl != NULL ? nl + 1 : p + strlen(p);
		if (nl != NULL)
			*nl = '\0';
		if (*p == '\0')
			continue;
		if (ix->n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct index_line *nl2 = realloc(ix->lines, ncap * sizeof(*nl2));
			if (nl2 == NULL)
				goto nomem;
			ix->lines = nl2;
			cap = ncap;
		}
		l = &ix->lines[ix->n];
		l->start = ix->raw + (p - ix->split);
		l->len = (size_t)(line - p);
		for (int i = 0; i < 6; i++) {
			char *tab = strchr(q, '\t');
			l->f[i] = q;
			if (i < 5) {
				if (tab == NULL) {
					snprintf(err, errlen,
						 "%s/index.txt line %zu: %d fields, not 6 "
						 "tab-separated ones",
						 ca->dir, lineno, i + 1);
					return -EINVAL;
				}
				*tab = '\0';
				q = tab + 1;
			}
		}
		if (strchr("VRE", l->f[0][0]) == NULL || l->f[0][1] != '\0' || l->f[3][0] == '\0') {
			snprintf(err, errlen,
				 "%s/index.txt line %zu: status \"%s\" is not V, R or E, or the "
				 "serial is empty",
				 ca->dir, lineno, l->f[0]);
			return -EINVAL;
		}
		ix->n++;
	}
	return 0;
nomem:
	snprintf(err, errlen, "%s/index.txt: out of memory", ca->dir);
	return -ENOMEM;
}

static struct index_line *cs_localca__index_find(struct index *ix, const char *serial_hex)
{
	for (size_t i = 0; i < ix->n; i++)
		if (strcasecmp(ix->lines[i].f[3], serial_hex) == 0)
			return &ix->lines[i];
	return NULL;
}

/* Reads index.txt.attr: true unless it says unique_subject = yes (or is absent). */
static bool cs_localca__subjects_may_repeat(cs_localca *ca)
{
	char *buf = NULL, *save = NULL, err[256];
	bool ret = false;

	if (cs_localca__read_file(ca->dir, "index.txt.attr", &buf, NULL, err, sizeof(err)) < 0)
		return false;
	for (char *l = strtok_r(buf, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
		char key[64], val[64];

		/* Read as openssl reads it: y, t, 1 and "on" mean yes. */
		if (sscanf(l, " %63[^= ] = %63s", key, val) == 2 &&
		    strcmp(key, "unique_subject") == 0)
			ret = !(strchr("yYtT1", val[0]) != NULL || strcasecmp(val, "on") == 0);
	}
	free(buf);
	return ret;
}

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

/* ---- what index.txt holds, kept between issuances ---- */

/*
 * A set of strings (serials, subjects of valid certificates), chained by
 * FNV-1a hash: each issuance looks a serial and a subject up in O(1)
 * instead of scanning every line of index.txt.
 */

static size_t sset_hash(const char *s)
{
	size_t h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)(*s >= 'a' && *s <= 'z' ? *s - 32 : *s)) * 16777619u;
	return h;
}

static void cs_localca__sset_clear(struct sset *ss)
{
	for (size_t i = 0; i < ss->size; i++)
		for (struct sset_ent *e = ss->t[i], *n; e != NULL; e = n) {
			n = e->next;
			free(e);
		}
	free(ss->t);
	memset(ss, 0, sizeof(*ss));
}

/* Serials compare without case, as index_find does; subjects exactly. */
static bool cs_localca__sset_has(const struct sset *ss, const char *s, bool nocase)
{
	if (ss->size == 0)
		return false;
	for (struct sset_ent *e = ss->t[sset_hash(s) & (ss->size - 1)]; e != NULL; e = e->next)
		if ((nocase ? strcasecmp(e->s, s) : strcmp(e->s, s)) == 0)
			return true;
	return false;
}

static int cs_localca__sset_add(struct sset *ss, const char *s)
{
	size_t len = strlen(s);
	struct sset_ent *e;

	if (ss->n + 1 > ss->size) {
		size_t ns = ss->size ? ss->size * 2 : 1024;
		struct sset_ent **t = calloc(ns, sizeof(*t));

		if (t == NULL)
			return -ENOMEM;
		for (size_t i = 0; i < ss->size; i++)
			for (struct sset_ent *c = ss->t[i], *n; c != NULL; c = n) {
				n = c->next;
				c->next = t[sset_hash(c->s) & (ns - 1)];
				t[sset_hash(c->s) & (ns - 1)] = c;
			}
		free(ss->t);
		ss->t = t;
		ss->size = ns;
	}
	if ((e = malloc(sizeof(*e) + len + 1)) == NULL)
		return -ENOMEM;
	memcpy(e->s, s, len + 1);
	e->next = ss->t[sset_hash(s) & (ss->size - 1)];
	ss->t[sset_hash(s) & (ss->size - 1)] = e;
	ss->n++;
	return 0;
}

static bool stat_same(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/*
 * Brings ca->ix (serials, valid subjects, whether the file ends in a
 * newline) up to date with DIR/index.txt: nothing to do when its stat is
 * the one this process left (the common case: only we append); else the
 * file is read again (`openssl ca` or a revocation rewrote it). A last line
 * cut short by a crash during an append (fewer than 6 fields, no newline)
 * is cut off: its certificate was never handed out. Called with the lock
 * held. Returns 0 or a negative code with err set.
 */
static int cs_localca__index_sync(cs_localca *ca, char *err, size_t errlen)
{
	struct index ix = { 0 };
	struct stat sb;
	char *p = NULL;
	int rc;

	if ((p = cs_localca__path_join(ca->dir, "index.txt")) == NULL)
		return -ENOMEM;
	if (ca->ix_valid && stat(p, &sb) == 0 && stat_same(&sb, &ca->ix_stat)) {
		free(p);
		return 0;
	}
	ca->ix_valid = false;
	cs_localca__sset_clear(&ca->ix_serials);
	cs_localca__sset_clear(&ca->ix_subjects);
	rc = cs_localca__read_file(ca->dir, "index.txt", &ix.raw, &ix.rawlen, err, errlen);
	if (rc == 0 && ix.rawlen > 0 && ix.raw[ix.rawlen - 1] != '\n') {
		char *last = memrchr(ix.raw, '\n', ix.rawlen);
		size_t keep = last != NULL ? (size_t)(last - ix.raw) + 1 : 0;
		int tabs = 0;

		for (size_t i = keep; i < ix.rawlen; i++)
			tabs += ix.raw[i] == '\t';
		if (tabs < 5) {
			cs_notice("%s/index.txt: dropping a last line cut short (%zu bytes)", ca->dir,
				  ix.rawlen - keep);
			if (truncate(p, (off_t)keep) < 0) {
				rc = -errno;
				snprintf(err, errlen, "%s: cannot truncate: %s", p, strerror(errno));
			}
		}
	}
	free(ix.raw);
	ix.raw = NULL;
	if (rc == 0)
		rc = cs_localca__index_read(ca, &ix, err, errlen);
	if (rc == 0 && stat(p, &sb) < 0)
		rc = -errno;
	for (size_t i = 0; rc == 0 && i < ix.n; i++) {
		if (cs_localca__sset_add(&ca->ix_serials, ix.lines[i].f[3]) < 0 ||
		    (ix.lines[i].f[0][0] == 'V' && cs_localca__sset_add(&ca->ix_subjects, ix.lines[i].f[5]) < 0)) {
			rc = -ENOMEM;
			snprintf(err, errlen, "%s/index.txt: out of memory", ca->dir);
		}
	}
	if (rc == 0) {
		ca->ix_stat = sb;
		ca->ix_nl = ix.rawlen == 0 || ix.raw[ix.rawlen - 1] == '\n';
		ca->ix_valid = true;
	}
	cs_localca__index_free(&ix);
	free(p);
	return rc;
}

/* Writes all of data to fd; returns 0 or -errno. */
static int cs_localca__write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, data, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		data += w;
		len -= (size_t)w;
	}
	return 0;
}

static int cs_localca__fsync_dir(const char *dir, const char *sub)
{
	char *p = sub != NULL ? cs_localca__path_join(dir, sub) : strdup(dir);
	int fd, rc = 0;

	if (p == NULL)
		return -ENOMEM;
	fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	free(p);
	return rc;
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

int cs_localca_issue_batch(cs_localca *ca, struct cs_localca_req *reqs, size_t n)
{
	struct pending *pd = calloc(n + 1, sizeof(*pd));
	char err[1024] = "", name[PATH_MAX], *subj = NULL, *pem = NULL, *buf = NULL, *nexthex = NULL;
	size_t pemlen, buflen = 0, issued = 0;
	const BIGNUM *last = NULL;
	bool may_repeat, locked = false;
	FILE *m = NULL;
	int rc = 0, fd = -1;

	for (size_t i = 0; i < n; i++) {
		struct cs_localca_req *r = &reqs[i];
		EVP_PKEY *pub = NULL;
		char kd[64];

		r->leaf = NULL;
		r->chain = NULL;
		r->status = 0;
		if (r->errlen > 0)
			r->err[0] = '\0';
		if (pd != NULL)
			pd[i].fd = -1;
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
	if (pd == NULL) {
		rc = -ENOMEM;
		snprintf(err, sizeof(err), "%s: out of memory", ca->dir);
		goto fail_all;
	}
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
	for (size_t i = 0; i < n; i++) {
		struct cs_localca_req *r = &reqs[i];
		struct pending *p = &pd[i];
		EVP_PKEY *pub;
		int e;

		if (r->status < 0)
			continue;
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
			if ((p->serial = cs_localca__random_serial()) == NULL || (p->hex = cs_localca__bn_hex(p->serial)) == NULL)
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
		if (p->fd < 0) {
			int oe = p->hex == NULL ? ENOMEM : errno;

			if (oe == ENOMEM)
				snprintf(err, sizeof(err), "%s: out of memory", ca->dir);
			else if (oe == EEXIST)
				snprintf(err, sizeof(err), "%s: cannot find an unused serial", ca->dir);
			else
				snprintf(err, sizeof(err), "%s/newcerts/%s.pem: cannot create: %s",
					 ca->dir, p->hex, strerror(oe));
			req_fail(r, -oe, err);
			continue;
		}
		pub = X509_REQ_get_pubkey(r->csr);
		r->leaf = make_leaf(ca, r->csr, pub, p->serial, r->names, r->n, r->usage, r->err,
				    r->errlen);
		EVP_PKEY_free(pub);
		if (r->leaf == NULL) {
			r->status = -EINVAL;
			drop_newcert(ca, p);
			continue;
		}
		OPENSSL_free(subj);
		if ((subj = X509_NAME_oneline(X509_get_subject_name(r->leaf), NULL, 0)) == NULL ||
		    cs_localca__pem_of(cs_localca__w_x509, r->leaf, &pem, &pemlen) < 0) {
			snprintf(err, sizeof(err), "%s: cannot issue for %s: out of memory", ca->dir,
				 r->names[0]);
			req_fail(r, -ENOMEM, err);
			drop_newcert(ca, p);
			continue;
		}
		if (!may_repeat && cs_localca__sset_has(&ca->ix_subjects, subj, false)) {
			snprintf(err, sizeof(err),
				 "%s/index.txt.attr asks for unique subjects and %s is still valid: "
				 "revoke it or set unique_subject = no",
				 ca->dir, subj);
			req_fail(r, -EEXIST, err);
			drop_newcert(ca, p);
			free(pem);
			pem = NULL;
			continue;
		}
		e = cs_localca__write_all(p->fd, pem, pemlen);
		free(pem);
		pem = NULL;
		if (e < 0) {
			snprintf(err, sizeof(err), "%s/newcerts/%s.pem: cannot write: %s", ca->dir,
				 p->hex, strerror(-e));
			drop_newcert(ca, p);
			req_fail(r, e, err);
			continue;
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
	}
	/*
	 * The group's certificates are durable before index.txt names them: a
	 * crash leaves at worst certificate files that no line names.
	 */
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
	if ((m = open_memstream(&buf, &buflen)) == NULL) {
		rc = -ENOMEM;
		snprintf(err, sizeof(err), "%s: out of memory", ca->dir);
		goto fail_all;
	}
	if (!ca->ix_nl)
		fputc('\n', m);
	for (size_t i = 0; i < n; i++)
		if (reqs[i].status == 0 && pd[i].line != NULL) {
			fputs(pd[i].line, m);
			last = pd[i].serial;
			issued++;
		}
	fclose(m);
	m = NULL;
	if (issued == 0)
		goto out;
	if ((rc = cs_localca__fsync_dir(ca->dir, "newcerts")) < 0) {
		snprintf(err, sizeof(err), "%s/newcerts: cannot sync: %s", ca->dir, strerror(-rc));
		goto fail_all;
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
		snprintf(err, sizeof(err), "%s/index.txt: cannot append: %s", ca->dir,
			 strerror(-rc));
		goto fail_all;
	}
	ca->ix_valid = true;
	ca->ix_nl = true;
	/* As `openssl ca` leaves it: the serial after the last one issued. */
	{
		BIGNUM *next = BN_dup(last);
		char *line = NULL;
		int linelen = -1;

		if (next != NULL && BN_add_word(next, 1) && (nexthex = cs_localca__bn_hex(next)) != NULL)
			linelen = asprintf(&line, "%s\n", nexthex);
		BN_free(next);
		if (linelen < 0) {
			rc = -ENOMEM;
			snprintf(err, sizeof(err), "%s: out of memory", ca->dir);
			goto fail_all;
		}
		rc = cs_localca__write_file(ca->dir, "serial", line, (size_t)linelen, 0644, err, sizeof(err));
		free(line);
		if (rc < 0)
			goto fail_all;
	}
	atomic_fetch_add(&ca->commits, 1);
	for (size_t i = 0; i < n; i++) {
		struct cs_localca_req *r = &reqs[i];

		if (r->status < 0)
			continue;
		if ((r->chain = sk_X509_new_null()) == NULL || !X509_up_ref(ca->cacert) ||
		    !sk_X509_push(r->chain, ca->cacert)) {
			sk_X509_pop_free(r->chain, X509_free);
			r->chain = NULL;
			req_fail(r, -ENOMEM, "out of memory");
			continue;
		}
		OPENSSL_free(subj);
		subj = X509_NAME_oneline(X509_get_subject_name(r->leaf), NULL, 0);
		cs_info("%s: issued serial %s to %s", ca->dir, pd[i].hex, subj ? subj : "?");
	}
	goto out;
fail_all:
	for (size_t i = 0; i < n; i++)
		req_fail(&reqs[i], rc < 0 ? rc : -EIO, err);
out:
	if (m != NULL)
		fclose(m);
	if (fd >= 0)
		close(fd);
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
	free(buf);
	free(pem);
	OPENSSL_free(subj);
	OPENSSL_free(nexthex);
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

/* ---- revocation and CRLs ---- */

/* Returns the index of reason in crl_reasons (case-insensitive), or -1. */
static int reason_code(const char *reason)
{
	for (size_t i = 0; i < N_REASONS; i++)
		if (crl_reasons[i] != NULL && strcasecmp(reason, crl_reasons[i]) == 0)
			return (int)i;
	return -1;
}

int cs_localca_revoke(cs_localca *ca, const char *serial_hex, const char *reason, char *err,
		      size_t errlen)
{
	struct index ix = { 0 };
	struct index_line *l;
	ASN1_TIME *now = NULL;
	char *newindex = NULL, *rline = NULL;
	bool locked = false;
	int rc = -EINVAL, code = -1, rlen;
	size_t nlen, before;

	if (errlen > 0)
		err[0] = '\0';
	if (reason != NULL && ((code = reason_code(reason)) < 0 || code == 8)) {
		snprintf(err, errlen,
			 "unknown revocation reason \"%s\" (unspecified, keyCompromise, "
			 "CACompromise, affiliationChanged, superseded, cessationOfOperation, "
			 "certificateHold)",
			 reason);
		goto out;
	}
	if ((rc = cs_localca__lock_ca(ca, err, errlen)) < 0)
		goto out;
	locked = true;
	if ((rc = cs_localca__index_read(ca, &ix, err, errlen)) < 0)
		goto out;
	/* "0A" and "a" name the same serial; index.txt spells it the openssl way. */
	l = NULL;
	{
		BIGNUM *bn = NULL;
		char *canon = NULL;

		if (BN_hex2bn(&bn, serial_hex) == (int)strlen(serial_hex) && strlen(serial_hex) > 0)
			canon = cs_localca__bn_hex(bn);
		BN_free(bn);
		if (canon == NULL) {
			rc = -EINVAL;
			snprintf(err, errlen, "\"%s\" is not a hexadecimal serial", serial_hex);
			ERR_clear_error();
			goto out;
		}
		l = cs_localca__index_find(&ix, canon);
		OPENSSL_free(canon);
	}
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
			code >= 0 ? "," : "", code >= 0 ? crl_reasons[code] : "", l->f[3], l->f[4],
			l->f[5]);
	if (rlen < 0) {
		rline = NULL;
		goto out;
	}
	if ((newindex = malloc(ix.rawlen + (size_t)rlen + 1)) == NULL)
		goto out;
	before = (size_t)(l->start - ix.raw);
	memcpy(newindex, ix.raw, before);
	memcpy(newindex + before, rline, (size_t)rlen);
	nlen = before + (size_t)rlen;
	/* l->len counts the line's newline; rline brings its own. */
	memcpy(newindex + nlen, ix.raw + before + l->len, ix.rawlen - before - l->len);
	nlen += ix.rawlen - before - l->len;
	if ((rc = cs_localca__write_file(ca->dir, "index.txt", newindex, nlen, 0644, err, errlen)) < 0)
		goto out;
	cs_notice("%s: revoked serial %s (%s)", ca->dir, l->f[3],
		  code >= 0 ? crl_reasons[code] : "no reason given");
	rc = 0;
out:
	if (rc == -ENOMEM && err[0] == '\0')
		snprintf(err, errlen, "%s: out of memory", ca->dir);
	if (locked)
		cs_localca__unlock_ca(ca);
	cs_localca__index_free(&ix);
	ASN1_TIME_free(now);
	free(rline);
	free(newindex);
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
			code = reason_code(w);
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

int cs_localca_gencrl(cs_localca *ca, int64_t next_update_s, X509_CRL **out, char *err,
		      size_t errlen)
{
	struct index ix = { 0 };
	X509_CRL *crl = NULL;
	ASN1_TIME *t = NULL;
	ASN1_INTEGER *num = NULL;
	BIGNUM *bn = NULL;
	char *numbuf = NULL, *pem = NULL, *next = NULL, *line = NULL;
	X509V3_CTX ctx;
	X509_EXTENSION *aki = NULL;
	size_t pemlen = 0;
	bool locked = false;
	time_t now = time(NULL);
	int rc, linelen;

	if (errlen > 0)
		err[0] = '\0';
	if (out != NULL)
		*out = NULL;
	if ((rc = cs_localca__lock_ca(ca, err, errlen)) < 0)
		goto out;
	locked = true;
	if ((rc = cs_localca__index_read(ca, &ix, err, errlen)) < 0)
		goto out;
	rc = cs_localca__read_file(ca->dir, "crlnumber", &numbuf, NULL, err, errlen);
	if (rc < 0 && rc != -ENOENT)
		goto out;
	if (numbuf != NULL) {
		numbuf[strcspn(numbuf, " \t\r\n")] = '\0';
		if (BN_hex2bn(&bn, numbuf) != (int)strlen(numbuf) || numbuf[0] == '\0') {
			rc = -EINVAL;
			snprintf(err, errlen, "%s/crlnumber: \"%s\" is not a hexadecimal number",
				 ca->dir, numbuf);
			ERR_clear_error();
			goto out;
		}
	}
	rc = -ENOMEM;
	if ((crl = X509_CRL_new()) == NULL || !X509_CRL_set_version(crl, 1) ||
	    !X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca->cacert)) ||
	    (t = ASN1_TIME_adj(NULL, now, 0, 0)) == NULL || !X509_CRL_set1_lastUpdate(crl, t) ||
	    ASN1_TIME_adj(t, now, (int)(next_update_s / 86400), (long)(next_update_s % 86400)) ==
		    NULL ||
	    !X509_CRL_set1_nextUpdate(crl, t))
		goto ssl_fail;
	rc = -EINVAL;
	for (size_t i = 0; i < ix.n; i++)
		if (ix.lines[i].f[0][0] == 'R' && !crl_add(ca, crl, &ix.lines[i], err, errlen))
			goto out;
	rc = -ENOMEM;
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
	if (cs_localca__pem_of(cs_localca__w_crl, crl, &pem, &pemlen) < 0)
		goto ssl_fail;
	if ((rc = cs_localca__write_file(ca->dir, "crl.pem", pem, pemlen, 0644, err, errlen)) < 0)
		goto out;
	if (bn != NULL) {
		rc = -ENOMEM;
		if (!BN_add_word(bn, 1) || (next = cs_localca__bn_hex(bn)) == NULL)
			goto ssl_fail;
		if ((linelen = asprintf(&line, "%s\n", next)) < 0) {
			line = NULL;
			goto ssl_fail;
		}
		if ((rc = cs_localca__write_file(ca->dir, "crlnumber", line, (size_t)linelen, 0644, err,
				     errlen)) < 0)
			goto out;
	}
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
	goto out;
ssl_fail:
	snprintf(err, errlen, "%s: cannot build the CRL", ca->dir);
	cs_log_ssl_errors(err, errlen);
out:
	if (locked)
		cs_localca__unlock_ca(ca);
	cs_localca__index_free(&ix);
	X509_CRL_free(crl);
	ASN1_TIME_free(t);
	ASN1_INTEGER_free(num);
	X509_EXTENSION_free(aki);
	BN_free(bn);
	free(numbuf);
	free(pem);
	OPENSSL_free(next);
	free(line);
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

const char *cs_localca_reason_name(int code)
{
	return code >= 0 && (size_t)code < N_REASONS ? crl_reasons[code] : NULL;
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

