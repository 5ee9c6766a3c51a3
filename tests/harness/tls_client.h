/* tls_client.h: a blocking TLS client for end-to-end tests: a bgt_conn (gw_fixture.h) whose
 * bytes go through OpenSSL, so the fixture's response reader works unchanged. */
#ifndef BUSGATE_TEST_TLS_CLIENT_H
#define BUSGATE_TEST_TLS_CLIENT_H

#include <stddef.h>
#include <sys/types.h>

#include "gw_fixture.h"

typedef struct bgt_tls_opts {
    const char *ca;         /* CA file that must verify the server (name "localhost") */
    const char *cert, *key; /* client certificate and key, or NULL */
    int max_version;        /* 0, or an OpenSSL TLS*_VERSION to force an older protocol */
} bgt_tls_opts;

/* Connects to 127.0.0.1:port and completes the handshake (SNI and name check:
 * localhost). 0, or -1 with the reason (OpenSSL's) in err. */
int bgt_conn_open_tls(bgt_conn *c, int port, const bgt_tls_opts *o, char *err, size_t errlen);
/* After a handshake: the negotiated protocol ("TLSv1.3"), the ALPN choice ("" if none)
 * and the server certificate's serial in hex. */
const char *bgt_tls_version(const bgt_conn *c);
void bgt_tls_alpn(const bgt_conn *c, char *out, size_t len);
int bgt_tls_peer_serial(const bgt_conn *c, char *out, size_t len);
/* The serial of the certificate in a PEM file, in hex; 0 or -1. */
int bgt_tls_file_serial(const char *path, char *out, size_t len);

/* For gw_fixture.c: I/O of a connection whose c->ssl is set. */
ssize_t bgt_tls_send(bgt_conn *c, const void *p, size_t len);
ssize_t bgt_tls_recv(bgt_conn *c, void *p, size_t len);
int bgt_tls_pending(const bgt_conn *c);
void bgt_tls_close(bgt_conn *c);

#endif
