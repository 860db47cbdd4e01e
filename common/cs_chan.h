/*
 * cs_chan - one end of a SOCK_STREAM socketpair on the libuv loop, carrying
 * cs_frame frames (u32 length prefix first) and, beside a frame, at most one
 * file descriptor (SCM_RIGHTS): the wire between the root parent and the
 * unprivileged network process (#18).
 *
 * The channel only cuts the byte stream into frames and bounds their size;
 * what a frame says is the reader's to check (cs_frame_parse). Reads and
 * writes are non-blocking (uv_poll with recvmsg/sendmsg): a write goes out at
 * once as far as the socket takes it and the rest is queued, in order.
 * Everything runs on the loop thread.
 */
#ifndef CS_CHAN_H
#define CS_CHAN_H

#include <stddef.h>
#include <uv.h>

#define CS_CHAN_QUEUE_MAX (8u << 20)    /* bytes queued for writing, at most */
#define CS_CHAN_FDS_MAX 4               /* received descriptors not yet taken, at most */

typedef struct cs_chan cs_chan;

/*
 * One complete frame (length prefix included, n <= max_frame), valid during
 * the call only. The callback may call cs_chan_close; no frame follows then.
 */
typedef void (*cs_chan_frame_cb)(void *arg, const unsigned char *frame, size_t n);

/*
 * The channel is dead: the peer closed (status 0 for a clean EOF at a frame
 * boundary, -EPIPE in the middle of a frame), a read or write error
 * (-errno), a frame over max_frame (-EMSGSIZE, noticed from its length
 * prefix before its body is read), or a descriptor the channel cannot keep
 * (-EBADMSG: more than CS_CHAN_FDS_MAX untaken, or cut off). why is for the
 * log. Called once, later, on the loop; no frame callback after it. The
 * owner still calls cs_chan_close (inside the callback or later).
 */
typedef void (*cs_chan_error_cb)(void *arg, int status, const char *why);

/*
 * Opens a channel on fd, one end of a SOCK_STREAM Unix socketpair, and
 * starts reading: max_frame bounds a received frame (length prefix included,
 * CS_FRAME_MAX at most is sensible). Takes fd (sets O_NONBLOCK and
 * FD_CLOEXEC on it) when it returns the channel; returns NULL with errno set
 * on failure, and fd is then still the caller's.
 */
cs_chan *cs_chan_open(uv_loop_t *loop, int fd, size_t max_frame, cs_chan_frame_cb on_frame,
		      cs_chan_error_cb on_error, void *arg);

/*
 * Sends one whole frame (n bytes, copied) and, when fd >= 0, that descriptor
 * with the frame's first byte (the caller keeps its fd; the channel dup()s
 * it if it has to wait). Returns 0 when the frame is sent or queued; or
 * -ENOBUFS when it would make more than CS_CHAN_QUEUE_MAX bytes queued,
 * -EPIPE once the channel is dead, -EINVAL for bytes whose length prefix
 * is not n - 4 (they would garble the stream), another
 * -errno for a write that failed (the error callback follows later).
 */
int cs_chan_send(cs_chan *c, const unsigned char *frame, size_t n, int fd);

/*
 * The oldest received descriptor not yet taken (the caller owns it, and it
 * is close-on-exec), or -1. A descriptor arrives with the first byte of its
 * frame, so call this from on_frame for a message type that carries one.
 */
int cs_chan_take_fd(cs_chan *c);

/*
 * Stops at once: no callback after this call. Closes the socket and the
 * descriptors received and not taken or still queued, and drops what was
 * not written; the memory is freed once the poll handle has closed (the
 * loop must run). Safe inside either callback. c NULL: nothing.
 */
void cs_chan_close(cs_chan *c);

#endif
