/* registry.c: the master's connections: lookup, registration, liveness, applying frames. */
#include "registry_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bg_registry *bg_reg_new(const bg_reg_opts *o, bg_rt *rt, char *err)
{
    bg_registry *r;

    if (o->max_services < 1 || o->max_connections < 1 || o->max_endpoints < 1 || rt == NULL) {
        bg_set_error(err, "registry: capacities must be positive and a routing table given");
        return NULL;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        bg_set_error(err, "registry: out of memory");
        return NULL;
    }
    r->o = *o;
    r->rt = rt;
    r->next_order = 1;
    bg_rt_set_conflict_cb(rt, bg_reg_on_conflict, r);
    return r;
}

void bg_reg_free(bg_registry *r)
{
    if (r == NULL)
        return;
    bg_rt_set_conflict_cb(r->rt, NULL, NULL);
    for (size_t i = 0; i < r->n; i++)
        bg_reg_conn_free(r->conns[i]);
    free(r->conns);
    bg_reg_conflicts_free(r);
    free(r->cin);
    free(r->ein);
    free(r);
}

void bg_reg_set_timers(bg_registry *r, int64_t expiry_ms, int64_t remove_ms)
{
    r->o.heartbeat_expiry_ms = expiry_ms;
    r->o.connection_remove_ms = remove_ms;
}

size_t bg_reg_count(const bg_registry *r)
{
    return r->n;
}

bg_reg_conn *bg_reg_at(const bg_registry *r, size_t i)
{
    return i < r->n ? r->conns[i] : NULL;
}

bg_reg_conn *bg_reg_find(const bg_registry *r, const char *service, const char *instance)
{
    /* A linear scan: at most max_connections (1024 by default) short compares
     * per frame, far below the cost of the Valkey round trip that brought it. */
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->conns[i]->instance, instance) == 0 &&
            strcmp(r->conns[i]->service, service) == 0)
            return r->conns[i];
    return NULL;
}

bg_reg_conn *bg_reg_find_id(const bg_registry *r, const char *id)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->conns[i]->id, id) == 0)
            return r->conns[i];
    return NULL;
}

size_t bg_reg_service_count(const bg_registry *r)
{
    return r->nservices;
}

size_t bg_reg_endpoint_count(const bg_registry *r)
{
    return r->nendpoints;
}

int bg_reg_routes_dirty(const bg_registry *r)
{
    return r->dirty;
}

int bg_reg_heartbeats_dirty(const bg_registry *r)
{
    return r->hb_dirty;
}

unsigned long bg_reg_publish_count(const bg_registry *r)
{
    return r->publishes;
}

static int reg_service_known(const bg_registry *r, const char *service, const bg_reg_conn *skip)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->conns[i] != skip && strcmp(r->conns[i]->service, service) == 0)
            return 1;
    return 0;
}

static int reg_check_room(const bg_registry *r, const char *service, char *err)
{
    if (r->n >= (size_t)r->o.max_connections) {
        bg_set_error(err, "routing table full: %zu connections, max_connections is %d", r->n + 1,
                     r->o.max_connections);
        return BG_ERR;
    }
    if (!reg_service_known(r, service, NULL) && r->nservices >= (size_t)r->o.max_services) {
        bg_set_error(err, "routing table full: %zu services, max_services is %d", r->nservices + 1,
                     r->o.max_services);
        return BG_ERR;
    }
    return BG_OK;
}

static int reg_grow(bg_registry *r, char *err)
{
    size_t cap = r->cap ? 2 * r->cap : 16;
    bg_reg_conn **p;

    if (r->n < r->cap)
        return BG_OK;
    p = realloc(r->conns, cap * sizeof(*p));
    if (p == NULL) {
        bg_set_error(err, "registry: out of memory");
        return BG_ERR;
    }
    r->conns = p;
    r->cap = cap;
    return BG_OK;
}

static bg_reg_conn *reg_create(bg_registry *r, const bg_frame *f, int64_t now_ms, char *err)
{
    bg_reg_conn *c;

    if (reg_check_room(r, f->service, err) != BG_OK || reg_grow(r, err) != BG_OK)
        return NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        bg_set_error(err, "registry: out of memory");
        return NULL;
    }
    snprintf(c->id, sizeof(c->id), "%s/%s", f->service, f->instance);
    memcpy(c->service, f->service, sizeof(c->service));
    memcpy(c->instance, f->instance, sizeof(c->instance));
    c->order = r->next_order++;
    c->up = 1;
    c->last_seen_ms = now_ms;
    if (!reg_service_known(r, c->service, NULL))
        r->nservices++;
    r->conns[r->n++] = c;
    r->dirty = 1;
    return c;
}

static void reg_remove_at(bg_registry *r, size_t i)
{
    bg_reg_conn *c = r->conns[i];

    if (!reg_service_known(r, c->service, c))
        r->nservices--;
    r->nendpoints -= c->nendpoints;
    bg_reg_conn_free(c);
    memmove(&r->conns[i], &r->conns[i + 1], (r->n - i - 1) * sizeof(*r->conns));
    r->n--;
    r->dirty = 1;
}

/* Any frame proves the instance alive; the version may change on restart. */
static void reg_touch(bg_registry *r, bg_reg_conn *c, const bg_frame *f, int64_t now_ms)
{
    c->last_seen_ms = now_ms;
    c->last_heartbeat_wall_ms = bg_wall_ms();
    r->hb_dirty = 1;
    if (!c->up) {
        c->up = 1;
        c->down_since_ms = 0;
        r->dirty = 1;
    }
    if (f->svc_version[0] != '\0' && strcmp(c->version, f->svc_version) != 0) {
        memcpy(c->version, f->svc_version, sizeof(c->version));
        r->dirty = 1;
    }
}

/* Finds or registers the frame's connection and refreshes it. */
static bg_reg_conn *reg_get(bg_registry *r, const bg_frame *f, int64_t now_ms, int *created,
                            char *err)
{
    bg_reg_conn *c = bg_reg_find(r, f->service, f->instance);

    *created = 0;
    if (c == NULL) {
        c = reg_create(r, f, now_ms, err);
        if (c == NULL)
            return NULL;
        *created = 1;
    }
    reg_touch(r, c, f, now_ms);
    return c;
}

int bg_reg_hello(bg_registry *r, const bg_frame *f, int64_t now_ms, int *created,
                 bg_reg_conn **conn, char *err)
{
    *conn = reg_get(r, f, now_ms, created, err);
    return *conn != NULL ? BG_OK : BG_ERR;
}

int bg_reg_heartbeat(bg_registry *r, const bg_frame *f, int64_t now_ms, int *created,
                     bg_reg_conn **conn, char *err)
{
    *conn = reg_get(r, f, now_ms, created, err);
    if (*conn == NULL)
        return BG_ERR;
    (*conn)->interval_ms = f->interval_ms;
    return BG_OK;
}

int bg_reg_endpoints(bg_registry *r, const bg_frame *f, int64_t now_ms, int *created,
                     bg_reg_conn **conn, char *err)
{
    bg_reg_conn *known = bg_reg_find(r, f->service, f->instance);
    bg_reg_endpoint *eps = NULL;
    size_t n = 0;

    *created = 0;
    *conn = NULL;
    if (bg_reg_endpoints_convert(r, f, known, &eps, &n, err) != BG_OK)
        return BG_ERR;
    *conn = reg_get(r, f, now_ms, created, err);
    if (*conn == NULL) {
        bg_reg_endpoints_free(eps, n);
        return BG_ERR;
    }
    bg_reg_replace_endpoints(r, *conn, eps, n, f->endpoints.openapi);
    return BG_OK;
}

int bg_reg_goodbye(bg_registry *r, const bg_frame *f)
{
    for (size_t i = 0; i < r->n; i++) {
        if (strcmp(r->conns[i]->instance, f->instance) == 0 &&
            strcmp(r->conns[i]->service, f->service) == 0) {
            reg_remove_at(r, i);
            return 1;
        }
    }
    return 0;
}

int64_t bg_reg_conn_expiry(const bg_registry *r, const bg_reg_conn *c)
{
    int64_t expiry = r->o.heartbeat_expiry_ms;
    int64_t announced = BG_REG_EXPIRY_INTERVALS * c->interval_ms;
    int64_t cap = BG_REG_EXPIRY_CAP * expiry;

    if (announced > expiry)
        expiry = announced < cap ? announced : cap;
    return expiry;
}

int bg_reg_expire(bg_registry *r, int64_t now_ms, bg_reg_event_fn *fn, void *ud)
{
    int changed = 0;
    size_t i = 0;

    while (i < r->n) {
        bg_reg_conn *c = r->conns[i];

        if (c->up && now_ms - c->last_seen_ms >= bg_reg_conn_expiry(r, c)) {
            c->up = 0;
            c->down_since_ms = now_ms;
            r->dirty = 1;
            changed++;
            if (fn != NULL)
                fn(ud, c, BG_REG_EV_DOWN, now_ms - c->last_seen_ms);
        } else if (!c->up && now_ms - c->down_since_ms >= r->o.connection_remove_ms) {
            if (fn != NULL)
                fn(ud, c, BG_REG_EV_REMOVED, now_ms - c->last_seen_ms);
            reg_remove_at(r, i);
            changed++;
            continue;
        }
        i++;
    }
    return changed;
}

void bg_reg_hold_expiry(bg_registry *r, int64_t not_before_ms)
{
    for (size_t i = 0; i < r->n; i++) {
        bg_reg_conn *c = r->conns[i];
        if (c->up && c->last_seen_ms < not_before_ms)
            c->last_seen_ms = not_before_ms;
        else if (!c->up && c->down_since_ms < not_before_ms)
            c->down_since_ms = not_before_ms;
    }
}

int64_t bg_reg_next_expiry(const bg_registry *r)
{
    int64_t next = INT64_MAX;

    for (size_t i = 0; i < r->n; i++) {
        const bg_reg_conn *c = r->conns[i];
        int64_t at = c->up ? c->last_seen_ms + bg_reg_conn_expiry(r, c)
                           : c->down_since_ms + r->o.connection_remove_ms;
        if (at < next)
            next = at;
    }
    return next;
}
