/* test_gateway_stream.c: streamed responses end to end (valkey-server, busgated with 2 workers,
 * echo-service): pieces in order as chunks, HTTP/1.0 close-delimited, a service's
 * Content-Length passed through, HEAD, a client that leaves (CANCEL client_gone), the idle
 * limit (CANCEL stream_idle), SSE keep-alives, a slow reader of 64 MiB whose worker memory
 * stays bounded, broken streams (gap, duplicate, unknown id) injected on the reply stream,
 * and the SDK's fallback to one whole RESPONSE for a gateway that does not stream. */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "busgate/bus/bus.h"
#include "busgate/proto/frame.h"
#include "gw_fixture.h"

/* A small client buffer in the gateway, keep-alives every 200 ms, and an idle limit long
 * enough for the SSE gaps below but short for the idle test. */
#define STREAM_GATEWAY "stream_buffer = 256k\nsse_keepalive = 200ms\nstream_idle_timeout = 3s\n"

static bgt_fix fix;

static void setup(void)
{
    cr_assert_eq(bgt_fix_start(&fix, STREAM_GATEWAY, 1), 0, "fixture did not start");
}

static void teardown(void)
{
    bgt_fix_stop(&fix);
}

TestSuite(gateway_stream, .init = setup, .fini = teardown, .timeout = 120);

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

static bg_bus *bus_open(void)
{
    char err[BG_ERR_LEN];
    bg_bus_opts o;
    bg_bus *b;

    bg_bus_opts_init(&o);
    cr_assert_eq(bg_bus_opts_from_url(&o, fix.v.url, err), BG_OK, "%s", err);
    b = bg_bus_connect(&o, err);
    cr_assert_not_null(b, "%s", err);
    return b;
}

/* CANCELs on the echo cancel stream with this id and reason. */
static int cancel_count(bg_bus *b, const char *id, const char *reason)
{
    char err[BG_ERR_LEN];
    redisReply *r = bg_bus_command(b, err, "XRANGE router:cancel:{echo} - +");
    int found = 0;

    for (size_t i = 0; r != NULL && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *kv = r->element[i]->element[1];
        int id_ok = 0, reason_ok = 0;
        for (size_t j = 0; j + 1 < kv->elements; j += 2) {
            if (strcmp(kv->element[j]->str, "id") == 0)
                id_ok = strcmp(kv->element[j + 1]->str, id) == 0;
            if (strcmp(kv->element[j]->str, "reason") == 0)
                reason_ok = strcmp(kv->element[j + 1]->str, reason) == 0;
        }
        found += id_ok && reason_ok;
    }
    if (r != NULL)
        freeReplyObject(r);
    return found;
}

static int wait_cancel(bg_bus *b, const char *id, const char *reason)
{
    long long until = bgt_now_ms() + 8000;

    while (cancel_count(b, id, reason) == 0 && bgt_now_ms() < until)
        sleep_ms(50);
    return cancel_count(b, id, reason);
}

/* Reads until needle is in the connection's buffer (it stays there); 0 or -1. */
static int read_until(bgt_conn *c, const char *needle, int timeout_ms)
{
    long long until = bgt_now_ms() + timeout_ms;
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    char tmp[65536];
    ssize_t n;

    while (c->buf == NULL || memmem(c->buf, c->len, needle, strlen(needle)) == NULL) {
        if (bgt_now_ms() >= until || poll(&p, 1, 100) < 0)
            return -1;
        if (!(p.revents & (POLLIN | POLLHUP)))
            continue;
        if ((n = read(c->fd, tmp, sizeof(tmp))) <= 0)
            return -1;
        if (c->len + (size_t)n + 1 > c->cap) {
            c->cap = (c->len + (size_t)n + 1) * 2;
            c->buf = realloc(c->buf, c->cap + 1); /* the harness keeps a NUL after cap */
        }
        memcpy(c->buf + c->len, tmp, (size_t)n);
        c->len += (size_t)n;
        c->buf[c->len] = '\0';
    }
    return 0;
}

static void open_send(bgt_conn *c, const char *req)
{
    cr_assert_eq(bgt_conn_open(c, fix.port), 0);
    cr_assert_eq(bgt_conn_send(c, req, strlen(req)), 0);
}

/* X-Request-Id of the response head in the buffer. */
static void request_id(const bgt_conn *c, char *id)
{
    const char *p = memmem(c->buf, c->len, "X-Request-Id: ", 14);

    cr_assert_not_null(p, "no X-Request-Id");
    memcpy(id, p + 14, 32);
    id[32] = '\0';
}

Test(gateway_stream, pieces_in_order_as_chunks)
{
    static const char want[] = "8\r\npiece 0\n\r\n8\r\npiece 1\n\r\n8\r\npiece 2\n\r\n"
                               "8\r\npiece 3\n\r\n8\r\npiece 4\n\r\n0\r\n\r\n";
    bgt_conn c;
    bgt_resp r;
    const char *body;

    open_send(&c, "GET /echo/stream?n=5&ms=20 HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert_eq(read_until(&c, "0\r\n\r\n", 10000), 0, "the stream did not end");
    cr_assert(strstr(c.buf, "HTTP/1.1 200 OK\r\n") == c.buf, "%s", c.buf);
    cr_assert_not_null(strstr(c.buf, "Transfer-Encoding: chunked\r\n"));
    cr_assert_null(strstr(c.buf, "Content-Length"));
    body = strstr(c.buf, "\r\n\r\n") + 4;
    /* One chunk per piece, in order, then the last chunk. */
    cr_assert(strcmp(body, want) == 0, "body differs: [%s]", body);
    /* The connection stays usable: an ordinary answer follows on it. */
    c.len = 0;
    c.buf[0] = '\0'; /* the harness looks for the next head with strstr */
    cr_assert_eq(bgt_conn_send(&c, "GET /echo/1 HTTP/1.1\r\nHost: t\r\n\r\n", 33), 0);
    cr_assert_eq(bgt_conn_read(&c, &r, 0, 8000), 0);
    cr_assert_eq(r.status, 200);
    bgt_resp_free(&r);
    bgt_conn_close(&c);
}

Test(gateway_stream, first_piece_arrives_before_the_stream_ends)
{
    bgt_conn c;

    /* The second piece comes a minute later: the first must be with the client now. */
    open_send(&c, "GET /echo/stream?n=2&ms=60000 HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert_eq(read_until(&c, "piece 0\n\r\n", 10000), 0, "first piece not delivered");
    cr_assert_null(memmem(c.buf, c.len, "piece 1", 7));
    bgt_conn_close(&c);
}

Test(gateway_stream, http10_client_gets_a_close_delimited_body)
{
    bgt_conn c;
    bgt_resp r;

    open_send(&c, "GET /echo/stream?n=3 HTTP/1.0\r\n\r\n");
    cr_assert_eq(bgt_conn_read(&c, &r, 0, 10000), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(strstr(r.head, "Connection: close\r\n"));
    cr_assert_null(strstr(r.head, "Transfer-Encoding"));
    cr_assert_null(strstr(r.head, "Content-Length"));
    cr_assert_str_eq(r.body, "piece 0\npiece 1\npiece 2\n");
    cr_assert(bgt_conn_wait_eof(&c, 5000));
    bgt_resp_free(&r);
    bgt_conn_close(&c);
}

/* Byte k of the echo's counter body is byte k % 8 (big-endian) of the number k / 8. */
static int counter_byte(uint64_t k)
{
    return (int)(((k / 8) >> (56 - 8 * (k % 8))) & 0xff);
}

static void expect_counters(const char *p, size_t len, uint64_t at)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)p[i] != counter_byte(at + i))
            cr_assert_fail("byte %llu is 0x%02x, want 0x%02x", (unsigned long long)(at + i),
                           (unsigned char)p[i], counter_byte(at + i));
}

Test(gateway_stream, service_content_length_is_passed_through)
{
    bgt_conn c;
    bgt_resp r;

    open_send(&c, "GET /echo/stream?n=4&size=64&length=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert_eq(bgt_conn_read(&c, &r, 0, 10000), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(strstr(r.head, "Content-Length: 256\r\n"), "%s", r.head);
    cr_assert_null(strstr(r.head, "Transfer-Encoding"));
    cr_assert_eq(r.body_len, 256);
    expect_counters(r.body, r.body_len, 0);
    bgt_resp_free(&r);
    bgt_conn_close(&c);
}

Test(gateway_stream, head_gets_the_head_only)
{
    bgt_conn c;
    bgt_resp r;

    open_send(&c, "HEAD /echo/stream?n=3 HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert_eq(bgt_conn_read(&c, &r, 1, 10000), 0);
    cr_assert_eq(r.status, 200);
    bgt_resp_free(&r);
    /* Nothing of the body came: the next answer on the connection parses cleanly. */
    cr_assert_eq(bgt_conn_send(&c, "GET /echo/1 HTTP/1.1\r\nHost: t\r\n\r\n", 33), 0);
    cr_assert_eq(bgt_conn_read(&c, &r, 0, 8000), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(strstr(r.body, "\"path\":\"/echo/1\""));
    bgt_resp_free(&r);
    bgt_conn_close(&c);
}

Test(gateway_stream, client_leaving_mid_stream_sends_cancel)
{
    bg_bus *b = bus_open();
    char id[33];
    bgt_conn c;

    open_send(&c, "GET /echo/stream?n=100&ms=100 HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert_eq(read_until(&c, "piece 1\n", 10000), 0);
    request_id(&c, id);
    bgt_conn_close(&c);
    cr_assert_eq(wait_cancel(b, id, "client_gone"), 1, "no CANCEL client_gone for %s", id);
    bg_bus_free(b);
}

Test(gateway_stream, idle_stream_is_broken_off_and_cancelled)
{
    bg_bus *b = bus_open();
    char id[33];
    bgt_conn c;
    bgt_resp r;

    /* stream_idle_timeout is 3 s; the second piece would come after 60 s. */
    open_send(&c, "GET /echo/stream?n=2&ms=60000 HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert_eq(read_until(&c, "piece 0\n", 10000), 0);
    request_id(&c, id);
    cr_assert_eq(wait_cancel(b, id, "stream_idle"), 1, "no CANCEL stream_idle for %s", id);
    /* The chunked body never ends: the connection closes without the last chunk. */
    cr_assert(bgt_conn_wait_eof(&c, 8000), "connection not closed");
    cr_assert_null(memmem(c.buf, c.len, "0\r\n\r\n", 5));
    bgt_conn_close(&c);
    (void)r;
    bg_bus_free(b);
}

Test(gateway_stream, sse_gets_keepalive_comments_while_quiet)
{
    bgt_conn c;
    const char *ka;

    /* Events a second apart; the gateway comments every 200 ms of silence. */
    open_send(&c, "GET /echo/sse?n=2&ms=1000 HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert_eq(read_until(&c, "data: tick 1\n\n", 10000), 0);
    cr_assert_not_null(strstr(c.buf, "Content-Type: text/event-stream\r\n"));
    cr_assert_not_null(strstr(c.buf, "Cache-Control: no-cache\r\n"));
    ka = strstr(c.buf, ": keep-alive\n\n");
    cr_assert_not_null(ka, "no keep-alive comment in %s", c.buf);
    cr_assert(ka > strstr(c.buf, "data: tick 0\n\n") && ka < strstr(c.buf, "data: tick 1\n\n"),
              "the keep-alive is not between the events");
    cr_assert_eq(read_until(&c, "0\r\n\r\n", 10000), 0);
    bgt_conn_close(&c);
}
