/* http_conn.h: one client connection: reading, parsing, in-order responses, timeouts. */
#ifndef BUSGATE_HTTP_CONN_H
#define BUSGATE_HTTP_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "exchange.h"
#include "http_parser.h"
#include "worker_int.h"

/* Pipelined requests a connection may have queued before the worker stops reading from it. */
#define BG_CONN_MAX_PIPELINE 32

/* x's response is complete in x->out (exchange.c calls it): write what is in order. */
void bg_conn_xchg_answered(bg_conn *c, bg_xchg *x);

/* Takes ownership of fd (non-blocking) and starts serving it; BG_ERR (fd closed) with
 * err set when out of memory. */
int bg_conn_new(bg_wk *wk, int fd, const char *client, const char *peer, char *err);
/* Closes every connection now: pending exchanges are abandoned (CANCEL). */
void bg_conn_close_all(bg_wk *wk);
/* Graceful quit: close keep-alive connections idle after a response now, the others
 * after their queued responses (a fresh connection gets its first request served). */
void bg_conn_drain_all(bg_wk *wk);

#endif
