/* bus_queue.c: a work queue on a Valkey stream consumer group: setup, group, enqueue, ack. */
#include "bus_queue_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Most fields one XADD accepts: keeps argc far from INT_MAX. */
#define QUEUE_MAX_FIELDS 65536

void bg_queue_opts_init(bg_queue_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->lease_ms = 5 * 60 * 1000;
    o->max_deliveries = 5;
    o->start_id = "0";
}

static int queue_validate(const bg_queue_opts *o, char *err)
{
    if (o->stream == NULL || o->stream[0] == '\0' || o->group == NULL || o->group[0] == '\0') {
        bg_set_error(err, "queue: stream and group names are required");
        return BG_ERR;
    }
    if (o->lease_ms <= 0 || o->max_deliveries < 0) {
        bg_set_error(err, "queue %s: lease_ms must be > 0 and max_deliveries >= 0", o->stream);
        return BG_ERR;
    }
    if (o->consumer != NULL && o->consumer[0] == '\0') {
        bg_set_error(err, "queue %s: empty consumer name", o->stream);
        return BG_ERR;
    }
    return BG_OK;
}

static int queue_copy_names(bg_queue *q, const bg_queue_opts *o)
{
    const char *start = o->start_id != NULL && o->start_id[0] != '\0' ? o->start_id : "0";
    size_t dlen = strlen(o->stream) + sizeof(BG_QUEUE_DEAD_SUFFIX);

    q->stream = strdup(o->stream);
    q->group = strdup(o->group);
    q->start_id = strdup(start);
    q->consumer = o->consumer != NULL ? strdup(o->consumer) : NULL;
    q->dead_stream = malloc(dlen);
    if (q->dead_stream != NULL)
        snprintf(q->dead_stream, dlen, "%s%s", o->stream, BG_QUEUE_DEAD_SUFFIX);
    if (q->stream == NULL || q->group == NULL || q->start_id == NULL || q->dead_stream == NULL ||
        (o->consumer != NULL && q->consumer == NULL))
        return BG_ERR;
    return BG_OK;
}

bg_queue *bg_queue_new(bg_bus *bus, const bg_queue_opts *o, char *err)
{
    bg_queue *q;

    if (bus == NULL) {
        bg_set_error(err, "queue: no bus connection");
        return NULL;
    }
    if (queue_validate(o, err) != BG_OK)
        return NULL;
    q = calloc(1, sizeof(*q));
    if (q == NULL || queue_copy_names(q, o) != BG_OK) {
        bg_set_error(err, "queue %s: out of memory", o->stream);
        bg_queue_free(q);
        return NULL;
    }
    q->bus = bus;
    q->lease_ms = o->lease_ms;
    q->max_deliveries = o->max_deliveries;
    q->maxlen = o->maxlen;
    snprintf(q->cursor, sizeof(q->cursor), "0-0");
    return q;
}

void bg_queue_free(bg_queue *q)
{
    if (q == NULL)
        return;
    free(q->stream);
    free(q->dead_stream);
    free(q->group);
    free(q->consumer);
    free(q->start_id);
    free(q);
}

const char *bg_queue_stream(const bg_queue *q)
{
    return q->stream;
}

const char *bg_queue_dead_stream(const bg_queue *q)
{
    return q->dead_stream;
}

unsigned long bg_queue_command_count(const bg_queue *q)
{
    return q->commands;
}

void bg_queue_reconnect_hook(bg_bus *bus, void *q)
{
    (void)bus;
    /* Only a flag: running commands from inside the bus's reconnect would re-enter it. */
    ((bg_queue *)q)->need_group = 1;
}

int bg_queue_need_consumer(const bg_queue *q, const char *what, char *err)
{
    if (q->consumer != NULL)
        return BG_OK;
    bg_set_error(err, "%s %s: the queue has no consumer name", what, q->stream);
    return BG_ERR;
}

redisReply *bg_queue_send(bg_queue *q, const char *what, int argc, const char **argv,
                          const size_t *lens, char *err)
{
    size_t own[16];
    char why[BG_ERR_LEN] = "";
    redisReply *r;
    int i;

    if (lens == NULL && argc <= (int)BG_ARRAY_LEN(own)) {
        for (i = 0; i < argc; i++)
            own[i] = strlen(argv[i]);
        lens = own;
    }
    q->commands++;
    r = bg_bus_command_argv(q->bus, argc, argv, lens, why);
    if (r == NULL)
        bg_set_error(err, "%s %s: %s", what != NULL ? what : argv[0], q->stream, why);
    return r;
}

redisReply *bg_queue_run(bg_queue *q, const char *what, int argc, const char **argv,
                         const size_t *lens, char *err)
{
    redisReply *r = bg_queue_send(q, what, argc, argv, lens, err);

    if (r == NULL || r->type != REDIS_REPLY_ERROR)
        return r;
    bg_set_error(err, "%s %s: %s", what != NULL ? what : argv[0], q->stream, r->str);
    bg_bus_reply_free(r);
    return NULL;
}

int bg_queue_ensure_group(bg_queue *q, char *err)
{
    const char *argv[] = {"XGROUP", "CREATE", q->stream, q->group, q->start_id, "MKSTREAM"};
    redisReply *r;
    int rc = BG_OK;

    q->next_create_ms = bg_mono_ms() + BG_QUEUE_GROUP_RETRY_MS;
    r = bg_queue_send(q, "XGROUP CREATE", (int)BG_ARRAY_LEN(argv), argv, NULL, err);
    if (r == NULL)
        return BG_ERR;
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0) {
        bg_set_error(err, "XGROUP CREATE %s %s: %s", q->stream, q->group, r->str);
        rc = BG_ERR;
    }
    bg_bus_reply_free(r);
    if (rc == BG_OK)
        q->need_group = 0;
    return rc;
}

/* Fill argv/lens for XADD stream [MAXLEN ~ maxlen] * fields...; returns argc. */
static int xadd_argv(const char **argv, size_t *lens, const char *stream, const char *maxlen,
                     const bg_field *fields, size_t n)
{
    int argc = 0;
    size_t i;

    argv[argc++] = "XADD";
    argv[argc++] = stream;
    if (maxlen != NULL) {
        argv[argc++] = "MAXLEN";
        argv[argc++] = "~";
        argv[argc++] = maxlen;
    }
    argv[argc++] = "*";
    for (i = 0; i < (size_t)argc; i++)
        lens[i] = strlen(argv[i]);
    for (i = 0; i < n; i++) {
        argv[argc] = fields[i].name.ptr;
        lens[argc++] = fields[i].name.len;
        argv[argc] = fields[i].value.ptr;
        lens[argc++] = fields[i].value.len;
    }
    return argc;
}

static int xadd_reply(redisReply *r, const char *stream, char *id_out, char *err)
{
    int rc = BG_ERR;

    if (r->type == REDIS_REPLY_ERROR) {
        bg_set_error(err, "XADD %s: %s", stream, r->str);
    } else if (r->type != REDIS_REPLY_STRING || r->len >= BG_QUEUE_ID_LEN) {
        bg_set_error(err, "XADD %s: unexpected reply type %d", stream, r->type);
    } else {
        if (id_out != NULL)
            memcpy(id_out, r->str, r->len + 1);
        rc = BG_OK;
    }
    bg_bus_reply_free(r);
    return rc;
}

static int queue_xadd(bg_bus *bus, const char *stream, size_t maxlen, const bg_field *fields,
                      size_t n, char *id_out, char *err)
{
    char maxbuf[24], why[BG_ERR_LEN] = "";
    const char **argv = NULL;
    size_t *lens = NULL;
    redisReply *r;
    int argc, rc = BG_ERR;

    if (n == 0 || n > QUEUE_MAX_FIELDS) {
        bg_set_error(err, "XADD %s: %zu fields (1..%d allowed)", stream, n, QUEUE_MAX_FIELDS);
        return BG_ERR;
    }
    argv = malloc((2 * n + 6) * sizeof(*argv));
    lens = malloc((2 * n + 6) * sizeof(*lens));
    if (argv == NULL || lens == NULL) {
        bg_set_error(err, "XADD %s: out of memory", stream);
        goto cleanup;
    }
    snprintf(maxbuf, sizeof(maxbuf), "%zu", maxlen);
    argc = xadd_argv(argv, lens, stream, maxlen > 0 ? maxbuf : NULL, fields, n);
    r = bg_bus_command_argv(bus, argc, argv, lens, why);
    if (r == NULL) {
        bg_set_error(err, "XADD %s: %s", stream, why);
        goto cleanup;
    }
    rc = xadd_reply(r, stream, id_out, err);
cleanup:
    free(argv);
    free(lens);
    return rc;
}

int bg_queue_enqueue(bg_queue *q, const bg_field *fields, size_t n, char *id_out, char *err)
{
    q->commands++;
    return queue_xadd(q->bus, q->stream, q->maxlen, fields, n, id_out, err);
}

int bg_queue_enqueue_to(bg_bus *bus, const char *stream, size_t maxlen, const bg_field *fields,
                        size_t n, char *id_out, char *err)
{
    return queue_xadd(bus, stream, maxlen, fields, n, id_out, err);
}

int bg_queue_ack(bg_queue *q, const char *id, char *err)
{
    return bg_queue_ack_ids(q, &id, 1, err);
}

int bg_queue_ack_ids(bg_queue *q, const char *const *ids, size_t n, char *err)
{
    const char **argv;
    redisReply *r;
    size_t i;

    if (n == 0)
        return BG_OK;
    if (n > QUEUE_MAX_FIELDS) {
        bg_set_error(err, "XACK %s: %zu ids at once (at most %d)", q->stream, n, QUEUE_MAX_FIELDS);
        return BG_ERR;
    }
    argv = malloc((n + 3) * sizeof(*argv));
    if (argv == NULL) {
        bg_set_error(err, "XACK %s: out of memory", q->stream);
        return BG_ERR;
    }
    argv[0] = "XACK";
    argv[1] = q->stream;
    argv[2] = q->group;
    for (i = 0; i < n; i++)
        argv[i + 3] = ids[i];
    /* lens NULL: the bus falls back to strlen, ids are plain text. */
    r = bg_queue_run(q, NULL, (int)n + 3, argv, NULL, err);
    free(argv);
    if (r == NULL)
        return BG_ERR;
    bg_bus_reply_free(r);
    return BG_OK;
}
