/*
 * pl_clock - noticing that the wall clock was set. The pipeline's timer runs
 * on the monotonic clock, but renewals are due at wall-clock moments: after
 * a VM snapshot is restored or a laptop resumes, the wall clock may be days
 * ahead while the timer still waits for the old moment. A timerfd on
 * CLOCK_REALTIME armed with TFD_TIMER_CANCEL_ON_SET is woken by any setting
 * of the clock (read() fails with ECANCELED); every cert is then examined
 * again and scheduled from the new time, each renewing once at most.
 */
#include "pl_int.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

struct pl_clock {
	struct cs_pipeline *pl;
	uv_poll_t poll;
	int fd;
	void (*close_cb)(void *arg);
	void *close_arg;
};

/* Arms fd to fire in ten years, and to be cancelled by any setting of the clock. */
static int arm(int fd)
{
	struct itimerspec its;

	memset(&its, 0, sizeof(its));
	clock_gettime(CLOCK_REALTIME, &its.it_value);
	its.it_value.tv_sec += 10LL * 365 * 86400;
	return timerfd_settime(fd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its, NULL);
}

static void on_readable(uv_poll_t *p, int status, int events)
{
	struct pl_clock *ck = p->data;
	uint64_t n;
	ssize_t got;

	(void)status;
	(void)events;
	got = read(ck->fd, &n, sizeof(n));
	if (got < 0 && errno == EAGAIN)
		return;
	if (arm(ck->fd) < 0)
		cs_warn("cannot watch the wall clock any more: %s", strerror(errno));
	if (got < 0 && errno == ECANCELED)
		cs_pipeline_clock_set(ck->pl);
}

struct pl_clock *pl_clock_new(struct cs_pipeline *pl)
{
	struct pl_clock *ck = calloc(1, sizeof(*ck));

	if (ck == NULL)
		return NULL;
	ck->pl = pl;
	ck->fd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
	if (ck->fd < 0 || arm(ck->fd) < 0 || uv_poll_init(pl->loop, &ck->poll, ck->fd) < 0) {
		cs_warn("cannot watch the wall clock (a step of it is noticed at the next "
			"timer only): %s",
			strerror(errno));
		if (ck->fd >= 0)
			close(ck->fd);
		free(ck);
		return NULL;
	}
	ck->poll.data = ck;
	uv_poll_start(&ck->poll, UV_READABLE, on_readable);
	return ck;
}

static void on_closed(uv_handle_t *h)
{
	struct pl_clock *ck = h->data;
	void (*cb)(void *) = ck->close_cb;
	void *arg = ck->close_arg;

	close(ck->fd);
	free(ck);
	if (cb)
		cb(arg);
}

void pl_clock_close(struct pl_clock *ck, void (*close_cb)(void *arg), void *arg)
{
	if (ck == NULL) {
		if (close_cb)
			close_cb(arg);
		return;
	}
	ck->close_cb = close_cb;
	ck->close_arg = arg;
	uv_close((uv_handle_t *)&ck->poll, on_closed);
}

void cs_pipeline_clock_set(struct cs_pipeline *pl)
{
	char t[40];

	if (pl->closing || pl->tearing_down)
		return;
	cs_notice("the wall clock was set (it is now %s): examining %zu cert(s) again",
		  pl_fmt_time(pl_now(pl), t, sizeof(t)), pl->n_certs);
	for (size_t i = 0; i < pl->n_certs; i++) {
		struct cert *c = pl->certs[i];
		c->full_check = true;
		pl_start_check(c); /* a cert at work is examined when it is idle again */
	}
	pl_arm_timer(pl);
}
