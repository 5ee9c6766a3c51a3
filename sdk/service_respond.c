/* service_respond.c: one held request on a handler thread: checks, handler call, RESPONSE, ack. */
#include "service_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busgate/log.h"

static void response_init(busgate_response *res)
{
    memset(res, 0, sizeof(*res));
    bg_frame_init(&res->frame, BG_FRAME_RESPONSE);
    res->frame.status = 200;
}

static void response_clear(busgate_response *res)
{
    bg_frame_free(&res->frame);
    free(res->body);
    res->body = NULL;
    res->body_len = 0;
}

/* An error answer of our own: a small JSON body that says why. */
static void response_error(busgate_response *res, int status, const char *why)
{
    char body[BG_ERR_LEN + 64];
    size_t n = (size_t)snprintf(body, sizeof(body), "{\"error\":");
    size_t q = bg_json_quote(body + n, sizeof(body) - n - 2, why, strlen(why));

    response_clear(res);
    response_init(res);
    /* Our reasons are short ASCII; should one not fit, stay valid JSON anyway. */
    if (q == (size_t)-1 || q > sizeof(body) - n - 2)
        n = (size_t)snprintf(body, sizeof(body), "{\"error\":\"internal error\"");
    else
        n += q;
    body[n++] = '}';
    busgate_response_set(res, status, "application/json", body, n);
}

static void respond_ack(bgs_worker *w, const bgs_job *job)
{
    char err[BG_ERR_LEN];

    if (bg_queue_ack(w->queue, job->entry_id, err) != BG_OK)
        bg_error("%s/%s: request %s: ack failed, it will be delivered again: %s", w->svc->name,
                 w->svc->instance, job->req.id, err);
}

static int respond_xadd(bgs_worker *w, const bgs_job *job, bg_frame_wire *wire, char *err)
{
    const char *head[] = {"XADD", job->frame.reply_to, "NOMKSTREAM", "MAXLEN",
                          "~",    BGS_RESPONSE_MAXLEN, "*"};
    const char **argv;
    const size_t *lens;
    redisReply *r;
    int argc;

    if (bg_frame_wire_command(wire, head, NULL, 7, &argc, &argv, &lens) != BG_OK) {
        bg_set_error(err, "cannot build the XADD command");
        return BG_ERR;
    }
    r = bg_bus_command_argv(w->bus, argc, argv, lens, err);
    if (r == NULL)
        return BG_ERR;
    if (r->type == REDIS_REPLY_ERROR) {
        bg_set_error(err, "XADD %s: %s", job->frame.reply_to, r->str);
        freeReplyObject(r);
        return BG_ERR;
    }
    /* NOMKSTREAM: nil means the reply stream is gone, and with it the waiting worker. */
    if (r->type == REDIS_REPLY_NIL)
        bg_info("%s/%s: request %s: reply stream %s is gone, response dropped", w->svc->name,
                w->svc->instance, job->req.id, job->frame.reply_to);
    freeReplyObject(r);
    return BG_OK;
}

static int respond_encode(bgs_worker *w, const bgs_job *job, busgate_response *res,
                          bg_frame_wire *wire, char *why)
{
    bg_frame *f = &res->frame;

    snprintf(f->id, sizeof(f->id), "%s", job->req.id);
    snprintf(f->instance, sizeof(f->instance), "%s", w->svc->instance);
    f->ts = bg_wall_ms();
    f->body.ptr = res->body_len > 0 ? res->body : NULL;
    f->body.len = res->body_len;
    return bg_frame_encode(f, wire, why);
}

/* Respond first, ack second: a crash in between means a redelivery, never a lost answer. */
static int respond_send(bgs_worker *w, const bgs_job *job, busgate_response *res)
{
    char why[BG_ERR_LEN], err[BG_ERR_LEN];
    bg_frame_wire wire;
    int rc = BG_ERR;

    if (respond_encode(w, job, res, &wire, why) != BG_OK) {
        bg_error("%s/%s: request %s: handler's response is invalid, answering 500: %s",
                 w->svc->name, w->svc->instance, job->req.id, why);
        bg_frame_wire_free(&wire);
        response_error(res, 500, "invalid response from the service");
        if (respond_encode(w, job, res, &wire, why) != BG_OK) {
            bg_error("%s/%s: request %s: cannot encode a 500: %s", w->svc->name, w->svc->instance,
                     job->req.id, why);
            goto cleanup;
        }
    }
    if (respond_xadd(w, job, &wire, err) != BG_OK) {
        bg_error("%s/%s: request %s: RESPONSE not written, it will be delivered again: %s",
                 w->svc->name, w->svc->instance, job->req.id, err);
        goto cleanup;
    }
    rc = BG_OK;
cleanup:
    bg_frame_wire_free(&wire);
    return rc;
}

static void respond_call(const bgs_job *job, busgate_response *res)
{
    char why[BG_ERR_LEN + 64];
    int rc;

    if (job->ep == NULL) {
        snprintf(why, sizeof(why), "no handler for %s %s", job->req.method, job->req.endpoint);
        response_error(res, 404, why);
        return;
    }
    rc = job->ep->fn(&job->req, res, job->ep->arg);
    if (rc == BG_OK && !res->failed)
        return;
    bg_error("request %s (%s %s): handler failed%s%s: answering 500", job->req.id, job->req.method,
             job->req.path, res->failed ? ": " : "", res->failed ? res->why : "");
    response_error(res, 500, "the handler failed");
}

void bgs_job_run(bgs_worker *w, bgs_job *job)
{
    busgate_service *s = w->svc;
    int64_t late;
    busgate_response res;

    response_init(&res);
    if (atomic_load(&job->req.cancelled)) {
        bg_info("%s/%s: request %s cancelled before it started: skipped", s->name, s->instance,
                job->req.id);
        goto ack;
    }
    late = bg_wall_ms() - job->req.deadline_ms;
    if (late > 0) {
        bg_notice("%s/%s: request %s (%s %s) skipped: deadline passed %" PRId64 " ms ago", s->name,
                  s->instance, job->req.id, job->req.method, job->req.path, late);
        goto ack;
    }
    respond_call(job, &res);
    if (atomic_load(&job->req.cancelled)) {
        bg_info("%s/%s: request %s was cancelled: response dropped", s->name, s->instance,
                job->req.id);
        goto ack;
    }
    if (respond_send(w, job, &res) != BG_OK)
        goto cleanup; /* not acked: it is delivered again after the lease */
ack:
    respond_ack(w, job);
cleanup:
    response_clear(&res);
}
