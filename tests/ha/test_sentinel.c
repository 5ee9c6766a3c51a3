/* test_sentinel.c: Valkey Sentinel, on real parts: a primary, a replica and three sentinels
 * (sentinel_harness). The blocking client finds the primary, follows a failover and a
 * manual switch; the gateway and the echo example on the Sentinel URL keep answering
 * under load while the primary is SIGKILLed or switched, with every request accounted
 * for (chaos_load). Skips, saying why, where no sentinel binary exists. The failover
 * figures are printed ("sentinel ..." lines), never asserted. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "busgate/bus/bus.h"
#include "busgate/bus/bus_async.h"
#include "busgate/core/ev.h"
#include "chaos_load.h"
#include "gw_fixture.h"
#include "sentinel_harness.h"

#define HA_CLIENTS 16
/* Long enough that even a failover whose first election split (the sentinels retry after
 * twice failover-timeout) leaves seconds of load after the switch. */
#define HA_SECONDS 15
#define HA_HANG_MS 10000 /* request_timeout is 2 s: 10 s without an answer is a hang */
#define HA_FAULT_MS 3000 /* load time at which the primary is killed or switched */
/* Leases short enough that what was pending at the switch is reclaimed within the run. */
#define HA_SECTIONS                                                                                \
    "[valkey]\ncommand_timeout = 1s\n[messaging]\nlease_duration = 2s\nstream_maxlen = 20000\n"

static bgt_sentinels set;
static bgt_fix fix;
static chaos_load load;

static void ha_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

static void setup(void)
{
    const char *why = bgt_sentinel_unavailable();

    memset(&set, 0, sizeof(set));
    memset(&fix, 0, sizeof(fix));
    memset(&load, 0, sizeof(load));
    if (why != NULL)
        cr_skip_test("sentinel cannot run here: %s", why);
    cr_assert_eq(bgt_sentinels_start(&set), 0, "the sentinel set did not start");
}

static void teardown(void)
{
    chaos_load_free(&load);
    bgt_fix_stop(&fix);
    bgt_sentinels_stop(&set);
}

static bg_bus *ha_connect(void)
{
    char err[BG_ERR_LEN] = "";
    bg_bus_opts o;
    bg_bus *bus;

    bg_bus_opts_init(&o);
    cr_assert_eq(bg_bus_opts_from_url(&o, set.url, err), BG_OK, "%s", err);
    o.command_timeout_ms = 1000;
    bus = bg_bus_connect(&o, err);
    cr_assert_not_null(bus, "connect through the sentinels: %s", err);
    return bus;
}

/* SET until the bus answers +OK (each try may reconnect once); the time it took, or -1. */
static long long ha_set_until_ok(bg_bus *bus, const char *key, const char *val, int timeout_ms)
{
    long long t0 = bgt_now_ms();
    char err[BG_ERR_LEN];

    while (bgt_now_ms() - t0 < timeout_ms) {
        redisReply *r = bg_bus_command(bus, err, "SET %s %s", key, val);
        int ok = r != NULL && r->type == REDIS_REPLY_STATUS;
        if (r != NULL)
            freeReplyObject(r);
        if (ok)
            return bgt_now_ms() - t0;
        ha_sleep_ms(20);
    }
    return -1;
}

static void assert_where_is(bg_bus *bus, int port)
{
    char want[32];

    snprintf(want, sizeof(want), "127.0.0.1:%d", port);
    cr_assert_str_eq(bg_bus_where(bus), want, "connected to %s, the primary is %s",
                     bg_bus_where(bus), want);
}

TestSuite(sentinel, .init = setup, .fini = teardown, .timeout = 120);

Test(sentinel, blocking_client_finds_the_primary)
{
    bg_bus *bus = ha_connect();
    char err[BG_ERR_LEN];
    redisReply *r;

    assert_where_is(bus, set.node[0].port);
    r = bg_bus_command(bus, err, "ROLE");
    cr_assert_not_null(r, "%s", err);
    cr_assert_str_eq(r->element[0]->str, "master");
    freeReplyObject(r);
    bg_bus_free(bus);
}

Test(sentinel, no_sentinel_answers_names_each)
{
    char err[BG_ERR_LEN] = "", url[128];
    bg_bus_opts o;
    int p1 = bgt_free_port(), p2 = bgt_free_port();

    snprintf(url, sizeof(url), "valkey+sentinel://127.0.0.1:%d,127.0.0.1:%d/%s", p1, p2,
             BGT_SENTINEL_MASTER);
    bg_bus_opts_init(&o);
    cr_assert_eq(bg_bus_opts_from_url(&o, url, err), BG_OK, "%s", err);
    cr_assert_null(bg_bus_connect(&o, err));
    cr_assert(strstr(err, "sentinel 127.0.0.1:") != NULL && strstr(err, "; ") != NULL,
              "every sentinel's reason: %s", err);
}

Test(sentinel, unknown_master_name_is_reported)
{
    char err[BG_ERR_LEN] = "", url[128];
    bg_bus_opts o;

    snprintf(url, sizeof(url), "valkey+sentinel://127.0.0.1:%d/othermaster", set.port[0]);
    bg_bus_opts_init(&o);
    cr_assert_eq(bg_bus_opts_from_url(&o, url, err), BG_OK, "%s", err);
    cr_assert_null(bg_bus_connect(&o, err));
    cr_assert(strstr(err, "does not monitor a master named 'othermaster'") != NULL, "%s", err);
}

/* The primary dies: the next commands fail until the sentinels promote the replica, then
 * the reconnect asks them again and lands on the new primary, with the data replicated. */
Test(sentinel, blocking_client_follows_a_kill9_failover)
{
    bg_bus *bus = ha_connect();
    long long t0, switch_ms, took;

    cr_assert_geq(ha_set_until_ok(bus, "ha:k", "before", 1000), 0);
    cr_assert_eq(bgt_valkey_cmd(&set.node[0], (char[64]){0}, 64, "WAIT 1 1000"), 0);
    t0 = bgt_now_ms();
    bgt_valkey_kill(&set.node[0]);
    cr_assert_eq(bgt_sentinels_wait_primary(&set, set.node[1].port, 30000), 0,
                 "the sentinels did not promote the replica");
    switch_ms = bgt_now_ms() - t0;
    took = ha_set_until_ok(bus, "ha:k2", "after", 10000);
    cr_assert_geq(took, 0, "no command succeeded after the failover");
    printf("sentinel blocking kill9: switch %lld ms after the kill, first write %lld ms after "
           "the switch\n",
           switch_ms, took);
    assert_where_is(bus, set.node[1].port);
    bg_bus_free(bus);
}

/* The old primary keeps taking writes until the sentinels demote it, seconds after the
 * switch: the client must move on its own (it asks the sentinels every second). */
Test(sentinel, blocking_client_follows_a_manual_failover)
{
    bg_bus *bus = ha_connect();
    char want[32];
    long long t0, switch_at, moved_at = -1;

    cr_assert_geq(ha_set_until_ok(bus, "ha:k", "v", 1000), 0);
    t0 = bgt_now_ms();
    cr_assert_eq(bgt_sentinels_failover(&set), 0);
    cr_assert_eq(bgt_sentinels_wait_primary(&set, set.node[1].port, 30000), 0);
    switch_at = bgt_now_ms();
    snprintf(want, sizeof(want), "127.0.0.1:%d", set.node[1].port);
    while (bgt_now_ms() - switch_at < 5000 && moved_at < 0) {
        cr_assert_geq(ha_set_until_ok(bus, "ha:k", "w", 5000), 0, "no write succeeded");
        if (strcmp(bg_bus_where(bus), want) == 0)
            moved_at = bgt_now_ms();
        ha_sleep_ms(10);
    }
    printf("sentinel blocking manual: switch %lld ms after SENTINEL FAILOVER, client on the new "
           "primary %lld ms after the switch\n",
           switch_at - t0, moved_at - switch_at);
    assert_where_is(bus, set.node[1].port);
    bg_bus_free(bus);
}

static bg_bus *ha_connect_url(const char *url, char *err)
{
    bg_bus_opts o;

    bg_bus_opts_init(&o);
    cr_assert_eq(bg_bus_opts_from_url(&o, url, err), BG_OK, "%s", err);
    o.command_timeout_ms = 1000;
    return bg_bus_connect(&o, err);
}

/* Passwords on both sides: the url's userinfo for the data nodes, sentinel_password= for
 * the sentinels; each wrong or missing one is named; a failover is followed with them. */
Test(sentinel, credentials_for_sentinels_and_data_nodes)
{
    char err[BG_ERR_LEN] = "", url[512], hosts[128];
    bg_bus *bus;

    bgt_sentinels_stop(&set);
    cr_assert_eq(bgt_sentinels_start_auth(&set, "dataPW1", "sentPW2"), 0,
                 "the sentinel set with passwords did not start");
    snprintf(hosts, sizeof(hosts), "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", set.port[0],
             set.port[1], set.port[2]);
    snprintf(url, sizeof(url), "valkey+sentinel://%s/%s?sentinel_password=wrong", hosts,
             BGT_SENTINEL_MASTER);
    cr_assert_null(ha_connect_url(url, err));
    cr_assert(strstr(err, "AUTH") != NULL, "a wrong sentinel password is named: %s", err);
    snprintf(url, sizeof(url), "valkey+sentinel://%s/%s?sentinel_password=sentPW2", hosts,
             BGT_SENTINEL_MASTER);
    cr_assert_null(ha_connect_url(url, err));
    cr_assert(strstr(err, "NOAUTH") != NULL || strstr(err, "uthentication") != NULL,
              "the data node's refusal is named: %s", err);
    snprintf(url, sizeof(url), "valkey+sentinel://:dataPW1@%s/%s?sentinel_password=sentPW2", hosts,
             BGT_SENTINEL_MASTER);
    bus = ha_connect_url(url, err);
    cr_assert_not_null(bus, "%s", err);
    assert_where_is(bus, set.node[0].port);
    bgt_valkey_kill(&set.node[0]);
    cr_assert_eq(bgt_sentinels_wait_primary(&set, set.node[1].port, 30000), 0,
                 "the sentinels did not promote the replica");
    cr_assert_geq(ha_set_until_ok(bus, "ha:auth", "v", 10000), 0, "no write after the failover");
    assert_where_is(bus, set.node[1].port);
    bg_bus_free(bus);
}

/* valkeys+sentinel://: TLS to the sentinels and to the primary they name (by IP: the test
 * certificate carries IP:127.0.0.1), verified against the CA, across a failover. */
Test(sentinel, tls_to_sentinels_and_data_nodes)
{
    char err[BG_ERR_LEN] = "";
    bgt_tls_certs certs;
    bg_bus_opts o;
    bg_bus *bus;

    cr_assert_eq(bgt_tls_make_certs(&certs), 0, "openssl could not make test certificates");
    bgt_sentinels_stop(&set);
    if (bgt_sentinels_start_tls(&set, &certs) != 0) {
        bgt_tls_remove_certs(&certs);
        cr_assert_fail("the TLS sentinel set did not start");
    }
    bg_bus_opts_init(&o);
    cr_assert_eq(bg_bus_opts_from_url(&o, set.url, err), BG_OK, "%s", err);
    o.command_timeout_ms = 1000;
    o.tls_ca_file = certs.other_ca_crt;
    cr_assert_null(bg_bus_connect(&o, err), "an unrelated CA must not verify");
    cr_assert(strstr(err, "certificate verify failed") != NULL, "%s", err);
    o.tls_ca_file = certs.ca_crt;
    bus = bg_bus_connect(&o, err);
    cr_assert_not_null(bus, "%s", err);
    assert_where_is(bus, set.node_tls_port[0]);
    bgt_valkey_kill(&set.node[0]);
    cr_assert_eq(bgt_sentinels_wait_primary(&set, set.node_tls_port[1], 30000), 0,
                 "the sentinels did not promote the replica");
    cr_assert_geq(ha_set_until_ok(bus, "ha:tls", "v", 10000), 0, "no write after the failover");
    assert_where_is(bus, set.node_tls_port[1]);
    bg_bus_free(bus);
    bgt_sentinels_stop(&set);
    bgt_tls_remove_certs(&certs);
}

/* ---- the async client (workers, master) ---- */

typedef struct ha_async {
    bg_ev *loop;
    bg_abus *bus;
    int ups, downs, port; /* port: the server's answer to CONFIG GET port, 0 until it comes */
    int errors;           /* error replies seen by ha_on_reply */
} ha_async;

static void ha_on_state(bg_abus *b, int connected, void *arg)
{
    (void)b;
    ((ha_async *)arg)->ups += connected;
    ((ha_async *)arg)->downs += !connected;
}

static void ha_on_reply(bg_abus *b, redisReply *r, void *arg)
{
    (void)b;
    ((ha_async *)arg)->errors += r != NULL && r->type == REDIS_REPLY_ERROR;
}

static void ha_on_port(bg_abus *b, redisReply *r, void *arg)
{
    (void)b;
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2)
        ((ha_async *)arg)->port = atoi(r->element[1]->str);
}

static void ha_run_until(ha_async *a, const int *value, int want, int64_t limit_ms)
{
    long long until = bgt_now_ms() + limit_ms;
    char err[BG_ERR_LEN];

    while (*value < want && bgt_now_ms() < until)
        cr_assert_neq(bg_ev_run_once(a->loop, 20, err), BG_ERR, "%s", err);
    cr_assert_geq(*value, want, "still %d after %lld ms (wanted %d)", *value, (long long)limit_ms,
                  want);
}

/* The port of the server the async client is connected to. */
static int ha_async_port(ha_async *a)
{
    a->port = 0;
    cr_assert_eq(bg_abus_command(a->bus, ha_on_port, a, "CONFIG GET port"), BG_OK);
    ha_run_until(a, &a->port, 1, 5000);
    return a->port;
}

static void ha_async_open(ha_async *a)
{
    char err[BG_ERR_LEN] = "";
    bg_bus_opts o;

    signal(SIGPIPE, SIG_IGN);
    bg_bus_opts_init(&o);
    cr_assert_eq(bg_bus_opts_from_url(&o, set.url, err), BG_OK, "%s", err);
    a->loop = bg_ev_new(err);
    cr_assert_not_null(a->loop, "%s", err);
    a->bus = bg_abus_new(a->loop, &o, err);
    cr_assert_not_null(a->bus, "%s", err);
    bg_abus_set_state_hook(a->bus, ha_on_state, a);
    ha_run_until(a, &a->ups, 1, 10000);
}

static void ha_async_close(ha_async *a)
{
    char err[BG_ERR_LEN];

    bg_abus_free(a->bus);
    bg_ev_run_once(a->loop, 0, err);
    bg_ev_free(a->loop);
}

/* The server the client is on turns into a replica behind the sentinels' back: the
 * READONLY answer reaches the caller, and the connection is dropped at once so that the
 * next one asks the sentinels again (which still name it: ROLE then refuses it). */
Test(sentinel, async_client_drops_on_readonly)
{
    ha_async a = {0};
    bgt_valkey other;
    char out[64];

    ha_async_open(&a);
    cr_assert_eq(bgt_valkey_start(&other, NULL), 0, "a third valkey-server did not start");
    cr_assert_eq(
        bgt_valkey_cmd(&set.node[0], out, sizeof(out), "REPLICAOF 127.0.0.1 %d", other.port), 0);
    cr_assert_eq(bg_abus_command(a.bus, ha_on_reply, &a, "SET ha:ro v"), BG_OK);
    ha_run_until(&a, &a.downs, 1, 5000);
    cr_assert_eq(a.errors, 1, "the READONLY reply reached the caller");
    /* The immediate retry may already have met ROLE's refusal. */
    cr_assert(strstr(bg_abus_last_error(a.bus), "READONLY") != NULL ||
                  strstr(bg_abus_last_error(a.bus), "not the primary") != NULL,
              "%s", bg_abus_last_error(a.bus));
    bgt_valkey_cmd(&set.node[0], out, sizeof(out), "REPLICAOF NO ONE");
    ha_run_until(&a, &a.ups, 2, 10000);
    ha_async_close(&a);
    bgt_valkey_stop(&other);
}

/* A manual failover leaves the old primary taking writes until it is demoted: the async
 * client must notice the move by itself (the once-a-second check) and reconnect there. */
Test(sentinel, async_client_follows_a_manual_failover)
{
    ha_async a = {0};
    long long switched;

    ha_async_open(&a);
    cr_assert_eq(ha_async_port(&a), set.node[0].port);
    cr_assert_eq(bgt_sentinels_failover(&set), 0);
    cr_assert_eq(bgt_sentinels_wait_primary(&set, set.node[1].port, 30000), 0);
    switched = bgt_now_ms();
    ha_run_until(&a, &a.ups, 2, 5000);
    printf("sentinel async manual: reconnected %lld ms after the switch\n",
           bgt_now_ms() - switched);
    cr_assert_eq(ha_async_port(&a), set.node[1].port);
    ha_async_close(&a);
}

/* ---- the gateway and the echo example on the Sentinel URL, under load ---- */

static int is_bus_down_answer(const chaos_rec *rec)
{
    return rec->kind == CHAOS_ANSWERED &&
           ((rec->status == 503 && rec->retry_after) || rec->status == 504);
}

static long count_failed_unless(int (*pred)(const chaos_rec *))
{
    long bad = 0;

    for (int i = 0; i < load.nclients; i++)
        for (size_t j = 0; j < load.clients[i].nrecs; j++) {
            const chaos_rec *rec = &load.clients[i].recs[j];
            bad += chaos_rec_failed(rec) && !pred(rec);
        }
    return bad;
}

/* The start of the last failed request, relative to from_ms (or -1 when none failed after it):
 * says when the gateway was whole again, where the first good 200 only says it began to be. */
static int64_t last_failure_after(int64_t from_ms)
{
    int64_t last = -1;

    for (int i = 0; i < load.nclients; i++)
        for (size_t j = 0; j < load.clients[i].nrecs; j++) {
            const chaos_rec *rec = &load.clients[i].recs[j];
            if (chaos_rec_failed(rec) && rec->start_ms >= from_ms && rec->start_ms - from_ms > last)
                last = rec->start_ms - from_ms;
        }
    return last;
}

/* `busgatectl -c INI ARGS` (it reads the Sentinel url from the ini); its exit status, and
 * its output in out. */
static int ha_ctl(const char *args, char *out, size_t len)
{
    int rc = bgt_ctl_run(fix.g.ini, args, out, len);

    cr_assert_neq(rc, -1, "busgatectl not built or not started");
    return rc;
}

static void assert_never(const chaos_sum *s)
{
    cr_expect_eq(s->kind[CHAOS_WRONG_BODY], 0, "%ld answers with another request's body",
                 s->kind[CHAOS_WRONG_BODY]);
    cr_expect_eq(s->kind[CHAOS_EXTRA], 0, "%ld requests answered twice", s->kind[CHAOS_EXTRA]);
    cr_expect_eq(s->kind[CHAOS_HUNG], 0, "%ld requests hung", s->kind[CHAOS_HUNG]);
    cr_expect_eq(s->kind[CHAOS_BAD_HTTP], 0, "%ld garbled answers", s->kind[CHAOS_BAD_HTTP]);
    cr_expect_eq(s->s404, 0, "%ld answers of 404 for a served route", s->s404);
    cr_assert_gt(s->ok, 0, "nothing was served");
}

static void gw_start(void)
{
    cr_assert_eq(bgt_fix_start_url(&fix, set.url, NULL, HA_SECTIONS, 2), 0,
                 "gateway + echo did not start on %s", set.url);
    cr_assert_eq(chaos_load_start(&load, fix.port, HA_CLIENTS, HA_SECONDS * 1000, HA_HANG_MS), 0);
    while (chaos_load_now(&load) < HA_FAULT_MS)
        ha_sleep_ms(20);
}

/* Waits for the sentinels to name node[1]; the load time when they all did. */
static int64_t gw_wait_switch(void)
{
    cr_assert_eq(bgt_sentinels_wait_primary(&set, set.node[1].port, 30000), 0,
                 "the sentinels did not promote the replica");
    return chaos_load_now(&load);
}

/* HA_KEEP_LOGS=DIR copies the gateway's, the echo instances' and the sentinels' logs
 * there before the teardown removes them (for a failover that went wrong). */
static void keep_logs(void)
{
    const char *dir = getenv("HA_KEEP_LOGS");
    char cmd[1024];

    if (dir == NULL || dir[0] != '/')
        return;
    snprintf(cmd, sizeof(cmd),
             "mkdir -p '%s' && cp -r '%s' '%s/gateway' && cp -r '%s' '%s/sentinels'", dir,
             fix.g.dir, dir, set.dir, dir);
    if (system(cmd) != 0)
        fprintf(stderr, "HA_KEEP_LOGS: copying the logs to %s failed\n", dir);
}

static void gw_finish(const char *name, int64_t fault_ms, int64_t switch_ms)
{
    int64_t first_end, first;
    chaos_sum s;

    chaos_load_join(&load);
    keep_logs();
    chaos_load_sum(&load, 0, INT64_MAX, &s);
    chaos_sum_print(name, &s);
    first = chaos_load_first_ok_after(&load, switch_ms, &first_end);
    printf("sentinel %-8s fault at %lld ms, sentinels switched %lld ms later; first good 200 "
           "started after the switch ended %lld ms after it; last failed request started %lld ms "
           "after it\n",
           name, (long long)fault_ms, (long long)(switch_ms - fault_ms),
           (long long)(first_end - switch_ms), (long long)last_failure_after(switch_ms));
    assert_never(&s);
    if (switch_ms < HA_SECONDS * 1000 - 2000)
        cr_expect_geq(first, 0, "no request succeeded after the switch");
    else
        printf("sentinel %-8s the switch came too late in the run to measure the first 200\n",
               name);
    cr_expect_eq(count_failed_unless(is_bus_down_answer), 0,
                 "a failure other than 503 Retry-After / 504 across the failover");
    cr_expect_eq(bgt_fix_wait_status(&fix, "/echo", 200, 15000), 200, "/echo never 200 again");
    cr_expect_eq(bgt_fix_wait_status(&fix, "/readyz", 200, 15000), 200, "/readyz never 200");
}

Test(sentinel, gateway_survives_primary_kill9, .timeout = 180)
{
    int64_t fault_ms, switch_ms;

    gw_start();
    fault_ms = chaos_load_now(&load);
    bgt_valkey_kill(&set.node[0]);
    switch_ms = gw_wait_switch();
    gw_finish("kill9", fault_ms, switch_ms);
}

Test(sentinel, gateway_survives_manual_failover, .timeout = 180)
{
    int64_t fault_ms, switch_ms;
    chaos_sum s;

    gw_start();
    fault_ms = chaos_load_now(&load);
    cr_assert_eq(bgt_sentinels_failover(&set), 0);
    switch_ms = gw_wait_switch();
    gw_finish("manual", fault_ms, switch_ms);
    /* Each client has one request at a time, and a lost one holds it for the 2 s deadline,
     * longer than the workers take to notice the move: at most one 504 per client, the
     * request it had on the bus at the switch. 503s are the few new requests that met a
     * worker reconnecting (a millisecond or two). */
    chaos_load_sum(&load, 0, INT64_MAX, &s);
    cr_expect_leq(s.s504, HA_CLIENTS, "%ld requests timed out, more than were in flight", s.s504);
}

/* A promoted replica that lacks the streams and groups the gateway and the services
 * created (asynchronous replication loses the last writes; here, deterministically, the
 * replica is flushed locally right after the primary died, before its promotion). The
 * NOGROUP handling re-creates them on the new primary, the master resyncs and the services
 * re-announce: /echo answers 200 again by itself. */
Test(sentinel, groups_missing_on_the_promoted_replica_are_recreated, .timeout = 180)
{
    long long t0, switched, served;
    char out[64], text[8192];

    cr_assert_eq(bgt_fix_start_url(&fix, set.url, NULL, HA_SECTIONS, 2), 0,
                 "gateway + echo did not start on %s", set.url);
    bgt_valkey_kill(&set.node[0]);
    t0 = bgt_now_ms();
    cr_assert_eq(bgt_valkey_cmd(&set.node[1], out, sizeof(out), "CONFIG SET replica-read-only no"),
                 0);
    cr_assert_eq(bgt_valkey_cmd(&set.node[1], out, sizeof(out), "FLUSHALL"), 0);
    cr_assert_str_eq(out, "+OK", "FLUSHALL on the replica");
    cr_assert_eq(bgt_sentinels_wait_primary(&set, set.node[1].port, 30000), 0,
                 "the sentinels did not promote the replica");
    switched = bgt_now_ms();
    cr_assert_eq(bgt_fix_wait_status(&fix, "/echo", 200, 30000), 200, "/echo never 200 again");
    served = bgt_now_ms();
    printf("sentinel empty-replica: switch %lld ms after the kill; /echo 200 again %lld ms after "
           "the switch\n",
           switched - t0, served - switched);
    cr_expect_eq(bgt_fix_wait_status(&fix, "/readyz", 200, 15000), 200, "/readyz never 200");
    /* /echo may answer before the master's control read met NOGROUP: the request path
     * does not need the control stream. Bounded wait for the re-creation. */
    for (long long until = bgt_now_ms() + 15000;; usleep(50 * 1000)) {
        cr_assert_eq(bgt_valkey_cmd(&set.node[1], out, sizeof(out), "EXISTS router:control"), 0);
        if (strcmp(out, ":1") == 0 || bgt_now_ms() >= until)
            break;
    }
    cr_expect_str_eq(out, ":1", "the control stream was not re-created within 15 s");
    /* busgatectl finds the new primary through the same url. */
    cr_expect_eq(ha_ctl("queues", text, sizeof(text)), 0, "busgatectl queues: %s", text);
    cr_expect(strstr(text, "echo") != NULL, "busgatectl queues lists no echo: %s", text);
}
