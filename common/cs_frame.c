/*
 * cs_frame - the writer and the strict reader of the framed messages
 * between the privilege-separated processes (cs_frame.h has the format).
 * The reader treats every byte as hostile: each length is checked against
 * what remains before it is used, and a frame is refused at its first fault.
 */
#include "cs_frame.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The header of one field: tag and length. */
#define FIELD_HDR 6

static void put_be(unsigned char *p, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--) {
		p[i] = (unsigned char)v;
		v >>= 8;
	}
}

static uint64_t get_be(const unsigned char *p, int bytes)
{
	uint64_t v = 0;

	for (int i = 0; i < bytes; i++)
		v = v << 8 | p[i];
	return v;
}

/* Makes room for more bytes in b; false (b->err set) when it cannot. */
static bool reserve(struct cs_frame_buf *b, size_t more)
{
	size_t cap;
	unsigned char *np;

	if (b->err != 0)
		return false;
	if (more > CS_FRAME_MAX || b->n + more > CS_FRAME_MAX) {
		b->err = -EMSGSIZE;
		return false;
	}
	if (b->n + more <= b->cap)
		return true;
	cap = b->cap < 256 ? 256 : b->cap;
	while (cap < b->n + more)
		cap *= 2;
	np = realloc(b->p, cap);
	if (np == NULL) {
		b->err = -ENOMEM;
		return false;
	}
	b->p = np;
	b->cap = cap;
	return true;
}

void cs_frame_begin(struct cs_frame_buf *b, uint16_t type, uint64_t id)
{
	b->n = 0;
	b->err = 0;
	if (!reserve(b, CS_FRAME_HDR))
		return;
	put_be(b->p, 0, 4);
	put_be(b->p + 4, type, 2);
	put_be(b->p + 6, id, 8);
	b->n = CS_FRAME_HDR;
}

/* Appends one field's header and its n bytes. */
static void add_field(struct cs_frame_buf *b, uint16_t tag, const void *p, size_t n)
{
	if (n > CS_FRAME_MAX) {
		if (b->err == 0)
			b->err = -EMSGSIZE;
		return;
	}
	if (!reserve(b, FIELD_HDR + n))
		return;
	put_be(b->p + b->n, tag, 2);
	put_be(b->p + b->n + 2, n, 4);
	if (n > 0)
		memcpy(b->p + b->n + FIELD_HDR, p, n);
	b->n += FIELD_HDR + n;
}

void cs_frame_u64(struct cs_frame_buf *b, uint16_t tag, uint64_t v)
{
	unsigned char be[8];

	put_be(be, v, 8);
	add_field(b, tag, be, sizeof(be));
}

void cs_frame_str(struct cs_frame_buf *b, uint16_t tag, const char *s)
{
	if (s != NULL)
		add_field(b, tag, s, strlen(s));
}

void cs_frame_bytes(struct cs_frame_buf *b, uint16_t tag, const void *p, size_t n)
{
	add_field(b, tag, p, n);
}

int cs_frame_end(struct cs_frame_buf *b)
{
	if (b->err == 0 && b->n < CS_FRAME_HDR)
		b->err = -EINVAL;       /* no cs_frame_begin */
	if (b->err != 0)
		return b->err;
	put_be(b->p, b->n - 4, 4);
	return 0;
}

void cs_frame_buf_free(struct cs_frame_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->n = b->cap = 0;
	b->err = 0;
}

/* Says what is wrong in err; returns -EBADMSG. */
__attribute__((format(printf, 3, 4)))
static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EBADMSG;
}

/*
 * Whether p[0..n) is UTF-8 as RFC 3629 has it: shortest forms only, no
 * surrogates (U+D800..U+DFFF), nothing above U+10FFFF. NUL is refused
 * too. Returns the offset of the first bad byte, or n.
 */
static size_t utf8_check(const unsigned char *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = p[i];
		size_t len;
		unsigned char lo = 0x80, hi = 0xbf;     /* the second byte's range */

		if (c == 0)
			return i;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			if (c == 0xe0)
				lo = 0xa0;      /* overlong below U+0800 */
			else if (c == 0xed)
				hi = 0x9f;      /* surrogates */
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			if (c == 0xf0)
				lo = 0x90;      /* overlong below U+10000 */
			else if (c == 0xf4)
				hi = 0x8f;      /* above U+10FFFF */
		} else {
			return i;       /* continuation byte, C0, C1, F5..FF */
		}
		if (n - i < len || p[i + 1] < lo || p[i + 1] > hi)
			return i;
		for (size_t k = 2; k < len; k++)
			if (p[i + k] < 0x80 || p[i + k] > 0xbf)
				return i;
		i += len;
	}
	return n;
}

static const struct cs_frame_msgdef *find_msg(const struct cs_frame_schema *s, uint16_t type)
{
	for (size_t i = 0; i < s->n_msgs; i++)
		if (s->msgs[i].type == type)
			return &s->msgs[i];
	return NULL;
}

static const struct cs_frame_fielddef *find_field(const struct cs_frame_msgdef *d, uint16_t tag)
{
	for (size_t i = 0; i < d->n_fields; i++)
		if (d->fields[i].tag == tag)
			return &d->fields[i];
	return NULL;
}

static const char *kind_name(uint8_t kind)
{
	switch (kind) {
	case CS_FK_U64:
		return "U64";
	case CS_FK_STR:
		return "STR";
	case CS_FK_BYTES:
		return "BYTES";
	}
	return "?";
}

/*
 * Checks one field's bytes against its definition; 0 or -EBADMSG. For a
 * U64 *u is its value.
 */
static int check_field(const struct cs_frame_msgdef *d, const struct cs_frame_fielddef *fd,
		       const unsigned char *v, size_t len, uint64_t *u, char *err, size_t errlen)
{
	size_t at;

	switch (fd->kind) {
	case CS_FK_U64:
		if (len != 8)
			return bad(err, errlen, "%s: tag %u (U64) is %zu bytes long, not 8",
				   d->name, fd->tag, len);
		*u = get_be(v, 8);
		if (fd->max != 0 && *u > fd->max)
			return bad(err, errlen, "%s: tag %u (U64) is %llu, above its max %lu",
				   d->name, fd->tag, (unsigned long long)*u, (unsigned long)fd->max);
		return 0;
	case CS_FK_STR:
		if (fd->max != 0 && len > fd->max)
			return bad(err, errlen, "%s: tag %u (STR) is %zu bytes long, over its max %lu",
				   d->name, fd->tag, len, (unsigned long)fd->max);
		at = utf8_check(v, len);
		if (at < len && v[at] == 0)
			return bad(err, errlen, "%s: tag %u (STR) holds a NUL at byte %zu",
				   d->name, fd->tag, at);
		if (at < len)
			return bad(err, errlen, "%s: tag %u (STR) is not UTF-8 at byte %zu",
				   d->name, fd->tag, at);
		return 0;
	case CS_FK_BYTES:
		if (fd->max != 0 && len > fd->max)
			return bad(err, errlen, "%s: tag %u (BYTES) is %zu bytes long, over its max %lu",
				   d->name, fd->tag, len, (unsigned long)fd->max);
		return 0;
	}
	return bad(err, errlen, "%s: tag %u has kind %u in the schema, which is none",
		   d->name, fd->tag, fd->kind);
}

/* The length prefix, the type and the id of frame p (n bytes): m->type, m->id, m->def set. */
static int parse_header(const struct cs_frame_schema *s, const unsigned char *p, size_t n,
			struct cs_frame_msg *m, char *err, size_t errlen)
{
	const struct cs_frame_msgdef *d;
	uint64_t len;

	if (n < 4)
		return bad(err, errlen, "frame: %zu bytes, too short for its length prefix", n);
	if (n > CS_FRAME_MAX)
		return bad(err, errlen, "frame: %zu bytes, over the limit of %u", n, CS_FRAME_MAX);
	len = get_be(p, 4);
	if (len > n - 4)
		return bad(err, errlen, "frame: truncated: the length prefix says %llu bytes, %zu follow",
			   (unsigned long long)len, n - 4);
	if (len < n - 4)
		return bad(err, errlen, "frame: %zu trailing bytes after the %llu the length prefix says",
			   n - 4 - (size_t)len, (unsigned long long)len);
	if (n < CS_FRAME_HDR)
		return bad(err, errlen, "frame: truncated header (%zu bytes, type and id need %d)",
			   n, CS_FRAME_HDR);
	m->type = (uint16_t)get_be(p + 4, 2);
	m->id = get_be(p + 6, 8);
	d = find_msg(s, m->type);
	if (d == NULL)
		return bad(err, errlen, "frame: unknown type %u", m->type);
	m->def = d;
	return 0;
}

int cs_frame_parse(const struct cs_frame_schema *s, const unsigned char *p, size_t n,
		   struct cs_frame_msg *m, char *err, size_t errlen)
{
	const struct cs_frame_msgdef *d;
	size_t off = CS_FRAME_HDR, used = 0;
	int rc;

	m->own = NULL;
	m->n = 0;
	m->def = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	rc = parse_header(s, p, n, m, err, errlen);
	if (rc < 0)
		return rc;
	d = m->def;
	/* Each field's bytes and a NUL: fewer than the frame's own bytes. */
	m->own = malloc(n);
	if (m->own == NULL)
		return -ENOMEM;
	while (off < n) {
		const struct cs_frame_fielddef *fd;
		struct cs_frame_field *f;
		uint16_t tag;
		uint64_t flen, u = 0;

		if (n - off < FIELD_HDR) {
			rc = bad(err, errlen, "%s: truncated field header at byte %zu", d->name, off);
			goto fail;
		}
		tag = (uint16_t)get_be(p + off, 2);
		flen = get_be(p + off + 2, 4);
		off += FIELD_HDR;
		if (flen > n - off) {
			rc = bad(err, errlen, "%s: tag %u truncated: %llu bytes said, %zu left",
				 d->name, tag, (unsigned long long)flen, n - off);
			goto fail;
		}
		fd = find_field(d, tag);
		if (fd == NULL) {
			rc = bad(err, errlen, "%s: unknown tag %u", d->name, tag);
			goto fail;
		}
		if (!(fd->flags & CS_FF_REPEATED) && cs_frame_count(m, tag) > 0) {
			rc = bad(err, errlen, "%s: tag %u twice (not repeated)", d->name, tag);
			goto fail;
		}
		if (m->n == CS_FRAME_FIELDS_MAX) {
			rc = bad(err, errlen, "%s: more than %d fields", d->name, CS_FRAME_FIELDS_MAX);
			goto fail;
		}
		rc = check_field(d, fd, p + off, (size_t)flen, &u, err, errlen);
		if (rc < 0)
			goto fail;
		f = &m->f[m->n++];
		f->tag = tag;
		f->n = (size_t)flen;
		f->u = u;
		f->p = m->own + used;
		memcpy(m->own + used, p + off, f->n);
		m->own[used + f->n] = '\0';
		used += f->n + 1;
		off += f->n;
	}
	for (size_t i = 0; i < d->n_fields; i++)
		if ((d->fields[i].flags & CS_FF_REQUIRED) && cs_frame_count(m, d->fields[i].tag) == 0) {
			rc = bad(err, errlen, "%s: required tag %u (%s) missing", d->name,
				 d->fields[i].tag, kind_name(d->fields[i].kind));
			goto fail;
		}
	return 0;
fail:
	cs_frame_msg_free(m);
	return rc;
}

void cs_frame_msg_free(struct cs_frame_msg *m)
{
	free(m->own);
	m->own = NULL;
	m->n = 0;
}

const struct cs_frame_field *cs_frame_get(const struct cs_frame_msg *m, uint16_t tag, size_t idx)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->f[i].tag == tag && idx-- == 0)
			return &m->f[i];
	return NULL;
}

size_t cs_frame_count(const struct cs_frame_msg *m, uint16_t tag)
{
	size_t c = 0;

	for (size_t i = 0; i < m->n; i++)
		c += m->f[i].tag == tag;
	return c;
}

uint64_t cs_frame_u64_of(const struct cs_frame_msg *m, uint16_t tag, uint64_t dflt)
{
	const struct cs_frame_field *f = cs_frame_get(m, tag, 0);

	return f != NULL ? f->u : dflt;
}

const char *cs_frame_str_of(const struct cs_frame_msg *m, uint16_t tag)
{
	const struct cs_frame_field *f = cs_frame_get(m, tag, 0);

	return f != NULL ? (const char *)f->p : NULL;
}
