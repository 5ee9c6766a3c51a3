/* tls_certs.h: test certificates made with openssl (a CA, a server cert it signs, an unrelated CA)
 * and a private valkey-server that also listens for TLS. */
#ifndef BUSGATE_TEST_TLS_CERTS_H
#define BUSGATE_TEST_TLS_CERTS_H

#include "valkey_harness.h"

typedef struct bgt_tls_certs {
    char dir[256];        /* temp dir holding the files; removed by bgt_tls_remove_certs */
    char ca_crt[320];     /* the CA that signed the server certificate */
    char server_crt[320]; /* CN=localhost, SAN DNS:localhost and IP:127.0.0.1 */
    char server_key[320];
    char other_ca_crt[320]; /* a CA unrelated to the server certificate */
    /* bgt_tls_make_clients: client certificates */
    char client_crt[320]; /* CN=test client,O=busgate tests, signed by the CA */
    char client_key[320];
    char stranger_crt[320]; /* CN=stranger, signed by the unrelated CA */
    char stranger_key[320];
} bgt_tls_certs;

/* Make the files in a fresh temp dir (EC P-256, valid two days). Returns 0 or -1. */
int bgt_tls_make_certs(bgt_tls_certs *t);
/* Client certificates for mTLS (after bgt_tls_make_certs). Returns 0 or -1. */
int bgt_tls_make_clients(bgt_tls_certs *t);
/* A new server key and certificate (another serial) in place of the old files. 0 or -1. */
int bgt_tls_reissue_server(bgt_tls_certs *t);
/* Remove the temp dir and everything in it. Safe to call twice. */
void bgt_tls_remove_certs(bgt_tls_certs *t);
/* Start a private server on a plain port (for the harness's readiness PING and
 * bgt_valkey_cmd) and on *tls_port with t's server certificate; clients are
 * not asked for certificates. extra: more server arguments or NULL. */
int bgt_valkey_start_tls(bgt_valkey *v, const bgt_tls_certs *t, int *tls_port,
                         const char *const *extra);

#endif
