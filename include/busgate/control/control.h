/* control.h: the master's control plane: control-stream consumer, liveness timers, resync. */
#ifndef BUSGATE_CONTROL_H
#define BUSGATE_CONTROL_H

#include "busgate/common.h"
#include "busgate/config/config.h"
#include "busgate/core/ev.h"
#include "busgate/proto/keys.h"
#include "busgate/routing/route_table.h"

/*
 * One bg_control lives in the master. It owns its own Valkey connections
 * (never shared with workers), a consumer group per
 * gateway instance on the control stream, and a private registry of
 * services/connections/endpoints that it publishes into rt after each batch
 * of frames it read. Everything runs on loop. The sockets are close-on-exec
 * but survive fork(): a child closes every fd it does not own.
 *
 * Target kinds of bg_control_resync (the same values as bg_chan_msg). */
#define BG_CONTROL_TARGET_FLEET 0
#define BG_CONTROL_TARGET_SERVICE 1
#define BG_CONTROL_TARGET_CONNECTION 2

typedef struct bg_control bg_control;

/* Connects (own connections), creates the group, broadcasts a startup
 * RESYNC_REQUEST, installs its handlers and timers on loop. cfg is copied.
 * Returns NULL with err set when the arguments are unusable; an unreachable
 * Valkey is not an error: bg_control keeps retrying with backoff. */
bg_control *bg_control_new(const bg_config *cfg, bg_rt *rt, bg_ev *loop, char *err);
/* Removes handlers/timers from the loop, closes the connections. NULL is a no-op. */
void bg_control_free(bg_control *c);
/* Counts the control plane's dead letters and bus reconnects in the master's
 * slot of m (busgate_dead_letters_total, busgate_bus_reconnects_total). */
struct bg_metrics;
void bg_control_set_metrics(bg_control *c, struct bg_metrics *m);
/* Tells workers through v when the startup resync has had its answers, and samples every
 * known service's request backlog into v (and trims acknowledged requests). */
struct bg_busview;
void bg_control_set_busview(bg_control *c, struct bg_busview *v);
/* Gives every sampled service an entry in the workers' breaker table b, shows the
 * breakers in the state document, and rewrites it soon after a breaker moves. */
struct bg_breaker;
void bg_control_set_breaker(bg_control *c, struct bg_breaker *b);

/* Builds the aggregated OpenAPI document into d now and after every publish that
 * changes routing (or a reload); workers serve it from there. */
struct bg_doc;
void bg_control_set_openapi(bg_control *c, struct bg_doc *d);

/* Sends a RESYNC_REQUEST: kind FLEET (target ignored) to the broadcast stream,
 * SERVICE to every known instance of service target, CONNECTION to the one
 * connection target ("<service>/<instance>"). BG_ERR when the target is not
 * known or the bus is down. */
int bg_control_resync(bg_control *c, int target_kind, const char *target, char *err);

/* On reload: takes the new timers/intervals and bus settings from cfg. The
 * routing table capacity cannot change (the mapping is fixed at start). If the
 * Valkey address or control stream changed, the connections are re-made and a
 * fleet-wide resync follows. */
int bg_control_reconfigure(bg_control *c, const bg_config *cfg, char *err);

#endif
