/*
 * cs_ctlsock - the agent's status socket and metrics file.
 *
 * A Unix stream socket; one JSON object per line each way. The commands,
 * keys and error codes (refused, bad_request, not_found, too_long,
 * unavailable, failed, internal) are in cs_proto.h, shared with
 * certsyncctl.
 *
 * The peer's credentials (SO_PEERCRED, SO_PEERGROUPS) decide: uid 0, the
 * agent's own uid and admin_group members may change things; socket_group
 * members may read; when no socket_group is set, whoever can open the socket
 * (its mode and group decide) may read. Everyone else is refused.
 *
 * Clients are served on the loop with per-client buffers: a request line is
 * limited in size, a client that does not finish a request within the idle
 * timeout is dropped, and a client that does not read its answers stops
 * being read from (its answers are bounded) without holding anyone else up.
 *
 * The same object keeps the metrics tracker, fed by the backend's events,
 * and writes metrics_file soon after every event (a renewal started or
 * ended, a reload, a repair...) and at close.
 */
#ifndef CS_CTLSOCK_H
#define CS_CTLSOCK_H

#include "cs_pipeline.h"
#include "cs_proto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#define CS_CTLSOCK_MAX_REQUEST (64 * 1024)
#define CS_CTLSOCK_IDLE_MS 30000
#define CS_CTLSOCK_ADMIN_RESERVE 16 /* places only uid 0 and admin_group may take */
#define CS_CTLSOCK_MAX_PER_UID 64   /* connections one reading uid may hold */

/* What the server asks about certs (the agent wires it to its pipeline). */
struct cs_ctlsock_backend {
	size_t (*count)(void *arg);
	void (*status)(void *arg, size_t i, struct cs_cert_status *out);
	/*
	 * NULL, or: the status of the cert called name, found without a scan
	 * (show); false when there is no such cert.
	 */
	bool (*status_of)(void *arg, const char *name, struct cs_cert_status *out);
	/*
	 * NULL, or all three: the name of cert i (valid until the next loop
	 * turn); what status says about all certs; each failed, expired or
	 * missing cert, as cs_pipeline_problems. With them status, renew all and
	 * the metrics' counts never look at every cert's status.
	 */
	const char *(*name)(void *arg, size_t i);
	void (*summary)(void *arg, struct cs_pipeline_summary *out);
	size_t (*problems)(void *arg, void (*cb)(void *cbarg, const struct cs_cert_status *st),
			   void *cbarg);
	/*
	 * As cs_pipeline_renew: 0 started (cb, when not NULL, runs once at the
	 * end), 1 not due, -ENOENT, -EBUSY or -ENOMEM.
	 */
	int (*renew)(void *arg, const char *name, bool force, cs_renewal_cb cb, void *cbarg);
	/* NULL: the command answers "not available". 0 or negative, err set. */
	int (*reload)(void *arg, const char *name, char *err, size_t errlen);
	int (*rehash)(void *arg, const char *name, char *err, size_t errlen);
	/*
	 * NULL, or: calls cb for each current [capath]/[clientcerts] problem
	 * (section, file or "", reason) and returns their number.
	 */
	size_t (*capath_problems)(void *arg,
				  void (*cb)(void *cbarg, const char *section, const char *file,
					     const char *reason),
				  void *cbarg);
	/*
	 * NULL: "not available". Else as cs_pipeline_revoke: 0 when
	 * done(cbarg, status, msg) will run once (the answer waits for it, and
	 * the client's later requests wait behind it), or a negative code.
	 */
	int (*revoke)(void *arg, const char *name, int reason,
		      void (*done)(void *cbarg, int status, const char *msg), void *cbarg);
	/* NULL: "not available". Else as cs_pipeline_adopt, answered like revoke. */
	int (*adopt)(void *arg, const char *name,
		     void (*done)(void *cbarg, int status, const char *msg), void *cbarg);
	/*
	 * NULL, or both: as cs_pipeline_subscribe and cs_pipeline_unsubscribe.
	 * The server subscribes while it serves the backend: the events feed
	 * the metrics counters and rewrite the metrics file.
	 */
	int (*subscribe)(void *arg, void (*fn)(void *fnarg, const struct cs_event *ev),
			 void *fnarg);
	void (*unsubscribe)(void *arg, void (*fn)(void *fnarg, const struct cs_event *ev),
			    void *fnarg);
	void *arg;
};

struct cs_ctlsock_opts {
	const char *path;       /* NULL: no socket (metrics file only) */
	mode_t mode;            /* socket_mode */
	gid_t group;            /* socket_group, (gid_t)-1 when not set */
	gid_t admin_group;      /* (gid_t)-1 when not set */
	const char *metrics_file; /* NULL when not set */
	size_t max_request;     /* 0: CS_CTLSOCK_MAX_REQUEST */
	uint64_t idle_ms;       /* 0: CS_CTLSOCK_IDLE_MS */
	size_t max_clients;     /* 0: 4096 */
};

struct cs_ctlsock;

/* Access a peer has: 0 none, 1 read, 2 read and change. */
int cs_ctlsock_access(uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups,
		      gid_t socket_group, gid_t admin_group, uid_t self);

/*
 * Creates the socket at o->path (replacing a stale one, never a live one),
 * with the configured mode and group before anyone can connect, and starts
 * serving the backend. Returns NULL with err set; the caller keeps running.
 * Strings in o are copied.
 */
struct cs_ctlsock *cs_ctlsock_new(uv_loop_t *loop, const struct cs_ctlsock_opts *o,
				  const struct cs_ctlsock_backend *be, char *err, size_t errlen);

/*
 * Takes a new configuration (after SIGHUP): the socket is made again when
 * its path, mode or group changed (the old one stays when that fails), the
 * rest is taken over; clients stay connected and counters keep counting.
 * Returns 0 or a negative errno with err set.
 */
int cs_ctlsock_apply(struct cs_ctlsock *s, const struct cs_ctlsock_opts *o, char *err,
		     size_t errlen);

/* The path of the socket being served, or NULL. */
const char *cs_ctlsock_path(const struct cs_ctlsock *s);

/* Re-renders and writes metrics_file now (when set). Returns 0 or negative errno. */
int cs_ctlsock_write_metrics(struct cs_ctlsock *s);

/*
 * Writes the metrics file one last time, drops every client, removes the
 * socket file (when it is still the one made here) and frees s once all its
 * handles are closed; then calls close_cb (may be NULL). Accepts NULL.
 */
void cs_ctlsock_close(struct cs_ctlsock *s, void (*close_cb)(void *arg), void *arg);

/*
 * The agent's status socket and metrics file for cfg, served from pl (which
 * must outlive it). Without listen (--once) only the metrics file is kept.
 * When the socket cannot be made, the error is logged and the metrics file
 * is still kept. Returns NULL (logged) only when nothing could be set up.
 */
struct cs_ctlsock *cs_ctlsock_for_agent(uv_loop_t *loop, const struct cs_config *cfg,
					struct cs_pipeline *pl, bool listen);

struct cs_early;

/*
 * The status socket before the configuration has been read, from the
 * [agent] keys of the main file: status answers at once with "starting"
 * (no certs yet); every other request waits, in order, until
 * cs_ctlsock_attach_agent. Returns NULL (logged) when it cannot be made.
 */
struct cs_ctlsock *cs_ctlsock_for_start(uv_loop_t *loop, const struct cs_early *e);

/* What status says the starting agent is doing (a static string). Accepts NULL. */
void cs_ctlsock_set_starting(struct cs_ctlsock *s, const char *what);

/*
 * Serves pl (which must outlive s) from a socket made by
 * cs_ctlsock_for_start, under cfg (the socket moves if cfg puts it
 * elsewhere); the requests that waited are answered.
 */
void cs_ctlsock_attach_agent(struct cs_ctlsock *s, const struct cs_config *cfg,
			     struct cs_pipeline *pl);

/* cs_ctlsock_apply for a new configuration; errors are logged. Accepts NULL. */
void cs_ctlsock_apply_config(struct cs_ctlsock *s, const struct cs_config *cfg, bool listen);

#endif
