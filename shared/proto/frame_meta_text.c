/* frame_meta_text.c: a meta {"headers":[...]} written as JSON text directly, for senders on a
 * hot path (the SDK's RESPONSE): no json_t tree to build, serialise and free per answer. */
#include "frame_int.h"

#include <stdlib.h>
#include <string.h>

#define HEAD "{\"headers\":["

/* Room for extra more bytes, and the closing "]}" after them. */
static int text_reserve(bg_meta_headers *m, size_t extra)
{
    size_t need = m->len + extra + 2, cap = m->cap ? m->cap : 256;
    char *p;

    if (need <= m->cap)
        return BG_OK;
    while (cap < need)
        cap *= 2;
    if ((p = realloc(m->p, cap)) == NULL)
        return BG_ERR;
    m->p = p;
    m->cap = cap;
    return BG_OK;
}

static void text_quote(bg_meta_headers *m, const char *s, size_t len)
{
    m->len += bg_json_quote(m->p + m->len, m->cap - m->len, s, len);
}

int bg_meta_headers_add(bg_meta_headers *m, const char *name, size_t name_len, const char *value,
                        size_t value_len, char *err)
{
    size_t qn = bg_json_quote(NULL, 0, name, name_len), qv;

    if (!bg_http_token_ok(name, name_len)) {
        bg_set_error(err, "header name is not an HTTP token");
        return BG_ERR;
    }
    if (!bg_header_value_ok(value, value_len)) {
        bg_set_error(err, "header value contains a control byte (CR, LF, NUL, ...)");
        return BG_ERR;
    }
    if (m->count >= BG_FRAME_HEADERS_MAX) {
        bg_set_error(err, "more than %d headers", BG_FRAME_HEADERS_MAX);
        return BG_ERR;
    }
    if ((qv = bg_json_quote(NULL, 0, value, value_len)) == (size_t)-1) {
        bg_set_error(err, "header value is not valid UTF-8");
        return BG_ERR;
    }
    /* the head, a comma, "[" name "," value "]" */
    if (text_reserve(m, sizeof(HEAD) + qn + qv + 4) != BG_OK) {
        bg_set_error(err, "meta: out of memory");
        return BG_ERR;
    }
    if (m->len == 0) {
        memcpy(m->p, HEAD, sizeof(HEAD) - 1);
        m->len = sizeof(HEAD) - 1;
    } else {
        m->p[m->len++] = ',';
    }
    m->p[m->len++] = '[';
    text_quote(m, name, name_len);
    m->p[m->len++] = ',';
    text_quote(m, value, value_len);
    m->p[m->len++] = ']';
    m->count++;
    return BG_OK;
}

bg_bytes bg_meta_headers_text(bg_meta_headers *m)
{
    if (m->count == 0)
        return (bg_bytes){NULL, 0};
    memcpy(m->p + m->len, "]}", 2); /* text_reserve kept room for it */
    return (bg_bytes){m->p, m->len + 2};
}

void bg_meta_headers_free(bg_meta_headers *m)
{
    free(m->p);
    memset(m, 0, sizeof(*m));
}
