/* exchange.c: an exchange's life: creation, the two holds that own it, completion. */
#include "exchange.h"

#include <stdio.h>
#include <stdlib.h>

#include "http_conn.h"
#include "stream.h"

bg_xchg *bg_xchg_new(bg_wk *wk, bg_conn *c)
{
    bg_xchg *x = calloc(1, sizeof(*x));

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
    free(x);
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
