/* service_dead.c: dead letters of requests whose deadline passed before they were handled. */
#include "service_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "busgate/core/log.h"

void bgs_queue_opts(const busgate_service *s, bg_queue_opts *o)
{
    const bg_config *c = &s->cfg;

    bg_queue_opts_init(o);
    o->stream = s->k_requests;
    o->group = s->group;
    o->consumer = s->instance;
    o->lease_ms = c->messaging.lease_duration_ms;
    o->max_deliveries = c->messaging.max_deliveries;
    o->maxlen = c->messaging.stream_maxlen; /* for the dead-letter stream */
    o->start_id = "0";
}

void bgs_dead_late_logged(const busgate_service *s, const bg_queue *q, const busgate_request *req,
                          int64_t late_ms)
{
    bg_notice("%s/%s: request %s (%s %s) moved to %s: deadline passed %" PRId64 " ms ago "
              "(" BGS_DEAD_DEADLINE ")",
              s->name, s->instance, req->id, req->method, req->path, bg_queue_dead_stream(q),
              late_ms);
}

/* The entry as the frame was decoded: the raw fields are gone once the batch is freed. */
static int job_entry(const bgs_job *job, bg_frame_wire *w, bg_field *fields, bg_queue_entry *e,
                     char *err)
{
    size_t i;

    if (bg_frame_encode(&job->frame, w, err) != BG_OK)
        return BG_ERR;
    memset(e, 0, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%s", job->entry_id);
    e->fields = fields;
    e->nfields = (size_t)w->argc / 2;
    e->deliveries = job->req.deliveries;
    for (i = 0; i < e->nfields; i++) {
        fields[i].name = (bg_bytes){w->argv[2 * i], w->argvlen[2 * i]};
        fields[i].value = (bg_bytes){w->argv[2 * i + 1], w->argvlen[2 * i + 1]};
    }
    return BG_OK;
}

int bgs_dead_letter_job(const busgate_service *s, bg_queue *q, const bgs_job *job)
{
    bg_field fields[BG_WIRE_ARGV_MAX / 2];
    char err[BG_ERR_LEN];
    bg_frame_wire w;
    bg_queue_entry e;
    int rc = BG_ERR;

    if (job_entry(job, &w, fields, &e, err) != BG_OK ||
        bg_queue_dead_letter(q, &e, BGS_DEAD_DEADLINE, err) != BG_OK) {
        bg_error("%s/%s: request %s: deadline passed, but cannot dead-letter it (it is "
                 "delivered again after the lease): %s",
                 s->name, s->instance, job->req.id, err);
        goto cleanup;
    }
    bgs_dead_late_logged(s, q, &job->req, bg_wall_ms() - job->req.deadline_ms);
    rc = BG_OK;
cleanup:
    bg_frame_wire_free(&w);
    return rc;
}
