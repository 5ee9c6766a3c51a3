/* control_resync.c: RESYNC_REQUESTs to one instance or the fleet, and retries with backoff. */
#include "control_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "busgate/core/log.h"

static void ctl_on_resync_reply(bg_abus *b, redisReply *r, void *arg)
{
    (void)b;
    (void)arg;
    if (r != NULL && r->type == REDIS_REPLY_ERROR)
        bg_warn("control: writing a RESYNC_REQUEST failed: %s", r->str);
}

/* Between two reads rd is idle and already up when a frame asks for a
 * resync (wr may still be reconnecting); while rd blocks, wr is quicker. */
static bg_abus *ctl_writer(bg_control *c)
{
    int rd_idle = c->rd != NULL && bg_abus_connected(c->rd) && !c->reading;

    if (rd_idle || c->wr == NULL || !bg_abus_connected(c->wr))
        return c->rd;
    return c->wr;
}

/* XADD key MAXLEN ~ maxlen * <RESYNC_REQUEST>; id_out gets the frame id. */
static int ctl_resync_xadd(bg_control *c, bg_abus *b, const char *key, const char *maxlen,
                           const char *reason, const char *service, const char *instance,
                           char *id_out, char *err)
{
    const char *head[] = {"XADD", key, "MAXLEN", "~", maxlen, "*"};
    const char **argv;
    const size_t *lens;
    bg_frame_wire w;
    bg_frame f;
    int argc, rc = BG_ERR;

    bg_frame_init(&f, BG_FRAME_RESYNC_REQUEST);
    snprintf(f.id, sizeof(f.id), "%s:rs:%" PRId64 ".%lu", c->gateway, c->started_wall_ms,
             ++c->resync_seq);
    f.ts = bg_wall_ms();
    snprintf(f.gateway, sizeof(f.gateway), "%s", c->gateway);
    snprintf(f.reason, sizeof(f.reason), "%s", reason);
    snprintf(f.service, sizeof(f.service), "%s", service != NULL ? service : "");
    snprintf(f.instance, sizeof(f.instance), "%s", instance != NULL ? instance : "");
    if (bg_frame_encode(&f, &w, err) != BG_OK ||
        bg_frame_wire_command(&w, head, NULL, 6, &argc, &argv, &lens) != BG_OK)
        goto cleanup;
    if (bg_abus_command_argv(b, ctl_on_resync_reply, c, argc, argv, lens) != BG_OK) {
        bg_set_error(err, "not connected to Valkey (or too many commands in flight)");
        goto cleanup;
    }
    if (id_out != NULL)
        snprintf(id_out, BG_FRAME_ID_MAX + 1, "%s", f.id);
    c->stats.resyncs_sent++;
    rc = BG_OK;
cleanup:
    bg_frame_wire_free(&w);
    bg_frame_free(&f);
    return rc;
}

int bg_control_resync_broadcast(bg_control *c, bg_abus *b, const char *reason, const char *service,
                                char *err)
{
    if (b == NULL)
        b = ctl_writer(c);
    if (ctl_resync_xadd(c, b, c->broadcast_key, BG_CONTROL_BROADCAST_MAXLEN, reason, service, NULL,
                        NULL, err) != BG_OK)
        return BG_ERR;
    bg_info("control: fleet-wide RESYNC_REQUEST (%s%s%s) sent to %s", reason,
            service != NULL ? ", service " : "", service != NULL ? service : "", c->broadcast_key);
    return BG_OK;
}

/* Instance streams expire unless written: vanished instances leave nothing. */
static void ctl_instance_expire(bg_control *c, bg_abus *b, const char *key)
{
    char ttl[24];

    snprintf(ttl, sizeof(ttl), "%" PRId64,
             BG_CONTROL_INSTANCE_TTL_EXPIRIES * c->cfg.messaging.heartbeat_expiry_ms);
    bg_abus_command(b, ctl_on_resync_reply, c, "PEXPIRE %s %s", key, ttl);
}

static int64_t ctl_resync_delay(const bg_control *c, int attempt)
{
    int64_t base = c->cfg.messaging.heartbeat_interval_ms / 4;
    int64_t cap = c->cfg.messaging.heartbeat_expiry_ms, d;

    base = base < 50 ? 50 : base > 2000 ? 2000 : base;
    if (cap < base)
        cap = base;
    d = base << (attempt > 10 ? 10 : attempt - 1);
    return d > cap ? cap : d;
}

/* One RESYNC_REQUEST to the connection's instance stream; attempt 1 starts over. */
static void ctl_resync_send(bg_control *c, bg_reg_conn *conn, const char *reason, int attempt)
{
    char key[BG_KEY_MAX + 1], err[BG_ERR_LEN];
    bg_abus *b = ctl_writer(c);

    conn->resync_attempts = attempt;
    conn->resync_gave_up = 0;
    conn->resync_due_ms = bg_mono_ms() + ctl_resync_delay(c, attempt);
    if (bg_key_instance_stream(&c->names, conn->service, conn->instance, key, sizeof(key), err) !=
            BG_OK ||
        ctl_resync_xadd(c, b, key, BG_CONTROL_INSTANCE_MAXLEN, reason, conn->service,
                        conn->instance, conn->resync_id, err) != BG_OK) {
        bg_warn("control: RESYNC_REQUEST (%s) to %s not sent: %s", reason, conn->id, err);
        return;
    }
    ctl_instance_expire(c, b, key);
    bg_info("control: RESYNC_REQUEST %s (%s) sent to %s", conn->resync_id, reason, conn->id);
}

void bg_control_resync_conn(bg_control *c, bg_reg_conn *conn, const char *reason)
{
    ctl_resync_send(c, conn, reason, 1);
}

void bg_control_resync_done(bg_reg_conn *conn)
{
    conn->resync_attempts = 0;
    conn->resync_gave_up = 0;
    conn->resync_id[0] = '\0';
}

void bg_control_resync_retry(bg_control *c, int64_t now_ms)
{
    for (size_t i = 0; i < bg_reg_count(c->reg); i++) {
        bg_reg_conn *conn = bg_reg_at(c->reg, i);

        /* a down instance cannot answer: its next frame brings it back first */
        if (conn->resync_attempts == 0 || conn->resync_gave_up || !conn->up ||
            conn->resync_due_ms > now_ms)
            continue;
        if (conn->resync_attempts >= BG_CONTROL_RESYNC_MAX_ATTEMPTS) {
            conn->resync_gave_up = 1;
            c->stats.resyncs_given_up++;
            bg_warn("connection %s did not answer %d RESYNC_REQUESTs: giving up until its next "
                    "HELLO or ENDPOINTS_UPDATE",
                    conn->id, conn->resync_attempts);
            continue;
        }
        ctl_resync_send(c, conn, "retry", conn->resync_attempts + 1);
    }
}
