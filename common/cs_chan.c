/*
 * cs_chan - frames over one end of a Unix socketpair on the libuv loop
 * (cs_chan.h). Reads go into one buffer that holds at least the frame being
 * received: every complete frame in it is handed over at once, a length
 * prefix over the limit ends the channel before its body is waited for.
 * Writes go out at once as far as the socket takes them; the rest waits in
 * a queue drained when uv_poll says the socket is writable.
 */
#include "cs_chan.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#define RBUF_MIN (64u << 10)    /* the read buffer between big frames */
#define READS_PER_POLL 16       /* then other handles get their turn */

/* One frame, or what is left of it, waiting to be written. */
struct out {
	STAILQ_ENTRY(out) link;
	size_t n, off;
	int fd;                 /* ours (a dup), sent with data[0]; -1: none or sent */
	unsigned char data[];
};

struct cs_chan {
	uv_poll_t poll;
	int fd;
	int events;             /* what poll watches now; 0: stopped */
	size_t max_frame;
	cs_chan_frame_cb on_frame;
	cs_chan_error_cb on_error;
	void *arg;
	bool closed;            /* cs_chan_close called: no callback any more */
	bool dead;              /* the error callback was called */
	int werr;               /* a write failed in cs_chan_send: reported from the poll */
	unsigned char *rbuf;    /* received bytes: rbuf[roff..rlen) not handed over yet */
	size_t roff, rlen, rcap;
	int fds[CS_CHAN_FDS_MAX]; /* received descriptors, oldest first */
	size_t nfds;
	STAILQ_HEAD(, out) outq;
	size_t queued;          /* bytes in outq not written */
	char why[160];
};

static void on_poll(uv_poll_t *h, int status, int events);
static void on_closed(uv_handle_t *h);

/* Watches what the channel now waits for: reads always, writes when queued. */
static void update_poll(cs_chan *c)
{
	int ev = UV_READABLE;

	if (c->closed || c->dead)
		return;
	if (!STAILQ_EMPTY(&c->outq) || c->werr != 0)
		ev |= UV_WRITABLE;
	if (ev == c->events)
		return;
	if (uv_poll_start(&c->poll, ev, on_poll) == 0)
		c->events = ev;
}

/* The channel is dead: stops it and tells the owner, once. */
__attribute__((format(printf, 3, 4)))
static void fail(cs_chan *c, int status, const char *fmt, ...)
{
	va_list ap;

	if (c->closed || c->dead)
		return;
	c->dead = true;
	uv_poll_stop(&c->poll);
	c->events = 0;
	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
	c->on_error(c->arg, status, c->why);
}

cs_chan *cs_chan_open(uv_loop_t *loop, int fd, size_t max_frame, cs_chan_frame_cb on_frame,
		      cs_chan_error_cb on_error, void *arg)
{
	cs_chan *c;
	int fl, rc;

	if (fd < 0 || max_frame < 4 || on_frame == NULL || on_error == NULL) {
		errno = EINVAL;
		return NULL;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->rcap = RBUF_MIN;
	c->rbuf = malloc(c->rcap);
	if (c->rbuf == NULL) {
		free(c);
		errno = ENOMEM;
		return NULL;
	}
	c->fd = fd;
	c->max_frame = max_frame;
	c->on_frame = on_frame;
	c->on_error = on_error;
	c->arg = arg;
	STAILQ_INIT(&c->outq);
	rc = uv_poll_init(loop, &c->poll, fd);
	if (rc < 0) {
		free(c->rbuf);
		free(c);
		errno = -rc;
		return NULL;
	}
	c->poll.data = c;
	rc = uv_poll_start(&c->poll, UV_READABLE, on_poll);
	if (rc < 0) {
		/* The handle must close before c goes: the caller keeps fd. */
		c->closed = true;
		c->fd = -1;
		uv_close((uv_handle_t *)&c->poll, on_closed);
		errno = -rc;
		return NULL;
	}
	c->events = UV_READABLE;
	return c;
}

/* Keeps the descriptors of one received control message; false if one had to go. */
static bool keep_fds(cs_chan *c, struct msghdr *mh)
{
	bool ok = !(mh->msg_flags & MSG_CTRUNC);

	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm != NULL; cm = CMSG_NXTHDR(mh, cm)) {
		size_t k;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
		    cm->cmsg_len < CMSG_LEN(0))
			continue;
		k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (c->nfds < CS_CHAN_FDS_MAX) {
				c->fds[c->nfds++] = fd;
			} else {
				close(fd);
				ok = false;
			}
		}
	}
	return ok;
}

/* Room in rbuf, from rbuf[0], for a frame of total bytes; false on ENOMEM. */
static bool make_room(cs_chan *c, size_t total)
{
	unsigned char *nb;

	if (c->roff > 0) {
		memmove(c->rbuf, c->rbuf + c->roff, c->rlen - c->roff);
		c->rlen -= c->roff;
		c->roff = 0;
	}
	if (total <= c->rcap)
		return true;
	nb = realloc(c->rbuf, total);
	if (nb == NULL)
		return false;
	c->rbuf = nb;
	c->rcap = total;
	return true;
}

/*
 * Hands over every complete frame in rbuf. Returns false when the channel
 * stopped (closed by a callback, or dead).
 */
static bool dispatch(cs_chan *c)
{
	while (c->rlen - c->roff >= 4) {
		const unsigned char *p = c->rbuf + c->roff;
		uint64_t total = 4 + ((uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 |
				      (uint64_t)p[2] << 8 | p[3]);

		if (total > c->max_frame) {
			fail(c, -EMSGSIZE, "a frame of %llu bytes, over the limit of %zu",
			     (unsigned long long)total, c->max_frame);
			return false;
		}
		if (c->rlen - c->roff < total) {
			if (c->rcap - c->roff < total && !make_room(c, (size_t)total)) {
				fail(c, -ENOMEM, "no memory for a frame of %llu bytes",
				     (unsigned long long)total);
				return false;
			}
			return true;
		}
		c->roff += (size_t)total;
		c->on_frame(c->arg, p, (size_t)total);
		if (c->closed || c->dead)
			return false;
	}
	/* Everything handed over: give back what a big frame took. */
	if (c->roff == c->rlen) {
		c->roff = c->rlen = 0;
		if (c->rcap > RBUF_MIN) {
			unsigned char *nb = realloc(c->rbuf, RBUF_MIN);

			if (nb != NULL) {
				c->rbuf = nb;
				c->rcap = RBUF_MIN;
			}
		}
	} else if (c->rlen == c->rcap) {
		make_room(c, c->rcap);  /* a partial header at the end: move it to the front */
	}
	return true;
}

/* Reads what the socket has (a bounded number of times), frames handed over. */
static void do_read(cs_chan *c)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * CS_CHAN_FDS_MAX)];
	} ctl;

	for (int i = 0; i < READS_PER_POLL; i++) {
		struct iovec iov = { c->rbuf + c->rlen, c->rcap - c->rlen };
		struct msghdr mh = {
			.msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = ctl.buf,
			.msg_controllen = sizeof(ctl.buf),
		};
		ssize_t r;

		if (iov.iov_len == 0) {         /* dispatch always leaves room: never here */
			fail(c, -ENOBUFS, "read buffer full");
			return;
		}
		r = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				fail(c, -errno, "read: %s", strerror(errno));
			return;
		}
		if (!keep_fds(c, &mh)) {
			fail(c, -EBADMSG, "descriptors received beyond the %d kept untaken, or cut off",
			     CS_CHAN_FDS_MAX);
			return;
		}
		if (r == 0) {
			if (c->rlen == c->roff)
				fail(c, 0, "peer closed");
			else
				fail(c, -EPIPE, "peer closed in the middle of a frame (%zu bytes of it)",
				     c->rlen - c->roff);
			return;
		}
		c->rlen += (size_t)r;
		if (!dispatch(c))
			return;
	}
}

/* Writes p[0..n) as far as the socket takes it, fd with the first byte; bytes or -errno. */
static ssize_t write_some(cs_chan *c, const unsigned char *p, size_t n, int fd)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { (void *)p, n };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t r;

	if (fd >= 0) {
		struct cmsghdr *cm;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	do
		r = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return r;
}

/* Writes the queue as far as the socket takes it. */
static void flush(cs_chan *c)
{
	struct out *o;

	while ((o = STAILQ_FIRST(&c->outq)) != NULL) {
		ssize_t r = write_some(c, o->data + o->off, o->n - o->off, o->fd);

		if (r == -EAGAIN)
			return;
		if (r < 0) {
			fail(c, (int)r, "write: %s", strerror((int)-r));
			return;
		}
		if (o->fd >= 0 && r > 0) {
			close(o->fd);
			o->fd = -1;
		}
		o->off += (size_t)r;
		c->queued -= (size_t)r;
		if (o->off == o->n) {
			STAILQ_REMOVE_HEAD(&c->outq, link);
			free(o);
		}
	}
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	cs_chan *c = h->data;

	if (c->closed || c->dead)
		return;
	if (status < 0) {
		fail(c, status, "poll: %s", uv_strerror(status));
		return;
	}
	/* What the peer sent before it went comes first. */
	if (events & UV_READABLE) {
		do_read(c);
		if (c->closed || c->dead)
			return;
	}
	if (c->werr != 0) {
		fail(c, c->werr, "write: %s", strerror(-c->werr));
		return;
	}
	if (events & UV_WRITABLE) {
		flush(c);
		if (c->closed || c->dead)
			return;
	}
	update_poll(c);
}

int cs_chan_send(cs_chan *c, const unsigned char *frame, size_t n, int fd)
{
	struct out *o;
	size_t off = 0;

	if (c->closed || c->dead || c->werr != 0)
		return -EPIPE;
	/* A frame whose prefix is not its length would garble the stream for good. */
	if (n < 4 || ((uint64_t)frame[0] << 24 | (uint64_t)frame[1] << 16 |
		      (uint64_t)frame[2] << 8 | frame[3]) != n - 4)
		return -EINVAL;
	if (n > CS_CHAN_QUEUE_MAX || c->queued + n > CS_CHAN_QUEUE_MAX)
		return -ENOBUFS;
	if (STAILQ_EMPTY(&c->outq)) {
		ssize_t r = write_some(c, frame, n, fd);

		if (r < 0 && r != -EAGAIN) {
			c->werr = (int)r;
			update_poll(c);
			return (int)r;
		}
		off = r < 0 ? 0 : (size_t)r;
		if (off == n)
			return 0;
	}
	o = malloc(sizeof(*o) + n - off);
	if (o == NULL)
		goto nomem;
	o->fd = -1;
	if (off == 0 && fd >= 0) {
		o->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		if (o->fd < 0) {
			int e = errno;

			free(o);
			return -e;
		}
	}
	memcpy(o->data, frame + off, n - off);
	o->n = n - off;
	o->off = 0;
	STAILQ_INSERT_TAIL(&c->outq, o, link);
	c->queued += o->n;
	update_poll(c);
	return 0;
nomem:
	if (off > 0) {
		/* Part of the frame is out: the stream cannot go on without the rest. */
		c->werr = -ENOMEM;
		update_poll(c);
	}
	return -ENOMEM;
}

int cs_chan_take_fd(cs_chan *c)
{
	int fd;

	if (c->nfds == 0)
		return -1;
	fd = c->fds[0];
	memmove(c->fds, c->fds + 1, (c->nfds - 1) * sizeof(int));
	c->nfds--;
	return fd;
}

/* The poll handle has closed: nothing refers to c any more. */
static void on_closed(uv_handle_t *h)
{
	cs_chan *c = h->data;
	struct out *o;

	while ((o = STAILQ_FIRST(&c->outq)) != NULL) {
		STAILQ_REMOVE_HEAD(&c->outq, link);
		free(o);
	}
	free(c->rbuf);
	free(c);
}

void cs_chan_close(cs_chan *c)
{
	struct out *o;

	if (c == NULL || c->closed)
		return;
	c->closed = true;
	STAILQ_FOREACH(o, &c->outq, link)
		if (o->fd >= 0) {
			close(o->fd);
			o->fd = -1;
		}
	while (c->nfds > 0)
		close(c->fds[--c->nfds]);
	uv_close((uv_handle_t *)&c->poll, on_closed);
	close(c->fd);
	c->fd = -1;
}
