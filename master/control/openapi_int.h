/* openapi_int.h: state of one aggregated OpenAPI build, shared by the openapi*.c files. */
#ifndef BUSGATE_OPENAPI_INT_H
#define BUSGATE_OPENAPI_INT_H

#include <jansson.h>

#include "busgate/control/openapi.h"

/*
 * The bookkeeping is jansson values (one tree freed at once); the operations themselves
 * are text each endpoint keeps between builds (bg_reg_endpoint.oa_text), so a build that
 * changes little renders little. An operation's text is a JSON object without its
 * operationId and security, which depend on the other services and are appended when
 * the document is written (openapi_write.c).
 */
typedef struct bg_oa_build {
    json_t *doc;        /* info, tags, components; paths are written as text */
    json_t *paths;      /* path key -> {method -> op} in first-seen order */
    json_t *routes;     /* "METHOD routing-shape" -> service that keeps the route */
    json_t *keys;       /* OpenAPI shape ("/a/{}") -> the path key used for it */
    json_t *ops;        /* "key METHOD" -> op: {"service", "rshape", "up", "claims": [...],
                         * "text": index, "opid": operationId or absent, "opid_ok": bool} */
    json_t *services;   /* service -> operations it has in the document (registration order) */
    json_t *notes;      /* doc["x-busgate-notes"]: what was left out, and why */
    const char **texts; /* operation texts (owned by the endpoints) by index */
    size_t ntexts, cap_texts;
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
