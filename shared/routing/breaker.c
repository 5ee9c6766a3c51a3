/* breaker.c: the shared table of per-service circuit breakers, one atomic word each. */
#include "busgate/routing/breaker.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

/* Workers in different processes CAS the same word: it must be a real instruction. */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");

#define BRK_NAME_LEN 65 /* service names are 1..64 bytes */

/* The word: state (2 bits), a (10: failures in a row, or probes given), b (7: probe
 * successes), epoch (6: half-open generation), then the time of the last transition in ms
 * since the table was made (39 bits: 17 years). One word, so one CAS moves all of it. */
#define W_A_SHIFT 2
#define W_B_SHIFT 12
#define W_EPOCH_SHIFT 19
#define W_TIME_SHIFT 25
#define W_A_MAX 1023u
#define W_B_MAX 127u
#define W_EPOCH_MASK 63u
#define W_TIME_MAX ((1ull << 39) - 1)

typedef struct brk_entry {
    _Alignas(64) _Atomic uint64_t word; /* one line per entry: workers write it */
    _Atomic uint64_t opens;
    _Atomic int used; /* name is set (for good) */
    char name[BRK_NAME_LEN];
} brk_entry;

struct bg_breaker {
    int64_t base_ms; /* monotonic time the table was made: times are kept from it */
    _Atomic uint64_t changes;
    brk_entry e[BG_BRK_MAX_SERVICES];
};

typedef struct brk_word {
    unsigned state, a, b, epoch;
    int64_t t;
} brk_word;

static brk_word w_get(uint64_t w)
{
    brk_word d = {(unsigned)(w & 3u), (unsigned)(w >> W_A_SHIFT) & W_A_MAX,
                  (unsigned)(w >> W_B_SHIFT) & W_B_MAX,
                  (unsigned)(w >> W_EPOCH_SHIFT) & W_EPOCH_MASK, (int64_t)(w >> W_TIME_SHIFT)};
    return d;
}

static uint64_t w_make(unsigned state, unsigned a, unsigned b, unsigned epoch, int64_t t)
{
    a = a > W_A_MAX ? W_A_MAX : a;
    b = b > W_B_MAX ? W_B_MAX : b;
    return (uint64_t)state | (uint64_t)a << W_A_SHIFT | (uint64_t)b << W_B_SHIFT |
           (uint64_t)(epoch & W_EPOCH_MASK) << W_EPOCH_SHIFT | (uint64_t)t << W_TIME_SHIFT;
}

bg_breaker *bg_brk_create(char *err)
{
    bg_breaker *b =
        mmap(NULL, sizeof(*b), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (b == MAP_FAILED) {
        bg_set_error(err, "mmap(%zu bytes) for the breakers: %s", sizeof(*b), strerror(errno));
        return NULL;
    }
    b->base_ms = bg_mono_ms(); /* zeroed pages: every breaker closed, no entries */
    return b;
}

void bg_brk_destroy(bg_breaker *b)
{
    if (b != NULL)
        munmap(b, sizeof(*b));
}

/* now as the word keeps it: ms since the table was made, within 39 bits. */
static int64_t brk_rel(const bg_breaker *b, int64_t now_ms)
{
    int64_t r = now_ms - b->base_ms;

    return r < 0 ? 0 : (r > (int64_t)W_TIME_MAX ? (int64_t)W_TIME_MAX : r);
}

static uint32_t brk_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* The entry of service, or (create) the free one it goes into; NULL otherwise. */
static brk_entry *brk_find(const bg_breaker *b, const char *service, int create)
{
    uint32_t h = brk_hash(service);

    for (uint32_t i = 0; i < BG_BRK_MAX_SERVICES; i++) {
        brk_entry *e = (brk_entry *)&b->e[(h + i) % BG_BRK_MAX_SERVICES];
        if (!atomic_load_explicit(&e->used, memory_order_acquire))
            return create ? e : NULL;
        if (strcmp(e->name, service) == 0)
            return e;
    }
    return NULL;
}

int bg_brk_ensure(bg_breaker *b, const char *service)
{
    size_t len = strlen(service);
    brk_entry *e;

    if (b == NULL || len == 0 || len >= BRK_NAME_LEN || (e = brk_find(b, service, 1)) == NULL)
        return BG_ERR;
    if (!atomic_load_explicit(&e->used, memory_order_relaxed)) {
        memcpy(e->name, service, len + 1);
        atomic_store_explicit(&e->used, 1, memory_order_release);
    }
    return BG_OK;
}

/* Moves e from old to new; a transition (state changed) is counted, an opening too. */
static int brk_cas(bg_breaker *b, brk_entry *e, uint64_t *old, uint64_t nw)
{
    unsigned from = (unsigned)(*old & 3u), to = (unsigned)(nw & 3u);

    if (!atomic_compare_exchange_weak_explicit(&e->word, old, nw, memory_order_acq_rel,
                                               memory_order_acquire))
        return 0;
    if (from != to) {
        atomic_fetch_add_explicit(&b->changes, 1, memory_order_relaxed);
        if (to == BG_BRK_OPEN)
            atomic_fetch_add_explicit(&e->opens, 1, memory_order_relaxed);
    }
    return 1;
}

static int brk_refuse(int64_t left_ms, int64_t *retry_ms)
{
    *retry_ms = left_ms < 1000 ? 1000 : left_ms;
    return 0;
}

/* Half-open: a probe slot, or a new epoch when the given ones have had their time. */
static int brk_admit_half(bg_breaker *b, brk_entry *e, const bg_brk_params *p, int64_t rel,
                          uint64_t *w, bg_brk_ticket *t, int64_t *retry_ms)
{
    brk_word d = w_get(*w);
    uint64_t nw;

    if (d.a < (unsigned)p->probes)
        nw = w_make(BG_BRK_HALF_OPEN, d.a + 1, d.b, d.epoch, d.t);
    else if (rel - d.t >= p->probe_timeout_ms)
        nw = w_make(BG_BRK_HALF_OPEN, 1, 0, d.epoch + 1, rel);
    else
        return brk_refuse(0, retry_ms);
    if (!brk_cas(b, e, w, nw))
        return -1;
    t->kind = BG_BRK_T_PROBE;
    t->epoch = (uint8_t)w_get(nw).epoch;
    return 1;
}

int bg_brk_admit(bg_breaker *b, const char *service, const bg_brk_params *p, int64_t now_ms,
                 bg_brk_ticket *t, int64_t *retry_ms)
{
    int64_t rel = b != NULL ? brk_rel(b, now_ms) : 0;
    brk_entry *e;
    uint64_t w;
    int rc;

    t->kind = BG_BRK_T_NONE;
    if (b == NULL || p->failures <= 0 || (e = brk_find(b, service, 0)) == NULL)
        return 1;
    w = atomic_load_explicit(&e->word, memory_order_acquire);
    for (;;) {
        brk_word d = w_get(w);
        if (d.state == BG_BRK_CLOSED) {
            t->kind = BG_BRK_T_PASS;
            t->epoch = (uint8_t)d.epoch;
            return 1;
        }
        if (d.state == BG_BRK_OPEN) {
            if (rel - d.t < p->cooldown_ms)
                return brk_refuse(p->cooldown_ms - (rel - d.t), retry_ms);
            /* The cool-down is over: this request half-opens it and is its first probe. */
            if (brk_cas(b, e, &w, w_make(BG_BRK_HALF_OPEN, 0, 0, d.epoch + 1, rel)))
                w = atomic_load_explicit(&e->word, memory_order_acquire);
            continue;
        }
        rc = brk_admit_half(b, e, p, rel, &w, t, retry_ms);
        if (rc >= 0)
            return rc;
    }
}

/* The word after a verdict in *nw; 0 when the verdict does not count (a closed word with
 * nothing in it is 0 too, so the answer cannot be the word itself). */
static int brk_next(const bg_brk_params *p, const bg_brk_ticket *t, brk_word d, int failed,
                    int64_t rel, uint64_t *nw)
{
    unsigned n;

    if (d.epoch != t->epoch)
        return 0; /* admitted before the last half-open: stale */
    if (t->kind == BG_BRK_T_PROBE) {
        if (d.state != BG_BRK_HALF_OPEN)
            return 0;
        if (failed)
            *nw = w_make(BG_BRK_OPEN, 0, 0, d.epoch, rel);
        else if (d.b + 1 >= (unsigned)p->probes)
            *nw = w_make(BG_BRK_CLOSED, 0, 0, d.epoch, rel);
        else
            *nw = w_make(BG_BRK_HALF_OPEN, d.a, d.b + 1, d.epoch, d.t);
        return 1;
    }
    if (d.state != BG_BRK_CLOSED || (!failed && d.a == 0))
        return 0; /* the common success writes nothing */
    if (!failed) {
        *nw = w_make(BG_BRK_CLOSED, 0, 0, d.epoch, d.t);
        return 1;
    }
    if (d.a == 0 || (p->window_ms > 0 && rel - d.t > p->window_ms)) {
        n = 1; /* a new run starts here */
        d.t = rel;
    } else {
        n = d.a + 1;
    }
    if (n >= (unsigned)p->failures)
        *nw = w_make(BG_BRK_OPEN, 0, 0, d.epoch, rel);
    else
        *nw = w_make(BG_BRK_CLOSED, n, 0, d.epoch, d.t);
    return 1;
}

int bg_brk_result(bg_breaker *b, const char *service, const bg_brk_params *p,
                  const bg_brk_ticket *t, int failed, int64_t now_ms)
{
    brk_entry *e;
    uint64_t w, nw;

    if (b == NULL || t->kind == BG_BRK_T_NONE || p->failures <= 0 ||
        (e = brk_find(b, service, 0)) == NULL)
        return -1;
    w = atomic_load_explicit(&e->word, memory_order_acquire);
    do {
        if (!brk_next(p, t, w_get(w), failed, brk_rel(b, now_ms), &nw))
            return -1;
    } while (!brk_cas(b, e, &w, nw));
    return (w & 3u) != (nw & 3u) ? (int)(nw & 3u) : -1;
}

void bg_brk_release(bg_breaker *b, const char *service, const bg_brk_ticket *t)
{
    brk_entry *e;
    uint64_t w;
    brk_word d;

    if (b == NULL || t->kind != BG_BRK_T_PROBE || (e = brk_find(b, service, 0)) == NULL)
        return;
    w = atomic_load_explicit(&e->word, memory_order_acquire);
    do {
        d = w_get(w);
        if (d.state != BG_BRK_HALF_OPEN || d.epoch != t->epoch || d.a == 0)
            return;
    } while (!brk_cas(b, e, &w, w_make(BG_BRK_HALF_OPEN, d.a - 1, d.b, d.epoch, d.t)));
}

static void brk_info(const bg_breaker *b, const brk_entry *e, bg_brk_info *out)
{
    brk_word d = w_get(atomic_load_explicit((_Atomic uint64_t *)&e->word, memory_order_acquire));

    out->state = (bg_brk_state)d.state;
    out->failures = (int)d.a;
    out->successes = (int)d.b;
    out->since_ms = b->base_ms + d.t;
    out->opens = atomic_load_explicit((_Atomic uint64_t *)&e->opens, memory_order_relaxed);
}

int bg_brk_get(const bg_breaker *b, const char *service, bg_brk_info *out)
{
    const brk_entry *e = b != NULL ? brk_find(b, service, 0) : NULL;

    if (e == NULL)
        return BG_ERR;
    brk_info(b, e, out);
    return BG_OK;
}

void bg_brk_each(const bg_breaker *b, bg_brk_visit_fn *fn, void *ud)
{
    bg_brk_info info;

    for (size_t i = 0; b != NULL && i < BG_BRK_MAX_SERVICES; i++)
        if (atomic_load_explicit((_Atomic int *)&b->e[i].used, memory_order_acquire)) {
            brk_info(b, &b->e[i], &info);
            fn(ud, b->e[i].name, &info);
        }
}

uint64_t bg_brk_changes(const bg_breaker *b)
{
    return b != NULL ? atomic_load_explicit((_Atomic uint64_t *)&b->changes, memory_order_relaxed)
                     : 0;
}

const char *bg_brk_state_name(bg_brk_state s)
{
    return s == BG_BRK_OPEN ? "open" : s == BG_BRK_HALF_OPEN ? "half_open" : "closed";
}
