/* route_cache.c: the writer's compiled connections: matching the input, compiling what changed. */
#include "route_cache.h"

#include <stdlib.h>
#include <string.h>

#include "busgate/common.h"

/* Garbage tolerated beyond what is live, on top of as much again: strings
 * or nodes, connections. Scaled down for small tables, whose resets cost
 * next to nothing (and so are exercised by the tests). */
#define RT_GARBAGE_SLACK 1024u
#define RT_GARBAGE_CONNS 64u

static int rt_oom(char *err)
{
    bg_set_error(err, "routing table: out of memory for the build scratch");
    return BG_ERR;
}

/* Per-node and per-route arrays of the build, sized once by the capacities. */
static bg_rt_scratch *rt_scratch_new(const bg_rt_layout *lay)
{
    bg_rt_scratch *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->first_child = calloc(lay->cap_nodes, sizeof(uint32_t));
    s->next_sibling = calloc(lay->cap_nodes, sizeof(uint32_t));
    s->node_edge = calloc(lay->cap_nodes, sizeof(bg_rt_edge));
    s->last_conn = calloc(lay->cap_routes, sizeof(uint32_t));
    s->route_claims = calloc(lay->cap_routes, sizeof(uint32_t));
    s->route_rate = calloc(lay->cap_routes, sizeof(*s->route_rate));
    s->node_pnode = calloc(lay->cap_nodes, sizeof(uint32_t));
    s->edge_pnode[0] = calloc(lay->cap_edges, sizeof(uint32_t));
    s->edge_pnode[1] = calloc(lay->cap_edges, sizeof(uint32_t));
    if (!s->first_child || !s->next_sibling || !s->node_edge || !s->last_conn || !s->route_claims ||
        !s->route_rate || !s->node_pnode || !s->edge_pnode[0] || !s->edge_pnode[1] ||
        bg_rt_ptrie_reset(&s->trie) != BG_OK) {
        bg_rt_scratch_free(s);
        return NULL;
    }
    return s;
}

static void rt_cconns_free(bg_rt_scratch *s)
{
    for (uint32_t i = 0; i < s->ncc; i++) {
        free(s->cc[i].eps);
        free(s->cc[i].segs);
    }
    free(s->cc);
    s->cc = NULL;
    s->ncc = s->cc_cap = 0;
}

void bg_rt_scratch_free(bg_rt_scratch *s)
{
    if (s == NULL)
        return;
    rt_cconns_free(s);
    bg_rt_dict_free(&s->dict);
    bg_rt_ptrie_free(&s->trie);
    free(s->in_cc);
    free(s->first_child);
    free(s->next_sibling);
    free(s->node_edge);
    free(s->last_conn);
    free(s->route_claims);
    free(s->route_rate);
    free(s->node_pnode);
    free(s->edge_pnode[0]);
    free(s->edge_pnode[1]);
    free(s);
}

/* Drops every compiled connection, string and trie node: ids start over. */
static int rt_cache_reset(bg_rt_scratch *s)
{
    rt_cconns_free(s);
    bg_rt_dict_free(&s->dict);
    return bg_rt_ptrie_reset(&s->trie);
}

/* Garbage (strings, nodes and connections no build uses any more) may grow
 * to about what is live; then one publish pays a full compile again. */
static int rt_cache_bloated(const bg_rt_scratch *s, const bg_rt_layout *lay)
{
    size_t slack = lay->cap_eps < RT_GARBAGE_SLACK ? lay->cap_eps : RT_GARBAGE_SLACK;
    size_t cslack = lay->cap_conns < RT_GARBAGE_CONNS ? lay->cap_conns : RT_GARBAGE_CONNS;

    return s->dict.n > 2 * (size_t)s->hw_strs + slack ||
           s->trie.n > 2 * (size_t)s->hw_nodes + slack || s->ncc > 2 * (size_t)s->hw_conns + cslack;
}

/* A high-water mark that forgets a peak over about 64 publishes, so a
 * table that shrank for good stops protecting its old garbage. */
static uint32_t rt_decay_max(uint32_t hw, size_t now)
{
    uint32_t decayed = hw - hw / 64;

    return now > decayed ? (uint32_t)now : decayed;
}

void bg_rt_cache_used(bg_rt_scratch *s, uint32_t nstrs, uint32_t nnodes, size_t nconns)
{
    s->hw_strs = rt_decay_max(s->hw_strs, nstrs);
    s->hw_nodes = rt_decay_max(s->hw_nodes, nnodes);
    s->hw_conns = rt_decay_max(s->hw_conns, nconns);
}

/* ---- Comparing an input connection with its compiled form ---- */

static int rt_same_str(const rt_dict *d, uint32_t sid, const char *s)
{
    return strcmp(bg_rt_dict_str(d, sid), bg_rt_or_empty(s)) == 0;
}

static int rt_same_ep(const rt_dict *d, const rt_cep *ce, const bg_rt_endpoint_in *e)
{
    return e->timeout_ms == ce->timeout_ms &&
           strcmp(bg_rt_method_name(ce->method), bg_rt_or_empty(e->method)) == 0 &&
           rt_same_str(d, ce->tmpl, e->path_template) && rt_same_str(d, ce->claims, e->claims) &&
           rt_same_str(d, ce->rate, e->rate_limit);
}

/* Same content as when compiled (the id matched already). up and the
 * heartbeat are not compiled: the build takes them from the input. */
static int rt_same_conn(const rt_dict *d, const rt_cconn *cc, const bg_rt_connection_in *c)
{
    if (!cc->valid || c->nendpoints != cc->nep || (cc->nep > 0 && c->endpoints == NULL) ||
        !rt_same_str(d, cc->service, c->service) || !rt_same_str(d, cc->instance, c->instance) ||
        !rt_same_str(d, cc->version, c->version))
        return 0;
    for (uint32_t k = 0; k < cc->nep; k++) {
        if (!rt_same_ep(d, &cc->eps[k], &c->endpoints[k]))
            return 0;
    }
    return 1;
}

/* ---- Compiling (the input connection was checked) ---- */

static int rt_intern_cstr(rt_dict *d, const char *s, uint32_t *sid)
{
    s = bg_rt_or_empty(s);
    return bg_rt_dict_intern(d, s, strlen(s), sid);
}

/* Parses a checked template into segments and trie nodes from the root. */
static int rt_compile_tmpl(bg_rt_scratch *s, rt_cconn *cc, rt_cep *ce, const char *tmpl)
{
    size_t pos = 0, len = strlen(tmpl);
    uint32_t node = 0;
    bg_rt_seg seg;

    ce->seg_first = cc->nseg;
    ce->nseg = ce->tail = 0;
    while (bg_rt_tmpl_next(tmpl, len, &pos, &seg, NULL) > 0) {
        rt_cseg *cs = &cc->segs[cc->nseg];

        if (seg.kind == BG_RT_SEG_TAIL) {
            ce->tail = 1;
            break;
        }
        cs->sid = BG_RT_NONE;
        if ((seg.kind == BG_RT_SEG_LITERAL &&
             bg_rt_dict_intern(&s->dict, seg.text, seg.len, &cs->sid) != BG_OK) ||
            bg_rt_ptrie_child(&s->trie, node, cs->sid, bg_rt_seg_prefix(seg.text, seg.len),
                              &node) != BG_OK)
            return BG_ERR;
        cs->pnode = node;
        cc->nseg++;
        ce->nseg++;
    }
    return BG_OK;
}

static int rt_compile_ep(bg_rt_scratch *s, rt_cconn *cc, rt_cep *ce, const bg_rt_endpoint_in *e)
{
    const char *rate = bg_rt_or_empty(e->rate_limit);

    ce->timeout_ms = e->timeout_ms;
    ce->method = bg_rt_method_bit(e->method, strlen(e->method));
    /* Parsed here, once per changed connection: lookups copy the numbers. */
    ce->rspec = (bg_rate_spec){0};
    if (rate[0] != '\0' && bg_rate_spec_parse(rate, &ce->rspec, NULL) != BG_OK)
        return BG_ERR; /* checked before: not reached */
    if (rt_intern_cstr(&s->dict, e->path_template, &ce->tmpl) != BG_OK ||
        rt_intern_cstr(&s->dict, e->claims, &ce->claims) != BG_OK ||
        rt_intern_cstr(&s->dict, rate, &ce->rate) != BG_OK ||
        rt_intern_cstr(&s->dict, ce->rspec.key_name, &ce->rate_key) != BG_OK)
        return BG_ERR;
    return rt_compile_tmpl(s, cc, ce, e->path_template);
}

/* Room for the endpoints and for every segment (at most one per slash). */
static int rt_cconn_reserve(rt_cconn *cc, const bg_rt_connection_in *c)
{
    size_t nseg = 0;
    void *p;

    for (size_t k = 0; k < c->nendpoints; k++)
        for (const char *t = c->endpoints[k].path_template; *t; t++)
            nseg += *t == '/';
    if (c->nendpoints > cc->eps_cap) {
        if ((p = realloc(cc->eps, c->nendpoints * sizeof(rt_cep))) == NULL)
            return BG_ERR;
        cc->eps = p;
        cc->eps_cap = (uint32_t)c->nendpoints;
    }
    if (nseg > cc->segs_cap) {
        if ((p = realloc(cc->segs, nseg * sizeof(rt_cseg))) == NULL)
            return BG_ERR;
        cc->segs = p;
        cc->segs_cap = (uint32_t)nseg;
    }
    return BG_OK;
}

static int rt_cconn_compile(bg_rt_scratch *s, rt_cconn *cc, const bg_rt_connection_in *c)
{
    cc->valid = 0; /* until the last step: a half compile never matches */
    cc->nep = cc->nseg = 0;
    if (rt_cconn_reserve(cc, c) != BG_OK ||
        rt_intern_cstr(&s->dict, c->service, &cc->service) != BG_OK ||
        rt_intern_cstr(&s->dict, c->instance, &cc->instance) != BG_OK ||
        rt_intern_cstr(&s->dict, c->version, &cc->version) != BG_OK)
        return BG_ERR;
    for (; cc->nep < c->nendpoints; cc->nep++) {
        if (rt_compile_ep(s, cc, &cc->eps[cc->nep], &c->endpoints[cc->nep]) != BG_OK)
            return BG_ERR;
    }
    cc->valid = 1;
    return BG_OK;
}

/* A new compiled connection named by the checked id. */
static int rt_cconn_new(bg_rt_scratch *s, const char *id, uint32_t *ci)
{
    uint32_t sid;
    rt_cconn *p = s->cc;

    if (rt_intern_cstr(&s->dict, id, &sid) != BG_OK)
        return BG_ERR;
    if (s->ncc == s->cc_cap) {
        uint32_t cap = s->cc_cap ? 2 * s->cc_cap : 64;

        if ((p = realloc(s->cc, cap * sizeof(*p))) == NULL)
            return BG_ERR;
        s->cc = p;
        s->cc_cap = cap;
    }
    s->cc[s->ncc] = (rt_cconn){.id = sid};
    s->dict.ent[sid].cconn = *ci = s->ncc++;
    return BG_OK;
}

/* ---- Matching the input ---- */

/* Finds, checks or compiles the compiled form of input connection c. A
 * second connection with an id already matched gets the first one's form:
 * the build refuses it when it gets there, as it always did. One with more
 * endpoints than the table holds is only checked: the endpoint count
 * refuses the input before any build. */
static int rt_cache_match(bg_rt_scratch *s, const bg_rt_connection_in *c, size_t max_eps,
                          uint32_t *out, char *err)
{
    uint32_t sid = c->connection_id ? bg_rt_dict_find(&s->dict, c->connection_id) : BG_RT_NONE;
    uint32_t ci = sid != BG_RT_NONE ? s->dict.ent[sid].cconn : BG_RT_NONE;

    if (ci != BG_RT_NONE && s->cc[ci].claimed != s->epoch &&
        rt_same_conn(&s->dict, &s->cc[ci], c)) {
        s->cc[ci].claimed = s->epoch;
        *out = ci;
        return BG_OK;
    }
    if (bg_rt_conn_check(c, err) != BG_OK)
        return BG_ERR;
    if ((ci != BG_RT_NONE && s->cc[ci].claimed == s->epoch) || c->nendpoints > max_eps) {
        *out = ci; /* a duplicate id, or an input refused below */
        return BG_OK;
    }
    if ((ci == BG_RT_NONE && rt_cconn_new(s, c->connection_id, &ci) != BG_OK) ||
        rt_cconn_compile(s, &s->cc[ci], c) != BG_OK)
        return rt_oom(err);
    s->cc[ci].claimed = s->epoch;
    *out = ci;
    return BG_OK;
}

static int rt_cache_begin(bg_rt *rt, size_t n, char *err)
{
    bg_rt_scratch *s = rt->scratch;

    if (s == NULL && (s = rt->scratch = rt_scratch_new(&rt->lay)) == NULL)
        return rt_oom(err);
    if ((++s->epoch == 0 || rt_cache_bloated(s, &rt->lay)) && rt_cache_reset(s) != BG_OK) {
        bg_rt_scratch_free(s); /* half reset: start again from nothing next time */
        rt->scratch = NULL;
        return rt_oom(err);
    }
    if (s->epoch == 0)
        s->epoch = 1; /* 0 marks "never placed" */
    if (n > s->in_cap) {
        uint32_t *p = realloc(s->in_cc, n * sizeof(*p));

        if (p == NULL)
            return rt_oom(err);
        s->in_cc = p;
        s->in_cap = n;
    }
    return BG_OK;
}

int bg_rt_cache_prepare(bg_rt *rt, const bg_rt_connection_in *conns, size_t n, char *err)
{
    size_t neps = 0;

    if (n > rt->lay.cap_conns) {
        bg_set_error(err, "routing table full: %zu connections, max_connections is %u", n,
                     rt->lay.cap_conns);
        return BG_ERR;
    }
    if (rt_cache_begin(rt, n, err) != BG_OK)
        return BG_ERR;
    for (size_t i = 0; i < n; i++) {
        if (rt_cache_match(rt->scratch, &conns[i], rt->lay.cap_eps, &rt->scratch->in_cc[i], err) !=
            BG_OK)
            return BG_ERR;
        neps += conns[i].nendpoints;
    }
    if (neps > rt->lay.cap_eps) {
        bg_set_error(err, "routing table full: %zu endpoints, max_endpoints is %u", neps,
                     rt->lay.cap_eps);
        return BG_ERR;
    }
    return BG_OK;
}
