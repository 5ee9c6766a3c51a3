/* registry.h: the master's private model of services, connections and endpoints, fed by frames. */
#ifndef BUSGATE_REGISTRY_H
#define BUSGATE_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "busgate/common.h"
#include "busgate/proto/frame.h"
#include "busgate/proto/keys.h"
#include "busgate/routing/route_table.h"

/*
 * A connection is one service instance as this gateway sees it. Its id is
 * "<service>/<instance>" (both names, section 2 of docs/protocol.md, so '/'
 * cannot occur inside either): busgatectl and the admin endpoint use it.
 *
 * The registry only changes in memory; bg_reg_publish() copies the whole
 * state into the shared routing table in one step, connections in
 * registration order (the first service to declare a route keeps it). It is
 * single-threaded, like the master loop that owns it. Times are monotonic
 * milliseconds passed in by the caller (tests drive the clock).
 */

#define BG_REG_ID_MAX (2 * BG_NAME_MAX + 1)

typedef struct bg_reg_endpoint {
    char method[BG_FRAME_METHOD_MAX + 1];
    char *path;         /* validated template */
    int64_t timeout_ms; /* 0 = the gateway's request_timeout */
    char *claims;       /* required claims joined with ','; NULL = none */
    char *rate_limit;   /* the declared rate limit as sent; NULL = none */
    json_t *openapi;    /* the endpoint's OpenAPI operation (a reference), NULL = none */
    json_t *request_schema, *response_schema; /* JSON Schemas (references), NULL = none */
    /* private to the OpenAPI build (openapi_ops.c): this endpoint's operation rendered for
     * path key oa_key, kept across builds since the endpoint itself never changes */
    char *oa_text, *oa_key;
} bg_reg_endpoint;

typedef struct bg_reg_conn {
    char id[BG_REG_ID_MAX + 1]; /* "<service>/<instance>" */
    char service[BG_NAME_MAX + 1];
    char instance[BG_NAME_MAX + 1];
    char version[BG_FRAME_SVC_VERSION_MAX + 1];
    uint64_t order;       /* registration sequence number */
    int up;               /* 0 = marked down (no frame for heartbeat_expiry) */
    int has_endpoints;    /* an ENDPOINTS_UPDATE has been applied */
    int64_t last_seen_ms; /* monotonic time of its last frame */
    int64_t down_since_ms;
    int64_t last_heartbeat_wall_ms; /* wall clock of its last frame (shown in state) */
    int64_t interval_ms;            /* heartbeat interval it announced, 0 = not yet */
    bg_reg_endpoint *endpoints;
    size_t nendpoints;
    json_t *openapi; /* service-level OpenAPI fragment of its last update, NULL = none */

    /* Resync bookkeeping, owned by the control plane (control_resync.c). */
    char resync_id[BG_FRAME_ID_MAX + 1];
    int resync_attempts; /* RESYNC_REQUESTs sent without answer; 0 = none pending */
    int resync_gave_up;  /* attempts exhausted; cleared by the next answer or HELLO */
    int64_t resync_due_ms;

    /* private: endpoints before this batch's update, restored when publish fails */
    bg_reg_endpoint *undo_;
    size_t nundo_;
    json_t *undo_openapi_;
    uint64_t undo_seq_; /* 0 = nothing to undo */
    int undo_had_endpoints_;
} bg_reg_conn;

/* What the liveness sweep did to a connection, for the caller's log. */
typedef enum {
    BG_REG_EV_DOWN = 1, /* no frame for heartbeat_expiry */
    BG_REG_EV_REMOVED,  /* down for connection_remove */
} bg_reg_event;
typedef void bg_reg_event_fn(void *ud, const bg_reg_conn *conn, bg_reg_event ev, int64_t idle_ms);

typedef struct bg_reg_opts {
    int max_services, max_connections, max_endpoints; /* the routing table's capacities */
    int64_t heartbeat_expiry_ms;                      /* no frame this long = down */
    int64_t connection_remove_ms;                     /* down this long = removed */
} bg_reg_opts;

typedef struct bg_registry bg_registry;

/* The registry writes into rt (not owned) and logs route conflicts through
 * bg_rt_set_conflict_cb, each one once while it lasts. */
bg_registry *bg_reg_new(const bg_reg_opts *o, bg_rt *rt, char *err);
void bg_reg_free(bg_registry *r);
/* Reload: new timers (capacities stay those of the table). */
void bg_reg_set_timers(bg_registry *r, int64_t expiry_ms, int64_t remove_ms);

/* Apply one decoded frame. Each of the first three registers an unknown
 * connection (*created = 1), refreshes its liveness (a down connection comes
 * back up) and returns it in *conn. BG_ERR (err set, nothing changed) when a
 * capacity would be exceeded or, for ENDPOINTS_UPDATE, when one endpoint is
 * refused by the routing table's rules (the frame is rejected alone). */
int bg_reg_hello(bg_registry *r, const bg_frame *f, int64_t now_ms, int *created,
                 bg_reg_conn **conn, char *err);
int bg_reg_heartbeat(bg_registry *r, const bg_frame *f, int64_t now_ms, int *created,
                     bg_reg_conn **conn, char *err);
/* Replaces the connection's whole endpoint list in one step. */
int bg_reg_endpoints(bg_registry *r, const bg_frame *f, int64_t now_ms, int *created,
                     bg_reg_conn **conn, char *err);
/* Removes the connection at once; returns 1 if it was known, 0 if not. */
int bg_reg_goodbye(bg_registry *r, const bg_frame *f);

/* An instance is down after the longer of heartbeat_expiry and three of the heartbeat
 * intervals it announced, at most BG_REG_EXPIRY_CAP times heartbeat_expiry: a service
 * that heartbeats every 10 s does not flap against a gateway whose expiry is 6 s, and a
 * service announcing a day cannot keep a dead instance routed for a day. */
#define BG_REG_EXPIRY_INTERVALS 3
#define BG_REG_EXPIRY_CAP 10
int64_t bg_reg_conn_expiry(const bg_registry *r, const bg_reg_conn *c);

/* Liveness sweep: marks connections down / removes them per the timers,
 * calling fn (may be NULL) for each. Returns how many changed. */
int bg_reg_expire(bg_registry *r, int64_t now_ms, bg_reg_event_fn *fn, void *ud);
/* Monotonic time of the next liveness change, INT64_MAX when none. */
int64_t bg_reg_next_expiry(const bg_registry *r);
/* The bus was silent (the master cut off from Valkey): no connection is counted idle
 * before not_before_ms (last_seen and down_since move up to it), so instances that kept
 * heartbeating through the outage are not marked down, nor down ones removed, for it. */
void bg_reg_hold_expiry(bg_registry *r, int64_t not_before_ms);

/* 1 when routing changed since the last publish (connection added, removed,
 * up/down, version or endpoints); heartbeat-only changes are not routing. */
int bg_reg_routes_dirty(const bg_registry *r);
/* 1 when only last-heartbeat times changed since the last publish. */
int bg_reg_heartbeats_dirty(const bg_registry *r);

/* Copies the whole state into the routing table (one bg_rt_publish). If the
 * table refuses it (a capacity such as its string space), the endpoint
 * updates applied since the last publish are undone one at a time, newest
 * first, each reported through fn with the table's reason, until a publish
 * succeeds. BG_ERR only when even the previous state cannot be published. */
typedef void bg_reg_reject_fn(void *ud, const bg_reg_conn *conn, const char *reason);
int bg_reg_publish(bg_registry *r, bg_reg_reject_fn *fn, void *ud, char *err);
unsigned long bg_reg_publish_count(const bg_registry *r);

/* Connections in registration order: index 0..count-1. */
size_t bg_reg_count(const bg_registry *r);
bg_reg_conn *bg_reg_at(const bg_registry *r, size_t i);
/* NULL when unknown. */
bg_reg_conn *bg_reg_find(const bg_registry *r, const char *service, const char *instance);
bg_reg_conn *bg_reg_find_id(const bg_registry *r, const char *id);
/* Totals over every connection: distinct services, endpoint declarations. */
size_t bg_reg_service_count(const bg_registry *r);
size_t bg_reg_endpoint_count(const bg_registry *r);

#endif
