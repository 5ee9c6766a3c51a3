/* config.c: defaults, and loading the ini file into bg_config through inih while collecting
 * every error instead of stopping at the first. */
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_internal.h"

#define VALUE_MAX 4608 /* longest value accepted: a 4095-byte path plus quotes and slack */

static void defaults_gateway(bg_config *cfg)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    if (gethostname(cfg->gateway.instance_id, sizeof(cfg->gateway.instance_id)) != 0 ||
        cfg->gateway.instance_id[0] == '\0')
        snprintf(cfg->gateway.instance_id, sizeof(cfg->gateway.instance_id), "busgate");
    cfg->gateway.instance_id[sizeof(cfg->gateway.instance_id) - 1] = '\0';
    snprintf(cfg->gateway.listen[0].host, sizeof(cfg->gateway.listen[0].host), "0.0.0.0");
    cfg->gateway.listen[0].port = 8080;
    cfg->gateway.nlisten = 1;
    cfg->gateway.workers = ncpu < 1 ? 1 : ncpu > 256 ? 256 : (int)ncpu;
    cfg->gateway.workers_auto = 1;
    snprintf(cfg->gateway.error_log, sizeof(cfg->gateway.error_log), "stderr");
    cfg->gateway.log_level = BG_LOG_NOTICE;
    cfg->gateway.request_timeout_ms = 30 * 1000;
    cfg->gateway.keepalive_timeout_ms = 75 * 1000;
    cfg->gateway.drain_timeout_ms = 30 * 1000;
    cfg->gateway.header_timeout_ms = 10 * 1000;
    cfg->gateway.body_timeout_ms = 60 * 1000;
    cfg->gateway.max_request_body = 1024 * 1024;
    cfg->gateway.max_header_size = 16 * 1024;
    cfg->gateway.stream_buffer = 1024 * 1024;
    cfg->gateway.sse_keepalive_ms = 15 * 1000;
    cfg->gateway.max_connections = 4096;
    cfg->gateway.open_files = 8192;
}

static void defaults_valkey(bg_config *cfg)
{
    snprintf(cfg->valkey.url, sizeof(cfg->valkey.url), "valkey://127.0.0.1:6379");
    snprintf(cfg->valkey.addr.host, sizeof(cfg->valkey.addr.host), "127.0.0.1");
    cfg->valkey.addr.port = BG_VALKEY_DEFAULT_PORT;
    cfg->valkey.connect_timeout_ms = 2 * 1000;
    cfg->valkey.command_timeout_ms = 5 * 1000;
    cfg->valkey.tls_verify = 1;
    cfg->valkey.max_inflight = 1024;
}

static void defaults_messaging(bg_config *cfg)
{
    snprintf(cfg->messaging.key_prefix, sizeof(cfg->messaging.key_prefix), "router");
    snprintf(cfg->messaging.control_stream, sizeof(cfg->messaging.control_stream),
             "router:control");
    snprintf(cfg->messaging.request_stream_template, sizeof(cfg->messaging.request_stream_template),
             "router:requests:{service}");
    snprintf(cfg->messaging.response_queue_name, sizeof(cfg->messaging.response_queue_name),
             "router:responses");
    snprintf(cfg->messaging.consumer_group, sizeof(cfg->messaging.consumer_group),
             "router-gateway");
    cfg->messaging.lease_duration_ms = 5 * 60 * 1000;
    cfg->messaging.max_deliveries = 5;
    cfg->messaging.batch_size = 10;
    cfg->messaging.heartbeat_interval_ms = 10 * 1000;
    cfg->messaging.heartbeat_expiry_ms = 30 * 1000;
    cfg->messaging.connection_remove_ms = 2 * 60 * 1000;
    cfg->messaging.stream_maxlen = 100000;
}

void bg_config_defaults(bg_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    defaults_gateway(cfg);
    defaults_valkey(cfg);
    defaults_messaging(cfg);
    cfg->sandbox.seccomp = 1;
    cfg->tls.protocols = BG_TLS_PROTO_TLS12 | BG_TLS_PROTO_TLS13;
    snprintf(cfg->tls.ciphers, sizeof(cfg->tls.ciphers), "%s", BG_TLS_DEFAULT_CIPHERS);
    snprintf(cfg->tls.ciphersuites, sizeof(cfg->tls.ciphersuites), "%s",
             BG_TLS_DEFAULT_CIPHERSUITES);
    cfg->routing.max_services = 256;
    cfg->routing.max_connections = 1024;
    cfg->routing.max_endpoints = 16384;
    cfg->ratelimit.mode = BG_RATE_LOCAL;
    cfg->ratelimit.headers = 1;
    cfg->ratelimit.buckets = 65536;
    snprintf(cfg->identity.reserved_headers, sizeof(cfg->identity.reserved_headers),
             "X-User-Id, X-User-Roles, X-User-Claims, X-Authenticated-User, X-Forwarded-User");
    snprintf(cfg->identity.reserved_prefix, sizeof(cfg->identity.reserved_prefix), "X-Gateway-");
    cfg->idempotency.enabled = 1;
    snprintf(cfg->idempotency.methods, sizeof(cfg->idempotency.methods), "POST PATCH");
    cfg->idempotency.ttl_ms = 24 * 3600 * 1000LL;
    cfg->idempotency.max_response = 1024 * 1024;
    snprintf(cfg->openapi.path, sizeof(cfg->openapi.path), "/openapi.json");
    cfg->openapi.access = BG_OPENAPI_PUBLIC;
    cfg->openapi.max_size = 4 * 1024 * 1024;
    snprintf(cfg->openapi.title, sizeof(cfg->openapi.title), "busgate");
    snprintf(cfg->auth.realm, sizeof(cfg->auth.realm), "busgate");
    cfg->auth.leeway_ms = 30 * 1000;
    cfg->auth.max_token_size = 8 * 1024;
    snprintf(cfg->auth.claim_arrays, sizeof(cfg->auth.claim_arrays), "roles,permissions");
    snprintf(cfg->auth.roles_claim, sizeof(cfg->auth.roles_claim), "roles");
    /* Backpressure is off (0) by default: the limits depend on the service. */
    cfg->breaker.window_ms = 10 * 1000;
    cfg->breaker.cooldown_ms = 5 * 1000;
    cfg->breaker.probes = 1;
}

/* One pair of surrounding double quotes is dropped: `key = "a b"` reads as a b. */
static int unquote(const char *value, char *out, size_t size)
{
    size_t len = strlen(value);

    if (len >= 2 && value[0] == '"' && value[len - 1] == '"') {
        value++;
        len -= 2;
    }
    if (len >= size)
        return BG_ERR;
    memcpy(out, value, len);
    out[len] = '\0';
    return BG_OK;
}

static void on_unknown_key(bg_config_ctx *ctx, const char *name, const char *value)
{
    char allowed[512];

    bg_config_key_list(ctx->section, allowed, sizeof(allowed));
    bg_config_error(ctx, ctx->lineno, "[%s] %s = '%.64s': unknown key (allowed: %s)", ctx->section,
                    name, value, allowed);
}

static void on_duplicate_key(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                             int first)
{
    char reason[BG_ERR_LEN];

    snprintf(reason, sizeof(reason), "duplicate key, first set on line %d", first);
    bg_config_key_error(ctx, key, ctx->lineno, value, reason,
                        "each key once, only listen and rate_limit repeat");
}

/* inih calls this for every key line; it records errors itself and always returns 1 so that
 * parsing goes on to the end of the file. */
static int on_key(void *user, const char *section, const char *name, const char *raw)
{
    bg_config_ctx *ctx = user;
    const bg_config_key *key;
    char value[VALUE_MAX], reason[BG_ERR_LEN];
    size_t i;

    (void)section; /* the reader tracks the section itself, without inih's length cap */
    if (ctx->bad_line == ctx->lineno || !ctx->section_ok)
        return 1;
    if (ctx->truncated)
        raw = bg_config_line_value(ctx);
    key = bg_config_key_find(ctx->section, name);
    if (key == NULL) {
        on_unknown_key(ctx, name, raw);
        return 1;
    }
    i = bg_config_key_index(key);
    if (ctx->key_line[i] && !(key->flags & BG_CONFIG_REPEAT)) {
        on_duplicate_key(ctx, key, raw, ctx->key_line[i]);
        return 1;
    }
    ctx->key_line[i] = ctx->lineno;
    if (unquote(raw, value, sizeof(value)) != BG_OK)
        bg_set_error(reason, "value too long");
    else if (value[0] == '\0')
        bg_set_error(reason, "missing value");
    else if (bg_config_parse_value(ctx, key, value, reason) == BG_OK)
        return 1;
    ctx->key_bad[i] = 1;
    bg_config_key_error(ctx, key, ctx->lineno, raw, reason, NULL);
    return 1;
}

/* Relative paths in the file are taken from the file's own directory, made absolute so a
 * later chdir() does not change their meaning. */
static void ctx_set_dir(bg_config_ctx *ctx, const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t len = slash ? (size_t)(slash - path) : 0, used = 0;

    ctx->dir[0] = '\0';
    if (path[0] == '/' && len == 0) {
        memcpy(ctx->dir, "/", 2);
        return;
    }
    /* Without a working directory, relative paths stay relative rather than fail the load. */
    if (path[0] != '/' && getcwd(ctx->dir, sizeof(ctx->dir)) != NULL)
        used = strlen(ctx->dir);
    if (slash == NULL)
        return;
    if (used + len + 2 > sizeof(ctx->dir)) {
        ctx->dir[0] = '\0';
        return;
    }
    if (used > 0 && ctx->dir[used - 1] != '/')
        ctx->dir[used++] = '/';
    memcpy(ctx->dir + used, path, len);
    ctx->dir[used + len] = '\0';
}

static void ctx_init(bg_config_ctx *ctx, const char *path, bg_config *cfg, char *errors,
                     size_t errlen, int bus_only)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->cfg = cfg;
    ctx->file = path;
    ctx->bus_only = bus_only;
    ctx->errors = errors;
    ctx->errlen = errlen;
    if (errors && errlen)
        errors[0] = '\0';
    ctx_set_dir(ctx, path);
}

static void parse_file(bg_config_ctx *ctx)
{
    int rc;

    ctx->fp = fopen(ctx->file, "re");
    if (ctx->fp == NULL) {
        bg_config_error(ctx, 0, "cannot open: %s", strerror(errno));
        return;
    }
    rc = ini_parse_stream(bg_config_read_line, ctx, on_key, ctx);
    if (ferror(ctx->fp))
        bg_config_error(ctx, 0, "cannot read: %s", strerror(errno));
    else if (rc < 0)
        bg_config_error(ctx, 0, "ini parser failed (%d)", rc);
    else if (rc > 0 && ctx->nerrors == 0)
        bg_config_error(ctx, rc, "syntax error"); /* inih saw something the reader let through */
    fclose(ctx->fp);
    ctx->fp = NULL;
    bg_config_finish(ctx);
}

static int config_load(const char *path, bg_config *cfg, char *errors, size_t errlen, int bus_only)
{
    bg_config_ctx ctx;

    bg_config_defaults(cfg);
    ctx_init(&ctx, path, cfg, errors, errlen, bus_only);
    if (bg_strlcpy_checked(cfg->path, path, sizeof(cfg->path)) != BG_OK)
        bg_config_error(&ctx, 0, "path too long");
    else
        parse_file(&ctx);
    free(ctx.line);
    bg_config_errors_finish(&ctx);
    return ctx.nerrors ? BG_ERR : BG_OK;
}

int bg_config_load(const char *path, bg_config *cfg, char *errors, size_t errlen)
{
    return config_load(path, cfg, errors, errlen, 0);
}

int bg_config_load_bus_only(const char *path, bg_config *cfg, char *errors, size_t errlen)
{
    return config_load(path, cfg, errors, errlen, 1);
}
