/* http_conn.h: one client connection: reading, parsing, in-order responses, timeouts. */
#ifndef BUSGATE_HTTP_CONN_H
#define BUSGATE_HTTP_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "busgate/route_table.h"
#include "http_parser.h"
#include "http_response.h"
#include "worker_int.h"

/* Pipelined requests a connection may have queued before the worker stops reading from it. */
#define BG_CONN_MAX_PIPELINE 32

typedef enum {
    BG_XK_ERROR = 0, /* answered by the gateway: err_status, err_detail */
    BG_XK_ROUTE,     /* dispatched to a service over the bus */
    BG_XK_ADMIN,     /* an admin or operational endpoint */
} bg_xchg_kind;

/* One request/response exchange. Owned by its connection's queue until the response
 * is written; dispatch and admin fill `out` and call bg_xchg_done. */
typedef struct bg_xchg {
    bg_wk *wk;
    bg_conn *conn;        /* NULL once the client is gone or the response was written */
    struct bg_xchg *next; /* the connection's queue, in request order */

    /* request */
    char id[33];
    char method[BG_HTTP_MAX_METHOD_LEN + 1];
    bg_http_method m;
    int version, keep_alive;
    char *path; /* decoded, normalised, NUL-terminated */
    size_t path_len;
    char *query; /* raw, NUL-terminated; NULL without '?' */
    size_t query_len;
    char *auth; /* Authorization value (admin endpoints only), NUL-terminated */
    char client[64];
    bg_xchg_kind kind;
    bg_rt_match match;       /* BG_XK_ROUTE */
    bg_buf meta;             /* BG_XK_ROUTE: REQUEST meta JSON */
    bg_buf body;             /* request body */
    int64_t t_start_us;      /* head complete */
    int64_t t_start_wall_ms; /* the same, wall clock (access log) */
    int64_t t_bus_us;        /* REQUEST sent; 0 = never */
    int64_t t_reply_us;      /* RESPONSE received */

    /* error answer (BG_XK_ERROR) */
    int err_status;
    int err_close; /* answer with "Connection: close" and close */
    char err_detail[160];
    char err_extra[160]; /* header lines, each ending in CRLF */

    /* dispatch state */
    bg_ev_timer *deadline;
    int tracked;      /* in the in-flight table */
    int xadd_pending; /* the REQUEST's XADD reply has not come yet */
    int detached;     /* no longer in a queue: free when xadd_pending drops */

    /* response */
    int answered;
    int status;
    char instance[BG_RT_ID_MAX + 1];
    bg_buf out;
    size_t out_off;
} bg_xchg;

/* Takes ownership of fd (non-blocking) and starts serving it; BG_ERR (fd closed) with
 * err set when out of memory. */
int bg_conn_new(bg_wk *wk, int fd, const char *client, const char *peer, char *err);
/* Closes every connection now: pending exchanges are abandoned (CANCEL). */
void bg_conn_close_all(bg_wk *wk);
/* Graceful quit: close keep-alive connections idle after a response now, the others
 * after their queued responses (a fresh connection gets its first request served). */
void bg_conn_drain_all(bg_wk *wk);

/* How to frame x's response (version, keep-alive, HEAD, request id). */
void bg_xchg_resp_ctx(const bg_xchg *x, bg_resp_ctx *rc);
/* x->out holds the whole response: write it in order. Safe on an exchange whose client
 * is gone (it is then freed). */
void bg_xchg_done(bg_xchg *x, int status);
/* Renders a problem+json answer into x->out and completes x. */
void bg_xchg_problem(bg_xchg *x, int status, const char *detail, const char *extra);
/* Frees x unless its XADD reply is still pending (then the reply callback frees it). */
void bg_xchg_release(bg_xchg *x);

/* http_plan.c: decides what answers a request whose head just arrived: normalises the
 * path, then an admin endpoint, a route (x->match, x->meta) or an error (x->err_*). */
void bg_http_plan(bg_wk *wk, bg_xchg *x, const bg_http_request *req);

#endif
