/*
 * check_frame - the frames between the privilege-separated processes: the
 * writer and the strict reader (cs_frame), every rule the reader keeps, every
 * truncation of a valid frame refused; and the channel (cs_chan) over a real
 * socketpair on a loop: many frames both ways, a frame of CS_FRAME_MAX bytes,
 * writes bigger than the socket buffer, a descriptor passed and used, EOF,
 * a length prefix over the limit, close inside a callback.
 */
#include "cs_chan.h"
#include "cs_frame.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { T_HELLO = 1, T_MANY = 2, T_BIG = 3 };

static const struct cs_frame_fielddef hello_fields[] = {
	{ 1, CS_FK_U64, CS_FF_REQUIRED, 1000 },
	{ 2, CS_FK_STR, 0, 16 },
	{ 3, CS_FK_BYTES, CS_FF_REPEATED, 64 },
	{ 4, CS_FK_U64, 0, 0 },
	{ 5, CS_FK_STR, CS_FF_REPEATED, 0 },
};
static const struct cs_frame_fielddef many_fields[] = {
	{ 1, CS_FK_BYTES, CS_FF_REPEATED, 0 },
};
static const struct cs_frame_fielddef big_fields[] = {
	{ 1, CS_FK_BYTES, CS_FF_REQUIRED, 0 },
};
static const struct cs_frame_msgdef msgs[] = {
	{ T_HELLO, "hello", hello_fields, sizeof(hello_fields) / sizeof(hello_fields[0]) },
	{ T_MANY, "many", many_fields, 1 },
	{ T_BIG, "big", big_fields, 1 },
};
static const struct cs_frame_schema schema = { msgs, sizeof(msgs) / sizeof(msgs[0]) };

/* Parses b's frame; asserts it is refused with a message holding want. */
static void refused(const unsigned char *p, size_t n, const char *want)
{
	struct cs_frame_msg m;
	char err[256];

	ck_assert_int_eq(cs_frame_parse(&schema, p, n, &m, err, sizeof(err)), -EBADMSG);
	ck_assert_msg(strstr(err, want) != NULL, "error \"%s\" does not say \"%s\"", err, want);
	ck_assert_ptr_null(m.own);
}

/* Ends b and asserts that its frame is refused with want. */
static void end_refused(struct cs_frame_buf *b, const char *want)
{
	ck_assert_int_eq(cs_frame_end(b), 0);
	refused(b->p, b->n, want);
}

/* Ends b and asserts that its frame parses; m to be freed. */
static void end_parsed(struct cs_frame_buf *b, struct cs_frame_msg *m)
{
	char err[256];

	ck_assert_int_eq(cs_frame_end(b), 0);
	ck_assert_msg(cs_frame_parse(&schema, b->p, b->n, m, err, sizeof(err)) == 0, "%s", err);
}

START_TEST(test_roundtrip)
{
	struct cs_frame_buf b = { 0 };
	struct cs_frame_msg m;
	const struct cs_frame_field *f;
	static const unsigned char der[] = { 0x30, 0x03, 0x02, 0x01, 0x00 };

	cs_frame_begin(&b, T_HELLO, 0x0102030405060708ull);
	cs_frame_u64(&b, 1, 1000);
	cs_frame_str(&b, 2, "h\xc3\xa9llo \xf0\x9f\x94\x91");
	cs_frame_bytes(&b, 3, der, sizeof(der));
	cs_frame_bytes(&b, 3, NULL, 0);
	cs_frame_u64(&b, 4, UINT64_MAX);
	cs_frame_str(&b, 5, "");
	cs_frame_str(&b, 5, NULL);      /* omitted */
	cs_frame_str(&b, 5, "\xf4\x8f\xbf\xbf\xed\x9f\xbf\xef\xbf\xbf");
	end_parsed(&b, &m);
	/* The length prefix, type and id as the format says. */
	ck_assert_uint_eq(b.p[0] << 24 | b.p[1] << 16 | b.p[2] << 8 | b.p[3], b.n - 4);
	ck_assert_uint_eq(b.p[4] << 8 | b.p[5], T_HELLO);
	cs_frame_buf_free(&b);          /* m holds its own copy */
	ck_assert_ptr_null(b.p);

	ck_assert_uint_eq(m.type, T_HELLO);
	ck_assert_str_eq(m.def->name, "hello");
	ck_assert(m.id == 0x0102030405060708ull);
	ck_assert_uint_eq(m.n, 7);
	ck_assert(cs_frame_u64_of(&m, 1, 7) == 1000);
	ck_assert(cs_frame_u64_of(&m, 4, 7) == UINT64_MAX);
	ck_assert(cs_frame_u64_of(&m, 9, 7) == 7);
	ck_assert_str_eq(cs_frame_str_of(&m, 2), "h\xc3\xa9llo \xf0\x9f\x94\x91");
	ck_assert_ptr_null(cs_frame_str_of(&m, 9));
	ck_assert_uint_eq(cs_frame_count(&m, 3), 2);
	f = cs_frame_get(&m, 3, 0);
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(f->n, sizeof(der));
	ck_assert_mem_eq(f->p, der, sizeof(der));
	f = cs_frame_get(&m, 3, 1);
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(f->n, 0);
	ck_assert_ptr_null(cs_frame_get(&m, 3, 2));
	ck_assert_uint_eq(cs_frame_count(&m, 5), 2);
	ck_assert_str_eq((const char *)cs_frame_get(&m, 5, 0)->p, "");
	ck_assert_uint_eq(cs_frame_get(&m, 5, 1)->n, 10);
	/* Fields in the frame's order. */
	ck_assert_uint_eq(m.f[0].tag, 1);
	ck_assert_uint_eq(m.f[6].tag, 5);
	cs_frame_msg_free(&m);
	cs_frame_msg_free(&m);          /* twice is harmless */

	/* A message with only its required field; the buffer reused. */
	cs_frame_begin(&b, T_HELLO, 0);
	cs_frame_u64(&b, 1, 0);
	end_parsed(&b, &m);
	ck_assert_uint_eq(b.n, 14 + 6 + 8);
	ck_assert(m.id == 0);
	ck_assert_ptr_null(cs_frame_str_of(&m, 2));
	cs_frame_msg_free(&m);
	cs_frame_buf_free(&b);
}
END_TEST

START_TEST(test_writer_limits)
{
	struct cs_frame_buf b = { 0 };
	struct cs_frame_msg m;
	unsigned char *big = calloc(1, CS_FRAME_MAX);

	ck_assert_ptr_nonnull(big);
	/* Exactly CS_FRAME_MAX bytes: written and read. */
	cs_frame_begin(&b, T_BIG, 1);
	cs_frame_bytes(&b, 1, big, CS_FRAME_MAX - CS_FRAME_HDR - 6);
	end_parsed(&b, &m);
	ck_assert_uint_eq(b.n, CS_FRAME_MAX);
	ck_assert_uint_eq(cs_frame_get(&m, 1, 0)->n, CS_FRAME_MAX - CS_FRAME_HDR - 6);
	cs_frame_msg_free(&m);
	/* One byte more: -EMSGSIZE, sticky. */
	cs_frame_begin(&b, T_BIG, 1);
	cs_frame_bytes(&b, 1, big, CS_FRAME_MAX - CS_FRAME_HDR - 5);
	ck_assert_int_eq(b.err, -EMSGSIZE);
	cs_frame_u64(&b, 2, 1);
	ck_assert_int_eq(cs_frame_end(&b), -EMSGSIZE);
	/* begin starts afresh. */
	cs_frame_begin(&b, T_BIG, 1);
	cs_frame_bytes(&b, 1, big, CS_FRAME_MAX);
	ck_assert_int_eq(cs_frame_end(&b), -EMSGSIZE);
	cs_frame_begin(&b, T_BIG, 1);
	cs_frame_bytes(&b, 1, "x", 1);
	ck_assert_int_eq(cs_frame_end(&b), 0);
	/* A frame over CS_FRAME_MAX is refused by the reader too. */
	{
		size_t n = CS_FRAME_MAX + 1;
		unsigned char *p = calloc(1, n);

		ck_assert_ptr_nonnull(p);
		p[1] = 0x10;
		p[3] = 0x01;    /* length n - 4 */
		p[5] = T_BIG;
		refused(p, n, "over the limit");
		free(p);
	}
	cs_frame_buf_free(&b);
	free(big);
}
END_TEST

/* Sets the length prefix of p (n bytes) to v. */
static void set_prefix(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* Starts a hello (id 1) with its required tag. */
static void hello_begin(struct cs_frame_buf *b)
{
	cs_frame_begin(b, T_HELLO, 1);
	cs_frame_u64(b, 1, 5);
}

START_TEST(test_strict)
{
	struct cs_frame_buf b = { 0 };
	struct cs_frame_msg m;
	unsigned char raw[64];

	/* The length prefix must be n - 4. */
	hello_begin(&b);
	ck_assert_int_eq(cs_frame_end(&b), 0);
	memcpy(raw, b.p, b.n);
	set_prefix(raw, (uint32_t)b.n - 3);
	refused(raw, b.n, "truncated: the length prefix says 25 bytes, 24 follow");
	set_prefix(raw, (uint32_t)b.n - 5);
	refused(raw, b.n, "1 trailing bytes");
	refused(raw, 3, "too short for its length prefix");
	set_prefix(raw, 9);
	refused(raw, 13, "truncated header");

	/* Unknown type, unknown tag. */
	cs_frame_begin(&b, 99, 1);
	end_refused(&b, "frame: unknown type 99");
	hello_begin(&b);
	cs_frame_u64(&b, 9, 5);
	end_refused(&b, "hello: unknown tag 9");

	/* U64: 8 bytes, not above max. */
	cs_frame_begin(&b, T_HELLO, 1);
	cs_frame_bytes(&b, 1, "abc", 3);
	end_refused(&b, "hello: tag 1 (U64) is 3 bytes long, not 8");
	cs_frame_begin(&b, T_HELLO, 1);
	cs_frame_bytes(&b, 1, "abcdefghi", 9);
	end_refused(&b, "hello: tag 1 (U64) is 9 bytes long, not 8");
	cs_frame_begin(&b, T_HELLO, 1);
	cs_frame_u64(&b, 1, 1001);
	end_refused(&b, "hello: tag 1 (U64) is 1001, above its max 1000");

	/* STR: no NUL, UTF-8, not over max. */
	hello_begin(&b);
	cs_frame_bytes(&b, 2, "a\0b", 3);
	end_refused(&b, "hello: tag 2 (STR) holds a NUL at byte 1");
	hello_begin(&b);
	cs_frame_str(&b, 2, "0123456789abcdefg");
	end_refused(&b, "hello: tag 2 (STR) is 17 bytes long, over its max 16");
	hello_begin(&b);
	cs_frame_str(&b, 2, "0123456789abcdef");
	end_parsed(&b, &m);
	cs_frame_msg_free(&m);

	/* BYTES: not over max. */
	{
		unsigned char z[65] = { 0 };

		hello_begin(&b);
		cs_frame_bytes(&b, 3, z, 64);
		cs_frame_bytes(&b, 3, z, 65);
		end_refused(&b, "hello: tag 3 (BYTES) is 65 bytes long, over its max 64");
	}

	/* A tag that is not repeated, twice; a required tag missing. */
	hello_begin(&b);
	cs_frame_str(&b, 2, "a");
	cs_frame_str(&b, 2, "b");
	end_refused(&b, "hello: tag 2 twice");
	hello_begin(&b);
	cs_frame_u64(&b, 1, 5);
	end_refused(&b, "hello: tag 1 twice");
	cs_frame_begin(&b, T_HELLO, 1);
	cs_frame_str(&b, 2, "a");
	end_refused(&b, "hello: required tag 1 (U64) missing");
	cs_frame_begin(&b, T_BIG, 1);
	end_refused(&b, "big: required tag 1 (BYTES) missing");

	/* CS_FRAME_FIELDS_MAX fields, not one more. */
	cs_frame_begin(&b, T_MANY, 1);
	for (int i = 0; i < CS_FRAME_FIELDS_MAX; i++)
		cs_frame_bytes(&b, 1, "x", 1);
	end_parsed(&b, &m);
	ck_assert_uint_eq(cs_frame_count(&m, 1), CS_FRAME_FIELDS_MAX);
	cs_frame_msg_free(&m);
	cs_frame_bytes(&b, 1, "x", 1);
	end_refused(&b, "many: more than 128 fields");

	/* Truncated field header, truncated field data. */
	hello_begin(&b);
	ck_assert_int_eq(cs_frame_end(&b), 0);
	memcpy(raw, b.p, b.n);
	memcpy(raw + b.n, "\0\3\0", 3);
	set_prefix(raw, (uint32_t)b.n + 3 - 4);
	refused(raw, b.n + 3, "hello: truncated field header at byte 28");
	memcpy(raw + b.n, "\0\3\0\0\0\12ab", 8);
	set_prefix(raw, (uint32_t)b.n + 8 - 4);
	refused(raw, b.n + 8, "hello: tag 3 truncated: 10 bytes said, 2 left");
	memcpy(raw + b.n, "\0\3\xff\xff\xff\xff", 6);
	set_prefix(raw, (uint32_t)b.n + 6 - 4);
	refused(raw, b.n + 6, "hello: tag 3 truncated: 4294967295 bytes said, 0 left");
	cs_frame_buf_free(&b);
}
END_TEST

/* Strings that are not UTF-8 as RFC 3629 has it, and some that are. */
static const char *const bad_utf8[] = {
	"\x80", "\xbf", "\xc0\xaf", "\xc1\xbf", "\xc3", "\xc3(", "\xe0\x80\xaf",
	"\xe0\x9f\xbf", "\xed\xa0\x80", "\xed\xbf\xbf", "\xef\xbf", "\xf0\x80\x80\xaf",
	"\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xf8\x88\x80\x80\x80",
	"\xfe", "\xff", "ok\xe2\x82", "\xe2\x28\xa1",
};
static const char *const good_utf8[] = {
	"", "plain ascii", "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xed\x9f\xbf",
	"\xee\x80\x80", "\xef\xbf\xbf", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf", "\x7f",
};

START_TEST(test_utf8_bad)
{
	struct cs_frame_buf b = { 0 };

	hello_begin(&b);
	cs_frame_str(&b, 5, bad_utf8[_i]);
	end_refused(&b, "hello: tag 5 (STR) is not UTF-8 at byte");
	cs_frame_buf_free(&b);
}
END_TEST

START_TEST(test_utf8_good)
{
	struct cs_frame_buf b = { 0 };
	struct cs_frame_msg m;

	hello_begin(&b);
	cs_frame_str(&b, 5, good_utf8[_i]);
	end_parsed(&b, &m);
	ck_assert_str_eq(cs_frame_str_of(&m, 5), good_utf8[_i]);
	cs_frame_msg_free(&m);
	cs_frame_buf_free(&b);
}
END_TEST

/*
 * Every truncation of a valid frame is refused: as it comes (the length
 * prefix no longer matches), and with the prefix made to match, unless the
 * cut falls between two fields and what is left is a whole message.
 */
START_TEST(test_truncations)
{
	struct cs_frame_buf b = { 0 };
	struct cs_frame_msg m;
	size_t bounds[8], nb = 0;
	char err[256];
	unsigned char *p;

	cs_frame_begin(&b, T_HELLO, 42);
	bounds[nb++] = b.n;
	cs_frame_u64(&b, 1, 7);
	bounds[nb++] = b.n;
	cs_frame_str(&b, 2, "\xc3\xa9t\xc3\xa9");
	bounds[nb++] = b.n;
	cs_frame_bytes(&b, 3, "\x30\x00", 2);
	bounds[nb++] = b.n;
	cs_frame_str(&b, 5, "\xf0\x9f\x94\x91");
	bounds[nb++] = b.n;
	cs_frame_u64(&b, 4, 1);
	ck_assert_int_eq(cs_frame_end(&b), 0);
	p = malloc(b.n);
	ck_assert_ptr_nonnull(p);
	for (size_t cut = 0; cut < b.n; cut++) {
		bool boundary = false;
		int rc;

		/* Copied to a buffer of exactly cut bytes: ASan sees any read beyond. */
		unsigned char *q = malloc(cut ? cut : 1);

		ck_assert_ptr_nonnull(q);
		memcpy(q, b.p, cut);
		ck_assert_int_eq(cs_frame_parse(&schema, q, cut, &m, err, sizeof(err)), -EBADMSG);
		if (cut >= 4) {
			set_prefix(q, (uint32_t)(cut - 4));
			for (size_t i = 1; i < nb; i++)
				boundary |= bounds[i] == cut;
			rc = cs_frame_parse(&schema, q, cut, &m, err, sizeof(err));
			if (boundary) {
				ck_assert_msg(rc == 0, "cut %zu: %s", cut, err);
				cs_frame_msg_free(&m);
			} else {
				ck_assert_msg(rc == -EBADMSG, "cut %zu accepted", cut);
			}
		}
		free(q);
	}
	free(p);
	cs_frame_buf_free(&b);
}
END_TEST

/* ---- the channel ---- */

/* One end of a channel test. */
struct side {
	cs_chan *c;
	struct side *peer;
	unsigned expect;        /* frames to receive, then done */
	unsigned got;
	uint64_t next_id;       /* frames arrive in order */
	size_t bytes;
	bool done;
	bool close_on_frame;    /* closes itself in its first frame callback */
	bool keep_fds;          /* does not take descriptors */
	bool open_on_error;     /* the error callback does not close the channel */
	uint64_t fd_ids;        /* frames (id < 64) that came with a descriptor */
	int errors;
	int status;
	char why[160];
};

static uv_loop_t loop;

/* A frame of type big, id, with a BYTES field of len bytes, each the id's low byte. */
static void big_frame(struct cs_frame_buf *b, uint64_t id, size_t len)
{
	unsigned char *d = malloc(len ? len : 1);

	ck_assert_ptr_nonnull(d);
	memset(d, (int)(id & 0xff), len);
	cs_frame_begin(b, T_BIG, id);
	cs_frame_bytes(b, 1, d, len);
	ck_assert_int_eq(cs_frame_end(b), 0);
	free(d);
}

static void side_frame(void *arg, const unsigned char *p, size_t n)
{
	struct side *s = arg;
	struct cs_frame_msg m;
	const struct cs_frame_field *f;
	char err[256];
	bool same = true;

	ck_assert_msg(!s->done && s->errors == 0, "frame after the end");
	ck_assert_msg(cs_frame_parse(&schema, p, n, &m, err, sizeof(err)) == 0, "%s", err);
	ck_assert(m.id == s->next_id);
	f = cs_frame_get(&m, 1, 0);
	/* One assertion for the lot: Check writes every assertion's place to a pipe. */
	for (size_t i = 0; i < f->n; i++)
		same &= f->p[i] == (m.id & 0xff);
	ck_assert_msg(same, "frame %llu: its bytes changed", (unsigned long long)m.id);
	s->next_id++;
	s->got++;
	s->bytes += n;
	cs_frame_msg_free(&m);
	if (!s->keep_fds) {
		/* A descriptor with this frame: a pipe's write end, to be used. */
		int fd = cs_chan_take_fd(s->c);
		char c = (char)('0' + (m.id & 0x3f));

		if (fd >= 0) {
			ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
			ck_assert_int_eq(write(fd, &c, 1), 1);
			close(fd);
			s->fd_ids |= 1ull << (m.id & 0x3f);
		}
		ck_assert_int_eq(cs_chan_take_fd(s->c), -1);
	}
	if (s->close_on_frame) {
		cs_chan_close(s->c);
		s->c = NULL;
		return;
	}
	if (s->got == s->expect) {
		s->done = true;
		if (s->peer == NULL || s->peer->done) {
			cs_chan_close(s->c);
			s->c = NULL;
			if (s->peer != NULL) {
				cs_chan_close(s->peer->c);
				s->peer->c = NULL;
			}
		}
	}
}

static void side_error(void *arg, int status, const char *why)
{
	struct side *s = arg;

	s->errors++;
	s->status = status;
	snprintf(s->why, sizeof(s->why), "%s", why);
	if (s->open_on_error)
		return;
	cs_chan_close(s->c);
	s->c = NULL;
}

/* Two channels over a socketpair, a and b, on the test's loop. */
static void pair(struct side *a, struct side *b, size_t max_a, size_t max_b)
{
	int sv[2], sndbuf = 0;
	socklen_t len = sizeof(sndbuf);

	memset(a, 0, sizeof(*a));
	memset(b, 0, sizeof(*b));
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	/* A frame of CS_FRAME_MAX bytes is more than one write takes. */
	ck_assert_int_eq(getsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, &len), 0);
	ck_assert_int_lt(sndbuf, CS_FRAME_MAX);
	a->c = cs_chan_open(&loop, sv[0], max_a, side_frame, side_error, a);
	b->c = cs_chan_open(&loop, sv[1], max_b, side_frame, side_error, b);
	ck_assert_ptr_nonnull(a->c);
	ck_assert_ptr_nonnull(b->c);
	ck_assert(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
	ck_assert(fcntl(sv[1], F_GETFD) & FD_CLOEXEC);
	a->peer = b;
	b->peer = a;
}

/* Runs the loop until every handle closed, and closes it. */
static void run_out(void)
{
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}

/* One end only: a channel on sv[1], the raw socket sv[0] returned. */
static int half(struct side *b, size_t max)
{
	int sv[2];

	memset(b, 0, sizeof(*b));
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	b->c = cs_chan_open(&loop, sv[1], max, side_frame, side_error, b);
	ck_assert_ptr_nonnull(b->c);
	return sv[0];
}

START_TEST(test_chan_many)
{
	struct side a, b;
	struct cs_frame_buf fb = { 0 };
	size_t sent_ab = 0, sent_ba = 0;
	const unsigned n = 300;

	pair(&a, &b, CS_FRAME_MAX, CS_FRAME_MAX);
	a.expect = b.expect = n + 1;
	for (unsigned i = 0; i < n; i++) {
		big_frame(&fb, i, (i * 7919u) % 6000);
		ck_assert_int_eq(cs_chan_send(a.c, fb.p, fb.n, -1), 0);
		sent_ab += fb.n;
		big_frame(&fb, i, (i * 104729u) % 3000);
		ck_assert_int_eq(cs_chan_send(b.c, fb.p, fb.n, -1), 0);
		sent_ba += fb.n;
		if (i == n / 2) {
			/* One frame of CS_FRAME_MAX bytes each way, more than the socket buffer. */
			big_frame(&fb, ++i, CS_FRAME_MAX - CS_FRAME_HDR - 6);
			ck_assert_uint_eq(fb.n, CS_FRAME_MAX);
			ck_assert_int_eq(cs_chan_send(a.c, fb.p, fb.n, -1), 0);
			ck_assert_int_eq(cs_chan_send(b.c, fb.p, fb.n, -1), 0);
			sent_ab += fb.n;
			sent_ba += fb.n;
		}
	}
	big_frame(&fb, n, 1);
	ck_assert_int_eq(cs_chan_send(a.c, fb.p, fb.n, -1), 0);
	ck_assert_int_eq(cs_chan_send(b.c, fb.p, fb.n, -1), 0);
	sent_ab += fb.n;
	sent_ba += fb.n;
	cs_frame_buf_free(&fb);
	run_out();
	ck_assert_uint_eq(b.got, n + 1);
	ck_assert_uint_eq(a.got, n + 1);
	ck_assert_uint_eq(b.bytes, sent_ab);
	ck_assert_uint_eq(a.bytes, sent_ba);
	ck_assert_int_eq(a.errors + b.errors, 0);
}
END_TEST

/* Frames of 1 MiB until the queue is full: -ENOBUFS, and all accepted ones arrive. */
START_TEST(test_chan_queue_limit)
{
	struct side a, b;
	struct cs_frame_buf fb = { 0 };
	unsigned ok = 0;
	int rc = 0;

	pair(&a, &b, CS_FRAME_MAX, CS_FRAME_MAX);
	for (unsigned i = 0; i < 20; i++) {
		big_frame(&fb, i, CS_FRAME_MAX - CS_FRAME_HDR - 6);
		rc = cs_chan_send(a.c, fb.p, fb.n, -1);
		if (rc < 0)
			break;
		ok++;
	}
	ck_assert_int_eq(rc, -ENOBUFS);
	ck_assert_uint_ge(ok, 8);
	ck_assert_uint_le(ok, 9);
	/* Small frames still fit. */
	big_frame(&fb, ok, 10);
	ck_assert_int_eq(cs_chan_send(a.c, fb.p, fb.n, -1), 0);
	cs_frame_buf_free(&fb);
	a.expect = 0;
	a.done = true;
	b.expect = ok + 1;
	run_out();
	ck_assert_uint_eq(b.got, ok + 1);
	ck_assert_int_eq(a.errors + b.errors, 0);
}
END_TEST

/*
 * Over c: frame 0 with p1's write end (sent at once), frame 1 of 1 MiB (the
 * rest of it queued), frame 2 with p2's write end (queued: dup'ed). The
 * write ends are closed here.
 */
static void send_fds(cs_chan *c, int p1[2], int p2[2])
{
	struct cs_frame_buf fb = { 0 };

	ck_assert_int_eq(pipe(p1), 0);
	ck_assert_int_eq(pipe(p2), 0);
	big_frame(&fb, 0, 5);
	ck_assert_int_eq(cs_chan_send(c, fb.p, fb.n, p1[1]), 0);
	close(p1[1]);
	big_frame(&fb, 1, CS_FRAME_MAX - CS_FRAME_HDR - 6);
	ck_assert_int_eq(cs_chan_send(c, fb.p, fb.n, -1), 0);
	big_frame(&fb, 2, 5);
	ck_assert_int_eq(cs_chan_send(c, fb.p, fb.n, p2[1]), 0);
	close(p2[1]);
	cs_frame_buf_free(&fb);
}

/*
 * Descriptors sent at once and behind a queued 1 MiB frame. Taken (_i 0):
 * they come with their frames, close-on-exec, and work. Not taken (_i 1):
 * they are closed with the channel.
 */
START_TEST(test_chan_fd)
{
	struct side a, b;
	int p1[2], p2[2];
	char c;

	pair(&a, &b, CS_FRAME_MAX, CS_FRAME_MAX);
	send_fds(a.c, p1, p2);
	b.keep_fds = _i == 1;
	b.expect = 3;
	b.peer = NULL;          /* b closes only itself */
	run_out();
	ck_assert_uint_eq(b.got, 3);
	ck_assert_int_eq(a.errors, 1);  /* EOF when b closed */
	ck_assert_int_eq(a.status, 0);
	if (_i == 0) {
		ck_assert_uint_eq(b.fd_ids, 1u << 0 | 1u << 2);        /* frame 1 had none */
		ck_assert_int_eq(read(p1[0], &c, 1), 1);
		ck_assert_int_eq(c, '0');
		ck_assert_int_eq(read(p2[0], &c, 1), 1);
		ck_assert_int_eq(c, '2');
	}
	/* Every write end is closed now. */
	ck_assert_int_eq(read(p1[0], &c, 1), 0);
	ck_assert_int_eq(read(p2[0], &c, 1), 0);
	close(p1[0]);
	close(p2[0]);
}
END_TEST

/* Five descriptors not taken: the fifth ends the channel with -EBADMSG. */
START_TEST(test_chan_too_many_fds)
{
	struct side a, b;
	struct cs_frame_buf fb = { 0 };
	int p[2];

	pair(&a, &b, CS_FRAME_MAX, CS_FRAME_MAX);
	ck_assert_int_eq(pipe(p), 0);
	for (int i = 0; i < 5; i++) {
		big_frame(&fb, (uint64_t)i, 1);
		ck_assert_int_eq(cs_chan_send(a.c, fb.p, fb.n, p[1]), 0);
	}
	close(p[1]);
	cs_frame_buf_free(&fb);
	b.keep_fds = true;
	b.expect = 100;
	run_out();
	ck_assert_uint_eq(b.got, 4);
	ck_assert_int_eq(b.errors, 1);
	ck_assert_int_eq(b.status, -EBADMSG);
	ck_assert_int_eq(a.status, 0);
	/* Every copy of the write end closed: b's untaken ones too. */
	{
		char c;

		ck_assert_int_eq(read(p[0], &c, 1), 0);
	}
	close(p[0]);
}
END_TEST

/* EOF after whole frames: 0; in the middle of a frame: -EPIPE. */
START_TEST(test_chan_eof)
{
	struct side b;
	struct cs_frame_buf fb = { 0 };
	int s = half(&b, CS_FRAME_MAX);

	b.expect = 100;
	big_frame(&fb, 0, 10);
	ck_assert_int_eq(write(s, fb.p, fb.n), (ssize_t)fb.n);
	big_frame(&fb, 1, 20);
	ck_assert_int_eq(write(s, fb.p, fb.n), (ssize_t)fb.n);
	close(s);
	run_out();
	ck_assert_uint_eq(b.got, 2);
	ck_assert_int_eq(b.errors, 1);
	ck_assert_int_eq(b.status, 0);
	ck_assert_str_eq(b.why, "peer closed");

	s = half(&b, CS_FRAME_MAX);
	b.expect = 100;
	big_frame(&fb, 0, 10);
	ck_assert_int_eq(write(s, fb.p, fb.n), (ssize_t)fb.n);
	ck_assert_int_eq(write(s, fb.p, fb.n - 1), (ssize_t)fb.n - 1);
	close(s);
	run_out();
	ck_assert_uint_eq(b.got, 1);
	ck_assert_int_eq(b.errors, 1);
	ck_assert_int_eq(b.status, -EPIPE);

	/* A cut length prefix is the middle of a frame too. */
	s = half(&b, CS_FRAME_MAX);
	ck_assert_int_eq(write(s, "\0\0", 2), 2);
	close(s);
	run_out();
	ck_assert_int_eq(b.status, -EPIPE);
	cs_frame_buf_free(&fb);
}
END_TEST

/* Frames written a byte at a time, the loop turned between: each handed over once whole. */
START_TEST(test_chan_bytewise)
{
	struct side b;
	struct cs_frame_buf fb = { 0 };
	int s = half(&b, CS_FRAME_MAX);

	b.expect = 100;
	for (uint64_t id = 0; id < 3; id++) {
		big_frame(&fb, id, (size_t)id * 5);
		for (size_t i = 0; i < fb.n; i++) {
			ck_assert_uint_eq(b.got, id);
			ck_assert_int_eq(write(s, fb.p + i, 1), 1);
			uv_run(&loop, UV_RUN_NOWAIT);
		}
		ck_assert_uint_eq(b.got, id + 1);
	}
	cs_frame_buf_free(&fb);
	close(s);
	run_out();
	ck_assert_int_eq(b.status, 0);
}
END_TEST

/* More descriptors in one message than the channel keeps: -EBADMSG, none left open. */
START_TEST(test_chan_fd_flood)
{
	struct side b;
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 6)];
	} ctl;
	struct cs_frame_buf fb = { 0 };
	struct iovec iov;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;
	int p[2], fds[6], s = half(&b, CS_FRAME_MAX);
	char c;

	ck_assert_int_eq(pipe(p), 0);
	for (int i = 0; i < 6; i++)
		fds[i] = p[1];
	big_frame(&fb, 0, 1);
	iov.iov_base = fb.p;
	iov.iov_len = fb.n;
	memset(&ctl, 0, sizeof(ctl));
	mh.msg_control = ctl.buf;
	mh.msg_controllen = sizeof(ctl.buf);
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(cm), fds, sizeof(fds));
	ck_assert_int_eq(sendmsg(s, &mh, 0), (ssize_t)fb.n);
	close(p[1]);
	cs_frame_buf_free(&fb);
	b.expect = 100;
	run_out();
	ck_assert_uint_eq(b.got, 0);
	ck_assert_int_eq(b.status, -EBADMSG);
	ck_assert_int_eq(read(p[0], &c, 1), 0);
	close(p[0]);
	close(s);
}
END_TEST

/* A length prefix over the limit: -EMSGSIZE at once, the body never sent. */
START_TEST(test_chan_oversize)
{
	struct side b;
	unsigned char hdr[4], *p;
	int s = half(&b, 1024);

	b.expect = 100;
	set_prefix(hdr, 0x40000000);
	ck_assert_int_eq(write(s, hdr, 4), 4);
	run_out();                      /* returns: s stays open, nothing else comes */
	ck_assert_int_eq(b.errors, 1);
	ck_assert_int_eq(b.status, -EMSGSIZE);
	ck_assert_uint_eq(b.got, 0);
	close(s);

	/* max_frame bytes exactly pass; one more does not. */
	p = calloc(1, 1025);
	ck_assert_ptr_nonnull(p);
	s = half(&b, 1024);
	b.expect = 100;
	set_prefix(p, 1020);
	p[5] = T_BIG;
	p[14 + 1] = 1;          /* tag 1 */
	p[14 + 4] = (1020 - 10 - 6) >> 8;
	p[14 + 5] = (1020 - 10 - 6) & 0xff;
	ck_assert_int_eq(write(s, p, 1024), 1024);
	set_prefix(p, 1021);
	ck_assert_int_eq(write(s, p, 1025), 1025);
	run_out();
	ck_assert_uint_eq(b.got, 1);
	ck_assert_int_eq(b.status, -EMSGSIZE);
	close(s);
	free(p);
}
END_TEST

/* Closing inside the frame callback: no frame and no error after it. */
START_TEST(test_chan_close_in_cb)
{
	struct side b;
	struct cs_frame_buf fb = { 0 };
	unsigned char all[4096];
	size_t n = 0;
	int s = half(&b, CS_FRAME_MAX);

	for (int i = 0; i < 5; i++) {
		big_frame(&fb, (uint64_t)i, 30);
		memcpy(all + n, fb.p, fb.n);
		n += fb.n;
	}
	cs_frame_buf_free(&fb);
	ck_assert_int_eq(write(s, all, n), (ssize_t)n);     /* one read holds all five */
	b.close_on_frame = true;
	run_out();
	ck_assert_uint_eq(b.got, 1);
	ck_assert_int_eq(b.errors, 0);
	/* The channel closed its end. */
	ck_assert_int_eq(read(s, all, sizeof(all)), 0);
	close(s);

	/* Bytes whose prefix is not their length; sending on a dead channel. */
	{
		struct side a, c;
		unsigned char f[CS_FRAME_HDR] = { 0, 0, 0, 10 };

		pair(&a, &c, CS_FRAME_MAX, CS_FRAME_MAX);
		a.open_on_error = true;
		ck_assert_int_eq(cs_chan_send(c.c, f, sizeof(f) - 1, -1), -EINVAL);
		ck_assert_int_eq(cs_chan_send(c.c, f, 3, -1), -EINVAL);
		cs_chan_close(c.c);
		c.c = NULL;
		uv_run(&loop, UV_RUN_ONCE);    /* a sees EOF */
		ck_assert_int_eq(a.errors, 1);
		ck_assert_int_eq(a.status, 0);
		ck_assert_int_eq(cs_chan_send(a.c, f, sizeof(f), -1), -EPIPE);
		cs_chan_close(a.c);
		run_out();
		ck_assert_int_eq(a.errors, 1);
	}
}
END_TEST

Suite *frame_suite(void)
{
	Suite *s = suite_create("frame");
	TCase *tc = tcase_create("codec");
	TCase *ch = tcase_create("chan");

	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_writer_limits);
	tcase_add_test(tc, test_strict);
	tcase_add_loop_test(tc, test_utf8_bad, 0, (int)(sizeof(bad_utf8) / sizeof(bad_utf8[0])));
	tcase_add_loop_test(tc, test_utf8_good, 0, (int)(sizeof(good_utf8) / sizeof(good_utf8[0])));
	tcase_add_test(tc, test_truncations);
	suite_add_tcase(s, tc);
	tcase_add_test(ch, test_chan_many);
	tcase_add_test(ch, test_chan_queue_limit);
	tcase_add_loop_test(ch, test_chan_fd, 0, 2);
	tcase_add_test(ch, test_chan_too_many_fds);
	tcase_add_test(ch, test_chan_eof);
	tcase_add_test(ch, test_chan_bytewise);
	tcase_add_test(ch, test_chan_fd_flood);
	tcase_add_test(ch, test_chan_oversize);
	tcase_add_test(ch, test_chan_close_in_cb);
	tcase_set_timeout(ch, 60);
	suite_add_tcase(s, ch);
	return s;
}
