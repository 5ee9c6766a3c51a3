/* frame_meta.c: the JSON meta field: per-type validation, header/param accessors, builders. */
#include "frame_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* RFC 9110 field-value: no control bytes but HTAB. CR or LF would split the HTTP
 * message the value is copied into. */
int bg_header_value_ok(const char *v, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
    }
    return 1;
}

static int check_pair(json_t *pair, size_t i, char *why)
{
    json_t *name = json_array_get(pair, 0), *value = json_array_get(pair, 1);
    const char *v;
    size_t vlen;

    if (!json_is_array(pair) || json_array_size(pair) != 2 || !json_is_string(name) ||
        !json_is_string(value)) {
        bg_set_error(why, "meta: headers[%zu] is not a [name, value] pair of strings", i);
        return BG_ERR;
    }
    if (!bg_http_token_ok(json_string_value(name), json_string_length(name))) {
        bg_set_error(why, "meta: headers[%zu] name is not an HTTP token", i);
        return BG_ERR;
    }
    v = json_string_value(value);
    vlen = json_string_length(value);
    if (!bg_header_value_ok(v, vlen)) {
        bg_set_error(why, "meta: headers[%zu] value contains a control byte (CR, LF, NUL, ...)", i);
        return BG_ERR;
    }
    return BG_OK;
}

static int check_headers(json_t *meta, char *why)
{
    json_t *h = json_object_get(meta, "headers");

    if (h == NULL)
        return BG_OK;
    if (!json_is_array(h)) {
        bg_set_error(why, "meta: headers is not an array");
        return BG_ERR;
    }
    if (json_array_size(h) > BG_FRAME_HEADERS_MAX) {
        bg_set_error(why, "meta: headers has %zu pairs, limit %d", json_array_size(h),
                     BG_FRAME_HEADERS_MAX);
        return BG_ERR;
    }
    for (size_t i = 0; i < json_array_size(h); i++) {
        if (check_pair(json_array_get(h, i), i, why) != BG_OK)
            return BG_ERR;
    }
    return BG_OK;
}

static int check_params(json_t *meta, char *why)
{
    json_t *p = json_object_get(meta, "params"), *v;
    const char *k;

    if (p == NULL)
        return BG_OK;
    if (!json_is_object(p)) {
        bg_set_error(why, "meta: params is not an object");
        return BG_ERR;
    }
    if (json_object_size(p) > BG_FRAME_PARAMS_MAX) {
        bg_set_error(why, "meta: params has %zu entries, limit %d", json_object_size(p),
                     BG_FRAME_PARAMS_MAX);
        return BG_ERR;
    }
    json_object_foreach(p, k, v)
    {
        if (!bg_param_name_ok(k, strlen(k))) {
            bg_set_error(why, "meta: params has an invalid name (allowed [A-Za-z_][A-Za-z0-9_]*)");
            return BG_ERR;
        }
        if (!json_is_string(v)) {
            bg_set_error(why, "meta: params.%s is not a string", k);
            return BG_ERR;
        }
    }
    return BG_OK;
}

/* Optional member key must have the JSON type named by what, if present. */
static int check_member(json_t *meta, const char *key, json_type type, const char *what, char *why)
{
    json_t *v = json_object_get(meta, key);

    if (v == NULL || json_typeof(v) == type)
        return BG_OK;
    bg_set_error(why, "meta: %s is not %s", key, what);
    return BG_ERR;
}

/* features: an array of strings (names the reader does not know are ignored). */
static int check_features(json_t *meta, char *why)
{
    json_t *a = json_object_get(meta, "features");

    if (a == NULL)
        return BG_OK;
    if (!json_is_array(a) || json_array_size(a) > BG_FRAME_FEATURES_MAX) {
        bg_set_error(why, "meta: features is not an array of at most %d strings",
                     BG_FRAME_FEATURES_MAX);
        return BG_ERR;
    }
    for (size_t i = 0; i < json_array_size(a); i++) {
        if (!json_is_string(json_array_get(a, i))) {
            bg_set_error(why, "meta: features[%zu] is not a string", i);
            return BG_ERR;
        }
    }
    return BG_OK;
}

static int check_request(json_t *meta, char *why)
{
    if (check_headers(meta, why) != BG_OK || check_params(meta, why) != BG_OK ||
        check_features(meta, why) != BG_OK)
        return BG_ERR;
    if (check_member(meta, "client", JSON_STRING, "a string", why) != BG_OK)
        return BG_ERR;
    return check_member(meta, "claims", JSON_OBJECT, "an object", why);
}

static int check_hello(json_t *meta, char *why)
{
    json_t *pid = json_object_get(meta, "pid");

    if (check_member(meta, "sdk", JSON_STRING, "a string", why) != BG_OK ||
        check_member(meta, "host", JSON_STRING, "a string", why) != BG_OK)
        return BG_ERR;
    if (pid != NULL && (!json_is_integer(pid) || json_integer_value(pid) < 0)) {
        bg_set_error(why, "meta: pid is not a non-negative integer");
        return BG_ERR;
    }
    return BG_OK;
}

static int check_endpoints(json_t *meta, bg_frame *f, char *why)
{
    bg_endpoint_list tmp = {0};
    bg_endpoint_list *l = f != NULL ? &f->endpoints : &tmp;
    char inner[BG_ERR_LEN];
    int rc;

    rc = bg_endpoints_parse(meta, l, inner);
    if (rc != BG_OK)
        bg_set_error(why, "meta: %s", inner);
    bg_endpoints_free(&tmp);
    return rc;
}

int bg_meta_check(bg_frame_type t, json_t *meta, bg_frame *f, char *why)
{
    switch (t) {
    case BG_FRAME_HELLO:
        return check_hello(meta, why);
    case BG_FRAME_REQUEST:
        return check_request(meta, why);
    case BG_FRAME_RESPONSE:
        return check_headers(meta, why);
    case BG_FRAME_ENDPOINTS_UPDATE:
        return check_endpoints(meta, f, why);
    default:
        return BG_OK;
    }
}

/* ---- accessors ---- */

static json_t *meta_member(const bg_frame *f, const char *key)
{
    return f->meta != NULL ? json_object_get(f->meta, key) : NULL;
}

/* The flat decoding, when the frame has one and no json_t meta replaced it. */
static const bg_meta_flat *flat(const bg_frame *f)
{
    return f->meta == NULL ? f->flat_ : NULL;
}

size_t bg_frame_header_count(const bg_frame *f)
{
    json_t *h = meta_member(f, "headers");

    if (flat(f) != NULL)
        return flat(f)->nheaders;
    return json_is_array(h) ? json_array_size(h) : 0;
}

int bg_frame_header_at(const bg_frame *f, size_t i, bg_pair *out)
{
    if (flat(f) != NULL) {
        if (i >= flat(f)->nheaders)
            return BG_ERR;
        *out = flat(f)->headers[i];
        return BG_OK;
    }
    json_t *pair = json_array_get(meta_member(f, "headers"), i);
    json_t *name = json_array_get(pair, 0), *value = json_array_get(pair, 1);

    if (!json_is_string(name) || !json_is_string(value))
        return BG_ERR;
    out->name = json_string_value(name);
    out->name_len = json_string_length(name);
    out->value = json_string_value(value);
    out->value_len = json_string_length(value);
    return BG_OK;
}

const char *bg_frame_header_get(const bg_frame *f, const char *name, size_t *len)
{
    size_t n = bg_frame_header_count(f), nlen = strlen(name);
    bg_pair p;

    for (size_t i = 0; i < n; i++) {
        if (bg_frame_header_at(f, i, &p) != BG_OK || p.name_len != nlen)
            continue;
        if (strncasecmp(p.name, name, nlen) != 0)
            continue;
        if (len != NULL)
            *len = p.value_len;
        return p.value;
    }
    return NULL;
}

size_t bg_frame_param_count(const bg_frame *f)
{
    json_t *p = meta_member(f, "params");

    if (flat(f) != NULL)
        return flat(f)->nparams;
    return json_is_object(p) ? json_object_size(p) : 0;
}

int bg_frame_param_at(const bg_frame *f, size_t i, bg_pair *out)
{
    json_t *params = meta_member(f, "params"), *v;
    const char *k;
    size_t at = 0;

    if (flat(f) != NULL) {
        if (i >= flat(f)->nparams)
            return BG_ERR;
        *out = flat(f)->params[i];
        return BG_OK;
    }
    if (!json_is_object(params))
        return BG_ERR;
    json_object_foreach(params, k, v)
    {
        if (at++ != i)
            continue;
        if (!json_is_string(v))
            return BG_ERR;
        out->name = k;
        out->name_len = strlen(k);
        out->value = json_string_value(v);
        out->value_len = json_string_length(v);
        return BG_OK;
    }
    return BG_ERR;
}

const char *bg_frame_param_get(const bg_frame *f, const char *name, size_t *len)
{
    json_t *v = json_object_get(meta_member(f, "params"), name);

    for (size_t i = 0; flat(f) != NULL && i < flat(f)->nparams; i++) {
        if (strcmp(flat(f)->params[i].name, name) != 0)
            continue;
        if (len != NULL)
            *len = flat(f)->params[i].value_len;
        return flat(f)->params[i].value;
    }
    if (!json_is_string(v))
        return NULL;
    if (len != NULL)
        *len = json_string_length(v);
    return json_string_value(v);
}

const char *bg_frame_client(const bg_frame *f)
{
    if (flat(f) != NULL)
        return flat(f)->client;
    return json_string_value(meta_member(f, "client"));
}

const char *bg_frame_claim_get(const bg_frame *f, const char *name)
{
    json_t *claims = flat(f) != NULL ? flat(f)->claims : meta_member(f, "claims");

    return json_string_value(json_object_get(claims, name));
}

int bg_frame_has_feature(const bg_frame *f, const char *feature)
{
    json_t *a = meta_member(f, "features");

    for (size_t i = 0; flat(f) != NULL && i < flat(f)->nfeatures; i++)
        if (strcmp(flat(f)->features[i], feature) == 0)
            return 1;
    for (size_t i = 0; json_is_array(a) && i < json_array_size(a); i++) {
        const char *s = json_string_value(json_array_get(a, i));
        if (s != NULL && strcmp(s, feature) == 0)
            return 1;
    }
    return 0;
}

/* ---- builders ---- */

/* A builder on a decoded frame: its flat meta becomes a json_t first, so nothing is lost. */
static int meta_unflatten(bg_frame *f, char *err)
{
    bg_meta_flat *m = f->flat_;

    if (m == NULL || f->meta != NULL)
        return BG_OK;
    f->meta = json_loadb(m->raw.ptr, m->raw.len, JSON_REJECT_DUPLICATES, NULL);
    if (f->meta == NULL) {
        bg_set_error(err, "meta: out of memory");
        return BG_ERR;
    }
    f->flat_ = NULL;
    bg_meta_flat_free(m);
    return BG_OK;
}

/* meta.key, created (as an array or an object) when missing. */
static json_t *meta_ensure(bg_frame *f, const char *key, int array, char *err)
{
    json_t *v;

    if (meta_unflatten(f, err) != BG_OK)
        return NULL;
    if (f->meta == NULL && (f->meta = json_object()) == NULL)
        goto oom;
    v = json_object_get(f->meta, key);
    if (v != NULL) {
        if (array ? json_is_array(v) : json_is_object(v))
            return v;
        bg_set_error(err, "meta: %s is not %s", key, array ? "an array" : "an object");
        return NULL;
    }
    v = array ? json_array() : json_object();
    if (v == NULL || json_object_set_new(f->meta, key, v) != 0)
        goto oom;
    return v;

oom:
    bg_set_error(err, "meta: out of memory");
    return NULL;
}

int bg_frame_add_header(bg_frame *f, const char *name, size_t name_len, const char *value,
                        size_t value_len, char *err)
{
    json_t *h, *pair;

    if (!bg_http_token_ok(name, name_len)) {
        bg_set_error(err, "header name is not an HTTP token");
        return BG_ERR;
    }
    if (!bg_header_value_ok(value, value_len)) {
        bg_set_error(err, "header value contains a control byte (CR, LF, NUL, ...)");
        return BG_ERR;
    }
    if ((h = meta_ensure(f, "headers", 1, err)) == NULL)
        return BG_ERR;
    if (json_array_size(h) >= BG_FRAME_HEADERS_MAX) {
        bg_set_error(err, "more than %d headers", BG_FRAME_HEADERS_MAX);
        return BG_ERR;
    }
    /* json_stringn refuses invalid UTF-8, which a JSON string cannot carry. */
    pair = json_array();
    if (pair == NULL || json_array_append_new(pair, json_stringn(name, name_len)) != 0 ||
        json_array_append_new(pair, json_stringn(value, value_len)) != 0) {
        json_decref(pair);
        bg_set_error(err, "header value is not valid UTF-8");
        return BG_ERR;
    }
    if (json_array_append_new(h, pair) != 0) {
        bg_set_error(err, "meta: out of memory");
        return BG_ERR;
    }
    return BG_OK;
}

int bg_frame_set_param(bg_frame *f, const char *name, const char *value, size_t value_len,
                       char *err)
{
    json_t *p, *v;

    if (!bg_param_name_ok(name, strlen(name))) {
        bg_set_error(err, "parameter name is not [A-Za-z_][A-Za-z0-9_]{0,63}");
        return BG_ERR;
    }
    if ((p = meta_ensure(f, "params", 0, err)) == NULL)
        return BG_ERR;
    if (json_object_get(p, name) == NULL && json_object_size(p) >= BG_FRAME_PARAMS_MAX) {
        bg_set_error(err, "more than %d parameters", BG_FRAME_PARAMS_MAX);
        return BG_ERR;
    }
    v = memchr(value, '\0', value_len) == NULL ? json_stringn(value, value_len) : NULL;
    if (v == NULL || json_object_set_new(p, name, v) != 0) {
        bg_set_error(err, "parameter value is not UTF-8 without NUL");
        return BG_ERR;
    }
    return BG_OK;
}

int bg_frame_set_client(bg_frame *f, const char *client, char *err)
{
    json_t *v = json_string(client);

    if (v == NULL) {
        bg_set_error(err, "client is not UTF-8");
        return BG_ERR;
    }
    if (meta_unflatten(f, err) != BG_OK) {
        json_decref(v);
        return BG_ERR;
    }
    if (f->meta == NULL && (f->meta = json_object()) == NULL) {
        json_decref(v);
        bg_set_error(err, "meta: out of memory");
        return BG_ERR;
    }
    if (json_object_set_new(f->meta, "client", v) != 0) {
        bg_set_error(err, "meta: out of memory");
        return BG_ERR;
    }
    return BG_OK;
}
