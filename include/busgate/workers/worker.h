/* worker.h: entry point of a gateway worker process, called by the supervisor after fork(). */
#ifndef BUSGATE_WORKER_H
#define BUSGATE_WORKER_H

#include <openssl/ssl.h>

#include "busgate/config/config.h"
#include "busgate/routing/route_table.h"

/* Shared counters (include/busgate/metrics.h); a repeated identical typedef is valid C11. */
typedef struct bg_metrics bg_metrics;
typedef struct bg_busview bg_busview;
typedef struct bg_doc bg_doc;
typedef struct bg_ratetable bg_ratetable;
typedef struct bg_breaker bg_breaker;

/* Everything a worker inherits from the master. The worker owns the fds from now on
 * (it closes them when it exits); it never frees cfg, rt or metrics. */
typedef struct bg_worker_ctx {
    const bg_config *cfg;  /* the generation's config (child's copy) */
    bg_rt *rt;             /* shared routing table (worker calls bg_rt_protect_readonly) */
    bg_metrics *metrics;   /* shared counters; this worker writes slot `slot` */
    bg_busview *busview;   /* warm-up and backlogs from the master; workers count REQUESTs in it */
    bg_doc *openapi;       /* aggregated OpenAPI document (worker calls bg_doc_protect_readonly) */
    bg_breaker *breaker;   /* per-service circuit breakers, one for all workers */
    const int *listen_fds; /* non-blocking, close-on-exec */
    const int *listen_tls; /* per listen fd: 1 = TLS ("listen = ... ssl") */
    int nlisten;
    SSL_CTX *tls;        /* the generation's server context (built by the master from [tls],
                            inherited across fork); NULL when no listener is TLS */
    int channel_fd;      /* worker end of the socketpair to the master */
    int slot;            /* 0..max_workers-1, stable across respawns */
    unsigned generation; /* config generation (reloads) */

    /* local-mode rate limit buckets, shared by every worker ([limits] rate_limit) */
    bg_ratetable *ratetable;
} bg_worker_ctx;

/* Exit codes of bg_worker_main (and of the worker process). */
#define BG_WORKER_EXIT_OK 0      /* stopped on request, drained */
#define BG_WORKER_EXIT_RUNTIME 1 /* runtime failure: the master respawns */
#define BG_WORKER_EXIT_CONFIG 2  /* fatal configuration error: the master does not respawn */

/* Reads and checks the [auth] key files of cfg as a worker will (BG_OK without [auth]):
 * busgated -t and a reload refuse a configuration whose keys a worker could not load. */
int bg_worker_auth_check(const bg_config *cfg, char *err);

/* Sets up (bus connections, sandbox) and serves until told to stop over the channel
 * (BG_CHAN_QUIT_GRACEFUL: stop accepting, drain in-flight requests) or until the
 * channel closes (the master died). Returns the exit code. */
int bg_worker_main(const bg_worker_ctx *ctx);

#endif
