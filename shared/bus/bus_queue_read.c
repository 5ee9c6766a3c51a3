/* bus_queue_read.c: read a batch as a group member (XREADGROUP); re-create a vanished group. */
#include "bus_queue_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* A blocking read gets this much more than its BLOCK time before the
 * connection's command timeout fires, so a quiet stream is not an I/O error. */
#define QUEUE_BLOCK_MARGIN_MS 1000

static void sleep_until_ms(int64_t deadline)
{
    int64_t left = deadline - bg_mono_ms();
    struct timespec ts;

    while (left > 0) {
        ts.tv_sec = left / 1000;
        ts.tv_nsec = (long)(left % 1000) * 1000000L;
        if (nanosleep(&ts, NULL) == 0 || errno != EINTR)
            return;
        left = deadline - bg_mono_ms();
    }
}

static redisReply *read_send(bg_queue *q, int count, int64_t block_ms, char *err)
{
    char cnt[24], blk[24];
    const char *argv[12];
    int argc = 0;
    int64_t saved = block_ms > 0 ? bg_bus_command_timeout(q->bus) : 0;
    int raise = saved > 0 && saved < block_ms + QUEUE_BLOCK_MARGIN_MS;
    redisReply *r;

    snprintf(cnt, sizeof(cnt), "%d", count);
    snprintf(blk, sizeof(blk), "%" PRId64, block_ms);
    argv[argc++] = "XREADGROUP";
    argv[argc++] = "GROUP";
    argv[argc++] = q->group;
    argv[argc++] = q->consumer;
    argv[argc++] = "COUNT";
    argv[argc++] = cnt;
    if (block_ms > 0) {
        argv[argc++] = "BLOCK";
        argv[argc++] = blk;
    }
    argv[argc++] = "STREAMS";
    argv[argc++] = q->stream;
    argv[argc++] = ">";
    /* A quiet stream must not look like a dead server: the read may take block_ms. */
    if (raise)
        bg_bus_set_command_timeout(q->bus, block_ms + QUEUE_BLOCK_MARGIN_MS);
    r = bg_queue_send(q, NULL, argc, argv, NULL, err);
    if (raise)
        bg_bus_set_command_timeout(q->bus, saved);
    return r;
}

static int reply_is_nogroup(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOGROUP", 7) == 0;
}

/* The entries of our one stream in an XREADGROUP reply: RESP2 [[key, entries]],
 * RESP3 {key: entries}; NULL when the read timed out (nil). */
static const redisReply *read_entries(const redisReply *r)
{
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2)
        return r->element[0]->element[1];
    if (r->type == REDIS_REPLY_MAP && r->elements >= 2)
        return r->element[1];
    return NULL;
}

static int read_finish(bg_queue *q, redisReply *r, bg_queue_batch *out, char *err)
{
    if (r->type == REDIS_REPLY_ERROR) {
        bg_set_error(err, "XREADGROUP %s %s: %s", q->stream, q->group, r->str);
        bg_bus_reply_free(r);
        return BG_ERR;
    }
    if (r->type != REDIS_REPLY_NIL && read_entries(r) == NULL) {
        bg_set_error(err, "XREADGROUP %s: unexpected reply type %d", q->stream, r->type);
        bg_bus_reply_free(r);
        return BG_ERR;
    }
    if (bg_queue_batch_fill(out, r, read_entries(r), NULL, err) != BG_OK) {
        bg_queue_batch_free(out);
        return BG_ERR;
    }
    return BG_OK;
}

/* NOGROUP: the group vanished (restart without persistence, eviction,
 * failover). Re-create it, at most once per retry interval (waiting for that
 * if needed), and read again. A failure also waits out the interval, so even
 * a caller that loops on errors cannot spin. */
static int read_recover(bg_queue *q, int count, int64_t block_ms, bg_queue_batch *out, char *err)
{
    redisReply *r;

    sleep_until_ms(q->next_create_ms);
    if (bg_queue_ensure_group(q, err) != BG_OK)
        goto wait;
    r = read_send(q, count, block_ms, err);
    if (r == NULL)
        return BG_ERR;
    if (!reply_is_nogroup(r))
        return read_finish(q, r, out, err);
    bg_bus_reply_free(r);
    bg_set_error(err, "XREADGROUP %s: NOGROUP again right after creating group %s", q->stream,
                 q->group);
wait:
    sleep_until_ms(q->next_create_ms);
    return BG_ERR;
}

int bg_queue_read(bg_queue *q, int count, int64_t block_ms, bg_queue_batch *out, char *err)
{
    redisReply *r;

    bg_queue_batch_free(out);
    if (bg_queue_need_consumer(q, "XREADGROUP", err) != BG_OK)
        return BG_ERR;
    if (count <= 0) {
        bg_set_error(err, "XREADGROUP %s: count must be > 0", q->stream);
        return BG_ERR;
    }
    if (q->need_group && bg_mono_ms() >= q->next_create_ms &&
        bg_queue_ensure_group(q, err) != BG_OK)
        return BG_ERR;
    r = read_send(q, count, block_ms, err);
    if (r == NULL)
        return BG_ERR;
    if (!reply_is_nogroup(r))
        return read_finish(q, r, out, err);
    bg_bus_reply_free(r);
    return read_recover(q, count, block_ms, out, err);
}
