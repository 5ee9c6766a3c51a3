/* config_keys.c: the table of every ini section and key, with its type, range and field. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "busgate/proto/frame.h"
#include "config_internal.h"

#define FIELD(f) offsetof(bg_config, f), sizeof(((bg_config *)0)->f)
#define SEC(n) ((int64_t)(n)*1000)
#define MIN(n) ((int64_t)(n)*60 * 1000)
#define HOUR(n) ((int64_t)(n)*3600 * 1000)
#define KIB(n) ((int64_t)(n)*1024)
#define MIB(n) ((int64_t)(n)*1024 * 1024)

#define KEY(sec, name, kind, field, min, max, flags)                                               \
    {                                                                                              \
        sec, name, kind, FIELD(field), min, max, flags, NULL, NULL, NULL                           \
    }
#define CUSTOM(sec, name, field, fn, flags, allowed)                                               \
    {                                                                                              \
        sec, name, BG_CONFIG_CUSTOM, FIELD(field), 0, 0, flags, fn, allowed, NULL                  \
    }
/* A number whose maximum is a limit set elsewhere: the error above it says which. */
#define KEY_CAPPED(sec, name, kind, field, min, max, over_max)                                     \
    {                                                                                              \
        sec, name, kind, FIELD(field), min, max, 0, NULL, NULL, over_max                           \
    }

/* Sections in file order; the two bus sections are what services read. */
static const char *const sections[] = {
    "gateway", "valkey", "messaging", "admin",       "sandbox", "routing", "identity",
    "auth",    "tls",    "limits",    "idempotency", "openapi", "breaker",
};

static const bg_config_key keys[] = {
    KEY("gateway", "instance_id", BG_CONFIG_IDENT, gateway.instance_id, 1, 63, 0),
    CUSTOM("gateway", "listen", gateway.listen, bg_config_parse_listen, BG_CONFIG_REPEAT,
           "host:port, [ipv6]:port, :port or *:port, port 1..65535, optionally followed by ssl, "
           "up to 16 listen lines"),
    CUSTOM("gateway", "workers", gateway.workers, bg_config_parse_workers, 0, "auto or 1..256"),
    KEY("gateway", "reuseport", BG_CONFIG_BOOL, gateway.reuseport, 0, 1, 0),
    CUSTOM("gateway", "worker_cpu_affinity", gateway.cpu_affinity, bg_config_parse_affinity, 0,
           "auto or off"),
    KEY("gateway", "user", BG_CONFIG_IDENT, gateway.user, 1, 63, 0),
    KEY("gateway", "group", BG_CONFIG_IDENT, gateway.group, 1, 63, 0),
    KEY("gateway", "pid_file", BG_CONFIG_PATH, gateway.pid_file, 1, 4095, BG_CONFIG_OFF_OK),
    KEY("gateway", "error_log", BG_CONFIG_PATH, gateway.error_log, 1, 4095, BG_CONFIG_STDERR_OK),
    KEY("gateway", "access_log", BG_CONFIG_PATH, gateway.access_log, 1, 4095,
        BG_CONFIG_OFF_OK | BG_CONFIG_STDERR_OK),
    CUSTOM("gateway", "log_level", gateway.log_level, bg_config_parse_log_level, 0,
           "debug, info, notice, warn, error, crit"),
    KEY("gateway", "request_timeout", BG_CONFIG_DURATION, gateway.request_timeout_ms, 10, HOUR(1),
        0),
    KEY("gateway", "keepalive_timeout", BG_CONFIG_DURATION, gateway.keepalive_timeout_ms, 0,
        HOUR(1), 0),
    KEY("gateway", "drain_timeout", BG_CONFIG_DURATION, gateway.drain_timeout_ms, 0, HOUR(1), 0),
    KEY("gateway", "header_timeout", BG_CONFIG_DURATION, gateway.header_timeout_ms, 100, HOUR(1),
        0),
    KEY("gateway", "body_timeout", BG_CONFIG_DURATION, gateway.body_timeout_ms, 100, HOUR(1), 0),
    /* The body travels as one field of a REQUEST frame (meta has a limit of its own). */
    KEY_CAPPED("gateway", "max_request_body", BG_CONFIG_SIZE, gateway.max_request_body, 0,
               BG_FRAME_BODY_MAX, "larger than the body of a REQUEST frame on the bus can be"),
    KEY("gateway", "max_header_size", BG_CONFIG_SIZE, gateway.max_header_size, KIB(1), MIB(1), 0),
    KEY("gateway", "stream_idle_timeout", BG_CONFIG_DURATION, gateway.stream_idle_timeout_ms, 0,
        HOUR(24), 0),
    KEY("gateway", "stream_buffer", BG_CONFIG_SIZE, gateway.stream_buffer, KIB(16), MIB(64), 0),
    KEY("gateway", "sse_keepalive", BG_CONFIG_DURATION, gateway.sse_keepalive_ms, 0, HOUR(1), 0),
    KEY("gateway", "max_connections", BG_CONFIG_INT, gateway.max_connections, 1, 1048576, 0),
    KEY("gateway", "open_files", BG_CONFIG_INT, gateway.open_files, 64, 1048576, 0),

    CUSTOM("valkey", "url", valkey.url, bg_config_parse_url, BG_CONFIG_URL_SECRET,
           "valkey://[user[:password]@]host[:port][/db], valkeys://, redis://, rediss://, "
           "unix://[user[:password]@]/path[?db=N] or "
           "valkey+sentinel://[user[:password]@]host[:port][,host[:port]...]/master[?db=N]"),
    KEY("valkey", "password_file", BG_CONFIG_PATH, valkey.password_file, 1, 4095, 0),
    KEY("valkey", "connect_timeout", BG_CONFIG_DURATION, valkey.connect_timeout_ms, 10, MIN(10), 0),
    KEY("valkey", "command_timeout", BG_CONFIG_DURATION, valkey.command_timeout_ms, 10, MIN(10), 0),
    KEY("valkey", "tls_ca_file", BG_CONFIG_PATH, valkey.tls_ca_file, 1, 4095, 0),
    KEY("valkey", "tls_cert_file", BG_CONFIG_PATH, valkey.tls_cert_file, 1, 4095, 0),
    KEY("valkey", "tls_key_file", BG_CONFIG_PATH, valkey.tls_key_file, 1, 4095, 0),
    KEY("valkey", "tls_server_name", BG_CONFIG_IDENT, valkey.tls_server_name, 1, 255, 0),
    KEY("valkey", "tls_verify", BG_CONFIG_BOOL, valkey.tls_verify, 0, 1, 0),
    KEY("valkey", "max_inflight", BG_CONFIG_INT, valkey.max_inflight, 1, 65536, 0),

    KEY("messaging", "key_prefix", BG_CONFIG_KEYNAME, messaging.key_prefix, 1, 63, 0),
    KEY("messaging", "control_stream", BG_CONFIG_KEYNAME, messaging.control_stream, 1, 255, 0),
    CUSTOM("messaging", "request_stream_template", messaging.request_stream_template,
           bg_config_parse_template, 0,
           "a key name without spaces containing {service} once, up to 255 characters"),
    KEY("messaging", "response_queue_name", BG_CONFIG_KEYNAME, messaging.response_queue_name, 1,
        255, 0),
    KEY("messaging", "consumer_group", BG_CONFIG_IDENT, messaging.consumer_group, 1, 127, 0),
    KEY("messaging", "lease_duration", BG_CONFIG_DURATION, messaging.lease_duration_ms, SEC(1),
        HOUR(24), 0),
    KEY("messaging", "max_deliveries", BG_CONFIG_INT, messaging.max_deliveries, 1, 1000, 0),
    KEY("messaging", "batch_size", BG_CONFIG_INT, messaging.batch_size, 1, 10000, 0),
    KEY("messaging", "heartbeat_interval", BG_CONFIG_DURATION, messaging.heartbeat_interval_ms, 100,
        HOUR(1), 0),
    KEY("messaging", "heartbeat_expiry", BG_CONFIG_DURATION, messaging.heartbeat_expiry_ms, 200,
        HOUR(24), 0),
    KEY("messaging", "connection_remove_after", BG_CONFIG_DURATION, messaging.connection_remove_ms,
        0, HOUR(24), 0),
    CUSTOM("messaging", "stream_maxlen", messaging.stream_maxlen, bg_config_parse_maxlen, 0,
           "0 (never trim) or 100..1000000000 entries"),

    KEY("admin", "token", BG_CONFIG_STRING, admin.token, 16, 255, BG_CONFIG_SECRET),
    KEY("admin", "token_file", BG_CONFIG_PATH, admin.token_file, 1, 4095, 0),

    KEY("sandbox", "seccomp", BG_CONFIG_BOOL, sandbox.seccomp, 0, 1, 0),

    KEY("routing", "max_services", BG_CONFIG_INT, routing.max_services, 1, 65536, 0),
    KEY("routing", "max_connections", BG_CONFIG_INT, routing.max_connections, 1, 1048576, 0),
    KEY("routing", "max_endpoints", BG_CONFIG_INT, routing.max_endpoints, 1, 1048576, 0),

    CUSTOM("identity", "reserved_headers", identity.reserved_headers, bg_config_parse_headers, 0,
           "comma-separated HTTP header names, up to 1023 characters"),
    CUSTOM("identity", "reserved_prefix", identity.reserved_prefix, bg_config_parse_header_prefix,
           0, "an HTTP header name prefix, 1..63 characters"),

    KEY("idempotency", "enabled", BG_CONFIG_BOOL, idempotency.enabled, 0, 1, 0),
    CUSTOM("idempotency", "methods", idempotency.methods, bg_config_parse_methods, 0,
           "methods among GET HEAD POST PUT PATCH DELETE OPTIONS, space- or comma-separated"),
    KEY("idempotency", "ttl", BG_CONFIG_DURATION, idempotency.ttl_ms, SEC(1), HOUR(24 * 30), 0),
    /* A stored response is one Valkey value; 16 MiB keeps one replay a modest copy. */
    KEY("idempotency", "max_response", BG_CONFIG_SIZE, idempotency.max_response, 0, MIB(16), 0),
    CUSTOM("openapi", "path", openapi.path, bg_config_parse_openapi_path, 0,
           "off, or an absolute URL path of [A-Za-z0-9._~/-] without empty, . or .. segments, "
           "up to 255 characters"),
    CUSTOM("openapi", "access", openapi.access, bg_config_parse_openapi_access, 0,
           "public or admin"),
    KEY("openapi", "max_size", BG_CONFIG_SIZE, openapi.max_size, KIB(64), MIB(256), 0),
    CUSTOM("openapi", "title", openapi.title, bg_config_parse_text, 0,
           "text without control characters, 1..127 bytes"),
    KEY("tls", "certificate", BG_CONFIG_PATH, tls.certificate, 1, 4095, 0),
    KEY("tls", "certificate_key", BG_CONFIG_PATH, tls.certificate_key, 1, 4095, 0),
    KEY("tls", "client_ca", BG_CONFIG_PATH, tls.client_ca, 1, 4095, 0),
    CUSTOM("tls", "verify_client", tls.verify_client, bg_config_parse_verify_client, 0,
           "off, optional or on"),
    CUSTOM("tls", "protocols", tls.protocols, bg_config_parse_protocols, 0,
           "TLSv1.2, TLSv1.3 or both, separated by spaces"),
    CUSTOM("tls", "ciphers", tls.ciphers, bg_config_parse_cipher_list, 0,
           "an OpenSSL cipher list for TLS 1.2, e.g. ECDHE-ECDSA-AES128-GCM-SHA256:..."),
    CUSTOM("tls", "ciphersuites", tls.ciphersuites, bg_config_parse_cipher_list, 0,
           "OpenSSL TLS 1.3 ciphersuites, e.g. TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384"),
    /* [limits] rate_*: request rate limits (docs/configuration.md). */
    CUSTOM("limits", "rate_mode", ratelimit.mode, bg_config_parse_rate_mode, 0, "local or cluster"),
    KEY("limits", "rate_headers", BG_CONFIG_BOOL, ratelimit.headers, 0, 1, 0),
    KEY("limits", "rate_buckets", BG_CONFIG_INT, ratelimit.buckets, 1024, 16777216, 0),
    KEY("limits", "rate_lease", BG_CONFIG_INT, ratelimit.lease, 0, 100000, 0),
    CUSTOM("limits", "rate_limit", ratelimit.rules, bg_config_parse_rate_limit, BG_CONFIG_REPEAT,
           "<METHOD|*> </template/prefix> <n>/<s|m|h> [burst=<n>] [key=client|header:<Name>], "
           "n and burst 1..1000000, up to 64 lines, one per method and prefix"),
    CUSTOM("identity", "claim_headers", identity.claim_headers, bg_config_parse_claim_headers, 0,
           "comma-separated 'Header: claim' pairs, up to 1023 characters"),

    CUSTOM("auth", "realm", auth.realm, bg_config_parse_realm, 0,
           "1..127 printable ASCII characters without '\"' or '\\'"),
    KEY("auth", "jwks_file", BG_CONFIG_PATH, auth.jwks_file, 1, 4095, 0),
    KEY("auth", "public_key_file", BG_CONFIG_PATH, auth.public_key_file, 1, 4095, 0),
    KEY("auth", "hmac_secret_file", BG_CONFIG_PATH, auth.hmac_secret_file, 1, 4095, 0),
    CUSTOM("auth", "algorithm", auth.algorithm, bg_config_parse_jwt_alg, 0,
           "RS256, RS384, RS512, PS256, ES256, ES384, EdDSA, HS256, HS384 or HS512"),
    KEY("auth", "issuer", BG_CONFIG_STRING, auth.issuer, 1, 511, 0),
    KEY("auth", "audience", BG_CONFIG_STRING, auth.audience, 1, 511, 0),
    KEY("auth", "leeway", BG_CONFIG_DURATION, auth.leeway_ms, 0, HOUR(1), 0),
    KEY("auth", "max_token_size", BG_CONFIG_SIZE, auth.max_token_size, 256, MIB(1), 0),
    CUSTOM("auth", "require", auth.require_all, bg_config_parse_require, 0, "claims or all"),
    CUSTOM("auth", "claim_arrays", auth.claim_arrays, bg_config_parse_claim_list, 0,
           "comma-separated claim names, up to 511 characters"),
    KEY("auth", "roles_claim", BG_CONFIG_STRING, auth.roles_claim, 1, 127, 0),
    /* [limits]: queue-depth backpressure (docs/configuration.md). */
    KEY("limits", "backlog_max", BG_CONFIG_INT, backpressure.backlog_max, 0, 1000000000, 0),
    KEY("limits", "backlog_max_age", BG_CONFIG_DURATION, backpressure.backlog_max_age_ms, 0,
        HOUR(24), 0),

    KEY("breaker", "failures", BG_CONFIG_INT, breaker.failures, 0, 1000, 0),
    KEY("breaker", "window", BG_CONFIG_DURATION, breaker.window_ms, 0, HOUR(1), 0),
    KEY("breaker", "cooldown", BG_CONFIG_DURATION, breaker.cooldown_ms, 100, HOUR(1), 0),
    KEY("breaker", "probes", BG_CONFIG_INT, breaker.probes, 1, 100, 0),
};

_Static_assert(BG_ARRAY_LEN(keys) <= BG_CONFIG_MAX_KEYS, "raise BG_CONFIG_MAX_KEYS");

const bg_config_key *bg_config_key_find(const char *section, const char *name)
{
    size_t i;

    for (i = 0; i < BG_ARRAY_LEN(keys); i++) {
        if (strcasecmp(keys[i].section, section) == 0 && strcasecmp(keys[i].name, name) == 0)
            return &keys[i];
    }
    return NULL;
}

const bg_config_key *bg_config_key_at(size_t index)
{
    return index < BG_ARRAY_LEN(keys) ? &keys[index] : NULL;
}

size_t bg_config_key_index(const bg_config_key *key)
{
    return (size_t)(key - keys);
}

size_t bg_config_key_count(void)
{
    return BG_ARRAY_LEN(keys);
}

int bg_config_section_known(const char *section)
{
    size_t i;

    for (i = 0; i < BG_ARRAY_LEN(sections); i++) {
        if (strcasecmp(sections[i], section) == 0)
            return 1;
    }
    return 0;
}

int bg_config_section_bus(const char *section)
{
    return strcasecmp(section, "valkey") == 0 || strcasecmp(section, "messaging") == 0;
}

/* Appends item to a ", "-separated list in buf; a list that does not fit is cut short. */
static void list_append(char *buf, size_t len, const char *item)
{
    size_t used = strlen(buf);

    if (used < len)
        snprintf(buf + used, len - used, "%s%s", used ? ", " : "", item);
}

void bg_config_section_list(char *buf, size_t len)
{
    size_t i;

    buf[0] = '\0';
    for (i = 0; i < BG_ARRAY_LEN(sections); i++)
        list_append(buf, len, sections[i]);
}

void bg_config_key_list(const char *section, char *buf, size_t len)
{
    size_t i;

    buf[0] = '\0';
    for (i = 0; i < BG_ARRAY_LEN(keys); i++) {
        if (strcasecmp(keys[i].section, section) == 0)
            list_append(buf, len, keys[i].name);
    }
}

static void range_allowed(const bg_config_key *key, char *buf, size_t len)
{
    char lo[32], hi[32];

    if (key->kind == BG_CONFIG_DURATION) {
        bg_config_format_duration(key->min, lo, sizeof(lo));
        bg_config_format_duration(key->max, hi, sizeof(hi));
        snprintf(buf, len, "a duration %s..%s with unit ms, s, m or h, e.g. 250ms, 30s, 5m", lo,
                 hi);
    } else if (key->kind == BG_CONFIG_SIZE) {
        bg_config_format_size((uint64_t)key->min, lo, sizeof(lo));
        bg_config_format_size((uint64_t)key->max, hi, sizeof(hi));
        snprintf(buf, len, "a size %s..%s with optional unit k, m or g, e.g. 512k, 1m", lo, hi);
    } else {
        snprintf(buf, len, "an integer %lld..%lld", (long long)key->min, (long long)key->max);
    }
}

void bg_config_key_allowed(const bg_config_key *key, char *buf, size_t len)
{
    const char *off = key->flags & BG_CONFIG_OFF_OK ? ", or off" : "";
    const char *err = key->flags & BG_CONFIG_STDERR_OK ? ", or stderr" : "";

    switch (key->kind) {
    case BG_CONFIG_INT:
    case BG_CONFIG_DURATION:
    case BG_CONFIG_SIZE:
        range_allowed(key, buf, len);
        break;
    case BG_CONFIG_BOOL:
        snprintf(buf, len, "on or off (also yes/no, true/false, 1/0)");
        break;
    case BG_CONFIG_PATH:
        snprintf(buf, len, "a file path%s%s", off, err);
        break;
    case BG_CONFIG_IDENT:
        snprintf(buf, len, "%lld..%lld characters of A-Z a-z 0-9 . _ : -", (long long)key->min,
                 (long long)key->max);
        break;
    case BG_CONFIG_STRING:
    case BG_CONFIG_KEYNAME:
        snprintf(buf, len, "%lld..%lld printable characters without spaces", (long long)key->min,
                 (long long)key->max);
        break;
    case BG_CONFIG_CUSTOM:
        snprintf(buf, len, "%s", key->allowed);
        break;
    }
}
