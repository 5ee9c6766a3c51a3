/* control.c: the master's control plane: setup, timers, admin resync, reload. */
#include "control_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busgate/core/log.h"

void bg_control_bus_opts(const bg_control *c, const char *role, char *name, size_t namelen,
                         bg_bus_opts *o)
{
    snprintf(name, namelen, "busgate-master-%s-%s", role, c->gateway);
    bg_bus_opts_from_config(o, &c->cfg, name);
}

/* Keys and names derived from the configuration copy. */
static int ctl_names(bg_control *c, char *err)
{
    bg_messaging_names_from_config(&c->names, &c->cfg);
    c->gateway = c->cfg.gateway.instance_id;
    if (bg_name_validate("gateway instance_id", c->gateway, err) != BG_OK ||
        bg_key_control_stream(&c->names, c->control_key, sizeof(c->control_key), err) != BG_OK ||
        bg_key_dead_letter(c->control_key, c->dead_key, sizeof(c->dead_key), err) != BG_OK ||
        bg_group_control(&c->names, c->group, sizeof(c->group), err) != BG_OK ||
        bg_key_broadcast_stream(&c->names, c->broadcast_key, sizeof(c->broadcast_key), err) !=
            BG_OK ||
        bg_key_gateway_state(&c->names, c->state_key, sizeof(c->state_key), err) != BG_OK)
        return BG_ERR;
    return BG_OK;
}

/* Liveness checks often enough for the shortest timer, never busier than 20 ms. */
static int64_t ctl_tick_ms(const bg_config *cfg)
{
    int64_t m = cfg->messaging.heartbeat_interval_ms;

    if (cfg->messaging.heartbeat_expiry_ms < m)
        m = cfg->messaging.heartbeat_expiry_ms;
    if (cfg->messaging.connection_remove_ms < m)
        m = cfg->messaging.connection_remove_ms;
    m /= 4;
    return m < 20 ? 20 : m > 500 ? 500 : m;
}

static void ctl_on_liveness(void *ud, const bg_reg_conn *conn, bg_reg_event ev, int64_t idle_ms)
{
    (void)ud;
    if (ev == BG_REG_EV_DOWN)
        bg_warn("connection %s marked down: no frame for %lld ms (heartbeat_expiry)", conn->id,
                (long long)idle_ms);
    else
        bg_notice("connection %s removed: down for connection_remove, no frame for %lld ms",
                  conn->id, (long long)idle_ms);
}

void bg_control_set_metrics(bg_control *c, bg_metrics *m)
{
    c->metrics = m;
}

/* Adds the bus reconnects of both connections since the last tick to the metrics. */
static void ctl_count_reconnects(bg_control *c)
{
    unsigned long now = bg_abus_reconnects(c->rd) + bg_abus_reconnects(c->wr);

    if (c->metrics != NULL && now > c->reconnects_seen)
        bg_metrics_count(c->metrics, BG_METRICS_MASTER_SLOT, BG_METRIC_BUS_RECONNECTS,
                         now - c->reconnects_seen);
    c->reconnects_seen = now;
}

static int64_t ctl_on_tick(bg_ev *loop, bg_ev_timer *t, void *arg)
{
    bg_control *c = arg;
    int64_t now = bg_mono_ms();

    (void)loop;
    (void)t;
    /* As of the last answer from the bus: while it is silent nobody's silence is known. */
    if (bg_reg_expire(c->reg, c->heard_ms, ctl_on_liveness, c) > 0)
        bg_control_publish(c, 1);
    else if (bg_reg_heartbeats_dirty(c->reg))
        bg_control_publish(c, 0);
    bg_control_resync_retry(c, now);
    ctl_count_reconnects(c);
    if (now - c->last_state_ms >= c->cfg.messaging.heartbeat_interval_ms)
        bg_control_state_request(c);
    return c->tick_ms;
}

/* Connections and timers; the group setup starts when rd is connected. */
static int ctl_start(bg_control *c, char *err)
{
    char name[BG_CONTROL_CLIENT_NAME_MAX];
    bg_bus_opts o;

    c->stopping = 0;
    c->reading = 0;
    c->backoff_ms = 0;
    c->block_ms = bg_control_block_ms(&c->cfg);
    bg_control_bus_opts(c, "control", name, sizeof(name), &o);
    /* the read blocks BG_CONTROL_BLOCK_MS: that is no timeout */
    if (o.command_timeout_ms > 0)
        o.command_timeout_ms += BG_CONTROL_BLOCK_MS;
    c->rd = bg_abus_new(c->loop, &o, err);
    if (c->rd == NULL)
        return BG_ERR;
    bg_abus_set_state_hook(c->rd, bg_control_on_rd_state, c);
    bg_control_bus_opts(c, "state", name, sizeof(name), &o);
    c->wr = bg_abus_new(c->loop, &o, err);
    if (c->wr == NULL)
        return BG_ERR;
    c->tick_ms = ctl_tick_ms(&c->cfg);
    c->tick = bg_ev_timer_add(c->loop, c->tick_ms, ctl_on_tick, c, err);
    if (c->tick == NULL)
        return BG_ERR;
    c->reclaim =
        bg_ev_timer_add(c->loop, bg_control_reclaim_period_ms(c), bg_control_on_reclaim, c, err);
    if (c->reclaim == NULL)
        return BG_ERR;
    c->sampler = bg_ev_timer_add(c->loop, BG_CONTROL_SAMPLE_MS, bg_control_on_sample, c, err);
    return c->sampler != NULL ? BG_OK : BG_ERR;
}

static void ctl_stop(bg_control *c)
{
    bg_control_read_stop(c);
    bg_ev_timer_del(c->loop, c->tick);
    bg_ev_timer_del(c->loop, c->reclaim);
    bg_ev_timer_del(c->loop, c->state_timer);
    bg_ev_timer_del(c->loop, c->read_retry);
    bg_ev_timer_del(c->loop, c->sampler);
    c->tick = c->reclaim = c->state_timer = c->read_retry = c->sampler = NULL;
    bg_abus_free(c->rd); /* pending callbacks get NULL now */
    bg_abus_free(c->wr);
    c->rd = c->wr = NULL;
    bg_control_sync_close(c);
}

/* All or nothing: a failed start leaves no connection or timer behind. */
static int ctl_start_all(bg_control *c, char *err)
{
    if (ctl_start(c, err) == BG_OK)
        return BG_OK;
    ctl_stop(c);
    return BG_ERR;
}

static bg_registry *ctl_registry(const bg_config *cfg, bg_rt *rt, char *err)
{
    bg_reg_opts ro = {.max_services = cfg->routing.max_services,
                      .max_connections = cfg->routing.max_connections,
                      .max_endpoints = cfg->routing.max_endpoints,
                      .heartbeat_expiry_ms = cfg->messaging.heartbeat_expiry_ms,
                      .connection_remove_ms = cfg->messaging.connection_remove_ms};

    return bg_reg_new(&ro, rt, err);
}

bg_control *bg_control_new(const bg_config *cfg, bg_rt *rt, bg_ev *loop, char *err)
{
    bg_control *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        bg_set_error(err, "control: out of memory");
        return NULL;
    }
    c->cfg = *cfg;
    c->rt = rt;
    c->loop = loop;
    c->backoff_ms = 0;
    c->started_wall_ms = bg_wall_ms();
    c->last_state_ms = bg_mono_ms();
    if (ctl_names(c, err) != BG_OK)
        goto fail;
    c->reg = ctl_registry(cfg, rt, err);
    if (c->reg == NULL || ctl_start_all(c, err) != BG_OK)
        goto fail;
    bg_info("control plane: reading %s as group %s (consumer %s), state in %s", c->control_key,
            c->group, c->gateway, c->state_key);
    return c;
fail:
    bg_control_free(c);
    return NULL;
}

void bg_control_free(bg_control *c)
{
    if (c == NULL)
        return;
    if (c->rd != NULL && bg_abus_connected(c->rd))
        bg_control_state_delete(c);
    bg_control_openapi_stop(c);
    ctl_stop(c);
    bg_reg_free(c->reg);
    free(c);
}

static int ctl_bus_changed(const bg_config *a, const bg_config *b)
{
    return strcmp(a->valkey.url, b->valkey.url) != 0 ||
           memcmp(&a->valkey.addr, &b->valkey.addr, sizeof(a->valkey.addr)) != 0 ||
           strcmp(a->valkey.tls_ca_file, b->valkey.tls_ca_file) != 0 ||
           strcmp(a->valkey.tls_cert_file, b->valkey.tls_cert_file) != 0 ||
           strcmp(a->valkey.tls_key_file, b->valkey.tls_key_file) != 0 ||
           strcmp(a->valkey.tls_server_name, b->valkey.tls_server_name) != 0 ||
           a->valkey.tls_verify != b->valkey.tls_verify ||
           a->valkey.connect_timeout_ms != b->valkey.connect_timeout_ms ||
           a->valkey.command_timeout_ms != b->valkey.command_timeout_ms ||
           strcmp(a->messaging.key_prefix, b->messaging.key_prefix) != 0 ||
           strcmp(a->messaging.control_stream, b->messaging.control_stream) != 0 ||
           strcmp(a->messaging.consumer_group, b->messaging.consumer_group) != 0;
}

int bg_control_reconfigure(bg_control *c, const bg_config *cfg, char *err)
{
    int reconnect = ctl_bus_changed(&c->cfg, cfg);
    bg_config old = c->cfg;

    /* The table's capacities are fixed at its creation, as is the gateway id. */
    c->cfg = *cfg;
    c->cfg.routing = old.routing;
    memcpy(c->cfg.gateway.instance_id, old.gateway.instance_id, sizeof(old.gateway.instance_id));
    bg_reg_set_timers(c->reg, cfg->messaging.heartbeat_expiry_ms,
                      cfg->messaging.connection_remove_ms);
    if (ctl_names(c, err) != BG_OK)
        goto fail;
    bg_control_sync_close(c); /* made again on first use, with the new settings */
    c->tick_ms = ctl_tick_ms(&c->cfg);
    bg_control_openapi_request(c); /* the title may have changed */
    if (!reconnect && c->tick != NULL && c->reclaim != NULL) {
        bg_ev_timer_reset(c->loop, c->tick, c->tick_ms);
        bg_ev_timer_reset(c->loop, c->reclaim, bg_control_reclaim_period_ms(c));
        return BG_OK;
    }
    bg_notice("control plane: Valkey or control stream settings changed: reconnecting");
    ctl_stop(c);
    c->started = 0; /* a new server or stream: set up as at start */
    if (ctl_start_all(c, err) != BG_OK)
        goto fail;
    return BG_OK;
fail:
    /* err says why; the caller logs it. Back to what ran before. */
    c->cfg = old;
    ctl_names(c, NULL);
    bg_reg_set_timers(c->reg, old.messaging.heartbeat_expiry_ms,
                      old.messaging.connection_remove_ms);
    if (c->rd == NULL && ctl_start_all(c, NULL) != BG_OK)
        bg_crit("control plane: cannot restart with the previous settings");
    return BG_ERR;
}

static int ctl_resync_service(bg_control *c, const char *service, char *err)
{
    size_t n = 0;

    for (size_t i = 0; i < bg_reg_count(c->reg); i++)
        n += strcmp(bg_reg_at(c->reg, i)->service, service) == 0;
    if (n == 0) {
        bg_set_error(err, "unknown service '%s'", service);
        return BG_ERR;
    }
    /* also reaches instances of it this gateway has not heard of yet */
    if (bg_control_resync_broadcast(c, NULL, "admin", service, err) != BG_OK)
        return BG_ERR;
    for (size_t i = 0; i < bg_reg_count(c->reg); i++)
        if (strcmp(bg_reg_at(c->reg, i)->service, service) == 0)
            bg_control_resync_conn(c, bg_reg_at(c->reg, i), "admin");
    return BG_OK;
}

int bg_control_resync(bg_control *c, int target_kind, const char *target, char *err)
{
    bg_reg_conn *conn;

    if ((c->wr == NULL || !bg_abus_connected(c->wr)) &&
        (c->rd == NULL || !bg_abus_connected(c->rd))) {
        bg_set_error(err, "not connected to Valkey");
        return BG_ERR;
    }
    switch (target_kind) {
    case BG_CONTROL_TARGET_FLEET:
        return bg_control_resync_broadcast(c, NULL, "admin", NULL, err);
    case BG_CONTROL_TARGET_SERVICE:
        return ctl_resync_service(c, target, err);
    case BG_CONTROL_TARGET_CONNECTION:
        conn = bg_reg_find_id(c->reg, target);
        if (conn == NULL) {
            bg_set_error(err, "unknown connection '%s'", target);
            return BG_ERR;
        }
        bg_control_resync_conn(c, conn, "admin");
        return BG_OK;
    default:
        bg_set_error(err, "unknown resync target kind %d", target_kind);
        return BG_ERR;
    }
}
