/* frame.h: bus frames — the typed form of one stream entry, its encoder and validating decoder.
 * The wire format is specified in docs/protocol.md. */
#ifndef BUSGATE_FRAME_H
#define BUSGATE_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "busgate/common.h"
#include "busgate/proto/keys.h"

#define BG_PROTOCOL_VERSION 1

/* Limits (docs/protocol.md, "Limits"). */
#define BG_FRAME_ID_MAX 128            /* id, resync_id: [A-Za-z0-9._:-] */
#define BG_FRAME_SVC_VERSION_MAX 64    /* service version string */
#define BG_FRAME_REASON_MAX 256        /* reason */
#define BG_FRAME_METHOD_MAX 7          /* "OPTIONS" */
#define BG_FRAME_REPLY_TO_MAX 256      /* reply_to key */
#define BG_FRAME_PATH_MAX 8192         /* path, endpoint */
#define BG_FRAME_QUERY_MAX 8192        /* query */
#define BG_FRAME_META_MAX (1 << 20)    /* meta JSON text */
#define BG_FRAME_BODY_MAX (64 << 20)   /* body */
#define BG_FRAME_ENDPOINTS_MAX 1024    /* endpoints per ENDPOINTS_UPDATE */
#define BG_FRAME_HEADERS_MAX 256       /* header pairs in REQUEST/RESPONSE meta */
#define BG_FRAME_PARAMS_MAX 64         /* path parameters in REQUEST meta */
#define BG_FRAME_FEATURES_MAX 64       /* strings in REQUEST meta.features */
#define BG_FRAME_CLAIMS_MAX 64         /* claims per endpoint */
#define BG_FRAME_FIELDS_MAX 64         /* fields per entry, known or not */
#define BG_FRAME_INTERVAL_MAX 86400000 /* interval_ms, timeout_ms: one day */

typedef enum {
    BG_FRAME_HELLO = 1,
    BG_FRAME_HEARTBEAT,
    BG_FRAME_ENDPOINTS_UPDATE,
    BG_FRAME_GOODBYE,
    BG_FRAME_RESYNC_REQUEST,
    BG_FRAME_REQUEST,
    BG_FRAME_CANCEL,
    BG_FRAME_RESPONSE,
    BG_FRAME_RESPONSE_CHUNK, /* a piece of a streamed response body (docs/protocol.md) */
} bg_frame_type;
#define BG_FRAME_TYPE_LAST BG_FRAME_RESPONSE_CHUNK

/* REQUEST meta.features: what the sending gateway understands beyond version 1 as first
 * published. "stream": RESPONSE with stream 1, then RESPONSE_CHUNK frames. */
#define BG_FEATURE_STREAM "stream"

/* HTTP methods an endpoint may declare and a REQUEST may carry. */
typedef enum {
    BG_METHOD_GET = 1,
    BG_METHOD_HEAD,
    BG_METHOD_POST,
    BG_METHOD_PUT,
    BG_METHOD_PATCH,
    BG_METHOD_DELETE,
    BG_METHOD_OPTIONS,
} bg_method;

/* One endpoint of an ENDPOINTS_UPDATE, as plain C. Strings are owned by the list. */
typedef struct bg_endpoint {
    bg_method method;
    char method_name[BG_FRAME_METHOD_MAX + 1];
    char *path;         /* validated template: "/orders/{id}" */
    int64_t timeout_ms; /* 0 = gateway default (request_timeout) */
    char **claims;      /* required claims, may be empty */
    size_t nclaims;
    /* The declared rate limit, "<n>/<s|m|h> [burst=<n>] [key=<src>]" as sent (checked
     * with bg_rate_spec_parse); NULL when absent. */
    char *rate_limit;
    json_t *request_schema;  /* borrowed from the list's meta; NULL when absent */
    json_t *response_schema; /* idem */
    json_t *openapi;         /* idem: per-endpoint OpenAPI operation fragment */
} bg_endpoint;

typedef struct bg_endpoint_list {
    bg_endpoint *items;
    size_t count;
    json_t *openapi; /* service-level OpenAPI fragment, borrowed; NULL when absent */
    json_t *meta_;   /* private: reference keeping the borrowed JSON alive */
} bg_endpoint_list;

/* A decoded frame, or one being built for encoding. Which members a type uses is
 * listed in docs/protocol.md; unused ones stay empty. */
typedef struct bg_frame {
    int version; /* BG_PROTOCOL_VERSION */
    bg_frame_type type;
    char id[BG_FRAME_ID_MAX + 1];
    int64_t ts; /* sender wall clock, Unix ms; 0 = absent */

    char service[BG_NAME_MAX + 1];
    char instance[BG_NAME_MAX + 1];
    char svc_version[BG_FRAME_SVC_VERSION_MAX + 1];
    char gateway[BG_NAME_MAX + 1];
    char reason[BG_FRAME_REASON_MAX + 1];
    char method[BG_FRAME_METHOD_MAX + 1];
    char reply_to[BG_FRAME_REPLY_TO_MAX + 1];
    char resync_id[BG_FRAME_ID_MAX + 1];
    /* RESYNC_REQUEST uses service/instance as its optional target (empty = everyone
     * reading the stream). Strings above are "" when absent. */

    /* Variable-length parts. Encoding: point them at your own buffers (borrowed; they
     * must outlive the bg_frame_wire). Decoding: they point into memory the frame owns,
     * each followed by a NUL byte (path, query and endpoint are then C strings), or
     * into the input fields with bg_frame_decode_borrow (no NUL). ptr NULL = absent. */
    bg_bytes path;     /* REQUEST: decoded, normalised path */
    bg_bytes query;    /* REQUEST: raw query string without '?', may be empty */
    bg_bytes endpoint; /* REQUEST: matched template */
    bg_bytes body;     /* REQUEST, RESPONSE, RESPONSE_CHUNK: raw bytes, may contain NUL */

    int64_t deadline_ms; /* REQUEST: absolute, Unix ms */
    int64_t interval_ms; /* HEARTBEAT */
    int64_t inflight;    /* HEARTBEAT: -1 = absent */
    int status;          /* RESPONSE: 100..599 */
    int stream;          /* RESPONSE: 1 = the body follows in RESPONSE_CHUNK frames; 0 = absent */
    int64_t seq;         /* RESPONSE_CHUNK: 1, 2, ... per request */
    int final;           /* RESPONSE_CHUNK: 1 = the last piece; 0 = absent */

    /* Structured metadata, an owned reference (NULL = absent). bg_frame_free decrefs it.
     * Encoding alternative for hot paths: leave meta NULL and set meta_json to an
     * already serialised JSON object (borrowed, sent verbatim, not re-validated). */
    json_t *meta;
    bg_bytes meta_json;

    /* ENDPOINTS_UPDATE after decode: meta's endpoints, validated and parsed. */
    bg_endpoint_list endpoints;

    void *owned_; /* private: storage of decoded variable-length parts */
    /* private: REQUEST/RESPONSE meta of the common shape, decoded without jansson (meta
     * then stays NULL; the accessors below read either). */
    struct bg_meta_flat *flat_;
} bg_frame;

/* Field/value strings of one frame, ready for redisCommandArgv after a command head
 * such as "XADD key MAXLEN ~ N *". Pointers borrow from the frame (no body copy),
 * so the frame must outlive the wire. The wire points into itself: do not copy it. */
#define BG_WIRE_HEAD_MAX 8
#define BG_WIRE_ARGV_MAX (2 * 32)
typedef struct bg_frame_wire {
    int argc;          /* field and value strings: 2 x fields */
    const char **argv; /* first field name */
    const size_t *argvlen;
    /* private */
    const char *argv_[BG_WIRE_HEAD_MAX + BG_WIRE_ARGV_MAX];
    size_t len_[BG_WIRE_HEAD_MAX + BG_WIRE_ARGV_MAX];
    char num_[8][24];
    int nnum_;
    char *meta_; /* serialised meta when encoded from a json_t */
} bg_frame_wire;

/* Zeroes f, sets version and type; inflight -1 (absent). */
void bg_frame_init(bg_frame *f, bg_frame_type type);
/* Releases what the frame owns (meta reference, decoded storage, endpoint list)
 * and leaves it as after bg_frame_init(f, f->type). Safe on an initialised frame. */
void bg_frame_free(bg_frame *f);

/* "HELLO", ...; "UNKNOWN" for a value outside the enum. */
const char *bg_frame_type_name(bg_frame_type t);
/* Exact, case-sensitive match; BG_ERR when unknown. */
int bg_frame_type_parse(const char *name, size_t len, bg_frame_type *out);
const char *bg_method_name(bg_method m);
int bg_method_parse(const char *name, size_t len, bg_method *out);

/* Validates every field of a stream entry and fills out (initialised here; call
 * bg_frame_free afterwards, also on failure). Copies what it keeps. On failure
 * returns BG_ERR with a precise reason: "REQUEST: missing field 'reply_to'". */
int bg_frame_decode(const bg_field *fields, size_t nfields, bg_frame *out, char *err);
/* Same, but path/query/endpoint/body point into the fields, which must outlive out
 * (e.g. keep the hiredis reply until done). Saves a copy of large bodies. */
int bg_frame_decode_borrow(const bg_field *fields, size_t nfields, bg_frame *out, char *err);

/* Validates f like the decoder would and serialises it into w (initialised here).
 * Call bg_frame_wire_free afterwards, also on failure. */
int bg_frame_encode(const bg_frame *f, bg_frame_wire *w, char *err);
void bg_frame_wire_free(bg_frame_wire *w);
/* Puts nhead strings in front of the fields (lens NULL = strlen) and returns the whole
 * command, e.g. head = {"XADD", key, "MAXLEN", "~", "100000", "*"}. nhead <= BG_WIRE_HEAD_MAX. */
int bg_frame_wire_command(bg_frame_wire *w, const char *const *head, const size_t *headlen,
                          int nhead, int *argc, const char ***argv, const size_t **argvlen);

/* ---- structured parts: no need to poke JSON by hand ---- */

/* A name/value pair borrowed from the frame's meta (valid until it is freed). */
typedef struct bg_pair {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} bg_pair;

/* REQUEST/RESPONSE meta.headers: number of pairs, and pair i (BG_ERR when out of range). */
size_t bg_frame_header_count(const bg_frame *f);
int bg_frame_header_at(const bg_frame *f, size_t i, bg_pair *out);
/* First header with this name (case-insensitive); NULL when absent. */
const char *bg_frame_header_get(const bg_frame *f, const char *name, size_t *len);
/* REQUEST meta.params: count, pair i, lookup by exact name. */
size_t bg_frame_param_count(const bg_frame *f);
int bg_frame_param_at(const bg_frame *f, size_t i, bg_pair *out);
const char *bg_frame_param_get(const bg_frame *f, const char *name, size_t *len);
/* REQUEST meta.client (peer address); NULL when absent. */
const char *bg_frame_client(const bg_frame *f);
/* REQUEST meta.claims.name when it is a string, else NULL (absent, or another JSON type). */
const char *bg_frame_claim_get(const bg_frame *f, const char *name);
/* REQUEST meta.features holds this string (e.g. BG_FEATURE_STREAM): 1, else 0. */
int bg_frame_has_feature(const bg_frame *f, const char *feature);

/* Builders (create meta and its members as needed). Values must be UTF-8 without NUL
 * (JSON strings); BG_ERR otherwise, or past the limits. */
int bg_frame_add_header(bg_frame *f, const char *name, size_t name_len, const char *value,
                        size_t value_len, char *err);
int bg_frame_set_param(bg_frame *f, const char *name, const char *value, size_t value_len,
                       char *err);
int bg_frame_set_client(bg_frame *f, const char *client, char *err);

/* meta {"headers":[[name, value], ...]} written as JSON text directly (no json_t), for a
 * sender on a hot path: set the frame's meta_json to bg_meta_headers_text. Zero it first. */
typedef struct bg_meta_headers {
    char *p; /* private */
    size_t len, cap;
    size_t count; /* pairs added */
} bg_meta_headers;
/* Checks the pair like bg_frame_add_header (same reasons) and appends it. */
int bg_meta_headers_add(bg_meta_headers *m, const char *name, size_t name_len, const char *value,
                        size_t value_len, char *err);
/* The meta text, valid until the next add or free; ptr NULL when no pair was added. */
bg_bytes bg_meta_headers_text(bg_meta_headers *m);
void bg_meta_headers_free(bg_meta_headers *m);

/* Writes s as a JSON string literal (quotes included) into dst; returns the length it
 * needs (write happens only when it fits in cap), or (size_t)-1 when s is not UTF-8 or
 * contains NUL. For hand-built meta_json on the gateway's hot path. */
size_t bg_json_quote(char *dst, size_t cap, const char *s, size_t len);

/* ---- endpoints ---- */

/* Validates a path template: "/" or "/"-separated non-empty segments, each a literal
 * (RFC 3986 pchar without '%'), "{name}" or, last only, "{name*}"; names
 * [A-Za-z_][A-Za-z0-9_]{0,63}, unique; no "." or ".." segments; <= BG_FRAME_PATH_MAX. */
int bg_path_template_validate(const char *tpl, size_t len, char *err);

/* Parses meta {"endpoints":[...], "openapi":{...}} into out (validated; duplicate
 * method+path rejected). out keeps a reference to meta. Free with bg_endpoints_free. */
int bg_endpoints_parse(json_t *meta, bg_endpoint_list *out, char *err);
void bg_endpoints_free(bg_endpoint_list *l);
/* Builds the ENDPOINTS_UPDATE meta from plain endpoints (method, path, timeout_ms,
 * claims, and the optional JSON parts) and an optional service-level openapi. */
int bg_endpoints_to_meta(const bg_endpoint *eps, size_t n, json_t *openapi, json_t **meta_out,
                         char *err);

#endif
