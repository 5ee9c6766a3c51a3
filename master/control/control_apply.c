/* control_apply.c: applying control frames to the registry, dead letters, publishing the table. */
#include "control_int.h"

#include <stdio.h>
#include <string.h>

#include "busgate/core/log.h"

/* Control entries left pending this long are someone's leftovers (a crash
 * between read and ack): the reader acks within one loop iteration. */
static int64_t ctl_reclaim_idle_ms(const bg_control *c)
{
    int64_t ms = 2 * c->cfg.messaging.heartbeat_interval_ms;

    return ms < 5000 ? 5000 : ms;
}

bg_queue *bg_control_sync_queue(bg_control *c, char *err)
{
    char name[BG_CONTROL_CLIENT_NAME_MAX];
    bg_queue_opts qo;
    bg_bus_opts o;

    if (c->queue != NULL)
        return c->queue;
    bg_control_bus_opts(c, "sync", name, sizeof(name), &o);
    c->sync = bg_bus_connect(&o, err);
    if (c->sync == NULL)
        return NULL;
    bg_queue_opts_init(&qo);
    qo.stream = c->control_key;
    qo.group = c->group;
    qo.consumer = c->gateway;
    qo.lease_ms = ctl_reclaim_idle_ms(c);
    qo.max_deliveries = BG_CONTROL_MAX_DELIVERIES;
    qo.maxlen = c->cfg.messaging.stream_maxlen;
    qo.start_id = "$";
    c->queue = bg_queue_new(c->sync, &qo, err);
    if (c->queue == NULL) {
        bg_bus_free(c->sync);
        c->sync = NULL;
    }
    return c->queue;
}

void bg_control_sync_close(bg_control *c)
{
    bg_queue_free(c->queue);
    bg_bus_free(c->sync);
    c->queue = NULL;
    c->sync = NULL;
}

/* Moves the entry to "<control>:dead" and acks it, in one script. */
static int ctl_dead_letter(bg_control *c, const char *id, bg_field *fields, size_t n,
                           long deliveries, const char *reason)
{
    bg_queue_entry e = {.fields = fields, .nfields = n, .deliveries = deliveries};
    char err[BG_ERR_LEN];
    bg_queue *q;

    bg_strlcpy_checked(e.id, id, sizeof(e.id));
    q = bg_control_sync_queue(c, err);
    if (q == NULL || bg_queue_dead_letter(q, &e, reason, err) != BG_OK) {
        bg_error("control: entry %s not dead-lettered: %s; it stays pending for a reclaim", id,
                 err);
        return -1;
    }
    c->stats.dead_lettered++;
    if (c->metrics != NULL)
        bg_metrics_count(c->metrics, BG_METRICS_MASTER_SLOT, BG_METRIC_DEAD_LETTERS, 1);
    return 0;
}

static void ctl_on_hello(bg_control *c, const bg_frame *f, int64_t now)
{
    char err[BG_ERR_LEN];
    bg_reg_conn *conn;
    int created;

    c->stats.hello++;
    if (bg_reg_hello(c->reg, f, now, &created, &conn, err) != BG_OK) {
        bg_warn("control: HELLO from %s/%s refused: %s", f->service, f->instance, err);
        return;
    }
    if (created)
        bg_notice("connection %s registered (version %s)", conn->id, conn->version);
    else
        bg_notice("connection %s said HELLO again (version %s): restarted?", conn->id,
                  conn->version);
    bg_control_resync_conn(c, conn, "hello");
}

static void ctl_on_heartbeat(bg_control *c, const bg_frame *f, int64_t now)
{
    char err[BG_ERR_LEN];
    bg_reg_conn *conn;
    int created;

    c->stats.heartbeat++;
    if (bg_reg_heartbeat(c->reg, f, now, &created, &conn, err) != BG_OK) {
        bg_warn("control: HEARTBEAT from unknown %s/%s refused: %s", f->service, f->instance, err);
        return;
    }
    if (!created)
        return;
    bg_notice("connection %s: heartbeat from an unknown connection (gateway state miss): asking "
              "for its endpoints",
              conn->id);
    bg_control_resync_conn(c, conn, "unknown heartbeat");
}

/* 1 applied, 0 rejected (err says why). */
static int ctl_on_endpoints(bg_control *c, const bg_frame *f, int64_t now, char *err)
{
    char why[BG_ERR_LEN];
    bg_reg_conn *conn;
    int created;

    c->stats.endpoints++;
    if (bg_reg_endpoints(c->reg, f, now, &created, &conn, why) != BG_OK) {
        c->stats.rejected++;
        bg_set_error(err, "ENDPOINTS_UPDATE rejected by gateway %s: %s", c->gateway, why);
        bg_warn("control: ENDPOINTS_UPDATE from %s/%s rejected: %s", f->service, f->instance, why);
        return 0;
    }
    bg_control_resync_done(conn);
    bg_info("connection %s: %zu endpoints%s", conn->id, conn->nendpoints,
            created ? " (registered by its ENDPOINTS_UPDATE)" : "");
    return 1;
}

static void ctl_on_goodbye(bg_control *c, const bg_frame *f)
{
    c->stats.goodbye++;
    if (bg_reg_goodbye(c->reg, f))
        bg_notice("connection %s/%s said goodbye (%s): removed", f->service, f->instance,
                  f->reason[0] != '\0' ? f->reason : "no reason");
    else
        bg_debug("control: GOODBYE from unknown %s/%s", f->service, f->instance);
}

/* 1 applied (ack), 0 not for the control stream or rejected (err set). */
static int ctl_apply(bg_control *c, const bg_frame *f, char *err)
{
    int64_t now = bg_mono_ms();

    switch (f->type) {
    case BG_FRAME_HELLO:
        ctl_on_hello(c, f, now);
        return 1;
    case BG_FRAME_HEARTBEAT:
        ctl_on_heartbeat(c, f, now);
        return 1;
    case BG_FRAME_ENDPOINTS_UPDATE:
        return ctl_on_endpoints(c, f, now, err);
    case BG_FRAME_GOODBYE:
        ctl_on_goodbye(c, f);
        return 1;
    default:
        bg_set_error(err, "a %s frame does not belong on the control stream",
                     bg_frame_type_name(f->type));
        bg_warn("control: %s", err);
        return 0;
    }
}

int bg_control_entry(bg_control *c, const char *id, bg_field *fields, size_t nfields,
                     long deliveries)
{
    char err[BG_ERR_LEN];
    bg_frame f;
    int rc;

    c->stats.frames++;
    if (bg_frame_decode(fields, nfields, &f, err) != BG_OK) {
        c->stats.malformed++;
        bg_warn("control: entry %s is malformed: %s; moving it to %s", id, err, c->dead_key);
        rc = ctl_dead_letter(c, id, fields, nfields, deliveries, err);
    } else if (ctl_apply(c, &f, err) == 0) {
        rc = ctl_dead_letter(c, id, fields, nfields, deliveries, err);
    } else {
        rc = 1;
    }
    bg_frame_free(&f);
    return rc;
}

static void ctl_on_reject(void *ud, const bg_reg_conn *conn, const char *reason)
{
    bg_control *c = ud;

    c->stats.rejected++;
    bg_error("control: ENDPOINTS_UPDATE of %s undone: the routing table refused it: %s", conn->id,
             reason);
}

void bg_control_publish(bg_control *c, int force)
{
    int64_t now = bg_mono_ms();
    int routes = bg_reg_routes_dirty(c->reg);
    char err[BG_ERR_LEN];

    if (!routes && (!bg_reg_heartbeats_dirty(c->reg) ||
                    (!force && now - c->last_publish_ms < BG_CONTROL_HB_PUBLISH_MS)))
        return;
    if (bg_reg_publish(c->reg, ctl_on_reject, c, err) != BG_OK) {
        /* logged once per distinct reason: every batch retries */
        c->stats.publish_errors++;
        if (strcmp(err, c->publish_err) != 0)
            bg_error("control: routing table not updated: %s", err);
        snprintf(c->publish_err, sizeof(c->publish_err), "%s", err);
        return;
    }
    c->publish_err[0] = '\0';
    c->last_publish_ms = now;
    c->stats.publishes++;
    bg_control_state_request(c);
    if (routes)
        bg_control_openapi_request(c);
}
