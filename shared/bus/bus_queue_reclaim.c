/* bus_queue_reclaim.c: leases of a stream queue: extend, reclaim, dead letters, idle consumers. */
#include "bus_queue_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* XAUTOCLAIM calls per reclaim while they claim nothing but the cursor has not
 * wrapped: each scans at most 10 * count pending entries. */
#define RECLAIM_MAX_ROUNDS 8
/* Lua's unpack() is limited by its C stack (8000 values): cap the fields. */
#define DEAD_MAX_FIELDS 2000

/* Extend only if the entry is still pending on this consumer: a plain XCLAIM
 * with min-idle 0 would steal it back from whoever reclaimed it. */
static const char extend_lua[] =
    "local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)\n"
    "if #p == 0 then return 0 end\n"
    "if p[1][2] ~= ARGV[2] then return p[1][2] end\n"
    "redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')\n"
    "return 1\n";

/* Claim, then read each claimed entry's delivery count (XAUTOCLAIM has just
 * incremented it) in the same atomic step, and ack the ids whose entries were
 * trimmed away (Valkey drops them from the pending list too; acking is harmless). */
static const char reclaim_lua[] =
    "local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4],"
    " 'COUNT', ARGV[5])\n"
    "local counts = {}\n"
    "for i, e in ipairs(r[2]) do\n"
    "  local p = e and redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1) or {}\n"
    "  counts[i] = #p > 0 and p[1][4] or 0\n"
    "end\n"
    "local gone = r[3] or {}\n"
    "for _, id in ipairs(gone) do redis.call('XACK', KEYS[1], ARGV[1], id) end\n"
    "return {r[1], r[2], gone, counts}\n";

/* Ack first and add the dead letter only if the ack took: an entry someone
 * else already finished is not dead-lettered, and never twice. */
static const char dead_lua[] =
    "if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return false end\n"
    "local a = {KEYS[2]}\n"
    "if ARGV[3] ~= '0' then a[#a+1] = 'MAXLEN'; a[#a+1] = '~'; a[#a+1] = ARGV[3] end\n"
    "a[#a+1] = '*'\n"
    "for i = 4, #ARGV do a[#a+1] = ARGV[i] end\n"
    "return redis.call('XADD', unpack(a))\n";

/* Check and delete in one step, so no consumer that just got an entry is
 * deleted (which would orphan the entry). */
static const char delconsumer_lua[] =
    "local n = 0\n"
    "for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do\n"
    "  local f = {}\n"
    "  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end\n"
    "  if f['name'] ~= ARGV[2] and f['pending'] == 0 and f['idle'] >= tonumber(ARGV[3]) then\n"
    "    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n";

int bg_queue_extend(bg_queue *q, const char *id, char *err)
{
    const char *argv[] = {"EVAL", extend_lua, "1", q->stream, q->group, q->consumer, id};
    redisReply *r;
    int rc = BG_ERR;

    if (bg_queue_need_consumer(q, "extend", err) != BG_OK)
        return BG_ERR;
    r = bg_queue_run(q, "extend", (int)BG_ARRAY_LEN(argv), argv, NULL, err);
    if (r == NULL)
        return BG_ERR;
    if (r->type == REDIS_REPLY_INTEGER && r->integer == 1)
        rc = BG_OK;
    else if (r->type == REDIS_REPLY_STRING)
        bg_set_error(err, "extend %s %s: lease lost, the entry is pending on consumer %s",
                     q->stream, id, r->str);
    else
        bg_set_error(err, "extend %s %s: lease lost, the entry is not pending (acked?)", q->stream,
                     id);
    bg_bus_reply_free(r);
    return rc;
}

/* Numbers printed for a dead-letter script call; they live as long as its argv. */
typedef struct dead_nums {
    char deliveries[24];
    char at_ms[24];
    char maxlen[24];
} dead_nums;

/* The dead-letter fields that say why and from where, after the original ones. */
static int dead_meta_argv(bg_queue *q, const bg_queue_entry *e, const char *reason, dead_nums *num,
                          const char **argv, size_t *lens)
{
    const char *meta[] = {"dead_reason",     reason,
                          "dead_from_id",    e->id,
                          "dead_deliveries", num->deliveries,
                          "dead_group",      q->group,
                          "dead_consumer",   q->consumer != NULL ? q->consumer : "",
                          "dead_at_ms",      num->at_ms};
    int i;

    snprintf(num->deliveries, sizeof(num->deliveries), "%ld", e->deliveries);
    snprintf(num->at_ms, sizeof(num->at_ms), "%" PRId64, bg_wall_ms());
    for (i = 0; i < (int)BG_ARRAY_LEN(meta); i++) {
        argv[i] = meta[i];
        lens[i] = strlen(meta[i]);
    }
    return i;
}

static int dead_argv(bg_queue *q, const bg_queue_entry *e, const char *reason, dead_nums *num,
                     const char **argv, size_t *lens)
{
    const char *head[] = {"EVAL",         dead_lua, "2",   q->stream,
                          q->dead_stream, q->group, e->id, num->maxlen};
    int argc = 0;
    size_t i;

    snprintf(num->maxlen, sizeof(num->maxlen), "%zu", q->maxlen);
    for (i = 0; i < BG_ARRAY_LEN(head); i++) {
        argv[argc] = head[i];
        lens[argc++] = strlen(head[i]);
    }
    for (i = 0; i < e->nfields; i++) {
        argv[argc] = e->fields[i].name.ptr;
        lens[argc++] = e->fields[i].name.len;
        argv[argc] = e->fields[i].value.ptr;
        lens[argc++] = e->fields[i].value.len;
    }
    return argc + dead_meta_argv(q, e, reason, num, argv + argc, lens + argc);
}

int bg_queue_dead_letter(bg_queue *q, const bg_queue_entry *e, const char *reason, char *err)
{
    dead_nums num;
    size_t cap = 2 * e->nfields + 24;
    const char **argv = malloc(cap * sizeof(*argv));
    size_t *lens = malloc(cap * sizeof(*lens));
    redisReply *r = NULL;
    int rc = BG_ERR;

    if (argv == NULL || lens == NULL) {
        bg_set_error(err, "dead letter %s %s: out of memory", q->stream, e->id);
        goto cleanup;
    }
    if (e->nfields > DEAD_MAX_FIELDS) {
        bg_set_error(err, "dead letter %s %s: %zu fields (at most %d)", q->stream, e->id,
                     e->nfields, DEAD_MAX_FIELDS);
        goto cleanup;
    }
    r = bg_queue_run(q, "dead letter", dead_argv(q, e, reason, &num, argv, lens), argv, lens, err);
    if (r == NULL)
        goto cleanup;
    if (r->type == REDIS_REPLY_STRING)
        rc = BG_OK;
    else
        bg_set_error(err, "dead letter %s %s: no longer pending in group %s, not moved", q->stream,
                     e->id, q->group);
cleanup:
    if (r != NULL)
        bg_bus_reply_free(r);
    free(argv);
    free(lens);
    return rc;
}

/* One XAUTOCLAIM round; the reply is checked to be {cursor, entries, gone, counts}. */
static redisReply *reclaim_round(bg_queue *q, int count, char *err)
{
    char idle[24], cnt[24];
    const char *argv[] = {"EVAL",      reclaim_lua, "1",       q->stream, q->group,
                          q->consumer, idle,        q->cursor, cnt};
    redisReply *r;

    snprintf(idle, sizeof(idle), "%" PRId64, q->lease_ms);
    snprintf(cnt, sizeof(cnt), "%d", count);
    r = bg_queue_run(q, "XAUTOCLAIM", (int)BG_ARRAY_LEN(argv), argv, NULL, err);
    if (r == NULL)
        return NULL;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len >= BG_QUEUE_ID_LEN ||
        r->element[1]->type != REDIS_REPLY_ARRAY || r->element[2]->type != REDIS_REPLY_ARRAY ||
        r->element[3]->type != REDIS_REPLY_ARRAY ||
        r->element[3]->elements != r->element[1]->elements) {
        bg_set_error(err, "XAUTOCLAIM %s: unexpected reply shape", q->stream);
        bg_bus_reply_free(r);
        return NULL;
    }
    memcpy(q->cursor, r->element[0]->str, r->element[0]->len + 1);
    return r;
}

/* Move entries delivered more than max_deliveries times out of b. On a failure
 * the entries not yet handled stay claimed by us and come back after the lease. */
static int reclaim_dead_letters(bg_queue *q, bg_queue_batch *b, size_t *dead, char *err)
{
    char reason[96];
    size_t i, kept = 0;

    for (i = 0; i < b->count; i++) {
        bg_queue_entry *e = &b->entries[i];
        if (q->max_deliveries == 0 || e->deliveries <= q->max_deliveries) {
            b->entries[kept++] = *e;
            continue;
        }
        snprintf(reason, sizeof(reason), "delivered %ld times, max_deliveries is %d", e->deliveries,
                 q->max_deliveries);
        if (bg_queue_dead_letter(q, e, reason, err) != BG_OK)
            return BG_ERR;
        if (dead != NULL)
            (*dead)++;
    }
    b->count = kept;
    return BG_OK;
}

int bg_queue_reclaim(bg_queue *q, int count, bg_queue_batch *out, size_t *dead_lettered, char *err)
{
    redisReply *r = NULL;
    size_t gone = 0;
    int round;

    bg_queue_batch_free(out);
    if (dead_lettered != NULL)
        *dead_lettered = 0;
    if (bg_queue_need_consumer(q, "XAUTOCLAIM", err) != BG_OK)
        return BG_ERR;
    if (count <= 0) {
        bg_set_error(err, "XAUTOCLAIM %s: count must be > 0", q->stream);
        return BG_ERR;
    }
    for (round = 0; round < RECLAIM_MAX_ROUNDS; round++) {
        r = reclaim_round(q, count, err);
        if (r == NULL)
            return BG_ERR;
        gone += r->element[2]->elements;
        if (r->element[1]->elements > 0 || strcmp(q->cursor, "0-0") == 0)
            break;
        bg_bus_reply_free(r);
        r = NULL;
    }
    if (r != NULL && bg_queue_batch_fill(out, r, r->element[1], r->element[3], err) != BG_OK)
        goto fail;
    out->deleted += gone;
    if (reclaim_dead_letters(q, out, dead_lettered, err) != BG_OK)
        goto fail;
    return BG_OK;
fail:
    bg_queue_batch_free(out);
    return BG_ERR;
}

int bg_queue_delete_idle_consumers(bg_queue *q, int64_t idle_ms, size_t *deleted, char *err)
{
    char idle[24];
    const char *argv[] = {"EVAL",    delconsumer_lua, "1",
                          q->stream, q->group,        q->consumer != NULL ? q->consumer : "",
                          idle};
    redisReply *r;

    if (deleted != NULL)
        *deleted = 0;
    snprintf(idle, sizeof(idle), "%" PRId64, idle_ms > 0 ? idle_ms : 0);
    r = bg_queue_run(q, "XGROUP DELCONSUMER", (int)BG_ARRAY_LEN(argv), argv, NULL, err);
    if (r == NULL)
        return BG_ERR;
    if (r->type != REDIS_REPLY_INTEGER) {
        bg_set_error(err, "XGROUP DELCONSUMER %s: unexpected reply type %d", q->stream, r->type);
        bg_bus_reply_free(r);
        return BG_ERR;
    }
    if (deleted != NULL)
        *deleted = (size_t)r->integer;
    bg_bus_reply_free(r);
    return BG_OK;
}
