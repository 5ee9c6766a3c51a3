/* test_gateway_dispatch.c: end-to-end dispatch over the bus: params and query, the identity
 * header policy, 504 + CANCEL, client gone -> CANCEL, replies checked (502) and matched
 * once, a response too large for the bus (502), no live instance (503), and Valkey
 * restarting under a sandboxed worker. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "busgate/bus/bus.h"
#include "gw_fixture.h"

static bgt_fix fix;

static void setup(void)
{
    cr_assert_eq(bgt_fix_start(&fix, NULL, 2), 0, "fixture did not start");
}

static void teardown(void)
{
    bgt_fix_stop(&fix);
}

TestSuite(gateway_dispatch, .init = setup, .fini = teardown, .timeout = 60);

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

static int get(const char *path, const char *headers, bgt_resp *r)
{
    char req[2048];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: test.example\r\n%s\r\n", path,
                     headers ? headers : "");

    return bgt_fix_request(&fix, req, (size_t)n, r, 8000);
}

static bg_bus *bus_open(void)
{
    bg_bus *b = bgt_fix_bus_open(&fix);

    cr_assert_not_null(b, "no bus connection to the fixture's valkey-server");
    return b;
}

static char *lower(const char *s)
{
    char *d = strdup(s);

    for (char *p = d; *p; p++)
        *p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
    return d;
}

Test(gateway_dispatch, params_query_and_path_reach_the_service)
{
    bgt_resp r;

    cr_assert_eq(get("/echo/files/a/b/c.txt?x=%20y&z", NULL, &r), 200);
    cr_assert_not_null(strstr(r.body, "\"params\":{\"path\":\"a/b/c.txt\"}"), "%s", r.body);
    cr_assert_not_null(strstr(r.body, "\"query\":\"x=%20y&z\""), "%s", r.body);
    cr_assert_not_null(strstr(r.body, "\"endpoint\":\"/echo/files/{path*}\""), "%s", r.body);
    bgt_resp_free(&r);
    /* Decoded and normalised before routing; ".." never climbs above the root. */
    cr_assert_eq(get("/echo/x/../files/hello%20world", NULL, &r), 200);
    cr_assert_not_null(strstr(r.body, "\"path\":\"/echo/files/hello world\""), "%s", r.body);
    cr_assert_not_null(strstr(r.body, "\"params\":{\"path\":\"hello world\"}"), "%s", r.body);
    bgt_resp_free(&r);
    cr_assert_eq(get("/../../echo/7", NULL, &r), 200);
    cr_assert_not_null(strstr(r.body, "\"params\":{\"id\":\"7\"}"), "%s", r.body);
    bgt_resp_free(&r);
}

Test(gateway_dispatch, reserved_identity_and_hop_by_hop_headers_never_reach_the_service)
{
    char rid[64], want[128], *body;
    bgt_resp r;

    cr_assert_eq(get("/echo/1",
                     "X-User-Id: evil\r\nx-user-roles: admin\r\nX-Gateway-Request-Id: forged\r\n"
                     "X-Gateway-Anything: z\r\nX-Authenticated-User: root\r\n"
                     "X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\n"
                     "Connection: x-secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\n"
                     "X-Kept: yes\r\n",
                     &r),
                 200);
    body = lower(r.body);
    cr_assert_null(strstr(body, "x-user-id"), "%s", r.body);
    cr_assert_null(strstr(body, "x-user-roles"), "%s", r.body);
    cr_assert_null(strstr(body, "x-authenticated-user"), "%s", r.body);
    cr_assert_null(strstr(body, "x-gateway-anything"), "%s", r.body);
    cr_assert_null(strstr(body, "forged"), "%s", r.body);
    cr_assert_null(strstr(body, "x-secret"), "%s", r.body);
    cr_assert_null(strstr(body, "keep-alive"), "%s", r.body);
    cr_assert_null(strstr(body, "https"), "%s", r.body);
    free(body);
    cr_assert_not_null(strstr(r.body, "[\"X-Kept\",\"yes\"]"), "%s", r.body);
    cr_assert_not_null(strstr(r.body, "[\"X-Forwarded-For\",\"1.2.3.4, 127.0.0.1\"]"), "%s",
                       r.body);
    cr_assert_not_null(strstr(r.body, "[\"X-Forwarded-Proto\",\"http\"]"), "%s", r.body);
    cr_assert_not_null(strstr(r.body, "[\"X-Forwarded-Host\",\"test.example\"]"), "%s", r.body);
    cr_assert_eq(bgt_resp_header(&r, "X-Request-Id", rid, sizeof(rid)), 0);
    snprintf(want, sizeof(want), "[\"X-Gateway-Request-Id\",\"%s\"]", rid);
    cr_assert_not_null(strstr(r.body, want), "%s", r.body);
    bgt_resp_free(&r);
}

Test(gateway_dispatch, deadline_gives_504_and_cancel)
{
    bg_bus *b = bus_open();
    long long until;
    char rid[64];
    bgt_resp r;
    int seen = 0;

    /* request_timeout is 2s; the service would take 5s. */
    cr_assert_eq(get("/echo/slow?ms=5000", NULL, &r), 504);
    cr_assert_eq(bgt_resp_header(&r, "X-Request-Id", rid, sizeof(rid)), 0);
    cr_assert_not_null(strstr(r.body, "\"status\":504"));
    bgt_resp_free(&r);
    /* The CANCEL leaves in the same loop iteration as the 504, so poll briefly. */
    for (until = bgt_now_ms() + 3000; !seen && bgt_now_ms() < until; sleep_ms(20))
        seen = bgt_fix_cancel_count(b, rid, "deadline") > 0;
    cr_assert(seen, "no CANCEL (deadline) for %s", rid);
    bg_bus_free(b);
}

/* Id of the newest REQUEST on the echo stream into id ("" when there is none). */
static void newest_request(bg_bus *b, char *id, size_t len)
{
    char err[BG_ERR_LEN];
    redisReply *r = bg_bus_command(b, err, "XREVRANGE router:requests:{echo} + - COUNT 1");

    id[0] = '\0';
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 1)
        snprintf(id, len, "%s", r->element[0]->element[0]->str);
    if (r != NULL)
        freeReplyObject(r);
}

/* Waits (bounded) until a REQUEST newer than prev is on the stream: the request is on the
 * bus whatever the machine's speed, instead of after a guessed sleep. */
static void wait_new_request(bg_bus *b, const char *prev)
{
    char id[64] = "";
    long long until = bgt_now_ms() + 10000;

    do {
        newest_request(b, id, sizeof(id));
        if (strcmp(id, prev) != 0)
            return;
        sleep_ms(10);
    } while (bgt_now_ms() < until);
    cr_assert_fail("the request never reached the bus");
}

/* Sends a slow request, leaves once it is on the bus, and waits for the CANCEL number
 * `want`. */
static int leave_early(bg_bus *b, const char *req, int want)
{
    char prev[64];
    long long until;
    bgt_conn c;
    int n = 0;

    newest_request(b, prev, sizeof(prev));
    cr_assert_eq(bgt_conn_open(&c, fix.port), 0);
    cr_assert_eq(bgt_conn_send(&c, req, strlen(req)), 0);
    wait_new_request(b, prev);
    bgt_conn_close(&c);
    for (until = bgt_now_ms() + 3000; n < want && bgt_now_ms() < until; sleep_ms(50))
        n = bgt_fix_cancel_count(b, NULL, "client_gone");
    return n;
}

Test(gateway_dispatch, client_gone_sends_cancel)
{
    bg_bus *b = bus_open();

    cr_assert_eq(leave_early(b, "GET /echo/slow?ms=3000 HTTP/1.1\r\nHost: t\r\n\r\n", 1), 1,
                 "no CANCEL (client_gone) after the client left");
    /* Also after a request that asked to close the connection (HTTP/1.0). */
    cr_assert_eq(leave_early(b, "GET /echo/slow?ms=3000 HTTP/1.0\r\n\r\n", 2), 2,
                 "no CANCEL (client_gone) for the HTTP/1.0 client");
    bg_bus_free(b);
}

/* The newest REQUEST on the echo stream: its id and reply key. */
static void last_request(bg_bus *b, char *id, char *reply_to)
{
    char err[BG_ERR_LEN];
    redisReply *r = bg_bus_command(b, err, "XREVRANGE router:requests:{echo} + - COUNT 1");

    cr_assert(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 1, "no REQUEST");
    redisReply *kv = r->element[0]->element[1];
    for (size_t j = 0; j + 1 < kv->elements; j += 2) {
        if (strcmp(kv->element[j]->str, "id") == 0)
            strcpy(id, kv->element[j + 1]->str);
        if (strcmp(kv->element[j]->str, "reply_to") == 0)
            strcpy(reply_to, kv->element[j + 1]->str);
    }
    freeReplyObject(r);
}

static void inject(bg_bus *b, const char *reply_to, const char *id, const char *meta,
                   const char *body)
{
    char err[BG_ERR_LEN];
    redisReply *r = bg_bus_command(b, err,
                                   "XADD %s * v 1 type RESPONSE id %s instance fake status 201 "
                                   "meta %s body %s",
                                   reply_to, id, meta, body);

    cr_assert(r != NULL && r->type == REDIS_REPLY_STRING, "XADD: %s",
              r ? (r->str ? r->str : "?") : err);
    freeReplyObject(r);
}

/* Sends a slow request, answers it from the test before the service does. */
static void answer_first(bg_bus *b, bgt_conn *c, const char *meta, const char *body, bgt_resp *r)
{
    const char req[] = "GET /echo/slow?ms=1200 HTTP/1.1\r\nHost: t\r\n\r\n";
    char id[64] = "", reply_to[256] = "", prev[64];

    newest_request(b, prev, sizeof(prev));
    cr_assert_eq(bgt_conn_send(c, req, sizeof(req) - 1), 0);
    wait_new_request(b, prev);
    last_request(b, id, reply_to);
    cr_assert_eq(strlen(id), 32);
    inject(b, reply_to, id, meta, body);
    cr_assert_eq(bgt_conn_read(c, r, 0, 5000), 0);
}

Test(gateway_dispatch, replies_are_checked_and_matched_once)
{
    bg_bus *b = bus_open();
    bgt_resp r;
    bgt_conn c;

    cr_assert_eq(bgt_conn_open(&c, fix.port), 0);
    /* A valid injected reply wins; the service's own (later) reply is dropped. */
    answer_first(b, &c, "{\"headers\":[[\"X-Injected\",\"1\"]]}", "first", &r);
    cr_assert_eq(r.status, 201);
    cr_assert_str_eq(r.body, "first");
    cr_assert_not_null(strstr(r.head, "X-Injected: 1"));
    bgt_resp_free(&r);
    /* Hop-by-hop headers from a service are dropped (the gateway frames the body itself). */
    answer_first(b, &c,
                 "{\"headers\":[[\"Transfer-Encoding\",\"chunked\"],[\"Connection\",\"close\"],"
                 "[\"Keep-Alive\",\"timeout=5\"],[\"X-Kept\",\"yes\"]]}",
                 "x", &r);
    cr_assert_eq(r.status, 201);
    cr_assert_str_eq(r.body, "x");
    cr_assert_null(strcasestr(r.head, "Transfer-Encoding"), "%s", r.head);
    cr_assert_null(strcasestr(r.head, "Keep-Alive"), "%s", r.head);
    cr_assert_null(strcasestr(r.head, "Connection: close"), "%s", r.head);
    cr_assert_not_null(strstr(r.head, "X-Kept: yes"), "%s", r.head);
    cr_assert_not_null(strstr(r.head, "Content-Length: 1"), "%s", r.head);
    bgt_resp_free(&r);
    /* A header value with a control byte is still refused: 502. */
    answer_first(b, &c, "{\"headers\":[[\"X-Bad\",\"a\\u0001b\"]]}", "x", &r);
    cr_assert_eq(r.status, 502);
    bgt_resp_free(&r);
    sleep_ms(1500); /* the late replies of the service arrive and are dropped */
    cr_assert_eq(bgt_conn_send(&c, "GET /echo/5 HTTP/1.1\r\nHost: t\r\n\r\n", 34), 0);
    cr_assert_eq(bgt_conn_read(&c, &r, 0, 5000), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(strstr(r.body, "\"id\":\"5\""), "%s", r.body);
    bgt_resp_free(&r);
    bgt_conn_close(&c);
    bg_bus_free(b);
}

/* A body the SDK cannot put in a RESPONSE frame: the client gets the SDK's 502 problem+json
 * (not a 500), and the service log names the request and the size. */
Test(gateway_dispatch, response_too_large_for_the_bus_is_502)
{
    char type[64], rid[64], want[128];
    bgt_resp r;

    cr_assert_eq(get("/echo/big?mb=1", NULL, &r), 200);
    cr_assert_eq(r.body_len, 1u << 20);
    bgt_resp_free(&r);
    cr_assert_eq(get("/echo/big?mb=70", NULL, &r), 502);
    cr_assert_eq(bgt_resp_header(&r, "Content-Type", type, sizeof(type)), 0);
    cr_assert_str_eq(type, "application/problem+json");
    cr_assert_not_null(strstr(r.body, "\"status\":502"), "%s", r.body);
    cr_assert_not_null(strstr(r.body, "too large"), "%s", r.body);
    cr_assert_eq(bgt_resp_header(&r, "X-Request-Id", rid, sizeof(rid)), 0);
    cr_assert_not_null(strstr(r.body, rid), "requestId %s in %s", rid, r.body);
    bgt_resp_free(&r);
    /* Either instance may have served it. */
    snprintf(want, sizeof(want), "request %s (GET /echo/big): response too large", rid);
    cr_assert(bgt_wait_file(fix.echo_log[0], want, 1500) == 0 ||
                  bgt_wait_file(fix.echo_log[1], want, 1500) == 0,
              "no '%s' in the echo logs", want);
    cr_assert(bgt_wait_file(fix.echo_log[0], "body of 73400320 bytes", 100) == 0 ||
              bgt_wait_file(fix.echo_log[1], "body of 73400320 bytes", 100) == 0);
}

Test(gateway_dispatch, no_live_instance_is_503_until_one_returns)
{
    char v[32];
    bgt_resp r;

    bgt_fix_echo_kill(&fix, 0, SIGKILL);
    bgt_fix_echo_kill(&fix, 1, SIGKILL);
    /* heartbeat_expiry is 1s: the route stays known but has no live instance. */
    cr_assert_eq(bgt_fix_wait_status(&fix, "/echo/1", 503, 5000), 503);
    cr_assert_eq(get("/echo/1", NULL, &r), 503);
    cr_assert_eq(bgt_resp_header(&r, "Retry-After", v, sizeof(v)), 0);
    cr_assert_not_null(strstr(r.body, "no live instance"), "%s", r.body);
    bgt_resp_free(&r);
    cr_assert_eq(bgt_fix_echo_start(&fix, 0), 0);
    cr_assert_eq(bgt_fix_wait_status(&fix, "/echo/1", 200, 10000), 200);
}

Test(gateway_dispatch, valkey_restart_is_survived_under_seccomp)
{
    pid_t before[8], after[8];
    int nb = bgt_gw_workers(&fix.g, before, 8), na;
    bgt_resp r;

    cr_assert_eq(nb, 2);
    bgt_valkey_kill(&fix.v);
    /* The bus is gone: the gateway says so instead of hanging. */
    cr_assert_eq(get("/echo/1", NULL, &r), 503);
    bgt_resp_free(&r);
    cr_assert_eq(bgt_valkey_restart(&fix.v), 0);
    cr_assert_eq(bgt_fix_wait_status(&fix, "/echo/1", 200, 20000), 200,
                 "the gateway did not recover after Valkey came back");
    /* The same workers reconnected: none was killed by the seccomp filter. */
    na = bgt_gw_workers(&fix.g, after, 8);
    cr_assert_eq(na, 2);
    cr_assert_eq(memcmp(before, after, sizeof(pid_t) * 2), 0, "a worker was restarted");
    cr_assert_eq(bgt_gw_log_count(&fix.g, "SIGSYS"), 0);
}

Test(gateway_dispatch, deleted_reply_streams_are_created_again)
{
    char out[64];
    bgt_resp r;

    cr_assert_eq(bgt_valkey_cmd(&fix.v, out, sizeof(out),
                                "DEL router:responses:gw-test:0 router:responses:gw-test:1"),
                 0);
    cr_assert_str_eq(out, ":2", "the reply streams did not exist: %s", out);
    /* Services answer with NOMKSTREAM, so answers are lost until a worker notices. */
    cr_assert_eq(bgt_fix_wait_status(&fix, "/echo/1", 200, 20000), 200);
    cr_assert_eq(bgt_valkey_cmd(&fix.v, out, sizeof(out),
                                "EXISTS router:responses:gw-test:0 router:responses:gw-test:1"),
                 0);
    cr_assert_str_eq(out, ":2");
    cr_assert_eq(get("/echo/2", NULL, &r), 200);
    bgt_resp_free(&r);
}
