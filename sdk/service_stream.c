/* service_stream.c: streamed responses (busgate_response_begin/write/end): the head and each
 * piece written by the handler thread on its own connection, in order, as they are produced;
 * or, for a gateway that did not announce "stream", the pieces collected into one body. */
#include "service_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busgate/core/log.h"

/* One frame to the request's reply stream. NOMKSTREAM: a reply stream that is gone means
 * its gateway worker is gone. MAXLEN only on the RESPONSE: pieces are not trimmed by their
 * writer, since a gateway may leave pieces of a slow client on the stream to fetch later;
 * it trims what it consumed (docs/protocol.md section 9). BG_ERR (why set) when not written. */
static int stream_xadd(busgate_response *res, const bg_frame *f, char *why)
{
    const char *key = res->job->frame.reply_to;
    const char *head_response[] = {"XADD", key, "NOMKSTREAM", "MAXLEN", "~", BGS_RESPONSE_MAXLEN,
                                   "*"};
    const char *head_piece[] = {"XADD", key, "NOMKSTREAM", "*"};
    int is_response = f->type == BG_FRAME_RESPONSE;
    const char **argv;
    const size_t *lens;
    bg_frame_wire w;
    redisReply *reply = NULL;
    int argc, rc = BG_ERR;

    if (bg_frame_encode(f, &w, why) != BG_OK ||
        bg_frame_wire_command(&w, is_response ? head_response : head_piece, NULL,
                              is_response ? 7 : 4, &argc, &argv, &lens) != BG_OK)
        goto cleanup;
    reply = bg_bus_command_argv(res->worker->stream_bus, argc, argv, lens, why);
    if (reply == NULL)
        goto cleanup;
    if (reply->type == REDIS_REPLY_ERROR)
        bg_set_error(why, "XADD %s: %s", res->job->frame.reply_to, reply->str);
    else if (reply->type == REDIS_REPLY_NIL)
        bg_set_error(why, "reply stream %s is gone", res->job->frame.reply_to);
    else
        rc = BG_OK;
cleanup:
    bg_bus_reply_free(reply);
    bg_frame_wire_free(&w);
    return rc;
}

static void stream_broken(busgate_response *res, const char *why)
{
    const busgate_service *s = res->worker->svc;

    bg_warn("%s/%s: request %s: stream stopped after %lld piece(s): %s", s->name, s->instance,
            res->job->req.id, (long long)res->seq, why);
    res->stream = BGS_STREAM_BROKEN;
}

/* One RESPONSE_CHUNK; reason non-NULL marks a stream broken off (with final). */
static int stream_piece(busgate_response *res, const void *data, size_t len, int final,
                        const char *reason)
{
    char why[BG_ERR_LEN];
    bg_frame f;
    int rc;

    bg_frame_init(&f, BG_FRAME_RESPONSE_CHUNK);
    snprintf(f.id, sizeof(f.id), "%s", res->job->req.id);
    snprintf(f.instance, sizeof(f.instance), "%s", res->worker->svc->instance);
    if (reason != NULL)
        snprintf(f.reason, sizeof(f.reason), "%s", reason);
    f.ts = bg_wall_ms();
    f.seq = res->seq + 1;
    f.final = final;
    if (len > 0)
        f.body = (bg_bytes){data, len};
    rc = stream_xadd(res, &f, why);
    bg_frame_free(&f);
    if (rc != BG_OK) {
        stream_broken(res, why);
        return BG_ERR;
    }
    res->seq++;
    return BG_OK;
}

static int stream_open_bus(busgate_response *res, char *why)
{
    bgs_worker *w = res->worker;

    if (w->stream_bus != NULL)
        return BG_OK;
    w->stream_bus = bgs_bus_open_once(w->svc, "stream", why);
    return w->stream_bus != NULL ? BG_OK : BG_ERR;
}

/* The head: status and headers, stream 1, and a body set before begin as the first bytes. */
static int stream_head(busgate_response *res)
{
    char why[BG_ERR_LEN];
    bg_frame *f = &res->frame;

    if (stream_open_bus(res, why) != BG_OK) {
        /* Nothing was sent yet: the responder, with its own connection and retries, can
         * still deliver the answer whole. */
        bg_warn("%s/%s: request %s: no connection to stream on (%s): answering whole",
                res->worker->svc->name, res->worker->svc->instance, res->job->req.id, why);
        res->stream = BGS_STREAM_BUFFER;
        return BG_OK;
    }
    snprintf(f->id, sizeof(f->id), "%s", res->job->req.id);
    snprintf(f->instance, sizeof(f->instance), "%s", res->worker->svc->instance);
    f->ts = bg_wall_ms();
    f->stream = 1;
    f->meta_json = bg_meta_headers_text(&res->meta);
    f->body = (bg_bytes){res->body_len > 0 ? res->body : NULL, res->body_len};
    if (stream_xadd(res, f, why) != BG_OK) {
        stream_broken(res, why);
        return BG_ERR;
    }
    res->stream = BGS_STREAM_OPEN;
    return BG_OK;
}

int busgate_response_begin(busgate_response *res, int status, const char *content_type)
{
    if (res->stream != BGS_STREAM_NONE || res->job == NULL)
        return BG_ERR; /* twice, or outside a handler call */
    busgate_response_set_status(res, status);
    if (res->failed ||
        (content_type != NULL && busgate_response_add_header(res, "Content-Type", content_type)))
        return BG_ERR;
    if (!bg_frame_has_feature(&res->job->frame, BG_FEATURE_STREAM)) {
        res->stream = BGS_STREAM_BUFFER; /* an older gateway: one whole RESPONSE at the end */
        return BG_OK;
    }
    if (atomic_load(&res->job->req.cancelled)) {
        res->stream = BGS_STREAM_BROKEN;
        return BG_ERR;
    }
    return stream_head(res);
}

/* The fallback: the pieces make up one body, within the RESPONSE frame's limit. */
static int stream_buffer(busgate_response *res, const void *data, size_t len)
{
    size_t cap = res->body_cap ? res->body_cap : 4096;
    char *p;

    if (len > BG_FRAME_BODY_MAX - res->body_len) {
        res->failed = res->too_large = 1;
        bg_set_error(res->why, "streamed body over %d bytes for a gateway that cannot stream",
                     BG_FRAME_BODY_MAX);
        return BG_ERR;
    }
    while (cap < res->body_len + len)
        cap *= 2;
    if (cap != res->body_cap) {
        if ((p = realloc(res->body, cap)) == NULL) {
            res->failed = 1;
            bg_set_error(res->why, "body of %zu bytes: out of memory", res->body_len + len);
            return BG_ERR;
        }
        res->body = p;
        res->body_cap = cap;
    }
    memcpy(res->body + res->body_len, data, len);
    res->body_len += len;
    return BG_OK;
}

int busgate_response_write(busgate_response *res, const void *data, size_t len)
{
    const char *p = data;

    if (res->stream == BGS_STREAM_BUFFER)
        return atomic_load(&res->job->req.cancelled) ? BG_ERR : stream_buffer(res, data, len);
    if (res->stream != BGS_STREAM_OPEN)
        return BG_ERR;
    if (atomic_load(&res->job->req.cancelled)) {
        stream_broken(res, "the request was cancelled");
        return BG_ERR;
    }
    do {
        size_t n = len > BGS_PIECE_MAX ? BGS_PIECE_MAX : len;
        if (stream_piece(res, p, n, 0, NULL) != BG_OK)
            return BG_ERR;
        p += n;
        len -= n;
    } while (len > 0);
    return BG_OK;
}

int busgate_response_end(busgate_response *res)
{
    if (res->stream == BGS_STREAM_BUFFER)
        return BG_OK;
    if (res->stream != BGS_STREAM_OPEN)
        return res->stream == BGS_STREAM_ENDED ? BG_OK : BG_ERR;
    if (atomic_load(&res->job->req.cancelled)) {
        stream_broken(res, "the request was cancelled"); /* nobody waits for the end */
        return BG_ERR;
    }
    if (stream_piece(res, NULL, 0, 1, NULL) != BG_OK)
        return BG_ERR;
    res->stream = BGS_STREAM_ENDED;
    return BG_OK;
}

int busgate_response_streaming(const busgate_response *res)
{
    return res->stream == BGS_STREAM_OPEN || res->stream == BGS_STREAM_ENDED;
}

int bgs_stream_finish(bgs_worker *w, bgs_job *job, int handler_ok)
{
    busgate_response *res = &job->res;

    (void)w;
    if (res->stream == BGS_STREAM_NONE || res->stream == BGS_STREAM_BUFFER)
        return 0;
    if (res->stream != BGS_STREAM_OPEN)
        return 1;
    if (handler_ok) {
        busgate_response_end(res);
        return 1;
    }
    bg_error("request %s (%s %s): handler failed while streaming%s%s: stream broken off",
             job->req.id, job->req.method, job->req.path, res->failed ? ": " : "",
             res->failed ? res->why : "");
    if (stream_piece(res, NULL, 0, 1, "the handler failed") == BG_OK)
        res->stream = BGS_STREAM_BROKEN;
    return 1;
}

void bgs_stream_thread_end(bgs_worker *w)
{
    bg_bus_free(w->stream_bus);
    w->stream_bus = NULL;
}
