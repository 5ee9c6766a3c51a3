/* dispatch.c: REQUEST frames to service streams (pipelined XADD), deadlines, CANCEL. */
#include "dispatch_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busgate/routing/bus_view.h"
#include "busgate/proto/frame.h"
#include "busgate/core/log.h"
#include "busgate/metrics/metrics.h"

#define DISPATCH_CANCEL_MAXLEN "10000"
#define DISPATCH_REPLY_TTL_MS (10 * 60 * 1000)
#define DISPATCH_REPLY_KEEP_MS (60 * 1000)
#define DISPATCH_REPLY_COUNT 256

static void dispatch_on_ignore(bg_abus *b, redisReply *reply, void *arg)
{
    (void)b;
    (void)arg;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
        bg_warn("CANCEL not written: %s", reply->str);
}

/* CANCEL on the service's cancel stream: every instance reads it (XREAD, no group). */
void bg_dispatch_cancel(bg_dispatch *d, const bg_xchg *x, const char *reason)
{
    const char *head[] = {"XADD", NULL, "MAXLEN", "~", DISPATCH_CANCEL_MAXLEN, "*"};
    char key[BG_KEY_MAX + 1], err[BG_ERR_LEN];
    const char **argv;
    const size_t *argvlen;
    bg_frame_wire w = {0};
    bg_frame f;
    int argc;

    bg_frame_init(&f, BG_FRAME_CANCEL);
    snprintf(f.id, sizeof(f.id), "%s", x->id);
    snprintf(f.reason, sizeof(f.reason), "%s", reason);
    snprintf(f.service, sizeof(f.service), "%s", x->match.service);
    snprintf(f.gateway, sizeof(f.gateway), "%s", d->wk->cfg->gateway.instance_id);
    f.ts = bg_wall_ms();
    if (bg_key_cancel_stream(&d->names, x->match.service, key, sizeof(key), err) != BG_OK ||
        bg_frame_encode(&f, &w, err) != BG_OK) {
        bg_error("request %s: cannot build CANCEL: %s", x->id, err);
        bg_frame_wire_free(&w);
        return;
    }
    head[1] = key;
    bg_frame_wire_command(&w, head, NULL, (int)BG_ARRAY_LEN(head), &argc, &argv, &argvlen);
    if (bg_abus_command_argv(d->bus, dispatch_on_ignore, NULL, argc, argv, argvlen) != BG_OK)
        bg_warn("request %s: CANCEL (%s) not sent: bus down or full", x->id, reason);
    bg_frame_wire_free(&w);
}

void bg_dispatch_untrack(bg_dispatch *d, bg_xchg *x)
{
    if (x->tracked) {
        bg_inflight_take(&d->table, x->id, strlen(x->id));
        x->tracked = 0;
        if (d->wk->ctx->metrics != NULL)
            bg_metrics_inflight_add(d->wk->ctx->metrics, d->wk->ctx->slot, -1);
    }
    if (x->deadline != NULL) {
        bg_ev_timer_del(d->wk->loop, x->deadline);
        x->deadline = NULL;
    }
    if (x->st != NULL)
        bg_held_forget(d, x); /* its pieces left on the bus are of no use now */
}

static int64_t dispatch_on_deadline(bg_ev *loop, bg_ev_timer *t, void *arg)
{
    bg_xchg *x = arg;
    bg_dispatch *d = x->wk->dispatch;
    char detail[160];

    (void)loop;
    (void)t;
    x->deadline = NULL; /* deleted when we return */
    bg_dispatch_untrack(d, x);
    /* The service may still run it: its in-flight record stays until it expires, so a
     * retry meanwhile gets 409, not a second run. */
    if (x->idem == BG_IDEM_OWNED)
        x->idem = BG_IDEM_SETTLED;
    bg_dispatch_guard_done(d, x, 504);
    bg_dispatch_cancel(d, x, "deadline");
    snprintf(detail, sizeof(detail), "service '%s' did not answer in time", x->match.service);
    bg_xchg_problem(x, 504, detail, NULL);
    return BG_EV_NOMORE;
}

/* Holds x (BG_XHOLD_BUS) until it returns: answering x may write its response and
 * drop the queue's hold, and x must still be there for the bus hold to be dropped. */
static void dispatch_on_xadd(bg_abus *b, redisReply *reply, void *arg)
{
    bg_xchg *x = arg;

    (void)b;
    if ((reply == NULL || reply->type == REDIS_REPLY_ERROR) && x->tracked) {
        bg_warn("request %s: REQUEST to '%s' not written: %s", x->id, x->match.service,
                reply != NULL ? reply->str : "connection lost");
        bg_dispatch_untrack(x->wk->dispatch, x);
        bg_dispatch_idem_settle(x->wk->dispatch, x, NULL);
        bg_dispatch_guard_done(x->wk->dispatch, x, 0);
        bg_xchg_problem(x, 503, "the message bus did not take the request", "Retry-After: 1\r\n");
    }
    bg_xchg_drop_bus(x);
}

/* snprintf(dst, size, "%s", src) without the format machinery (a hot path). */
static void dispatch_copy(char *dst, const char *src, size_t size)
{
    size_t n = strnlen(src, size - 1);

    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* The service's request stream key, worked out once per service (d->keys). */
static const char *dispatch_stream_key(bg_dispatch *d, const char *service, char *err)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    struct bg_dispatch_key *k;

    for (const char *p = service; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    k = &d->keys[h % BG_DISPATCH_KEYS];
    if (k->service[0] != '\0' && strcmp(k->service, service) == 0)
        return k->key;
    k->service[0] = '\0';
    if (bg_key_request_stream(&d->names, service, k->key, sizeof(k->key), err) != BG_OK)
        return NULL;
    /* A valid name fits: the route table holds it in a field of this size. */
    if (bg_strlcpy_checked(k->service, service, sizeof(k->service)) != BG_OK)
        k->service[0] = '\0';
    return k->key;
}

static void dispatch_fill(bg_dispatch *d, const bg_xchg *x, int64_t timeout_ms, bg_frame *f)
{
    bg_frame_init(f, BG_FRAME_REQUEST);
    memcpy(f->id, x->id, sizeof(x->id));
    dispatch_copy(f->service, x->match.service, sizeof(f->service));
    /* A method the frame cannot hold was never FOUND in the table; the encoder refuses "". */
    if (bg_strlcpy_checked(f->method, x->method, sizeof(f->method)) != BG_OK)
        f->method[0] = '\0';
    dispatch_copy(f->reply_to, d->reply_key, sizeof(f->reply_to));
    dispatch_copy(f->gateway, d->wk->cfg->gateway.instance_id, sizeof(f->gateway));
    f->ts = bg_wall_ms();
    f->deadline_ms = f->ts + timeout_ms; /* wall clock: it crosses the bus */
    f->path = (bg_bytes){x->path, x->path_len};
    if (x->query != NULL)
        f->query = (bg_bytes){x->query, x->query_len};
    f->endpoint = (bg_bytes){x->match.endpoint, strlen(x->match.endpoint)};
    if (x->body.len > 0)
        f->body = (bg_bytes){x->body.p, x->body.len};
    f->meta_json = (bg_bytes){x->meta.p, x->meta.len};
}

/* Encodes and queues the XADD; bg_abus flushes every command of this loop iteration in
 * one write, so concurrent requests leave pipelined. */
static int dispatch_write(bg_dispatch *d, bg_xchg *x, int64_t timeout_ms, char *err)
{
    /* No MAXLEN: it would trim unread requests. The master trims what was acknowledged. */
    const char *head[] = {"XADD", NULL, "*"};
    const char **argv;
    const size_t *argvlen;
    bg_frame_wire w = {0};
    bg_frame f;
    int argc, rv = BG_ERR;

    dispatch_fill(d, x, timeout_ms, &f);
    if ((head[1] = dispatch_stream_key(d, x->match.service, err)) == NULL ||
        bg_frame_encode(&f, &w, err) != BG_OK)
        goto cleanup;
    bg_frame_wire_command(&w, head, NULL, (int)BG_ARRAY_LEN(head), &argc, &argv, &argvlen);
    if (bg_abus_command_argv(d->bus, dispatch_on_xadd, x, argc, argv, argvlen) != BG_OK) {
        bg_set_error(err, "bus connection down or %zu commands in flight",
                     bg_abus_inflight(d->bus));
        goto cleanup;
    }
    bg_xchg_hold_bus(x); /* dropped by dispatch_on_xadd, which always runs */
    rv = BG_OK;
cleanup:
    bg_frame_wire_free(&w);
    return rv;
}

static int64_t dispatch_timeout(const bg_dispatch *d, const bg_xchg *x)
{
    return x->match.timeout_ms > 0 ? x->match.timeout_ms : d->wk->cfg->gateway.request_timeout_ms;
}

void bg_dispatch_send(bg_dispatch *d, bg_xchg *x)
{

    if (!bg_dispatch_ready(d)) {
        bg_xchg_problem(x, 503, "the message bus is unavailable", "Retry-After: 1\r\n");
        return;
    }
    if (bg_dispatch_guard(d, x))
        return;
    if (x->idem_key != NULL && x->idem == BG_IDEM_NONE) {
        bg_dispatch_idem_begin(d, x, dispatch_timeout(d, x)); /* sends when the key is ours */
        return;
    }
    bg_dispatch_send_now(d, x);
}

void bg_dispatch_send_now(bg_dispatch *d, bg_xchg *x)
{
    int64_t timeout = dispatch_timeout(d, x);
    char err[BG_ERR_LEN];

    if (bg_inflight_put(&d->table, x->id, x, err) != BG_OK) {
        bg_error("request %s: %s", x->id, err);
        bg_dispatch_guard_done(d, x, 0);
        bg_dispatch_idem_settle(d, x, NULL);
        bg_xchg_problem(x, 503, "the gateway is overloaded", "Retry-After: 1\r\n");
        return;
    }
    x->tracked = 1;
    if (d->wk->ctx->metrics != NULL)
        bg_metrics_inflight_add(d->wk->ctx->metrics, d->wk->ctx->slot, 1);
    x->deadline = bg_ev_timer_add(d->wk->loop, timeout, dispatch_on_deadline, x, err);
    if (x->deadline == NULL || dispatch_write(d, x, timeout, err) != BG_OK) {
        bg_warn("request %s to '%s' not sent: %s", x->id, x->match.service, err);
        bg_dispatch_untrack(d, x);
        bg_dispatch_guard_done(d, x, 0);
        bg_dispatch_idem_settle(d, x, NULL);
        bg_xchg_problem(x, 503, "the message bus is unavailable", "Retry-After: 1\r\n");
        return;
    }
    x->t_bus_us = bg_mono_us();
    bg_bv_add(d->wk->ctx->busview, x->match.service, 1);
}

void bg_dispatch_abandon(bg_dispatch *d, bg_xchg *x)
{
    if (!x->tracked)
        return;
    bg_dispatch_untrack(d, x);
    bg_dispatch_guard_done(d, x, 0);
    bg_dispatch_cancel(d, x, "client_gone");
}

int bg_dispatch_ready(const bg_dispatch *d)
{
    return bg_abus_connected(d->bus) && bg_reply_reader_ready(d->reader);
}

size_t bg_dispatch_inflight(const bg_dispatch *d)
{
    return bg_inflight_count(&d->table);
}

unsigned long bg_dispatch_reconnects(const bg_dispatch *d)
{
    return bg_abus_reconnects(d->bus) + bg_reply_reader_reconnects(d->reader);
}

bg_abus *bg_dispatch_bus(bg_dispatch *d)
{
    return d->bus;
}

const char *bg_dispatch_reply_key(const bg_dispatch *d)
{
    return d->reply_key;
}

static int dispatch_names(bg_dispatch *d, char *err)
{
    const bg_config *cfg = d->wk->cfg;

    bg_messaging_names_from_config(&d->names, cfg);
    return bg_key_reply_stream(&d->names, cfg->gateway.instance_id, d->wk->ctx->slot, d->reply_key,
                               sizeof(d->reply_key), err);
}

/* XREAD BLOCK must return before the command timeout would call the connection dead. */
static int64_t dispatch_block_ms(const bg_config *cfg)
{
    int64_t t = cfg->valkey.command_timeout_ms;

    return t <= 0 || t / 2 > 1000 ? 1000 : (t / 2 > 10 ? t / 2 : 10);
}

bg_dispatch *bg_dispatch_new(bg_wk *wk, const bg_bus_opts *bus, char *err)
{
    bg_dispatch *d = calloc(1, sizeof(*d));
    bg_reply_opts ro = {0};

    if (d == NULL) {
        bg_set_error(err, "dispatch: out of memory");
        return NULL;
    }
    d->wk = wk;
    if (dispatch_names(d, err) != BG_OK || bg_inflight_init(&d->table, err) != BG_OK)
        goto fail;
    ro.key = d->reply_key;
    ro.block_ms = dispatch_block_ms(wk->cfg);
    ro.count = DISPATCH_REPLY_COUNT;
    ro.ttl_ms = DISPATCH_REPLY_TTL_MS;
    ro.keep_read_ms = DISPATCH_REPLY_KEEP_MS;
    ro.keep_fn = bg_held_oldest_ms;
    ro.count_fn = bg_held_read_count;
    ro.hook_arg = d;
    d->reader = bg_reply_reader_new(wk->loop, bus, &ro, bg_dispatch_on_reply, d, err);
    if (d->reader == NULL)
        goto fail;
    d->bus = bg_abus_new(wk->loop, bus, err);
    if (d->bus == NULL)
        goto fail;
    if (wk->cfg->valkey.max_inflight > 0)
        bg_abus_set_max_inflight(d->bus, (size_t)wk->cfg->valkey.max_inflight);
    return d;
fail:
    bg_dispatch_free(d);
    return NULL;
}

void bg_dispatch_free(bg_dispatch *d)
{
    if (d == NULL)
        return;
    bg_reply_reader_free(d->reader);
    bg_abus_free(d->bus); /* pending XADD callbacks run with NULL and drop their holds */
    bg_inflight_free(&d->table);
    free(d);
}
