/* echo-service.c: example busgate service that answers every request with a JSON echo of it.
 *
 * Endpoints (service "echo"), for every method GET HEAD POST PUT PATCH DELETE OPTIONS:
 *   /echo   /echo/{id}   /echo/files/{path*}
 * and GET /echo/slow?ms=N, which waits N milliseconds (at most 10 minutes) before
 * answering and stops early when the gateway cancels the request, and GET /echo/big?mb=N,
 * which answers N MiB (0..128) of 'x' as application/octet-stream: above the 64 MiB a
 * RESPONSE frame carries, the SDK answers 502 instead (for tests of the limit), and
 * GET /echo/status/{code}, which answers that status (200..599) with {"status":code}
 * (a failing service for tests of the circuit breaker), and GET /echo/limited, which
 * echoes like /echo but declares a rate limit of its own to the gateway ("2/m burst=2":
 * two requests a minute per client address; the gateway answers the third with 429
 * unless an ini [limits] rate_limit rule covers the route, which then decides).
 *
 * Streamed answers (busgate_response_begin/write/end):
 *   GET /echo/stream?n=N&ms=M   N pieces (default 5, at most 1000000) M ms apart (0..60000),
 *                               text/plain "piece <i>\n"; with &size=S (a multiple of 8,
 *                               8..1048576) each piece is S bytes of application/octet-stream
 *                               holding 8-byte big-endian counters (byte k of the body is byte
 *                               k % 8 of the number k / 8), so a client can check every byte
 *                               and its order; &length=1 sets Content-Length up front.
 *   GET /echo/sse?n=N&ms=M      N server-sent events "id: <i>\ndata: tick <i>\n\n" M ms apart.
 * Both stop early once the request is cancelled (client gone, idle limit).
 *
 * The answer is 200 with Content-Type application/json:
 *   {"method":"POST","path":"/echo/42","endpoint":"/echo/{id}","query":"a=1",
 *    "params":{"id":"42"},"headers":[["Host","x"],...],"request_id":"...",
 *    "instance":"...","body_length":5,"body":"hello"}
 * "body" holds the body when it is valid UTF-8; otherwise "body_base64" holds it
 * base64-encoded. A request with Content-Type application/octet-stream is
 * echoed raw instead: the response body is the request body, byte for byte,
 * with Content-Type application/octet-stream (for binary round-trip tests).
 *
 * Usage: echo-service [-c busgate.ini] [-u valkey://host:port] [-n instance] [-w threads]
 *                     [-s name] [-p]
 * -s runs it as service `name` with only the echo endpoints, at /name and /name/{id}
 * (tests that need services in different places: Valkey Cluster slots).
 * The echo and status endpoints run inline (on the SDK's reader thread, see service.h);
 * -p runs them on the handler pool too (for comparisons).
 * It prints one line on stdout once it has registered with the bus.
 */
#include <getopt.h>
#include <stdint.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "busgate/service.h"

#define SLOW_MAX_MS (10 * 60 * 1000)
#define BIG_MAX_MB 128

static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
static const char *const paths[] = {"/echo", "/echo/{id}", "/echo/files/{path*}"};

static char *base64_encode(const unsigned char *in, size_t len)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc(4 * ((len + 2) / 3) + 1), *o = out;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        *o++ = tbl[(v >> 18) & 63];
        *o++ = tbl[(v >> 12) & 63];
        *o++ = i + 1 < len ? tbl[(v >> 6) & 63] : '=';
        *o++ = i + 2 < len ? tbl[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

static json_t *echo_params(const busgate_request *req)
{
    json_t *o = json_object();
    const char *name, *value;

    for (size_t i = 0; o != NULL && i < busgate_request_param_count(req); i++)
        if (busgate_request_param_at(req, i, &name, &value) == BG_OK)
            json_object_set_new(o, name, json_string(value));
    return o;
}

static json_t *echo_headers(const busgate_request *req)
{
    json_t *a = json_array();
    const char *name, *value;

    for (size_t i = 0; a != NULL && i < busgate_request_header_count(req); i++)
        if (busgate_request_header_at(req, i, &name, &value) == BG_OK)
            json_array_append_new(a, json_pack("[s,s]", name, value));
    return a;
}

/* UTF-8 bodies as a string, anything else in base64 (JSON cannot carry raw bytes). */
static int echo_body(json_t *o, const busgate_request *req)
{
    json_t *text = json_stringn(req->body != NULL ? req->body : "", req->body_len);
    char *b64;

    json_object_set_new(o, "body_length", json_integer((json_int_t)req->body_len));
    if (text != NULL)
        return json_object_set_new(o, "body", text);
    if ((b64 = base64_encode(req->body, req->body_len)) == NULL)
        return -1;
    json_object_set_new(o, "body_base64", json_string(b64));
    free(b64);
    return 0;
}

static int send_json(busgate_response *res, int status, json_t *o)
{
    char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    int rc;

    json_decref(o);
    if (text == NULL)
        return BG_ERR;
    rc = busgate_response_set(res, status, "application/json", text, strlen(text));
    free(text);
    return rc;
}

static int is_octet_stream(const busgate_request *req)
{
    const char *ct = busgate_request_header(req, "Content-Type");
    static const char want[] = "application/octet-stream";

    return ct != NULL && strncasecmp(ct, want, sizeof(want) - 1) == 0;
}

/* ---- the echo as text, written directly (jansson's build-and-dump cost more than the
 * rest of a request's work in the service); the same JSON as the jansson version below ---- */

typedef struct jbuf {
    char *p;
    size_t len, cap;
    int bad; /* out of memory, or a string the quoter refuses: use the jansson version */
} jbuf;

/* Room for n more bytes (and a NUL); sets bad when memory runs out. */
static int jb_reserve(jbuf *b, size_t n)
{
    size_t cap;
    char *p;

    if (b->bad)
        return BG_ERR;
    if (b->len + n + 1 <= b->cap)
        return BG_OK;
    cap = (b->len + n + 1) * 2;
    p = realloc(b->p, cap);
    if (p == NULL) {
        b->bad = 1;
        return BG_ERR;
    }
    b->p = p;
    b->cap = cap;
    return BG_OK;
}

static void jb_put(jbuf *b, const char *s, size_t n)
{
    if (jb_reserve(b, n) != BG_OK)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* A JSON string literal of printable ASCII, copied as it is. BG_ERR for anything that
 * needs escaping or validating (quotes, backslashes, control bytes, non-ASCII): the caller
 * lets the jansson version answer then. An example uses only the public SDK header, so
 * it does not borrow the gateway's own quoter. */
static int jb_str(jbuf *b, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
            return BG_ERR;
    }
    if (jb_reserve(b, len + 2) != BG_OK)
        return BG_OK; /* bad is set: the whole echo goes the jansson way */
    b->p[b->len++] = '"';
    memcpy(b->p + b->len, s, len);
    b->len += len;
    b->p[b->len++] = '"';
    return BG_OK;
}

/* "name":"value" with a leading comma unless first. */
static int jb_member(jbuf *b, int first, const char *name, const char *value, size_t len)
{
    if (!first)
        jb_put(b, ",", 1);
    jb_str(b, name, strlen(name));
    jb_put(b, ":", 1);
    return jb_str(b, value, len);
}

/* A string the quoter refuses sends the whole echo down the jansson path. */
static void jb_params_headers(jbuf *b, const busgate_request *req)
{
    const char *name, *value;
    size_t n = 0;

    jb_put(b, ",\"params\":{", 11);
    for (size_t i = 0; i < busgate_request_param_count(req); i++)
        if (busgate_request_param_at(req, i, &name, &value) == BG_OK &&
            jb_member(b, n++ == 0, name, value, strlen(value)) != BG_OK)
            b->bad = 1;
    jb_put(b, "},\"headers\":[", 13);
    n = 0;
    for (size_t i = 0; i < busgate_request_header_count(req); i++) {
        if (busgate_request_header_at(req, i, &name, &value) != BG_OK)
            continue;
        if (n++ > 0)
            jb_put(b, ",", 1);
        jb_put(b, "[", 1);
        if (jb_str(b, name, strlen(name)) != BG_OK)
            b->bad = 1;
        jb_put(b, ",", 1);
        if (jb_str(b, value, strlen(value)) != BG_OK)
            b->bad = 1;
        jb_put(b, "]", 1);
    }
    jb_put(b, "]", 1);
}

/* UTF-8 bodies as a string; anything else is left to echo_body. */
static void jb_body(jbuf *b, const busgate_request *req)
{
    char num[32];
    int n = snprintf(num, sizeof(num), ",\"body_length\":%zu", req->body_len);

    jb_put(b, num, (size_t)n);
    jb_put(b, ",\"body\":", 8);
    /* Not UTF-8 (or a NUL inside): the jansson version answers, in base64 where needed. */
    if (jb_str(b, req->body != NULL ? req->body : "", req->body_len) != BG_OK)
        b->bad = 1;
}

/* The echo without jansson: 1 when it answered (*rc says how that went), 0 when the
 * jansson version must decide. */
static int echo_fast(const busgate_request *req, busgate_response *res, busgate_service *s, int *rc)
{
    const char *inst = busgate_service_instance(s);
    jbuf b = {0};
    int answered = 0;

    jb_put(&b, "{", 1);
    if (jb_member(&b, 1, "method", req->method, strlen(req->method)) != BG_OK ||
        jb_member(&b, 0, "path", req->path, strlen(req->path)) != BG_OK ||
        jb_member(&b, 0, "endpoint", req->endpoint, strlen(req->endpoint)) != BG_OK ||
        jb_member(&b, 0, "query", req->query, strlen(req->query)) != BG_OK ||
        jb_member(&b, 0, "request_id", req->id, strlen(req->id)) != BG_OK ||
        jb_member(&b, 0, "instance", inst, strlen(inst)) != BG_OK)
        goto cleanup;
    jb_params_headers(&b, req);
    jb_body(&b, req);
    jb_put(&b, "}", 1);
    if (!b.bad) {
        *rc = busgate_response_set(res, 200, "application/json", b.p, b.len);
        answered = 1;
    }
cleanup:
    free(b.p);
    return answered;
}

static int handle_echo(const busgate_request *req, busgate_response *res, void *arg)
{
    busgate_service *s = arg;
    json_t *o;
    int rc;

    if (is_octet_stream(req))
        return busgate_response_set(res, 200, "application/octet-stream", req->body, req->body_len);
    if (echo_fast(req, res, s, &rc))
        return rc;
    o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "method", req->method, "path", req->path,
                  "endpoint", req->endpoint, "query", req->query, "request_id", req->id, "instance",
                  busgate_service_instance(s));
    if (o == NULL)
        return BG_ERR;
    json_object_set_new(o, "params", echo_params(req));
    json_object_set_new(o, "headers", echo_headers(req));
    if (echo_body(o, req) != 0) {
        json_decref(o);
        return BG_ERR;
    }
    return send_json(res, 200, o);
}

/* Sleeps in 10 ms steps so a CANCEL (client gone, deadline) ends it early. */
static int handle_slow(const busgate_request *req, busgate_response *res, void *arg)
{
    struct timespec step = {0, 10 * 1000000L};
    char value[32];
    long ms = 0, slept = 0;

    (void)arg;
    if (busgate_request_query_param(req, "ms", value, sizeof(value)) == BG_OK)
        ms = strtol(value, NULL, 10);
    if (ms < 0 || ms > SLOW_MAX_MS)
        return send_json(res, 400, json_pack("{s:s}", "error", "ms must be 0..600000"));
    while (slept < ms && !busgate_request_cancelled(req)) {
        nanosleep(&step, NULL);
        slept += 10;
    }
    return send_json(res, 200,
                     json_pack("{s:i, s:b}", "slept_ms", (int)slept, "cancelled",
                               busgate_request_cancelled(req)));
}

/* A body of N MiB; the SDK refuses (and answers 502) one too large for the bus. */
static int handle_big(const busgate_request *req, busgate_response *res, void *arg)
{
    char value[32];
    long mb = 0;
    char *body;
    int rc;

    (void)arg;
    if (busgate_request_query_param(req, "mb", value, sizeof(value)) == BG_OK)
        mb = strtol(value, NULL, 10);
    if (mb < 0 || mb > BIG_MAX_MB)
        return send_json(res, 400, json_pack("{s:s}", "error", "mb must be 0..128"));
    body = malloc(mb > 0 ? (size_t)mb << 20 : 1);
    if (body == NULL)
        return send_json(res, 500, json_pack("{s:s}", "error", "out of memory"));
    memset(body, 'x', (size_t)mb << 20);
    rc = busgate_response_set(res, 200, "application/octet-stream", body, (size_t)mb << 20);
    free(body);
    return rc;
}

/* The status the path names: a service that fails on demand. */
static int handle_status(const busgate_request *req, busgate_response *res, void *arg)
{
    const char *name, *value = NULL;
    long code = 0;

    (void)arg;
    for (size_t i = 0; i < busgate_request_param_count(req); i++)
        if (busgate_request_param_at(req, i, &name, &value) == BG_OK && strcmp(name, "code") == 0)
            code = strtol(value, NULL, 10);
    if (code < 200 || code > 599)
        return send_json(res, 400, json_pack("{s:s}", "error", "code must be 200..599"));
    return send_json(res, (int)code, json_pack("{s:i}", "status", (int)code));
}

#define STREAM_MAX_PIECES 1000000L
#define STREAM_MAX_MS 60000L
#define STREAM_MAX_SIZE (1L << 20)

/* A query number in [lo, hi], def when absent; -1 when out of range or not a number. */
static long query_long(const busgate_request *req, const char *name, long def, long lo, long hi)
{
    char value[32], *end;
    long v;

    if (busgate_request_query_param(req, name, value, sizeof(value)) != BG_OK)
        return def;
    v = strtol(value, &end, 10);
    return end != value && *end == '\0' && v >= lo && v <= hi ? v : -1;
}

/* Sleeps ms in 10 ms steps; 0 once the request is cancelled. */
static int pause_ms(const busgate_request *req, long ms)
{
    struct timespec step = {0, 10 * 1000000L};

    for (long slept = 0; slept < ms && !busgate_request_cancelled(req); slept += 10) {
        if (ms - slept < 10)
            step.tv_nsec = (ms - slept) * 1000000L;
        nanosleep(&step, NULL);
    }
    return !busgate_request_cancelled(req);
}

/* Piece i of size bytes: the 8-byte big-endian counters of its place in the body. */
static void fill_counters(unsigned char *p, long size, long i)
{
    uint64_t first = (uint64_t)i * (uint64_t)size / 8;

    for (long k = 0; k < size / 8; k++)
        for (int b = 0; b < 8; b++)
            p[k * 8 + b] = (unsigned char)((first + (uint64_t)k) >> (56 - 8 * b));
}

static int stream_begin(const busgate_request *req, busgate_response *res, long n, long size)
{
    char len[32];

    if (size > 0 && query_long(req, "length", 0, 0, 1) == 1) {
        snprintf(len, sizeof(len), "%ld", n * size);
        if (busgate_response_add_header(res, "Content-Length", len) != BG_OK)
            return BG_ERR;
    }
    return busgate_response_begin(res, 200, size > 0 ? "application/octet-stream" : "text/plain");
}

static int handle_stream(const busgate_request *req, busgate_response *res, void *arg)
{
    long n = query_long(req, "n", 5, 0, STREAM_MAX_PIECES);
    long ms = query_long(req, "ms", 0, 0, STREAM_MAX_MS);
    long size = query_long(req, "size", 0, 8, STREAM_MAX_SIZE);
    unsigned char *piece = NULL;
    char text[32];
    int rc = BG_OK;

    (void)arg;
    if (n < 0 || ms < 0 || size < 0 || size % 8 != 0)
        return send_json(res, 400, json_pack("{s:s}", "error", "bad n, ms or size"));
    if (size > 0 && (piece = malloc((size_t)size)) == NULL)
        return BG_ERR;
    if (stream_begin(req, res, n, size) != BG_OK)
        rc = BG_ERR;
    for (long i = 0; rc == BG_OK && i < n; i++) {
        if (i > 0 && !pause_ms(req, ms))
            break;
        if (size > 0)
            fill_counters(piece, size, i);
        int tlen = snprintf(text, sizeof(text), "piece %ld\n", i);
        if (busgate_response_write(res, size > 0 ? (void *)piece : text,
                                   size > 0 ? (size_t)size : (size_t)tlen) != BG_OK)
            break; /* cancelled: the client is gone, nobody reads the rest */
    }
    free(piece);
    return rc == BG_OK ? busgate_response_end(res) : rc;
}

static int handle_sse(const busgate_request *req, busgate_response *res, void *arg)
{
    long n = query_long(req, "n", 5, 0, STREAM_MAX_PIECES);
    long ms = query_long(req, "ms", 1000, 0, STREAM_MAX_MS);
    char event[64];

    (void)arg;
    if (n < 0 || ms < 0)
        return send_json(res, 400, json_pack("{s:s}", "error", "bad n or ms"));
    if (busgate_response_add_header(res, "Cache-Control", "no-cache") != BG_OK ||
        busgate_response_begin(res, 200, "text/event-stream") != BG_OK)
        return BG_ERR;
    for (long i = 0; i < n; i++) {
        int len = snprintf(event, sizeof(event), "id: %ld\ndata: tick %ld\n\n", i, i);
        if ((i > 0 && !pause_ms(req, ms)) || busgate_response_write(res, event, (size_t)len))
            return BG_OK;
    }
    return busgate_response_end(res);
}

/* -s name: the echo endpoints only, under /name. */
static int add_named_endpoints(busgate_service *s, const char *name,
                               const busgate_endpoint_opts *quick, char *err)
{
    char path[2][160];

    snprintf(path[0], sizeof(path[0]), "/%s", name);
    snprintf(path[1], sizeof(path[1]), "/%s/{id}", name);
    for (size_t p = 0; p < 2; p++)
        for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++)
            if (busgate_service_add_endpoint(s, methods[m], path[p], handle_echo, s, quick, err))
                return BG_ERR;
    return BG_OK;
}

/* The echo and status handlers answer from memory: they run on the reader's thread
 * (run_inline) unless -p asked for the pool; the others sleep, stream or fill megabytes. */
static int add_endpoints(busgate_service *s, const char *name, int pool_only, char *err)
{
    busgate_endpoint_opts limited = {.run_inline = !pool_only, .rate_limit = "2/m burst=2"};
    busgate_endpoint_opts quick = {.run_inline = !pool_only};

    if (name != NULL)
        return add_named_endpoints(s, name, &quick, err);
    for (size_t p = 0; p < sizeof(paths) / sizeof(paths[0]); p++)
        for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++)
            if (busgate_service_add_endpoint(s, methods[m], paths[p], handle_echo, s, &quick, err))
                return BG_ERR;
    if (busgate_service_add_endpoint(s, "GET", "/echo/slow", handle_slow, NULL, NULL, err) ||
        busgate_service_add_endpoint(s, "GET", "/echo/status/{code}", handle_status, NULL, &quick,
                                     err) ||
        busgate_service_add_endpoint(s, "GET", "/echo/stream", handle_stream, NULL, NULL, err) ||
        busgate_service_add_endpoint(s, "GET", "/echo/sse", handle_sse, NULL, NULL, err))
        return BG_ERR;
    if (busgate_service_add_endpoint(s, "GET", "/echo/limited", handle_echo, s, &limited, err))
        return BG_ERR;
    return busgate_service_add_endpoint(s, "GET", "/echo/big", handle_big, NULL, NULL, err);
}

static void on_ready(busgate_service *s, void *arg)
{
    (void)arg;
    printf("echo-service: registered as %s/%s with %zu endpoints on %s\n", busgate_service_name(s),
           busgate_service_instance(s), busgate_service_endpoint_count(s),
           busgate_service_request_stream(s));
    fflush(stdout);
}

static void usage(FILE *to)
{
    fprintf(to, "usage: echo-service [-c busgate.ini] [-u valkey-url] [-n instance] [-w threads]"
                " [-s name] [-p]\n");
}

/* Options apply in a fixed order: the ini first, then what the command line overrides. */
static int configure(busgate_service *s, int argc, char **argv, int *pool_only, char *err)
{
    const char *ini = NULL, *url = NULL, *inst = NULL, *threads = NULL;
    int opt;

    while ((opt = getopt(argc, argv, "c:u:n:w:s:ph")) != -1) {
        switch (opt) {
        case 's':
            break; /* read by service_name() */
        case 'c':
            ini = optarg;
            break;
        case 'u':
            url = optarg;
            break;
        case 'n':
            inst = optarg;
            break;
        case 'w':
            threads = optarg;
            break;
        case 'p':
            *pool_only = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if ((ini != NULL && busgate_service_load_config(s, ini, err) != BG_OK) ||
        (url != NULL && busgate_service_set_url(s, url, err) != BG_OK) ||
        (inst != NULL && busgate_service_set_instance(s, inst, err) != BG_OK) ||
        (threads != NULL && busgate_service_set_threads(s, atoi(threads), err) != BG_OK))
        return BG_ERR;
    return BG_OK;
}

/* -s name, before the service exists (its name is fixed at creation); NULL: "echo". */
static const char *service_name(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "-s") == 0)
            return argv[i + 1];
    return NULL;
}

int main(int argc, char **argv)
{
    char err[BG_ERR_LEN];
    const char *name = service_name(argc, argv);
    busgate_service *s;
    int rc, pool_only = 0;

    s = busgate_service_new(name != NULL ? name : "echo", "1.0.0", err);
    if (s == NULL || configure(s, argc, argv, &pool_only, err) != BG_OK ||
        add_endpoints(s, name, pool_only, err) != BG_OK) {
        fprintf(stderr, "echo-service: %s\n", err);
        busgate_service_free(s);
        return 2;
    }
    busgate_service_on_ready(s, on_ready, NULL);
    rc = busgate_service_run(s, err);
    if (rc != BG_OK)
        fprintf(stderr, "echo-service: %s\n", err);
    busgate_service_free(s);
    return rc == BG_OK ? 0 : 1;
}
