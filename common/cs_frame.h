/*
 * cs_frame - the framed, typed messages of the privilege-separated processes
 * (#18): what the unprivileged network process and the root parent say to
 * each other over their socketpair. A frame carries numbers, strings and
 * bytes (DER) only, never a pointer, and is at most CS_FRAME_MAX bytes long.
 *
 * Wire format, every integer big-endian:
 *
 *	u32 length of what follows | u16 type | u64 id | field...
 *	field: u16 tag | u32 len | len bytes         (U64: len is exactly 8)
 *
 * The writer (cs_frame_begin ... cs_frame_end) builds one frame in a growing
 * buffer. The reader (cs_frame_parse) is strict: it checks a whole frame
 * against a schema (the message catalog: which types exist, which tags each
 * may carry, of which kind, how long, how often) and refuses anything else
 * with a message that says what was wrong. A process that receives a frame
 * its schema refuses treats its peer as compromised.
 */
#ifndef CS_FRAME_H
#define CS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define CS_FRAME_MAX (1u << 20)         /* largest frame, length prefix included */
#define CS_FRAME_HDR 14                 /* length prefix, type and id */
#define CS_FRAME_FIELDS_MAX 128         /* most fields in one frame */

/* What a field holds. */
enum cs_frame_kind {
	CS_FK_U64 = 1,  /* a number: exactly 8 bytes on the wire */
	CS_FK_STR,      /* UTF-8 text (RFC 3629: no overlong forms, no surrogates), no NUL */
	CS_FK_BYTES,    /* any bytes (DER) */
};

#define CS_FF_REQUIRED 0x1              /* the message is refused without it */
#define CS_FF_REPEATED 0x2              /* may come more than once (in order) */

/* One tag a message type may carry. */
struct cs_frame_fielddef {
	uint16_t tag;
	uint8_t kind;   /* enum cs_frame_kind */
	uint8_t flags;  /* CS_FF_* */
	uint32_t max;   /* STR/BYTES: max length in bytes; U64: max value; 0: any (within the frame) */
};

/* One message type of the catalog. */
struct cs_frame_msgdef {
	uint16_t type;
	const char *name;                       /* for error messages and logs */
	const struct cs_frame_fielddef *fields;
	size_t n_fields;
};

/* The catalog: every message type one side accepts. */
struct cs_frame_schema {
	const struct cs_frame_msgdef *msgs;
	size_t n_msgs;
};

/*
 * A frame being written. Start from a zeroed struct; it may be reused for
 * the next frame (cs_frame_begin keeps the memory). err is sticky: the first
 * failure (-ENOMEM, -EMSGSIZE); the calls after it do nothing.
 */
struct cs_frame_buf {
	unsigned char *p;
	size_t n, cap;
	int err;
};

/* Starts a frame of this type and id in b (forgetting what b held). */
void cs_frame_begin(struct cs_frame_buf *b, uint16_t type, uint64_t id);

/* Appends a U64 field. */
void cs_frame_u64(struct cs_frame_buf *b, uint16_t tag, uint64_t v);

/* Appends a STR field, strlen(s) bytes without the NUL; s NULL: no field. */
void cs_frame_str(struct cs_frame_buf *b, uint16_t tag, const char *s);

/* Appends a BYTES field of n bytes (p may be NULL when n is 0). */
void cs_frame_bytes(struct cs_frame_buf *b, uint16_t tag, const void *p, size_t n);

/*
 * Ends the frame: writes its length prefix. Returns 0, then b->p and b->n
 * are the whole frame (length prefix included); or the first failure:
 * -ENOMEM, or -EMSGSIZE when the frame is over CS_FRAME_MAX.
 * The writer does not check a schema: the reader does.
 */
int cs_frame_end(struct cs_frame_buf *b);

/* Frees b's memory; b is then as a zeroed struct. */
void cs_frame_buf_free(struct cs_frame_buf *b);

/*
 * One field of a parsed message. p and n: its bytes (a copy the message
 * owns); STR: p is NUL-terminated, n without the NUL. U64: u is the value.
 */
struct cs_frame_field {
	uint16_t tag;
	const unsigned char *p;
	size_t n;
	uint64_t u;
};

/* A parsed message: its fields in the frame's order. */
struct cs_frame_msg {
	uint16_t type;
	uint64_t id;
	const struct cs_frame_msgdef *def;      /* in the schema it was parsed with */
	struct cs_frame_field f[CS_FRAME_FIELDS_MAX];
	size_t n;
	unsigned char *own;                     /* the fields' bytes, one allocation */
};

/*
 * Parses one whole frame p, n bytes, length prefix included, against schema
 * s into m. Returns 0 (free m with cs_frame_msg_free; m does not point into
 * p), or -EBADMSG with err saying what is wrong (the type's name, the tag),
 * or -ENOMEM; on failure m holds nothing to free (cs_frame_msg_free on it is
 * harmless). Refused: a length prefix other than n - 4, a frame over
 * CS_FRAME_MAX, an unknown type, a tag the type does not have, a U64 not 8
 * bytes long or above its max, a STR holding a NUL or not UTF-8 or longer
 * than its max, BYTES longer than their max, a tag twice that is not
 * REPEATED, a REQUIRED tag missing, more than CS_FRAME_FIELDS_MAX fields, a
 * truncated header or field. Never reads outside p[0..n).
 */
int cs_frame_parse(const struct cs_frame_schema *s, const unsigned char *p, size_t n,
		   struct cs_frame_msg *m, char *err, size_t errlen);

/* Frees what m owns; its fields are then gone. */
void cs_frame_msg_free(struct cs_frame_msg *m);

/* The idx-th (from 0) field with this tag, borrowed from m; NULL if absent. */
const struct cs_frame_field *cs_frame_get(const struct cs_frame_msg *m, uint16_t tag, size_t idx);

/* How many fields with this tag m has. */
size_t cs_frame_count(const struct cs_frame_msg *m, uint16_t tag);

/* The value of the first U64 field with this tag, or dflt if absent. */
uint64_t cs_frame_u64_of(const struct cs_frame_msg *m, uint16_t tag, uint64_t dflt);

/* The first STR field with this tag (borrowed from m), or NULL if absent. */
const char *cs_frame_str_of(const struct cs_frame_msg *m, uint16_t tag);

#endif
