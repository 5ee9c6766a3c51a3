/* metrics.h: per-worker counters in one shared mapping, summed into Prometheus text by readers. */
#ifndef BUSGATE_METRICS_H
#define BUSGATE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "busgate/common.h"

/*
 * The master creates the area before the first fork (an anonymous MAP_SHARED
 * mapping, so every worker sees the same pages). Slot i is written only by the
 * worker in slot i, with relaxed atomic adds: no locks, no shared cache lines
 * between writers. Readers (/metrics in any worker) sum every slot. A slot keeps
 * its counts when its worker is respawned, so totals never go backwards while
 * the master lives; only the in-flight gauge is reset (bg_metrics_slot_reset).
 *
 * Each slot holds up to BG_METRICS_MAX_SERVICES service names (open addressing
 * on a hash of the name); services past that, or with names longer than
 * BG_METRICS_SERVICE_LEN - 1, are counted as service "_other", and requests that
 * matched no route as service "_none". Service names start with a letter or a
 * digit (docs/protocol.md), so these two labels never collide with a real one.
 */

typedef struct bg_metrics bg_metrics;

#define BG_METRICS_MAX_SERVICES 128
#define BG_METRICS_SERVICE_LEN 65 /* names are 1..64 bytes, plus the NUL */
#define BG_METRICS_OTHER "_other"
#define BG_METRICS_NONE "_none"
/* bg_metrics_count's slot for counters the master writes (worker restarts, its own
 * bus reconnects and dead letters from the control plane). */
#define BG_METRICS_MASTER_SLOT (-1)

/* Plain counters, one per slot, summed on output. */
typedef enum {
    BG_METRIC_BUS_RECONNECTS = 0, /* busgate_bus_reconnects_total */
    BG_METRIC_DEAD_LETTERS,       /* busgate_dead_letters_total */
    BG_METRIC_WORKER_RESTARTS,    /* busgate_worker_restarts_total (master slot) */
    BG_METRIC_RATELIMIT_DENIED,   /* busgate_ratelimit_denied_total (429s) */
    BG_METRIC_RATELIMIT_FAILOPEN, /* busgate_ratelimit_failopen_total (cluster, Valkey down) */
    BG_METRIC_RATELIMIT_EVICTED,  /* busgate_ratelimit_evictions_total (live buckets) */
    BG_METRIC_COUNTER_COUNT
} bg_metric_counter;

/* Per-service counters of requests the gateway refused itself, summed on output. */
typedef enum {
    BG_METRIC_SVC_BACKPRESSURE = 0, /* busgate_backpressure_rejected_total{service} */
    BG_METRIC_SVC_BREAKER,          /* busgate_breaker_rejected_total{service} */
    BG_METRIC_SVC_COUNTER_COUNT
} bg_metric_svc_counter;

/* Maps the area for max_slots worker slots plus the master slot. Call before fork(). */
bg_metrics *bg_metrics_create(int max_slots, char *err);
/* Unmaps it (master at exit; a worker never calls it). */
void bg_metrics_destroy(bg_metrics *m);
int bg_metrics_max_slots(const bg_metrics *m);

/* One finished request: status (1xx..5xx by its first digit; anything outside
 * 100..599 counts as 5xx) for service ("" or NULL when no route matched: counted
 * under BG_METRICS_NONE), and its total time in microseconds for the histogram.
 * An out-of-range slot is ignored (never a crash in the request path). */
void bg_metrics_request_done(bg_metrics *m, int slot, const char *service, int status,
                             int64_t duration_us);
/* In-flight gauge of slot: +1 when a request is dispatched, -1 when it ends. */
void bg_metrics_inflight_add(bg_metrics *m, int slot, int delta);
/* Adds n to counter c of slot (BG_METRICS_MASTER_SLOT allowed). */
void bg_metrics_count(bg_metrics *m, int slot, bg_metric_counter c, uint64_t n);
/* Adds n to service's counter c of slot (service as in bg_metrics_request_done). */
void bg_metrics_service_count(bg_metrics *m, int slot, const char *service, bg_metric_svc_counter c,
                              uint64_t n);
/* Zeroes the gauges of slot: the master calls it when it reaps the slot's worker
 * (a killed worker cannot decrement what it had in flight). Counters stay. */
void bg_metrics_slot_reset(bg_metrics *m, int slot);

/* Renders all slots summed, in the Prometheus text exposition format (0.0.4), with
 * HELP and TYPE lines: busgate_requests_total{service,code_class},
 * busgate_request_duration_seconds (histogram), busgate_inflight_requests,
 * busgate_worker_restarts_total, busgate_bus_reconnects_total,
 * busgate_dead_letters_total, busgate_ratelimit_denied_total,
 * busgate_ratelimit_failopen_total, busgate_ratelimit_evictions_total,
 * busgate_backpressure_rejected_total{service}, busgate_breaker_rejected_total{service}.
 * *out is malloc'ed and NUL-terminated (the caller frees it); *len excludes the NUL. Returns
 * BG_OK, or BG_ERR when out of memory. */
int bg_metrics_render_prometheus(const bg_metrics *m, char **out, size_t *len);

/* Upper bounds of the latency histogram buckets in microseconds, from 1 ms to 30 s
 * (+Inf is implicit); rendered in seconds as the le label. */
#define BG_METRICS_BUCKETS 14
extern const int64_t bg_metrics_bucket_us[BG_METRICS_BUCKETS];

#endif
