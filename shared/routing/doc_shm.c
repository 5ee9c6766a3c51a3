/* doc_shm.c: a double-buffered, seqlocked document in shared memory (master writes, workers copy).
 */
#include "busgate/routing/doc_shm.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define DOC_ALIGN 64

enum { DOC_EMPTY = 0, DOC_FULL = 1, DOC_REFUSED = 2 };

/* Head of one copy; the bytes follow it. Everything after seq is written under it. */
typedef struct doc_copy {
    _Atomic uint64_t seq;
    uint64_t generation;
    uint64_t len; /* bytes of the document, or the size refused (DOC_REFUSED) */
    uint32_t state;
} doc_copy;

typedef struct doc_head {
    _Atomic uint32_t active;
    _Atomic uint64_t generation;
} doc_head;

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "the document needs lock-free 64-bit atomics");

struct bg_doc {
    unsigned char *base;
    size_t cap;       /* bytes per copy, fixed at create: readers bound by it */
    size_t copy_size; /* head + cap, aligned */
    size_t map_size;
    uint64_t next_generation;
};

static size_t doc_align(size_t n)
{
    return (n + DOC_ALIGN - 1) / DOC_ALIGN * DOC_ALIGN;
}

static doc_copy *doc_copy_at(const bg_doc *d, uint32_t idx)
{
    return (doc_copy *)(d->base + doc_align(sizeof(doc_head)) + (size_t)idx * d->copy_size);
}

static unsigned char *doc_bytes(doc_copy *c)
{
    return (unsigned char *)c + doc_align(sizeof(doc_copy));
}

bg_doc *bg_doc_create(size_t max_bytes, char *err)
{
    bg_doc *d = calloc(1, sizeof(*d));
    void *map;

    if (d == NULL) {
        bg_set_error(err, "document: out of memory");
        return NULL;
    }
    d->cap = max_bytes;
    d->copy_size = doc_align(doc_align(sizeof(doc_copy)) + max_bytes);
    d->map_size = doc_align(sizeof(doc_head)) + 2 * d->copy_size;
    /* Zeroed pages: both copies empty, copy 0 active; untouched pages cost nothing. */
    map = mmap(NULL, d->map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) {
        bg_set_error(err, "document: mmap(%zu bytes): %s", d->map_size, strerror(errno));
        free(d);
        return NULL;
    }
    d->base = map;
    d->next_generation = 1;
    return d;
}

void bg_doc_destroy(bg_doc *d)
{
    if (d == NULL)
        return;
    munmap(d->base, d->map_size);
    free(d);
}

int bg_doc_protect_readonly(bg_doc *d, char *err)
{
    if (mprotect(d->base, d->map_size, PROT_READ) != 0) {
        bg_set_error(err, "document: mprotect(PROT_READ): %s", strerror(errno));
        return BG_ERR;
    }
    return BG_OK;
}

size_t bg_doc_capacity(const bg_doc *d)
{
    return d->cap;
}

size_t bg_doc_mapping_size(const bg_doc *d)
{
    return d->map_size;
}

int bg_doc_publish(bg_doc *d, const char *data, size_t len, char *err)
{
    doc_head *h = (doc_head *)d->base;
    uint32_t next = atomic_load_explicit(&h->active, memory_order_relaxed) ^ 1u;
    doc_copy *c = doc_copy_at(d, next);
    uint64_t s = atomic_load_explicit(&c->seq, memory_order_relaxed);
    uint64_t gen = d->next_generation++;

    atomic_store_explicit(&c->seq, s + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    c->generation = gen;
    c->len = len;
    c->state = len <= d->cap ? DOC_FULL : DOC_REFUSED;
    if (len <= d->cap && len > 0)
        memcpy(doc_bytes(c), data, len);
    atomic_store_explicit(&c->seq, s + 2, memory_order_release);
    atomic_store_explicit(&h->active, next, memory_order_release);
    atomic_store_explicit(&h->generation, gen, memory_order_release);
    if (len > d->cap) {
        bg_set_error(err, "the document is %zu bytes, the limit is %zu", len, d->cap);
        return BG_ERR;
    }
    return BG_OK;
}

uint64_t bg_doc_generation(const bg_doc *d)
{
    return atomic_load_explicit(&((doc_head *)d->base)->generation, memory_order_acquire);
}

/* One attempt: 1 when what was read is consistent (out filled), 0 to retry. */
static int doc_try_read(const bg_doc *d, char **out, size_t *len, uint64_t *gen, uint32_t *state)
{
    doc_head *h = (doc_head *)d->base;
    doc_copy *c = doc_copy_at(d, atomic_load_explicit(&h->active, memory_order_acquire) & 1u);
    uint64_t s = atomic_load_explicit(&c->seq, memory_order_acquire);
    uint64_t n;

    if (s & 1)
        return 0;
    /* read once: the bound check and the copy must see the same number */
    n = *(const volatile uint64_t *)&c->len;
    *state = *(const volatile uint32_t *)&c->state;
    *gen = *(const volatile uint64_t *)&c->generation;
    *len = (size_t)n;
    *out = NULL;
    if (*state == DOC_FULL) {
        if (n > d->cap || (*out = malloc((size_t)n + 1)) == NULL)
            return 0;
        memcpy(*out, doc_bytes(c), (size_t)n);
        (*out)[n] = '\0';
    }
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&c->seq, memory_order_relaxed) == s)
        return 1;
    free(*out);
    *out = NULL;
    return 0;
}

bg_doc_status bg_doc_read(const bg_doc *d, char **out, size_t *len, uint64_t *generation)
{
    uint32_t state = DOC_EMPTY;

    for (int i = 0; i < BG_DOC_READ_RETRIES; i++) {
        if (!doc_try_read(d, out, len, generation, &state))
            continue;
        if (state == DOC_FULL)
            return BG_DOC_OK;
        return state == DOC_REFUSED ? BG_DOC_TOO_LARGE : BG_DOC_NONE;
    }
    *out = NULL;
    *len = 0;
    return BG_DOC_BUSY;
}
