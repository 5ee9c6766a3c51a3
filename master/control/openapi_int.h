/* openapi_int.h: state of one aggregated OpenAPI build, shared by the openapi*.c files. */
#ifndef BUSGATE_OPENAPI_INT_H
#define BUSGATE_OPENAPI_INT_H

#include <jansson.h>

#include "busgate/control/openapi.h"

/*
 * A build reads the registry, which does not change meanwhile, so the bookkeeping points
 * into it (service names, methods, claims) and everything else lives in one arena freed
 * at once. The operations themselves are text each endpoint keeps between builds
 * (bg_reg_endpoint.oa_text): a build that changes little renders little. That text is
 * a JSON object without its operationId and security, which depend on the other
 * services and are appended when the document is written (openapi_write.c).
 */

/* Bump allocator: blocks freed together. */
typedef struct bg_oa_block bg_oa_block;
typedef struct bg_oa_arena {
    bg_oa_block *head;
    int failed; /* an allocation failed: the build fails */
} bg_oa_arena;

void *bg_oa_alloc(bg_oa_arena *a, size_t n);
char *bg_oa_strdup(bg_oa_arena *a, const char *s);
void bg_oa_arena_free(bg_oa_arena *a);

/* String -> pointer, open addressing; keys copied into the arena. */
typedef struct bg_oa_map {
    struct bg_oa_slot *slots;
    size_t cap, n;
} bg_oa_map;

void *bg_oa_map_get(const bg_oa_map *m, const char *key);
/* Adds key (which must be absent); BG_ERR when out of memory. */
int bg_oa_map_put(bg_oa_map *m, bg_oa_arena *a, const char *key, void *val);
void bg_oa_map_free(bg_oa_map *m);

typedef struct bg_oa_claim {
    const char *p; /* into the endpoint's claims */
    size_t len;
} bg_oa_claim;

/* One method of one path key. */
typedef struct bg_oa_op {
    const char *service; /* the connection's */
    const char *rshape;  /* routing shape of the template (arena) */
    const char *method;  /* upper case, the endpoint's */
    const char *text;    /* the describing endpoint's operation text; NULL = none yet */
    const char *opid;    /* its operationId, NULL = none */
    int opid_ok;         /* unique in the document: written */
    int up;              /* live connections declaring it */
    bg_oa_claim *claims; /* union over the connections (arena) */
    size_t nclaims, cap_claims;
    struct bg_oa_op *next; /* next method of the same path */
} bg_oa_op;

typedef struct bg_oa_path {
    const char *key; /* the OpenAPI path key (arena) */
    bg_oa_op *first, *last;
} bg_oa_path;

typedef struct bg_oa_build {
    bg_oa_arena arena;
    json_t *doc;        /* info, tags, components; paths are written as text */
    bg_oa_path **paths; /* in first-seen order */
    size_t npaths, cap_paths;
    bg_oa_map routes;     /* "METHOD routing-shape" -> service that keeps the route */
    bg_oa_map keys;       /* OpenAPI shape ("/a/{}") -> its bg_oa_path */
    json_t *services;     /* service -> operations it has in the document */
    json_t *notes;        /* doc["x-busgate-notes"]: what was left out, and why */
    const char *own_path; /* the document's own path, "" = none */
} bg_oa_build;

/* openapi_ops.c: adds one declared endpoint of connection c (registration order). */
int bg_oa_add_endpoint(bg_oa_build *b, bg_reg_conn *c, bg_reg_endpoint *e);
/* After every endpoint: counts the listed operations per service and marks which keep
 * their operationId (unique in the document). */
int bg_oa_finish_ops(bg_oa_build *b);

/* openapi_merge.c: the service-level fragments: tags and components. */
int bg_oa_merge_services(bg_oa_build *b, const bg_registry *r);

/* openapi_write.c: the whole document as compact JSON text (malloc'd). */
int bg_oa_write(const bg_oa_build *b, char **json, size_t *len);

/* Appends a note ("GET /x of service 'b': ...") to doc["x-busgate-notes"]. */
void bg_oa_note(bg_oa_build *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
