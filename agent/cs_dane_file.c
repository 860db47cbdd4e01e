/*
 * cs_dane_file - where a DANE rollover lives between runs (see cs_dane.h):
 * state_dir/dane/NAME.json and the staged next key state_dir/dane/NAME.key.
 * Both replaced atomically; the key is 0600 before its first byte.
 */
#include "cs_dane.h"

#include "cs_atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const role_names[] = { "current", "next", "retiring" };

/* state_dir/dane/NAME.EXT into out, the directory made (0700). Returns 0 or -1 with err. */
static int dane_path(const char *state_dir, const char *name, const char *ext, char *out,
		     size_t len, char *err, size_t errlen)
{
	char dir[4096];

	snprintf(dir, sizeof(dir), "%s/dane", state_dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: cannot create: %s", dir, strerror(errno));
		return -1;
	}
	if ((size_t)snprintf(out, len, "%s/%s.%s", dir, name, ext) >= len) {
		snprintf(err, errlen, "%s/%s.%s: path too long", dir, name, ext);
		return -1;
	}
	return 0;
}

/* Reads the regular file path (no link followed) into a new buffer; NULL with
   errno set (ENOENT: there is none). */
static char *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat sb;
	char *buf = NULL;
	ssize_t n;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size > 1 << 20) {
		close(fd);
		errno = EINVAL;
		return NULL;
	}
	if ((buf = malloc((size_t)sb.st_size + 1)) != NULL &&
	    (n = read(fd, buf, (size_t)sb.st_size)) >= 0) {
		buf[n] = '\0';
		*len = (size_t)n;
	} else {
		free(buf);
		buf = NULL;
		errno = EIO;
	}
	close(fd);
	return buf;
}

static void load_rec(struct cs_dane_state *st, json_t *o)
{
	const char *hex = json_string_value(json_object_get(o, "data"));
	const char *role = json_string_value(json_object_get(o, "role"));
	struct cs_dane_rec *r;

	if (hex == NULL || strlen(hex) != CS_DANE_HEX - 1 || role == NULL || st->n == CS_DANE_MAX)
		return;
	r = &st->r[st->n];
	memset(r, 0, sizeof(*r));
	snprintf(r->hex, sizeof(r->hex), "%s", hex);
	r->role = -1;
	for (int k = 0; k < 3; k++)
		if (strcmp(role, role_names[k]) == 0)
			r->role = k;
	if (r->role < 0)
		return;
	r->published = json_is_true(json_object_get(o, "published"));
	r->visible_since = json_integer_value(json_object_get(o, "visible_since"));
	r->retire_at = json_integer_value(json_object_get(o, "retire_at"));
	st->n++;
}

int cs_dane_load(const char *state_dir, const char *name, struct cs_dane_state *st, char *err,
		 size_t errlen)
{
	char path[4200];
	size_t len = 0;
	char *buf;
	json_t *root, *recs, *o;
	json_error_t je;
	size_t i;

	memset(st, 0, sizeof(*st));
	if (dane_path(state_dir, name, "json", path, sizeof(path), err, errlen) < 0)
		return -1;
	if ((buf = slurp(path, &len)) == NULL) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		return -1;
	}
	root = json_loadb(buf, len, 0, &je);
	free(buf);
	if (!json_is_object(root)) {
		snprintf(err, errlen, "%s:%d: %s", path, je.line, je.text);
		json_decref(root);
		return -1;
	}
	recs = json_object_get(root, "records");
	json_array_foreach(recs, i, o)
		load_rec(st, o);
	st->ttl = (uint32_t)json_integer_value(json_object_get(root, "ttl"));
	st->updated_at = json_integer_value(json_object_get(root, "updated_at"));
	st->update_failed = json_is_true(json_object_get(root, "update_failed"));
	st->update_failures = (uint64_t)json_integer_value(json_object_get(root, "update_failures"));
	st->kept = (uint64_t)json_integer_value(json_object_get(root, "kept_current_key"));
	snprintf(st->update_err, sizeof(st->update_err), "%s",
		 json_string_value(json_object_get(root, "update_error")) ?: "");
	json_decref(root);
	return 0;
}

int cs_dane_save(const char *state_dir, const char *name, const struct cs_dane_state *st,
		 char *err, size_t errlen)
{
	struct cs_atomic_opts ao = { .mode = 0600, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	json_t *root = json_object(), *recs = json_array();
	char path[4200], *text;
	int rc;

	if (dane_path(state_dir, name, "json", path, sizeof(path), err, errlen) < 0) {
		json_decref(root);
		json_decref(recs);
		return -1;
	}
	for (size_t i = 0; i < st->n; i++) {
		const struct cs_dane_rec *r = &st->r[i];
		json_array_append_new(recs, json_pack("{s:s, s:s, s:b, s:I, s:I}", "data", r->hex,
						      "role", role_names[r->role], "published",
						      r->published, "visible_since",
						      (json_int_t)r->visible_since, "retire_at",
						      (json_int_t)r->retire_at));
	}
	json_object_set_new(root, "records", recs);
	json_object_set_new(root, "ttl", json_integer(st->ttl));
	json_object_set_new(root, "updated_at", json_integer(st->updated_at));
	json_object_set_new(root, "update_failed", json_boolean(st->update_failed));
	json_object_set_new(root, "update_failures", json_integer((json_int_t)st->update_failures));
	json_object_set_new(root, "update_error", json_string(st->update_err));
	json_object_set_new(root, "kept_current_key", json_integer((json_int_t)st->kept));
	text = json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS);
	json_decref(root);
	if (text == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	rc = cs_atomic_write(path, text, strlen(text), &ao, err, errlen);
	free(text);
	return rc < 0 ? -1 : 0;
}

EVP_PKEY *cs_dane_key_read(const char *state_dir, const char *name, char *err, size_t errlen)
{
	char path[4200];
	size_t len = 0;
	char *buf;
	BIO *b;
	EVP_PKEY *key;

	err[0] = '\0';
	if (dane_path(state_dir, name, "key", path, sizeof(path), err, errlen) < 0)
		return NULL;
	if ((buf = slurp(path, &len)) == NULL) {
		if (errno != ENOENT)
			snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		return NULL;
	}
	b = BIO_new_mem_buf(buf, (int)len);
	key = b != NULL ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	OPENSSL_cleanse(buf, len);
	free(buf);
	if (key == NULL)
		snprintf(err, errlen, "%s: not a private key", path);
	return key;
}

int cs_dane_key_write(const char *state_dir, const char *name, EVP_PKEY *key, char *err,
		      size_t errlen)
{
	struct cs_atomic_opts ao = { .mode = 0600, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	char path[4200];
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	long len;
	int rc = -1;

	if (b == NULL || dane_path(state_dir, name, "key", path, sizeof(path), err, errlen) < 0)
		goto out;
	if (PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) != 1 ||
	    (len = BIO_get_mem_data(b, &data)) <= 0) {
		snprintf(err, errlen, "%s: cannot encode the key", path);
		goto out;
	}
	rc = cs_atomic_write(path, data, (size_t)len, &ao, err, errlen) < 0 ? -1 : 0;
out:
	/* The PEM text is wiped with the BIO's memory. */
	if (b != NULL) {
		BUF_MEM *bm = NULL;
		BIO_get_mem_ptr(b, &bm);
		if (bm != NULL && bm->data != NULL)
			OPENSSL_cleanse(bm->data, bm->length);
		BIO_free(b);
	}
	return rc;
}
