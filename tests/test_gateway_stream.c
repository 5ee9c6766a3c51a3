/* test_gateway_stream.c: streamed responses end to end (valkey-server, busgated with 2 workers,
 * echo-service): pieces in order as chunks, HTTP/1.0 close-delimited, a service's
 * Content-Length passed through, HEAD, a client that leaves (CANCEL client_gone), the idle
 * limit (CANCEL stream_idle), SSE keep-alives, a slow reader of 64 MiB whose worker memory
 * stays bounded, broken streams (gap, duplicate, unknown id, a reason) injected on the reply
 * stream, a whole RESPONSE as before, a request pipelined behind a stream, and the SDK's
 * fallback to one whole RESPONSE for a gateway that does not stream. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
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

/* One timeout for the whole suite: a test of its own timeout running beside others makes
 * Criterion's parallel runner leak 48 bytes, which LeakSanitizer reports. */
TestSuite(gateway_stream, .init = setup, .fini = teardown, .timeout = 300);

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

static bg_bus *bus_open(void)
{
    bg_bus *b = bgt_fix_bus_open(&fix);

    cr_assert_not_null(b, "no bus connection to the fixture's valkey-server");
    return b;
}

static int wait_cancel(bg_bus *b, const char *id, const char *reason)
{
    long long until = bgt_now_ms() + 8000;

    while (bgt_fix_cancel_count(b, id, reason) == 0 && bgt_now_ms() < until)
        sleep_ms(50);
    return bgt_fix_cancel_count(b, id, reason);
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
        if ((n = read(c->fd, tmp, sizeof(tmp))) <= 0) {
            c->eof = n == 0;
            return -1;
        }
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

/* Reads, keeping what arrives, until the gateway closes: 1, or 0 on a timeout. */
static int read_to_eof(bgt_conn *c, int timeout_ms)
{
    read_until(c, "\x01never\x02", timeout_ms);
    return c->eof;
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
    /* The SDK saw it: the echo's writer stopped with the request cancelled. */
    cr_assert_eq(bgt_wait_file(fix.echo_log[0], "the request was cancelled", 8000), 0,
                 "the service did not stop streaming");
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
    cr_assert(read_to_eof(&c, 8000), "connection not closed");
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

/* ---- a slow reader of a large stream ---- */

#define BIG_PIECES 1024
#define BIG_PIECE 65536
#define BIG_TOTAL ((uint64_t)BIG_PIECES * BIG_PIECE)
/* Worker memory may grow by this much at most while 64 MiB pass through it: one XREAD of
 * the reply stream carries up to 256 entries (16 MiB of 64 KiB pieces) before any piece is
 * held, 16 once some are; plus stream_buffer. A worker that buffered the stream would need
 * about 64 MiB less what the sockets hold. */
#define BIG_RSS_LIMIT_KB (32 * 1024)

/* A field of /proc/PID/status in kB; -1 when absent. */
static long proc_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, field, strlen(field)) == 0)
            kb = strtol(line + strlen(field), NULL, 10);
    fclose(f);
    return kb;
}

/* A chunked body decoded as bytes arrive, each byte checked against the counters. */
typedef struct chunk_reader {
    char line[64];
    size_t nline;
    uint64_t left;  /* data bytes left in the current chunk */
    int crlf;       /* bytes of the CRLF after a chunk still to skip */
    int done;       /* the last chunk was read */
    uint64_t total; /* data bytes so far */
} chunk_reader;

static void chunk_feed(chunk_reader *cr, const char *p, size_t n)
{
    while (n > 0 && !cr->done) {
        if (cr->left > 0) {
            size_t k = n < cr->left ? n : (size_t)cr->left;
            expect_counters(p, k, cr->total);
            cr->total += k;
            cr->left -= k;
            p += k;
            n -= k;
            cr->crlf = cr->left == 0 ? 2 : 0;
        } else if (cr->crlf > 0) {
            cr->crlf--;
            p++;
            n--;
        } else {
            cr_assert_lt(cr->nline, sizeof(cr->line) - 1, "chunk size line too long");
            cr->line[cr->nline++] = *p++;
            n--;
            if (cr->nline < 2 || cr->line[cr->nline - 1] != '\n')
                continue;
            cr->line[cr->nline] = '\0';
            cr->left = strtoull(cr->line, NULL, 16);
            cr->nline = 0;
            if (cr->left == 0)
                cr->done = 1;
        }
    }
}

static int slow_connect(void)
{
    static const char req[] = "GET /echo/stream?n=1024&size=65536 HTTP/1.1\r\nHost: t\r\n\r\n";
    int fd = socket(AF_INET, SOCK_STREAM, 0), rcv = 16384;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fix.port)};

    cr_assert_geq(fd, 0);
    /* A small receive window, so the gateway's socket fills early and it must hold. */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(req) - 1);
    return fd;
}

/* Reads the head, then the body 16 KiB per millisecond at most; returns the most any
 * worker's VmRSS rose above base while reading. */
static long slow_read(int fd, chunk_reader *cr, const pid_t *w, const long *base, int nw)
{
    struct timespec pause = {0, 1000000L};
    char buf[16384], head[4096];
    size_t nhead = 0;
    long grew = 0, next_sample = 0;
    ssize_t n;

    while (!cr->done) {
        size_t off = 0;
        if ((n = read(fd, buf, sizeof(buf))) < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            cr_log_error("read: %s",
                         n == 0 ? "the gateway closed the connection" : strerror(errno));
            break;
        }
        while (nhead < 4 || memcmp(head + nhead - 4, "\r\n\r\n", 4) != 0) {
            cr_assert_lt(nhead, sizeof(head) - 1);
            if (off == (size_t)n)
                break;
            head[nhead++] = buf[off++];
        }
        head[nhead] = '\0';
        if (off < (size_t)n) {
            cr_assert_not_null(strstr(head, "Transfer-Encoding: chunked"), "%s", head);
            chunk_feed(cr, buf + off, (size_t)n - off);
        }
        if ((long)(cr->total >> 20) >= next_sample) {
            for (int i = 0; i < nw; i++)
                if (proc_kb(w[i], "VmRSS:") - base[i] > grew)
                    grew = proc_kb(w[i], "VmRSS:") - base[i];
            next_sample += 4;
        }
        nanosleep(&pause, NULL);
    }
    return grew;
}

Test(gateway_stream, slow_reader_of_64mib_gets_every_byte_with_bounded_worker_memory)
{
    pid_t w[8];
    long base[8], grew, hwm_grew = 0;
    int nw = bgt_gw_workers(&fix.g, w, 8), fd;
    chunk_reader cr = {0};

    cr_assert_gt(nw, 0);
    for (int i = 0; i < nw; i++)
        if ((base[i] = proc_kb(w[i], "VmRSS:")) < 0)
            cr_skip_test("/proc/%d/status has no VmRSS: memory cannot be measured", (int)w[i]);
    fd = slow_connect();
    grew = slow_read(fd, &cr, w, base, nw);
    close(fd);
    if (!cr.done) {
        char *log = bgt_gw_log_text(&fix.g);
        cr_log_error("gateway log:\n%s", log);
        free(log);
    }
    cr_assert(cr.done, "the stream did not end (got %llu bytes)", (unsigned long long)cr.total);
    cr_assert_eq(cr.total, BIG_TOTAL);
    for (int i = 0; i < nw; i++)
        if (proc_kb(w[i], "VmHWM:") - base[i] > hwm_grew)
            hwm_grew = proc_kb(w[i], "VmHWM:") - base[i];
    cr_log_info("worker RSS rose by at most %ld kB sampled, %ld kB peak (VmHWM)", grew, hwm_grew);
#if defined(__SANITIZE_ADDRESS__)
    cr_log_info("ASan build: its quarantine keeps freed memory, the RSS bound is not checked");
#else
    cr_assert_lt(hwm_grew, BIG_RSS_LIMIT_KB, "a worker grew by %ld kB for a 64 MiB stream",
                 hwm_grew);
#endif
}

/* ---- broken streams, written by hand onto the reply stream ---- */

/* The newest REQUEST on the echo stream: its id and reply key ("" when none). */
static void newest_request(bg_bus *b, char *id, char *reply_to)
{
    char err[BG_ERR_LEN];
    redisReply *r = bg_bus_command(b, err, "XREVRANGE router:requests:{echo} + - COUNT 1");

    id[0] = reply_to[0] = '\0';
    for (size_t i = 0; r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
                       i + 1 < r->element[0]->element[1]->elements;
         i += 2) {
        redisReply *kv = r->element[0]->element[1];
        if (strcmp(kv->element[i]->str, "id") == 0)
            snprintf(id, 64, "%s", kv->element[i + 1]->str);
        if (strcmp(kv->element[i]->str, "reply_to") == 0)
            snprintf(reply_to, 256, "%s", kv->element[i + 1]->str);
    }
    if (r != NULL)
        freeReplyObject(r);
}

/* Sends a slow request (the echo answers it only after 5 s) and returns once its REQUEST
 * is on the bus, with its id and reply key. */
static void slow_request_on_bus(bg_bus *b, bgt_conn *c, char *id, char *reply_to)
{
    char prev[64], ignored[256];
    long long until = bgt_now_ms() + 10000;

    newest_request(b, prev, ignored);
    open_send(c, "GET /echo/slow?ms=5000 HTTP/1.1\r\nHost: t\r\n\r\n");
    do {
        newest_request(b, id, reply_to);
        if (id[0] != '\0' && strcmp(id, prev) != 0)
            return;
        sleep_ms(10);
    } while (bgt_now_ms() < until);
    cr_assert_fail("the request never reached the bus");
}

static void xadd_ok(bg_bus *b, redisReply *r, const char *what)
{
    (void)b;
    cr_assert(r != NULL && r->type == REDIS_REPLY_STRING, "XADD %s failed", what);
    freeReplyObject(r);
}

static void add_head(bg_bus *b, const char *reply_to, const char *id)
{
    char err[BG_ERR_LEN];

    xadd_ok(b,
            bg_bus_command(b, err,
                           "XADD %s * v 1 type RESPONSE id %s instance hand status 200 stream 1 "
                           "meta {\"headers\":[[\"Content-Type\",\"text/plain\"]]}",
                           reply_to, id),
            "head");
}

static void add_piece(bg_bus *b, const char *reply_to, const char *id, int seq, const char *body)
{
    char err[BG_ERR_LEN];

    xadd_ok(b,
            bg_bus_command(b, err,
                           "XADD %s * v 1 type RESPONSE_CHUNK id %s instance hand seq %d body %s",
                           reply_to, id, seq, body),
            "piece");
}

Test(gateway_stream, repeated_piece_is_dropped_and_a_gap_breaks_the_stream_off)
{
    bg_bus *b = bus_open();
    char id[64], reply_to[256], err[BG_ERR_LEN];
    bgt_conn c;

    slow_request_on_bus(b, &c, id, reply_to);
    add_head(b, reply_to, id);
    add_piece(b, reply_to, id, 1, "one;");
    add_piece(b, reply_to, id, 1, "one-again;"); /* a repeat: dropped */
    add_piece(b, reply_to, id, 2, "two;");
    cr_assert_eq(read_until(&c, "two;", 10000), 0);
    add_piece(b, reply_to, id, 4, "four;"); /* piece 3 is missing */
    cr_assert(read_to_eof(&c, 8000), "connection not closed after the gap");
    cr_assert_not_null(memmem(c.buf, c.len, "4\r\none;\r\n4\r\ntwo;\r\n", 18), "%s", c.buf);
    cr_assert_null(memmem(c.buf, c.len, "one-again", 9));
    cr_assert_null(memmem(c.buf, c.len, "four", 4));
    cr_assert_eq(wait_cancel(b, id, "stream_error"), 1, "no CANCEL stream_error for %s", id);
    cr_assert_eq(bgt_gw_wait_log(&fix.g, "pieces are missing", 1, 5000), 0);
    cr_assert_eq(bgt_gw_wait_log(&fix.g, "repeated", 1, 5000), 0);
    bgt_conn_close(&c);
    /* A piece for no request of ours is dropped; the gateway goes on serving. */
    xadd_ok(b,
            bg_bus_command(b, err,
                           "XADD %s * v 1 type RESPONSE_CHUNK id 00000000000000000000000000000000 "
                           "seq 1 body x",
                           reply_to),
            "stray piece");
    cr_assert_eq(bgt_fix_wait_status(&fix, "/echo/1", 200, 5000), 200);
    bg_bus_free(b);
}

Test(gateway_stream, service_ending_a_stream_with_a_reason_truncates_the_body)
{
    bg_bus *b = bus_open();
    char id[64], reply_to[256], err[BG_ERR_LEN];
    bgt_conn c;

    slow_request_on_bus(b, &c, id, reply_to);
    add_head(b, reply_to, id);
    add_piece(b, reply_to, id, 1, "partial;");
    xadd_ok(b,
            bg_bus_command(b, err,
                           "XADD %s * v 1 type RESPONSE_CHUNK id %s instance hand seq 2 final 1 "
                           "reason %s",
                           reply_to, id, "handler failed"),
            "last piece");
    cr_assert(read_to_eof(&c, 8000), "connection not closed");
    cr_assert_not_null(memmem(c.buf, c.len, "partial;", 8));
    cr_assert_null(memmem(c.buf, c.len, "0\r\n\r\n", 5), "the body must not look complete");
    bgt_conn_close(&c);
    bg_bus_free(b);
}

/* ---- the SDK and a gateway that does not stream ---- */

/* The entry on key whose type is want: its fields copied as "name=value;" into out. */
static int find_reply(bg_bus *b, const char *key, const char *want, char *out, size_t len)
{
    char err[BG_ERR_LEN];
    redisReply *r = bg_bus_command(b, err, "XRANGE %s - +", key);
    int found = 0;

    out[0] = '\0';
    for (size_t i = 0; r != NULL && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *kv = r->element[i]->element[1];
        int match = 0;
        for (size_t j = 0; j + 1 < kv->elements; j += 2)
            match |= strcmp(kv->element[j]->str, "type") == 0 &&
                     strcmp(kv->element[j + 1]->str, want) == 0;
        for (size_t j = 0; match && !found && j + 1 < kv->elements; j += 2) {
            size_t at = strlen(out);
            snprintf(out + at, len - at, "%s=%s;", kv->element[j]->str, kv->element[j + 1]->str);
        }
        found |= match;
    }
    if (r != NULL)
        freeReplyObject(r);
    return found;
}

Test(gateway_stream, sdk_answers_a_gateway_without_the_feature_with_one_response)
{
    bg_bus *b = bus_open();
    char err[BG_ERR_LEN], fields[2048];
    long long until;
    redisReply *r;

    /* What a gateway of before streaming sends: no meta.features. */
    xadd_ok(b, bg_bus_command(b, err, "XADD test:replies:old * created-by test"), "reply key");
    r = bg_bus_command(b, err,
                       "XADD router:requests:{echo} * v 1 type REQUEST id old-gw:0:1 service echo "
                       "method GET path /echo/stream query n=3 endpoint /echo/stream "
                       "reply_to test:replies:old deadline %lld gateway old-gw",
                       (long long)bg_wall_ms() + 20000);
    xadd_ok(b, r, "request");
    until = bgt_now_ms() + 10000;
    while (!find_reply(b, "test:replies:old", "RESPONSE", fields, sizeof(fields)) &&
           bgt_now_ms() < until)
        sleep_ms(20);
    cr_assert_not_null(strstr(fields, "status=200;"), "no whole RESPONSE: '%s'", fields);
    cr_assert_not_null(strstr(fields, "body=piece 0\npiece 1\npiece 2\n;"), "%s", fields);
    cr_assert_null(strstr(fields, "stream="), "%s", fields);
    cr_assert(!find_reply(b, "test:replies:old", "RESPONSE_CHUNK", fields, sizeof(fields)),
              "a piece went to a gateway that cannot read it");
    bg_bus_free(b);
}

Test(gateway_stream, whole_response_without_stream_field_still_works)
{
    bg_bus *b = bus_open();
    char id[64], reply_to[256], err[BG_ERR_LEN];
    bgt_conn c;
    bgt_resp r;

    /* A service of before streaming answers with one RESPONSE, whatever features say. */
    slow_request_on_bus(b, &c, id, reply_to);
    xadd_ok(b,
            bg_bus_command(b, err,
                           "XADD %s * v 1 type RESPONSE id %s instance hand status 201 meta "
                           "{\"headers\":[[\"Content-Type\",\"text/plain\"]]} body whole",
                           reply_to, id),
            "response");
    cr_assert_eq(bgt_conn_read(&c, &r, 0, 8000), 0);
    cr_assert_eq(r.status, 201);
    cr_assert_not_null(strstr(r.head, "Content-Length: 5\r\n"), "%s", r.head);
    cr_assert_null(strstr(r.head, "Transfer-Encoding"));
    cr_assert_str_eq(r.body, "whole");
    bgt_resp_free(&r);
    bgt_conn_close(&c);
    bg_bus_free(b);
}

Test(gateway_stream, pipelined_request_is_answered_after_the_stream)
{
    static const char reqs[] = "GET /echo/stream?n=3&ms=50 HTTP/1.1\r\nHost: t\r\n\r\n"
                               "GET /echo/2 HTTP/1.1\r\nHost: t\r\n\r\n";
    bgt_conn c;
    bgt_resp r;

    open_send(&c, reqs);
    cr_assert_eq(bgt_conn_read(&c, &r, 0, 10000), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "piece 0\npiece 1\npiece 2\n");
    bgt_resp_free(&r);
    cr_assert_eq(bgt_conn_read(&c, &r, 0, 10000), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(strstr(r.body, "\"path\":\"/echo/2\""), "%s", r.body);
    bgt_resp_free(&r);
    bgt_conn_close(&c);
}
