/* admin.c: /healthz, /readyz, /metrics and the token-protected router administration API. */
#include "admin.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "busgate/routing/bus_view.h"
#include "busgate/core/channel.h"
#include "busgate/core/log.h"
#include "busgate/metrics/metrics.h"
#include "dispatch.h"

#define ADMIN_RESYNC BG_ADMIN_PREFIX "router/resync"
#define ADMIN_STATE BG_ADMIN_PREFIX "router/state"

static int admin_path_is(const bg_xchg *x, const char *p)
{
    return x->path_len == strlen(p) && memcmp(x->path, p, x->path_len) == 0;
}

int bg_admin_match(const char *path, size_t len)
{
    static const char prefix[] = BG_ADMIN_PREFIX;

    if ((len == 8 && memcmp(path, "/healthz", 8) == 0) ||
        (len == 7 && memcmp(path, "/readyz", 7) == 0) ||
        (len == 8 && memcmp(path, "/metrics", 8) == 0))
        return 1;
    /* The whole prefix, also without its final '/': no service can sit under it. */
    return len >= sizeof(prefix) - 2 && memcmp(path, prefix, sizeof(prefix) - 2) == 0 &&
           (len == sizeof(prefix) - 2 || path[sizeof(prefix) - 2] == '/');
}

/* A complete answer; chunked for bodies rendered in one go whose size we do not announce. */
void bg_admin_reply(bg_xchg *x, int status, const char *type, const char *body, size_t len,
                    int chunked)
{
    bg_resp_ctx rc;
    int rv;

    bg_xchg_resp_ctx(x, &rc);
    x->out.len = 0;
    rv = bg_resp_status(&x->out, status);
    if (rv == BG_OK)
        rv = bg_buf_printf(&x->out, "Content-Type: %s\r\nCache-Control: no-store\r\n", type);
    if (rv == BG_OK)
        rv = chunked ? bg_resp_finish_chunked(&x->out, &rc, body, len)
                     : bg_resp_finish_sized(&x->out, &rc, body, len);
    if (rv != BG_OK) {
        bg_xchg_problem(x, 503, "out of memory", NULL);
        return;
    }
    bg_xchg_done(x, status);
}

static void admin_json(bg_xchg *x, int status, json_t *j)
{
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;

    json_decref(j);
    if (text == NULL) {
        bg_xchg_problem(x, 503, "out of memory", NULL);
        return;
    }
    bg_admin_reply(x, status, "application/json", text, strlen(text), 0);
    free(text);
}

static int admin_get_only(bg_xchg *x)
{
    if (x->m == BG_HTTP_M_GET || x->m == BG_HTTP_M_HEAD)
        return 1;
    bg_xchg_problem(x, 405, "only GET and HEAD are allowed here", "Allow: GET, HEAD\r\n");
    return 0;
}

static void admin_readyz(bg_wk *wk, bg_xchg *x)
{
    int bus = bg_dispatch_ready(wk->dispatch);
    int routes = bg_rt_generation(wk->ctx->rt) > 0 && bg_bv_warm(wk->ctx->busview);

    admin_json(x, bus && routes ? 200 : 503,
               json_pack("{s:s, s:b, s:b}", "status", bus && routes ? "ready" : "not ready", "bus",
                         bus, "routes", routes));
}

static void admin_metrics(bg_wk *wk, bg_xchg *x)
{
    bg_buf all = {0};
    char *text = NULL;
    size_t len = 0;
    int rv;

    if (wk->ctx->metrics == NULL ||
        bg_metrics_render_prometheus(wk->ctx->metrics, &text, &len) != BG_OK) {
        bg_xchg_problem(x, 503, "metrics are unavailable", NULL);
        return;
    }
    rv = bg_buf_append(&all, text, len);
    free(text);
    if (rv != BG_OK || bg_admin_metrics_services(wk, &all) != BG_OK) {
        bg_buf_free(&all);
        bg_xchg_problem(x, 503, "out of memory", NULL);
        return;
    }
    bg_admin_reply(x, 200, "text/plain; version=0.0.4; charset=utf-8", all.p, all.len, 1);
    bg_buf_free(&all);
}

/* 401 without a bearer token, 403 with a wrong one (constant-time compare). */
int bg_admin_authorized(bg_wk *wk, bg_xchg *x)
{
    const char *token = wk->cfg->admin.token, *given = x->auth;

    if (given == NULL || strncasecmp(given, "Bearer ", 7) != 0) {
        bg_xchg_problem(x, 401, "a bearer token is required",
                        "WWW-Authenticate: Bearer realm=\"busgate\"\r\n");
        return 0;
    }
    given += 7;
    while (*given == ' ')
        given++;
    if (!bg_consttime_equal(given, strlen(given), token, strlen(token))) {
        bg_warn("admin: wrong token from %s for %s", x->client, x->path);
        bg_xchg_problem(x, 403, "the token is not valid", NULL);
        return 0;
    }
    return 1;
}

static void admin_state(bg_wk *wk, bg_xchg *x)
{
    char err[BG_ERR_LEN], *json = NULL;

    if (!admin_get_only(x))
        return;
    if (bg_rt_snapshot_json(wk->ctx->rt, &json, err) != BG_OK) {
        bg_warn("admin: %s", err);
        bg_xchg_problem(x, 503, "the routing table is busy, retry", "Retry-After: 1\r\n");
        return;
    }
    bg_admin_reply(x, 200, "application/json", json, strlen(json), 1);
    free(json);
}

void bg_admin_handle(bg_wk *wk, bg_xchg *x)
{
    if (bg_admin_is_openapi(wk, x->path, x->path_len)) {
        if (admin_get_only(x))
            bg_admin_openapi(wk, x);
        return;
    }
    if (admin_path_is(x, "/healthz")) {
        if (admin_get_only(x))
            admin_json(x, 200, json_pack("{s:s}", "status", "ok"));
        return;
    }
    if (admin_path_is(x, "/readyz")) {
        if (admin_get_only(x))
            admin_readyz(wk, x);
        return;
    }
    if (admin_path_is(x, "/metrics")) {
        if (admin_get_only(x))
            admin_metrics(wk, x);
        return;
    }
    /* Without a configured token the administration API does not exist. */
    if (!wk->cfg->admin.enabled || wk->cfg->admin.token[0] == '\0') {
        bg_xchg_problem(x, 404, "no service serves this path", NULL);
        return;
    }
    if (!bg_admin_authorized(wk, x))
        return;
    if (admin_path_is(x, ADMIN_RESYNC))
        bg_admin_resync(wk, x);
    else if (admin_path_is(x, ADMIN_STATE))
        admin_state(wk, x);
    else
        bg_xchg_problem(x, 404, "no such administration endpoint", NULL);
}
