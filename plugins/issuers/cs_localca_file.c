/*
 * cs_localca_file - the file helpers of the local CA: reading a whole file
 * with a bound, writing one through the atomic writer, PEM encodings, and
 * taking and releasing the CA's lock (the mutex, then an flock of
 * DIR/.certsync.lock), which every change to the directory holds.
 */
#include "cs_localca_int.h"

/* ---- small file helpers ---- */

char *cs_localca__path_join(const char *dir, const char *name)
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
int cs_localca__read_file(const char *dir, const char *name, char **buf, size_t *len, char *err,
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
int cs_localca__write_file(const char *dir, const char *name, const void *data, size_t len,
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
int cs_localca__pem_of(int (*w)(BIO *, void *), void *x, char **out, size_t *len)
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

int cs_localca__w_x509(BIO *b, void *x)
{
	return PEM_write_bio_X509(b, x);
}

int cs_localca__w_crl(BIO *b, void *x)
{
	return PEM_write_bio_X509_CRL(b, x);
}

int cs_localca__w_key(BIO *b, void *x)
{
	return PEM_write_bio_PrivateKey(b, x, NULL, NULL, 0, NULL, NULL);
}

/* Hex of a positive integer as `openssl ca` writes it: uppercase, even length, "00" for 0. */
char *cs_localca__bn_hex(const BIGNUM *bn)
{
	char *h;

	if (BN_is_zero(bn))
		return OPENSSL_strdup("00");
	h = BN_bn2hex(bn);
	return h;
}

/* ---- locking ---- */

int cs_localca__lock_ca(cs_localca *ca, char *err, size_t errlen)
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

void cs_localca__unlock_ca(cs_localca *ca)
{
	flock(ca->lockfd, LOCK_UN);
	pthread_mutex_unlock(&ca->mu);
}

/* Writes all of data to fd; returns 0 or -errno. */
int cs_localca__write_all(int fd, const char *data, size_t len)
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

int cs_localca__fsync_dir(const char *dir, const char *sub)
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
