/*
 * cs_notify - telling people, without Prometheus: the [notify] sections
 * (certsync.conf(5)) turn the pipeline's events into messages. A renewal
 * that fails is told once (again after `interval` while it keeps failing),
 * its recovery once, a renewal and a near expiry at most once per
 * `interval` for each cert; each through a command (the event in CERTSYNC_*
 * variables) and/or a short plain-text mail through the local sendmail.
 * Programs run on the work queue with a deadline; a notifier that fails or
 * hangs is logged and never touches a renewal.
 */
#ifndef CS_NOTIFY_H
#define CS_NOTIFY_H

#include "cs_config.h"

#include <uv.h>

struct cs_notify;
struct cs_pipeline;

/* A notifier for cfg's [notify] sections (cfg must outlive it or be replaced). NULL on ENOMEM. */
struct cs_notify *cs_notify_new(uv_loop_t *loop, const struct cs_config *cfg);

/* Subscribes n to pl's events; status is read from pl when a message is made. */
int cs_notify_attach(struct cs_notify *n, struct cs_pipeline *pl);

/* A new configuration (SIGHUP): its [notify] sections from now on. */
void cs_notify_apply(struct cs_notify *n, const struct cs_config *cfg);

/*
 * Stops: nothing new is told; programs running finish on their own (their
 * jobs free themselves). Frees n (accepts NULL); the handles close on the loop.
 */
void cs_notify_close(struct cs_notify *n);

#endif
