/* openapi.h: the aggregated OpenAPI 3.1 document, built by the master from its registry. */
#ifndef BUSGATE_OPENAPI_H
#define BUSGATE_OPENAPI_H

#include <stddef.h>

#include "busgate/control/registry.h"

/*
 * One document for every live service: each routed method and path template
 * (routing conflicts resolved as the routing table does, first registration
 * wins), tagged with its service, with path parameters, the request and
 * response schemas and operation fragments the services declared, their
 * `components`, a bearerAuth scheme and per-operation security scopes for
 * endpoints with claims. Routes none of whose connections is up are left out.
 * The merge rules are in docs/protocol.md ("Aggregated OpenAPI").
 */
typedef struct bg_openapi_opts {
    const char *title; /* info.title */
    const char *path;  /* where the gateway serves the document ("" or NULL = nowhere): a
                        * service route with exactly this template is unreachable, so left out */
} bg_openapi_opts;

/* Builds the document as compact JSON (malloc'd, NUL-terminated) into *json. The registry
 * changes only in a cache: each endpoint keeps its rendered operation for the next build. */
int bg_openapi_build(bg_registry *r, const bg_openapi_opts *o, char **json, size_t *len, char *err);

#endif
