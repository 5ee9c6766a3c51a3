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
    "gateway", "valkey", "messaging", "admin", "sandbox", "routing", "identity",
};

static const bg_config_key keys[] = {
    KEY("gateway", "instance_id", BG_CONFIG_IDENT, gateway.instance_id, 1, 63, 0),
    CUSTOM("gateway", "listen", gateway.listen, bg_config_parse_listen, BG_CONFIG_REPEAT,
           "host:port, [ipv6]:port, :port or *:port, port 1..65535, up to 16 listen lines"),
    CUSTOM("gateway", "workers", gateway.workers, bg_config_parse_workers, 0, "auto or 1..256"),
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
           "valkey://[user[:password]@]host[:port][/db], valkeys://, redis://, rediss:// or "
           "unix://[user[:password]@]/path[?db=N]"),
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
