/* service_respond.c: one held request on a handler thread: checks, handler call, encoded answer. */
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

static int respond_encode(bgs_worker *w, bgs_job *job, char *why)
{
    busgate_response *res = &job->res;
    bg_frame *f = &res->frame;

    snprintf(f->id, sizeof(f->id), "%s", job->req.id);
    snprintf(f->instance, sizeof(f->instance), "%s", w->svc->instance);
    f->ts = bg_wall_ms();
    f->body.ptr = res->body_len > 0 ? res->body : NULL;
    f->body.len = res->body_len;
    return bg_frame_encode(f, &job->wire, why);
}

/* Encodes the answer into job->wire; an invalid one becomes a 500. BG_ERR when not even
 * that encodes: the request is then neither answered nor acked (delivered again). */
static int respond_prepare(bgs_worker *w, bgs_job *job)
{
    char why[BG_ERR_LEN];

    if (respond_encode(w, job, why) == BG_OK)
        return BG_OK;
    bg_error("%s/%s: request %s: handler's response is invalid, answering 500: %s", w->svc->name,
             w->svc->instance, job->req.id, why);
    bg_frame_wire_free(&job->wire);
    response_error(&job->res, 500, "invalid response from the service");
    if (respond_encode(w, job, why) == BG_OK)
        return BG_OK;
    bg_error("%s/%s: request %s: cannot encode a 500, it will be delivered again: %s", w->svc->name,
             w->svc->instance, job->req.id, why);
    bg_frame_wire_free(&job->wire);
    return BG_ERR;
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

    response_init(&job->res);
    job->has_res = 1;
    job->outcome = BGS_JOB_ACK;
    if (atomic_load(&job->req.cancelled)) {
        bg_info("%s/%s: request %s cancelled before it started: skipped", s->name, s->instance,
                job->req.id);
        return;
    }
    late = bg_wall_ms() - job->req.deadline_ms;
    if (late > 0) {
        bg_notice("%s/%s: request %s (%s %s) skipped: deadline passed %" PRId64 " ms ago", s->name,
                  s->instance, job->req.id, job->req.method, job->req.path, late);
        return;
    }
    respond_call(job, &job->res);
    if (atomic_load(&job->req.cancelled)) {
        bg_info("%s/%s: request %s was cancelled: response dropped", s->name, s->instance,
                job->req.id);
        return;
    }
    job->outcome = respond_prepare(w, job) == BG_OK ? BGS_JOB_ANSWER : BGS_JOB_DROP;
}
