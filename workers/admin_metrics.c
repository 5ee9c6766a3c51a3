/* admin_metrics.c: the per-service gauges /metrics adds to the shared counters: each
 * service's backlog as the master last sampled it, and its circuit breaker. */
#include "admin.h"

#include <stdio.h>

#include "busgate/routing/breaker.h"
#include "busgate/routing/bus_view.h"

typedef struct am_ctx {
    bg_buf *out;
    int rc;
} am_ctx;

/* Service names are tokens on the wire; the label is escaped anyway, as the counters' are. */
static void am_label(am_ctx *c, const char *family, const char *service, const char *extra)
{
    c->rc |= bg_buf_printf(c->out, "%s{service=\"", family);
    for (; *service; service++)
        c->rc |= *service == '"' || *service == '\\' || *service == '\n'
                     ? bg_buf_printf(c->out, "\\%c", *service == '\n' ? 'n' : *service)
                     : bg_buf_append(c->out, service, 1);
    c->rc |= bg_buf_printf(c->out, "\"%s} ", extra);
}

static void am_header(am_ctx *c, const char *name, const char *type, const char *help)
{
    c->rc |= bg_buf_printf(c->out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void am_backlog(void *ud, const char *service, const bg_bv_sample *s)
{
    am_ctx *c = ud;

    am_label(c, "busgate_service_backlog_requests", service, ",state=\"waiting\"");
    c->rc |= bg_buf_printf(c->out, "%lld\n", (long long)s->lag);
    am_label(c, "busgate_service_backlog_requests", service, ",state=\"pending\"");
    c->rc |= bg_buf_printf(c->out, "%lld\n", (long long)s->pending);
}

static void am_age(void *ud, const char *service, const bg_bv_sample *s)
{
    am_ctx *c = ud;

    am_label(c, "busgate_service_oldest_request_age_seconds", service, "");
    c->rc |= bg_buf_printf(c->out, "%.3f\n", (double)s->oldest_ms / 1000.0);
}

static void am_consumers(void *ud, const char *service, const bg_bv_sample *s)
{
    am_ctx *c = ud;

    am_label(c, "busgate_service_consumers", service, "");
    c->rc |= bg_buf_printf(c->out, "%lld\n", (long long)s->consumers);
}

static void am_brk_state(void *ud, const char *service, const bg_brk_info *i)
{
    am_ctx *c = ud;

    am_label(c, "busgate_breaker_state", service, "");
    c->rc |= bg_buf_printf(c->out, "%d\n", (int)i->state);
}

static void am_brk_opens(void *ud, const char *service, const bg_brk_info *i)
{
    am_ctx *c = ud;

    am_label(c, "busgate_breaker_opens_total", service, "");
    c->rc |= bg_buf_printf(c->out, "%llu\n", (unsigned long long)i->opens);
}

int bg_admin_metrics_services(bg_wk *wk, bg_buf *out)
{
    am_ctx c = {out, BG_OK};
    const bg_busview *v = wk->ctx->busview;

    am_header(&c, "busgate_service_backlog_requests", "gauge",
              "Requests of the service not read yet (waiting) or read and not acknowledged "
              "(pending), at the master's last sample.");
    bg_bv_each(v, am_backlog, &c);
    am_header(&c, "busgate_service_oldest_request_age_seconds", "gauge",
              "Age of the service's oldest waiting or pending request at the last sample.");
    bg_bv_each(v, am_age, &c);
    am_header(&c, "busgate_service_consumers", "gauge",
              "Consumers (service instances) in the groups of the service's request stream.");
    bg_bv_each(v, am_consumers, &c);
    if (wk->cfg->breaker.failures <= 0)
        return c.rc == BG_OK ? BG_OK : BG_ERR;
    am_header(&c, "busgate_breaker_state", "gauge",
              "The service's circuit breaker: 0 closed, 1 open, 2 half-open.");
    bg_brk_each(wk->ctx->breaker, am_brk_state, &c);
    am_header(&c, "busgate_breaker_opens_total", "counter",
              "Times the service's circuit breaker opened since the master started.");
    bg_brk_each(wk->ctx->breaker, am_brk_opens, &c);
    return c.rc == BG_OK ? BG_OK : BG_ERR;
}
