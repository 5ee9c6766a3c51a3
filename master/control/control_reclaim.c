/* control_reclaim.c: taking over control entries left pending and applying them. */
#include "control_int.h"

#include <stdlib.h>

#include "busgate/core/log.h"

int64_t bg_control_reclaim_period_ms(const bg_control *c)
{
    int64_t ms = c->cfg.messaging.heartbeat_interval_ms;

    return ms < 1000 ? 1000 : ms;
}

static void ctl_reclaim_apply(bg_control *c, bg_queue *q, bg_queue_batch *b)
{
    const char **ids = calloc(b->count + 1, sizeof(*ids));
    char err[BG_ERR_LEN];
    size_t n = 0;

    if (ids == NULL) {
        bg_error("control: out of memory applying %zu reclaimed entries", b->count);
        return;
    }
    for (size_t i = 0; i < b->count; i++) {
        bg_queue_entry *e = &b->entries[i];
        if (bg_control_entry(c, e->id, e->fields, e->nfields, e->deliveries) == 1)
            ids[n++] = e->id;
    }
    bg_control_publish(c, 0);
    if (n > 0 && bg_queue_ack_ids(q, ids, n, err) != BG_OK)
        bg_error("control: acking %zu reclaimed entries failed: %s", n, err);
    free(ids);
}

int64_t bg_control_on_reclaim(bg_ev *loop, bg_ev_timer *t, void *arg)
{
    bg_control *c = arg;
    bg_queue_batch b = {0};
    char err[BG_ERR_LEN];
    size_t dead = 0;
    bg_queue *q;

    (void)loop;
    (void)t;
    /* the blocking connection is used only while Valkey answers */
    if (c->rd == NULL || !bg_abus_connected(c->rd))
        return bg_control_reclaim_period_ms(c);
    q = bg_control_sync_queue(c, err);
    if (q == NULL || bg_queue_reclaim(q, BG_CONTROL_RECLAIM_COUNT, &b, &dead, err) != BG_OK) {
        bg_warn("control: reclaim of pending control entries failed: %s", err);
        return bg_control_reclaim_period_ms(c);
    }
    c->stats.dead_lettered += dead;
    if (c->metrics != NULL && dead > 0)
        bg_metrics_count(c->metrics, BG_METRICS_MASTER_SLOT, BG_METRIC_DEAD_LETTERS, dead);
    if (dead > 0)
        bg_warn("control: %zu control entries dead-lettered after %d deliveries", dead,
                BG_CONTROL_MAX_DELIVERIES);
    if (b.deleted > 0)
        bg_notice("control: %zu pending control entries were trimmed before being applied",
                  b.deleted);
    if (b.count > 0) {
        bg_notice("control: applying %zu control entries left pending", b.count);
        c->stats.reclaimed += b.count;
        ctl_reclaim_apply(c, q, &b);
    }
    bg_queue_batch_free(&b);
    return bg_control_reclaim_period_ms(c);
}
