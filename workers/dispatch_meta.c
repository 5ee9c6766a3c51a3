/* dispatch_meta.c: the REQUEST meta JSON: route params, forwarded headers, client address. */
#include "dispatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busgate/proto/frame.h"

/* Appends s as a JSON string; BG_ERR when it is not UTF-8 (or has NUL). */
static int meta_quote(bg_buf *b, const char *s, size_t len)
{
    size_t n;

    if (bg_buf_reserve(b, len * 6 + 3) != BG_OK)
        return BG_ERR;
    n = bg_json_quote(b->p + b->len, b->cap - b->len, s, len);
    if (n == (size_t)-1 || n > b->cap - b->len)
        return BG_ERR;
    b->len += n;
    return BG_OK;
}

static int meta_pair(bg_buf *b, int *first, const char *name, size_t nlen, const char *value,
                     size_t vlen)
{
    if (bg_buf_puts(b, *first ? "[" : ",[") != BG_OK || meta_quote(b, name, nlen) != BG_OK ||
        bg_buf_puts(b, ",") != BG_OK || meta_quote(b, value, vlen) != BG_OK ||
        bg_buf_puts(b, "]") != BG_OK)
        return BG_ERR;
    *first = 0;
    return BG_OK;
}

static int meta_params(bg_buf *b, const bg_xchg *x)
{
    const bg_rt_match *m = &x->match;
    int i;

    if (bg_buf_puts(b, "{\"params\":{") != BG_OK)
        return BG_ERR;
    for (i = 0; i < m->nparams; i++) {
        const bg_rt_param *p = &m->params[i];
        if (p->off + p->len > x->path_len)
            return BG_ERR;
        if ((i > 0 && bg_buf_puts(b, ",") != BG_OK) ||
            meta_quote(b, p->name, strlen(p->name)) != BG_OK || bg_buf_puts(b, ":") != BG_OK ||
            meta_quote(b, x->path + p->off, p->len) != BG_OK)
            return BG_ERR;
    }
    return bg_buf_puts(b, "}");
}

/* The gateway sets these itself; what a client sent is not passed on as is. */
static int meta_replaced(const bg_bytes *name)
{
    return bg_http_token_eq(name->ptr, name->len, "x-forwarded-for") ||
           bg_http_token_eq(name->ptr, name->len, "x-forwarded-proto") ||
           bg_http_token_eq(name->ptr, name->len, "x-forwarded-host") ||
           bg_http_token_eq(name->ptr, name->len, "content-length");
}

/* X-Forwarded-For: what the client claimed, then the address we saw (appended last,
 * as proxies do: only the last entry is the gateway's own observation). */
static int meta_xff(bg_buf *b, int *first, const bg_http_request *req, const char *client)
{
    bg_buf v = {0};
    size_t i;
    int rv;

    for (i = 0; i < req->nheaders; i++) {
        const bg_http_header *h = &req->headers[i];
        if (!bg_http_token_eq(h->name.ptr, h->name.len, "x-forwarded-for") || h->value.len == 0)
            continue;
        if ((v.len > 0 && bg_buf_puts(&v, ", ") != BG_OK) ||
            bg_buf_append(&v, h->value.ptr, h->value.len) != BG_OK)
            goto oom;
    }
    if ((v.len > 0 && bg_buf_puts(&v, ", ") != BG_OK) || bg_buf_puts(&v, client) != BG_OK)
        goto oom;
    rv = meta_pair(b, first, "X-Forwarded-For", 15, v.p, v.len);
    bg_buf_free(&v);
    return rv;
oom:
    bg_buf_free(&v);
    return BG_ERR;
}

static int meta_forwarded(bg_buf *b, int *first, const bg_xchg *x, const bg_http_request *req)
{
    const char *proto = x->tls ? "https" : "http";

    if (meta_xff(b, first, req, x->client) != BG_OK ||
        meta_pair(b, first, "X-Forwarded-Proto", 17, proto, strlen(proto)) != BG_OK)
        return BG_ERR;
    if (req->host.ptr != NULL &&
        meta_pair(b, first, "X-Forwarded-Host", 16, req->host.ptr, req->host.len) != BG_OK)
        return BG_ERR;
    return meta_pair(b, first, BG_IDENTITY_REQUEST_ID_HEADER, strlen(BG_IDENTITY_REQUEST_ID_HEADER),
                     x->id, strlen(x->id));
}

typedef struct meta_emit {
    bg_buf *b;
    int *first;
} meta_emit;

static int meta_emit_pair(void *arg, const char *name, size_t nlen, const char *value, size_t vlen)
{
    meta_emit *e = arg;

    return meta_pair(e->b, e->first, name, nlen, value, vlen);
}

static int meta_headers(bg_wk *wk, bg_buf *b, const bg_xchg *x, const bg_http_request *req,
                        const bg_auth_result *id, char *detail, size_t dlen)
{
    meta_emit emit = {b, NULL};
    int first = 1;
    size_t i;

    if (bg_buf_puts(b, ",\"headers\":[") != BG_OK)
        return BG_ERR;
    for (i = 0; i < req->nheaders; i++) {
        const bg_http_header *h = &req->headers[i];
        if (h->hop_by_hop || meta_replaced(&h->name) ||
            bg_identity_reserved(&wk->identity, h->name.ptr, h->name.len))
            continue;
        if (meta_pair(b, &first, h->name.ptr, h->name.len, h->value.ptr, h->value.len) != BG_OK) {
            snprintf(detail, dlen, "header '%.*s' is not valid UTF-8",
                     (int)(h->name.len > 64 ? 64 : h->name.len), h->name.ptr);
            return BG_ERR;
        }
    }
    if (meta_forwarded(b, &first, x, req) != BG_OK) {
        snprintf(detail, dlen, "X-Forwarded-For or Host is not valid UTF-8");
        return BG_ERR;
    }
    emit.first = &first;
    if (id->claims != NULL &&
        bg_auth_identity(wk->cfg, id->claims, id->text, meta_emit_pair, &emit) != BG_OK) {
        snprintf(detail, dlen, "the token's claims cannot be passed on as headers");
        return BG_ERR;
    }
    return bg_buf_puts(b, "]");
}

/* ,"claims":{...}: the verified token's payload, as docs/protocol.md promises. */
static int meta_claims(bg_buf *b, const bg_auth_result *id)
{
    char *made = NULL;
    const char *text = id->text;
    int rc;

    if (id->claims == NULL)
        return BG_OK;
    if (text == NULL && (text = made = json_dumps(id->claims, JSON_COMPACT)) == NULL)
        return BG_ERR;
    rc = bg_buf_puts(b, ",\"claims\":") == BG_OK && bg_buf_puts(b, text) == BG_OK ? BG_OK : BG_ERR;
    free(made);
    return rc;
}

int bg_dispatch_build_meta(bg_wk *wk, bg_xchg *x, const bg_http_request *req,
                           const bg_auth_result *id, char *detail, size_t dlen)
{
    bg_buf *b = &x->meta;

    b->len = 0;
    if (meta_params(b, x) != BG_OK) {
        snprintf(detail, dlen, "the path is not valid UTF-8");
        return BG_ERR;
    }
    detail[0] = '\0';
    if (meta_headers(wk, b, x, req, id, detail, dlen) != BG_OK) {
        if (detail[0] == '\0')
            snprintf(detail, dlen, "cannot forward the request headers");
        return BG_ERR;
    }
    /* Tells the service it may stream its answer (RESPONSE stream 1, RESPONSE_CHUNK). */
    if (bg_buf_puts(b, ",\"features\":[\"" BG_FEATURE_STREAM "\"]") != BG_OK) {
        snprintf(detail, dlen, "cannot forward the request");
        return BG_ERR;
    }
    if (bg_buf_puts(b, ",\"client\":") != BG_OK || meta_quote(b, x->client, strlen(x->client)) ||
        meta_claims(b, id) != BG_OK || bg_buf_puts(b, "}") != BG_OK) {
        snprintf(detail, dlen, "cannot forward the request");
        return BG_ERR;
    }
    return BG_OK;
}
