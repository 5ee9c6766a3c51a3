/* fuzz_http.c: libFuzzer target for the HTTP request parser, chunked decoder and path
 * normaliser: arbitrary bytes in, invariants checked, any violation aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../workers/http_chunked.h"
#include "../../workers/http_parser.h"
#include "../../workers/http_path.h"

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_http: invariant failed at %s:%d: %s\n", __FILE__, __LINE__,      \
                    #cond);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Small limits so that inputs of a few KiB reach every limit. */
static void fuzz_limits(bg_http_limits *lim)
{
    bg_http_limits_default(lim);
    lim->max_request_line = 200;
    lim->max_header_size = 1500;
    lim->max_headers = 24;
    lim->max_request_body = 3000;
}

static int slice_inside(bg_bytes b, const char *base, size_t len)
{
    if (b.ptr == NULL)
        return b.len == 0;
    return b.ptr >= base && b.ptr <= base + len && b.len <= (size_t)(base + len - b.ptr);
}

static int has_byte(bg_bytes b, int c)
{
    return b.len > 0 && memchr(b.ptr, c, b.len) != NULL;
}

static void check_header(const bg_http_header *h, const char *head, size_t head_len)
{
    FUZZ_CHECK(slice_inside(h->name, head, head_len));
    FUZZ_CHECK(slice_inside(h->value, head, head_len));
    FUZZ_CHECK(h->name.len > 0);
    FUZZ_CHECK(!has_byte(h->name, ':') && !has_byte(h->name, ' '));
    FUZZ_CHECK(!has_byte(h->value, '\r') && !has_byte(h->value, '\n'));
    FUZZ_CHECK(!has_byte(h->value, '\0'));
    if (h->value.len > 0) {
        FUZZ_CHECK(h->value.ptr[0] != ' ' && h->value.ptr[0] != '\t');
        FUZZ_CHECK(h->value.ptr[h->value.len - 1] != ' ' && h->value.ptr[h->value.len - 1] != '\t');
    }
    FUZZ_CHECK(h->hop_by_hop == 0 || h->hop_by_hop == 1);
}

/* Everything a successful parse promises about its result. */
static void check_request(const bg_http_request *req, const char *buf, size_t len,
                          const bg_http_limits *lim)
{
    size_t i, n = req->head_len;

    FUZZ_CHECK(n >= 4 && n <= len && n <= lim->max_header_size);
    FUZZ_CHECK(memcmp(buf + n - 4, "\r\n\r\n", 4) == 0);
    FUZZ_CHECK(slice_inside(req->method_name, buf, n) && req->method_name.len > 0);
    FUZZ_CHECK(slice_inside(req->target, buf, n) && req->target.len > 0);
    FUZZ_CHECK(slice_inside(req->path, req->target.ptr, req->target.len));
    FUZZ_CHECK(slice_inside(req->query, req->target.ptr, req->target.len));
    FUZZ_CHECK(slice_inside(req->host, buf, n));
    FUZZ_CHECK(!has_byte(req->target, ' ') && !has_byte(req->target, '#'));
    FUZZ_CHECK(req->version == 10 || req->version == 11);
    FUZZ_CHECK(req->keep_alive == 0 || req->keep_alive == 1);
    FUZZ_CHECK(req->version == 11 || req->chunked == 0);
    FUZZ_CHECK(req->version == 10 || req->host.ptr != NULL);
    FUZZ_CHECK(!req->chunked || req->content_length == 0);
    FUZZ_CHECK(req->content_length <= lim->max_request_body);
    FUZZ_CHECK(req->nheaders <= lim->max_headers && req->nheaders <= BG_HTTP_MAX_HEADERS);
    FUZZ_CHECK(req->nconn_tokens <= BG_HTTP_MAX_CONN_TOKENS);
    for (i = 0; i < req->nheaders; i++)
        check_header(&req->headers[i], buf, n);
    for (i = 0; i < req->nconn_tokens; i++)
        FUZZ_CHECK(slice_inside(req->conn_tokens[i], buf, n));
}

/* Parses buf whole, then again in pieces (each piece an exactly sized copy so ASan sees
 * over-reads): both must agree on the outcome. */
static bg_http_parse_result parse_twice(const char *buf, size_t len, const bg_http_limits *lim,
                                        bg_http_request *req, bg_http_error *err)
{
    static bg_http_request again;
    bg_http_parse_result r, r2 = BG_HTTP_PARSE_AGAIN;
    bg_http_error e2 = BG_HTTP_E_NONE;
    bg_http_parser p;
    size_t cut, step = len / 3 + 1;

    bg_http_parser_init(&p);
    *err = BG_HTTP_E_NONE;
    r = bg_http_parse(&p, buf, len, lim, req, err);
    FUZZ_CHECK(r == BG_HTTP_PARSE_DONE || r == BG_HTTP_PARSE_AGAIN || r == BG_HTTP_PARSE_ERROR);
    FUZZ_CHECK((r == BG_HTTP_PARSE_ERROR) == (*err != BG_HTTP_E_NONE));
    bg_http_parser_init(&p);
    for (cut = step < len ? step : len; r2 == BG_HTTP_PARSE_AGAIN; cut += step) {
        size_t n = cut < len ? cut : len;
        char *part = malloc(n ? n : 1);
        FUZZ_CHECK(part != NULL);
        memcpy(part, buf, n);
        r2 = bg_http_parse(&p, part, n, lim, &again, &e2);
        if (r2 == BG_HTTP_PARSE_DONE)
            FUZZ_CHECK(again.head_len == req->head_len && again.nheaders == req->nheaders &&
                       again.path.ptr - part == req->path.ptr - buf);
        free(part);
        if (n == len)
            break;
    }
    FUZZ_CHECK(r2 == r && e2 == *err);
    return r;
}

/* Decodes in[0..len) in pieces into a separate buffer, and again in place: same outcome. */
static void fuzz_chunked(const char *in, size_t len, uint64_t max_body, size_t step)
{
    bg_http_chunked a, b;
    bg_http_chunked_result ra = BG_HTTP_CHUNKED_AGAIN, rb;
    bg_http_error ea = BG_HTTP_E_NONE, eb = BG_HTTP_E_NONE;
    char *out = malloc(len + 1), *inplace = malloc(len + 1);
    size_t off = 0, made = 0, used, n, ub, pb;

    FUZZ_CHECK(out != NULL && inplace != NULL);
    bg_http_chunked_init(&a, max_body, 64, 256);
    while (off < len && ra == BG_HTTP_CHUNKED_AGAIN) {
        n = len - off < step ? len - off : step;
        ra = bg_http_chunked_decode(&a, in + off, n, &used, out + made, len + 1 - made, &pb, &ea);
        FUZZ_CHECK(used <= n && pb <= used);
        off += used;
        made += pb;
    }
    FUZZ_CHECK(a.total == made && made <= max_body);
    memcpy(inplace, in, len);
    bg_http_chunked_init(&b, max_body, 64, 256);
    rb = bg_http_chunked_decode(&b, inplace, len, &ub, inplace, len, &pb, &eb);
    FUZZ_CHECK(rb == ra && eb == ea && ub == off && pb == made);
    FUZZ_CHECK(made == 0 || memcmp(out, inplace, made) == 0);
    FUZZ_CHECK((ra == BG_HTTP_CHUNKED_ERROR) == (ea != BG_HTTP_E_NONE));
    free(out);
    free(inplace);
}

/* A normalised path is absolute, has no empty or dot segments and no control bytes. */
static void check_normalized(const char *p, size_t n, size_t inlen)
{
    size_t i;

    FUZZ_CHECK(n >= 1 && p[0] == '/' && p[n] == '\0');
    FUZZ_CHECK(n <= (inlen > 0 ? inlen : 1));
    FUZZ_CHECK(strstr(p, "//") == NULL && strstr(p, "/./") == NULL && strstr(p, "/../") == NULL);
    FUZZ_CHECK(!(n >= 2 && strcmp(p + n - 2, "/.") == 0));
    FUZZ_CHECK(!(n >= 3 && strcmp(p + n - 3, "/..") == 0));
    for (i = 0; i < n; i++)
        FUZZ_CHECK((unsigned char)p[i] >= 0x20 && p[i] != 0x7f);
}

static void fuzz_path(const char *path, size_t len)
{
    size_t cap = len + 2, n = 0, n2 = 0;
    char *out = malloc(cap), *again = malloc(cap);
    bg_http_error err = BG_HTTP_E_NONE;

    FUZZ_CHECK(out != NULL && again != NULL);
    if (bg_http_path_normalize(path, len, out, cap, &n, &err) == BG_OK) {
        check_normalized(out, n, len);
        /* Without '%' the output decodes to itself, so normalising is idempotent. */
        if (memchr(out, '%', n) == NULL) {
            FUZZ_CHECK(bg_http_path_normalize(out, n, again, cap, &n2, &err) == BG_OK);
            FUZZ_CHECK(n2 == n && memcmp(out, again, n) == 0);
        }
    } else {
        FUZZ_CHECK(err != BG_HTTP_E_NONE && bg_http_error_status(err, NULL) == 400);
    }
    free(out);
    free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bg_http_request req;
    const char *buf = (const char *)data;
    bg_http_limits lim;
    bg_http_error err;
    int status;

    fuzz_limits(&lim);
    if (parse_twice(buf, size, &lim, &req, &err) == BG_HTTP_PARSE_DONE) {
        check_request(&req, buf, size, &lim);
        if (req.target_form != BG_HTTP_TARGET_ASTERISK)
            fuzz_path(req.path.ptr, req.path.len);
        if (req.chunked)
            fuzz_chunked(buf + req.head_len, size - req.head_len, lim.max_request_body,
                         size % 7 + 1);
    } else if (err != BG_HTTP_E_NONE) {
        status = bg_http_error_status(err, NULL);
        FUZZ_CHECK(status >= 400 && status <= 505 && bg_http_reason(status)[0] != '\0');
    }
    /* The decoders also see the raw input, so they are exercised without a valid head. */
    fuzz_chunked(buf, size, size % 2 ? 64 : UINT64_MAX, size % 5 + 1);
    fuzz_path(buf, size);
    return 0;
}
