/* inflight.c: request id -> pending exchange, an open-addressing hash table. */
#include "inflight.h"

#include <stdlib.h>
#include <string.h>

#define INFLIGHT_MIN_CAP 256

static size_t inflight_hash(const char *id, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a: ids are short */
    size_t i;

    for (i = 0; i < len; i++) {
        h ^= (unsigned char)id[i];
        h *= 1099511628211ULL;
    }
    return (size_t)h;
}

static int inflight_key_eq(const char *a, const char *b, size_t blen)
{
    return strncmp(a, b, blen) == 0 && a[blen] == '\0';
}

int bg_inflight_init(bg_inflight *t, char *err)
{
    t->slots = calloc(INFLIGHT_MIN_CAP, sizeof(*t->slots));
    t->cap = INFLIGHT_MIN_CAP;
    t->count = 0;
    if (t->slots == NULL) {
        bg_set_error(err, "in-flight table: out of memory");
        return BG_ERR;
    }
    return BG_OK;
}

void bg_inflight_free(bg_inflight *t)
{
    free(t->slots);
    t->slots = NULL;
    t->cap = t->count = 0;
}

static void inflight_insert(struct bg_inflight_slot *slots, size_t cap, const char *id, void *v)
{
    size_t i = inflight_hash(id, strlen(id)) & (cap - 1);

    while (slots[i].id != NULL)
        i = (i + 1) & (cap - 1);
    slots[i].id = id;
    slots[i].value = v;
}

static int inflight_grow(bg_inflight *t, char *err)
{
    size_t cap = t->cap * 2, i;
    struct bg_inflight_slot *slots = calloc(cap, sizeof(*slots));

    if (slots == NULL) {
        bg_set_error(err, "in-flight table: out of memory growing to %zu slots", cap);
        return BG_ERR;
    }
    for (i = 0; i < t->cap; i++)
        if (t->slots[i].id != NULL)
            inflight_insert(slots, cap, t->slots[i].id, t->slots[i].value);
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return BG_OK;
}

int bg_inflight_put(bg_inflight *t, const char *id, void *value, char *err)
{
    if ((t->count + 1) * 2 > t->cap && inflight_grow(t, err) != BG_OK)
        return BG_ERR;
    inflight_insert(t->slots, t->cap, id, value);
    t->count++;
    return BG_OK;
}

static size_t inflight_find(const bg_inflight *t, const char *id, size_t len)
{
    size_t i = inflight_hash(id, len) & (t->cap - 1);

    while (t->slots[i].id != NULL) {
        if (inflight_key_eq(t->slots[i].id, id, len))
            return i;
        i = (i + 1) & (t->cap - 1);
    }
    return (size_t)-1;
}

void *bg_inflight_get(const bg_inflight *t, const char *id, size_t len)
{
    size_t i = inflight_find(t, id, len);

    return i == (size_t)-1 ? NULL : t->slots[i].value;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
void *bg_inflight_take(bg_inflight *t, const char *id, size_t len)
{
    size_t i = inflight_find(t, id, len), j;
    void *v;

    if (i == (size_t)-1)
        return NULL;
    v = t->slots[i].value;
    t->slots[i].id = NULL;
    t->count--;
    for (j = (i + 1) & (t->cap - 1); t->slots[j].id != NULL; j = (j + 1) & (t->cap - 1)) {
        size_t home = inflight_hash(t->slots[j].id, strlen(t->slots[j].id)) & (t->cap - 1);
        /* Move j back to i when its home is not in the cyclic range (i, j]. */
        if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
            t->slots[i] = t->slots[j];
            t->slots[j].id = NULL;
            i = j;
        }
    }
    return v;
}

size_t bg_inflight_count(const bg_inflight *t)
{
    return t->count;
}
