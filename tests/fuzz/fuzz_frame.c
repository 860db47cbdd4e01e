/*
 * fuzz_frame - libFuzzer target: arbitrary bytes into the strict reader of
 * the frames between the privilege-separated processes (cs_frame_parse),
 * against a small schema shaped like the message catalog (a hello, a
 * request with DER and repeated names, a result, a message without fields).
 * The bytes are read twice: as they come, and with their length prefix made
 * to match (so that the mutations reach the fields). A frame the reader
 * takes must hold what its schema says, and written again field by field it
 * must come out byte for byte the same. Any crash, leak, out-of-bounds read,
 * undefined behaviour or abort is a bug.
 */
#include "cs_frame.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct cs_frame_fielddef hello[] = {
	{ 1, CS_FK_U64, CS_FF_REQUIRED, 10 },           /* version */
	{ 2, CS_FK_STR, 0, 64 },                        /* who */
};
static const struct cs_frame_fielddef issue[] = {
	{ 1, CS_FK_STR, CS_FF_REQUIRED, 255 },          /* cert name */
	{ 2, CS_FK_BYTES, CS_FF_REQUIRED, 65536 },      /* CSR, DER */
	{ 3, CS_FK_STR, CS_FF_REPEATED, 253 },          /* names */
	{ 4, CS_FK_U64, 0, 0 },                         /* deadline */
};
static const struct cs_frame_fielddef result[] = {
	{ 1, CS_FK_U64, CS_FF_REQUIRED, 255 },          /* status */
	{ 2, CS_FK_BYTES, CS_FF_REPEATED, 0 },          /* chain, DER */
	{ 3, CS_FK_STR, 0, 1024 },                      /* error */
};
static const struct cs_frame_msgdef msgs[] = {
	{ 1, "hello", hello, 2 },
	{ 2, "issue", issue, 4 },
	{ 3, "result", result, 3 },
	{ 4, "bye", NULL, 0 },
};
static const struct cs_frame_schema schema = { msgs, 4 };

/* What the reader took holds to its schema and writes back as the same bytes. */
static void check(const struct cs_frame_msg *m, const uint8_t *p, size_t n)
{
	struct cs_frame_buf b = { 0 };

	cs_frame_begin(&b, m->type, m->id);
	for (size_t i = 0; i < m->n; i++) {
		const struct cs_frame_field *f = &m->f[i];
		const struct cs_frame_fielddef *fd = NULL;

		for (size_t k = 0; k < m->def->n_fields; k++)
			if (m->def->fields[k].tag == f->tag)
				fd = &m->def->fields[k];
		if (fd == NULL || (fd->max != 0 && fd->kind != CS_FK_U64 && f->n > fd->max))
			abort();
		if (fd->kind == CS_FK_U64)
			cs_frame_u64(&b, f->tag, f->u);
		else if (fd->kind == CS_FK_STR && strlen((const char *)f->p) == f->n)
			cs_frame_str(&b, f->tag, (const char *)f->p);
		else if (fd->kind == CS_FK_BYTES)
			cs_frame_bytes(&b, f->tag, f->p, f->n);
		else
			abort();        /* a STR with a NUL inside, or no NUL after it */
	}
	if (cs_frame_end(&b) != 0 || b.n != n || memcmp(b.p, p, n) != 0)
		abort();
	cs_frame_buf_free(&b);
}

static void one(const uint8_t *p, size_t n)
{
	struct cs_frame_msg m;
	char err[256];
	int rc = cs_frame_parse(&schema, p, n, &m, err, sizeof(err));

	if (rc == 0) {
		check(&m, p, n);
		cs_frame_msg_free(&m);
	} else if (rc != -EBADMSG && rc != -ENOMEM) {
		abort();
	} else if (rc == -EBADMSG && err[0] == '\0') {
		abort();        /* a refusal always says why */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *q;

	/* Exactly size bytes of the heap, so that ASan sees a read beyond. */
	q = malloc(size ? size : 1);
	if (q == NULL)
		return 0;
	memcpy(q, data, size);
	one(q, size);
	if (size >= 4 && size - 4 <= UINT32_MAX) {
		uint32_t len = (uint32_t)(size - 4);

		q[0] = (uint8_t)(len >> 24);
		q[1] = (uint8_t)(len >> 16);
		q[2] = (uint8_t)(len >> 8);
		q[3] = (uint8_t)len;
		one(q, size);
	}
	free(q);
	return 0;
}
