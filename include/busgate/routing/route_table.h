/* route_table.h: shared-memory routing table, written by the master, read lock-free by workers. */
#ifndef BUSGATE_ROUTE_TABLE_H
#define BUSGATE_ROUTE_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "busgate/common.h"
#include "busgate/core/rate_spec.h"

/*
 * Concurrency scheme (details and the proof sketch in docs/routing.md)
 * -------------------------------------------------------------------
 * One anonymous MAP_SHARED mapping, made by the master before it forks. It
 * holds an immutable header (capacities, array offsets) and two copies of the
 * whole routing state. Each copy has its own sequence number (a seqlock); the
 * header holds the index of the active copy. There is exactly one writer (the
 * master); readers never write to the mapping, so it can be PROT_READ in them.
 *
 * Writer (bg_rt_publish): builds the new state in the inactive copy: makes its
 * sequence odd (relaxed store + release fence), writes the data, makes the
 * sequence even again (release store), then stores the copy's index into
 * `active` (release).
 *
 * Reader (bg_rt_lookup, bg_rt_snapshot_json): loads `active` (acquire), loads
 * the copy's sequence (acquire) and restarts if it is odd, reads what it needs
 * into private memory (every offset and index bounds-checked against the
 * immutable capacities, so garbage read during a concurrent rewrite can never
 * fault or loop), then issues an acquire fence and re-reads the sequence. A
 * changed sequence means the copy was rewritten meanwhile: the result is
 * thrown away and the read retried (BG_RT_READ_RETRIES times, then BG_RT_BUSY).
 * Nothing read before the final check is ever acted upon.
 *
 * The writer only rewrites the copy readers are not directed to, so a reader
 * retries only when it is slower than one whole publish.
 *
 * Offsets, not pointers, are stored in shared memory.
 */

/* Attempts of a reader before it reports BG_RT_BUSY. */
#define BG_RT_READ_RETRIES 64

/* Limits of one route template and of the strings copied out by a lookup. */
#define BG_RT_SERVICE_MAX 64   /* bytes of a service name */
#define BG_RT_TEMPLATE_MAX 511 /* bytes of a path template */
#define BG_RT_CLAIMS_MAX 511   /* bytes of a comma-separated claims list */
#define BG_RT_ID_MAX 255       /* bytes of a connection id, instance id or version */
#define BG_RT_PARAM_NAME_MAX 63
#define BG_RT_MAX_PARAMS 16
#define BG_RT_MAX_SEGMENTS 32 /* segments of a template */

/* HTTP methods as bits (allow_mask). An unknown method has no bit: it is never
 * served, and a lookup with it answers 405 where the path exists. */
enum {
    BG_RT_M_GET = 1u << 0,
    BG_RT_M_HEAD = 1u << 1,
    BG_RT_M_POST = 1u << 2,
    BG_RT_M_PUT = 1u << 3,
    BG_RT_M_DELETE = 1u << 4,
    BG_RT_M_PATCH = 1u << 5,
    BG_RT_M_OPTIONS = 1u << 6,
    BG_RT_M_CONNECT = 1u << 7,
    BG_RT_M_TRACE = 1u << 8,
};
#define BG_RT_NMETHODS 9

/* Method name (case-sensitive, as HTTP) -> its bit, or 0 when unknown. */
unsigned bg_rt_method_bit(const char *method, size_t len);
/* Bit -> method name ("GET"), or NULL. */
const char *bg_rt_method_name(unsigned bit);
/* Writes an Allow header value ("GET, HEAD, POST") for mask into buf. */
int bg_rt_allow_string(unsigned mask, char *buf, size_t size);

typedef struct bg_rt bg_rt; /* process-local handle on the shared mapping */

/* Capacities, fixed at creation (the [routing] section of the config).
 * max_endpoints counts endpoint declarations over all connections.
 * max_nodes and string_bytes may be 0: derived from max_endpoints. */
typedef struct bg_rt_limits {
    int max_services;
    int max_connections;
    int max_endpoints;
    int max_nodes;       /* trie nodes (distinct path prefixes); 0 = 8 * max_endpoints + 1 */
    size_t string_bytes; /* interned strings per copy; 0 = derived */
} bg_rt_limits;

/* Creates the mapping (MAP_SHARED|MAP_ANONYMOUS): call before fork(). The
 * table starts empty at generation 0 (every lookup answers NOT_FOUND). */
bg_rt *bg_rt_create(const bg_rt_limits *lim, char *err);
/* Unmaps and frees the handle; in a worker this only drops its own view. */
void bg_rt_destroy(bg_rt *rt);
/* In a worker after fork, before its seccomp filter (mprotect, and free of
 * the writer's scratch inherited through fork): makes this view read-only. */
int bg_rt_protect_readonly(bg_rt *rt, char *err);
/* Bytes of the mapping (for logs). */
size_t bg_rt_mapping_size(const bg_rt *rt);

/* ---- Writer side (the master only; never from two threads at once) ---- */

typedef struct bg_rt_endpoint_in {
    const char *method;        /* "GET" ... */
    const char *path_template; /* "/orders/{id}", "/files/{path*}" */
    int64_t timeout_ms;        /* 0 = the gateway's request_timeout */
    const char *claims;        /* comma-separated required claims; NULL or "" = none */
    /* The service's declared rate limit, "<n>/<s|m|h> [burst=<n>] [key=<src>]" (the
     * grammar of core/rate_spec.h); NULL or "" = none. A route's limit is the strictest
     * its connections declare (bg_rate_spec_cmp): like claims, a declaration takes
     * effect as soon as one instance makes it, whatever the order of registration. */
    const char *rate_limit;
} bg_rt_endpoint_in;

typedef struct bg_rt_connection_in {
    const char *connection_id;
    const char *service;
    const char *instance;
    const char *version; /* NULL = "" */
    int up;              /* 0 = marked down (missed heartbeats): routing skips it */
    int64_t last_heartbeat_wall_ms;
    const bg_rt_endpoint_in *endpoints;
    size_t nendpoints;
} bg_rt_connection_in;

/* Called by bg_rt_publish for every endpoint that lost a conflict: the same
 * method and template shape is already served by an earlier service in the
 * input order. The master logs it. Strings are valid during the call only. */
typedef void (*bg_rt_conflict_fn)(void *ud, const char *method, const char *path_template,
                                  const char *winner_service, const char *loser_service,
                                  const char *loser_connection_id);
void bg_rt_set_conflict_cb(bg_rt *rt, bg_rt_conflict_fn fn, void *ud);

/* Replaces the whole routing state with conns[0..n) in one atomic step:
 * builds into the inactive copy, then flips. Input order matters: pass
 * connections in registration order (oldest first); the first service to
 * declare a method+template keeps it. On BG_ERR (capacity exceeded, bad
 * template or method, duplicate connection id) nothing changes and err says
 * what, e.g. "routing table full: 16385 endpoints, max_endpoints is 16384".
 * Cost is linear in the input: coalesce heartbeat-only changes. */
int bg_rt_publish(bg_rt *rt, const bg_rt_connection_in *conns, size_t n, char *err);

/* Check one endpoint (method, template, claims length, timeout) or one
 * template exactly as publish will. publish refuses the whole state when one
 * endpoint is bad, so the master checks each ENDPOINTS_UPDATE with these and
 * rejects that frame alone. Templates: "/" or "/seg/seg...", a segment being
 * a literal, "{name}" (one non-empty segment) or, last only, "{name*}" (the
 * non-empty rest of the path, slashes included); name [A-Za-z0-9_]{1,63};
 * at most BG_RT_MAX_SEGMENTS segments, BG_RT_MAX_PARAMS parameters and
 * BG_RT_TEMPLATE_MAX bytes. */
int bg_rt_endpoint_check(const bg_rt_endpoint_in *ep, char *err);
int bg_rt_template_check(const char *path_template, char *err);

/* ---- Reader side (any process; lock-free, never blocks the writer) ---- */

typedef enum {
    BG_RT_FOUND = 0,
    BG_RT_NOT_FOUND,          /* 404 */
    BG_RT_METHOD_NOT_ALLOWED, /* 405, allow_mask says what is allowed */
    BG_RT_NO_LIVE_INSTANCE,   /* 503: route known, every connection down */
    BG_RT_BUSY,               /* the writer kept rewriting; retry later (503) */
} bg_rt_status;

typedef struct bg_rt_param {
    char name[BG_RT_PARAM_NAME_MAX + 1];
    size_t off, len; /* into the looked-up path */
} bg_rt_param;

typedef struct bg_rt_match {
    bg_rt_status status;
    char service[BG_RT_SERVICE_MAX + 1];
    char endpoint[BG_RT_TEMPLATE_MAX + 1]; /* the matched path template */
    int64_t timeout_ms;                    /* 0 = the gateway's request_timeout */
    char claims[BG_RT_CLAIMS_MAX + 1];
    bg_rate_spec rate;   /* the route's declared limit, parsed; rate.count 0 = none */
    unsigned allow_mask; /* methods allowed at that path (405 Allow); set for FOUND too */
    int nup;             /* live connections serving the route */
    int nparams;
    bg_rt_param params[BG_RT_MAX_PARAMS];
    uint64_t generation; /* of the state the answer came from */
} bg_rt_match;

/* Looks up method + path. path is the decoded, normalised path without the
 * query, starting with '/'; it need not be NUL-terminated. Returns BG_OK with
 * out->status set, or BG_ERR (out->status NOT_FOUND) for a path that does not
 * start with '/'.
 * Precedence: segment by segment, a literal child beats a parameter, which
 * beats a tail; when the preferred branch leads nowhere for this method the
 * walk backtracks (so "/a/{x}/c" and "/a/b/{y}" both serve "/a/b/c": the
 * more literal one earlier in the path wins). The first template in that
 * order that has the method wins; only if none has it the answer is 405, with
 * allow_mask the union over every template the path matched. A winner whose
 * connections are all down is 503 (NO_LIVE_INSTANCE): no fallback to a less
 * precise route. HEAD falls back to a GET route (and GET implies HEAD in
 * allow_mask). A trailing slash is tried as written first; when nothing
 * matched at all, "/orders/" is tried again as "/orders". Bytes are compared
 * as they are (case-sensitive). */
int bg_rt_lookup(const bg_rt *rt, const char *method, const char *path, size_t path_len,
                 bg_rt_match *out); /* method: NUL-terminated; safe from any thread */

/* Generation of the last published state (0 = nothing published yet). */
uint64_t bg_rt_generation(const bg_rt *rt);

/* A consistent snapshot as JSON (malloc'd, caller frees): generation,
 * services (aggregate: versions, live/total connections, the union of routed
 * endpoints), connections (instance, version, liveness, last heartbeat,
 * declared endpoints). Shape in docs/routing.md. */
int bg_rt_snapshot_json(const bg_rt *rt, char **json_out, char *err);

#endif
