/* dispatch_guard.c: whether a request may go to its service now: the stream's room, the
 * service's backlog ([limits]) and its circuit breaker ([breaker]); verdicts back to the
 * breaker. */
#include "dispatch_int.h"

#include <stdio.h>

#include "busgate/core/log.h"
#include "busgate/metrics/metrics.h"
#include "busgate/routing/bus_view.h"

/* A sample older than this says nothing about the backlog now (the master samples every
 * 250 ms; a master cut off from Valkey stops sampling). */
#define GUARD_SAMPLE_FRESH_MS 2000

/* What a backlog refusal asks: the master samples four times a second, so a second later
 * the client meets a new sample. */
#define GUARD_RETRY_BACKLOG "Retry-After: 1\r\n"

/* Unread plus pending requests of x's service at the last sample, plus what every worker
 * added since: a REQUEST added now would wait behind that many. Requests taken by the
 * service since the sample still count until the next one (the estimate errs on the full
 * side for one period). 0 and no sample when there is no fresh one. */
static int guard_sample(bg_dispatch *d, const bg_xchg *x, bg_bv_sample *s, int64_t *waiting)
{
    bg_busview *v = d->wk->ctx->busview;

    if (bg_bv_get(v, x->match.service, s) != BG_OK ||
        bg_mono_ms() - s->sampled_ms > GUARD_SAMPLE_FRESH_MS)
        return 0;
    *waiting = s->lag + s->pending + (bg_bv_added(v, x->match.service) - s->added_at);
    return 1;
}

/* The stream is full (stream_maxlen) or the backlog is past [limits]: say so now (503)
 * rather than let the client wait out its deadline behind the others. */
static int guard_backlog(bg_dispatch *d, const bg_xchg *x, char *detail, size_t dlen)
{
    const bg_config *cfg = d->wk->cfg;
    int64_t cap = (int64_t)cfg->messaging.stream_maxlen, max = cfg->backpressure.backlog_max;
    int64_t age = cfg->backpressure.backlog_max_age_ms, waiting = 0;
    bg_bv_sample s;

    if ((cap == 0 && max == 0 && age == 0) || !guard_sample(d, x, &s, &waiting))
        return 0;
    if (cap > 0 && waiting >= cap) {
        snprintf(detail, dlen, "service '%s' has a full backlog (%lld requests waiting)",
                 x->match.service, (long long)waiting);
        return 1;
    }
    if (max > 0 && waiting >= max) {
        snprintf(detail, dlen, "service '%s' is backlogged: %lld requests waiting (limit %lld)",
                 x->match.service, (long long)waiting, (long long)max);
        return 1;
    }
    if (age > 0 && s.oldest_ms > age) {
        snprintf(detail, dlen,
                 "service '%s' is backlogged: its oldest request has waited %lld ms (limit "
                 "%lld ms)",
                 x->match.service, (long long)s.oldest_ms, (long long)age);
        return 1;
    }
    return 0;
}

static bg_brk_params guard_params(const bg_config *cfg)
{
    /* A probe ends by its answer or its deadline (504); one that has neither after this
     * long was lost with its worker. */
    bg_brk_params p = {.failures = cfg->breaker.failures,
                       .window_ms = cfg->breaker.window_ms,
                       .cooldown_ms = cfg->breaker.cooldown_ms,
                       .probes = cfg->breaker.probes,
                       .probe_timeout_ms =
                           cfg->gateway.request_timeout_ms + cfg->breaker.cooldown_ms};
    return p;
}

static void guard_count(bg_dispatch *d, const bg_xchg *x, bg_metric_svc_counter c)
{
    if (d->wk->ctx->metrics != NULL)
        bg_metrics_service_count(d->wk->ctx->metrics, d->wk->ctx->slot, x->match.service, c, 1);
}

/* The breaker is open (or half-open with its probes out): 503 with what is left of the
 * cool-down as Retry-After. */
static int guard_breaker(bg_dispatch *d, bg_xchg *x)
{
    bg_brk_params p = guard_params(d->wk->cfg);
    char detail[160], retry[40];
    int64_t retry_ms = 0;
    bg_brk_info info;

    if (bg_brk_admit(d->wk->ctx->breaker, x->match.service, &p, bg_mono_ms(), &x->brk, &retry_ms))
        return 0;
    guard_count(d, x, BG_METRIC_SVC_BREAKER);
    if (bg_brk_get(d->wk->ctx->breaker, x->match.service, &info) == BG_OK &&
        info.state == BG_BRK_HALF_OPEN)
        snprintf(detail, sizeof(detail),
                 "service '%s' is failing: its circuit breaker is half-open and its probe "
                 "requests are out",
                 x->match.service);
    else
        snprintf(detail, sizeof(detail),
                 "service '%s' is failing: its circuit breaker is open, the gateway sends it no "
                 "requests for now",
                 x->match.service);
    snprintf(retry, sizeof(retry), "Retry-After: %lld\r\n", (long long)(retry_ms + 999) / 1000);
    bg_xchg_problem(x, 503, detail, retry);
    return 1;
}

int bg_dispatch_guard(bg_dispatch *d, bg_xchg *x)
{
    char detail[256];

    x->brk.kind = BG_BRK_T_NONE;
    if (guard_backlog(d, x, detail, sizeof(detail))) {
        guard_count(d, x, BG_METRIC_SVC_BACKPRESSURE);
        bg_xchg_problem(x, 503, detail, GUARD_RETRY_BACKLOG);
        return 1;
    }
    return guard_breaker(d, x);
}

/* Sick: a 5xx the service answered (502 for an invalid RESPONSE included) or its deadline
 * (504). Anything below 500 is an answer from a working service. */
void bg_dispatch_guard_done(bg_dispatch *d, bg_xchg *x, int status)
{
    bg_brk_params p = guard_params(d->wk->cfg);
    bg_brk_ticket t = x->brk;
    int moved;

    if (t.kind == BG_BRK_T_NONE)
        return;
    x->brk.kind = BG_BRK_T_NONE;
    if (status == 0) {
        bg_brk_release(d->wk->ctx->breaker, x->match.service, &t);
        return;
    }
    moved =
        bg_brk_result(d->wk->ctx->breaker, x->match.service, &p, &t, status >= 500, bg_mono_ms());
    if (moved == BG_BRK_OPEN)
        bg_warn("circuit breaker of service '%s' opened (request %s answered %d): requests are "
                "refused for %lld ms",
                x->match.service, x->id, status, (long long)p.cooldown_ms);
    else if (moved == BG_BRK_CLOSED)
        bg_notice("circuit breaker of service '%s' closed: its probes succeeded", x->match.service);
}
