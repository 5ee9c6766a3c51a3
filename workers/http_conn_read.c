/* http_conn_read.c: reading a connection: request heads (the strict parser), sized and
 * chunked bodies, 100-continue, and the parse loop that feeds pipelined requests. */
#include "http_conn_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "busgate/core/log.h"

/* ---- heads ---- */

static void conn_body_start(bg_conn *c, bg_xchg *x, const bg_http_request *req)
{
    c->rstate = BG_RS_BODY;
    c->cur = x;
    c->chunked = req->chunked;
    c->body_left = req->content_length;
    c->discard = x->kind == BG_XK_ERROR;
    c->body_last_ms = bg_mono_ms();
    if (c->chunked)
        bg_http_chunked_init(&c->ch, c->wk->limits.max_request_body, 0, 0);
    else if (!c->discard && bg_buf_reserve(&x->body, (size_t)req->content_length) != BG_OK) {
        c->cur = NULL; /* answering may free x */
        bg_conn_fail(c, x, 503, "out of memory for the request body");
    }
}

static void conn_on_head(bg_conn *c)
{
    const bg_http_request *req = &c->req;
    int has_body = req->chunked || req->content_length > 0;
    bg_xchg *x = bg_conn_xchg_new(c);

    c->in_off += req->head_len;
    bg_http_parser_init(&c->parser);
    c->head_start_ms = 0;
    if (x == NULL) {
        bg_conn_kill(c);
        return;
    }
    snprintf(x->method, sizeof(x->method), "%.*s", (int)req->method_name.len, req->method_name.ptr);
    x->m = req->method;
    x->version = req->version;
    x->keep_alive = req->keep_alive;
    /* Bytes after a "close" request are not requests; while draining every
     * answer says "Connection: close", so the same holds. */
    if (!x->keep_alive || c->wk->draining)
        c->no_more = 1;
    c->wk->handlers->plan(c->wk, x, req);
    if (!has_body) {
        bg_conn_xchg_ready(c, x);
        return;
    }
    if (req->expect_continue && (x->kind == BG_XK_ERROR || x->err_close)) {
        /* Refuse before the body is sent: answer now and close (RFC 9110 10.1.1).
         */
        x->err_close = 1;
        c->closing = 1;
        c->rstate = BG_RS_STOP;
        bg_conn_xchg_ready(c, x);
        return;
    }
    if (req->expect_continue && c->qhead == x && bg_conn_send_continue(c) != BG_OK) {
        bg_conn_kill(c);
        return;
    }
    conn_body_start(c, x, req);
}

/* Returns 1 when the head was complete (answered or started), 0 to wait for
 * bytes. */
static int conn_head_step(bg_conn *c)
{
    bg_http_error e = BG_HTTP_E_NONE;
    bg_http_parse_result r;
    const char *reason;
    int status;

    if (c->head_start_ms == 0)
        c->head_start_ms = bg_mono_ms();
    r = bg_http_parse(&c->parser, c->in.p + c->in_off, c->in.len - c->in_off, &c->wk->limits,
                      &c->req, &e);
    if (r == BG_HTTP_PARSE_DONE) {
        conn_on_head(c);
        return 1;
    }
    if (r == BG_HTTP_PARSE_ERROR) {
        status = bg_http_error_status(e, &reason);
        bg_debug("client %s: %s (%d %s)", c->client, bg_http_error_str(e), status, reason);
        bg_conn_fail(c, bg_conn_xchg_new(c), status, bg_http_error_str(e));
        return 1;
    }
    return 0;
}

/* ---- bodies ---- */

static void conn_body_done(bg_conn *c)
{
    bg_xchg *x = c->cur;

    c->rstate = BG_RS_HEAD;
    c->cur = NULL;
    bg_conn_xchg_ready(c, x);
}

/* Returns 1 when progress was made and the loop should go on. */
static int conn_body_sized(bg_conn *c)
{
    size_t avail = c->in.len - c->in_off;
    size_t n = avail < c->body_left ? avail : (size_t)c->body_left;

    if (c->body_left == 0) {
        conn_body_done(c);
        return 1;
    }
    if (n == 0)
        return 0;
    if (!c->discard && bg_buf_append(&c->cur->body, c->in.p + c->in_off, n) != BG_OK) {
        bg_conn_fail(c, c->cur, 503, "out of memory for the request body");
        return 0;
    }
    c->in_off += n;
    c->body_left -= n;
    if (c->body_left == 0)
        conn_body_done(c);
    return 1;
}

static int conn_body_chunked(bg_conn *c)
{
    static char scratch[BG_CONN_READ_CHUNK]; /* where discarded bodies go */
    size_t avail = c->in.len - c->in_off, consumed = 0, produced = 0, cap;
    bg_http_error e = BG_HTTP_E_NONE;
    bg_http_chunked_result r;
    bg_buf *b = &c->cur->body;
    char *out = scratch;

    if (avail == 0)
        return 0;
    cap = sizeof(scratch);
    if (!c->discard) {
        if (bg_buf_reserve(b, avail) != BG_OK) {
            bg_conn_fail(c, c->cur, 503, "out of memory for the request body");
            return 0;
        }
        out = b->p + b->len;
        cap = b->cap - b->len;
    }
    r = bg_http_chunked_decode(&c->ch, c->in.p + c->in_off, avail, &consumed, out, cap, &produced,
                               &e);
    c->in_off += consumed;
    if (!c->discard)
        b->len += produced;
    if (r == BG_HTTP_CHUNKED_ERROR) {
        bg_conn_fail(c, c->cur, bg_http_error_status(e, NULL), bg_http_error_str(e));
        return 0;
    }
    if (r == BG_HTTP_CHUNKED_DONE) {
        conn_body_done(c);
        return 1;
    }
    return consumed > 0 || produced > 0;
}

/* ---- the parse loop ---- */

static void conn_compact(bg_conn *c)
{
    if (c->in_off == c->in.len) {
        c->in.len = c->in_off = 0;
        return;
    }
    if (c->in_off > 0 && c->in_off >= c->in.cap / 2) {
        memmove(c->in.p, c->in.p + c->in_off, c->in.len - c->in_off);
        c->in.len -= c->in_off;
        c->in_off = 0;
    }
}

void bg_conn_process(bg_conn *c)
{
    if (c->processing)
        return;
    c->processing = 1;
    bg_conn_enter(c);
    while (!c->killed && !c->closing) {
        if (c->rstate == BG_RS_HEAD) {
            if (c->no_more || c->qlen >= BG_CONN_MAX_PIPELINE || c->in_off == c->in.len)
                break;
            if (!conn_head_step(c)) {
                c->blocked = 1;
                break;
            }
        } else if (c->rstate == BG_RS_BODY) {
            if (!(c->chunked ? conn_body_chunked(c) : conn_body_sized(c)))
                break;
        } else {
            break;
        }
    }
    c->processing = 0;
    if (!c->killed)
        conn_compact(c);
    bg_conn_leave(c);
}

/* ---- the socket ---- */

/* Lingering, or after a "close" request: what comes is dropped; the end of it ends us.
 * On TLS too the raw bytes are dropped: nothing more is decrypted, and OpenSSL's write
 * side does not depend on what is read (no renegotiation). */
static void conn_read_drop(bg_conn *c)
{
    char sink[4096];
    ssize_t n = read(c->fd, sink, sizeof(sink));

    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        if (c->rstate != BG_RS_LINGER && c->qlen > 0)
            bg_debug("client %s: closed with %zu request(s) pending", c->peer, c->qlen);
        bg_conn_kill(c);
    }
}

/* A sized body with nothing buffered is read straight into the request: no
 * copy. */
static ssize_t conn_read_into(bg_conn *c)
{
    if (c->rstate == BG_RS_BODY && !c->chunked && !c->discard && c->in_off == c->in.len &&
        c->body_left > 0) {
        bg_buf *b = &c->cur->body;
        size_t room = b->cap - b->len;
        ssize_t n = bg_conn_recv(c, b->p + b->len, room < c->body_left ? room : c->body_left);
        if (n > 0) {
            b->len += (size_t)n;
            c->body_left -= (uint64_t)n;
        }
        return n;
    }
    if (bg_buf_reserve(&c->in, BG_CONN_READ_CHUNK) != BG_OK) {
        errno = ENOMEM;
        return -1;
    }
    ssize_t n = bg_conn_recv(c, c->in.p + c->in.len, c->in.cap - c->in.len);
    if (n > 0) {
        c->in.len += (size_t)n;
        c->blocked = 0;
    }
    return n;
}

/* TLS: the rest of a record already decrypted goes to the input buffer now, as no
 * socket event would bring it (at most one record: OpenSSL reads no further ahead). */
static int conn_read_pending(bg_conn *c)
{
    while (bg_conn_tls_pending(c)) {
        ssize_t n;

        if (bg_buf_reserve(&c->in, BG_CONN_READ_CHUNK) != BG_OK)
            return BG_ERR;
        n = bg_conn_recv(c, c->in.p + c->in.len, c->in.cap - c->in.len);
        if (n <= 0)
            return n < 0 && errno == EAGAIN ? BG_OK : BG_ERR;
        c->in.len += (size_t)n;
        c->blocked = 0;
    }
    return BG_OK;
}

void bg_conn_read(bg_conn *c)
{
    ssize_t n;

    if (c->rstate == BG_RS_LINGER || (c->no_more && c->rstate == BG_RS_HEAD)) {
        conn_read_drop(c);
        return;
    }
    n = conn_read_into(c);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        /* End of file or reset: the client is gone, with whatever it was waiting
         * for (its requests are cancelled), as nginx treats a client that closes
         * early. */
        if (n < 0 || c->qlen > 0)
            bg_debug("client %s: %s with %zu request(s) pending", c->client,
                     n < 0 ? strerror(errno) : "closed", c->qlen);
        bg_conn_kill(c);
        return;
    }
    if (conn_read_pending(c) != BG_OK) {
        bg_debug("client %s: TLS read failed with %zu request(s) pending", c->client, c->qlen);
        bg_conn_kill(c);
        return;
    }
    if (c->rstate == BG_RS_BODY)
        c->body_last_ms = bg_mono_ms();
    if (c->rstate == BG_RS_BODY && !c->chunked && c->body_left == 0 && c->in_off == c->in.len)
        conn_body_done(c);
    bg_conn_process(c);
}
