/* plan.c: from a parsed request head to a plan: admin endpoint, service
 * route or error. */
#include "plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "auth.h"
#include "busgate/routing/bus_view.h"
#include "dispatch.h"
#include "http_conn.h"
#include "http_path.h"
#include "ratelimit.h"

/* Seconds a client should wait before retrying when no instance is up: about
 * one heartbeat, the time a restarted instance needs to be routed again. */
#define PLAN_RETRY_NO_INSTANCE "Retry-After: 5\r\n"

static void plan_error(bg_xchg *x, int status, int close, const char *fmt, const char *arg)
{
    x->kind = BG_XK_ERROR;
    x->err_status = status;
    x->err_close = close;
    snprintf(x->err_detail, sizeof(x->err_detail), fmt, arg);
}

static char *plan_strndup(const char *p, size_t len)
{
    char *s = malloc(len + 1);

    if (s != NULL) {
        memcpy(s, p, len);
        s[len] = '\0';
    }
    return s;
}

/* A bad path is a malformed request like any other parser error: answer and
 * close. */
static int plan_path(bg_xchg *x, const bg_http_request *req)
{
    bg_http_error e = BG_HTTP_E_NONE;
    size_t cap = req->path.len + 2;

    x->path = malloc(cap);
    if (x->path == NULL) {
        plan_error(x, 503, 1, "%s", "out of memory");
        return BG_ERR;
    }
    if (bg_http_path_normalize(req->path.ptr, req->path.len, x->path, cap, &x->path_len, &e) !=
        BG_OK) {
        plan_error(x, bg_http_error_status(e, NULL), 1, "%s", bg_http_error_str(e));
        return BG_ERR;
    }
    if (req->query.ptr != NULL) {
        x->query = plan_strndup(req->query.ptr, req->query.len);
        x->query_len = req->query.len;
        if (x->query == NULL) {
            plan_error(x, 503, 1, "%s", "out of memory");
            return BG_ERR;
        }
    }
    return BG_OK;
}

static void plan_admin(bg_xchg *x, const bg_http_request *req)
{
    const bg_http_header *h = bg_http_header_find(req, "authorization");

    x->kind = BG_XK_ADMIN;
    if (h != NULL && (x->auth = plan_strndup(h->value.ptr, h->value.len)) == NULL)
        plan_error(x, 503, 1, "%s", "out of memory");
}

/* Whether method is one of the words of list ("POST PATCH"). */
static int plan_method_listed(const char *list, const char *method)
{
    size_t n = strlen(method);

    for (const char *p = list; (p = strstr(p, method)) != NULL; p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return 1;
    return 0;
}

/* Idempotency-Key (draft-ietf-httpapi-idempotency-key-header): a structured-field string,
 * sent quoted or bare; 1..255 visible ASCII characters. */
static int plan_idem_key(const char *p, size_t len, char **out)
{
    if (len >= 2 && p[0] == '"' && p[len - 1] == '"') {
        p++;
        len -= 2;
    }
    if (len < 1 || len > 255)
        return BG_ERR;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)p[i] < 0x21 || (unsigned char)p[i] > 0x7e || p[i] == '"')
            return BG_ERR;
    *out = plan_strndup(p, len);
    return BG_OK;
}

/* Remembers the Idempotency-Key when it applies to this request; dispatch then claims it
 * on the bus before the REQUEST goes out. */
static void plan_idempotency(bg_wk *wk, bg_xchg *x, const bg_http_request *req)
{
    const bg_http_header *h;

    if (!wk->cfg->idempotency.enabled ||
        !plan_method_listed(wk->cfg->idempotency.methods, x->method) ||
        (h = bg_http_header_find(req, "idempotency-key")) == NULL)
        return;
    if (plan_idem_key(h->value.ptr, h->value.len, &x->idem_key) != BG_OK) {
        plan_error(x, 400, 0, "%s", "Idempotency-Key must be 1..255 visible ASCII characters");
        return;
    }
    if (x->idem_key == NULL)
        plan_error(x, 503, 1, "%s", "out of memory");
}

/* A route was found: authenticate (before anything can reach the bus), then build the
 * REQUEST meta with the verified identity. */
static void plan_found(bg_wk *wk, bg_xchg *x, const bg_http_request *req)
{
    const char *subject = x->conn != NULL ? bg_conn_client_subject(x->conn) : NULL;
    bg_auth_result ar; /* about 1.2 KB, on the stack: no allocation per request */
    char detail[160];

    /* A token, when sent, decides; without one a verified client certificate identifies. */
    if (subject != NULL && bg_http_header_find(req, "authorization") == NULL)
        bg_auth_from_cert(wk->cfg, subject, x->match.claims, &ar);
    else
        bg_auth_request(wk->auth, wk->cfg, req, x->match.claims, bg_wall_ms() / 1000, &ar);
    if (ar.status != 0) {
        plan_error(x, ar.status, 0, "%s", ar.detail);
        snprintf(x->err_extra, sizeof(x->err_extra), "%s", ar.challenge);
    } else {
        x->kind = BG_XK_ROUTE;
        if (bg_dispatch_build_meta(wk, x, req, &ar, detail, sizeof(detail)) != BG_OK) {
            plan_error(x, 400, 0, "%s", detail);
        } else {
            bg_ratelimit_plan(wk, x, req, ar.claims);
            plan_idempotency(wk, x, req);
        }
    }
    json_decref(ar.claims);
}

static void plan_route(bg_wk *wk, bg_xchg *x, const bg_http_request *req)
{
    bg_rt_match *m = &x->match;
    char allow[96];

    bg_rt_lookup(wk->ctx->rt, x->method, x->path, x->path_len, m);
    switch (m->status) {
    case BG_RT_FOUND:
        plan_found(wk, x, req);
        return;
    case BG_RT_METHOD_NOT_ALLOWED:
        plan_error(x, 405, 0, "method %s is not allowed here", x->method);
        bg_rt_allow_string(m->allow_mask, allow, sizeof(allow));
        snprintf(x->err_extra, sizeof(x->err_extra), "Allow: %s\r\n", allow);
        return;
    case BG_RT_NO_LIVE_INSTANCE:
        plan_error(x, 503, 0, "no live instance of service '%s'", m->service);
        snprintf(x->err_extra, sizeof(x->err_extra), "%s", PLAN_RETRY_NO_INSTANCE);
        return;
    case BG_RT_BUSY:
        plan_error(x, 503, 0, "%s", "the routing table is being updated, retry");
        snprintf(x->err_extra, sizeof(x->err_extra), "Retry-After: 1\r\n");
        return;
    case BG_RT_NOT_FOUND:
    default:
        if (!bg_bv_warm(wk->ctx->busview)) {
            /* Just started: the service for this path may not have announced itself yet. */
            plan_error(x, 503, 0, "%s", "the gateway is starting and has not heard every service");
            snprintf(x->err_extra, sizeof(x->err_extra), "Retry-After: 1\r\n");
            return;
        }
        plan_error(x, 404, 0, "%s", "no service serves this path");
        return;
    }
}

void bg_plan_request(bg_wk *wk, bg_xchg *x, const bg_http_request *req)
{
    if (req->target_form == BG_HTTP_TARGET_ASTERISK) {
        plan_error(x, 404, 0, "%s", "'*' names no resource here");
        return;
    }
    if (plan_path(x, req) != BG_OK)
        return;
    if (bg_admin_match(x->path, x->path_len) || bg_admin_is_openapi(wk, x->path, x->path_len)) {
        plan_admin(x, req);
        return;
    }
    plan_route(wk, x, req);
}
