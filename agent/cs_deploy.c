/*
 * cs_deploy - validate, keep a generation, write the outputs, roll back on a
 * failed write. See cs_deploy.h.
 */
#include "cs_deploy.h"
#include "cs_registry.h"
#include "cs_validate.h"
#include "cs_atomic.h"
#include "cs_chain.h"
#include "cs_examine.h"
#include "cs_fp.h"
#include "cs_ingest.h"
#include "cs_livedir.h"
#include "cs_sni.h"
#include "cs_state.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void cs_deploy_outputs_of(const struct cs_cfg_cert *c, struct cs_deploy_outputs *out)
{
	/*
	 * The bundle first: it is self-contained. The key file last, so that a
	 * crash in between leaves the old key with the old certificate where
	 * that is possible, and the generation file repairs the rest.
	 */
	const struct {
		const char *path;
		enum cs_output_kind kind;
	} all[] = {
		{ c->bundle, CS_OUT_BUNDLE }, { c->fullchain, CS_OUT_FULLCHAIN },
		{ c->cert, CS_OUT_CERT },     { c->chain, CS_OUT_CHAIN },
		{ c->keyfile, CS_OUT_KEY },
	};

	out->n = 0;
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (all[i].path == NULL)
			continue;
		out->path[out->n] = all[i].path;
		out->kind[out->n] = all[i].kind;
		out->n++;
	}
	out->n_fixed = out->n;
	if (c->live_dir == NULL || c->live_path[0] == NULL)
		return;
	for (size_t k = 0; k < CS_CFG_LIVE_FILES; k++) {
		out->path[out->n] = c->live_path[k];
		out->kind[out->n] = (enum cs_output_kind)k;
		out->n++;
	}
}

/* Digest of the file at path; returns 0, or -errno when it cannot be read. */
static int digest_file(const char *path, unsigned char out[32])
{
	EVP_MD_CTX *ctx;
	unsigned char buf[8192];
	unsigned int n = 32;
	ssize_t got;
	int fd, rc = 0;

	/* An output is a regular file (or a link to one); a FIFO never blocks this. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		rc = -ENOMEM;
		goto out;
	}
	while ((got = read(fd, buf, sizeof(buf))) != 0) {
		if (got < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			goto out;
		}
		EVP_DigestUpdate(ctx, buf, (size_t)got);
	}
	if (EVP_DigestFinal_ex(ctx, out, &n) != 1)
		rc = -EIO;
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	EVP_MD_CTX_free(ctx);
	close(fd);
	return rc;
}

void cs_deploy_digest_files(const struct cs_cfg_cert *c, struct cs_deploy_digests *out)
{
	struct cs_deploy_outputs o;

	memset(out, 0, sizeof(*out));
	cs_deploy_outputs_of(c, &o);
	for (size_t i = 0; i < o.n; i++)
		out->present[i] = digest_file(o.path[i], out->sha256[i]) == 0;
	out->valid = true;
}

/* Feeds path and its stat (or its absence) to ctx. */
static void fp_stat(EVP_MD_CTX *ctx, const char *path)
{
	struct stat st;
	char buf[256];
	int n;

	if (path == NULL)
		return;
	EVP_DigestUpdate(ctx, path, strlen(path) + 1);
	if (stat(path, &st) < 0)
		n = snprintf(buf, sizeof(buf), "-%d", errno);
	else
		n = snprintf(buf, sizeof(buf), "%ju:%ju:%jd:%jd.%09ld:%jd.%09ld:%o",
			     (uintmax_t)st.st_dev, (uintmax_t)st.st_ino, (intmax_t)st.st_size,
			     (intmax_t)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
			     (intmax_t)st.st_ctim.tv_sec, st.st_ctim.tv_nsec, (unsigned)st.st_mode);
	EVP_DigestUpdate(ctx, buf, (size_t)n + 1);
}

static void fp_str(EVP_MD_CTX *ctx, const char *s)
{
	EVP_DigestUpdate(ctx, s != NULL ? s : "", s != NULL ? strlen(s) + 1 : 1);
}

void cs_deploy_fingerprint(const struct cs_cfg_cert *c, const struct cs_deploy_digests *d,
			   char out[65])
{
	static const char hex[] = "0123456789abcdef";
	const struct cs_cfg_issuer *is = c->iss;
	struct cs_deploy_outputs o;
	unsigned char md[32];
	unsigned int n = 32;
	char buf[160];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	out[0] = '\0';
	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		return;
	}
	/* Bump the tag when the examination itself judges differently. */
	fp_str(ctx, "certsync examine 1");
	cs_deploy_outputs_of(c, &o);
	for (size_t i = 0; i < o.n; i++) {
		fp_str(ctx, o.path[i]);
		snprintf(buf, sizeof(buf), "%d:%d", (int)o.kind[i], d->present[i]);
		fp_str(ctx, buf);
		if (d->present[i])
			EVP_DigestUpdate(ctx, d->sha256[i], 32);
	}
	for (size_t i = 0; i < c->names.n; i++)
		fp_str(ctx, c->names.v[i]);
	snprintf(buf, sizeof(buf), "names %zu key %d usage %d foreign %d", c->names.n,
		 (int)c->key, (int)c->usage, c->allow_foreign);
	fp_str(ctx, buf);
	fp_str(ctx, c->issuer);
	/* Every issuer of the list: the chain may end in the trust of any. */
	for (size_t k = 0; is != NULL; is = ++k < c->n_iss ? c->iss_all[k] : NULL) {
		/* What the examination trusts: a changed file there may change its verdict. */
		struct cs_validate_opts vo = { .trust = CS_TRUST_NONE };
		char ca[PATH_MAX];
		if (k > 0)
			fp_str(ctx, is->name);
		fp_str(ctx, is->type);
		fp_str(ctx, cs_registry_issuer_ca_dir(is));
		cs_registry_issuer_trust(is, &vo, ca, sizeof(ca));
		fp_stat(ctx, vo.cafile);
		fp_stat(ctx, vo.cafile2);
		fp_stat(ctx, vo.capath);
		fp_stat(ctx, is->trust);
		if (vo.system_store) {
			fp_stat(ctx, X509_get_default_cert_file());
			fp_stat(ctx, X509_get_default_cert_dir());
		}
	}
	if (EVP_DigestFinal_ex(ctx, md, &n) == 1) {
		for (unsigned i = 0; i < 32; i++) {
			out[2 * i] = hex[md[i] >> 4];
			out[2 * i + 1] = hex[md[i] & 15];
		}
		out[64] = '\0';
	}
	EVP_MD_CTX_free(ctx);
}

bool cs_deploy_digests_equal(const struct cs_deploy_digests *a, const struct cs_deploy_digests *b)
{
	if (!a->valid || !b->valid)
		return false;
	for (size_t i = 0; i < CS_DEPLOY_MAX_OUTPUTS; i++) {
		if (a->present[i] != b->present[i])
			return false;
		if (a->present[i] && memcmp(a->sha256[i], b->sha256[i], 32) != 0)
			return false;
	}
	return true;
}

int cs_deploy_gen_path(const char *state_dir, const char *name, int gen, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/generations/%s/%d.pem", state_dir, name, gen);

	return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}

int cs_deploy_save_gen(const char *state_dir, const char *name, int gen, const cs_material *m,
		       char *err, size_t errlen)
{
	struct cs_atomic_opts o = { .mode = 0600, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	char path[PATH_MAX], dir[PATH_MAX];
	int rc;

	if (cs_deploy_gen_path(state_dir, name, gen, path, sizeof(path)) < 0) {
		snprintf(err, errlen, "%s/generations/%s: path too long", state_dir, name);
		return -ENAMETOOLONG;
	}
	snprintf(dir, sizeof(dir), "%s/generations/%s", state_dir, name);
	if ((rc = cs_state_mkdirs(dir, 0700, err, errlen)) < 0)
		return rc;
	rc = cs_output_write(m, CS_OUT_BUNDLE, path, &o, err, errlen);
	if (rc < 0)
		return rc;
	return 0;
}

void cs_deploy_live_id(const char *sha256, char out[17])
{
	size_t n = 0;

	for (const char *p = sha256; p != NULL && *p != '\0' && n < 16; p++) {
		if (*p == ':')
			continue;
		if (!isxdigit((unsigned char)*p)) {
			n = 0;
			break;
		}
		out[n++] = (char)tolower((unsigned char)*p);
	}
	out[n == 16 ? 16 : 0] = '\0';
}

int cs_deploy_prune_live(const struct cs_cfg_cert *c, const char *const *sha256, size_t n,
			 char *err, size_t errlen)
{
	char ids[CS_STATE_GENERATIONS + 1][17];
	const char *keep[CS_STATE_GENERATIONS + 1];
	size_t k = 0;

	if (c->live_dir == NULL)
		return 0;
	for (size_t i = 0; i < n && k < CS_STATE_GENERATIONS + 1; i++) {
		cs_deploy_live_id(sha256[i], ids[k]);
		if (ids[k][0] != '\0') {
			keep[k] = ids[k];
			k++;
		}
	}
	return cs_livedir_prune(c->live_dir, c->name, keep, k, err, errlen);
}

int cs_deploy_prune_gens(const char *state_dir, const char *name, const int *keep, size_t n_keep,
			 int keep_from, char *err, size_t errlen)
{
	char dir[PATH_MAX];
	struct dirent *de;
	int removed = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/generations/%s", state_dir, name);
	if ((d = opendir(dir)) == NULL) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -errno;
	}
	while ((de = readdir(d)) != NULL) {
		char *end;
		long n = strtol(de->d_name, &end, 10);
		bool wanted = false;
		/* Only what cs_deploy_save_gen names: N.pem with N > 0. */
		if (n <= 0 || n > INT_MAX || end == de->d_name || strcmp(end, ".pem") != 0)
			continue;
		wanted = n >= keep_from;
		for (size_t i = 0; i < n_keep && !wanted; i++)
			wanted = keep[i] == (int)n;
		if (wanted)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0)
			removed++;
		else if (errno != ENOENT)
			snprintf(err, errlen, "%s/%s: %s", dir, de->d_name, strerror(errno));
	}
	closedir(d);
	return removed;
}

int cs_deploy_load_gen(const char *state_dir, const char *name, int gen, cs_material **out,
		       char *err, size_t errlen)
{
	char path[PATH_MAX];
	cs_material *m;
	int rc;

	*out = NULL;
	if (cs_deploy_gen_path(state_dir, name, gen, path, sizeof(path)) < 0) {
		snprintf(err, errlen, "%s/generations/%s: path too long", state_dir, name);
		return -ENAMETOOLONG;
	}
	if (access(path, F_OK) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	m = cs_material_new();
	if (m == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rc = cs_ingest_file(m, path, NULL, err, errlen);
	if (rc == 0 && cs_chain_normalise(m, NULL, 0) < 0) {
		snprintf(err, errlen, "%s: cannot order the chain", path);
		rc = -EBADMSG;
	}
	if (rc < 0) {
		cs_material_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

/* Writes kind k of m to path with c's modes; the digest of the bytes goes to sha. */
static int write_output(const struct cs_cfg_cert *c, const cs_material *m,
			enum cs_output_kind k, const char *path, unsigned char sha[32],
			char *err, size_t errlen)
{
	struct cs_atomic_opts o = {
		.mode = cs_output_has_key(k) ? c->mode : c->cert_mode,
		.uid = c->owner,
		.gid = c->group,
		/* An administrator may point an output at a file elsewhere. */
		.flags = CS_ATOMIC_FOLLOW_SYMLINK,
	};

	return cs_output_write_digest(m, k, path, &o, sha, err, errlen);
}

/*
 * Swaps c's live directory to m: the five files rendered, with c's modes and
 * owner, in the generation directory named after the leaf; their digests go
 * to sha (in the order of enum cs_output_kind).
 */
static int write_live(const struct cs_cfg_cert *c, const cs_material *m,
		      unsigned char sha[CS_CFG_LIVE_FILES][32], char *err, size_t errlen)
{
	struct cs_livedir_opts o = { .uid = c->owner, .gid = c->group };
	struct cs_livedir_file f[CS_CFG_LIVE_FILES];
	char *buf[CS_CFG_LIVE_FILES] = { NULL };
	size_t len[CS_CFG_LIVE_FILES] = { 0 };
	char fp[CS_FP_MAX], id[17], msg[512];
	int rc = 0;

	id[0] = '\0';
	if (m->leaf != NULL && cs_fp_cert(m->leaf, CS_DIGEST_SHA256, fp, sizeof(fp)) == 0)
		cs_deploy_live_id(fp, id);
	if (id[0] == '\0') {
		snprintf(err, errlen, "%s/%s: no certificate to name the generation by",
			 c->live_dir, c->name);
		return -EINVAL;
	}
	if ((rc = cs_output_check_mode(CS_OUT_KEY, c->mode, c->live_path[CS_OUT_KEY], err,
				       errlen)) < 0)
		return rc;
	for (size_t k = 0; k < CS_CFG_LIVE_FILES; k++) {
		enum cs_output_kind kind = (enum cs_output_kind)k;
		if ((rc = cs_output_render(m, kind, &buf[k], &len[k], msg, sizeof(msg))) < 0) {
			snprintf(err, errlen, "%s: %s", c->live_path[k], msg);
			goto out;
		}
		cs_output_sha256(buf[k], len[k], sha[k]);
		f[k] = (struct cs_livedir_file){ cs_cfg_live_files[k], buf[k], len[k],
						 cs_output_has_key(kind) ? c->mode : c->cert_mode };
	}
	rc = cs_livedir_swap(c->live_dir, c->name, id, f, CS_CFG_LIVE_FILES, &o, err, errlen);
out:
	for (size_t k = 0; k < CS_CFG_LIVE_FILES; k++)
		OPENSSL_clear_free(buf[k], len[k]);
	return rc;
}

int cs_deploy(const struct cs_cfg_cert *c, cs_material *m, const cs_material *prev,
	      const char *state_dir, int gen, time_t now, struct cs_deploy_digests *written,
	      char *err, size_t errlen)
{
	struct cs_examined ex;
	int rc;

	memset(&ex, 0, sizeof(ex));
	rc = cs_deploy_examined(c, m, prev, state_dir, gen, now, &ex, false, written, err,
				errlen);
	cs_examine_clear(&ex);
	return rc;
}

int cs_deploy_examined(const struct cs_cfg_cert *c, cs_material *m, const cs_material *prev,
		       const char *state_dir, int gen, time_t now, struct cs_examined *ex,
		       bool examined, struct cs_deploy_digests *written, char *err,
		       size_t errlen)
{
	struct cs_deploy_outputs o;
	struct cs_deploy_digests d;
	char report[1024] = "";
	int rc;

	/* An issuer's answer in another order is put right, when that can be told. */
	rc = cs_chain_order(m, report, sizeof(report));
	if (rc < 0) {
		report[strcspn(report, "\n")] = '\0';
		snprintf(err, errlen, "refusing to deploy: %s",
			 report[0] != '\0' ? report : "cannot order the chain");
		return rc == CS_CHAIN_AMBIGUOUS ? -EINVAL : rc;
	}
	/* The caller's examination holds unless the order had to change. */
	if (!examined || rc == 1)
		cs_examine_material(c, m, now, ex);
	/*
	 * New material (gen > 0) must verify to the issuer's trust; a stored
	 * generation written back may be one an administrator adopted.
	 */
	enum cs_verdict v = ex->verdict;
	if (v != CS_EX_OK && !(v == CS_EX_FOREIGN && gen == 0)) {
		snprintf(err, errlen, "refusing to deploy: %s", ex->reason);
		return -EINVAL;
	}
	if (gen > 0 && (rc = cs_deploy_save_gen(state_dir, c->name, gen, m, err, errlen)) < 0)
		return rc;
	memset(&d, 0, sizeof(d));
	cs_deploy_outputs_of(c, &o);
	/*
	 * The live directory first: one rename, so that a failure there leaves
	 * every output as it was.
	 */
	if (o.n > o.n_fixed) {
		unsigned char sha[CS_CFG_LIVE_FILES][32];
		if ((rc = write_live(c, m, sha, err, errlen)) < 0)
			return rc;
		for (size_t i = o.n_fixed; i < o.n; i++) {
			memcpy(d.sha256[i], sha[i - o.n_fixed], 32);
			d.present[i] = true;
		}
	}
	for (size_t i = 0; i < o.n_fixed; i++) {
		rc = write_output(c, m, o.kind[i], o.path[i], d.sha256[i], err, errlen);
		if (rc == 0) {
			d.present[i] = true;
			continue;
		}
		/* Put back what was replaced, so that no output is left beside the others. */
		if (prev != NULL) {
			char e2[256];
			unsigned char sha[CS_CFG_LIVE_FILES][32];
			for (size_t k = 0; k < i; k++)
				write_output(c, prev, o.kind[k], o.path[k], sha[0], e2, sizeof(e2));
			if (o.n > o.n_fixed)
				write_live(c, prev, sha, e2, sizeof(e2));
		}
		return rc;
	}
	d.valid = true;
	if (written != NULL)
		*written = d;
	/* Postfix's SNI map embeds the files: rebuilt before the services reload. */
	cs_sni_after_deploy(c);
	return 0;
}
