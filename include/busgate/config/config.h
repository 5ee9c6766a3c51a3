/* config.h: the typed gateway configuration read from the ini file, with defaults. */
#ifndef BUSGATE_CONFIG_H
#define BUSGATE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "busgate/common.h"
#include "busgate/core/log.h"
#include "busgate/core/rate_spec.h"
#include "busgate/core/url.h"

#define BG_CONFIG_DEFAULT_PATH "/etc/busgate/busgate.ini"
#define BG_MAX_LISTEN 16

/* "[::1]:8080", "0.0.0.0:80", ":8080" (empty host = all IPv4 addresses, 0.0.0.0);
 * "0.0.0.0:8443 ssl" is a TLS listener (served with the [tls] section). */
typedef struct bg_listen_addr {
    char host[256];
    int port;
    int tls; /* the "ssl" option */
} bg_listen_addr;

/* [openapi] access */
enum { BG_OPENAPI_PUBLIC = 0, BG_OPENAPI_ADMIN = 1 };

/* [tls] verify_client */
#define BG_TLS_VERIFY_OFF 0
#define BG_TLS_VERIFY_OPTIONAL 1 /* asked for; checked against client_ca when sent */
#define BG_TLS_VERIFY_ON 2       /* required: a handshake without one fails */

/* [tls] protocols: bits */
#define BG_TLS_PROTO_TLS12 0x1
#define BG_TLS_PROTO_TLS13 0x2

/* TLS 1.2: forward-secret AEAD suites only (Mozilla's "intermediate" list without DHE). */
#define BG_TLS_DEFAULT_CIPHERS                                                                     \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
/* TLS 1.3: the three suites every client has. */
#define BG_TLS_DEFAULT_CIPHERSUITES                                                                \
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

typedef enum {
    BG_RATE_LOCAL = 0, /* counted in this gateway's shared memory */
    BG_RATE_CLUSTER,   /* counted in Valkey, shared by every gateway on it */
} bg_rate_mode;

#define BG_RATE_MAX_RULES 64
#define BG_RATE_PREFIX_MAX 255

/* One rate_limit line: "<METHOD|*> <template-prefix> <n>/<s|m|h> [burst=<n>] [key=<src>]";
 * the part after the prefix is a bg_rate_spec, the grammar services declare limits in. */
typedef struct bg_rate_rule {
    char method[24];                     /* "*" = every method */
    char prefix[BG_RATE_PREFIX_MAX + 1]; /* a route template prefix, whole segments */
    bg_rate_spec spec;
    int line; /* in the ini, for messages */
} bg_rate_rule;

typedef struct bg_config {
    char path[4096];
    struct {
        char instance_id[64]; /* default: hostname */
        bg_listen_addr listen[BG_MAX_LISTEN];
        int nlisten; /* key may repeat; default 0.0.0.0:8080 */
        int workers; /* resolved count; "auto" = online CPUs */
        int workers_auto;
        int reuseport;            /* one SO_REUSEPORT listen socket per worker (fixed at start) */
        int cpu_affinity;         /* worker_cpu_affinity auto: worker i of a generation on CPU i */
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
        char certificate[4096];     /* PEM: the server certificate, then its chain */
        char certificate_key[4096]; /* PEM private key of the certificate */
        char client_ca[4096];       /* PEM CA bundle for client certificates; "" = no mTLS */
        int verify_client;          /* BG_TLS_VERIFY_*; default on when client_ca is set */
        int protocols;              /* BG_TLS_PROTO_* bits; default TLS 1.2 and 1.3 */
        char ciphers[1024];         /* TLS 1.2 (OpenSSL cipher list) */
        char ciphersuites[512];     /* TLS 1.3 (OpenSSL ciphersuites) */
    } tls;
    struct {
        /* [limits] rate_*: request rate limits (the backlog_* keys of [limits] are not here) */
        bg_rate_mode mode; /* rate_mode, default local */
        int headers;       /* rate_headers: allowed responses carry RateLimit-*, default on */
        int buckets;       /* rate_buckets: local table slots, default 65536 (restart) */
        int lease;         /* rate_lease: tokens per Valkey call in cluster mode; 0 = auto */
        int nrules;        /* rate_limit lines */
        bg_rate_rule rules[BG_RATE_MAX_RULES];
    } ratelimit;
    struct {
        /* headers the gateway strips from clients and sets itself */
        char reserved_headers[1024]; /* default "X-User-Id, X-User-Roles, X-User-Claims, ..." */
        char reserved_prefix[64];    /* default "X-Gateway-" */
        /* "Header:claim,..." set from a verified token (reserved, so clients cannot) */
        char claim_headers[1024];
    } identity;
    struct {
        int enabled;         /* default on: Idempotency-Key is honoured */
        char methods[64];    /* methods it applies to, space-separated; default "POST PATCH" */
        int64_t ttl_ms;      /* how long a finished response is replayed; default 24h */
        size_t max_response; /* larger responses are not stored; default 1m */
    } idempotency;
    struct {
        char path[256];  /* where workers serve the document; "" = off. Default /openapi.json */
        int access;      /* BG_OPENAPI_PUBLIC or BG_OPENAPI_ADMIN (the admin token) */
        size_t max_size; /* bytes of the document in shared memory; default 4m */
        char title[128]; /* info.title; default "busgate" */
    } openapi;
    struct {
        int enabled;     /* a key source is set: tokens are verified, claims enforced */
        char realm[128]; /* WWW-Authenticate realm, default "busgate" */
        char jwks_file[4096], public_key_file[4096], hmac_secret_file[4096];
        char algorithm[16]; /* of public_key_file / hmac_secret_file; JWKS keys without alg */
        char issuer[512], audience[512]; /* "" = not checked */
        int64_t leeway_ms;               /* exp/nbf clock skew, default 30s */
        size_t max_token_size;           /* default 8k */
        int require_all;                 /* require = all: every route needs a valid token */
        char claim_arrays[512];          /* "roles,permissions": arrays a claim may be in */
        char roles_claim[128];           /* X-User-Roles from it, default "roles" */
    } auth;
    /* [limits] backlog_max, backlog_max_age: queue-depth backpressure per service. The
     * struct is not called "limits": the section also holds the rate limits. */
    struct {
        int64_t backlog_max;        /* waiting + pending requests; 0 = off (default) */
        int64_t backlog_max_age_ms; /* oldest waiting or pending request; 0 = off (default) */
    } backpressure;
    /* [breaker]: one circuit breaker per service, shared by every worker. */
    struct {
        int failures;        /* consecutive failures that open it; 0 = off (default) */
        int64_t window_ms;   /* ... counted from the first within this long; 0 = any; 10s */
        int64_t cooldown_ms; /* open this long, then half-open; default 5s */
        int probes;          /* requests let through half-open, successes that close it; 1 */
    } breaker;
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
