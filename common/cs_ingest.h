/*
 * cs_ingest - read TLS material in any of the formats administrators are
 * handed (PEM with any mix of keys, certificates and CRLs; DER certificate;
 * PKCS#7 certs-only in PEM or DER; PKCS#12) into one cs_material set, then
 * normalise it (leaf matching the key first, issuers in order, duplicates
 * dropped, strays reported).
 */
#ifndef CS_INGEST_H
#define CS_INGEST_H

#include "cs_material.h"

#include <stddef.h>

struct cs_ingest_opts {
	const char *password; /* for encrypted PEM keys and PKCS#12; NULL: none */
};

/*
 * Adds everything found in the len bytes at data (from file `name`, used in
 * messages) to m. Returns 0, or a negative code with a message in err.
 */
int cs_ingest_buffer(cs_material *m, const void *data, size_t len, const char *name,
		     const struct cs_ingest_opts *opts, char *err, size_t errlen);

/* As cs_ingest_buffer, reading the file at path. */
int cs_ingest_file(cs_material *m, const char *path, const struct cs_ingest_opts *opts,
		   char *err, size_t errlen);

#endif
