/* http_conn.c: one client connection: lifecycle, the exchange queue (answered in request
 * order, so pipelining works), and what happens after every event. */
#include "http_conn_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "busgate/core/log.h"

/* ---- exchanges ---- */

bg_xchg *bg_conn_xchg_new(bg_conn *c)
{
    bg_xchg *x = bg_xchg_new(c->wk, c);

    if (x == NULL)
        return NULL;
    snprintf(x->client, sizeof(x->client), "%s", c->client);
    x->tls = c->ssl != NULL;
    if (c->qtail != NULL)
        c->qtail->next = x;
    else
        c->qhead = x;
    c->qtail = x;
    c->qlen++;
    return x;
}

void bg_conn_xchg_answered(bg_conn *c, bg_xchg *x)
{
    if (x->err_close)
        c->closing = 1;
    bg_conn_enter(c);
    bg_conn_flush(c);
    bg_conn_leave(c);
}

void bg_conn_xchg_ready(bg_conn *c, bg_xchg *x)
{
    switch (x->kind) {
    case BG_XK_ROUTE:
        c->wk->handlers->route(c->wk, x);
        return;
    case BG_XK_ADMIN:
        c->wk->handlers->admin(c->wk, x);
        return;
    case BG_XK_ERROR:
    default:
        bg_xchg_problem(x, x->err_status, x->err_detail, x->err_extra[0] ? x->err_extra : NULL);
        return;
    }
}

/* An answer of the gateway's own that ends the connection (parse errors, 408).
 */
void bg_conn_fail(bg_conn *c, bg_xchg *x, int status, const char *detail)
{
    if (x == NULL) {
        bg_conn_kill(c); /* no memory even for the answer */
        return;
    }
    x->kind = BG_XK_ERROR;
    x->err_status = status;
    x->err_close = 1;
    snprintf(x->err_detail, sizeof(x->err_detail), "%s", detail);
    c->closing = 1;
    c->rstate = BG_RS_STOP;
    bg_conn_xchg_ready(c, x);
}

/* ---- lifecycle ---- */

void bg_conn_enter(bg_conn *c)
{
    c->busy++;
}

void bg_conn_leave(bg_conn *c)
{
    if (--c->busy > 0)
        return;
    if (c->killed) {
        free(c);
        return;
    }
    bg_conn_update(c);
}

/* TLS turns directions around: a read may wait to write (a key update's answer) and a
 * write to read; such an event goes to the side that waits for it. */
static void conn_on_event(bg_ev *loop, int fd, void *arg, int mask)
{
    bg_conn *c = arg;
    int can_write = mask & BG_EV_WRITABLE, can_read = mask & BG_EV_READABLE;

    (void)loop;
    (void)fd;
    bg_conn_enter(c);
    if (c->tls == BG_TLS_HELLO || c->tls == BG_TLS_HANDSHAKE) {
        bg_conn_tls_handshake(c);
        bg_conn_leave(c);
        return;
    }
    if (!c->killed && (can_write || (can_read && c->tls_write_wants)))
        bg_conn_flush(c);
    if (!c->killed && (can_read || (can_write && c->tls_read_wants)))
        bg_conn_read(c);
    bg_conn_leave(c);
}

/* Events the connection waits for now. */
static int conn_want(const bg_conn *c)
{
    int want = 0;

    if (c->tls == BG_TLS_HELLO || c->tls == BG_TLS_HANDSHAKE)
        return c->tls_read_wants ? BG_EV_WRITABLE : BG_EV_READABLE;
    /* After a "close" request the socket is still watched (bytes are dropped) so that a
     * client leaving early is noticed and its request cancelled. */
    if (c->rstate == BG_RS_LINGER || (c->no_more && c->rstate == BG_RS_HEAD && !c->closing))
        want = BG_EV_READABLE;
    else if (!c->closing && (c->rstate == BG_RS_BODY || c->qlen < BG_CONN_MAX_PIPELINE))
        want = BG_EV_READABLE;
    /* A write that waits for the peer's bytes must not spin on a writable socket. */
    if ((c->want_write && !c->tls_write_wants) || c->tls_read_wants)
        want |= BG_EV_WRITABLE;
    if (c->tls_write_wants)
        want |= BG_EV_READABLE;
    return want;
}

static void conn_interest(bg_conn *c)
{
    int want = conn_want(c);
    char err[BG_ERR_LEN];

    if (want == c->mask)
        return;
    if ((c->mask & ~want) != 0)
        bg_ev_file_del(c->wk->loop, c->fd, c->mask & ~want);
    if ((want & ~c->mask) != 0 &&
        bg_ev_file_add(c->wk->loop, c->fd, want & ~c->mask, conn_on_event, c, err) != BG_OK) {
        bg_error("client %s: %s", c->client, err);
        bg_conn_kill(c);
        return;
    }
    c->mask = want;
}

void bg_conn_update(bg_conn *c)
{
    /* Plaintext OpenSSL holds raises no event: read it while reading is wanted. */
    if (!c->processing && bg_conn_tls_pending(c) && (conn_want(c) & BG_EV_READABLE) &&
        c->rstate != BG_RS_LINGER && !c->no_more) {
        bg_conn_enter(c);
        bg_conn_read(c);
        bg_conn_leave(c); /* back here, with less or nothing pending */
        return;
    }
    /* Responses flushed may have made room for pipelined requests already
     * buffered. */
    if (!c->processing && c->rstate == BG_RS_HEAD && c->in_off < c->in.len && !c->closing &&
        !c->no_more && !c->blocked && c->qlen < BG_CONN_MAX_PIPELINE) {
        bg_conn_process(c);
        return; /* bg_conn_process ends in bg_conn_leave -> bg_conn_update */
    }
    if (c->rstate == BG_RS_HEAD && c->qlen == 0 && c->in.len == 0 &&
        c->in.cap > BG_CONN_IDLE_BUF_MAX)
        bg_buf_free(&c->in);
    if (!c->killed)
        conn_interest(c);
    if (!c->killed)
        bg_conn_timer_update(c);
}

static void conn_unlink(bg_conn *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        c->wk->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->wk->nconns--;
}

/* Closes now: requests still waiting for a service are cancelled
 * ("client_gone"). The struct itself goes when the outermost handler returns.
 */
void bg_conn_kill(bg_conn *c)
{
    bg_wk *wk = c->wk;

    if (c->killed)
        return;
    c->killed = 1;
    bg_conn_abandon_queue(c);
    if (c->mask != 0)
        bg_ev_file_del(wk->loop, c->fd, c->mask);
    bg_conn_tls_free(c);
    close(c->fd);
    bg_ev_timer_del(wk->loop, c->timer);
    c->timer = NULL;
    bg_buf_free(&c->in);
    conn_unlink(c);
    if (c->busy == 0)
        free(c);
    bg_wk_check_drained(wk);
}

int bg_conn_new(bg_wk *wk, int fd, const char *client, const char *peer, SSL_CTX *tls, char *err)
{
    bg_conn *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        bg_set_error(err, "connection: out of memory");
        close(fd);
        return BG_ERR;
    }
    c->wk = wk;
    c->fd = fd;
    if (tls != NULL && bg_conn_tls_start(c, tls, err) != BG_OK) {
        close(fd);
        free(c);
        return BG_ERR;
    }
    snprintf(c->client, sizeof(c->client), "%s", client);
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    bg_http_parser_init(&c->parser);
    c->idle_since_ms = c->send_last_ms = bg_mono_ms();
    c->next = wk->conns;
    if (wk->conns != NULL)
        wk->conns->prev = c;
    wk->conns = c;
    wk->nconns++;
    bg_conn_enter(c);
    bg_conn_leave(c); /* registers for reading and arms the first timeout */
    return BG_OK;
}

int bg_conn_is_tls(const bg_conn *c)
{
    return c->ssl != NULL;
}

const char *bg_conn_client_subject(const bg_conn *c)
{
    return c->client_subject;
}

void bg_conn_close_all(bg_wk *wk)
{
    while (wk->conns != NULL)
        bg_conn_kill(wk->conns);
}

/* Keep-alive connections idle after a response are not closed at once: a request
 * the client sends at that moment would meet a reset. They keep BG_CONN_DRAIN_IDLE_MS
 * to send one more request, answered with "Connection: close", and are then closed
 * with a lingering close (their timers say when). A connection that never sent a
 * request may have its first one still unread in the socket: it is served the same
 * way, or ends by the header timeout. */
void bg_conn_drain_all(bg_wk *wk)
{
    bg_conn *c = wk->conns, *next;

    for (; c != NULL; c = next) {
        next = c->next;
        if (!c->killed)
            bg_conn_timer_update(c);
    }
}
