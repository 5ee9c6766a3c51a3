/* test_control.c: the master's control plane in-process against a private valkey-server:
 * registration, resync, liveness, dead letters, reclaim, group loss, reconnect, reload. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "busgate/bus/bus.h"
#include "busgate/control/control.h"
#include "busgate/metrics/metrics.h"
#include "busgate/proto/frame.h"
#include "busgate/core/log.h"
#include "busgate/control/registry.h"
#include "valkey_harness.h"

static bgt_valkey server;

static void server_up(void)
{
    /* warnings are expected (malformed frames, lost group); BGT_LOG=debug shows them */
    bg_log_level lvl = BG_LOG_CRIT;
    if (getenv("BGT_LOG") != NULL)
        bg_log_parse_level(getenv("BGT_LOG"), &lvl);
    bg_log_set_level(lvl);
    signal(SIGPIPE, SIG_IGN);
    cr_assert_eq(bgt_valkey_start(&server, NULL), 0, "valkey-server did not start");
}

static void server_down(void)
{
    bgt_valkey_stop(&server);
}

TestSuite(control, .init = server_up, .fini = server_down, .timeout = 60);

/* ---- fixture: a routing table, a loop and bg_control, plus a client as "the instance" ---- */

typedef struct fx {
    bg_config cfg;
    bg_rt *rt;
    bg_ev *loop;
    bg_control *ctl;
    bg_bus *cli;
    bg_metrics *metrics;
} fx;

/* Runs the master's loop until cond holds or ms pass; the final check is the caller's. */
#define RUN_UNTIL(f, cond, ms)                                                                     \
    do {                                                                                           \
        int64_t end_ = bg_mono_ms() + (ms);                                                        \
        while (!(cond) && bg_mono_ms() < end_)                                                     \
            bg_ev_run_once((f)->loop, 10, NULL);                                                   \
    } while (0)

static void run_for(fx *f, int64_t ms)
{
    int64_t end = bg_mono_ms() + ms;

    while (bg_mono_ms() < end)
        bg_ev_run_once(f->loop, 10, NULL);
}

static redisReply *cmd(fx *f, const char *fmt, ...)
{
    char err[BG_ERR_LEN] = "";
    redisReply *r;
    va_list ap;

    va_start(ap, fmt);
    r = redisvCommand(bg_bus_context(f->cli), fmt, ap);
    va_end(ap);
    cr_assert_not_null(r, "command failed: %s", err);
    return r;
}

static long long cmd_int(fx *f, const char *fmt, ...)
{
    redisReply *r;
    long long v;
    va_list ap;

    va_start(ap, fmt);
    r = redisvCommand(bg_bus_context(f->cli), fmt, ap);
    va_end(ap);
    cr_assert_not_null(r);
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "reply type %d (%s)", r->type,
                 r->type == REDIS_REPLY_ERROR ? r->str : "");
    v = r->integer;
    freeReplyObject(r);
    return v;
}

static void fx_config(fx *f, int64_t hb, int64_t expiry, int64_t remove)
{
    char err[BG_ERR_LEN];

    memset(f, 0, sizeof(*f));
    bg_config_defaults(&f->cfg);
    snprintf(f->cfg.gateway.instance_id, sizeof(f->cfg.gateway.instance_id), "gw1");
    snprintf(f->cfg.valkey.url, sizeof(f->cfg.valkey.url), "%s", server.url);
    cr_assert_eq(bg_valkey_url_parse(server.url, &f->cfg.valkey.addr, err), BG_OK, "%s", err);
    f->cfg.messaging.heartbeat_interval_ms = hb;
    f->cfg.messaging.heartbeat_expiry_ms = expiry;
    f->cfg.messaging.connection_remove_ms = remove;
    f->cfg.routing.max_services = 8;
    f->cfg.routing.max_connections = 8;
    f->cfg.routing.max_endpoints = 64;
}

static void fx_start(fx *f)
{
    bg_rt_limits lim = {.max_services = f->cfg.routing.max_services,
                        .max_connections = f->cfg.routing.max_connections,
                        .max_endpoints = f->cfg.routing.max_endpoints};
    char err[BG_ERR_LEN] = "";
    bg_bus_opts o;

    f->rt = bg_rt_create(&lim, err);
    cr_assert_not_null(f->rt, "%s", err);
    f->loop = bg_ev_new(err);
    cr_assert_not_null(f->loop, "%s", err);
    f->ctl = bg_control_new(&f->cfg, f->rt, f->loop, err);
    cr_assert_not_null(f->ctl, "bg_control_new: %s", err);
    f->metrics = bg_metrics_create(4, err);
    cr_assert_not_null(f->metrics, "%s", err);
    bg_control_set_metrics(f->ctl, f->metrics);
    bg_bus_opts_init(&o);
    o.addr = f->cfg.valkey.addr;
    f->cli = bg_bus_connect(&o, err);
    cr_assert_not_null(f->cli, "%s", err);
    /* The group skips what came before its creation (the startup resync
     * replaces it): frames of the test go after the startup broadcast. */
    RUN_UNTIL(f, cmd_int(f, "XLEN router:broadcast") >= 1, 5000);
    cr_assert_geq(cmd_int(f, "XLEN router:broadcast"), 1, "no startup resync");
}

static void fx_open(fx *f, int64_t hb, int64_t expiry, int64_t remove)
{
    fx_config(f, hb, expiry, remove);
    fx_start(f);
}

static void fx_close(fx *f)
{
    bg_control_free(f->ctl);
    bg_ev_free(f->loop);
    bg_rt_destroy(f->rt);
    bg_bus_free(f->cli);
    bg_metrics_destroy(f->metrics);
}

/* ---- the simulated service instance ---- */

static void send_frame(fx *f, const bg_frame *fr)
{
    const char *head[] = {"XADD", "router:control", "*"};
    const char **argv;
    const size_t *lens;
    char err[BG_ERR_LEN] = "";
    bg_frame_wire w;
    redisReply *r;
    int argc;

    cr_assert_eq(bg_frame_encode(fr, &w, err), BG_OK, "encode: %s", err);
    cr_assert_eq(bg_frame_wire_command(&w, head, NULL, 3, &argc, &argv, &lens), BG_OK);
    r = bg_bus_command_argv(f->cli, argc, argv, lens, err);
    cr_assert(r != NULL && r->type == REDIS_REPLY_STRING, "XADD failed: %s", err);
    freeReplyObject(r);
    bg_frame_wire_free(&w);
}

static void frame_for(bg_frame *fr, bg_frame_type t, const char *svc, const char *inst)
{
    static unsigned long seq;

    bg_frame_init(fr, t);
    snprintf(fr->id, sizeof(fr->id), "f%lu", ++seq);
    snprintf(fr->service, sizeof(fr->service), "%s", svc);
    snprintf(fr->instance, sizeof(fr->instance), "%s", inst);
    if (t != BG_FRAME_GOODBYE)
        snprintf(fr->svc_version, sizeof(fr->svc_version), "1.0");
}

static void send_simple(fx *f, bg_frame_type t, const char *svc, const char *inst)
{
    bg_frame fr;

    frame_for(&fr, t, svc, inst);
    if (t == BG_FRAME_HEARTBEAT)
        fr.interval_ms = f->cfg.messaging.heartbeat_interval_ms;
    send_frame(f, &fr);
    bg_frame_free(&fr);
}

/* meta_json: {"endpoints": [...]} */
static void send_endpoints(fx *f, const char *svc, const char *inst, const char *meta_json)
{
    json_error_t jerr;
    bg_frame fr;

    frame_for(&fr, BG_FRAME_ENDPOINTS_UPDATE, svc, inst);
    fr.meta = json_loads(meta_json, 0, &jerr);
    cr_assert_not_null(fr.meta, "test meta: %s", jerr.text);
    send_frame(f, &fr);
    bg_frame_free(&fr);
}

static const char orders_eps[] =
    "{\"endpoints\":[{\"method\":\"GET\",\"path\":\"/orders/{id}\",\"timeout_ms\":5000,"
    "\"claims\":[\"orders:read\"],\"openapi\":{\"summary\":\"get one\"}},"
    "{\"method\":\"PUT\",\"path\":\"/orders/"
    "{id}\"}],\"openapi\":{\"info\":{\"title\":\"orders\"}}}";

static bg_rt_status lookup(fx *f, const char *method, const char *path)
{
    bg_rt_match m;

    bg_rt_lookup(f->rt, method, path, strlen(path), &m);
    return m.status;
}

/* Entries pending in the master's group (read, not acked). */
static long long pending(fx *f)
{
    redisReply *r = cmd(f, "XPENDING router:control router-gateway:gw1");
    long long n;

    cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "XPENDING: %s",
                 r->type == REDIS_REPLY_ERROR ? r->str : "");
    n = r->element[0]->integer;
    freeReplyObject(r);
    return n;
}

/* Entries of an instance stream (RESYNC_REQUESTs sent to it). */
static long long instance_len(fx *f, const char *svc, const char *inst)
{
    return cmd_int(f, "XLEN router:instance:{%s}:%s", svc, inst);
}

/* Value of field name in the last entry of stream key ("" when absent). */
static void last_field(fx *f, const char *key, const char *name, char *out, size_t outlen)
{
    redisReply *r = cmd(f, "XREVRANGE %s + - COUNT 1", key);

    out[0] = '\0';
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(r->elements, 1, "stream %s is empty", key);
    const redisReply *kv = r->element[0]->element[1];
    for (size_t i = 0; i + 1 < kv->elements; i += 2)
        if (strcmp(kv->element[i]->str, name) == 0)
            snprintf(out, outlen, "%s", kv->element[i + 1]->str);
    freeReplyObject(r);
}

static json_t *state_doc(fx *f)
{
    redisReply *r = cmd(f, "GET router:gateway:gw1:state");
    json_t *doc = NULL;

    if (r->type == REDIS_REPLY_STRING)
        doc = json_loads(r->str, 0, NULL);
    freeReplyObject(r);
    return doc;
}

/* Registration as an instance does it: HELLO, wait for the resync, answer it. */
static void register_orders(fx *f, const char *inst)
{
    char reason[64];
    long long before = instance_len(f, "orders", inst);

    send_simple(f, BG_FRAME_HELLO, "orders", inst);
    RUN_UNTIL(f, instance_len(f, "orders", inst) > before, 5000);
    cr_assert_gt(instance_len(f, "orders", inst), before, "no RESYNC_REQUEST after HELLO");
    char key[128];
    snprintf(key, sizeof(key), "router:instance:{orders}:%s", inst);
    last_field(f, key, "reason", reason, sizeof(reason));
    cr_assert_str_eq(reason, "hello");
    send_endpoints(f, "orders", inst, orders_eps);
    RUN_UNTIL(f, lookup(f, "GET", "/orders/42") == BG_RT_FOUND, 5000);
    cr_assert_eq(lookup(f, "GET", "/orders/42"), BG_RT_FOUND);
}

/* ---- tests ---- */

Test(control, startup_creates_group_and_broadcasts_resync)
{
    char v[64];
    fx f;

    fx_open(&f, 1000, 3000, 3000);
    RUN_UNTIL(&f, cmd_int(&f, "XLEN router:broadcast") == 1, 5000);
    cr_assert_eq(cmd_int(&f, "XLEN router:broadcast"), 1);
    last_field(&f, "router:broadcast", "type", v, sizeof(v));
    cr_assert_str_eq(v, "RESYNC_REQUEST");
    last_field(&f, "router:broadcast", "reason", v, sizeof(v));
    cr_assert_str_eq(v, "startup");
    last_field(&f, "router:broadcast", "gateway", v, sizeof(v));
    cr_assert_str_eq(v, "gw1");
    redisReply *r = cmd(&f, "XINFO GROUPS router:control");
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(r->elements, 1);
    freeReplyObject(r);
    fx_close(&f);
}

Test(control, hello_resync_endpoints_route_and_state)
{
    fx f;

    fx_open(&f, 1000, 5000, 5000);
    register_orders(&f, "o1");
    cr_assert_eq(lookup(&f, "PUT", "/orders/7"), BG_RT_FOUND);
    cr_assert_eq(lookup(&f, "POST", "/orders/7"), BG_RT_METHOD_NOT_ALLOWED);

    json_t *doc = NULL;
    RUN_UNTIL(&f,
              (json_decref(doc), doc = state_doc(&f)) != NULL &&
                  json_array_size(json_object_get(doc, "connections")) == 1,
              5000);
    cr_assert_not_null(doc, "no state document");
    cr_assert_str_eq(json_string_value(json_object_get(doc, "gateway")), "gw1");
    cr_assert_eq(json_integer_value(json_object_get(doc, "pid")), getpid());
    json_t *conn = json_array_get(json_object_get(doc, "connections"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(conn, "id")), "orders/o1");
    cr_assert(json_is_true(json_object_get(conn, "up")));
    cr_assert_eq(json_array_size(json_object_get(conn, "endpoints")), 2);
    json_t *reg = json_array_get(json_object_get(doc, "registry"), 0);
    cr_assert(json_is_true(json_object_get(reg, "endpoints_received")));
    cr_assert(json_is_false(json_object_get(json_object_get(reg, "resync"), "pending")));
    json_t *api = json_object_get(json_object_get(doc, "openapi"), "orders");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(api, "info"), "title")),
                     "orders");
    cr_assert_not_null(
        json_object_get(json_object_get(json_object_get(api, "paths"), "/orders/{id}"), "get"));
    cr_assert_gt(cmd_int(&f, "PTTL router:gateway:gw1:state"), 0, "the state key has no TTL");
    json_decref(doc);

    /* acked: nothing stays pending in our group */
    RUN_UNTIL(&f, pending(&f) == 0, 5000);
    cr_assert_eq(pending(&f), 0);

    /* a clean stop removes the state: no running gateway */
    bg_control_free(f.ctl);
    f.ctl = NULL;
    cr_assert_eq(cmd_int(&f, "EXISTS router:gateway:gw1:state"), 0);
    fx_close(&f);
}

Test(control, unknown_heartbeat_is_a_state_miss)
{
    char reason[64];
    fx f;

    fx_open(&f, 1000, 5000, 5000);
    run_for(&f, 100);
    send_simple(&f, BG_FRAME_HEARTBEAT, "orders", "o2");
    RUN_UNTIL(&f, instance_len(&f, "orders", "o2") == 1, 5000);
    cr_assert_eq(instance_len(&f, "orders", "o2"), 1, "no RESYNC_REQUEST after a state miss");
    last_field(&f, "router:instance:{orders}:o2", "reason", reason, sizeof(reason));
    cr_assert_str_eq(reason, "unknown heartbeat");
    last_field(&f, "router:instance:{orders}:o2", "instance", reason, sizeof(reason));
    cr_assert_str_eq(reason, "o2");
    cr_assert_gt(cmd_int(&f, "PTTL router:instance:{orders}:o2"), 0,
                 "instance streams must expire");
    /* seeded without endpoints: nothing routed yet */
    cr_assert_eq(lookup(&f, "GET", "/orders/1"), BG_RT_NOT_FOUND);
    send_endpoints(&f, "orders", "o2", orders_eps);
    RUN_UNTIL(&f, lookup(&f, "GET", "/orders/1") == BG_RT_FOUND, 5000);
    cr_assert_eq(lookup(&f, "GET", "/orders/1"), BG_RT_FOUND);
    fx_close(&f);
}

Test(control, endpoints_update_from_unknown_registers)
{
    fx f;

    fx_open(&f, 1000, 5000, 5000);
    send_endpoints(&f, "orders", "o3", orders_eps);
    RUN_UNTIL(&f, lookup(&f, "GET", "/orders/1") == BG_RT_FOUND, 5000);
    cr_assert_eq(lookup(&f, "GET", "/orders/1"), BG_RT_FOUND);
    /* a later update replaces the whole list in one step */
    send_endpoints(&f, "orders", "o3",
                   "{\"endpoints\":[{\"method\":\"GET\",\"path\":\"/v2/orders/{id}\"}]}");
    RUN_UNTIL(&f, lookup(&f, "GET", "/v2/orders/1") == BG_RT_FOUND, 5000);
    cr_assert_eq(lookup(&f, "GET", "/v2/orders/1"), BG_RT_FOUND);
    cr_assert_eq(lookup(&f, "GET", "/orders/1"), BG_RT_NOT_FOUND);
    fx_close(&f);
}

Test(control, expiry_marks_down_then_removes)
{
    int64_t last = 0;
    fx f;

    fx_open(&f, 100, 1000, 600);
    register_orders(&f, "o1");
    /* heartbeats keep it up well past the expiry */
    for (int i = 0; i < 15; i++) {
        last = bg_mono_ms(); /* the master cannot see this frame earlier */
        send_simple(&f, BG_FRAME_HEARTBEAT, "orders", "o1");
        run_for(&f, 100);
    }
    cr_assert_eq(lookup(&f, "GET", "/orders/1"), BG_RT_FOUND);
    RUN_UNTIL(&f, lookup(&f, "GET", "/orders/1") == BG_RT_NO_LIVE_INSTANCE, 5000);
    cr_assert_eq(lookup(&f, "GET", "/orders/1"), BG_RT_NO_LIVE_INSTANCE, "not marked down");
    cr_assert_geq(bg_mono_ms() - last, 1000, "marked down before heartbeat_expiry");
    RUN_UNTIL(&f, lookup(&f, "GET", "/orders/1") == BG_RT_NOT_FOUND, 5000);
    cr_assert_eq(lookup(&f, "GET", "/orders/1"), BG_RT_NOT_FOUND, "not removed");
    cr_assert_geq(bg_mono_ms() - last, 1000 + 600, "removed before connection_remove");
    fx_close(&f);
}

Test(control, down_connection_comes_back_with_a_frame)
{
    fx f;

    fx_open(&f, 100, 500, 60000);
    register_orders(&f, "o1");
    RUN_UNTIL(&f, lookup(&f, "GET", "/orders/1") == BG_RT_NO_LIVE_INSTANCE, 5000);
    cr_assert_eq(lookup(&f, "GET", "/orders/1"), BG_RT_NO_LIVE_INSTANCE);
    send_simple(&f, BG_FRAME_HEARTBEAT, "orders", "o1");
    RUN_UNTIL(&f, lookup(&f, "GET", "/orders/1") == BG_RT_FOUND, 5000);
    cr_assert_eq(lookup(&f, "GET", "/orders/1"), BG_RT_FOUND, "endpoints kept while down");
    fx_close(&f);
}

Test(control, goodbye_removes_at_once)
{
    fx f;

    fx_open(&f, 1000, 60000, 60000);
    register_orders(&f, "o1");
    register_orders(&f, "o2");
    send_simple(&f, BG_FRAME_GOODBYE, "orders", "o1");
    json_t *doc = NULL;
    RUN_UNTIL(&f,
              (json_decref(doc), doc = state_doc(&f)) != NULL &&
                  json_array_size(json_object_get(doc, "connections")) == 1,
              5000);
    cr_assert_eq(json_array_size(json_object_get(doc, "connections")), 1);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(doc, "connections"), 0), "id")),
                     "orders/o2");
    json_decref(doc);
    send_simple(&f, BG_FRAME_GOODBYE, "orders", "o2");
    RUN_UNTIL(&f, lookup(&f, "GET", "/orders/1") == BG_RT_NOT_FOUND, 5000);
    cr_assert_eq(lookup(&f, "GET", "/orders/1"), BG_RT_NOT_FOUND);
    fx_close(&f);
}

/* Field value of entry i of stream key. */
static int entry_field(fx *f, const char *key, size_t i, const char *name, char *out, size_t len)
{
    redisReply *r = cmd(f, "XRANGE %s - +", key);
    int found = 0;

    if (r->type == REDIS_REPLY_ARRAY && i < r->elements) {
        const redisReply *kv = r->element[i]->element[1];
        for (size_t k = 0; k + 1 < kv->elements; k += 2)
            if (strcmp(kv->element[k]->str, name) == 0) {
                snprintf(out, len, "%s", kv->element[k + 1]->str);
                found = 1;
            }
    }
    freeReplyObject(r);
    return found;
}

/* The value of a metric line starting with name in the Prometheus rendering; -1 if absent. */
static long long metric_value(fx *f, const char *name)
{
    char *text = NULL, *line;
    size_t len = 0;
    long long v = -1;

    cr_assert_eq(bg_metrics_render_prometheus(f->metrics, &text, &len), BG_OK);
    /* A sample line, not the "# HELP name" line before it. */
    for (line = strstr(text, name); line != NULL; line = strstr(line + 1, name)) {
        if (line == text || line[-1] == '\n') {
            v = strtoll(line + strlen(name), NULL, 10);
            break;
        }
    }
    free(text);
    return v;
}

Test(control, malformed_frames_are_dead_lettered)
{
    char reason[BG_ERR_LEN], group[128];
    size_t big = 2u << 20;
    char *meta = malloc(big + 32);
    fx f;

    fx_open(&f, 1000, 60000, 60000);
    run_for(&f, 100);
    redisReply *r = cmd(&f, "XADD router:control * garbage 1 more stuff");
    freeReplyObject(r);
    r = cmd(&f, "XADD router:control * v 2 type HELLO id x1 service a instance b version 1");
    freeReplyObject(r);
    /* oversize: a 2 MiB meta (limit 1 MiB) */
    memset(meta, ' ', big);
    memcpy(meta, "{\"sdk\":\"x\"", 10);
    memcpy(meta + big, "}", 2);
    r = cmd(&f, "XADD router:control * v 1 type HELLO id x2 service a instance b version 1 meta %s",
            meta);
    freeReplyObject(r);
    free(meta);
    /* well-formed but not a control frame */
    r = cmd(&f, "XADD router:control * v 1 type RESPONSE id x3 instance b status 200");
    freeReplyObject(r);
    /* the master keeps working */
    register_orders(&f, "o1");
    RUN_UNTIL(&f, cmd_int(&f, "XLEN router:control:dead") == 4, 5000);
    cr_assert_eq(metric_value(&f, "busgate_dead_letters_total "), 4,
                 "each dead letter is counted in the master's metrics");
    cr_assert_eq(cmd_int(&f, "XLEN router:control:dead"), 4);
    const char *want[] = {"missing field 'v'", "unsupported version 2", "meta", "RESPONSE"};
    for (size_t i = 0; i < 4; i++) {
        cr_assert(entry_field(&f, "router:control:dead", i, "dead_reason", reason, sizeof(reason)));
        cr_assert(strstr(reason, want[i]) != NULL, "dead letter %zu: reason '%s', want '%s'", i,
                  reason, want[i]);
        cr_assert(entry_field(&f, "router:control:dead", i, "dead_group", group, sizeof(group)));
        cr_assert_str_eq(group, "router-gateway:gw1");
    }
    cr_assert(entry_field(&f, "router:control:dead", 0, "garbage", reason, sizeof(reason)),
              "the original fields are kept");
    RUN_UNTIL(&f, pending(&f) == 0, 5000);
    cr_assert_eq(pending(&f), 0, "dead letters are acked");
    fx_close(&f);
}

Test(control, endpoints_refused_by_the_table_reject_that_frame_only)
{
    char tpl[700], meta[1024], reason[BG_ERR_LEN];
    fx f;

    fx_open(&f, 1000, 60000, 60000);
    register_orders(&f, "o1");
    /* a template over the table's 511 bytes (the protocol allows 8 KiB) */
    memset(tpl, 'a', sizeof(tpl));
    tpl[0] = '/';
    tpl[600] = '\0';
    snprintf(meta, sizeof(meta),
             "{\"endpoints\":[{\"method\":\"GET\",\"path\":\"/new\"},"
             "{\"method\":\"GET\",\"path\":\"%s\"}]}",
             tpl);
    send_endpoints(&f, "orders", "o1", meta);
    RUN_UNTIL(&f, cmd_int(&f, "XLEN router:control:dead") == 1, 5000);
    cr_assert_eq(cmd_int(&f, "XLEN router:control:dead"), 1);
    cr_assert(entry_field(&f, "router:control:dead", 0, "dead_reason", reason, sizeof(reason)));
    cr_assert(strstr(reason, "rejected") != NULL && strstr(reason, "endpoints[1]") != NULL, "%s",
              reason);
    run_for(&f, 50);
    cr_assert_eq(lookup(&f, "GET", "/orders/1"), BG_RT_FOUND, "the old endpoints stay");
    cr_assert_eq(lookup(&f, "GET", "/new"), BG_RT_NOT_FOUND, "nothing of the bad frame");
    fx_close(&f);
}

Test(control, unanswered_resync_is_retried_with_backoff_then_given_up)
{
    char reason[64];
    fx f;

    /* retries after 50, 100, 200, 400, 800 ms (base = interval/4, at least 50), then
     * one more delay for the last answer */
    fx_open(&f, 100, 60000, 60000);
    send_simple(&f, BG_FRAME_HELLO, "orders", "o9");
    RUN_UNTIL(&f, instance_len(&f, "orders", "o9") >= 3, 5000);
    cr_assert_geq(instance_len(&f, "orders", "o9"), 3);
    last_field(&f, "router:instance:{orders}:o9", "reason", reason, sizeof(reason));
    cr_assert_str_eq(reason, "retry");
    json_t *doc = NULL, *rs = NULL;
    RUN_UNTIL(
        &f,
        (json_decref(doc), doc = state_doc(&f)) != NULL &&
            json_is_true(json_object_get(
                rs = json_object_get(json_array_get(json_object_get(doc, "registry"), 0), "resync"),
                "gave_up")),
        8000);
    cr_assert(json_is_true(json_object_get(rs, "gave_up")), "never gave up");
    json_decref(doc);
    run_for(&f, 1000);
    cr_assert_eq(instance_len(&f, "orders", "o9"), 6, "bounded: 1 + 5 retries");
    /* an answer after all still counts */
    send_endpoints(&f, "orders", "o9", orders_eps);
    RUN_UNTIL(&f, lookup(&f, "GET", "/orders/1") == BG_RT_FOUND, 5000);
    cr_assert_eq(lookup(&f, "GET", "/orders/1"), BG_RT_FOUND);
    fx_close(&f);
}

Test(control, admin_resync_targets)
{
    char err[BG_ERR_LEN] = "", v[64];
    fx f;

    fx_open(&f, 1000, 60000, 60000);
    register_orders(&f, "o1");
    cr_assert_eq(bg_control_resync(f.ctl, BG_CONTROL_TARGET_CONNECTION, "orders/nope", err),
                 BG_ERR);
    cr_assert(strstr(err, "unknown connection") != NULL, "%s", err);
    cr_assert_eq(bg_control_resync(f.ctl, BG_CONTROL_TARGET_SERVICE, "nope", err), BG_ERR);
    cr_assert(strstr(err, "unknown service") != NULL, "%s", err);

    long long n = instance_len(&f, "orders", "o1");
    cr_assert_eq(bg_control_resync(f.ctl, BG_CONTROL_TARGET_CONNECTION, "orders/o1", err), BG_OK,
                 "%s", err);
    RUN_UNTIL(&f, instance_len(&f, "orders", "o1") == n + 1, 5000);
    last_field(&f, "router:instance:{orders}:o1", "reason", v, sizeof(v));
    cr_assert_str_eq(v, "admin");

    cr_assert_eq(bg_control_resync(f.ctl, BG_CONTROL_TARGET_SERVICE, "orders", err), BG_OK, "%s",
                 err);
    RUN_UNTIL(&f, cmd_int(&f, "XLEN router:broadcast") == 2, 5000);
    last_field(&f, "router:broadcast", "service", v, sizeof(v));
    cr_assert_str_eq(v, "orders");

    cr_assert_eq(bg_control_resync(f.ctl, BG_CONTROL_TARGET_FLEET, "", err), BG_OK, "%s", err);
    RUN_UNTIL(&f, cmd_int(&f, "XLEN router:broadcast") == 3, 5000);
    last_field(&f, "router:broadcast", "service", v, sizeof(v));
    cr_assert_str_eq(v, "", "fleet-wide: no target");
    last_field(&f, "router:broadcast", "reason", v, sizeof(v));
    cr_assert_str_eq(v, "admin");
    fx_close(&f);
}

Test(control, lost_group_is_recreated_with_a_fleet_resync)
{
    char v[64];
    fx f;

    fx_open(&f, 1000, 60000, 60000);
    RUN_UNTIL(&f, cmd_int(&f, "XLEN router:broadcast") == 1, 5000);
    cr_assert_eq(cmd_int(&f, "XGROUP DESTROY router:control router-gateway:gw1"), 1);
    RUN_UNTIL(&f, cmd_int(&f, "XLEN router:broadcast") == 2, 8000);
    cr_assert_eq(cmd_int(&f, "XLEN router:broadcast"), 2, "no resync after the group was lost");
    last_field(&f, "router:broadcast", "reason", v, sizeof(v));
    cr_assert_str_eq(v, "reconnect");
    register_orders(&f, "o1");
    fx_close(&f);
}

Test(control, valkey_restart_reconnects_and_resyncs)
{
    char v[64];
    fx f;

    fx_open(&f, 1000, 60000, 60000);
    register_orders(&f, "o1");
    bgt_valkey_kill(&server);
    run_for(&f, 300);
    cr_assert_eq(bgt_valkey_restart(&server), 0);
    bg_bus_free(f.cli);
    bg_bus_opts o;
    char err[BG_ERR_LEN];
    bg_bus_opts_init(&o);
    o.addr = f.cfg.valkey.addr;
    f.cli = bg_bus_connect(&o, err);
    cr_assert_not_null(f.cli, "%s", err);
    RUN_UNTIL(&f, cmd_int(&f, "XLEN router:broadcast") == 1, 15000);
    cr_assert_eq(cmd_int(&f, "XLEN router:broadcast"), 1, "no resync after the reconnect");
    last_field(&f, "router:broadcast", "reason", v, sizeof(v));
    cr_assert_str_eq(v, "reconnect");
    /* routing survived, and new frames are read again */
    cr_assert_eq(lookup(&f, "GET", "/orders/1"), BG_RT_FOUND);
    register_orders(&f, "o2");
    fx_close(&f);
}

Test(control, entries_left_pending_are_reclaimed)
{
    fx f;

    /* a previous master read these and died before acking */
    fx_config(&f, 100, 60000, 60000);
    char err[BG_ERR_LEN];
    bg_bus_opts o;
    bg_bus_opts_init(&o);
    o.addr = f.cfg.valkey.addr;
    f.cli = bg_bus_connect(&o, err);
    cr_assert_not_null(f.cli, "%s", err);
    redisReply *r = cmd(&f, "XGROUP CREATE router:control router-gateway:gw1 $ MKSTREAM");
    freeReplyObject(r);
    send_endpoints(&f, "orders", "o5", orders_eps);
    r = cmd(&f, "XREADGROUP GROUP router-gateway:gw1 gw1 COUNT 10 STREAMS router:control >");
    freeReplyObject(r);
    bg_bus_free(f.cli);
    fx_start(&f);
    RUN_UNTIL(&f, lookup(&f, "GET", "/orders/1") == BG_RT_FOUND, 10000);
    cr_assert_eq(lookup(&f, "GET", "/orders/1"), BG_RT_FOUND, "pending entry not reclaimed");
    RUN_UNTIL(&f, pending(&f) == 0, 5000);
    cr_assert_eq(pending(&f), 0, "reclaimed entries are acked");
    fx_close(&f);
}

Test(control, reconfigure_applies_new_timers)
{
    char err[BG_ERR_LEN] = "";
    fx f;

    fx_open(&f, 1000, 60000, 60000);
    register_orders(&f, "o1");
    bg_config next = f.cfg;
    next.messaging.heartbeat_interval_ms = 100;
    next.messaging.heartbeat_expiry_ms = 300;
    cr_assert_eq(bg_control_reconfigure(f.ctl, &next, err), BG_OK, "%s", err);
    RUN_UNTIL(&f, lookup(&f, "GET", "/orders/1") == BG_RT_NO_LIVE_INSTANCE, 5000);
    cr_assert_eq(lookup(&f, "GET", "/orders/1"), BG_RT_NO_LIVE_INSTANCE);

    /* bus settings changed: new connections, set up as at start, state kept */
    next.valkey.command_timeout_ms += 1000;
    next.messaging.heartbeat_expiry_ms = 60000;
    cr_assert_eq(bg_control_reconfigure(f.ctl, &next, err), BG_OK, "%s", err);
    RUN_UNTIL(&f, cmd_int(&f, "XLEN router:broadcast") == 2, 5000);
    cr_assert_eq(cmd_int(&f, "XLEN router:broadcast"), 2, "no resync after reconnecting");
    cr_assert_eq(lookup(&f, "GET", "/orders/1"), BG_RT_NO_LIVE_INSTANCE, "state kept");
    register_orders(&f, "o2");
    fx_close(&f);
}

Test(control, capacity_refuses_new_connections_only)
{
    fx f;

    fx_config(&f, 1000, 60000, 60000);
    f.cfg.routing.max_connections = 2;
    fx_start(&f);
    register_orders(&f, "o1");
    register_orders(&f, "o2");
    send_simple(&f, BG_FRAME_HELLO, "orders", "o3");
    send_simple(&f, BG_FRAME_HELLO, "billing", "b1");
    run_for(&f, 300);
    cr_assert_eq(instance_len(&f, "orders", "o3"), 0, "a refused connection gets no resync");
    json_t *doc = NULL;
    RUN_UNTIL(&f,
              (json_decref(doc), doc = state_doc(&f)) != NULL &&
                  json_integer_value(json_object_get(json_object_get(doc, "stats"), "hello")) == 4,
              5000);
    cr_assert_eq(json_array_size(json_object_get(doc, "connections")), 2);
    json_decref(doc);
    cr_assert_eq(lookup(&f, "GET", "/orders/1"), BG_RT_FOUND);
    fx_close(&f);
}

/* ---- the registry alone: no Valkey, a clock the test drives ---- */

TestSuite(registry, .timeout = 60);

typedef struct rfx {
    bg_rt *rt;
    bg_registry *reg;
    int rejects;
    char reject_id[BG_REG_ID_MAX + 1];
} rfx;

static void rfx_open(rfx *f, size_t string_bytes)
{
    bg_rt_limits lim = {
        .max_services = 4, .max_connections = 4, .max_endpoints = 8, .string_bytes = string_bytes};
    bg_reg_opts o = {.max_services = 4,
                     .max_connections = 4,
                     .max_endpoints = 8,
                     .heartbeat_expiry_ms = 1000,
                     .connection_remove_ms = 500};
    char err[BG_ERR_LEN] = "";

    bg_log_set_level(BG_LOG_CRIT);
    memset(f, 0, sizeof(*f));
    f->rt = bg_rt_create(&lim, err);
    cr_assert_not_null(f->rt, "%s", err);
    f->reg = bg_reg_new(&o, f->rt, err);
    cr_assert_not_null(f->reg, "%s", err);
}

static void rfx_close(rfx *f)
{
    bg_reg_free(f->reg);
    bg_rt_destroy(f->rt);
}

static void rfx_frame(bg_frame *fr, bg_frame_type t, const char *svc, const char *inst,
                      const char *meta)
{
    char err[BG_ERR_LEN] = "";

    frame_for(fr, t, svc, inst);
    if (meta == NULL)
        return;
    fr->meta = json_loads(meta, 0, NULL);
    cr_assert_not_null(fr->meta);
    cr_assert_eq(bg_endpoints_parse(fr->meta, &fr->endpoints, err), BG_OK, "%s", err);
}

static int rfx_apply(rfx *f, bg_frame_type t, const char *svc, const char *inst, const char *meta,
                     int64_t now, char *err)
{
    bg_reg_conn *conn;
    bg_frame fr;
    int created, rc;

    rfx_frame(&fr, t, svc, inst, meta);
    if (t == BG_FRAME_HELLO)
        rc = bg_reg_hello(f->reg, &fr, now, &created, &conn, err);
    else if (t == BG_FRAME_HEARTBEAT)
        rc = bg_reg_heartbeat(f->reg, &fr, now, &created, &conn, err);
    else if (t == BG_FRAME_ENDPOINTS_UPDATE)
        rc = bg_reg_endpoints(f->reg, &fr, now, &created, &conn, err);
    else
        rc = bg_reg_goodbye(f->reg, &fr) ? BG_OK : BG_ERR;
    bg_frame_free(&fr);
    return rc;
}

static void rfx_on_reject(void *ud, const bg_reg_conn *conn, const char *reason)
{
    rfx *f = ud;

    (void)reason;
    f->rejects++;
    snprintf(f->reject_id, sizeof(f->reject_id), "%s", conn->id);
}

static int rfx_publish(rfx *f)
{
    char err[BG_ERR_LEN] = "";
    int rc = bg_reg_publish(f->reg, rfx_on_reject, f, err);

    cr_assert_eq(rc, BG_OK, "publish: %s", err);
    return rc;
}

static const char *rfx_service_of(rfx *f, const char *method, const char *path)
{
    static bg_rt_match m;

    bg_rt_lookup(f->rt, method, path, strlen(path), &m);
    return m.status == BG_RT_FOUND ? m.service : "";
}

static const char one_ep[] = "{\"endpoints\":[{\"method\":\"GET\",\"path\":\"/x/{id}\"}]}";

Test(registry, first_registered_service_keeps_a_route)
{
    char err[BG_ERR_LEN] = "";
    rfx f;

    rfx_open(&f, 0);
    cr_assert_eq(rfx_apply(&f, BG_FRAME_HELLO, "b", "b1", NULL, 0, err), BG_OK);
    cr_assert_eq(rfx_apply(&f, BG_FRAME_ENDPOINTS_UPDATE, "a", "a1", one_ep, 0, err), BG_OK);
    cr_assert_eq(rfx_apply(&f, BG_FRAME_ENDPOINTS_UPDATE, "b", "b1", one_ep, 0, err), BG_OK);
    rfx_publish(&f);
    cr_assert_str_eq(rfx_service_of(&f, "GET", "/x/1"), "b", "b registered first (HELLO)");
    cr_assert_eq(bg_reg_service_count(f.reg), 2);
    cr_assert_eq(bg_reg_endpoint_count(f.reg), 2);
    cr_assert_eq(rfx_apply(&f, BG_FRAME_GOODBYE, "b", "b1", NULL, 0, err), BG_OK);
    cr_assert_eq(rfx_apply(&f, BG_FRAME_GOODBYE, "b", "b1", NULL, 0, err), BG_ERR, "gone");
    rfx_publish(&f);
    cr_assert_str_eq(rfx_service_of(&f, "GET", "/x/1"), "a");
    cr_assert_eq(bg_reg_service_count(f.reg), 1);
    cr_assert_eq(bg_reg_endpoint_count(f.reg), 1);
    cr_assert_not_null(bg_reg_find_id(f.reg, "a/a1"));
    rfx_close(&f);
}

Test(registry, liveness_on_the_callers_clock)
{
    char err[BG_ERR_LEN] = "";
    rfx f;

    rfx_open(&f, 0);
    rfx_apply(&f, BG_FRAME_ENDPOINTS_UPDATE, "a", "a1", one_ep, 0, err);
    rfx_publish(&f);
    cr_assert_eq(bg_reg_next_expiry(f.reg), 1000);
    cr_assert_eq(bg_reg_expire(f.reg, 999, NULL, NULL), 0);
    cr_assert_eq(bg_reg_expire(f.reg, 1000, NULL, NULL), 1);
    cr_assert_eq(bg_reg_at(f.reg, 0)->up, 0);
    cr_assert(bg_reg_routes_dirty(f.reg));
    rfx_publish(&f);
    bg_rt_match m;
    bg_rt_lookup(f.rt, "GET", "/x/1", 4, &m);
    cr_assert_eq(m.status, BG_RT_NO_LIVE_INSTANCE);
    cr_assert_eq(bg_reg_next_expiry(f.reg), 1500);
    cr_assert_eq(bg_reg_expire(f.reg, 1499, NULL, NULL), 0);
    cr_assert_eq(bg_reg_expire(f.reg, 1500, NULL, NULL), 1);
    cr_assert_eq(bg_reg_count(f.reg), 0);
    cr_assert_eq(bg_reg_next_expiry(f.reg), INT64_MAX);
    rfx_close(&f);
}

Test(registry, heartbeats_alone_are_not_a_routing_change)
{
    char err[BG_ERR_LEN] = "";
    rfx f;

    rfx_open(&f, 0);
    rfx_apply(&f, BG_FRAME_ENDPOINTS_UPDATE, "a", "a1", one_ep, 0, err);
    rfx_publish(&f);
    cr_assert_not(bg_reg_routes_dirty(f.reg));
    rfx_apply(&f, BG_FRAME_HEARTBEAT, "a", "a1", NULL, 10, err);
    cr_assert_not(bg_reg_routes_dirty(f.reg));
    cr_assert(bg_reg_heartbeats_dirty(f.reg));
    cr_assert_eq(bg_reg_next_expiry(f.reg), 1010);
    rfx_close(&f);
}

/* Expiry honours the interval an instance announces (three of them), bounded below by the
 * gateway's heartbeat_expiry and above by BG_REG_EXPIRY_CAP times it. */
static void rfx_heartbeat(rfx *f, const char *inst, int64_t interval_ms, int64_t now)
{
    char err[BG_ERR_LEN] = "";
    bg_reg_conn *conn;
    bg_frame fr;
    int created;

    rfx_frame(&fr, BG_FRAME_HEARTBEAT, "a", inst, NULL);
    fr.interval_ms = interval_ms;
    cr_assert_eq(bg_reg_heartbeat(f->reg, &fr, now, &created, &conn, err), BG_OK, "%s", err);
    bg_frame_free(&fr);
}

Test(registry, expiry_follows_the_announced_interval_within_bounds)
{
    rfx f;

    rfx_open(&f, 0);                        /* heartbeat_expiry 1000 ms */
    rfx_heartbeat(&f, "slow", 600, 0);      /* 3 x 600 = 1800 > 1000 */
    rfx_heartbeat(&f, "fast", 100, 0);      /* 300 < 1000: the gateway's expiry */
    rfx_heartbeat(&f, "lazy", 86400000, 0); /* a day: capped at 10 x 1000 */
    cr_assert_eq(bg_reg_conn_expiry(f.reg, bg_reg_find(f.reg, "a", "slow")), 1800);
    cr_assert_eq(bg_reg_conn_expiry(f.reg, bg_reg_find(f.reg, "a", "fast")), 1000);
    cr_assert_eq(bg_reg_conn_expiry(f.reg, bg_reg_find(f.reg, "a", "lazy")), 10000);
    cr_assert_eq(bg_reg_next_expiry(f.reg), 1000);
    cr_assert_eq(bg_reg_expire(f.reg, 1000, NULL, NULL), 1, "only 'fast' is down");
    cr_assert(bg_reg_find(f.reg, "a", "slow")->up);
    cr_assert_eq(bg_reg_next_expiry(f.reg), 1500, "fast removed at 1000 + 500");
    cr_assert_eq(bg_reg_expire(f.reg, 1799, NULL, NULL), 1, "fast removed, slow still up");
    cr_assert(bg_reg_find(f.reg, "a", "slow")->up);
    cr_assert_eq(bg_reg_expire(f.reg, 1800, NULL, NULL), 1);
    cr_assert_not(bg_reg_find(f.reg, "a", "slow")->up);
    cr_assert(bg_reg_find(f.reg, "a", "lazy")->up);
    cr_assert_eq(bg_reg_expire(f.reg, 9999, NULL, NULL), 1, "slow removed");
    cr_assert_eq(bg_reg_expire(f.reg, 10000, NULL, NULL), 1, "lazy down at the cap");
    rfx_close(&f);
}

Test(registry, capacity_errors_change_nothing)
{
    char err[BG_ERR_LEN] = "", meta[1024];
    rfx f;

    rfx_open(&f, 0);
    /* 9 endpoints, max_endpoints is 8 */
    strcpy(meta, "{\"endpoints\":[");
    for (int i = 0; i < 9; i++)
        snprintf(meta + strlen(meta), sizeof(meta) - strlen(meta),
                 "%s{\"method\":\"GET\",\"path\":\"/e%d\"}", i ? "," : "", i);
    strcat(meta, "]}");
    cr_assert_eq(rfx_apply(&f, BG_FRAME_ENDPOINTS_UPDATE, "a", "a1", meta, 0, err), BG_ERR);
    cr_assert(strstr(err, "max_endpoints is 8") != NULL, "%s", err);
    cr_assert_eq(bg_reg_count(f.reg), 0, "a refused frame registers nothing");
    for (int i = 0; i < 4; i++) {
        char inst[8];
        snprintf(inst, sizeof(inst), "i%d", i);
        cr_assert_eq(rfx_apply(&f, BG_FRAME_HELLO, "a", inst, NULL, 0, err), BG_OK);
    }
    cr_assert_eq(rfx_apply(&f, BG_FRAME_HELLO, "a", "i9", NULL, 0, err), BG_ERR);
    cr_assert(strstr(err, "max_connections") != NULL, "%s", err);
    rfx_close(&f);
}

Test(registry, publish_failure_undoes_the_newest_update)
{
    char err[BG_ERR_LEN] = "", meta[2048], tpl[400];
    rfx f;

    /* little string space: one long template does not fit */
    rfx_open(&f, 700);
    rfx_apply(&f, BG_FRAME_ENDPOINTS_UPDATE, "a", "a1", one_ep, 0, err);
    rfx_publish(&f);
    memset(tpl, 'z', sizeof(tpl));
    tpl[0] = '/';
    tpl[sizeof(tpl) - 1] = '\0';
    snprintf(meta, sizeof(meta),
             "{\"endpoints\":[{\"method\":\"GET\",\"path\":\"/ok\"},"
             "{\"method\":\"GET\",\"path\":\"%s\"},{\"method\":\"PUT\",\"path\":\"%s/b\"}]}",
             tpl, tpl);
    cr_assert_eq(rfx_apply(&f, BG_FRAME_ENDPOINTS_UPDATE, "b", "b1", meta, 0, err), BG_OK, "%s",
                 err);
    rfx_publish(&f);
    cr_assert_eq(f.rejects, 1);
    cr_assert_str_eq(f.reject_id, "b/b1");
    cr_assert_str_eq(rfx_service_of(&f, "GET", "/x/1"), "a", "the rest was published");
    cr_assert_str_eq(rfx_service_of(&f, "GET", "/ok"), "", "nothing of the undone update");
    cr_assert_eq(bg_reg_find_id(f.reg, "b/b1")->nendpoints, 0);
    cr_assert_eq(bg_reg_endpoint_count(f.reg), 1);
    rfx_close(&f);
}
