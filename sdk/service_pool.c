/* service_pool.c: the handler thread pool and the table of requests this instance holds. */
#include "service_int.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "busgate/core/log.h"

void bgs_job_free(bgs_job *job)
{
    if (job == NULL)
        return;
    bgs_job_clear_answer(job);
    bg_frame_free(&job->frame);
    free(job);
}

int bgs_pool_init(bgs_pool *p, busgate_service *s, char *err)
{
    memset(p, 0, sizeof(*p));
    p->svc = s;
    /* Threads plus one batch read ahead: the reader's round trip overlaps the handlers' work.
     * One more batch of answered jobs waits for the responder's round trip: it does not keep
     * the reader from reading, but bounds what a slow Valkey lets pile up. */
    p->active_max = s->threads + s->cfg.messaging.batch_size;
    p->nslots = p->active_max + s->cfg.messaging.batch_size;
    p->low_water = (s->cfg.messaging.batch_size + 1) / 2;
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
    p->inline_worker.svc = s;
    p->inline_worker.index = p->nworkers;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->idle, NULL);
    pthread_cond_init(&p->answers, NULL);
    p->ready = 1;
    return BG_OK;
}

/* Under p->mu: how many more jobs the reader may take now. */
static int pool_free_locked(const bgs_pool *p)
{
    int active = p->active_max - (p->used - p->answered), total = p->nslots - p->used;

    return active < total ? active : total;
}

/* Wake-ups decided under p->mu and made after unlocking it, so the woken thread does not
 * block at once on the mutex its waker still holds. */
typedef struct pool_wakes {
    int work, idle, answers;
} pool_wakes;

static void pool_wake(bgs_pool *p, const pool_wakes *w)
{
    if (w->work)
        pthread_cond_signal(&p->work);
    if (w->idle)
        pthread_cond_broadcast(&p->idle);
    if (w->answers)
        pthread_cond_signal(&p->answers);
}

/* Under p->mu, after slots were freed: wake the reader once it may read a useful batch
 * (a read per freed slot would cost a round trip and a wake-up per job), and the drain
 * once nothing is held. */
static void pool_wake_reader_locked(const bgs_pool *p, pool_wakes *w)
{
    if ((p->reader_waiting && pool_free_locked(p) >= p->low_water) || p->used == 0)
        w->idle = 1;
}

/* Under p->mu: a handler is done with job; the responder takes it in its next round. */
static void pool_hand_over_locked(bgs_pool *p, bgs_job *job, pool_wakes *w)
{
    job->answered = 1;
    p->answered++;
    job->next = NULL;
    if (p->atail != NULL)
        p->atail->next = job;
    else
        p->ahead = job;
    p->atail = job;
    if (p->responder_waiting)
        w->answers = 1;
    pool_wake_reader_locked(p, w);
}

/* Hands over the job the thread finished (NULL at first) and takes the next one: one
 * lock per job. NULL once the pool is closing and nothing is queued. */
static bgs_job *pool_next(bgs_pool *p, bgs_job *done)
{
    pool_wakes w = {0};
    bgs_job *job;

    pthread_mutex_lock(&p->mu);
    if (done != NULL)
        pool_hand_over_locked(p, done, &w);
    if (p->head == NULL && !p->closing) {
        pool_wake(p, &w); /* before sleeping: the responder must not wait for us */
        memset(&w, 0, sizeof(w));
    }
    while (p->head == NULL && !p->closing)
        pthread_cond_wait(&p->work, &p->mu);
    job = p->head;
    if (job != NULL) {
        p->head = job->next;
        if (p->head == NULL)
            p->tail = NULL;
        job->running = 1;
        /* More work queued: wake one more thread (see pool_enqueue). */
        if (p->head != NULL)
            w.work = 1;
    }
    pthread_mutex_unlock(&p->mu);
    pool_wake(p, &w);
    return job;
}

static void pool_release_locked(bgs_pool *p, bgs_job *job)
{
    for (int i = 0; i < p->nslots; i++) {
        if (p->slots[i] == job) {
            p->slots[i] = NULL;
            p->used--;
            break;
        }
    }
    if (job->answered)
        p->answered--;
    atomic_fetch_sub(&p->svc->inflight, 1);
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

/* Under p->mu: waits for an answer, forever (wait_ms < 0) or up to wait_ms. */
static void pool_wait_answer_locked(bgs_pool *p, int64_t wait_ms)
{
    struct timespec until;

    if (wait_ms > 0)
        deadline_in(&until, wait_ms);
    while (p->ahead == NULL && !p->answers_closing) {
        int rc;
        p->responder_waiting = 1;
        rc = wait_ms < 0 ? pthread_cond_wait(&p->answers, &p->mu)
                         : pthread_cond_timedwait(&p->answers, &p->mu, &until);
        p->responder_waiting = 0;
        if (rc == ETIMEDOUT)
            break;
    }
}

size_t bgs_pool_take_answered(bgs_pool *p, bgs_job *const *release, size_t nrelease, bgs_job **out,
                              size_t max, int64_t wait_ms)
{
    pool_wakes w = {0};
    size_t n = 0;

    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < nrelease; i++)
        pool_release_locked(p, release[i]);
    if (nrelease > 0)
        pool_wake_reader_locked(p, &w);
    if (wait_ms != 0 && p->ahead == NULL && !p->answers_closing) {
        pool_wake(p, &w); /* before sleeping */
        memset(&w, 0, sizeof(w));
        pool_wait_answer_locked(p, wait_ms);
    }
    while (p->ahead != NULL && n < max) {
        out[n++] = p->ahead;
        p->ahead = p->ahead->next;
    }
    if (p->ahead == NULL)
        p->atail = NULL;
    pthread_mutex_unlock(&p->mu);
    pool_wake(p, &w);
    for (size_t i = 0; i < nrelease; i++)
        bgs_job_free(release[i]);
    return n;
}

void bgs_pool_close_answers(bgs_pool *p)
{
    if (!p->ready)
        return;
    pthread_mutex_lock(&p->mu);
    p->answers_closing = 1;
    pthread_cond_broadcast(&p->answers);
    pthread_mutex_unlock(&p->mu);
}

static void *pool_main(void *arg)
{
    bgs_worker *w = arg;
    bgs_pool *p = &w->svc->pool;
    bgs_job *job;
    sigset_t pipe;

    /* Handlers are the application's code and never write to Valkey: they get SIGPIPE
     * back (blocked by busgate_service_run for the SDK's own writes), so a program they
     * run does not inherit a blocked SIGPIPE. */
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_UNBLOCK, &pipe, NULL);
    job = pool_next(p, NULL);
    /* Each job goes to the responder, which releases it once its answer is written. */
    while (job != NULL) {
        bgs_job_run(w, job);
        job = pool_next(p, job);
    }
    bgs_stream_thread_end(w);
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
    n = pool_free_locked(p);
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

int bgs_pool_wait_slot(bgs_pool *p, int64_t ms)
{
    struct timespec until;
    int n;

    deadline_in(&until, ms);
    pthread_mutex_lock(&p->mu);
    if (pool_free_locked(p) < p->low_water) {
        p->reader_waiting = 1;
        pthread_cond_timedwait(&p->idle, &p->mu, &until);
        p->reader_waiting = 0;
    }
    n = pool_free_locked(p);
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

static void pool_enqueue(bgs_pool *p, bgs_job *job, pool_wakes *w)
{
    for (int i = 0; i < p->nslots; i++) {
        if (p->slots[i] == NULL) {
            p->slots[i] = job;
            break;
        }
    }
    p->used++;
    job->next = NULL;
    if (job->run_inline) {
        job->running = 1; /* the reader runs it right after this call */
        return;
    }
    /* Waking a thread costs more than a short handler: wake one when the queue stops
     * being empty, and let each thread that takes a job wake the next while work is left.
     * A thread only sleeps on an empty queue, so no job waits for a wake-up that was lost;
     * a busy pool finishes a batch with fewer wake-ups than jobs. */
    if (p->tail != NULL) {
        p->tail->next = job;
    } else {
        p->head = job;
        w->work = 1;
    }
    p->tail = job;
}

/* The caller (the reader) only submits what free slots allow. An entry we already hold
 * (reclaimed from ourselves after a missed extension) is not started twice. One lock for
 * the whole batch. */
void bgs_pool_submit_many(bgs_pool *p, bgs_job *const *jobs, size_t n, bgs_submit_rc *rcs)
{
    busgate_service *s = p->svc;
    int64_t now = bg_mono_ms();
    pool_wakes w = {0};

    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < n; i++) {
        bgs_job *job = jobs[i];
        rcs[i] = BGS_SUBMIT_OK;
        if (pool_holds_entry(p, job->entry_id))
            rcs[i] = BGS_SUBMIT_DUPLICATE;
        else if (pool_ring_has(p, job->req.id))
            rcs[i] = BGS_SUBMIT_CANCELLED;
        else if (pool_free_locked(p) <= 0 || p->used >= p->nslots)
            rcs[i] = BGS_SUBMIT_DUPLICATE; /* cannot happen: the reader counts slots */
        if (rcs[i] != BGS_SUBMIT_OK)
            continue;
        job->lease_start_ms = now;
        atomic_fetch_add(&s->inflight, 1);
        pool_enqueue(p, job, &w);
    }
    pthread_mutex_unlock(&p->mu);
    pool_wake(p, &w);
}

void bgs_pool_release_many(bgs_pool *p, bgs_job *const *jobs, size_t n)
{
    pool_wakes w = {0};

    if (n == 0)
        return;
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < n; i++)
        pool_release_locked(p, jobs[i]);
    pool_wake_reader_locked(p, &w);
    pthread_mutex_unlock(&p->mu);
    pool_wake(p, &w);
    for (size_t i = 0; i < n; i++)
        bgs_job_free(jobs[i]);
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
    bgs_stream_thread_end(&p->inline_worker); /* the reader is done with it by now */
}

void bgs_pool_destroy(bgs_pool *p)
{
    bgs_job *job, *next;

    /* Only when start-up failed before the threads ran: nothing was acked. */
    for (job = p->head; job != NULL; job = next) {
        next = job->next;
        bgs_job_free(job);
    }
    for (job = p->ahead; job != NULL; job = next) {
        next = job->next;
        bgs_job_free(job);
    }
    if (p->ready) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->work);
        pthread_cond_destroy(&p->idle);
        pthread_cond_destroy(&p->answers);
    }
    bgs_stream_thread_end(&p->inline_worker);
    free(p->slots);
    free(p->workers);
    memset(p, 0, sizeof(*p));
}
