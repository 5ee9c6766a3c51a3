/* route_dict.c: the writer's private string dictionary and template trie (stable ids by content).
 */
#include "route_cache.h"

#include <stdlib.h>
#include <string.h>

#define RT_SLOTS_MIN 1024u
#define RT_IDS_LIMIT (1u << 30) /* ids stay far below BG_RT_NONE */

/* Eight bytes at a time: a publish hashes only what is new or changed, and
 * one connection id per input connection. */
static uint32_t rt_hash(const char *p, size_t len)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ len, w;

    for (; len >= 8; p += 8, len -= 8) {
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    for (w = 0; len > 0; len--)
        w = (w << 8) | (unsigned char)p[len - 1];
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    return (uint32_t)(h ^ (h >> 29));
}

static uint32_t rt_pair_hash(uint32_t parent, uint32_t sid)
{
    uint64_t h = ((uint64_t)parent << 32 | sid) * 0x9e3779b97f4a7c15ull;

    return (uint32_t)(h >> 32);
}

/* Grows an array of elements of size to hold need of them (doubling). */
static int rt_grow(void **p, uint32_t *cap, uint32_t need, size_t size)
{
    uint32_t c = *cap ? *cap : 64;
    void *np;

    if (need <= *cap)
        return BG_OK;
    if (need > RT_IDS_LIMIT)
        return BG_ERR;
    while (c < need)
        c *= 2;
    if ((np = realloc(*p, (size_t)c * size)) == NULL)
        return BG_ERR;
    *p = np;
    *cap = c;
    return BG_OK;
}

/* A fresh slot array for n entries at most half full, all empty. */
static int rt_slots_new(uint32_t **slots, uint32_t *cap, uint32_t n)
{
    uint32_t c = RT_SLOTS_MIN;
    uint32_t *p;

    while (c < 2 * (size_t)n + 2)
        c *= 2;
    if ((p = malloc((size_t)c * sizeof(*p))) == NULL)
        return BG_ERR;
    memset(p, 0xff, (size_t)c * sizeof(*p)); /* BG_RT_NONE everywhere */
    free(*slots);
    *slots = p;
    *cap = c;
    return BG_OK;
}

/* ---- Dictionary ---- */

static int rt_dict_rehash(rt_dict *d)
{
    if (rt_slots_new(&d->slots, &d->slots_cap, d->n + 1) != BG_OK)
        return BG_ERR;
    for (uint32_t i = 0; i < d->n; i++) {
        uint32_t mask = d->slots_cap - 1, k = d->ent[i].hash & mask;

        while (d->slots[k] != BG_RT_NONE)
            k = (k + 1) & mask;
        d->slots[k] = i;
    }
    return BG_OK;
}

/* The slot holding p, or the empty slot where it would go. */
static uint32_t rt_dict_slot(const rt_dict *d, const char *p, size_t len, uint32_t h)
{
    uint32_t mask = d->slots_cap - 1, k = h & mask, i;

    while ((i = d->slots[k]) != BG_RT_NONE) {
        const rt_dstr *e = &d->ent[i];

        if (e->hash == h && e->len == len && memcmp(d->bytes + e->off, p, len) == 0)
            break;
        k = (k + 1) & mask;
    }
    return k;
}

uint32_t bg_rt_dict_find(const rt_dict *d, const char *s)
{
    size_t len = strlen(s);

    if (d->n == 0)
        return BG_RT_NONE;
    return d->slots[rt_dict_slot(d, s, len, rt_hash(s, len))];
}

static int rt_dict_store(rt_dict *d, const char *p, size_t len, uint32_t h)
{
    size_t need = d->used + len + 1;

    if (need > UINT32_MAX)
        return BG_ERR; /* offsets are 32-bit; the bloat check resets long before */
    if (need > d->cap) {
        size_t c = d->cap ? d->cap : 4096;
        char *nb;

        while (c < need)
            c *= 2;
        if ((nb = realloc(d->bytes, c)) == NULL)
            return BG_ERR;
        d->bytes = nb;
        d->cap = c;
    }
    if (rt_grow((void **)&d->ent, &d->ent_cap, d->n + 1, sizeof(rt_dstr)) != BG_OK)
        return BG_ERR;
    memcpy(d->bytes + d->used, p, len);
    d->bytes[d->used + len] = '\0';
    d->ent[d->n] = (rt_dstr){(uint32_t)d->used, (uint32_t)len, h, BG_RT_NONE, 0, 0, 0, 0};
    d->used = need;
    d->n++;
    return BG_OK;
}

int bg_rt_dict_intern(rt_dict *d, const char *p, size_t len, uint32_t *sid)
{
    uint32_t h = rt_hash(p, len), k;

    if (len > UINT32_MAX / 2 ||
        (2 * ((size_t)d->n + 1) > d->slots_cap && rt_dict_rehash(d) != BG_OK))
        return BG_ERR;
    k = rt_dict_slot(d, p, len, h);
    if (d->slots[k] == BG_RT_NONE) {
        if (rt_dict_store(d, p, len, h) != BG_OK)
            return BG_ERR;
        d->slots[k] = d->n - 1;
    }
    *sid = d->slots[k];
    return BG_OK;
}

void bg_rt_dict_free(rt_dict *d)
{
    free(d->bytes);
    free(d->ent);
    free(d->slots);
    *d = (rt_dict){0};
}

/* ---- Template trie ---- */

static int rt_ptrie_rehash(rt_ptrie *t)
{
    if (rt_slots_new(&t->slots, &t->slots_cap, t->n + 1) != BG_OK)
        return BG_ERR;
    for (uint32_t i = 1; i < t->n; i++) { /* the root has no parent to be found under */
        uint32_t mask = t->slots_cap - 1, k = rt_pair_hash(t->node[i].parent, t->node[i].sid);

        for (k &= mask; t->slots[k] != BG_RT_NONE; k = (k + 1) & mask)
            ;
        t->slots[k] = i;
    }
    return BG_OK;
}

int bg_rt_ptrie_reset(rt_ptrie *t)
{
    if (rt_grow((void **)&t->node, &t->cap, 1, sizeof(rt_pnode)) != BG_OK)
        return BG_ERR;
    t->node[0] = (rt_pnode){0, BG_RT_NONE, BG_RT_NONE, 0, 0, 0, 0, 0};
    t->n = 1;
    return rt_ptrie_rehash(t);
}

int bg_rt_ptrie_child(rt_ptrie *t, uint32_t parent, uint32_t sid, uint64_t prefix, uint32_t *child)
{
    uint32_t mask, k, i;

    if (2 * ((size_t)t->n + 1) > t->slots_cap && rt_ptrie_rehash(t) != BG_OK)
        return BG_ERR;
    mask = t->slots_cap - 1;
    for (k = rt_pair_hash(parent, sid) & mask; (i = t->slots[k]) != BG_RT_NONE;
         k = (k + 1) & mask) {
        if (t->node[i].parent == parent && t->node[i].sid == sid) {
            *child = i;
            return BG_OK;
        }
    }
    if (rt_grow((void **)&t->node, &t->cap, t->n + 1, sizeof(rt_pnode)) != BG_OK)
        return BG_ERR;
    t->node[t->n] = (rt_pnode){prefix, parent, sid, 0, 0, 0, 0, 0};
    *child = t->slots[k] = t->n++;
    return BG_OK;
}

void bg_rt_ptrie_free(rt_ptrie *t)
{
    free(t->node);
    free(t->slots);
    *t = (rt_ptrie){0};
}
