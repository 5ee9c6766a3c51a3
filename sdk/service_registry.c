/* service_registry.c: the service's endpoints: registration, the ENDPOINTS_UPDATE meta, dispatch
 * lookup. */
#include "service_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLAIM_MAX 128

int bgs_template_shape(const char *tpl, size_t len, char *out, size_t outlen)
{
    size_t i = 0, o = 0;

    while (i < len) {
        size_t end = i + 1;
        while (end < len && tpl[end] != '/')
            end++;
        /* segment is tpl[i+1 .. end); a parameter loses its name, keeps its kind */
        const char *seg = tpl + i + 1;
        size_t slen = end - i - 1;
        const char *put = seg;
        size_t plen = slen;
        if (slen >= 2 && seg[0] == '{' && seg[slen - 1] == '}') {
            int tail = slen >= 3 && seg[slen - 2] == '*';
            put = tail ? "{*}" : "{}";
            plen = tail ? 3 : 2;
        }
        if (o + 1 + plen >= outlen)
            return BG_ERR;
        out[o++] = '/';
        memcpy(out + o, put, plen);
        o += plen;
        i = end;
    }
    if (o == 0 && outlen > 1)
        out[o++] = '/';
    if (o >= outlen)
        return BG_ERR;
    out[o] = '\0';
    return BG_OK;
}

static void endpoint_clear(bgs_endpoint *e)
{
    free(e->path);
    free(e->shape);
    for (size_t i = 0; i < e->nclaims; i++)
        free(e->claims[i]);
    free(e->claims);
    free(e->rate_limit);
    json_decref(e->request_schema);
    json_decref(e->response_schema);
    json_decref(e->openapi);
    memset(e, 0, sizeof(*e));
}

void bgs_registry_free(busgate_service *s)
{
    for (size_t i = 0; i < s->neps; i++)
        endpoint_clear(&s->eps[i]);
    free(s->eps);
    s->eps = NULL;
    s->neps = s->cap = 0;
}

/* Schemas may be objects or booleans; an OpenAPI operation must be an object. */
static int endpoint_json(const char *text, const char *what, int object_only, json_t **out,
                         char *err)
{
    json_error_t je;

    *out = NULL;
    if (text == NULL)
        return BG_OK;
    *out = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (*out == NULL) {
        bg_set_error(err, "%s: invalid JSON at line %d column %d: %s", what, je.line, je.column,
                     je.text);
        return BG_ERR;
    }
    if (json_is_object(*out) || (!object_only && json_is_boolean(*out)))
        return BG_OK;
    bg_set_error(err, "%s: must be a JSON object%s", what, object_only ? "" : " or a boolean");
    json_decref(*out);
    *out = NULL;
    return BG_ERR;
}

static int endpoint_claims(bgs_endpoint *e, const busgate_endpoint_opts *o, char *err)
{
    if (o->nclaims == 0)
        return BG_OK;
    if (o->nclaims > BG_FRAME_CLAIMS_MAX || o->claims == NULL) {
        bg_set_error(err, "claims: at most %d", BG_FRAME_CLAIMS_MAX);
        return BG_ERR;
    }
    if ((e->claims = calloc(o->nclaims, sizeof(char *))) == NULL)
        goto oom;
    for (size_t i = 0; i < o->nclaims; i++) {
        size_t len = o->claims[i] != NULL ? strlen(o->claims[i]) : 0;
        if (len < 1 || len > CLAIM_MAX) {
            bg_set_error(err, "claims[%zu]: must be 1..%d bytes", i, CLAIM_MAX);
            return BG_ERR;
        }
        if ((e->claims[i] = strdup(o->claims[i])) == NULL)
            goto oom;
        e->nclaims = i + 1;
    }
    return BG_OK;
oom:
    bg_set_error(err, "claims: out of memory");
    return BG_ERR;
}

static int endpoint_options(bgs_endpoint *e, const busgate_endpoint_opts *o, char *err)
{
    if (o == NULL)
        return BG_OK;
    if (o->timeout_ms < 0 || o->timeout_ms > BG_FRAME_INTERVAL_MAX) {
        bg_set_error(err, "timeout_ms %lld: allowed 0..%d", (long long)o->timeout_ms,
                     BG_FRAME_INTERVAL_MAX);
        return BG_ERR;
    }
    e->timeout_ms = o->timeout_ms;
    e->run_inline = o->run_inline != 0;
    if (o->rate_limit != NULL && (e->rate_limit = strdup(o->rate_limit)) == NULL) {
        bg_set_error(err, "rate_limit: out of memory");
        return BG_ERR;
    }
    if (endpoint_claims(e, o, err) != BG_OK ||
        endpoint_json(o->request_schema, "request_schema", 0, &e->request_schema, err) != BG_OK ||
        endpoint_json(o->response_schema, "response_schema", 0, &e->response_schema, err) !=
            BG_OK ||
        endpoint_json(o->openapi, "openapi", 1, &e->openapi, err) != BG_OK)
        return BG_ERR;
    return BG_OK;
}

static void endpoint_plain(const bgs_endpoint *e, bg_endpoint *out)
{
    memset(out, 0, sizeof(*out));
    out->method = e->method;
    snprintf(out->method_name, sizeof(out->method_name), "%s", bg_method_name(e->method));
    out->path = e->path;
    out->timeout_ms = e->timeout_ms;
    out->claims = e->claims;
    out->nclaims = e->nclaims;
    out->rate_limit = e->rate_limit;
    out->request_schema = e->request_schema;
    out->response_schema = e->response_schema;
    out->openapi = e->openapi;
}

/* The codec's own check on the one endpoint: what passes here passes the gateway. */
static int endpoint_check(const bgs_endpoint *e, char *err)
{
    bg_endpoint plain;
    json_t *meta = NULL;

    endpoint_plain(e, &plain);
    if (bg_endpoints_to_meta(&plain, 1, NULL, &meta, err) != BG_OK)
        return BG_ERR;
    json_decref(meta);
    return BG_OK;
}

static int registry_grow(busgate_service *s, char *err)
{
    size_t cap = s->cap ? s->cap * 2 : 8;
    bgs_endpoint *eps;

    if (s->neps < s->cap)
        return BG_OK;
    if ((eps = realloc(s->eps, cap * sizeof(*eps))) == NULL) {
        bg_set_error(err, "endpoints: out of memory");
        return BG_ERR;
    }
    s->eps = eps;
    s->cap = cap;
    return BG_OK;
}

static int registry_unique(const busgate_service *s, const bgs_endpoint *e, char *err)
{
    if (s->neps >= BG_FRAME_ENDPOINTS_MAX) {
        bg_set_error(err, "at most %d endpoints per instance", BG_FRAME_ENDPOINTS_MAX);
        return BG_ERR;
    }
    for (size_t i = 0; i < s->neps; i++) {
        if (s->eps[i].method == e->method && strcmp(s->eps[i].shape, e->shape) == 0) {
            bg_set_error(err, "%s %s duplicates %s %s", bg_method_name(e->method), e->path,
                         bg_method_name(e->method), s->eps[i].path);
            return BG_ERR;
        }
    }
    return BG_OK;
}

int bgs_registry_add(busgate_service *s, bg_method method, const char *path, busgate_handler_fn *fn,
                     void *arg, const busgate_endpoint_opts *o, char *err)
{
    char why[BG_ERR_LEN];
    size_t len = strlen(path);
    bgs_endpoint e = {.method = method, .fn = fn, .arg = arg};

    if (bg_path_template_validate(path, len, why) != BG_OK) {
        bg_set_error(err, "endpoint %s %s: %s", bg_method_name(method), path, why);
        return BG_ERR;
    }
    e.path = strdup(path);
    e.shape = malloc(len + 2);
    if (e.path == NULL || e.shape == NULL || bgs_template_shape(path, len, e.shape, len + 2)) {
        bg_set_error(err, "endpoint %s %s: out of memory", bg_method_name(method), path);
        goto fail;
    }
    if (endpoint_options(&e, o, why) != BG_OK || endpoint_check(&e, why) != BG_OK ||
        registry_unique(s, &e, why) != BG_OK || registry_grow(s, why) != BG_OK) {
        bg_set_error(err, "endpoint %s %s: %s", bg_method_name(method), path, why);
        goto fail;
    }
    s->eps[s->neps++] = e;
    return BG_OK;
fail:
    endpoint_clear(&e);
    return BG_ERR;
}

int bgs_registry_build_meta(busgate_service *s, char *err)
{
    bg_endpoint *plain = calloc(s->neps ? s->neps : 1, sizeof(*plain));
    json_t *meta = NULL;
    int rc = BG_ERR;

    free(s->endpoints_meta);
    s->endpoints_meta = NULL;
    if (plain == NULL) {
        bg_set_error(err, "endpoints: out of memory");
        return BG_ERR;
    }
    for (size_t i = 0; i < s->neps; i++)
        endpoint_plain(&s->eps[i], &plain[i]);
    if (bg_endpoints_to_meta(plain, s->neps, s->openapi, &meta, err) != BG_OK)
        goto cleanup;
    s->endpoints_meta = json_dumps(meta, JSON_COMPACT);
    if (s->endpoints_meta == NULL) {
        bg_set_error(err, "endpoints: cannot serialise the JSON");
        goto cleanup;
    }
    s->endpoints_meta_len = strlen(s->endpoints_meta);
    if (s->endpoints_meta_len > BG_FRAME_META_MAX) {
        bg_set_error(err, "endpoints: meta is %zu bytes, limit %d", s->endpoints_meta_len,
                     BG_FRAME_META_MAX);
        goto cleanup;
    }
    rc = BG_OK;
cleanup:
    json_decref(meta);
    free(plain);
    return rc;
}

/* Templates compare by shape, so a gateway that learned "/a/{x}" from an older
 * instance still reaches our "/a/{id}". */
const bgs_endpoint *bgs_registry_find(const busgate_service *s, bg_method method, const char *tpl,
                                      size_t len)
{
    char stack[512], *shape = len + 2 <= sizeof(stack) ? stack : malloc(len + 2);
    const bgs_endpoint *found = NULL;

    if (shape == NULL || bgs_template_shape(tpl, len, shape, len + 2) != BG_OK)
        goto cleanup;
    for (int pass = 0; pass < 2 && found == NULL; pass++) {
        /* HEAD falls back to GET: the gateway ignores a HEAD response's body. */
        bg_method m = pass == 0 ? method : BG_METHOD_GET;
        if (pass == 1 && method != BG_METHOD_HEAD)
            break;
        for (size_t i = 0; i < s->neps && found == NULL; i++)
            if (s->eps[i].method == m && strcmp(s->eps[i].shape, shape) == 0)
                found = &s->eps[i];
    }
cleanup:
    if (shape != stack)
        free(shape);
    return found;
}
