/* openapi_map.c: the OpenAPI build's memory: a bump arena and a string-keyed hash map. */
#include "openapi_int.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define OA_BLOCK 65536

struct bg_oa_block {
    bg_oa_block *next;
    size_t used, size;
    max_align_t data[]; /* aligned for any type */
};

struct bg_oa_slot {
    const char *key; /* NULL = free */
    void *val;
    uint32_t hash;
};

void *bg_oa_alloc(bg_oa_arena *a, size_t n)
{
    bg_oa_block *b = a->head;
    size_t need = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    void *p;

    if (b == NULL || b->size - b->used < need) {
        size_t size = need > OA_BLOCK ? need : OA_BLOCK;
        if ((b = malloc(sizeof(*b) + size)) == NULL) {
            a->failed = 1;
            return NULL;
        }
        b->next = a->head;
        b->used = 0;
        b->size = size;
        a->head = b;
    }
    p = (char *)b->data + b->used;
    b->used += need;
    return p;
}

char *bg_oa_strdup(bg_oa_arena *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = bg_oa_alloc(a, n);

    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

void bg_oa_arena_free(bg_oa_arena *a)
{
    while (a->head != NULL) {
        bg_oa_block *next = a->head->next;
        free(a->head);
        a->head = next;
    }
}

static uint32_t oa_hash(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* The slot of key, or the free slot where it would go. cap is a power of two. */
static struct bg_oa_slot *oa_slot(struct bg_oa_slot *slots, size_t cap, const char *key, uint32_t h)
{
    for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1))
        if (slots[i].key == NULL || (slots[i].hash == h && strcmp(slots[i].key, key) == 0))
            return &slots[i];
}

void *bg_oa_map_get(const bg_oa_map *m, const char *key)
{
    return m->cap == 0 ? NULL : oa_slot(m->slots, m->cap, key, oa_hash(key))->val;
}

/* Kept at most half full, so a probe always ends at a free slot. */
static int oa_map_grow(bg_oa_map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    struct bg_oa_slot *slots = calloc(cap, sizeof(*slots));

    if (slots == NULL)
        return BG_ERR;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key != NULL)
            *oa_slot(slots, cap, m->slots[i].key, m->slots[i].hash) = m->slots[i];
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return BG_OK;
}

int bg_oa_map_put(bg_oa_map *m, bg_oa_arena *a, const char *key, void *val)
{
    uint32_t h = oa_hash(key);
    struct bg_oa_slot *s;
    char *k;

    if (2 * (m->n + 1) > m->cap && oa_map_grow(m) != BG_OK)
        return BG_ERR;
    if ((k = bg_oa_strdup(a, key)) == NULL)
        return BG_ERR;
    s = oa_slot(m->slots, m->cap, key, h);
    *s = (struct bg_oa_slot){.key = k, .val = val, .hash = h};
    m->n++;
    return BG_OK;
}

void bg_oa_map_free(bg_oa_map *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = m->n = 0;
}
