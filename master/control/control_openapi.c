/* control_openapi.c: the aggregated OpenAPI document, rebuilt into shared memory after a
 * publish that changed routing (never per request; workers only copy it out). */
#include "control_int.h"

#include <stdlib.h>

#include "busgate/control/openapi.h"
#include "busgate/core/log.h"

static void ctl_openapi_build(bg_control *c)
{
    bg_openapi_opts o = {.title = c->cfg.openapi.title, .path = c->cfg.openapi.path};
    char err[BG_ERR_LEN], *json = NULL;
    int64_t t0 = bg_mono_ms();
    size_t len = 0;

    if (bg_openapi_build(c->reg, &o, &json, &len, err) != BG_OK) {
        /* the previous document stays; the next routing change tries again */
        bg_error("control: OpenAPI document not rebuilt: %s", err);
        return;
    }
    if (bg_doc_publish(c->openapi, json, len, err) != BG_OK)
        bg_error("control: OpenAPI document not served: %s ([openapi] max_size)", err);
    free(json);
    c->last_openapi_ms = bg_mono_ms();
    c->openapi_cost_ms = c->last_openapi_ms - t0;
    bg_debug("control: OpenAPI document rebuilt: %zu bytes in %lld ms", len,
             (long long)c->openapi_cost_ms);
}

static int64_t ctl_on_openapi_timer(bg_ev *loop, bg_ev_timer *t, void *arg)
{
    bg_control *c = arg;

    (void)loop;
    (void)t;
    c->openapi_timer = NULL;
    ctl_openapi_build(c);
    return BG_EV_NOMORE;
}

/* Coalesced: at most once per BG_CONTROL_OPENAPI_GAP times what the last build cost, so a
 * fleet answering a resync in many batches does not rebuild a large document for each, and
 * the build (2-5 ms per 1000 endpoints on the master's loop, about ten times that when
 * every operation is new) takes at most a twentieth of the master's time. */
void bg_control_openapi_request(bg_control *c)
{
    int64_t wait;
    char err[BG_ERR_LEN];

    if (c->openapi == NULL || c->openapi_timer != NULL)
        return;
    wait = c->last_openapi_ms + BG_CONTROL_OPENAPI_GAP * c->openapi_cost_ms - bg_mono_ms();
    c->openapi_timer = bg_ev_timer_add(c->loop, wait > 0 ? wait : 0, ctl_on_openapi_timer, c, err);
    if (c->openapi_timer == NULL) {
        bg_warn("control: cannot arm the OpenAPI timer: %s; rebuilding now", err);
        ctl_openapi_build(c);
    }
}

void bg_control_set_openapi(bg_control *c, bg_doc *d)
{
    c->openapi = d;
    if (d != NULL)
        ctl_openapi_build(c); /* an empty document until services register */
}

void bg_control_openapi_stop(bg_control *c)
{
    bg_ev_timer_del(c->loop, c->openapi_timer);
    c->openapi_timer = NULL;
}
