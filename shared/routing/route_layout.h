/* route_layout.h: private layout of the shared routing table, shared by the route_*.c files. */
#ifndef BUSGATE_ROUTE_LAYOUT_H
#define BUSGATE_ROUTE_LAYOUT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "busgate/routing/route_table.h"

#define BG_RT_NONE UINT32_MAX
#define BG_RT_MAGIC 0x42475254u /* "BGRT" */
#define BG_RT_LAYOUT_VERSION 2u

/* A string in the copy's string area: byte offset and length (no NUL kept). */
typedef struct bg_rt_str {
    uint32_t off, len;
} bg_rt_str;

typedef struct bg_rt_svc {
    bg_rt_str name;
    uint32_t nconns, nup;
} bg_rt_svc;

typedef struct bg_rt_conn {
    bg_rt_str id, instance, version;
    uint32_t service;
    uint32_t up;
    int64_t last_heartbeat_wall_ms;
    uint32_t ep_first, nep; /* declarations in the eps array */
} bg_rt_conn;

/* One endpoint as a connection declared it (kept for state dumps). */
typedef struct bg_rt_ep {
    uint32_t method; /* method bit */
    bg_rt_str tmpl, claims;
    bg_rt_str rate; /* the declared rate_limit text, "" = none */
    int64_t timeout_ms;
} bg_rt_ep;

/* A route's rate limit, parsed by the writer: a bg_rate_spec without its derived fields
 * (count 0 = none); the header name in the string area. */
typedef struct bg_rt_rate {
    uint32_t count, per_ms, burst, key;
    bg_rt_str key_name;
} bg_rt_rate;

/* One routed method+template of one service, merged over its connections. */
typedef struct bg_rt_route {
    uint32_t service;
    uint32_t method;
    bg_rt_str tmpl, claims;
    bg_rt_rate rate; /* the strictest its connections declare */
    int64_t timeout_ms;
    uint32_t nconns, nup;
} bg_rt_route;

/* Where templates end: a route index per method (BG_RT_NONE when absent). */
typedef struct bg_rt_term {
    uint32_t route[BG_RT_NMETHODS];
} bg_rt_term;

/* Trie node; literal children are edges[edge_first .. +edge_count), sorted by
 * their segment bytes so a lookup can binary-search them. */
typedef struct bg_rt_node {
    uint32_t edge_first, edge_count;
    uint32_t param_child; /* node for "{name}" at the next segment */
    uint32_t term;        /* template ends at this node */
    uint32_t tail_term;   /* template "{name*}" as the next (last) segment */
} bg_rt_node;

typedef struct bg_rt_edge {
    uint64_t prefix; /* bg_rt_seg_prefix(seg): most search steps end here, no string fetch */
    bg_rt_str seg;
    uint32_t node;
} bg_rt_edge;

/* Head of one of the two copies. Everything after `seq` is written under the
 * seqlock. valid = 0 marks a copy whose build failed half-way. */
typedef struct bg_rt_copy {
    _Atomic uint64_t seq;
    uint64_t generation;
    uint32_t valid;
    uint32_t nservices, nconns, neps, nroutes, nterms, nnodes, nedges;
    uint32_t strings_used;
} bg_rt_copy;

/* Capacities and array offsets inside a copy: fixed at create. Each process
 * keeps its own copy in its handle, so bounds checks never depend on bytes
 * the writer may be changing. */
typedef struct bg_rt_layout {
    uint32_t cap_services, cap_conns, cap_eps, cap_routes, cap_terms, cap_nodes, cap_edges;
    uint32_t cap_strings;
    size_t off_services, off_conns, off_eps, off_routes, off_terms, off_nodes, off_edges;
    size_t off_strings;
    size_t copy_size;
    size_t copy_off[2]; /* from the start of the mapping */
    size_t map_size;
} bg_rt_layout;

/* Start of the mapping. */
typedef struct bg_rt_shm {
    uint32_t magic, layout_version;
    _Atomic uint32_t active; /* index of the copy readers use */
    _Atomic uint64_t generation;
} bg_rt_shm;

typedef struct bg_rt_scratch bg_rt_scratch; /* writer-only build state (route_build.c) */

struct bg_rt {
    unsigned char *base;
    bg_rt_layout lay;
    int readonly;
    uint64_t next_generation;
    bg_rt_conflict_fn conflict_fn;
    void *conflict_ud;
    bg_rt_scratch *scratch;
};

/* Typed views of a copy's arrays. */
#define BG_RT_ARRAY(lay, copy, type, field) ((type *)((unsigned char *)(copy) + (lay)->field))

static inline bg_rt_copy *bg_rt_copy_at(const bg_rt *rt, int idx)
{
    return (bg_rt_copy *)(rt->base + rt->lay.copy_off[idx]);
}

/* Reads a value that the writer may be changing exactly once (as the Linux
 * kernel's READ_ONCE), so a bounds check and the use of the value see the same
 * number even if the compiler would rather re-load it. */
static inline uint32_t bg_rt_read32(const uint32_t *p)
{
    return *(const volatile uint32_t *)p;
}

static inline int64_t bg_rt_read64(const int64_t *p)
{
    return *(const volatile int64_t *)p;
}

static inline uint64_t bg_rt_readu64(const uint64_t *p)
{
    return *(const volatile uint64_t *)p;
}

/* Order of literal children: bytes, then length (shorter first). The build
 * sorts with it and the lookup binary-searches with it. */
static inline int bg_rt_seg_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;

    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen;
}

/* The first 8 bytes of a segment as a big-endian number, zero-padded. Two
 * different prefixes order two segments exactly as bg_rt_seg_cmp does (a
 * shorter segment pads with zeros, and is the smaller one when it is a prefix
 * of the other), so only equal prefixes need the bytes themselves. */
static inline uint64_t bg_rt_seg_prefix(const char *p, size_t len)
{
    uint64_t v = 0;

    for (size_t i = 0; i < 8; i++)
        v = (v << 8) | (i < len ? (unsigned char)p[i] : 0);
    return v;
}

/* Segment kinds of a path template. */
typedef enum { BG_RT_SEG_LITERAL, BG_RT_SEG_PARAM, BG_RT_SEG_TAIL } bg_rt_seg_kind;

typedef struct bg_rt_seg {
    bg_rt_seg_kind kind;
    const char *text; /* literal bytes, or the parameter name */
    size_t len;
} bg_rt_seg;

/* Template iteration (route_match.c). *pos starts at 0; returns 1 with *seg
 * filled, 0 at the end, -1 on a malformed template (reason in err). The
 * template must have been checked for the -1 case not to happen in build. */
int bg_rt_tmpl_next(const char *tmpl, size_t len, size_t *pos, bg_rt_seg *seg, char *err);

/* Builds the routing state into copy (route_build.c). Called under the
 * seqlock by bg_rt_publish. */
int bg_rt_build(bg_rt *rt, bg_rt_copy *copy, const bg_rt_connection_in *conns, size_t n, char *err);
void bg_rt_scratch_free(bg_rt_scratch *s);

/* Reader-side seqlock helpers (route_table.c). begin returns the copy to read
 * and its sequence number, or NULL when no copy is readable right now; end
 * says whether what was read in between is consistent. */
const bg_rt_copy *bg_rt_read_begin(const bg_rt *rt, uint64_t *seq);
int bg_rt_read_end(const bg_rt_copy *copy, uint64_t seq);

/* Reads a string reference from shared memory once. */
static inline bg_rt_str bg_rt_read_str(const bg_rt_str *p)
{
    bg_rt_str s = {bg_rt_read32(&p->off), bg_rt_read32(&p->len)};
    return s;
}

/* Bounds-checked string view into a copy; NULL when s lies outside the area. */
const char *bg_rt_str_ptr(const bg_rt *rt, const bg_rt_copy *copy, bg_rt_str s);

/* A route's rate limit as a spec (route_match.c), read once from copy (shared or a
 * private snapshot). BG_ERR when it cannot be one: only in a torn read. */
int bg_rt_rate_read(const bg_rt *rt, const bg_rt_copy *copy, const bg_rt_rate *in,
                    bg_rate_spec *out);

#endif
