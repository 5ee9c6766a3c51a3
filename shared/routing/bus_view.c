/* bus_view.c: the master-written, worker-read table of bus facts (warm flag, backlogs). */
#include "busgate/routing/bus_view.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#define BV_NAME_LEN 65 /* service names are 1..64 bytes */
#define BV_READ_TRIES 4

typedef struct bv_entry {
    _Atomic uint32_t seq;  /* odd while the master writes the sample */
    _Atomic int used;      /* name is set (for good) */
    _Atomic int64_t added; /* REQUESTs the workers added, ever */
    char name[BV_NAME_LEN];
    bg_bv_sample s;
} bv_entry;

struct bg_busview {
    _Atomic int warm;
    bv_entry e[BG_BV_MAX_SERVICES];
};

bg_busview *bg_bv_create(char *err)
{
    bg_busview *v =
        mmap(NULL, sizeof(*v), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (v == MAP_FAILED) {
        bg_set_error(err, "mmap(%zu bytes) for the bus view: %s", sizeof(*v), strerror(errno));
        return NULL;
    }
    return v; /* zeroed: not warm, no entries */
}

void bg_bv_destroy(bg_busview *v)
{
    if (v != NULL)
        munmap(v, sizeof(*v));
}

void bg_bv_set_warm(bg_busview *v)
{
    atomic_store_explicit(&v->warm, 1, memory_order_release);
}

int bg_bv_warm(const bg_busview *v)
{
    return v != NULL && atomic_load_explicit(&v->warm, memory_order_acquire);
}

static uint32_t bv_hash(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* The entry holding service, or (create) the free one it goes into; NULL otherwise. */
static bv_entry *bv_find(const bg_busview *v, const char *service, int create)
{
    uint32_t h = bv_hash(service);

    for (uint32_t i = 0; i < BG_BV_MAX_SERVICES; i++) {
        bv_entry *e = (bv_entry *)&v->e[(h + i) % BG_BV_MAX_SERVICES];
        if (!atomic_load_explicit(&e->used, memory_order_acquire))
            return create ? e : NULL;
        if (strcmp(e->name, service) == 0)
            return e;
    }
    return NULL;
}

int bg_bv_put(bg_busview *v, const char *service, const bg_bv_sample *s)
{
    bv_entry *e;

    if (strlen(service) >= BV_NAME_LEN || (e = bv_find(v, service, 1)) == NULL)
        return BG_ERR;
    atomic_fetch_add_explicit(&e->seq, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    e->s = *s;
    atomic_thread_fence(memory_order_release);
    atomic_fetch_add_explicit(&e->seq, 1, memory_order_relaxed);
    if (!atomic_load_explicit(&e->used, memory_order_relaxed)) {
        memcpy(e->name, service, strlen(service) + 1);
        atomic_store_explicit(&e->used, 1, memory_order_release);
    }
    return BG_OK;
}

static int bv_read(const bv_entry *e, bg_bv_sample *out)
{
    for (int i = 0; i < BV_READ_TRIES; i++) {
        uint32_t a = atomic_load_explicit((_Atomic uint32_t *)&e->seq, memory_order_acquire);
        if (a & 1)
            continue;
        *out = e->s;
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit((_Atomic uint32_t *)&e->seq, memory_order_relaxed) == a)
            return BG_OK;
    }
    return BG_ERR;
}

int bg_bv_get(const bg_busview *v, const char *service, bg_bv_sample *out)
{
    const bv_entry *e = v != NULL ? bv_find(v, service, 0) : NULL;

    return e != NULL ? bv_read(e, out) : BG_ERR;
}

void bg_bv_add(bg_busview *v, const char *service, int64_t n)
{
    bv_entry *e = v != NULL ? bv_find(v, service, 0) : NULL;

    if (e != NULL)
        atomic_fetch_add_explicit(&e->added, n, memory_order_relaxed);
}

int64_t bg_bv_added(const bg_busview *v, const char *service)
{
    const bv_entry *e = v != NULL ? bv_find(v, service, 0) : NULL;

    return e != NULL ? atomic_load_explicit((_Atomic int64_t *)&e->added, memory_order_relaxed) : 0;
}

void bg_bv_each(const bg_busview *v, bg_bv_visit_fn *fn, void *ud)
{
    bg_bv_sample s;

    for (size_t i = 0; v != NULL && i < BG_BV_MAX_SERVICES; i++)
        if (atomic_load_explicit(&v->e[i].used, memory_order_acquire) &&
            bv_read(&v->e[i], &s) == BG_OK)
            fn(ud, v->e[i].name, &s);
}
