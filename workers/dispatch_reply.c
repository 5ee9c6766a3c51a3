/* dispatch_reply.c: a RESPONSE from the reply stream -> checked -> the client's HTTP response. */
#include "dispatch_int.h"

#include <stdio.h>
#include <string.h>

#include "busgate/core/text.h"
#include "busgate/proto/frame.h"
#include "busgate/core/log.h"

static const bg_field *reply_field(const bg_field *fields, size_t n, const char *name)
{
    size_t i, len = strlen(name);

    for (i = 0; i < n; i++)
        if (fields[i].name.len == len && memcmp(fields[i].name.ptr, name, len) == 0)
            return &fields[i];
    return NULL;
}

static int reply_value_ok(const char *p, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
    }
    return 1;
}

/* Headers the gateway writes itself: a service's copy is dropped, not an error. */
static int reply_gateway_owned(const bg_pair *h)
{
    return bg_http_token_eq(h->name, h->name_len, "content-length") ||
           bg_http_token_eq(h->name, h->name_len, "x-request-id");
}

/* A rate limit of the gateway's covered the request and its RateLimit-* lines go out:
 * a service's own would contradict them in the same fields. */
static int reply_ratelimit_owned(const bg_xchg *x, const bg_pair *h)
{
    return x->rl_headers[0] != '\0' &&
           ((h->name_len >= 10 && bg_http_token_eq(h->name, 10, "ratelimit-")) ||
            bg_http_token_eq(h->name, h->name_len, "ratelimit"));
}

/* Hop-by-hop headers describe one connection, and the gateway owns the client's: a
 * service's copy is dropped with a warning (what nginx does with an upstream's), so a
 * framework that adds "Connection: keep-alive" by habit still gets its answer through. */
static void reply_drop_hop_by_hop(const bg_xchg *x, const bg_pair *h)
{
    bg_warn("request %s: service '%s' sent hop-by-hop header '%.*s': dropped", x->id,
            x->match.service, (int)(h->name_len > 64 ? 64 : h->name_len), h->name);
}

/* Copies the service's headers after checking each; BG_ERR (why set) means 502. */
static int reply_headers(const bg_xchg *x, const bg_frame *f, bg_buf *out, char *why, size_t wlen)
{
    size_t i, n = bg_frame_header_count(f);
    bg_pair h;

    for (i = 0; i < n; i++) {
        if (bg_frame_header_at(f, i, &h) != BG_OK)
            return BG_ERR;
        if (!bg_is_token(h.name, h.name_len) || !reply_value_ok(h.value, h.value_len)) {
            snprintf(why, wlen, "invalid header name or value (header %zu)", i);
            return BG_ERR;
        }
        if (bg_http_is_hop_by_hop(NULL, h.name, h.name_len)) {
            reply_drop_hop_by_hop(x, &h);
            continue;
        }
        if (!reply_gateway_owned(&h) && !reply_ratelimit_owned(x, &h) &&
            bg_resp_header(out, h.name, h.name_len, h.value, h.value_len) != BG_OK)
            return BG_ERR;
    }
    return BG_OK;
}

/* Status line, the service's headers and the gateway's own (the replay mark, the rate
 * limit's); 1xx is not a final answer. replayed: the answer comes from an idempotency
 * record. */
static int reply_head(bg_xchg *x, const bg_frame *f, size_t extra, int replayed, char *why,
                      size_t wlen)
{
    if (f->status < 200) {
        snprintf(why, wlen, "status %d is not a final status", f->status);
        return BG_ERR;
    }
    if (bg_buf_reserve(&x->out, 512 + extra) != BG_OK ||
        bg_resp_status(&x->out, f->status) != BG_OK)
        goto oom;
    if (reply_headers(x, f, &x->out, why, wlen) != BG_OK) {
        if (why[0] == '\0')
            goto oom;
        return BG_ERR;
    }
    if (replayed && bg_resp_header(&x->out, "Idempotent-Replayed", 19, "true", 4) != BG_OK)
        goto oom;
    if (x->rl_headers[0] != '\0' && bg_buf_puts(&x->out, x->rl_headers) != BG_OK)
        goto oom;
    return BG_OK;
oom:
    snprintf(why, wlen, "out of memory");
    return BG_ERR;
}

/* 204 and 304 carry no body (RFC 9110 6.4.1). */
static int reply_render(bg_xchg *x, const bg_frame *f, int replayed, char *why, size_t wlen)
{
    bg_resp_ctx rc;
    size_t blen = f->body.ptr != NULL ? f->body.len : 0;
    int rv;

    if (reply_head(x, f, blen, replayed, why, wlen) != BG_OK)
        return BG_ERR;
    bg_xchg_resp_ctx(x, &rc);
    if (f->status == 204 || f->status == 304)
        rv = bg_resp_finish_empty(&x->out, &rc);
    else
        rv = bg_resp_finish_sized(&x->out, &rc, f->body.ptr, blen);
    if (rv != BG_OK)
        snprintf(why, wlen, "out of memory");
    return rv;
}

/* A refused answer is a failure for the breaker and is not kept for Idempotency-Key. */
static void reply_refused(bg_dispatch *d, bg_xchg *x, const char *instance, const char *why)
{
    bg_warn("request %s: RESPONSE from '%s' instance '%s' refused: %s", x->id, x->match.service,
            instance, why);
    bg_dispatch_untrack(d, x);
    bg_dispatch_guard_done(d, x, 502);
    bg_dispatch_idem_settle(d, x, NULL);
    x->out.len = 0;
    bg_xchg_problem(x, 502, "the service sent an invalid response", NULL);
}

/* The head of a stream arrived: the breaker judges the service by it. A streamed body
 * cannot be kept for replays, so an Idempotency-Key's in-flight record stays until it
 * expires (a retry meanwhile gets 409, not a second run). */
static void reply_stream_started(bg_dispatch *d, bg_xchg *x, int status)
{
    bg_dispatch_guard_done(d, x, status);
    if (x->idem == BG_IDEM_OWNED)
        x->idem = BG_IDEM_SETTLED;
}

/* A whole answer ends the request; one with stream 1 opens a stream that stays tracked
 * (its pieces are matched by id) until its last piece. */
static void reply_answer(bg_dispatch *d, bg_xchg *x, const bg_field *fields, size_t n, int replayed)
{
    char err[BG_ERR_LEN], why[160] = "";
    bg_frame f;
    int rc = bg_frame_decode_borrow(fields, n, &f, err);

    if (rc != BG_OK || f.type != BG_FRAME_RESPONSE) {
        bg_frame_free(&f);
        reply_refused(d, x, "?", rc != BG_OK ? err : "not a RESPONSE frame");
        return;
    }
    snprintf(x->instance, sizeof(x->instance), "%s", f.instance);
    x->out.len = 0;
    if (x->idem == BG_IDEM_OWNED) { /* the decoder keeps meta parsed: the record needs its text */
        const bg_field *meta = reply_field(fields, n, "meta");
        if (meta != NULL)
            f.meta_json = (bg_bytes){meta->value.ptr, meta->value.len};
    }
    if (f.stream && !replayed) {
        if (reply_head(x, &f, 0, 0, why, sizeof(why)) != BG_OK ||
            bg_dispatch_stream_begin(d, x, &f, why, sizeof(why)) != BG_OK)
            reply_refused(d, x, f.instance, why);
        else
            reply_stream_started(d, x, f.status);
    } else if (reply_render(x, &f, replayed, why, sizeof(why)) != BG_OK) {
        reply_refused(d, x, f.instance, why);
    } else {
        bg_dispatch_untrack(d, x);
        bg_dispatch_guard_done(d, x, f.status);
        if (!bg_dispatch_idem_settle(d, x, &f))
            bg_xchg_done(x, f.status);
    }
    bg_frame_free(&f);
}

void bg_dispatch_answer_replay(bg_xchg *x, int status, bg_bytes meta, bg_bytes body)
{
    char status_s[8], ts_s[24];
    bg_field fields[8];
    size_t n = 0;

    snprintf(status_s, sizeof(status_s), "%d", status);
    snprintf(ts_s, sizeof(ts_s), "%lld", (long long)bg_wall_ms());
#define REPLAY_FIELD(name, ptr_, len_)                                                             \
    fields[n++] = (bg_field)                                                                       \
    {                                                                                              \
        {name, sizeof(name) - 1},                                                                  \
        {                                                                                          \
            (ptr_), (len_)                                                                         \
        }                                                                                          \
    }
    REPLAY_FIELD("v", "1", 1);
    REPLAY_FIELD("type", "RESPONSE", 8);
    REPLAY_FIELD("id", x->id, strlen(x->id));
    REPLAY_FIELD("ts", ts_s, strlen(ts_s));
    REPLAY_FIELD("instance", "idempotency-replay", 18);
    REPLAY_FIELD("status", status_s, strlen(status_s));
    if (meta.len > 0)
        REPLAY_FIELD("meta", meta.ptr, meta.len);
    if (body.len > 0)
        REPLAY_FIELD("body", body.ptr, body.len);
#undef REPLAY_FIELD
    reply_answer(x->wk->dispatch, x, fields, n, 1);
}

static int reply_is_chunk(const bg_field *fields, size_t n)
{
    const bg_field *t = reply_field(fields, n, "type");

    return t != NULL && t->value.len == 14 && memcmp(t->value.ptr, "RESPONSE_CHUNK", 14) == 0;
}

int bg_dispatch_on_reply(void *arg, const char *entry_id, const bg_field *fields, size_t n)
{
    bg_dispatch *d = arg;
    const bg_field *id = reply_field(fields, n, "id");
    bg_xchg *x;

    if (id == NULL || id->value.len != 32) {
        bg_debug("reply stream: entry %s without a request id of ours, left", entry_id);
        return 0;
    }
    x = bg_inflight_get(&d->table, id->value.ptr, id->value.len);
    if (x == NULL) {
        /* Late (after a 504 or a client that left) or a duplicate: already answered; or a
         * piece of a stream that ended or broke off. */
        bg_debug("reply stream: entry %s for request %.32s dropped (not waiting)", entry_id,
                 id->value.ptr);
        return 0;
    }
    if (reply_is_chunk(fields, n))
        return bg_dispatch_stream_chunk(d, x, entry_id, fields, n);
    if (x->st != NULL) {
        bg_warn("request %s: a second RESPONSE while streaming: dropped", x->id);
        return 1;
    }
    x->t_reply_us = bg_mono_us();
    reply_answer(d, x, fields, n, 0);
    return 1;
}
