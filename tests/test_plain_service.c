/* test_plain_service.c: a service written from docs/protocol.md alone (tests/plain_service.py:
 * redis-py and plain Valkey commands, no SDK) through registration, requests, HEAD, CANCEL,
 * the announced heartbeat interval and GOODBYE, against a real busgated and valkey-server. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gw_fixture.h"

/* The service announces 600 ms; the fixture's gateway expiry is 1 s: its expiry is 1.8 s. */
#define PLAIN_INTERVAL_MS "600"
#define PLAIN_EXPIRY_MS 1800

static bgt_fix fix;
static pid_t plain_pid;
static char plain_log[512];

/* redis-py comes from Debian's python3-redis (scripts/setup-deps.sh installs it); a machine
 * without it skips, saying why, instead of failing for want of a test tool. */
static int plain_python_ready(void)
{
    return system("/usr/bin/python3 -c 'import redis' >/dev/null 2>&1") == 0;
}

static void plain_start(void)
{
    char port[16];
    const char *args[] = {"--port",          port, "--instance", "p1", "--interval-ms",
                          PLAIN_INTERVAL_MS, NULL};

    snprintf(port, sizeof(port), "%d", fix.v.port);
    snprintf(plain_log, sizeof(plain_log), "%s/plain.log", fix.v.dir);
    plain_pid = bgt_spawn_built("tests/plain_service.py", args, plain_log);
    cr_assert_gt(plain_pid, 0, "tests/plain_service.py not found or not started");
    cr_assert_eq(bgt_wait_file(plain_log, "hello service=plain", 10000), 0, "no HELLO");
}

static void setup(void)
{
    if (!plain_python_ready())
        return;
    /* One echo instance: /readyz wants a routed service before the fixture returns. */
    cr_assert_eq(bgt_fix_start(&fix, NULL, 1), 0, "fixture did not start");
    plain_start();
}

static void teardown(void)
{
    if (plain_pid > 0)
        bgt_stop_pid(plain_pid, 5000);
    plain_pid = 0;
    if (fix.v.pid > 0)
        bgt_fix_stop(&fix);
}

TestSuite(plain_service, .init = setup, .fini = teardown, .timeout = 90);

static void skip_without_python(void)
{
    if (!plain_python_ready())
        cr_skip_test("/usr/bin/python3 with redis-py (python3-redis) is not installed");
}

static json_t *body_json(const bgt_resp *r)
{
    json_error_t jerr;
    json_t *j = json_loadb(r->body, r->body_len, 0, &jerr);

    cr_assert_not_null(j, "not JSON (%s): %.*s", jerr.text, (int)r->body_len, r->body);
    return j;
}

Test(plain_service, registers_and_answers_get_and_post)
{
    const char post[] = "POST /plain/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello";
    char rid[64] = "";
    bgt_resp r;
    json_t *j;

    skip_without_python();
    cr_assert_eq(bgt_fix_wait_status(&fix, "/plain/hello/ann", 200, 10000), 200);
    cr_assert_eq(
        bgt_fix_request(&fix, "GET /plain/hello/ann HTTP/1.1\r\nHost: t\r\n\r\n", 43, &r, 5000),
        200);
    j = body_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "method")), "GET");
    cr_assert_str_eq(json_string_value(json_object_get(j, "name")), "ann");
    /* The request id is the client's X-Request-Id and the service's X-Gateway-Request-Id. */
    cr_assert_eq(bgt_resp_header(&r, "X-Request-Id", rid, sizeof(rid)), 0, "%s", r.head);
    cr_assert_str_eq(json_string_value(json_object_get(j, "id")), rid);
    cr_assert_str_eq(json_string_value(json_object_get(j, "gateway_request_id")), rid);
    json_decref(j);
    bgt_resp_free(&r);
    cr_assert_eq(bgt_fix_request(&fix, post, sizeof(post) - 1, &r, 5000), 200);
    cr_assert_eq(r.body_len, 5u);
    cr_assert_str_eq(r.body, "hello");
    bgt_resp_free(&r);
}

/* HEAD reaches the GET endpoint with method HEAD in the frame; the client gets no body. */
Test(plain_service, head_reaches_the_get_endpoint_as_head)
{
    const char head[] = "HEAD /plain/hello/bob HTTP/1.1\r\nHost: t\r\n\r\n";
    char clen[32] = "";
    bgt_conn c;
    bgt_resp r;

    skip_without_python();
    cr_assert_eq(bgt_fix_wait_status(&fix, "/plain/hello/x", 200, 10000), 200);
    cr_assert_eq(bgt_conn_open(&c, fix.port), 0);
    cr_assert_eq(bgt_conn_send(&c, head, sizeof(head) - 1), 0);
    cr_assert_eq(bgt_conn_read(&c, &r, 1, 5000), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, 0u);
    cr_assert_eq(bgt_resp_header(&r, "Content-Length", clen, sizeof(clen)), 0);
    cr_assert_gt(atoi(clen), 0, "HEAD keeps the GET body's length");
    bgt_resp_free(&r);
    bgt_conn_close(&c);
    cr_assert_eq(bgt_wait_file(plain_log, "method=HEAD path=/plain/hello/bob", 5000), 0);
}

/* A client that leaves makes the gateway send CANCEL; the service sees it while the handler
 * runs (its control reader is beside the handlers) and skips the RESPONSE. */
Test(plain_service, client_gone_sends_a_cancel_the_service_sees)
{
    const char slow[] = "GET /plain/slow?ms=8000 HTTP/1.1\r\nHost: t\r\n\r\n";
    bgt_conn c;

    skip_without_python();
    cr_assert_eq(bgt_fix_wait_status(&fix, "/plain/hello/x", 200, 10000), 200);
    cr_assert_eq(bgt_conn_open(&c, fix.port), 0);
    cr_assert_eq(bgt_conn_send(&c, slow, sizeof(slow) - 1), 0);
    cr_assert_eq(bgt_wait_file(plain_log, "path=/plain/slow", 5000), 0, "request not received");
    bgt_conn_close(&c);
    cr_assert_eq(bgt_wait_file(plain_log, "reason=client_gone", 5000), 0, "no CANCEL seen");
    cr_assert_eq(bgt_wait_file(plain_log, "skipped id=", 5000), 0, "response not skipped");
}

/* The string at key, malloc'd (NUL-terminated), or NULL when absent or unreachable. */
static char *valkey_get(const char *key, size_t *len)
{
    char err[BG_ERR_LEN];
    bg_bus *b = bgt_fix_bus_open(&fix);
    redisReply *r = b != NULL ? bg_bus_command(b, err, "GET %s", key) : NULL;
    char *out = NULL;

    if (r != NULL && r->type == REDIS_REPLY_STRING && (out = malloc(r->len + 1)) != NULL) {
        memcpy(out, r->str, r->len + 1);
        *len = r->len;
    }
    if (r != NULL)
        freeReplyObject(r);
    bg_bus_free(b);
    return out;
}

/* The gateway's expiry for the instance follows the interval it announced (state document),
 * and GOODBYE removes its routes at once. */
Test(plain_service, announced_interval_sets_expiry_and_goodbye_removes)
{
    char key[128], *doc;
    size_t len;
    json_t *j, *reg, *conn;
    json_error_t jerr;
    long long expiry = -1;
    size_t i;

    skip_without_python();
    cr_assert_eq(bgt_fix_wait_status(&fix, "/plain/hello/x", 200, 10000), 200);
    snprintf(key, sizeof(key), "router:gateway:gw-test:state");
    for (int tries = 0; tries < 100 && expiry != PLAIN_EXPIRY_MS; tries++) {
        doc = valkey_get(key, &len);
        j = doc != NULL ? json_loadb(doc, len, 0, &jerr) : NULL;
        reg = json_object_get(j, "registry");
        json_array_foreach(reg, i, conn)
        {
            if (strcmp(json_string_value(json_object_get(conn, "id")), "plain/p1") == 0)
                expiry = json_integer_value(json_object_get(conn, "expiry_ms"));
        }
        json_decref(j);
        free(doc);
        if (expiry != PLAIN_EXPIRY_MS)
            usleep(100 * 1000);
    }
    cr_assert_eq(expiry, PLAIN_EXPIRY_MS, "expiry_ms of plain/p1 in the state document");
    cr_assert_eq(bgt_stop_pid(plain_pid, 5000), 0, "the service did not exit on SIGTERM");
    plain_pid = 0;
    cr_assert_eq(bgt_wait_file(plain_log, "goodbye", 1000), 0);
    cr_assert_eq(bgt_fix_wait_status(&fix, "/plain/hello/x", 404, 5000), 404);
}
