/* exchange.h: one HTTP request/response exchange and the rule of who owns it. */
#ifndef BUSGATE_EXCHANGE_H
#define BUSGATE_EXCHANGE_H

#include <stddef.h>
#include <stdint.h>

#include "busgate/proto/idem_record.h"
#include "busgate/proto/keys.h"
#include "auth.h"
#include "busgate/routing/breaker.h"
#include "busgate/routing/route_table.h"
#include "http_parser.h"
#include "http_response.h"
#include "worker_int.h"

/*
 * Ownership. An exchange is held by up to two owners, each a bit in x->holds:
 *
 *   BG_XHOLD_QUEUE  its connection's queue, from bg_xchg_new until the response was
 *                   written or the client went away (bg_xchg_drop_queue; x->conn is
 *                   NULL from then on);
 *   BG_XHOLD_BUS    bus commands whose reply callbacks take x as their argument (the
 *                   idempotency claim, the REQUEST's XADD), each from bg_xchg_hold_bus
 *                   until its callback ends with bg_xchg_drop_bus; counted, because
 *                   the claim's callback queues the XADD before it lets go.
 *
 * The owner that drops the last hold frees x; nothing else ever frees it. Everyone
 * else (the deadline timer, the in-flight table the reply reader looks x up in) only
 * borrows x and is detached (bg_dispatch_untrack) before the queue lets go. A callback
 * that holds x keeps its hold until it has finished touching x: finishing x (done,
 * problem) can write the response and drop the queue's hold on the way.
 */
#define BG_XHOLD_QUEUE 1
#define BG_XHOLD_BUS 2

/* x->idem: no record involved; claim sent; the record is ours (in flight); settled. */
#define BG_IDEM_NONE 0
#define BG_IDEM_CLAIMING 1
#define BG_IDEM_OWNED 2
#define BG_IDEM_SETTLED 3

typedef enum {
    BG_XK_ERROR = 0, /* answered by the gateway: err_status, err_detail */
    BG_XK_ROUTE,     /* dispatched to a service over the bus */
    BG_XK_ADMIN,     /* an admin or operational endpoint */
} bg_xchg_kind;

/* One request/response exchange; see the ownership rule above. */
struct bg_xchg {
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
    char *auth;     /* Authorization value (admin endpoints only), NUL-terminated */
    char *idem_key; /* Idempotency-Key value when it applies to this request, else NULL */
    char client[64];
    int tls; /* came over TLS: X-Forwarded-Proto https */
    bg_xchg_kind kind;
    bg_rt_match match;       /* BG_XK_ROUTE */
    bg_buf meta;             /* BG_XK_ROUTE: REQUEST meta JSON */
    bg_buf body;             /* request body */
    int64_t t_start_us;      /* head complete */
    int64_t t_start_wall_ms; /* the same, wall clock (access log) */
    int64_t t_bus_us;        /* REQUEST sent; 0 = never */
    int64_t t_reply_us;      /* RESPONSE received */

    /* rate limit (ratelimit.c), chosen by the plan, checked before dispatch */
    /* NULL: no limit. An ini rule's spec, or x->match.rate (the route's declared one). */
    const bg_rate_spec *rl_spec;
    uint64_t rl_key;      /* the bucket: limit, route and client key hashed */
    int64_t rl_want;      /* cluster mode: tokens asked of Valkey (a lease when > 1) */
    char rl_headers[192]; /* RateLimit-* lines for the service's response, or "" */

    /* error answer (BG_XK_ERROR) */
    int err_status;
    int err_close; /* answer with "Connection: close" and close */
    char err_detail[160];
    char err_extra[BG_AUTH_CHALLENGE_MAX]; /* header lines, each ending in CRLF */

    /* dispatch state */
    bg_ev_timer *deadline;
    int tracked;                      /* in the in-flight table */
    int holds;                        /* BG_XHOLD_* bits; freed when the last one is dropped */
    int nbus;                         /* bus commands holding x (BG_XHOLD_BUS while > 0) */
    int idem;                         /* BG_IDEM_*: where x is with its idempotency record */
    char idem_vkey[BG_KEY_MAX + 1];   /* the record's Valkey key */
    char idem_fp[BG_IDEM_FP_LEN + 1]; /* the request's fingerprint */
    bg_brk_ticket brk;                /* admitted by the service's breaker: its verdict is owed */

    /* response */
    int answered;
    int status;
    char instance[BG_RT_ID_MAX + 1];
    bg_buf out;
    size_t out_off;
    size_t out_total; /* bytes written to the client (access log) */
    /* A streamed response (RESPONSE with stream 1): answered once its head is in out;
     * while streaming, more bytes are appended to out as pieces arrive and the writer
     * does not finish x when out runs dry. stream_abort: end the connection once what
     * is in out was written (a truncated body is the honest signal). */
    int streaming, stream_abort;
    struct bg_xstream *st; /* dispatch's stream state; freed with x */
};

/* A new exchange for connection c, held by its queue (the caller links it in). */
bg_xchg *bg_xchg_new(bg_wk *wk, bg_conn *c);
/* Frees the exchanges wk keeps for reuse (at worker exit). */
void bg_xchg_cache_free(bg_wk *wk);
/* The connection lets go: the response was written, or the client is gone. */
void bg_xchg_drop_queue(bg_xchg *x);
/* A bus command with x as its callback argument was queued / its callback is done. */
void bg_xchg_hold_bus(bg_xchg *x);
void bg_xchg_drop_bus(bg_xchg *x);

/* How to frame x's response (version, keep-alive, HEAD, request id). */
void bg_xchg_resp_ctx(const bg_xchg *x, bg_resp_ctx *rc);
/* x->out holds the whole response: write it in order. On an exchange whose client is
 * gone it only records the status. x may be freed on return unless the caller holds it. */
void bg_xchg_done(bg_xchg *x, int status);
/* More bytes of a streamed response are in x->out, or the stream ended (streaming 0)
 * or broke off (stream_abort): write what is in order. x may be freed on return. */
void bg_xchg_more(bg_xchg *x);
/* Bytes of x's response waiting to be written. */
size_t bg_xchg_queued(const bg_xchg *x);
/* Renders a problem+json answer into x->out and completes x (as bg_xchg_done). */
void bg_xchg_problem(bg_xchg *x, int status, const char *detail, const char *extra);

#endif
