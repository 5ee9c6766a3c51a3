/* frame_meta_flat.c: REQUEST and RESPONSE meta decoded without jansson, for the hot path.
 *
 * Both sides of every request parse a small meta object ({"headers":[[n,v],...],
 * "params":{...}, "client":"...", "features":[...]}); building a json_t tree for it cost
 * more than anything else in the codec (a malloc per string, array and member). This parser
 * takes only that common shape, printable ASCII strings with the simple escapes, and stores
 * it flat in one allocation. The verified identity's claims (any JSON object) are the one
 * member handed to jansson, alone. Anything else (another member, \u escapes, non-ASCII
 * bytes, numbers, a duplicate, a value the checks refuse, claims jansson refuses) makes it
 * give up, and the decoder parses the whole text with jansson as before: the accepted
 * language and every error message stay exactly jansson's and bg_meta_check's. */
#include "frame_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct flat_parser {
    const char *p, *end;
    char *out; /* unescaped strings, each NUL-terminated */
    bg_meta_flat *m;
    size_t cap_headers, cap_params, cap_features;
} flat_parser;

static void skip_ws(flat_parser *fp)
{
    while (fp->p < fp->end && (*fp->p == ' ' || *fp->p == '\t' || *fp->p == '\n' || *fp->p == '\r'))
        fp->p++;
}

static int expect(flat_parser *fp, char c)
{
    skip_ws(fp);
    if (fp->p >= fp->end || *fp->p != c)
        return BG_ERR;
    fp->p++;
    return BG_OK;
}

/* 1 when the next non-blank byte is c (and takes it). */
static int accept(flat_parser *fp, char c)
{
    skip_ws(fp);
    if (fp->p < fp->end && *fp->p == c) {
        fp->p++;
        return 1;
    }
    return 0;
}

static int unescape(char c, char *out)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *at = c != '\0' ? strchr(from, c) : NULL;

    if (at == NULL)
        return BG_ERR; /* \u and anything unknown: jansson decides */
    *out = to[at - from];
    return BG_OK;
}

/* A JSON string of printable ASCII (and the simple escapes), copied unescaped into out. */
static int string(flat_parser *fp, const char **s, size_t *len)
{
    char *start = fp->out;

    if (expect(fp, '"') != BG_OK)
        return BG_ERR;
    while (fp->p < fp->end && *fp->p != '"') {
        unsigned char c = (unsigned char)*fp->p++;
        if (c < 0x20 || c >= 0x80)
            return BG_ERR; /* control bytes are invalid JSON; UTF-8 is checked by jansson */
        if (c == '\\') {
            if (fp->p >= fp->end || unescape(*fp->p++, fp->out) != BG_OK)
                return BG_ERR;
            fp->out++;
            continue;
        }
        *fp->out++ = (char)c;
    }
    if (fp->p >= fp->end)
        return BG_ERR;
    fp->p++;
    *len = (size_t)(fp->out - start);
    *fp->out++ = '\0';
    *s = start;
    return BG_OK;
}

/* [["name","value"], ...]: tokens and values bg_meta_check would accept. */
static int headers(flat_parser *fp)
{
    bg_meta_flat *m = fp->m;

    if (m->headers != NULL || expect(fp, '[') != BG_OK)
        return BG_ERR;
    m->headers = (bg_pair *)(m + 1);
    if (accept(fp, ']'))
        return BG_OK;
    do {
        bg_pair *h = &m->headers[m->nheaders];
        if (m->nheaders >= fp->cap_headers || expect(fp, '[') != BG_OK ||
            string(fp, &h->name, &h->name_len) != BG_OK || expect(fp, ',') != BG_OK ||
            string(fp, &h->value, &h->value_len) != BG_OK || expect(fp, ']') != BG_OK)
            return BG_ERR;
        if (!bg_http_token_ok(h->name, h->name_len) || !bg_header_value_ok(h->value, h->value_len))
            return BG_ERR;
        m->nheaders++;
    } while (accept(fp, ','));
    return expect(fp, ']');
}

/* {"name":"value", ...}: valid, unique names. */
static int params(flat_parser *fp)
{
    bg_meta_flat *m = fp->m;

    if (m->params != NULL || expect(fp, '{') != BG_OK)
        return BG_ERR;
    m->params = (bg_pair *)(m + 1) + fp->cap_headers;
    if (accept(fp, '}'))
        return BG_OK;
    do {
        bg_pair *q = &m->params[m->nparams];
        if (m->nparams >= fp->cap_params || string(fp, &q->name, &q->name_len) != BG_OK ||
            expect(fp, ':') != BG_OK || string(fp, &q->value, &q->value_len) != BG_OK)
            return BG_ERR;
        if (!bg_param_name_ok(q->name, q->name_len))
            return BG_ERR;
        for (size_t i = 0; i < m->nparams; i++)
            if (strcmp(m->params[i].name, q->name) == 0)
                return BG_ERR;
        m->nparams++;
    } while (accept(fp, ','));
    return expect(fp, '}');
}

static int features(flat_parser *fp)
{
    bg_meta_flat *m = fp->m;
    size_t len;

    if (m->features != NULL || expect(fp, '[') != BG_OK)
        return BG_ERR;
    m->features = (const char **)((bg_pair *)(m + 1) + fp->cap_headers + fp->cap_params);
    if (accept(fp, ']'))
        return BG_OK;
    do {
        if (m->nfeatures >= fp->cap_features ||
            string(fp, &m->features[m->nfeatures], &len) != BG_OK)
            return BG_ERR;
        m->nfeatures++;
    } while (accept(fp, ','));
    return expect(fp, ']');
}

/* Moves past one JSON object or array (strings and nesting respected, nothing else
 * checked: jansson checks the span afterwards). */
static int skip_value(flat_parser *fp)
{
    int depth = 0, in_string = 0;

    for (; fp->p < fp->end; fp->p++) {
        char c = *fp->p;
        if (in_string) {
            if (c == '\\' && fp->p + 1 < fp->end)
                fp->p++;
            else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if ((c == '}' || c == ']') && --depth == 0) {
            fp->p++;
            return BG_OK;
        }
    }
    return BG_ERR;
}

/* "claims": {...}, parsed by jansson on its own (a few members, not the whole meta). */
static int claims(flat_parser *fp)
{
    const char *start;

    skip_ws(fp);
    start = fp->p;
    if (fp->m->claims != NULL || fp->p >= fp->end || *fp->p != '{' || skip_value(fp) != BG_OK)
        return BG_ERR;
    fp->m->claims = json_loadb(start, (size_t)(fp->p - start), JSON_REJECT_DUPLICATES, NULL);
    return json_is_object(fp->m->claims) ? BG_OK : BG_ERR;
}

static int member(flat_parser *fp, bg_frame_type t)
{
    const char *key;
    size_t len;

    if (string(fp, &key, &len) != BG_OK || expect(fp, ':') != BG_OK)
        return BG_ERR;
    fp->out = (char *)key; /* the key's bytes are not kept */
    if (strcmp(key, "headers") == 0)
        return headers(fp);
    if (t != BG_FRAME_REQUEST)
        return BG_ERR;
    if (strcmp(key, "params") == 0)
        return params(fp);
    if (strcmp(key, "features") == 0)
        return features(fp);
    if (strcmp(key, "client") == 0 && fp->m->client == NULL)
        return string(fp, &fp->m->client, &len);
    if (strcmp(key, "claims") == 0)
        return claims(fp);
    return BG_ERR;
}

static int parse(flat_parser *fp, bg_frame_type t)
{
    if (expect(fp, '{') != BG_OK)
        return BG_ERR;
    if (!accept(fp, '}')) {
        do {
            if (member(fp, t) != BG_OK)
                return BG_ERR;
        } while (accept(fp, ','));
        if (expect(fp, '}') != BG_OK)
            return BG_ERR;
    }
    skip_ws(fp);
    return fp->p == fp->end ? BG_OK : BG_ERR;
}

static size_t at_most(size_t limit, size_t bound)
{
    return bound < limit ? bound : limit;
}

bg_meta_flat *bg_meta_flat_parse(bg_frame_type t, const char *text, size_t len)
{
    flat_parser fp = {.p = text, .end = text + len};
    size_t size;
    char *raw;

    if (t != BG_FRAME_REQUEST && t != BG_FRAME_RESPONSE)
        return NULL;
    /* Each item takes at least this many bytes of text, so these bound the arrays. Strings
     * shrink when unescaped, and their quotes pay for the NUL: len bytes hold them all. */
    fp.cap_headers = at_most(BG_FRAME_HEADERS_MAX, len / 8 + 1); /* ["t",""], */
    fp.cap_params = at_most(BG_FRAME_PARAMS_MAX, len / 6 + 1);   /* "p":"", */
    fp.cap_features = at_most(BG_FRAME_FEATURES_MAX, len / 3 + 1);
    size = sizeof(bg_meta_flat) + (fp.cap_headers + fp.cap_params) * sizeof(bg_pair) +
           fp.cap_features * sizeof(char *) + 2 * len + 1;
    if ((fp.m = calloc(1, size)) == NULL)
        return NULL;
    fp.out = (char *)((const char **)((bg_pair *)(fp.m + 1) + fp.cap_headers + fp.cap_params) +
                      fp.cap_features);
    raw = fp.out + len; /* the text as received, re-sent verbatim by a re-encode */
    if (parse(&fp, t) != BG_OK) {
        bg_meta_flat_free(fp.m);
        return NULL;
    }
    if (len > 0)
        memcpy(raw, text, len);
    fp.m->raw.ptr = raw;
    fp.m->raw.len = len;
    return fp.m;
}

void bg_meta_flat_free(bg_meta_flat *m)
{
    if (m == NULL)
        return;
    json_decref(m->claims);
    free(m);
}
