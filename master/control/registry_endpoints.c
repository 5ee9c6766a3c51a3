/* registry_endpoints.c: endpoint lists of connections: checking, converting, replacing, undo. */
#include "registry_int.h"

#include <stdlib.h>
#include <string.h>

void bg_reg_endpoints_free(bg_reg_endpoint *eps, size_t n)
{
    if (eps == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(eps[i].path);
        free(eps[i].claims);
        free(eps[i].rate_limit);
        json_decref(eps[i].openapi);
        json_decref(eps[i].request_schema);
        json_decref(eps[i].response_schema);
        free(eps[i].oa_text);
        free(eps[i].oa_key);
    }
    free(eps);
}

static void reg_undo_drop(bg_reg_conn *c)
{
    bg_reg_endpoints_free(c->undo_, c->nundo_);
    json_decref(c->undo_openapi_);
    c->undo_ = NULL;
    c->nundo_ = 0;
    c->undo_openapi_ = NULL;
    c->undo_seq_ = 0;
}

void bg_reg_conn_free(bg_reg_conn *c)
{
    if (c == NULL)
        return;
    bg_reg_endpoints_free(c->endpoints, c->nendpoints);
    json_decref(c->openapi);
    reg_undo_drop(c);
    free(c);
}

/* The table takes claims as one comma-separated string. */
static char *reg_join_claims(const bg_endpoint *e, char *err)
{
    size_t len = 0, off = 0;
    char *s;

    if (e->nclaims == 0)
        return NULL;
    for (size_t i = 0; i < e->nclaims; i++)
        len += strlen(e->claims[i]) + 1;
    if (len - 1 > BG_RT_CLAIMS_MAX) {
        bg_set_error(err, "claims of %s %s are %zu bytes joined with ',', limit %d", e->method_name,
                     e->path, len - 1, BG_RT_CLAIMS_MAX);
        return NULL;
    }
    s = malloc(len);
    if (s == NULL) {
        bg_set_error(err, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < e->nclaims; i++) {
        size_t n = strlen(e->claims[i]);
        memcpy(s + off, e->claims[i], n);
        off += n;
        s[off++] = i + 1 < e->nclaims ? ',' : '\0';
    }
    return s;
}

static int reg_convert_one(const bg_endpoint *e, size_t i, bg_reg_endpoint *out, char *err)
{
    char why[BG_ERR_LEN] = "";
    bg_rt_endpoint_in in;

    out->claims = reg_join_claims(e, why);
    if (e->nclaims > 0 && out->claims == NULL)
        goto fail;
    in = (bg_rt_endpoint_in){.method = e->method_name,
                             .path_template = e->path,
                             .timeout_ms = e->timeout_ms,
                             .claims = out->claims,
                             .rate_limit = e->rate_limit};
    if (bg_rt_endpoint_check(&in, why) != BG_OK)
        goto fail;
    memcpy(out->method, e->method_name, sizeof(out->method));
    out->timeout_ms = e->timeout_ms;
    out->path = strdup(e->path);
    if (e->rate_limit != NULL)
        out->rate_limit = strdup(e->rate_limit);
    if (out->path == NULL || (e->rate_limit != NULL && out->rate_limit == NULL)) {
        bg_set_error(why, "out of memory");
        goto fail;
    }
    out->openapi = json_incref(e->openapi);
    /* kept for the aggregated OpenAPI document (control_openapi.c) */
    out->request_schema = json_incref(e->request_schema);
    out->response_schema = json_incref(e->response_schema);
    return BG_OK;
fail:
    bg_set_error(err, "endpoints[%zu]: %s", i, why);
    return BG_ERR;
}

static int reg_check_capacity(const bg_registry *r, const bg_frame *f, const bg_reg_conn *known,
                              char *err)
{
    size_t total = r->nendpoints - (known != NULL ? known->nendpoints : 0) + f->endpoints.count;

    if (total > (size_t)r->o.max_endpoints) {
        bg_set_error(err, "routing table full: %zu endpoints, max_endpoints is %d", total,
                     r->o.max_endpoints);
        return BG_ERR;
    }
    return BG_OK;
}

int bg_reg_endpoints_convert(const bg_registry *r, const bg_frame *f, const bg_reg_conn *known,
                             bg_reg_endpoint **out, size_t *nout, char *err)
{
    size_t n = f->endpoints.count;
    bg_reg_endpoint *eps;

    *out = NULL;
    *nout = 0;
    if (reg_check_capacity(r, f, known, err) != BG_OK)
        return BG_ERR;
    if (n == 0)
        return BG_OK;
    eps = calloc(n, sizeof(*eps));
    if (eps == NULL) {
        bg_set_error(err, "out of memory");
        return BG_ERR;
    }
    for (size_t i = 0; i < n; i++) {
        if (reg_convert_one(&f->endpoints.items[i], i, &eps[i], err) != BG_OK) {
            bg_reg_endpoints_free(eps, i + 1);
            return BG_ERR;
        }
    }
    *out = eps;
    *nout = n;
    return BG_OK;
}

void bg_reg_replace_endpoints(bg_registry *r, bg_reg_conn *c, bg_reg_endpoint *eps, size_t n,
                              json_t *openapi)
{
    if (c->undo_seq_ == 0) {
        /* the first update of this batch: keep what the table holds now */
        c->undo_ = c->endpoints;
        c->nundo_ = c->nendpoints;
        c->undo_openapi_ = c->openapi;
        c->undo_had_endpoints_ = c->has_endpoints;
    } else {
        bg_reg_endpoints_free(c->endpoints, c->nendpoints);
        json_decref(c->openapi);
    }
    c->undo_seq_ = ++r->next_undo;
    r->nendpoints = r->nendpoints - c->nendpoints + n;
    c->endpoints = eps;
    c->nendpoints = n;
    c->openapi = json_incref(openapi);
    c->has_endpoints = 1;
    r->dirty = 1;
}

/* Puts back the endpoints c had at the last publish. */
void bg_reg_undo_endpoints(bg_registry *r, bg_reg_conn *c)
{
    bg_reg_endpoints_free(c->endpoints, c->nendpoints);
    json_decref(c->openapi);
    r->nendpoints = r->nendpoints - c->nendpoints + c->nundo_;
    c->endpoints = c->undo_;
    c->nendpoints = c->nundo_;
    c->openapi = c->undo_openapi_;
    c->has_endpoints = c->undo_had_endpoints_;
    c->undo_ = NULL;
    c->nundo_ = 0;
    c->undo_openapi_ = NULL;
    c->undo_seq_ = 0;
    r->dirty = 1;
}

/* After a good publish the saved lists are history. */
void bg_reg_undo_forget(bg_registry *r)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->conns[i]->undo_seq_ != 0)
            reg_undo_drop(r->conns[i]);
}
