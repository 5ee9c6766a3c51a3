/* route_build.c: compiles a plain list of connections and endpoints into one copy of the table. */
#include "route_layout.h"

#include <stdlib.h>
#include <string.h>

#include "busgate/common.h"

/* Hash entry of an interned string; svc and conn map a name to its service
 * or connection in this build. Entries of older builds have an older epoch. */
typedef struct rt_istr {
    uint32_t epoch, hash, off, len, svc, conn;
} rt_istr;

/* Hash entry of a trie edge: (parent node, interned segment) -> child. */
typedef struct rt_iedge {
    uint32_t epoch, parent, seg_off, child;
} rt_iedge;

struct bg_rt_scratch {
    uint32_t epoch;
    rt_istr *strs;
    uint32_t strs_cap; /* power of two */
    rt_iedge *edges;
    uint32_t edges_cap;
    uint32_t *first_child, *next_sibling, *last_conn; /* per node, node, route */
    bg_rt_str *node_seg;
};

typedef struct rt_build {
    bg_rt *rt;
    const bg_rt_layout *lay;
    bg_rt_scratch *s;
    bg_rt_copy *copy;
    bg_rt_svc *svcs;
    bg_rt_conn *conns;
    bg_rt_ep *eps;
    bg_rt_route *routes;
    bg_rt_term *terms;
    bg_rt_node *nodes;
    bg_rt_edge *edges;
    char *strings;
    uint32_t nsvcs, nconns, neps, nroutes, nterms, nnodes, nstr;
} rt_build;

void bg_rt_scratch_free(bg_rt_scratch *s)
{
    if (s == NULL)
        return;
    free(s->strs);
    free(s->edges);
    free(s->first_child);
    free(s->next_sibling);
    free(s->last_conn);
    free(s->node_seg);
    free(s);
}

static uint32_t rt_hash(const char *p, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)p[i]) * 16777619u;
    return h;
}

static uint32_t rt_pow2_at_least(size_t n)
{
    uint32_t c = 64;

    while (c < n && c < (1u << 30))
        c <<= 1;
    return c;
}

/* Grows a hash table to hold `need` entries at most half full. */
static int rt_table_fit(void **tab, uint32_t *cap, size_t elem, size_t need)
{
    uint32_t want = rt_pow2_at_least(need * 2);
    void *p;

    if (*tab != NULL && *cap >= want)
        return BG_OK;
    p = calloc(want, elem);
    if (p == NULL)
        return BG_ERR;
    free(*tab);
    *tab = p;
    *cap = want;
    return BG_OK;
}

static int rt_scratch_fit(bg_rt *rt, size_t nstrings, size_t nedges, char *err)
{
    bg_rt_scratch *s = rt->scratch;
    const bg_rt_layout *lay = &rt->lay;

    if (s == NULL) {
        s = rt->scratch = calloc(1, sizeof(*s));
        if (s == NULL)
            goto oom;
        s->first_child = calloc(lay->cap_nodes, sizeof(uint32_t));
        s->next_sibling = calloc(lay->cap_nodes, sizeof(uint32_t));
        s->node_seg = calloc(lay->cap_nodes, sizeof(bg_rt_str));
        s->last_conn = calloc(lay->cap_routes, sizeof(uint32_t));
        if (!s->first_child || !s->next_sibling || !s->node_seg || !s->last_conn)
            goto oom;
    }
    if (rt_table_fit((void **)&s->strs, &s->strs_cap, sizeof(rt_istr), nstrings) != BG_OK ||
        rt_table_fit((void **)&s->edges, &s->edges_cap, sizeof(rt_iedge), nedges) != BG_OK)
        goto oom;
    /* Epochs retire the previous build's entries without clearing the tables. */
    if (++s->epoch == 0) {
        memset(s->strs, 0, (size_t)s->strs_cap * sizeof(rt_istr));
        memset(s->edges, 0, (size_t)s->edges_cap * sizeof(rt_iedge));
        s->epoch = 1;
    }
    return BG_OK;
oom:
    bg_set_error(err, "routing table: out of memory for the build scratch");
    return BG_ERR;
}

static int rt_full(char *err, const char *what, uint32_t cap, const char *setting)
{
    bg_set_error(err, "routing table full: more than %u %s (%s)", cap, what, setting);
    return BG_ERR;
}

/* Interns s into the copy's string area; *entry is its hash entry. */
static int rt_intern(rt_build *b, const char *p, size_t len, rt_istr **entry, char *err)
{
    uint32_t h = rt_hash(p, len), mask = b->s->strs_cap - 1;
    rt_istr *e;

    for (uint32_t i = h & mask;; i = (i + 1) & mask) {
        e = &b->s->strs[i];
        if (e->epoch != b->s->epoch)
            break;
        if (e->hash == h && e->len == len && memcmp(b->strings + e->off, p, len) == 0) {
            *entry = e;
            return BG_OK;
        }
    }
    if (len > b->lay->cap_strings - b->nstr)
        return rt_full(err, "bytes of strings", b->lay->cap_strings, "string_bytes");
    memcpy(b->strings + b->nstr, p, len);
    *e = (rt_istr){b->s->epoch, h, b->nstr, (uint32_t)len, BG_RT_NONE, BG_RT_NONE};
    b->nstr += (uint32_t)len;
    *entry = e;
    return BG_OK;
}

static int rt_intern_str(rt_build *b, const char *p, size_t len, bg_rt_str *out, char *err)
{
    rt_istr *e;

    if (rt_intern(b, p, len, &e, err) != BG_OK)
        return BG_ERR;
    out->off = e->off;
    out->len = e->len;
    return BG_OK;
}

static const char *rt_or_empty(const char *s)
{
    return s ? s : "";
}

/* ---- Input checks: everything is validated before anything is placed ---- */

static int rt_check_len(const char *what, const char *conn, const char *s, size_t min, size_t max,
                        char *err)
{
    size_t len = strlen(rt_or_empty(s));

    if (len < min || len > max) {
        bg_set_error(err, "connection '%s': %s must be %zu..%zu bytes, got %zu", conn, what, min,
                     max, len);
        return BG_ERR;
    }
    return BG_OK;
}

int bg_rt_endpoint_check(const bg_rt_endpoint_in *ep, char *err)
{
    char why[BG_ERR_LEN];
    const char *m = rt_or_empty(ep->method);

    if (bg_rt_method_bit(m, strlen(m)) == 0) {
        bg_set_error(err, "unknown method '%.16s'", m);
        return BG_ERR;
    }
    if (bg_rt_template_check(ep->path_template, why) != BG_OK) {
        bg_set_error(err, "template '%.64s': %s", rt_or_empty(ep->path_template), why);
        return BG_ERR;
    }
    if (ep->timeout_ms < 0) {
        bg_set_error(err, "negative timeout for %s %s", m, ep->path_template);
        return BG_ERR;
    }
    if (strlen(rt_or_empty(ep->claims)) > BG_RT_CLAIMS_MAX) {
        bg_set_error(err, "claims of %s %s longer than %d bytes", m, ep->path_template,
                     BG_RT_CLAIMS_MAX);
        return BG_ERR;
    }
    return BG_OK;
}

static int rt_check_endpoint(const char *cid, const bg_rt_endpoint_in *ep, size_t *nsegs, char *err)
{
    char why[BG_ERR_LEN];

    if (bg_rt_endpoint_check(ep, why) != BG_OK) {
        bg_set_error(err, "connection '%s': %s", cid, why);
        return BG_ERR;
    }
    for (const char *p = ep->path_template; *p; p++)
        *nsegs += *p == '/'; /* one segment per slash */
    return BG_OK;
}

static int rt_check_conn(const bg_rt_connection_in *c, size_t *nsegs, char *err)
{
    const char *cid = rt_or_empty(c->connection_id);

    if (rt_check_len("connection_id", cid, c->connection_id, 1, BG_RT_ID_MAX, err) != BG_OK ||
        rt_check_len("service", cid, c->service, 1, BG_RT_SERVICE_MAX, err) != BG_OK ||
        rt_check_len("instance", cid, c->instance, 0, BG_RT_ID_MAX, err) != BG_OK ||
        rt_check_len("version", cid, c->version, 0, BG_RT_ID_MAX, err) != BG_OK)
        return BG_ERR;
    if (c->nendpoints > 0 && c->endpoints == NULL) {
        bg_set_error(err, "connection '%s': endpoints missing", cid);
        return BG_ERR;
    }
    for (size_t i = 0; i < c->nendpoints; i++) {
        if (rt_check_endpoint(cid, &c->endpoints[i], nsegs, err) != BG_OK)
            return BG_ERR;
    }
    return BG_OK;
}

static int rt_check_input(const bg_rt *rt, const bg_rt_connection_in *conns, size_t n, size_t *neps,
                          size_t *nsegs, char *err)
{
    *neps = *nsegs = 0;
    if (n > rt->lay.cap_conns) {
        bg_set_error(err, "routing table full: %zu connections, max_connections is %u", n,
                     rt->lay.cap_conns);
        return BG_ERR;
    }
    for (size_t i = 0; i < n; i++) {
        if (rt_check_conn(&conns[i], nsegs, err) != BG_OK)
            return BG_ERR;
        *neps += conns[i].nendpoints;
    }
    if (*neps > rt->lay.cap_eps) {
        bg_set_error(err, "routing table full: %zu endpoints, max_endpoints is %u", *neps,
                     rt->lay.cap_eps);
        return BG_ERR;
    }
    return BG_OK;
}

/* ---- Trie ---- */

static int rt_new_node(rt_build *b, uint32_t *out, char *err)
{
    if (b->nnodes >= b->lay->cap_nodes)
        return rt_full(err, "trie nodes", b->lay->cap_nodes, "max_nodes");
    b->nodes[b->nnodes] = (bg_rt_node){0, 0, BG_RT_NONE, BG_RT_NONE, BG_RT_NONE};
    b->s->first_child[b->nnodes] = BG_RT_NONE;
    *out = b->nnodes++;
    return BG_OK;
}

static int rt_new_term(rt_build *b, uint32_t *slot, char *err)
{
    if (*slot != BG_RT_NONE)
        return BG_OK;
    if (b->nterms >= b->lay->cap_terms)
        return rt_full(err, "route terminals", b->lay->cap_terms, "max_endpoints");
    for (int i = 0; i < BG_RT_NMETHODS; i++)
        b->terms[b->nterms].route[i] = BG_RT_NONE;
    *slot = b->nterms++;
    return BG_OK;
}

/* The child of parent along a literal segment, created when missing. */
static int rt_literal_child(rt_build *b, uint32_t parent, const bg_rt_seg *seg, uint32_t *out,
                            char *err)
{
    bg_rt_str str;
    uint32_t h, mask = b->s->edges_cap - 1;
    rt_iedge *e;

    if (rt_intern_str(b, seg->text, seg->len, &str, err) != BG_OK)
        return BG_ERR;
    h = (parent * 2654435761u) ^ (str.off * 40503u);
    for (uint32_t i = h & mask;; i = (i + 1) & mask) {
        e = &b->s->edges[i];
        if (e->epoch != b->s->epoch)
            break;
        if (e->parent == parent && e->seg_off == str.off) {
            *out = e->child;
            return BG_OK;
        }
    }
    if (rt_new_node(b, out, err) != BG_OK)
        return BG_ERR;
    *e = (rt_iedge){b->s->epoch, parent, str.off, *out};
    b->s->node_seg[*out] = str;
    b->s->next_sibling[*out] = b->s->first_child[parent];
    b->s->first_child[parent] = *out;
    return BG_OK;
}

/* Walks/extends the trie along tmpl; *term gets the terminal where it ends. */
static int rt_insert_template(rt_build *b, const char *tmpl, uint32_t *term, char *err)
{
    uint32_t node = 0, child;
    size_t pos = 0, len = strlen(tmpl);
    bg_rt_seg seg;

    while (bg_rt_tmpl_next(tmpl, len, &pos, &seg, NULL) > 0) {
        if (seg.kind == BG_RT_SEG_TAIL) {
            if (rt_new_term(b, &b->nodes[node].tail_term, err) != BG_OK)
                return BG_ERR;
            *term = b->nodes[node].tail_term;
            return BG_OK;
        }
        if (seg.kind == BG_RT_SEG_LITERAL) {
            if (rt_literal_child(b, node, &seg, &child, err) != BG_OK)
                return BG_ERR;
        } else if ((child = b->nodes[node].param_child) == BG_RT_NONE) {
            if (rt_new_node(b, &child, err) != BG_OK)
                return BG_ERR;
            b->nodes[node].param_child = child;
        }
        node = child;
    }
    if (rt_new_term(b, &b->nodes[node].term, err) != BG_OK)
        return BG_ERR;
    *term = b->nodes[node].term;
    return BG_OK;
}

/* Lays out the literal children of every node contiguously, sorted. */
static int rt_edge_cmp(const void *a, const void *b, void *strings)
{
    const bg_rt_edge *x = a, *y = b;
    const char *s = strings;

    return bg_rt_seg_cmp(s + x->seg.off, x->seg.len, s + y->seg.off, y->seg.len);
}

static void rt_place_edges(rt_build *b)
{
    uint32_t ne = 0;

    for (uint32_t n = 0; n < b->nnodes; n++) {
        uint32_t first = ne;

        for (uint32_t c = b->s->first_child[n]; c != BG_RT_NONE; c = b->s->next_sibling[c])
            b->edges[ne++] = (bg_rt_edge){
                bg_rt_seg_prefix(b->strings + b->s->node_seg[c].off, b->s->node_seg[c].len),
                b->s->node_seg[c], c};
        qsort_r(b->edges + first, ne - first, sizeof(bg_rt_edge), rt_edge_cmp, b->strings);
        b->nodes[n].edge_first = first;
        b->nodes[n].edge_count = ne - first;
    }
    b->copy->nedges = ne; /* one edge per non-root literal node: never above cap_edges */
}

/* ---- Routes ---- */

static int rt_claim_present(const char *list, const char *tok, size_t len)
{
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");

        if (n == len && memcmp(p, tok, len) == 0)
            return 1;
        p += n + (p[n] == ',');
    }
    return 0;
}

/* Route claims become the union of what every connection requires, so no
 * instance ever receives a request it would refuse. */
static int rt_claims_union(rt_build *b, bg_rt_route *r, const char *add, char *err)
{
    char buf[BG_RT_CLAIMS_MAX + 1];
    size_t used = r->claims.len;

    if (used == strlen(add) && memcmp(b->strings + r->claims.off, add, used) == 0)
        return BG_OK; /* the usual case: every instance agrees */
    memcpy(buf, b->strings + r->claims.off, used);
    buf[used] = '\0';
    for (const char *p = add; *p;) {
        size_t n = strcspn(p, ",");

        if (n > 0 && !rt_claim_present(buf, p, n)) {
            if (used + (used > 0) + n > BG_RT_CLAIMS_MAX) {
                bg_set_error(err, "claims of route %.*s exceed %d bytes once merged",
                             (int)r->tmpl.len, b->strings + r->tmpl.off, BG_RT_CLAIMS_MAX);
                return BG_ERR;
            }
            if (used > 0)
                buf[used++] = ',';
            memcpy(buf + used, p, n);
            buf[used += n] = '\0';
        }
        p += n + (p[n] == ',');
    }
    return rt_intern_str(b, buf, used, &r->claims, err);
}

static void rt_report_conflict(rt_build *b, const bg_rt_route *winner, const bg_rt_connection_in *c,
                               const bg_rt_endpoint_in *ep)
{
    char name[BG_RT_SERVICE_MAX + 1];
    const bg_rt_str *n = &b->svcs[winner->service].name;

    if (b->rt->conflict_fn == NULL)
        return;
    memcpy(name, b->strings + n->off, n->len);
    name[n->len] = '\0';
    b->rt->conflict_fn(b->rt->conflict_ud, ep->method, ep->path_template, name, c->service,
                       c->connection_id);
}

/* Adds one declared endpoint of connection ci (service svc) to the routes. */
static int rt_add_route(rt_build *b, uint32_t svc, uint32_t ci, const bg_rt_connection_in *c,
                        const bg_rt_endpoint_in *ep, const bg_rt_ep *placed, char *err)
{
    uint32_t ti, *slot, mi = (uint32_t)__builtin_ctz(placed->method);
    bg_rt_route *r;

    if (rt_insert_template(b, ep->path_template, &ti, err) != BG_OK)
        return BG_ERR;
    slot = &b->terms[ti].route[mi];
    if (*slot == BG_RT_NONE) {
        if (b->nroutes >= b->lay->cap_routes)
            return rt_full(err, "routes", b->lay->cap_routes, "max_endpoints");
        b->routes[b->nroutes] =
            (bg_rt_route){svc, placed->method, placed->tmpl, placed->claims, placed->timeout_ms,
                          1,   c->up ? 1 : 0};
        b->s->last_conn[b->nroutes] = ci;
        *slot = b->nroutes++;
        return BG_OK;
    }
    r = &b->routes[*slot];
    if (r->service != svc) {
        rt_report_conflict(b, r, c, ep); /* the earlier service keeps it */
        return BG_OK;
    }
    if (b->s->last_conn[*slot] == ci)
        return BG_OK; /* declared twice by one connection */
    b->s->last_conn[*slot] = ci;
    r->nconns++;
    r->nup += c->up ? 1 : 0;
    if (placed->timeout_ms > r->timeout_ms)
        r->timeout_ms = placed->timeout_ms; /* the longest explicit timeout */
    return rt_claims_union(b, r, rt_or_empty(ep->claims), err);
}

/* ---- Services and connections ---- */

static int rt_service_of(rt_build *b, const char *name, uint32_t *out, char *err)
{
    rt_istr *e;

    if (rt_intern(b, name, strlen(name), &e, err) != BG_OK)
        return BG_ERR;
    if (e->svc == BG_RT_NONE) {
        if (b->nsvcs >= b->lay->cap_services)
            return rt_full(err, "services", b->lay->cap_services, "max_services");
        b->svcs[b->nsvcs] = (bg_rt_svc){{e->off, e->len}, 0, 0};
        e->svc = b->nsvcs++;
    }
    *out = e->svc;
    return BG_OK;
}

static int rt_place_endpoint(rt_build *b, uint32_t svc, uint32_t ci, const bg_rt_connection_in *c,
                             const bg_rt_endpoint_in *ep, char *err)
{
    bg_rt_ep *placed = &b->eps[b->neps++]; /* counted against cap_eps by the input check */
    const char *claims = rt_or_empty(ep->claims);

    placed->method = bg_rt_method_bit(ep->method, strlen(ep->method));
    placed->timeout_ms = ep->timeout_ms;
    if (rt_intern_str(b, ep->path_template, strlen(ep->path_template), &placed->tmpl, err) !=
            BG_OK ||
        rt_intern_str(b, claims, strlen(claims), &placed->claims, err) != BG_OK)
        return BG_ERR;
    return rt_add_route(b, svc, ci, c, ep, placed, err);
}

static int rt_place_conn(rt_build *b, const bg_rt_connection_in *c, char *err)
{
    uint32_t ci = b->nconns, svc;
    bg_rt_conn *pc = &b->conns[ci];
    rt_istr *id;

    if (rt_intern(b, c->connection_id, strlen(c->connection_id), &id, err) != BG_OK)
        return BG_ERR;
    if (id->conn != BG_RT_NONE) {
        bg_set_error(err, "connection id '%s' appears twice", c->connection_id);
        return BG_ERR;
    }
    id->conn = ci;
    if (rt_service_of(b, c->service, &svc, err) != BG_OK)
        return BG_ERR;
    *pc = (bg_rt_conn){.id = {id->off, id->len},
                       .service = svc,
                       .up = c->up ? 1 : 0,
                       .last_heartbeat_wall_ms = c->last_heartbeat_wall_ms,
                       .ep_first = b->neps,
                       .nep = (uint32_t)c->nendpoints};
    if (rt_intern_str(b, rt_or_empty(c->instance), strlen(rt_or_empty(c->instance)), &pc->instance,
                      err) != BG_OK ||
        rt_intern_str(b, rt_or_empty(c->version), strlen(rt_or_empty(c->version)), &pc->version,
                      err) != BG_OK)
        return BG_ERR;
    b->nconns++;
    b->svcs[svc].nconns++;
    b->svcs[svc].nup += pc->up;
    for (size_t i = 0; i < c->nendpoints; i++) {
        if (rt_place_endpoint(b, svc, ci, c, &c->endpoints[i], err) != BG_OK)
            return BG_ERR;
    }
    return BG_OK;
}

static void rt_build_init(rt_build *b, bg_rt *rt, bg_rt_copy *copy)
{
    const bg_rt_layout *lay = &rt->lay;

    *b = (rt_build){.rt = rt, .lay = lay, .s = rt->scratch, .copy = copy};
    b->svcs = BG_RT_ARRAY(lay, copy, bg_rt_svc, off_services);
    b->conns = BG_RT_ARRAY(lay, copy, bg_rt_conn, off_conns);
    b->eps = BG_RT_ARRAY(lay, copy, bg_rt_ep, off_eps);
    b->routes = BG_RT_ARRAY(lay, copy, bg_rt_route, off_routes);
    b->terms = BG_RT_ARRAY(lay, copy, bg_rt_term, off_terms);
    b->nodes = BG_RT_ARRAY(lay, copy, bg_rt_node, off_nodes);
    b->edges = BG_RT_ARRAY(lay, copy, bg_rt_edge, off_edges);
    b->strings = BG_RT_ARRAY(lay, copy, char, off_strings);
}

int bg_rt_build(bg_rt *rt, bg_rt_copy *copy, const bg_rt_connection_in *conns, size_t n, char *err)
{
    size_t neps, nsegs;
    rt_build b;
    uint32_t root;

    if (rt_check_input(rt, conns, n, &neps, &nsegs, err) != BG_OK ||
        rt_scratch_fit(rt, 4 * n + 3 * neps + nsegs + 1, nsegs + 1, err) != BG_OK)
        return BG_ERR;
    rt_build_init(&b, rt, copy);
    if (rt_new_node(&b, &root, err) != BG_OK)
        return BG_ERR;
    for (size_t i = 0; i < n; i++) {
        if (rt_place_conn(&b, &conns[i], err) != BG_OK)
            return BG_ERR;
    }
    rt_place_edges(&b);
    copy->nservices = b.nsvcs;
    copy->nconns = b.nconns;
    copy->neps = b.neps;
    copy->nroutes = b.nroutes;
    copy->nterms = b.nterms;
    copy->nnodes = b.nnodes;
    copy->strings_used = b.nstr;
    return BG_OK;
}
