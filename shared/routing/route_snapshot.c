/* route_snapshot.c: a consistent copy of the routing table rendered as JSON for state dumps. */
#include "route_layout.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "busgate/common.h"

/* Copies one used prefix of an array: count (read once) elements of size. */
static int rt_copy_array(const bg_rt_copy *src, unsigned char *dst, size_t off, uint32_t count,
                         uint32_t cap, size_t size)
{
    if (count > cap)
        return BG_ERR; /* torn header */
    memcpy(dst + off, (const unsigned char *)src + off, (size_t)count * size);
    return BG_OK;
}

/* Copies the header and every used array prefix of copy into buf (same
 * layout). BG_ERR: the copy was inconsistent or not valid. */
static int rt_copy_used(const bg_rt *rt, const bg_rt_copy *copy, unsigned char *buf)
{
    const bg_rt_layout *l = &rt->lay;
    bg_rt_copy *h = (bg_rt_copy *)buf;

    memcpy(buf, (const void *)copy, sizeof(*copy));
    if (h->valid == 0)
        return BG_ERR;
    if (rt_copy_array(copy, buf, l->off_services, h->nservices, l->cap_services,
                      sizeof(bg_rt_svc)) != BG_OK ||
        rt_copy_array(copy, buf, l->off_conns, h->nconns, l->cap_conns, sizeof(bg_rt_conn)) !=
            BG_OK ||
        rt_copy_array(copy, buf, l->off_eps, h->neps, l->cap_eps, sizeof(bg_rt_ep)) != BG_OK ||
        rt_copy_array(copy, buf, l->off_routes, h->nroutes, l->cap_routes, sizeof(bg_rt_route)) !=
            BG_OK ||
        rt_copy_array(copy, buf, l->off_strings, h->strings_used, l->cap_strings, 1) != BG_OK)
        return BG_ERR;
    return BG_OK;
}

/* A private, consistent copy of the active state (malloc'd), or NULL. */
static unsigned char *rt_snapshot_copy(const bg_rt *rt, char *err)
{
    unsigned char *buf = malloc(rt->lay.copy_size);

    if (buf == NULL) {
        bg_set_error(err, "routing table snapshot: out of memory (%zu bytes)", rt->lay.copy_size);
        return NULL;
    }
    for (int attempt = 0; attempt < BG_RT_READ_RETRIES; attempt++) {
        uint64_t seq;
        const bg_rt_copy *copy = bg_rt_read_begin(rt, &seq);
        int rc;

        if (copy == NULL)
            continue;
        rc = rt_copy_used(rt, copy, buf);
        if (bg_rt_read_end(copy, seq) && rc == BG_OK)
            return buf;
    }
    free(buf);
    bg_set_error(err, "routing table snapshot: the table kept changing, try again");
    return NULL;
}

/* A JSON string for s; bytes that are not valid UTF-8 become '?'. */
static json_t *rt_jstr(const bg_rt *rt, const unsigned char *copy, bg_rt_str s)
{
    const char *p = bg_rt_str_ptr(rt, (const bg_rt_copy *)copy, s);
    json_t *j;
    char *tmp;

    if (p == NULL)
        return NULL;
    if ((j = json_stringn(p, s.len)) != NULL)
        return j;
    if ((tmp = malloc(s.len + 1)) == NULL)
        return NULL;
    for (size_t i = 0; i < s.len; i++)
        tmp[i] = (unsigned char)p[i] < 0x80 && p[i] != '\0' ? p[i] : '?';
    j = json_stringn(tmp, s.len);
    free(tmp);
    return j;
}

typedef struct rt_snap {
    const bg_rt *rt;
    const unsigned char *c; /* private copy */
    const bg_rt_copy *h;
    const bg_rt_svc *svcs;
    const bg_rt_conn *conns;
    const bg_rt_ep *eps;
    const bg_rt_route *routes;
} rt_snap;

static json_t *rt_json_ep(const rt_snap *s, const bg_rt_ep *e)
{
    return json_pack("{s:s, s:o, s:I, s:o, s:o}", "method", bg_rt_method_name(e->method), "path",
                     rt_jstr(s->rt, s->c, e->tmpl), "timeout_ms", (json_int_t)e->timeout_ms,
                     "claims", rt_jstr(s->rt, s->c, e->claims), "rate_limit",
                     rt_jstr(s->rt, s->c, e->rate));
}

/* The route's effective declared limit in its canonical text ("" = none). */
static json_t *rt_json_rate(const rt_snap *s, const bg_rt_route *r)
{
    char text[BG_RATE_SPEC_TEXT_MAX + 1];
    bg_rate_spec spec;

    if (bg_rt_rate_read(s->rt, (const bg_rt_copy *)s->c, &r->rate, &spec) != BG_OK)
        return NULL;
    bg_rate_spec_format(&spec, text, sizeof(text));
    return json_string(text);
}

static json_t *rt_json_conn(const rt_snap *s, const bg_rt_conn *c)
{
    json_t *eps = json_array();

    if (eps == NULL || c->ep_first > s->h->neps || c->nep > s->h->neps - c->ep_first ||
        c->service >= s->h->nservices) {
        json_decref(eps);
        return NULL;
    }
    for (uint32_t i = 0; i < c->nep; i++) {
        if (json_array_append_new(eps, rt_json_ep(s, &s->eps[c->ep_first + i])) != 0) {
            json_decref(eps);
            return NULL;
        }
    }
    return json_pack("{s:o, s:o, s:o, s:o, s:b, s:I, s:o}", "id", rt_jstr(s->rt, s->c, c->id),
                     "service", rt_jstr(s->rt, s->c, s->svcs[c->service].name), "instance",
                     rt_jstr(s->rt, s->c, c->instance), "version", rt_jstr(s->rt, s->c, c->version),
                     "up", c->up != 0, "last_heartbeat_ms", (json_int_t)c->last_heartbeat_wall_ms,
                     "endpoints", eps);
}

static json_t *rt_json_route(const rt_snap *s, const bg_rt_route *r)
{
    return json_pack("{s:s, s:o, s:I, s:o, s:o, s:i, s:i}", "method", bg_rt_method_name(r->method),
                     "path", rt_jstr(s->rt, s->c, r->tmpl), "timeout_ms", (json_int_t)r->timeout_ms,
                     "claims", rt_jstr(s->rt, s->c, r->claims), "rate_limit", rt_json_rate(s, r),
                     "connections", (int)r->nconns, "up", (int)r->nup);
}

/* Adds version to the service's list once (a service has few versions). */
static int rt_add_version(json_t *versions, json_t *v)
{
    size_t i;
    json_t *have;

    if (v == NULL)
        return BG_ERR;
    json_array_foreach(versions, i, have)
    {
        if (json_equal(have, v)) {
            json_decref(v);
            return BG_OK;
        }
    }
    return json_array_append_new(versions, v) == 0 ? BG_OK : BG_ERR;
}

/* Per-service aggregate: versions, connection counts and the union of the
 * endpoints it is routed for, filled by one pass over conns and routes. */
static json_t *rt_json_services(const rt_snap *s)
{
    json_t *arr = json_array();
    uint32_t i;

    if (arr == NULL)
        return NULL;
    for (i = 0; i < s->h->nservices; i++) {
        const bg_rt_svc *v = &s->svcs[i];
        if (json_array_append_new(arr, json_pack("{s:o, s:i, s:i, s:[], s:[]}", "name",
                                                 rt_jstr(s->rt, s->c, v->name), "connections",
                                                 (int)v->nconns, "up", (int)v->nup, "versions",
                                                 "endpoints")) != 0)
            goto fail;
    }
    for (i = 0; i < s->h->nconns; i++) {
        const bg_rt_conn *c = &s->conns[i];
        json_t *svc = json_array_get(arr, c->service);
        if (svc == NULL || rt_add_version(json_object_get(svc, "versions"),
                                          rt_jstr(s->rt, s->c, c->version)) != BG_OK)
            goto fail;
    }
    for (i = 0; i < s->h->nroutes; i++) {
        json_t *svc = json_array_get(arr, s->routes[i].service);
        if (svc == NULL || json_array_append_new(json_object_get(svc, "endpoints"),
                                                 rt_json_route(s, &s->routes[i])) != 0)
            goto fail;
    }
    return arr;
fail:
    json_decref(arr);
    return NULL;
}

static json_t *rt_json_conns(const rt_snap *s)
{
    json_t *arr = json_array();

    if (arr == NULL)
        return NULL;
    for (uint32_t i = 0; i < s->h->nconns; i++) {
        if (json_array_append_new(arr, rt_json_conn(s, &s->conns[i])) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

int bg_rt_snapshot_json(const bg_rt *rt, char **json_out, char *err)
{
    unsigned char *c;
    rt_snap s;
    json_t *root;

    *json_out = NULL;
    if ((c = rt_snapshot_copy(rt, err)) == NULL)
        return BG_ERR;
    s = (rt_snap){.rt = rt, .c = c, .h = (const bg_rt_copy *)c};
    s.svcs = BG_RT_ARRAY(&rt->lay, c, const bg_rt_svc, off_services);
    s.conns = BG_RT_ARRAY(&rt->lay, c, const bg_rt_conn, off_conns);
    s.eps = BG_RT_ARRAY(&rt->lay, c, const bg_rt_ep, off_eps);
    s.routes = BG_RT_ARRAY(&rt->lay, c, const bg_rt_route, off_routes);
    root = json_pack("{s:I, s:o, s:o}", "generation", (json_int_t)s.h->generation, "services",
                     rt_json_services(&s), "connections", rt_json_conns(&s));
    free(c);
    if (root != NULL)
        *json_out = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (*json_out == NULL) {
        bg_set_error(err, "routing table snapshot: out of memory building JSON");
        return BG_ERR;
    }
    return BG_OK;
}
