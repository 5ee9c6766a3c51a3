/* test_http_parser.c: the HTTP/1.1 request-head parser from raw bytes, good and hostile. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../workers/http_parser.h"

static bg_http_limits limits;
static bg_http_request req;

static void limits_setup(void)
{
    bg_http_limits_default(&limits);
}

TestSuite(http_parser, .init = limits_setup);

/* Parses the whole buffer at once. */
static bg_http_parse_result parse_all(const char *buf, size_t len, bg_http_request *out,
                                      bg_http_error *err)
{
    bg_http_parser p;

    bg_http_parser_init(&p);
    *err = BG_HTTP_E_NONE;
    return bg_http_parse(&p, buf, len, &limits, out, err);
}

/* Moves a slice from a freed part onto the same offset of the caller's buffer. */
static void rebase(bg_bytes *b, const char *part, const char *buf)
{
    if (b->ptr != NULL)
        b->ptr = buf + (b->ptr - part);
}

/* Feeds the buffer one byte more per call, as a slow client would; each part is exactly
 * as long as the bytes received so far, so ASan catches any read past them. */
static bg_http_parse_result parse_bytewise(const char *buf, size_t len, bg_http_request *out,
                                           bg_http_error *err, size_t *calls)
{
    bg_http_parse_result r = BG_HTTP_PARSE_AGAIN;
    bg_http_parser p;
    size_t n, i;

    bg_http_parser_init(&p);
    *calls = 0;
    for (n = 1; n <= len && r == BG_HTTP_PARSE_AGAIN; n++) {
        char *part = malloc(n);
        cr_assert_not_null(part);
        memcpy(part, buf, n);
        r = bg_http_parse(&p, part, n, &limits, out, err);
        (*calls)++;
        if (r == BG_HTTP_PARSE_DONE) {
            rebase(&out->method_name, part, buf);
            rebase(&out->target, part, buf);
            rebase(&out->path, part, buf);
            rebase(&out->query, part, buf);
            rebase(&out->host, part, buf);
            for (i = 0; i < out->nheaders; i++) {
                rebase(&out->headers[i].name, part, buf);
                rebase(&out->headers[i].value, part, buf);
            }
            for (i = 0; i < out->nconn_tokens; i++)
                rebase(&out->conn_tokens[i], part, buf);
        }
        free(part);
    }
    return r;
}

static int slice_is(bg_bytes b, const char *s)
{
    return b.ptr != NULL && b.len == strlen(s) && memcmp(b.ptr, s, b.len) == 0;
}

/* Expects an error; returns its status. Checks the bytewise parse agrees. */
static int expect_error(const char *raw, bg_http_error want)
{
    bg_http_error err, err2;
    size_t calls;

    cr_assert_eq(parse_all(raw, strlen(raw), &req, &err), BG_HTTP_PARSE_ERROR, "accepted: %s", raw);
    cr_assert_eq(err, want, "error %d (%s), want %d for: %s", err, bg_http_error_str(err), want,
                 raw);
    cr_assert_eq(parse_bytewise(raw, strlen(raw), &req, &err2, &calls), BG_HTTP_PARSE_ERROR);
    cr_assert_eq(err2, want, "bytewise error %d, want %d", err2, want);
    return bg_http_error_status(err, NULL);
}

static void expect_done(const char *raw)
{
    bg_http_error err;

    cr_assert_eq(parse_all(raw, strlen(raw), &req, &err), BG_HTTP_PARSE_DONE, "rejected (%s): %s",
                 bg_http_error_str(err), raw);
}

Test(http_parser, simple_get)
{
    const char *raw = "GET /api/v1/users?id=7&x=y HTTP/1.1\r\n"
                      "Host: example.com:8080\r\n"
                      "User-Agent:  curl/8.0 \t\r\n"
                      "Accept: */*\r\n"
                      "\r\n";

    expect_done(raw);
    cr_assert_eq(req.method, BG_HTTP_M_GET);
    cr_assert(slice_is(req.method_name, "GET"));
    cr_assert(slice_is(req.target, "/api/v1/users?id=7&x=y"));
    cr_assert(slice_is(req.path, "/api/v1/users"));
    cr_assert(slice_is(req.query, "id=7&x=y"));
    cr_assert(slice_is(req.host, "example.com:8080"));
    cr_assert_eq(req.target_form, BG_HTTP_TARGET_ORIGIN);
    cr_assert_eq(req.version, 11);
    cr_assert_eq(req.keep_alive, 1);
    cr_assert_eq(req.chunked, 0);
    cr_assert_eq(req.content_length, 0);
    cr_assert_eq(req.expect_continue, 0);
    cr_assert_eq(req.head_len, strlen(raw));
    cr_assert_eq(req.nheaders, 3);
    cr_assert(slice_is(req.headers[1].name, "User-Agent"));
    cr_assert(slice_is(req.headers[1].value, "curl/8.0"), "value not trimmed");
    cr_assert(slice_is(bg_http_header_find(&req, "accept")->value, "*/*"));
    cr_assert_null(bg_http_header_find(&req, "Content-Length"));
}

Test(http_parser, no_query_means_null_query)
{
    expect_done("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    cr_assert(slice_is(req.path, "/"));
    cr_assert_null(req.query.ptr);
    expect_done("GET /x? HTTP/1.1\r\nHost: a\r\n\r\n");
    cr_assert(slice_is(req.path, "/x"));
    cr_assert_not_null(req.query.ptr);
    cr_assert_eq(req.query.len, 0);
}

Test(http_parser, post_with_body_and_head)
{
    const char *raw = "POST /orders HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n"
                      "Content-Type: application/json\r\n\r\n{\"a\":12345}";

    expect_done(raw);
    cr_assert_eq(req.method, BG_HTTP_M_POST);
    cr_assert_eq(req.content_length, 11);
    cr_assert_eq(req.head_len, strlen(raw) - 11);
    expect_done("HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n");
    cr_assert_eq(req.method, BG_HTTP_M_HEAD);
    expect_done("PATCH /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
    cr_assert_eq(req.method, BG_HTTP_M_PATCH);
    expect_done("PURGE /x HTTP/1.1\r\nHost: h\r\n\r\n");
    cr_assert_eq(req.method, BG_HTTP_M_OTHER);
    cr_assert(slice_is(req.method_name, "PURGE"));
    expect_done("get /x HTTP/1.1\r\nHost: h\r\n\r\n");
    cr_assert_eq(req.method, BG_HTTP_M_OTHER, "methods are case-sensitive");
}

Test(http_parser, http10_keep_alive_rules)
{
    expect_done("GET / HTTP/1.0\r\n\r\n");
    cr_assert_eq(req.version, 10);
    cr_assert_eq(req.keep_alive, 0);
    cr_assert_null(req.host.ptr);
    expect_done("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    cr_assert_eq(req.keep_alive, 1);
    expect_done("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n");
    cr_assert_eq(req.keep_alive, 0);
    expect_done("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    cr_assert_eq(req.keep_alive, 0);
    cr_assert(req.connection & BG_HTTP_CONN_CLOSE);
    expect_done("GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n");
    cr_assert_eq(req.expect_continue, 0, "100-continue is ignored for HTTP/1.0");
}

Test(http_parser, expect_continue_and_417)
{
    expect_done("PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-Continue\r\n\r\n");
    cr_assert_eq(req.expect_continue, 1);
    cr_assert_eq(
        expect_error("PUT /x HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n", BG_HTTP_E_EXPECT),
        417);
}

Test(http_parser, pipelined_requests_in_one_buffer)
{
    const char *raw = "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
                      "GET /b HTTP/1.1\r\nHost: h\r\n\r\n"
                      "DELETE /c?z HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    const char *paths[] = {"/a", "/b", "/c"};
    size_t off = 0, len = strlen(raw);
    bg_http_error err;
    int i;

    for (i = 0; i < 3; i++) {
        cr_assert_eq(parse_all(raw + off, len - off, &req, &err), BG_HTTP_PARSE_DONE);
        cr_assert(slice_is(req.path, paths[i]), "request %d", i);
        cr_assert_lt(req.head_len, len - off + 1);
        off += req.head_len + req.content_length;
    }
    cr_assert_eq(off, len);
    cr_assert_eq(req.method, BG_HTTP_M_DELETE);
    cr_assert_eq(req.keep_alive, 0);
}

Test(http_parser, need_more_until_the_empty_line)
{
    const char *raw = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    bg_http_parser p;
    bg_http_error err = BG_HTTP_E_NONE;
    size_t n;

    bg_http_parser_init(&p);
    for (n = 0; n < strlen(raw); n++)
        cr_assert_eq(bg_http_parse(&p, raw, n, &limits, &req, &err), BG_HTTP_PARSE_AGAIN, "n=%zu",
                     n);
    cr_assert_eq(bg_http_parse(&p, raw, n, &limits, &req, &err), BG_HTTP_PARSE_DONE);
    /* asking again answers the same */
    cr_assert_eq(bg_http_parse(&p, raw, n, &limits, &req, &err), BG_HTTP_PARSE_DONE);
    cr_assert_eq(req.head_len, n);
    bg_http_parser_init(&p);
    cr_assert_eq(bg_http_parse(&p, "GET /\n", 6, &limits, &req, &err), BG_HTTP_PARSE_ERROR);
    err = BG_HTTP_E_NONE;
    cr_assert_eq(bg_http_parse(&p, "GET /\n", 6, &limits, &req, &err), BG_HTTP_PARSE_ERROR);
    cr_assert_eq(err, BG_HTTP_E_BARE_LF);
}

Test(http_parser, bytewise_equals_whole)
{
    const char *raw = "\r\nPOST http://api.example.com/v1/x%20y?q=1 HTTP/1.1\r\n"
                      "Host: ignored.example\r\n"
                      "Transfer-Encoding: chunked\r\n"
                      "Connection: close, X-Trace\r\n"
                      "X-Trace: 1\r\n"
                      "X-Bin: caf\xc3\xa9\r\n"
                      "\r\n5\r\nhello\r\n0\r\n\r\n";
    bg_http_request whole, bytes;
    bg_http_error e1, e2;
    size_t calls, i;

    cr_assert_eq(parse_all(raw, strlen(raw), &whole, &e1), BG_HTTP_PARSE_DONE);
    cr_assert_eq(parse_bytewise(raw, strlen(raw), &bytes, &e2, &calls), BG_HTTP_PARSE_DONE);
    cr_assert_eq(whole.head_len, bytes.head_len);
    cr_assert_eq(calls, whole.head_len, "done exactly at the last byte of the head");
    cr_assert_eq(whole.nheaders, bytes.nheaders);
    cr_assert_eq(whole.path.ptr - raw,
                 bytes.path.ptr - bytes.target.ptr + (whole.target.ptr - raw));
    cr_assert_eq(whole.chunked, 1);
    cr_assert_eq(bytes.chunked, 1);
    cr_assert_eq(whole.target_form, BG_HTTP_TARGET_ABSOLUTE);
    cr_assert(slice_is(whole.host, "api.example.com"), "absolute-form authority wins");
    cr_assert(slice_is(whole.path, "/v1/x%20y"));
    cr_assert(slice_is(whole.query, "q=1"));
    cr_assert(slice_is(bytes.host, "api.example.com"));
    cr_assert_eq(whole.keep_alive, bytes.keep_alive);
    for (i = 0; i < whole.nheaders; i++) {
        cr_assert_eq(whole.headers[i].name.len, bytes.headers[i].name.len);
        cr_assert_eq(memcmp(whole.headers[i].value.ptr, bytes.headers[i].value.ptr,
                            whole.headers[i].value.len),
                     0);
        cr_assert_eq(whole.headers[i].hop_by_hop, bytes.headers[i].hop_by_hop);
    }
}

Test(http_parser, hop_by_hop_flags_and_helper)
{
    expect_done("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, X-Secret\r\nUpgrade: h2c\r\n"
                "X-Secret: s\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Kept: k\r\n\r\n");
    cr_assert_eq(req.nheaders, 7);
    for (size_t i = 0; i < req.nheaders; i++) {
        int kept = slice_is(req.headers[i].name, "X-Kept") || slice_is(req.headers[i].name, "Host");
        cr_assert_eq(req.headers[i].hop_by_hop, !kept, "header %zu", i);
    }
    cr_assert(req.connection & BG_HTTP_CONN_UPGRADE);
    cr_assert(req.connection & BG_HTTP_CONN_OTHER);
    cr_assert(bg_http_is_hop_by_hop(NULL, "Proxy-Authorization", 19));
    cr_assert(bg_http_is_hop_by_hop(NULL, "transfer-encoding", 17));
    cr_assert_not(bg_http_is_hop_by_hop(NULL, "Content-Type", 12));
    cr_assert(bg_http_is_hop_by_hop(&req, "x-secret", 8));
    cr_assert_not(bg_http_is_hop_by_hop(&req, "x-secre", 7));
}

Test(http_parser, leading_empty_lines_are_skipped_but_bounded)
{
    expect_done("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
    cr_assert(slice_is(req.path, "/"));
    char raw[256] = "";
    for (int i = 0; i <= BG_HTTP_MAX_LEADING_CRLF; i++)
        strcat(raw, "\r\n");
    strcat(raw, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    cr_assert_eq(expect_error(raw, BG_HTTP_E_BAD_REQUEST_LINE), 400);
}

Test(http_parser, target_forms)
{
    expect_done("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
    cr_assert_eq(req.target_form, BG_HTTP_TARGET_ASTERISK);
    cr_assert_eq(expect_error("GET * HTTP/1.1\r\nHost: h\r\n\r\n", BG_HTTP_E_BAD_TARGET), 400);
    cr_assert_eq(expect_error("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", BG_HTTP_E_CONNECT),
                 501);
    expect_done("GET HTTP://h HTTP/1.1\r\nHost: h\r\n\r\n");
    cr_assert_eq(req.path.len, 0, "http://h has an empty path, meaning /");
    cr_assert(req.path.ptr >= req.target.ptr && req.path.ptr <= req.target.ptr + req.target.len);
    cr_assert_eq(expect_error("GET https://h/ HTTP/1.1\r\nHost: h\r\n\r\n", BG_HTTP_E_BAD_TARGET),
                 400);
    cr_assert_eq(
        expect_error("GET http://u:p@h/ HTTP/1.1\r\nHost: h\r\n\r\n", BG_HTTP_E_BAD_TARGET), 400);
    cr_assert_eq(expect_error("GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n", BG_HTTP_E_BAD_TARGET),
                 400);
    cr_assert_eq(expect_error("GET x HTTP/1.1\r\nHost: h\r\n\r\n", BG_HTTP_E_BAD_TARGET), 400);
    cr_assert_eq(expect_error("GET /a#f HTTP/1.1\r\nHost: h\r\n\r\n", BG_HTTP_E_BAD_TARGET), 400);
    cr_assert_eq(expect_error("GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", BG_HTTP_E_BAD_TARGET),
                 400);
}

Test(http_parser, request_line_shapes)
{
    cr_assert_eq(expect_error("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", BG_HTTP_E_BAD_REQUEST_LINE),
                 400);
    cr_assert_eq(expect_error("GET /\r\n\r\n", BG_HTTP_E_BAD_REQUEST_LINE), 400);
    cr_assert_eq(expect_error("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", BG_HTTP_E_BAD_VERSION), 400);
    cr_assert_eq(expect_error("G(T / HTTP/1.1\r\nHost: h\r\n\r\n", BG_HTTP_E_BAD_METHOD), 400);
    cr_assert_eq(expect_error(" GET / HTTP/1.1\r\nHost: h\r\n\r\n", BG_HTTP_E_BAD_REQUEST_LINE),
                 400);
    cr_assert_eq(expect_error("GET / http/1.1\r\nHost: h\r\n\r\n", BG_HTTP_E_BAD_VERSION), 400);
    cr_assert_eq(expect_error("GET / HTTP/1.10\r\nHost: h\r\n\r\n", BG_HTTP_E_BAD_VERSION), 400);
}

Test(http_parser, version_505)
{
    cr_assert_eq(expect_error("GET / HTTP/2.0\r\nHost: h\r\n\r\n", BG_HTTP_E_VERSION), 505);
    cr_assert_eq(expect_error("GET / HTTP/0.9\r\n\r\n", BG_HTTP_E_VERSION), 505);
    cr_assert_eq(expect_error("GET / HTTP/1.2\r\nHost: h\r\n\r\n", BG_HTTP_E_VERSION), 505);
}

Test(http_parser, smuggling_shapes_are_400)
{
    cr_assert_eq(expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n",
                              BG_HTTP_E_CL_AND_TE),
                 400);
    cr_assert_eq(expect_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                              "Content-Length: 5\r\n\r\n",
                              BG_HTTP_E_CL_AND_TE),
                 400);
    cr_assert_eq(expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                              "Content-Length: 5\r\n\r\n",
                              BG_HTTP_E_DUP_CL),
                 400);
    cr_assert_eq(expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                              "Content-Length: 6\r\n\r\n",
                              BG_HTTP_E_DUP_CL),
                 400);
    cr_assert_eq(expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n",
                              BG_HTTP_E_DUP_CL),
                 400);
    cr_assert_eq(
        expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n", BG_HTTP_E_BAD_CL),
        400);
    cr_assert_eq(
        expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\n", BG_HTTP_E_BAD_CL),
        400);
    cr_assert_eq(
        expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", BG_HTTP_E_BAD_CL),
        400);
    cr_assert_eq(expect_error("POST / HTTP/1.1\r\nHost: h\r\n"
                              "Content-Length: 18446744073709551616\r\n\r\n",
                              BG_HTTP_E_BAD_CL),
                 400);
    cr_assert_eq(
        expect_error("POST / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", BG_HTTP_E_OBS_FOLD), 400);
    cr_assert_eq(expect_error("POST / HTTP/1.1\r\n\tHost: h\r\n\r\n", BG_HTTP_E_OBS_FOLD), 400);
}

Test(http_parser, line_endings)
{
    cr_assert_eq(expect_error("GET / HTTP/1.1\nHost: h\r\n\r\n", BG_HTTP_E_BARE_LF), 400);
    cr_assert_eq(expect_error("GET / HTTP/1.1\r\nHost: h\n\r\n", BG_HTTP_E_BARE_LF), 400);
    cr_assert_eq(expect_error("GET / HTTP/1.1\r\nHost: h\r\n\n", BG_HTTP_E_BARE_LF), 400);
    cr_assert_eq(expect_error("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", BG_HTTP_E_BARE_LF), 400);
    cr_assert_eq(expect_error("GET / HTTP/1.1\r\nX: a\rb\r\nHost: h\r\n\r\n", BG_HTTP_E_BARE_CR),
                 400);
    cr_assert_eq(expect_error("GET / HTTP/1.1\r\r\nHost: h\r\n\r\n", BG_HTTP_E_BARE_CR), 400);
}

Test(http_parser, header_name_and_value_rules)
{
    cr_assert_eq(expect_error("GET / HTTP/1.1\r\nHost : h\r\n\r\n", BG_HTTP_E_SPACE_BEFORE_COLON),
                 400);
    cr_assert_eq(expect_error("GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", BG_HTTP_E_SPACE_BEFORE_COLON),
                 400);
    cr_assert_eq(
        expect_error("GET / HTTP/1.1\r\nHost: h\r\nX@Y: 1\r\n\r\n", BG_HTTP_E_BAD_HEADER_NAME),
        400);
    cr_assert_eq(
        expect_error("GET / HTTP/1.1\r\nHost: h\r\n: 1\r\n\r\n", BG_HTTP_E_BAD_HEADER_NAME), 400);
    cr_assert_eq(
        expect_error("GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", BG_HTTP_E_BAD_HEADER_NAME),
        400);
    cr_assert_eq(
        expect_error("GET / HTTP/1.1\r\nHost: h\r\nX\x01Y: 1\r\n\r\n", BG_HTTP_E_BAD_HEADER_NAME),
        400);
    cr_assert_eq(
        expect_error("GET / HTTP/1.1\r\nHost: h\r\nX: a\x01\r\n\r\n", BG_HTTP_E_BAD_HEADER_VALUE),
        400);
    cr_assert_eq(
        expect_error("GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n", BG_HTTP_E_BAD_HEADER_VALUE),
        400);
    const char nul[] = "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n";
    bg_http_error err;
    cr_assert_eq(parse_all(nul, sizeof(nul) - 1, &req, &err), BG_HTTP_PARSE_ERROR);
    cr_assert_eq(err, BG_HTTP_E_BAD_HEADER_VALUE);
    expect_done("GET / HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9\tok\r\nY:\r\n\r\n");
    cr_assert(slice_is(req.headers[1].value, "caf\xc3\xa9\tok"), "obs-text and HTAB kept");
    cr_assert_eq(req.headers[2].value.len, 0);
}

Test(http_parser, host_rules)
{
    cr_assert_eq(expect_error("GET / HTTP/1.1\r\n\r\n", BG_HTTP_E_MISSING_HOST), 400);
    cr_assert_eq(expect_error("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", BG_HTTP_E_DUP_HOST),
                 400);
    cr_assert_eq(expect_error("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", BG_HTTP_E_DUP_HOST),
                 400);
    cr_assert_eq(expect_error("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", BG_HTTP_E_BAD_HOST), 400);
    cr_assert_eq(expect_error("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", BG_HTTP_E_BAD_HOST), 400);
    cr_assert_eq(expect_error("GET / HTTP/1.1\r\nHost:\r\n\r\n", BG_HTTP_E_BAD_HOST), 400);
    expect_done("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n");
    cr_assert(slice_is(req.host, "[::1]:8080"));
}

Test(http_parser, transfer_encoding_rules)
{
    expect_done("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ChunKed\r\n\r\n");
    cr_assert_eq(req.chunked, 1);
    cr_assert_eq(req.content_length, 0);
    expect_done("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,  chunked ,\r\n\r\n");
    cr_assert_eq(req.chunked, 1, "empty list elements are ignored");
    cr_assert_eq(expect_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n"
                              "\r\n",
                              BG_HTTP_E_TE_CODING),
                 501);
    cr_assert_eq(expect_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n",
                              BG_HTTP_E_TE_CODING),
                 501);
    cr_assert_eq(expect_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n"
                              "\r\n",
                              BG_HTTP_E_BAD_TE),
                 400);
    cr_assert_eq(expect_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
                              BG_HTTP_E_BAD_TE),
                 400);
    cr_assert_eq(expect_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n",
                              BG_HTTP_E_BAD_TE),
                 400);
    cr_assert_eq(expect_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;x=1\r\n"
                              "\r\n",
                              BG_HTTP_E_BAD_TE),
                 400);
    cr_assert_eq(
        expect_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n", BG_HTTP_E_BAD_TE),
        400);
    cr_assert_eq(
        expect_error("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", BG_HTTP_E_TE_HTTP10),
        400);
}

Test(http_parser, connection_token_rules)
{
    char raw[2048];
    size_t n;

    cr_assert_eq(expect_error("GET / HTTP/1.1\r\nHost: h\r\nConnection: a b\r\n\r\n",
                              BG_HTTP_E_BAD_CONNECTION),
                 400);
    n = (size_t)snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: h\r\nConnection: ");
    for (int i = 0; i <= BG_HTTP_MAX_CONN_TOKENS; i++)
        n += (size_t)snprintf(raw + n, sizeof(raw) - n, "x%d, ", i);
    snprintf(raw + n, sizeof(raw) - n, "close\r\n\r\n");
    cr_assert_eq(expect_error(raw, BG_HTTP_E_BAD_CONNECTION), 400);
}

Test(http_parser, body_limit_413)
{
    limits.max_request_body = 1000;
    expect_done("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n");
    cr_assert_eq(req.content_length, 1000);
    cr_assert_eq(expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1001\r\n\r\n",
                              BG_HTTP_E_BODY_TOO_LARGE),
                 413);
}

Test(http_parser, long_request_line_414)
{
    static char raw[20000];
    size_t n;

    n = (size_t)snprintf(raw, sizeof(raw), "GET /");
    memset(raw + n, 'a', 9000);
    n += 9000;
    snprintf(raw + n, sizeof(raw) - n, " HTTP/1.1\r\nHost: h\r\n\r\n");
    cr_assert_eq(expect_error(raw, BG_HTTP_E_URI_TOO_LONG), 414);
    /* without any CRLF yet: 414 as soon as the line is over the limit */
    bg_http_error err;
    cr_assert_eq(parse_all(raw, 8200, &req, &err), BG_HTTP_PARSE_ERROR);
    cr_assert_eq(err, BG_HTTP_E_URI_TOO_LONG);
    /* exactly at the limit is fine */
    limits.max_request_line = 28;
    expect_done("GET /12345678901234 HTTP/1.1\r\nHost: h\r\n\r\n");
    cr_assert_eq(
        expect_error("GET /123456789012345 HTTP/1.1\r\nHost: h\r\n\r\n", BG_HTTP_E_URI_TOO_LONG),
        414);
}

Test(http_parser, oversize_head_431)
{
    static char raw[40000];
    size_t n;
    bg_http_error err;

    n = (size_t)snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(raw + n, sizeof(raw) - n, "X-Filler-%02d: %0500d\r\n", i, 7);
    snprintf(raw + n, sizeof(raw) - n, "\r\n");
    cr_assert_eq(expect_error(raw, BG_HTTP_E_HEAD_TOO_LARGE), 431);
    /* an endless header line is refused once past the limit, before any CRLF */
    cr_assert_eq(parse_all(raw, limits.max_header_size + 1, &req, &err), BG_HTTP_PARSE_ERROR);
    cr_assert_eq(err, BG_HTTP_E_HEAD_TOO_LARGE);
    limits.max_header_size = 27;
    expect_done("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    limits.max_header_size = 26;
    cr_assert_eq(expect_error("GET / HTTP/1.1\r\nHost: h\r\n\r\n", BG_HTTP_E_HEAD_TOO_LARGE), 431);
}

Test(http_parser, too_many_headers_431)
{
    static char raw[8000];
    size_t n;

    limits.max_headers = 10;
    n = (size_t)snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 0; i < 9; i++)
        n += (size_t)snprintf(raw + n, sizeof(raw) - n, "X-%d: v\r\n", i);
    snprintf(raw + n, sizeof(raw) - n, "\r\n");
    expect_done(raw);
    cr_assert_eq(req.nheaders, 10);
    snprintf(raw + n, sizeof(raw) - n, "X-last: v\r\n\r\n");
    cr_assert_eq(expect_error(raw, BG_HTTP_E_TOO_MANY_HEADERS), 431);
    /* the limit is capped by the fixed array */
    limits.max_headers = 100000;
    limits.max_header_size = 1 << 20;
    n = (size_t)snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 0; i < BG_HTTP_MAX_HEADERS; i++)
        n += (size_t)snprintf(raw + n, sizeof(raw) - n, "X-%d: v\r\n", i);
    snprintf(raw + n, sizeof(raw) - n, "\r\n");
    cr_assert_eq(expect_error(raw, BG_HTTP_E_TOO_MANY_HEADERS), 431);
}

Test(http_parser, every_error_has_a_status_and_text)
{
    const char *reason = NULL;

    for (int e = 1; e < BG_HTTP_E_COUNT; e++) {
        int status = bg_http_error_status((bg_http_error)e, &reason);
        cr_assert(status == 400 || status == 413 || status == 414 || status == 417 ||
                      status == 431 || status == 501 || status == 505,
                  "error %d -> %d", e, status);
        cr_assert_str_neq(reason, "");
        cr_assert_str_neq(bg_http_error_str((bg_http_error)e), "unknown error");
    }
    cr_assert_eq(bg_http_error_status(BG_HTTP_E_BODY_TOO_LARGE, &reason), 413);
    cr_assert_str_eq(reason, "Content Too Large");
    cr_assert_eq(bg_http_error_status(BG_HTTP_E_HEAD_TOO_LARGE, &reason), 431);
    cr_assert_str_eq(reason, "Request Header Fields Too Large");
    cr_assert_eq(bg_http_error_status(BG_HTTP_E_COUNT, &reason), 500);
    cr_assert_str_eq(bg_http_reason(404), "Not Found");
    cr_assert_str_eq(bg_http_reason(799), "");
}
