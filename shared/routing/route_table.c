/* route_table.c: the shared routing table's mapping, layout, publication and seqlock reads. */
#include "route_layout.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "busgate/common.h"

#define RT_CAP_LIMIT (1u << 24)            /* per array: keeps every index in 32 bits */
#define RT_STRINGS_LIMIT ((size_t)1 << 31) /* string offsets are 32-bit */

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "the seqlock needs lock-free 64-bit atomics");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the active index needs lock-free 32-bit atomics");

static size_t rt_align(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

static int rt_check_cap(const char *name, long v, char *err)
{
    if (v < 1 || v > (long)RT_CAP_LIMIT) {
        bg_set_error(err, "routing table: %s must be 1..%u, got %ld", name, RT_CAP_LIMIT, v);
        return BG_ERR;
    }
    return BG_OK;
}

static int rt_caps_from_limits(bg_rt_layout *lay, const bg_rt_limits *lim, char *err)
{
    long nodes = lim->max_nodes > 0 ? lim->max_nodes : 8L * lim->max_endpoints + 1;
    size_t strings = lim->string_bytes;

    if (rt_check_cap("max_services", lim->max_services, err) != BG_OK ||
        rt_check_cap("max_connections", lim->max_connections, err) != BG_OK ||
        rt_check_cap("max_endpoints", lim->max_endpoints, err) != BG_OK ||
        rt_check_cap("max_nodes", nodes, err) != BG_OK)
        return BG_ERR;
    if (strings == 0)
        strings = (size_t)lim->max_endpoints * 128 + (size_t)lim->max_connections * 256 +
                  (size_t)lim->max_services * 64;
    if (strings > RT_STRINGS_LIMIT) {
        bg_set_error(err, "routing table: string_bytes must be at most %zu", RT_STRINGS_LIMIT);
        return BG_ERR;
    }
    lay->cap_services = (uint32_t)lim->max_services;
    lay->cap_conns = (uint32_t)lim->max_connections;
    lay->cap_eps = (uint32_t)lim->max_endpoints;
    lay->cap_routes = lay->cap_eps;
    lay->cap_terms = lay->cap_eps + 1;
    lay->cap_nodes = (uint32_t)nodes;
    lay->cap_edges = lay->cap_nodes;
    lay->cap_strings = (uint32_t)strings;
    return BG_OK;
}

/* Places the arrays of one copy one after another, each cache-line aligned. */
static void rt_layout_place(bg_rt_layout *lay)
{
    size_t off = rt_align(sizeof(bg_rt_copy));

#define RT_PLACE(field, cap, type)                                                                 \
    do {                                                                                           \
        lay->field = off;                                                                          \
        off = rt_align(off + (size_t)(cap) * sizeof(type));                                        \
    } while (0)
    RT_PLACE(off_services, lay->cap_services, bg_rt_svc);
    RT_PLACE(off_conns, lay->cap_conns, bg_rt_conn);
    RT_PLACE(off_eps, lay->cap_eps, bg_rt_ep);
    RT_PLACE(off_routes, lay->cap_routes, bg_rt_route);
    RT_PLACE(off_terms, lay->cap_terms, bg_rt_term);
    RT_PLACE(off_nodes, lay->cap_nodes, bg_rt_node);
    RT_PLACE(off_edges, lay->cap_edges, bg_rt_edge);
    RT_PLACE(off_strings, lay->cap_strings, char);
#undef RT_PLACE
    lay->copy_size = off;
    lay->copy_off[0] = rt_align(sizeof(bg_rt_shm));
    lay->copy_off[1] = lay->copy_off[0] + lay->copy_size;
    lay->map_size = lay->copy_off[1] + lay->copy_size;
}

bg_rt *bg_rt_create(const bg_rt_limits *lim, char *err)
{
    bg_rt *rt = calloc(1, sizeof(*rt));
    void *map;

    if (rt == NULL) {
        bg_set_error(err, "routing table: out of memory");
        return NULL;
    }
    if (rt_caps_from_limits(&rt->lay, lim, err) != BG_OK)
        goto fail;
    rt_layout_place(&rt->lay);
    /* Shared and anonymous: inherited by the workers forked later. The pages
     * start zeroed: both copies empty, copy 1 not valid, copy 0 active. */
    map = mmap(NULL, rt->lay.map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) {
        bg_set_error(err, "routing table: mmap(%zu bytes): %s", rt->lay.map_size, strerror(errno));
        goto fail;
    }
    rt->base = map;
    ((bg_rt_shm *)rt->base)->magic = BG_RT_MAGIC;
    ((bg_rt_shm *)rt->base)->layout_version = BG_RT_LAYOUT_VERSION;
    bg_rt_copy_at(rt, 0)->valid = 1;
    rt->next_generation = 1;
    return rt;
fail:
    free(rt);
    return NULL;
}

void bg_rt_destroy(bg_rt *rt)
{
    if (rt == NULL)
        return;
    if (rt->base != NULL)
        munmap(rt->base, rt->lay.map_size);
    bg_rt_scratch_free(rt->scratch);
    free(rt);
}

int bg_rt_protect_readonly(bg_rt *rt, char *err)
{
    if (mprotect(rt->base, rt->lay.map_size, PROT_READ) != 0) {
        bg_set_error(err, "routing table: mprotect(PROT_READ): %s", strerror(errno));
        return BG_ERR;
    }
    rt->readonly = 1;
    /* The writer's scratch came along with fork; a reader never builds. */
    bg_rt_scratch_free(rt->scratch);
    rt->scratch = NULL;
    return BG_OK;
}

size_t bg_rt_mapping_size(const bg_rt *rt)
{
    return rt->lay.map_size;
}

void bg_rt_set_conflict_cb(bg_rt *rt, bg_rt_conflict_fn fn, void *ud)
{
    rt->conflict_fn = fn;
    rt->conflict_ud = ud;
}

uint64_t bg_rt_generation(const bg_rt *rt)
{
    const bg_rt_shm *shm = (const bg_rt_shm *)rt->base;

    return atomic_load_explicit((_Atomic uint64_t *)&shm->generation, memory_order_acquire);
}

int bg_rt_publish(bg_rt *rt, const bg_rt_connection_in *conns, size_t n, char *err)
{
    bg_rt_shm *shm = (bg_rt_shm *)rt->base;
    uint32_t next;
    bg_rt_copy *copy;
    uint64_t seq;
    int rc;

    if (rt->readonly) {
        bg_set_error(err, "routing table: publish on a read-only view");
        return BG_ERR;
    }
    /* Single writer: only this process stores `active`, relaxed is enough. */
    next = (atomic_load_explicit(&shm->active, memory_order_relaxed) & 1) ^ 1;
    copy = bg_rt_copy_at(rt, (int)next);
    seq = atomic_load_explicit(&copy->seq, memory_order_relaxed);
    /* Odd sequence first; the release fence keeps every data store below from
     * becoming visible before it, so a reader that saw any of them re-reads
     * an odd or newer sequence after its acquire fence. */
    atomic_store_explicit(&copy->seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    copy->valid = 0;
    copy->generation = rt->next_generation;
    rc = bg_rt_build(rt, copy, conns, n, err);
    if (rc == BG_OK)
        copy->valid = 1;
    /* Even again (release: the data above happens-before any reader that
     * acquires this value). A failed build leaves valid = 0: a reader still
     * holding this stale copy index sees it and goes back to `active`. */
    atomic_store_explicit(&copy->seq, seq + 2, memory_order_release);
    if (rc != BG_OK)
        return BG_ERR;
    atomic_store_explicit(&shm->active, next, memory_order_release);
    atomic_store_explicit(&shm->generation, rt->next_generation, memory_order_release);
    rt->next_generation++;
    return BG_OK;
}

const bg_rt_copy *bg_rt_read_begin(const bg_rt *rt, uint64_t *seq)
{
    bg_rt_shm *shm = (bg_rt_shm *)rt->base;
    uint32_t idx = atomic_load_explicit(&shm->active, memory_order_acquire) & 1;
    bg_rt_copy *copy = bg_rt_copy_at(rt, (int)idx);
    uint64_t s = atomic_load_explicit(&copy->seq, memory_order_acquire);

    if (s & 1)
        return NULL; /* the writer is rebuilding the copy we were sent to */
    *seq = s;
    return copy;
}

int bg_rt_read_end(const bg_rt_copy *copy, uint64_t seq)
{
    /* Orders every data load above before the re-read of the sequence. */
    atomic_thread_fence(memory_order_acquire);
    return atomic_load_explicit((_Atomic uint64_t *)&copy->seq, memory_order_relaxed) == seq;
}

const char *bg_rt_str_ptr(const bg_rt *rt, const bg_rt_copy *copy, bg_rt_str s)
{
    if (s.off > rt->lay.cap_strings || s.len > rt->lay.cap_strings - s.off)
        return NULL;
    return (const char *)copy + rt->lay.off_strings + s.off;
}
