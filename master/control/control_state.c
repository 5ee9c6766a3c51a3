/* control_state.c: the gateway state document in Valkey that busgatectl reads. */
#include "control_int.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "busgate/core/log.h"

int64_t bg_control_state_ttl_ms(const bg_control *c)
{
    int64_t ttl = 3 * c->cfg.messaging.heartbeat_interval_ms;

    return ttl < 3000 ? 3000 : ttl;
}

static json_t *ctl_json_conn(const bg_registry *reg, const bg_reg_conn *conn, int64_t now)
{
    json_t *o = json_object();

    json_object_set_new(o, "id", json_string(conn->id));
    json_object_set_new(o, "up", json_boolean(conn->up));
    json_object_set_new(o, "endpoints_received", json_boolean(conn->has_endpoints));
    json_object_set_new(o, "idle_ms", json_integer(now - conn->last_seen_ms));
    json_object_set_new(o, "heartbeat_interval_ms", json_integer(conn->interval_ms));
    json_object_set_new(o, "expiry_ms", json_integer(bg_reg_conn_expiry(reg, conn)));
    if (!conn->up)
        json_object_set_new(o, "down_for_ms", json_integer(now - conn->down_since_ms));
    json_object_set_new(o, "resync",
                        json_pack("{s:b, s:i, s:b, s:s}", "pending",
                                  conn->resync_attempts > 0 && !conn->resync_gave_up, "attempts",
                                  conn->resync_attempts, "gave_up", conn->resync_gave_up, "id",
                                  conn->resync_id));
    return o;
}

static json_t *ctl_json_stats(const bg_control_stats *s)
{
    return json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "frames",
        (json_int_t)s->frames, "hello", (json_int_t)s->hello, "heartbeat", (json_int_t)s->heartbeat,
        "endpoints_update", (json_int_t)s->endpoints, "goodbye", (json_int_t)s->goodbye,
        "malformed", (json_int_t)s->malformed, "rejected", (json_int_t)s->rejected, "dead_lettered",
        (json_int_t)s->dead_lettered, "reclaimed", (json_int_t)s->reclaimed, "publishes",
        (json_int_t)s->publishes, "publish_errors", (json_int_t)s->publish_errors, "resyncs_sent",
        (json_int_t)s->resyncs_sent, "resyncs_given_up", (json_int_t)s->resyncs_given_up);
}

/* Per service: its OpenAPI fragment (the first connection's wins) with the
 * operations its endpoints declared under "paths". */
static void ctl_json_openapi_conn(json_t *all, const bg_reg_conn *conn)
{
    json_t *svc = json_object_get(all, conn->service), *paths;

    if (svc == NULL) {
        svc = json_object();
        json_object_set_new(all, conn->service, svc);
    }
    if (json_is_object(conn->openapi))
        json_object_update_missing(svc, conn->openapi);
    for (size_t i = 0; i < conn->nendpoints; i++) {
        const bg_reg_endpoint *e = &conn->endpoints[i];
        char method[BG_FRAME_METHOD_MAX + 1];
        json_t *path;

        if (!json_is_object(e->openapi))
            continue;
        for (size_t k = 0; k < sizeof(method); k++)
            method[k] = (char)tolower((unsigned char)e->method[k]);
        paths = json_object_get(svc, "paths");
        if (!json_is_object(paths)) {
            paths = json_object();
            json_object_set_new(svc, "paths", paths);
        }
        path = json_object_get(paths, e->path);
        if (path == NULL) {
            path = json_object();
            json_object_set_new(paths, e->path, path);
        }
        if (json_object_get(path, method) == NULL)
            json_object_set(path, method, e->openapi);
    }
}

typedef struct ctl_brk_ctx {
    json_t *out;
    const bg_config *cfg;
    int64_t now;
} ctl_brk_ctx;

static void ctl_json_breaker(void *ud, const char *service, const bg_brk_info *i)
{
    ctl_brk_ctx *x = ud;
    int64_t left = x->cfg->breaker.cooldown_ms - (x->now - i->since_ms);

    json_object_set_new(x->out, service,
                        json_pack("{s:s, s:i, s:i, s:I, s:I, s:I}", "state",
                                  bg_brk_state_name(i->state), "failures", i->failures,
                                  "probe_successes", i->successes, "opens", (json_int_t)i->opens,
                                  "for_ms", (json_int_t)(x->now - i->since_ms), "retry_in_ms",
                                  (json_int_t)(i->state == BG_BRK_OPEN && left > 0 ? left : 0)));
}

/* Each service's breaker, as the workers left it; empty while breakers are off. */
static json_t *ctl_json_breakers(const bg_control *c, int64_t now)
{
    ctl_brk_ctx x = {json_object(), &c->cfg, now};

    if (c->cfg.breaker.failures > 0)
        bg_brk_each(c->breaker, ctl_json_breaker, &x);
    return x.out;
}

static void ctl_json_backlog(void *ud, const char *service, const bg_bv_sample *s)
{
    json_object_set_new(ud, service,
                        json_pack("{s:I, s:I, s:I, s:I}", "waiting", (json_int_t)s->lag, "pending",
                                  (json_int_t)s->pending, "consumers", (json_int_t)s->consumers,
                                  "oldest_ms", (json_int_t)s->oldest_ms));
}

static json_t *ctl_json_head(bg_control *c, int64_t now)
{
    json_t *o = json_object(), *reg = json_array(), *openapi = json_object();

    for (size_t i = 0; i < bg_reg_count(c->reg); i++) {
        json_array_append_new(reg, ctl_json_conn(c->reg, bg_reg_at(c->reg, i), now));
        ctl_json_openapi_conn(openapi, bg_reg_at(c->reg, i));
    }
    json_object_set_new(o, "gateway", json_string(c->gateway));
    json_object_set_new(o, "pid", json_integer(getpid()));
    json_object_set_new(o, "version", json_string(BUSGATE_VERSION));
    json_object_set_new(o, "started_ms", json_integer(c->started_wall_ms));
    json_object_set_new(o, "time_ms", json_integer(bg_wall_ms()));
    json_object_set_new(o, "ttl_ms", json_integer(bg_control_state_ttl_ms(c)));
    json_object_set_new(o, "heartbeat_interval_ms",
                        json_integer(c->cfg.messaging.heartbeat_interval_ms));
    json_object_set_new(o, "heartbeat_expiry_ms",
                        json_integer(c->cfg.messaging.heartbeat_expiry_ms));
    json_object_set_new(o, "connection_remove_ms",
                        json_integer(c->cfg.messaging.connection_remove_ms));
    json_object_set_new(o, "control_stream", json_string(c->control_key));
    json_object_set_new(o, "control_group", json_string(c->group));
    json_object_set_new(o, "registry", reg);
    json_object_set_new(o, "openapi", openapi);
    json_object_set_new(o, "stats", ctl_json_stats(&c->stats));
    json_object_set_new(o, "backlogs", json_object());
    bg_bv_each(c->busview, ctl_json_backlog, json_object_get(o, "backlogs"));
    json_object_set_new(o, "breakers", ctl_json_breakers(c, now));
    return o;
}

/* head and the table snapshot are both objects: one object with the members
 * of both, without parsing the snapshot again (it can be megabytes). */
static char *ctl_json_splice(const char *head, const char *snap, char *err)
{
    size_t hl = strlen(head), sl;
    char *out;

    while (isspace((unsigned char)*snap))
        snap++;
    if (hl < 2 || head[hl - 1] != '}' || *snap != '{') {
        bg_set_error(err, "state document: unexpected JSON shape");
        return NULL;
    }
    snap++;
    while (isspace((unsigned char)*snap))
        snap++;
    sl = strlen(snap);
    out = malloc(hl + sl + 2);
    if (out == NULL) {
        bg_set_error(err, "state document: out of memory");
        return NULL;
    }
    memcpy(out, head, hl - 1);
    if (*snap == '}') { /* empty snapshot object */
        memcpy(out + hl - 1, "}", 2);
        return out;
    }
    out[hl - 1] = ',';
    memcpy(out + hl, snap, sl + 1);
    return out;
}

char *bg_control_state_json(bg_control *c, char *err)
{
    json_t *head = ctl_json_head(c, bg_mono_ms());
    char *hs = NULL, *snap = NULL, *out = NULL;

    if (head == NULL || (hs = json_dumps(head, JSON_COMPACT)) == NULL) {
        bg_set_error(err, "state document: out of memory");
        goto cleanup;
    }
    if (bg_rt_snapshot_json(c->rt, &snap, err) != BG_OK)
        goto cleanup;
    out = ctl_json_splice(hs, snap, err);
cleanup:
    json_decref(head);
    free(hs);
    free(snap);
    return out;
}

static void ctl_on_state_set(bg_abus *b, redisReply *r, void *arg)
{
    bg_control *c = arg;

    (void)b;
    if (r != NULL && r->type == REDIS_REPLY_ERROR)
        bg_warn("control: SET %s failed: %s", c->state_key, r->str);
}

void bg_control_state_write(bg_control *c)
{
    int64_t t0 = bg_mono_ms();
    char err[BG_ERR_LEN], ttl[24];
    char *doc;

    c->last_state_ms = t0;
    if (c->wr == NULL || !bg_abus_connected(c->wr))
        return;
    doc = bg_control_state_json(c, err);
    if (doc == NULL) {
        bg_warn("control: state document not written: %s", err);
        return;
    }
    snprintf(ttl, sizeof(ttl), "%" PRId64, bg_control_state_ttl_ms(c));
    if (bg_abus_command(c->wr, ctl_on_state_set, c, "SET %s %s PX %s", c->state_key, doc, ttl) !=
        BG_OK)
        bg_warn("control: SET %s not sent", c->state_key);
    else
        c->stats.state_writes++;
    free(doc);
    c->state_cost_ms = bg_mono_ms() - t0;
}

static int64_t ctl_on_state_timer(bg_ev *loop, bg_ev_timer *t, void *arg)
{
    bg_control *c = arg;

    (void)loop;
    (void)t;
    c->state_timer = NULL;
    bg_control_state_write(c);
    return BG_EV_NOMORE;
}

void bg_control_state_request(bg_control *c)
{
    int64_t gap = 20 * c->state_cost_ms, wait;
    char err[BG_ERR_LEN];

    if (c->state_timer != NULL || c->stopping)
        return;
    if (gap < BG_CONTROL_STATE_MIN_MS)
        gap = BG_CONTROL_STATE_MIN_MS;
    wait = c->last_state_ms + gap - bg_mono_ms();
    c->state_timer = bg_ev_timer_add(c->loop, wait > 0 ? wait : 0, ctl_on_state_timer, c, err);
    if (c->state_timer == NULL)
        bg_warn("control: cannot arm the state timer: %s", err);
}

void bg_control_state_delete(bg_control *c)
{
    char err[BG_ERR_LEN];
    redisReply *r;

    if (bg_control_sync_queue(c, err) == NULL) {
        bg_warn("control: state key %s not deleted: %s", c->state_key, err);
        return;
    }
    r = bg_bus_command(c->sync, err, "DEL %s", c->state_key);
    if (r == NULL)
        bg_warn("control: state key %s not deleted: %s", c->state_key, err);
    else
        bg_bus_reply_free(r);
}
