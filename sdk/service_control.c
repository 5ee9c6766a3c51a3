/* service_control.c: the control thread: HELLO, HEARTBEAT, RESYNC_REQUEST answers, CANCEL, GOODBYE.
 */
#include "service_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "busgate/bus/bus_slot.h"
#include "busgate/core/log.h"

#define CONTROL_READ_COUNT "32"
/* While draining, read in short slices so GOODBYE follows the drain closely. */
#define CONTROL_DRAIN_BLOCK_MS 100

enum { STREAM_INSTANCE = 0, STREAM_BROADCAST, STREAM_CANCEL, NSTREAMS };

/* Only a flag: the hook runs inside the bus's reconnect, where commands must not re-enter it. */
static void control_reconnected(bg_bus *bus, void *arg)
{
    (void)bus;
    atomic_store(&((bgs_control *)arg)->need_hello, 1);
}

int bgs_control_init(bgs_control *c, busgate_service *s, bg_bus *bus, char *err)
{
    int64_t need = BGS_BLOCK_MS + 1000;

    c->svc = s;
    c->bus = bus;
    c->keys[STREAM_INSTANCE] = s->k_instance;
    c->keys[STREAM_BROADCAST] = s->k_broadcast;
    c->keys[STREAM_CANCEL] = s->k_cancel;
    /* Read after the newest entries: what was there before we started is not for us. */
    for (int i = 0; i < NSTREAMS; i++) {
        while (bgs_stream_last_id(bus, c->keys[i], c->last[i], err) != BG_OK) {
            if (bgs_stopping(s))
                return BG_ERR;
            bg_warn("%s/%s: %s (retrying)", s->name, s->instance, err);
            bgs_sleep_ms(s, BGS_ERROR_PAUSE_MS);
        }
    }
    /* A quiet XREAD BLOCK must not look like a dead server. */
    if (bg_bus_command_timeout(bus) > 0 && bg_bus_command_timeout(bus) < need)
        bg_bus_set_command_timeout(bus, need);
    bg_bus_set_reconnect_hook(bus, control_reconnected, c);
    atomic_store(&c->need_hello, 1);
    c->next_heartbeat_ms = bg_mono_ms() + s->cfg.messaging.heartbeat_interval_ms;
    return BG_OK;
}

static int control_hello(bgs_control *c)
{
    busgate_service *s = c->svc;
    char err[BG_ERR_LEN];
    bg_frame f;
    int rc;

    bg_frame_init(&f, BG_FRAME_HELLO);
    f.meta = json_pack("{s:s, s:s, s:I}", "sdk", BUSGATE_SDK_VERSION, "host", s->host, "pid",
                       (json_int_t)getpid());
    rc = bgs_control_send(s, c->bus, &f, err);
    bg_frame_free(&f);
    if (rc != BG_OK) {
        bg_warn("%s/%s: HELLO not sent: %s", s->name, s->instance, err);
        return BG_ERR;
    }
    bg_info("%s/%s: HELLO sent on %s", s->name, s->instance, s->k_control);
    return BG_OK;
}

static void control_heartbeat(bgs_control *c)
{
    busgate_service *s = c->svc;
    char err[BG_ERR_LEN];
    bg_frame f;

    bg_frame_init(&f, BG_FRAME_HEARTBEAT);
    f.interval_ms = s->cfg.messaging.heartbeat_interval_ms;
    f.inflight = atomic_load(&s->inflight);
    if (bgs_control_send(s, c->bus, &f, err) != BG_OK)
        bg_warn("%s/%s: HEARTBEAT not sent: %s", s->name, s->instance, err);
    bg_frame_free(&f);
}

static void control_endpoints(bgs_control *c, const char *resync_id)
{
    busgate_service *s = c->svc;
    char err[BG_ERR_LEN];
    bg_frame f;

    bg_frame_init(&f, BG_FRAME_ENDPOINTS_UPDATE);
    snprintf(f.resync_id, sizeof(f.resync_id), "%s", resync_id);
    f.meta_json.ptr = s->endpoints_meta;
    f.meta_json.len = s->endpoints_meta_len;
    if (bgs_control_send(s, c->bus, &f, err) != BG_OK)
        bg_warn("%s/%s: ENDPOINTS_UPDATE for resync %s not sent: %s", s->name, s->instance,
                resync_id, err);
    else
        bg_info("%s/%s: resync %s answered with %zu endpoint(s)", s->name, s->instance, resync_id,
                s->neps);
    bg_frame_free(&f);
}

static void control_goodbye(bgs_control *c)
{
    busgate_service *s = c->svc;
    char err[BG_ERR_LEN];
    bg_frame f;

    bg_frame_init(&f, BG_FRAME_GOODBYE);
    snprintf(f.reason, sizeof(f.reason), "shutdown");
    if (bgs_control_send(s, c->bus, &f, err) != BG_OK)
        bg_warn("%s/%s: GOODBYE not sent: %s", s->name, s->instance, err);
    else
        bg_info("%s/%s: GOODBYE sent", s->name, s->instance);
    bg_frame_free(&f);
}

/* A broadcast resync is answered after a random delay of 0..1000 ms, so a
 * large fleet does not answer in one burst. */
static void control_defer_resync(bgs_control *c, const char *id)
{
    uint32_t dice = 0;

    if (c->npending == BGS_RESYNC_PENDING) {
        control_endpoints(c, id);
        return;
    }
    if (bg_random_bytes(&dice, sizeof(dice)) != BG_OK)
        dice = 0;
    snprintf(c->pending[c->npending].id, sizeof(c->pending[0].id), "%s", id);
    c->pending[c->npending].due_ms = bg_mono_ms() + (int64_t)(dice % (BGS_RESYNC_SPREAD_MS + 1));
    c->npending++;
}

static void control_resync(bgs_control *c, const bg_frame *f, int broadcast)
{
    busgate_service *s = c->svc;

    /* Targets: absent means everyone reading the stream. */
    if ((f->service[0] != '\0' && strcmp(f->service, s->name) != 0) ||
        (f->instance[0] != '\0' && strcmp(f->instance, s->instance) != 0)) {
        bg_debug("%s/%s: resync %s is for %s/%s, not us", s->name, s->instance, f->id, f->service,
                 f->instance);
        return;
    }
    if (broadcast)
        control_defer_resync(c, f->id);
    else
        control_endpoints(c, f->id);
}

static void control_entry(bgs_control *c, int stream, const redisReply *entry)
{
    busgate_service *s = c->svc;
    bg_field fields[BG_FRAME_FIELDS_MAX];
    char why[BG_ERR_LEN];
    const char *id;
    size_t n;
    bg_frame f;

    if (bgs_entry_fields(entry, fields, BG_FRAME_FIELDS_MAX, &n, &id) != BG_OK) {
        bg_warn("%s/%s: unreadable entry on %s ignored", s->name, s->instance, c->keys[stream]);
        return;
    }
    snprintf(c->last[stream], sizeof(c->last[stream]), "%s", id);
    if (bg_frame_decode_borrow(fields, n, &f, why) != BG_OK) {
        bg_warn("%s/%s: malformed frame %s on %s ignored: %s", s->name, s->instance, id,
                c->keys[stream], why);
    } else if (stream == STREAM_CANCEL && f.type == BG_FRAME_CANCEL) {
        if (bgs_pool_cancel(&s->pool, f.id))
            bg_info("%s/%s: request %s cancelled (%s)", s->name, s->instance, f.id, f.reason);
    } else if (stream != STREAM_CANCEL && f.type == BG_FRAME_RESYNC_REQUEST) {
        control_resync(c, &f, stream == STREAM_BROADCAST);
    } else {
        bg_debug("%s/%s: %s frame on %s ignored", s->name, s->instance, bg_frame_type_name(f.type),
                 c->keys[stream]);
    }
    bg_frame_free(&f);
}

static int control_stream_index(const bgs_control *c, const redisReply *key)
{
    if (key->type != REDIS_REPLY_STRING)
        return -1;
    for (int i = 0; i < NSTREAMS; i++)
        if (strcmp(key->str, c->keys[i]) == 0)
            return i;
    return -1;
}

static void control_stream_entries(bgs_control *c, const redisReply *key, const redisReply *list)
{
    int stream = control_stream_index(c, key);

    if (stream < 0 || list->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < list->elements; i++)
        control_entry(c, stream, list->element[i]);
}

/* XREAD reply: RESP2 [[key, entries], ...], RESP3 {key: entries}; nil = timeout. */
static void control_reply(bgs_control *c, const redisReply *r)
{
    if (r->type == REDIS_REPLY_MAP) {
        for (size_t i = 0; i + 1 < r->elements; i += 2)
            control_stream_entries(c, r->element[i], r->element[i + 1]);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *s = r->element[i];
        if (s->type == REDIS_REPLY_ARRAY && s->elements == 2)
            control_stream_entries(c, s->element[0], s->element[1]);
    }
}

/* One XREAD of the streams in idx[0..n); block_ms < 0: no BLOCK. */
static void control_read_some(bgs_control *c, const int *idx, int n, int64_t block_ms)
{
    busgate_service *s = c->svc;
    char blk[24], err[BG_ERR_LEN];
    const char *argv[6 + 2 * NSTREAMS] = {"XREAD", "COUNT", CONTROL_READ_COUNT, "BLOCK", blk};
    int argc = block_ms >= 0 ? 5 : 3;
    redisReply *r;

    snprintf(blk, sizeof(blk), "%" PRId64, block_ms);
    argv[argc++] = "STREAMS";
    for (int i = 0; i < n; i++)
        argv[argc + i] = c->keys[idx[i]];
    for (int i = 0; i < n; i++)
        argv[argc + n + i] = c->last[idx[i]];
    r = bg_bus_command_argv(c->bus, argc + 2 * n, argv, NULL, err);
    if (r == NULL) {
        /* The bus has already waited out its reconnect backoff. */
        bg_warn("%s/%s: reading control streams: %s", s->name, s->instance, err);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        bg_warn("%s/%s: XREAD: %s", s->name, s->instance, r->str);
        bg_bus_reply_free(r);
        bgs_sleep_ms(s, BGS_ERROR_PAUSE_MS);
        return;
    }
    control_reply(c, r);
    bg_bus_reply_free(r);
}

/* On a cluster one XREAD may only name streams of one slot (docs/protocol.md section 3):
 * the instance and cancel streams share the service's slot and are read blocking, the
 * others (router:broadcast) without blocking just before, so they wait at most one block. */
static void control_read(bgs_control *c, int64_t block_ms)
{
    int all[NSTREAMS], same[NSTREAMS], nsame = 0;
    uint16_t home;

    for (int i = 0; i < NSTREAMS; i++)
        all[i] = i;
    if (!bg_bus_is_cluster(c->bus)) {
        control_read_some(c, all, NSTREAMS, block_ms);
        return;
    }
    home = bg_slot_of(c->keys[STREAM_INSTANCE], strlen(c->keys[STREAM_INSTANCE]));
    for (int i = 0; i < NSTREAMS; i++) {
        if (bg_slot_of(c->keys[i], strlen(c->keys[i])) == home)
            same[nsame++] = i;
        else
            control_read_some(c, &all[i], 1, -1);
    }
    control_read_some(c, same, nsame, block_ms);
}

/* HELLO (first or after a reconnect), heartbeat, deferred resyncs; returns ms to the next. */
static int64_t control_timers(bgs_control *c)
{
    busgate_service *s = c->svc;
    int64_t now, next;
    int kept = 0;

    if (atomic_exchange(&c->need_hello, 0)) {
        if (control_hello(c) != BG_OK) {
            atomic_store(&c->need_hello, 1); /* retried next round */
        } else if (!c->hello_done) {
            c->hello_done = 1;
            if (s->ready_fn != NULL)
                s->ready_fn(s, s->ready_arg);
        }
    }
    now = bg_mono_ms();
    if (now >= c->next_heartbeat_ms) {
        control_heartbeat(c);
        c->next_heartbeat_ms += s->cfg.messaging.heartbeat_interval_ms;
        if (c->next_heartbeat_ms <= now) /* fell behind (server away): no burst */
            c->next_heartbeat_ms = now + s->cfg.messaging.heartbeat_interval_ms;
    }
    next = c->next_heartbeat_ms;
    for (int i = 0; i < c->npending; i++) {
        if (now >= c->pending[i].due_ms) {
            control_endpoints(c, c->pending[i].id);
            continue;
        }
        next = c->pending[i].due_ms < next ? c->pending[i].due_ms : next;
        c->pending[kept++] = c->pending[i];
    }
    c->npending = kept;
    return next - bg_mono_ms();
}

static void *control_main(void *arg)
{
    bgs_control *c = arg;
    busgate_service *s = c->svc;
    int64_t block;

    while (!atomic_load(&s->control_stop)) {
        block = control_timers(c);
        if (bgs_stopping(s) && block > CONTROL_DRAIN_BLOCK_MS)
            block = CONTROL_DRAIN_BLOCK_MS;
        if (block > BGS_BLOCK_MS)
            block = BGS_BLOCK_MS;
        if (block < BGS_BLOCK_MIN_MS)
            block = BGS_BLOCK_MIN_MS;
        control_read(c, block);
    }
    control_goodbye(c);
    return NULL;
}

int bgs_control_start(bgs_control *c, char *err)
{
    int rc = pthread_create(&c->thread, NULL, control_main, c);

    if (rc != 0) {
        bg_set_error(err, "pthread_create (control): %s", strerror(rc));
        return BG_ERR;
    }
    c->started = 1;
    return BG_OK;
}

void bgs_control_finish(bgs_control *c)
{
    if (!c->started)
        return;
    atomic_store(&c->svc->control_stop, 1);
    pthread_join(c->thread, NULL);
    c->started = 0;
}
