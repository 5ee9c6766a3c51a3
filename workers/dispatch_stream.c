/* dispatch_stream.c: streamed responses: the RESPONSE that opens a stream, its pieces in seq
 * order (held on the reply stream while the client is slow), the idle limit and SSE
 * keep-alives, and its end or abort. */
#include "dispatch_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "busgate/core/log.h"
#include "busgate/proto/frame.h"
#include "stream.h"

#define STREAM_KEEPALIVE ": keep-alive\n\n"
#define STREAM_SSE_TYPE "text/event-stream"

void bg_xstream_free(bg_xstream *st)
{
    if (st == NULL)
        return;
    free(st->held);
    free(st);
}

/* The pause allowed between two pieces: the key, else the endpoint's own timeout. */
static int64_t stream_idle_limit(const bg_dispatch *d, const bg_xchg *x)
{
    const bg_config *cfg = d->wk->cfg;

    if (cfg->gateway.stream_idle_timeout_ms > 0)
        return cfg->gateway.stream_idle_timeout_ms;
    return x->match.timeout_ms > 0 ? x->match.timeout_ms : cfg->gateway.request_timeout_ms;
}

/* The service's Content-Length: *clen >= 0, or -1 when it set none; BG_ERR when bad. */
static int stream_content_length(const bg_frame *f, int64_t *clen)
{
    size_t len = 0;
    const char *v = bg_frame_header_get(f, "content-length", &len);
    int64_t n = 0;

    *clen = -1;
    if (v == NULL)
        return BG_OK;
    if (len == 0 || len > 18)
        return BG_ERR;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return BG_ERR;
        n = n * 10 + (v[i] - '0');
    }
    *clen = n;
    return BG_OK;
}

static int stream_is_sse(const bg_frame *f)
{
    size_t len = 0, want = sizeof(STREAM_SSE_TYPE) - 1;
    const char *ct = bg_frame_header_get(f, "content-type", &len);

    return ct != NULL && len >= want && strncasecmp(ct, STREAM_SSE_TYPE, want) == 0;
}

static bg_stream_framing stream_framing(const bg_xchg *x, int status, int64_t clen)
{
    if (x->m == BG_HTTP_M_HEAD || status == 204 || status == 304)
        return BG_SF_NONE;
    if (clen >= 0)
        return BG_SF_SIZED;
    /* HTTP/1.0 has no chunked coding: the body ends where the connection does. */
    return x->version == 10 ? BG_SF_CLOSE : BG_SF_CHUNKED;
}

/* Moves what is still to be written to the front once the written part is the larger, so
 * the buffer of a long stream does not grow with everything it ever carried. */
static void stream_compact(bg_xchg *x)
{
    size_t left = x->out.len - x->out_off;

    if (x->out_off == 0 || x->out_off < left)
        return;
    memmove(x->out.p, x->out.p + x->out_off, left);
    x->out.len = left;
    x->out_off = 0;
}

/* Appends one piece in x's framing; BG_ERR (why set) past a Content-Length or memory. */
static int stream_put(bg_xchg *x, const char *p, size_t len, char *why, size_t wlen)
{
    bg_xstream *st = x->st;

    if (st->framing == BG_SF_SIZED && (int64_t)len > st->left) {
        snprintf(why, wlen, "more body than the Content-Length it announced");
        return BG_ERR;
    }
    stream_compact(x);
    if (bg_resp_stream_piece(&x->out, st->framing, p, len) != BG_OK) {
        snprintf(why, wlen, "out of memory for a piece of %zu bytes", len);
        return BG_ERR;
    }
    if (st->framing == BG_SF_SIZED)
        st->left -= (int64_t)len;
    if (len > 0)
        st->last_out_ms = bg_mono_ms();
    return BG_OK;
}

void bg_dispatch_stream_abort(bg_dispatch *d, bg_xchg *x, const char *why, const char *reason)
{
    bg_warn("request %s: stream from service '%s' instance '%s' broken off after piece %lld: %s",
            x->id, x->match.service, x->instance, (long long)(x->st ? x->st->seq : 0), why);
    bg_dispatch_untrack(d, x);
    if (reason != NULL)
        bg_dispatch_cancel(d, x, reason);
    x->streaming = 0;
    x->stream_abort = 1;
    x->err_close = 1;
    bg_xchg_more(x);
}

static void stream_end(bg_dispatch *d, bg_xchg *x)
{
    bg_xstream *st = x->st;
    char why[96];

    if (st->framing == BG_SF_SIZED && st->left != 0) {
        snprintf(why, sizeof(why), "ended %lld bytes short of its Content-Length",
                 (long long)st->left);
        bg_dispatch_stream_abort(d, x, why, NULL);
        return;
    }
    if (bg_resp_stream_end(&x->out, st->framing) != BG_OK) {
        bg_dispatch_stream_abort(d, x, "out of memory for the last chunk", NULL);
        return;
    }
    bg_dispatch_untrack(d, x);
    x->streaming = 0;
    bg_xchg_more(x); /* may free x */
}

static int stream_keepalive_due(const bg_dispatch *d, const bg_xchg *x, int64_t now)
{
    const bg_xstream *st = x->st;
    int64_t ka = d->wk->cfg->gateway.sse_keepalive_ms;

    return st->sse && ka > 0 && st->framing != BG_SF_NONE && !st->final_seen && st->hcount == 0 &&
           bg_xchg_queued(x) == 0 && now - st->last_out_ms >= ka;
}

/* When the timer must look again: the idle limit, or the next keep-alive. */
static int64_t stream_next_check(const bg_dispatch *d, const bg_xchg *x, int64_t now)
{
    const bg_xstream *st = x->st;
    int64_t ka = d->wk->cfg->gateway.sse_keepalive_ms;
    int64_t next = st->last_piece_ms + st->idle_ms - now;

    if (st->final_seen || st->hcount > 0 || next < 1)
        next = st->idle_ms; /* not idle while pieces wait for the client */
    if (st->sse && ka > 0 && st->last_out_ms + ka - now < next)
        next = st->last_out_ms + ka - now;
    return next < 1 ? 1 : next;
}

static int64_t stream_on_timer(bg_ev *loop, bg_ev_timer *t, void *arg)
{
    bg_xchg *x = arg;
    bg_dispatch *d = x->wk->dispatch;
    bg_xstream *st = x->st;
    int64_t now = bg_mono_ms();
    char why[96];

    (void)loop;
    (void)t;
    if (!st->final_seen && st->hcount == 0 && now - st->last_piece_ms >= st->idle_ms) {
        x->deadline = NULL; /* deleted when we return */
        snprintf(why, sizeof(why), "no piece for %lld ms", (long long)(now - st->last_piece_ms));
        bg_dispatch_stream_abort(d, x, why, "stream_idle");
        return BG_EV_NOMORE;
    }
    if (stream_keepalive_due(d, x, now)) {
        if (stream_put(x, STREAM_KEEPALIVE, sizeof(STREAM_KEEPALIVE) - 1, why, sizeof(why)) ==
            BG_OK)
            bg_xchg_more(x); /* an open stream is never finished by a write: x stays */
        else
            bg_warn("request %s: keep-alive not queued: %s", x->id, why);
    }
    return stream_next_check(d, x, now);
}

/* The deadline timer becomes the stream's idle timer. */
static int stream_arm(bg_dispatch *d, bg_xchg *x, char *why, size_t wlen)
{
    char err[BG_ERR_LEN];

    bg_ev_timer_del(d->wk->loop, x->deadline);
    x->deadline = bg_ev_timer_add(d->wk->loop, stream_next_check(d, x, bg_mono_ms()),
                                  stream_on_timer, x, err);
    if (x->deadline != NULL)
        return BG_OK;
    snprintf(why, wlen, "%s", err);
    return BG_ERR;
}

int bg_dispatch_stream_begin(bg_dispatch *d, bg_xchg *x, const bg_frame *f, char *why, size_t wlen)
{
    bg_resp_ctx rc;
    bg_xstream *st;
    int64_t clen;

    if (stream_content_length(f, &clen) != BG_OK) {
        snprintf(why, wlen, "its Content-Length is not a number");
        return BG_ERR;
    }
    if ((st = calloc(1, sizeof(*st))) == NULL) {
        snprintf(why, wlen, "out of memory");
        return BG_ERR;
    }
    x->st = st;
    if (f->status == 204 || f->status == 304)
        clen = -1; /* no body, and no length either */
    st->framing = stream_framing(x, f->status, clen);
    if (st->framing == BG_SF_CLOSE)
        x->keep_alive = 0;
    st->left = clen;
    st->sse = stream_is_sse(f);
    st->idle_ms = stream_idle_limit(d, x);
    st->last_piece_ms = st->last_out_ms = bg_mono_ms();
    bg_xchg_resp_ctx(x, &rc);
    if (bg_resp_finish_stream(&x->out, &rc, st->framing, clen) != BG_OK) {
        snprintf(why, wlen, "out of memory");
        return BG_ERR;
    }
    if ((f->body.len > 0 && stream_put(x, f->body.ptr, f->body.len, why, wlen) != BG_OK) ||
        stream_arm(d, x, why, wlen) != BG_OK)
        return BG_ERR;
    x->streaming = 1;
    bg_xchg_done(x, f->status);
    return BG_OK;
}

/* "final 1" without decoding the frame: the stream is not idle while its last piece waits. */
static int stream_peek_final(const bg_field *fields, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fields[i].name.len == 5 && memcmp(fields[i].name.ptr, "final", 5) == 0)
            return fields[i].value.len == 1 && fields[i].value.ptr[0] == '1';
    return 0;
}

int bg_dispatch_stream_chunk(bg_dispatch *d, bg_xchg *x, const char *entry_id,
                             const bg_field *fields, size_t n)
{
    bg_xstream *st = x->st;

    if (st == NULL) {
        bg_warn("request %s: RESPONSE_CHUNK %s before a RESPONSE with stream 1: dropped", x->id,
                entry_id);
        return 1;
    }
    st->last_piece_ms = bg_mono_ms();
    if (stream_peek_final(fields, n))
        st->final_seen = 1;
    /* Past the cap, and behind any piece already held: keep order, leave it on the bus. */
    if (st->hcount > 0 || bg_xchg_queued(x) >= d->wk->cfg->gateway.stream_buffer) {
        if (bg_held_push(d, x, entry_id) == BG_OK)
            return 0;
        bg_dispatch_stream_abort(d, x, "too many pieces held for a slow client (or no memory)",
                                 "stream_error");
        return 1;
    }
    bg_dispatch_stream_take(d, x, fields, n);
    return 1;
}

/* Checks a piece against the stream: 1 to write it, 0 to drop it, -1 broken (why set). */
static int stream_check(const bg_xchg *x, const bg_frame *f, char *why, size_t wlen)
{
    const bg_xstream *st = x->st;

    /* A second delivery of the request, handled by another instance, streams too. */
    if (f->instance[0] != '\0' && strcmp(f->instance, x->instance) != 0) {
        bg_warn("request %s: piece %lld from instance '%s', the stream is from '%s': dropped",
                x->id, (long long)f->seq, f->instance, x->instance);
        return 0;
    }
    if (f->seq <= st->seq) {
        bg_warn("request %s: piece %lld repeated (last taken %lld): dropped", x->id,
                (long long)f->seq, (long long)st->seq);
        return 0;
    }
    if (f->seq != st->seq + 1) {
        snprintf(why, wlen, "piece %lld after piece %lld: pieces are missing", (long long)f->seq,
                 (long long)st->seq);
        return -1;
    }
    return 1;
}

void bg_dispatch_stream_take(bg_dispatch *d, bg_xchg *x, const bg_field *fields, size_t n)
{
    char err[BG_ERR_LEN], why[BG_ERR_LEN + 64];
    const char *reason = "stream_error";
    bg_frame f;
    int rc = bg_frame_decode_borrow(fields, n, &f, err);

    if (rc != BG_OK || f.type != BG_FRAME_RESPONSE_CHUNK) {
        snprintf(why, sizeof(why), "invalid RESPONSE_CHUNK: %s", rc != BG_OK ? err : "wrong type");
        goto abort;
    }
    if ((rc = stream_check(x, &f, why, sizeof(why))) <= 0) {
        if (rc < 0)
            goto abort;
        bg_frame_free(&f);
        return;
    }
    x->st->seq = f.seq;
    if (f.final && f.reason[0] != '\0') {
        snprintf(why, sizeof(why), "the service ended it: %s", f.reason);
        reason = NULL;
        goto abort;
    }
    if (stream_put(x, f.body.ptr, f.body.len, why, sizeof(why)) != BG_OK)
        goto abort;
    if (f.final)
        stream_end(d, x);
    else
        bg_xchg_more(x);
    bg_frame_free(&f);
    return;
abort:
    bg_frame_free(&f);
    bg_dispatch_stream_abort(d, x, why, reason);
}

void bg_dispatch_stream_drained(bg_dispatch *d, bg_xchg *x)
{
    if (x->st == NULL || !x->tracked || x->st->hcount == 0)
        return;
    if (bg_xchg_queued(x) < d->wk->cfg->gateway.stream_buffer / 2)
        bg_held_fetch(d, x);
}
