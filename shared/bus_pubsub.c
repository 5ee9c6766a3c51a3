/* bus_pubsub.c: event stream on pub/sub: publish, subscribe on an own connection, wait with a
 * timeout. */
#include "busgate/bus_pubsub.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct ps_sub {
    char *name;
    int pattern;
    struct ps_sub *next;
} ps_sub;

typedef struct ps_queued {
    bg_pubsub_msg msg;
    struct ps_queued *next;
} ps_queued;

struct bg_pubsub {
    bg_bus *bus;
    ps_sub *subs;            /* renewed after every reconnect */
    ps_queued *head, **tail; /* messages read while waiting for a confirmation */
};

int bg_bus_publish(bg_bus *bus, const char *channel, const void *msg, size_t len,
                   long long *receivers, char *err)
{
    const char *argv[] = {"PUBLISH", channel, msg};
    size_t argvlen[] = {7, strlen(channel), len};
    redisReply *r = bg_bus_command_argv(bus, 3, argv, argvlen, err);
    int rc = BG_ERR;

    if (r == NULL)
        return BG_ERR;
    if (r->type == REDIS_REPLY_INTEGER) {
        if (receivers != NULL)
            *receivers = r->integer;
        rc = BG_OK;
    } else if (r->type == REDIS_REPLY_ERROR) {
        bg_set_error(err, "publish to %s: %s", channel, r->str);
    } else {
        bg_set_error(err, "publish to %s: unexpected reply type %d", channel, r->type);
    }
    freeReplyObject(r);
    return rc;
}

void bg_pubsub_msg_free(bg_pubsub_msg *msg)
{
    if (msg == NULL)
        return;
    free(msg->channel);
    free(msg->pattern);
    free(msg->data);
    memset(msg, 0, sizeof(*msg));
}

static char *ps_dup(const redisReply *r)
{
    char *s = malloc(r->len + 1);

    if (s == NULL)
        return NULL;
    memcpy(s, r->str, r->len);
    s[r->len] = '\0';
    return s;
}

static int ps_is_kind(const redisReply *r, const char *kind)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements >= 3 &&
           r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, kind) == 0;
}

/* 1 when r is a delivery (message or pmessage) copied into msg, 0 when it is
 * something else (a confirmation), BG_ERR when out of memory. */
static int ps_msg_from_reply(const redisReply *r, bg_pubsub_msg *msg)
{
    size_t off;

    memset(msg, 0, sizeof(*msg));
    if (ps_is_kind(r, "message") && r->elements == 3)
        off = 1;
    else if (ps_is_kind(r, "pmessage") && r->elements == 4)
        off = 2;
    else
        return 0;
    if (r->element[off]->type != REDIS_REPLY_STRING ||
        r->element[off + 1]->type != REDIS_REPLY_STRING)
        return 0;
    msg->channel = ps_dup(r->element[off]);
    msg->data = ps_dup(r->element[off + 1]);
    msg->len = r->element[off + 1]->len;
    if (off == 2 && r->element[1]->type == REDIS_REPLY_STRING)
        msg->pattern = ps_dup(r->element[1]);
    if (msg->channel == NULL || msg->data == NULL || (off == 2 && msg->pattern == NULL)) {
        bg_pubsub_msg_free(msg);
        return BG_ERR;
    }
    return 1;
}

static int ps_enqueue(bg_pubsub *ps, const redisReply *r, char *err)
{
    ps_queued *q = calloc(1, sizeof(*q));
    int rc = q != NULL ? ps_msg_from_reply(r, &q->msg) : BG_ERR;

    if (rc != 1) {
        free(q);
        if (rc == BG_ERR)
            bg_set_error(err, "pubsub: out of memory for a message");
        return rc == BG_ERR ? BG_ERR : BG_OK;
    }
    *ps->tail = q;
    ps->tail = &q->next;
    return BG_OK;
}

static int ps_confirms(const redisReply *r, const char *kind, const char *name)
{
    return ps_is_kind(r, kind) && r->element[1]->type == REDIS_REPLY_STRING &&
           strcmp(r->element[1]->str, name) == 0;
}

/* Send (P)SUBSCRIBE and read until its confirmation, queueing deliveries for
 * channels we already had that arrive in between. */
static int ps_send_subscribe(bg_pubsub *ps, const char *name, int pattern, char *err)
{
    redisContext *c = bg_bus_context(ps->bus);
    const char *kind = pattern ? "psubscribe" : "subscribe";
    const char *argv[] = {pattern ? "PSUBSCRIBE" : "SUBSCRIBE", name};
    void *r = NULL;

    if (redisAppendCommandArgv(c, 2, argv, NULL) != REDIS_OK)
        goto io_error;
    for (;;) {
        if (redisGetReply(c, &r) != REDIS_OK)
            goto io_error;
        if (((redisReply *)r)->type == REDIS_REPLY_ERROR) {
            bg_set_error(err, "%s %s on %s: %s", argv[0], name, bg_bus_where(ps->bus),
                         ((redisReply *)r)->str);
            freeReplyObject(r);
            return BG_ERR;
        }
        if (ps_confirms(r, kind, name))
            break;
        if (ps_enqueue(ps, r, err) != BG_OK) {
            freeReplyObject(r);
            return BG_ERR;
        }
        freeReplyObject(r);
    }
    freeReplyObject(r);
    return BG_OK;
io_error:
    bg_set_error(err, "%s %s on %s: %s", argv[0], name, bg_bus_where(ps->bus), c->errstr);
    return BG_ERR;
}

/* Reconnect hook: a new connection starts with no subscriptions. An I/O error
 * here leaves the context broken, so the next wait reconnects again. */
static void ps_resubscribe(bg_bus *bus, void *arg)
{
    bg_pubsub *ps = arg;
    char err[BG_ERR_LEN];
    ps_sub *s;

    (void)bus;
    for (s = ps->subs; s != NULL; s = s->next)
        if (ps_send_subscribe(ps, s->name, s->pattern, err) != BG_OK)
            return;
}

bg_pubsub *bg_pubsub_open(const bg_bus_opts *o, char *err)
{
    bg_pubsub *ps = calloc(1, sizeof(*ps));

    if (ps == NULL) {
        bg_set_error(err, "pubsub: out of memory");
        return NULL;
    }
    ps->tail = &ps->head;
    ps->bus = bg_bus_connect(o, err);
    if (ps->bus == NULL) {
        free(ps);
        return NULL;
    }
    bg_bus_set_reconnect_hook(ps->bus, ps_resubscribe, ps);
    return ps;
}

void bg_pubsub_free(bg_pubsub *ps)
{
    if (ps == NULL)
        return;
    while (ps->subs != NULL) {
        ps_sub *next = ps->subs->next;
        free(ps->subs->name);
        free(ps->subs);
        ps->subs = next;
    }
    while (ps->head != NULL) {
        ps_queued *next = ps->head->next;
        bg_pubsub_msg_free(&ps->head->msg);
        free(ps->head);
        ps->head = next;
    }
    bg_bus_free(ps->bus);
    free(ps);
}

static int ps_add(bg_pubsub *ps, const char *name, int pattern, char *err)
{
    ps_sub *s = calloc(1, sizeof(*s));

    if (s == NULL || (s->name = strdup(name)) == NULL) {
        free(s);
        bg_set_error(err, "pubsub: out of memory");
        return BG_ERR;
    }
    s->pattern = pattern;
    s->next = ps->subs;
    ps->subs = s;
    return BG_OK;
}

static int ps_subscribe(bg_pubsub *ps, const char *name, int pattern, char *err)
{
    ps_sub *s;

    for (s = ps->subs; s != NULL; s = s->next)
        if (s->pattern == pattern && strcmp(s->name, name) == 0)
            return BG_OK;
    /* A reconnect renews the old subscriptions through the hook. */
    if (bg_bus_is_broken(ps->bus) && bg_bus_reconnect(ps->bus, err) != BG_OK)
        return BG_ERR;
    if (ps_send_subscribe(ps, name, pattern, err) != BG_OK)
        return BG_ERR;
    return ps_add(ps, name, pattern, err);
}

int bg_pubsub_subscribe(bg_pubsub *ps, const char *channel, char *err)
{
    return ps_subscribe(ps, channel, 0, err);
}

int bg_pubsub_psubscribe(bg_pubsub *ps, const char *pattern, char *err)
{
    return ps_subscribe(ps, pattern, 1, err);
}

/* Nothing else writes on a subscriber connection: push the command out now. */
static int ps_flush(bg_pubsub *ps, const char *channel, char *err)
{
    redisContext *c = bg_bus_context(ps->bus);
    int done = 0;

    while (!done) {
        if (redisBufferWrite(c, &done) != REDIS_OK) {
            bg_set_error(err, "unsubscribe %s on %s: %s", channel, bg_bus_where(ps->bus),
                         c->errstr);
            return BG_ERR;
        }
    }
    return BG_OK;
}

/* Forget the subscription and tell the server; deliveries already on their
 * way may still arrive. The confirmation is skipped by bg_pubsub_wait. */
int bg_pubsub_unsubscribe(bg_pubsub *ps, const char *channel, char *err)
{
    ps_sub **pp = &ps->subs, *s;
    const char *argv[2];
    redisContext *c;

    while (*pp != NULL && strcmp((*pp)->name, channel) != 0)
        pp = &(*pp)->next;
    if ((s = *pp) == NULL)
        return BG_OK;
    *pp = s->next;
    argv[0] = s->pattern ? "PUNSUBSCRIBE" : "UNSUBSCRIBE";
    argv[1] = channel;
    c = bg_bus_context(ps->bus);
    free(s->name);
    free(s);
    if (bg_bus_is_broken(ps->bus))
        return BG_OK; /* the next connection will not have it anyway */
    if (redisAppendCommandArgv(c, 2, argv, NULL) != REDIS_OK) {
        bg_set_error(err, "unsubscribe %s: out of memory", channel);
        return BG_ERR;
    }
    return ps_flush(ps, channel, err);
}

static int ps_pop(bg_pubsub *ps, bg_pubsub_msg *msg)
{
    ps_queued *q = ps->head;

    if (q == NULL)
        return 0;
    ps->head = q->next;
    if (ps->head == NULL)
        ps->tail = &ps->head;
    *msg = q->msg;
    free(q);
    return 1;
}

static void ps_sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

    nanosleep(&ts, NULL); /* a signal may cut it short: the caller's loop decides */
}

/* Down: reconnect if the backoff allows it before the deadline, else sleep to
 * the deadline so that a caller looping on bg_pubsub_wait does not spin. */
static int ps_revive(bg_pubsub *ps, int64_t left, char *err)
{
    int64_t due = bg_bus_next_attempt_in_ms(ps->bus);

    if (due > left) {
        ps_sleep_ms(left);
        bg_set_error(err, "subscriber on %s: disconnected, next attempt in %lld ms",
                     bg_bus_where(ps->bus), (long long)(due - left));
        return BG_ERR;
    }
    return bg_bus_reconnect(ps->bus, err);
}

/* Take one complete reply out of what hiredis has buffered: 1 delivery, 0 none. */
static int ps_take_buffered(bg_pubsub *ps, bg_pubsub_msg *msg, char *err)
{
    redisContext *c = bg_bus_context(ps->bus);
    void *r = NULL;
    int rc;

    for (;;) {
        if (redisGetReplyFromReader(c, &r) != REDIS_OK) {
            bg_set_error(err, "subscriber on %s: %s", bg_bus_where(ps->bus), c->errstr);
            return BG_ERR;
        }
        if (r == NULL)
            return 0;
        rc = ps_msg_from_reply(r, msg);
        freeReplyObject(r);
        if (rc != 0) {
            if (rc == BG_ERR)
                bg_set_error(err, "subscriber: out of memory for a message");
            return rc;
        }
    }
}

/* Wait for the socket to become readable and read what is there: 1 read, 0 timeout. */
static int ps_read_more(bg_pubsub *ps, int64_t left)
{
    redisContext *c = bg_bus_context(ps->bus);
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    int n;

    if (!bg_bus_tls_pending(ps->bus)) {
        n = poll(&pfd, 1, (int)(left > 60000 ? 60000 : left));
        if (n <= 0)
            return 0; /* timeout, or a signal: the caller's loop decides */
    }
    /* On failure the context keeps the error: the next round reconnects. */
    redisBufferRead(c);
    return 1;
}

int bg_pubsub_wait(bg_pubsub *ps, int64_t timeout_ms, bg_pubsub_msg *msg, char *err)
{
    int64_t deadline = bg_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int rc;

    memset(msg, 0, sizeof(*msg));
    for (;;) {
        int64_t left = deadline - bg_mono_ms();
        if (ps_pop(ps, msg))
            return 1;
        if (bg_bus_is_broken(ps->bus)) {
            if (ps_revive(ps, left > 0 ? left : 0, err) != BG_OK)
                return BG_ERR;
            continue;
        }
        rc = ps_take_buffered(ps, msg, err);
        if (rc != 0)
            return rc;
        if (left <= 0 || !ps_read_more(ps, left))
            return 0;
    }
}

unsigned long bg_pubsub_reconnect_count(const bg_pubsub *ps)
{
    return bg_bus_reconnect_count(ps->bus);
}

bg_bus *bg_pubsub_bus(bg_pubsub *ps)
{
    return ps->bus;
}
