/* service.h: the busgate service SDK (libbusgate-service): write a microservice behind busgate. */
#ifndef BUSGATE_SERVICE_H
#define BUSGATE_SERVICE_H

/*
 * A service declares its name, version and endpoints, then calls
 * busgate_service_run(), which serves until SIGTERM/SIGINT or
 * busgate_service_stop(). The wire protocol it speaks is docs/protocol.md.
 *
 *     static int hello(const busgate_request *req, busgate_response *res, void *arg)
 *     {
 *         const char *name = busgate_request_param(req, "name");
 *         char text[128];
 *         int n = snprintf(text, sizeof(text), "hello %s\n", name);
 *
 *         (void)arg;
 *         return busgate_response_set(res, 200, "text/plain", text, (size_t)n);
 *     }
 *
 *     int main(void)
 *     {
 *         char err[BG_ERR_LEN];
 *         busgate_service *s = busgate_service_new("hello", "1.0.0", err);
 *         int rc = s != NULL ? BG_OK : BG_ERR;
 *
 *         if (rc == BG_OK)
 *             rc = busgate_service_set_url(s, "valkey://127.0.0.1:6379", err);
 *         if (rc == BG_OK)
 *             rc = busgate_service_add_endpoint(s, "GET", "/hello/{name}", hello, NULL,
 *                                               NULL, err);
 *         if (rc == BG_OK)
 *             rc = busgate_service_run(s, err); // until SIGTERM: HELLO ... GOODBYE
 *         if (rc != BG_OK)
 *             fprintf(stderr, "hello: %s\n", err);
 *         busgate_service_free(s);
 *         return rc == BG_OK ? 0 : 1;
 *     }
 *
 * Build: cc app.c $(pkg-config --cflags --libs busgate-service)
 *
 * THREADING MODEL
 *
 * busgate_service_run() runs on the calling thread and starts the threads
 * below. The reader, the control thread and the responder each have their own
 * Valkey connection (a blocking read holds its connection, and a connection is
 * never shared between threads); handler threads do no I/O on the bus:
 *
 * - the calling thread is the request reader: it reads the service's request
 *   stream as a member of the consumer group (at most one batch, batch_size,
 *   more than there are handler threads, so it holds few requests it cannot
 *   start at once and its reads overlap the handlers' work), reclaims
 *   entries idle past the lease from dead instances, dead-letters malformed and
 *   too-often-delivered entries and those whose deadline passed, and
 *   extends the lease of requests whose handler runs longer than half of it;
 *   it stops reading while threads + batch_size requests are queued or being
 *   handled;
 * - one control thread: HELLO at start (and again after a reconnect),
 *   HEARTBEAT every heartbeat interval, answers RESYNC_REQUEST (own instance
 *   stream and the broadcast stream) with ENDPOINTS_UPDATE, reads the CANCEL
 *   stream and sets the cancelled flag of the request it names, and sends
 *   GOODBYE last;
 * - a pool of handler threads (busgate_service_set_threads, default 4): each
 *   takes one request at a time and calls its endpoint's handler;
 * - one responder thread: writes the RESPONSEs the handlers finished since its
 *   last round to their reply keys as one pipelined batch, and acknowledges a
 *   request (XACK) only after Valkey confirmed its RESPONSE, so a crash never
 *   loses an answer (at worst the request is delivered, and answered, again).
 *   Up to one more batch of answered requests may wait for it.
 *
 * INLINE HANDLERS
 *
 * An endpoint added with busgate_endpoint_opts.run_inline (or every endpoint after
 * busgate_service_set_inline(s, 1)) skips the pool: the reader calls its handler itself,
 * one request after the other, as soon as the batch is read, and writes their answers
 * itself, pipelined on its own connection: no thread hand-over at all. The order stays
 * RESPONSE first, XACK once Valkey confirmed it (the acks go with the reader's next
 * round of answers, or alone before it waits for more requests), so delivery stays at
 * least once. Use it for handlers that answer from memory in microseconds: while one
 * runs, the reader neither reads nor extends leases, and no other inline handler runs.
 * Inline handlers run on the thread that called busgate_service_run(), with SIGPIPE
 * blocked; cancellation, deadlines, streamed responses and the 404 of an unknown
 * endpoint behave as on the pool. Requests the service answers 404 (no endpoint) are
 * always handled inline.
 *
 * So handlers run concurrently with each other (up to the pool size) and must
 * protect shared state themselves (a mutex); one request is handled by
 * exactly one thread, and the request and response objects belong to that
 * thread for the duration of the call. A handler may block (sleep, I/O); it
 * should poll busgate_request_cancelled() in long loops and return early once
 * it is set: the response of a cancelled request is dropped (the request is
 * still acknowledged). The threads the SDK starts block SIGTERM and SIGINT, so
 * these signals reach the thread that called busgate_service_run(). SIGPIPE is
 * blocked in that thread while it runs the service and in the SDK's own bus
 * threads: a write to a closed peer, such as a TLS connection to a Valkey that
 * restarted, fails with EPIPE instead of killing the process. Handler threads
 * have SIGPIPE unblocked, and the process-wide disposition of SIGPIPE is left
 * as the application set it.
 *
 * Delivery is at least once: after a crash or a lost lease a request is handed
 * to another instance, possibly after the first one did the work. Make
 * handlers idempotent (the request id, or an idempotency key from the client).
 * Work longer than the lease should answer 202 with a job id.
 *
 * A busgate_service is configured from one thread before run; while it runs,
 * only busgate_service_stop() and the read-only getters may be called from
 * other threads (busgate_service_stop() is also async-signal-safe).
 */

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "busgate/common.h"

#define BUSGATE_SDK_VERSION "busgate-c/" BUSGATE_VERSION
#define BUSGATE_SERVICE_DEFAULT_THREADS 4
#define BUSGATE_SERVICE_MAX_THREADS 1024

typedef struct busgate_service busgate_service;
typedef struct busgate_response busgate_response;

/* One request as the handler sees it. Everything is valid for the duration of
 * the handler call only: copy what must live longer. Strings are NUL-terminated. */
typedef struct busgate_request {
    const char *id;       /* request id, unique per gateway ("gw1:2:000000000042") */
    const char *method;   /* "GET", "POST", ... */
    const char *path;     /* decoded, normalised path: "/orders/42" */
    const char *query;    /* raw query string without '?', "" when none */
    const char *endpoint; /* the matched template: "/orders/{id}" */
    const char *gateway;  /* instance id of the gateway that sent it */
    const char *client;   /* client address as the gateway saw it; NULL when unknown */
    const void *body;     /* raw bytes (may contain NUL); NULL when body_len is 0 */
    size_t body_len;
    int64_t deadline_ms; /* absolute, wall clock Unix ms: the gateway answers 504 after it */
    long deliveries;     /* 1 on a first delivery, more after a crash or lost lease */
    /* Set (to 1) by the control thread when the gateway sends CANCEL for this
     * request; poll it with busgate_request_cancelled() or atomic_load(). */
    atomic_int cancelled;
    const void *priv_; /* SDK private */
} busgate_request;

/* A handler fills res (status defaults to 200, no headers, empty body) and returns
 * BG_OK. Any other return value replaces the response with a 500. */
typedef int busgate_handler_fn(const busgate_request *req, busgate_response *res, void *arg);

/* Optional parts of an endpoint; zero/NULL members are absent. JSON members are
 * JSON text, parsed and checked when the endpoint is added. */
typedef struct busgate_endpoint_opts {
    int64_t timeout_ms;        /* 0 = the gateway's request_timeout; at most one day */
    const char *const *claims; /* claims a caller must hold (at most 64) */
    size_t nclaims;
    const char *request_schema;  /* JSON Schema of the request body (object or boolean) */
    const char *response_schema; /* JSON Schema of the response body */
    const char *openapi;         /* OpenAPI operation object for this endpoint */
    /* 1: the handler never blocks (no sleep, no I/O that may wait, no long computation):
     * it runs on the request reader's thread right after the read, which also writes its
     * answer: no hand-over to a handler thread and the responder. See "INLINE HANDLERS". */
    int run_inline;
    /* A rate limit the gateway applies to this route, "<n>/<s|m|h> [burst=<n>]
     * [key=client|key=header:<Name>]" (e.g. "100/s burst=20", "2/m key=header:X-Api-Key"):
     * a token bucket per client key, answered 429 with Retry-After. The gateway's own
     * [limits] rate_limit rules override it; when instances declare different limits the
     * strictest applies. Checked when the endpoint is added. */
    const char *rate_limit;
} busgate_endpoint_opts;

/* ---- lifecycle ---- */

/* name: [A-Za-z0-9._-]{1,64}, first byte a letter or digit; version: printable
 * ASCII without spaces, at most 64 bytes. Defaults: instance "<hostname>-<pid>"
 * (made a valid name), Valkey valkey://127.0.0.1:6379, [messaging] defaults of
 * busgate.ini, 4 handler threads, signals handled. NULL with err on failure. */
busgate_service *busgate_service_new(const char *name, const char *version, char *err);
void busgate_service_free(busgate_service *s);

/* Connects (retrying with backoff while Valkey is unreachable), sends HELLO and
 * serves until busgate_service_stop(), SIGTERM or SIGINT; then stops taking
 * requests, finishes those it holds, sends GOODBYE and returns BG_OK. Returns
 * BG_ERR at once, with the reason in err, when it cannot serve (no endpoints,
 * bad configuration, already running). May be called again after it returned. */
int busgate_service_run(busgate_service *s, char *err);
/* Ask run() to stop; any thread, also from a signal handler. Before run() it
 * makes the next run() return at once. */
void busgate_service_stop(busgate_service *s);

/* Called once per run() on the control thread after the first HELLO was
 * written (the request group exists by then): "registered". */
typedef void busgate_ready_fn(busgate_service *s, void *arg);
void busgate_service_on_ready(busgate_service *s, busgate_ready_fn *fn, void *arg);

/* ---- configuration (before run) ---- */

/* Reads [valkey] and [messaging] of a busgate.ini (other sections ignored):
 * url, password_file, timeouts, TLS files, key names, lease_duration,
 * max_deliveries, batch_size, heartbeat_interval, stream_maxlen. Settings made
 * in code before this call are replaced by the file's (and its defaults). */
int busgate_service_load_config(busgate_service *s, const char *path, char *err);
/* valkey:// valkeys:// redis:// rediss:// unix:// URL, or a Sentinel one
 * (valkey+sentinel://s1:26379,s2:26379/mymaster, valkeys+sentinel://; see busgate.ini(5)). */
int busgate_service_set_url(busgate_service *s, const char *url, char *err);
int busgate_service_set_instance(busgate_service *s, const char *instance, char *err);
/* Handler threads, 1..BUSGATE_SERVICE_MAX_THREADS. */
int busgate_service_set_threads(busgate_service *s, int threads, char *err);
int busgate_service_set_heartbeat_interval(busgate_service *s, int64_t ms, char *err);
/* The lease: how long a request may stay unacknowledged before another instance
 * takes it over (also the reclaim idle time); at least 100 ms. */
int busgate_service_set_lease(busgate_service *s, int64_t ms, char *err);
/* Deliveries after which a request goes to the dead-letter stream; 0 = never. */
int busgate_service_set_max_deliveries(busgate_service *s, int n, char *err);
/* Most requests read in one XREADGROUP, 1..10000 (also capped by idle threads). */
int busgate_service_set_batch_size(busgate_service *s, int n, char *err);
/* Connect and command timeouts of every connection. */
int busgate_service_set_timeouts(busgate_service *s, int64_t connect_ms, int64_t command_ms,
                                 char *err);
/* 1: every endpoint runs inline, as if each had busgate_endpoint_opts.run_inline set
 * (for services whose handlers never block); 0 (default): per endpoint. */
void busgate_service_set_inline(busgate_service *s, int on);
/* 1 (default): run() installs SIGTERM/SIGINT handlers that stop it, and
 * restores the previous ones on return. 0: the application handles signals. */
void busgate_service_handle_signals(busgate_service *s, int on);
/* Service-level OpenAPI fragment sent with the endpoints ("info", "components"). */
int busgate_service_set_openapi(busgate_service *s, const char *json, char *err);

/* method: GET HEAD POST PUT PATCH DELETE OPTIONS. path: a template ("/orders/{id}",
 * "/files/{path*}"). One handler per (method, template); opts may be NULL. Requests
 * are dispatched by the template the gateway matched (compared by shape, so
 * "/a/{x}" reaches "/a/{id}"); a HEAD request without a HEAD endpoint goes to the
 * GET handler; a request no endpoint takes is answered 404. Before run() only. */
int busgate_service_add_endpoint(busgate_service *s, const char *method, const char *path,
                                 busgate_handler_fn *fn, void *arg,
                                 const busgate_endpoint_opts *opts, char *err);

/* ---- getters ---- */

const char *busgate_service_name(const busgate_service *s);
const char *busgate_service_instance(const busgate_service *s);
const char *busgate_service_version(const busgate_service *s);
size_t busgate_service_endpoint_count(const busgate_service *s);
/* The request stream this service reads, "router:requests:{orders}"; "" until
 * run() has started (it derives the key names from the configuration). */
const char *busgate_service_request_stream(const busgate_service *s);
/* Requests being handled or waiting for a handler thread right now. */
long busgate_service_inflight(const busgate_service *s);

/* ---- request ---- */

/* Route parameter by name ("id" of "/orders/{id}"; a tail parameter holds the
 * rest of the path, "a/b.txt"); NULL when absent. */
const char *busgate_request_param(const busgate_request *req, const char *name);
size_t busgate_request_param_count(const busgate_request *req);
int busgate_request_param_at(const busgate_request *req, size_t i, const char **name,
                             const char **value);
/* First header with this name (case-insensitive); NULL when absent. */
const char *busgate_request_header(const busgate_request *req, const char *name);
/* Headers in arrival order, repeated ones as separate pairs. */
size_t busgate_request_header_count(const busgate_request *req);
int busgate_request_header_at(const busgate_request *req, size_t i, const char **name,
                              const char **value);
/* A claim of the caller's token, as the gateway verified it (REQUEST meta.claims), when it
 * is a string: busgate_request_claim(req, "sub"). NULL when the request came without a
 * token, the claim is absent or not a string; the whole set is the X-User-Claims header
 * (compact JSON). Only a gateway with [auth] sets claims, and it removes what clients send
 * as X-User-* headers, so these can be trusted as far as the bus can. */
const char *busgate_request_claim(const busgate_request *req, const char *name);
/* First query parameter with this name, percent-decoded ('+' as space) into out;
 * BG_ERR when absent, badly encoded or longer than outlen - 1. */
int busgate_request_query_param(const busgate_request *req, const char *name, char *out,
                                size_t outlen);
/* 1 once the gateway cancelled the request (client gone or deadline passed). */
int busgate_request_cancelled(const busgate_request *req);
/* Milliseconds until the deadline (negative once it passed). */
int64_t busgate_request_remaining_ms(const busgate_request *req);

/* ---- response ---- */

void busgate_response_set_status(busgate_response *res, int status); /* 100..599 */
/* Appends a header; name an HTTP token, value UTF-8 without control bytes. */
int busgate_response_add_header(busgate_response *res, const char *name, const char *value);
/* Copies len bytes (binary-safe) as the body, replacing an earlier one. */
int busgate_response_set_body(busgate_response *res, const void *body, size_t len);
/* Status, Content-Type header (NULL = none) and body in one call. */
int busgate_response_set(busgate_response *res, int status, const char *content_type,
                         const void *body, size_t len);

/* ---- streamed response ----
 *
 * For bodies produced over time (progress, large exports, server-sent events):
 *
 *     busgate_response_add_header(res, "Cache-Control", "no-cache");   // optional
 *     if (busgate_response_begin(res, 200, "text/event-stream") != BG_OK)
 *         return BG_ERR;
 *     while (more) {
 *         if (busgate_response_write(res, piece, len) != BG_OK)
 *             return BG_OK;   // cancelled (client gone, idle limit) or the bus refused it
 *         ...
 *     }
 *     return busgate_response_end(res);
 *
 * begin sends the status and the headers set so far at once (and a body set before it, as
 * the first bytes); each write is passed on to
 * the client as it arrives (chunked to HTTP/1.1 clients; a Content-Length header set before
 * begin is passed through instead and the gateway checks the total). Call them from the
 * handler's thread during the handler call; they block while Valkey takes each piece (a
 * write larger than 64 KiB goes as several pieces). A write returns BG_ERR once the request
 * was cancelled: stop then. A handler that returns without busgate_response_end ends the
 * stream: normally when it returned BG_OK, otherwise as broken off (the client sees a
 * truncated body). After begin the status, header and body setters must not be used.
 *
 * A gateway that does not announce streaming support in the request (older versions) gets
 * one whole RESPONSE instead: begin only sets the status and Content-Type, the writes
 * collect the body (at most 64 MiB, as for busgate_response_set_body), and it is sent when
 * the handler returns. busgate_response_streaming() tells which. */
int busgate_response_begin(busgate_response *res, int status, const char *content_type);
int busgate_response_write(busgate_response *res, const void *data, size_t len);
int busgate_response_end(busgate_response *res);
/* 1 after a begin that streams to the client, 0 before it or in the fallback. */
int busgate_response_streaming(const busgate_response *res);

#endif
