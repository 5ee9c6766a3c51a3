/* test_cluster.c: Valkey Cluster, on real parts: three primaries (cluster_harness). The
 * blocking client routes by slot, follows a slot migration (ASK while it runs, MOVED after)
 * and a node restart; the gateway with the echo and orders examples (their slots on
 * different nodes) serves every route, through a migration of echo's slot under load and a
 * restart of the node holding orders. Figures are printed ("cluster ..." lines), never
 * asserted. Skips, saying why, where no cluster can be made. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "busgate/bus/bus.h"
#include "busgate/bus/bus_async.h"
#include "busgate/core/ev.h"
#include "busgate/bus/bus_slot.h"
#include "chaos_load.h"
#include "cluster_harness.h"
#include "gw_fixture.h"
#include "proc_harness.h"

#define CL_CLIENTS 4
#define CL_SECONDS 8
#define CL_HANG_MS 10000 /* request_timeout is 2 s: 10 s without an answer is a hang */
#define CL_SECTIONS                                                                                \
    "[valkey]\ncommand_timeout = 1s\n[messaging]\nlease_duration = 2s\nstream_maxlen = 20000\n"
/* Echo instances under other names, whose slots lie on the other two nodes of a 3-node
 * cluster made by valkey-cli (echo 14438, alpha 865, delta 9053). */
static const char *const cl_services[] = {"alpha", "delta"};

static bgt_cluster cl;
static char url[512];
static bgt_fix fix;
static chaos_load load;
static pid_t named[2];

static void ha_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

static void setup(void)
{
    const char *why = bgt_cluster_unavailable();
    size_t used;

    memset(&cl, 0, sizeof(cl));
    memset(&fix, 0, sizeof(fix));
    memset(&load, 0, sizeof(load));
    memset(named, 0, sizeof(named));
    if (why != NULL)
        cr_skip_test("a cluster cannot run here: %s", why);
    cr_assert_eq(bgt_cluster_start(&cl, 3), 0, "the cluster did not start");
    used = (size_t)snprintf(url, sizeof(url), "valkey+cluster://");
    for (int i = 0; i < cl.n; i++)
        used += (size_t)snprintf(url + used, sizeof(url) - used, "%s127.0.0.1:%d", i ? "," : "",
                                 cl.node[i].port);
}

static void teardown(void)
{
    const char *keep = getenv("HA_KEEP_LOGS");
    char cmd[1024];

    if (keep != NULL && keep[0] == '/' && fix.g.dir[0] != '\0') { /* for a run that went wrong */
        snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && cp -r '%s' '%s/gateway'", keep, fix.g.dir,
                 keep);
        if (system(cmd) != 0)
            fprintf(stderr, "HA_KEEP_LOGS: copying the logs to %s failed\n", keep);
    }
    chaos_load_free(&load);
    for (int i = 0; i < 2; i++)
        if (named[i] > 0)
            bgt_stop_pid(named[i], 5000);
    bgt_fix_stop(&fix);
    bgt_cluster_stop(&cl);
}

static bg_bus *cl_connect(const char *u)
{
    char err[BG_ERR_LEN] = "";
    bg_bus_opts o;
    bg_bus *bus;

    bg_bus_opts_init(&o);
    cr_assert_eq(bg_bus_opts_from_url(&o, u, err), BG_OK, "%s", err);
    o.command_timeout_ms = 1000;
    bus = bg_bus_connect(&o, err);
    cr_assert_not_null(bus, "connect to the cluster: %s", err);
    return bus;
}

/* An admin connection to node i (the test's own, not the client under test). */
static redisContext *cl_admin(int i)
{
    redisContext *c = redisConnect("127.0.0.1", cl.node[i].port);

    cr_assert(c != NULL && c->err == 0, "admin connection to node %d", i);
    return c;
}

static void cl_admin_ok(redisContext *c, const char *what, redisReply *r)
{
    cr_assert_not_null(r, "%s: %s", what, c->errstr);
    cr_assert_neq(r->type, REDIS_REPLY_ERROR, "%s: %s", what, r->str);
    freeReplyObject(r);
}

/* Which node (index into cl.node) serves slot, by asking node 0. */
static int cl_owner(uint16_t slot)
{
    redisContext *c = cl_admin(0);
    redisReply *r = redisCommand(c, "CLUSTER SLOTS");
    char err[BG_ERR_LEN];
    bg_slot_map m;
    const bg_slot_node *n;
    int found = -1;

    cr_assert_eq(bg_slot_map_from_slots(&m, r, "127.0.0.1", err), BG_OK, "%s", err);
    n = bg_slot_map_node(&m, slot);
    for (int i = 0; n != NULL && i < cl.n; i++)
        if (cl.node[i].port == n->port)
            found = i;
    bg_slot_map_free(&m);
    freeReplyObject(r);
    redisFree(c);
    return found;
}

static void cl_node_id(redisContext *c, char id[64])
{
    redisReply *r = redisCommand(c, "CLUSTER MYID");

    cr_assert(r != NULL && r->type == REDIS_REPLY_STRING && r->len < 64);
    memcpy(id, r->str, r->len + 1);
    freeReplyObject(r);
}

/* Moves slot from node `from` to node `to` the way valkey-cli reshard does: IMPORTING on
 * the target, MIGRATING on the source, MIGRATE every key, then SETSLOT NODE everywhere.
 * hold_ms: how long the slot stays half-moved before and after the keys move (clients
 * meet ASK then). */
static void cl_migrate(uint16_t slot, int from, int to, int hold_ms)
{
    redisContext *src = cl_admin(from), *dst = cl_admin(to);
    char src_id[64], dst_id[64];

    cl_node_id(src, src_id);
    cl_node_id(dst, dst_id);
    cl_admin_ok(dst, "IMPORTING",
                redisCommand(dst, "CLUSTER SETSLOT %u IMPORTING %s", (unsigned)slot, src_id));
    cl_admin_ok(src, "MIGRATING",
                redisCommand(src, "CLUSTER SETSLOT %u MIGRATING %s", (unsigned)slot, dst_id));
    ha_sleep_ms(hold_ms);
    for (int round = 0; round < 1000; round++) {
        redisReply *keys = redisCommand(src, "CLUSTER GETKEYSINSLOT %u 100", (unsigned)slot);
        cr_assert(keys != NULL && keys->type == REDIS_REPLY_ARRAY);
        if (keys->elements == 0) {
            freeReplyObject(keys);
            break;
        }
        for (size_t k = 0; k < keys->elements; k++)
            cl_admin_ok(src, "MIGRATE",
                        redisCommand(src, "MIGRATE 127.0.0.1 %d %b 0 5000 REPLACE",
                                     cl.node[to].port, keys->element[k]->str,
                                     keys->element[k]->len));
        freeReplyObject(keys);
    }
    ha_sleep_ms(hold_ms);
    cl_admin_ok(dst, "NODE (target)",
                redisCommand(dst, "CLUSTER SETSLOT %u NODE %s", (unsigned)slot, dst_id));
    cl_admin_ok(src, "NODE (source)",
                redisCommand(src, "CLUSTER SETSLOT %u NODE %s", (unsigned)slot, dst_id));
    for (int i = 0; i < cl.n; i++) {
        if (i == from || i == to)
            continue;
        redisContext *o = cl_admin(i);
        cl_admin_ok(o, "NODE (other)",
                    redisCommand(o, "CLUSTER SETSLOT %u NODE %s", (unsigned)slot, dst_id));
        redisFree(o);
    }
    redisFree(src);
    redisFree(dst);
}

static void cl_expect_str(bg_bus *bus, const char *key, const char *want)
{
    char err[BG_ERR_LEN] = "";
    redisReply *r = bg_bus_command(bus, err, "GET %s", key);

    cr_assert_not_null(r, "GET %s: %s", key, err);
    cr_assert_eq(r->type, REDIS_REPLY_STRING, "GET %s: type %d %s", key, r->type,
                 r->type == REDIS_REPLY_ERROR ? r->str : "");
    cr_assert_str_eq(r->str, want, "GET %s", key);
    freeReplyObject(r);
}

static void cl_set(bg_bus *bus, const char *key, const char *val)
{
    char err[BG_ERR_LEN] = "";
    redisReply *r = bg_bus_command(bus, err, "SET %s %s", key, val);

    cr_assert_not_null(r, "SET %s: %s", key, err);
    cr_assert_eq(r->type, REDIS_REPLY_STATUS, "SET %s: %s", key,
                 r->type == REDIS_REPLY_ERROR ? r->str : "?");
    freeReplyObject(r);
}

TestSuite(cluster, .init = setup, .fini = teardown, .timeout = 120);

Test(cluster, blocking_client_routes_by_slot)
{
    bg_bus *bus = cl_connect(url);
    char key[64], val[64], err[BG_ERR_LEN] = "";
    int seen[BGT_CLUSTER_MAX] = {0};
    redisReply *r;

    cr_assert_eq(bg_bus_is_cluster(bus), 1);
    cr_assert_eq(bg_bus_node_count(bus), 3);
    for (int i = 0; i < 60; i++) { /* keys all over the key space */
        snprintf(key, sizeof(key), "k:%d", i);
        snprintf(val, sizeof(val), "v%d", i);
        cl_set(bus, key, val);
        seen[cl_owner(bg_slot_of(key, strlen(key)))]++;
    }
    for (int i = 0; i < cl.n; i++)
        cr_assert_gt(seen[i], 0, "no key landed on node %d", i);
    for (int i = 0; i < 60; i++) {
        snprintf(key, sizeof(key), "k:%d", i);
        snprintf(val, sizeof(val), "v%d", i);
        cl_expect_str(bus, key, val);
    }
    /* streams: the key after STREAMS, after XGROUP's subcommand, EVAL's first key */
    r = bg_bus_command(bus, err, "XADD router:requests:{orders} * a 1");
    cr_assert(r != NULL && r->type == REDIS_REPLY_STRING, "XADD: %s", err);
    freeReplyObject(r);
    r = bg_bus_command(bus, err, "XGROUP CREATE router:requests:{orders} g 0 MKSTREAM");
    cr_assert(r != NULL && r->type == REDIS_REPLY_STATUS, "XGROUP: %s", err);
    freeReplyObject(r);
    r = bg_bus_command(bus, err,
                       "XREADGROUP GROUP g c COUNT 10 STREAMS router:requests:{orders} >");
    cr_assert(r != NULL && r->type == REDIS_REPLY_ARRAY, "XREADGROUP: %s", err);
    freeReplyObject(r);
    r = bg_bus_command(bus, err, "EVAL %s 1 %s", "return redis.call('XLEN', KEYS[1])",
                       "router:requests:{orders}");
    cr_assert(r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1, "EVAL: %s", err);
    freeReplyObject(r);
    r = bg_bus_command(bus, err, "PING");
    cr_assert(r != NULL && r->type == REDIS_REPLY_STATUS, "PING: %s", err);
    freeReplyObject(r);
    /* a pipeline across nodes: replies come back in order */
    for (int i = 0; i < 30; i++) {
        const char *argv[] = {"GET", key};
        snprintf(key, sizeof(key), "k:%d", i);
        cr_assert_eq(bg_bus_append_argv(bus, 2, argv, NULL, err), BG_OK, "%s", err);
    }
    for (int i = 0; i < 30; i++) {
        cr_assert_eq(bg_bus_get_reply(bus, &r, err), BG_OK, "%s", err);
        snprintf(val, sizeof(val), "v%d", i);
        cr_assert_str_eq(r->str, val);
        freeReplyObject(r);
    }
    /* SCAN per primary sees every key once */
    size_t total = 0;
    for (size_t n = 0; n < bg_bus_node_count(bus); n++) {
        bg_bus *node = bg_bus_node(bus, n, err);
        cr_assert_not_null(node, "%s", err);
        r = bg_bus_command(node, err, "DBSIZE");
        cr_assert(r != NULL && r->type == REDIS_REPLY_INTEGER, "DBSIZE: %s", err);
        total += (size_t)r->integer;
        freeReplyObject(r);
    }
    cr_assert_eq(total, 61, "60 strings and one stream, on all primaries together");
    bg_bus_free(bus);
}

Test(cluster, blocking_client_follows_migration)
{
    bg_bus *bus = cl_connect(url);
    const char *old_key = "{mig}:old", *new_key = "{mig}:new";
    uint16_t slot = bg_slot_of("mig", 3);
    int from = cl_owner(slot), to = (from + 1) % cl.n;
    redisContext *src = cl_admin(from), *dst = cl_admin(to);
    char src_id[64], dst_id[64];
    redisReply *moved;

    cl_set(bus, old_key, "1");
    cl_node_id(src, src_id);
    cl_node_id(dst, dst_id);
    cl_admin_ok(dst, "IMPORTING",
                redisCommand(dst, "CLUSTER SETSLOT %u IMPORTING %s", (unsigned)slot, src_id));
    cl_admin_ok(src, "MIGRATING",
                redisCommand(src, "CLUSTER SETSLOT %u MIGRATING %s", (unsigned)slot, dst_id));
    /* half-moved: the old key is still on the source, a new one goes to the target (ASK) */
    cl_expect_str(bus, old_key, "1");
    cl_set(bus, new_key, "2");
    cl_expect_str(bus, new_key, "2");
    moved = redisCommand(dst, "ASKING");
    freeReplyObject(moved);
    moved = redisCommand(dst, "GET %s", new_key);
    cr_assert(moved != NULL && moved->type == REDIS_REPLY_STRING, "the new key is on the target");
    freeReplyObject(moved);
    cl_admin_ok(src, "MIGRATE",
                redisCommand(src, "MIGRATE 127.0.0.1 %d %s 0 5000", cl.node[to].port, old_key));
    cl_expect_str(bus, old_key, "1"); /* ASK again: the source no longer has it */
    redisFree(src);
    redisFree(dst);
    /* finish the move: MOVED from the source from now on */
    {
        redisContext *c;
        for (int i = 0; i < cl.n; i++) {
            c = cl_admin(i);
            cl_admin_ok(c, "NODE",
                        redisCommand(c, "CLUSTER SETSLOT %u NODE %s", (unsigned)slot, dst_id));
            redisFree(c);
        }
    }
    cl_expect_str(bus, old_key, "1");
    cl_expect_str(bus, new_key, "2");
    cr_assert_eq(cl_owner(slot), to);
    bg_bus_free(bus);
}

Test(cluster, blocking_client_after_node_restart)
{
    bg_bus *bus = cl_connect(url);
    char key[64] = "";
    int victim = -1;
    long long t0, back = -1;

    for (int i = 0; i < 100 && victim < 0; i++) { /* a key on node 1 */
        snprintf(key, sizeof(key), "r:%d", i);
        if (cl_owner(bg_slot_of(key, strlen(key))) == 1)
            victim = 1;
    }
    cr_assert_eq(victim, 1);
    cl_set(bus, key, "x");
    bgt_valkey_kill(&cl.node[1]);
    {
        /* a client started while a primary is down still serves the others' slots */
        char other[64] = "";
        bg_bus *late = cl_connect(url);
        for (int i = 0; i < 100 && other[0] == '\0'; i++) {
            snprintf(other, sizeof(other), "o:%d", i);
            if (cl_owner(bg_slot_of(other, strlen(other))) == 1)
                other[0] = '\0';
        }
        cr_assert_neq(other[0], '\0');
        cl_set(late, other, "y");
        cl_set(bus, other, "z");
        bg_bus_free(late);
    }
    cr_assert_eq(bgt_valkey_restart(&cl.node[1]), 0, "node 1 restarts");
    t0 = bgt_now_ms();
    for (int i = 0; i < 200 && back < 0; i++) { /* 20 s at most */
        char err[BG_ERR_LEN] = "";
        redisReply *r = bg_bus_command(bus, err, "SET %s y", key);
        if (r != NULL && r->type == REDIS_REPLY_STATUS)
            back = bgt_now_ms() - t0;
        if (r != NULL)
            freeReplyObject(r);
        if (back < 0)
            ha_sleep_ms(100);
    }
    printf("cluster blocking client: node restart: SET served again after %lld ms\n", back);
    cr_assert_geq(back, 0, "the restarted node's key is served again");
    bg_bus_free(bus);
}

/* Every node requires a password: the url's credentials reach every node, the blocking
 * and the async client alike; a wrong one is refused with the server's reason. */
Test(cluster, credentials_reach_every_node)
{
    char good[600], bad[600], err[BG_ERR_LEN] = "", key[32];
    bg_bus_opts o;
    bg_bus *bus;

    cr_assert_eq(bgt_cluster_protect(&cl, "s3cret"), 0);
    snprintf(good, sizeof(good), "valkey+cluster://:s3cret@%s", url + strlen("valkey+cluster://"));
    snprintf(bad, sizeof(bad), "valkey+cluster://:wrong@%s", url + strlen("valkey+cluster://"));
    bus = cl_connect(good);
    for (int i = 0; i < 30; i++) {
        snprintf(key, sizeof(key), "p:%d", i);
        cl_set(bus, key, "x");
        cl_expect_str(bus, key, "x");
    }
    bg_bus_free(bus);
    bg_bus_opts_init(&o);
    cr_assert_eq(bg_bus_opts_from_url(&o, bad, err), BG_OK, "%s", err);
    cr_assert_null(bg_bus_connect(&o, err), "a wrong password connects");
    cr_expect(strstr(err, "AUTH") != NULL, "the reason names AUTH: %s", err);
}

/* valkeys+cluster://: TLS to every node with the same tls_* options; the nodes report
 * their TLS ports to a TLS client, and the slot routing is the same. */
Test(cluster, tls_to_every_node)
{
    bgt_tls_certs certs;
    bgt_cluster tc;
    char turl[512], err[BG_ERR_LEN] = "", key[32];
    size_t used;
    bg_bus_opts o;
    bg_bus *bus;

    memset(&certs, 0, sizeof(certs));
    cr_assert_eq(bgt_tls_make_certs(&certs), 0, "test certificates");
    cr_assert_eq(bgt_cluster_start_tls(&tc, 3, &certs), 0, "the TLS cluster did not start");
    used = (size_t)snprintf(turl, sizeof(turl), "valkeys+cluster://");
    for (int i = 0; i < tc.n; i++)
        used += (size_t)snprintf(turl + used, sizeof(turl) - used, "%s127.0.0.1:%d", i ? "," : "",
                                 tc.tls_port[i]);
    bg_bus_opts_init(&o);
    cr_assert_eq(bg_bus_opts_from_url(&o, turl, err), BG_OK, "%s", err);
    o.tls_ca_file = certs.ca_crt;
    bus = bg_bus_connect(&o, err);
    cr_assert_not_null(bus, "TLS connect: %s", err);
    cr_assert_eq(bg_bus_node_count(bus), 3);
    for (int i = 0; i < 30; i++) { /* keys on every node */
        snprintf(key, sizeof(key), "t:%d", i);
        cl_set(bus, key, "x");
        cl_expect_str(bus, key, "x");
    }
    bg_bus_free(bus);
    o.tls_ca_file = certs.other_ca_crt; /* a CA that did not sign them: refused */
    cr_assert_null(bg_bus_connect(&o, err), "an unknown CA was accepted");
    cr_expect(strstr(err, "certificate") != NULL, "the reason names the certificate: %s", err);
    bgt_cluster_stop(&tc);
    bgt_tls_remove_certs(&certs);
}

/* ---- the async client (workers, master) ---- */

typedef struct cl_async {
    bg_ev *loop;
    bg_abus *bus;
    int ups;
    int replies, nulls, errors, ok; /* callbacks seen, by what they carried */
    char last[64];                  /* the last string reply */
} cl_async;

static void cla_on_state(bg_abus *b, int connected, void *arg)
{
    (void)b;
    ((cl_async *)arg)->ups += connected;
}

static void cla_on_reply(bg_abus *b, redisReply *r, void *arg)
{
    cl_async *a = arg;

    (void)b;
    a->replies++;
    a->nulls += r == NULL;
    a->errors += r != NULL && r->type == REDIS_REPLY_ERROR;
    a->ok += r != NULL && r->type != REDIS_REPLY_ERROR;
    if (r != NULL && r->type == REDIS_REPLY_STRING)
        snprintf(a->last, sizeof(a->last), "%s", r->str);
    if (r != NULL && r->type == REDIS_REPLY_ERROR)
        fprintf(stderr, "cluster async: error reply %s\n", r->str);
}

static void cla_run_until(cl_async *a, const int *value, int want, int64_t limit_ms)
{
    long long until = bgt_now_ms() + limit_ms;
    char err[BG_ERR_LEN];

    while (*value < want && bgt_now_ms() < until)
        cr_assert_neq(bg_ev_run_once(a->loop, 20, err), BG_ERR, "%s", err);
    cr_assert_geq(*value, want, "still %d after %lld ms (wanted %d)", *value, (long long)limit_ms,
                  want);
}

static void cla_open(cl_async *a)
{
    char err[BG_ERR_LEN] = "";
    bg_bus_opts o;

    memset(a, 0, sizeof(*a));
    signal(SIGPIPE, SIG_IGN);
    bg_bus_opts_init(&o);
    cr_assert_eq(bg_bus_opts_from_url(&o, url, err), BG_OK, "%s", err);
    a->loop = bg_ev_new(err);
    cr_assert_not_null(a->loop, "%s", err);
    a->bus = bg_abus_new(a->loop, &o, err);
    cr_assert_not_null(a->bus, "%s", err);
    bg_abus_set_state_hook(a->bus, cla_on_state, a);
    cla_run_until(a, &a->ups, cl.n, 10000); /* one connection per primary */
}

/* One command; waits for its callback and expects a non-error reply. */
static void cla_cmd(cl_async *a, const char *what, const char *k, const char *v)
{
    int want = a->replies + 1, ok = a->ok;

    if (v != NULL)
        cr_assert_eq(bg_abus_command(a->bus, cla_on_reply, a, "%s %s %s", what, k, v), BG_OK);
    else
        cr_assert_eq(bg_abus_command(a->bus, cla_on_reply, a, "%s %s", what, k), BG_OK);
    cla_run_until(a, &a->replies, want, 5000);
    cr_assert_eq(a->ok, ok + 1, "%s %s: not answered with success", what, k);
}

Test(cluster, async_client_routes_and_follows_migration)
{
    cl_async a;
    char key[64], err[BG_ERR_LEN];
    uint16_t slot = bg_slot_of("amig", 4);
    int from, to, sent = 0;
    redisContext *src, *dst;
    char src_id[64], dst_id[64];

    cla_open(&a);
    for (int i = 0; i < 300; i++) { /* pipelined over all three nodes */
        snprintf(key, sizeof(key), "a:%d", i);
        cr_assert_eq(bg_abus_command(a.bus, cla_on_reply, &a, "SET %s %d", key, i), BG_OK);
        sent++;
    }
    cla_run_until(&a, &a.replies, sent, 10000);
    cr_assert_eq(a.ok, 300, "%d of 300 SETs succeeded", a.ok);
    cr_assert_eq(bg_abus_inflight(a.bus), 0);

    /* a half-moved slot: ASK for a new key, the old one still on the source */
    cla_cmd(&a, "SET", "{amig}:old", "1");
    from = cl_owner(slot);
    to = (from + 1) % cl.n;
    src = cl_admin(from);
    dst = cl_admin(to);
    cl_node_id(src, src_id);
    cl_node_id(dst, dst_id);
    cl_admin_ok(dst, "IMPORTING",
                redisCommand(dst, "CLUSTER SETSLOT %u IMPORTING %s", (unsigned)slot, src_id));
    cl_admin_ok(src, "MIGRATING",
                redisCommand(src, "CLUSTER SETSLOT %u MIGRATING %s", (unsigned)slot, dst_id));
    cla_cmd(&a, "SET", "{amig}:new", "2");
    cla_cmd(&a, "GET", "{amig}:new", NULL);
    cr_assert_str_eq(a.last, "2");
    cl_admin_ok(src, "MIGRATE",
                redisCommand(src, "MIGRATE 127.0.0.1 %d {amig}:old 0 5000", cl.node[to].port));
    cla_cmd(&a, "GET", "{amig}:old", NULL);
    cr_assert_str_eq(a.last, "1", "ASK: the old key is on the target now");
    for (int i = 0; i < cl.n; i++) {
        redisContext *c = cl_admin(i);
        cl_admin_ok(c, "NODE",
                    redisCommand(c, "CLUSTER SETSLOT %u NODE %s", (unsigned)slot, dst_id));
        redisFree(c);
    }
    redisFree(src);
    redisFree(dst);
    cla_cmd(&a, "GET", "{amig}:old", NULL); /* MOVED */
    cr_assert_str_eq(a.last, "1");
    cla_cmd(&a, "GET", "{amig}:new", NULL);
    cr_assert_str_eq(a.last, "2");
    cr_assert_eq(a.errors, 0, "no redirection reached the caller");

    /* freed with commands in flight: each callback still runs, once, with NULL */
    a.replies = a.nulls = a.ok = 0;
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "a:%d", i);
        cr_assert_eq(bg_abus_command(a.bus, cla_on_reply, &a, "GET %s", key), BG_OK);
    }
    bg_abus_free(a.bus);
    for (int i = 0; i < 10; i++)
        bg_ev_run_once(a.loop, 10, err);
    cr_assert_eq(a.replies, 100, "%d callbacks for 100 commands", a.replies);
    cr_assert_eq(a.nulls + a.ok, 100);
    bg_ev_free(a.loop);
}

/* ---- the gateway and the examples on the cluster ---- */

static void gw_start(void)
{
    char log[400], want[64];

    cr_assert_eq(bgt_fix_start_url(&fix, url, NULL, CL_SECTIONS, 2), 0,
                 "gateway + echo did not start on %s", url);
    for (int i = 0; i < 2; i++) {
        const char *args[] = {"-c", fix.g.ini, "-s", cl_services[i], "-n", "n1", "-w", "2", NULL};
        snprintf(log, sizeof(log), "%s/%s.log", fix.g.dir, cl_services[i]);
        named[i] = bgt_spawn_built("echo-service", args, log);
        cr_assert_gt(named[i], 0);
        snprintf(want, sizeof(want), "registered as %s/n1", cl_services[i]);
        cr_assert_eq(bgt_wait_file(log, want, 15000), 0, "%s did not register", cl_services[i]);
    }
}

static int gw_status(const char *path)
{
    char body[2048];

    return bgt_http_get(fix.port, path, body, sizeof(body), 5000);
}

/* Every route of every service answers 200 (each on a node of its own). */
static void gw_all_routes(void)
{
    char path[64];

    cr_assert_eq(bgt_fix_wait_status(&fix, "/echo/1", 200, 15000), 200, "/echo");
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "/%s/1", cl_services[i]);
        cr_assert_eq(bgt_fix_wait_status(&fix, path, 200, 15000), 200, "%s", path);
    }
}

/* `busgatectl -c INI ARGS` (the ini holds the cluster url); exit status, output in out. */
static int cl_ctl(const char *args, char *out, size_t len)
{
    int rc = bgt_ctl_run(fix.g.ini, args, out, len);

    cr_assert_neq(rc, -1, "busgatectl not built or not started");
    return rc;
}

static void assert_never(const chaos_sum *s)
{
    cr_expect_eq(s->kind[CHAOS_WRONG_BODY], 0, "%ld answers to the wrong request",
                 s->kind[CHAOS_WRONG_BODY]);
    cr_expect_eq(s->kind[CHAOS_EXTRA], 0, "%ld requests answered twice", s->kind[CHAOS_EXTRA]);
    cr_expect_eq(s->kind[CHAOS_HUNG], 0, "%ld requests hung", s->kind[CHAOS_HUNG]);
    cr_assert_gt(s->ok, 0, "nothing was served");
}

Test(cluster, gateway_serves_services_on_every_node, .timeout = 120)
{
    int nodes[3] = {0};

    gw_start();
    gw_all_routes();
    nodes[0] = cl_owner(bg_slot_of("echo", 4));
    nodes[1] = cl_owner(bg_slot_of("alpha", 5));
    nodes[2] = cl_owner(bg_slot_of("delta", 5));
    cr_expect(nodes[0] != nodes[1] && nodes[1] != nodes[2] && nodes[0] != nodes[2],
              "the three services are on three nodes (%d %d %d)", nodes[0], nodes[1], nodes[2]);
    cr_expect_eq(gw_status("/echo/status/404"), 404, "a service's own status passes through");
}

/* busgatectl on the cluster url: queues SCANs every primary (the three request streams are
 * on three nodes), state and gateways read keys wherever they hash. */
Test(cluster, busgatectl_queues_state_gateways, .timeout = 120)
{
    char text[16384];

    gw_start();
    gw_all_routes();
    cr_assert_eq(cl_ctl("queues", text, sizeof(text)), 0, "busgatectl queues: %s", text);
    for (int i = 0; i < 2; i++)
        cr_expect(strstr(text, cl_services[i]) != NULL, "queues lacks %s: %s", cl_services[i],
                  text);
    cr_expect(strstr(text, "echo") != NULL, "queues lacks echo: %s", text);
    for (int i = 0; i < 50; i++) { /* the state document is rewritten every heartbeat */
        cr_assert_eq(cl_ctl("state", text, sizeof(text)), 0, "busgatectl state: %s", text);
        if (strstr(text, "alpha/n1") != NULL && strstr(text, "delta/n1") != NULL)
            break;
        ha_sleep_ms(200);
    }
    cr_expect(strstr(text, "alpha/n1") != NULL && strstr(text, "delta/n1") != NULL,
              "state lacks a service: %s", text);
    cr_assert_eq(cl_ctl("gateways", text, sizeof(text)), 0, "busgatectl gateways: %s", text);
    cr_expect(strstr(text, "gw-test") != NULL, "gateways lacks gw-test: %s", text);
}

/* echo's slot moves to another node under load: while it is half-moved the gateway's
 * XADDs and the SDK's reads meet ASK, after it MOVED. No request may fail. */
Test(cluster, slot_migration_under_load, .timeout = 180)
{
    uint16_t slot = bg_slot_of("echo", 4);
    int from, to;
    int64_t t_start, t_end;
    chaos_sum s;

    gw_start();
    gw_all_routes();
    from = cl_owner(slot);
    to = (from + 1) % cl.n;
    cr_assert_eq(chaos_load_start(&load, fix.port, CL_CLIENTS, CL_SECONDS * 1000, CL_HANG_MS), 0);
    while (chaos_load_now(&load) < 2000)
        ha_sleep_ms(20);
    t_start = chaos_load_now(&load);
    cl_migrate(slot, from, to, 1000);
    t_end = chaos_load_now(&load);
    chaos_load_join(&load);
    chaos_load_sum(&load, 0, INT64_MAX, &s);
    chaos_sum_print("cluster migration", &s);
    printf("cluster migration: slot %u of echo from node %d to %d between %lld and %lld ms: "
           "sent %ld, ok %ld, failed %ld\n",
           (unsigned)slot, from, to, (long long)t_start, (long long)t_end, s.total, s.ok,
           s.total - s.ok);
    printf("cluster migration: the gateway's log: %d ASK and %d MOVED notices\n",
           bgt_gw_log_count(&fix.g, "migrating: ASK"), bgt_gw_log_count(&fix.g, "MOVED to"));
    assert_never(&s);
    cr_expect_eq(s.total - s.ok, 0, "%ld requests failed across the migration", s.total - s.ok);
    cr_expect_gt(bgt_gw_log_count(&fix.g, "MOVED to"), 0, "the gateway never met MOVED");
    cr_assert_eq(cl_owner(slot), to);
    gw_all_routes();
}

/* The node holding alpha restarts (empty: no persistence): echo, elsewhere, keeps serving
 * (unless a reply stream of the gateway lived there too); alpha serves again once the node
 * is back and the service has re-created its group. */
Test(cluster, node_restart, .timeout = 180)
{
    int victim, echo_node;
    int64_t t_kill, t_back, first_end, first;
    long long t0, alpha_back = -1;
    chaos_sum during;

    gw_start();
    gw_all_routes();
    victim = cl_owner(bg_slot_of("alpha", 5));
    echo_node = cl_owner(bg_slot_of("echo", 4));
    cr_assert_neq(victim, echo_node);
    cr_assert_eq(chaos_load_start(&load, fix.port, CL_CLIENTS, CL_SECONDS * 1000, CL_HANG_MS), 0);
    while (chaos_load_now(&load) < 2000)
        ha_sleep_ms(20);
    t_kill = chaos_load_now(&load);
    bgt_valkey_kill(&cl.node[victim]);
    ha_sleep_ms(1000);
    cr_assert_eq(bgt_valkey_restart(&cl.node[victim]), 0, "node %d restarts", victim);
    t_back = chaos_load_now(&load);
    t0 = bgt_now_ms();
    for (int i = 0; i < 300 && alpha_back < 0; i++) { /* 30 s at most */
        if (gw_status("/alpha/1") == 200)
            alpha_back = bgt_now_ms() - t0;
        else
            ha_sleep_ms(100);
    }
    chaos_load_join(&load);
    chaos_load_sum(&load, t_kill, t_back, &during);
    chaos_sum_print("cluster restart (node down)", &during);
    first = chaos_load_first_ok_after(&load, t_back, &first_end);
    printf("cluster node restart: node %d down %lld ms; /echo (node %d) while it was down: "
           "sent %ld, ok %ld; /alpha served again %lld ms after the restart; first /echo 200 "
           "after it %lld ms\n",
           victim, (long long)(t_back - t_kill), echo_node, during.total, during.ok, alpha_back,
           first >= 0 ? (long long)(first_end - t_back) : -1LL);
    chaos_load_sum(&load, 0, INT64_MAX, &during);
    assert_never(&during);
    cr_expect_geq(alpha_back, 0, "/alpha never served again after its node restarted");
    gw_all_routes();
}
