/* dispatch.h: requests to services over the bus: REQUEST frames out, RESPONSE frames back. */
#ifndef BUSGATE_DISPATCH_H
#define BUSGATE_DISPATCH_H

#include <stddef.h>

#include "busgate/bus/bus.h"
#include "http_conn.h"
#include "worker_int.h"

/* Two connections of its own: one pipelined for XADDs (REQUEST, CANCEL), one blocked in
 * XREAD on this worker's reply stream. */
bg_dispatch *bg_dispatch_new(bg_wk *wk, const bg_bus_opts *bus, char *err);
/* Call after every exchange is gone (bg_conn_close_all). */
void bg_dispatch_free(bg_dispatch *d);

/* Once per process, before the sandbox (OpenSSL may read its configuration on first use):
 * the digest and the script hashes that Idempotency-Key handling needs. BG_ERR: no SHA-256. */
int bg_dispatch_idem_setup(char *err);

/* Both connections up and the reply reader positioned: dispatching can succeed. */
int bg_dispatch_ready(const bg_dispatch *d);
size_t bg_dispatch_inflight(const bg_dispatch *d);
/* Successful reconnects of both connections, for metrics. */
unsigned long bg_dispatch_reconnects(const bg_dispatch *d);
/* The pipelined connection REQUESTs go out on (rate limit scripts share it). */
typedef struct bg_abus bg_abus;
bg_abus *bg_dispatch_bus(bg_dispatch *d);
/* This worker's reply stream key. */
const char *bg_dispatch_reply_key(const bg_dispatch *d);

/* Builds x->meta (REQUEST meta JSON: route params, forwarded headers without hop-by-hop
 * and reserved identity headers, X-Forwarded-*, the identity headers and meta.claims of
 * the verified token in id (id->claims NULL: anonymous), the client address) from the parsed
 * head. BG_ERR with a client-facing reason in detail (400). */
int bg_dispatch_build_meta(bg_wk *wk, bg_xchg *x, const bg_http_request *req,
                           const bg_auth_result *id, char *detail, size_t dlen);
/* Sends x (kind BG_XK_ROUTE, body complete) as a REQUEST and arms its deadline; answers
 * x at once (503) when the bus is down or full. */
void bg_dispatch_send(bg_dispatch *d, bg_xchg *x);
/* The client went away: forget x and tell the service (CANCEL "client_gone"). */
void bg_dispatch_abandon(bg_dispatch *d, bg_xchg *x);
/* x streams and the client read its queued output down: fetch held pieces again. */
void bg_dispatch_stream_drained(bg_dispatch *d, bg_xchg *x);

#endif
