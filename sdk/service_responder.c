/* service_responder.c: the responder thread: handlers' answers written as pipelined XADDs,
 * acks sent as one XACK per round once their RESPONSE is confirmed. */
#include "service_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busgate/core/log.h"

/* Per answer: XADD's head, then its fields (bg_frame_wire_command). */
#define RESPONDER_XADD_HEAD 7

int bgs_responder_init(bgs_responder *r, busgate_service *s, bg_bus *bus, char *err)
{
    bg_queue_opts o;

    memset(r, 0, sizeof(*r));
    r->svc = s;
    r->bus = bus;
    bgs_queue_opts(s, &o);
    if ((r->queue = bg_queue_new(bus, &o, err)) == NULL)
        return BG_ERR;
    r->batch = calloc(BGS_ROUND_MAX, sizeof(*r->batch));
    r->acks = calloc(2 * BGS_ROUND_MAX, sizeof(*r->acks));
    r->release = calloc(BGS_ROUND_MAX, sizeof(*r->release));
    r->write = calloc(BGS_ROUND_MAX, sizeof(*r->write));
    r->written = calloc(BGS_ROUND_MAX, sizeof(*r->written));
    if (r->batch == NULL || r->acks == NULL || r->release == NULL || r->write == NULL ||
        r->written == NULL) {
        bg_set_error(err, "responder: out of memory");
        return BG_ERR;
    }
    return BG_OK;
}

/* A late CANCEL still drops an answer that was not written yet. */
static int responder_should_write(bgs_responder *r, const bgs_job *job)
{
    busgate_service *s = r->svc;

    if (job->outcome != BGS_JOB_ANSWER)
        return 0;
    if (!atomic_load(&job->req.cancelled))
        return 1;
    bg_info("%s/%s: request %s was cancelled: response dropped", s->name, s->instance, job->req.id);
    return 0;
}

static int responder_append_xadd(bgs_responder *r, bgs_job *job, char *err)
{
    const char *head[RESPONDER_XADD_HEAD] = {"XADD", job->frame.reply_to, "NOMKSTREAM", "MAXLEN",
                                             "~",    BGS_RESPONSE_MAXLEN, "*"};
    const char **argv;
    const size_t *lens;
    int argc;

    if (bg_frame_wire_command(&job->wire, head, NULL, RESPONDER_XADD_HEAD, &argc, &argv, &lens) !=
        BG_OK) {
        bg_set_error(err, "cannot build the XADD command");
        return BG_ERR;
    }
    return bg_bus_append_argv(r->bus, argc, argv, lens, err);
}

static int responder_append_xack(bgs_responder *r, char *err)
{
    busgate_service *s = r->svc;
    const char **argv = malloc((r->nacks + 3) * sizeof(*argv));
    int rc;

    if (argv == NULL) {
        bg_set_error(err, "XACK: out of memory");
        return BG_ERR;
    }
    argv[0] = "XACK";
    argv[1] = s->k_requests;
    argv[2] = s->group;
    for (size_t i = 0; i < r->nacks; i++)
        argv[i + 3] = r->acks[i];
    rc = bg_bus_append_argv(r->bus, (int)r->nacks + 3, argv, NULL, err);
    free(argv);
    return rc;
}

/* One XADD's answer: 1 written (or its reply stream is gone: nobody waits), 0 failed. */
static int responder_xadd_result(bgs_responder *r, const bgs_job *job, const redisReply *reply)
{
    busgate_service *s = r->svc;

    if (reply->type == REDIS_REPLY_ERROR) {
        bg_error("%s/%s: request %s: RESPONSE not written, it will be delivered again: XADD %s: %s",
                 s->name, s->instance, job->req.id, job->frame.reply_to, reply->str);
        return 0;
    }
    /* NOMKSTREAM: nil means the reply stream is gone, and with it the waiting worker. */
    if (reply->type == REDIS_REPLY_NIL)
        bg_info("%s/%s: request %s: reply stream %s is gone, response dropped", s->name,
                s->instance, job->req.id, job->frame.reply_to);
    return 1;
}

/* The connection failed mid-exchange: every reply still expected died with it. */
static int responder_lost(bgs_responder *r)
{
    r->read_pending = 0;
    return BG_ERR;
}

/* One pipelined exchange: the XADDs of the batch jobs whose r->write is set, then the
 * XACK of r->acks, then the reader's next read when asked (left pending). Fills r->written
 * with each XADD's result. BG_ERR on a connection failure (nothing known about what was
 * applied). */
static int responder_exchange(bgs_responder *r, size_t n, char *err)
{
    char ignored[BG_ERR_LEN];
    redisReply *reply;
    size_t i;

    r->read_pending = 0;
    for (i = 0; i < n; i++)
        if (r->write[i] && responder_append_xadd(r, r->batch[i], err) != BG_OK)
            goto drain;
    if (r->nacks > 0 && responder_append_xack(r, err) != BG_OK)
        goto drain;
    /* Last, so that a drain never reads it; when it cannot go, the reader reads alone. */
    if (r->read_count > 0 &&
        bg_queue_read_append(r->read_queue, r->read_count, r->read_block_ms, ignored) == BG_OK)
        r->read_pending = 1;
    for (i = 0; i < n; i++) {
        if (!r->write[i])
            continue;
        if (bg_bus_get_reply(r->bus, &reply, err) != BG_OK)
            return responder_lost(r);
        r->written[i] = responder_xadd_result(r, r->batch[i], reply);
        bg_bus_reply_free(reply);
    }
    if (r->nacks == 0)
        return BG_OK;
    if (bg_bus_get_reply(r->bus, &reply, err) != BG_OK)
        return responder_lost(r);
    if (reply->type == REDIS_REPLY_ERROR)
        bg_error("%s/%s: XACK of %zu request(s) failed, they will be delivered again: %s",
                 r->svc->name, r->svc->instance, r->nacks, reply->str);
    bg_bus_reply_free(reply);
    return BG_OK;
drain:
    /* What was appended must be read (or the connection dropped) before the retry. */
    while (bg_bus_get_reply(r->bus, &reply, ignored) == BG_OK)
        bg_bus_reply_free(reply);
    return BG_ERR;
}

/* Tries the exchange twice (a reconnect in between, like bg_bus_command): a retried XADD
 * may write a RESPONSE twice, which the gateway drops as a duplicate. */
static int responder_send(bgs_responder *r, size_t n)
{
    busgate_service *s = r->svc;
    char err[BG_ERR_LEN];

    for (int attempt = 0; attempt < 2; attempt++) {
        memset(r->written, 0, n * sizeof(*r->written));
        if (responder_exchange(r, n, err) == BG_OK)
            return BG_OK;
        bg_warn("%s/%s: writing %zu answer(s) and %zu ack(s): %s%s", s->name, s->instance, n,
                r->nacks, err, attempt == 0 ? " (retrying)" : "");
    }
    bg_error("%s/%s: %zu answer(s) not written and %zu ack(s) not sent: they will be delivered "
             "again after the lease",
             s->name, s->instance, n, r->nacks);
    return BG_ERR;
}

static void responder_ack_later(bgs_responder *r, const bgs_job *job)
{
    memcpy(r->acks[r->nacks++], job->entry_id, BG_QUEUE_ID_LEN);
}

/* Sorts the batch: answers to write, and jobs only to ack (in this round, after the
 * previous round's confirmed ones); a dropped job is left pending (delivered again after
 * the lease). A late one is dead-lettered now, which acks it (rare: it waited for a
 * thread past its deadline). */
static void responder_sort(bgs_responder *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bgs_job *job = r->batch[i];
        r->write[i] = responder_should_write(r, job);
        if (job->outcome == BGS_JOB_DEAD)
            bgs_dead_letter_job(r->svc, r->queue, job);
        else if (!r->write[i] && job->outcome != BGS_JOB_DROP)
            responder_ack_later(r, job);
    }
}

/* One round: this batch's answers out, the previous round's confirmed ones acked. A job
 * is released (its slot freed) once its answer is confirmed or failed: only its entry id
 * waits for the next round's XACK, so acks never hold back the reader. */
static void responder_round(bgs_responder *r, size_t n)
{
    size_t i;

    responder_sort(r, n);
    if (n + r->nacks > 0)
        responder_send(r, n);
    r->nacks = 0; /* acked, or left to redelivery when the ack failed */
    for (i = 0; i < n; i++) {
        if (r->write[i] && r->written[i])
            responder_ack_later(r, r->batch[i]);
        r->release[i] = r->batch[i]; /* a failed answer is not acked: delivered again */
    }
    r->nrelease = n;
}

/* ---- the reader as its own responder (inline handlers) ---- */

void bgs_responder_write_now(bgs_responder *r, bgs_job *const *jobs, size_t n, int read_count)
{
    bgs_pool *p = &r->svc->pool;

    for (size_t at = 0; at < n; at += BGS_ROUND_MAX) {
        size_t k = n - at < BGS_ROUND_MAX ? n - at : BGS_ROUND_MAX;
        memcpy(r->batch, jobs + at, k * sizeof(*jobs));
        /* The last round carries the read. Its own acks wait for the next round, so the
         * read may block only a little: if nothing comes, they go with the next read. */
        r->read_count = at + k == n ? read_count : 0;
        r->read_block_ms = BGS_ACK_LINGER_MS;
        responder_round(r, k);
        r->read_count = 0;
        bgs_pool_release_many(p, r->release, r->nrelease);
        r->nrelease = 0;
    }
}

void bgs_responder_flush_acks(bgs_responder *r)
{
    if (r->nacks == 0)
        return;
    responder_send(r, 0);
    r->nacks = 0; /* acked, or left to redelivery when the ack failed */
}

void bgs_responder_flush_acks_read(bgs_responder *r, int count, int64_t block_ms)
{
    r->read_count = count;
    r->read_block_ms = block_ms;
    bgs_responder_flush_acks(r);
    r->read_count = 0;
}

static void *responder_main(void *arg)
{
    bgs_responder *r = arg;
    bgs_pool *p = &r->svc->pool;
    size_t n;

    for (;;) {
        /* Pending acks wait a little for answers to share their round trip with, then go
         * alone: a busy service writes one pipeline per round, not one per ack too. */
        n = bgs_pool_take_answered(p, r->release, r->nrelease, r->batch, BGS_ROUND_MAX,
                                   r->nacks == 0 ? -1 : BGS_ACK_LINGER_MS);
        r->nrelease = 0;
        if (n == 0 && r->nacks == 0)
            break;
        responder_round(r, n);
    }
    return NULL;
}

int bgs_responder_start(bgs_responder *r, char *err)
{
    int rc = pthread_create(&r->thread, NULL, responder_main, r);

    if (rc != 0) {
        bg_set_error(err, "pthread_create (responder): %s", strerror(rc));
        return BG_ERR;
    }
    r->started = 1;
    return BG_OK;
}

void bgs_responder_finish(bgs_responder *r)
{
    if (!r->started)
        return;
    bgs_pool_close_answers(&r->svc->pool);
    pthread_join(r->thread, NULL);
    r->started = 0;
}

void bgs_responder_destroy(bgs_responder *r)
{
    bg_queue_free(r->queue);
    if (!r->borrowed_bus)
        bg_bus_free(r->bus);
    free(r->batch);
    free(r->acks);
    free(r->release);
    free(r->write);
    free(r->written);
    memset(r, 0, sizeof(*r));
}
