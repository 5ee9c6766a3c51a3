/* http_response.h: growable output buffers and HTTP/1.1 response rendering (sized, chunked,
 * HEAD, 100-continue, keep-alive or close, problem+json errors). */
#ifndef BUSGATE_HTTP_RESPONSE_H
#define BUSGATE_HTTP_RESPONSE_H

#include <stddef.h>
#include <stdint.h>

#include "busgate/common.h"

/* A growable byte buffer; zero-initialised is empty. */
typedef struct bg_buf {
    char *p;
    size_t len, cap;
} bg_buf;

int bg_buf_reserve(bg_buf *b, size_t extra);
int bg_buf_append(bg_buf *b, const void *p, size_t n);
int bg_buf_puts(bg_buf *b, const char *s);
/* v in decimal. */
int bg_buf_put_u64(bg_buf *b, uint64_t v);
int bg_buf_printf(bg_buf *b, const char *fmt, ...) BG_PRINTF(2, 3);
void bg_buf_free(bg_buf *b);

/* How a response is framed; filled by the connection from the request it answers. */
typedef struct bg_resp_ctx {
    int version;            /* of the request: 10 or 11 */
    int keep_alive;         /* 0: "Connection: close" (and the connection closes) */
    int head;               /* HEAD request: headers as for GET, no body */
    const char *request_id; /* X-Request-Id, NULL = none */
} bg_resp_ctx;

/* Status line, e.g. "HTTP/1.1 404 Not Found\r\n". */
int bg_resp_status(bg_buf *out, int status);
/* One header line; the caller has checked name and value. */
int bg_resp_header(bg_buf *out, const char *name, size_t nlen, const char *value, size_t vlen);
/* Content-Length, Connection, X-Request-Id, the empty line, then the body (not for HEAD). */
int bg_resp_finish_sized(bg_buf *out, const bg_resp_ctx *rc, const void *body, size_t len);
/* Connection, X-Request-Id and the empty line, without Content-Length (204, 304). */
int bg_resp_finish_empty(bg_buf *out, const bg_resp_ctx *rc);
/* Same as sized, but the body goes as one chunk of a chunked body (HTTP/1.1 only; an HTTP/1.0
 * client gets the sized form), for bodies built without a length known up front. */
int bg_resp_finish_chunked(bg_buf *out, const bg_resp_ctx *rc, const void *body, size_t len);

/* How a streamed body is framed: chunked (HTTP/1.1), sized by the service's Content-Length,
 * delimited by closing the connection (HTTP/1.0), or not sent at all (HEAD, 204, 304). */
typedef enum { BG_SF_CHUNKED, BG_SF_SIZED, BG_SF_CLOSE, BG_SF_NONE } bg_stream_framing;

/* Ends a streamed response's head: Connection, X-Request-Id, then "Transfer-Encoding:
 * chunked", "Content-Length: clen" (SIZED, and NONE when clen >= 0) or nothing, and the
 * empty line. CLOSE needs rc->keep_alive 0. */
int bg_resp_finish_stream(bg_buf *out, const bg_resp_ctx *rc, bg_stream_framing fr, int64_t clen);
/* One piece of a streamed body (chunked: its size line and CRLF around it; NONE: nothing). */
int bg_resp_stream_piece(bg_buf *out, bg_stream_framing fr, const void *p, size_t len);
/* The end of a streamed body: the last chunk when chunked, nothing otherwise. */
int bg_resp_stream_end(bg_buf *out, bg_stream_framing fr);

/* A whole error response with an application/problem+json body
 * {"type":"about:blank","title":..,"status":..,"detail":..,"requestId":..}. extra: more
 * header lines, each ending in CRLF ("Allow: GET\r\n"), or NULL. */
int bg_resp_problem(bg_buf *out, const bg_resp_ctx *rc, int status, const char *detail,
                    const char *extra);

/* The interim response to "Expect: 100-continue". */
extern const char bg_resp_continue[];
#define BG_RESP_CONTINUE_LEN 25

/* A response written straight to a socket when no connection state exists (connection
 * cap reached): 503, Retry-After, close. */
extern const char bg_resp_overload[];

#endif
