/* bus_queue_batch.c: turn stream replies ([id, [field, value...]] lists) into queue batches. */
#include "bus_queue_int.h"

#include <stdlib.h>
#include <string.h>

void bg_queue_batch_free(bg_queue_batch *b)
{
    if (b == NULL)
        return;
    if (b->reply != NULL)
        bg_bus_reply_free(b->reply);
    free(b->entries);
    free(b->field_pool);
    memset(b, 0, sizeof(*b));
}

static int reply_is_list(const redisReply *r)
{
    return r->type == REDIS_REPLY_ARRAY || r->type == REDIS_REPLY_MAP;
}

/* 1: a live entry; 0: an entry deleted from the stream ([id, nil]); -1: malformed. */
static int entry_check(const redisReply *e)
{
    const redisReply *fields;
    size_t i;

    if (e->type == REDIS_REPLY_NIL)
        return 0;
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[0]->len >= BG_QUEUE_ID_LEN)
        return -1;
    fields = e->element[1];
    if (fields->type == REDIS_REPLY_NIL)
        return 0;
    if (!reply_is_list(fields) || fields->elements % 2 != 0)
        return -1;
    for (i = 0; i < fields->elements; i++)
        if (fields->element[i]->type != REDIS_REPLY_STRING)
            return -1;
    return 1;
}

/* Validate every entry and count the fields, before allocating anything. */
static int batch_measure(const redisReply *list, size_t *nfields, char *err)
{
    size_t i;

    *nfields = 0;
    for (i = 0; i < list->elements; i++) {
        int live = entry_check(list->element[i]);
        if (live < 0) {
            bg_set_error(err, "stream reply: entry %zu is malformed", i);
            return BG_ERR;
        }
        if (live)
            *nfields += list->element[i]->element[1]->elements / 2;
    }
    return BG_OK;
}

static void entry_fill(bg_queue_entry *out, bg_field *pool, const redisReply *e, long deliveries)
{
    const redisReply *fields = e->element[1];
    size_t i;

    memcpy(out->id, e->element[0]->str, e->element[0]->len);
    out->id[e->element[0]->len] = '\0';
    out->fields = pool;
    out->nfields = fields->elements / 2;
    out->deliveries = deliveries;
    for (i = 0; i < out->nfields; i++) {
        pool[i].name.ptr = fields->element[2 * i]->str;
        pool[i].name.len = fields->element[2 * i]->len;
        pool[i].value.ptr = fields->element[2 * i + 1]->str;
        pool[i].value.len = fields->element[2 * i + 1]->len;
    }
}

static int counts_check(const redisReply *counts, const redisReply *list, char *err)
{
    size_t i;

    if (counts == NULL)
        return BG_OK;
    if (counts->type != REDIS_REPLY_ARRAY || counts->elements != list->elements) {
        bg_set_error(err, "stream reply: delivery counts do not match the entries");
        return BG_ERR;
    }
    for (i = 0; i < counts->elements; i++) {
        if (counts->element[i]->type != REDIS_REPLY_INTEGER) {
            bg_set_error(err, "stream reply: delivery count %zu is not an integer", i);
            return BG_ERR;
        }
    }
    return BG_OK;
}

int bg_queue_batch_fill(bg_queue_batch *b, redisReply *reply, const redisReply *list,
                        const redisReply *counts, char *err)
{
    size_t nfields, i, used = 0;

    b->reply = reply; /* owned from here on, so bg_queue_batch_free releases it */
    if (list == NULL || list->type == REDIS_REPLY_NIL || list->elements == 0)
        return BG_OK;
    if (list->type != REDIS_REPLY_ARRAY) {
        bg_set_error(err, "stream reply: expected a list of entries, got type %d", list->type);
        return BG_ERR;
    }
    if (batch_measure(list, &nfields, err) != BG_OK || counts_check(counts, list, err) != BG_OK)
        return BG_ERR;
    b->entries = calloc(list->elements, sizeof(*b->entries));
    b->field_pool = calloc(nfields > 0 ? nfields : 1, sizeof(*b->field_pool));
    if (b->entries == NULL || b->field_pool == NULL) {
        bg_set_error(err, "stream reply: out of memory for %zu entries", list->elements);
        return BG_ERR;
    }
    for (i = 0; i < list->elements; i++) {
        if (entry_check(list->element[i]) == 0) {
            b->deleted++;
            continue;
        }
        entry_fill(&b->entries[b->count], b->field_pool + used, list->element[i],
                   counts != NULL ? (long)counts->element[i]->integer : 1);
        used += b->entries[b->count++].nfields;
    }
    return BG_OK;
}
