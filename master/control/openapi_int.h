/* openapi_int.h: state of one aggregated OpenAPI build, shared by the openapi*.c files. */
#ifndef BUSGATE_OPENAPI_INT_H
#define BUSGATE_OPENAPI_INT_H

#include <jansson.h>

#include "busgate/control/openapi.h"

/* Everything is a jansson value so that a build is one tree freed at once. */
typedef struct bg_oa_build {
    json_t *doc;      /* the document */
    json_t *paths;    /* doc.paths */
    json_t *routes;   /* "METHOD routing-shape" -> service that keeps the route */
    json_t *keys;     /* OpenAPI shape ("/a/{}") -> the path key used for it */
    json_t *ops;      /* "key METHOD" -> {"service", "up", "claims": [...]} (bookkeeping) */
    json_t *services; /* service -> operations it has in the document (registration order) */
    json_t *notes;    /* doc["x-busgate-notes"]: what was left out, and why */
} bg_oa_build;

/* openapi_ops.c: adds one declared endpoint of connection c (registration order). */
int bg_oa_add_endpoint(bg_oa_build *b, const bg_reg_conn *c, const bg_reg_endpoint *e);
/* After every endpoint: drops operations with no live connection, sets security from
 * the claims, keeps operationIds unique, counts operations per service. */
int bg_oa_finish_ops(bg_oa_build *b);

/* openapi_merge.c: the service-level fragments: tags and components. */
int bg_oa_merge_services(bg_oa_build *b, const bg_registry *r);

/* Appends a note ("GET /x of service 'b': ...") to doc["x-busgate-notes"]. */
void bg_oa_note(bg_oa_build *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
