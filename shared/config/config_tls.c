/* config_tls.c: the [tls] section: its own values (verify_client, protocols, cipher lists) and
 * the rules between it and the ssl listeners, files checked by building the server context. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/ssl.h>

#include "busgate/config/tls_server.h"
#include "config_internal.h"

int bg_config_parse_verify_client(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                                  char *reason)
{
    (void)key;
    if (strcasecmp(value, "off") == 0)
        ctx->cfg->tls.verify_client = BG_TLS_VERIFY_OFF;
    else if (strcasecmp(value, "optional") == 0)
        ctx->cfg->tls.verify_client = BG_TLS_VERIFY_OPTIONAL;
    else if (strcasecmp(value, "on") == 0)
        ctx->cfg->tls.verify_client = BG_TLS_VERIFY_ON;
    else {
        bg_set_error(reason, "unknown mode");
        return BG_ERR;
    }
    return BG_OK;
}

/* "TLSv1.2 TLSv1.3": older versions are refused by name, so a copied nginx line says why. */
int bg_config_parse_protocols(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                              char *reason)
{
    const char *p = value;
    int bits = 0;

    (void)key;
    while (*p != '\0') {
        size_t len;

        while (isspace((unsigned char)*p) || *p == ',')
            p++;
        len = strcspn(p, " \t,");
        if (len == 7 && strncasecmp(p, "TLSv1.2", 7) == 0) {
            bits |= BG_TLS_PROTO_TLS12;
        } else if (len == 7 && strncasecmp(p, "TLSv1.3", 7) == 0) {
            bits |= BG_TLS_PROTO_TLS13;
        } else if (len > 0) {
            bg_set_error(reason, "'%.*s' is not supported", (int)(len > 32 ? 32 : len), p);
            return BG_ERR;
        }
        p += len;
    }
    if (bits == 0) {
        bg_set_error(reason, "no protocol");
        return BG_ERR;
    }
    ctx->cfg->tls.protocols = bits;
    return BG_OK;
}

/* Only the characters are checked here; whether OpenSSL knows the names is found out
 * when the context is built (bg_config_check_tls). */
int bg_config_parse_cipher_list(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                                char *reason)
{
    for (const char *p = value; *p != '\0'; p++) {
        if (!isalnum((unsigned char)*p) && strchr(":-_+!@=.,", *p) == NULL) {
            bg_set_error(reason, "character '%c' is not allowed",
                         isgraph((unsigned char)*p) ? *p : '?');
            return BG_ERR;
        }
    }
    return bg_config_store_text(ctx, key, value, reason);
}

typedef struct tls_ref {
    const bg_config_key *key;
    int line, bad;
} tls_ref;

/* A [tls] key with its line; no key (a failure not about one key) gives line 0. */
static tls_ref tls_key(const bg_config_ctx *ctx, const char *name)
{
    tls_ref r = {bg_config_key_find("tls", name), 0, 0};
    size_t i;

    if (r.key == NULL)
        return r;
    i = bg_config_key_index(r.key);
    r.line = ctx->key_line[i];
    r.bad = ctx->key_bad[i];
    return r;
}

/* Every ssl listener needs the certificate and its key. */
static int tls_check_listeners(bg_config_ctx *ctx, int have_cert)
{
    const bg_config *cfg = ctx->cfg;
    char shown[300];
    int ok = 1;

    for (int i = 0; i < cfg->gateway.nlisten && !have_cert; i++) {
        const bg_listen_addr *a = &cfg->gateway.listen[i];

        if (!a->tls)
            continue;
        snprintf(shown, sizeof(shown), strchr(a->host, ':') ? "[%s]:%d ssl" : "%s:%d ssl", a->host,
                 a->port);
        bg_config_key_error(ctx, bg_config_key_find("gateway", "listen"), ctx->listen_line[i],
                            shown, "an ssl listener without [tls] certificate and certificate_key",
                            "[tls] certificate and certificate_key set");
        ok = 0;
    }
    return ok;
}

/* certificate and certificate_key go together; client_ca and verify_client need them. */
static int tls_check_pairs(bg_config_ctx *ctx, tls_ref cert, tls_ref key, tls_ref ca,
                           tls_ref verify)
{
    bg_config *cfg = ctx->cfg;
    int ok = 1;

    if ((cert.line != 0) != (key.line != 0)) {
        tls_ref set = cert.line ? cert : key;
        bg_config_key_error(ctx, set.key, set.line,
                            cert.line ? cfg->tls.certificate : cfg->tls.certificate_key,
                            cert.line ? "set without certificate_key" : "set without certificate",
                            "certificate and certificate_key together");
        ok = 0;
    }
    if (ca.line && !cert.line) {
        bg_config_key_error(ctx, ca.key, ca.line, cfg->tls.client_ca, "set without certificate",
                            "client_ca with certificate and certificate_key");
        ok = 0;
    }
    if (verify.line && !verify.bad && cfg->tls.verify_client != BG_TLS_VERIFY_OFF && !ca.line) {
        bg_config_key_error(ctx, verify.key, verify.line,
                            cfg->tls.verify_client == BG_TLS_VERIFY_ON ? "on" : "optional",
                            "set without client_ca", "off, or client_ca set as well");
        ok = 0;
    }
    return ok;
}

static tls_ref tls_ref_of(const bg_config_ctx *ctx, bg_tls_key k)
{
    return tls_key(ctx, bg_tls_key_name(k));
}

static const char *tls_allowed(bg_tls_key k)
{
    switch (k) {
    case BG_TLS_KEY_CERTIFICATE:
        return "a readable PEM file: the certificate, then its chain";
    case BG_TLS_KEY_CERTIFICATE_KEY:
        return "a readable PEM private key of the certificate";
    case BG_TLS_KEY_CLIENT_CA:
        return "a readable PEM file of CA certificates";
    default:
        return NULL; /* the key's own */
    }
}

/* The files and cipher lists are checked the way the master will use them. */
static void tls_check_build(bg_config_ctx *ctx)
{
    char reason[BG_ERR_LEN];
    bg_tls_key bad;
    SSL_CTX *sctx = bg_tls_server_ctx_new(ctx->cfg, &bad, reason);
    tls_ref r;

    if (sctx != NULL) {
        SSL_CTX_free(sctx);
        return;
    }
    r = tls_ref_of(ctx, bad);
    if (r.key == NULL || r.line == 0) {
        bg_config_error(ctx, 0, "[tls]: %s", reason);
        return;
    }
    bg_config_key_error(ctx, r.key, r.line, bg_tls_key_value(ctx->cfg, bad), reason,
                        tls_allowed(bad));
}

void bg_config_check_tls(bg_config_ctx *ctx)
{
    tls_ref cert = tls_key(ctx, "certificate"), key = tls_key(ctx, "certificate_key");
    tls_ref ca = tls_key(ctx, "client_ca"), verify = tls_key(ctx, "verify_client");
    tls_ref ciphers = tls_key(ctx, "ciphers"), suites = tls_key(ctx, "ciphersuites");
    int listeners_ok, pairs_ok;

    /* client_ca alone means "clients must show a certificate", as nginx's ssl_verify_client
     * would need saying: the safe reading of a CA that was configured. */
    if (ca.line && !verify.line)
        ctx->cfg->tls.verify_client = BG_TLS_VERIFY_ON;
    /* Both rules report, then a failure of either stops here. */
    listeners_ok = tls_check_listeners(ctx, cert.line && key.line);
    pairs_ok = tls_check_pairs(ctx, cert, key, ca, verify);

    if (!listeners_ok || !pairs_ok)
        return;
    if (!cert.line || cert.bad || key.bad || ca.bad || verify.bad || ciphers.bad || suites.bad)
        return;
    tls_check_build(ctx);
}
