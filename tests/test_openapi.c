/* test_openapi.c: the aggregated OpenAPI document built from a registry fed with frames:
 * paths and methods, tags, parameters, schemas, claims as scopes, route conflicts, merged
 * components, services that go away or go down. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "busgate/control/openapi.h"
#include "busgate/core/log.h"

typedef struct ofx {
    bg_rt *rt;
    bg_registry *reg;
    json_t *doc;
} ofx;

static ofx f;

static void setup(void)
{
    bg_rt_limits lim = {.max_services = 8, .max_connections = 8, .max_endpoints = 64};
    bg_reg_opts o = {.max_services = 8,
                     .max_connections = 8,
                     .max_endpoints = 64,
                     .heartbeat_expiry_ms = 1000,
                     .connection_remove_ms = 5000};
    char err[BG_ERR_LEN] = "";

    bg_log_set_level(BG_LOG_CRIT);
    memset(&f, 0, sizeof(f));
    f.rt = bg_rt_create(&lim, err);
    cr_assert_not_null(f.rt, "%s", err);
    f.reg = bg_reg_new(&o, f.rt, err);
    cr_assert_not_null(f.reg, "%s", err);
}

static void teardown(void)
{
    json_decref(f.doc);
    bg_reg_free(f.reg);
    bg_rt_destroy(f.rt);
}

TestSuite(openapi, .init = setup, .fini = teardown);

static void frame_for(bg_frame *fr, bg_frame_type t, const char *svc, const char *inst)
{
    static unsigned long seq;

    bg_frame_init(fr, t);
    snprintf(fr->id, sizeof(fr->id), "f%lu", ++seq);
    snprintf(fr->service, sizeof(fr->service), "%s", svc);
    snprintf(fr->instance, sizeof(fr->instance), "%s", inst);
    if (t != BG_FRAME_GOODBYE)
        snprintf(fr->svc_version, sizeof(fr->svc_version), "1.0");
}

/* An ENDPOINTS_UPDATE with meta, applied at time now and published. */
static void update(const char *svc, const char *inst, const char *meta, int64_t now)
{
    char err[BG_ERR_LEN] = "";
    bg_reg_conn *conn;
    bg_frame fr;
    int created;

    frame_for(&fr, BG_FRAME_ENDPOINTS_UPDATE, svc, inst);
    fr.meta = json_loads(meta, 0, NULL);
    cr_assert_not_null(fr.meta, "bad meta in the test: %s", meta);
    cr_assert_eq(bg_endpoints_parse(fr.meta, &fr.endpoints, err), BG_OK, "%s", err);
    cr_assert_eq(bg_reg_endpoints(f.reg, &fr, now, &created, &conn, err), BG_OK, "%s", err);
    bg_frame_free(&fr);
    cr_assert_eq(bg_reg_publish(f.reg, NULL, NULL, err), BG_OK, "%s", err);
}

static void goodbye(const char *svc, const char *inst)
{
    char err[BG_ERR_LEN] = "";
    bg_frame fr;

    frame_for(&fr, BG_FRAME_GOODBYE, svc, inst);
    cr_assert_eq(bg_reg_goodbye(f.reg, &fr), 1);
    bg_frame_free(&fr);
    cr_assert_eq(bg_reg_publish(f.reg, NULL, NULL, err), BG_OK, "%s", err);
}

static json_t *build(void)
{
    bg_openapi_opts o = {.title = "test gateway"};
    char err[BG_ERR_LEN] = "", *text = NULL;
    json_error_t je;
    size_t len = 0;

    cr_assert_eq(bg_openapi_build(f.reg, &o, &text, &len, err), BG_OK, "%s", err);
    cr_assert_eq(strlen(text), len);
    json_decref(f.doc);
    f.doc = json_loads(text, 0, &je);
    cr_assert_not_null(f.doc, "not JSON: %s: %s", je.text, text);
    free(text);
    return f.doc;
}

/* doc.paths[path][method], NULL when absent. */
static json_t *op(const char *path, const char *method)
{
    return json_object_get(json_object_get(json_object_get(f.doc, "paths"), path), method);
}

static const char *str_at(json_t *o, const char *dotted)
{
    char buf[256], *save = NULL, *tok;
    json_t *v = o;

    snprintf(buf, sizeof(buf), "%s", dotted);
    for (tok = strtok_r(buf, ".", &save); tok != NULL && v != NULL;
         tok = strtok_r(NULL, ".", &save))
        v = json_is_array(v) ? json_array_get(v, (size_t)atoi(tok)) : json_object_get(v, tok);
    return json_string_value(v);
}

Test(openapi, empty_registry_gives_a_valid_skeleton)
{
    json_t *d = build();

    cr_assert_str_eq(str_at(d, "openapi"), "3.1.0");
    cr_assert_str_eq(str_at(d, "info.title"), "test gateway");
    cr_assert_not_null(str_at(d, "info.version"));
    cr_assert_eq(json_object_size(json_object_get(d, "paths")), 0);
    cr_assert_str_eq(str_at(d, "components.securitySchemes.bearerAuth.type"), "http");
    cr_assert_str_eq(str_at(d, "components.securitySchemes.bearerAuth.scheme"), "bearer");
    cr_assert_str_eq(str_at(d, "components.securitySchemes.bearerAuth.bearerFormat"), "JWT");
    cr_assert_null(json_object_get(d, "x-busgate-notes"));
}

Test(openapi, operations_tags_parameters_and_schemas)
{
    update(
        "orders", "o1",
        "{\"endpoints\":["
        "{\"method\":\"GET\",\"path\":\"/orders/{id}\",\"openapi\":{\"summary\":\"Read\"},"
        "\"response_schema\":{\"type\":\"object\"}},"
        "{\"method\":\"PUT\",\"path\":\"/orders/{id}\",\"request_schema\":{\"type\":\"object\"}},"
        "{\"method\":\"GET\",\"path\":\"/\"}],"
        "\"openapi\":{\"info\":{\"title\":\"Orders\",\"description\":\"Order store\"}}}",
        0);
    build();
    cr_assert_str_eq(str_at(op("/orders/{id}", "get"), "summary"), "Read");
    cr_assert_str_eq(str_at(op("/orders/{id}", "get"), "tags.0"), "orders");
    cr_assert_str_eq(str_at(op("/orders/{id}", "get"), "parameters.0.name"), "id");
    cr_assert_str_eq(str_at(op("/orders/{id}", "get"), "parameters.0.in"), "path");
    cr_assert(json_is_true(json_object_get(
        json_array_get(json_object_get(op("/orders/{id}", "get"), "parameters"), 0), "required")));
    cr_assert_str_eq(
        str_at(op("/orders/{id}", "get"), "responses.200.content.application/json.schema.type"),
        "object");
    cr_assert_not_null(json_object_get(op("/orders/{id}", "put"), "requestBody"));
    cr_assert_not_null(
        json_object_get(json_object_get(op("/orders/{id}", "put"), "responses"), "default"));
    cr_assert_not_null(op("/", "get"));
    cr_assert_null(json_object_get(op("/", "get"), "parameters"));
    cr_assert_null(json_object_get(op("/orders/{id}", "get"), "security"), "no claims: public");
    cr_assert_str_eq(str_at(f.doc, "tags.0.name"), "orders");
    cr_assert_str_eq(str_at(f.doc, "tags.0.description"), "Order store");
}

Test(openapi, claims_become_bearer_scopes_unioned_over_instances)
{
    update("files", "f1",
           "{\"endpoints\":[{\"method\":\"GET\",\"path\":\"/files/{rest*}\","
           "\"claims\":[\"files:read\"]},"
           "{\"method\":\"DELETE\",\"path\":\"/files/{rest*}\",\"claims\":[\"files:write\","
           "\"tier=gold\"],\"openapi\":{\"security\":[]}}]}",
           0);
    update("files", "f2",
           "{\"endpoints\":[{\"method\":\"GET\",\"path\":\"/files/{rest*}\","
           "\"claims\":[\"files:list\"]}]}",
           0);
    build();
    cr_assert_str_eq(str_at(op("/files/{rest}", "get"), "security.0.bearerAuth.0"), "files:read");
    cr_assert_str_eq(str_at(op("/files/{rest}", "get"), "security.0.bearerAuth.1"), "files:list");
    cr_assert_str_eq(str_at(op("/files/{rest}", "delete"), "security.0.bearerAuth.0"),
                     "files:write");
    cr_assert_str_eq(str_at(op("/files/{rest}", "delete"), "security.0.bearerAuth.1"), "tier=gold");
    /* the tail parameter: OpenAPI form, a description and the original template */
    cr_assert_str_eq(str_at(op("/files/{rest}", "get"), "parameters.0.name"), "rest");
    cr_assert_not_null(str_at(op("/files/{rest}", "get"), "parameters.0.description"));
    cr_assert_str_eq(str_at(op("/files/{rest}", "get"), "x-busgate-template"), "/files/{rest*}");
}

Test(openapi, route_conflicts_follow_the_table_and_names_the_first_template)
{
    update("a", "a1", "{\"endpoints\":[{\"method\":\"GET\",\"path\":\"/x/{id}\"}]}", 0);
    update("b", "b1",
           "{\"endpoints\":[{\"method\":\"GET\",\"path\":\"/x/{key}\"},"
           "{\"method\":\"POST\",\"path\":\"/x/{key}\",\"openapi\":{\"parameters\":"
           "[{\"name\":\"key\",\"in\":\"path\",\"required\":true}]}}]}",
           0);
    build();
    /* GET stays a's (registered first), POST is b's under the first path key */
    cr_assert_str_eq(str_at(op("/x/{id}", "get"), "tags.0"), "a");
    cr_assert_str_eq(str_at(op("/x/{id}", "post"), "tags.0"), "b");
    cr_assert_null(json_object_get(json_object_get(f.doc, "paths"), "/x/{key}"));
    cr_assert_str_eq(str_at(op("/x/{id}", "post"), "parameters.0.name"), "id",
                     "b's own path parameter 'key' does not fit the path key");
    cr_assert_eq(json_array_size(json_object_get(op("/x/{id}", "post"), "parameters")), 1);
    cr_assert_str_eq(str_at(op("/x/{id}", "post"), "x-busgate-template"), "/x/{key}");
}

Test(openapi, tail_and_parameter_of_one_path_key_keep_the_first_and_say_so)
{
    update("a", "a1",
           "{\"endpoints\":[{\"method\":\"GET\",\"path\":\"/f/{id}\"},"
           "{\"method\":\"GET\",\"path\":\"/f/{rest*}\"}]}",
           0);
    build();
    cr_assert_null(str_at(op("/f/{id}", "get"), "x-busgate-template"));
    cr_assert_not_null(strstr(str_at(f.doc, "x-busgate-notes.0"), "/f/{rest*}"));
}

Test(openapi, components_merged_first_definition_wins_and_operation_ids_stay_unique)
{
    update("a", "a1",
           "{\"endpoints\":[{\"method\":\"GET\",\"path\":\"/a\",\"openapi\":"
           "{\"operationId\":\"get\"}}],\"openapi\":{\"components\":{\"schemas\":{\"Item\":"
           "{\"type\":\"object\"},\"Same\":{\"type\":\"string\"}},\"securitySchemes\":"
           "{\"bearerAuth\":{\"type\":\"apiKey\",\"in\":\"header\",\"name\":\"X\"}}}}}",
           0);
    update("b", "b1",
           "{\"endpoints\":[{\"method\":\"GET\",\"path\":\"/b\",\"openapi\":"
           "{\"operationId\":\"get\"}}],\"openapi\":{\"components\":{\"schemas\":{\"Item\":"
           "{\"type\":\"array\"},\"Same\":{\"type\":\"string\"},\"Own\":{}}}}}",
           0);
    build();
    cr_assert_str_eq(str_at(f.doc, "components.schemas.Item.type"), "object");
    cr_assert_not_null(
        json_object_get(json_object_get(json_object_get(f.doc, "components"), "schemas"), "Own"));
    cr_assert_str_eq(str_at(f.doc, "components.securitySchemes.bearerAuth.type"), "http",
                     "the gateway's scheme cannot be replaced");
    cr_assert_str_eq(str_at(op("/a", "get"), "operationId"), "get");
    cr_assert_null(json_object_get(op("/b", "get"), "operationId"));
    cr_assert_eq(json_array_size(json_object_get(f.doc, "x-busgate-notes")), 2,
                 "one note for Item, one for the operationId");
}

Test(openapi, a_service_that_leaves_or_goes_down_disappears)
{
    update("a", "a1",
           "{\"endpoints\":[{\"method\":\"GET\",\"path\":\"/a\"}],\"openapi\":{\"components\":"
           "{\"schemas\":{\"A\":{}}}}}",
           0);
    update("b", "b1", "{\"endpoints\":[{\"method\":\"GET\",\"path\":\"/b\"}]}", 0);
    build();
    cr_assert_not_null(op("/a", "get"));
    goodbye("a", "a1");
    build();
    cr_assert_null(json_object_get(json_object_get(f.doc, "paths"), "/a"));
    cr_assert_null(json_object_get(json_object_get(f.doc, "components"), "schemas"));
    cr_assert_eq(json_array_size(json_object_get(f.doc, "tags")), 1);
    cr_assert_str_eq(str_at(f.doc, "tags.0.name"), "b");
    /* b silent past heartbeat_expiry: down, so not live */
    cr_assert_gt(bg_reg_expire(f.reg, 2000, NULL, NULL), 0);
    build();
    cr_assert_eq(json_object_size(json_object_get(f.doc, "paths")), 0);
    cr_assert_eq(json_array_size(json_object_get(f.doc, "tags")), 0);
}

Test(openapi, the_registry_is_not_changed_by_a_build)
{
    const char *meta = "{\"endpoints\":[{\"method\":\"GET\",\"path\":\"/a/{id}\",\"openapi\":"
                       "{\"summary\":\"s\",\"security\":[{\"x\":[]}]}}]}";
    char *before, *after;

    update("a", "a1", meta, 0);
    before = json_dumps(bg_reg_at(f.reg, 0)->endpoints[0].openapi, JSON_SORT_KEYS);
    build();
    build();
    after = json_dumps(bg_reg_at(f.reg, 0)->endpoints[0].openapi, JSON_SORT_KEYS);
    cr_assert_str_eq(before, after, "the build works on copies");
    cr_assert_null(json_object_get(op("/a/{id}", "get"), "security"));
    free(before);
    free(after);
}

Test(openapi, a_kept_operation_follows_its_path_key_and_its_peers)
{
    update("a", "a1", "{\"endpoints\":[{\"method\":\"GET\",\"path\":\"/x/{id}\"}]}", 0);
    update("b", "b1",
           "{\"endpoints\":[{\"method\":\"POST\",\"path\":\"/x/{key}\",\"claims\":[\"w\"],"
           "\"openapi\":{\"operationId\":\"make\"}}]}",
           0);
    build();
    cr_assert_str_eq(str_at(op("/x/{id}", "post"), "parameters.0.name"), "id");
    cr_assert_str_eq(str_at(op("/x/{id}", "post"), "operationId"), "make");
    cr_assert_str_eq(str_at(op("/x/{id}", "post"), "security.0.bearerAuth.0"), "w");
    /* a leaves: b's template names the path now, its kept text is rendered again */
    goodbye("a", "a1");
    build();
    cr_assert_null(json_object_get(json_object_get(f.doc, "paths"), "/x/{id}"));
    cr_assert_str_eq(str_at(op("/x/{key}", "post"), "parameters.0.name"), "key");
    cr_assert_null(str_at(op("/x/{key}", "post"), "x-busgate-template"));
    cr_assert_str_eq(str_at(op("/x/{key}", "post"), "operationId"), "make");
    /* a second instance adds a claim: the kept text gets the union */
    update("b", "b2",
           "{\"endpoints\":[{\"method\":\"POST\",\"path\":\"/x/{key}\",\"claims\":[\"v\"]}]}", 0);
    build();
    cr_assert_str_eq(str_at(op("/x/{key}", "post"), "security.0.bearerAuth.0"), "w");
    cr_assert_str_eq(str_at(op("/x/{key}", "post"), "security.0.bearerAuth.1"), "v");
}

Test(openapi, claims_and_operation_ids_are_escaped_as_json)
{
    update("q", "q1",
           "{\"endpoints\":[{\"method\":\"GET\",\"path\":\"/q\",\"claims\":[\"a\\\"b\\\\c\","
           "\"x\\u0001y\",\"caf\\u00e9\"],\"openapi\":{\"operationId\":\"get \\\"q\\\"\"}}]}",
           0);
    build();
    cr_assert_str_eq(str_at(op("/q", "get"), "security.0.bearerAuth.0"), "a\"b\\c");
    cr_assert_str_eq(str_at(op("/q", "get"), "security.0.bearerAuth.1"), "x\001y");
    cr_assert_str_eq(str_at(op("/q", "get"), "security.0.bearerAuth.2"), "caf\xc3\xa9");
    cr_assert_str_eq(str_at(op("/q", "get"), "operationId"), "get \"q\"");
}

Test(openapi, a_route_at_the_documents_own_path_is_left_out)
{
    bg_openapi_opts o = {.title = "t", .path = "/openapi.json"};
    char err[BG_ERR_LEN] = "", *text = NULL;
    size_t len = 0;

    update("a", "a1",
           "{\"endpoints\":[{\"method\":\"GET\",\"path\":\"/openapi.json\"},"
           "{\"method\":\"GET\",\"path\":\"/{file}\"}]}",
           0);
    cr_assert_eq(bg_openapi_build(f.reg, &o, &text, &len, err), BG_OK, "%s", err);
    f.doc = json_loads(text, 0, NULL);
    free(text);
    cr_assert_null(op("/openapi.json", "get"));
    cr_assert_not_null(op("/{file}", "get"), "a parameter may still match other paths");
    cr_assert_not_null(strstr(str_at(f.doc, "x-busgate-notes.0"), "not reachable"));
}

Test(openapi, odd_fragments_still_give_a_well_formed_document)
{
    update("w", "w1",
           "{\"endpoints\":[{\"method\":\"GET\",\"path\":\"/w/{id}\",\"request_schema\":true,"
           "\"response_schema\":false,\"openapi\":{\"parameters\":{\"not\":\"an array\"},"
           "\"responses\":\"none\",\"tags\":7,\"operationId\":5}},"
           "{\"method\":\"OPTIONS\",\"path\":\"/w/{id}\",\"openapi\":{\"parameters\":[1,"
           "{\"in\":\"path\"},{\"name\":\"q\",\"in\":\"query\"}]}}],"
           "\"openapi\":{\"info\":\"x\",\"components\":{\"schemas\":3,\"examples\":{\"E\":{}}},"
           "\"paths\":{\"/evil\":{}}}}",
           0);
    build();
    cr_assert_str_eq(str_at(op("/w/{id}", "get"), "tags.0"), "w");
    cr_assert_str_eq(str_at(op("/w/{id}", "get"), "parameters.0.name"), "id");
    cr_assert(json_is_true(json_object_get(
        json_object_get(
            json_object_get(json_object_get(op("/w/{id}", "get"), "requestBody"), "content"),
            "application/json"),
        "schema")));
    cr_assert_not_null(json_object_get(json_object_get(op("/w/{id}", "get"), "responses"), "200"));
    cr_assert_null(json_object_get(op("/w/{id}", "get"), "operationId"), "not a string");
    cr_assert_eq(json_array_size(json_object_get(op("/w/{id}", "options"), "parameters")), 2,
                 "the query parameter and id; 1 and the nameless path parameter are dropped");
    cr_assert_null(json_object_get(json_object_get(f.doc, "paths"), "/evil"));
    cr_assert_not_null(
        json_object_get(json_object_get(json_object_get(f.doc, "components"), "examples"), "E"));
}
