/*
 * cs_acme_host_local - what the acme issuer does that needs privileges: the
 * account key loaded or made (work queue), the webroot's token files written
 * and removed (work queue), dns_hook run with its environment.
 *
 * (A first step: these functions are the client's, moved here unchanged; the
 * next step puts them behind cs_acme_host.h.)
 */
#include "cs_acme_host.h"
#include "cs_acme_int.h"

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

/* ---- the account key --------------------------------------------------- */

static int write_key(EVP_PKEY *key, const char *path, char *err, size_t errlen);

void cs_acme__work_key(struct job *j)
{
	struct cs_acme *a = j->a;
	FILE *f;
	struct stat sb;

	if (mkdir(a->acct_dir, 0700) < 0 && errno != EEXIST) {
		/* STATE_DIR/acme first, then STATE_DIR/acme/NAME. */
		char *parent = strdup(a->acct_dir), *slash;
		if (parent != NULL && (slash = strrchr(parent, '/')) != NULL) {
			*slash = '\0';
			mkdir(parent, 0700);
		}
		free(parent);
		if (mkdir(a->acct_dir, 0700) < 0 && errno != EEXIST) {
			j->work_rc = -errno;
			snprintf(j->work_err, sizeof(j->work_err), "%s: cannot create: %s",
				 a->acct_dir, strerror(errno));
			return;
		}
	}
	f = fopen(a->key_path, "re");
	if (f != NULL) {
		if (fstat(fileno(f), &sb) == 0 && (sb.st_mode & 077) != 0)
			cs_warn("acme %s: %s is readable by others (mode %o)", a->base.name,
				a->key_path, (unsigned)(sb.st_mode & 0777));
		j->work_key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
		if (j->work_key == NULL || cs_acme_jws_alg(j->work_key) == NULL) {
			j->work_rc = -EINVAL;
			snprintf(j->work_err, sizeof(j->work_err),
				 "%s: not a P-256, P-384 or RSA private key in PEM", a->key_path);
			cs_log_ssl_errors(j->work_err, sizeof(j->work_err));
			return;
		}
		j->work_key_existed = true;
		return;
	}
	if (errno != ENOENT) {
		j->work_rc = -errno;
		snprintf(j->work_err, sizeof(j->work_err), "%s: cannot open: %s", a->key_path,
			 strerror(errno));
		return;
	}
	j->work_key = cs_key_generate(a->account_keytype, j->work_err, sizeof(j->work_err));
	if (j->work_key == NULL) {
		j->work_rc = -EINVAL;
		return;
	}
	j->work_rc = write_key(j->work_key, a->key_path, j->work_err, sizeof(j->work_err));
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

/* ---- webroot token files ------------------------------------------------ */

void cs_acme__work_token_file(struct job *j)
{
	struct cs_acme *a = j->a;
	struct chall *c = j->work_ch;
	char *d1 = NULL, *d2 = NULL;
	struct cs_atomic_opts ao = {
		.mode = 0644, .uid = (uid_t)-1, .gid = (gid_t)-1, .flags = CS_ATOMIC_NO_FSYNC
	};

	if (asprintf(&d1, "%s/.well-known", a->webroot) < 0 ||
	    asprintf(&d2, "%s/.well-known/acme-challenge", a->webroot) < 0) {
		j->work_rc = -ENOMEM;
		goto out;
	}
	if ((mkdir(d1, 0755) < 0 && errno != EEXIST) || (mkdir(d2, 0755) < 0 && errno != EEXIST)) {
		j->work_rc = -errno;
		snprintf(j->work_err, sizeof(j->work_err), "%s: cannot create: %s", d2,
			 strerror(errno));
		goto out;
	}
	/* Token files are public and short-lived: no fsync, but still never half-written. */
	j->work_rc = cs_atomic_write(c->file, c->keyauth, strlen(c->keyauth), &ao, j->work_err,
				     sizeof(j->work_err));
out:
	free(d1);
	free(d2);
}

void cs_acme__work_unlink(struct job *j)
{
	if (unlink(j->work_ch->file) < 0 && errno != ENOENT)
		snprintf(j->work_err, sizeof(j->work_err), "%s: cannot remove: %s",
			 j->work_ch->file, strerror(errno));
}

/* ---- dns_hook ------------------------------------------------------------ */

static void on_hook_done(void *arg, int64_t status)
{
	struct job *j = arg;

	j->hook_next(j, status);
}

/* Runs dns_hook VERB NAME VALUE; next gets its exit status (-errno when it did not start). */
void cs_acme__run_hook(struct job *j, const char *verb, struct chall *c,
		       void (*next)(struct job *, int64_t))
{
	struct cs_acme *a = j->a;
	unsigned char md[SHA256_DIGEST_LENGTH];
	char *value, *name = NULL, **env = NULL;
	int rc = UV_ENOMEM;

	SHA256((const unsigned char *)c->keyauth, strlen(c->keyauth), md);
	value = cs_b64url_encode(md, sizeof(md));
	if (value == NULL || asprintf(&name, "_acme-challenge.%s", c->ident) < 0) {
		name = NULL;
		goto fail;
	}
	const char *vars[][2] = {
		{ "METHOD", verb },	 { "RECORD", name },
		{ "VALUE", value },	 { "IDENTIFIER", c->ident },
		{ "CERT", j->cert_name ? j->cert_name : "" }, { "ISSUER", a->base.name },
	};
	env = cs_acme_hook_env(vars, sizeof(vars) / sizeof(vars[0]));
	if (env == NULL)
		goto fail;
	char *const args[] = { a->dns_hook, (char *)verb, name, value, NULL };
	j->hook_next = next;
	rc = cs_acme_hook_run(a->base.loop, args, env, HOOK_TIMEOUT_MS, on_hook_done, j);
	if (rc < 0)
		goto fail;
	cs_info("acme %s: %s: dns_hook %s %s", a->base.name, cs_acme__job_label(j), verb, name);
	cs_acme_hook_env_free(env);
	free(value);
	free(name);
	return;
fail:
	cs_acme_hook_env_free(env);
	free(value);
	free(name);
	cs_err("acme %s: dns_hook %s cannot run: %s", a->base.name, a->dns_hook, uv_strerror(rc));
	next(j, rc);
}
