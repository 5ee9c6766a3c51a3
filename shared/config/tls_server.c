/* tls_server.c: the [tls] section turned into an OpenSSL server context (protocols, ciphers,
 * certificate and key, client CA, ALPN). */
#include "busgate/config/tls_server.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

/* ALPN: the protocol list in wire format; http/1.1 is all busgate speaks. */
static const unsigned char tls_alpn[] = "\x08http/1.1";

/* Session ids and tickets are bound to this context name: a ticket from another
 * program on the same key would not resume here. */
static const unsigned char tls_sid_ctx[] = "busgate";

const char *bg_tls_key_name(bg_tls_key key)
{
    switch (key) {
    case BG_TLS_KEY_CERTIFICATE:
        return "certificate";
    case BG_TLS_KEY_CERTIFICATE_KEY:
        return "certificate_key";
    case BG_TLS_KEY_CLIENT_CA:
        return "client_ca";
    case BG_TLS_KEY_CIPHERS:
        return "ciphers";
    case BG_TLS_KEY_CIPHERSUITES:
        return "ciphersuites";
    case BG_TLS_KEY_NONE:
    default:
        return "tls";
    }
}

const char *bg_tls_key_value(const bg_config *cfg, bg_tls_key key)
{
    switch (key) {
    case BG_TLS_KEY_CERTIFICATE:
        return cfg->tls.certificate;
    case BG_TLS_KEY_CERTIFICATE_KEY:
        return cfg->tls.certificate_key;
    case BG_TLS_KEY_CLIENT_CA:
        return cfg->tls.client_ca;
    case BG_TLS_KEY_CIPHERS:
        return cfg->tls.ciphers;
    case BG_TLS_KEY_CIPHERSUITES:
        return cfg->tls.ciphersuites;
    case BG_TLS_KEY_NONE:
    default:
        return "";
    }
}

int bg_tls_listen_any(const bg_config *cfg)
{
    for (int i = 0; i < cfg->gateway.nlisten; i++) {
        if (cfg->gateway.listen[i].tls)
            return 1;
    }
    return 0;
}

/* The newest OpenSSL reason (library errors are queued oldest first); empties the queue. */
static const char *tls_reason(void)
{
    unsigned long e = 0, next;
    const char *r;

    while ((next = ERR_get_error()) != 0)
        e = next;
    r = e != 0 ? ERR_reason_error_string(e) : NULL;
    return r != NULL ? r : "unknown OpenSSL error";
}

/* A file OpenSSL cannot open gives a vague reason: say what the system said. */
static int tls_readable(const char *path, char *err)
{
    FILE *f = fopen(path, "re");

    if (f == NULL) {
        bg_set_error(err, "cannot read: %s", strerror(errno));
        return BG_ERR;
    }
    fclose(f);
    return BG_OK;
}

/* Clients offering http/1.1 get it; one offering only others (h2) gets no ALPN
 * answer and may still speak HTTP/1.1, the only thing served here. */
static int tls_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                           const unsigned char *in, unsigned int inlen, void *arg)
{
    unsigned char *sel;

    (void)ssl;
    (void)arg;
    if (SSL_select_next_proto(&sel, outlen, tls_alpn, sizeof(tls_alpn) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static int tls_set_protocols(SSL_CTX *ctx, const bg_config *cfg, bg_tls_key *bad, char *err)
{
    int p = cfg->tls.protocols;

    if (!SSL_CTX_set_min_proto_version(ctx,
                                       p & BG_TLS_PROTO_TLS12 ? TLS1_2_VERSION : TLS1_3_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx,
                                       p & BG_TLS_PROTO_TLS13 ? TLS1_3_VERSION : TLS1_2_VERSION)) {
        bg_set_error(err, "cannot set the protocol versions: %s", tls_reason());
        return BG_ERR;
    }
    if (SSL_CTX_set_cipher_list(ctx, cfg->tls.ciphers) != 1) {
        *bad = BG_TLS_KEY_CIPHERS;
        bg_set_error(err, "no usable cipher (OpenSSL: %s)", tls_reason());
        return BG_ERR;
    }
    if (SSL_CTX_set_ciphersuites(ctx, cfg->tls.ciphersuites) != 1) {
        *bad = BG_TLS_KEY_CIPHERSUITES;
        bg_set_error(err, "no usable ciphersuite (OpenSSL: %s)", tls_reason());
        return BG_ERR;
    }
    return BG_OK;
}

/* Files that cannot be opened are found before a context is made (cheaper, and errno
 * says more than OpenSSL would). */
static int tls_files_readable(const bg_config *cfg, bg_tls_key *bad, char *err)
{
    *bad = BG_TLS_KEY_CERTIFICATE;
    if (tls_readable(cfg->tls.certificate, err) != BG_OK)
        return BG_ERR;
    *bad = BG_TLS_KEY_CERTIFICATE_KEY;
    if (tls_readable(cfg->tls.certificate_key, err) != BG_OK)
        return BG_ERR;
    *bad = BG_TLS_KEY_CLIENT_CA;
    if (cfg->tls.client_ca[0] != '\0' && cfg->tls.verify_client != BG_TLS_VERIFY_OFF &&
        tls_readable(cfg->tls.client_ca, err) != BG_OK)
        return BG_ERR;
    *bad = BG_TLS_KEY_NONE;
    return BG_OK;
}

static int tls_set_certificate(SSL_CTX *ctx, const bg_config *cfg, bg_tls_key *bad, char *err)
{
    *bad = BG_TLS_KEY_CERTIFICATE;
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls.certificate) != 1) {
        bg_set_error(err, "not a PEM certificate chain (OpenSSL: %s)", tls_reason());
        return BG_ERR;
    }
    *bad = BG_TLS_KEY_CERTIFICATE_KEY;
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls.certificate_key, SSL_FILETYPE_PEM) != 1) {
        /* OpenSSL compares the key with the certificate as it loads it. */
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
            bg_set_error(err, "does not match the certificate (OpenSSL: %s)", tls_reason());
        else
            bg_set_error(err, "not a PEM private key (OpenSSL: %s)", tls_reason());
        return BG_ERR;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        bg_set_error(err, "does not match the certificate (OpenSSL: %s)", tls_reason());
        return BG_ERR;
    }
    *bad = BG_TLS_KEY_NONE;
    return BG_OK;
}

/* mTLS: the CA verifies client certificates, and its names go out in the request
 * for one, so a client with several certificates picks the right one. */
static int tls_set_client_ca(SSL_CTX *ctx, const bg_config *cfg, bg_tls_key *bad, char *err)
{
    STACK_OF(X509_NAME) * names;
    int mode = SSL_VERIFY_PEER;

    if (cfg->tls.client_ca[0] == '\0' || cfg->tls.verify_client == BG_TLS_VERIFY_OFF) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return BG_OK;
    }
    *bad = BG_TLS_KEY_CLIENT_CA;
    if (SSL_CTX_load_verify_locations(ctx, cfg->tls.client_ca, NULL) != 1 ||
        (names = SSL_load_client_CA_file(cfg->tls.client_ca)) == NULL) {
        bg_set_error(err, "not a PEM CA bundle (OpenSSL: %s)", tls_reason());
        return BG_ERR;
    }
    SSL_CTX_set_client_CA_list(ctx, names);
    if (cfg->tls.verify_client == BG_TLS_VERIFY_ON)
        mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, NULL);
    *bad = BG_TLS_KEY_NONE;
    return BG_OK;
}

/* What every connection relies on (http_conn_tls.c): a write may be partial and is
 * retried from wherever the response buffer now lives; idle connections give their
 * buffers back; an EOF without close_notify is an ordinary end (HTTP frames itself). */
static void tls_set_modes(SSL_CTX *ctx)
{
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* Tickets carry sessions; a per-process cache would only grow. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_session_id_context(ctx, tls_sid_ctx, sizeof(tls_sid_ctx) - 1);
    SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_select, NULL);
}

SSL_CTX *bg_tls_server_ctx_new(const bg_config *cfg, bg_tls_key *bad, char *err)
{
    SSL_CTX *ctx;

    if (tls_files_readable(cfg, bad, err) != BG_OK)
        return NULL;
    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        bg_set_error(err, "SSL_CTX_new: %s", tls_reason());
        return NULL;
    }
    tls_set_modes(ctx);
    if (tls_set_protocols(ctx, cfg, bad, err) != BG_OK ||
        tls_set_certificate(ctx, cfg, bad, err) != BG_OK ||
        tls_set_client_ca(ctx, cfg, bad, err) != BG_OK) {
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return NULL;
    }
    return ctx;
}
