/*
 * cs_watch - inotify on the event loop. See cs_watch.h.
 *
 * Each watched directory remembers the device and inode its path led to when
 * the watch was added: inotify watches inodes, not paths, so when a path
 * component is a symbolic link that is later swapped, the old watch keeps
 * reporting on the old directory. cs_watch_add() (and cs_watch_set()) compare
 * and re-add.
 *
 * Directories are found by path and by watch descriptor through hash tables,
 * so that adding one directory, removing one and delivering one event cost
 * the same with ten directories or ten thousand. Two paths that lead to one
 * inode share its descriptor; an event on it is reported once for each.
 */
#include "cs_watch.h"
#include "cs_htab.h"
#include "cs_log.h"

#include <sys/queue.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct wdir {
	struct cs_htab_node by_path;
	struct cs_htab_node by_wd; /* in w->wds while wd >= 0 */
	TAILQ_ENTRY(wdir) all;
	char *path; /* as declared */
	int wd;
	dev_t dev;
	ino_t ino;
	bool declared; /* cs_watch_set's mark */
};

struct cs_watch {
	uv_poll_t poll;
	int fd;
	TAILQ_HEAD(, wdir) dirs;
	struct cs_htab paths, wds;
	size_t n;
	cs_watch_cb cb;
	cs_watch_overflow_cb overflow_cb;
	void *arg;
	void (*close_cb)(void *arg);
	void *close_arg;
};

static uint64_t wd_hash(int wd)
{
	return (uint64_t)(unsigned)wd * 0x9e3779b97f4a7c15ull;
}

static struct wdir *find_path(const struct cs_watch *w, const char *path)
{
	uint64_t h = cs_htab_hash(path, CS_HTAB_SEED);

	for (struct cs_htab_node *n = cs_htab_first(&w->paths, h); n != NULL;
	     n = cs_htab_next(n, h)) {
		struct wdir *d = cs_htab_entry(n, struct wdir, by_path);
		if (strcmp(d->path, path) == 0)
			return d;
	}
	return NULL;
}

static struct wdir *first_wd(const struct cs_watch *w, int wd)
{
	uint64_t h = wd_hash(wd);

	for (struct cs_htab_node *n = cs_htab_first(&w->wds, h); n != NULL; n = cs_htab_next(n, h)) {
		struct wdir *d = cs_htab_entry(n, struct wdir, by_wd);
		if (d->wd == wd)
			return d;
	}
	return NULL;
}

static void set_wd(struct cs_watch *w, struct wdir *d, int wd)
{
	if (d->wd >= 0)
		cs_htab_remove(&w->wds, &d->by_wd);
	d->wd = wd;
	if (wd >= 0 && cs_htab_insert(&w->wds, &d->by_wd, wd_hash(wd)) < 0)
		d->wd = -1; /* out of memory: retried by the next add */
}

/*
 * Reports one event on descriptor wd to every path that leads to it. The
 * callback may add or remove directories, so the paths are copied first.
 */
static void deliver(struct cs_watch *w, const struct inotify_event *ev)
{
	char *one[4], **paths = one;
	size_t n = 0, cap = 4;
	uint64_t h = wd_hash(ev->wd);

	for (struct cs_htab_node *p = cs_htab_first(&w->wds, h); p != NULL; p = cs_htab_next(p, h)) {
		struct wdir *d = cs_htab_entry(p, struct wdir, by_wd);
		if (d->wd != ev->wd)
			continue;
		if (n == cap) {
			char **v = malloc(cap * 2 * sizeof(*v));
			if (v == NULL)
				break;
			memcpy(v, paths, n * sizeof(*v));
			if (paths != one)
				free(paths);
			paths = v;
			cap *= 2;
		}
		if ((paths[n] = strdup(d->path)) != NULL)
			n++;
	}
	for (size_t i = 0; i < n; i++) {
		w->cb(w->arg, paths[i], ev->len ? ev->name : "", ev->mask);
		free(paths[i]);
	}
	if (paths != one)
		free(paths);
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
			if (ev->mask & IN_IGNORED) {
				/* The directory went away; cs_watch_add() may add it again. */
				struct wdir *d;
				while ((d = first_wd(w, ev->wd)) != NULL)
					set_wd(w, d, -1);
				continue;
			}
			deliver(w, ev);
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
	TAILQ_INIT(&w->dirs);
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

static void drop(struct cs_watch *w, struct wdir *d)
{
	int wd = d->wd;

	set_wd(w, d, -1);
	/* Two paths may lead to one inode and share its wd: keep it while used. */
	if (wd >= 0 && first_wd(w, wd) == NULL)
		inotify_rm_watch(w->fd, wd);
	cs_htab_remove(&w->paths, &d->by_path);
	TAILQ_REMOVE(&w->dirs, d, all);
	w->n--;
	free(d->path);
	free(d);
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
	set_wd(w, d, wd);
	d->dev = sb.st_dev;
	d->ino = sb.st_ino;
	return 0;
}

/* Declares path, watching it when it can; returns it, or NULL on ENOMEM. */
static struct wdir *add(struct cs_watch *w, const char *path)
{
	struct wdir *d = find_path(w, path);

	if (d == NULL) {
		if ((d = calloc(1, sizeof(*d))) == NULL || (d->path = strdup(path)) == NULL ||
		    cs_htab_insert(&w->paths, &d->by_path, cs_htab_hash(path, CS_HTAB_SEED)) < 0) {
			if (d != NULL)
				free(d->path);
			free(d);
			return NULL;
		}
		d->wd = -1;
		TAILQ_INSERT_TAIL(&w->dirs, d, all);
		w->n++;
	}
	struct stat sb;
	bool moved = d->wd >= 0 && stat(d->path, &sb) == 0 &&
		     (sb.st_dev != d->dev || sb.st_ino != d->ino);
	if (d->wd < 0 || moved) {
		int old = d->wd;
		int rc = arm(w, d);
		if (rc == 0 && moved && old >= 0 && old != d->wd && first_wd(w, old) == NULL)
			inotify_rm_watch(w->fd, old);
		if (rc < 0) {
			if (d->wd < 0)
				cs_debug("cannot watch %s: %s", d->path, strerror(-rc));
		} else if (moved) {
			cs_debug("%s now leads to another directory; watching that one", d->path);
		}
	}
	return d;
}

int cs_watch_add(struct cs_watch *w, const char *dir)
{
	struct wdir *d = add(w, dir);

	if (d == NULL)
		return -ENOMEM;
	return d->wd >= 0 ? 0 : -ENOENT;
}

void cs_watch_remove(struct cs_watch *w, const char *dir)
{
	struct wdir *d = find_path(w, dir);

	if (d != NULL)
		drop(w, d);
}

size_t cs_watch_set(struct cs_watch *w, const char *const *dirs, size_t n)
{
	size_t watched = 0;
	struct wdir *d, *next;

	TAILQ_FOREACH(d, &w->dirs, all)
		d->declared = false;
	for (size_t i = 0; i < n; i++)
		if ((d = find_path(w, dirs[i])) != NULL)
			d->declared = true;
	for (d = TAILQ_FIRST(&w->dirs); d != NULL; d = next) {
		next = TAILQ_NEXT(d, all);
		if (!d->declared)
			drop(w, d);
	}
	for (size_t i = 0; i < n; i++) {
		d = add(w, dirs[i]);
		if (d != NULL && d->wd >= 0)
			watched++;
	}
	return watched;
}

size_t cs_watch_count(const struct cs_watch *w)
{
	size_t c = 0;
	const struct wdir *d;

	TAILQ_FOREACH(d, &w->dirs, all)
		if (d->wd >= 0)
			c++;
	return c;
}

static void on_closed(uv_handle_t *h)
{
	struct cs_watch *w = h->data;
	void (*cb)(void *) = w->close_cb;
	void *arg = w->close_arg;
	struct wdir *d;

	close(w->fd);
	while ((d = TAILQ_FIRST(&w->dirs)) != NULL) {
		TAILQ_REMOVE(&w->dirs, d, all);
		free(d->path);
		free(d);
	}
	cs_htab_clear(&w->paths);
	cs_htab_clear(&w->wds);
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
