/* metrics_int.h: layout of the shared metrics mapping, shared by the writer and the renderer. */
#ifndef BUSGATE_METRICS_INT_H
#define BUSGATE_METRICS_INT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "busgate/metrics/metrics.h"

/* Workers and readers are different processes: the atomics must be real
 * instructions on the shared pages, never a libatomic lock in one process. */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");

#define METRICS_MAGIC 0x42474d31u /* "BGM1" */
#define METRICS_MAX_SLOTS 4096
#define CODE_CLASSES 5
#define ENTRY_FREE 0u
#define ENTRY_BUSY 1u
#define ENTRY_READY 2u
#define IDX_OTHER BG_METRICS_MAX_SERVICES
#define IDX_NONE (BG_METRICS_MAX_SERVICES + 1)
#define SLOT_ENTRIES (BG_METRICS_MAX_SERVICES + 2)

typedef struct metrics_service {
    _Atomic uint32_t state; /* ENTRY_*: the name is readable once READY */
    char name[BG_METRICS_SERVICE_LEN];
    _Atomic uint64_t by_class[CODE_CLASSES];
    _Atomic uint64_t counters[BG_METRIC_SVC_COUNTER_COUNT];
} metrics_service;

/* One writer per slot; the alignment keeps two writers off one cache line. */
typedef struct metrics_slot {
    _Alignas(64) metrics_service services[SLOT_ENTRIES];
    _Atomic uint64_t buckets[BG_METRICS_BUCKETS + 1]; /* not cumulative; last is +Inf */
    _Atomic uint64_t duration_sum_us;
    _Atomic int64_t inflight;
    _Atomic uint64_t counters[BG_METRIC_COUNTER_COUNT];
} metrics_slot;

/* Lives at the start of the mapping; slots follow (no pointers inside). */
struct bg_metrics {
    uint32_t magic;
    int32_t max_slots; /* worker slots; the master slot is slots[max_slots] */
    size_t map_size;
    metrics_slot slots[];
};

#endif
