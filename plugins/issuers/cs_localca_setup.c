/*
 * cs_localca_setup - opening a CA directory, creating it when allowed.
 *
 * Creating a CA writes DIR/.certsync-creating first and removes it last: a
 * directory holding that marker and no cacert.pem is a creation that was cut
 * short, and is created again. An existing directory is surveyed, the files
 * `openssl ca` expects and certsync does not need are completed, and the
 * temporary files a killed writer left are removed; the CA key and
 * certificate (and the latest CRL) are then loaded.
 */
#include "cs_localca_int.h"

/* ---- certificate building ---- */

/* Adds extension nid with value (openssl.cnf syntax) in context ctx. */
int cs_localca__add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
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
BIGNUM *cs_localca__random_serial(void)
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
int cs_localca__set_validity(X509 *x, time_t now, int64_t secs)
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
void cs_localca__remove_stale_temps(cs_localca *ca, const char *sub)
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
cs_localca *cs_localca__open_ca(const struct cs_localca_opts *o, bool may_create, int *rcp, char *err,
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
