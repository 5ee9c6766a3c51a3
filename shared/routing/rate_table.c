/* rate_table.c: the shared-memory table of rate limit buckets: open addressing, CAS, eviction. */
#include "busgate/routing/rate_table.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

typedef struct rtab_slot {
    _Atomic uint64_t key; /* 0 = free */
    _Atomic int64_t tat;  /* bg_rl_take's TAT; 0 = never used (a full bucket) */
} rtab_slot;

_Static_assert(sizeof(rtab_slot) == BG_RTAB_SLOT_BYTES, "slot size is documented");

struct bg_ratetable {
    size_t mask; /* slots - 1 */
    size_t map_size;
    rtab_slot s[];
};

static size_t rtab_round(size_t n)
{
    size_t p = BG_RTAB_PROBES;

    while (p < n && p < ((size_t)1 << 40))
        p <<= 1;
    return p;
}

bg_ratetable *bg_rtab_create(size_t nslots, char *err)
{
    size_t n = rtab_round(nslots), size = sizeof(bg_ratetable) + n * sizeof(rtab_slot);
    bg_ratetable *t = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (t == MAP_FAILED) {
        bg_set_error(err, "mmap(%zu bytes) for the rate limit table: %s", size, strerror(errno));
        return NULL;
    }
    t->mask = n - 1;
    t->map_size = size;
    return t; /* zeroed: every slot free */
}

void bg_rtab_destroy(bg_ratetable *t)
{
    if (t != NULL)
        munmap(t, t->map_size);
}

size_t bg_rtab_slots(const bg_ratetable *t)
{
    return t->mask + 1;
}

size_t bg_rtab_mapping_size(const bg_ratetable *t)
{
    return t->map_size;
}

/* Takes a token from slot s: a CAS loop on its TAT alone. A denied request stores nothing. */
static void rtab_update(rtab_slot *s, const bg_rl_policy *p, int64_t now, bg_rl_result *r)
{
    int64_t tat = atomic_load_explicit(&s->tat, memory_order_acquire), next;

    for (;;) {
        next = bg_rl_take(p, tat, now, r);
        if (!r->allowed)
            return;
        if (atomic_compare_exchange_weak_explicit(&s->tat, &tat, next, memory_order_acq_rel,
                                                  memory_order_acquire))
            return;
    }
}

/* The slot that holds key, or a free one claimed for it; NULL when every probe is another's. */
static rtab_slot *rtab_find(bg_ratetable *t, uint64_t key)
{
    for (size_t i = 0; i < BG_RTAB_PROBES; i++) {
        rtab_slot *s = &t->s[(key + i) & t->mask];
        uint64_t k = atomic_load_explicit(&s->key, memory_order_acquire);

        /* A failed claim leaves the winner's key in k: ours (another worker was first
         * with the same key) or another one (probe on). */
        if (k == 0 && atomic_compare_exchange_strong_explicit(
                          &s->key, &k, key, memory_order_acq_rel, memory_order_acquire))
            return s;
        if (k == key)
            return s;
    }
    return NULL;
}

/* Every probe holds another key: take over the fullest bucket (lowest TAT). */
static rtab_slot *rtab_evict(bg_ratetable *t, uint64_t key, int64_t now, int *flags)
{
    rtab_slot *victim = NULL;
    int64_t best = INT64_MAX;
    uint64_t k;

    for (size_t i = 0; i < BG_RTAB_PROBES; i++) {
        rtab_slot *s = &t->s[(key + i) & t->mask];
        int64_t tat = atomic_load_explicit(&s->tat, memory_order_relaxed);

        if (tat < best) {
            best = tat;
            victim = s;
        }
    }
    k = atomic_load_explicit(&victim->key, memory_order_acquire);
    if (k != key &&
        !atomic_compare_exchange_strong_explicit(&victim->key, &k, key, memory_order_acq_rel,
                                                 memory_order_acquire) &&
        k != key)
        return NULL; /* lost a race for it: the caller looks again */
    if (best > now) {
        /* Its debt is not ours: start the new key full. A CAS, so a token a worker took
         * for this key meanwhile is kept. */
        atomic_compare_exchange_strong_explicit(&victim->tat, &best, 0, memory_order_acq_rel,
                                                memory_order_relaxed);
        *flags |= BG_RTAB_EVICTED_LIVE;
    }
    return victim;
}

int bg_rtab_take(bg_ratetable *t, uint64_t key, const bg_rl_policy *p, int64_t now_us,
                 bg_rl_result *r)
{
    rtab_slot *s = NULL;
    int flags = 0;

    key = key != 0 ? key : 1;
    /* Bounded: each lost race means another worker made progress on these slots. */
    for (int tries = 0; s == NULL && tries < 4; tries++) {
        s = rtab_find(t, key);
        if (s == NULL)
            s = rtab_evict(t, key, now_us, &flags);
    }
    if (s == NULL) {
        /* Four races lost in a row: serve this one uncounted rather than spin. */
        bg_rl_take(p, 0, now_us, r);
        return flags;
    }
    rtab_update(s, p, now_us, r);
    return flags;
}

size_t bg_rtab_used(const bg_ratetable *t)
{
    size_t n = 0;

    for (size_t i = 0; i <= t->mask; i++)
        n += atomic_load_explicit(&t->s[i].key, memory_order_relaxed) != 0;
    return n;
}
