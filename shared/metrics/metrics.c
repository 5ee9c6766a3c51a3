/* metrics.c: the shared counter area: creation and the lock-free per-slot writes. */
#include "busgate/metrics/metrics.h"
#include "metrics_int.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

const int64_t bg_metrics_bucket_us[BG_METRICS_BUCKETS] = {
    1000,   2500,   5000,    10000,   25000,   50000,    100000,
    250000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000,
};

static void metrics_set_fixed(metrics_slot *s, int idx, const char *name)
{
    memcpy(s->services[idx].name, name, strlen(name) + 1);
    atomic_store_explicit(&s->services[idx].state, ENTRY_READY, memory_order_release);
}

bg_metrics *bg_metrics_create(int max_slots, char *err)
{
    bg_metrics *m;
    size_t size;
    int i;

    if (max_slots < 1 || max_slots > METRICS_MAX_SLOTS) {
        bg_set_error(err, "metrics: max_slots %d out of range 1..%d", max_slots, METRICS_MAX_SLOTS);
        return NULL;
    }
    size = sizeof(bg_metrics) + (size_t)(max_slots + 1) * sizeof(metrics_slot);
    /* Anonymous pages are zeroed: every counter starts at 0 and every entry FREE. */
    m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        bg_set_error(err, "mmap(%zu bytes) for metrics: %s", size, strerror(errno));
        return NULL;
    }
    m->magic = METRICS_MAGIC;
    m->max_slots = max_slots;
    m->map_size = size;
    for (i = 0; i <= max_slots; i++) {
        metrics_set_fixed(&m->slots[i], IDX_OTHER, BG_METRICS_OTHER);
        metrics_set_fixed(&m->slots[i], IDX_NONE, BG_METRICS_NONE);
    }
    return m;
}

void bg_metrics_destroy(bg_metrics *m)
{
    if (m == NULL)
        return;
    munmap(m, m->map_size);
}

int bg_metrics_max_slots(const bg_metrics *m)
{
    return m->max_slots;
}

/* The slot a caller may write, or NULL: a bad slot number is dropped, not fatal. */
static metrics_slot *metrics_slot_at(bg_metrics *m, int slot)
{
    if (m == NULL)
        return NULL;
    if (slot == BG_METRICS_MASTER_SLOT)
        return &m->slots[m->max_slots];
    if (slot < 0 || slot >= m->max_slots)
        return NULL;
    return &m->slots[slot];
}

static uint32_t metrics_hash(const char *s, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    size_t i;

    for (i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

/* Claims a FREE entry for name. BUSY means another writer is filling it in (only
 * possible if two processes ever shared a slot): skip it; a duplicate name is
 * merged when rendering. */
static int metrics_try_claim(metrics_service *e, const char *name, size_t len)
{
    uint32_t expected = ENTRY_FREE;

    if (!atomic_compare_exchange_strong_explicit(&e->state, &expected, ENTRY_BUSY,
                                                 memory_order_acquire, memory_order_relaxed))
        return 0;
    memcpy(e->name, name, len);
    e->name[len] = '\0';
    atomic_store_explicit(&e->state, ENTRY_READY, memory_order_release);
    return 1;
}

static metrics_service *metrics_find_service(metrics_slot *s, const char *name)
{
    size_t len = name ? strlen(name) : 0;
    uint32_t idx, probe, state;
    metrics_service *e;

    if (len == 0)
        return &s->services[IDX_NONE];
    if (len >= BG_METRICS_SERVICE_LEN)
        return &s->services[IDX_OTHER];
    idx = metrics_hash(name, len);
    for (probe = 0; probe < BG_METRICS_MAX_SERVICES; probe++) {
        e = &s->services[(idx + probe) % BG_METRICS_MAX_SERVICES];
        state = atomic_load_explicit(&e->state, memory_order_acquire);
        if (state == ENTRY_FREE && metrics_try_claim(e, name, len))
            return e;
        state = atomic_load_explicit(&e->state, memory_order_acquire);
        if (state == ENTRY_READY && memcmp(e->name, name, len + 1) == 0)
            return e;
    }
    return &s->services[IDX_OTHER];
}

static int metrics_code_class(int status)
{
    if (status < 100 || status > 599)
        return CODE_CLASSES - 1;
    return status / 100 - 1;
}

static int metrics_bucket(int64_t duration_us)
{
    int i;

    for (i = 0; i < BG_METRICS_BUCKETS; i++) {
        if (duration_us <= bg_metrics_bucket_us[i])
            return i;
    }
    return BG_METRICS_BUCKETS;
}

void bg_metrics_request_done(bg_metrics *m, int slot, const char *service, int status,
                             int64_t duration_us)
{
    metrics_slot *s = metrics_slot_at(m, slot);
    metrics_service *e;

    if (s == NULL)
        return;
    if (duration_us < 0)
        duration_us = 0;
    e = metrics_find_service(s, service);
    atomic_fetch_add_explicit(&e->by_class[metrics_code_class(status)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->buckets[metrics_bucket(duration_us)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->duration_sum_us, (uint64_t)duration_us, memory_order_relaxed);
}

void bg_metrics_inflight_add(bg_metrics *m, int slot, int delta)
{
    metrics_slot *s = metrics_slot_at(m, slot);

    if (s != NULL)
        atomic_fetch_add_explicit(&s->inflight, delta, memory_order_relaxed);
}

void bg_metrics_count(bg_metrics *m, int slot, bg_metric_counter c, uint64_t n)
{
    metrics_slot *s = metrics_slot_at(m, slot);

    if (s == NULL || (unsigned)c >= BG_METRIC_COUNTER_COUNT)
        return;
    atomic_fetch_add_explicit(&s->counters[c], n, memory_order_relaxed);
}

void bg_metrics_service_count(bg_metrics *m, int slot, const char *service, bg_metric_svc_counter c,
                              uint64_t n)
{
    metrics_slot *s = metrics_slot_at(m, slot);

    if (s == NULL || (unsigned)c >= BG_METRIC_SVC_COUNTER_COUNT)
        return;
    atomic_fetch_add_explicit(&metrics_find_service(s, service)->counters[c], n,
                              memory_order_relaxed);
}

void bg_metrics_slot_reset(bg_metrics *m, int slot)
{
    metrics_slot *s = metrics_slot_at(m, slot);

    if (s != NULL)
        atomic_store_explicit(&s->inflight, 0, memory_order_relaxed);
}
