/*
 * cs_ctlsock_listen - the socket file and accepting clients.
 *
 * The socket is made without touching the process umask (worker threads
 * create files at the same time): it is bound in a fresh 0700 directory next
 * to its final path, given its group and mode there, and renamed into place.
 * The rename also replaces a stale socket atomically; a live one (connect()
 * succeeds) is never replaced. A client's access comes from its peer
 * credentials (SO_PEERCRED, SO_PEERGROUPS) when it is accepted, and the last
 * places are kept for those who may change things.
 */
#include "cs_ctlsock_int.h"
#include "cs_log.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/*
 * Whether a client without the right to change anything may stay: the last
 * CS_CTLSOCK_ADMIN_RESERVE places are kept for uid 0 and admin_group (so
 * that a flood of readers never locks root out), and one uid may hold at
 * most CS_CTLSOCK_MAX_PER_UID connections. Logged once per refusal.
 */
static bool room_for(struct cs_ctlsock *s, const struct client *c)
{
	const struct client *o;
	size_t same = 0;

	if (s->n_clients + CS_CTLSOCK_ADMIN_RESERVE > s->max_clients) {
		cs_warn("status socket: %u clients; the last %d places are kept for "
			"administrators: refusing uid %u",
			s->n_clients, CS_CTLSOCK_ADMIN_RESERVE, (unsigned)c->uid);
		return false;
	}
	LIST_FOREACH(o, &s->clients, link)
		same += o->uid == c->uid && !o->closing;
	if (same > CS_CTLSOCK_MAX_PER_UID) {
		cs_warn("status socket: uid %u holds %zu connections (at most %d); refusing one",
			(unsigned)c->uid, same - 1, CS_CTLSOCK_MAX_PER_UID);
		return false;
	}
	return true;
}

static void peer_access(const struct listener *l, struct client *c, int fd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	gid_t groups[256], *g = groups;
	socklen_t glen = sizeof(groups);
	size_t n = 0;

	c->access = 0;
	c->uid = (uid_t)-1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return;
	c->uid = cr.uid;
#ifdef SO_PEERGROUPS
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &glen) == 0) {
		n = glen / sizeof(gid_t);
	} else if (errno == ERANGE && (g = malloc(glen)) != NULL) {
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &glen) == 0)
			n = glen / sizeof(gid_t);
	} else {
		g = groups;
	}
#endif
	c->access = cs_ctlsock_access(cr.uid, cr.gid, g, n, l->group, l->s->admin_group,
				      geteuid());
	if (g != groups)
		free(g);
}

static void on_connection(uv_stream_t *server, int status)
{
	struct listener *l = server->data;
	struct cs_ctlsock *s = l->s;
	struct client *c;
	uv_os_fd_t fd;

	if (status < 0 || s->closing)
		return;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return;
	c->s = s;
	uv_pipe_init(s->loop, &c->pipe, 0);
	uv_timer_init(s->loop, &c->timer);
	c->pipe.data = c;
	c->timer.data = c;
	c->handles = 2;
	s->handles++;
	s->n_clients++;
	LIST_INSERT_HEAD(&s->clients, c, link);
	if (uv_accept(server, (uv_stream_t *)&c->pipe) < 0) {
		cs_ctlsock__close_client(c);
		return;
	}
	if (s->n_clients > s->max_clients) {
		cs_warn("status socket: more than %zu clients; refusing one", s->max_clients);
		cs_ctlsock__close_client(c);
		return;
	}
	if (uv_fileno((uv_handle_t *)&c->pipe, &fd) == 0)
		peer_access(l, c, fd);
	if (c->access < 2 && !room_for(s, c)) {
		cs_ctlsock__close_client(c);
		return;
	}
	c->active_at = uv_now(s->loop);
	uv_timer_start(&c->timer, cs_ctlsock__on_idle, s->idle_ms, s->idle_ms);
	uv_read_start((uv_stream_t *)&c->pipe, cs_ctlsock__on_alloc, cs_ctlsock__on_read);
}

/* ---- the socket file ---------------------------------------------------- */

/* Is someone listening at path? 1 yes, 0 no (stale), negative errno on odd errors. */
static int socket_live(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, rc;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	int e = errno;
	close(fd);
	if (rc == 0 || e == EAGAIN || e == EINPROGRESS)
		return 1;
	if (e == ECONNREFUSED || e == ENOENT)
		return 0;
	return -e;
}

/*
 * Whether a socket may be made at path: 0 when nothing is there or a stale
 * socket (replaced by the rename), else a negative errno with err set: not a
 * socket, or one somebody listens at.
 */
static int may_replace(const char *path, char *err, size_t errlen)
{
	struct stat old;
	int rc;

	if (lstat(path, &old) < 0)
		return 0;
	if (!S_ISSOCK(old.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket; not replacing it", path);
		return -EEXIST;
	}
	rc = socket_live(path);
	if (rc > 0) {
		snprintf(err, errlen,
			 "%s: another process is listening there (is another certsyncd "
			 "running?); not taking it over",
			 path);
		return -EADDRINUSE;
	}
	if (rc < 0) {
		snprintf(err, errlen, "%s: cannot tell whether it is in use: %s", path,
			 strerror(-rc));
		return rc;
	}
	cs_notice("status socket %s is stale (nobody listening); replacing it", path);
	return 0;
}

/*
 * Makes the listening socket at path with mode and group before it can be
 * reached (bound in a fresh 0700 directory, renamed into place). Returns 0
 * with *out the descriptor and *st its file, or a negative errno with err set.
 */
static int make_socket(const char *path, mode_t mode, gid_t group, int *out, struct stat *st,
		       char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[PATH_MAX], tmpdir[PATH_MAX], tmp[PATH_MAX + 8];
	int fd = -1, rc;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "%s: path too long for a Unix socket (at most %zu bytes)",
			 path, sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	rc = may_replace(path, err, errlen);
	if (rc < 0)
		return rc;
	snprintf(tmp, sizeof(tmp), "%s", path);
	snprintf(dir, sizeof(dir), "%s", dirname(tmp));
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		rc = -errno;
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return rc;
	}
	if (snprintf(tmpdir, sizeof(tmpdir), "%s/.csXXXXXX", dir) >= (int)sizeof(tmpdir) ||
	    mkdtemp(tmpdir) == NULL) {
		rc = -errno;
		snprintf(err, errlen, "cannot create a temporary directory in %s: %s", dir,
			 strerror(errno));
		return rc;
	}
	snprintf(tmp, sizeof(tmp), "%s/s", tmpdir);
	if (strlen(tmp) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "%s: directory path too long for a Unix socket", dir);
		rc = -ENAMETOOLONG;
		goto out_dir;
	}
	memcpy(sa.sun_path, tmp, strlen(tmp) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "socket: %s", strerror(errno));
		goto out_dir;
	}
	/* Nobody can reach tmp until the rename: its directory is 0700 and ours. */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    (group != (gid_t)-1 && chown(tmp, (uid_t)-1, group) < 0) || chmod(tmp, mode) < 0 ||
	    listen(fd, SOMAXCONN) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out_sock;
	}
	if (rename(tmp, path) < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot move the socket to %s: %s", path, strerror(errno));
		goto out_sock;
	}
	rmdir(tmpdir);
	if (lstat(path, st) < 0)
		memset(st, 0, sizeof(*st));
	*out = fd;
	return 0;
out_sock:
	close(fd);
	unlink(tmp);
out_dir:
	rmdir(tmpdir);
	return rc;
}

struct listener *cs_ctlsock__listener_new(struct cs_ctlsock *s, const struct cs_ctlsock_opts *o,
				     char *err, size_t errlen)
{
	struct listener *l = calloc(1, sizeof(*l));
	struct stat st;
	int fd, rc;

	if (l == NULL || (l->path = strdup(o->path)) == NULL) {
		free(l);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	l->s = s;
	l->mode = o->mode;
	l->group = o->group;
	if (make_socket(o->path, o->mode, o->group, &fd, &st, err, errlen) < 0) {
		free(l->path);
		free(l);
		return NULL;
	}
	l->dev = st.st_dev;
	l->ino = st.st_ino;
	uv_pipe_init(s->loop, &l->pipe, 0);
	l->pipe.data = l;
	s->handles++;
	if ((rc = uv_pipe_open(&l->pipe, fd)) < 0 ||
	    (rc = uv_listen((uv_stream_t *)&l->pipe, SOMAXCONN, on_connection)) < 0) {
		snprintf(err, errlen, "%s: cannot listen: %s", o->path, uv_strerror(rc));
		cs_ctlsock__close_listener(l);
		return NULL;
	}
	return l;
}

