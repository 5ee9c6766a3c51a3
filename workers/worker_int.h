/* worker_int.h: the state one worker process shares between its modules. */
#ifndef BUSGATE_WORKER_INT_H
#define BUSGATE_WORKER_INT_H

#include <stddef.h>
#include <stdint.h>

#include "busgate/config/config.h"
#include "busgate/core/ev.h"
#include "busgate/workers/worker.h"
#include "auth.h"
#include "http_parser.h"
#include "identity.h"

typedef struct bg_conn bg_conn;
typedef struct bg_wk bg_wk;
typedef struct bg_server bg_server;
typedef struct bg_dispatch bg_dispatch;
typedef struct bg_xchg bg_xchg;

/* Who decides what answers a request whose head arrived, where a connection hands an
 * exchange whose request is complete, and whom it tells when the client leaves first. worker.c
 * fills it in, so the HTTP code knows nothing of the bus or the admin API. */
typedef struct bg_conn_handlers {
    void (*plan)(bg_wk *wk, bg_xchg *x, const bg_http_request *req); /* what answers x */
    void (*route)(bg_wk *wk, bg_xchg *x);   /* kind BG_XK_ROUTE: send it to its service */
    void (*admin)(bg_wk *wk, bg_xchg *x);   /* kind BG_XK_ADMIN */
    void (*abandon)(bg_wk *wk, bg_xchg *x); /* the client is gone: forget x */
    void (*drained)(bg_wk *wk, bg_xchg *x); /* x streams and its output ran low: refill */
} bg_conn_handlers;

typedef struct bg_wk {
    const bg_worker_ctx *ctx;
    const bg_config *cfg;
    bg_ev *loop;
    bg_server *server;
    bg_dispatch *dispatch;
    const bg_conn_handlers *handlers;
    bg_identity identity;
    bg_auth *auth; /* NULL without [auth] */
    bg_http_limits limits;
    bg_conn *conns; /* every open client connection (http_conn.c keeps the list) */
    size_t nconns;
    int draining; /* graceful quit: no accepting, "Connection: close", exit when idle */
    int64_t drain_since_ms;
    uint64_t id_prefix, id_seq;
    /* finished exchanges kept for the next requests (exchange.c): a calloc of one (a few
     * KiB, so glibc consolidates its fast bins first) cost ~10% of a worker's CPU */
    bg_xchg *xfree;
    size_t nxfree;
    /* this process's copy of the OpenAPI document, renewed when its generation changes */
    char *openapi_body;
    size_t openapi_len;
    uint64_t openapi_gen;
} bg_wk;

/* 32 hex digits: a random per-process prefix and a counter, so ids are unique without
 * a getrandom() call per request. */
void bg_wk_request_id(bg_wk *wk, char out[33]);
/* Called whenever a connection or an in-flight request ends: while draining, stops
 * the loop once nothing is left. */
void bg_wk_check_drained(bg_wk *wk);

#endif
