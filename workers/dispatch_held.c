/* dispatch_held.c: backpressure for streamed responses. Past stream_buffer bytes queued for a
 * client, its pieces stay on the reply stream: only their entry ids are kept here, the reply
 * reader trims nothing from the oldest one on, and they are fetched again (XRANGE, a few at a
 * time, in order) once the client has read the queue down to half the buffer. */
#include "dispatch_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busgate/core/log.h"
#include "stream.h"

/* Pieces asked for at once: a round trip per HELD_FETCH_BATCH pieces, and at most that many
 * beyond the buffer when they arrive. */
#define HELD_FETCH_BATCH 8
#define HELD_MIN_CAP 64
/* Most pieces one stream may leave on the bus: 1 MiB of ids here (4 GiB of 64 KiB pieces in
 * Valkey). Tiny pieces to a stalled client must not grow the list without bound either. */
#define HELD_MAX 65536
#define HELD_XDEL_BATCH 256
#define HELD_ID_LEN 48
#define HELD_READ_COUNT 16

typedef struct held_fetch {
    bg_dispatch *d;
    char request_id[33];
    bg_held_id id;
} held_fetch;

static int held_parse(const char *s, bg_held_id *out)
{
    char *end;

    out->ms = strtoull(s, &end, 10);
    if (end == s || *end != '-')
        return BG_ERR;
    s = end + 1;
    out->seq = strtoull(s, &end, 10);
    return end != s && *end == '\0' ? BG_OK : BG_ERR;
}

static void held_format(const bg_held_id *id, char *out, size_t len)
{
    snprintf(out, len, "%" PRIu64 "-%" PRIu64, id->ms, id->seq);
}

static void held_link(bg_dispatch *d, bg_xchg *x)
{
    x->st->hprev = NULL;
    x->st->hnext = d->holding;
    if (d->holding != NULL)
        d->holding->st->hprev = x;
    d->holding = x;
    x->st->linked = 1;
}

static void held_unlink(bg_dispatch *d, bg_xchg *x)
{
    bg_xstream *st = x->st;

    if (!st->linked)
        return;
    if (st->hprev != NULL)
        st->hprev->st->hnext = st->hnext;
    else
        d->holding = st->hnext;
    if (st->hnext != NULL)
        st->hnext->st->hprev = st->hprev;
    st->hprev = st->hnext = NULL;
    st->linked = 0;
}

/* Room at the end of the ring-less array: slide down first, grow only when full. */
static int held_room(bg_xstream *st)
{
    size_t cap;
    bg_held_id *p;

    if (st->hhead + st->hcount < st->hcap)
        return BG_OK;
    if (st->hcount >= HELD_MAX)
        return BG_ERR;
    if (st->hhead > 0) {
        memmove(st->held, st->held + st->hhead, st->hcount * sizeof(*st->held));
        st->hhead = 0;
        return BG_OK;
    }
    cap = st->hcap ? st->hcap * 2 : HELD_MIN_CAP;
    if ((p = realloc(st->held, cap * sizeof(*p))) == NULL)
        return BG_ERR;
    st->held = p;
    st->hcap = cap;
    return BG_OK;
}

int bg_held_push(bg_dispatch *d, bg_xchg *x, const char *entry_id)
{
    bg_xstream *st = x->st;
    bg_held_id id;

    if (held_parse(entry_id, &id) != BG_OK || held_room(st) != BG_OK)
        return BG_ERR;
    st->held[st->hhead + st->hcount++] = id;
    if (!st->linked)
        held_link(d, x);
    return BG_OK;
}

static void held_on_ignore(bg_abus *b, redisReply *reply, void *arg)
{
    (void)b;
    (void)arg;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
        bg_warn("reply stream: deleting held pieces failed: %s", reply->str);
}

/* XDEL of ids, which stay valid during the call. */
static void held_delete(bg_dispatch *d, const char **ids, int n)
{
    const char *argv[HELD_XDEL_BATCH + 2] = {"XDEL", d->reply_key};

    for (int i = 0; i < n; i++)
        argv[i + 2] = ids[i];
    if (n > 0 && bg_abus_command_argv(d->bus, held_on_ignore, NULL, n + 2, argv, NULL) != BG_OK)
        bg_warn("reply stream %s: XDEL of %d held pieces not sent", d->reply_key, n);
}

void bg_held_forget(bg_dispatch *d, bg_xchg *x)
{
    bg_xstream *st = x->st;
    char ids[HELD_XDEL_BATCH][HELD_ID_LEN];
    const char *ptrs[HELD_XDEL_BATCH];
    int n = 0;

    for (size_t i = 0; i < st->hcount; i++) {
        held_format(&st->held[st->hhead + i], ids[n], HELD_ID_LEN);
        ptrs[n] = ids[n];
        if (++n == HELD_XDEL_BATCH) {
            held_delete(d, ptrs, n);
            n = 0;
        }
    }
    held_delete(d, ptrs, n);
    free(st->held);
    st->held = NULL;
    st->hhead = st->hcount = st->hcap = 0;
    st->fetching = 0;
    held_unlink(d, x);
}

/* [[id, [f, v, ...]]] -> fields of its one entry; BG_ERR when the entry is not there. */
static int held_fields(const redisReply *reply, bg_field *fields, size_t max, size_t *n)
{
    const redisReply *e, *kv;

    *n = 0;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 1)
        return BG_ERR;
    e = reply->element[0];
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->element[1]->type != REDIS_REPLY_ARRAY)
        return BG_ERR;
    kv = e->element[1];
    for (size_t i = 0; i + 1 < kv->elements && *n < max; i += 2, (*n)++) {
        fields[*n].name = (bg_bytes){kv->element[i]->str, kv->element[i]->len};
        fields[*n].value = (bg_bytes){kv->element[i + 1]->str, kv->element[i + 1]->len};
    }
    return BG_OK;
}

/* One fetched piece: the oldest held one of its stream (replies arrive in order). */
static void held_on_range(bg_abus *b, redisReply *reply, void *arg)
{
    held_fetch *hf = arg;
    bg_dispatch *d = hf->d;
    bg_xchg *x = bg_inflight_get(&d->table, hf->request_id, strlen(hf->request_id));
    bg_field fields[BG_FRAME_FIELDS_MAX + 1];
    char ent[HELD_ID_LEN], why[160];
    const char *del = ent;
    size_t n;

    (void)b;
    held_format(&hf->id, ent, sizeof(ent));
    /* Gone (client left, stream ended or aborted): forgetting it deleted its pieces. */
    if (x == NULL || x->st == NULL || x->st->hcount == 0 ||
        memcmp(&x->st->held[x->st->hhead], &hf->id, sizeof(hf->id)) != 0)
        goto done;
    x->st->fetching--;
    if (held_fields(reply, fields, BG_ARRAY_LEN(fields), &n) != BG_OK) {
        snprintf(why, sizeof(why), "held piece %s %s", ent,
                 reply == NULL ? "not fetched: bus connection lost"
                               : "is gone from the reply stream (trimmed by a MAXLEN?)");
        bg_dispatch_stream_abort(d, x, why, "stream_error");
        goto done;
    }
    x->st->hhead++;
    if (--x->st->hcount == 0) {
        x->st->hhead = 0;
        held_unlink(d, x);
    }
    bg_dispatch_stream_take(d, x, fields, n); /* may end x */
    held_delete(d, &del, 1);
    x = bg_inflight_get(&d->table, hf->request_id, strlen(hf->request_id));
    if (x != NULL && x->st != NULL && x->st->fetching == 0)
        bg_dispatch_stream_drained(d, x);
done:
    free(hf);
}

static int held_request(bg_dispatch *d, bg_xchg *x, const bg_held_id *id)
{
    held_fetch *hf = malloc(sizeof(*hf));
    char ent[HELD_ID_LEN];
    const char *argv[] = {"XRANGE", d->reply_key, ent, ent};

    if (hf == NULL)
        return BG_ERR;
    hf->d = d;
    memcpy(hf->request_id, x->id, sizeof(hf->request_id));
    hf->id = *id;
    held_format(id, ent, sizeof(ent));
    if (bg_abus_command_argv(d->bus, held_on_range, hf, (int)BG_ARRAY_LEN(argv), argv, NULL) !=
        BG_OK) {
        free(hf);
        return BG_ERR;
    }
    return BG_OK;
}

void bg_held_fetch(bg_dispatch *d, bg_xchg *x)
{
    bg_xstream *st = x->st;

    if (st->fetching > 0)
        return;
    for (size_t k = 0; k < st->hcount && k < HELD_FETCH_BATCH; k++) {
        if (held_request(d, x, &st->held[st->hhead + k]) != BG_OK)
            break;
        st->fetching++;
    }
    if (st->fetching == 0)
        bg_dispatch_stream_abort(d, x, "held pieces cannot be fetched: bus down or busy",
                                 "stream_error");
}

int64_t bg_held_oldest_ms(void *arg)
{
    const bg_dispatch *d = arg;
    int64_t oldest = -1;

    for (const bg_xchg *x = d->holding; x != NULL; x = x->st->hnext) {
        int64_t ms;
        if (x->st->hcount == 0)
            continue;
        ms = (int64_t)x->st->held[x->st->hhead].ms;
        if (oldest < 0 || ms < oldest)
            oldest = ms;
    }
    return oldest;
}

int bg_held_read_count(void *arg)
{
    const bg_dispatch *d = arg;

    return d->holding != NULL ? HELD_READ_COUNT : 0; /* 0: the reader's usual count */
}
