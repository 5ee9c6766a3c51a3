/* http_response.c: output buffers and the rendering of HTTP/1.1 responses. */
#include "http_response.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busgate/core/text.h"
#include "busgate/proto/frame.h"
#include "http_parser.h"

const char bg_resp_continue[] = "HTTP/1.1 100 Continue\r\n\r\n";

const char bg_resp_overload[] =
    "HTTP/1.1 503 Service Unavailable\r\n"
    "Content-Type: application/problem+json\r\n"
    "Retry-After: 1\r\n"
    "Connection: close\r\n"
    "Content-Length: 97\r\n"
    "\r\n"
    "{\"type\":\"about:blank\",\"title\":\"Service Unavailable\",\"status\":503,"
    "\"detail\":\"too many connections\"}";

int bg_buf_reserve(bg_buf *b, size_t extra)
{
    size_t want = b->len + extra, cap = b->cap ? b->cap : 256;
    char *p;

    if (want < b->len)
        return BG_ERR; /* overflow */
    if (want <= b->cap)
        return BG_OK;
    while (cap < want)
        cap = cap > SIZE_MAX / 2 ? want : cap * 2;
    p = realloc(b->p, cap);
    if (p == NULL)
        return BG_ERR;
    b->p = p;
    b->cap = cap;
    return BG_OK;
}

int bg_buf_append(bg_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return BG_OK;
    if (bg_buf_reserve(b, n) != BG_OK)
        return BG_ERR;
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return BG_OK;
}

int bg_buf_puts(bg_buf *b, const char *s)
{
    return bg_buf_append(b, s, strlen(s));
}

int bg_buf_put_u64(bg_buf *b, uint64_t v)
{
    char tmp[20];

    return bg_buf_append(b, tmp, bg_u64_decimal(v, tmp));
}

int bg_buf_printf(bg_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || bg_buf_reserve(b, (size_t)n + 1) != BG_OK)
        return BG_ERR;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return BG_OK;
}

void bg_buf_free(bg_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* Without printf, like the rest of a response's head: every answer writes these. */
int bg_resp_status(bg_buf *out, int status)
{
    if (status < 0)
        return bg_buf_printf(out, "HTTP/1.1 %d %s\r\n", status, bg_http_reason(status));
    if (bg_buf_puts(out, "HTTP/1.1 ") != BG_OK || bg_buf_put_u64(out, (uint64_t)status) != BG_OK ||
        bg_buf_append(out, " ", 1) != BG_OK || bg_buf_puts(out, bg_http_reason(status)) != BG_OK)
        return BG_ERR;
    return bg_buf_append(out, "\r\n", 2);
}

int bg_resp_header(bg_buf *out, const char *name, size_t nlen, const char *value, size_t vlen)
{
    if (bg_buf_reserve(out, nlen + vlen + 4) != BG_OK)
        return BG_ERR;
    bg_buf_append(out, name, nlen);
    bg_buf_append(out, ": ", 2);
    bg_buf_append(out, value, vlen);
    return bg_buf_append(out, "\r\n", 2);
}

/* Connection handling: HTTP/1.1 keeps alive unless told; HTTP/1.0 only when asked. */
static int resp_common(bg_buf *out, const bg_resp_ctx *rc)
{
    int rv = BG_OK;

    if (rc->request_id != NULL) {
        rv |= bg_buf_puts(out, "X-Request-Id: ");
        rv |= bg_buf_puts(out, rc->request_id);
        rv |= bg_buf_append(out, "\r\n", 2);
    }
    if (!rc->keep_alive)
        rv |= bg_buf_puts(out, "Connection: close\r\n");
    else if (rc->version == 10)
        rv |= bg_buf_puts(out, "Connection: keep-alive\r\n");
    return rv == BG_OK ? BG_OK : BG_ERR;
}

int bg_resp_finish_sized(bg_buf *out, const bg_resp_ctx *rc, const void *body, size_t len)
{
    if (resp_common(out, rc) != BG_OK || bg_buf_puts(out, "Content-Length: ") != BG_OK ||
        bg_buf_put_u64(out, len) != BG_OK || bg_buf_append(out, "\r\n\r\n", 4) != BG_OK)
        return BG_ERR;
    return rc->head ? BG_OK : bg_buf_append(out, body, len);
}

int bg_resp_finish_empty(bg_buf *out, const bg_resp_ctx *rc)
{
    if (resp_common(out, rc) != BG_OK)
        return BG_ERR;
    return bg_buf_puts(out, "\r\n");
}

int bg_resp_finish_chunked(bg_buf *out, const bg_resp_ctx *rc, const void *body, size_t len)
{
    if (rc->version == 10 || rc->head)
        return bg_resp_finish_sized(out, rc, body, len);
    if (resp_common(out, rc) != BG_OK ||
        bg_buf_puts(out, "Transfer-Encoding: chunked\r\n\r\n") != BG_OK)
        return BG_ERR;
    if (len > 0 && (bg_buf_printf(out, "%zx\r\n", len) != BG_OK ||
                    bg_buf_append(out, body, len) != BG_OK || bg_buf_puts(out, "\r\n") != BG_OK))
        return BG_ERR;
    return bg_buf_puts(out, "0\r\n\r\n");
}

int bg_resp_finish_stream(bg_buf *out, const bg_resp_ctx *rc, bg_stream_framing fr, int64_t clen)
{
    if (resp_common(out, rc) != BG_OK)
        return BG_ERR;
    if (fr == BG_SF_CHUNKED)
        return bg_buf_puts(out, "Transfer-Encoding: chunked\r\n\r\n");
    if (fr == BG_SF_SIZED || (fr == BG_SF_NONE && clen >= 0))
        return bg_buf_printf(out, "Content-Length: %lld\r\n\r\n", (long long)clen);
    return bg_buf_puts(out, "\r\n");
}

int bg_resp_stream_piece(bg_buf *out, bg_stream_framing fr, const void *p, size_t len)
{
    if (len == 0 || fr == BG_SF_NONE)
        return BG_OK; /* an empty chunk would end a chunked body */
    if (fr != BG_SF_CHUNKED)
        return bg_buf_append(out, p, len);
    if (bg_buf_reserve(out, len + 24) != BG_OK || bg_buf_printf(out, "%zx\r\n", len) != BG_OK)
        return BG_ERR;
    bg_buf_append(out, p, len);
    return bg_buf_append(out, "\r\n", 2);
}

int bg_resp_stream_end(bg_buf *out, bg_stream_framing fr)
{
    return fr == BG_SF_CHUNKED ? bg_buf_puts(out, "0\r\n\r\n") : BG_OK;
}

/* The detail is ours or quotes the client; quote it as JSON (non-UTF-8 bytes dropped). */
static int problem_body(bg_buf *body, int status, const char *detail, const char *request_id)
{
    char q[512];
    size_t n = bg_json_quote(q, sizeof(q), detail, strlen(detail));

    if (n == (size_t)-1 || n >= sizeof(q))
        n = (size_t)snprintf(q, sizeof(q), "\"%s\"", "invalid request");
    if (bg_buf_printf(body,
                      "{\"type\":\"about:blank\",\"title\":\"%s\",\"status\":%d,\"detail\":%.*s",
                      bg_http_reason(status), status, (int)n, q) != BG_OK)
        return BG_ERR;
    if (request_id != NULL && bg_buf_printf(body, ",\"requestId\":\"%s\"", request_id) != BG_OK)
        return BG_ERR;
    return bg_buf_puts(body, "}");
}

int bg_resp_problem(bg_buf *out, const bg_resp_ctx *rc, int status, const char *detail,
                    const char *extra)
{
    bg_buf body = {0};
    int rv = BG_ERR;

    if (problem_body(&body, status, detail, rc->request_id) != BG_OK)
        goto cleanup;
    if (bg_resp_status(out, status) != BG_OK ||
        bg_buf_puts(out, "Content-Type: application/problem+json\r\n") != BG_OK ||
        (extra != NULL && bg_buf_puts(out, extra) != BG_OK))
        goto cleanup;
    rv = bg_resp_finish_sized(out, rc, body.p, body.len);
cleanup:
    bg_buf_free(&body);
    return rv;
}
