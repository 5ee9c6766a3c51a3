/* http_parser.h: strict incremental HTTP/1.1 request-head parser (request line, headers, framing).
 */
#ifndef BUSGATE_HTTP_PARSER_H
#define BUSGATE_HTTP_PARSER_H

#include <stddef.h>
#include <stdint.h>

#include "busgate/common.h"

/* Policy (strict by design; every rejection is a 4xx/5xx and the caller closes):
 * - Lines end in CRLF. A bare LF or a bare CR anywhere in the head is 400.
 * - Up to BG_HTTP_MAX_LEADING_CRLF empty lines before the request line are skipped
 *   (RFC 9112 2.2); they count toward the head size and head_len.
 * - Request line: exactly one SP between method, target and version. Method: a token
 *   (case-sensitive). Version "HTTP/1.1" or "HTTP/1.0"; any other well-formed
 *   "HTTP/d.d" is 505, a malformed one 400.
 * - Target: bytes 0x21..0x7E except '#'. origin-form ("/p?q"); absolute-form only with
 *   the "http" scheme (host taken from it, userinfo rejected); "*" only for OPTIONS.
 *   CONNECT (authority-form) is 501: the gateway is not a tunnel.
 * - Header names are tokens; whitespace before the colon, obs-fold (a line starting
 *   with SP/HTAB) and CTLs other than HTAB in values are 400; obs-text is allowed.
 * - Content-Length: digits only; any repetition (even equal values, or a list "5, 5")
 *   is 400; together with Transfer-Encoding 400. Transfer-Encoding: only "chunked" is
 *   accepted; other codings before a final "chunked" are 501, anything not ending in
 *   "chunked" (or chunked twice, or with parameters) 400; in HTTP/1.0 400.
 * - Host: exactly one for HTTP/1.1 (at most one for 1.0), with a valid authority value.
 * - Expect: "100-continue" sets expect_continue (ignored for HTTP/1.0); any other value
 *   is 417. Connection lists at most BG_HTTP_MAX_CONN_TOKENS tokens. */

#define BG_HTTP_MAX_HEADERS 100
#define BG_HTTP_MAX_LEADING_CRLF 8
#define BG_HTTP_MAX_CONN_TOKENS 32
#define BG_HTTP_MAX_METHOD_LEN 32

/* Every way a request can be refused; bg_http_error_status() maps each to its status. */
typedef enum bg_http_error {
    BG_HTTP_E_NONE = 0,
    BG_HTTP_E_BARE_LF,          /* 400 */
    BG_HTTP_E_BARE_CR,          /* 400 */
    BG_HTTP_E_BAD_REQUEST_LINE, /* 400 */
    BG_HTTP_E_BAD_METHOD,       /* 400 */
    BG_HTTP_E_BAD_TARGET,       /* 400 */
    BG_HTTP_E_BAD_VERSION,      /* 400: not "HTTP/d.d" */
    BG_HTTP_E_VERSION,          /* 505 */
    BG_HTTP_E_CONNECT,          /* 501 */
    BG_HTTP_E_URI_TOO_LONG,     /* 414 */
    BG_HTTP_E_HEAD_TOO_LARGE,   /* 431 */
    BG_HTTP_E_TOO_MANY_HEADERS, /* 431 */
    BG_HTTP_E_BAD_HEADER_NAME,  /* 400 */
    BG_HTTP_E_SPACE_BEFORE_COLON,
    BG_HTTP_E_BAD_HEADER_VALUE,
    BG_HTTP_E_OBS_FOLD,
    BG_HTTP_E_CL_AND_TE,
    BG_HTTP_E_DUP_CL,
    BG_HTTP_E_BAD_CL,
    BG_HTTP_E_BAD_TE,    /* 400 */
    BG_HTTP_E_TE_CODING, /* 501: a coding other than chunked */
    BG_HTTP_E_TE_HTTP10, /* 400 */
    BG_HTTP_E_MISSING_HOST,
    BG_HTTP_E_DUP_HOST,
    BG_HTTP_E_BAD_HOST,
    BG_HTTP_E_BAD_CONNECTION, /* 400: too many tokens or a bad token */
    BG_HTTP_E_EXPECT,         /* 417 */
    BG_HTTP_E_BODY_TOO_LARGE, /* 413 */
    /* chunked body (http_chunked.c) */
    BG_HTTP_E_BAD_CHUNK_SIZE,
    BG_HTTP_E_BAD_CHUNK_EXT,
    BG_HTTP_E_CHUNK_CRLF,
    BG_HTTP_E_BAD_TRAILER,
    /* request path (http_path.c) */
    BG_HTTP_E_BAD_PATH,
    BG_HTTP_E_BAD_PERCENT,
    BG_HTTP_E_PATH_NUL,
    BG_HTTP_E_PATH_CTL,
    BG_HTTP_E_ENCODED_SLASH,
    BG_HTTP_E_PATH_TOO_LONG, /* output buffer too small: 414 */
    BG_HTTP_E_COUNT
} bg_http_error;

typedef enum bg_http_method {
    BG_HTTP_M_OTHER = 0,
    BG_HTTP_M_GET,
    BG_HTTP_M_HEAD,
    BG_HTTP_M_POST,
    BG_HTTP_M_PUT,
    BG_HTTP_M_DELETE,
    BG_HTTP_M_PATCH,
    BG_HTTP_M_OPTIONS,
    BG_HTTP_M_TRACE,
} bg_http_method;

typedef enum bg_http_target_form {
    BG_HTTP_TARGET_ORIGIN = 0,
    BG_HTTP_TARGET_ABSOLUTE,
    BG_HTTP_TARGET_ASTERISK,
} bg_http_target_form;

/* Tokens seen in Connection header fields. */
#define BG_HTTP_CONN_CLOSE 0x1
#define BG_HTTP_CONN_KEEP_ALIVE 0x2
#define BG_HTTP_CONN_UPGRADE 0x4
#define BG_HTTP_CONN_OTHER 0x8 /* some other header name is listed */

/* A header line; both slices point into the caller's input buffer. The value has
 * its surrounding whitespace removed. hop_by_hop: a standard hop-by-hop name or a
 * name listed in Connection; the dispatcher does not forward these. */
typedef struct bg_http_header {
    bg_bytes name;
    bg_bytes value;
    int hop_by_hop;
} bg_http_header;

typedef struct bg_http_limits {
    size_t max_request_line;   /* 414 beyond; default 8192 */
    size_t max_header_size;    /* whole head incl. request line and final CRLF; 431 beyond */
    size_t max_headers;        /* <= BG_HTTP_MAX_HEADERS; 431 beyond */
    uint64_t max_request_body; /* 413 beyond (Content-Length; chunked: bg_http_chunked) */
} bg_http_limits;

/* The parsed head. Every slice points into the buffer given to bg_http_parse; it stays
 * valid as long as that buffer is neither moved nor overwritten. */
typedef struct bg_http_request {
    bg_http_method method;
    bg_bytes method_name;
    bg_http_target_form target_form;
    bg_bytes target; /* request-target as sent */
    bg_bytes path;   /* still percent-encoded; empty only for "http://host" (means "/") */
    bg_bytes query;  /* after '?', without it; ptr NULL when the target has no '?' */
    bg_bytes host;   /* authority of an absolute-form target, else the Host value;
                      * ptr NULL when there is neither */
    int version;     /* 10 or 11 */
    int keep_alive;
    int chunked;
    uint64_t content_length; /* 0 when chunked or without a body */
    int expect_continue;
    unsigned connection; /* BG_HTTP_CONN_* */
    size_t nconn_tokens;
    bg_bytes conn_tokens[BG_HTTP_MAX_CONN_TOKENS]; /* every token of Connection */
    size_t head_len; /* bytes of the head incl. the empty line; the body starts here */
    size_t nheaders;
    bg_http_header headers[BG_HTTP_MAX_HEADERS];
} bg_http_request;

typedef enum bg_http_parse_result {
    BG_HTTP_PARSE_DONE = 0, /* req filled; the head is req->head_len bytes */
    BG_HTTP_PARSE_AGAIN,    /* need more bytes */
    BG_HTTP_PARSE_ERROR,    /* *err says why; answer bg_http_error_status() and close */
} bg_http_parse_result;

/* Per-connection state that lets a re-parse resume its scan for the end of the head,
 * so feeding a head byte by byte costs O(n) in all. Reset it (bg_http_parser_init)
 * before each request. Between calls the caller may only append bytes to the buffer
 * (it may move as a whole, e.g. realloc). Once DONE or ERROR, later calls give the
 * same answer. */
typedef struct bg_http_parser {
    size_t scanned;      /* bytes already checked for line endings */
    size_t line_start;   /* offset of the line being scanned */
    size_t start;        /* offset of the request line (after skipped empty lines) */
    size_t nlines;       /* complete non-empty lines so far */
    size_t head_len;     /* set once the empty line ending the head was seen */
    bg_http_error error; /* set once the request was refused */
} bg_http_parser;

void bg_http_limits_default(bg_http_limits *lim);
void bg_http_parser_init(bg_http_parser *p);

/* Parse the request head from buf[0..len), the bytes received so far for this request. */
bg_http_parse_result bg_http_parse(bg_http_parser *p, const char *buf, size_t len,
                                   const bg_http_limits *lim, bg_http_request *req,
                                   bg_http_error *err);

/* Status code for an error (400, 413, 414, 417, 431, 501, 505) and its reason phrase. */
int bg_http_error_status(bg_http_error e, const char **reason);
/* A short description for logs and problem+json details ("bare LF in head"). */
const char *bg_http_error_str(bg_http_error e);
/* Reason phrase of a status code, "" when unknown. */
const char *bg_http_reason(int status);

/* Case-insensitive lookup; returns the first header with that name, or NULL. */
const bg_http_header *bg_http_header_find(const bg_http_request *req, const char *name);
/* Whether a header must not be forwarded: the standard hop-by-hop names plus any
 * name listed in this request's Connection header(s). req may be NULL. */
int bg_http_is_hop_by_hop(const bg_http_request *req, const char *name, size_t len);
/* Case-insensitive comparison of a slice with a C string. */
int bg_http_token_eq(const char *p, size_t len, const char *lit);

#endif
