/* http_conn.h: one client connection: reading, parsing, in-order responses, timeouts. */
#ifndef BUSGATE_HTTP_CONN_H
#define BUSGATE_HTTP_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "exchange.h"
#include "http_parser.h"
#include "worker_int.h"

/* Pipelined requests a connection may have queued before the worker stops reading from it. */
#define BG_CONN_MAX_PIPELINE 32

/* x's response is complete in x->out (exchange.c calls it): write what is in order. */
void bg_conn_xchg_answered(bg_conn *c, bg_xchg *x);

/* Takes ownership of fd (non-blocking) and starts serving it, over TLS when tls is not
 * NULL (the handshake comes first); BG_ERR (fd closed) with err set when out of memory. */
int bg_conn_new(bg_wk *wk, int fd, const char *client, const char *peer, SSL_CTX *tls, char *err);

/* What the rest of the worker may know about the client's transport. Both are valid while
 * the connection lives: for an exchange x, while x->conn != NULL (always during the plan
 * and dispatch of x; identity and auth code read them there). */
/* 1 when the connection is TLS (X-Forwarded-Proto: https). */
int bg_conn_is_tls(const bg_conn *c);
/* The subject of the client certificate that the TLS handshake verified against
 * [tls] client_ca, in RFC 2253 form ("CN=alice,O=Example Corp"; ASCII only: control
 * characters and bytes above 0x7f come escaped as \XX), or NULL: plain HTTP,
 * verify_client off, or (optional) no certificate sent. Never set for an unverified
 * certificate: with verification on, such a handshake fails. */
const char *bg_conn_client_subject(const bg_conn *c);
/* Closes every connection now: pending exchanges are abandoned (CANCEL). */
void bg_conn_close_all(bg_wk *wk);
/* Graceful quit: close keep-alive connections idle after a response now, the others
 * after their queued responses (a fresh connection gets its first request served). */
void bg_conn_drain_all(bg_wk *wk);

#endif
