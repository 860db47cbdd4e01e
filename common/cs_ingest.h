/*
 * cs_ingest - read TLS material in any of the formats administrators are
 * handed (PEM with any mix of keys, certificates and CRLs; DER certificate;
 * PKCS#7 certs-only in PEM or DER; PKCS#12) into one cs_material set, then
 * normalise it (leaf matching the key first, issuers in order, duplicates
 * dropped, strays reported).
 *
 * The format is detected from the content, never from the file name: PEM when
 * the bytes contain "-----BEGIN", otherwise DER certificate, PKCS#7, PKCS#12,
 * CRL or private key, in that order. Ingest only collects: certificates are
 * appended to m->strays in the order they were read, and cs_chain_normalise()
 * (cs_chain.h) places them as leaf, chain and true strays afterwards.
 */
#ifndef CS_INGEST_H
#define CS_INGEST_H

#include "cs_material.h"

#include <stddef.h>

/*
 * For files in directories others fill (clientcerts): never through a
 * symbolic link, never blocking on a FIFO or device, regular files only.
 */
#define CS_INGEST_REGULAR_ONLY 0x1

struct cs_ingest_opts {
	const char *password; /* for encrypted PEM keys and PKCS#12; NULL: none */
	unsigned flags;       /* CS_INGEST_* */
};

enum cs_ingest_format {
	CS_FMT_UNKNOWN = 0,
	CS_FMT_PEM,
	CS_FMT_DER_CERT,
	CS_FMT_DER_CRL,
	CS_FMT_DER_KEY,
	CS_FMT_PKCS7_DER,
	CS_FMT_PKCS12,
};

/* What one ingest call found; filled by the _info variants. */
struct cs_ingest_info {
	enum cs_ingest_format format;
	int keys;  /* private keys added (0 or 1) */
	int certs; /* certificates added, duplicates included */
	int crls;  /* CRLs added */
	int pkcs7; /* PKCS#7 structures met (in PEM or DER) */
};

/*
 * Adds everything found in the len bytes at data (from file `name`, used in
 * messages) to m. Returns 0, or a negative code with a message in err:
 * -ENOKEY for an encrypted key or PKCS#12 without a password, -EKEYREJECTED
 * for a wrong password, -EEXIST for a second private key, -EBADMSG for
 * anything unreadable. On error m may hold part of the file.
 */
int cs_ingest_buffer(cs_material *m, const void *data, size_t len, const char *name,
		     const struct cs_ingest_opts *opts, char *err, size_t errlen);

/* As cs_ingest_buffer, reading the file at path (-errno when it cannot be read). */
int cs_ingest_file(cs_material *m, const char *path, const struct cs_ingest_opts *opts,
		   char *err, size_t errlen);

/* As cs_ingest_buffer, also telling what was found in *info (may be NULL). */
int cs_ingest_buffer_info(cs_material *m, const void *data, size_t len, const char *name,
			  const struct cs_ingest_opts *opts, struct cs_ingest_info *info,
			  char *err, size_t errlen);

/* As cs_ingest_file, also telling what was found in *info (may be NULL). */
int cs_ingest_file_info(cs_material *m, const char *path, const struct cs_ingest_opts *opts,
			struct cs_ingest_info *info, char *err, size_t errlen);

/* Returns a static description of f ("PEM", "PKCS#12", ...). */
const char *cs_ingest_format_name(enum cs_ingest_format f);

/*
 * Reads a password from the first line of file (when file is not NULL) or
 * from the environment variable env. Returns a malloc'd string that the
 * caller releases with cs_ingest_password_free(), or NULL with a message in
 * err naming the file or the variable.
 */
char *cs_ingest_password_read(const char *file, const char *env, char *err, size_t errlen);

/* Wipes and frees a password from cs_ingest_password_read; accepts NULL. */
void cs_ingest_password_free(char *password);

#endif
