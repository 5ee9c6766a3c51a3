/* bus_reply.c: reply objects built in blocks, one chain of blocks per reply. hiredict's
 * default builder mallocs every object and every string of a reply (an XREADGROUP of 8
 * requests is ~400 allocations) and freeReplyObject frees them one by one: ~20% of an
 * echo service's CPU went to malloc and free. Here a reply's objects are carved out of a
 * few blocks and freed with them. The root object carries a mark in vtype (used by VERB
 * replies only, which are never marked), so bg_bus_reply_free tells both kinds apart. */
#include <hiredict/alloc.h>
#include <hiredict/hiredict.h>
#include <hiredict/read.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "busgate/bus/bus.h"

#include "bus_reply.h"

#define REPLY_MARK "bgA"             /* 4 bytes with its NUL: vtype of a block-built root */
#define REPLY_ALIGN 8                /* every object and string starts 8-aligned */
#define REPLY_BLOCK_FIRST 4096       /* first block of an array reply */
#define REPLY_BLOCK_MAX (256 * 1024) /* blocks grow by doubling up to this */
#define REPLY_OWN_BLOCK (16 * 1024)  /* a string this long gets a block of its own */

typedef struct reply_block {
    struct reply_block *next;
    size_t used, cap; /* bytes of data after the header */
} reply_block;

/* The first object in a reply's first block, right before the root reply. */
typedef struct reply_head {
    reply_block *first, *tail; /* the chain to free; where small objects go */
} reply_head;

#define REPLY_ROUND(n) (((n) + REPLY_ALIGN - 1) & ~(size_t)(REPLY_ALIGN - 1))
#define BLOCK_HDR REPLY_ROUND(sizeof(reply_block))
#define HEAD_SIZE REPLY_ROUND(sizeof(reply_head))
#define OBJ_SIZE REPLY_ROUND(sizeof(redictReply))

static char *block_data(reply_block *b)
{
    return (char *)b + BLOCK_HDR;
}

static reply_block *block_new(size_t cap)
{
    reply_block *b = malloc(BLOCK_HDR + cap);

    if (b == NULL)
        return NULL;
    b->next = NULL;
    b->used = 0;
    b->cap = cap;
    return b;
}

/* n bytes (rounded) from the reply's blocks; a big one gets a block of its own, linked
 * behind the first so that the tail keeps taking small objects. */
static void *head_alloc(reply_head *h, size_t n)
{
    reply_block *b = h->tail;
    size_t cap;

    n = REPLY_ROUND(n);
    if (b->cap - b->used >= n) {
        b->used += n;
        return block_data(b) + b->used - n;
    }
    if (n >= REPLY_OWN_BLOCK) {
        if ((b = block_new(n)) == NULL)
            return NULL;
        b->next = h->first->next;
        h->first->next = b; /* the tail, wherever it is, stays reachable */
        b->used = n;
        return block_data(b);
    }
    cap = h->tail->cap * 2 > REPLY_BLOCK_MAX ? REPLY_BLOCK_MAX : h->tail->cap * 2;
    if ((b = block_new(cap > n ? cap : n)) == NULL)
        return NULL;
    b->next = h->tail->next; /* own blocks may follow the tail when it is the first */
    h->tail->next = b;
    h->tail = b;
    b->used = n;
    return block_data(b);
}

static reply_head *task_head(const redictReadTask *t)
{
    while (t->parent != NULL)
        t = t->parent;
    return (reply_head *)((char *)t->obj - HEAD_SIZE);
}

/* A zeroed object of the task's type with extra bytes after it (string or element
 * vector), linked into its parent; a root starts its reply's first block. */
static redictReply *obj_new(const redictReadTask *t, int type, size_t extra, size_t block)
{
    redictReply *r, *parent;
    reply_block *b;
    reply_head *h;

    if (t->parent == NULL) {
        size_t need = HEAD_SIZE + OBJ_SIZE + REPLY_ROUND(extra);
        if ((b = block_new(need > block ? need : block)) == NULL)
            return NULL;
        h = (reply_head *)block_data(b);
        h->first = h->tail = b;
        b->used = need;
        r = (redictReply *)((char *)h + HEAD_SIZE);
        memset(r, 0, sizeof(*r));
        memcpy(r->vtype, REPLY_MARK, sizeof(r->vtype));
    } else {
        if ((r = head_alloc(task_head(t), OBJ_SIZE + extra)) == NULL)
            return NULL;
        memset(r, 0, sizeof(*r));
        parent = t->parent->obj;
        parent->element[t->idx] = r;
    }
    r->type = type;
    return r;
}

static char *obj_extra(redictReply *r)
{
    return (char *)r + OBJ_SIZE;
}

/* A VERB root cannot carry the mark (its vtype is the content type): built the way
 * hiredict builds it, so that freeReplyObject frees it. */
static void *verb_root(char *str, size_t len)
{
    redictReply *r = hi_calloc(1, sizeof(*r));

    if (r == NULL || len < 4 || (r->str = hi_malloc(len - 4 + 1)) == NULL) {
        hi_free(r);
        return NULL;
    }
    r->type = REDICT_REPLY_VERB;
    memcpy(r->vtype, str, 3);
    r->vtype[3] = '\0';
    memcpy(r->str, str + 4, len - 4);
    r->str[len - 4] = '\0';
    r->len = len - 4;
    return r;
}

static void *create_string(const redictReadTask *t, char *str, size_t len)
{
    redictReply *r;

    if (t->type == REDICT_REPLY_VERB) {
        if (t->parent == NULL)
            return verb_root(str, len);
        if (len < 4 || (r = obj_new(t, t->type, len - 4 + 1, 0)) == NULL)
            return NULL;
        memcpy(r->vtype, str, 3);
        r->vtype[3] = '\0';
        str += 4;
        len -= 4;
    } else if ((r = obj_new(t, t->type, len + 1, 0)) == NULL) {
        return NULL;
    }
    r->str = obj_extra(r);
    memcpy(r->str, str, len);
    r->str[len] = '\0';
    r->len = len;
    return r;
}

static void *create_array(const redictReadTask *t, size_t elements)
{
    size_t vec = elements * sizeof(redictReply *);
    redictReply *r;

    if (elements > SIZE_MAX / sizeof(redictReply *) / 2)
        return NULL;
    if ((r = obj_new(t, t->type, vec, REPLY_BLOCK_FIRST)) == NULL)
        return NULL;
    if (elements > 0) {
        r->element = (redictReply **)(void *)obj_extra(r);
        memset(r->element, 0, vec);
    }
    r->elements = elements;
    return r;
}

static void *create_integer(const redictReadTask *t, long long value)
{
    redictReply *r = obj_new(t, REDICT_REPLY_INTEGER, 0, 0);

    if (r != NULL)
        r->integer = value;
    return r;
}

static void *create_double(const redictReadTask *t, double value, char *str, size_t len)
{
    redictReply *r = obj_new(t, REDICT_REPLY_DOUBLE, len + 1, 0);

    if (r == NULL)
        return NULL;
    r->dval = value;
    r->str = obj_extra(r);
    memcpy(r->str, str, len);
    r->str[len] = '\0';
    r->len = len;
    return r;
}

static void *create_nil(const redictReadTask *t)
{
    return obj_new(t, REDICT_REPLY_NIL, 0, 0);
}

static void *create_bool(const redictReadTask *t, int value)
{
    redictReply *r = obj_new(t, REDICT_REPLY_BOOL, 0, 0);

    if (r != NULL)
        r->integer = value != 0;
    return r;
}

static void free_object(void *reply)
{
    bg_bus_reply_free(reply);
}

static redictReplyObjectFunctions reply_fns = {
    .createString = create_string,
    .createArray = create_array,
    .createInteger = create_integer,
    .createDouble = create_double,
    .createNil = create_nil,
    .createBool = create_bool,
    .freeObject = free_object,
};

void bg_bus_reply_blocks(redictContext *c)
{
    c->reader->fn = &reply_fns;
    /* hiredict's default push handler frees with freeReplyObject; RESP2 has no pushes,
     * and without a handler one would reach the caller, who frees it right. */
    c->push_cb = NULL;
}

void bg_bus_reply_free(redisReply *r)
{
    reply_block *b, *next;

    if (r == NULL)
        return;
    if (r->type == REDICT_REPLY_VERB || memcmp(r->vtype, REPLY_MARK, sizeof(r->vtype)) != 0) {
        freeReplyObject(r);
        return;
    }
    for (b = ((reply_head *)((char *)r - HEAD_SIZE))->first; b != NULL; b = next) {
        next = b->next;
        free(b);
    }
}
