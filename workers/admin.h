/* admin.h: the endpoints the gateway answers itself: /healthz, /readyz, /metrics and the
 * token-protected router administration API. */
#ifndef BUSGATE_ADMIN_H
#define BUSGATE_ADMIN_H

#include <stddef.h>

#include "http_conn.h"
#include "worker_int.h"

#define BG_ADMIN_PREFIX "/api/v1/gateway/administration/"

/* 1 when the gateway answers this path itself (services can never claim it). */
int bg_admin_match(const char *path, size_t len);
/* Answers x (body complete): completes it with bg_xchg_done or bg_xchg_problem. */
void bg_admin_handle(bg_wk *wk, bg_xchg *x);
/* A complete answer of type `type`; chunked when the size is not announced. */
void bg_admin_reply(bg_xchg *x, int status, const char *type, const char *body, size_t len,
                    int chunked);
/* The admin bearer token: 1 when x carries it, else x is answered 401/403 and 0. */
int bg_admin_authorized(bg_wk *wk, bg_xchg *x);

/* admin_openapi.c: 1 when path is the configured [openapi] path. */
int bg_admin_is_openapi(const bg_wk *wk, const char *path, size_t len);
/* GET/HEAD of the aggregated OpenAPI document. */
void bg_admin_openapi(bg_wk *wk, bg_xchg *x);
/* admin_metrics.c: appends the per-service gauges (backlogs, breakers) to out. */
int bg_admin_metrics_services(bg_wk *wk, bg_buf *out);
/* admin_resync.c: POST .../router/resync (token already checked). */
void bg_admin_resync(bg_wk *wk, bg_xchg *x);

#endif
