/* http_parser.c: strict incremental HTTP/1.1 request-head parser. */
#include "http_parser.h"

#include <string.h>

#include "busgate/core/text.h"

#include "http_path.h"

/* Running facts about the framing headers, collected in one pass over the headers. */
typedef struct head_facts {
    int cl_seen, te_seen, te_chunked, te_last_chunked, te_other, te_items;
    size_t host_count;
    bg_bytes host;
} head_facts;

static bg_http_parse_result parse_fail(bg_http_error *err, bg_http_error e)
{
    if (err != NULL)
        *err = e;
    return BG_HTTP_PARSE_ERROR;
}

void bg_http_limits_default(bg_http_limits *lim)
{
    lim->max_request_line = 8192;
    lim->max_header_size = 16384;
    lim->max_headers = BG_HTTP_MAX_HEADERS;
    lim->max_request_body = 1024 * 1024;
}

void bg_http_parser_init(bg_http_parser *p)
{
    memset(p, 0, sizeof(*p));
}

static int mem_ieq(const char *a, const char *b, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y + 32);
        if (x != y)
            return 0;
    }
    return 1;
}

int bg_http_token_eq(const char *p, size_t len, const char *lit)
{
    return strlen(lit) == len && mem_ieq(p, lit, len);
}

static int is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* Field-value bytes: HTAB, SP, VCHAR and obs-text; every other CTL and DEL is refused. */
static int is_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* reg-name, IP-literal and port characters of an authority (no userinfo). */
static int is_host_char(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("-._~!$&'()*+,;=%:[]", c) != NULL;
}

static int host_valid(const char *p, size_t len)
{
    size_t i;

    if (len == 0)
        return 0;
    for (i = 0; i < len; i++)
        if (!is_host_char((unsigned char)p[i]))
            return 0;
    return 1;
}

/* Checks one byte of the head as it arrives. The checks are per byte so that parsing
 * byte by byte and parsing the whole buffer report the same first error. */
static bg_http_parse_result scan_byte(bg_http_parser *p, const char *buf, size_t i,
                                      const bg_http_limits *lim, bg_http_error *err)
{
    unsigned char c = (unsigned char)buf[i];

    if (c == '\n' && (i == 0 || buf[i - 1] != '\r'))
        return parse_fail(err, BG_HTTP_E_BARE_LF);
    if (c != '\n' && i > 0 && buf[i - 1] == '\r')
        return parse_fail(err, BG_HTTP_E_BARE_CR);
    if (p->nlines == 0 && c != '\r' && c != '\n' && i - p->line_start >= lim->max_request_line)
        return parse_fail(err, BG_HTTP_E_URI_TOO_LONG);
    if (i >= lim->max_header_size)
        return parse_fail(err, BG_HTTP_E_HEAD_TOO_LARGE);
    return BG_HTTP_PARSE_AGAIN;
}

/* Called at each LF: an empty line ends the head (or is skipped before the request line). */
static bg_http_parse_result scan_line_end(bg_http_parser *p, size_t i, const bg_http_limits *lim,
                                          bg_http_error *err)
{
    size_t line_len = i - 1 - p->line_start;

    p->line_start = i + 1;
    if (line_len == 0 && p->nlines > 0)
        return BG_HTTP_PARSE_DONE;
    if (line_len == 0) {
        if ((i + 1) / 2 > BG_HTTP_MAX_LEADING_CRLF)
            return parse_fail(err, BG_HTTP_E_BAD_REQUEST_LINE);
        p->start = i + 1;
        return BG_HTTP_PARSE_AGAIN;
    }
    p->nlines++;
    if (p->nlines - 1 > lim->max_headers || p->nlines - 1 > BG_HTTP_MAX_HEADERS)
        return parse_fail(err, BG_HTTP_E_TOO_MANY_HEADERS);
    return BG_HTTP_PARSE_AGAIN;
}

/* Resumes the search for the empty line that ends the head; DONE sets *head_len. */
static bg_http_parse_result scan_head(bg_http_parser *p, const char *buf, size_t len,
                                      const bg_http_limits *lim, size_t *head_len,
                                      bg_http_error *err)
{
    bg_http_parse_result r;
    size_t i;

    for (i = p->scanned; i < len; i++) {
        r = scan_byte(p, buf, i, lim, err);
        if (r == BG_HTTP_PARSE_ERROR)
            return r;
        if (buf[i] != '\n')
            continue;
        r = scan_line_end(p, i, lim, err);
        if (r == BG_HTTP_PARSE_ERROR)
            return r;
        if (r == BG_HTTP_PARSE_DONE) {
            p->scanned = i + 1;
            *head_len = i + 1;
            return r;
        }
    }
    p->scanned = len;
    return BG_HTTP_PARSE_AGAIN;
}

static bg_http_method method_lookup(const char *p, size_t len)
{
    static const struct {
        const char *name;
        bg_http_method m;
    } known[] = {
        {"GET", BG_HTTP_M_GET},         {"HEAD", BG_HTTP_M_HEAD},     {"POST", BG_HTTP_M_POST},
        {"PUT", BG_HTTP_M_PUT},         {"DELETE", BG_HTTP_M_DELETE}, {"PATCH", BG_HTTP_M_PATCH},
        {"OPTIONS", BG_HTTP_M_OPTIONS}, {"TRACE", BG_HTTP_M_TRACE},
    };
    size_t i;

    /* Methods are case-sensitive: "get" is some other method. */
    for (i = 0; i < BG_ARRAY_LEN(known); i++)
        if (strlen(known[i].name) == len && memcmp(known[i].name, p, len) == 0)
            return known[i].m;
    return BG_HTTP_M_OTHER;
}

/* "HTTP/1.1" -> 11, "HTTP/1.0" -> 10; other "HTTP/d.d" 505, anything else 400. */
static int version_parse(const char *p, size_t len, int *version, bg_http_error *err)
{
    if (len != 8 || memcmp(p, "HTTP/", 5) != 0 || p[6] != '.' || p[5] < '0' || p[5] > '9' ||
        p[7] < '0' || p[7] > '9') {
        *err = BG_HTTP_E_BAD_VERSION;
        return BG_ERR;
    }
    if (p[5] != '1' || (p[7] != '0' && p[7] != '1')) {
        *err = BG_HTTP_E_VERSION;
        return BG_ERR;
    }
    *version = p[7] == '1' ? 11 : 10;
    return BG_OK;
}

/* absolute-form "http://authority[/path][?query]": host from the authority. */
static int target_absolute(bg_http_request *req, bg_http_error *err)
{
    const char *t = req->target.ptr;
    size_t len = req->target.len, a = 7, i;

    if (len < 7 || !bg_http_token_eq(t, 7, "http://"))
        goto bad;
    for (i = a; i < len && t[i] != '/' && t[i] != '?'; i++)
        ;
    if (!host_valid(t + a, i - a))
        goto bad;
    req->host.ptr = t + a;
    req->host.len = i - a;
    bg_http_target_split(t + i, len - i, &req->path, &req->query);
    req->target_form = BG_HTTP_TARGET_ABSOLUTE;
    return BG_OK;
bad:
    *err = BG_HTTP_E_BAD_TARGET;
    return BG_ERR;
}

static int target_classify(bg_http_request *req, bg_http_error *err)
{
    const char *t = req->target.ptr;
    size_t len = req->target.len;

    if (t[0] == '/') {
        req->target_form = BG_HTTP_TARGET_ORIGIN;
        bg_http_target_split(t, len, &req->path, &req->query);
        return BG_OK;
    }
    if (len == 1 && t[0] == '*') {
        if (req->method != BG_HTTP_M_OPTIONS) {
            *err = BG_HTTP_E_BAD_TARGET;
            return BG_ERR;
        }
        req->target_form = BG_HTTP_TARGET_ASTERISK;
        req->path = req->target;
        return BG_OK;
    }
    return target_absolute(req, err);
}

/* Splits "METHOD SP target SP version" and checks the syntax of each part. */
static int request_line_split(const char *s, size_t n, bg_http_request *req, bg_http_error *err)
{
    size_t i = 0, t0;

    while (i < n && bg_is_tchar((unsigned char)s[i]))
        i++;
    if (i == 0 || i == n) {
        *err = BG_HTTP_E_BAD_REQUEST_LINE;
        return BG_ERR;
    }
    if (s[i] != ' ' || i > BG_HTTP_MAX_METHOD_LEN) {
        *err = BG_HTTP_E_BAD_METHOD;
        return BG_ERR;
    }
    req->method_name.ptr = s;
    req->method_name.len = i;
    t0 = ++i;
    while (i < n && s[i] != ' ') {
        unsigned char c = (unsigned char)s[i++];
        if (c < 0x21 || c > 0x7e || c == '#') {
            *err = BG_HTTP_E_BAD_TARGET;
            return BG_ERR;
        }
    }
    if (i == t0 || i == n) {
        *err = BG_HTTP_E_BAD_REQUEST_LINE;
        return BG_ERR;
    }
    req->target.ptr = s + t0;
    req->target.len = i - t0;
    return version_parse(s + i + 1, n - i - 1, &req->version, err);
}

static int request_line_parse(const char *s, size_t n, bg_http_request *req, bg_http_error *err)
{
    if (request_line_split(s, n, req, err) != BG_OK)
        return BG_ERR;
    req->method = method_lookup(req->method_name.ptr, req->method_name.len);
    if (req->method_name.len == 7 && memcmp(req->method_name.ptr, "CONNECT", 7) == 0) {
        *err = BG_HTTP_E_CONNECT;
        return BG_ERR;
    }
    return target_classify(req, err);
}

/* One "name: value" line (no CRLF) into the next header slot. */
static int header_line_parse(const char *s, size_t n, bg_http_request *req, bg_http_error *err)
{
    bg_http_header *h;
    size_t i = 0, v, e;

    if (is_ows((unsigned char)s[0])) {
        *err = BG_HTTP_E_OBS_FOLD;
        return BG_ERR;
    }
    while (i < n && bg_is_tchar((unsigned char)s[i]))
        i++;
    if (i == 0 || i == n || s[i] != ':') {
        *err = i > 0 && i < n && is_ows((unsigned char)s[i]) ? BG_HTTP_E_SPACE_BEFORE_COLON
                                                             : BG_HTTP_E_BAD_HEADER_NAME;
        return BG_ERR;
    }
    for (v = i + 1; v < n && is_ows((unsigned char)s[v]); v++)
        ;
    for (e = n; e > v && is_ows((unsigned char)s[e - 1]); e--)
        ;
    for (size_t k = v; k < e; k++) {
        if (!is_value_char((unsigned char)s[k])) {
            *err = BG_HTTP_E_BAD_HEADER_VALUE;
            return BG_ERR;
        }
    }
    if (req->nheaders >= BG_HTTP_MAX_HEADERS) {
        *err = BG_HTTP_E_TOO_MANY_HEADERS;
        return BG_ERR;
    }
    h = &req->headers[req->nheaders++];
    h->name = (bg_bytes){s, i};
    h->value = (bg_bytes){s + v, e - v};
    h->hop_by_hop = 0;
    return BG_OK;
}

/* Walks the head after the scan found its end: request line, then each header line. */
static int head_lines_parse(const char *buf, size_t start, size_t head_len, bg_http_request *req,
                            bg_http_error *err)
{
    size_t pos = start, end = head_len - 2, eol;
    const char *nl;

    nl = memchr(buf + pos, '\n', end - pos + 1);
    eol = (size_t)(nl - buf) - 1;
    if (request_line_parse(buf + pos, eol - pos, req, err) != BG_OK)
        return BG_ERR;
    for (pos = eol + 2; pos < end; pos = eol + 2) {
        nl = memchr(buf + pos, '\n', end - pos + 1);
        eol = (size_t)(nl - buf) - 1;
        if (header_line_parse(buf + pos, eol - pos, req, err) != BG_OK)
            return BG_ERR;
    }
    return BG_OK;
}

/* Calls fn for each non-empty element of a comma-separated list, trimmed of OWS. */
static int list_each(bg_bytes v, int (*fn)(const char *, size_t, void *), void *arg)
{
    size_t i = 0, s, e;

    while (i < v.len) {
        for (s = i; s < v.len && v.ptr[s] != ','; s++)
            ;
        e = s;
        while (i < e && is_ows((unsigned char)v.ptr[i]))
            i++;
        while (e > i && is_ows((unsigned char)v.ptr[e - 1]))
            e--;
        if (e > i && fn(v.ptr + i, e - i, arg) != BG_OK)
            return BG_ERR;
        i = s + 1;
    }
    return BG_OK;
}

static int te_item(const char *p, size_t len, void *arg)
{
    head_facts *f = arg;

    f->te_items++;
    if (bg_http_token_eq(p, len, "chunked")) {
        if (f->te_chunked)
            return BG_ERR; /* chunked applied twice */
        f->te_chunked = 1;
        f->te_last_chunked = 1;
        return BG_OK;
    }
    f->te_other = 1;
    f->te_last_chunked = 0;
    return BG_OK;
}

static int conn_item(const char *p, size_t len, void *arg)
{
    bg_http_request *req = arg;

    if (!bg_is_token(p, len) || req->nconn_tokens >= BG_HTTP_MAX_CONN_TOKENS)
        return BG_ERR;
    req->conn_tokens[req->nconn_tokens++] = (bg_bytes){p, len};
    if (bg_http_token_eq(p, len, "close"))
        req->connection |= BG_HTTP_CONN_CLOSE;
    else if (bg_http_token_eq(p, len, "keep-alive"))
        req->connection |= BG_HTTP_CONN_KEEP_ALIVE;
    else if (bg_http_token_eq(p, len, "upgrade"))
        req->connection |= BG_HTTP_CONN_UPGRADE;
    else
        req->connection |= BG_HTTP_CONN_OTHER;
    return BG_OK;
}

static int expect_item(const char *p, size_t len, void *arg)
{
    int *continue_seen = arg;

    if (!bg_http_token_eq(p, len, "100-continue"))
        return BG_ERR;
    *continue_seen = 1;
    return BG_OK;
}

/* Content-Length: digits only, no list, at most once, no overflow. */
static int content_length_parse(head_facts *f, bg_bytes v, bg_http_request *req, bg_http_error *err)
{
    uint64_t n = 0;
    size_t i;

    if (f->cl_seen || memchr(v.ptr, ',', v.len) != NULL) {
        *err = BG_HTTP_E_DUP_CL;
        return BG_ERR;
    }
    f->cl_seen = 1;
    for (i = 0; i < v.len; i++) {
        unsigned d = (unsigned)(unsigned char)v.ptr[i] - '0';
        if (d > 9 || n > (UINT64_MAX - d) / 10) {
            *err = BG_HTTP_E_BAD_CL;
            return BG_ERR;
        }
        n = n * 10 + d;
    }
    if (v.len == 0) {
        *err = BG_HTTP_E_BAD_CL;
        return BG_ERR;
    }
    req->content_length = n;
    return BG_OK;
}

static int expect_parse(bg_bytes v, bg_http_request *req, bg_http_error *err)
{
    int seen = 0;

    if (list_each(v, expect_item, &seen) != BG_OK || !seen) {
        *err = BG_HTTP_E_EXPECT;
        return BG_ERR;
    }
    /* RFC 9110 10.1.1: a 100-continue from an HTTP/1.0 client is ignored. */
    req->expect_continue = req->version == 11;
    return BG_OK;
}

static int header_fact(head_facts *f, const bg_http_header *h, bg_http_request *req,
                       bg_http_error *err)
{
    const char *n = h->name.ptr;
    size_t len = h->name.len;

    if (bg_http_token_eq(n, len, "content-length"))
        return content_length_parse(f, h->value, req, err);
    if (bg_http_token_eq(n, len, "transfer-encoding")) {
        f->te_seen = 1;
        if (list_each(h->value, te_item, f) == BG_OK)
            return BG_OK;
        *err = BG_HTTP_E_BAD_TE;
        return BG_ERR;
    }
    if (bg_http_token_eq(n, len, "host")) {
        if (f->host_count++ == 0)
            f->host = h->value;
        return BG_OK;
    }
    if (bg_http_token_eq(n, len, "connection")) {
        if (list_each(h->value, conn_item, req) == BG_OK)
            return BG_OK;
        *err = BG_HTTP_E_BAD_CONNECTION;
        return BG_ERR;
    }
    if (bg_http_token_eq(n, len, "expect"))
        return expect_parse(h->value, req, err);
    return BG_OK;
}

static int host_check(const head_facts *f, bg_http_request *req, bg_http_error *err)
{
    if (f->host_count > 1) {
        *err = BG_HTTP_E_DUP_HOST;
        return BG_ERR;
    }
    if (f->host_count == 0 && req->version == 11) {
        *err = BG_HTTP_E_MISSING_HOST;
        return BG_ERR;
    }
    if (f->host_count == 1 && !host_valid(f->host.ptr, f->host.len)) {
        *err = BG_HTTP_E_BAD_HOST;
        return BG_ERR;
    }
    /* RFC 9112 3.2.2: the authority of an absolute-form target wins over Host. */
    if (req->target_form != BG_HTTP_TARGET_ABSOLUTE && f->host_count == 1)
        req->host = f->host;
    return BG_OK;
}

static int framing_check(const head_facts *f, bg_http_request *req, const bg_http_limits *lim,
                         bg_http_error *err)
{
    *err = BG_HTTP_E_NONE;
    if (f->te_seen && req->version == 10)
        *err = BG_HTTP_E_TE_HTTP10;
    else if (f->te_seen && f->cl_seen)
        *err = BG_HTTP_E_CL_AND_TE;
    else if (f->te_seen && (f->te_items == 0 || !f->te_last_chunked))
        *err = BG_HTTP_E_BAD_TE;
    else if (f->te_seen && f->te_other)
        *err = BG_HTTP_E_TE_CODING;
    else if (req->content_length > lim->max_request_body)
        *err = BG_HTTP_E_BODY_TOO_LARGE;
    if (*err != BG_HTTP_E_NONE)
        return BG_ERR;
    req->chunked = f->te_seen;
    return BG_OK;
}

/* Marks the headers not to forward and decides keep-alive from the Connection tokens. */
static void connection_apply(bg_http_request *req)
{
    size_t i;

    for (i = 0; i < req->nheaders; i++)
        req->headers[i].hop_by_hop =
            bg_http_is_hop_by_hop(req, req->headers[i].name.ptr, req->headers[i].name.len);
    if (req->version == 11)
        req->keep_alive = !(req->connection & BG_HTTP_CONN_CLOSE);
    else
        req->keep_alive =
            (req->connection & BG_HTTP_CONN_KEEP_ALIVE) && !(req->connection & BG_HTTP_CONN_CLOSE);
}

static int head_semantics(bg_http_request *req, const bg_http_limits *lim, bg_http_error *err)
{
    head_facts f;
    size_t i;

    memset(&f, 0, sizeof(f));
    for (i = 0; i < req->nheaders; i++)
        if (header_fact(&f, &req->headers[i], req, err) != BG_OK)
            return BG_ERR;
    if (host_check(&f, req, err) != BG_OK || framing_check(&f, req, lim, err) != BG_OK)
        return BG_ERR;
    connection_apply(req);
    return BG_OK;
}

bg_http_parse_result bg_http_parse(bg_http_parser *p, const char *buf, size_t len,
                                   const bg_http_limits *lim, bg_http_request *req,
                                   bg_http_error *err)
{
    bg_http_error e = BG_HTTP_E_NONE;
    bg_http_parse_result r;

    /* A failed or finished parse answers the same again instead of rescanning. */
    if (p->error != BG_HTTP_E_NONE)
        return parse_fail(err, p->error);
    if (p->head_len == 0) {
        r = scan_head(p, buf, len, lim, &p->head_len, &e);
        if (r == BG_HTTP_PARSE_AGAIN)
            return r;
        if (r == BG_HTTP_PARSE_ERROR)
            goto fail;
    }
    memset(req, 0, offsetof(bg_http_request, headers));
    if (head_lines_parse(buf, p->start, p->head_len, req, &e) != BG_OK ||
        head_semantics(req, lim, &e) != BG_OK)
        goto fail;
    req->head_len = p->head_len;
    if (err != NULL)
        *err = BG_HTTP_E_NONE;
    return BG_HTTP_PARSE_DONE;
fail:
    p->error = e;
    return parse_fail(err, e);
}

const bg_http_header *bg_http_header_find(const bg_http_request *req, const char *name)
{
    size_t i;

    for (i = 0; i < req->nheaders; i++)
        if (bg_http_token_eq(req->headers[i].name.ptr, req->headers[i].name.len, name))
            return &req->headers[i];
    return NULL;
}

int bg_http_is_hop_by_hop(const bg_http_request *req, const char *name, size_t len)
{
    static const char *const standard[] = {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authorization",
        "proxy-authenticate",
    };
    size_t i;

    for (i = 0; i < BG_ARRAY_LEN(standard); i++)
        if (bg_http_token_eq(name, len, standard[i]))
            return 1;
    for (i = 0; req != NULL && i < req->nconn_tokens; i++)
        if (req->conn_tokens[i].len == len && mem_ieq(req->conn_tokens[i].ptr, name, len))
            return 1;
    return 0;
}

static const struct {
    int status;
    const char *what;
} error_table[BG_HTTP_E_COUNT] = {
    [BG_HTTP_E_NONE] = {500, "no error"},
    [BG_HTTP_E_BARE_LF] = {400, "bare LF in request head"},
    [BG_HTTP_E_BARE_CR] = {400, "bare CR in request head"},
    [BG_HTTP_E_BAD_REQUEST_LINE] = {400, "malformed request line"},
    [BG_HTTP_E_BAD_METHOD] = {400, "invalid method"},
    [BG_HTTP_E_BAD_TARGET] = {400, "invalid request target"},
    [BG_HTTP_E_BAD_VERSION] = {400, "malformed HTTP version"},
    [BG_HTTP_E_VERSION] = {505, "HTTP version not supported"},
    [BG_HTTP_E_CONNECT] = {501, "CONNECT is not supported"},
    [BG_HTTP_E_URI_TOO_LONG] = {414, "request line too long"},
    [BG_HTTP_E_HEAD_TOO_LARGE] = {431, "request head too large"},
    [BG_HTTP_E_TOO_MANY_HEADERS] = {431, "too many header fields"},
    [BG_HTTP_E_BAD_HEADER_NAME] = {400, "invalid header name"},
    [BG_HTTP_E_SPACE_BEFORE_COLON] = {400, "whitespace before colon in header"},
    [BG_HTTP_E_BAD_HEADER_VALUE] = {400, "invalid character in header value"},
    [BG_HTTP_E_OBS_FOLD] = {400, "obsolete line folding in header"},
    [BG_HTTP_E_CL_AND_TE] = {400, "both Content-Length and Transfer-Encoding"},
    [BG_HTTP_E_DUP_CL] = {400, "repeated Content-Length"},
    [BG_HTTP_E_BAD_CL] = {400, "invalid Content-Length"},
    [BG_HTTP_E_BAD_TE] = {400, "invalid Transfer-Encoding"},
    [BG_HTTP_E_TE_CODING] = {501, "transfer coding not supported"},
    [BG_HTTP_E_TE_HTTP10] = {400, "Transfer-Encoding in HTTP/1.0"},
    [BG_HTTP_E_MISSING_HOST] = {400, "missing Host header"},
    [BG_HTTP_E_DUP_HOST] = {400, "repeated Host header"},
    [BG_HTTP_E_BAD_HOST] = {400, "invalid Host header"},
    [BG_HTTP_E_BAD_CONNECTION] = {400, "invalid Connection header"},
    [BG_HTTP_E_EXPECT] = {417, "unsupported expectation"},
    [BG_HTTP_E_BODY_TOO_LARGE] = {413, "request body too large"},
    [BG_HTTP_E_BAD_CHUNK_SIZE] = {400, "invalid chunk size"},
    [BG_HTTP_E_BAD_CHUNK_EXT] = {400, "invalid or oversized chunk extension"},
    [BG_HTTP_E_CHUNK_CRLF] = {400, "missing CRLF in chunked body"},
    [BG_HTTP_E_BAD_TRAILER] = {400, "invalid or oversized trailer section"},
    [BG_HTTP_E_BAD_PATH] = {400, "path does not start with /"},
    [BG_HTTP_E_BAD_PERCENT] = {400, "invalid percent-escape in path"},
    [BG_HTTP_E_PATH_NUL] = {400, "encoded NUL in path"},
    [BG_HTTP_E_PATH_CTL] = {400, "encoded control character in path"},
    [BG_HTTP_E_ENCODED_SLASH] = {400, "encoded slash in path"},
    [BG_HTTP_E_PATH_TOO_LONG] = {414, "path too long"},
};

int bg_http_error_status(bg_http_error e, const char **reason)
{
    int status = 500;

    if ((unsigned)e < BG_HTTP_E_COUNT && error_table[e].status != 0)
        status = error_table[e].status;
    if (reason != NULL)
        *reason = bg_http_reason(status);
    return status;
}

const char *bg_http_error_str(bg_http_error e)
{
    if ((unsigned)e >= BG_HTTP_E_COUNT || error_table[e].what == NULL)
        return "unknown error";
    return error_table[e].what;
}

const char *bg_http_reason(int status)
{
    static const struct {
        int status;
        const char *reason;
    } reasons[] = {
        {100, "Continue"},
        {200, "OK"},
        {201, "Created"},
        {202, "Accepted"},
        {204, "No Content"},
        {206, "Partial Content"},
        {301, "Moved Permanently"},
        {302, "Found"},
        {303, "See Other"},
        {304, "Not Modified"},
        {307, "Temporary Redirect"},
        {308, "Permanent Redirect"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {406, "Not Acceptable"},
        {408, "Request Timeout"},
        {409, "Conflict"},
        {410, "Gone"},
        {411, "Length Required"},
        {412, "Precondition Failed"},
        {413, "Content Too Large"},
        {414, "URI Too Long"},
        {415, "Unsupported Media Type"},
        {417, "Expectation Failed"},
        {422, "Unprocessable Content"},
        {425, "Too Early"},
        {426, "Upgrade Required"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
        {505, "HTTP Version Not Supported"},
    };
    size_t i;

    for (i = 0; i < BG_ARRAY_LEN(reasons); i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return "";
}
