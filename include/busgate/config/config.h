/* config.h: the typed gateway configuration read from the ini file, with defaults. */
#ifndef BUSGATE_CONFIG_H
#define BUSGATE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "busgate/common.h"
#include "busgate/core/log.h"
#include "busgate/core/url.h"

#define BG_CONFIG_DEFAULT_PATH "/etc/busgate/busgate.ini"
#define BG_MAX_LISTEN 16

/* "[::1]:8080", "0.0.0.0:80", ":8080" (empty host = all IPv4 addresses, 0.0.0.0) */
typedef struct bg_listen_addr {
    char host[256];
    int port;
} bg_listen_addr;

typedef struct bg_config {
    char path[4096];
    struct {
        char instance_id[64]; /* default: hostname */
        bg_listen_addr listen[BG_MAX_LISTEN];
        int nlisten; /* key may repeat; default 0.0.0.0:8080 */
        int workers; /* resolved count; "auto" = online CPUs */
        int workers_auto;
        char user[64], group[64]; /* empty = do not drop privileges */
        char pid_file[4096], error_log[4096], access_log[4096];
        bg_log_level log_level; /* debug info notice warn error crit */
        int64_t request_timeout_ms, keepalive_timeout_ms, drain_timeout_ms, header_timeout_ms,
            body_timeout_ms;
        size_t max_request_body, max_header_size;
        /* Streamed responses: pause allowed between two pieces (0 = the endpoint's
         * timeout), bytes queued per client before pieces are left on the bus, and the
         * interval of ": keep-alive" comments on a quiet text/event-stream (0 = none). */
        int64_t stream_idle_timeout_ms, sse_keepalive_ms;
        size_t stream_buffer;
        int max_connections; /* per worker */
        int open_files;      /* RLIMIT_NOFILE for workers */
    } gateway;
    struct {
        char url[1024];
        bg_valkey_addr addr;
        char password_file[4096]; /* overrides the URL password; file content trimmed */
        int64_t connect_timeout_ms, command_timeout_ms;
        char tls_ca_file[4096], tls_cert_file[4096], tls_key_file[4096], tls_server_name[256];
        int tls_verify;   /* default 1 */
        int max_inflight; /* cap of commands in flight per connection */
    } valkey;
    struct {
        char key_prefix[64];               /* default "router" */
        char control_stream[256];          /* default "router:control" */
        char request_stream_template[256]; /* default "router:requests:{service}" */
        char response_queue_name[256];     /* default "router:responses" */
        char consumer_group[128];          /* default "router-gateway" */
        int64_t lease_duration_ms;         /* default 5m */
        int max_deliveries;                /* default 5 */
        int batch_size;                    /* default 10 */
        int64_t heartbeat_interval_ms;     /* default 10s */
        int64_t heartbeat_expiry_ms;       /* default 30s: no heartbeat for this long = down */
        int64_t connection_remove_ms;      /* default 2m: down this long = removed */
        size_t stream_maxlen;              /* default 100000, approximate trim */
    } messaging;
    struct {
        char token[256];
        char token_file[4096];
        int enabled; /* token or token_file set; token_file is read at load */
    } admin;
    struct {
        int seccomp; /* on/off, default on */
    } sandbox;
    struct {
        int max_services, max_connections, max_endpoints; /* defaults 256, 1024, 16384 */
    } routing;
    struct {
        /* headers the gateway strips from clients and sets itself */
        char reserved_headers[1024]; /* default "X-User-Id, X-User-Roles, X-User-Claims, ..." */
        char reserved_prefix[64];    /* default "X-Gateway-" */
    } identity;
} bg_config;

void bg_config_defaults(bg_config *cfg);
/* Parse path into cfg (defaults first). All errors are collected, one per line, into errors
 * (errlen bytes), each "FILE:LINE: [section] key = 'value': reason (allowed: ...)".
 * Returns BG_OK/BG_ERR. */
int bg_config_load(const char *path, bg_config *cfg, char *errors, size_t errlen);
/* For services (SDK): only [valkey] and [messaging] are read; other sections are ignored. */
int bg_config_load_bus_only(const char *path, bg_config *cfg, char *errors, size_t errlen);

/* Durations: an integer with a unit "ms", "s", "m" or "h" ("250ms", "30s", "5m", "1h");
 * a bare number means seconds (as nginx). Returns BG_OK or BG_ERR (bad syntax/overflow). */
int bg_parse_duration_ms(const char *s, int64_t *out);
/* Sizes: an integer with an optional binary unit "k", "m" or "g" (case-insensitive,
 * also "kb"/"mb"/"gb"): "512", "512k", "1m", "1g". Returns BG_OK or BG_ERR. */
int bg_parse_size(const char *s, size_t *out);

#endif
