/* route_build.c: lays the compiled connections out into one copy of the table. */
#include "route_cache.h"

#include <stdlib.h>
#include <string.h>

#include "busgate/common.h"

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
    uint32_t epoch;
    uint32_t nsvcs, nconns, neps, nroutes, nterms, nnodes, nstr, nplaced;
} rt_build;

/* The connection being placed: its input (for up, the heartbeat and the
 * names handed to the conflict callback) and its compiled form. */
typedef struct rt_place_ctx {
    const bg_rt_connection_in *in;
    const rt_cconn *cc;
    uint32_t ci, svc;
} rt_place_ctx;

static int rt_full(char *err, const char *what, uint32_t cap, const char *setting)
{
    bg_set_error(err, "routing table full: more than %u %s (%s)", cap, what, setting);
    return BG_ERR;
}

/* Copies dictionary string sid into the copy's string area, once per build:
 * the area holds every distinct string once, in order of first use. */
static int rt_place(rt_build *b, uint32_t sid, bg_rt_str *out, char *err)
{
    rt_dstr *e = &b->s->dict.ent[sid];

    if (e->epoch != b->epoch) {
        if (e->len > b->lay->cap_strings - b->nstr)
            return rt_full(err, "bytes of strings", b->lay->cap_strings, "string_bytes");
        memcpy(b->strings + b->nstr, bg_rt_dict_str(&b->s->dict, sid), e->len);
        e->epoch = b->epoch;
        e->shm_off = b->nstr;
        e->svc = e->conn = BG_RT_NONE;
        b->nstr += e->len;
        b->nplaced++;
    }
    out->off = e->shm_off;
    out->len = e->len;
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

/* One step down from parent along a compiled segment. Its private trie node
 * already has a node in this build (then its literal was placed with it), or
 * gets the next one: the same node numbering, string order and errors as
 * inserting the templates one by one. */
static int rt_trie_step(rt_build *b, uint32_t parent, const rt_cseg *sg, uint32_t *out, char *err)
{
    rt_pnode *pn = &b->s->trie.node[sg->pnode];
    bg_rt_str str;

    if (pn->epoch == b->epoch) {
        *out = pn->shm;
        return BG_OK;
    }
    if ((sg->sid != BG_RT_NONE && rt_place(b, sg->sid, &str, err) != BG_OK) ||
        rt_new_node(b, out, err) != BG_OK)
        return BG_ERR;
    pn->epoch = b->epoch;
    pn->shm = *out;
    b->s->node_pnode[*out] = sg->pnode;
    if (sg->sid == BG_RT_NONE) {
        b->nodes[parent].param_child = *out;
        return BG_OK;
    }
    b->s->node_edge[*out] = (bg_rt_edge){pn->prefix, str, *out};
    b->s->next_sibling[*out] = b->s->first_child[parent];
    b->s->first_child[parent] = *out;
    return BG_OK;
}

/* Walks/extends the trie along a compiled template; *term gets its terminal. */
static int rt_insert_template(rt_build *b, const rt_cconn *cc, const rt_cep *ce, uint32_t *term,
                              char *err)
{
    uint32_t node = 0, *slot;

    for (uint32_t j = 0; j < ce->nseg; j++) {
        if (rt_trie_step(b, node, &cc->segs[ce->seg_first + j], &node, err) != BG_OK)
            return BG_ERR;
    }
    slot = ce->tail ? &b->nodes[node].tail_term : &b->nodes[node].term;
    if (rt_new_term(b, slot, err) != BG_OK)
        return BG_ERR;
    *term = *slot;
    return BG_OK;
}

/* Order of literal children: the 8-byte prefixes order most pairs (see
 * bg_rt_seg_prefix), the bytes decide ties. */
static int rt_edge_cmp(const void *a, const void *b, void *strings)
{
    const bg_rt_edge *x = a, *y = b;
    const char *s = strings;

    if (x->prefix != y->prefix)
        return x->prefix < y->prefix ? -1 : 1;
    return bg_rt_seg_cmp(s + x->seg.off, x->seg.len, s + y->seg.off, y->seg.len);
}

/* Puts the k children of private node p, gathered at edges[first], in the
 * order the previous build sorted them, if exactly those are present again
 * (the usual case: most publishes change one connection). Segments never
 * change under a private node, so their order does not either. */
static int rt_edges_reuse(rt_build *b, const rt_pnode *p, uint32_t first, uint32_t k)
{
    const rt_pnode *tn = b->s->trie.node;
    const uint32_t *old = b->s->edge_pnode[b->s->edges_cur] + p->order_first;

    if (p->order_epoch != b->s->edges_epoch || p->order_count != k)
        return 0;
    for (uint32_t i = 0; i < k; i++) {
        if (tn[old[i]].epoch != b->epoch)
            return 0; /* one of them went away: another came instead */
    }
    for (uint32_t i = 0; i < k; i++)
        b->edges[first + i] = b->s->node_edge[tn[old[i]].shm];
    return 1;
}

/* Sorts the k children of node n gathered at edges[first], and notes the
 * order for the next build. */
static void rt_edges_sort(rt_build *b, uint32_t n, uint32_t first, uint32_t k, uint32_t *order)
{
    rt_pnode *p = &b->s->trie.node[b->s->node_pnode[n]];

    if (!rt_edges_reuse(b, p, first, k))
        qsort_r(b->edges + first, k, sizeof(bg_rt_edge), rt_edge_cmp, b->strings);
    for (uint32_t i = 0; i < k; i++)
        order[first + i] = b->s->node_pnode[b->edges[first + i].node];
    p->order_epoch = b->epoch;
    p->order_first = first;
    p->order_count = k;
}

/* Lays out the literal children of every node contiguously, sorted. */
static void rt_place_edges(rt_build *b)
{
    uint32_t ne = 0, *order = b->s->edge_pnode[b->s->edges_cur ^ 1];

    for (uint32_t n = 0; n < b->nnodes; n++) {
        uint32_t first = ne;

        for (uint32_t c = b->s->first_child[n]; c != BG_RT_NONE; c = b->s->next_sibling[c])
            b->edges[ne++] = b->s->node_edge[c];
        if (ne - first > 1)
            rt_edges_sort(b, n, first, ne - first, order);
        b->nodes[n].edge_first = first;
        b->nodes[n].edge_count = ne - first;
    }
    b->copy->nedges = ne; /* one edge per non-root literal node: never above cap_edges */
    b->s->edges_cur ^= 1;
    b->s->edges_epoch = b->epoch;
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
static int rt_claims_union(rt_build *b, uint32_t ri, const char *add, char *err)
{
    bg_rt_route *r = &b->routes[ri];
    char buf[BG_RT_CLAIMS_MAX + 1];
    size_t used = r->claims.len;
    uint32_t sid;

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
    if (bg_rt_dict_intern(&b->s->dict, buf, used, &sid) != BG_OK) {
        bg_set_error(err, "routing table: out of memory for the build scratch");
        return BG_ERR;
    }
    b->s->route_claims[ri] = sid;
    return rt_place(b, sid, &r->claims, err);
}

/* The route's rate limit becomes declaration ce's: numbers, and the header name placed. */
static int rt_rate_set(rt_build *b, uint32_t ri, const rt_cep *ce, char *err)
{
    bg_rt_route *r = &b->routes[ri];

    b->s->route_rate[ri] = ce;
    r->rate = (bg_rt_rate){.count = (uint32_t)ce->rspec.count,
                           .per_ms = (uint32_t)ce->rspec.per_ms,
                           .burst = (uint32_t)ce->rspec.burst,
                           .key = (uint32_t)ce->rspec.key};
    return rt_place(b, ce->rate_key, &r->rate.key_name, err);
}

/* The strictest limit any connection declares (bg_rate_spec_cmp): as with claims, one
 * instance that asks for protection gets it, and the result does not depend on the
 * order in which instances registered. */
static int rt_rate_merge(rt_build *b, uint32_t ri, const rt_cep *ce, char *err)
{
    const rt_cep *cur = b->s->route_rate[ri];

    if (cur->rate == ce->rate || bg_rate_spec_cmp(&ce->rspec, &cur->rspec) >= 0)
        return BG_OK; /* the usual case: every instance agrees */
    return rt_rate_set(b, ri, ce, err);
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

/* Adds endpoint k of the connection in x (declared as placed) to the routes. */
static int rt_add_route(rt_build *b, const rt_place_ctx *x, uint32_t k, const bg_rt_ep *placed,
                        char *err)
{
    const rt_cep *ce = &x->cc->eps[k];
    uint32_t ti, *slot, mi = (uint32_t)__builtin_ctz(placed->method);
    bg_rt_route *r;

    if (rt_insert_template(b, x->cc, ce, &ti, err) != BG_OK)
        return BG_ERR;
    slot = &b->terms[ti].route[mi];
    if (*slot == BG_RT_NONE) {
        if (b->nroutes >= b->lay->cap_routes)
            return rt_full(err, "routes", b->lay->cap_routes, "max_endpoints");
        b->routes[b->nroutes] = (bg_rt_route){.service = x->svc,
                                              .method = placed->method,
                                              .tmpl = placed->tmpl,
                                              .claims = placed->claims,
                                              .timeout_ms = placed->timeout_ms,
                                              .nconns = 1,
                                              .nup = x->in->up ? 1 : 0};
        b->s->last_conn[b->nroutes] = x->ci;
        b->s->route_claims[b->nroutes] = ce->claims;
        *slot = b->nroutes++;
        return rt_rate_set(b, *slot, ce, err);
    }
    r = &b->routes[*slot];
    if (r->service != x->svc) {
        rt_report_conflict(b, r, x->in, &x->in->endpoints[k]); /* the earlier service keeps it */
        return BG_OK;
    }
    if (b->s->last_conn[*slot] == x->ci)
        return BG_OK; /* declared twice by one connection */
    b->s->last_conn[*slot] = x->ci;
    r->nconns++;
    r->nup += x->in->up ? 1 : 0;
    if (placed->timeout_ms > r->timeout_ms)
        r->timeout_ms = placed->timeout_ms; /* the longest explicit timeout */
    if (rt_rate_merge(b, *slot, ce, err) != BG_OK)
        return BG_ERR;
    if (b->s->route_claims[*slot] == ce->claims)
        return BG_OK; /* the usual case: every instance agrees */
    return rt_claims_union(b, *slot, bg_rt_or_empty(x->in->endpoints[k].claims), err);
}

/* ---- Services and connections ---- */

static int rt_service_of(rt_build *b, uint32_t sid, uint32_t *out, char *err)
{
    bg_rt_str name;
    rt_dstr *e;

    if (rt_place(b, sid, &name, err) != BG_OK)
        return BG_ERR;
    e = &b->s->dict.ent[sid];
    if (e->svc == BG_RT_NONE) {
        if (b->nsvcs >= b->lay->cap_services)
            return rt_full(err, "services", b->lay->cap_services, "max_services");
        b->svcs[b->nsvcs] = (bg_rt_svc){name, 0, 0};
        e->svc = b->nsvcs++;
    }
    *out = e->svc;
    return BG_OK;
}

static int rt_place_endpoint(rt_build *b, const rt_place_ctx *x, uint32_t k, char *err)
{
    bg_rt_ep *placed = &b->eps[b->neps++]; /* counted against cap_eps by the input check */
    const rt_cep *ce = &x->cc->eps[k];

    placed->method = ce->method;
    placed->timeout_ms = ce->timeout_ms;
    if (rt_place(b, ce->tmpl, &placed->tmpl, err) != BG_OK ||
        rt_place(b, ce->claims, &placed->claims, err) != BG_OK ||
        rt_place(b, ce->rate, &placed->rate, err) != BG_OK)
        return BG_ERR;
    return rt_add_route(b, x, k, placed, err);
}

/* The connection's own record: id (refused when seen twice), service,
 * instance, version, liveness. */
static int rt_place_conn_head(rt_build *b, rt_place_ctx *x, char *err)
{
    const rt_cconn *cc = x->cc;
    bg_rt_conn *pc = &b->conns[x->ci];
    bg_rt_str id;

    if (rt_place(b, cc->id, &id, err) != BG_OK)
        return BG_ERR;
    if (b->s->dict.ent[cc->id].conn != BG_RT_NONE) {
        bg_set_error(err, "connection id '%s' appears twice", x->in->connection_id);
        return BG_ERR;
    }
    b->s->dict.ent[cc->id].conn = x->ci;
    if (rt_service_of(b, cc->service, &x->svc, err) != BG_OK)
        return BG_ERR;
    *pc = (bg_rt_conn){.id = id,
                       .service = x->svc,
                       .up = x->in->up ? 1 : 0,
                       .last_heartbeat_wall_ms = x->in->last_heartbeat_wall_ms,
                       .ep_first = b->neps,
                       .nep = cc->nep};
    return rt_place(b, cc->instance, &pc->instance, err) != BG_OK ||
                   rt_place(b, cc->version, &pc->version, err) != BG_OK
               ? BG_ERR
               : BG_OK;
}

static int rt_place_conn(rt_build *b, const bg_rt_connection_in *c, const rt_cconn *cc, char *err)
{
    rt_place_ctx x = {.in = c, .cc = cc, .ci = b->nconns};

    if (rt_place_conn_head(b, &x, err) != BG_OK)
        return BG_ERR;
    b->nconns++;
    b->svcs[x.svc].nconns++;
    b->svcs[x.svc].nup += b->conns[x.ci].up;
    for (uint32_t k = 0; k < cc->nep; k++) {
        if (rt_place_endpoint(b, &x, k, err) != BG_OK)
            return BG_ERR;
    }
    return BG_OK;
}

static void rt_build_init(rt_build *b, bg_rt *rt, bg_rt_copy *copy)
{
    const bg_rt_layout *lay = &rt->lay;

    *b = (rt_build){.rt = rt, .lay = lay, .s = rt->scratch, .copy = copy};
    b->epoch = b->s->epoch;
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
    rt_build b;
    uint32_t root;

    if (bg_rt_cache_prepare(rt, conns, n, err) != BG_OK)
        return BG_ERR;
    rt_build_init(&b, rt, copy);
    if (rt_new_node(&b, &root, err) != BG_OK)
        return BG_ERR;
    b.s->node_pnode[root] = 0;
    for (size_t i = 0; i < n; i++) {
        if (rt_place_conn(&b, &conns[i], &rt->scratch->cc[rt->scratch->in_cc[i]], err) != BG_OK)
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
    bg_rt_cache_used(rt->scratch, b.nplaced, b.nnodes, n);
    return BG_OK;
}
