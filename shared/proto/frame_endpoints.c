/* frame_endpoints.c: the endpoint list of ENDPOINTS_UPDATE meta, parsed into plain C and built. */
#include "frame_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busgate/core/rate_spec.h"

#define CLAIM_MAX 128

void bg_endpoints_free(bg_endpoint_list *l)
{
    for (size_t i = 0; i < l->count; i++) {
        bg_endpoint *e = &l->items[i];
        for (size_t c = 0; c < e->nclaims; c++)
            free(e->claims[c]);
        free(e->claims);
        free(e->rate_limit);
        free(e->path);
    }
    free(l->items);
    json_decref(l->meta_);
    memset(l, 0, sizeof(*l));
}

static int parse_claims(json_t *claims, size_t i, bg_endpoint *ep, char *err)
{
    size_t n = json_array_size(claims);

    if (claims == NULL)
        return BG_OK;
    if (!json_is_array(claims) || n > BG_FRAME_CLAIMS_MAX) {
        bg_set_error(err, "endpoints[%zu]: claims is not an array of at most %d strings", i,
                     BG_FRAME_CLAIMS_MAX);
        return BG_ERR;
    }
    if (n > 0 && (ep->claims = calloc(n, sizeof(char *))) == NULL)
        goto oom;
    for (size_t c = 0; c < n; c++) {
        json_t *s = json_array_get(claims, c);
        size_t len = json_string_length(s);
        if (!json_is_string(s) || len == 0 || len > CLAIM_MAX ||
            memchr(json_string_value(s), '\0', len) != NULL) {
            bg_set_error(err, "endpoints[%zu]: claims[%zu] is not a string of 1..%d bytes", i, c,
                         CLAIM_MAX);
            return BG_ERR;
        }
        if ((ep->claims[c] = strdup(json_string_value(s))) == NULL)
            goto oom;
        ep->nclaims++;
    }
    return BG_OK;

oom:
    bg_set_error(err, "endpoints[%zu]: out of memory", i);
    return BG_ERR;
}

/* "100/s burst=20 key=client": the grammar of an ini rate_limit after its method and
 * prefix, one parser for both (core/rate_spec.c). */
static int parse_rate_limit(json_t *v, size_t i, bg_endpoint *ep, char *err)
{
    size_t len = json_string_length(v);
    char why[BG_ERR_LEN];
    bg_rate_spec spec;

    if (v == NULL)
        return BG_OK;
    if (!json_is_string(v) || len == 0 || len > BG_RATE_SPEC_TEXT_MAX ||
        memchr(json_string_value(v), '\0', len) != NULL) {
        bg_set_error(err, "endpoints[%zu]: rate_limit is not a string of 1..%d bytes", i,
                     BG_RATE_SPEC_TEXT_MAX);
        return BG_ERR;
    }
    if (bg_rate_spec_parse(json_string_value(v), &spec, why) != BG_OK) {
        bg_set_error(err, "endpoints[%zu]: rate_limit: %s", i, why);
        return BG_ERR;
    }
    if ((ep->rate_limit = strdup(json_string_value(v))) == NULL) {
        bg_set_error(err, "endpoints[%zu]: out of memory", i);
        return BG_ERR;
    }
    return BG_OK;
}

/* A JSON Schema is an object or a boolean; an OpenAPI fragment is an object. */
static int parse_json_part(json_t *e, const char *key, int schema, size_t i, json_t **out,
                           char *err)
{
    json_t *v = json_object_get(e, key);

    *out = v;
    if (v == NULL || json_is_object(v) || (schema && json_is_boolean(v)))
        return BG_OK;
    bg_set_error(err, "endpoints[%zu]: %s is not %s", i, key,
                 schema ? "an object or a boolean" : "an object");
    return BG_ERR;
}

static int parse_endpoint(json_t *e, size_t i, bg_endpoint *ep, char *err)
{
    json_t *method = json_object_get(e, "method"), *path = json_object_get(e, "path");
    json_t *timeout = json_object_get(e, "timeout_ms");
    char inner[BG_ERR_LEN];

    if (!json_is_object(e)) {
        bg_set_error(err, "endpoints[%zu] is not an object", i);
        return BG_ERR;
    }
    if (!json_is_string(method) ||
        bg_method_parse(json_string_value(method), json_string_length(method), &ep->method) !=
            BG_OK) {
        bg_set_error(err,
                     "endpoints[%zu]: method is not one of GET HEAD POST PUT PATCH DELETE "
                     "OPTIONS",
                     i);
        return BG_ERR;
    }
    snprintf(ep->method_name, sizeof(ep->method_name), "%s", bg_method_name(ep->method));
    if (!json_is_string(path)) {
        bg_set_error(err, "endpoints[%zu]: path is missing or not a string", i);
        return BG_ERR;
    }
    if (bg_path_template_validate(json_string_value(path), json_string_length(path), inner) !=
        BG_OK) {
        bg_set_error(err, "endpoints[%zu]: path: %s", i, inner);
        return BG_ERR;
    }
    if (timeout != NULL && (!json_is_integer(timeout) || json_integer_value(timeout) < 0 ||
                            json_integer_value(timeout) > BG_FRAME_INTERVAL_MAX)) {
        bg_set_error(err, "endpoints[%zu]: timeout_ms is not an integer in 0..%d", i,
                     BG_FRAME_INTERVAL_MAX);
        return BG_ERR;
    }
    ep->timeout_ms = timeout != NULL ? json_integer_value(timeout) : 0;
    if ((ep->path = strdup(json_string_value(path))) == NULL) {
        bg_set_error(err, "endpoints[%zu]: out of memory", i);
        return BG_ERR;
    }
    if (parse_claims(json_object_get(e, "claims"), i, ep, err) != BG_OK ||
        parse_rate_limit(json_object_get(e, "rate_limit"), i, ep, err) != BG_OK)
        return BG_ERR;
    if (parse_json_part(e, "request_schema", 1, i, &ep->request_schema, err) != BG_OK ||
        parse_json_part(e, "response_schema", 1, i, &ep->response_schema, err) != BG_OK)
        return BG_ERR;
    return parse_json_part(e, "openapi", 0, i, &ep->openapi, err);
}

/* "GET /orders/{}/items/{*}": method and template with parameter names erased, so
 * "/orders/{id}" and "/orders/{oid}" count as the same route. */
static char *route_shape(const bg_endpoint *ep)
{
    size_t len = strlen(ep->path);
    char *s = malloc(strlen(ep->method_name) + 1 + len + 1), *o;
    const char *p = ep->path;

    if (s == NULL)
        return NULL;
    o = s + sprintf(s, "%s ", ep->method_name);
    while (*p != '\0') {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            *o++ = '{';
            if (close[-1] == '*')
                *o++ = '*';
            *o++ = '}';
            p = close + 1;
            continue;
        }
        *o++ = *p++;
    }
    *o = '\0';
    return s;
}

typedef struct shape {
    char *s;
    size_t idx;
} shape;

static int shape_cmp(const void *a, const void *b)
{
    const shape *x = a, *y = b;
    int c = strcmp(x->s, y->s);

    return c != 0 ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

static int check_duplicates(const bg_endpoint_list *l, char *err)
{
    shape *sh = calloc(l->count ? l->count : 1, sizeof(*sh));
    int rc = BG_ERR;
    size_t n = 0;

    if (sh == NULL)
        goto oom;
    for (n = 0; n < l->count; n++) {
        sh[n].idx = n;
        if ((sh[n].s = route_shape(&l->items[n])) == NULL)
            goto oom;
    }
    qsort(sh, n, sizeof(*sh), shape_cmp);
    rc = BG_OK;
    for (size_t i = 1; i < n && rc == BG_OK; i++) {
        const bg_endpoint *a = &l->items[sh[i - 1].idx], *b = &l->items[sh[i].idx];
        if (strcmp(sh[i - 1].s, sh[i].s) != 0)
            continue;
        bg_set_error(err, "endpoints[%zu] (%s %.64s) duplicates endpoints[%zu] (%s %.64s)",
                     sh[i].idx, b->method_name, b->path, sh[i - 1].idx, a->method_name, a->path);
        rc = BG_ERR;
    }
    goto cleanup;

oom:
    bg_set_error(err, "endpoints: out of memory");
cleanup:
    for (size_t i = 0; sh != NULL && i < n; i++)
        free(sh[i].s);
    free(sh);
    return rc;
}

static int parse_list(json_t *meta, bg_endpoint_list *out, char *err)
{
    json_t *eps = json_object_get(meta, "endpoints");
    size_t n = json_array_size(eps);

    if (!json_is_array(eps)) {
        bg_set_error(err, "endpoints is missing or not an array");
        return BG_ERR;
    }
    if (n > BG_FRAME_ENDPOINTS_MAX) {
        bg_set_error(err, "endpoints has %zu entries, limit %d", n, BG_FRAME_ENDPOINTS_MAX);
        return BG_ERR;
    }
    out->openapi = json_object_get(meta, "openapi");
    if (out->openapi != NULL && !json_is_object(out->openapi)) {
        bg_set_error(err, "openapi is not an object");
        return BG_ERR;
    }
    if ((out->items = calloc(n ? n : 1, sizeof(bg_endpoint))) == NULL) {
        bg_set_error(err, "endpoints: out of memory");
        return BG_ERR;
    }
    for (size_t i = 0; i < n; i++) {
        out->count = i + 1; /* so bg_endpoints_free sees a half-parsed entry */
        if (parse_endpoint(json_array_get(eps, i), i, &out->items[i], err) != BG_OK)
            return BG_ERR;
    }
    return check_duplicates(out, err);
}

int bg_endpoints_parse(json_t *meta, bg_endpoint_list *out, char *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(meta)) {
        bg_set_error(err, "not a JSON object");
        return BG_ERR;
    }
    out->meta_ = json_incref(meta);
    if (parse_list(meta, out, err) != BG_OK) {
        bg_endpoints_free(out);
        return BG_ERR;
    }
    return BG_OK;
}

static json_t *endpoint_to_json(const bg_endpoint *ep)
{
    const char *method = ep->method != 0 ? bg_method_name(ep->method) : ep->method_name;
    json_t *o = json_pack("{s:s, s:s}", "method", method, "path", ep->path ? ep->path : "");
    json_t *claims = NULL;
    int bad = o == NULL;

    if (!bad && ep->timeout_ms > 0)
        bad |= json_object_set_new(o, "timeout_ms", json_integer(ep->timeout_ms));
    if (!bad && ep->nclaims > 0) {
        bad |= (claims = json_array()) == NULL || json_object_set_new(o, "claims", claims);
        for (size_t c = 0; !bad && c < ep->nclaims; c++)
            bad |= json_array_append_new(claims, json_string(ep->claims[c]));
    }
    if (!bad && ep->rate_limit != NULL)
        bad |= json_object_set_new(o, "rate_limit", json_string(ep->rate_limit));
    if (!bad && ep->request_schema != NULL)
        bad |= json_object_set(o, "request_schema", ep->request_schema);
    if (!bad && ep->response_schema != NULL)
        bad |= json_object_set(o, "response_schema", ep->response_schema);
    if (!bad && ep->openapi != NULL)
        bad |= json_object_set(o, "openapi", ep->openapi);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int bg_endpoints_to_meta(const bg_endpoint *eps, size_t n, json_t *openapi, json_t **meta_out,
                         char *err)
{
    json_t *meta = json_object(), *arr = json_array();
    bg_endpoint_list check;

    *meta_out = NULL;
    if (meta == NULL || arr == NULL || json_object_set_new(meta, "endpoints", arr) != 0)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        if (json_array_append_new(arr, endpoint_to_json(&eps[i])) != 0) {
            bg_set_error(err, "endpoints[%zu]: cannot build JSON (out of memory or bad UTF-8)", i);
            goto fail;
        }
    }
    if (openapi != NULL && json_object_set(meta, "openapi", openapi) != 0)
        goto oom;
    /* The builder's output must pass the decoder: check it the same way. */
    if (bg_endpoints_parse(meta, &check, err) != BG_OK)
        goto fail;
    bg_endpoints_free(&check);
    *meta_out = meta;
    return BG_OK;

oom:
    bg_set_error(err, "endpoints: out of memory");
fail:
    if (meta == NULL)
        json_decref(arr);
    json_decref(meta);
    return BG_ERR;
}
