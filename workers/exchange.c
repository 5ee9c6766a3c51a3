/* exchange.c: an exchange's life: creation, the two holds that own it, completion. */
#include "exchange.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_conn.h"
#include "stream.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define XCHG_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define XCHG_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define XCHG_POISON(p, n) ((void)(p), (void)(n))
#define XCHG_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* Kept for reuse: enough for the requests of one busy loop iteration; past it, freed. */
#define XCHG_CACHE_MAX 256

/* A zeroed exchange, from the cache when it has one. Cached ones stay poisoned under
 * ASan, so a use after "free" is still reported. */
static bg_xchg *xchg_alloc(bg_wk *wk)
{
    bg_xchg *x = wk->xfree;

    if (x == NULL)
        return calloc(1, sizeof(*x));
    XCHG_UNPOISON(x, sizeof(*x));
    wk->xfree = x->next;
    wk->nxfree--;
    memset(x, 0, sizeof(*x));
    return x;
}

static void xchg_release(bg_wk *wk, bg_xchg *x)
{
    if (wk->nxfree >= XCHG_CACHE_MAX) {
        free(x);
        return;
    }
    x->next = wk->xfree;
    wk->xfree = x;
    wk->nxfree++;
    XCHG_POISON(x, sizeof(*x));
}

void bg_xchg_cache_free(bg_wk *wk)
{
    while (wk->xfree != NULL) {
        bg_xchg *x = wk->xfree;

        XCHG_UNPOISON(x, sizeof(*x));
        wk->xfree = x->next;
        free(x);
    }
    wk->nxfree = 0;
}

bg_xchg *bg_xchg_new(bg_wk *wk, bg_conn *c)
{
    bg_xchg *x = xchg_alloc(wk);

    if (x == NULL)
        return NULL;
    x->wk = wk;
    x->conn = c;
    x->holds = BG_XHOLD_QUEUE;
    x->version = 11;
    x->t_start_us = bg_mono_us();
    x->t_start_wall_ms = bg_wall_ms();
    bg_wk_request_id(wk, x->id);
    return x;
}

static void xchg_drop(bg_xchg *x, int hold)
{
    x->holds &= ~hold;
    if (x->holds != 0)
        return;
    /* A probe whose verdict was never given (a path that forgot) gives its slot back. */
    bg_brk_release(x->wk->ctx->breaker, x->match.service, &x->brk);
    free(x->path);
    free(x->query);
    free(x->auth);
    free(x->idem_key);
    bg_buf_free(&x->meta);
    bg_buf_free(&x->body);
    bg_buf_free(&x->out);
    bg_xstream_free(x->st);
    xchg_release(x->wk, x);
}

void bg_xchg_drop_queue(bg_xchg *x)
{
    x->conn = NULL;
    xchg_drop(x, BG_XHOLD_QUEUE);
}

void bg_xchg_hold_bus(bg_xchg *x)
{
    x->nbus++;
    x->holds |= BG_XHOLD_BUS;
}

void bg_xchg_drop_bus(bg_xchg *x)
{
    if (--x->nbus > 0)
        return;
    xchg_drop(x, BG_XHOLD_BUS);
}

void bg_xchg_resp_ctx(const bg_xchg *x, bg_resp_ctx *rc)
{
    const bg_wk *wk = x->wk;

    rc->version = x->version;
    rc->keep_alive = x->keep_alive && !x->err_close && !wk->draining &&
                     wk->cfg->gateway.keepalive_timeout_ms > 0;
    rc->head = x->m == BG_HTTP_M_HEAD;
    rc->request_id = x->id;
}

void bg_xchg_done(bg_xchg *x, int status)
{
    x->answered = 1;
    x->status = status;
    if (x->conn != NULL)
        bg_conn_xchg_answered(x->conn, x);
}

void bg_xchg_more(bg_xchg *x)
{
    if (x->conn != NULL && x->answered)
        bg_conn_xchg_answered(x->conn, x);
}

size_t bg_xchg_queued(const bg_xchg *x)
{
    return x->out.len - x->out_off;
}

void bg_xchg_problem(bg_xchg *x, int status, const char *detail, const char *extra)
{
    bg_resp_ctx rc;

    bg_xchg_resp_ctx(x, &rc);
    x->out.len = 0;
    if (bg_resp_problem(&x->out, &rc, status, detail, extra) != BG_OK) {
        x->out.len = 0; /* nothing sensible to send: close instead */
        x->err_close = 1;
    }
    bg_xchg_done(x, status);
}
