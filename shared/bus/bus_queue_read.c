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

/* A quiet stream must not look like a dead server: while a read may block block_ms, the
 * command timeout is raised above it when shorter. Returns the one to restore (0: none). */
static int64_t read_timeout_raise(bg_queue *q, int64_t block_ms)
{
    int64_t saved = block_ms > 0 ? bg_bus_command_timeout(q->bus) : 0;

    if (saved <= 0 || saved >= block_ms + QUEUE_BLOCK_MARGIN_MS)
        return 0;
    bg_bus_set_command_timeout(q->bus, block_ms + QUEUE_BLOCK_MARGIN_MS);
    return saved;
}

static void read_timeout_restore(bg_queue *q, int64_t saved)
{
    if (saved > 0)
        bg_bus_set_command_timeout(q->bus, saved);
}

/* XREADGROUP's argv (12 at most) for COUNT cnt, with BLOCK blk unless blk is NULL. */
static int read_args(const bg_queue *q, const char *cnt, const char *blk, const char **argv)
{
    int argc = 0;

    argv[argc++] = "XREADGROUP";
    argv[argc++] = "GROUP";
    argv[argc++] = q->group;
    argv[argc++] = q->consumer;
    argv[argc++] = "COUNT";
    argv[argc++] = cnt;
    if (blk != NULL) {
        argv[argc++] = "BLOCK";
        argv[argc++] = blk;
    }
    argv[argc++] = "STREAMS";
    argv[argc++] = q->stream;
    argv[argc++] = ">";
    return argc;
}

static redisReply *read_send(bg_queue *q, int count, int64_t block_ms, char *err)
{
    char cnt[24], blk[24];
    const char *argv[12];
    int argc;
    int64_t saved;
    redisReply *r;

    snprintf(cnt, sizeof(cnt), "%d", count);
    snprintf(blk, sizeof(blk), "%" PRId64, block_ms);
    argc = read_args(q, cnt, block_ms > 0 ? blk : NULL, argv);
    saved = read_timeout_raise(q, block_ms);
    r = bg_queue_send(q, NULL, argc, argv, NULL, err);
    read_timeout_restore(q, saved);
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

int bg_queue_read_append(bg_queue *q, int count, int64_t block_ms, char *err)
{
    char cnt[24], blk[24], why[BG_ERR_LEN];
    const char *argv[12];
    int argc, rc;
    int64_t saved;

    if (bg_queue_need_consumer(q, "XREADGROUP", err) != BG_OK)
        return BG_ERR;
    if (count <= 0 || q->need_group) {
        bg_set_error(err, "XREADGROUP %s: %s", q->stream,
                     count <= 0 ? "count must be > 0" : "the group must be made first");
        return BG_ERR;
    }
    snprintf(cnt, sizeof(cnt), "%d", count);
    snprintf(blk, sizeof(blk), "%" PRId64, block_ms);
    argc = read_args(q, cnt, block_ms > 0 ? blk : NULL, argv);
    q->commands++;
    /* Cluster mode runs a pipelined command as it is appended: it may block right here. */
    saved = read_timeout_raise(q, bg_bus_is_cluster(q->bus) ? block_ms : 0);
    rc = bg_bus_append_argv(q->bus, argc, argv, NULL, why);
    read_timeout_restore(q, saved);
    if (rc != BG_OK) {
        bg_set_error(err, "XREADGROUP %s: %s", q->stream, why);
        return BG_ERR;
    }
    q->pending_block_ms = block_ms > 0 ? block_ms : 0;
    return BG_OK;
}

int bg_queue_read_reply(bg_queue *q, bg_queue_batch *out, char *err)
{
    int64_t saved = read_timeout_raise(q, q->pending_block_ms);
    char why[BG_ERR_LEN];
    redisReply *r;
    int rc;

    bg_queue_batch_free(out);
    rc = bg_bus_get_reply(q->bus, &r, why);
    read_timeout_restore(q, saved);
    q->pending_block_ms = 0;
    if (rc != BG_OK) {
        bg_set_error(err, "XREADGROUP %s: %s", q->stream, why);
        return BG_ERR;
    }
    if (reply_is_nogroup(r)) {
        /* Nothing was delivered; the next bg_queue_read makes the group again. */
        bg_bus_reply_free(r);
        q->need_group = 1;
        return BG_OK;
    }
    return read_finish(q, r, out, err);
}
