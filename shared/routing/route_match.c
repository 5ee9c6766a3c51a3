/* route_match.c: path template parsing and lock-free route lookup in the shared table. */
#include "route_layout.h"

#include <stdio.h>
#include <string.h>

#include "busgate/common.h"

#define RT_END ((size_t)-1) /* no segment left in the path */
#define RT_MI_GET 0         /* method indices: bit numbers of BG_RT_M_GET, _HEAD */
#define RT_MI_HEAD 1

static const char *const rt_method_names[BG_RT_NMETHODS] = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
};

unsigned bg_rt_method_bit(const char *method, size_t len)
{
    for (int i = 0; i < BG_RT_NMETHODS; i++) {
        if (strlen(rt_method_names[i]) == len && memcmp(rt_method_names[i], method, len) == 0)
            return 1u << i;
    }
    return 0;
}

const char *bg_rt_method_name(unsigned bit)
{
    for (int i = 0; i < BG_RT_NMETHODS; i++) {
        if (bit == 1u << i)
            return rt_method_names[i];
    }
    return NULL;
}

int bg_rt_allow_string(unsigned mask, char *buf, size_t size)
{
    size_t used = 0;

    if (size == 0)
        return BG_ERR;
    buf[0] = '\0';
    for (int i = 0; i < BG_RT_NMETHODS; i++) {
        int n;

        if (!(mask & (1u << i)))
            continue;
        n = snprintf(buf + used, size - used, "%s%s", used ? ", " : "", rt_method_names[i]);
        if (n < 0 || (size_t)n >= size - used)
            return BG_ERR;
        used += (size_t)n;
    }
    return BG_OK;
}

/* ---- Templates ---- */

static int rt_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static int rt_parse_param(const char *s, size_t len, int last, bg_rt_seg *seg, char *err)
{
    size_t nlen = len - 2; /* without the braces */

    if (len < 3 || s[len - 1] != '}') {
        bg_set_error(err, "parameter segment '%.*s' must be {name} or {name*}", (int)len, s);
        return -1;
    }
    seg->kind = BG_RT_SEG_PARAM;
    if (s[len - 2] == '*') {
        if (!last) {
            bg_set_error(err, "tail parameter '%.*s' must be the last segment", (int)len, s);
            return -1;
        }
        seg->kind = BG_RT_SEG_TAIL;
        nlen--;
    }
    if (nlen == 0 || nlen > BG_RT_PARAM_NAME_MAX) {
        bg_set_error(err, "parameter name in '%.*s' must be 1..%d characters", (int)len, s,
                     BG_RT_PARAM_NAME_MAX);
        return -1;
    }
    for (size_t i = 0; i < nlen; i++) {
        if (!rt_name_char(s[1 + i])) {
            bg_set_error(err, "parameter name in '%.*s' may hold only [A-Za-z0-9_]", (int)len, s);
            return -1;
        }
    }
    seg->text = s + 1;
    seg->len = nlen;
    return 1;
}

static int rt_parse_literal(const char *s, size_t len, int last, bg_rt_seg *seg, char *err)
{
    /* An empty segment is only the trailing slash ("/orders/"): a doubled
     * slash never survives the worker's path normalisation. */
    if (len == 0 && !last) {
        bg_set_error(err, "empty segment (doubled slash)");
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f || c == '{' || c == '}' || c == '?' || c == '#') {
            bg_set_error(err, "literal segment '%.*s' holds a forbidden character", (int)len, s);
            return -1;
        }
    }
    seg->kind = BG_RT_SEG_LITERAL;
    seg->text = s;
    seg->len = len;
    return 1;
}

int bg_rt_tmpl_next(const char *tmpl, size_t len, size_t *pos, bg_rt_seg *seg, char *err)
{
    const char *slash;
    size_t start, end;

    if (*pos == 0) {
        if (len == 0 || tmpl[0] != '/') {
            bg_set_error(err, "template must start with '/'");
            return -1;
        }
        *pos = 1;
        if (len == 1)
            *pos = len + 1; /* "/" is the root: no segment at all */
    }
    if (*pos > len)
        return 0;
    start = *pos;
    slash = memchr(tmpl + start, '/', len - start);
    end = slash ? (size_t)(slash - tmpl) : len;
    *pos = end < len ? end + 1 : len + 1;
    if (end > start && tmpl[start] == '{')
        return rt_parse_param(tmpl + start, end - start, end == len, seg, err);
    return rt_parse_literal(tmpl + start, end - start, end == len, seg, err);
}

int bg_rt_template_check(const char *tmpl, char *err)
{
    const char *names[BG_RT_MAX_PARAMS];
    size_t nlens[BG_RT_MAX_PARAMS], len, pos = 0;
    int nseg = 0, np = 0, rc;
    bg_rt_seg seg;

    if (tmpl == NULL || (len = strlen(tmpl)) > BG_RT_TEMPLATE_MAX) {
        bg_set_error(err, "template missing or longer than %d bytes", BG_RT_TEMPLATE_MAX);
        return BG_ERR;
    }
    while ((rc = bg_rt_tmpl_next(tmpl, len, &pos, &seg, err)) > 0) {
        if (++nseg > BG_RT_MAX_SEGMENTS) {
            bg_set_error(err, "template has more than %d segments", BG_RT_MAX_SEGMENTS);
            return BG_ERR;
        }
        if (seg.kind == BG_RT_SEG_LITERAL)
            continue;
        if (np == BG_RT_MAX_PARAMS) {
            bg_set_error(err, "template has more than %d parameters", BG_RT_MAX_PARAMS);
            return BG_ERR;
        }
        for (int i = 0; i < np; i++) {
            if (nlens[i] == seg.len && memcmp(names[i], seg.text, seg.len) == 0) {
                bg_set_error(err, "parameter '%.*s' appears twice", (int)seg.len, seg.text);
                return BG_ERR;
            }
        }
        names[np] = seg.text;
        nlens[np++] = seg.len;
    }
    return rc < 0 ? BG_ERR : BG_OK;
}

/* ---- Lookup ---- */

/* State of one walk over one copy. Indices read from the copy are checked
 * against this process's capacities; a bad one sets torn (the writer was
 * rewriting the copy) and ends the walk, to be retried. */
typedef struct rt_walk {
    const bg_rt *rt;
    const bg_rt_copy *copy;
    const bg_rt_node *nodes;
    const bg_rt_edge *edges;
    const bg_rt_term *terms;
    const char *path;
    size_t len;
    int mi;            /* requested method's index, -1 when unknown */
    unsigned allow;    /* union over every terminal the path reached (405) */
    unsigned allow_at; /* methods of the chosen terminal */
    uint32_t route;
    uint32_t budget; /* node visits left: garbage can never loop */
    int torn;
    int np, best_np;
    size_t off[BG_RT_MAX_PARAMS], plen[BG_RT_MAX_PARAMS];
    size_t best_off[BG_RT_MAX_PARAMS], best_len[BG_RT_MAX_PARAMS];
} rt_walk;

static int rt_torn(rt_walk *w)
{
    w->torn = 1;
    return 1; /* stops the walk */
}

/* Collects the methods of terminal ti and picks the route for the request's
 * method (HEAD falls back to GET). Returns 1 when a route was chosen. */
static int rt_walk_term(rt_walk *w, uint32_t ti)
{
    unsigned mask = 0;
    uint32_t pick = BG_RT_NONE;
    const bg_rt_term *t;

    if (ti == BG_RT_NONE)
        return 0;
    if (ti >= w->rt->lay.cap_terms)
        return rt_torn(w);
    t = &w->terms[ti];
    for (int i = 0; i < BG_RT_NMETHODS; i++) {
        if (bg_rt_read32(&t->route[i]) != BG_RT_NONE)
            mask |= 1u << i;
    }
    if (mask & BG_RT_M_GET)
        mask |= BG_RT_M_HEAD;
    w->allow |= mask;
    if (w->mi >= 0)
        pick = bg_rt_read32(&t->route[w->mi]);
    if (pick == BG_RT_NONE && w->mi == RT_MI_HEAD)
        pick = bg_rt_read32(&t->route[RT_MI_GET]);
    if (pick == BG_RT_NONE)
        return 0;
    if (pick >= w->rt->lay.cap_routes)
        return rt_torn(w);
    w->route = pick;
    w->allow_at = mask;
    w->best_np = w->np;
    memcpy(w->best_off, w->off, sizeof(w->off[0]) * (size_t)w->np);
    memcpy(w->best_len, w->plen, sizeof(w->plen[0]) * (size_t)w->np);
    return 1;
}

/* Compares path[pos, pos+len) with the segment of e, whose prefix is equal.
 * Returns -1/0/1, or 2 (and marks the walk torn) for a bad string reference. */
static int rt_edge_cmp_bytes(rt_walk *w, const bg_rt_edge *e, size_t pos, size_t len)
{
    bg_rt_str s = bg_rt_read_str(&e->seg);
    const char *p;
    int c;

    if (len <= 8 && s.len <= 8)
        return (len > s.len) - (len < s.len); /* equal padded bytes: length decides */
    p = bg_rt_str_ptr(w->rt, w->copy, s);
    if (p == NULL) {
        rt_torn(w);
        return 2;
    }
    c = bg_rt_seg_cmp(w->path + pos, len, p, s.len);
    return (c > 0) - (c < 0);
}

/* Binary search of the literal children of n for path[pos, pos+len). */
static uint32_t rt_find_literal(rt_walk *w, const bg_rt_node *n, size_t pos, size_t len)
{
    uint32_t first = bg_rt_read32(&n->edge_first), count = bg_rt_read32(&n->edge_count);
    uint32_t lo = 0, hi = count;
    uint64_t key = bg_rt_seg_prefix(w->path + pos, len);

    if (first > w->rt->lay.cap_edges || count > w->rt->lay.cap_edges - first) {
        rt_torn(w);
        return BG_RT_NONE;
    }
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const bg_rt_edge *e = &w->edges[first + mid];
        uint64_t pre = bg_rt_readu64(&e->prefix);
        int c = (key > pre) - (key < pre);

        if (c == 0 && (c = rt_edge_cmp_bytes(w, e, pos, len)) == 2)
            return BG_RT_NONE; /* torn */
        if (c == 0)
            return bg_rt_read32(&w->edges[first + mid].node);
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return BG_RT_NONE;
}

static int rt_walk_node(rt_walk *w, uint32_t ni, size_t pos, int depth);

/* Tries target (a node, or for a tail a terminal) with the capture
 * [off, off+len) pushed meanwhile. */
static int rt_walk_capture(rt_walk *w, uint32_t target, size_t next, int depth, size_t off,
                           size_t len, int tail)
{
    int r;

    if (target == BG_RT_NONE)
        return 0;
    if (w->np == BG_RT_MAX_PARAMS)
        return rt_torn(w); /* no published template has that many */
    w->off[w->np] = off;
    w->plen[w->np++] = len;
    r = tail ? rt_walk_term(w, target) : rt_walk_node(w, target, next, depth + 1);
    w->np--;
    return r;
}

/* Depth-first in precedence order: literal child, then parameter, then tail;
 * the first terminal serving the method wins. Each trie node sits at one
 * depth and meets one path segment, so a walk visits every node at most once. */
static int rt_walk_node(rt_walk *w, uint32_t ni, size_t pos, int depth)
{
    const bg_rt_node *n;
    size_t end, next;
    const char *slash;
    uint32_t child;

    if (ni >= w->rt->lay.cap_nodes || w->budget-- == 0)
        return rt_torn(w);
    n = &w->nodes[ni];
    if (pos == RT_END)
        return rt_walk_term(w, bg_rt_read32(&n->term));
    if (depth >= BG_RT_MAX_SEGMENTS)
        return 0; /* deeper than any template */
    slash = memchr(w->path + pos, '/', w->len - pos);
    end = slash ? (size_t)(slash - w->path) : w->len;
    next = end < w->len ? end + 1 : RT_END;
    child = rt_find_literal(w, n, pos, end - pos);
    if (w->torn || (child != BG_RT_NONE && rt_walk_node(w, child, next, depth + 1)))
        return 1;
    if (end > pos &&
        rt_walk_capture(w, bg_rt_read32(&n->param_child), next, depth, pos, end - pos, 0))
        return 1;
    return w->len > pos &&
           rt_walk_capture(w, bg_rt_read32(&n->tail_term), next, depth, pos, w->len - pos, 1);
}

/* Copies a string of the copy into dst[size]; BG_ERR when it does not fit or
 * lies outside the area (only possible in a torn read). */
static int rt_copy_str(const rt_walk *w, const bg_rt_str *ref, char *dst, size_t size)
{
    bg_rt_str s = bg_rt_read_str(ref);
    const char *p = bg_rt_str_ptr(w->rt, w->copy, s);

    if (p == NULL || s.len >= size)
        return BG_ERR;
    memcpy(dst, p, s.len);
    dst[s.len] = '\0';
    return BG_OK;
}

/* Names the captured parameters from the (private) template copy. */
static int rt_fill_params(const rt_walk *w, bg_rt_match *out)
{
    size_t pos = 0, len = strlen(out->endpoint);
    bg_rt_seg seg;
    int rc, np = 0;

    while ((rc = bg_rt_tmpl_next(out->endpoint, len, &pos, &seg, NULL)) > 0) {
        if (seg.kind == BG_RT_SEG_LITERAL)
            continue;
        if (np == w->best_np)
            return BG_ERR;
        memcpy(out->params[np].name, seg.text, seg.len);
        out->params[np].name[seg.len] = '\0';
        out->params[np].off = w->best_off[np];
        out->params[np].len = w->best_len[np];
        np++;
    }
    out->nparams = np;
    return rc == 0 && np == w->best_np ? BG_OK : BG_ERR;
}

int bg_rt_rate_read(const bg_rt *rt, const bg_rt_copy *copy, const bg_rt_rate *in,
                    bg_rate_spec *out)
{
    bg_rt_str name = bg_rt_read_str(&in->key_name);
    const char *p = bg_rt_str_ptr(rt, copy, name);

    out->count = bg_rt_read32(&in->count);
    out->key_name[0] = '\0';
    if (out->count == 0)
        return BG_OK;
    out->per_ms = bg_rt_read32(&in->per_ms);
    out->burst = bg_rt_read32(&in->burst);
    switch (bg_rt_read32(&in->key)) {
    case BG_RATE_KEY_HEADER:
        out->key = BG_RATE_KEY_HEADER;
        break;
    case BG_RATE_KEY_CLAIM:
        out->key = BG_RATE_KEY_CLAIM;
        break;
    default:
        out->key = BG_RATE_KEY_CLIENT;
    }
    if (p == NULL || name.len >= sizeof(out->key_name))
        return BG_ERR;
    memcpy(out->key_name, p, name.len);
    out->key_name[name.len] = '\0';
    return bg_rate_spec_finish(out); /* interval_us; refuses numbers a torn read made */
}

/* Copies the chosen route out. BG_ERR means the copy was inconsistent. */
static int rt_copy_route(const rt_walk *w, bg_rt_match *out)
{
    const bg_rt_route *r =
        BG_RT_ARRAY(&w->rt->lay, w->copy, const bg_rt_route, off_routes) + w->route;
    uint32_t svc = bg_rt_read32(&r->service);
    const bg_rt_svc *svcs = BG_RT_ARRAY(&w->rt->lay, w->copy, const bg_rt_svc, off_services);

    if (svc >= w->rt->lay.cap_services ||
        rt_copy_str(w, &svcs[svc].name, out->service, sizeof(out->service)) != BG_OK ||
        rt_copy_str(w, &r->tmpl, out->endpoint, sizeof(out->endpoint)) != BG_OK ||
        rt_copy_str(w, &r->claims, out->claims, sizeof(out->claims)) != BG_OK ||
        bg_rt_rate_read(w->rt, w->copy, &r->rate, &out->rate) != BG_OK)
        return BG_ERR;
    out->timeout_ms = bg_rt_read64(&r->timeout_ms);
    out->nup = (int)bg_rt_read32(&r->nup);
    out->allow_mask = w->allow_at;
    out->status = out->nup > 0 ? BG_RT_FOUND : BG_RT_NO_LIVE_INSTANCE;
    return rt_fill_params(w, out);
}

static void rt_match_reset(bg_rt_match *out, bg_rt_status status)
{
    out->status = status;
    out->service[0] = out->endpoint[0] = out->claims[0] = '\0';
    out->rate.count = 0;
    out->timeout_ms = 0;
    out->allow_mask = 0;
    out->nup = 0;
    out->nparams = 0;
    out->generation = 0;
}

/* One attempt on one copy. Returns BG_OK when the walk itself was sane; the
 * caller still validates the sequence number. */
static int rt_lookup_copy(const bg_rt *rt, const bg_rt_copy *copy, int mi, const char *path,
                          size_t len, bg_rt_match *out)
{
    rt_walk w; /* not zeroed as a whole: its capture arrays are written before read */

    rt_match_reset(out, BG_RT_NOT_FOUND);
    if (bg_rt_read32(&copy->valid) == 0)
        return BG_ERR; /* a failed build: go back to `active` */
    out->generation = *(const volatile uint64_t *)&copy->generation;
    if (bg_rt_read32(&copy->nnodes) == 0)
        return BG_OK; /* nothing published */
    w.rt = rt;
    w.copy = copy;
    w.path = path;
    w.len = len;
    w.mi = mi;
    w.allow = w.allow_at = 0;
    w.torn = w.np = w.best_np = 0;
    w.nodes = BG_RT_ARRAY(&rt->lay, copy, const bg_rt_node, off_nodes);
    w.edges = BG_RT_ARRAY(&rt->lay, copy, const bg_rt_edge, off_edges);
    w.terms = BG_RT_ARRAY(&rt->lay, copy, const bg_rt_term, off_terms);
    w.route = BG_RT_NONE;
    w.budget = rt->lay.cap_nodes + 1;
    rt_walk_node(&w, 0, len > 1 ? 1 : RT_END, 0);
    if (!w.torn && w.route == BG_RT_NONE && w.allow == 0 && len > 1 && path[len - 1] == '/') {
        /* Nothing at all matched "/orders/": try "/orders" (templates do
         * not end in a slash; a tail would have captured it above). */
        w.len = len - 1;
        rt_walk_node(&w, 0, w.len > 1 ? 1 : RT_END, 0);
    }
    if (w.torn)
        return BG_ERR;
    if (w.route != BG_RT_NONE)
        return rt_copy_route(&w, out);
    out->allow_mask = w.allow;
    out->status = w.allow ? BG_RT_METHOD_NOT_ALLOWED : BG_RT_NOT_FOUND;
    return BG_OK;
}

int bg_rt_lookup(const bg_rt *rt, const char *method, const char *path, size_t path_len,
                 bg_rt_match *out)
{
    unsigned bit = bg_rt_method_bit(method, strlen(method));
    int mi = bit ? __builtin_ctz(bit) : -1;

    if (path_len == 0 || path[0] != '/') {
        rt_match_reset(out, BG_RT_NOT_FOUND);
        return BG_ERR;
    }
    for (int attempt = 0; attempt < BG_RT_READ_RETRIES; attempt++) {
        uint64_t seq;
        const bg_rt_copy *copy = bg_rt_read_begin(rt, &seq);
        int rc;

        if (copy == NULL)
            continue;
        rc = rt_lookup_copy(rt, copy, mi, path, path_len, out);
        if (bg_rt_read_end(copy, seq) && rc == BG_OK)
            return BG_OK;
    }
    rt_match_reset(out, BG_RT_BUSY);
    return BG_OK;
}
