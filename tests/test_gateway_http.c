/* test_gateway_http.c: end-to-end HTTP/1.1 behaviour of busgated in front of echo-service:
 * round trips, bodies, keep-alive, pipelining, HTTP/1.0, HEAD, 100-continue, limits and the
 * request-smuggling shapes, timeouts. Real processes; seccomp on. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

TestSuite(gateway_http, .init = setup, .fini = teardown, .timeout = 60);

static int send_and_read(bgt_conn *c, const char *req, bgt_resp *r)
{
    if (bgt_conn_send(c, req, strlen(req)) != 0)
        return -1;
    return bgt_conn_read(c, r, strncmp(req, "HEAD ", 5) == 0, 5000);
}

Test(gateway_http, get_and_post_round_trips)
{
    const char get[] = "GET /echo/42?a=1&b=two HTTP/1.1\r\nHost: t\r\n\r\n";
    const char post[] = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
                        "Content-Length: 11\r\n\r\nhello world";
    char rid[64], want[96];
    bgt_resp r;

    cr_assert_eq(bgt_fix_request(&fix, get, strlen(get), &r, 5000), 200);
    cr_assert_not_null(strstr(r.body, "\"params\":{\"id\":\"42\"}"), "%s", r.body);
    cr_assert_not_null(strstr(r.body, "\"query\":\"a=1&b=two\""), "%s", r.body);
    cr_assert_not_null(strstr(r.body, "\"endpoint\":\"/echo/{id}\""), "%s", r.body);
    cr_assert_eq(bgt_resp_header(&r, "X-Request-Id", rid, sizeof(rid)), 0);
    cr_assert_eq(strlen(rid), 32);
    snprintf(want, sizeof(want), "\"request_id\":\"%s\"", rid);
    cr_assert_not_null(strstr(r.body, want), "the service saw another request id: %s", r.body);
    bgt_resp_free(&r);

    cr_assert_eq(bgt_fix_request(&fix, post, strlen(post), &r, 5000), 200);
    cr_assert_not_null(strstr(r.body, "\"method\":\"POST\""), "%s", r.body);
    cr_assert_not_null(strstr(r.body, "\"body\":\"hello world\""), "%s", r.body);
    bgt_resp_free(&r);
}

static char *random_body(size_t n)
{
    char *b = malloc(n);

    for (size_t i = 0; i < n; i++)
        b[i] = (char)(rand() & 0xff);
    b[0] = '\0'; /* NUL bytes must survive */
    b[n / 2] = '\0';
    return b;
}

Test(gateway_http, one_mib_binary_body_is_byte_exact)
{
    const size_t n = 1 << 20;
    char *body = random_body(n), head[256];
    bgt_resp r;
    bgt_conn c;

    cr_assert_eq(bgt_conn_open(&c, fix.port), 0);
    snprintf(head, sizeof(head),
             "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/octet-stream\r\n"
             "Content-Length: %zu\r\n\r\n",
             n);
    cr_assert_eq(bgt_conn_send(&c, head, strlen(head)), 0);
    cr_assert_eq(bgt_conn_send(&c, body, n), 0);
    cr_assert_eq(bgt_conn_read(&c, &r, 0, 10000), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, n);
    cr_assert_eq(memcmp(r.body, body, n), 0, "the echoed body differs");
    bgt_resp_free(&r);

    /* The same body again, chunked, on the same connection. */
    snprintf(head, sizeof(head),
             "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/octet-stream\r\n"
             "Transfer-Encoding: chunked\r\n\r\n%zx\r\n",
             n / 2);
    cr_assert_eq(bgt_conn_send(&c, head, strlen(head)), 0);
    cr_assert_eq(bgt_conn_send(&c, body, n / 2), 0);
    snprintf(head, sizeof(head), "\r\n%zx;ext=1\r\n", n - n / 2);
    cr_assert_eq(bgt_conn_send(&c, head, strlen(head)), 0);
    cr_assert_eq(bgt_conn_send(&c, body + n / 2, n - n / 2), 0);
    cr_assert_eq(bgt_conn_send(&c, "\r\n0\r\n\r\n", 7), 0);
    cr_assert_eq(bgt_conn_read(&c, &r, 0, 10000), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, n);
    cr_assert_eq(memcmp(r.body, body, n), 0, "the echoed chunked body differs");
    bgt_resp_free(&r);
    bgt_conn_close(&c);
    free(body);
}

Test(gateway_http, hundred_requests_on_one_keep_alive_connection)
{
    char req[128], want[64];
    bgt_resp r;
    bgt_conn c;

    cr_assert_eq(bgt_conn_open(&c, fix.port), 0);
    for (int i = 0; i < 100; i++) {
        snprintf(req, sizeof(req), "GET /echo/%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
        cr_assert_eq(send_and_read(&c, req, &r), 0, "request %d got no answer", i);
        cr_assert_eq(r.status, 200, "request %d", i);
        snprintf(want, sizeof(want), "\"params\":{\"id\":\"%d\"}", i);
        cr_assert_not_null(strstr(r.body, want), "request %d: %s", i, r.body);
        cr_assert_null(strstr(r.head, "Connection: close"));
        bgt_resp_free(&r);
    }
    bgt_conn_close(&c);
}

Test(gateway_http, ten_pipelined_requests_answered_in_order)
{
    char all[2048] = "", want[64];
    bgt_resp r;
    bgt_conn c;
    int i;

    for (i = 0; i < 10; i++) {
        /* Mixed: some wait for the service, some are answered by the gateway at once. */
        if (i == 3)
            strcat(all, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
        else if (i == 6)
            strcat(all, "GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n");
        else
            snprintf(all + strlen(all), sizeof(all) - strlen(all),
                     "GET /echo/%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
    }
    cr_assert_eq(bgt_conn_open(&c, fix.port), 0);
    cr_assert_eq(bgt_conn_send(&c, all, strlen(all)), 0);
    for (i = 0; i < 10; i++) {
        cr_assert_eq(bgt_conn_read(&c, &r, 0, 5000), 0, "response %d missing", i);
        if (i == 3) {
            cr_assert_eq(r.status, 200);
            cr_assert_not_null(strstr(r.body, "\"status\":\"ok\""));
        } else if (i == 6) {
            cr_assert_eq(r.status, 404);
        } else {
            cr_assert_eq(r.status, 200);
            snprintf(want, sizeof(want), "\"params\":{\"id\":\"%d\"}", i);
            cr_assert_not_null(strstr(r.body, want), "response %d out of order: %s", i, r.body);
        }
        bgt_resp_free(&r);
    }
    bgt_conn_close(&c);
}

Test(gateway_http, http10_head_and_continue)
{
    bgt_resp r;
    bgt_conn c;
    char v[64];

    /* HTTP/1.0 without keep-alive: answered, then closed. */
    cr_assert_eq(bgt_conn_open(&c, fix.port), 0);
    cr_assert_eq(send_and_read(&c, "GET /echo/10 HTTP/1.0\r\n\r\n", &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(strstr(r.body, "\"id\":\"10\""));
    bgt_resp_free(&r);
    cr_assert(bgt_conn_wait_eof(&c, 3000), "HTTP/1.0 connection left open");
    bgt_conn_close(&c);

    /* HTTP/1.0 asking for keep-alive gets it. */
    cr_assert_eq(bgt_conn_open(&c, fix.port), 0);
    cr_assert_eq(send_and_read(&c, "GET /echo/1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r),
                 0);
    cr_assert_eq(bgt_resp_header(&r, "Connection", v, sizeof(v)), 0);
    cr_assert_str_eq(v, "keep-alive");
    bgt_resp_free(&r);
    cr_assert_eq(send_and_read(&c, "GET /echo/2 HTTP/1.0\r\n\r\n", &r), 0);
    cr_assert_eq(r.status, 200);
    bgt_resp_free(&r);
    bgt_conn_close(&c);

    /* HEAD: the GET route answers, headers only. */
    cr_assert_eq(bgt_conn_open(&c, fix.port), 0);
    cr_assert_eq(send_and_read(&c, "HEAD /echo/7 HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(bgt_resp_header(&r, "Content-Length", v, sizeof(v)), 0);
    cr_assert_gt(atoi(v), 0);
    bgt_resp_free(&r);
    /* Nothing of a body came after the head: the next response parses cleanly. */
    cr_assert_eq(send_and_read(&c, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    cr_assert_eq(r.status, 200);
    bgt_resp_free(&r);

    /* Expect: 100-continue: the interim answer first, then the real one. */
    cr_assert_eq(send_and_read(&c,
                               "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
                               "Expect: 100-continue\r\n\r\n",
                               &r),
                 0);
    cr_assert_eq(r.status, 100);
    bgt_resp_free(&r);
    cr_assert_eq(send_and_read(&c, "ping", &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(strstr(r.body, "\"body\":\"ping\""), "%s", r.body);
    bgt_resp_free(&r);
    bgt_conn_close(&c);
}

/* A request the gateway refuses: the status, a problem+json body, and a closed connection. */
static void expect_refused(const char *req, size_t len, int status)
{
    bgt_resp r;
    bgt_conn c;
    char v[128];

    cr_assert_eq(bgt_conn_open(&c, fix.port), 0);
    cr_assert_eq(bgt_conn_send(&c, req, len), 0);
    cr_assert_eq(bgt_conn_read(&c, &r, 0, 5000), 0, "no answer to %.40s", req);
    cr_assert_eq(r.status, status, "%.60s -> %d", req, r.status);
    cr_assert_eq(bgt_resp_header(&r, "Content-Type", v, sizeof(v)), 0);
    cr_assert_str_eq(v, "application/problem+json");
    cr_assert_not_null(strstr(r.body, "\"status\":"));
    bgt_resp_free(&r);
    cr_assert(bgt_conn_wait_eof(&c, 3000), "connection not closed after %d", status);
    bgt_conn_close(&c);
}

#define REFUSED(s, st) expect_refused(s, sizeof(s) - 1, st)

Test(gateway_http, smuggling_shapes_are_400_and_close)
{
    REFUSED("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400);
    REFUSED("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
            400);
    REFUSED("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
            400);
    REFUSED("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\n\r\nhello", 400);
    REFUSED("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            "zz\r\nhello\r\n0\r\n\r\n",
            400);
    REFUSED("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            "5\r\nhelloXX0\r\n\r\n",
            400);
    REFUSED("GET /echo HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n", 400);
    REFUSED("GET /echo HTTP/1.1\nHost: t\r\n\r\n", 400);
    REFUSED("GET /echo HTTP/1.1\r\nHost: t\nX-A: 1\r\n\r\n", 400);
    REFUSED("GET /echo HTTP/1.1\r\nHost : t\r\n\r\n", 400);
    REFUSED("GET /echo/%2e%2e/%2f HTTP/1.1\r\nHost: t\r\n\r\n", 400);
}

Test(gateway_http, limits_and_timeouts)
{
    char *big = malloc(16384);
    bgt_resp r;
    bgt_conn c;

    /* Head over max_header_size (8k) -> 431; request line too long -> 414. */
    snprintf(big, 16384, "GET /echo HTTP/1.1\r\nHost: t\r\nX-Big: %09000d\r\n\r\n", 7);
    expect_refused(big, strlen(big), 431);
    snprintf(big, 16384, "GET /%09000d HTTP/1.1\r\nHost: t\r\n\r\n", 7);
    expect_refused(big, strlen(big), 414);
    /* Body over max_request_body (2m): refused from its Content-Length -> 413. */
    REFUSED("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3000000\r\n\r\nabc", 413);
    free(big);

    /* A stalled head and a stalled body (header/body_timeout 1s) -> 408 and close. */
    REFUSED("GET /echo HTTP/1.1\r\nHost: t\r\n", 408);
    REFUSED("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc", 408);

    /* Unknown path, wrong method: answered without closing. */
    cr_assert_eq(bgt_conn_open(&c, fix.port), 0);
    cr_assert_eq(send_and_read(&c, "GET /missing HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    cr_assert_eq(r.status, 404);
    bgt_resp_free(&r);
    cr_assert_eq(send_and_read(&c, "BREW /echo HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    cr_assert_eq(r.status, 405);
    cr_assert_not_null(strstr(r.head, "Allow: GET, HEAD, POST"), "%s", r.head);
    bgt_resp_free(&r);
    cr_assert_eq(send_and_read(&c, "GET /echo/1 HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    cr_assert_eq(r.status, 200);
    bgt_resp_free(&r);
    bgt_conn_close(&c);
}

Test(gateway_http, graceful_stop_finishes_in_flight_requests)
{
    const char slow[] = "GET /echo/slow?ms=800 HTTP/1.1\r\nHost: t\r\n\r\n";
    bgt_conn busy, idle;
    bgt_resp r;
    char v[32];

    cr_assert_eq(bgt_conn_open(&idle, fix.port), 0);
    cr_assert_eq(send_and_read(&idle, "GET /echo/1 HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    bgt_resp_free(&r);
    cr_assert_eq(bgt_conn_open(&busy, fix.port), 0);
    cr_assert_eq(bgt_conn_send(&busy, slow, sizeof(slow) - 1), 0);
    usleep(200 * 1000);
    cr_assert_eq(bgt_gw_signal(&fix.g, SIGTERM), 0);
    /* The idle keep-alive connection is closed; the busy one gets its answer, told to close. */
    cr_assert(bgt_conn_wait_eof(&idle, 3000), "idle connection left open while draining");
    cr_assert_eq(bgt_conn_read(&busy, &r, 0, 5000), 0, "in-flight request lost on SIGTERM");
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(strstr(r.body, "\"slept_ms\""), "%s", r.body);
    cr_assert_eq(bgt_resp_header(&r, "Connection", v, sizeof(v)), 0);
    cr_assert_str_eq(v, "close");
    bgt_resp_free(&r);
    cr_assert(bgt_conn_wait_eof(&busy, 3000));
    cr_assert_eq(bgt_gw_wait_exit(&fix.g, 10000), 0, "the master did not exit 0");
    bgt_conn_close(&idle);
    bgt_conn_close(&busy);
}

Test(gateway_http, connection_cap_refuses_with_503)
{
    bgt_gw_opts o = {.valkey_url = fix.v.url,
                     .workers = 1,
                     .extra_gateway = "instance_id = gw-cap\nmax_connections = 2"};
    bgt_conn a, b, c;
    bgt_resp r;
    bgt_gw g;

    cr_assert_eq(bgt_gw_init(&g, &o), 0);
    cr_assert_eq(bgt_gw_start(&g), 0);
    cr_assert_eq(bgt_gw_wait_workers(&g, 1, 10000), 1);
    usleep(300 * 1000); /* the start-up probe's connection is gone by now */
    cr_assert_eq(bgt_conn_open(&a, g.port), 0);
    cr_assert_eq(bgt_conn_open(&b, g.port), 0);
    /* Both are accepted: each answers. */
    cr_assert_eq(send_and_read(&a, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    cr_assert_eq(r.status, 200);
    bgt_resp_free(&r);
    cr_assert_eq(send_and_read(&b, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    cr_assert_eq(r.status, 200);
    bgt_resp_free(&r);
    /* The third is told so, and closed. */
    cr_assert_eq(bgt_conn_open(&c, g.port), 0);
    cr_assert_eq(bgt_conn_read(&c, &r, 0, 5000), 0);
    cr_assert_eq(r.status, 503);
    cr_assert_not_null(strstr(r.head, "Retry-After:"), "%s", r.head);
    bgt_resp_free(&r);
    cr_assert(bgt_conn_wait_eof(&c, 3000));
    bgt_conn_close(&c);
    /* Below the cap again: accepted. */
    bgt_conn_close(&a);
    usleep(200 * 1000);
    cr_assert_eq(bgt_conn_open(&c, g.port), 0);
    cr_assert_eq(send_and_read(&c, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n", &r), 0);
    cr_assert_eq(r.status, 200);
    bgt_resp_free(&r);
    bgt_conn_close(&b);
    bgt_conn_close(&c);
    bgt_gw_stop(&g);
}
