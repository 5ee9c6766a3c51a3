/* reply_reader.c: the loop XREAD BLOCK -> hand entries over -> XDEL what was ours -> again,
 * with the reply key's EXPIRE refreshed and old entries trimmed. */
#include "reply_reader.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busgate/bus/bus_async.h"
#include "busgate/proto/frame.h"
#include "busgate/core/log.h"

#define READER_RETRY_MS 500
#define READER_TRIM_EVERY_MS 10000
/* PEXPIRE also tells us when the stream vanished (evicted, deleted): services answer
 * with NOMKSTREAM, so replies are lost until we create it again. Check often. */
#define READER_EXPIRE_EVERY_MS 5000
#define READER_MAX_FIELDS (BG_FRAME_FIELDS_MAX + 1) /* one more lets the decoder say "too many" */
#define READER_ID_MAX 48

struct bg_reply_reader {
    bg_ev *loop;
    bg_abus *bus;
    char *key;
    bg_reply_opts o;
    bg_reply_entry_fn *fn;
    void *arg;
    char last_id[READER_ID_MAX]; /* "" = not positioned yet */
    int ready;
    bg_ev_timer *retry;
    int64_t next_expire_ms, next_trim_ms;
};

static void reader_read(bg_reply_reader *r);
static void reader_position(bg_reply_reader *r);

static int64_t reader_on_retry(bg_ev *loop, bg_ev_timer *t, void *arg)
{
    bg_reply_reader *r = arg;

    (void)loop;
    (void)t;
    r->retry = NULL;
    if (!bg_abus_connected(r->bus))
        return BG_EV_NOMORE; /* the state hook starts over on reconnect */
    if (!r->ready)
        reader_position(r);
    else
        reader_read(r);
    return BG_EV_NOMORE;
}

static void reader_retry_later(bg_reply_reader *r)
{
    char err[BG_ERR_LEN];

    if (r->retry != NULL)
        return;
    r->retry = bg_ev_timer_add(r->loop, READER_RETRY_MS, reader_on_retry, r, err);
    if (r->retry == NULL)
        bg_crit("reply reader %s: cannot schedule a retry: %s", r->key, err);
}

static void reader_on_ignore(bg_abus *b, redisReply *reply, void *arg)
{
    bg_reply_reader *r = arg;

    (void)b;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
        bg_warn("reply stream %s: housekeeping failed: %s", r->key, reply->str);
}

static void reader_on_created(bg_abus *b, redisReply *reply, void *arg);

/* Services answer with XADD NOMKSTREAM (a missing stream means its worker is gone), so
 * the stream must exist: add an entry and delete it again, which leaves an empty stream. */
static int reader_create(bg_reply_reader *r)
{
    return bg_abus_command(r->bus, reader_on_created, r, "XADD %s * created-by busgate-worker",
                           r->key);
}

static void reader_on_expire(bg_abus *b, redisReply *reply, void *arg)
{
    bg_reply_reader *r = arg;

    (void)b;
    if (reply == NULL)
        return;
    if (reply->type == REDIS_REPLY_ERROR)
        bg_warn("reply stream %s: PEXPIRE failed: %s", r->key, reply->str);
    else if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 0) {
        /* Evicted, deleted, or the server restarted empty: make it again. */
        bg_warn("reply stream %s: gone from the server, creating it again", r->key);
        if (reader_create(r) != BG_OK)
            r->next_expire_ms = 0;
    }
}

/* Milliseconds part of a stream id "1700000000000-3". */
static int64_t reader_id_ms(const char *id)
{
    return strtoll(id, NULL, 10);
}

/* EXPIRE so the key dies with us; XTRIM MINID for replies nobody claimed (late ones). */
static void reader_housekeeping(bg_reply_reader *r)
{
    int64_t now = bg_mono_ms(), minms;
    char minid[32];

    if (now >= r->next_expire_ms) {
        if (bg_abus_command(r->bus, reader_on_expire, r, "PEXPIRE %s %lld", r->key,
                            (long long)r->o.ttl_ms) == BG_OK)
            r->next_expire_ms = now + READER_EXPIRE_EVERY_MS;
    }
    minms = reader_id_ms(r->last_id) - r->o.keep_read_ms;
    if (r->o.keep_fn != NULL) {
        int64_t keep = r->o.keep_fn(r->o.hook_arg);
        if (keep >= 0 && keep < minms)
            minms = keep; /* MINID keeps ids >= minms: the oldest held entry survives */
    }
    if (now >= r->next_trim_ms && minms > 0) {
        snprintf(minid, sizeof(minid), "%lld", (long long)minms);
        if (bg_abus_command(r->bus, reader_on_ignore, r, "XTRIM %s MINID ~ %s", r->key, minid) ==
            BG_OK)
            r->next_trim_ms = now + READER_TRIM_EVERY_MS;
    }
}

static const redisReply *reader_entries(const redisReply *reply)
{
    const redisReply *stream;

    /* RESP2: [[key, entries]]; RESP3: {key: entries}. */
    if (reply->type == REDIS_REPLY_MAP && reply->elements >= 2)
        return reply->element[1];
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1)
        return NULL;
    stream = reply->element[0];
    if (stream->type != REDIS_REPLY_ARRAY || stream->elements < 2)
        return NULL;
    return stream->element[1];
}

/* One entry [id, [f, v, ...]]: hand it over; 1 when it was ours. */
static int reader_entry(bg_reply_reader *r, const redisReply *e)
{
    bg_field fields[READER_MAX_FIELDS];
    const redisReply *kv;
    size_t n = 0, i;

    if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
        e->element[0]->type != REDIS_REPLY_STRING)
        return 0;
    kv = e->element[1];
    if (kv->type == REDIS_REPLY_ARRAY) {
        for (i = 0; i + 1 < kv->elements && n < READER_MAX_FIELDS; i += 2, n++) {
            fields[n].name.ptr = kv->element[i]->str;
            fields[n].name.len = kv->element[i]->len;
            fields[n].value.ptr = kv->element[i + 1]->str;
            fields[n].value.len = kv->element[i + 1]->len;
        }
    }
    return r->fn(r->arg, e->element[0]->str, fields, n);
}

static void reader_delete(bg_reply_reader *r, const char **ids, int n)
{
    const char **argv = malloc(sizeof(*argv) * (size_t)(n + 2));
    int i;

    if (argv == NULL) {
        bg_error("reply stream %s: out of memory deleting %d entries", r->key, n);
        return;
    }
    argv[0] = "XDEL";
    argv[1] = r->key;
    for (i = 0; i < n; i++)
        argv[i + 2] = ids[i];
    if (bg_abus_command_argv(r->bus, reader_on_ignore, r, n + 2, argv, NULL) != BG_OK)
        bg_warn("reply stream %s: XDEL not sent (connection down or busy)", r->key);
    free(argv);
}

static void reader_batch(bg_reply_reader *r, const redisReply *entries)
{
    const char **mine = calloc(entries->elements ? entries->elements : 1, sizeof(*mine));
    int nmine = 0;
    size_t i;

    for (i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        if (reader_entry(r, e) && mine != NULL)
            mine[nmine++] = e->element[0]->str;
        if (e->type == REDIS_REPLY_ARRAY && e->elements >= 1 &&
            e->element[0]->type == REDIS_REPLY_STRING && e->element[0]->len < READER_ID_MAX)
            memcpy(r->last_id, e->element[0]->str, e->element[0]->len + 1);
    }
    if (nmine > 0)
        reader_delete(r, mine, nmine);
    free(mine);
}

static void reader_on_xread(bg_abus *b, redisReply *reply, void *arg)
{
    bg_reply_reader *r = arg;
    const redisReply *entries;

    (void)b;
    if (reply == NULL)
        return; /* connection gone: the state hook restarts us */
    if (reply->type == REDIS_REPLY_ERROR) {
        bg_warn("reply stream %s: XREAD failed: %s", r->key, reply->str);
        reader_retry_later(r);
        return;
    }
    entries = reply->type == REDIS_REPLY_NIL ? NULL : reader_entries(reply);
    if (entries != NULL && entries->type == REDIS_REPLY_ARRAY)
        reader_batch(r, entries);
    reader_read(r);
}

static void reader_read(bg_reply_reader *r)
{
    char block[24], count[24];
    int n;
    const char *argv[] = {"XREAD", "BLOCK", block, "COUNT", count, "STREAMS", r->key, r->last_id};

    reader_housekeeping(r);
    snprintf(block, sizeof(block), "%lld", (long long)r->o.block_ms);
    n = r->o.count_fn != NULL ? r->o.count_fn(r->o.hook_arg) : 0;
    snprintf(count, sizeof(count), "%d", n > 0 ? n : r->o.count);
    if (bg_abus_command_argv(r->bus, reader_on_xread, r, (int)BG_ARRAY_LEN(argv), argv, NULL) !=
        BG_OK)
        reader_retry_later(r);
}

/* The id of our own marker entry is where reading starts: older entries answer
 * requests of an earlier process in this slot. */
static void reader_on_created(bg_abus *b, redisReply *reply, void *arg)
{
    bg_reply_reader *r = arg;

    (void)b;
    if (reply == NULL)
        return;
    if (reply->type != REDIS_REPLY_STRING || reply->len >= READER_ID_MAX) {
        bg_warn("reply stream %s: XADD failed: %s", r->key,
                reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        if (!r->ready)
            reader_retry_later(r);
        return;
    }
    if (bg_abus_command(r->bus, reader_on_ignore, r, "XDEL %s %s", r->key, reply->str) != BG_OK)
        bg_warn("reply stream %s: cannot delete the marker entry", r->key);
    if (r->ready)
        return; /* re-created while running: keep reading from where we are */
    if (r->last_id[0] == '\0')
        memcpy(r->last_id, reply->str, reply->len + 1);
    r->ready = 1;
    r->next_expire_ms = 0; /* PEXPIRE right away */
    reader_read(r);
}

static void reader_position(bg_reply_reader *r)
{
    if (reader_create(r) != BG_OK)
        reader_retry_later(r);
}

static void reader_on_state(bg_abus *b, int connected, void *arg)
{
    bg_reply_reader *r = arg;

    if (!connected) {
        r->ready = 0;
        return;
    }
    (void)b;
    /* Also after a reconnect: the server may have restarted without our stream. Reading
     * goes on from last_id, so replies written meanwhile are not lost. */
    reader_position(r);
}

bg_reply_reader *bg_reply_reader_new(bg_ev *loop, const bg_bus_opts *bus, const bg_reply_opts *o,
                                     bg_reply_entry_fn *fn, void *arg, char *err)
{
    bg_reply_reader *r = calloc(1, sizeof(*r));

    if (r == NULL || (r->key = strdup(o->key)) == NULL) {
        bg_set_error(err, "reply reader: out of memory");
        free(r);
        return NULL;
    }
    r->loop = loop;
    r->o = *o;
    r->o.key = r->key;
    r->fn = fn;
    r->arg = arg;
    r->bus = bg_abus_new(loop, bus, err);
    if (r->bus == NULL) {
        free(r->key);
        free(r);
        return NULL;
    }
    bg_abus_set_state_hook(r->bus, reader_on_state, r);
    return r;
}

void bg_reply_reader_free(bg_reply_reader *r)
{
    if (r == NULL)
        return;
    bg_abus_set_state_hook(r->bus, NULL, NULL);
    bg_abus_free(r->bus); /* the pending XREAD's callback runs now with NULL */
    bg_ev_timer_del(r->loop, r->retry);
    free(r->key);
    free(r);
}

int bg_reply_reader_ready(const bg_reply_reader *r)
{
    return r->ready && bg_abus_connected(r->bus);
}

unsigned long bg_reply_reader_reconnects(const bg_reply_reader *r)
{
    return bg_abus_reconnects(r->bus);
}
