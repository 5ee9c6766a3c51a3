/* test_gateway_faults.c: the gateway under bus faults: Valkey stopped or killed with REQUEST
 * writes in flight (every request answered once, no worker crashes), and a gateway that has
 * not yet heard from the bus (503 with Retry-After, /readyz 503). */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gw_fixture.h"

#define FAULT_CONNS 16
#define FAULT_PIPELINE 3
#define FAULT_QUITTERS 4

static bgt_fix fix;

static void setup(void)
{
    cr_assert_eq(bgt_fix_start_ex(&fix, NULL, "[valkey]\ncommand_timeout = 500ms\n", 2), 0,
                 "fixture did not start");
}

static void teardown(void)
{
    if (fix.v.pid > 0)
        kill(fix.v.pid, SIGCONT);
    bgt_fix_stop(&fix);
}

TestSuite(gateway_faults, .init = setup, .fini = teardown, .timeout = 90);

/* Sends FAULT_PIPELINE pipelined GETs on each of FAULT_CONNS connections, and one GET on
 * FAULT_QUITTERS connections closed at once (their exchanges are abandoned while their
 * XADD is still unanswered). */
static void send_load(bgt_conn *conns)
{
    char req[256];
    int i, j, n;

    for (i = 0; i < FAULT_CONNS; i++) {
        cr_assert_eq(bgt_conn_open(&conns[i], fix.port), 0);
        for (j = 0; j < FAULT_PIPELINE; j++) {
            n = snprintf(req, sizeof(req), "GET /echo/%d-%d HTTP/1.1\r\nHost: t\r\n\r\n", i, j);
            cr_assert_eq(bgt_conn_send(&conns[i], req, (size_t)n), 0);
        }
    }
    for (i = 0; i < FAULT_QUITTERS; i++) {
        bgt_conn q;
        cr_assert_eq(bgt_conn_open(&q, fix.port), 0);
        n = snprintf(req, sizeof(req), "GET /echo/q%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
        cr_assert_eq(bgt_conn_send(&q, req, (size_t)n), 0);
        bgt_conn_close(&q);
    }
}

/* Every pipelined request gets exactly one answer, 503 with Retry-After (the bus did not
 * take it) or 504 (its deadline came first); never a reset or a hang. */
static void expect_answers(bgt_conn *conns)
{
    char ra[32];
    bgt_resp r;
    int i, j;

    for (i = 0; i < FAULT_CONNS; i++) {
        for (j = 0; j < FAULT_PIPELINE; j++) {
            cr_assert_eq(bgt_conn_read(&conns[i], &r, 0, 20000), 0,
                         "connection %d request %d got no answer", i, j);
            cr_assert(r.status == 503 || r.status == 504, "connection %d request %d: status %d", i,
                      j, r.status);
            if (r.status == 503)
                cr_assert_eq(bgt_resp_header(&r, "Retry-After", ra, sizeof(ra)), 0);
            bgt_resp_free(&r);
        }
        bgt_conn_close(&conns[i]);
    }
}

static void expect_same_workers(const pid_t *before)
{
    pid_t after[8];

    cr_assert_eq(bgt_gw_workers(&fix.g, after, 8), 2);
    cr_assert_eq(memcmp(before, after, sizeof(pid_t) * 2), 0,
                 "a worker died and was respawned (see %s)", fix.g.log);
    cr_assert_eq(bgt_gw_log_count(&fix.g, "exited on signal"), 0);
    cr_assert_eq(bgt_gw_log_count(&fix.g, "killed by"), 0);
}

/* The XADDs time out (command_timeout) while Valkey is stopped: hiredis fails them with a
 * NULL reply and drops the connection. */
Test(gateway_faults, valkey_stopped_with_requests_in_flight)
{
    bgt_conn conns[FAULT_CONNS];
    pid_t before[8];

    cr_assert_eq(bgt_gw_workers(&fix.g, before, 8), 2);
    cr_assert_eq(kill(fix.v.pid, SIGSTOP), 0);
    send_load(conns);
    expect_answers(conns);
    cr_assert_eq(kill(fix.v.pid, SIGCONT), 0);
    cr_assert_eq(bgt_fix_wait_status(&fix, "/echo/after", 200, 20000), 200,
                 "the gateway did not recover after Valkey resumed");
    expect_same_workers(before);
}

/* Valkey dies with the XADDs written and unanswered: the connection resets. */
Test(gateway_faults, valkey_killed_with_requests_in_flight)
{
    bgt_conn conns[FAULT_CONNS];
    pid_t before[8];

    cr_assert_eq(bgt_gw_workers(&fix.g, before, 8), 2);
    cr_assert_eq(kill(fix.v.pid, SIGSTOP), 0);
    send_load(conns);
    bgt_valkey_kill(&fix.v);
    expect_answers(conns);
    cr_assert_eq(bgt_valkey_restart(&fix.v), 0);
    cr_assert_eq(bgt_fix_wait_status(&fix, "/echo/after", 200, 20000), 200,
                 "the gateway did not recover after Valkey came back");
    expect_same_workers(before);
}

/* ---- startup: a gateway that has not heard the fleet yet ---- */

TestSuite(gateway_startup, .timeout = 90);

static void plain_stop(bgt_valkey *v, bgt_gw *g)
{
    bgt_gw_stop(g);
    bgt_valkey_stop(v);
}

/* /readyz of whichever worker answers says "bus":true (the workers reconnect with backoff). */
static int wait_readyz_bus(int port)
{
    long long until = bgt_now_ms() + 20000;
    char out[4096];
    int hits = 0;

    while (bgt_now_ms() < until && hits < 4) {
        bgt_http_get(port, "/readyz", out, sizeof(out), 2000);
        hits = strstr(out, "\"bus\":true") != NULL ? hits + 1 : 0;
        if (hits == 0)
            nanosleep(&(struct timespec){0, 50 * 1000000L}, NULL);
    }
    return hits >= 4 ? 0 : -1;
}

/* Valkey is down when the gateway starts: nothing is known, so an unknown path is "not
 * yet" (503, Retry-After), not "never" (404), and /readyz says not ready, until the bus
 * was heard and the startup resync had its answers. */
Test(gateway_startup, unknown_paths_are_503_until_the_fleet_was_heard)
{
    bgt_valkey v;
    bgt_gw g;
    bgt_gw_opts o = {.workers = 2};
    char out[4096];

    cr_assert_eq(bgt_valkey_start(&v, NULL), 0);
    bgt_valkey_kill(&v);
    o.valkey_url = v.url;
    cr_assert_eq(bgt_gw_init(&g, &o), 0);
    cr_assert_eq(bgt_gw_start(&g), 0);
    cr_assert_eq(bgt_gw_wait_workers(&g, 2, 10000), 2);
    cr_assert_eq(bgt_http_get(g.port, "/nowhere", out, sizeof(out), 5000), 503, "%s", out);
    cr_assert_not_null(strstr(out, "Retry-After: 1"), "%s", out);
    cr_assert_eq(bgt_http_get(g.port, "/readyz", out, sizeof(out), 5000), 503, "%s", out);
    cr_assert_eq(bgt_valkey_restart(&v), 0);
    cr_assert_eq(bgt_wait_http(g.port, "/nowhere", 404, 20000), 0,
                 "unknown paths never became 404 after Valkey came up");
    /* Ready needs a route too (none here): only the bus part of /readyz comes up. */
    cr_assert_eq(wait_readyz_bus(g.port), 0, "the workers' bus never came up");
    cr_assert_eq(bgt_http_get(g.port, "/readyz", out, sizeof(out), 5000), 503, "%s", out);
    plain_stop(&v, &g);
}

/* The master restarts while a service runs: from the first answer on, a served path is
 * 503 (not learned yet) or 200, never 404. */
Test(gateway_faults, master_restart_never_answers_404_for_a_served_path)
{
    char out[4096];
    int st = -1, seen404 = 0;
    long long until;

    cr_assert_eq(bgt_gw_signal(&fix.g, SIGTERM), 0);
    cr_assert_geq(bgt_gw_wait_exit(&fix.g, 15000), 0, "the master did not stop");
    cr_assert_eq(bgt_gw_start(&fix.g), 0);
    until = bgt_now_ms() + 20000;
    while (bgt_now_ms() < until && st != 200) {
        st = bgt_http_get(fix.port, "/echo/1", out, sizeof(out), 2000);
        seen404 += st == 404;
    }
    cr_assert_eq(st, 200, "the echo route never came back (last %d)", st);
    cr_assert_eq(seen404, 0, "a served path answered 404 during the restart");
}

/* kill -9 of the master: its workers answer the request they hold, refuse nothing they
 * accepted, and exit by themselves (no worker serves on without supervision). */
Test(gateway_faults, workers_of_a_killed_master_finish_and_exit)
{
    pid_t workers[BGT_GW_MAX_WORKERS];
    const char req[] = "GET /echo/slow?ms=700 HTTP/1.1\r\nHost: t\r\n\r\n";
    int n = bgt_gw_workers(&fix.g, workers, BGT_GW_MAX_WORKERS), alive = 1;
    char conn_hdr[32];
    long long until;
    bgt_conn c;
    bgt_resp r;

    cr_assert_geq(n, 1);
    cr_assert_eq(bgt_conn_open(&c, fix.port), 0);
    cr_assert_eq(bgt_conn_send(&c, req, sizeof(req) - 1), 0);
    /* Whether a worker has read it yet or it still waits in the backlog, it is answered. */
    cr_assert_eq(kill(fix.g.pid, SIGKILL), 0);
    cr_assert_eq(bgt_gw_wait_exit(&fix.g, 5000), 128 + SIGKILL);
    cr_assert_eq(bgt_conn_read(&c, &r, 0, 10000), 0, "the request in flight got no answer");
    cr_expect_eq(r.status, 200, "%s", r.head);
    cr_expect(bgt_resp_header(&r, "Connection", conn_hdr, sizeof(conn_hdr)) == 0 &&
                  strcmp(conn_hdr, "close") == 0,
              "a worker without master must close after its answer: %s", r.head);
    bgt_resp_free(&r);
    bgt_conn_close(&c);
    until = bgt_now_ms() + 15000; /* drain_timeout is 5 s */
    while (alive && bgt_now_ms() < until) {
        alive = 0;
        for (int i = 0; i < n; i++)
            alive += kill(workers[i], 0) == 0 && bgt_proc_title(workers[i], (char[64]){0}, 64) > 0;
        if (alive)
            usleep(50000);
    }
    cr_expect_eq(alive, 0, "%d worker(s) still run without their master", alive);
    cr_expect_neq(bgt_wait_port(fix.port, 200), 0, "the port still accepts with no master");
}

/* ---- backlog: a service that stops reading ---- */

/* XINFO STREAM's entries-added: every entry ever added, whatever was trimmed since. */
static long long entries_added(const bgt_fix *f)
{
    char out[64];

    cr_assert_eq(bgt_valkey_cmd(&f->v, out, sizeof(out),
                                "EVAL \"local t = redis.call('XINFO', 'STREAM', KEYS[1]) for i = "
                                "1, #t, 2 do if t[i] == 'entries-added' then return t[i + 1] end "
                                "end\" 1 router:requests:{echo}"),
                 0);
    cr_assert_eq(out[0], ':', "%s", out);
    return strtoll(out + 1, NULL, 10);
}

TestSuite(gateway_backlog, .timeout = 90);

/* stream_maxlen 100 and one echo instance whose handlers sleep: 300 requests. Those the
 * stream has room for wait (504 at the deadline); the rest get 503 with Retry-After at
 * once. Nothing accepted is trimmed: every request the gateway accepted is still in the
 * stream or was taken by the service. */
Test(gateway_backlog, full_backlog_is_503_and_nothing_is_trimmed_unread)
{
    bgt_fix f;
    bgt_conn conns[10];
    char req[256], ra[32], out[128];
    int accepted = 0, refused = 0, n;
    long long added0, len, dead;
    bgt_resp r;

    cr_assert_eq(bgt_fix_start_ex(&f, NULL, "[messaging]\nstream_maxlen = 100\n", 1), 0);
    added0 = entries_added(&f);
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(bgt_conn_open(&conns[i], f.port), 0);
        for (int j = 0; j < 30; j++) {
            n = snprintf(req, sizeof(req),
                         "GET /echo/slow?ms=60000&r=%d HTTP/1.1\r\nHost: t\r\n\r\n", i * 30 + j);
            cr_assert_eq(bgt_conn_send(&conns[i], req, (size_t)n), 0);
        }
    }
    for (int i = 0; i < 10; i++) {
        for (int j = 0; j < 30; j++) {
            cr_assert_eq(bgt_conn_read(&conns[i], &r, 0, 20000), 0, "no answer %d/%d", i, j);
            cr_assert(r.status == 503 || r.status == 504, "status %d", r.status);
            if (r.status == 503) {
                cr_assert_eq(bgt_resp_header(&r, "Retry-After", ra, sizeof(ra)), 0);
                refused++;
            } else {
                accepted++;
            }
            bgt_resp_free(&r);
        }
        bgt_conn_close(&conns[i]);
    }
    cr_assert_gt(refused, 0, "the full backlog was never refused");
    cr_assert_gt(accepted, 0);
    cr_assert_eq(entries_added(&f) - added0, accepted, "every accepted request was added once");
    /* Trimming takes only acknowledged entries, and nothing was answered (the handlers
     * sleep): each accepted request is in the stream or, past its deadline, a dead letter. */
    cr_assert_eq(bgt_valkey_cmd(&f.v, out, sizeof(out), "XLEN router:requests:{echo}"), 0);
    len = strtoll(out + 1, NULL, 10);
    cr_assert_eq(bgt_valkey_cmd(&f.v, out, sizeof(out), "XLEN router:requests:{echo}:dead"), 0);
    dead = strtoll(out + 1, NULL, 10);
    cr_assert_geq(len + dead, accepted,
                  "%lld in the stream + %lld dead < %d accepted: trimmed unread", len, dead,
                  accepted);
    bgt_fix_echo_kill(&f, 0, SIGKILL);
    bgt_fix_stop(&f);
}

/* The master is cut off from Valkey (stopped) for three times heartbeat_expiry while the
 * services stay up: when the bus answers again, no instance is marked down and the route
 * never says "no live instance". */
Test(gateway_faults, bus_silence_does_not_expire_live_instances)
{
    char out[4096];
    long long until;
    int st;

    cr_assert_eq(kill(fix.v.pid, SIGSTOP), 0);
    nanosleep(&(struct timespec){3, 0}, NULL);
    cr_assert_eq(kill(fix.v.pid, SIGCONT), 0);
    until = bgt_now_ms() + 3000; /* past the restarted clock: interval + expiry */
    while (bgt_now_ms() < until) {
        st = bgt_http_get(fix.port, "/echo/hb", out, sizeof(out), 3000);
        cr_assert(st != 503 || strstr(out, "no live instance") == NULL,
                  "a live instance was marked down after the bus came back: %s", out);
        nanosleep(&(struct timespec){0, 20 * 1000000L}, NULL);
    }
    cr_assert_eq(bgt_fix_wait_status(&fix, "/echo/hb", 200, 10000), 200);
    cr_assert_eq(bgt_gw_log_count(&fix.g, "marked down"), 0, "see %s", fix.g.log);
}
