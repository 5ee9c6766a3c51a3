/* openapi_ops.c: the operations of the aggregated OpenAPI document, one per routed
 * method and path template. */
#include "openapi_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OA_MAX_SEGS 64
#define OA_BUF 1200 /* a template is at most BG_RT_TEMPLATE_MAX bytes */

enum { OA_LIT, OA_PARAM, OA_TAIL };

typedef struct oa_seg {
    const char *p; /* a literal, or the parameter's name (without braces and '*') */
    size_t len;
    int kind;
} oa_seg;

/* A checked template ("/a/{id}/{rest*}") into segments; "/" has none. */
static int oa_split(const char *t, oa_seg *s, int *n)
{
    *n = 0;
    while (*t == '/' && t[1] != '\0') {
        const char *end = strchr(t + 1, '/');
        size_t len = end ? (size_t)(end - t - 1) : strlen(t + 1);
        oa_seg *g = &s[*n];
        if (*n == OA_MAX_SEGS)
            return BG_ERR;
        g->p = t + 1;
        g->len = len;
        g->kind = OA_LIT;
        if (len >= 2 && g->p[0] == '{' && g->p[len - 1] == '}') {
            g->kind = len >= 3 && g->p[len - 2] == '*' ? OA_TAIL : OA_PARAM;
            g->p++;
            g->len -= g->kind == OA_TAIL ? 3 : 2;
        }
        (*n)++;
        t += 1 + len;
    }
    return BG_OK;
}

/* Writes the template back in one of three forms: the routing shape (a tail differs
 * from a parameter: the table routes both), the OpenAPI shape (it does not: OpenAPI
 * has no tail) and the OpenAPI path key ("{rest*}" becomes "{rest}"). */
enum { OA_FORM_ROUTE, OA_FORM_SHAPE, OA_FORM_KEY };

static int oa_form(const oa_seg *s, int n, int form, char *out, size_t size)
{
    size_t off = 0;
    int w;

    out[0] = '\0';
    if (n == 0)
        return snprintf(out, size, "/") < (int)size ? BG_OK : BG_ERR;
    for (int i = 0; i < n; i++) {
        if (s[i].kind == OA_LIT || form == OA_FORM_KEY)
            w = snprintf(out + off, size - off, s[i].kind == OA_LIT ? "/%.*s" : "/{%.*s}",
                         (int)s[i].len, s[i].p);
        else
            w = snprintf(out + off, size - off, "%s",
                         s[i].kind == OA_TAIL && form == OA_FORM_ROUTE ? "/{*}" : "/{}");
        if (w < 0 || (size_t)w >= size - off)
            return BG_ERR;
        off += (size_t)w;
    }
    return BG_OK;
}

static void oa_lower(const char *in, char *out, size_t size)
{
    size_t i;

    for (i = 0; in[i] != '\0' && i + 1 < size; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    out[i] = '\0';
}

/* 1 when the key names a path parameter called name. */
static int oa_key_has(const oa_seg *key, int nkey, const char *name)
{
    for (int i = 0; i < nkey; i++)
        if (key[i].kind != OA_LIT && strlen(name) == key[i].len &&
            memcmp(name, key[i].p, key[i].len) == 0)
            return 1;
    return 0;
}

/* The fragment's own parameters, except path parameters the path key does not have
 * (a template of another instance may name them differently), then one for each path
 * parameter of the key the fragment did not describe. */
static void oa_params(json_t *op, const oa_seg *own, const oa_seg *key, int n)
{
    json_t *old = json_object_get(op, "parameters"), *out = json_array(), *p;
    char name[BG_RT_PARAM_NAME_MAX + 1], done[OA_MAX_SEGS] = {0};
    size_t i;

    json_array_foreach(old, i, p)
    {
        const char *in = json_string_value(json_object_get(p, "in"));
        const char *pn = json_string_value(json_object_get(p, "name"));
        if (in != NULL && strcmp(in, "path") == 0 && (pn == NULL || !oa_key_has(key, n, pn)))
            continue;
        for (int k = 0; in != NULL && strcmp(in, "path") == 0 && k < n; k++)
            done[k] |= key[k].kind != OA_LIT && strlen(pn) == key[k].len &&
                       memcmp(pn, key[k].p, key[k].len) == 0;
        json_array_append(out, p);
    }
    for (int k = 0; k < n; k++) {
        if (key[k].kind == OA_LIT || done[k])
            continue;
        snprintf(name, sizeof(name), "%.*s", (int)key[k].len, key[k].p);
        p = json_pack("{s:s, s:s, s:b, s:{s:s}}", "name", name, "in", "path", "required", 1,
                      "schema", "type", "string");
        if (own[k].kind == OA_TAIL)
            json_object_set_new(p, "description",
                                json_string("The rest of the path, slashes included (a tail "
                                            "parameter of the route template)."));
        json_array_append_new(out, p);
    }
    if (json_array_size(out) > 0)
        json_object_set_new(op, "parameters", out);
    else {
        json_decref(out);
        json_object_del(op, "parameters");
    }
}

static json_t *oa_json_content(json_t *schema)
{
    return json_pack("{s:{s:{s:O}}}", "content", "application/json", "schema", schema);
}

/* Bodies: what the fragment says wins; else the schemas the endpoint declared. */
static void oa_bodies(json_t *op, const bg_reg_endpoint *e)
{
    json_t *resp = json_object_get(op, "responses"), *ok;

    if (json_object_get(op, "requestBody") == NULL && e->request_schema != NULL)
        json_object_set_new(op, "requestBody", oa_json_content(e->request_schema));
    if (json_is_object(resp) && json_object_size(resp) > 0)
        return;
    if (e->response_schema != NULL) {
        ok = oa_json_content(e->response_schema);
        json_object_set_new(ok, "description", json_string("Success"));
        json_object_set_new(op, "responses", json_pack("{s:o}", "200", ok));
    } else {
        json_object_set_new(
            op, "responses",
            json_pack("{s:{s:s}}", "default", "description", "The service's response"));
    }
}

static json_t *oa_op_new(const bg_reg_conn *c, const bg_reg_endpoint *e, const oa_seg *own,
                         const oa_seg *key, int n, const char *keytext)
{
    json_t *op = json_is_object(e->openapi) ? json_deep_copy(e->openapi) : json_object();

    if (op == NULL)
        return NULL;
    /* The gateway decides both: the service's tag, the claims it enforces. operationId is
     * added back when the document is written, if no other operation has it. */
    json_object_set_new(op, "tags", json_pack("[s]", c->service));
    json_object_del(op, "security");
    json_object_del(op, "operationId");
    oa_params(op, own, key, n);
    oa_bodies(op, e);
    if (strcmp(keytext, e->path) != 0)
        json_object_set_new(op, "x-busgate-template", json_string(e->path));
    return op;
}

/* The endpoint's operation as text for path key `key`: rendered once, then kept by the
 * endpoint (a new ENDPOINTS_UPDATE brings new endpoints) until its path key changes. */
static const char *oa_op_text(const bg_reg_conn *c, bg_reg_endpoint *e, const oa_seg *own,
                              const char *key)
{
    oa_seg ks[OA_MAX_SEGS];
    char *text, *k;
    json_t *op;
    int nk;

    if (e->oa_text != NULL && strcmp(e->oa_key, key) == 0)
        return e->oa_text;
    if (oa_split(key, ks, &nk) != BG_OK || (op = oa_op_new(c, e, own, ks, nk, key)) == NULL)
        return NULL;
    text = json_dumps(op, JSON_COMPACT);
    json_decref(op);
    k = strdup(key);
    if (text == NULL || k == NULL) {
        free(text);
        free(k);
        return NULL;
    }
    free(e->oa_text);
    free(e->oa_key);
    e->oa_text = text;
    e->oa_key = k;
    return text;
}

static int oa_text_add(bg_oa_build *b, const char *text)
{
    const char **nt;

    if (b->ntexts == b->cap_texts) {
        nt = realloc(b->texts, (b->cap_texts * 2 + 64) * sizeof(*nt));
        if (nt == NULL)
            return -1;
        b->texts = nt;
        b->cap_texts = b->cap_texts * 2 + 64;
    }
    b->texts[b->ntexts] = text;
    return (int)b->ntexts++;
}

/* Union of the claims of every connection serving the route (as the table does). */
static void oa_claims_add(json_t *meta, const char *claims)
{
    json_t *set = json_object_get(meta, "claims"), *v;
    const char *p = claims;
    size_t i;
    int seen;

    while (p != NULL && *p != '\0') {
        size_t len = strcspn(p, ",");
        seen = 0;
        json_array_foreach(set, i, v)
        {
            seen |= json_string_length(v) == len && memcmp(json_string_value(v), p, len) == 0;
        }
        if (!seen)
            json_array_append_new(set, json_stringn(p, len));
        p += len + (p[len] == ',');
    }
}

/* The bookkeeping of (key, method), made on first sight and listed under paths[key]. */
static json_t *oa_meta_new(bg_oa_build *b, const char *opkey, const bg_reg_conn *c,
                           const bg_reg_endpoint *e, const char *key, const char *rshape)
{
    json_t *meta, *item;
    char method[16];

    meta = json_pack("{s:s, s:s, s:i, s:i, s:[]}", "service", c->service, "rshape", rshape, "up", 0,
                     "text", -1, "claims");
    if (meta == NULL || json_object_set_new(b->ops, opkey, meta) != 0)
        return NULL;
    if ((item = json_object_get(b->paths, key)) == NULL) {
        item = json_object();
        json_object_set_new(b->paths, key, item);
    }
    oa_lower(e->method, method, sizeof(method));
    json_object_set(item, method, meta);
    return meta;
}

/* Points meta at this endpoint's operation. */
static int oa_meta_describe(bg_oa_build *b, json_t *meta, const bg_reg_conn *c, bg_reg_endpoint *e,
                            const oa_seg *own, const char *key)
{
    const char *text = oa_op_text(c, e, own, key);
    json_t *opid = json_object_get(e->openapi, "operationId");
    int idx;

    if (text == NULL || (idx = oa_text_add(b, text)) < 0)
        return BG_ERR;
    json_object_set_new(meta, "text", json_integer(idx));
    if (json_is_string(opid))
        json_object_set(meta, "opid", opid);
    else
        json_object_del(meta, "opid");
    return BG_OK;
}

/* The operation for (key, method) when this connection should describe it. */
static int oa_place(bg_oa_build *b, bg_reg_conn *c, bg_reg_endpoint *e, const oa_seg *own,
                    const char *key, const char *rshape)
{
    char opkey[2 * OA_BUF];
    json_t *meta;
    int64_t up;

    snprintf(opkey, sizeof(opkey), "%s %s", key, e->method);
    meta = json_object_get(b->ops, opkey);
    if (meta != NULL &&
        (strcmp(json_string_value(json_object_get(meta, "service")), c->service) != 0 ||
         strcmp(json_string_value(json_object_get(meta, "rshape")), rshape) != 0)) {
        bg_oa_note(b,
                   "%s %s of service '%s' is routed but not listed: OpenAPI has one %s %s, "
                   "listed for service '%s'",
                   e->method, e->path, c->service, e->method, key,
                   json_string_value(json_object_get(meta, "service")));
        return BG_OK;
    }
    if (meta == NULL && (meta = oa_meta_new(b, opkey, c, e, key, rshape)) == NULL)
        return BG_ERR;
    up = json_integer_value(json_object_get(meta, "up"));
    /* The first live connection's declaration describes the operation. */
    if (json_integer_value(json_object_get(meta, "text")) < 0 || (c->up && up == 0))
        if (oa_meta_describe(b, meta, c, e, own, key) != BG_OK)
            return BG_ERR;
    oa_claims_add(meta, e->claims);
    if (c->up)
        json_object_set_new(meta, "up", json_integer(up + 1));
    return BG_OK;
}

int bg_oa_add_endpoint(bg_oa_build *b, bg_reg_conn *c, bg_reg_endpoint *e)
{
    char rshape[OA_BUF], oshape[OA_BUF], keyform[OA_BUF], rkey[OA_BUF + 16];
    const char *winner, *key;
    oa_seg own[OA_MAX_SEGS];
    int n;

    if (oa_split(e->path, own, &n) != BG_OK ||
        oa_form(own, n, OA_FORM_ROUTE, rshape, sizeof(rshape)) != BG_OK ||
        oa_form(own, n, OA_FORM_SHAPE, oshape, sizeof(oshape)) != BG_OK ||
        oa_form(own, n, OA_FORM_KEY, keyform, sizeof(keyform)) != BG_OK)
        return BG_OK; /* the table refuses such a template too */
    /* Route conflicts as in the table: the first service to register keeps the route;
     * the master logs the loser already. */
    snprintf(rkey, sizeof(rkey), "%s %s", e->method, rshape);
    winner = json_string_value(json_object_get(b->routes, rkey));
    if (winner == NULL)
        json_object_set_new(b->routes, rkey, json_string(c->service));
    else if (strcmp(winner, c->service) != 0)
        return BG_OK;
    /* One path key per OpenAPI shape: "/a/{id}" and "/a/{x}" are the same path. */
    key = json_string_value(json_object_get(b->keys, oshape));
    if (key == NULL) {
        json_object_set_new(b->keys, oshape, json_string(keyform));
        key = json_string_value(json_object_get(b->keys, oshape));
    }
    return oa_place(b, c, e, own, key, rshape);
}

/* operationId must be unique in a document: a repeated one is left out. */
static void oa_unique_opid(bg_oa_build *b, json_t *opids, json_t *meta)
{
    const char *id = json_string_value(json_object_get(meta, "opid"));

    if (id == NULL)
        return;
    if (json_object_get(opids, id) != NULL) {
        bg_oa_note(b, "operationId '%s' of service '%s' dropped: already used", id,
                   json_string_value(json_object_get(meta, "service")));
        return;
    }
    json_object_set_new(opids, id, json_true());
    json_object_set_new(meta, "opid_ok", json_true());
}

/* In the order the document lists them: only operations with a live connection count. */
int bg_oa_finish_ops(bg_oa_build *b)
{
    json_t *opids = json_object(), *item, *meta;
    const char *key, *method, *service;

    if (opids == NULL)
        return BG_ERR;
    json_object_foreach(b->paths, key, item)
    {
        json_object_foreach(item, method, meta)
        {
            if (json_integer_value(json_object_get(meta, "up")) == 0)
                continue; /* every instance is down: not live */
            oa_unique_opid(b, opids, meta);
            service = json_string_value(json_object_get(meta, "service"));
            json_object_set_new(
                b->services, service,
                json_integer(json_integer_value(json_object_get(b->services, service)) + 1));
        }
    }
    json_decref(opids);
    return BG_OK;
}
