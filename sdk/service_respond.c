/* service_respond.c: one held request on a handler thread: checks, handler call, encoded answer. */
#include "service_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busgate/core/log.h"

static void response_init(busgate_response *res)
{
    memset(res, 0, sizeof(*res));
    bg_frame_init(&res->frame, BG_FRAME_RESPONSE);
    res->frame.status = 200;
}

static void response_clear(busgate_response *res)
{
    bg_frame_free(&res->frame);
    bg_meta_headers_free(&res->meta);
    free(res->body);
    res->body = NULL;
    res->body_len = res->body_cap = 0;
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

/* What the gateway would answer had it received the response: the client sees the same
 * 502 problem+json whether the SDK or the gateway finds it unusable. */
static void response_problem(busgate_response *res, const char *request_id, const char *detail)
{
    char body[BG_ERR_LEN + 256];
    int n = snprintf(body, sizeof(body),
                     "{\"type\":\"about:blank\",\"title\":\"Bad Gateway\",\"status\":502,"
                     "\"detail\":\"%s\",\"requestId\":\"%s\"}",
                     detail, request_id);

    response_clear(res);
    response_init(res);
    busgate_response_set(res, 502, "application/problem+json", body,
                         n > 0 && (size_t)n < sizeof(body) ? (size_t)n : 0);
}

static int respond_encode(bgs_worker *w, bgs_job *job, char *why)
{
    busgate_response *res = &job->res;
    bg_frame *f = &res->frame;

    snprintf(f->id, sizeof(f->id), "%s", job->req.id);
    snprintf(f->instance, sizeof(f->instance), "%s", w->svc->instance);
    f->ts = bg_wall_ms();
    f->meta_json = bg_meta_headers_text(&res->meta);
    f->body.ptr = res->body_len > 0 ? res->body : NULL;
    f->body.len = res->body_len;
    return bg_frame_encode(f, &job->wire, why);
}

/* Encodes the answer into job->wire; one that does not encode (the setters checked the
 * rest, so a limit of the frame: meta over 1 MiB) becomes a 502. BG_ERR when not even
 * that encodes: the request is then neither answered nor acked (delivered again). */
static int respond_prepare(bgs_worker *w, bgs_job *job)
{
    char why[BG_ERR_LEN];

    if (respond_encode(w, job, why) == BG_OK)
        return BG_OK;
    bg_error("%s/%s: request %s (%s %s): handler's response cannot be sent as a RESPONSE frame, "
             "answering 502: %s",
             w->svc->name, w->svc->instance, job->req.id, job->req.method, job->req.path, why);
    bg_frame_wire_free(&job->wire);
    response_problem(&job->res, job->req.id, "the service's response cannot be sent over the bus");
    if (respond_encode(w, job, why) == BG_OK)
        return BG_OK;
    bg_error("%s/%s: request %s: cannot encode a 502, it will be delivered again: %s", w->svc->name,
             w->svc->instance, job->req.id, why);
    bg_frame_wire_free(&job->wire);
    return BG_ERR;
}

/* Calls the handler; 1 when it succeeded. A failed one's answer becomes an error, except
 * once it streamed: what the client got cannot be taken back (bgs_stream_finish). */
static int respond_call(const bgs_job *job, busgate_response *res)
{
    char why[BG_ERR_LEN + 64];
    int rc;

    if (job->ep == NULL) {
        snprintf(why, sizeof(why), "no handler for %s %s", job->req.method, job->req.endpoint);
        response_error(res, 404, why);
        return 1;
    }
    rc = job->ep->fn(&job->req, res, job->ep->arg);
    if (rc == BG_OK && !res->failed)
        return 1;
    if (res->stream != BGS_STREAM_NONE && res->stream != BGS_STREAM_BUFFER)
        return 0;
    if (res->too_large) {
        bg_error("request %s (%s %s): response too large for a RESPONSE frame: %s: answering 502",
                 job->req.id, job->req.method, job->req.path, res->why);
        response_problem(res, job->req.id, "the service's response is too large for the bus");
        return 0;
    }
    bg_error("request %s (%s %s): handler failed%s%s: answering 500", job->req.id, job->req.method,
             job->req.path, res->failed ? ": " : "", res->failed ? res->why : "");
    response_error(res, 500, "the handler failed");
    return 0;
}

void bgs_job_clear_answer(bgs_job *job)
{
    if (!job->has_res)
        return;
    bg_frame_wire_free(&job->wire);
    response_clear(&job->res);
    job->has_res = 0;
}

/* The handler thread does no I/O: the pool hands the job to the responder, which writes
 * the answer and then acks, in rounds shared with the other handlers' answers. */
void bgs_job_run(bgs_worker *w, bgs_job *job)
{
    busgate_service *s = w->svc;
    int64_t late;
    int ok;

    response_init(&job->res);
    job->res.worker = w;
    job->res.job = job;
    job->has_res = 1;
    job->outcome = BGS_JOB_ACK;
    /* Late first: the gateway's CANCEL (reason deadline) for it has usually arrived by
     * now, and a cancelled late request is still one nobody handled. */
    late = bg_wall_ms() - job->req.deadline_ms;
    if (late > 0) {
        job->outcome = BGS_JOB_DEAD; /* the responder moves it and logs it */
        return;
    }
    if (atomic_load(&job->req.cancelled)) {
        bg_info("%s/%s: request %s cancelled before it started: skipped", s->name, s->instance,
                job->req.id);
        return;
    }
    ok = respond_call(job, &job->res);
    /* A streamed answer went out piece by piece (respond first, ack second holds: every
     * piece was confirmed); the responder only acknowledges it. */
    if (bgs_stream_finish(w, job, ok))
        return;
    if (atomic_load(&job->req.cancelled)) {
        bg_info("%s/%s: request %s was cancelled: response dropped", s->name, s->instance,
                job->req.id);
        return;
    }
    job->outcome = respond_prepare(w, job) == BG_OK ? BGS_JOB_ANSWER : BGS_JOB_DROP;
}
