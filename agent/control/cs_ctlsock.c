/*
 * cs_ctlsock - the status socket server and the metrics file writer. See
 * cs_ctlsock.h for the protocol and the rules. This file holds the access
 * a peer gets and the server's life cycle (new, apply, close); the others:
 *
 *   cs_ctlsock_conn.c     clients: closing, answers, reading, fairness
 *   cs_ctlsock_listen.c   the socket file, accepting, peer credentials
 *   cs_ctlsock_cmd.c      one request line parsed, authorised, dispatched
 *   cs_ctlsock_show.c     list and show
 *   cs_ctlsock_status.c   status and its cached answer
 *   cs_ctlsock_renew.c    renew (paced for all, --wait), reload, rehash
 *   cs_ctlsock_defer.c    answers the backend gives later: adopt, revoke
 *   cs_ctlsock_metrics.c  the metrics command and the metrics file
 *   cs_ctlsock_agent.c    the server wired to the agent's pipeline
 *
 * Handles: the listener, the metrics timer, the idle handle, the renew all
 * timer and two per client (pipe and idle timer). s->handles counts those
 * still open; s and each client are freed only from close callbacks.
 */
#include "cs_ctlsock_int.h"
#include "cs_log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* Returns the access of a peer: 0 none, 1 read, 2 read and change. */
int cs_ctlsock_access(uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups,
		      gid_t socket_group, gid_t admin_group, uid_t self)
{
	bool in_admin = false, in_sock = false;

	if (uid == 0 || uid == self)
		return 2;
	if (admin_group != (gid_t)-1 && gid == admin_group)
		in_admin = true;
	if (socket_group != (gid_t)-1 && gid == socket_group)
		in_sock = true;
	for (size_t i = 0; i < n_groups; i++) {
		if (admin_group != (gid_t)-1 && groups[i] == admin_group)
			in_admin = true;
		if (socket_group != (gid_t)-1 && groups[i] == socket_group)
			in_sock = true;
	}
	if (in_admin)
		return 2;
	if (in_sock || socket_group == (gid_t)-1)
		return 1;
	return 0;
}

/* ---- life cycle ------------------------------------------------------------ */

static int set_str(char **dst, const char *src)
{
	char *p = NULL;

	if (src != NULL && (p = strdup(src)) == NULL)
		return -ENOMEM;
	free(*dst);
	*dst = p;
	return 0;
}

/* Returns a serving status socket (free with cs_ctlsock_close), or NULL with err set. */
struct cs_ctlsock *cs_ctlsock_new(uv_loop_t *loop, const struct cs_ctlsock_opts *o,
				  const struct cs_ctlsock_backend *be, char *err, size_t errlen)
{
	struct cs_ctlsock *s = calloc(1, sizeof(*s));

	if (s == NULL || (s->metrics = cs_metrics_new()) == NULL) {
		free(s);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->loop = loop;
	LIST_INIT(&s->clients);
	TAILQ_INIT(&s->backlog);
	STAILQ_INIT(&s->renew_all);
	s->be = *be;
	s->admin_group = o->admin_group;
	s->max_request = o->max_request ? o->max_request : CS_CTLSOCK_MAX_REQUEST;
	s->idle_ms = o->idle_ms ? o->idle_ms : CS_CTLSOCK_IDLE_MS;
	s->max_clients = o->max_clients ? o->max_clients : 4096;
	/* Below the descriptors the agent has, with a reserve for its own work. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		rlim_t reserve = rl.rlim_cur / 4 > 256 ? rl.rlim_cur / 4 : 256;
		size_t room = rl.rlim_cur > reserve + 32 ? (size_t)(rl.rlim_cur - reserve) : 32;
		if (s->max_clients > room)
			s->max_clients = room;
	}
	s->ag.start_time = time(NULL);
	if (set_str(&s->metrics_file, o->metrics_file) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	uv_timer_init(loop, &s->mtimer);
	s->mtimer.data = s;
	uv_idle_init(loop, &s->idle);
	s->idle.data = s;
	uv_timer_init(loop, &s->rtimer);
	s->rtimer.data = s;
	s->handles += 3;
	if (o->path != NULL && (s->lis = cs_ctlsock__listener_new(s, o, err, errlen)) == NULL) {
		/* Handles are open: free through the close callbacks, without a metrics write. */
		free(s->metrics_file);
		s->metrics_file = NULL;
		cs_ctlsock_close(s, NULL, NULL);
		return NULL;
	}
	cs_ctlsock__subscribe(s);
	cs_ctlsock__metrics_soon(s, METRICS_FIRST_MS);
	return s;
fail:
	cs_metrics_free(s->metrics);
	free(s->metrics_file);
	free(s);
	return NULL;
}

/* Takes a new configuration; returns 0 or a negative errno with err set. */
int cs_ctlsock_apply(struct cs_ctlsock *s, const struct cs_ctlsock_opts *o, char *err,
		     size_t errlen)
{
	int rc = 0;

	s->admin_group = o->admin_group;
	if (set_str(&s->metrics_file, o->metrics_file) < 0) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	cs_ctlsock__metrics_soon(s, METRICS_DEBOUNCE_MS);
	bool same = s->lis != NULL && o->path != NULL && strcmp(s->lis->path, o->path) == 0 &&
		    s->lis->mode == o->mode && s->lis->group == o->group;
	if (same || (s->lis == NULL && o->path == NULL))
		return 0;
	struct listener *old = s->lis, *nl = NULL;
	if (o->path != NULL) {
		if (old != NULL && strcmp(old->path, o->path) == 0) {
			/* Same path, new mode or group: change the file in place. */
			if ((o->group != (gid_t)-1 && chown(old->path, (uid_t)-1, o->group) < 0) ||
			    chmod(old->path, o->mode) < 0) {
				rc = -errno;
				snprintf(err, errlen, "%s: %s", old->path, strerror(errno));
				return rc;
			}
			old->mode = o->mode;
			old->group = o->group;
			return 0;
		}
		nl = cs_ctlsock__listener_new(s, o, err, errlen);
		if (nl == NULL)
			return -EADDRNOTAVAIL;
	}
	s->lis = nl;
	cs_ctlsock__close_listener(old);
	return rc;
}

/* Returns the served path (owned by s) or NULL. */
const char *cs_ctlsock_path(const struct cs_ctlsock *s)
{
	return s != NULL && s->lis != NULL ? s->lis->path : NULL;
}

/* Drops clients, removes the socket, frees s from the close callbacks; accepts NULL. */
void cs_ctlsock_close(struct cs_ctlsock *s, void (*close_cb)(void *arg), void *arg)
{
	if (s == NULL) {
		if (close_cb != NULL)
			close_cb(arg);
		return;
	}
	if (s->closing)
		return;
	cs_ctlsock_write_metrics(s);
	cs_ctlsock__unsubscribe(s);
	s->closing = true;
	s->close_cb = close_cb;
	s->close_arg = arg;
	while (!LIST_EMPTY(&s->clients))
		cs_ctlsock__close_client(LIST_FIRST(&s->clients));
	/* A renew all still asking stops here; its client is gone (d->c is NULL). */
	while (!STAILQ_EMPTY(&s->renew_all)) {
		struct deferred *d = STAILQ_FIRST(&s->renew_all);
		STAILQ_REMOVE_HEAD(&s->renew_all, rlink);
		if (--d->left == 0)
			cs_ctlsock__deferred_answer(d, NULL, true);
	}
	cs_ctlsock__close_listener(s->lis);
	s->lis = NULL;
	uv_close((uv_handle_t *)&s->mtimer, cs_ctlsock__on_plain_closed);
	uv_close((uv_handle_t *)&s->idle, cs_ctlsock__on_plain_closed);
	uv_close((uv_handle_t *)&s->rtimer, cs_ctlsock__on_plain_closed);
}

