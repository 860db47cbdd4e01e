/*
 * cs_watch - inotify on the event loop. See cs_watch.h.
 *
 * Each watched directory remembers the device and inode its path led to when
 * the watch was added: inotify watches inodes, not paths, so when a path
 * component is a symbolic link that is later swapped, the old watch keeps
 * reporting on the old directory. cs_watch_set() compares and re-adds.
 */
#include "cs_watch.h"
#include "cs_log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct wdir {
	char *path; /* as declared */
	int wd;
	dev_t dev;
	ino_t ino;
};

struct cs_watch {
	uv_poll_t poll;
	int fd;
	struct wdir *dirs;
	size_t n, cap;
	cs_watch_cb cb;
	cs_watch_overflow_cb overflow_cb;
	void *arg;
	void (*close_cb)(void *arg);
	void *close_arg;
};

static struct wdir *find_wd(struct cs_watch *w, int wd)
{
	for (size_t i = 0; i < w->n; i++)
		if (w->dirs[i].wd == wd)
			return &w->dirs[i];
	return NULL;
}

static void on_readable(uv_poll_t *h, int status, int events)
{
	struct cs_watch *w = h->data;
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool overflow = false;

	(void)events;
	if (status < 0) {
		cs_err("inotify: %s", uv_strerror(status));
		return;
	}
	for (;;) {
		ssize_t len = read(w->fd, buf, sizeof(buf));
		if (len <= 0) {
			if (len < 0 && errno == EINTR)
				continue;
			break;
		}
		for (char *p = buf; p < buf + len;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			p += sizeof(*ev) + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				overflow = true;
				continue;
			}
			struct wdir *d = find_wd(w, ev->wd);
			if (d == NULL)
				continue;
			if (ev->mask & IN_IGNORED) {
				/* The directory went away; cs_watch_set() may add it again. */
				d->wd = -1;
				continue;
			}
			/* The callback may call cs_watch_set(), which may move d. */
			char *dir = strdup(d->path);
			if (dir == NULL)
				continue;
			w->cb(w->arg, dir, ev->len ? ev->name : "", ev->mask);
			free(dir);
		}
	}
	if (overflow) {
		cs_warn("inotify: the kernel's event queue overflowed; rescanning everything");
		w->overflow_cb(w->arg);
	}
}

struct cs_watch *cs_watch_new(uv_loop_t *loop, cs_watch_cb cb, cs_watch_overflow_cb overflow_cb,
			      void *arg, char *err, size_t errlen)
{
	struct cs_watch *w = calloc(1, sizeof(*w));
	int rc;

	if (w == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->fd < 0) {
		snprintf(err, errlen, "inotify_init1: %s", strerror(errno));
		goto fail_mem;
	}
	if ((rc = uv_poll_init(loop, &w->poll, w->fd)) < 0) {
		snprintf(err, errlen, "inotify: cannot poll: %s", uv_strerror(rc));
		goto fail_fd;
	}
	w->poll.data = w;
	w->cb = cb;
	w->overflow_cb = overflow_cb;
	w->arg = arg;
	if ((rc = uv_poll_start(&w->poll, UV_READABLE, on_readable)) < 0) {
		snprintf(err, errlen, "inotify: cannot poll: %s", uv_strerror(rc));
		/* The handle is initialised: it must be closed, and frees w then. */
		cs_watch_close(w, NULL, NULL);
		return NULL;
	}
	return w;
fail_fd:
	close(w->fd);
fail_mem:
	free(w);
	return NULL;
}

static bool declared(const char *path, const char *const *dirs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(dirs[i], path) == 0)
			return true;
	return false;
}

static void drop(struct cs_watch *w, size_t i)
{
	struct wdir *d = &w->dirs[i];

	/* Two paths may lead to one inode and share its wd: keep it while used. */
	bool shared = false;
	for (size_t k = 0; k < w->n; k++)
		if (k != i && d->wd >= 0 && w->dirs[k].wd == d->wd)
			shared = true;
	if (d->wd >= 0 && !shared)
		inotify_rm_watch(w->fd, d->wd);
	free(d->path);
	w->dirs[i] = w->dirs[--w->n];
}

/* Adds (or re-adds) the watch of d->path; returns 0 or -errno. */
static int arm(struct cs_watch *w, struct wdir *d)
{
	struct stat sb;
	int wd;

	if (stat(d->path, &sb) < 0)
		return -errno;
	wd = inotify_add_watch(w->fd, d->path, CS_WATCH_MASK | IN_ONLYDIR);
	if (wd < 0)
		return -errno;
	d->wd = wd;
	d->dev = sb.st_dev;
	d->ino = sb.st_ino;
	return 0;
}

size_t cs_watch_set(struct cs_watch *w, const char *const *dirs, size_t n)
{
	size_t watched = 0;

	for (size_t i = 0; i < w->n;) {
		if (!declared(w->dirs[i].path, dirs, n))
			drop(w, i);
		else
			i++;
	}
	for (size_t i = 0; i < n; i++) {
		struct wdir *d = NULL;
		for (size_t k = 0; k < w->n; k++)
			if (strcmp(w->dirs[k].path, dirs[i]) == 0)
				d = &w->dirs[k];
		if (d == NULL) {
			if (w->n == w->cap) {
				size_t cap = w->cap ? w->cap * 2 : 8;
				struct wdir *v = realloc(w->dirs, cap * sizeof(*v));
				if (v == NULL)
					continue;
				w->dirs = v;
				w->cap = cap;
			}
			d = &w->dirs[w->n];
			memset(d, 0, sizeof(*d));
			d->path = strdup(dirs[i]);
			if (d->path == NULL)
				continue;
			d->wd = -1;
			w->n++;
		}
		struct stat sb;
		bool moved = d->wd >= 0 && stat(d->path, &sb) == 0 &&
			     (sb.st_dev != d->dev || sb.st_ino != d->ino);
		if (d->wd < 0 || moved) {
			int old = d->wd;
			int rc = arm(w, d);
			if (rc == 0 && moved && old >= 0 && old != d->wd && find_wd(w, old) == NULL)
				inotify_rm_watch(w->fd, old);
			if (rc < 0) {
				if (d->wd < 0)
					cs_debug("cannot watch %s: %s", d->path, strerror(-rc));
			} else if (moved) {
				cs_debug("%s now leads to another directory; watching that one",
					 d->path);
			}
		}
		if (d->wd >= 0)
			watched++;
	}
	return watched;
}

size_t cs_watch_count(const struct cs_watch *w)
{
	size_t c = 0;

	for (size_t i = 0; i < w->n; i++)
		if (w->dirs[i].wd >= 0)
			c++;
	return c;
}

static void on_closed(uv_handle_t *h)
{
	struct cs_watch *w = h->data;
	void (*cb)(void *) = w->close_cb;
	void *arg = w->close_arg;

	close(w->fd);
	for (size_t i = 0; i < w->n; i++)
		free(w->dirs[i].path);
	free(w->dirs);
	free(w);
	if (cb)
		cb(arg);
}

void cs_watch_close(struct cs_watch *w, void (*close_cb)(void *arg), void *arg)
{
	if (w == NULL) {
		if (close_cb)
			close_cb(arg);
		return;
	}
	w->close_cb = close_cb;
	w->close_arg = arg;
	uv_close((uv_handle_t *)&w->poll, on_closed);
}
