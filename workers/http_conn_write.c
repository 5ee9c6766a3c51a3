/* http_conn_write.c: writing a connection: the answered head of the queue goes out with
 * writev, in request order; then metrics, the access log, and keep-alive or close. */
#include "http_conn_int.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "busgate/core/access_log.h"
#include "busgate/core/log.h"
#include "busgate/metrics/metrics.h"

#define CONN_IOV_MAX 64

/* Metrics and the access log, once the response is written. */
static void conn_log_done(bg_conn *c, bg_xchg *x)
{
    int64_t total_us = bg_mono_us() - x->t_start_us;
    const char *service = x->kind == BG_XK_ROUTE ? x->match.service : NULL;
    bg_access_entry e = {
        .start_wall_ms = x->t_start_wall_ms,
        .request_id = x->id,
        .client = c->peer,
        .method = x->method[0] ? x->method : NULL,
        .path = x->path,
        .status = x->status,
        .bytes = x->out_total,
        .service = service,
        .instance = x->instance[0] ? x->instance : NULL,
        .total_us = total_us,
        .bus_us = x->t_bus_us && x->t_reply_us ? x->t_reply_us - x->t_bus_us : -1,
    };

    if (c->wk->ctx->metrics != NULL)
        bg_metrics_request_done(c->wk->ctx->metrics, c->wk->ctx->slot, service, x->status,
                                total_us);
    bg_access_log_write(&e);
}

/* Every request still queued is dropped; those waiting for a service are cancelled. */
void bg_conn_abandon_queue(bg_conn *c)
{
    while (c->qhead != NULL) {
        bg_xchg *x = c->qhead;
        c->qhead = x->next;
        x->conn = NULL; /* whatever finishes x from here on has nobody to tell */
        c->wk->handlers->abandon(c->wk, x);
        bg_xchg_drop_queue(x);
    }
    c->qtail = NULL;
    c->qlen = 0;
}

/* Half-close and read what the client still sends, so the kernel does not
 * answer its unread bytes with a reset that could destroy our last response in
 * flight. */
void bg_conn_linger(bg_conn *c)
{
    c->rstate = BG_RS_LINGER;
    c->closing = 1;
    bg_conn_abandon_queue(c);
    bg_conn_tls_shutdown(c);
    if (shutdown(c->fd, SHUT_WR) != 0) {
        bg_conn_kill(c);
        return;
    }
    c->tkind = BG_TK_NONE; /* force a re-arm */
}

/* The response at the head of the queue is fully written. */
static void conn_pop(bg_conn *c)
{
    bg_xchg *x = c->qhead;
    int close = x->err_close || !x->keep_alive || c->wk->cfg->gateway.keepalive_timeout_ms <= 0;

    c->qhead = x->next;
    if (c->qhead == NULL)
        c->qtail = NULL;
    c->qlen--;
    c->served++;
    c->idle_since_ms = bg_mono_ms();
    conn_log_done(c, x);
    bg_xchg_drop_queue(x);
    /* Draining: once nothing more will be answered (no_more: what is still
     * buffered is not read as requests any more). */
    if (close || (c->wk->draining && c->qlen == 0 && c->rstate == BG_RS_HEAD &&
                  (c->no_more || c->in_off == c->in.len)))
        bg_conn_linger(c);
}

/* What is written next: answered responses in request order, up to and including an open
 * stream (what follows it waits until it has ended). */
static int conn_iov(bg_conn *c, struct iovec *iov)
{
    bg_xchg *x;
    int n = 0;

    for (x = c->qhead; x != NULL && x->answered && n < CONN_IOV_MAX; x = x->next) {
        int open = x->streaming || x->stream_abort;
        if (!open || x->out.len > x->out_off) {
            iov[n].iov_base = x->out.p + x->out_off;
            iov[n].iov_len = x->out.len - x->out_off;
            n++;
        }
        if (open)
            break;
    }
    return n;
}

/* An open stream wrote all it had: start its buffer over, and give back memory a large
 * piece made it take. */
static void conn_stream_emptied(bg_conn *c, bg_xchg *x)
{
    x->out.len = x->out_off = 0;
    if (x->out.cap > 2 * c->wk->cfg->gateway.stream_buffer)
        bg_buf_free(&x->out);
}

static void conn_advance(bg_conn *c, size_t w)
{
    while (w > 0 && c->qhead != NULL && c->rstate != BG_RS_LINGER) {
        bg_xchg *x = c->qhead;
        size_t left = x->out.len - x->out_off, n = w < left ? w : left;
        x->out_off += n;
        x->out_total += n;
        w -= n;
        if (x->out_off < x->out.len)
            return;
        if (x->streaming || x->stream_abort) {
            conn_stream_emptied(c, x);
            return;
        }
        conn_pop(c);
    }
}

/* After writing: a stream that broke off ends the connection once its bytes are out; an
 * open one may take more pieces now (the dispatcher decides whether it is low enough). */
static void conn_stream_check(bg_conn *c)
{
    bg_xchg *x = c->qhead;

    if (c->killed || c->rstate == BG_RS_LINGER || x == NULL || !x->answered)
        return;
    if (x->stream_abort && bg_xchg_queued(x) == 0) {
        bg_debug("client %s: request %s: stream broken off, closing", c->client, x->id);
        conn_log_done(c, x);
        bg_conn_kill(c);
        return;
    }
    if (x->streaming)
        c->wk->handlers->drained(c->wk, x);
}

void bg_conn_flush(bg_conn *c)
{
    struct iovec iov[CONN_IOV_MAX];
    int n, was_waiting = c->want_write;
    ssize_t w;

    c->want_write = 0;
    if (!c->killed && c->tls_continue > 0 && (n = bg_conn_tls_flush_continue(c)) <= 0) {
        if (n < 0) {
            bg_conn_kill(c);
            return;
        }
        c->want_write = 1;
        return;
    }
    while (!c->killed && c->rstate != BG_RS_LINGER && (n = conn_iov(c, iov)) > 0) {
        /* Empty answers (an exchange that failed to render) are popped without a
         * write. */
        if (iov[0].iov_len == 0) {
            conn_advance(c, 0);
            conn_pop(c);
            continue;
        }
        w = bg_conn_send(c, iov, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* The send timeout counts from when the socket stopped taking bytes. */
            if (!was_waiting)
                c->send_last_ms = bg_mono_ms();
            c->want_write = 1;
            return;
        }
        if (w < 0) {
            bg_debug("client %s: write failed: %s", c->client, strerror(errno));
            bg_conn_kill(c);
            return;
        }
        c->send_last_ms = bg_mono_ms();
        conn_advance(c, (size_t)w);
    }
    conn_stream_check(c);
}
