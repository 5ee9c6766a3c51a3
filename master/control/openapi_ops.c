/* openapi_ops.c: the operations of the aggregated OpenAPI document, one per routed
 * method and path template. */
#include "openapi_int.h"

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

/* 1 when the key names a path parameter called name. */
static int oa_key_has(const oa_seg *key, int nkey, const char *name)
{
    for (int i = 0; i < nkey; i++)
        if (key[i].kind != OA_LIT && strlen(name) == key[i].len &&
            memcmp(name, key[i].p, key[i].len) == 0)
            return 1;
    return 0;
}

/* The fragment's own parameter objects, except path parameters the path key does not have
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
        if (!json_is_object(p))
            continue; /* not a parameter object: it would only spoil the document */
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

/* Union of the claims of every connection serving the route (as the table does); they
 * point into the endpoints' strings, which outlive the build. */
static int oa_claims_add(bg_oa_build *b, bg_oa_op *op, const char *claims)
{
    const char *p = claims;
    bg_oa_claim *nc;
    size_t i;

    while (p != NULL && *p != '\0') {
        size_t len = strcspn(p, ",");
        for (i = 0; i < op->nclaims; i++)
            if (op->claims[i].len == len && memcmp(op->claims[i].p, p, len) == 0)
                break;
        if (i == op->nclaims) {
            if (op->nclaims == op->cap_claims) {
                nc = bg_oa_alloc(&b->arena, (op->cap_claims * 2 + 4) * sizeof(*nc));
                if (nc == NULL)
                    return BG_ERR;
                if (op->nclaims > 0)
                    memcpy(nc, op->claims, op->nclaims * sizeof(*nc));
                op->claims = nc;
                op->cap_claims = op->cap_claims * 2 + 4;
            }
            op->claims[op->nclaims++] = (bg_oa_claim){p, len};
        }
        p += len + (p[len] == ',');
    }
    return BG_OK;
}

/* The path of an OpenAPI shape: "/a/{id}" and "/a/{x}" are the same path, named by the
 * first template seen. */
static bg_oa_path *oa_path(bg_oa_build *b, const char *oshape, const char *keyform)
{
    bg_oa_path *p = bg_oa_map_get(&b->keys, oshape), **np;

    if (p != NULL)
        return p;
    if (b->npaths == b->cap_paths) {
        np = realloc(b->paths, (b->cap_paths * 2 + 64) * sizeof(*np));
        if (np == NULL)
            return NULL;
        b->paths = np;
        b->cap_paths = b->cap_paths * 2 + 64;
    }
    p = bg_oa_alloc(&b->arena, sizeof(*p));
    if (p == NULL || (p->key = bg_oa_strdup(&b->arena, keyform)) == NULL ||
        bg_oa_map_put(&b->keys, &b->arena, oshape, p) != BG_OK)
        return NULL;
    p->first = p->last = NULL;
    b->paths[b->npaths++] = p;
    return p;
}

static bg_oa_op *oa_op_find(const bg_oa_path *p, const char *method)
{
    for (bg_oa_op *op = p->first; op != NULL; op = op->next)
        if (strcmp(op->method, method) == 0)
            return op;
    return NULL;
}

static bg_oa_op *oa_op_add(bg_oa_build *b, bg_oa_path *p, const bg_reg_conn *c,
                           const bg_reg_endpoint *e, const char *rshape)
{
    bg_oa_op *op = bg_oa_alloc(&b->arena, sizeof(*op));

    if (op == NULL)
        return NULL;
    *op = (bg_oa_op){.service = c->service, .method = e->method};
    if ((op->rshape = bg_oa_strdup(&b->arena, rshape)) == NULL)
        return NULL;
    if (p->last != NULL)
        p->last->next = op;
    else
        p->first = op;
    p->last = op;
    return op;
}

/* This endpoint describes the operation. */
static int oa_op_describe(bg_oa_op *op, const bg_reg_conn *c, bg_reg_endpoint *e, const oa_seg *own,
                          const char *key)
{
    op->text = oa_op_text(c, e, own, key);
    op->opid = json_string_value(json_object_get(e->openapi, "operationId"));
    return op->text != NULL ? BG_OK : BG_ERR;
}

/* The operation for (key, method) when this connection should describe it. */
static int oa_place(bg_oa_build *b, bg_reg_conn *c, bg_reg_endpoint *e, const oa_seg *own,
                    bg_oa_path *p, const char *rshape)
{
    bg_oa_op *op = oa_op_find(p, e->method);

    if (op != NULL && (strcmp(op->service, c->service) != 0 || strcmp(op->rshape, rshape) != 0)) {
        bg_oa_note(b,
                   "%s %s of service '%s' is routed but not listed: OpenAPI has one %s %s, "
                   "listed for service '%s'",
                   e->method, e->path, c->service, e->method, p->key, op->service);
        return BG_OK;
    }
    if (op == NULL && (op = oa_op_add(b, p, c, e, rshape)) == NULL)
        return BG_ERR;
    /* The first live connection's declaration describes the operation. */
    if ((op->text == NULL || (c->up && op->up == 0)) &&
        oa_op_describe(op, c, e, own, p->key) != BG_OK)
        return BG_ERR;
    if (oa_claims_add(b, op, e->claims) != BG_OK)
        return BG_ERR;
    op->up += c->up != 0;
    return BG_OK;
}

int bg_oa_add_endpoint(bg_oa_build *b, bg_reg_conn *c, bg_reg_endpoint *e)
{
    char rshape[OA_BUF], oshape[OA_BUF], keyform[OA_BUF], rkey[OA_BUF + 16];
    const char *winner;
    oa_seg own[OA_MAX_SEGS];
    bg_oa_path *p;
    int n;

    if (oa_split(e->path, own, &n) != BG_OK ||
        oa_form(own, n, OA_FORM_ROUTE, rshape, sizeof(rshape)) != BG_OK ||
        oa_form(own, n, OA_FORM_SHAPE, oshape, sizeof(oshape)) != BG_OK ||
        oa_form(own, n, OA_FORM_KEY, keyform, sizeof(keyform)) != BG_OK)
        return BG_OK; /* the table refuses such a template too */
    if (strcmp(e->path, b->own_path) == 0) {
        bg_oa_note(b,
                   "%s %s of service '%s' is not reachable: the gateway serves this document there",
                   e->method, e->path, c->service);
        return BG_OK;
    }
    /* Route conflicts as in the table: the first service to register keeps the route;
     * the master logs the loser already. */
    snprintf(rkey, sizeof(rkey), "%s %s", e->method, rshape);
    winner = bg_oa_map_get(&b->routes, rkey);
    if (winner == NULL) {
        if (bg_oa_map_put(&b->routes, &b->arena, rkey, c->service) != BG_OK)
            return BG_ERR;
    } else if (strcmp(winner, c->service) != 0) {
        return BG_OK;
    }
    if ((p = oa_path(b, oshape, keyform)) == NULL)
        return BG_ERR;
    return oa_place(b, c, e, own, p, rshape);
}

/* operationId must be unique in a document: a repeated one is left out. */
static int oa_unique_opid(bg_oa_build *b, bg_oa_map *opids, bg_oa_op *op)
{
    if (op->opid == NULL)
        return BG_OK;
    if (bg_oa_map_get(opids, op->opid) != NULL) {
        bg_oa_note(b, "operationId '%s' of service '%s' dropped: already used", op->opid,
                   op->service);
        return BG_OK;
    }
    op->opid_ok = 1;
    return bg_oa_map_put(opids, &b->arena, op->opid, op);
}

/* In the order the document lists them: only operations with a live connection count. */
int bg_oa_finish_ops(bg_oa_build *b)
{
    bg_oa_map opids = {0};
    json_int_t n;
    int rc = BG_OK;

    for (size_t i = 0; i < b->npaths && rc == BG_OK; i++) {
        for (bg_oa_op *op = b->paths[i]->first; op != NULL && rc == BG_OK; op = op->next) {
            if (op->up == 0)
                continue; /* every instance is down: not live */
            rc = oa_unique_opid(b, &opids, op);
            n = json_integer_value(json_object_get(b->services, op->service));
            json_object_set_new(b->services, op->service, json_integer(n + 1));
        }
    }
    bg_oa_map_free(&opids);
    return rc;
}
