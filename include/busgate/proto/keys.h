/* keys.h: names of every Valkey key and consumer group busgate uses, derived from [messaging]. */
#ifndef BUSGATE_KEYS_H
#define BUSGATE_KEYS_H

#include <stddef.h>

#include "busgate/common.h"

/* Service, instance and gateway names: 1..64 bytes of [A-Za-z0-9._-], first byte
 * alphanumeric. No ':' or braces, so a name can never forge another key or hash tag. */
#define BG_NAME_MAX 64
/* Longest key or group name the functions below produce (buffer of BG_KEY_MAX + 1). */
#define BG_KEY_MAX 256

/* The strings key derivation needs, borrowed (usually from the loaded bg_config:
 * cfg->messaging.* and cfg->gateway.instance_id). NULL members take the defaults. */
typedef struct bg_messaging_names {
    const char *key_prefix;              /* "router" */
    const char *control_stream;          /* "router:control" */
    const char *request_stream_template; /* "router:requests:{service}" */
    const char *response_queue_name;     /* "router:responses" */
    const char *consumer_group;          /* "router-gateway" */
    const char *instance_id;             /* this gateway's id (control group, reply keys) */
} bg_messaging_names;

#define BG_DEFAULT_KEY_PREFIX "router"
#define BG_DEFAULT_CONTROL_STREAM "router:control"
#define BG_DEFAULT_REQUEST_STREAM_TEMPLATE "router:requests:{service}"
#define BG_DEFAULT_RESPONSE_QUEUE_NAME "router:responses"
#define BG_DEFAULT_CONSUMER_GROUP "router-gateway"

/* Fills every member with the defaults above; instance_id NULL. */
void bg_messaging_names_default(bg_messaging_names *m);

/* Points every member at the loaded configuration ([messaging] names and the
 * gateway's instance_id); cfg must outlive m. */
struct bg_config;
void bg_messaging_names_from_config(bg_messaging_names *m, const struct bg_config *cfg);

/* Checks a service/instance/gateway name; what ("service") names it in err. */
int bg_name_validate(const char *what, const char *name, char *err);
/* Same check on a binary-safe value (frames). */
int bg_name_validate_bytes(const char *what, const char *name, size_t len, char *err);

/* Every function writes a NUL-terminated key into out (outlen bytes) and returns
 * BG_OK, or BG_ERR with the reason in err (bad name, template without {service},
 * result longer than outlen - 1 or BG_KEY_MAX). */

/* Template with "{service}" -> "router:requests:{orders}" (braces kept: hash tag). */
int bg_key_request_stream(const bg_messaging_names *m, const char *service, char *out,
                          size_t outlen, char *err);
/* "<prefix>:cancel:{orders}": CANCEL frames, read by every instance with XREAD. */
int bg_key_cancel_stream(const bg_messaging_names *m, const char *service, char *out, size_t outlen,
                         char *err);
/* "<prefix>:instance:{orders}:<instance>": RESYNC_REQUEST to one instance. */
int bg_key_instance_stream(const bg_messaging_names *m, const char *service, const char *instance,
                           char *out, size_t outlen, char *err);
/* "<prefix>:broadcast": fleet-wide RESYNC_REQUEST, read with XREAD by every instance. */
int bg_key_broadcast_stream(const bg_messaging_names *m, char *out, size_t outlen, char *err);
/* The control stream (config value verbatim, "router:control"). */
int bg_key_control_stream(const bg_messaging_names *m, char *out, size_t outlen, char *err);
/* "<response_queue_name>:<gateway>:<worker>": one gateway worker's reply stream. */
int bg_key_reply_stream(const bg_messaging_names *m, const char *gateway, int worker, char *out,
                        size_t outlen, char *err);
/* "<key_prefix>:gateway:<instance_id>:state": a JSON document the master
 * rewrites after each routing change (debounced) and every heartbeat
 * interval, with a TTL of a few intervals (busgatectl state reads it):
 * {"gateway", "pid", "version", "started_ms", "time_ms", "ttl_ms", the route
 * table snapshot members ("generation", "services", "connections"; see
 * docs/routing.md), "registry" (per connection: liveness, resync state) and
 * "stats" (frame counters)}. Deleted when the master stops. */
int bg_key_gateway_state(const bg_messaging_names *m, char *out, size_t outlen, char *err);
/* The SCAN MATCH pattern of every gateway's state key ("<prefix>:gateway:*:state", glob
 * characters of the prefix escaped), and the gateway named by one such key (BG_ERR when
 * key is not a state key of this prefix or its name is not a valid gateway name). */
int bg_key_gateway_state_pattern(const bg_messaging_names *m, char *out, size_t outlen, char *err);
int bg_key_gateway_of_state(const bg_messaging_names *m, const char *key, char *gateway,
                            size_t glen);
/* "<prefix>:idem:{<service>}:<digest>": the idempotency record of one key on one route
 * (digest: lowercase hex of a hash the gateway makes of method, path and key). */
int bg_key_idempotency(const bg_messaging_names *m, const char *service, const char *digest,
                       char *out, size_t outlen, char *err);
/* "<stream>:dead": dead letters of any stream (keeps the stream's hash tag). */
int bg_key_dead_letter(const char *stream, char *out, size_t outlen, char *err);

/* "<consumer_group>:<instance_id>": this gateway's group on the control stream. */
int bg_group_control(const bg_messaging_names *m, char *out, size_t outlen, char *err);
/* "<consumer_group>": the group all instances of a service share on its request
 * stream (consumer name = instance name). */
int bg_group_requests(const bg_messaging_names *m, char *out, size_t outlen, char *err);

#endif
