/* bus_tls.c: TLS for Valkey connections: client SSL_CTX, SNI and name check, handshake errors. */
#include "bus_tls.h"

#include <arpa/inet.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#define TLS_CONNECT_PREFIX "SSL_connect failed: " /* hiredis's, says nothing new */

static int tls_set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

static int tls_is_ip(const char *name)
{
    unsigned char buf[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

/* The newest OpenSSL error as text; drains the thread's error queue. */
static const char *tls_reason(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();

    if (e == 0)
        return "unknown TLS error";
    while (ERR_peek_error() != 0)
        e = ERR_get_error();
    ERR_error_string_n(e, buf, len);
    return buf;
}

static int tls_load_ca(SSL_CTX *ctx, const bg_bus_opts *o, char *err)
{
    char reason[160];

    if (!o->tls_verify)
        return BG_OK; /* nothing would check against it */
    if (tls_set(o->tls_ca_file)) {
        if (SSL_CTX_load_verify_locations(ctx, o->tls_ca_file, NULL) == 1)
            return BG_OK;
        bg_set_error(err, "TLS CA file %s: %s", o->tls_ca_file, tls_reason(reason, sizeof(reason)));
        return BG_ERR;
    }
    if (SSL_CTX_set_default_verify_paths(ctx) == 1)
        return BG_OK;
    bg_set_error(err, "TLS system CA store: %s", tls_reason(reason, sizeof(reason)));
    return BG_ERR;
}

static int tls_load_client_cert(SSL_CTX *ctx, const bg_bus_opts *o, char *err)
{
    const char *key = tls_set(o->tls_key_file) ? o->tls_key_file : o->tls_cert_file;
    char reason[160];

    if (!tls_set(o->tls_cert_file))
        return BG_OK;
    if (SSL_CTX_use_certificate_chain_file(ctx, o->tls_cert_file) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        bg_set_error(err, "TLS client certificate %s / key %s: %s", o->tls_cert_file, key,
                     tls_reason(reason, sizeof(reason)));
        return BG_ERR;
    }
    return BG_OK;
}

/* Our own SSL_CTX rather than redisCreateSSLContext: hiredis only checks the
 * chain, and we also want the server's name checked against its certificate. */
SSL_CTX *bg_bus_tls_ctx_new(const bg_bus_opts *o, char *err)
{
    char reason[160];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL) {
        bg_set_error(err, "SSL_CTX_new: %s", tls_reason(reason, sizeof(reason)));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, o->tls_verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (tls_load_ca(ctx, o, err) != BG_OK || tls_load_client_cert(ctx, o, err) != BG_OK) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* SNI and the name to verify: tls_server_name, else the host we dial. */
static int tls_set_name(SSL *ssl, const bg_bus_opts *o)
{
    const char *name = o->tls_server_name;

    if (!tls_set(name))
        name = o->addr.is_unix ? NULL : o->addr.host;
    if (name == NULL)
        return 1;
    if (tls_is_ip(name)) {
        /* SNI must not carry an IP address (RFC 6066); check the IP SAN instead. */
        return !o->tls_verify || X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1;
    }
    if (SSL_set_tlsext_host_name(ssl, name) != 1)
        return 0;
    return !o->tls_verify || SSL_set1_host(ssl, name) == 1;
}

SSL *bg_bus_tls_ssl_new(SSL_CTX *ctx, const bg_bus_opts *o, const char *where, char *err)
{
    char reason[160];
    SSL *ssl = SSL_new(ctx);

    if (ssl == NULL || !tls_set_name(ssl, o)) {
        bg_set_error(err, "TLS setup for %s: %s", where, tls_reason(reason, sizeof(reason)));
        SSL_free(ssl);
        return NULL;
    }
    ERR_clear_error();
    return ssl;
}

int bg_bus_tls_cert_failed(const SSL *ssl, const char *where, char *err)
{
    long verify = SSL_get_verify_result(ssl);

    if (verify == X509_V_OK)
        return 0;
    bg_set_error(err, "TLS handshake with %s failed: certificate verify failed (%s)", where,
                 X509_verify_cert_error_string(verify));
    return 1;
}

void bg_bus_tls_handshake_error(const SSL *ssl, const char *where, const char *errstr, char *err)
{
    size_t skip = strlen(TLS_CONNECT_PREFIX);

    if (bg_bus_tls_cert_failed(ssl, where, err))
        return;
    if (strncmp(errstr, TLS_CONNECT_PREFIX, skip) == 0)
        errstr += skip;
    bg_set_error(err, "TLS handshake with %s failed: %s", where, errstr);
}
