/* test_gateway_openapi.c: end-to-end GET /openapi.json with valkey-server, busgated and the
 * example services: both demo services listed with tags, a service that says GOODBYE
 * disappears, claims as security scopes, admin access, and a real OpenAPI validator where one
 * is installed (skipped with the reason otherwise). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "busgate/bus/bus.h"
#include "gw_fixture.h"

#define BEARER "Authorization: Bearer " BGT_FIX_TOKEN "\r\n"
#define WAIT_MS 15000

static bgt_fix fix;
static pid_t orders;
static bg_bus *bus; /* the test's own connection, for frames it writes itself */

static void teardown(void)
{
    bg_bus_free(bus);
    bus = NULL;
    if (orders > 0)
        bgt_stop_pid(orders, 5000);
    orders = 0;
    bgt_fix_stop(&fix);
}

static void setup(void)
{
    cr_assert_eq(bgt_fix_start(&fix, NULL, 1), 0, "fixture did not start");
}

TestSuite(gateway_openapi, .init = setup, .fini = teardown, .timeout = 90);

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

/* GET path (headers may be NULL); returns the status, the body parsed into *doc when it is
 * JSON (else NULL). */
static int fetch(const char *path, const char *headers, json_t **doc, char *ctype, size_t clen)
{
    char req[1024];
    bgt_resp r;
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n", path,
                     headers ? headers : "");
    int st = bgt_fix_request(&fix, req, (size_t)n, &r, 5000);

    *doc = NULL;
    if (st < 0)
        return st;
    if (ctype != NULL && bgt_resp_header(&r, "Content-Type", ctype, clen) != 0)
        ctype[0] = '\0';
    *doc = json_loadb(r.body, r.body_len, 0, NULL);
    bgt_resp_free(&r);
    return st;
}

static json_t *op(json_t *doc, const char *path, const char *method)
{
    return json_object_get(json_object_get(json_object_get(doc, "paths"), path), method);
}

static int has_path(json_t *doc, const char *path)
{
    return json_object_get(json_object_get(doc, "paths"), path) != NULL;
}

static int has_tag(json_t *doc, const char *name)
{
    json_t *t;
    size_t i;

    json_array_foreach(json_object_get(doc, "tags"), i, t)
    {
        if (strcmp(json_string_value(json_object_get(t, "name")), name) == 0)
            return 1;
    }
    return 0;
}

static const char *first_tag(json_t *o)
{
    return json_string_value(json_array_get(json_object_get(o, "tags"), 0));
}

/* Polls /openapi.json until want(doc) holds (bounded); returns that document (caller frees)
 * or NULL. Before each poll, tick (may be NULL) runs: e.g. a heartbeat. */
static json_t *wait_doc(int (*want)(json_t *), void (*tick)(void))
{
    long long until = bgt_now_ms() + WAIT_MS;
    json_t *doc = NULL;

    while (bgt_now_ms() < until) {
        if (tick != NULL)
            tick();
        if (fetch("/openapi.json", NULL, &doc, NULL, 0) == 200 && doc != NULL && want(doc))
            return doc;
        json_decref(doc);
        sleep_ms(50);
    }
    return NULL;
}

static int both_services(json_t *d)
{
    return has_path(d, "/orders/{id}") && has_path(d, "/echo");
}

static int orders_gone(json_t *d)
{
    return !has_path(d, "/orders/{id}") && !has_path(d, "/orders");
}

static void start_orders(void)
{
    char log[400];

    snprintf(log, sizeof(log), "%s/orders.log", fix.g.dir);
    orders =
        bgt_spawn_built("orders-service", (const char *[]){"-c", fix.g.ini, "-n", "o1", NULL}, log);
    cr_assert_gt(orders, 0, "orders-service did not start");
    cr_assert_eq(bgt_wait_file(log, "registered as orders/o1", WAIT_MS), 0,
                 "orders-service did not register");
}

Test(gateway_openapi, lists_both_demo_services_with_methods_and_tags)
{
    char ctype[128] = "";
    json_t *doc;

    start_orders();
    doc = wait_doc(both_services, NULL);
    cr_assert_not_null(doc, "/openapi.json never listed /orders/{id} and /echo");
    cr_assert_eq(strncmp(json_string_value(json_object_get(doc, "openapi")), "3.1.", 4), 0);
    cr_assert_str_eq(first_tag(op(doc, "/orders", "get")), "orders");
    cr_assert_str_eq(first_tag(op(doc, "/orders/{id}", "get")), "orders");
    cr_assert_str_eq(first_tag(op(doc, "/orders/{id}", "put")), "orders");
    cr_assert_str_eq(first_tag(op(doc, "/orders/{id}", "delete")), "orders");
    cr_assert_null(op(doc, "/orders/{id}", "post"));
    cr_assert_not_null(json_object_get(op(doc, "/orders/{id}", "put"), "requestBody"),
                       "the declared request schema");
    cr_assert_str_eq(first_tag(op(doc, "/echo", "get")), "echo");
    cr_assert(has_tag(doc, "orders") && has_tag(doc, "echo"));
    cr_assert_str_eq(
        json_string_value(json_object_get(
            json_array_get(json_object_get(op(doc, "/orders/{id}", "get"), "parameters"), 0),
            "name")),
        "id");
    json_decref(doc);
    cr_assert_eq(fetch("/openapi.json", NULL, &doc, ctype, sizeof(ctype)), 200);
    cr_assert(strncmp(ctype, "application/json", 16) == 0, "Content-Type %s", ctype);
    json_decref(doc);
}

Test(gateway_openapi, a_service_that_says_goodbye_disappears)
{
    json_t *doc;

    start_orders();
    doc = wait_doc(both_services, NULL);
    cr_assert_not_null(doc);
    json_decref(doc);
    cr_assert_eq(bgt_stop_pid(orders, 10000), 0, "orders-service did not stop cleanly");
    orders = 0;
    doc = wait_doc(orders_gone, NULL);
    cr_assert_not_null(doc, "the document still lists orders after its GOODBYE");
    cr_assert(has_path(doc, "/echo"), "echo stays");
    cr_assert(!has_tag(doc, "orders"));
    json_decref(doc);
}

/* ---- a service with claims, written by the test itself ---- */

static void vault_frame(const char *type, const char *extra_fmt, const char *extra)
{
    static long long seq;
    char err[BG_ERR_LEN] = "", cmd[256];
    redisReply *r;

    snprintf(cmd, sizeof(cmd),
             "XADD router:control * v 1 type %s id t%%lld service vault instance v1 "
             "version 3.0 %s",
             type, extra_fmt);
    r = bg_bus_command(bus, err, cmd, ++seq, extra);
    cr_assert(r != NULL && r->type == REDIS_REPLY_STRING, "XADD %s: %s", type, err);
    freeReplyObject(r);
}

/* The heartbeat expiry of the fixture is 1 s: keep the instance up while polling. */
static void vault_heartbeat(void)
{
    vault_frame("HEARTBEAT", "interval_ms %s", "200");
}

static int vault_listed(json_t *d)
{
    return op(d, "/vault/{key}", "get") != NULL && op(d, "/vault/{key}", "put") != NULL;
}

static void vault_register(void)
{
    char err[BG_ERR_LEN] = "";
    bg_bus_opts o;

    bg_bus_opts_init(&o);
    cr_assert_eq(bg_bus_opts_from_url(&o, fix.v.url, err), BG_OK, "%s", err);
    bus = bg_bus_connect(&o, err);
    cr_assert_not_null(bus, "%s", err);
    vault_frame("ENDPOINTS_UPDATE", "meta %s",
                "{\"endpoints\":["
                "{\"method\":\"GET\",\"path\":\"/vault/{key}\",\"claims\":[\"vault:read\"]},"
                "{\"method\":\"PUT\",\"path\":\"/vault/{key}\",\"claims\":[\"vault:write\","
                "\"tier=gold\"],\"request_schema\":{\"$ref\":\"#/components/schemas/Secret\"}},"
                "{\"method\":\"GET\",\"path\":\"/vault/files/{rest*}\"}],"
                "\"openapi\":{\"info\":{\"title\":\"Vault\"},\"components\":{\"schemas\":"
                "{\"Secret\":{\"type\":\"object\"}}}}}");
}

static const char *scope(json_t *o, size_t i)
{
    json_t *sec = json_array_get(json_object_get(o, "security"), 0);

    return json_string_value(json_array_get(json_object_get(sec, "bearerAuth"), i));
}

Test(gateway_openapi, claims_appear_as_security_scopes)
{
    json_t *doc;

    vault_register();
    doc = wait_doc(vault_listed, vault_heartbeat);
    cr_assert_not_null(doc, "the vault service never appeared");
    cr_assert_str_eq(scope(op(doc, "/vault/{key}", "get"), 0), "vault:read");
    cr_assert_str_eq(scope(op(doc, "/vault/{key}", "put"), 0), "vault:write");
    cr_assert_str_eq(scope(op(doc, "/vault/{key}", "put"), 1), "tier=gold");
    cr_assert_null(json_object_get(op(doc, "/vault/files/{rest}", "get"), "security"),
                   "no claims: no security");
    cr_assert_str_eq(first_tag(op(doc, "/vault/{key}", "get")), "vault");
    cr_assert_str_eq(
        json_string_value(json_object_get(
            json_object_get(json_object_get(json_object_get(doc, "components"), "securitySchemes"),
                            "bearerAuth"),
            "scheme")),
        "bearer");
    cr_assert_not_null(
        json_object_get(json_object_get(json_object_get(doc, "components"), "schemas"), "Secret"));
    json_decref(doc);
}

/* ---- validation with a real OpenAPI validator, where one is installed ---- */

/* Runs sh -c cmd quietly; its exit code, or -1. */
static int run(const char *cmd)
{
    int st = system(cmd);

    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The command that validates FILE (%s), or NULL with the reason. */
static const char *validator(char *why, size_t len)
{
    if (run("python3 -c 'import openapi_spec_validator' >/dev/null 2>&1") == 0)
        return "python3 -m openapi_spec_validator %s";
    if (run("node -e \"require.resolve('@apidevtools/swagger-parser')\" >/dev/null 2>&1") == 0)
        return "node -e \"require('@apidevtools/swagger-parser').validate(process.argv[1])"
               ".then(() => console.log('valid'), e => { console.error(e.message); "
               "process.exit(1); })\" %s";
    snprintf(why, len,
             "no OpenAPI validator installed (python3 module openapi_spec_validator, or node "
             "module @apidevtools/swagger-parser): skipped");
    return NULL;
}

static int all_three(json_t *d)
{
    return both_services(d) && vault_listed(d);
}

Test(gateway_openapi, the_document_validates_as_openapi_3_1)
{
    char why[256], file[400], cmd[1024];
    const char *v = validator(why, sizeof(why));
    json_t *doc;

    if (v == NULL) {
        printf("gateway_openapi: %s\n", why);
        cr_skip_test("%s", why);
    }
    start_orders();
    vault_register();
    doc = wait_doc(all_three, vault_heartbeat);
    cr_assert_not_null(doc, "the document never listed orders, echo and vault");
    snprintf(file, sizeof(file), "%s/openapi.json", fix.g.dir);
    cr_assert_eq(json_dump_file(doc, file, JSON_INDENT(1)), 0);
    json_decref(doc);
    snprintf(cmd, sizeof(cmd), v, file);
    cr_assert_eq(run(cmd), 0, "the validator refused the document: %s", cmd);
}

/* ---- configuration: another path, admin access ---- */

TestSuite(gateway_openapi_admin, .fini = teardown, .timeout = 90);

Test(gateway_openapi_admin, access_admin_wants_the_admin_token_at_the_configured_path)
{
    json_t *doc;

    cr_assert_eq(
        bgt_fix_start_ex(&fix, NULL, "[openapi]\npath = /api/spec.json\naccess = admin\n", 1), 0,
        "fixture did not start");
    cr_assert_eq(fetch("/api/spec.json", NULL, &doc, NULL, 0), 401);
    json_decref(doc);
    cr_assert_eq(
        fetch("/api/spec.json", "Authorization: Bearer wrong-token-0123456789\r\n", &doc, NULL, 0),
        403);
    json_decref(doc);
    cr_assert_eq(fetch("/api/spec.json", BEARER, &doc, NULL, 0), 200);
    cr_assert(has_path(doc, "/echo"));
    json_decref(doc);
    cr_assert_eq(fetch("/openapi.json", NULL, &doc, NULL, 0), 404,
                 "the default path is not served");
    json_decref(doc);
}

Test(gateway_openapi_admin, path_off_serves_nothing)
{
    json_t *doc;

    cr_assert_eq(bgt_fix_start_ex(&fix, NULL, "[openapi]\npath = off\n", 1), 0);
    cr_assert_eq(fetch("/openapi.json", NULL, &doc, NULL, 0), 404);
    json_decref(doc);
}

/* The ini as text with from replaced by to (the first occurrence). */
static void ini_replace(const char *from, const char *to)
{
    char text[16384], out[16384], *at;
    FILE *fp = fopen(fix.g.ini, "r");
    size_t n;

    cr_assert_not_null(fp);
    n = fread(text, 1, sizeof(text) - 1, fp);
    fclose(fp);
    text[n] = '\0';
    at = strstr(text, from);
    cr_assert_not_null(at, "'%s' not in the ini", from);
    snprintf(out, sizeof(out), "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    fp = fopen(fix.g.ini, "w");
    cr_assert_not_null(fp);
    fputs(out, fp);
    fclose(fp);
}

static int titled_second(json_t *d)
{
    const char *t = json_string_value(json_object_get(json_object_get(d, "info"), "title"));

    return t != NULL && strcmp(t, "Second API") == 0;
}

Test(gateway_openapi_admin, a_reload_takes_the_new_title)
{
    json_t *doc;

    cr_assert_eq(bgt_fix_start_ex(&fix, NULL, "[openapi]\ntitle = First API\n", 1), 0);
    cr_assert_eq(fetch("/openapi.json", NULL, &doc, NULL, 0), 200);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(doc, "info"), "title")),
                     "First API");
    json_decref(doc);
    ini_replace("title = First API", "title = Second API");
    cr_assert_eq(bgt_gw_signal(&fix.g, SIGHUP), 0);
    doc = wait_doc(titled_second, NULL);
    cr_assert_not_null(doc, "the title did not change after the reload");
    cr_assert(has_path(doc, "/echo"), "the services stay listed");
    json_decref(doc);
}

Test(gateway_openapi, head_has_no_body_and_other_methods_get_405)
{
    const char head[] = "HEAD /openapi.json HTTP/1.1\r\nHost: t\r\n\r\n";
    const char post[] = "POST /openapi.json HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n";
    char clen[32] = "", allow[64] = "";
    bgt_resp r;

    cr_assert_eq(bgt_fix_request(&fix, head, sizeof(head) - 1, &r, 5000), 200);
    cr_assert_eq(r.body_len, 0);
    cr_assert_eq(bgt_resp_header(&r, "Content-Length", clen, sizeof(clen)), 0);
    cr_assert_gt(atol(clen), 100, "HEAD announces the document's length");
    bgt_resp_free(&r);
    cr_assert_eq(bgt_fix_request(&fix, post, sizeof(post) - 1, &r, 5000), 405);
    cr_assert_eq(bgt_resp_header(&r, "Allow", allow, sizeof(allow)), 0);
    cr_assert_str_eq(allow, "GET, HEAD");
    bgt_resp_free(&r);
}
