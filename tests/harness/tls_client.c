/* tls_client.c: blocking OpenSSL client connections for the end-to-end TLS tests. */
#include "tls_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

static void tls_err(char *err, size_t len, const char *what)
{
    unsigned long e = ERR_get_error(), next;
    char buf[256] = "";

    while ((next = ERR_get_error()) != 0)
        e = next;
    if (e != 0)
        ERR_error_string_n(e, buf, sizeof(buf));
    snprintf(err, len, "%s: %s", what, buf[0] ? buf : "connection closed");
}

static SSL_CTX *tls_ctx(const bgt_tls_opts *o, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL) {
        tls_err(err, errlen, "SSL_CTX_new");
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (o->max_version != 0) {
        /* Old protocols are below the default security level: allow them to be tried. */
        SSL_CTX_set_security_level(ctx, 0);
        SSL_CTX_set_cipher_list(ctx, "ALL:@SECLEVEL=0");
        SSL_CTX_set_min_proto_version(ctx, 0);
        SSL_CTX_set_max_proto_version(ctx, o->max_version);
    }
    if (SSL_CTX_load_verify_locations(ctx, o->ca, NULL) != 1 ||
        (o->cert != NULL && (SSL_CTX_use_certificate_chain_file(ctx, o->cert) != 1 ||
                             SSL_CTX_use_PrivateKey_file(ctx, o->key, SSL_FILETYPE_PEM) != 1))) {
        tls_err(err, errlen, "client files");
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x02h2\x08http/1.1", 12);
    return ctx;
}

int bgt_conn_open_tls(bgt_conn *c, int port, const bgt_tls_opts *o, char *err, size_t errlen)
{
    SSL_CTX *ctx;
    SSL *ssl;

    if (bgt_conn_open(c, port) != 0) {
        snprintf(err, errlen, "connect to port %d failed", port);
        return -1;
    }
    if ((ctx = tls_ctx(o, err, errlen)) == NULL) {
        bgt_conn_close(c);
        return -1;
    }
    ssl = SSL_new(ctx);
    c->ssl_ctx = ctx;
    c->ssl = ssl;
    if (ssl == NULL || SSL_set_fd(ssl, c->fd) != 1 ||
        SSL_set_tlsext_host_name(ssl, "localhost") != 1 || SSL_set1_host(ssl, "localhost") != 1) {
        tls_err(err, errlen, "SSL setup");
        bgt_conn_close(c);
        return -1;
    }
    if (SSL_connect(ssl) != 1) {
        tls_err(err, errlen, "handshake");
        bgt_conn_close(c);
        return -1;
    }
    return 0;
}

const char *bgt_tls_version(const bgt_conn *c)
{
    return SSL_get_version(c->ssl);
}

void bgt_tls_alpn(const bgt_conn *c, char *out, size_t len)
{
    const unsigned char *p = NULL;
    unsigned n = 0;

    SSL_get0_alpn_selected(c->ssl, &p, &n);
    snprintf(out, len, "%.*s", (int)n, p ? (const char *)p : "");
}

static int serial_hex(X509 *x, char *out, size_t len)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;

    snprintf(out, len, "%s", hex ? hex : "");
    OPENSSL_free(hex);
    BN_free(bn);
    return hex ? 0 : -1;
}

int bgt_tls_peer_serial(const bgt_conn *c, char *out, size_t len)
{
    X509 *x = SSL_get0_peer_certificate(c->ssl);

    return x ? serial_hex(x, out, len) : -1;
}

int bgt_tls_file_serial(const char *path, char *out, size_t len)
{
    FILE *f = fopen(path, "r");
    X509 *x;
    int rc;

    if (f == NULL)
        return -1;
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (x == NULL)
        return -1;
    rc = serial_hex(x, out, len);
    X509_free(x);
    return rc;
}

ssize_t bgt_tls_send(bgt_conn *c, const void *p, size_t len)
{
    int n = SSL_write(c->ssl, p, (int)len);

    return n > 0 ? n : -1;
}

ssize_t bgt_tls_recv(bgt_conn *c, void *p, size_t len)
{
    int n = SSL_read(c->ssl, p, (int)len), e;

    if (n > 0)
        return n;
    e = SSL_get_error(c->ssl, n);
    return e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) ? 0 : -1;
}

int bgt_tls_pending(const bgt_conn *c)
{
    return SSL_pending(c->ssl) > 0;
}

void bgt_tls_close(bgt_conn *c)
{
    SSL_free(c->ssl);
    SSL_CTX_free(c->ssl_ctx);
    c->ssl = NULL;
    c->ssl_ctx = NULL;
}
