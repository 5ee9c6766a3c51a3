/* bus_tls.h: TLS for Valkey connections, shared by bus_conn.c and bus_async.c. */
#ifndef BUSGATE_BUS_TLS_H
#define BUSGATE_BUS_TLS_H

#include <openssl/ssl.h>

#include "busgate/bus/bus.h"

/* A client SSL_CTX from o: TLS 1.2+, peer verification per o->tls_verify, the
 * CA file (else the system store) and the optional client certificate/key.
 * NULL with err set on failure. */
SSL_CTX *bg_bus_tls_ctx_new(const bg_bus_opts *o, char *err);

/* One connection's SSL with SNI and the name the certificate must carry:
 * o->tls_server_name, else the host dialled. The OpenSSL error queue is left
 * empty, so what hiredis reports next is its own. NULL with err set,
 * naming where, on failure. */
SSL *bg_bus_tls_ssl_new(SSL_CTX *ctx, const bg_bus_opts *o, const char *where, char *err);

/* 1 with the reason in err when the server's certificate failed verification
 * ("TLS handshake with WHERE failed: certificate verify failed (...)"), else 0. */
int bg_bus_tls_cert_failed(const SSL *ssl, const char *where, char *err);

/* Why a handshake with where failed: the certificate check when that failed,
 * else hiredis's errstr without its "SSL_connect failed: " prefix. */
void bg_bus_tls_handshake_error(const SSL *ssl, const char *where, const char *errstr, char *err);

#endif
