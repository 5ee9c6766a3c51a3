/* http_conn_timer.c: the one timeout a connection has at a time: TLS handshake, idle, head,
 * body, send or linger; a stalled head or body is answered 408, a stalled handshake closed. */
#include "http_conn_int.h"

#include "busgate/core/log.h"

static void conn_timeout(bg_conn *c, int kind)
{
    switch (kind) {
    case BG_TK_HEADER:
        bg_debug("client %s: request head not complete in time", c->client);
        bg_conn_fail(c, bg_conn_xchg_new(c), 408, "the request head did not arrive in time");
        break;
    case BG_TK_BODY:
        bg_debug("client %s: request body stalled", c->client);
        bg_conn_fail(c, c->cur, 408, "the request body did not arrive in time");
        break;
    case BG_TK_IDLE:
        /* FIN after a read drain: a request crossing the close meets no reset. */
        bg_conn_linger(c);
        break;
    case BG_TK_HANDSHAKE:
        /* No HTTP answer can be framed before the handshake: just close. */
        bg_debug("client %s: TLS handshake not complete in time", c->peer);
        bg_conn_kill(c);
        break;
    case BG_TK_SEND:
        bg_debug("client %s: took no bytes for %lld ms, closing", c->client,
                 (long long)c->wk->cfg->gateway.body_timeout_ms);
        bg_conn_kill(c);
        break;
    case BG_TK_LINGER:
        bg_conn_kill(c);
        break;
    default:
        break;
    }
}

static int64_t conn_on_timer(bg_ev *loop, bg_ev_timer *t, void *arg)
{
    bg_conn *c = arg;
    int kind = c->tkind;

    (void)loop;
    (void)t;
    c->timer = NULL;
    c->tkind = BG_TK_NONE;
    bg_conn_enter(c);
    conn_timeout(c, kind);
    bg_conn_leave(c);
    return BG_EV_NOMORE;
}

/* Which single timeout applies now, and when it is due. */
static int conn_timer_want(const bg_conn *c, int64_t *due)
{
    const bg_config *cfg = c->wk->cfg;

    /* The handshake counts against the first request's head time, as nginx's
     * client_header_timeout: a client stalling in it holds a connection as long. */
    if (c->tls == BG_TLS_HELLO || c->tls == BG_TLS_HANDSHAKE) {
        *due = c->idle_since_ms + cfg->gateway.header_timeout_ms;
        return BG_TK_HANDSHAKE;
    }
    if (c->rstate == BG_RS_LINGER) {
        *due = c->tkind == BG_TK_LINGER ? c->tdue : bg_mono_ms() + BG_CONN_LINGER_MS;
        return BG_TK_LINGER;
    }
    if (c->want_write) {
        *due = c->send_last_ms + cfg->gateway.body_timeout_ms;
        return BG_TK_SEND;
    }
    if (c->rstate == BG_RS_BODY) {
        *due = c->body_last_ms + cfg->gateway.body_timeout_ms;
        return BG_TK_BODY;
    }
    if (c->rstate == BG_RS_HEAD && c->head_start_ms > 0 && !c->closing) {
        *due = c->head_start_ms + cfg->gateway.header_timeout_ms;
        return BG_TK_HEADER;
    }
    if (c->qlen == 0) {
        /* A connection that never sent a request gets the head timeout, not
         * keep-alive. */
        *due = c->idle_since_ms +
               (c->served > 0 ? cfg->gateway.keepalive_timeout_ms : cfg->gateway.header_timeout_ms);
        if (c->wk->draining && c->served > 0 &&
            *due > c->wk->drain_since_ms + BG_CONN_DRAIN_IDLE_MS)
            *due = c->wk->drain_since_ms + BG_CONN_DRAIN_IDLE_MS;
        return BG_TK_IDLE;
    }
    *due = 0;
    return BG_TK_NONE;
}

void bg_conn_timer_update(bg_conn *c)
{
    int64_t due, now = bg_mono_ms();
    char err[BG_ERR_LEN];
    int kind = conn_timer_want(c, &due);

    if (kind == c->tkind && due == c->tdue && (c->timer != NULL || kind == BG_TK_NONE))
        return;
    c->tkind = kind;
    c->tdue = due;
    if (kind == BG_TK_NONE) {
        bg_ev_timer_del(c->wk->loop, c->timer);
        c->timer = NULL;
        return;
    }
    if (c->timer != NULL) {
        bg_ev_timer_reset(c->wk->loop, c->timer, due > now ? due - now : 0);
        return;
    }
    c->timer = bg_ev_timer_add(c->wk->loop, due > now ? due - now : 0, conn_on_timer, c, err);
    if (c->timer == NULL) {
        bg_error("client %s: %s", c->client, err);
        bg_conn_kill(c);
    }
}
