/* http_conn_int.h: a client connection's private state, shared by the http_conn*.c files. */
#ifndef BUSGATE_HTTP_CONN_INT_H
#define BUSGATE_HTTP_CONN_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <openssl/ssl.h>

#include "http_chunked.h"
#include "http_conn.h"

#define BG_CONN_READ_CHUNK 16384
#define BG_CONN_IDLE_BUF_MAX 65536 /* an idle connection keeps at most this much input buffer */
#define BG_CONN_LINGER_MS 2000
/* While draining: how long an idle keep-alive connection may still send a request. */
#define BG_CONN_DRAIN_IDLE_MS 1000

/* What the connection is reading. */
enum { BG_RS_HEAD, BG_RS_BODY, BG_RS_STOP, BG_RS_LINGER };
/* Which timeout is armed. */
enum {
    BG_TK_NONE,
    BG_TK_IDLE,
    BG_TK_HEADER,
    BG_TK_BODY,
    BG_TK_SEND,
    BG_TK_LINGER,
    BG_TK_HANDSHAKE
};
/* Where a TLS connection is (http_conn_tls.c). */
enum {
    BG_TLS_NONE,      /* plain HTTP */
    BG_TLS_HELLO,     /* waiting for the first byte: a TLS record or plain HTTP */
    BG_TLS_HANDSHAKE, /* SSL_do_handshake in progress */
    BG_TLS_OPEN,      /* application data */
};

struct bg_conn {
    bg_wk *wk;
    int fd;
    char client[64];      /* address only: X-Forwarded-For */
    char peer[80];        /* address and port: logs */
    bg_conn *prev, *next; /* wk->conns */
    bg_buf in;            /* unparsed input is in.p[in_off..in.len) */
    size_t in_off;
    bg_http_parser parser;
    bg_http_request req; /* big: lives here, not on the stack */
    int rstate;
    bg_xchg *cur; /* the request whose body is being read */
    uint64_t body_left;
    int chunked, discard;
    bg_http_chunked ch;
    bg_xchg *qhead, *qtail; /* requests in arrival order; answered in that order */
    size_t qlen;
    unsigned long served;
    int64_t head_start_ms, body_last_ms, idle_since_ms, send_last_ms;
    bg_ev_timer *timer;
    int tkind;
    int64_t tdue;
    int mask;       /* events registered with the loop */
    int want_write; /* output is waiting for the socket */
    int closing;    /* a response that closes the connection is queued: read no more */
    int no_more;    /* the last request said "close": parse no further heads */
    int blocked;    /* the head parser waits for more bytes */
    int processing, busy, killed;

    /* TLS (http_conn_tls.c); ssl is NULL on a plain connection */
    SSL *ssl;
    int tls;              /* BG_TLS_* */
    int tls_read_wants;   /* SSL_read (or the handshake) waits for writability */
    int tls_write_wants;  /* SSL_write waits for readability */
    size_t tls_continue;  /* bytes of "100 Continue" still to go through SSL_write */
    char *client_subject; /* verified client certificate subject (RFC 2253), or NULL */
};

/* Callbacks nest (a response completed while parsing): enter/leave bracket every entry
 * point; a connection killed inside is freed by the outermost leave, which otherwise
 * re-evaluates read interest and the timeout (bg_conn_update). */
void bg_conn_enter(bg_conn *c);
void bg_conn_leave(bg_conn *c);
void bg_conn_update(bg_conn *c);
/* Closes now; queued requests waiting for a service are cancelled ("client_gone"). */
void bg_conn_kill(bg_conn *c);

/* http_conn.c: a new exchange at the tail of the queue; its plan executed. */
bg_xchg *bg_conn_xchg_new(bg_conn *c);
void bg_conn_xchg_ready(bg_conn *c, bg_xchg *x);
/* The gateway's own answer that ends the connection (parse errors, 408). */
void bg_conn_fail(bg_conn *c, bg_xchg *x, int status, const char *detail);

/* http_conn_read.c */
void bg_conn_read(bg_conn *c);
void bg_conn_process(bg_conn *c);

/* http_conn_write.c */
void bg_conn_flush(bg_conn *c);
void bg_conn_abandon_queue(bg_conn *c);
void bg_conn_linger(bg_conn *c);

/* http_conn_timer.c */
void bg_conn_timer_update(bg_conn *c);

/* http_conn_tls.c: a TLS connection's I/O; on a plain one these are read() and writev() */
int bg_conn_tls_start(bg_conn *c, SSL_CTX *ctx, char *err);
/* Drives the first byte check and the handshake; then reads what came with it. */
void bg_conn_tls_handshake(bg_conn *c);
/* As read(): bytes, 0 at the end, -1 with errno (EAGAIN: wait for the event the TLS
 * layer wants, recorded in tls_read_wants). */
ssize_t bg_conn_recv(bg_conn *c, void *buf, size_t len);
/* Plaintext already decrypted and waiting inside OpenSSL: no socket event announces it. */
int bg_conn_tls_pending(const bg_conn *c);
/* As writev(); TLS writes the first buffer only (one record train per response). */
ssize_t bg_conn_send(bg_conn *c, const struct iovec *iov, int n);
/* "100 Continue" now; on TLS what the socket did not take goes first at the next flush.
 * Returns BG_OK, or BG_ERR when the connection broke. */
int bg_conn_send_continue(bg_conn *c);
/* TLS: pushes a pending "100 Continue"; 1 done (or nothing pending), 0 blocked, -1 broken. */
int bg_conn_tls_flush_continue(bg_conn *c);
/* Before a lingering close: close_notify, best effort. */
void bg_conn_tls_shutdown(bg_conn *c);
void bg_conn_tls_free(bg_conn *c);

#endif
