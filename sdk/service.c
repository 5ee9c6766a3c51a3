/* service.c: the service object and busgate_service_run(): start-up, signals, shutdown order. */
#include "service_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include "busgate/core/log.h"

/* Set by the SIGTERM/SIGINT handler; only a flag, everything else happens in the loops.
 * Atomic (lock-free, so signal-safe): every thread of the service reads it. */
static atomic_int bgs_signalled;

static void bgs_on_signal(int sig)
{
    (void)sig;
    atomic_store(&bgs_signalled, 1);
}

int bgs_stopping(const busgate_service *s)
{
    return atomic_load(&s->stop) || (s->handle_signals && atomic_load(&bgs_signalled));
}

void bgs_sleep_ms(const busgate_service *s, int64_t ms)
{
    int64_t end = bg_mono_ms() + ms, left;
    struct timespec ts;

    /* Slices of at most 50 ms, so a stop is noticed soon. */
    while (!bgs_stopping(s) && (left = end - bg_mono_ms()) > 0) {
        if (left > 50)
            left = 50;
        ts.tv_sec = 0;
        ts.tv_nsec = (long)left * 1000000L;
        nanosleep(&ts, NULL);
    }
}

busgate_service *busgate_service_new(const char *name, const char *version, char *err)
{
    busgate_service *s;

    if (bg_name_validate("service", name, err) != BG_OK)
        return NULL;
    if (version == NULL || version[0] == '\0' || strlen(version) > BG_FRAME_SVC_VERSION_MAX) {
        bg_set_error(err, "service version must be 1..%d bytes", BG_FRAME_SVC_VERSION_MAX);
        return NULL;
    }
    for (const char *p = version; *p != '\0'; p++) {
        if (*p < 0x21 || *p > 0x7e) {
            bg_set_error(err, "service version '%s': printable ASCII without spaces only", version);
            return NULL;
        }
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        bg_set_error(err, "service %s: out of memory", name);
        return NULL;
    }
    snprintf(s->name, sizeof(s->name), "%s", name);
    snprintf(s->version, sizeof(s->version), "%s", version);
    bg_config_defaults(&s->cfg);
    s->threads = BUSGATE_SERVICE_DEFAULT_THREADS;
    s->handle_signals = 1;
    bgs_default_instance(s);
    return s;
}

void busgate_service_free(busgate_service *s)
{
    if (s == NULL)
        return;
    bgs_registry_free(s);
    json_decref(s->openapi);
    free(s->endpoints_meta);
    free(s);
}

void busgate_service_stop(busgate_service *s)
{
    atomic_store(&s->stop, 1);
}

void busgate_service_on_ready(busgate_service *s, busgate_ready_fn *fn, void *arg)
{
    s->ready_fn = fn;
    s->ready_arg = arg;
}

const char *busgate_service_name(const busgate_service *s)
{
    return s->name;
}

const char *busgate_service_instance(const busgate_service *s)
{
    return s->instance;
}

const char *busgate_service_version(const busgate_service *s)
{
    return s->version;
}

size_t busgate_service_endpoint_count(const busgate_service *s)
{
    return s->neps;
}

const char *busgate_service_request_stream(const busgate_service *s)
{
    return s->k_requests;
}

long busgate_service_inflight(const busgate_service *s)
{
    return atomic_load(&s->inflight);
}

/* Connections are made before any thread starts: one each for the reader, the
 * control thread and the responder (a bg_bus is not thread-safe). Handler threads
 * have none: the responder writes their answers. */
static int run_connect(busgate_service *s, char *err)
{
    bg_bus *bus;

    if ((s->reader.bus = bgs_bus_open(s, "reader", err)) == NULL)
        return BG_ERR;
    if ((s->control.bus = bgs_bus_open(s, "control", err)) == NULL)
        return BG_ERR;
    if ((bus = bgs_bus_open(s, "responder", err)) == NULL)
        return BG_ERR;
    return bgs_responder_init(&s->responder, s, bus, err);
}

static void run_release(busgate_service *s)
{
    bgs_pool_destroy(&s->pool);
    bgs_responder_destroy(&s->responder);
    bgs_reader_destroy(&s->reader);
    bg_bus_free(s->control.bus);
    s->control.bus = NULL;
}

/* Threads we start must not take SIGTERM/SIGINT: the caller's thread does. */
static int run_threads(busgate_service *s, char *err)
{
    sigset_t block, old;
    int rc = BG_ERR;

    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    if (bgs_responder_start(&s->responder, err) != BG_OK)
        goto cleanup;
    if (bgs_pool_start(&s->pool, err) != BG_OK)
        goto cleanup;
    if (bgs_control_start(&s->control, err) != BG_OK)
        goto cleanup;
    rc = BG_OK;
cleanup:
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

static int run_prepare(busgate_service *s, char *err)
{
    if (s->neps == 0) {
        bg_set_error(err, "service %s: no endpoints registered", s->name);
        return BG_ERR;
    }
    if (!s->instance_set)
        bgs_default_instance(s);
    if (bgs_keys_derive(s, err) != BG_OK || bgs_registry_build_meta(s, err) != BG_OK)
        return BG_ERR;
    snprintf(s->maxlen, sizeof(s->maxlen), "%zu", s->cfg.messaging.stream_maxlen);
    atomic_store(&s->control_stop, 0);
    atomic_store(&s->inflight, 0);
    return bgs_pool_init(&s->pool, s, err);
}

/* Stop order: no new requests, finish held ones (leases kept alive meanwhile),
 * then GOODBYE from the control thread, which kept heartbeats and cancels going. */
static void run_shutdown(busgate_service *s)
{
    bg_notice("%s/%s: stopping: finishing %d held request(s)", s->name, s->instance,
              bgs_pool_held(&s->pool));
    bgs_reader_drain(&s->reader);
    bgs_pool_shutdown(&s->pool);
    bgs_responder_finish(&s->responder);
    bgs_control_finish(&s->control);
    bg_notice("%s/%s: stopped", s->name, s->instance);
}

static int run_serve(busgate_service *s, char *err)
{
    if (run_prepare(s, err) != BG_OK)
        return BG_ERR;
    if (run_connect(s, err) != BG_OK) {
        run_release(s);
        /* A stop while Valkey was still unreachable is a normal end. */
        return bgs_stopping(s) ? BG_OK : BG_ERR;
    }
    if (bgs_reader_init(&s->reader, s, s->reader.bus, err) != BG_OK)
        goto fail;
    if (bgs_control_init(&s->control, s, s->control.bus, err) != BG_OK)
        goto fail;
    if (run_threads(s, err) != BG_OK) {
        atomic_store(&s->stop, 1);
        run_shutdown(s);
        goto fail;
    }
    bg_notice("%s/%s: serving %s with %d handler thread(s)", s->name, s->instance, s->k_requests,
              s->pool.nworkers);
    bgs_reader_loop(&s->reader);
    run_shutdown(s);
    run_release(s);
    return BG_OK;
fail:
    run_release(s);
    return BG_ERR;
}

static void run_signals(busgate_service *s, struct sigaction *old_term, struct sigaction *old_int)
{
    struct sigaction sa;

    if (!s->handle_signals)
        return;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = bgs_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    atomic_store(&bgs_signalled, 0);
    sigaction(SIGTERM, &sa, old_term);
    sigaction(SIGINT, &sa, old_int);
}

/*
 * OpenSSL writes to its socket with write(), not send(MSG_NOSIGNAL): a Valkey that goes
 * away under a TLS connection raises SIGPIPE, whose default action kills the process.
 * Rather than change the process-wide disposition behind the application's back, SIGPIPE
 * is blocked in the thread that runs the service and in every thread it starts (they
 * inherit the mask), so a write to a dead peer fails with EPIPE and the connection is made
 * again. A blocked SIGPIPE stays pending on its thread: the run thread takes it back with
 * sigtimedwait before restoring its mask; the other threads end and discard theirs.
 */
static void run_block_sigpipe(sigset_t *old)
{
    sigset_t pipe;

    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, old);
}

static void run_restore_sigpipe(const sigset_t *old)
{
    const struct timespec now = {0, 0};
    sigset_t pipe;

    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    while (sigtimedwait(&pipe, NULL, &now) == SIGPIPE)
        ;
    pthread_sigmask(SIG_SETMASK, old, NULL);
}

int busgate_service_run(busgate_service *s, char *err)
{
    struct sigaction old_term, old_int;
    sigset_t old_mask;
    int rc, expected = 0;

    if (!atomic_compare_exchange_strong(&s->running, &expected, 1)) {
        bg_set_error(err, "service %s: already running", s->name);
        return BG_ERR;
    }
    memset(&s->pool, 0, sizeof(s->pool));
    memset(&s->control, 0, sizeof(s->control));
    memset(&s->reader, 0, sizeof(s->reader));
    memset(&s->responder, 0, sizeof(s->responder));
    run_signals(s, &old_term, &old_int);
    run_block_sigpipe(&old_mask);
    rc = run_serve(s, err);
    run_restore_sigpipe(&old_mask);
    if (s->handle_signals) {
        sigaction(SIGTERM, &old_term, NULL);
        sigaction(SIGINT, &old_int, NULL);
        atomic_store(&bgs_signalled, 0);
    }
    atomic_store(&s->stop, 0);
    atomic_store(&s->running, 0);
    return rc;
}
