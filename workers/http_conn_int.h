/* http_conn_int.h: a client connection's private state, shared by the http_conn*.c files. */
#ifndef BUSGATE_HTTP_CONN_INT_H
#define BUSGATE_HTTP_CONN_INT_H

#include <stddef.h>
#include <stdint.h>

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
enum { BG_TK_NONE, BG_TK_IDLE, BG_TK_HEADER, BG_TK_BODY, BG_TK_SEND, BG_TK_LINGER };

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

#endif
