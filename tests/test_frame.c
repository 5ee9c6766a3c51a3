/* test_frame.c: frame codec round trips, rejection of malformed frames, meta helpers. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "busgate/proto/frame.h"
#include "valkey_harness.h"

/* ---- a mutable list of fields, the decoder's input ---- */

typedef struct fieldset {
    bg_field f[80];
    size_t n;
} fieldset;

static void fs_addn(fieldset *s, const char *name, const char *value, size_t len)
{
    cr_assert_lt(s->n, BG_ARRAY_LEN(s->f));
    s->f[s->n].name = (bg_bytes){name, strlen(name)};
    s->f[s->n].value = (bg_bytes){value, len};
    s->n++;
}

static void fs_add(fieldset *s, const char *name, const char *value)
{
    fs_addn(s, name, value, strlen(value));
}

static void fs_remove(fieldset *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->f[i].name.len == strlen(name) &&
            memcmp(s->f[i].name.ptr, name, s->f[i].name.len) == 0) {
            memmove(&s->f[i], &s->f[i + 1], (s->n - i - 1) * sizeof(bg_field));
            s->n--;
            return;
        }
    }
    cr_assert_fail("no field %s", name);
}

static void fs_setn(fieldset *s, const char *name, const char *value, size_t len)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->f[i].name.len == strlen(name) &&
            memcmp(s->f[i].name.ptr, name, s->f[i].name.len) == 0) {
            s->f[i].value = (bg_bytes){value, len};
            return;
        }
    }
    fs_addn(s, name, value, len);
}

static void fs_set(fieldset *s, const char *name, const char *value)
{
    fs_setn(s, name, value, strlen(value));
}

static void fs_from_wire(fieldset *s, const bg_frame_wire *w)
{
    s->n = 0;
    for (int i = 0; i + 1 < w->argc; i += 2) {
        s->f[s->n].name = (bg_bytes){w->argv[i], w->argvlen[i]};
        s->f[s->n].value = (bg_bytes){w->argv[i + 1], w->argvlen[i + 1]};
        s->n++;
    }
}

static void base_common(fieldset *s, const char *type)
{
    s->n = 0;
    fs_add(s, "v", "1");
    fs_add(s, "type", type);
    fs_add(s, "id", "f-0001");
}

static void base_request(fieldset *s)
{
    base_common(s, "REQUEST");
    fs_add(s, "service", "orders");
    fs_add(s, "method", "GET");
    fs_add(s, "path", "/orders/42");
    fs_add(s, "query", "x=1&y=%20");
    fs_add(s, "endpoint", "/orders/{id}");
    fs_add(s, "reply_to", "router:responses:gw1:0");
    fs_add(s, "deadline", "1700000030000");
    fs_add(s, "gateway", "gw1");
    fs_add(s, "meta", "{\"params\":{\"id\":\"42\"},\"headers\":[[\"Accept\",\"*/*\"]]}");
    fs_add(s, "body", "");
}

static void base_heartbeat(fieldset *s)
{
    base_common(s, "HEARTBEAT");
    fs_add(s, "service", "orders");
    fs_add(s, "instance", "orders-1");
    fs_add(s, "version", "1.4.2");
    fs_add(s, "interval_ms", "10000");
}

static void base_endpoints(fieldset *s, const char *meta)
{
    base_common(s, "ENDPOINTS_UPDATE");
    fs_add(s, "service", "orders");
    fs_add(s, "instance", "orders-1");
    fs_add(s, "version", "1.4.2");
    fs_add(s, "meta", meta);
}

static void expect_reject(const fieldset *s, const char *substr)
{
    bg_frame f;
    char err[BG_ERR_LEN] = "";
    int rc = bg_frame_decode(s->f, s->n, &f, err);

    bg_frame_free(&f);
    cr_assert_eq(rc, BG_ERR, "accepted, expected '%s'", substr);
    cr_assert(strstr(err, substr) != NULL, "error '%s' lacks '%s'", err, substr);
}

static void expect_accept(const fieldset *s, bg_frame *f)
{
    char err[BG_ERR_LEN] = "";

    cr_assert_eq(bg_frame_decode(s->f, s->n, f, err), BG_OK, "rejected: %s", err);
}

/* Encodes f, decodes the wire into out: the codec's round trip. */
static void round_trip(const bg_frame *f, bg_frame *out)
{
    bg_frame_wire w;
    fieldset s;
    char err[BG_ERR_LEN] = "";

    cr_assert_eq(bg_frame_encode(f, &w, err), BG_OK, "encode: %s", err);
    fs_from_wire(&s, &w);
    cr_assert_eq(bg_frame_decode(s.f, s.n, out, err), BG_OK, "decode: %s", err);
    bg_frame_wire_free(&w);
}

static void assert_bytes_eq(bg_bytes a, bg_bytes b)
{
    cr_assert_eq(a.len, b.len, "length %zu != %zu", a.len, b.len);
    cr_assert(a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0, "bytes differ");
}

static char *binary_body(size_t len)
{
    char *b = malloc(len);

    cr_assert_not_null(b);
    for (size_t i = 0; i < len; i++)
        b[i] = (char)((i * 131 + (i >> 9)) & 0xff); /* every byte value, NUL included */
    return b;
}

/* ---- round trips ---- */

Test(frame, round_trip_hello)
{
    bg_frame f, g;

    bg_frame_init(&f, BG_FRAME_HELLO);
    strcpy(f.id, "hello-1");
    f.ts = 1700000000123;
    strcpy(f.service, "orders");
    strcpy(f.instance, "orders-7f3a");
    strcpy(f.svc_version, "2.0.1+build.7");
    f.meta = json_pack("{s:s, s:s, s:i}", "sdk", "busgate-c/0.1", "host", "box1", "pid", 4242);
    round_trip(&f, &g);
    cr_assert_eq(g.type, BG_FRAME_HELLO);
    cr_assert_eq(g.version, 1);
    cr_assert_str_eq(g.id, "hello-1");
    cr_assert_eq(g.ts, 1700000000123);
    cr_assert_str_eq(g.service, "orders");
    cr_assert_str_eq(g.instance, "orders-7f3a");
    cr_assert_str_eq(g.svc_version, "2.0.1+build.7");
    cr_assert(json_equal(f.meta, g.meta));
    bg_frame_free(&f);
    bg_frame_free(&g);
}

Test(frame, round_trip_heartbeat)
{
    bg_frame f, g;

    bg_frame_init(&f, BG_FRAME_HEARTBEAT);
    strcpy(f.id, "hb-9");
    strcpy(f.service, "orders");
    strcpy(f.instance, "orders-1");
    strcpy(f.svc_version, "1.0");
    f.interval_ms = 10000;
    f.inflight = 0;
    round_trip(&f, &g);
    cr_assert_eq(g.type, BG_FRAME_HEARTBEAT);
    cr_assert_eq(g.interval_ms, 10000);
    cr_assert_eq(g.inflight, 0);
    cr_assert_eq(g.ts, 0);
    cr_assert_null(g.meta);
    bg_frame_free(&g);

    f.inflight = -1; /* absent */
    round_trip(&f, &g);
    cr_assert_eq(g.inflight, -1);
    bg_frame_free(&g);
}

Test(frame, round_trip_endpoints_update)
{
    bg_frame f, g;
    char err[BG_ERR_LEN] = "";
    char *claims[] = {"orders:read", "orders:admin"};
    bg_endpoint eps[3] = {
        {.method = BG_METHOD_GET,
         .path = "/orders/{id}",
         .timeout_ms = 5000,
         .claims = claims,
         .nclaims = 2},
        {.method = BG_METHOD_POST, .path = "/orders"},
        {.method = BG_METHOD_GET, .path = "/files/{rest*}"},
    };

    eps[1].request_schema = json_pack("{s:s}", "type", "object");
    bg_frame_init(&f, BG_FRAME_ENDPOINTS_UPDATE);
    strcpy(f.id, "eu-1");
    strcpy(f.service, "orders");
    strcpy(f.instance, "orders-1");
    strcpy(f.svc_version, "1.0");
    strcpy(f.resync_id, "rs-77");
    cr_assert_eq(bg_endpoints_to_meta(eps, 3, NULL, &f.meta, err), BG_OK, "%s", err);
    json_decref(eps[1].request_schema);
    round_trip(&f, &g);
    cr_assert_str_eq(g.resync_id, "rs-77");
    cr_assert_eq(g.endpoints.count, 3);
    cr_assert_eq(g.endpoints.items[0].method, BG_METHOD_GET);
    cr_assert_str_eq(g.endpoints.items[0].method_name, "GET");
    cr_assert_str_eq(g.endpoints.items[0].path, "/orders/{id}");
    cr_assert_eq(g.endpoints.items[0].timeout_ms, 5000);
    cr_assert_eq(g.endpoints.items[0].nclaims, 2);
    cr_assert_str_eq(g.endpoints.items[0].claims[1], "orders:admin");
    cr_assert_eq(g.endpoints.items[1].timeout_ms, 0);
    cr_assert_not_null(g.endpoints.items[1].request_schema);
    cr_assert_null(g.endpoints.items[0].request_schema);
    cr_assert_str_eq(g.endpoints.items[2].path, "/files/{rest*}");
    bg_frame_free(&f);
    bg_frame_free(&g);
    cr_assert_eq(g.endpoints.count, 0);
}

Test(frame, round_trip_goodbye_and_cancel)
{
    bg_frame f, g;

    bg_frame_init(&f, BG_FRAME_GOODBYE);
    strcpy(f.id, "bye");
    strcpy(f.service, "orders");
    strcpy(f.instance, "orders-1");
    strcpy(f.reason, "shutdown (SIGTERM)");
    round_trip(&f, &g);
    cr_assert_str_eq(g.reason, "shutdown (SIGTERM)");
    bg_frame_free(&g);

    bg_frame_init(&f, BG_FRAME_CANCEL);
    strcpy(f.id, "req-123");
    strcpy(f.reason, "client_gone");
    strcpy(f.gateway, "gw1");
    round_trip(&f, &g);
    cr_assert_eq(g.type, BG_FRAME_CANCEL);
    cr_assert_str_eq(g.id, "req-123");
    cr_assert_str_eq(g.reason, "client_gone");
    cr_assert_str_eq(g.gateway, "gw1");
    bg_frame_free(&g);
}

Test(frame, round_trip_resync_request)
{
    bg_frame f, g;
    char err[BG_ERR_LEN];
    bg_frame_wire w;

    bg_frame_init(&f, BG_FRAME_RESYNC_REQUEST);
    strcpy(f.id, "rs-77");
    strcpy(f.gateway, "gw1");
    strcpy(f.reason, "unknown heartbeat");
    round_trip(&f, &g);
    cr_assert_str_eq(g.reason, "unknown heartbeat");
    cr_assert_str_eq(g.service, "");
    bg_frame_free(&g);

    strcpy(f.service, "orders");
    strcpy(f.instance, "orders-1");
    round_trip(&f, &g);
    cr_assert_str_eq(g.service, "orders");
    cr_assert_str_eq(g.instance, "orders-1");
    bg_frame_free(&g);

    f.service[0] = '\0';
    cr_assert_eq(bg_frame_encode(&f, &w, err), BG_ERR);
    cr_assert(strstr(err, "needs field 'service'") != NULL, "%s", err);
    bg_frame_wire_free(&w);
}

static void build_request(bg_frame *f, const char *body, size_t body_len)
{
    char err[BG_ERR_LEN] = "";

    bg_frame_init(f, BG_FRAME_REQUEST);
    strcpy(f->id, "gw1:0:000042");
    f->ts = 1700000000000;
    strcpy(f->service, "orders");
    strcpy(f->method, "POST");
    f->path = (bg_bytes){"/orders/42/items", 16};
    f->query = (bg_bytes){"", 0};
    f->endpoint = (bg_bytes){"/orders/{id}/items", 18};
    strcpy(f->reply_to, "router:responses:gw1:0");
    f->deadline_ms = 1700000030000;
    strcpy(f->gateway, "gw1");
    f->body = (bg_bytes){body, body_len};
    cr_assert_eq(bg_frame_set_param(f, "id", "42", 2, err), BG_OK, "%s", err);
    cr_assert_eq(bg_frame_add_header(f, "Content-Type", 12, "application/octet-stream", 24, err),
                 BG_OK, "%s", err);
    cr_assert_eq(bg_frame_add_header(f, "X-Tr\xc3\xa9", 6, "v", 1, err), BG_ERR);
    cr_assert_eq(bg_frame_add_header(f, "X-Ctl", 5, "a\x01", 2, err), BG_ERR);
    cr_assert_eq(bg_frame_add_header(f, "X-Bin", 5, "\xff", 1, err), BG_ERR, "not UTF-8");
    cr_assert_eq(bg_frame_add_header(f, "X-Multi", 7, "caf\xc3\xa9", 5, err), BG_OK, "%s", err);
    cr_assert_eq(bg_frame_set_client(f, "203.0.113.9", err), BG_OK, "%s", err);
}

Test(frame, round_trip_request_with_1mib_binary_body)
{
    size_t len = 1 << 20;
    char *body = binary_body(len);
    bg_frame f, g;
    bg_pair p;
    size_t vlen;

    cr_assert(memchr(body, '\0', len) != NULL);
    build_request(&f, body, len);
    round_trip(&f, &g);
    cr_assert_str_eq(g.method, "POST");
    assert_bytes_eq(g.path, f.path);
    assert_bytes_eq(g.query, f.query);
    cr_assert_not_null(g.query.ptr, "present but empty query must stay present");
    assert_bytes_eq(g.endpoint, f.endpoint);
    assert_bytes_eq(g.body, f.body);
    cr_assert_neq(g.body.ptr, body, "copy mode must copy");
    cr_assert_eq(g.deadline_ms, 1700000030000);
    cr_assert_str_eq(g.reply_to, "router:responses:gw1:0");
    cr_assert_str_eq(g.gateway, "gw1");
    cr_assert_eq(bg_frame_header_count(&g), 2);
    cr_assert_eq(bg_frame_header_at(&g, 1, &p), BG_OK);
    cr_assert_eq(p.value_len, 5);
    cr_assert_eq(memcmp(p.value, "caf\xc3\xa9", 5), 0);
    cr_assert_eq(bg_frame_header_at(&g, 2, &p), BG_ERR);
    cr_assert_str_eq(bg_frame_header_get(&g, "content-type", &vlen), "application/octet-stream");
    cr_assert_eq(vlen, 24);
    cr_assert_null(bg_frame_header_get(&g, "Accept", NULL));
    cr_assert_eq(bg_frame_param_count(&g), 1);
    cr_assert_str_eq(bg_frame_param_get(&g, "id", NULL), "42");
    cr_assert_eq(bg_frame_param_at(&g, 0, &p), BG_OK);
    cr_assert_str_eq(p.name, "id");
    cr_assert_str_eq(bg_frame_client(&g), "203.0.113.9");
    bg_frame_free(&f);
    bg_frame_free(&g);
    free(body);
}

Test(frame, borrow_mode_points_into_fields)
{
    size_t len = 1 << 20;
    char *body = binary_body(len);
    bg_frame f, g;
    bg_frame_wire w;
    fieldset s;
    char err[BG_ERR_LEN];

    build_request(&f, body, len);
    cr_assert_eq(bg_frame_encode(&f, &w, err), BG_OK, "%s", err);
    cr_assert_eq(w.argv[w.argc - 1], body, "encoder must not copy the body");
    fs_from_wire(&s, &w);
    cr_assert_eq(bg_frame_decode_borrow(s.f, s.n, &g, err), BG_OK, "%s", err);
    cr_assert_eq(g.body.ptr, body);
    cr_assert_eq(g.body.len, len);
    bg_frame_free(&g);
    bg_frame_wire_free(&w);
    bg_frame_free(&f);
    free(body);
}

Test(frame, round_trip_response_with_1mib_binary_body)
{
    size_t len = 1 << 20;
    char *body = binary_body(len);
    bg_frame f, g;
    char err[BG_ERR_LEN] = "";

    bg_frame_init(&f, BG_FRAME_RESPONSE);
    strcpy(f.id, "gw1:0:000042");
    strcpy(f.instance, "orders-1");
    f.status = 201;
    f.body = (bg_bytes){body, len};
    cr_assert_eq(bg_frame_add_header(&f, "Location", 8, "/orders/43", 10, err), BG_OK);
    round_trip(&f, &g);
    cr_assert_eq(g.status, 201);
    cr_assert_str_eq(g.instance, "orders-1");
    assert_bytes_eq(g.body, f.body);
    cr_assert_str_eq(bg_frame_header_get(&g, "location", NULL), "/orders/43");
    bg_frame_free(&f);
    bg_frame_free(&g);
    free(body);
}

Test(frame, response_without_meta_or_body)
{
    fieldset s;
    bg_frame g;

    base_common(&s, "RESPONSE");
    fs_add(&s, "instance", "orders-1");
    fs_add(&s, "status", "204");
    expect_accept(&s, &g);
    cr_assert_eq(g.status, 204);
    cr_assert_null(g.body.ptr);
    cr_assert_eq(bg_frame_header_count(&g), 0);
    cr_assert_null(bg_frame_header_get(&g, "x", NULL));
    bg_frame_free(&g);
}

/* The same bytes through a real XADD / XRANGE: the fields are binary-safe on the bus. */
Test(frame, round_trip_through_valkey, .timeout = 30)
{
    bgt_valkey v;
    redisContext *c;
    redisReply *r;
    size_t len = 1 << 20;
    char *body = binary_body(len);
    const char *head[] = {"XADD", "router:requests:{orders}", "MAXLEN", "~", "1000", "*"};
    const char **argv;
    const size_t *argvlen;
    int argc;
    bg_frame f, g;
    bg_frame_wire w;
    fieldset s;
    char err[BG_ERR_LEN] = "";

    cr_assert_eq(bgt_valkey_start(&v, NULL), 0);
    c = redisConnect("127.0.0.1", v.port);
    cr_assert(c != NULL && c->err == 0);
    build_request(&f, body, len);
    cr_assert_eq(bg_frame_encode(&f, &w, err), BG_OK, "%s", err);
    cr_assert_eq(bg_frame_wire_command(&w, head, NULL, 6, &argc, &argv, &argvlen), BG_OK);
    cr_assert_eq(argc, 6 + w.argc);
    r = redisCommandArgv(c, argc, argv, argvlen);
    cr_assert(r != NULL && r->type == REDIS_REPLY_STRING, "XADD failed");
    freeReplyObject(r);

    r = redisCommand(c, "XRANGE router:requests:{orders} - +");
    cr_assert(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 1);
    redisReply *fv = r->element[0]->element[1];
    s.n = 0;
    for (size_t i = 0; i + 1 < fv->elements; i += 2) {
        s.f[s.n].name = (bg_bytes){fv->element[i]->str, fv->element[i]->len};
        s.f[s.n].value = (bg_bytes){fv->element[i + 1]->str, fv->element[i + 1]->len};
        s.n++;
    }
    cr_assert_eq(bg_frame_decode(s.f, s.n, &g, err), BG_OK, "%s", err);
    assert_bytes_eq(g.body, f.body);
    assert_bytes_eq(g.path, f.path);
    cr_assert_str_eq(bg_frame_param_get(&g, "id", NULL), "42");
    freeReplyObject(r);
    bg_frame_free(&g);
    bg_frame_free(&f);
    bg_frame_wire_free(&w);
    redisFree(c);
    bgt_valkey_stop(&v);
    free(body);
}

/* ---- versioning and forward compatibility ---- */

Test(frame, unknown_fields_are_ignored)
{
    fieldset s;
    bg_frame g;

    base_heartbeat(&s);
    fs_add(&s, "x-future", "anything");
    fs_add(&s, "body", "ignored for HEARTBEAT");
    expect_accept(&s, &g);
    cr_assert_null(g.body.ptr);
    bg_frame_free(&g);
}

Test(frame, version_rules)
{
    fieldset s;

    base_heartbeat(&s);
    fs_set(&s, "v", "2");
    expect_reject(&s, "unsupported version 2");
    fs_set(&s, "v", "0");
    expect_reject(&s, "unsupported version 0");
    fs_set(&s, "v", "1.0");
    expect_reject(&s, "field 'v' is not an integer");
    fs_remove(&s, "v");
    expect_reject(&s, "missing field 'v'");
}

Test(frame, type_rules)
{
    fieldset s;

    base_heartbeat(&s);
    fs_set(&s, "type", "PING");
    expect_reject(&s, "unknown type PING");
    fs_set(&s, "type", "heartbeat");
    expect_reject(&s, "unknown type heartbeat");
    fs_setn(&s, "type", "HEART\x01", 6);
    expect_reject(&s, "unknown type HEART?");
    fs_remove(&s, "type");
    expect_reject(&s, "missing field 'type'");
}

/* ---- malformed frames ---- */

Test(frame, missing_fields)
{
    fieldset s;

    base_request(&s);
    fs_remove(&s, "reply_to");
    expect_reject(&s, "REQUEST: missing field 'reply_to'");
    base_heartbeat(&s);
    fs_remove(&s, "interval_ms");
    expect_reject(&s, "HEARTBEAT: missing field 'interval_ms'");
    base_endpoints(&s, "{\"endpoints\":[]}");
    fs_remove(&s, "meta");
    expect_reject(&s, "ENDPOINTS_UPDATE: missing field 'meta'");
    base_heartbeat(&s);
    fs_remove(&s, "id");
    expect_reject(&s, "HEARTBEAT: missing field 'id'");
}

Test(frame, wrong_types)
{
    fieldset s;

    base_heartbeat(&s);
    fs_set(&s, "interval_ms", "ten");
    expect_reject(&s, "HEARTBEAT: field 'interval_ms' is not an integer");
    fs_set(&s, "interval_ms", "-5");
    expect_reject(&s, "field 'interval_ms' is not an integer");
    fs_set(&s, "interval_ms", "99999999999999999999999");
    expect_reject(&s, "field 'interval_ms' is not an integer");
    fs_set(&s, "interval_ms", "0");
    expect_reject(&s, "field 'interval_ms' value 0 is outside 1..86400000");
    base_request(&s);
    fs_set(&s, "deadline", " 17");
    expect_reject(&s, "field 'deadline' is not an integer");
    base_request(&s);
    fs_set(&s, "method", "BREW");
    expect_reject(&s, "field 'method' 'BREW' is not one of");
    base_request(&s);
    fs_set(&s, "meta", "[1,2]");
    expect_reject(&s, "REQUEST: meta: not a JSON object");
    fs_set(&s, "meta", "{\"headers\":{\"a\":\"b\"}}");
    expect_reject(&s, "meta: headers is not an array");
    fs_set(&s, "meta", "{\"headers\":[[\"a\",1]]}");
    expect_reject(&s, "meta: headers[0] is not a [name, value] pair");
    fs_set(&s, "meta", "{\"params\":{\"id\":42}}");
    expect_reject(&s, "meta: params.id is not a string");
    fs_set(&s, "meta", "{\"client\":5}");
    expect_reject(&s, "meta: client is not a string");
}

Test(frame, response_status_range)
{
    fieldset s;

    base_common(&s, "RESPONSE");
    fs_add(&s, "instance", "orders-1");
    fs_add(&s, "status", "700");
    expect_reject(&s, "RESPONSE: field 'status' value 700 is outside 100..599");
    fs_set(&s, "status", "99");
    expect_reject(&s, "outside 100..599");
}

Test(frame, oversize_fields)
{
    fieldset s;
    size_t big = 70000000;
    char *huge = malloc(big); /* never touched: only the length is checked */
    char id[201], path[BG_FRAME_PATH_MAX + 2];

    cr_assert_not_null(huge);
    base_request(&s);
    fs_setn(&s, "body", huge, big);
    expect_reject(&s, "body: 70000000 bytes exceeds limit 67108864");
    base_request(&s);
    fs_setn(&s, "meta", huge, (1 << 20) + 1);
    expect_reject(&s, "meta: 1048577 bytes exceeds limit 1048576");
    free(huge);

    memset(id, 'a', 200);
    id[200] = '\0';
    base_request(&s);
    fs_set(&s, "id", id);
    expect_reject(&s, "field 'id' is 200 bytes, limit 128");
    path[0] = '/';
    memset(path + 1, 'p', sizeof(path) - 2);
    path[sizeof(path) - 1] = '\0';
    base_request(&s);
    fs_set(&s, "path", path);
    expect_reject(&s, "field 'path' is 8193 bytes, limit 8192");
    base_heartbeat(&s);
    fs_set(&s, "version", "a-very-long-version-string-that-goes-on-and-on-and-on-for-more-bytes");
    expect_reject(&s, "field 'version' is 68 bytes, limit 64");
}

Test(frame, too_many_headers)
{
    fieldset s;
    size_t cap = 300 * 12 + 64, at = 0;
    char *meta = malloc(cap);

    at += (size_t)sprintf(meta + at, "{\"headers\":[");
    for (int i = 0; i < 300; i++)
        at += (size_t)sprintf(meta + at, "%s[\"a\",\"b\"]", i ? "," : "");
    sprintf(meta + at, "]}");
    base_request(&s);
    fs_set(&s, "meta", meta);
    expect_reject(&s, "meta: headers has 300 pairs, limit 256");
    free(meta);
}

Test(frame, too_many_fields)
{
    fieldset s;
    static char names[70][16];

    base_heartbeat(&s);
    for (int i = 0; s.n < 65; i++) {
        snprintf(names[i], sizeof(names[i]), "x%d", i);
        fs_add(&s, names[i], "1");
    }
    expect_reject(&s, "too many fields (65, limit 64)");
}

Test(frame, truncated_and_invalid_json)
{
    fieldset s;

    base_request(&s);
    fs_set(&s, "meta", "{\"params\":{\"id\":\"4");
    expect_reject(&s, "REQUEST: meta: invalid JSON at line 1 column");
    fs_set(&s, "meta", "");
    expect_reject(&s, "meta: invalid JSON");
    fs_set(&s, "meta", "{\"client\":\"a\",\"client\":\"b\"}");
    expect_reject(&s, "meta: invalid JSON");
    fs_set(&s, "meta", "{\"client\":\"a\\u0000b\"}");
    expect_reject(&s, "meta: invalid JSON");
    fs_set(&s, "meta", "{} {}");
    expect_reject(&s, "meta: invalid JSON");
}

Test(frame, duplicate_fields)
{
    fieldset s;

    base_heartbeat(&s);
    fs_add(&s, "id", "again");
    expect_reject(&s, "duplicate field 'id'");
    base_heartbeat(&s);
    fs_add(&s, "x-extra", "1");
    fs_add(&s, "x-extra", "2");
    expect_reject(&s, "duplicate field 'x-extra'");
}

Test(frame, bad_identifiers_and_names)
{
    fieldset s;

    base_heartbeat(&s);
    fs_set(&s, "id", "a b");
    expect_reject(&s, "field 'id' has byte 0x20 at offset 1");
    fs_set(&s, "id", "");
    expect_reject(&s, "field 'id' is empty");
    fs_set(&s, "id", "ok:1.2_3-4");
    fs_set(&s, "service", "{orders}");
    expect_reject(&s, "HEARTBEAT: field 'service'");
    fs_set(&s, "service", "orders");
    fs_setn(&s, "instance", "i\0x", 3);
    expect_reject(&s, "field 'instance'");
    fs_set(&s, "instance", "orders-1");
    fs_set(&s, "version", "1 0");
    expect_reject(&s, "field 'version' has byte 0x20");
}

Test(frame, request_paths)
{
    fieldset s;

    base_request(&s);
    fs_set(&s, "path", "orders/42");
    expect_reject(&s, "field 'path' does not start with '/'");
    fs_set(&s, "path", "/orders/../admin");
    expect_reject(&s, "dot segment");
    fs_set(&s, "path", "/orders/.");
    expect_reject(&s, "dot segment");
    fs_setn(&s, "path", "/a\0b", 4);
    expect_reject(&s, "field 'path' has byte 0x00");
    fs_set(&s, "path", "/orders/..x/.y/caf\xc3\xa9");
    bg_frame g;
    expect_accept(&s, &g);
    bg_frame_free(&g);
    fs_set(&s, "query", "a=1#frag");
    expect_reject(&s, "field 'query' has byte 0x23");
    fs_set(&s, "query", "a=1");
    fs_set(&s, "endpoint", "/orders//{id}");
    expect_reject(&s, "REQUEST: field 'endpoint': empty segment at offset 8");
    fs_set(&s, "endpoint", "/orders/{id}");
    fs_set(&s, "meta", "{\"headers\":[[\"X-A\",\"1\\r\\nX-B: 2\"]]}");
    expect_reject(&s, "headers[0] value contains a control byte");
    fs_set(&s, "meta", "{\"headers\":[[\"Bad Name\",\"1\"]]}");
    expect_reject(&s, "headers[0] name is not an HTTP token");
}

Test(frame, bad_path_templates_in_endpoints)
{
    fieldset s;

    base_endpoints(&s, "{\"endpoints\":[{\"method\":\"GET\",\"path\":\"/orders/{id\"}]}");
    expect_reject(&s,
                  "ENDPOINTS_UPDATE: meta: endpoints[0]: path: unterminated or empty parameter");
    base_endpoints(&s, "{\"endpoints\":[{\"method\":\"GET\",\"path\":\"/a\"},"
                       "{\"method\":\"GET\",\"path\":\"/{rest*}/x\"}]}");
    expect_reject(&s, "endpoints[1]: path: tail parameter at offset 1 is not the last segment");
    base_endpoints(&s, "{\"endpoints\":[{\"method\":\"GET\",\"path\":\"/a/{id}\"},"
                       "{\"method\":\"GET\",\"path\":\"/a/{x}\"}]}");
    expect_reject(&s, "endpoints[1] (GET /a/{x}) duplicates endpoints[0] (GET /a/{id})");
    base_endpoints(&s, "{\"endpoints\":[{\"method\":\"BREW\",\"path\":\"/a\"}]}");
    expect_reject(&s, "endpoints[0]: method is not one of");
    base_endpoints(&s, "{\"endpoints\":[{\"method\":\"GET\",\"path\":\"/a\",\"timeout_ms\":-1}]}");
    expect_reject(&s, "endpoints[0]: timeout_ms is not an integer");
    base_endpoints(&s, "{\"endpoints\":[{\"method\":\"GET\",\"path\":\"/a\",\"claims\":[1]}]}");
    expect_reject(&s, "endpoints[0]: claims[0] is not a string");
    base_endpoints(&s, "{\"endpoints\":{}}");
    expect_reject(&s, "endpoints is missing or not an array");
    base_endpoints(&s, "{}");
    expect_reject(&s, "endpoints is missing or not an array");
    base_endpoints(&s, "{\"endpoints\":[],\"openapi\":[]}");
    expect_reject(&s, "openapi is not an object");
}

Test(frame, same_route_different_methods_is_fine)
{
    fieldset s;
    bg_frame g;

    base_endpoints(&s, "{\"endpoints\":[{\"method\":\"GET\",\"path\":\"/a/{id}\"},"
                       "{\"method\":\"PUT\",\"path\":\"/a/{id}\"},"
                       "{\"method\":\"GET\",\"path\":\"/a/{id}/b\"}],"
                       "\"openapi\":{\"info\":{\"title\":\"t\"}}}");
    expect_accept(&s, &g);
    cr_assert_eq(g.endpoints.count, 3);
    cr_assert_not_null(g.endpoints.openapi);
    bg_frame_free(&g);
}

Test(frame, path_templates)
{
    const char *good[] = {"/",
                          "/orders",
                          "/orders/{id}",
                          "/orders/{id}/items/{item_id}",
                          "/files/{rest*}",
                          "/a:b@c/~x/!$&'()*+,;=",
                          "/v1.2/_x"};
    const char *bad[] = {"",       "orders", "/orders/", "//",      "/{}",     "/{1x}",
                         "/a{id}", "/{id}x", "/{a}/{a}", "/.",      "/a/../b", "/a b",
                         "/%2F",   "/{*}",   "/é",       "/{a*}/b", "/{a-b}"};
    char err[BG_ERR_LEN];

    for (size_t i = 0; i < BG_ARRAY_LEN(good); i++)
        cr_assert_eq(bg_path_template_validate(good[i], strlen(good[i]), err), BG_OK,
                     "'%s' rejected: %s", good[i], err);
    for (size_t i = 0; i < BG_ARRAY_LEN(bad); i++)
        cr_assert_eq(bg_path_template_validate(bad[i], strlen(bad[i]), err), BG_ERR,
                     "'%s' accepted", bad[i]);
}

/* ---- encoder ---- */

Test(frame, encoder_validates_like_decoder)
{
    bg_frame f;
    bg_frame_wire w;
    char err[BG_ERR_LEN];

    build_request(&f, "x", 1);
    f.reply_to[0] = '\0';
    cr_assert_eq(bg_frame_encode(&f, &w, err), BG_ERR);
    cr_assert(strstr(err, "REQUEST: missing field 'reply_to'") != NULL, "%s", err);
    bg_frame_wire_free(&w);

    strcpy(f.reply_to, "router:responses:gw1:0");
    strcpy(f.method, "get");
    cr_assert_eq(bg_frame_encode(&f, &w, err), BG_ERR);
    cr_assert(strstr(err, "field 'method'") != NULL, "%s", err);
    bg_frame_wire_free(&w);

    strcpy(f.method, "GET");
    f.version = 2;
    cr_assert_eq(bg_frame_encode(&f, &w, err), BG_ERR);
    cr_assert(strstr(err, "unsupported version 2") != NULL, "%s", err);
    bg_frame_wire_free(&w);

    f.version = 1;
    f.type = (bg_frame_type)99;
    cr_assert_eq(bg_frame_encode(&f, &w, err), BG_ERR);
    cr_assert(strstr(err, "unknown type 99") != NULL, "%s", err);
    bg_frame_wire_free(&w);
    f.type = BG_FRAME_REQUEST;
    bg_frame_free(&f);
}

Test(frame, encoder_uses_prebuilt_meta_json)
{
    bg_frame f, g;
    char meta[256], err[BG_ERR_LEN];
    size_t at = 0, n;

    build_request(&f, "hi", 2);
    json_decref(f.meta);
    f.meta = NULL;
    at += (size_t)sprintf(meta, "{\"headers\":[[\"X-Q\",");
    n = bg_json_quote(meta + at, sizeof(meta) - at, "say \"hi\"\t", 9);
    cr_assert_lt(n, sizeof(meta) - at);
    at += n;
    sprintf(meta + at, "]]}");
    f.meta_json = (bg_bytes){meta, strlen(meta)};
    round_trip(&f, &g);
    cr_assert_str_eq(bg_frame_header_get(&g, "x-q", NULL), "say \"hi\"\t");
    bg_frame_free(&g);
    (void)err;
}

Test(frame, json_quote)
{
    char out[64];

    cr_assert_eq(bg_json_quote(out, sizeof(out), "a\"\\/\t", 5), 10);
    cr_assert_eq(memcmp(out, "\"a\\\"\\\\/\\t\"", 10), 0);
    cr_assert_eq(bg_json_quote(NULL, 0, "caf\xc3\xa9", 5), 7);
    cr_assert_eq(bg_json_quote(out, 3, "abc", 3), 5, "reports the size it needs");
    cr_assert_eq(bg_json_quote(out, sizeof(out), "\xc3", 1), (size_t)-1);
    cr_assert_eq(bg_json_quote(out, sizeof(out), "\xc0\xaf", 2), (size_t)-1, "overlong");
    cr_assert_eq(bg_json_quote(out, sizeof(out), "\xed\xa0\x80", 3), (size_t)-1, "surrogate");
    cr_assert_eq(bg_json_quote(out, sizeof(out), "a\0b", 3), (size_t)-1);
    cr_assert_eq(bg_json_quote(out, sizeof(out), "\xf0\x9f\x98\x80", 4), 6);
}

Test(frame, wire_command_head)
{
    bg_frame f;
    bg_frame_wire w;
    const char *head[] = {"XADD", "k", "*"};
    const char **argv;
    const size_t *argvlen;
    int argc;
    char err[BG_ERR_LEN];

    bg_frame_init(&f, BG_FRAME_CANCEL);
    strcpy(f.id, "r1");
    strcpy(f.reason, "deadline");
    cr_assert_eq(bg_frame_encode(&f, &w, err), BG_OK, "%s", err);
    cr_assert_eq(w.argc, 8);
    cr_assert_eq(bg_frame_wire_command(&w, head, NULL, 3, &argc, &argv, &argvlen), BG_OK);
    cr_assert_eq(argc, 11);
    cr_assert_str_eq(argv[0], "XADD");
    cr_assert_eq(argvlen[1], 1);
    cr_assert_str_eq(argv[3], "v");
    cr_assert_eq(strncmp(argv[4], "1", argvlen[4]), 0);
    cr_assert_str_eq(argv[5], "type");
    cr_assert_eq(
        bg_frame_wire_command(&w, head, NULL, BG_WIRE_HEAD_MAX + 1, &argc, &argv, &argvlen),
        BG_ERR);
    bg_frame_wire_free(&w);
}

Test(frame, names_and_methods)
{
    bg_frame_type t;
    bg_method m;

    for (int i = BG_FRAME_HELLO; i <= BG_FRAME_RESPONSE; i++) {
        const char *n = bg_frame_type_name((bg_frame_type)i);
        cr_assert_eq(bg_frame_type_parse(n, strlen(n), &t), BG_OK);
        cr_assert_eq((int)t, i);
    }
    cr_assert_str_eq(bg_frame_type_name((bg_frame_type)0), "UNKNOWN");
    cr_assert_eq(bg_method_parse("PATCH", 5, &m), BG_OK);
    cr_assert_eq(m, BG_METHOD_PATCH);
    cr_assert_eq(bg_method_parse("PATC", 4, &m), BG_ERR);
    cr_assert_str_eq(bg_method_name(BG_METHOD_OPTIONS), "OPTIONS");
}

Test(frame, endpoints_builder_validates)
{
    bg_endpoint bad = {.method = BG_METHOD_GET, .path = "/a/{id"};
    bg_endpoint dup[2] = {{.method = BG_METHOD_GET, .path = "/a"},
                          {.method = BG_METHOD_GET, .path = "/a"}};
    json_t *meta = NULL;
    char err[BG_ERR_LEN] = "";

    cr_assert_eq(bg_endpoints_to_meta(&bad, 1, NULL, &meta, err), BG_ERR);
    cr_assert(strstr(err, "endpoints[0]: path:") != NULL, "%s", err);
    cr_assert_null(meta);
    cr_assert_eq(bg_endpoints_to_meta(dup, 2, NULL, &meta, err), BG_ERR);
    cr_assert(strstr(err, "duplicates") != NULL, "%s", err);
    cr_assert_eq(bg_endpoints_to_meta(NULL, 0, NULL, &meta, err), BG_OK, "%s", err);
    cr_assert_eq(json_array_size(json_object_get(meta, "endpoints")), 0);
    json_decref(meta);
}

Test(frame, resync_target_instance_needs_service)
{
    fieldset s;

    base_common(&s, "RESYNC_REQUEST");
    fs_add(&s, "gateway", "gw1");
    fs_add(&s, "reason", "admin");
    fs_add(&s, "instance", "orders-1");
    expect_reject(&s, "RESYNC_REQUEST: field 'instance' needs field 'service'");
    fs_remove(&s, "reason");
    expect_reject(&s, "RESYNC_REQUEST: missing field 'reason'");
}

/* Whatever bg_json_quote accepts, jansson must read back byte for byte. */
Test(frame, json_quote_matches_jansson)
{
    char in[128], out[1024], doc[1100];
    json_error_t jerr;

    for (int c = 1; c < 128; c++) {
        size_t n = 0;
        in[n++] = 'a';
        in[n++] = (char)c;
        memcpy(in + n, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9);
        n += 9;
        size_t q = bg_json_quote(out, sizeof(out), in, n);
        cr_assert_neq(q, (size_t)-1);
        snprintf(doc, sizeof(doc), "[%.*s]", (int)q, out);
        json_t *j = json_loads(doc, 0, &jerr);
        cr_assert_not_null(j, "byte %d: %s in %s", c, jerr.text, doc);
        cr_assert_eq(json_string_length(json_array_get(j, 0)), n);
        cr_assert_eq(memcmp(json_string_value(json_array_get(j, 0)), in, n), 0);
        json_decref(j);
    }
}

/* An endpoint's declared rate_limit: the ini grammar after method and prefix. */
#define RL_META(v) "{\"endpoints\":[{\"method\":\"GET\",\"path\":\"/a\",\"rate_limit\":" v "}]}"

Test(frame, endpoint_rate_limit_accepted)
{
    fieldset s;
    bg_frame g;

    base_endpoints(&s, RL_META("\"100/s burst=20 key=client\""));
    expect_accept(&s, &g);
    cr_assert_str_eq(g.endpoints.items[0].rate_limit, "100/s burst=20 key=client");
    bg_frame_free(&g);
    base_endpoints(&s, RL_META("\" 2/m  key=header:X-Api-Key \""));
    expect_accept(&s, &g);
    cr_assert_str_eq(g.endpoints.items[0].rate_limit, " 2/m  key=header:X-Api-Key ");
    bg_frame_free(&g);
    base_endpoints(&s, "{\"endpoints\":[{\"method\":\"GET\",\"path\":\"/a\"}]}");
    expect_accept(&s, &g);
    cr_assert_null(g.endpoints.items[0].rate_limit, "absent: no limit");
    bg_frame_free(&g);
}

Test(frame, endpoint_rate_limit_refused_with_reason)
{
    fieldset s;
    char long_text[200 + 1];

    base_endpoints(&s, RL_META("100"));
    expect_reject(&s, "endpoints[0]: rate_limit is not a string of 1..128 bytes");
    base_endpoints(&s, RL_META("\"\""));
    expect_reject(&s, "endpoints[0]: rate_limit is not a string of 1..128 bytes");
    base_endpoints(&s, RL_META("\"10/d\""));
    expect_reject(&s, "endpoints[0]: rate_limit: '10/d' is not a rate like 10/s, 100/m or 1000/h");
    base_endpoints(&s, RL_META("\"0/s\""));
    expect_reject(&s, "endpoints[0]: rate_limit: rate '0/s': the count must be 1..1000000");
    base_endpoints(&s, RL_META("\"5/s burst=0\""));
    expect_reject(&s, "endpoints[0]: rate_limit: burst=0: burst must be 1..1000000");
    base_endpoints(&s, RL_META("\"5/s brust=3\""));
    expect_reject(&s, "endpoints[0]: rate_limit: unknown option 'brust=3'");
    base_endpoints(&s, RL_META("\"5/s key=cookie\""));
    expect_reject(
        &s, "endpoints[0]: rate_limit: key=cookie is not client, header:<Name> or claim:<name>");
    base_endpoints(&s, RL_META("\"GET / 5/s\""));
    expect_reject(&s, "endpoints[0]: rate_limit: 'GET' is not a rate like");
    memset(long_text, 'x', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    memcpy(long_text, "5/s key=header:", 15);
    {
        char meta[512];
        snprintf(meta, sizeof(meta), RL_META("\"%s\""), long_text);
        base_endpoints(&s, meta);
        expect_reject(&s, "endpoints[0]: rate_limit is not a string of 1..128 bytes");
    }
}

Test(frame, endpoint_rate_limit_built_and_checked)
{
    bg_endpoint ep = {.method = BG_METHOD_GET, .path = "/a", .rate_limit = "3/h burst=9"};
    char err[BG_ERR_LEN] = "";
    json_t *meta = NULL;

    cr_assert_eq(bg_endpoints_to_meta(&ep, 1, NULL, &meta, err), BG_OK, "%s", err);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(meta, "endpoints"), 0), "rate_limit")),
                     "3/h burst=9");
    json_decref(meta);
    ep.rate_limit = "3/fortnight";
    cr_assert_eq(bg_endpoints_to_meta(&ep, 1, NULL, &meta, err), BG_ERR);
    cr_assert_not_null(strstr(err, "rate_limit: '3/fortnight' is not a rate"), "%s", err);
}

/* ---- meta decoded flat (frame_meta_flat.c) against jansson's reading ---- */

static void expect_pairs_like_json(size_t n, int (*at)(const bg_frame *, size_t, bg_pair *),
                                   const bg_frame *f, json_t *ref, int object)
{
    const char *k;
    json_t *v;
    bg_pair p;
    size_t i = 0;

    cr_assert_eq(n, object ? json_object_size(ref) : json_array_size(ref));
    if (!object) {
        json_array_foreach(ref, i, v)
        {
            cr_assert_eq(at(f, i, &p), BG_OK);
            cr_assert_str_eq(p.name, json_string_value(json_array_get(v, 0)));
            cr_assert_str_eq(p.value, json_string_value(json_array_get(v, 1)));
            cr_assert_eq(p.value_len, json_string_length(json_array_get(v, 1)));
        }
    } else {
        json_object_foreach(ref, k, v)
        {
            cr_assert_eq(at(f, i++, &p), BG_OK);
            cr_assert_str_eq(p.name, k);
            cr_assert_str_eq(p.value, json_string_value(v));
            cr_assert_str_eq(bg_frame_param_get(f, k, NULL), json_string_value(v));
        }
    }
    cr_assert_eq(at(f, n, &p), BG_ERR);
}

/* Decodes a REQUEST with this meta and checks every accessor against jansson's parse;
 * flat: the decoder must have taken the jansson-free path (meta left NULL). */
static void expect_meta_like_jansson(const char *meta, int flat)
{
    json_t *ref = json_loads(meta, JSON_REJECT_DUPLICATES, NULL), *fe, *h, *empty_a, *empty_o;
    const char *claim;
    bg_frame f, g;
    fieldset s;
    size_t i, n;

    cr_assert_not_null(ref, "test meta is not JSON: %s", meta);
    base_request(&s);
    fs_set(&s, "meta", meta);
    expect_accept(&s, &f);
    cr_assert_eq(f.meta == NULL, flat, "%s: flat %d expected", meta, flat);
    empty_a = json_array();
    empty_o = json_object();
    n = bg_frame_header_count(&f);
    h = json_object_get(ref, "headers");
    expect_pairs_like_json(n, bg_frame_header_at, &f, h != NULL ? h : empty_a, 0);
    n = bg_frame_param_count(&f);
    h = json_object_get(ref, "params");
    expect_pairs_like_json(n, bg_frame_param_at, &f, h != NULL ? h : empty_o, 1);
    json_decref(empty_a);
    json_decref(empty_o);
    cr_assert_null(bg_frame_param_get(&f, "absent", NULL));
    if (json_object_get(ref, "client") != NULL)
        cr_assert_str_eq(bg_frame_client(&f), json_string_value(json_object_get(ref, "client")));
    else
        cr_assert_null(bg_frame_client(&f));
    json_array_foreach(json_object_get(ref, "features"), i, fe)
        cr_assert(bg_frame_has_feature(&f, json_string_value(fe)));
    json_object_foreach(json_object_get(ref, "claims"), claim, fe)
    {
        if (json_is_string(fe))
            cr_assert_str_eq(bg_frame_claim_get(&f, claim), json_string_value(fe), "%s", claim);
        else
            cr_assert_null(bg_frame_claim_get(&f, claim), "%s", claim);
    }
    cr_assert_null(bg_frame_claim_get(&f, "absent"));
    cr_assert_not(bg_frame_has_feature(&f, "absent"));
    /* Sent on (a dead letter re-encodes it): the same meta. */
    round_trip(&f, &g);
    cr_assert_eq(bg_frame_header_count(&g), bg_frame_header_count(&f));
    cr_assert_eq(bg_frame_param_count(&g), bg_frame_param_count(&f));
    bg_frame_free(&g);
    /* A builder on the decoded frame keeps what it had. */
    n = bg_frame_header_count(&f);
    cr_assert_eq(bg_frame_add_header(&f, "X-Added", 7, "1", 1, NULL), BG_OK);
    cr_assert_eq(bg_frame_header_count(&f), n + 1);
    cr_assert_eq(bg_frame_param_count(&f), json_object_size(json_object_get(ref, "params")));
    cr_assert_str_eq(bg_frame_header_get(&f, "x-added", NULL), "1");
    bg_frame_free(&f);
    json_decref(ref);
}

Test(frame, flat_meta_reads_like_jansson)
{
    expect_meta_like_jansson("{}", 1);
    expect_meta_like_jansson("{\"headers\":[],\"params\":{},\"features\":[]}", 1);
    expect_meta_like_jansson(
        " {\r\n \"headers\" : [ [\"A\" , \"b\\\"c\\\\d\\/e\\tf\"] ,[\"A\",\"\"]],"
        "\"params\":{\"id\":\"4 2\",\"x_1\":\"\"}, \"client\":\"10.0.0.1\","
        "\"features\":[\"stream\",\"other\"] }\n",
        1);
    /* What the flat parser leaves to jansson: still read the same. */
    expect_meta_like_jansson("{\"headers\":[[\"X\",\"caf\xc3\xa9\"]]}", 0);
    expect_meta_like_jansson("{\"headers\":[[\"X\",\"\\u00e9\\ud83d\\ude00\"]]}", 0);
    expect_meta_like_jansson("{\"future\":[1,{\"a\":null}],\"params\":{\"id\":\"1\"}}", 0);
    /* Claims (the verified identity, any JSON object): jansson parses that member alone. */
    expect_meta_like_jansson("{\"claims\":{\"sub\":\"u1\"},\"headers\":[[\"A\",\"b\"]]}", 1);
    expect_meta_like_jansson(
        "{\"headers\":[[\"A\",\"b\"]],\"claims\":{\"sub\":\"u\\\"}{\",\"roles\":"
        "[\"a\",\"b\"],\"n\":1.5,\"o\":{\"x\":[{}]},\"t\":true},\"client\":\"c\"}",
        1);
    expect_meta_like_jansson("{\"claims\":{\"name\":\"caf\xc3\xa9 \\u00e9\"}}", 1);
}

Test(frame, flat_meta_claims_and_rejections_as_before)
{
    fieldset s;
    bg_frame f;

    base_request(&s);
    fs_set(&s, "meta", "{\"claims\":{\"sub\":\"u1\",\"n\":2}}");
    expect_accept(&s, &f);
    cr_assert_str_eq(bg_frame_claim_get(&f, "sub"), "u1");
    cr_assert_null(bg_frame_claim_get(&f, "n"));
    bg_frame_free(&f);
    /* Refused with the same reasons whichever parser saw them first. */
    fs_set(&s, "meta", "{\"headers\":[[\"A\",\"x\\ny\"]]}");
    expect_reject(&s, "REQUEST: meta: headers[0] value contains a control byte");
    fs_set(&s, "meta", "{\"headers\":[[\"A B\",\"x\"]]}");
    expect_reject(&s, "meta: headers[0] name is not an HTTP token");
    fs_set(&s, "meta", "{\"headers\":[[\"A\",\"x\",\"y\"]]}");
    expect_reject(&s, "meta: headers[0] is not a [name, value] pair of strings");
    fs_set(&s, "meta", "{\"params\":{\"1x\":\"v\"}}");
    expect_reject(&s, "meta: params has an invalid name");
    fs_set(&s, "meta", "{\"params\":{\"a\":\"v\",\"a\":\"w\"}}");
    expect_reject(&s, "meta: invalid JSON");
    fs_set(&s, "meta", "{\"headers\":[],\"headers\":[]}");
    expect_reject(&s, "meta: invalid JSON");
    fs_set(&s, "meta", "{}x");
    expect_reject(&s, "meta: invalid JSON");
    fs_set(&s, "meta", "{\"client\":\"a\x01\"}");
    expect_reject(&s, "meta: invalid JSON");
    fs_set(&s, "meta", "{\"features\":[\"a\",1]}");
    expect_reject(&s, "meta: features[1] is not a string");
    fs_set(&s, "meta", "[]");
    expect_reject(&s, "meta: not a JSON object");
    /* claims the flat parser hands to jansson alone, and gives up on: the same reasons */
    fs_set(&s, "meta", "{\"claims\":\"sub\"}");
    expect_reject(&s, "meta: claims is not an object");
    fs_set(&s, "meta", "{\"claims\":{\"a\":\"1\",\"a\":\"2\"}}");
    expect_reject(&s, "meta: invalid JSON");
    fs_set(&s, "meta", "{\"claims\":{},\"claims\":{}}");
    expect_reject(&s, "meta: invalid JSON");
    fs_set(&s, "meta", "{\"claims\":{\"a\":\"}");
    expect_reject(&s, "meta: invalid JSON");
    fs_set(&s, "meta", "{\"claims\":{\"a\":tru}}");
    expect_reject(&s, "meta: invalid JSON");
}

Test(frame, meta_headers_text_reads_like_the_builder)
{
    bg_meta_headers m = {0};
    char err[BG_ERR_LEN] = "";
    bg_bytes t = bg_meta_headers_text(&m);
    bg_frame f, g;
    bg_pair p;

    cr_assert_null(t.ptr);
    cr_assert_eq(bg_meta_headers_add(&m, "Content-Type", 12, "a \"b\"\t\\ caf\xc3\xa9", 13, err),
                 BG_OK, "%s", err);
    for (int i = 0; i < 40; i++) /* grows past its first buffer */
        cr_assert_eq(bg_meta_headers_add(&m, "X-N", 3, "0123456789", 10, err), BG_OK);
    cr_assert_eq(bg_meta_headers_add(&m, "A B", 3, "x", 1, err), BG_ERR);
    cr_assert_str_eq(err, "header name is not an HTTP token");
    cr_assert_eq(bg_meta_headers_add(&m, "A", 1, "x\r\n", 3, err), BG_ERR);
    cr_assert(strstr(err, "control byte") != NULL, "%s", err);
    cr_assert_eq(bg_meta_headers_add(&m, "A", 1, "\xff", 1, err), BG_ERR);
    cr_assert_str_eq(err, "header value is not valid UTF-8");
    bg_frame_init(&f, BG_FRAME_RESPONSE);
    strcpy(f.id, "r-1");
    strcpy(f.instance, "i-1");
    f.status = 200;
    f.meta_json = bg_meta_headers_text(&m);
    round_trip(&f, &g);
    cr_assert_eq(bg_frame_header_count(&g), 41);
    cr_assert_eq(bg_frame_header_at(&g, 0, &p), BG_OK);
    cr_assert_str_eq(p.name, "Content-Type");
    cr_assert_str_eq(p.value, "a \"b\"\t\\ caf\xc3\xa9");
    cr_assert_str_eq(bg_frame_header_get(&g, "x-n", NULL), "0123456789");
    bg_frame_free(&g);
    bg_frame_free(&f);
    bg_meta_headers_free(&m);
    for (int i = 0; i < BG_FRAME_HEADERS_MAX; i++)
        cr_assert_eq(bg_meta_headers_add(&m, "X", 1, "", 0, err), BG_OK);
    cr_assert_eq(bg_meta_headers_add(&m, "X", 1, "", 0, err), BG_ERR);
    cr_assert(strstr(err, "more than") != NULL, "%s", err);
    bg_meta_headers_free(&m);
}

/* Integer fields are written as "%lld" writes them (the encoder has its own formatter). */
Test(frame, integers_are_encoded_in_decimal)
{
    static const int64_t values[] = {0, 7, 10, 1700000000123, INT64_MAX};
    char err[BG_ERR_LEN] = "", want[32];
    bg_frame_wire w;
    bg_frame f;

    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        bg_frame_init(&f, BG_FRAME_HELLO);
        strcpy(f.id, "hello-1");
        f.ts = values[i];
        strcpy(f.service, "orders");
        strcpy(f.instance, "orders-7f3a");
        strcpy(f.svc_version, "1");
        cr_assert_eq(bg_frame_encode(&f, &w, err), BG_OK, "encode: %s", err);
        snprintf(want, sizeof(want), "%lld", (long long)values[i]);
        for (int a = 0; a + 1 < w.argc; a += 2)
            if (w.argvlen[a] == 2 && memcmp(w.argv[a], "ts", 2) == 0)
                cr_assert(w.argvlen[a + 1] == strlen(want) &&
                              memcmp(w.argv[a + 1], want, strlen(want)) == 0,
                          "ts %s written as %.*s", want, (int)w.argvlen[a + 1], w.argv[a + 1]);
        bg_frame_wire_free(&w);
        bg_frame_free(&f);
    }
}
