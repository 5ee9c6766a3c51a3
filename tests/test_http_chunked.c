/* test_http_chunked.c: the chunked body decoder: data, extensions, trailers, limits, errors. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../workers/http_chunked.h"

typedef struct decoded {
    bg_http_chunked_result r;
    bg_http_error err;
    size_t consumed;
    size_t len;
    char body[4096];
} decoded;

/* Decodes all of in, step input bytes per call, into a separate buffer. */
static void decode_steps(const char *in, size_t inlen, size_t step, uint64_t max_body, decoded *d)
{
    bg_http_chunked c;
    size_t off = 0;

    bg_http_chunked_init(&c, max_body, 16, 64);
    memset(d, 0, sizeof(*d));
    d->r = BG_HTTP_CHUNKED_AGAIN;
    while (off < inlen && d->r == BG_HTTP_CHUNKED_AGAIN) {
        size_t n = inlen - off < step ? inlen - off : step, used = 0, made = 0;
        char *part = malloc(n);
        cr_assert_not_null(part);
        memcpy(part, in + off, n);
        d->r = bg_http_chunked_decode(&c, part, n, &used, d->body + d->len,
                                      sizeof(d->body) - d->len, &made, &d->err);
        free(part);
        cr_assert_leq(used, n);
        cr_assert_leq(made, used);
        off += used;
        d->len += made;
    }
    d->consumed = off;
}

static void expect_body(const char *in, const char *body, size_t trailing)
{
    size_t steps[] = {1, 2, 3, 7, 4096};
    decoded d;

    for (size_t i = 0; i < BG_ARRAY_LEN(steps); i++) {
        decode_steps(in, strlen(in), steps[i], 1 << 20, &d);
        cr_assert_eq(d.r, BG_HTTP_CHUNKED_DONE, "step %zu: %s", steps[i], bg_http_error_str(d.err));
        cr_assert_eq(d.len, strlen(body), "step %zu", steps[i]);
        cr_assert_eq(memcmp(d.body, body, d.len), 0);
        cr_assert_eq(d.consumed, strlen(in) - trailing, "step %zu", steps[i]);
    }
}

static void expect_fail(const char *in, bg_http_error want, int status)
{
    decoded d;

    decode_steps(in, strlen(in), 4096, 1 << 20, &d);
    cr_assert_eq(d.r, BG_HTTP_CHUNKED_ERROR, "accepted: %s", in);
    cr_assert_eq(d.err, want, "error %s for %s", bg_http_error_str(d.err), in);
    cr_assert_eq(bg_http_error_status(d.err, NULL), status);
    decode_steps(in, strlen(in), 1, 1 << 20, &d);
    cr_assert_eq(d.r, BG_HTTP_CHUNKED_ERROR);
    cr_assert_eq(d.err, want, "bytewise: %s", bg_http_error_str(d.err));
}

Test(http_chunked, simple_bodies)
{
    expect_body("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", 0);
    expect_body("0\r\n\r\n", "", 0);
    expect_body("A\r\n0123456789\r\n0\r\n\r\n", "0123456789", 0);
    expect_body("a\r\n0123456789\r\n000\r\n\r\n", "0123456789", 0);
    expect_body("0003\r\nabc\r\n0\r\n\r\n", "abc", 0);
}

Test(http_chunked, binary_data_with_crlf_and_nul_inside)
{
    const char in[] = "4\r\n\r\n\0\n\r\n0\r\n\r\n";
    decoded d;

    decode_steps(in, sizeof(in) - 1, 1, 100, &d);
    cr_assert_eq(d.r, BG_HTTP_CHUNKED_DONE);
    cr_assert_eq(d.len, 4);
    cr_assert_eq(memcmp(d.body, "\r\n\0\n", 4), 0);
}

Test(http_chunked, extensions_and_trailers_skipped)
{
    expect_body("5;name=value\r\nhello\r\n0;last\r\n\r\n", "hello", 0);
    expect_body("5 ;a=\"q\"\r\nhello\r\n0\r\n\r\n", "hello", 0);
    expect_body("5\r\nhello\r\n0\r\nX-Sum: 1\r\nX-Other: 2\r\n\r\n", "hello", 0);
}

Test(http_chunked, next_request_starts_after_body)
{
    const char *in = "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";

    expect_body(in, "abc", strlen("GET / HTTP/1.1\r\n"));
}

Test(http_chunked, in_place_decoding)
{
    char buf[] = "5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nT: v\r\n\r\nNEXT";
    bg_http_chunked c;
    bg_http_error err;
    size_t used = 0, made = 0;

    bg_http_chunked_init(&c, 1000, 0, 0);
    cr_assert_eq(bg_http_chunked_decode(&c, buf, strlen(buf), &used, buf, strlen(buf), &made, &err),
                 BG_HTTP_CHUNKED_DONE);
    cr_assert_eq(made, 11);
    cr_assert_eq(memcmp(buf, "hello world", 11), 0);
    cr_assert_str_eq(buf + used, "NEXT");
}

Test(http_chunked, small_output_buffer_resumes)
{
    const char *in = "a\r\n0123456789\r\n0\r\n\r\n";
    bg_http_chunked c;
    bg_http_error err;
    char out[3], body[32];
    size_t off = 0, len = 0, used, made;
    bg_http_chunked_result r = BG_HTTP_CHUNKED_AGAIN;
    int calls = 0;

    bg_http_chunked_init(&c, 1000, 0, 0);
    while (r == BG_HTTP_CHUNKED_AGAIN && calls++ < 100) {
        r = bg_http_chunked_decode(&c, in + off, strlen(in) - off, &used, out, sizeof(out), &made,
                                   &err);
        memcpy(body + len, out, made);
        len += made;
        off += used;
    }
    cr_assert_eq(r, BG_HTTP_CHUNKED_DONE);
    cr_assert_eq(len, 10);
    cr_assert_eq(memcmp(body, "0123456789", 10), 0);
    cr_assert_eq(off, strlen(in));
    /* no output buffer: stops at the first data byte */
    bg_http_chunked_init(&c, 1000, 0, 0);
    cr_assert_eq(bg_http_chunked_decode(&c, in, strlen(in), &used, NULL, 0, &made, &err),
                 BG_HTTP_CHUNKED_AGAIN);
    cr_assert_eq(used, 3);
    cr_assert_eq(made, 0);
}

Test(http_chunked, bad_chunk_sizes)
{
    expect_fail("x\r\nhello\r\n0\r\n\r\n", BG_HTTP_E_BAD_CHUNK_SIZE, 400);
    expect_fail("\r\nhello\r\n0\r\n\r\n", BG_HTTP_E_BAD_CHUNK_SIZE, 400);
    expect_fail("-5\r\nhello\r\n0\r\n\r\n", BG_HTTP_E_BAD_CHUNK_SIZE, 400);
    expect_fail("0x5\r\nhello\r\n0\r\n\r\n", BG_HTTP_E_BAD_CHUNK_SIZE, 400);
    expect_fail("5g\r\nhello\r\n0\r\n\r\n", BG_HTTP_E_BAD_CHUNK_SIZE, 400);
    expect_fail(" 5\r\nhello\r\n0\r\n\r\n", BG_HTTP_E_BAD_CHUNK_SIZE, 400);
    /* 2^64: overflows */
    expect_fail("10000000000000000\r\n", BG_HTTP_E_BAD_CHUNK_SIZE, 400);
    expect_fail("000000000000000000000000000000001\r\na\r\n0\r\n\r\n", BG_HTTP_E_BAD_CHUNK_SIZE,
                400);
}

Test(http_chunked, missing_crlf)
{
    expect_fail("5\r\nhelloX\r\n0\r\n\r\n", BG_HTTP_E_CHUNK_CRLF, 400);
    expect_fail("5\r\nhello\rX0\r\n\r\n", BG_HTTP_E_CHUNK_CRLF, 400);
    expect_fail("5\r\nhello\n0\r\n\r\n", BG_HTTP_E_CHUNK_CRLF, 400);
    expect_fail("5\nhello\r\n0\r\n\r\n", BG_HTTP_E_BAD_CHUNK_SIZE, 400);
    expect_fail("5\rhello\r\n0\r\n\r\n", BG_HTTP_E_CHUNK_CRLF, 400);
    expect_fail("5;a\nhello\r\n0\r\n\r\n", BG_HTTP_E_CHUNK_CRLF, 400);
    expect_fail("0\r\n\rX", BG_HTTP_E_BAD_TRAILER, 400);
}

Test(http_chunked, extension_limits)
{
    /* the test decoder allows 16 extension bytes */
    expect_body("1;aaaaaaaaaaaaaa\r\nx\r\n0\r\n\r\n", "x", 0);
    expect_fail("1;aaaaaaaaaaaaaaaaaaaa\r\nx\r\n0\r\n\r\n", BG_HTTP_E_BAD_CHUNK_EXT, 400);
    expect_fail("1;a\x01\r\nx\r\n0\r\n\r\n", BG_HTTP_E_BAD_CHUNK_EXT, 400);
    expect_fail("1 x\r\nx\r\n0\r\n\r\n", BG_HTTP_E_BAD_CHUNK_EXT, 400);
    expect_fail("1 \r\nx\r\n0\r\n\r\n", BG_HTTP_E_BAD_CHUNK_EXT, 400);
}

Test(http_chunked, trailer_limits)
{
    /* the test decoder allows 64 trailer bytes */
    expect_fail(
        "0\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
        BG_HTTP_E_BAD_TRAILER, 400);
    expect_fail("0\r\nX: a\nY: b\r\n\r\n", BG_HTTP_E_BAD_TRAILER, 400);
    expect_fail("0\r\nX: a\r\n folded\r\n\r\n", BG_HTTP_E_BAD_TRAILER, 400);
    expect_fail("0\r\nX: a\x01\r\n\r\n", BG_HTTP_E_BAD_TRAILER, 400);
    expect_fail("0\r\n\n", BG_HTTP_E_BAD_TRAILER, 400);
}

Test(http_chunked, body_limit_413)
{
    decoded d;
    const char *in = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";

    decode_steps(in, strlen(in), 4096, 11, &d);
    cr_assert_eq(d.r, BG_HTTP_CHUNKED_DONE);
    decode_steps(in, strlen(in), 4096, 10, &d);
    cr_assert_eq(d.r, BG_HTTP_CHUNKED_ERROR);
    cr_assert_eq(d.err, BG_HTTP_E_BODY_TOO_LARGE);
    cr_assert_eq(bg_http_error_status(d.err, NULL), 413);
    cr_assert_eq(d.len, 5, "the oversized chunk was refused before any of its data");
    decode_steps("ffffffffffffffff\r\n", 18, 1, 1 << 20, &d);
    cr_assert_eq(d.err, BG_HTTP_E_BODY_TOO_LARGE);
}

Test(http_chunked, sticky_states)
{
    bg_http_chunked c;
    bg_http_error err = BG_HTTP_E_NONE;
    size_t used, made;
    char out[8];

    bg_http_chunked_init(&c, 100, 0, 0);
    cr_assert_eq(bg_http_chunked_decode(&c, "zz", 2, &used, out, sizeof(out), &made, &err),
                 BG_HTTP_CHUNKED_ERROR);
    err = BG_HTTP_E_NONE;
    cr_assert_eq(bg_http_chunked_decode(&c, "0\r\n\r\n", 5, &used, out, sizeof(out), &made, &err),
                 BG_HTTP_CHUNKED_ERROR);
    cr_assert_eq(err, BG_HTTP_E_BAD_CHUNK_SIZE);
    cr_assert_eq(used, 0);
    bg_http_chunked_init(&c, 100, 0, 0);
    cr_assert_eq(bg_http_chunked_decode(&c, "0\r\n\r\n", 5, &used, out, sizeof(out), &made, &err),
                 BG_HTTP_CHUNKED_DONE);
    cr_assert_eq(bg_http_chunked_decode(&c, "1\r\n", 3, &used, out, sizeof(out), &made, &err),
                 BG_HTTP_CHUNKED_DONE);
    cr_assert_eq(used, 0);
}
