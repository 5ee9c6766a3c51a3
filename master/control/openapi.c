/* openapi.c: builds the aggregated OpenAPI 3.1 document from the master's registry. */
#include "openapi_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OA_VERSION "3.1.0"

void bg_oa_note(bg_oa_build *b, const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    json_array_append_new(b->notes, json_string(line));
}

static json_t *oa_skeleton(const bg_openapi_opts *o)
{
    return json_pack(
        "{s:s, s:{s:s, s:s, s:s}, s:[], s:{s:{s:{s:s, s:s, s:s, s:s}}}}", "openapi", OA_VERSION,
        "info", "title", o->title, "version", BUSGATE_VERSION, "description",
        "Every route the services behind this busgate gateway declared, merged from their "
        "ENDPOINTS_UPDATE frames; regenerated when the routing table changes.",
        "tags", "components", "securitySchemes", "bearerAuth", "type", "http", "scheme", "bearer",
        "bearerFormat", "JWT", "description",
        "A bearer token verified by the gateway; an operation's scopes are the claims its "
        "service requires.");
}

static void oa_build_free(bg_oa_build *b)
{
    json_decref(b->doc);
    json_decref(b->services);
    json_decref(b->notes);
    bg_oa_map_free(&b->routes);
    bg_oa_map_free(&b->keys);
    free(b->paths);
    bg_oa_arena_free(&b->arena);
}

static int oa_build_init(bg_oa_build *b, const bg_openapi_opts *o)
{
    memset(b, 0, sizeof(*b));
    b->doc = oa_skeleton(o);
    b->services = json_object();
    b->notes = json_array();
    b->own_path = o->path != NULL ? o->path : "";
    return b->doc != NULL && b->services != NULL && b->notes != NULL ? BG_OK : BG_ERR;
}

static int oa_add_all(bg_oa_build *b, bg_registry *r)
{
    for (size_t i = 0; i < bg_reg_count(r); i++) {
        bg_reg_conn *c = bg_reg_at(r, i);
        for (size_t j = 0; j < c->nendpoints; j++)
            if (bg_oa_add_endpoint(b, c, &c->endpoints[j]) != BG_OK)
                return BG_ERR;
    }
    return BG_OK;
}

int bg_openapi_build(bg_registry *r, const bg_openapi_opts *o, char **json, size_t *len, char *err)
{
    bg_oa_build b;
    int rc = BG_ERR;

    *json = NULL;
    *len = 0;
    if (oa_build_init(&b, o) != BG_OK || oa_add_all(&b, r) != BG_OK ||
        bg_oa_finish_ops(&b) != BG_OK || bg_oa_merge_services(&b, r) != BG_OK)
        goto out;
    if (!b.arena.failed)
        rc = bg_oa_write(&b, json, len);
out:
    if (rc != BG_OK)
        bg_set_error(err, "OpenAPI document: out of memory, or [openapi] title is not UTF-8");
    oa_build_free(&b);
    return rc;
}
