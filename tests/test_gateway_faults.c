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
