/* config_check.c: what is settled after the whole file is read: names derived from key_prefix,
 * secrets read from their files, and the rules that involve more than one key. */
#include <ctype.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config_internal.h"

#define SECRET_FILE_MAX 4096
#define FD_RESERVE 64 /* descriptors a worker needs besides client connections */

typedef struct key_ref {
    const bg_config_key *key;
    int line; /* 0 = not in the file */
    int bad;  /* in the file with an invalid value */
} key_ref;

static key_ref ref(const bg_config_ctx *ctx, const char *section, const char *name)
{
    key_ref r = {bg_config_key_find(section, name), 0, 0};
    size_t i = bg_config_key_index(r.key);

    r.line = ctx->key_line[i];
    r.bad = ctx->key_bad[i];
    return r;
}

static int read_all(const char *path, char *buf, size_t size, size_t *len, char *reason)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    *len = 0;
    if (fd < 0) {
        bg_set_error(reason, "cannot open: %s", strerror(errno));
        return BG_ERR;
    }
    while ((n = read(fd, buf + *len, size - *len)) > 0 && *len + (size_t)n < size)
        *len += (size_t)n;
    if (n < 0)
        bg_set_error(reason, "cannot read: %s", strerror(errno));
    else if (n > 0)
        bg_set_error(reason, "file is larger than %zu bytes", size - 1);
    close(fd);
    return n == 0 ? BG_OK : BG_ERR;
}

/* Reads a one-line secret, trimmed of surrounding blanks, into out. */
static int read_secret(const char *path, char *out, size_t size, size_t min, char *reason)
{
    char buf[SECRET_FILE_MAX];
    size_t len, start = 0;
    int rc = BG_ERR;

    if (read_all(path, buf, sizeof(buf), &len, reason) != BG_OK)
        goto cleanup;
    while (len > 0 && isspace((unsigned char)buf[len - 1]))
        len--;
    while (start < len && isspace((unsigned char)buf[start]))
        start++;
    len -= start;
    if (len == 0) {
        bg_set_error(reason, "file is empty");
        goto cleanup;
    }
    if (len < min || len >= size || memchr(buf + start, '\n', len) || memchr(buf + start, 0, len)) {
        bg_set_error(reason, "content is not one line of %zu..%zu bytes", min, size - 1);
        goto cleanup;
    }
    memcpy(out, buf + start, len);
    out[len] = '\0';
    rc = BG_OK;
cleanup:
    explicit_bzero(buf, sizeof(buf)); /* keep the secret in one place only */
    return rc;
}

static void check_readable(bg_config_ctx *ctx, key_ref r, const char *path)
{
    char reason[BG_ERR_LEN];

    if (r.line == 0 || r.bad || access(path, R_OK) == 0)
        return;
    snprintf(reason, sizeof(reason), "cannot read: %s", strerror(errno));
    bg_config_key_error(ctx, r.key, r.line, path, reason, "a readable file");
}

/* The value of a string or on/off key as it now stands, for messages. */
static const char *field_text(const bg_config_ctx *ctx, const bg_config_key *key)
{
    const char *field = (const char *)ctx->cfg + key->offset;

    if (key->kind == BG_CONFIG_BOOL)
        return *(const int *)field ? "on" : "off";
    return field;
}

static void check_tls(bg_config_ctx *ctx)
{
    static const char *const names[] = {"tls_ca_file", "tls_cert_file", "tls_key_file",
                                        "tls_server_name", "tls_verify"};
    bg_config *cfg = ctx->cfg;
    key_ref url = ref(ctx, "valkey", "url"), cert, key;
    size_t i;

    for (i = 0; i < BG_ARRAY_LEN(names) && !cfg->valkey.addr.tls && !url.bad; i++) {
        key_ref r = ref(ctx, "valkey", names[i]);
        if (r.line && !r.bad)
            bg_config_key_error(ctx, r.key, r.line, field_text(ctx, r.key),
                                "set, but the url is not a TLS URL",
                                "only with a valkeys://, rediss:// or valkeys+sentinel:// url");
    }
    check_readable(ctx, ref(ctx, "valkey", "tls_ca_file"), cfg->valkey.tls_ca_file);
    cert = ref(ctx, "valkey", "tls_cert_file");
    key = ref(ctx, "valkey", "tls_key_file");
    check_readable(ctx, cert, cfg->valkey.tls_cert_file);
    check_readable(ctx, key, cfg->valkey.tls_key_file);
    if ((cert.line != 0) != (key.line != 0)) {
        key_ref set = cert.line ? cert : key;
        bg_config_key_error(ctx, set.key, set.line, field_text(ctx, set.key),
                            cert.line ? "set without tls_key_file" : "set without tls_cert_file",
                            "tls_cert_file and tls_key_file together, or neither");
    }
}

static void check_valkey(bg_config_ctx *ctx)
{
    bg_config *cfg = ctx->cfg;
    key_ref pw = ref(ctx, "valkey", "password_file");
    char reason[BG_ERR_LEN];

    if (pw.line && !pw.bad &&
        read_secret(cfg->valkey.password_file, cfg->valkey.addr.password,
                    sizeof(cfg->valkey.addr.password), 1, reason) != BG_OK)
        bg_config_key_error(ctx, pw.key, pw.line, cfg->valkey.password_file, reason,
                            "a readable file holding the password on one line");
    check_tls(ctx);
}

/* key_prefix = "app" moves every default key name under "app:" unless that name is set. */
static void derive_name(bg_config_ctx *ctx, const char *name, char *field, size_t size,
                        const char *suffix)
{
    key_ref prefix = ref(ctx, "messaging", "key_prefix");
    int n;

    if (prefix.line == 0 || prefix.bad || ref(ctx, "messaging", name).line)
        return;
    n = snprintf(field, size, "%s%s", ctx->cfg->messaging.key_prefix, suffix);
    if (n < 0 || (size_t)n >= size)
        bg_config_key_error(ctx, prefix.key, prefix.line, ctx->cfg->messaging.key_prefix,
                            "too long to derive the other key names from", NULL);
}

static void check_messaging(bg_config_ctx *ctx)
{
    bg_config *cfg = ctx->cfg;
    key_ref iv = ref(ctx, "messaging", "heartbeat_interval");
    key_ref ex = ref(ctx, "messaging", "heartbeat_expiry");
    key_ref prefix = ref(ctx, "messaging", "key_prefix");
    char shown[32], interval[32], allowed[64];

    /* Braces in the prefix would make their own hash tag, so a service's keys
     * would no longer share one slot (and "{service}" would be substituted twice). */
    if (!prefix.bad && strpbrk(cfg->messaging.key_prefix, "{}") != NULL) {
        bg_config_key_error(ctx, prefix.key, prefix.line, cfg->messaging.key_prefix,
                            "must not contain braces", "a key name without '{' or '}'");
        return;
    }
    derive_name(ctx, "control_stream", cfg->messaging.control_stream,
                sizeof(cfg->messaging.control_stream), ":control");
    derive_name(ctx, "request_stream_template", cfg->messaging.request_stream_template,
                sizeof(cfg->messaging.request_stream_template), ":requests:{service}");
    derive_name(ctx, "response_queue_name", cfg->messaging.response_queue_name,
                sizeof(cfg->messaging.response_queue_name), ":responses");
    if (iv.bad || ex.bad ||
        cfg->messaging.heartbeat_expiry_ms > cfg->messaging.heartbeat_interval_ms)
        return;
    bg_config_format_duration(cfg->messaging.heartbeat_expiry_ms, shown, sizeof(shown));
    bg_config_format_duration(cfg->messaging.heartbeat_interval_ms, interval, sizeof(interval));
    snprintf(allowed, sizeof(allowed), "more than heartbeat_interval = %s", interval);
    bg_config_key_error(ctx, ex.key, ex.line ? ex.line : iv.line, shown,
                        "must be longer than heartbeat_interval", allowed);
}

static void check_gateway(bg_config_ctx *ctx)
{
    bg_config *cfg = ctx->cfg;
    key_ref of = ref(ctx, "gateway", "open_files"), mc = ref(ctx, "gateway", "max_connections");
    char shown[32], allowed[96];

    if (of.bad || mc.bad || cfg->gateway.open_files >= cfg->gateway.max_connections + FD_RESERVE)
        return;
    snprintf(shown, sizeof(shown), "%d", cfg->gateway.open_files);
    snprintf(allowed, sizeof(allowed), "at least max_connections + %d = %d", FD_RESERVE,
             cfg->gateway.max_connections + FD_RESERVE);
    bg_config_key_error(ctx, of.key, of.line ? of.line : mc.line, shown,
                        "too low for max_connections", allowed);
}

static void check_admin(bg_config_ctx *ctx)
{
    bg_config *cfg = ctx->cfg;
    key_ref tok = ref(ctx, "admin", "token"), file = ref(ctx, "admin", "token_file");
    char reason[BG_ERR_LEN];

    if (tok.line && file.line) {
        snprintf(reason, sizeof(reason), "token is set as well, on line %d", tok.line);
        bg_config_key_error(ctx, file.key, file.line, cfg->admin.token_file, reason,
                            "token or token_file, not both");
    } else if (file.line && !file.bad &&
               read_secret(cfg->admin.token_file, cfg->admin.token, sizeof(cfg->admin.token), 16,
                           reason) != BG_OK) {
        bg_config_key_error(ctx, file.key, file.line, cfg->admin.token_file, reason,
                            "a readable file holding a token of 16..255 bytes on one line");
    }
    cfg->admin.enabled = cfg->admin.token[0] != '\0';
}

/* access = admin without a token would protect the document with nothing. */
static void check_openapi(bg_config_ctx *ctx)
{
    key_ref acc = ref(ctx, "openapi", "access");

    if (acc.line && !acc.bad && ctx->cfg->openapi.access == BG_OPENAPI_ADMIN &&
        !ctx->cfg->admin.enabled)
        bg_config_key_error(ctx, acc.key, acc.line, "admin", "no admin token is configured",
                            "public, or admin together with [admin] token or token_file");
}

/* [auth] is on when it has a key source; its other keys alone would enforce nothing, and
 * the key files are read (and their contents checked) when the workers are prepared. */
static void check_auth(bg_config_ctx *ctx)
{
    static const char *const names[] = {"realm",    "algorithm",    "issuer",
                                        "audience", "leeway",       "max_token_size",
                                        "require",  "claim_arrays", "roles_claim"};
    static const char *const files[] = {"jwks_file", "public_key_file", "hmac_secret_file"};
    static const size_t offs[] = {offsetof(bg_config, auth.jwks_file),
                                  offsetof(bg_config, auth.public_key_file),
                                  offsetof(bg_config, auth.hmac_secret_file)};
    bg_config *cfg = ctx->cfg;
    size_t i;

    for (i = 0; i < BG_ARRAY_LEN(files); i++) {
        key_ref r = ref(ctx, "auth", files[i]);
        check_readable(ctx, r, (const char *)cfg + offs[i]);
        cfg->auth.enabled |= r.line != 0;
    }
    for (i = 0; i < BG_ARRAY_LEN(names) && !cfg->auth.enabled; i++) {
        key_ref r = ref(ctx, "auth", names[i]);
        /* Numbers and require are not text: the line number says which one. */
        int text = r.key->kind == BG_CONFIG_STRING || r.key->parse == bg_config_parse_realm ||
                   r.key->parse == bg_config_parse_jwt_alg ||
                   r.key->parse == bg_config_parse_claim_list;
        if (r.line && !r.bad)
            bg_config_key_error(ctx, r.key, r.line, text ? field_text(ctx, r.key) : "(set)",
                                "set, but [auth] has no key to verify tokens with",
                                "with jwks_file, public_key_file or hmac_secret_file");
    }
}

void bg_config_finish(bg_config_ctx *ctx)
{
    check_valkey(ctx);
    check_messaging(ctx);
    if (ctx->bus_only)
        return;
    check_gateway(ctx);
    check_admin(ctx);
    check_openapi(ctx);
    bg_config_check_tls(ctx);
    check_auth(ctx);
}
