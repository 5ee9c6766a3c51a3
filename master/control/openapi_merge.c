/* openapi_merge.c: the service-level OpenAPI fragments merged into the document: a tag
 * per service (from its `info`) and the services' `components`. */
#include "openapi_int.h"

#include <string.h>

/* Tag description: the fragment's info.description, else its info.title. */
static void oa_tag_describe(json_t *tag, const json_t *fragment)
{
    json_t *info = json_object_get(fragment, "info");
    json_t *d = json_object_get(info, "description");

    if (json_object_get(tag, "description") != NULL)
        return;
    if (!json_is_string(d))
        d = json_object_get(info, "title");
    if (json_is_string(d))
        json_object_set(tag, "description", d);
}

static void oa_tag_version(json_t *tag, const char *version)
{
    json_t *vs = json_object_get(tag, "x-busgate-versions"), *v;
    size_t i;

    json_array_foreach(vs, i, v)
    {
        if (strcmp(json_string_value(v), version) == 0)
            return;
    }
    json_array_append_new(vs, json_string(version));
}

static json_t *oa_tag(json_t *tags, json_t *byname, const char *service)
{
    json_t *tag = json_object_get(byname, service);

    if (tag != NULL)
        return tag;
    tag = json_pack("{s:s, s:[]}", "name", service, "x-busgate-versions");
    json_array_append_new(tags, tag);
    json_object_set(byname, service, tag);
    return tag;
}

/* components.<kind>.<name>: the first service to declare a name keeps it; the same
 * definition again is fine, a different one is left out with a note. */
static void oa_component(bg_oa_build *b, const char *service, const char *kind, const char *name,
                         json_t *value)
{
    json_t *comps = json_object_get(b->doc, "components"), *dst = json_object_get(comps, kind);
    json_t *old;

    if (dst == NULL) {
        dst = json_object();
        json_object_set_new(comps, kind, dst);
    }
    old = json_object_get(dst, name);
    if (old == NULL) {
        json_object_set_new(dst, name, json_deep_copy(value));
        return;
    }
    if (json_equal(old, value))
        return;
    bg_oa_note(b,
               "components/%s/%s of service '%s' left out: another service declared it "
               "differently first",
               kind, name, service);
}

static void oa_components(bg_oa_build *b, const bg_reg_conn *c)
{
    json_t *src = json_object_get(c->openapi, "components"), *members, *value;
    const char *kind, *name;

    json_object_foreach(src, kind, members)
    {
        if (!json_is_object(members))
            continue;
        json_object_foreach(members, name, value)
        {
            /* the gateway's own scheme: it is what the gateway checks */
            if (strcmp(kind, "securitySchemes") == 0 && strcmp(name, "bearerAuth") == 0)
                continue;
            oa_component(b, c->service, kind, name, value);
        }
    }
}

int bg_oa_merge_services(bg_oa_build *b, const bg_registry *r)
{
    json_t *tags = json_object_get(b->doc, "tags"), *byname = json_object(), *tag;

    if (byname == NULL)
        return BG_ERR;
    /* Registration order, live connections of services that have operations only:
     * a service that went away leaves no trace. */
    for (size_t i = 0; i < bg_reg_count(r); i++) {
        const bg_reg_conn *c = bg_reg_at(r, i);
        if (!c->up || json_object_get(b->services, c->service) == NULL)
            continue;
        tag = oa_tag(tags, byname, c->service);
        oa_tag_version(tag, c->version);
        if (json_is_object(c->openapi)) {
            oa_tag_describe(tag, c->openapi);
            oa_components(b, c);
        }
    }
    json_decref(byname);
    return BG_OK;
}
