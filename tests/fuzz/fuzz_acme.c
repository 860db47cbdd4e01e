/*
 * fuzz_acme - libFuzzer target for what an ACME CA sends that certsync
 * parses without I/O (plugins/issuers/cs_acme_msg.h): the bytes are a response body
 * taken as a problem document, a renewalInfo (ARI) window and a directory
 * (its meta.profiles) and a DER certificate (its ARI identifier), and, line
 * by line, as Retry-After and Link header values, RFC 3339 times and the
 * names of a newOrder payload. Any crash, leak, hang or undefined behaviour is
 * a bug; for the rest the contracts the callers rely on are checked: a type
 * is copied only from a problem document and always terminated, a window
 * that is accepted does not end before it starts, a delay is never below -1.
 */
#include "cs_acme_msg.h"

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void headers(const char *s)
{
	static const char *const rels[] = { "alternate", "up", "index", "" };
	char *urls[8];

	/* Callers pass NUL-terminated header values. */
	if (cs_acme_msg_retry_after(s, 1700000000) < -1)
		abort();
	for (size_t r = 0; r < sizeof(rels) / sizeof(rels[0]); r++) {
		size_t n = cs_acme_msg_links(s, rels[r], urls, 8);
		if (n > 8)
			abort();
		for (size_t i = 0; i < n; i++) {
			if (urls[i] == NULL)
				abort();
			free(urls[i]);
		}
	}
	int64_t t;
	cs_acme_msg_time(s, &t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	char type[64], err[256];
	struct cs_issuer_window w;
	char *s, *line, *save = NULL, *order, *names[16];
	size_t n = 0;
	json_t *dir;

	memset(type, 'x', sizeof(type));
	if (cs_acme_msg_problem(body, size, type, sizeof(type)) == 0 &&
	    memchr(type, '\0', sizeof(type)) == NULL)
		abort();
	memset(&w, 0, sizeof(w));
	if (cs_acme_msg_ari(body, size, &w, err, sizeof(err)) == 0) {
		if (w.end < w.start || memchr(w.explanation, '\0', sizeof(w.explanation)) == NULL)
			abort();
	} else if (memchr(err, '\0', sizeof(err)) == NULL) {
		abort();
	}
	dir = json_loadb(body, size, 0, NULL);
	if (dir != NULL) {
		/* A directory: every profile it lists is offered, "" only if listed. */
		json_t *profiles = json_object_get(json_object_get(dir, "meta"), "profiles");
		const char *key;
		json_t *v;
		if (json_is_object(profiles))
			json_object_foreach(profiles, key, v)
				if (!cs_acme_msg_profile_offered(dir, key))
					abort();
		cs_acme_msg_profile_offered(dir, "tlsserver");
		json_decref(dir);
	}
	/* A certificate (DER) whose ARI identifier is asked for. */
	const unsigned char *der = data;
	X509 *x = d2i_X509(NULL, &der, (long)size);
	if (x != NULL) {
		free(cs_acme_msg_certid(x, err, sizeof(err)));
		X509_free(x);
	}
	ERR_clear_error();

	/* Header values and times: each line of the input, NUL-terminated. */
	s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	headers(s);
	for (line = strtok_r(s, "\r\n", &save); line != NULL && n < 16;
	     line = strtok_r(NULL, "\r\n", &save)) {
		headers(line);
		names[n++] = line;
	}
	/* The lines as the names of a newOrder: the payload must be JSON. */
	order = cs_acme_msg_new_order(names, n, n > 0 ? names[0] : NULL, n > 1 ? names[1] : NULL);
	if (order != NULL) {
		json_t *o = json_loads(order, 0, NULL);
		if (o == NULL || json_array_size(json_object_get(o, "identifiers")) != n)
			abort();
		json_decref(o);
		free(order);
	}
	free(s);
	return 0;
}
