/* service_requests.c: the request reader: group reads, reclaim, leases, dead letters (also of
 * requests whose deadline passed). */
#include "service_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busgate/core/log.h"

int bgs_reader_init(bgs_reader *r, busgate_service *s, bg_bus *bus, char *err)
{
    const bg_config *c = &s->cfg;
    bg_queue_opts o;

    r->svc = s;
    r->bus = bus;
    bgs_queue_opts(s, &o);
    if ((r->queue = bg_queue_new(bus, &o, err)) == NULL)
        return BG_ERR;
    bg_bus_set_reconnect_hook(bus, bg_queue_reconnect_hook, r->queue);
    if (bgs_responder_init(&r->writer, s, bus, err) != BG_OK)
        return BG_ERR;
    r->writer.borrowed_bus = 1;
    r->writer.read_queue = r->queue;
    /* Reclaim and check leases every quarter lease, so a lease is extended well
     * before it runs out and a dead instance's requests wait at most ~1.25 leases. */
    r->period_ms = c->messaging.lease_duration_ms / 4;
    if (r->period_ms < BGS_BLOCK_MIN_MS)
        r->period_ms = BGS_BLOCK_MIN_MS;
    r->next_reclaim_ms = bg_mono_ms(); /* at start: requests of crashed instances */
    r->next_extend_ms = bg_mono_ms() + r->period_ms;
    /* The group must exist before HELLO (docs/protocol.md section 5). */
    while (bg_queue_ensure_group(r->queue, err) != BG_OK) {
        if (bgs_stopping(s))
            return BG_ERR;
        bg_warn("%s/%s: %s (retrying)", s->name, s->instance, err);
        bgs_sleep_ms(s, BGS_ERROR_PAUSE_MS);
    }
    return BG_OK;
}

void bgs_reader_destroy(bgs_reader *r)
{
    r->writer.borrowed_bus = 1; /* also when init failed half-way */
    bgs_responder_destroy(&r->writer);
    bg_queue_batch_free(&r->batch);
    bg_queue_free(r->queue);
    bg_bus_free(r->bus);
    memset(r, 0, sizeof(*r));
}

static void reader_dead_letter(bgs_reader *r, const bg_queue_entry *e, const char *why)
{
    busgate_service *s = r->svc;
    char err[BG_ERR_LEN];

    if (bg_queue_dead_letter(r->queue, e, why, err) != BG_OK) {
        bg_error("%s/%s: entry %s: cannot dead-letter (%s): %s", s->name, s->instance, e->id, why,
                 err);
        return;
    }
    bg_warn("%s/%s: entry %s moved to %s: %s", s->name, s->instance, e->id,
            bg_queue_dead_stream(r->queue), why);
}

static void reader_ack(bgs_reader *r, const char *entry_id, const char *request_id)
{
    char err[BG_ERR_LEN];

    if (bg_queue_ack(r->queue, entry_id, err) != BG_OK)
        bg_error("%s/%s: request %s: ack failed: %s", r->svc->name, r->svc->instance, request_id,
                 err);
}

/* The handler's view points into the decoded frame, which the job owns. */
static void reader_fill_request(bgs_job *job, const bg_queue_entry *e)
{
    busgate_request *q = &job->req;
    bg_frame *f = &job->frame;

    q->id = f->id;
    q->method = f->method;
    q->path = f->path.ptr;
    q->query = f->query.ptr != NULL ? f->query.ptr : "";
    q->endpoint = f->endpoint.ptr;
    q->gateway = f->gateway;
    q->client = bg_frame_client(f);
    q->body = f->body.len > 0 ? f->body.ptr : NULL;
    q->body_len = f->body.len;
    q->deadline_ms = f->deadline_ms;
    q->deliveries = e->deliveries;
    atomic_init(&q->cancelled, 0);
    q->priv_ = f;
    snprintf(job->entry_id, sizeof(job->entry_id), "%s", e->id);
}

/* Decoded and checked, or NULL when the entry was dead-lettered. */
static bgs_job *reader_decode(bgs_reader *r, const bg_queue_entry *e)
{
    busgate_service *s = r->svc;
    char why[BG_ERR_LEN + 64];
    bgs_job *job = calloc(1, sizeof(*job));

    if (job == NULL) {
        bg_error("%s/%s: entry %s: out of memory; it is delivered again later", s->name,
                 s->instance, e->id);
        return NULL;
    }
    /* Decoding copies, so the job outlives the batch; copies are NUL-terminated. */
    if (bg_frame_decode(e->fields, e->nfields, &job->frame, why) != BG_OK)
        goto dead;
    if (job->frame.type != BG_FRAME_REQUEST) {
        snprintf(why, sizeof(why), "unexpected %s frame on a request stream",
                 bg_frame_type_name(job->frame.type));
        goto dead;
    }
    if (strcmp(job->frame.service, s->name) != 0) {
        snprintf(why, sizeof(why), "REQUEST for service '%s' on the stream of '%s'",
                 job->frame.service, s->name);
        goto dead;
    }
    reader_fill_request(job, e);
    return job;
dead:
    reader_dead_letter(r, e, why);
    bgs_job_free(job);
    return NULL;
}

/* Nobody waits for the answer any more (the gateway answered 504), but the request is kept
 * for operators: moved to the dead-letter stream, which acks it. */
static void reader_dead_late(bgs_reader *r, const bg_queue_entry *e, const bgs_job *job,
                             int64_t late)
{
    busgate_service *s = r->svc;
    char err[BG_ERR_LEN];

    if (bg_queue_dead_letter(r->queue, e, BGS_DEAD_DEADLINE, err) != BG_OK) {
        bg_error("%s/%s: request %s: deadline passed, but cannot dead-letter it: %s", s->name,
                 s->instance, job->req.id, err);
        return;
    }
    bgs_dead_late_logged(s, r->queue, &job->req, late);
}

/* Decoded, checked and matched to its handler; NULL when dead-lettered. */
static bgs_job *reader_prepare(bgs_reader *r, const bg_queue_entry *e)
{
    busgate_service *s = r->svc;
    bgs_job *job = reader_decode(r, e);
    bg_method m;
    int64_t late;

    if (job == NULL)
        return NULL;
    late = bg_wall_ms() - job->req.deadline_ms;
    if (late > 0) {
        reader_dead_late(r, e, job, late);
        bgs_job_free(job);
        return NULL;
    }
    if (bg_method_parse(job->frame.method, strlen(job->frame.method), &m) == BG_OK)
        job->ep = bgs_registry_find(s, m, job->frame.endpoint.ptr, job->frame.endpoint.len);
    /* A 404 of our own never blocks either. */
    job->run_inline = job->ep == NULL || job->ep->run_inline || s->inline_all;
    return job;
}

/* What the pool did not take is acked (cancelled) or left to its other holder. */
static void reader_refused(bgs_reader *r, bgs_job *job, bgs_submit_rc rc)
{
    busgate_service *s = r->svc;

    if (rc == BGS_SUBMIT_CANCELLED) {
        bg_info("%s/%s: request %s was cancelled before it arrived: skipped", s->name, s->instance,
                job->req.id);
        reader_ack(r, job->entry_id, job->req.id);
    } else {
        bg_debug("%s/%s: entry %s is already being handled here", s->name, s->instance,
                 job->entry_id);
    }
    bgs_job_free(job);
}

/* How many requests the round of answers may read for the next batch (0: none). Only when
 * nothing else must run on the connection before that read (timers due, stopping), and
 * only what free slots take now: the inline jobs still hold theirs, so the pool cannot
 * refuse any of the batch, which would leave it pending until the lease runs out. */
static int reader_next_read(bgs_reader *r, int pipeline)
{
    busgate_service *s = r->svc;
    int64_t now = bg_mono_ms();
    int free_slots = bgs_pool_free_slots(&s->pool);
    int count = free_slots < s->cfg.messaging.batch_size ? free_slots : s->cfg.messaging.batch_size;

    if (!pipeline || bgs_stopping(s) || now >= r->next_extend_ms || now >= r->next_reclaim_ms)
        return 0;
    return count >= s->pool.low_water && count > 0 ? count : 0;
}

/* Inline jobs of the batch, run here one after the other (the pool holds them as running,
 * so a CANCEL finds them), then their answers written from here as one pipelined round,
 * which with pipeline set also reads the next batch (r->writer.read_pending). inl[i] is
 * jobs[i]->run_inline read before the batch was submitted: a job the handler threads took
 * may already be answered and freed, so jobs[i] is not read again for it. */
static void reader_run_inline(bgs_reader *r, bgs_job **jobs, size_t n, const bgs_submit_rc *rcs,
                              const unsigned char *inl, int pipeline)
{
    bgs_pool *p = &r->svc->pool;
    size_t ran = 0;

    for (size_t i = 0; i < n; i++) {
        if (rcs[i] != BGS_SUBMIT_OK || !inl[i])
            continue;
        bgs_job_run(&p->inline_worker, jobs[i]);
        jobs[ran++] = jobs[i]; /* the pool owns it now: jobs[] is only our list */
    }
    if (ran > 0)
        bgs_responder_write_now(&r->writer, jobs, ran, reader_next_read(r, pipeline));
    else if (!pipeline)
        bgs_responder_flush_acks(&r->writer); /* no round to ride with */
    /* else the reader's next read carries them (bgs_reader_loop) */
}

/* The whole batch goes to the pool under one lock. pipeline: see reader_run_inline. */
static void reader_take_batch(bgs_reader *r, int pipeline)
{
    size_t n = 0, count = r->batch.count;
    bgs_job **jobs = calloc(count > 0 ? count : 1, sizeof(*jobs));
    bgs_submit_rc *rcs = calloc(count > 0 ? count : 1, sizeof(*rcs));
    unsigned char *inl = calloc(count > 0 ? count : 1, sizeof(*inl));

    if (jobs == NULL || rcs == NULL || inl == NULL) {
        bg_error("%s/%s: out of memory taking %zu request(s); they are delivered again later",
                 r->svc->name, r->svc->instance, count);
        goto cleanup;
    }
    for (size_t i = 0; i < count; i++)
        if ((jobs[n] = reader_prepare(r, &r->batch.entries[i])) != NULL) {
            inl[n] = (unsigned char)jobs[n]->run_inline;
            n++;
        }
    /* From here the handler threads own the jobs they take: see reader_run_inline. */
    bgs_pool_submit_many(&r->svc->pool, jobs, n, rcs);
    for (size_t i = 0; i < n; i++)
        if (rcs[i] != BGS_SUBMIT_OK)
            reader_refused(r, jobs[i], rcs[i]);
    reader_run_inline(r, jobs, n, rcs, inl, pipeline);
cleanup:
    free(jobs);
    free(rcs);
    free(inl);
    bg_queue_batch_free(&r->batch);
}

/* Entries idle past the lease (a dead instance's, or our own after a crash). */
static void reader_reclaim(bgs_reader *r, int count)
{
    busgate_service *s = r->svc;
    char err[BG_ERR_LEN];
    size_t dead = 0;

    if (bg_queue_reclaim(r->queue, count, &r->batch, &dead, err) != BG_OK) {
        bg_warn("%s/%s: reclaim: %s", s->name, s->instance, err);
        return;
    }
    if (dead > 0)
        bg_warn("%s/%s: %zu request(s) moved to %s after %d deliveries", s->name, s->instance, dead,
                bg_queue_dead_stream(r->queue), s->cfg.messaging.max_deliveries);
    if (r->batch.deleted > 0)
        bg_warn("%s/%s: %zu pending request(s) were trimmed from %s before anyone served them",
                s->name, s->instance, r->batch.deleted, s->k_requests);
    if (r->batch.count > 0)
        bg_info("%s/%s: reclaimed %zu request(s) idle past the lease", s->name, s->instance,
                r->batch.count);
    reader_take_batch(r, 0); /* the timers go on with this connection: no read left pending */
}

/* Keep the lease of every request held longer than half of it. */
static void reader_extend(bgs_reader *r)
{
    busgate_service *s = r->svc;
    char(*ids)[BG_QUEUE_ID_LEN] = calloc((size_t)s->pool.nslots, BG_QUEUE_ID_LEN);
    char err[BG_ERR_LEN];
    size_t n;

    if (ids == NULL)
        return;
    n = bgs_pool_lease_due(&s->pool, s->cfg.messaging.lease_duration_ms / 2, ids,
                           (size_t)s->pool.nslots);
    for (size_t i = 0; i < n; i++) {
        int64_t now = bg_mono_ms();
        if (bg_queue_extend(r->queue, ids[i], err) == BG_OK)
            bgs_pool_lease_renewed(&s->pool, ids[i], now);
        else
            bg_warn("%s/%s: entry %s: lease not extended: %s", s->name, s->instance, ids[i], err);
    }
    free(ids);
}

/* Runs the timers that are due; returns ms until the next one. */
static int64_t reader_timers(bgs_reader *r, int reclaim)
{
    int64_t now = bg_mono_ms(), next;
    int free_slots;

    if (now >= r->next_extend_ms) {
        reader_extend(r);
        r->next_extend_ms = now + r->period_ms;
    }
    if (reclaim && now >= r->next_reclaim_ms) {
        /* With every thread busy a reclaim could take nothing: try next period. */
        free_slots = bgs_pool_free_slots(&r->svc->pool);
        if (free_slots > 0)
            reader_reclaim(r, free_slots);
        r->next_reclaim_ms = now + r->period_ms;
    }
    next =
        r->next_extend_ms < r->next_reclaim_ms || !reclaim ? r->next_extend_ms : r->next_reclaim_ms;
    now = bg_mono_ms();
    return next > now ? next - now : 0;
}

static int64_t clamp_block(int64_t ms)
{
    if (ms > BGS_BLOCK_MS)
        return BGS_BLOCK_MS;
    return ms < BGS_BLOCK_MIN_MS ? BGS_BLOCK_MIN_MS : ms;
}

void bgs_reader_loop(bgs_reader *r)
{
    busgate_service *s = r->svc;
    char err[BG_ERR_LEN];
    int free_slots, count;
    int64_t wait;

    for (;;) {
        /* A read that went out with the last round of answers: its reply comes first. */
        if (r->writer.read_pending) {
            r->writer.read_pending = 0;
            if (bg_queue_read_reply(r->queue, &r->batch, err) != BG_OK) {
                bg_warn("%s/%s: reading %s: %s", s->name, s->instance, s->k_requests, err);
                bgs_sleep_ms(s, BGS_ERROR_PAUSE_MS);
                continue;
            }
            reader_take_batch(r, 1);
            continue;
        }
        if (bgs_stopping(s))
            break;
        wait = clamp_block(reader_timers(r, 1));
        /* Read only what a thread can start soon (held requests age toward their lease),
         * and only once half a batch fits: a read per freed slot costs a round trip each. */
        free_slots = bgs_pool_free_slots(&s->pool);
        if (free_slots < s->pool.low_water) {
            bgs_responder_flush_acks(&r->writer); /* an ack must not wait for a slot */
            bgs_pool_wait_slot(&s->pool, wait);
            continue;
        }
        count = free_slots < s->cfg.messaging.batch_size ? free_slots : s->cfg.messaging.batch_size;
        /* Acks waiting for a round go now, with the read behind them in the same write: an
         * ack must not wait for the next request, nor take a round trip of its own. */
        if (r->writer.nacks > 0) {
            bgs_responder_flush_acks_read(&r->writer, count, wait);
            if (r->writer.read_pending)
                continue;
        }
        if (bg_queue_read(r->queue, count, wait, &r->batch, err) != BG_OK) {
            bg_warn("%s/%s: reading %s: %s", s->name, s->instance, s->k_requests, err);
            bgs_sleep_ms(s, BGS_ERROR_PAUSE_MS);
            continue;
        }
        reader_take_batch(r, 1);
    }
    bgs_responder_flush_acks(&r->writer);
}

void bgs_reader_drain(bgs_reader *r)
{
    busgate_service *s = r->svc;

    if (r->queue == NULL || !s->pool.ready)
        return;
    while (bgs_pool_held(&s->pool) > 0)
        bgs_pool_wait_idle(&s->pool, clamp_block(reader_timers(r, 0)));
}
