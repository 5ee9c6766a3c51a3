/* control_read.c: reading the control stream through this gateway's group on its own connection. */
#include "control_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busgate/core/log.h"

#define CTL_BACKOFF_MIN_MS 200
#define CTL_BACKOFF_MAX_MS 5000

static void ctl_read_next(bg_control *c);
static void ctl_read_setup(bg_control *c);

static int64_t ctl_on_read_retry(bg_ev *loop, bg_ev_timer *t, void *arg)
{
    bg_control *c = arg;

    (void)loop;
    (void)t;
    c->read_retry = NULL;
    if (c->rd == NULL || !bg_abus_connected(c->rd))
        return BG_EV_NOMORE; /* the state hook starts again on connect */
    if (c->need_setup)
        ctl_read_setup(c);
    else
        ctl_read_next(c);
    return BG_EV_NOMORE;
}

/* After an error: try again later, each time later (no hot loop on NOGROUP). */
static void ctl_read_later(bg_control *c, int setup)
{
    char err[BG_ERR_LEN];

    c->need_setup |= setup;
    if (c->read_retry != NULL || c->stopping)
        return;
    c->backoff_ms = c->backoff_ms == 0 ? CTL_BACKOFF_MIN_MS : c->backoff_ms * 2;
    if (c->backoff_ms > CTL_BACKOFF_MAX_MS)
        c->backoff_ms = CTL_BACKOFF_MAX_MS;
    c->read_retry = bg_ev_timer_add(c->loop, c->backoff_ms, ctl_on_read_retry, c, err);
    if (c->read_retry == NULL)
        bg_error("control: cannot arm the read retry timer: %s", err);
}

static void ctl_on_group_create(bg_abus *b, redisReply *r, void *arg)
{
    bg_control *c = arg;

    (void)b;
    if (r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0)
        bg_error("control: XGROUP CREATE %s %s failed: %s", c->control_key, c->group, r->str);
}

static void ctl_on_group_setid(bg_abus *b, redisReply *r, void *arg)
{
    bg_control *c = arg;

    (void)b;
    if (r != NULL && r->type == REDIS_REPLY_ERROR)
        bg_error("control: XGROUP SETID %s %s $ failed: %s", c->control_key, c->group, r->str);
}

/* Group first, then the fleet-wide resync, then the read, all pipelined on
 * rd so the answers to the resync land after the group's start id. At
 * start the group skips what came before (SETID $): that history is older
 * than the resync that replaces it; after a reconnect it continues. */
static void ctl_read_setup(bg_control *c)
{
    const char *create[] = {"XGROUP", "CREATE", c->control_key, c->group, "$", "MKSTREAM"};
    const char *setid[] = {"XGROUP", "SETID", c->control_key, c->group, "$"};
    char err[BG_ERR_LEN];

    c->need_setup = 0;
    if (bg_abus_command_argv(c->rd, ctl_on_group_create, c, 6, create, NULL) != BG_OK ||
        (!c->started &&
         bg_abus_command_argv(c->rd, ctl_on_group_setid, c, 5, setid, NULL) != BG_OK)) {
        ctl_read_later(c, 1);
        return;
    }
    if (bg_control_resync_broadcast(c, c->rd, c->started ? "reconnect" : "startup", NULL, err) !=
        BG_OK)
        bg_warn("control: fleet-wide resync not sent: %s", err);
    else
        bg_control_busview_resync_sent(c);
    c->started = 1;
    ctl_read_next(c);
}

void bg_control_on_rd_state(bg_abus *b, int connected, void *arg)
{
    bg_control *c = arg;

    (void)b;
    c->reading = 0; /* a read in flight got its NULL reply */
    if (!connected || c->stopping)
        return;
    c->resumed = 1;
    bg_ev_timer_del(c->loop, c->read_retry);
    c->read_retry = NULL;
    ctl_read_setup(c);
}

void bg_control_read_stop(bg_control *c)
{
    c->stopping = 1;
    bg_ev_timer_del(c->loop, c->read_retry);
    c->read_retry = NULL;
}

static void ctl_on_ack(bg_abus *b, redisReply *r, void *arg)
{
    bg_control *c = arg;

    (void)b;
    if (r != NULL && r->type == REDIS_REPLY_ERROR)
        bg_error("control: XACK %s %s failed: %s (a reclaim applies them again)", c->control_key,
                 c->group, r->str);
}

static int ctl_entry_ok(const redisReply *e)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[0]->len >= BG_QUEUE_ID_LEN ||
        e->element[1]->type != REDIS_REPLY_ARRAY || e->element[1]->elements % 2 != 0)
        return 0;
    for (size_t i = 0; i < e->element[1]->elements; i++)
        if (e->element[1]->element[i]->type != REDIS_REPLY_STRING)
            return 0;
    return 1;
}

/* One entry of the reply: 1 = ack it, 0 = done otherwise, -1 = leave pending. */
static int ctl_read_entry(bg_control *c, const redisReply *e)
{
    const redisReply *kv = e->element[1];
    size_t n = kv->elements / 2;
    bg_field *fields = calloc(n + 1, sizeof(*fields));
    int rc;

    if (fields == NULL) {
        bg_error("control: out of memory reading entry %s", e->element[0]->str);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        fields[i].name = (bg_bytes){kv->element[2 * i]->str, kv->element[2 * i]->len};
        fields[i].value = (bg_bytes){kv->element[2 * i + 1]->str, kv->element[2 * i + 1]->len};
    }
    rc = bg_control_entry(c, e->element[0]->str, fields, n, 1);
    free(fields);
    return rc;
}

/* Applies the batch, then acks it in one XACK pipelined before the next read. */
static void ctl_read_batch(bg_control *c, const redisReply *list)
{
    const char **argv = malloc((list->elements + 3) * sizeof(*argv));
    int argc = 3;

    if (argv == NULL) {
        bg_error("control: out of memory for a batch of %zu entries", list->elements);
        return; /* they stay pending: a reclaim applies them */
    }
    argv[0] = "XACK";
    argv[1] = c->control_key;
    argv[2] = c->group;
    for (size_t i = 0; i < list->elements; i++) {
        const redisReply *e = list->element[i];
        if (!ctl_entry_ok(e)) {
            bg_error("control: malformed entry %zu in an XREADGROUP reply; skipped", i);
            continue;
        }
        if (ctl_read_entry(c, e) == 1)
            argv[argc++] = e->element[0]->str;
    }
    bg_control_publish(c, 0);
    if (argc > 3 && bg_abus_command_argv(c->rd, ctl_on_ack, c, argc, argv, NULL) != BG_OK)
        bg_error("control: XACK of %d entries not sent (a reclaim applies them again)", argc - 3);
    free(argv);
}

/* The entries of our one stream: RESP2 [[key, entries]], RESP3 {key: entries}. */
static const redisReply *ctl_reply_entries(const redisReply *r)
{
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2 &&
        r->element[0]->element[1]->type == REDIS_REPLY_ARRAY)
        return r->element[0]->element[1];
    if (r->type == REDIS_REPLY_MAP && r->elements >= 2 && r->element[1]->type == REDIS_REPLY_ARRAY)
        return r->element[1];
    return NULL;
}

int64_t bg_control_block_ms(const bg_config *cfg)
{
    int64_t ms = cfg->messaging.heartbeat_interval_ms / 2;

    return ms < 50 ? 50 : ms > BG_CONTROL_BLOCK_MS ? BG_CONTROL_BLOCK_MS : ms;
}

/* A read answered: the bus is heard as of now. After a reconnect, or an answer much later
 * than the read's BLOCK (Valkey stopped), the master was cut off: what the services sent
 * meanwhile may be lost or still arriving, so the expiry clock restarts now plus one
 * heartbeat interval instead of marking every instance down at once. */
static void ctl_heard(bg_control *c)
{
    int64_t now = bg_mono_ms(), silent = c->heard_ms > 0 ? now - c->heard_ms : 0;

    if (c->heard_ms > 0 && (c->resumed || silent > c->block_ms + BG_CONTROL_SILENCE_SLACK_MS)) {
        bg_reg_hold_expiry(c->reg, now + c->cfg.messaging.heartbeat_interval_ms);
        bg_notice("control: the bus was silent for %lld ms: heartbeat expiry restarted",
                  (long long)silent);
    }
    c->resumed = 0;
    c->heard_ms = now;
}

static void ctl_on_read(bg_abus *b, redisReply *r, void *arg)
{
    bg_control *c = arg;
    const redisReply *list;

    (void)b;
    c->reading = 0;
    if (r == NULL || c->stopping)
        return; /* connection lost: the state hook sets up again on reconnect */
    if (r->type == REDIS_REPLY_ERROR) {
        int nogroup = strncmp(r->str, "NOGROUP", 7) == 0;
        bg_warn("control: XREADGROUP %s %s: %s%s", c->control_key, c->group, r->str,
                nogroup ? " (Valkey restarted or flushed?): re-creating the group" : "");
        ctl_read_later(c, nogroup);
        return;
    }
    c->backoff_ms = 0;
    ctl_heard(c);
    list = ctl_reply_entries(r);
    if (r->type != REDIS_REPLY_NIL && list == NULL) {
        bg_error("control: XREADGROUP %s: unexpected reply type %d", c->control_key, r->type);
        ctl_read_later(c, 0);
        return;
    }
    if (list != NULL)
        ctl_read_batch(c, list);
    ctl_read_next(c);
}

static void ctl_read_next(bg_control *c)
{
    static const char count[] = BG_CONTROL_STR(BG_CONTROL_READ_COUNT);
    const char *argv[] = {"XREADGROUP", "GROUP", c->group,  c->gateway,     "COUNT", count,
                          "BLOCK",      NULL,    "STREAMS", c->control_key, ">"};
    char block[24];

    if (c->reading || c->stopping || c->rd == NULL)
        return;
    snprintf(block, sizeof(block), "%lld", (long long)c->block_ms);
    argv[7] = block;
    if (bg_abus_command_argv(c->rd, ctl_on_read, c, (int)BG_ARRAY_LEN(argv), argv, NULL) != BG_OK) {
        ctl_read_later(c, 0);
        return;
    }
    c->reading = 1;
}
