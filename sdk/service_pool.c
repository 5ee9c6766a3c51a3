/* service_pool.c: the handler thread pool and the table of requests this instance holds. */
#include "service_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "busgate/log.h"

void bgs_job_free(bgs_job *job)
{
    if (job == NULL)
        return;
    bg_frame_free(&job->frame);
    free(job);
}

int bgs_pool_init(bgs_pool *p, busgate_service *s, char *err)
{
    memset(p, 0, sizeof(*p));
    p->svc = s;
    /* Threads plus one batch read ahead: the reader's round trip overlaps the handlers' work. */
    p->nslots = s->threads + s->cfg.messaging.batch_size;
    p->slots = calloc((size_t)p->nslots, sizeof(*p->slots));
    p->workers = calloc((size_t)s->threads, sizeof(*p->workers));
    if (p->slots == NULL || p->workers == NULL) {
        bg_set_error(err, "handler pool: out of memory");
        free(p->slots);
        free(p->workers);
        p->slots = NULL;
        p->workers = NULL;
        return BG_ERR;
    }
    p->nworkers = s->threads;
    for (int i = 0; i < p->nworkers; i++) {
        p->workers[i].svc = s;
        p->workers[i].index = i;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->idle, NULL);
    p->ready = 1;
    return BG_OK;
}

/* Takes the next job, or NULL once the pool is closing and nothing is queued. */
static bgs_job *pool_next(bgs_pool *p)
{
    bgs_job *job;

    pthread_mutex_lock(&p->mu);
    while (p->head == NULL && !p->closing)
        pthread_cond_wait(&p->work, &p->mu);
    job = p->head;
    if (job != NULL) {
        p->head = job->next;
        if (p->head == NULL)
            p->tail = NULL;
        job->running = 1;
    }
    pthread_mutex_unlock(&p->mu);
    return job;
}

static void pool_done(bgs_pool *p, bgs_job *job)
{
    busgate_service *s = p->svc;

    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->nslots; i++) {
        if (p->slots[i] == job) {
            p->slots[i] = NULL;
            p->used--;
            break;
        }
    }
    atomic_fetch_sub(&s->inflight, 1);
    pthread_cond_broadcast(&p->idle);
    pthread_mutex_unlock(&p->mu);
    bgs_job_free(job);
}

static void *pool_main(void *arg)
{
    bgs_worker *w = arg;
    bgs_job *job;

    while ((job = pool_next(&w->svc->pool)) != NULL) {
        bgs_job_run(w, job);
        pool_done(&w->svc->pool, job);
    }
    return NULL;
}

int bgs_pool_start(bgs_pool *p, char *err)
{
    int rc;

    for (int i = 0; i < p->nworkers; i++) {
        rc = pthread_create(&p->workers[i].thread, NULL, pool_main, &p->workers[i]);
        if (rc != 0) {
            bg_set_error(err, "pthread_create (handler %d): %s", i, strerror(rc));
            return BG_ERR;
        }
        p->workers[i].started = 1;
    }
    return BG_OK;
}

int bgs_pool_free_slots(bgs_pool *p)
{
    int n;

    pthread_mutex_lock(&p->mu);
    n = p->nslots - p->used;
    pthread_mutex_unlock(&p->mu);
    return n;
}

int bgs_pool_held(bgs_pool *p)
{
    int n;

    if (!p->ready)
        return 0;
    pthread_mutex_lock(&p->mu);
    n = p->used;
    pthread_mutex_unlock(&p->mu);
    return n;
}

static void deadline_in(struct timespec *until, int64_t ms)
{
    /* pthread condvars default to CLOCK_REALTIME; these waits are short, so a
     * clock step costs at most one early or late wake-up. */
    clock_gettime(CLOCK_REALTIME, until);
    until->tv_sec += ms / 1000;
    until->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until->tv_nsec >= 1000000000L) {
        until->tv_sec++;
        until->tv_nsec -= 1000000000L;
    }
}

int bgs_pool_wait_slot(bgs_pool *p, int64_t ms)
{
    struct timespec until;
    int n;

    deadline_in(&until, ms);
    pthread_mutex_lock(&p->mu);
    if (p->used >= p->nslots)
        pthread_cond_timedwait(&p->idle, &p->mu, &until);
    n = p->nslots - p->used;
    pthread_mutex_unlock(&p->mu);
    return n;
}

int bgs_pool_wait_idle(bgs_pool *p, int64_t ms)
{
    struct timespec until;
    int n;

    deadline_in(&until, ms);
    pthread_mutex_lock(&p->mu);
    if (p->used > 0)
        pthread_cond_timedwait(&p->idle, &p->mu, &until);
    n = p->used;
    pthread_mutex_unlock(&p->mu);
    return n;
}

static int pool_ring_has(const bgs_pool *p, const char *id)
{
    for (int i = 0; i < BGS_CANCEL_RING; i++)
        if (p->ring[i][0] != '\0' && strcmp(p->ring[i], id) == 0)
            return 1;
    return 0;
}

static int pool_holds_entry(const bgs_pool *p, const char *entry_id)
{
    for (int i = 0; i < p->nslots; i++)
        if (p->slots[i] != NULL && strcmp(p->slots[i]->entry_id, entry_id) == 0)
            return 1;
    return 0;
}

static void pool_enqueue(bgs_pool *p, bgs_job *job)
{
    for (int i = 0; i < p->nslots; i++) {
        if (p->slots[i] == NULL) {
            p->slots[i] = job;
            break;
        }
    }
    p->used++;
    job->next = NULL;
    if (p->tail != NULL)
        p->tail->next = job;
    else
        p->head = job;
    p->tail = job;
    pthread_cond_signal(&p->work);
}

/* The caller (the reader) only submits when a slot is free. An entry we
 * already hold (reclaimed from ourselves after a missed extension) is not
 * started twice. */
bgs_submit_rc bgs_pool_submit(bgs_pool *p, bgs_job *job)
{
    busgate_service *s = p->svc;
    bgs_submit_rc rc = BGS_SUBMIT_OK;

    pthread_mutex_lock(&p->mu);
    if (pool_holds_entry(p, job->entry_id))
        rc = BGS_SUBMIT_DUPLICATE;
    else if (pool_ring_has(p, job->req.id))
        rc = BGS_SUBMIT_CANCELLED;
    else if (p->used >= p->nslots)
        rc = BGS_SUBMIT_DUPLICATE; /* cannot happen: the reader counts slots */
    if (rc == BGS_SUBMIT_OK) {
        job->lease_start_ms = bg_mono_ms();
        atomic_fetch_add(&s->inflight, 1);
        pool_enqueue(p, job);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int bgs_pool_cancel(bgs_pool *p, const char *request_id)
{
    int found = 0;

    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->nslots; i++) {
        if (p->slots[i] != NULL && strcmp(p->slots[i]->req.id, request_id) == 0) {
            atomic_store(&p->slots[i]->req.cancelled, 1);
            found = 1;
        }
    }
    /* A CANCEL may overtake its REQUEST (read before we took the entry): remember it. */
    if (!found) {
        snprintf(p->ring[p->ring_next], sizeof(p->ring[0]), "%s", request_id);
        p->ring_next = (p->ring_next + 1) % BGS_CANCEL_RING;
    }
    pthread_mutex_unlock(&p->mu);
    return found;
}

size_t bgs_pool_lease_due(bgs_pool *p, int64_t min_age_ms, char (*ids)[BG_QUEUE_ID_LEN], size_t max)
{
    int64_t now = bg_mono_ms();
    size_t n = 0;

    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->nslots && n < max; i++) {
        if (p->slots[i] != NULL && now - p->slots[i]->lease_start_ms >= min_age_ms)
            memcpy(ids[n++], p->slots[i]->entry_id, BG_QUEUE_ID_LEN);
    }
    pthread_mutex_unlock(&p->mu);
    return n;
}

void bgs_pool_lease_renewed(bgs_pool *p, const char *entry_id, int64_t now_ms)
{
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->nslots; i++)
        if (p->slots[i] != NULL && strcmp(p->slots[i]->entry_id, entry_id) == 0)
            p->slots[i]->lease_start_ms = now_ms;
    pthread_mutex_unlock(&p->mu);
}

void bgs_pool_shutdown(bgs_pool *p)
{
    if (!p->ready)
        return;
    pthread_mutex_lock(&p->mu);
    p->closing = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nworkers; i++) {
        if (p->workers[i].started)
            pthread_join(p->workers[i].thread, NULL);
        p->workers[i].started = 0;
    }
}

void bgs_pool_destroy(bgs_pool *p)
{
    bgs_job *job, *next;

    if (p->workers != NULL) {
        for (int i = 0; i < p->nworkers; i++) {
            bg_queue_free(p->workers[i].queue);
            bg_bus_free(p->workers[i].bus);
        }
    }
    /* Only when start-up failed before the threads ran: nothing was acked. */
    for (job = p->head; job != NULL; job = next) {
        next = job->next;
        bgs_job_free(job);
    }
    if (p->ready) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->work);
        pthread_cond_destroy(&p->idle);
    }
    free(p->slots);
    free(p->workers);
    memset(p, 0, sizeof(*p));
}
