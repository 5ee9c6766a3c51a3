/* test_sdk.c: the service SDK at the bus level: frames in, frames out, against a private
 * valkey-server. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "busgate/bus/bus.h"
#include "busgate/proto/frame.h"
#include "busgate/core/log.h"
#include "busgate/service.h"
#include "valkey_harness.h"

#define SVC "echo"
#define REQUESTS "router:requests:{echo}"
#define DEAD REQUESTS ":dead"
#define CANCELS "router:cancel:{echo}"
#define CONTROL "router:control"
#define BROADCAST "router:broadcast"
#define REPLY "router:responses:gw1:0"
#define GROUP "router-gateway"

/* Repeats cond every 20 ms until it holds or ms passed; ok gets the last result. */
#define WAIT_FOR(ok, cond, ms)                                                                     \
    do {                                                                                           \
        int64_t end_ = bg_mono_ms() + (ms);                                                        \
        while (!((ok) = (cond)) && bg_mono_ms() < end_)                                            \
            usleep(20 * 1000);                                                                     \
    } while (0)

static bgt_valkey srv;
static bg_bus *bus;
static char err[BG_ERR_LEN];

/* What the handlers saw (each test runs in its own process). */
static atomic_int slow_started, slow_saw_cancel, expired_calls;

static void setup(void)
{
    bg_log_set_level(BG_LOG_WARN);
    cr_assert_eq(bgt_valkey_start(&srv, NULL), 0, "valkey-server did not start");
    bg_bus_opts o;
    bg_bus_opts_init(&o);
    cr_assert_eq(bg_bus_opts_from_url(&o, srv.url, err), BG_OK, "%s", err);
    bus = bg_bus_connect(&o, err);
    cr_assert_not_null(bus, "connect: %s", err);
}

static void teardown(void)
{
    bg_bus_free(bus);
    bus = NULL;
    bgt_valkey_stop(&srv);
}

TestSuite(sdk, .init = setup, .fini = teardown, .timeout = 60);

/* ---- handlers ---- */

static json_t *json_params(const busgate_request *req)
{
    json_t *o = json_object();
    const char *n, *v;

    for (size_t i = 0; i < busgate_request_param_count(req); i++)
        if (busgate_request_param_at(req, i, &n, &v) == BG_OK)
            json_object_set_new(o, n, json_string(v));
    return o;
}

static json_t *json_headers(const busgate_request *req)
{
    json_t *a = json_array();
    const char *n, *v;

    for (size_t i = 0; i < busgate_request_header_count(req); i++)
        if (busgate_request_header_at(req, i, &n, &v) == BG_OK)
            json_array_append_new(a, json_pack("[s,s]", n, v));
    return a;
}

static int send_json(busgate_response *res, int status, json_t *o)
{
    char *text = json_dumps(o, JSON_COMPACT);
    int rc = busgate_response_set(res, status, "application/json", text, strlen(text));

    free(text);
    json_decref(o);
    return rc;
}

/* X-Raw: the body comes back byte for byte; else a JSON echo of the request. */
static int h_echo(const busgate_request *req, busgate_response *res, void *arg)
{
    char x[64] = "";
    json_t *o;

    (void)arg;
    if (strcmp(req->path, "/echo/expired") == 0)
        atomic_fetch_add(&expired_calls, 1);
    if (busgate_request_header(req, "X-Raw") != NULL)
        return busgate_response_set(res, 201, "application/octet-stream", req->body, req->body_len);
    busgate_request_query_param(req, "x", x, sizeof(x));
    o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:o, s:o, s:s%}", "method", req->method,
                  "path", req->path, "endpoint", req->endpoint, "query", req->query, "x", x,
                  "gateway", req->gateway, "deliveries", (json_int_t)req->deliveries, "params",
                  json_params(req), "headers", json_headers(req), "body",
                  req->body != NULL ? (const char *)req->body : "", req->body_len);
    busgate_response_add_header(res, "X-Echo", "yes");
    return send_json(res, 200, o);
}

/* A redelivery answers at once; a first delivery waits for CANCEL (10 s at most). */
static int h_slow(const busgate_request *req, busgate_response *res, void *arg)
{
    (void)arg;
    if (req->deliveries > 1)
        return send_json(res, 200, json_pack("{s:I}", "deliveries", (json_int_t)req->deliveries));
    atomic_fetch_add(&slow_started, 1);
    for (int i = 0; i < 1000 && !busgate_request_cancelled(req); i++)
        usleep(10 * 1000);
    if (busgate_request_cancelled(req))
        atomic_store(&slow_saw_cancel, 1);
    return send_json(res, 200, json_pack("{s:s}", "late", "answer"));
}

/* Takes ?ms=N, then answers with the deliveries it saw. */
static int h_sleep(const busgate_request *req, busgate_response *res, void *arg)
{
    char ms[16] = "0";

    (void)arg;
    busgate_request_query_param(req, "ms", ms, sizeof(ms));
    usleep((useconds_t)atoi(ms) * 1000);
    return send_json(res, 200, json_pack("{s:I}", "deliveries", (json_int_t)req->deliveries));
}

/* Remembers the thread it ran on (inline handlers run on the reader: run()'s thread). */
static pthread_t where_thread;
static atomic_int where_calls;

static int h_where(const busgate_request *req, busgate_response *res, void *arg)
{
    (void)arg;
    where_thread = pthread_self();
    atomic_fetch_add(&where_calls, 1);
    return send_json(res, 200, json_pack("{s:I}", "deliveries", (json_int_t)req->deliveries));
}

/* An inline handler that takes a while: the pool's jobs of its batch finish meanwhile. */
static int h_nap(const busgate_request *req, busgate_response *res, void *arg)
{
    (void)arg;
    usleep(30 * 1000);
    return send_json(res, 200, json_pack("{s:I}", "deliveries", (json_int_t)req->deliveries));
}

static int h_poison(const busgate_request *req, busgate_response *res, void *arg)
{
    (void)req;
    (void)res;
    (void)arg;
    abort();
}

/* ---- services ---- */

typedef struct svc_opts {
    const char *instance;
    int threads;
    int64_t lease_ms, heartbeat_ms;
    int max_deliveries;
    /* 1: adds GET /where and GET /where/nap (run_inline) and GET /where/pool (on the pool);
     * 2: the same, and busgate_service_set_inline(s, 1) runs every endpoint inline. */
    int inline_mode;
} svc_opts;

static int svc_add_where(busgate_service *s, const svc_opts *o, char *why)
{
    busgate_endpoint_opts quick = {.run_inline = 1};

    if (o->inline_mode == 0)
        return BG_OK;
    busgate_service_set_inline(s, o->inline_mode == 2);
    if (busgate_service_add_endpoint(s, "GET", "/where", h_where, NULL, &quick, why) != BG_OK ||
        busgate_service_add_endpoint(s, "GET", "/where/nap", h_nap, NULL, &quick, why) != BG_OK)
        return BG_ERR;
    return busgate_service_add_endpoint(s, "GET", "/where/pool", h_where, NULL, NULL, why);
}

static busgate_service *svc_make(const svc_opts *o, char *why)
{
    static const char *const claims[] = {"echo:read"};
    busgate_endpoint_opts rich = {.timeout_ms = 5000,
                                  .claims = claims,
                                  .nclaims = 1,
                                  .request_schema = "{\"type\":\"object\"}",
                                  .openapi = "{\"summary\":\"echo one\"}",
                                  .rate_limit = "50/s burst=80"};
    busgate_service *s = busgate_service_new(SVC, "1.2.3", why);

    if (s == NULL)
        return NULL;
    if (busgate_service_set_url(s, srv.url, why) ||
        busgate_service_set_instance(s, o->instance, why) ||
        busgate_service_set_threads(s, o->threads ? o->threads : 2, why) ||
        busgate_service_set_lease(s, o->lease_ms ? o->lease_ms : 300, why) ||
        busgate_service_set_max_deliveries(s, o->max_deliveries ? o->max_deliveries : 5, why) ||
        busgate_service_set_heartbeat_interval(s, o->heartbeat_ms ? o->heartbeat_ms : 10000, why) ||
        busgate_service_set_openapi(s, "{\"info\":{\"title\":\"echo\"}}", why) ||
        busgate_service_add_endpoint(s, "GET", "/echo/{id}", h_echo, NULL, &rich, why) ||
        busgate_service_add_endpoint(s, "POST", "/echo/files/{path*}", h_echo, NULL, NULL, why) ||
        busgate_service_add_endpoint(s, "GET", "/slow", h_slow, NULL, NULL, why) ||
        busgate_service_add_endpoint(s, "GET", "/sleep", h_sleep, NULL, NULL, why) ||
        busgate_service_add_endpoint(s, "GET", "/poison", h_poison, NULL, NULL, why) ||
        svc_add_where(s, o, why)) {
        busgate_service_free(s);
        return NULL;
    }
    return s;
}

typedef struct svc_thread {
    busgate_service *s;
    pthread_t thread;
    int rc;
    char err[BG_ERR_LEN];
} svc_thread;

static void *svc_main(void *arg)
{
    svc_thread *t = arg;

    t->rc = busgate_service_run(t->s, t->err);
    return NULL;
}

static void svc_start(svc_thread *t, const svc_opts *o)
{
    memset(t, 0, sizeof(*t));
    t->s = svc_make(o, err);
    cr_assert_not_null(t->s, "service: %s", err);
    busgate_service_handle_signals(t->s, 0);
    cr_assert_eq(pthread_create(&t->thread, NULL, svc_main, t), 0);
}

static void svc_stop(svc_thread *t)
{
    busgate_service_stop(t->s);
    pthread_join(t->thread, NULL);
    cr_assert_eq(t->rc, BG_OK, "run: %s", t->err);
    busgate_service_free(t->s);
    t->s = NULL;
}

/* A service in a child process, which dies with the test. */
static pid_t svc_fork(const svc_opts *o)
{
    struct rlimit no_core = {0, 0};
    char why[BG_ERR_LEN];
    busgate_service *s;
    pid_t pid = fork();

    cr_assert_neq(pid, -1, "fork failed");
    if (pid > 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    setrlimit(RLIMIT_CORE, &no_core); /* the poison handler aborts */
    s = svc_make(o, why);
    if (s == NULL || busgate_service_run(s, why) != BG_OK) {
        fprintf(stderr, "child service: %s\n", why);
        _exit(3);
    }
    busgate_service_free(s);
    _exit(0);
}

/* Waits up to ms for the child to end; its wait status, or -1 if it still runs. */
static int child_wait(pid_t pid, int64_t ms)
{
    int status, ok;

    WAIT_FOR(ok, waitpid(pid, &status, WNOHANG) == pid, ms);
    return ok ? status : -1;
}

/* ---- bus helpers ---- */

static void cmd_ok(const char *fmt, const char *a, const char *b)
{
    redisReply *r = bg_bus_command(bus, err, fmt, a, b);

    cr_assert_not_null(r, "%s: %s", fmt, err);
    cr_assert_neq(r->type, REDIS_REPLY_ERROR, "%s: %s", fmt,
                  r->type == REDIS_REPLY_ERROR ? r->str : "");
    freeReplyObject(r);
}

static void make_reply_stream(void)
{
    /* Gateways create their reply streams; the SDK writes with NOMKSTREAM. */
    cmd_ok("XADD %s MAXLEN 0 * v %s", REPLY, "1");
}

static void xadd_frame(const char *stream, const bg_frame *f)
{
    const char *head[] = {"XADD", stream, "*"};
    bg_frame_wire w;
    const char **argv;
    const size_t *lens;
    int argc;
    redisReply *r;

    cr_assert_eq(bg_frame_encode(f, &w, err), BG_OK, "encode: %s", err);
    cr_assert_eq(bg_frame_wire_command(&w, head, NULL, 3, &argc, &argv, &lens), BG_OK);
    r = bg_bus_command_argv(bus, argc, argv, lens, err);
    cr_assert_not_null(r, "XADD %s: %s", stream, err);
    cr_assert_eq(r->type, REDIS_REPLY_STRING, "XADD %s failed", stream);
    freeReplyObject(r);
    bg_frame_wire_free(&w);
}

static void bytes_set(bg_bytes *b, const char *s)
{
    b->ptr = s;
    b->len = strlen(s);
}

typedef struct req_spec {
    const char *service;  /* NULL = echo */
    const char *reply_to; /* NULL = REPLY */
    const char *id, *method, *path, *endpoint, *query;
    int64_t deadline_ms; /* 0 = now + 10 s */
    const char *param_name, *param_value;
    const char *header_name, *header_value;
    const void *body;
    size_t body_len;
} req_spec;

static void send_request(const req_spec *q)
{
    char stream[128];
    bg_frame f;

    bg_frame_init(&f, BG_FRAME_REQUEST);
    snprintf(f.id, sizeof(f.id), "%s", q->id);
    snprintf(f.service, sizeof(f.service), "%s", q->service ? q->service : SVC);
    snprintf(stream, sizeof(stream), "router:requests:{%s}", f.service);
    snprintf(f.method, sizeof(f.method), "%s", q->method ? q->method : "GET");
    snprintf(f.reply_to, sizeof(f.reply_to), "%s", q->reply_to ? q->reply_to : REPLY);
    snprintf(f.gateway, sizeof(f.gateway), "gw1");
    bytes_set(&f.path, q->path);
    bytes_set(&f.endpoint, q->endpoint ? q->endpoint : q->path);
    if (q->query != NULL)
        bytes_set(&f.query, q->query);
    f.deadline_ms = q->deadline_ms ? q->deadline_ms : bg_wall_ms() + 10000;
    if (q->param_name != NULL)
        cr_assert_eq(
            bg_frame_set_param(&f, q->param_name, q->param_value, strlen(q->param_value), err),
            BG_OK, "%s", err);
    if (q->header_name != NULL)
        cr_assert_eq(bg_frame_add_header(&f, q->header_name, strlen(q->header_name),
                                         q->header_value, strlen(q->header_value), err),
                     BG_OK, "%s", err);
    f.body.ptr = q->body;
    f.body.len = q->body_len;
    xadd_frame(stream, &f);
    bg_frame_free(&f);
}

/* Decodes the entries of stream, oldest first, and returns how many match. The
 * first match is moved into first (when not NULL; the caller frees it with
 * bg_frame_free) and its entry id copied into first_id (64 bytes, may be NULL). */
typedef int frame_fn(const bg_frame *f, const void *arg);

static int scan_stream(const char *stream, frame_fn *match, const void *arg, bg_frame *first,
                       char *first_id)
{
    redisReply *r = bg_bus_command(bus, err, "XRANGE %s - +", stream);
    bg_field fields[BG_FRAME_FIELDS_MAX];
    int hits = 0;

    cr_assert_not_null(r, "XRANGE: %s", err);
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *e = r->element[i], *kv = e->element[1];
        size_t n = kv->elements / 2;
        bg_frame f;
        if (n > BG_FRAME_FIELDS_MAX)
            continue;
        for (size_t k = 0; k < n; k++) {
            fields[k].name = (bg_bytes){kv->element[2 * k]->str, kv->element[2 * k]->len};
            fields[k].value = (bg_bytes){kv->element[2 * k + 1]->str, kv->element[2 * k + 1]->len};
        }
        if (bg_frame_decode(fields, n, &f, NULL) != BG_OK || !match(&f, arg)) {
            bg_frame_free(&f);
            continue;
        }
        if (hits++ == 0 && first_id != NULL)
            snprintf(first_id, 64, "%s", e->element[0]->str);
        if (hits == 1 && first != NULL) {
            *first = f; /* ownership moves: decoded parts live on the heap */
            continue;
        }
        bg_frame_free(&f);
    }
    freeReplyObject(r);
    return hits;
}

static int wait_frame(const char *stream, frame_fn *match, const void *arg, bg_frame *out,
                      char *out_id, int64_t ms)
{
    int ok;

    WAIT_FOR(ok, scan_stream(stream, match, arg, out, out_id) > 0, ms);
    return ok;
}

static int is_response_for(const bg_frame *f, const void *id)
{
    return f->type == BG_FRAME_RESPONSE && strcmp(f->id, id) == 0;
}

static int count_responses(const char *id)
{
    return scan_stream(REPLY, is_response_for, id, NULL, NULL);
}

static void expect_response(const char *id, bg_frame *out)
{
    cr_assert(wait_frame(REPLY, is_response_for, id, out, NULL, 10000),
              "no RESPONSE for %s within 10 s", id);
}

static long long xpending(void)
{
    redisReply *r = bg_bus_command(bus, err, "XPENDING %s %s", REQUESTS, GROUP);
    long long n = -1;

    cr_assert_not_null(r, "XPENDING: %s", err);
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1)
        n = r->element[0]->integer;
    freeReplyObject(r);
    return n;
}

/* Consumer holding the one pending entry, its delivery count and idle ms; 0 if none. */
static int pending_entry(char *consumer, long long *deliveries, long long *idle)
{
    redisReply *r = bg_bus_command(bus, err, "XPENDING %s %s - + 1", REQUESTS, GROUP);
    int ok = 0;

    cr_assert_not_null(r, "XPENDING: %s", err);
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
        redisReply *e = r->element[0];
        snprintf(consumer, 65, "%s", e->element[1]->str);
        *idle = e->element[2]->integer;
        *deliveries = e->element[3]->integer;
        ok = 1;
    }
    freeReplyObject(r);
    return ok;
}

static long long xlen(const char *stream)
{
    redisReply *r = bg_bus_command(bus, err, "XLEN %s", stream);
    long long n;

    cr_assert_not_null(r, "XLEN: %s", err);
    n = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return n;
}

static json_t *body_json(const bg_frame *f)
{
    json_t *o = json_loadb(f->body.ptr, f->body.len, 0, NULL);

    cr_assert_not_null(o, "response body is not JSON: %.*s", (int)f->body.len, f->body.ptr);
    return o;
}

static const char *jstr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    cr_assert(json_is_string(v), "member %s missing or not a string", key);
    return json_string_value(v);
}

/* ---- control-stream predicates ---- */

typedef struct want {
    bg_frame_type type;
    const char *instance;
    const char *resync_id; /* ENDPOINTS_UPDATE: the answered resync; NULL = any */
} want;

static int is_wanted(const bg_frame *f, const void *arg)
{
    const want *w = arg;

    if (f->type != w->type || strcmp(f->instance, w->instance) != 0)
        return 0;
    return w->resync_id == NULL || strcmp(f->resync_id, w->resync_id) == 0;
}

static int control_count(bg_frame_type type, const char *instance, const char *resync_id)
{
    want w = {type, instance, resync_id};

    return scan_stream(CONTROL, is_wanted, &w, NULL, NULL);
}

static int control_wait(bg_frame_type type, const char *instance, const char *resync_id,
                        bg_frame *out, char *out_id, int64_t ms)
{
    want w = {type, instance, resync_id};

    return wait_frame(CONTROL, is_wanted, &w, out, out_id, ms);
}

static void send_resync(const char *stream, const char *id, const char *service,
                        const char *instance)
{
    bg_frame f;

    bg_frame_init(&f, BG_FRAME_RESYNC_REQUEST);
    snprintf(f.id, sizeof(f.id), "%s", id);
    snprintf(f.gateway, sizeof(f.gateway), "gw1");
    snprintf(f.reason, sizeof(f.reason), "test");
    if (service != NULL)
        snprintf(f.service, sizeof(f.service), "%s", service);
    if (instance != NULL)
        snprintf(f.instance, sizeof(f.instance), "%s", instance);
    xadd_frame(stream, &f);
    bg_frame_free(&f);
}

static void send_cancel(const char *id)
{
    bg_frame f;

    bg_frame_init(&f, BG_FRAME_CANCEL);
    snprintf(f.id, sizeof(f.id), "%s", id);
    snprintf(f.reason, sizeof(f.reason), "client_gone");
    xadd_frame(CANCELS, &f);
    bg_frame_free(&f);
}

/* Value of field name in a raw XRANGE entry, copied into out; 0 when absent. */
static int entry_field(const redisReply *e, const char *name, char *out, size_t outlen)
{
    const redisReply *kv = e->element[1];

    for (size_t i = 0; i + 1 < kv->elements; i += 2) {
        if (strcmp(kv->element[i]->str, name) == 0) {
            snprintf(out, outlen, "%.*s", (int)kv->element[i + 1]->len, kv->element[i + 1]->str);
            return 1;
        }
    }
    return 0;
}

/* "ms-seq" stream ids compared as numbers. */
static int id_less(const char *a, const char *b)
{
    unsigned long long am = strtoull(a, NULL, 10), bm = strtoull(b, NULL, 10);
    unsigned long long as = strtoull(strchr(a, '-') + 1, NULL, 10);
    unsigned long long bs = strtoull(strchr(b, '-') + 1, NULL, 10);

    return am < bm || (am == bm && as < bs);
}

static void expect_all_acked(void)
{
    int ok;

    WAIT_FOR(ok, xpending() == 0, 10000);
    cr_assert(ok, "%lld request(s) still pending", xpending());
}

/* ---- tests ---- */

Test(sdk, rejects_bad_configuration_and_endpoints)
{
    busgate_endpoint_opts bad_schema = {.request_schema = "[1"};
    busgate_endpoint_opts bad_openapi = {.openapi = "true"};
    busgate_endpoint_opts bad_timeout = {.timeout_ms = -1};
    const char *empty_claim[] = {""};
    busgate_endpoint_opts bad_claim = {.claims = empty_claim, .nclaims = 1};
    busgate_endpoint_opts bad_rate = {.rate_limit = "50/fortnight"};
    char why[BG_ERR_LEN], suffix[32];
    busgate_service *s;

    cr_assert_null(busgate_service_new("bad name", "1", why));
    cr_assert_null(busgate_service_new("ok", "1 2", why));
    s = busgate_service_new("ok", "1.0", why);
    cr_assert_not_null(s, "%s", why);
    snprintf(suffix, sizeof(suffix), "-%ld", (long)getpid());
    cr_assert_eq(bg_name_validate("instance", busgate_service_instance(s), why), BG_OK, "%s", why);
    cr_assert(strstr(busgate_service_instance(s), suffix) != NULL, "default instance %s",
              busgate_service_instance(s));
    cr_assert_neq(busgate_service_add_endpoint(s, "FETCH", "/a", h_echo, NULL, NULL, why), BG_OK);
    cr_assert_neq(busgate_service_add_endpoint(s, "GET", "/a/{id", h_echo, NULL, NULL, why), BG_OK);
    cr_assert_eq(busgate_service_add_endpoint(s, "GET", "/a/{id}", h_echo, NULL, NULL, why), BG_OK,
                 "%s", why);
    cr_assert_neq(busgate_service_add_endpoint(s, "GET", "/a/{x}", h_echo, NULL, NULL, why), BG_OK);
    cr_assert(strstr(why, "duplicates") != NULL, "%s", why);
    cr_assert_eq(busgate_service_add_endpoint(s, "POST", "/a/{x}", h_echo, NULL, NULL, why), BG_OK);
    cr_assert_neq(busgate_service_add_endpoint(s, "GET", "/b", h_echo, NULL, &bad_schema, why),
                  BG_OK);
    cr_assert(strstr(why, "request_schema") != NULL, "%s", why);
    cr_assert_neq(busgate_service_add_endpoint(s, "GET", "/b", h_echo, NULL, &bad_openapi, why),
                  BG_OK);
    cr_assert_neq(busgate_service_add_endpoint(s, "GET", "/b", h_echo, NULL, &bad_timeout, why),
                  BG_OK);
    cr_assert_neq(busgate_service_add_endpoint(s, "GET", "/b", h_echo, NULL, &bad_claim, why),
                  BG_OK);
    cr_assert_neq(busgate_service_add_endpoint(s, "GET", "/b", h_echo, NULL, &bad_rate, why),
                  BG_OK);
    cr_assert(strstr(why, "rate_limit: '50/fortnight' is not a rate") != NULL, "%s", why);
    cr_assert_eq(busgate_service_endpoint_count(s), 2);
    cr_assert_neq(busgate_service_set_threads(s, 0, why), BG_OK);
    cr_assert_neq(busgate_service_set_lease(s, 5, why), BG_OK);
    cr_assert_neq(busgate_service_set_url(s, "http://x", why), BG_OK);
    cr_assert_neq(busgate_service_load_config(s, "/nonexistent/busgate.ini", why), BG_OK);
    cr_assert(strstr(why, "/nonexistent/busgate.ini") != NULL, "%s", why);
    /* A stop before run makes run return at once, without serving. */
    cr_assert_eq(busgate_service_set_url(s, srv.url, why), BG_OK, "%s", why);
    busgate_service_handle_signals(s, 0);
    busgate_service_stop(s);
    cr_assert_eq(busgate_service_run(s, why), BG_OK, "%s", why);
    busgate_service_free(s);

    s = busgate_service_new("empty", "1.0", why);
    cr_assert_neq(busgate_service_run(s, why), BG_OK);
    cr_assert(strstr(why, "no endpoints") != NULL, "%s", why);
    busgate_service_free(s);
}

static int is_custom_hello(const bg_frame *f, const void *arg)
{
    (void)arg;
    return f->type == BG_FRAME_HELLO && strcmp(f->instance, "ini-1") == 0;
}

static int is_custom_heartbeat(const bg_frame *f, const void *arg)
{
    (void)arg;
    return f->type == BG_FRAME_HEARTBEAT && f->interval_ms == 150;
}

Test(sdk, configuration_from_ini)
{
    char path[512], why[BG_ERR_LEN];
    svc_thread t = {0};
    FILE *fp;

    snprintf(path, sizeof(path), "%s/service.ini", srv.dir);
    fp = fopen(path, "w");
    cr_assert_not_null(fp);
    fprintf(fp,
            "[gateway]\nworkers = 2\n[valkey]\nurl = %s\n[messaging]\nkey_prefix = t\n"
            "control_stream = t:control\nrequest_stream_template = t:req:{service}\n"
            "heartbeat_interval = 150ms\n",
            srv.url);
    fclose(fp);
    t.s = busgate_service_new(SVC, "1.0", why);
    cr_assert_not_null(t.s);
    cr_assert_eq(busgate_service_load_config(t.s, path, why), BG_OK, "%s", why);
    cr_assert_eq(busgate_service_set_instance(t.s, "ini-1", why), BG_OK);
    cr_assert_eq(busgate_service_add_endpoint(t.s, "GET", "/x", h_echo, NULL, NULL, why), BG_OK);
    busgate_service_handle_signals(t.s, 0);
    cr_assert_eq(pthread_create(&t.thread, NULL, svc_main, &t), 0);
    cr_assert(wait_frame("t:control", is_custom_hello, NULL, NULL, NULL, 10000),
              "no HELLO on the configured control stream");
    cr_assert(wait_frame("t:control", is_custom_heartbeat, NULL, NULL, NULL, 10000),
              "no HEARTBEAT with the configured interval");
    cr_assert_str_eq(busgate_service_request_stream(t.s), "t:req:{echo}");
    cr_assert_eq(xlen(CONTROL), 0, "the default control stream was used");
    svc_stop(&t);
}

Test(sdk, echo_round_trip_with_params_query_headers_and_binary_body)
{
    static unsigned char blob[1 << 20];
    svc_opts o = {.instance = "e1"};
    svc_thread t;
    bg_frame f;
    json_t *j, *h;

    for (size_t i = 0; i < sizeof(blob); i++)
        blob[i] = (unsigned char)(i * 7 + i / 251);
    make_reply_stream();
    svc_start(&t, &o);
    send_request(&(req_spec){.id = "r1",
                             .path = "/echo/42",
                             .endpoint = "/echo/{id}",
                             .query = "x=a%20b&y=2",
                             .param_name = "id",
                             .param_value = "42",
                             .header_name = "X-Trace",
                             .header_value = "t-1",
                             .body = "hi",
                             .body_len = 2});
    expect_response("r1", &f);
    cr_assert_eq(f.status, 200);
    cr_assert_str_eq(f.instance, "e1");
    cr_assert_str_eq(bg_frame_header_get(&f, "x-echo", NULL), "yes");
    cr_assert_str_eq(bg_frame_header_get(&f, "Content-Type", NULL), "application/json");
    j = body_json(&f);
    cr_assert_str_eq(jstr(j, "method"), "GET");
    cr_assert_str_eq(jstr(j, "path"), "/echo/42");
    cr_assert_str_eq(jstr(j, "endpoint"), "/echo/{id}");
    cr_assert_str_eq(jstr(j, "query"), "x=a%20b&y=2");
    cr_assert_str_eq(jstr(j, "x"), "a b");
    cr_assert_str_eq(jstr(j, "gateway"), "gw1");
    cr_assert_str_eq(jstr(j, "body"), "hi");
    cr_assert_str_eq(jstr(json_object_get(j, "params"), "id"), "42");
    h = json_array_get(json_object_get(j, "headers"), 0);
    cr_assert_str_eq(json_string_value(json_array_get(h, 0)), "X-Trace");
    cr_assert_str_eq(json_string_value(json_array_get(h, 1)), "t-1");
    cr_assert_eq(json_integer_value(json_object_get(j, "deliveries")), 1);
    json_decref(j);
    bg_frame_free(&f);

    send_request(&(req_spec){.id = "r2",
                             .method = "POST",
                             .path = "/echo/files/a/b.bin",
                             .endpoint = "/echo/files/{path*}",
                             .param_name = "path",
                             .param_value = "a/b.bin",
                             .header_name = "X-Raw",
                             .header_value = "1",
                             .body = blob,
                             .body_len = sizeof(blob)});
    expect_response("r2", &f);
    cr_assert_eq(f.status, 201);
    cr_assert_str_eq(bg_frame_header_get(&f, "Content-Type", NULL), "application/octet-stream");
    cr_assert_eq(f.body.len, sizeof(blob));
    cr_assert(memcmp(f.body.ptr, blob, sizeof(blob)) == 0, "binary body changed on the way");
    bg_frame_free(&f);

    send_request(&(req_spec){.id = "r3", .path = "/nope", .endpoint = "/nope"});
    expect_response("r3", &f);
    cr_assert_eq(f.status, 404);
    cr_assert(strstr(f.body.ptr, "no handler") != NULL);
    bg_frame_free(&f);

    /* HEAD without its own endpoint is served by the GET handler. */
    send_request(&(req_spec){.id = "r4",
                             .method = "HEAD",
                             .path = "/echo/7",
                             .endpoint = "/echo/{x}",
                             .param_name = "x",
                             .param_value = "7"});
    expect_response("r4", &f);
    cr_assert_eq(f.status, 200);
    j = body_json(&f);
    cr_assert_str_eq(jstr(j, "method"), "HEAD");
    json_decref(j);
    bg_frame_free(&f);
    expect_all_acked();
    svc_stop(&t);
}

Test(sdk, malformed_requests_are_dead_lettered_with_their_reason)
{
    const char *want[] = {"missing field 'reply_to'", "unexpected HELLO", "missing field 'v'"};
    svc_opts o = {.instance = "m1"};
    char reason[256];
    svc_thread t;
    redisReply *r;
    bg_frame f;
    int ok;

    make_reply_stream();
    svc_start(&t, &o);
    cmd_ok("XADD %s * v 1 type REQUEST id bad1 service echo method GET path /echo/1 endpoint "
           "/echo/{id} deadline 99999999999999 gateway %s",
           REQUESTS, "gw1");
    cmd_ok("XADD %s * v 1 type HELLO id h1 service echo instance x version %s", REQUESTS, "1");
    cmd_ok("XADD %s * foo %s", REQUESTS, "bar");
    WAIT_FOR(ok, xlen(DEAD) == 3, 10000);
    cr_assert(ok, "dead letters: %lld, expected 3", xlen(DEAD));
    r = bg_bus_command(bus, err, "XRANGE %s - +", DEAD);
    cr_assert_not_null(r);
    for (size_t i = 0; i < 3; i++) {
        cr_assert(entry_field(r->element[i], "dead_reason", reason, sizeof(reason)));
        cr_assert(strstr(reason, want[i]) != NULL, "dead_reason '%s' lacks '%s'", reason, want[i]);
        cr_assert(entry_field(r->element[i], "dead_group", reason, sizeof(reason)));
        cr_assert_str_eq(reason, GROUP);
    }
    freeReplyObject(r);
    expect_all_acked();
    /* The service keeps working. */
    send_request(&(req_spec){.id = "good", .path = "/echo/1", .endpoint = "/echo/{id}"});
    expect_response("good", &f);
    cr_assert_eq(f.status, 200);
    bg_frame_free(&f);
    svc_stop(&t);
}

/* The one dead letter is request_id's, moved by instance with dead_reason deadline_passed. */
static void expect_dead_late(const char *request_id, const char *instance)
{
    char value[256];
    redisReply *r;
    int ok;

    WAIT_FOR(ok, xlen(DEAD) == 1, 5000);
    cr_assert(ok, "dead letters: %lld, expected 1", xlen(DEAD));
    r = bg_bus_command(bus, err, "XRANGE %s - +", DEAD);
    cr_assert(r != NULL && r->elements == 1);
    cr_assert(entry_field(r->element[0], "dead_reason", value, sizeof(value)));
    cr_assert_str_eq(value, "deadline_passed");
    cr_assert(entry_field(r->element[0], "id", value, sizeof(value)));
    cr_assert_str_eq(value, request_id);
    cr_assert(entry_field(r->element[0], "type", value, sizeof(value)));
    cr_assert_str_eq(value, "REQUEST");
    cr_assert(entry_field(r->element[0], "dead_consumer", value, sizeof(value)));
    cr_assert_str_eq(value, instance);
    cr_assert(entry_field(r->element[0], "dead_from_id", value, sizeof(value)));
    freeReplyObject(r);
}

Test(sdk, request_past_its_deadline_is_dead_lettered_without_response)
{
    svc_opts o = {.instance = "d1"};
    svc_thread t;
    bg_frame f;

    make_reply_stream();
    svc_start(&t, &o);
    send_request(&(req_spec){.id = "late",
                             .path = "/echo/expired",
                             .endpoint = "/echo/{id}",
                             .deadline_ms = bg_wall_ms() - 1000});
    send_request(&(req_spec){.id = "ontime", .path = "/echo/1", .endpoint = "/echo/{id}"});
    /* Entries are read in order and a late one is moved before the next read. */
    expect_response("ontime", &f);
    bg_frame_free(&f);
    expect_all_acked();
    expect_dead_late("late", "d1");
    cr_assert_eq(count_responses("late"), 0, "a request past its deadline was answered");
    cr_assert_eq(atomic_load(&expired_calls), 0, "the handler ran for an expired request");
    svc_stop(&t);
}

/* Read in time, but its deadline passes while it waits for the only thread, and the
 * gateway's CANCEL follows: the responder moves it (re-encoded from the decoded frame)
 * instead of acking it away. */
Test(sdk, request_late_in_the_pool_is_dead_lettered)
{
    svc_opts o = {.instance = "d2", .threads = 1};
    svc_thread t;
    bg_frame f;

    make_reply_stream();
    svc_start(&t, &o);
    send_request(&(req_spec){.id = "busy", .path = "/sleep", .query = "ms=800"});
    send_request(&(req_spec){.id = "queued",
                             .path = "/echo/expired",
                             .endpoint = "/echo/{id}",
                             .deadline_ms = bg_wall_ms() + 300});
    usleep(450 * 1000);
    send_cancel("queued");
    expect_response("busy", &f);
    bg_frame_free(&f);
    expect_dead_late("queued", "d2");
    expect_all_acked();
    cr_assert_eq(count_responses("queued"), 0, "a request past its deadline was answered");
    cr_assert_eq(atomic_load(&expired_calls), 0, "the handler ran for an expired request");
    svc_stop(&t);
}

Test(sdk, cancel_sets_the_flag_and_drops_the_response)
{
    svc_opts o = {.instance = "c1"};
    svc_thread t;
    bg_frame f;
    int ok;

    make_reply_stream();
    svc_start(&t, &o);
    send_request(&(req_spec){.id = "doomed", .path = "/slow"});
    WAIT_FOR(ok, atomic_load(&slow_started) == 1, 10000);
    cr_assert(ok, "the slow handler did not start");
    send_cancel("doomed");
    expect_all_acked();
    cr_assert_eq(atomic_load(&slow_saw_cancel), 1, "the handler never saw the cancelled flag");
    cr_assert_eq(count_responses("doomed"), 0, "the response of a cancelled request was sent");

    /* A CANCEL that overtakes its REQUEST is remembered (or flags it once taken). */
    send_cancel("early");
    send_request(&(req_spec){.id = "early", .path = "/slow"});
    send_request(&(req_spec){.id = "after", .path = "/echo/2", .endpoint = "/echo/{id}"});
    expect_response("after", &f);
    bg_frame_free(&f);
    expect_all_acked();
    cr_assert_eq(count_responses("early"), 0, "the response of a cancelled request was sent");
    svc_stop(&t);
}

Test(sdk, lease_is_extended_while_a_handler_runs_longer)
{
    svc_opts o = {.instance = "x1", .threads = 1, .lease_ms = 1000};
    long long deliveries, idle;
    char consumer[65];
    svc_thread t;
    bg_frame f;
    json_t *j;
    int ok;

    make_reply_stream();
    svc_start(&t, &o);
    send_request(&(req_spec){.id = "long", .path = "/sleep", .query = "ms=2600"});
    WAIT_FOR(ok, pending_entry(consumer, &deliveries, &idle), 10000);
    cr_assert(ok, "the request was never taken");
    /* Past two leases: without extension our own reclaim would count a second delivery. */
    for (int i = 0; i < 20 && pending_entry(consumer, &deliveries, &idle); i++) {
        cr_assert_eq(deliveries, 1, "lease lapsed: the entry was delivered again");
        cr_assert_str_eq(consumer, "x1");
        usleep(120 * 1000);
    }
    expect_response("long", &f);
    j = body_json(&f);
    cr_assert_eq(json_integer_value(json_object_get(j, "deliveries")), 1);
    json_decref(j);
    bg_frame_free(&f);
    expect_all_acked();
    cr_assert_eq(count_responses("long"), 1);
    svc_stop(&t);
}

/* a takes the request and is killed with it; b, started after, serves it once the lease
 * ran out (a second delivery). Leaves b running in t. */
static void killed_instance_is_replaced(const svc_opts *a, const svc_opts *b, svc_thread *t)
{
    long long deliveries, idle;
    char consumer[65] = "";
    pid_t pid;
    bg_frame f;
    json_t *j;
    int ok;

    make_reply_stream();
    pid = svc_fork(a);
    send_request(&(req_spec){.id = "orphan", .path = "/slow"});
    WAIT_FOR(ok, pending_entry(consumer, &deliveries, &idle) && strcmp(consumer, a->instance) == 0,
             10000);
    cr_assert(ok, "instance a never took the request");
    kill(pid, SIGKILL);
    cr_assert_neq(child_wait(pid, 10000), -1, "instance a did not die");
    svc_start(t, b);
    expect_response("orphan", &f);
    cr_assert_str_eq(f.instance, b->instance);
    j = body_json(&f);
    cr_assert_geq(json_integer_value(json_object_get(j, "deliveries")), 2);
    json_decref(j);
    bg_frame_free(&f);
    expect_all_acked();
}

Test(sdk, killed_instance_requests_are_served_by_another_after_the_lease)
{
    svc_opts a = {.instance = "inst-a", .threads = 1, .lease_ms = 300};
    svc_opts b = {.instance = "inst-b", .threads = 1, .lease_ms = 300};
    svc_thread t;

    killed_instance_is_replaced(&a, &b, &t);
    svc_stop(&t);
}

Test(sdk, poison_request_is_dead_lettered_after_max_deliveries)
{
    svc_opts o = {.instance = "p1", .threads = 1, .lease_ms = 300, .max_deliveries = 2};
    int crashes = 0, dead = 0, status;
    char value[256];
    redisReply *r;

    make_reply_stream();
    send_request(&(req_spec){.id = "poison", .path = "/poison"});
    /* Restart the instance each time the handler crashes it, as a supervisor would. */
    for (int round = 0; round < 6 && !dead; round++) {
        pid_t pid = svc_fork(&o);
        for (int64_t end = bg_mono_ms() + 10000; bg_mono_ms() < end;) {
            if (waitpid(pid, &status, WNOHANG) == pid) {
                cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
                          "instance ended with status %#x, not by abort()", status);
                crashes++;
                pid = 0;
                break;
            }
            if ((dead = xlen(DEAD) >= 1))
                break;
            usleep(20 * 1000);
        }
        if (pid > 0) {
            kill(pid, SIGTERM);
            cr_assert_neq(child_wait(pid, 10000), -1, "instance did not stop on SIGTERM");
        }
    }
    cr_assert(dead, "the poison request never reached %s", DEAD);
    cr_assert_eq(crashes, 2, "handler crashed %d times, max_deliveries is 2", crashes);
    r = bg_bus_command(bus, err, "XRANGE %s - +", DEAD);
    cr_assert_not_null(r);
    cr_assert_eq(r->elements, 1);
    cr_assert(entry_field(r->element[0], "id", value, sizeof(value)));
    cr_assert_str_eq(value, "poison");
    cr_assert(entry_field(r->element[0], "path", value, sizeof(value)));
    cr_assert_str_eq(value, "/poison");
    cr_assert(entry_field(r->element[0], "dead_deliveries", value, sizeof(value)));
    cr_assert_str_eq(value, "3");
    cr_assert(entry_field(r->element[0], "dead_reason", value, sizeof(value)));
    cr_assert(strstr(value, "max_deliveries") != NULL, "%s", value);
    freeReplyObject(r);
    cr_assert_eq(xpending(), 0);
    cr_assert_eq(count_responses("poison"), 0);
}

static void check_endpoints(const bg_frame *f)
{
    const bg_endpoint *ep = NULL;

    cr_assert_eq(f->endpoints.count, 5, "ENDPOINTS_UPDATE has %zu endpoints", f->endpoints.count);
    for (size_t i = 0; i < f->endpoints.count; i++)
        if (strcmp(f->endpoints.items[i].path, "/echo/{id}") == 0)
            ep = &f->endpoints.items[i];
    cr_assert_not_null(ep, "GET /echo/{id} missing");
    cr_assert_eq(ep->method, BG_METHOD_GET);
    cr_assert_eq(ep->timeout_ms, 5000);
    cr_assert_eq(ep->nclaims, 1);
    cr_assert_str_eq(ep->claims[0], "echo:read");
    cr_assert_str_eq(ep->rate_limit, "50/s burst=80");
    cr_assert_not_null(ep->request_schema);
    cr_assert_not_null(ep->openapi);
    cr_assert_not_null(json_object_get(f->endpoints.openapi, "info"));
}

Test(sdk, control_frames_hello_resync_heartbeat_and_goodbye_on_sigterm)
{
    svc_opts o = {.instance = "ctl-1", .heartbeat_ms = 200};
    char instance_stream[128], resp_id[64], bye_id[64];
    long long deliveries, idle;
    char consumer[65];
    pid_t pid;
    bg_frame f;
    int ok, status;

    snprintf(instance_stream, sizeof(instance_stream), "router:instance:{%s}:ctl-1", SVC);
    make_reply_stream();
    pid = svc_fork(&o);
    cr_assert(control_wait(BG_FRAME_HELLO, "ctl-1", NULL, &f, NULL, 10000), "no HELLO");
    cr_assert_str_eq(f.service, SVC);
    cr_assert_str_eq(f.svc_version, "1.2.3");
    cr_assert_not_null(json_object_get(f.meta, "sdk"));
    bg_frame_free(&f);

    send_resync(instance_stream, "rs-1", SVC, "ctl-1");
    cr_assert(control_wait(BG_FRAME_ENDPOINTS_UPDATE, "ctl-1", "rs-1", &f, NULL, 10000),
              "RESYNC_REQUEST on the instance stream not answered");
    check_endpoints(&f);
    bg_frame_free(&f);
    /* Answers on the instance stream come in order: rs-3 (not for us) before rs-4. */
    send_resync(instance_stream, "rs-3", "other", NULL);
    send_resync(instance_stream, "rs-4", NULL, NULL);
    cr_assert(control_wait(BG_FRAME_ENDPOINTS_UPDATE, "ctl-1", "rs-4", NULL, NULL, 10000));
    cr_assert_eq(control_count(BG_FRAME_ENDPOINTS_UPDATE, "ctl-1", "rs-3"), 0,
                 "answered a resync for another service");
    send_resync(BROADCAST, "rs-2", NULL, NULL);
    cr_assert(control_wait(BG_FRAME_ENDPOINTS_UPDATE, "ctl-1", "rs-2", &f, NULL, 10000),
              "broadcast RESYNC_REQUEST not answered");
    check_endpoints(&f);
    bg_frame_free(&f);

    WAIT_FOR(ok, control_count(BG_FRAME_HEARTBEAT, "ctl-1", NULL) >= 3, 10000);
    cr_assert(ok, "fewer than 3 heartbeats");
    cr_assert(control_wait(BG_FRAME_HEARTBEAT, "ctl-1", NULL, &f, NULL, 0));
    cr_assert_eq(f.interval_ms, 200);
    cr_assert_geq(f.inflight, 0);
    bg_frame_free(&f);

    /* SIGTERM while a request runs: it is finished and answered, then GOODBYE. */
    send_request(&(req_spec){.id = "inflight", .path = "/sleep", .query = "ms=400"});
    WAIT_FOR(ok, pending_entry(consumer, &deliveries, &idle), 10000);
    cr_assert(ok, "the request was never taken");
    kill(pid, SIGTERM);
    status = child_wait(pid, 15000);
    cr_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "instance did not exit 0 on SIGTERM (status %#x)", status);
    cr_assert(wait_frame(REPLY, is_response_for, "inflight", NULL, resp_id, 0),
              "the in-flight request was not finished");
    cr_assert(control_wait(BG_FRAME_GOODBYE, "ctl-1", NULL, &f, bye_id, 0), "no GOODBYE");
    cr_assert_str_eq(f.reason, "shutdown");
    cr_assert(id_less(resp_id, bye_id), "GOODBYE (%s) came before the response (%s)", bye_id,
              resp_id);
    bg_frame_free(&f);
    cr_assert_eq(xpending(), 0);
}

Test(sdk, reconnect_sends_hello_again_and_recreates_the_group)
{
    svc_opts o = {.instance = "rc-1"};
    svc_thread t;
    bg_frame f;

    svc_start(&t, &o);
    cr_assert(control_wait(BG_FRAME_HELLO, "rc-1", NULL, NULL, NULL, 10000), "no HELLO");
    bgt_valkey_kill(&srv);
    usleep(300 * 1000);
    cr_assert_eq(bgt_valkey_restart(&srv), 0, "valkey-server did not restart");
    /* The restarted server is empty: a HELLO in it was sent after the reconnect. */
    cr_assert(control_wait(BG_FRAME_HELLO, "rc-1", NULL, NULL, NULL, 20000),
              "no HELLO after the reconnect");
    make_reply_stream();
    send_request(&(req_spec){.id = "again", .path = "/echo/9", .endpoint = "/echo/{id}"});
    expect_response("again", &f);
    cr_assert_eq(f.status, 200);
    cr_assert_str_eq(f.instance, "rc-1");
    bg_frame_free(&f);
    expect_all_acked();
    svc_stop(&t);
}

/* ---- the example programs ---- */

/* Starts BUILD/<name> (next to BUILD/tests/) and waits for its "registered" line. */
static pid_t example_start(const char *name, const char *instance)
{
    char exe[4096], bin[4200], line[512] = "";
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    size_t used = 0;
    int fds[2];
    pid_t pid;

    cr_assert_gt(n, 0);
    exe[n] = '\0';
    *strrchr(exe, '/') = '\0';
    snprintf(bin, sizeof(bin), "%s/../%s", exe, name);
    cr_assert_eq(access(bin, X_OK), 0, "%s not built (make all first)", bin);
    cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], 1);
        execl(bin, name, "-u", srv.url, "-n", instance, "-w", "2", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    while (strchr(line, '\n') == NULL && used + 1 < sizeof(line)) {
        struct pollfd p = {fds[0], POLLIN, 0};
        cr_assert_gt(poll(&p, 1, 10000), 0, "%s printed no line within 10 s", name);
        n = read(fds[0], line + used, sizeof(line) - used - 1);
        cr_assert_gt(n, 0, "%s closed its output: %s", name, line);
        used += (size_t)n;
        line[used] = '\0';
    }
    close(fds[0]);
    cr_assert(strstr(line, "registered as") != NULL && strstr(line, instance) != NULL, "%s", line);
    return pid;
}

static void example_stop(pid_t pid)
{
    int status;

    kill(pid, SIGTERM);
    status = child_wait(pid, 15000);
    cr_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "example did not exit 0 on SIGTERM (status %#x)", status);
}

Test(sdk, echo_service_example_raw_binary_base64_and_cancel)
{
    static unsigned char blob[1 << 20];
    static const char odd[] = "\xff\xfe\x00"
                              "abc";
    pid_t pid;
    bg_frame f;
    json_t *j;
    int ok;

    for (size_t i = 0; i < sizeof(blob); i++)
        blob[i] = (unsigned char)(i * 13 + i / 509);
    make_reply_stream();
    pid = example_start("echo-service", "ex-echo");
    send_request(&(req_spec){.id = "raw",
                             .method = "PUT",
                             .path = "/echo/files/x/y.bin",
                             .endpoint = "/echo/files/{path*}",
                             .param_name = "path",
                             .param_value = "x/y.bin",
                             .header_name = "Content-Type",
                             .header_value = "application/octet-stream",
                             .body = blob,
                             .body_len = sizeof(blob)});
    expect_response("raw", &f);
    cr_assert_eq(f.status, 200);
    cr_assert_eq(f.body.len, sizeof(blob));
    cr_assert(memcmp(f.body.ptr, blob, sizeof(blob)) == 0, "1 MiB body not byte-exact");
    bg_frame_free(&f);

    send_request(&(req_spec){.id = "b64",
                             .method = "POST",
                             .path = "/echo/5",
                             .endpoint = "/echo/{id}",
                             .query = "k=v",
                             .param_name = "id",
                             .param_value = "5",
                             .body = odd,
                             .body_len = sizeof(odd) - 1});
    expect_response("b64", &f);
    j = body_json(&f);
    cr_assert_str_eq(jstr(j, "body_base64"), "//4AYWJj");
    cr_assert_eq(json_integer_value(json_object_get(j, "body_length")), 6);
    cr_assert_str_eq(jstr(json_object_get(j, "params"), "id"), "5");
    cr_assert_str_eq(jstr(j, "query"), "k=v");
    cr_assert_str_eq(jstr(j, "instance"), "ex-echo");
    json_decref(j);
    bg_frame_free(&f);

    send_request(&(req_spec){.id = "slowpoke", .path = "/echo/slow", .query = "ms=60000"});
    WAIT_FOR(ok, xpending() == 1, 10000);
    cr_assert(ok, "the slow request was not taken");
    send_cancel("slowpoke");
    expect_all_acked();
    cr_assert_eq(count_responses("slowpoke"), 0, "a cancelled request was answered");
    example_stop(pid);
}

/* Sends one orders request and returns its response (waits for it). */
static void orders_call(const char *id, const char *method, const char *path, const char *order_id,
                        const char *body, bg_frame *out)
{
    send_request(&(req_spec){.service = "orders",
                             .id = id,
                             .method = method,
                             .path = path,
                             .endpoint = order_id != NULL ? "/orders/{id}" : "/orders",
                             .param_name = order_id != NULL ? "id" : NULL,
                             .param_value = order_id,
                             .body = body,
                             .body_len = body != NULL ? strlen(body) : 0});
    expect_response(id, out);
}

Test(sdk, orders_service_example_status_codes)
{
    pid_t pid;
    bg_frame f;
    json_t *j;

    make_reply_stream();
    pid = example_start("orders-service", "ex-orders");
    orders_call("o1", "PUT", "/orders/42", "42", "{\"qty\":3}", &f);
    cr_assert_eq(f.status, 201);
    cr_assert_str_eq(bg_frame_header_get(&f, "Location", NULL), "/orders/42");
    bg_frame_free(&f);
    orders_call("o2", "PUT", "/orders/42", "42", "{\"qty\":4}", &f);
    cr_assert_eq(f.status, 200);
    bg_frame_free(&f);
    orders_call("o3", "GET", "/orders/42", "42", NULL, &f);
    cr_assert_eq(f.status, 200);
    j = body_json(&f);
    cr_assert_eq(json_integer_value(json_object_get(j, "qty")), 4);
    cr_assert_str_eq(jstr(j, "id"), "42");
    json_decref(j);
    bg_frame_free(&f);
    orders_call("o4", "GET", "/orders/7", "7", NULL, &f);
    cr_assert_eq(f.status, 404);
    bg_frame_free(&f);
    orders_call("o5", "PUT", "/orders/43", "43", "[1,2]", &f);
    cr_assert_eq(f.status, 400);
    bg_frame_free(&f);
    orders_call("o6", "GET", "/orders/a b", "a b", NULL, &f);
    cr_assert_eq(f.status, 400);
    bg_frame_free(&f);
    orders_call("o7", "GET", "/orders", NULL, NULL, &f);
    cr_assert_eq(f.status, 200);
    j = body_json(&f);
    cr_assert_eq(json_array_size(json_object_get(j, "orders")), 1);
    json_decref(j);
    bg_frame_free(&f);
    orders_call("o8", "DELETE", "/orders/42", "42", NULL, &f);
    cr_assert_eq(f.status, 204);
    cr_assert_eq(f.body.len, 0);
    bg_frame_free(&f);
    orders_call("o9", "DELETE", "/orders/42", "42", NULL, &f);
    cr_assert_eq(f.status, 404);
    bg_frame_free(&f);
    example_stop(pid);
}

/* ---- inline handlers ---- */

/* One batch of inline and pool jobs: while the reader runs a slow inline job, the pool's
 * jobs behind it are answered and freed; the reader must not read them again (it did:
 * a use after free, which ran freed memory as a job and hung the service in a bench). The
 * requests are queued before the service starts, so its first reads are whole batches. */
Test(sdk, pool_jobs_answered_while_an_inline_job_runs_are_not_touched_again)
{
    svc_opts o = {.instance = "mix1", .inline_mode = 1, .threads = 4};
    char id[32];
    svc_thread t;
    bg_frame f;

    make_reply_stream();
    for (int i = 0; i < 24; i++) {
        snprintf(id, sizeof(id), "mix-%d", i);
        send_request(&(req_spec){.id = id, .path = i % 4 == 0 ? "/where/nap" : "/where/pool"});
    }
    svc_start(&t, &o);
    for (int i = 0; i < 24; i++) {
        snprintf(id, sizeof(id), "mix-%d", i);
        expect_response(id, &f);
        cr_assert_eq(f.status, 200, "%s: %d", id, f.status);
        bg_frame_free(&f);
        cr_assert_eq(count_responses(id), 1, "%s answered more than once", id);
    }
    expect_all_acked();
    svc_stop(&t);
}

Test(sdk, inline_handlers_run_on_the_reader_thread_and_are_answered_and_acked)
{
    svc_opts o = {.instance = "in1", .inline_mode = 1};
    char id[32];
    svc_thread t;
    bg_frame f;
    int ok;

    make_reply_stream();
    svc_start(&t, &o);
    send_request(&(req_spec){.id = "w1", .path = "/where"});
    expect_response("w1", &f);
    cr_assert_eq(f.status, 200);
    bg_frame_free(&f);
    cr_assert(pthread_equal(where_thread, t.thread), "the inline handler ran on another thread");
    send_request(&(req_spec){.id = "w2", .path = "/where/pool"});
    expect_response("w2", &f);
    bg_frame_free(&f);
    cr_assert(!pthread_equal(where_thread, t.thread), "a pool handler ran on the reader");
    /* A burst: read in batches, answered and acked together. */
    for (int i = 0; i < 50; i++) {
        snprintf(id, sizeof(id), "burst-%d", i);
        send_request(&(req_spec){.id = id, .path = "/where"});
    }
    WAIT_FOR(ok, atomic_load(&where_calls) == 52, 10000);
    cr_assert(ok, "%d of 52 handler calls", atomic_load(&where_calls));
    for (int i = 0; i < 50; i++) {
        snprintf(id, sizeof(id), "burst-%d", i);
        expect_response(id, &f);
        bg_frame_free(&f);
        cr_assert_eq(count_responses(id), 1, "%s answered more than once", id);
    }
    /* Unknown endpoints are answered 404 (inline too). */
    send_request(&(req_spec){.id = "nope", .path = "/nope"});
    expect_response("nope", &f);
    cr_assert_eq(f.status, 404);
    bg_frame_free(&f);
    expect_all_acked();
    svc_stop(&t);
}

/* Respond first, ack second holds inline: a RESPONSE Valkey refused leaves its request
 * pending, and it is delivered (and answered) again once the reply stream works. */
Test(sdk, inline_answer_not_written_is_not_acked_and_is_delivered_again)
{
    svc_opts o = {.instance = "in2", .inline_mode = 2, .max_deliveries = 1000};
    long long deliveries = 0, idle;
    char consumer[65];
    svc_thread t;
    bg_frame f;
    json_t *j;
    int ok;

    cmd_ok("SET %s %s", "router:responses:gw1:broken", "not-a-stream");
    svc_start(&t, &o);
    send_request(&(req_spec){.id = "lost",
                             .path = "/echo/1",
                             .endpoint = "/echo/{id}",
                             .reply_to = "router:responses:gw1:broken"});
    /* The XADD fails (WRONGTYPE): no ack, so our own reclaim delivers it again. */
    WAIT_FOR(ok, pending_entry(consumer, &deliveries, &idle) && deliveries >= 2, 10000);
    cr_assert(ok, "the unanswered request was not delivered again (deliveries %lld)", deliveries);
    cr_assert_eq(xlen(DEAD), 0);
    cmd_ok("DEL %s%s", "router:responses:gw1:broken", "");
    cmd_ok("XADD %s MAXLEN 0 * v %s", "router:responses:gw1:broken", "1");
    cr_assert(wait_frame("router:responses:gw1:broken", is_response_for, "lost", &f, NULL, 10000),
              "no RESPONSE after the reply stream was repaired");
    j = body_json(&f);
    cr_assert_geq(json_integer_value(json_object_get(j, "deliveries")), 2);
    json_decref(j);
    bg_frame_free(&f);
    expect_all_acked();
    svc_stop(&t);
}

/* An instance killed while an inline handler runs: its request is served by another. */
Test(sdk, killed_inline_instance_requests_are_served_by_another_after_the_lease)
{
    svc_opts a = {.instance = "inl-a", .lease_ms = 300, .inline_mode = 2};
    svc_opts b = {.instance = "inl-b", .lease_ms = 300, .inline_mode = 2};
    svc_thread t;

    killed_instance_is_replaced(&a, &b, &t);
    cr_assert_eq(count_responses("orphan"), 1);
    svc_stop(&t);
}
