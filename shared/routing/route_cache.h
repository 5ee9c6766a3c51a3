/* route_cache.h: the writer's private build state kept between publishes (route_*.c only). */
#ifndef BUSGATE_ROUTE_CACHE_H
#define BUSGATE_ROUTE_CACHE_H

#include "route_layout.h"

/*
 * A publish receives the whole state, but usually only one connection
 * changed. The writer therefore keeps, in private memory, every connection in
 * compiled form: its strings interned once in a dictionary (an id each), its
 * templates parsed and walked once through a private template trie (a node id
 * per distinct prefix). A publish then compares each input connection with
 * its compiled form (sequential string compares), compiles only the new or
 * changed ones, and rebuilds the copy from the compiled forms with array
 * lookups instead of hashing and parsing: see docs/routing.md, "Writer cost".
 *
 * Ids never move; what a dictionary string or a trie node means in the build
 * under way (its offset in the copy, its node there) is stamped with the
 * build's epoch, so nothing is cleared between builds. Strings and nodes of
 * connections that went away are garbage; once it outweighs what is live the
 * whole cache is dropped and the next publish compiles everything again.
 */

static inline const char *bg_rt_or_empty(const char *s)
{
    return s ? s : "";
}

/* A dictionary string. off/len/hash never change; the rest describes its use
 * in the build of `epoch` and is meaningless in any other build. */
typedef struct rt_dstr {
    uint32_t off, len, hash; /* bytes in the arena, NUL-terminated there */
    uint32_t cconn;          /* compiled connection whose id this is, or BG_RT_NONE */
    uint32_t epoch;          /* build that last placed it in a copy */
    uint32_t shm_off;        /* its offset in that copy's string area */
    uint32_t svc, conn;      /* service / connection it names in that build */
} rt_dstr;

typedef struct rt_dict {
    char *bytes;
    size_t used, cap;
    rt_dstr *ent;
    uint32_t n, ent_cap;
    uint32_t *slots; /* open addressing, power of two, entry index or BG_RT_NONE */
    uint32_t slots_cap;
} rt_dict;

/* A node of the private template trie: one distinct segment sequence. sid
 * is the literal segment's string, BG_RT_NONE for a parameter; prefix is
 * bg_rt_seg_prefix of the literal. shm is the node standing for it in the
 * build of `epoch`. */
typedef struct rt_pnode {
    uint64_t prefix;
    uint32_t parent, sid;
    uint32_t epoch, shm;
    /* Where the last build that sorted this node's literal children left
     * their order: edge_pnode[order_first ..+ order_count) of that build. */
    uint32_t order_epoch, order_first, order_count;
} rt_pnode;

typedef struct rt_ptrie {
    rt_pnode *node; /* node 0 is the root */
    uint32_t n, cap;
    uint32_t *slots; /* (parent, sid) -> node, as the dictionary's */
    uint32_t slots_cap;
} rt_ptrie;

/* One segment of a compiled template below the root: its string (BG_RT_NONE
 * for a parameter) and its trie node. A tail is not a node: cep.tail. */
typedef struct rt_cseg {
    uint32_t sid, pnode;
} rt_cseg;

typedef struct rt_cep {
    int64_t timeout_ms;
    uint32_t method;       /* bit */
    uint32_t tmpl, claims; /* string ids */
    uint32_t rate;         /* string id of the declared rate_limit text */
    uint32_t rate_key;     /* string id of its header name ("" for the client address) */
    bg_rate_spec rspec;    /* the text parsed (count 0 = none) */
    uint32_t seg_first, nseg;
    uint32_t tail; /* the template ends in "{name*}" */
} rt_cep;

/* A connection as the last compile saw it; valid = 0 after a failed compile. */
typedef struct rt_cconn {
    uint32_t id, service, instance, version; /* string ids */
    uint32_t claimed;                        /* epoch of the publish that matched it */
    uint32_t valid;
    uint32_t nep, nseg;
    uint32_t eps_cap, segs_cap;
    rt_cep *eps;
    rt_cseg *segs;
} rt_cconn;

struct bg_rt_scratch {
    uint32_t epoch; /* one per publish */
    rt_dict dict;
    rt_ptrie trie;
    rt_cconn *cc;
    uint32_t ncc, cc_cap;
    uint32_t *in_cc; /* compiled connection of each input connection */
    size_t in_cap;
    /* Decaying high-water marks of what builds used: the garbage yardstick. */
    uint32_t hw_strs, hw_nodes, hw_conns;
    /* Per build, indexed by copy node or route (sized by the capacities):
     * literal children as lists, each node's edge from its parent and its
     * private trie node. */
    uint32_t *first_child, *next_sibling, *last_conn, *route_claims, *node_pnode;
    const rt_cep **route_rate; /* per route: the declaration its rate limit comes from */
    bg_rt_edge *node_edge;
    /* The private trie node of every edge, as laid out by the last two
     * builds (edge_pnode[edges_cur] is the newer, of build edges_epoch). */
    uint32_t *edge_pnode[2];
    uint32_t edges_cur, edges_epoch;
};

/* route_dict.c: the dictionary and the template trie. BG_ERR = out of memory. */
int bg_rt_dict_intern(rt_dict *d, const char *p, size_t len, uint32_t *sid);
uint32_t bg_rt_dict_find(const rt_dict *d, const char *s); /* BG_RT_NONE when absent */
void bg_rt_dict_free(rt_dict *d);

static inline const char *bg_rt_dict_str(const rt_dict *d, uint32_t sid)
{
    return d->bytes + d->ent[sid].off;
}

int bg_rt_ptrie_reset(rt_ptrie *t); /* leaves the root alone */
/* The child of parent along literal sid (or a parameter: BG_RT_NONE), made
 * when missing; prefix is stored with a new literal child. */
int bg_rt_ptrie_child(rt_ptrie *t, uint32_t parent, uint32_t sid, uint64_t prefix, uint32_t *child);
void bg_rt_ptrie_free(rt_ptrie *t);

/* route_check.c: validates one input connection exactly as publish requires. */
int bg_rt_conn_check(const bg_rt_connection_in *c, char *err);

/* route_cache.c: checks the input and matches every connection with its
 * compiled form (s->in_cc), compiling what is new or changed. Errors and
 * their order are those of the plain check: connection count, then each
 * connection in input order, then the endpoint count. */
int bg_rt_cache_prepare(bg_rt *rt, const bg_rt_connection_in *conns, size_t n, char *err);
/* After a successful build: feeds the garbage yardstick. */
void bg_rt_cache_used(bg_rt_scratch *s, uint32_t nstrs, uint32_t nnodes, size_t nconns);

#endif
