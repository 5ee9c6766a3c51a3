/* test_route_table.c: the shared routing table: templates, precedence, statuses, capacity, state
 * dumps, and torn-read freedom with one writer and four forked readers. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "busgate/common.h"
#include "busgate/routing/route_table.h"

static const bg_rt_limits small_limits = {
    .max_services = 16, .max_connections = 32, .max_endpoints = 256};

/* ---- Helpers to describe a state in a few lines ---- */

#define EP(m, t)                                                                                   \
    {                                                                                              \
        .method = (m), .path_template = (t), .timeout_ms = 0, .claims = ""                         \
    }

static bg_rt_connection_in conn(const char *id, const char *svc, int up,
                                const bg_rt_endpoint_in *eps, size_t n)
{
    return (bg_rt_connection_in){.connection_id = id,
                                 .service = svc,
                                 .instance = id,
                                 .version = "1.0",
                                 .up = up,
                                 .last_heartbeat_wall_ms = 1000,
                                 .endpoints = eps,
                                 .nendpoints = n};
}

static bg_rt *table_with(const bg_rt_connection_in *conns, size_t n)
{
    char err[BG_ERR_LEN] = "";
    bg_rt *rt = bg_rt_create(&small_limits, err);

    cr_assert_not_null(rt, "create: %s", err);
    cr_assert_eq(bg_rt_publish(rt, conns, n, err), BG_OK, "publish: %s", err);
    return rt;
}

static bg_rt_match look(const bg_rt *rt, const char *method, const char *path)
{
    bg_rt_match m;

    cr_assert_eq(bg_rt_lookup(rt, method, path, strlen(path), &m), BG_OK, "lookup %s", path);
    return m;
}

static void expect_route(const bg_rt *rt, const char *method, const char *path, const char *svc,
                         const char *tmpl)
{
    bg_rt_match m = look(rt, method, path);

    cr_assert_eq(m.status, BG_RT_FOUND, "%s %s: status %d", method, path, m.status);
    cr_assert_str_eq(m.service, svc, "%s %s", method, path);
    cr_assert_str_eq(m.endpoint, tmpl, "%s %s", method, path);
}

static void expect_param(const bg_rt_match *m, const char *path, int i, const char *name,
                         const char *value)
{
    cr_assert_lt(i, m->nparams, "param %d of %s missing", i, path);
    cr_assert_str_eq(m->params[i].name, name);
    cr_assert_eq(m->params[i].len, strlen(value), "%s: %s has length %zu", path, name,
                 m->params[i].len);
    cr_assert_eq(memcmp(path + m->params[i].off, value, m->params[i].len), 0, "%s: %s", path, name);
}

/* ---- Templates ---- */

Test(route_table, template_check)
{
    const char *good[] = {"/", "/a", "/a/{x}", "/a/{x*}", "/a/{x}/b/{y}", "/v1/{id_2}/x"};
    const char *bad[] = {"",           "a/b",     "/a/{",     "/a/{}",   "/a/{x*}/b", "/a//b",
                         "/a/{x}/{x}", "/a/b{c}", "/a/{x-y}", "/a/{x}}", "/a/b c",    "/a/?q"};
    char err[BG_ERR_LEN];

    for (size_t i = 0; i < BG_ARRAY_LEN(good); i++)
        cr_expect_eq(bg_rt_template_check(good[i], err), BG_OK, "%s: %s", good[i], err);
    for (size_t i = 0; i < BG_ARRAY_LEN(bad); i++) {
        err[0] = '\0';
        cr_expect_eq(bg_rt_template_check(bad[i], err), BG_ERR, "'%s' accepted", bad[i]);
        cr_expect_neq(err[0], '\0', "'%s' rejected without a reason", bad[i]);
    }
}

Test(route_table, template_limits)
{
    char t[BG_RT_TEMPLATE_MAX + 64], err[BG_ERR_LEN];
    size_t len = 0;

    for (int i = 0; i < BG_RT_MAX_PARAMS + 1; i++)
        len += (size_t)snprintf(t + len, sizeof(t) - len, "/{p%d}", i);
    cr_expect_eq(bg_rt_template_check(t, err), BG_ERR);
    cr_expect(strstr(err, "parameters") != NULL, "%s", err);
    len = 0;
    for (int i = 0; i < BG_RT_MAX_SEGMENTS + 1; i++)
        len += (size_t)snprintf(t + len, sizeof(t) - len, "/s");
    cr_expect_eq(bg_rt_template_check(t, err), BG_ERR);
    cr_expect(strstr(err, "segments") != NULL, "%s", err);
    memset(t, 'a', sizeof(t) - 1);
    t[0] = '/';
    t[sizeof(t) - 1] = '\0';
    cr_expect_eq(bg_rt_template_check(t, err), BG_ERR);
}

Test(route_table, methods_and_allow_string)
{
    char buf[64];

    cr_expect_eq(bg_rt_method_bit("GET", 3), BG_RT_M_GET);
    cr_expect_eq(bg_rt_method_bit("DELETE", 6), BG_RT_M_DELETE);
    cr_expect_eq(bg_rt_method_bit("get", 3), 0u, "methods are case-sensitive");
    cr_expect_eq(bg_rt_method_bit("BREW", 4), 0u);
    cr_expect_str_eq(bg_rt_method_name(BG_RT_M_PATCH), "PATCH");
    cr_expect_null(bg_rt_method_name(BG_RT_M_GET | BG_RT_M_PUT));
    cr_assert_eq(bg_rt_allow_string(BG_RT_M_GET | BG_RT_M_HEAD | BG_RT_M_PUT, buf, sizeof(buf)),
                 BG_OK);
    cr_expect_str_eq(buf, "GET, HEAD, PUT");
    cr_expect_eq(bg_rt_allow_string(BG_RT_M_GET | BG_RT_M_OPTIONS, buf, 6), BG_ERR);
}

/* ---- Precedence ---- */

Test(route_table, literal_beats_param_beats_tail)
{
    bg_rt_endpoint_in eps[] = {EP("GET", "/a/b"), EP("GET", "/a/{x}"), EP("GET", "/a/{rest*}")};
    bg_rt_connection_in c = conn("c1", "svc", 1, eps, 3);
    bg_rt *rt = table_with(&c, 1);
    bg_rt_match m;

    expect_route(rt, "GET", "/a/b", "svc", "/a/b");
    cr_expect_eq(look(rt, "GET", "/a/b").nparams, 0);
    expect_route(rt, "GET", "/a/z", "svc", "/a/{x}");
    m = look(rt, "GET", "/a/z");
    expect_param(&m, "/a/z", 0, "x", "z");
    expect_route(rt, "GET", "/a/z/w/v", "svc", "/a/{rest*}");
    m = look(rt, "GET", "/a/z/w/v");
    expect_param(&m, "/a/z/w/v", 0, "rest", "z/w/v");
    /* "/a/b/c": the literal "b" leads nowhere, the parameter neither: the tail. */
    expect_route(rt, "GET", "/a/b/c", "svc", "/a/{rest*}");
    cr_expect_eq(look(rt, "GET", "/b").status, BG_RT_NOT_FOUND);
    cr_expect_eq(look(rt, "GET", "/a").status, BG_RT_NOT_FOUND, "a tail needs one byte");
    bg_rt_destroy(rt);
}

Test(route_table, backtracking)
{
    bg_rt_endpoint_in e1[] = {EP("GET", "/a/{x}/c"), EP("GET", "/a/{x}/c/e")};
    bg_rt_endpoint_in e2[] = {EP("GET", "/a/b/{y}"), EP("GET", "/a/b/c/d")};
    bg_rt_connection_in cs[] = {conn("c1", "one", 1, e1, 2), conn("c2", "two", 1, e2, 2)};
    bg_rt *rt = table_with(cs, 2);
    bg_rt_match m;

    /* Both templates match: the one literal earlier in the path wins. */
    expect_route(rt, "GET", "/a/b/c", "two", "/a/b/{y}");
    expect_route(rt, "GET", "/a/q/c", "one", "/a/{x}/c");
    expect_route(rt, "GET", "/a/b/q", "two", "/a/b/{y}");
    expect_route(rt, "GET", "/a/b/c/d", "two", "/a/b/c/d");
    /* Literal branch b/c exists but has no "e": back up to {x}. */
    expect_route(rt, "GET", "/a/b/c/e", "one", "/a/{x}/c/e");
    m = look(rt, "GET", "/a/b/c/e");
    expect_param(&m, "/a/b/c/e", 0, "x", "b");
    cr_expect_eq(look(rt, "GET", "/a/q/d").status, BG_RT_NOT_FOUND);
    bg_rt_destroy(rt);
}

Test(route_table, method_steers_backtracking)
{
    bg_rt_endpoint_in e1[] = {EP("GET", "/a/{x}/c")};
    bg_rt_endpoint_in e2[] = {EP("POST", "/a/b/{y}")};
    bg_rt_connection_in cs[] = {conn("c1", "one", 1, e1, 1), conn("c2", "two", 1, e2, 1)};
    bg_rt *rt = table_with(cs, 2);
    bg_rt_match m;

    expect_route(rt, "POST", "/a/b/c", "two", "/a/b/{y}");
    expect_route(rt, "GET", "/a/b/c", "one", "/a/{x}/c");
    m = look(rt, "DELETE", "/a/b/c");
    cr_expect_eq(m.status, BG_RT_METHOD_NOT_ALLOWED);
    cr_expect_eq(m.allow_mask, BG_RT_M_GET | BG_RT_M_HEAD | BG_RT_M_POST,
                 "allow is the union over every matching template: %#x", m.allow_mask);
    bg_rt_destroy(rt);
}

Test(route_table, root_and_trailing_slash)
{
    bg_rt_endpoint_in eps[] = {EP("GET", "/"), EP("GET", "/orders"), EP("GET", "/orders/{id}"),
                               EP("GET", "/files/{p*}")};
    bg_rt_connection_in c = conn("c1", "svc", 1, eps, 4);
    bg_rt *rt = table_with(&c, 1);
    bg_rt_match m;

    expect_route(rt, "GET", "/", "svc", "/");
    cr_expect_eq(look(rt, "GET", "/").nparams, 0);
    expect_route(rt, "GET", "/orders", "svc", "/orders");
    expect_route(rt, "GET", "/orders/", "svc", "/orders"); /* trailing slash ignored */
    m = look(rt, "GET", "/orders/7/");
    cr_expect_eq(m.status, BG_RT_FOUND);
    cr_expect_str_eq(m.endpoint, "/orders/{id}");
    expect_param(&m, "/orders/7/", 0, "id", "7");
    m = look(rt, "GET", "/files/a/b/"); /* a tail keeps the slash */
    cr_expect_str_eq(m.endpoint, "/files/{p*}");
    expect_param(&m, "/files/a/b/", 0, "p", "a/b/");
    cr_expect_eq(look(rt, "GET", "/files/").status, BG_RT_NOT_FOUND);
    cr_expect_eq(look(rt, "GET", "/orders/7/x").status, BG_RT_NOT_FOUND);
    cr_expect_eq(bg_rt_lookup(rt, "GET", "orders", 6, &m), BG_ERR);
    cr_expect_eq(bg_rt_lookup(rt, "GET", "", 0, &m), BG_ERR);
    bg_rt_destroy(rt);
}

Test(route_table, params_with_offsets_in_unterminated_path)
{
    bg_rt_endpoint_in eps[] = {EP("GET", "/users/{uid}/posts/{pid}")};
    bg_rt_connection_in c = conn("c1", "blog", 1, eps, 1);
    bg_rt *rt = table_with(&c, 1);
    const char buf[] = "/users/42/posts/abcXXXX"; /* only the first 19 bytes are the path */
    bg_rt_match m;

    cr_assert_eq(bg_rt_lookup(rt, "GET", buf, 19, &m), BG_OK);
    cr_assert_eq(m.status, BG_RT_FOUND);
    cr_assert_eq(m.nparams, 2);
    cr_expect_str_eq(m.params[0].name, "uid");
    cr_expect_eq(m.params[0].off, 7u);
    cr_expect_eq(m.params[0].len, 2u);
    cr_expect_str_eq(m.params[1].name, "pid");
    cr_expect_eq(m.params[1].off, 16u);
    cr_expect_eq(m.params[1].len, 3u);
    bg_rt_destroy(rt);
}

/* ---- Statuses ---- */

Test(route_table, method_not_allowed_with_allow_mask)
{
    bg_rt_endpoint_in eps[] = {EP("GET", "/orders/{id}"), EP("PUT", "/orders/{id}")};
    bg_rt_connection_in c = conn("c1", "orders", 1, eps, 2);
    bg_rt *rt = table_with(&c, 1);
    bg_rt_match m = look(rt, "POST", "/orders/1");
    char allow[64];

    cr_expect_eq(m.status, BG_RT_METHOD_NOT_ALLOWED);
    cr_expect_eq(m.allow_mask, BG_RT_M_GET | BG_RT_M_HEAD | BG_RT_M_PUT);
    cr_assert_eq(bg_rt_allow_string(m.allow_mask, allow, sizeof(allow)), BG_OK);
    cr_expect_str_eq(allow, "GET, HEAD, PUT");
    cr_expect_eq(look(rt, "BREW", "/orders/1").status, BG_RT_METHOD_NOT_ALLOWED);
    m = look(rt, "HEAD", "/orders/1"); /* HEAD is served by the GET route */
    cr_expect_eq(m.status, BG_RT_FOUND);
    cr_expect_str_eq(m.endpoint, "/orders/{id}");
    cr_expect_eq(look(rt, "POST", "/nothing").status, BG_RT_NOT_FOUND);
    bg_rt_destroy(rt);
}

Test(route_table, no_live_instance)
{
    bg_rt_endpoint_in eps[] = {EP("GET", "/orders/{id}")};
    bg_rt_connection_in cs[] = {conn("c1", "orders", 0, eps, 1), conn("c2", "orders", 0, eps, 1)};
    bg_rt *rt = table_with(cs, 2);
    char err[BG_ERR_LEN];
    bg_rt_match m = look(rt, "GET", "/orders/1");

    cr_expect_eq(m.status, BG_RT_NO_LIVE_INSTANCE);
    cr_expect_str_eq(m.service, "orders");
    cr_expect_eq(m.nup, 0);
    cs[1].up = 1;
    cr_assert_eq(bg_rt_publish(rt, cs, 2, err), BG_OK, "%s", err);
    m = look(rt, "GET", "/orders/1");
    cr_expect_eq(m.status, BG_RT_FOUND);
    cr_expect_eq(m.nup, 1);
    bg_rt_destroy(rt);
}

Test(route_table, empty_table_and_generations)
{
    char err[BG_ERR_LEN];
    bg_rt *rt = bg_rt_create(&small_limits, err);
    bg_rt_endpoint_in eps[] = {EP("GET", "/x")};
    bg_rt_connection_in c = conn("c1", "svc", 1, eps, 1);
    bg_rt_match m;

    cr_assert_not_null(rt, "%s", err);
    cr_expect_eq(bg_rt_generation(rt), 0u);
    m = look(rt, "GET", "/x");
    cr_expect_eq(m.status, BG_RT_NOT_FOUND);
    cr_expect_eq(m.generation, 0u);
    for (uint64_t g = 1; g <= 5; g++) {
        cr_assert_eq(bg_rt_publish(rt, &c, 1, err), BG_OK, "%s", err);
        cr_expect_eq(bg_rt_generation(rt), g);
        cr_expect_eq(look(rt, "GET", "/x").generation, g);
    }
    cr_assert_eq(bg_rt_publish(rt, NULL, 0, err), BG_OK, "%s", err);
    cr_expect_eq(look(rt, "GET", "/x").status, BG_RT_NOT_FOUND);
    bg_rt_destroy(rt);
}

/* ---- Merging and conflicts ---- */

typedef struct conflicts {
    int n;
    char last[256];
} conflicts;

static void on_conflict(void *ud, const char *method, const char *tmpl, const char *winner,
                        const char *loser, const char *loser_conn)
{
    conflicts *c = ud;

    c->n++;
    snprintf(c->last, sizeof(c->last), "%s %s %s>%s %s", method, tmpl, winner, loser, loser_conn);
}

Test(route_table, conflict_first_service_wins)
{
    bg_rt_endpoint_in ea[] = {EP("GET", "/x/{id}")};
    bg_rt_endpoint_in eb[] = {EP("GET", "/x/{key}"), EP("POST", "/x/{key}")};
    bg_rt_connection_in cs[] = {conn("ca", "alpha", 1, ea, 1), conn("cb", "beta", 1, eb, 2)};
    char err[BG_ERR_LEN];
    bg_rt *rt = bg_rt_create(&small_limits, err);
    conflicts seen = {0};
    bg_rt_match m;

    cr_assert_not_null(rt, "%s", err);
    bg_rt_set_conflict_cb(rt, on_conflict, &seen);
    cr_assert_eq(bg_rt_publish(rt, cs, 2, err), BG_OK, "%s", err);
    cr_expect_eq(seen.n, 1);
    cr_expect_str_eq(seen.last, "GET /x/{key} alpha>beta cb");
    m = look(rt, "GET", "/x/1");
    cr_expect_str_eq(m.service, "alpha");
    expect_param(&m, "/x/1", 0, "id", "1");
    m = look(rt, "POST", "/x/1"); /* another method of the same shape is free */
    cr_expect_str_eq(m.service, "beta");
    expect_param(&m, "/x/1", 0, "key", "1");
    cr_expect_eq(m.allow_mask, BG_RT_M_GET | BG_RT_M_HEAD | BG_RT_M_POST);
    bg_rt_destroy(rt);
}

Test(route_table, instances_merge_claims_and_timeouts)
{
    bg_rt_endpoint_in e1[] = {
        {.method = "GET", .path_template = "/p/{id}", .timeout_ms = 1000, .claims = "read,audit"}};
    bg_rt_endpoint_in e2[] = {
        {.method = "GET", .path_template = "/p/{id}", .timeout_ms = 5000, .claims = "read,admin"},
        {.method = "GET", .path_template = "/p/{id}", .timeout_ms = 9000, .claims = "other"}};
    bg_rt_connection_in cs[] = {conn("c1", "p", 1, e1, 1), conn("c2", "p", 0, e2, 2)};
    bg_rt *rt = table_with(cs, 2);
    bg_rt_match m = look(rt, "GET", "/p/3");

    cr_expect_eq(m.status, BG_RT_FOUND);
    cr_expect_eq(m.timeout_ms, 5000, "the longest timeout over connections: %lld",
                 (long long)m.timeout_ms);
    cr_expect_str_eq(m.claims, "read,audit,admin", "the union of claims");
    cr_expect_eq(m.nup, 1);
    bg_rt_destroy(rt);
}

/* Declared rate limits: parsed once by the writer, the strictest over the connections
 * whatever their order, a change of declaration seen on republish, shown in state. */
static bg_rate_spec rate_of(const char *a, const char *b, const char *c)
{
    bg_rt_endpoint_in e[3] = {{.method = "GET", .path_template = "/r", .rate_limit = a},
                              {.method = "GET", .path_template = "/r", .rate_limit = b},
                              {.method = "GET", .path_template = "/r", .rate_limit = c}};
    bg_rt_connection_in cs[] = {conn("c1", "r", 1, &e[0], 1), conn("c2", "r", 1, &e[1], 1),
                                conn("c3", "r", 1, &e[2], 1)};
    bg_rt *rt = table_with(cs, 3);
    bg_rt_match m = look(rt, "GET", "/r");

    cr_assert_eq(m.status, BG_RT_FOUND);
    bg_rt_destroy(rt);
    return m.rate;
}

Test(route_table, declared_rate_limit_is_the_strictest)
{
    bg_rate_spec r = rate_of("10/s", NULL, "2/m burst=5 key=header:X-Key");

    cr_expect_eq(r.count, 2);
    cr_expect_eq(r.per_ms, 60000);
    cr_expect_eq(r.burst, 5);
    cr_expect_eq(r.interval_us, 30000000, "derived by the reader");
    cr_expect_eq(r.key, BG_RATE_KEY_HEADER);
    cr_expect_str_eq(r.key_name, "X-Key");
    r = rate_of("2/m burst=5 key=header:X-Key", "10/s", NULL);
    cr_expect_eq(r.count, 2, "the same whatever the order");
    cr_expect_str_eq(r.key_name, "X-Key");
    r = rate_of("60/m", "1/s burst=3", "1/s burst=90");
    cr_expect_eq(r.burst, 3, "same rate: the smaller burst");
    cr_expect_eq(r.per_ms, 1000);
    r = rate_of(NULL, "", NULL);
    cr_expect_eq(r.count, 0, "none declared: no limit");
}

Test(route_table, declared_rate_limit_republished_and_in_state)
{
    char rate[32] = "5/s", *json = NULL, err[BG_ERR_LEN] = "";
    bg_rt_endpoint_in e[] = {{.method = "GET", .path_template = "/r", .rate_limit = rate}};
    bg_rt_connection_in cs[] = {conn("c1", "r", 1, e, 1)};
    bg_rt *rt = table_with(cs, 1);

    cr_expect_eq(look(rt, "GET", "/r").rate.count, 5);
    snprintf(rate, sizeof(rate), "7/h  burst=7"); /* changed in place: the cache must see it */
    cr_assert_eq(bg_rt_publish(rt, cs, 1, err), BG_OK, "%s", err);
    cr_expect_eq(look(rt, "GET", "/r").rate.count, 7);
    cr_expect_eq(look(rt, "GET", "/r").rate.per_ms, 3600000);
    cr_assert_eq(bg_rt_snapshot_json(rt, &json, err), BG_OK, "%s", err);
    cr_expect_not_null(strstr(json, "\"rate_limit\":\"7/h  burst=7\""), "declared text: %s", json);
    cr_expect_not_null(strstr(json, "\"rate_limit\":\"7/h\""), "canonical route limit: %s", json);
    free(json);
    snprintf(rate, sizeof(rate), "7/week");
    cr_expect_eq(bg_rt_publish(rt, cs, 1, err), BG_ERR, "a bad declaration is refused");
    cr_expect_not_null(strstr(err, "rate_limit of GET /r: '7/week' is not a rate"), "%s", err);
    bg_rt_destroy(rt);
}

/* ---- Capacity and bad input ---- */

Test(route_table, capacity_exhaustion_keeps_old_state)
{
    bg_rt_limits lim = {.max_services = 2, .max_connections = 3, .max_endpoints = 4};
    bg_rt_endpoint_in e2[] = {EP("GET", "/a"), EP("GET", "/b")};
    bg_rt_endpoint_in e3[] = {EP("GET", "/c"), EP("GET", "/d"), EP("GET", "/e")};
    bg_rt_connection_in ok[] = {conn("c1", "s1", 1, e2, 2)};
    bg_rt_connection_in services[] = {conn("c1", "s1", 1, e2, 1), conn("c2", "s2", 1, e2, 1),
                                      conn("c3", "s3", 1, e2, 1)};
    bg_rt_connection_in eps[] = {conn("c1", "s1", 1, e2, 2), conn("c2", "s1", 1, e3, 3)};
    bg_rt_connection_in conns[4];
    char err[BG_ERR_LEN];
    bg_rt *rt = bg_rt_create(&lim, err);

    cr_assert_not_null(rt, "%s", err);
    cr_assert_eq(bg_rt_publish(rt, ok, 1, err), BG_OK, "%s", err);
    cr_expect_eq(bg_rt_publish(rt, services, 3, err), BG_ERR);
    cr_expect(strstr(err, "max_services") != NULL, "%s", err);
    cr_expect_eq(bg_rt_publish(rt, eps, 2, err), BG_ERR);
    cr_expect(strstr(err, "max_endpoints") != NULL, "%s", err);
    for (int i = 0; i < 4; i++)
        conns[i] = conn((const char *[]){"a", "b", "c", "d"}[i], "s1", 1, e2, 0);
    cr_expect_eq(bg_rt_publish(rt, conns, 4, err), BG_ERR);
    cr_expect(strstr(err, "max_connections") != NULL, "%s", err);
    /* Failed publishes changed nothing that readers see. */
    cr_expect_eq(bg_rt_generation(rt), 1u);
    expect_route(rt, "GET", "/b", "s1", "/b");
    cr_expect_eq(look(rt, "GET", "/c").status, BG_RT_NOT_FOUND);
    /* Twice in a row: the failed copy is the inactive one again. */
    cr_expect_eq(bg_rt_publish(rt, services, 3, err), BG_ERR);
    expect_route(rt, "GET", "/a", "s1", "/a");
    bg_rt_destroy(rt);
}

Test(route_table, string_and_node_capacity)
{
    bg_rt_limits lim = {.max_services = 4,
                        .max_connections = 4,
                        .max_endpoints = 8,
                        .max_nodes = 4,
                        .string_bytes = 4096};
    bg_rt_endpoint_in deep[] = {EP("GET", "/a/b/c/d/e")};
    bg_rt_endpoint_in fits[] = {EP("GET", "/a/b")};
    char longsvc[64], err[BG_ERR_LEN];
    bg_rt_connection_in c = conn("c1", "svc", 1, deep, 1);
    bg_rt *rt = bg_rt_create(&lim, err);

    cr_assert_not_null(rt, "%s", err);
    cr_expect_eq(bg_rt_publish(rt, &c, 1, err), BG_ERR);
    cr_expect(strstr(err, "max_nodes") != NULL, "%s", err);
    bg_rt_destroy(rt);
    lim.max_nodes = 0;
    lim.string_bytes = 16;
    rt = bg_rt_create(&lim, err);
    cr_assert_not_null(rt, "%s", err);
    memset(longsvc, 's', sizeof(longsvc) - 1);
    longsvc[sizeof(longsvc) - 1] = '\0';
    c = conn("c1", longsvc, 1, fits, 1);
    cr_expect_eq(bg_rt_publish(rt, &c, 1, err), BG_ERR);
    cr_expect(strstr(err, "string_bytes") != NULL, "%s", err);
    bg_rt_destroy(rt);
}

Test(route_table, bad_input_refused)
{
    bg_rt_endpoint_in badm[] = {EP("BREW", "/x")};
    bg_rt_endpoint_in badt[] = {EP("GET", "/x/{")};
    bg_rt_endpoint_in good[] = {EP("GET", "/x")};
    bg_rt_connection_in dup[] = {conn("c1", "s", 1, good, 1), conn("c1", "t", 1, good, 1)};
    bg_rt_connection_in c;
    bg_rt_limits bad_lim = {.max_services = 0, .max_connections = 1, .max_endpoints = 1};
    char err[BG_ERR_LEN];
    bg_rt *rt = bg_rt_create(&small_limits, err);

    cr_assert_not_null(rt, "%s", err);
    c = conn("c1", "s", 1, badm, 1);
    cr_expect_eq(bg_rt_publish(rt, &c, 1, err), BG_ERR);
    cr_expect(strstr(err, "BREW") != NULL, "%s", err);
    c = conn("c1", "s", 1, badt, 1);
    cr_expect_eq(bg_rt_publish(rt, &c, 1, err), BG_ERR);
    cr_expect(strstr(err, "c1") != NULL, "%s", err);
    cr_expect_eq(bg_rt_publish(rt, dup, 2, err), BG_ERR);
    cr_expect(strstr(err, "twice") != NULL, "%s", err);
    c = conn("", "s", 1, good, 1);
    cr_expect_eq(bg_rt_publish(rt, &c, 1, err), BG_ERR);
    cr_expect_eq(bg_rt_generation(rt), 0u);
    cr_expect_eq(bg_rt_endpoint_check(&badm[0], err), BG_ERR);
    cr_expect_eq(bg_rt_endpoint_check(&good[0], err), BG_OK);
    bg_rt_destroy(rt);
    cr_expect_null(bg_rt_create(&bad_lim, err));
    cr_expect(strstr(err, "max_services") != NULL, "%s", err);
}

/* ---- State dump ---- */

Test(route_table, snapshot_json)
{
    bg_rt_endpoint_in e1[] = {EP("GET", "/o/{id}"), EP("PUT", "/o/{id}")};
    bg_rt_endpoint_in e2[] = {EP("GET", "/o/{id}"), EP("DELETE", "/o/{id}")};
    bg_rt_endpoint_in e3[] = {EP("GET", "/echo")};
    bg_rt_connection_in cs[] = {conn("c1", "orders", 1, e1, 2), conn("c2", "orders", 0, e2, 2),
                                conn("c3", "echo", 1, e3, 1)};
    bg_rt *rt;
    char *text = NULL, err[BG_ERR_LEN];
    json_t *root, *svc, *c2;
    json_error_t jerr;

    cs[1].version = "1.1";
    rt = table_with(cs, 3);
    cr_assert_eq(bg_rt_snapshot_json(rt, &text, err), BG_OK, "%s", err);
    root = json_loads(text, 0, &jerr);
    cr_assert_not_null(root, "%s: %s", jerr.text, text);
    cr_expect_eq(json_integer_value(json_object_get(root, "generation")), 1);
    cr_assert_eq(json_array_size(json_object_get(root, "services")), 2u, "%s", text);
    svc = json_array_get(json_object_get(root, "services"), 0);
    cr_expect_str_eq(json_string_value(json_object_get(svc, "name")), "orders");
    cr_expect_eq(json_integer_value(json_object_get(svc, "connections")), 2);
    cr_expect_eq(json_integer_value(json_object_get(svc, "up")), 1);
    cr_expect_eq(json_array_size(json_object_get(svc, "versions")), 2u, "%s", text);
    cr_expect_eq(json_array_size(json_object_get(svc, "endpoints")), 3u, "union: %s", text);
    cr_assert_eq(json_array_size(json_object_get(root, "connections")), 3u);
    c2 = json_array_get(json_object_get(root, "connections"), 1);
    cr_expect_str_eq(json_string_value(json_object_get(c2, "id")), "c2");
    cr_expect(json_is_false(json_object_get(c2, "up")));
    cr_expect_str_eq(json_string_value(json_object_get(c2, "version")), "1.1");
    cr_expect_eq(json_integer_value(json_object_get(c2, "last_heartbeat_ms")), 1000);
    cr_expect_eq(json_array_size(json_object_get(c2, "endpoints")), 2u);
    json_decref(root);
    free(text);
    bg_rt_destroy(rt);
}

/* ---- Read-only view in a forked reader ---- */

Test(route_table, readonly_reader_after_fork)
{
    bg_rt_endpoint_in eps[] = {EP("GET", "/x/{id}")};
    bg_rt_connection_in c = conn("c1", "svc", 1, eps, 1);
    bg_rt *rt = table_with(&c, 1);
    int status;
    pid_t pid = fork();

    cr_assert_neq(pid, -1);
    if (pid == 0) {
        char err[BG_ERR_LEN];
        bg_rt_match m;
        int ok = bg_rt_protect_readonly(rt, err) == BG_OK &&
                 bg_rt_lookup(rt, "GET", "/x/1", 4, &m) == BG_OK && m.status == BG_RT_FOUND &&
                 bg_rt_publish(rt, &c, 1, err) == BG_ERR && strstr(err, "read-only") != NULL;
        _exit(ok ? 0 : 1);
    }
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "reader status %#x", status);
    cr_expect_eq(bg_rt_publish(rt, &c, 1, NULL), BG_OK, "the writer's view stays writable");
    bg_rt_destroy(rt);
}

/* ---- Publishing again: the writer reuses what it compiled before ----
 *
 * The writer keeps every connection in compiled form between publishes and
 * compiles again only what changed. Changes are found by content: the
 * registry may rewrite a string in place. */

Test(route_table, republish_sees_changes_made_in_place)
{
    char tmpl[32] = "/a/{id}", method[8] = "GET", claims[32] = "read", svc[16] = "s1";
    bg_rt_endpoint_in eps[] = {{method, tmpl, 0, claims, NULL}, EP("GET", "/fixed")};
    bg_rt_connection_in c = conn("c1", svc, 1, eps, 2);
    bg_rt *rt = table_with(&c, 1);
    char err[BG_ERR_LEN];
    bg_rt_match m;

    expect_route(rt, "GET", "/a/1", "s1", "/a/{id}");
    snprintf(tmpl, sizeof(tmpl), "/b/{key}");
    cr_assert_eq(bg_rt_publish(rt, &c, 1, err), BG_OK, "%s", err);
    cr_expect_eq(look(rt, "GET", "/a/1").status, BG_RT_NOT_FOUND);
    m = look(rt, "GET", "/b/1");
    expect_param(&m, "/b/1", 0, "key", "1");
    eps[0].timeout_ms = 700;
    cr_assert_eq(bg_rt_publish(rt, &c, 1, err), BG_OK, "%s", err);
    cr_expect_eq(look(rt, "GET", "/b/1").timeout_ms, 700);
    snprintf(method, sizeof(method), "PUT");
    cr_assert_eq(bg_rt_publish(rt, &c, 1, err), BG_OK, "%s", err);
    cr_expect_eq(look(rt, "GET", "/b/1").status, BG_RT_METHOD_NOT_ALLOWED);
    snprintf(claims, sizeof(claims), "write");
    cr_assert_eq(bg_rt_publish(rt, &c, 1, err), BG_OK, "%s", err);
    m = look(rt, "PUT", "/b/1");
    cr_expect_str_eq(m.claims, "write");
    cr_expect_eq(m.timeout_ms, 700);
    snprintf(svc, sizeof(svc), "s2");
    c.up = 0;
    cr_assert_eq(bg_rt_publish(rt, &c, 1, err), BG_OK, "%s", err);
    m = look(rt, "GET", "/fixed");
    cr_expect_eq(m.status, BG_RT_NO_LIVE_INSTANCE);
    cr_expect_str_eq(m.service, "s2");
    c.nendpoints = 1;
    c.up = 1;
    cr_assert_eq(bg_rt_publish(rt, &c, 1, err), BG_OK, "%s", err);
    cr_expect_eq(look(rt, "GET", "/fixed").status, BG_RT_NOT_FOUND);
    expect_route(rt, "PUT", "/b/9", "s2", "/b/{key}");
    bg_rt_destroy(rt);
}

/* Strings are laid out in order of first use; an empty segment ("/x/") takes
 * no bytes, so the next string starts at the same offset. The trie must still
 * tell the two segments apart. */
Test(route_table, trailing_slash_template_is_its_own_route)
{
    bg_rt_endpoint_in eps[] = {{"GET", "/x", 0, "r", NULL}, EP("GET", "/x/z"), EP("POST", "/x/")};
    bg_rt_connection_in c = conn("c1", "s", 1, eps, 3);
    bg_rt *rt = table_with(&c, 1);
    bg_rt_match m;

    expect_route(rt, "GET", "/x/z", "s", "/x/z");
    expect_route(rt, "POST", "/x/", "s", "/x/");
    m = look(rt, "POST", "/x/z");
    cr_expect_eq(m.status, BG_RT_METHOD_NOT_ALLOWED, "POST /x/z: %d %s", m.status, m.endpoint);
    cr_expect_eq(m.allow_mask, BG_RT_M_GET | BG_RT_M_HEAD);
    bg_rt_destroy(rt);
}

Test(route_table, duplicate_id_refused_after_reuse)
{
    bg_rt_endpoint_in e1[] = {EP("GET", "/one")};
    bg_rt_endpoint_in e2[] = {EP("GET", "/two")};
    bg_rt_connection_in first = conn("c1", "s", 1, e1, 1);
    bg_rt_connection_in dup[] = {conn("c1", "s", 1, e1, 1), conn("c1", "t", 1, e2, 1)};
    bg_rt_connection_in second = conn("c1", "t", 1, e2, 1);
    bg_rt *rt = table_with(&first, 1);
    char err[BG_ERR_LEN];

    cr_expect_eq(bg_rt_publish(rt, dup, 2, err), BG_ERR);
    cr_expect(strstr(err, "'c1' appears twice") != NULL, "%s", err);
    expect_route(rt, "GET", "/one", "s", "/one");
    cr_assert_eq(bg_rt_publish(rt, &second, 1, err), BG_OK, "%s", err);
    expect_route(rt, "GET", "/two", "t", "/two");
    cr_expect_eq(look(rt, "GET", "/one").status, BG_RT_NOT_FOUND);
    bg_rt_destroy(rt);
}

/* Random edits of a small state, one or a few per publish. Each state goes
 * to a long-lived table (which reuses what it compiled, and drops it all
 * when garbage piles up) and to a new one; both must agree on the outcome,
 * the error, the state dump and every lookup. */

#define EQ_CONNS 10
#define EQ_EPS 5
#define EQ_STEPS 600

typedef struct eq_conn {
    char id[16], svc[8], inst[8], ver[8];
    char method[EQ_EPS][8], tmpl[EQ_EPS][48], claims[EQ_EPS][24];
    int64_t timeout[EQ_EPS];
    int nep, up;
} eq_conn;

typedef struct eq_state {
    eq_conn c[EQ_CONNS], good[EQ_CONNS];
    int n, ngood;
    uint64_t rng;
    bg_rt_endpoint_in eps[EQ_CONNS][EQ_EPS];
    bg_rt_connection_in in[EQ_CONNS];
} eq_state;

static const bg_rt_limits eq_limits = {
    .max_services = 3, .max_connections = 8, .max_endpoints = 30, .max_nodes = 48};

static unsigned eq_rand(eq_state *st, unsigned n)
{
    st->rng ^= st->rng << 13; /* xorshift64 */
    st->rng ^= st->rng >> 7;
    st->rng ^= st->rng << 17;
    return (unsigned)(st->rng % n);
}

static void eq_tmpl(eq_state *st, char *t, size_t size)
{
    static const char *const segs[] = {"a", "b", "items", "x1234567", "x12345678", "{id}", "{k}"};
    unsigned n = eq_rand(st, 4);
    size_t used = 0;

    t[0] = '\0';
    if (n == 0)
        snprintf(t, size, "/");
    for (unsigned i = 0; i < n; i++) {
        const char *s = segs[eq_rand(st, 7)];
        if (i == n - 1 && eq_rand(st, 5) == 0)
            s = "{p*}";
        used += (size_t)snprintf(t + used, size - used, "/%s", s);
    }
}

static void eq_ep(eq_state *st, eq_conn *c, int e)
{
    static const char *const methods[] = {"GET", "GET", "POST", "PUT", "DELETE", "HEAD"};
    static const char *const claims[] = {"", "", "r", "w", "r,w", "w,r"};

    snprintf(c->method[e], sizeof(c->method[e]), "%s", methods[eq_rand(st, 6)]);
    eq_tmpl(st, c->tmpl[e], sizeof(c->tmpl[e]));
    snprintf(c->claims[e], sizeof(c->claims[e]), "%s", claims[eq_rand(st, 6)]);
    c->timeout[e] = eq_rand(st, 3) * 1000;
}

static void eq_new_conn(eq_state *st, eq_conn *c)
{
    snprintf(c->id, sizeof(c->id), "c%u", eq_rand(st, 1000));
    snprintf(c->svc, sizeof(c->svc), "s%u", eq_rand(st, 4));
    snprintf(c->inst, sizeof(c->inst), "i%u", eq_rand(st, 3));
    snprintf(c->ver, sizeof(c->ver), "1.%u", eq_rand(st, 2));
    c->up = eq_rand(st, 4) != 0;
    c->nep = (int)eq_rand(st, EQ_EPS + 1);
    for (int e = 0; e < c->nep; e++)
        eq_ep(st, c, e);
}

/* One random edit: most touch a single connection, as a control frame does. */
static void eq_edit(eq_state *st)
{
    eq_conn *c = &st->c[eq_rand(st, (unsigned)(st->n ? st->n : 1))];
    unsigned k = st->n == 0 ? 0 : eq_rand(st, 13);

    if (k == 0 && st->n < EQ_CONNS)
        eq_new_conn(st, &st->c[st->n++]);
    else if (k == 1)
        *c = st->c[--st->n]; /* removes c; the last one takes its place */
    else if (k == 2)
        eq_new_conn(st, c);
    else if (k == 3)
        c->up = !c->up;
    else if (k == 4)
        snprintf(c->svc, sizeof(c->svc), "s%u", eq_rand(st, 4));
    else if (k == 5 && c->nep < EQ_EPS)
        eq_ep(st, c, c->nep++);
    else if (k == 6 && c->nep > 0)
        c->nep--;
    else if (k == 7 && c->nep > 0)
        eq_ep(st, c, (int)eq_rand(st, (unsigned)c->nep));
    else if (k == 8 && c->nep > 0)
        snprintf(c->claims[0], sizeof(c->claims[0]), "%s", eq_rand(st, 2) ? "r" : "x");
    else if (k == 9)
        snprintf(c->ver, sizeof(c->ver), "2.%u", eq_rand(st, 2));
    else if (k == 10 && c->nep > 0)
        c->timeout[0] += 500;
    else if (k == 11 && c->nep > 0)
        snprintf(c->method[0], sizeof(c->method[0]), "%s", eq_rand(st, 2) ? "GET" : "PATCH");
}

static void eq_fill(eq_state *st)
{
    for (int i = 0; i < st->n; i++) {
        eq_conn *c = &st->c[i];
        for (int e = 0; e < c->nep; e++)
            st->eps[i][e] =
                (bg_rt_endpoint_in){c->method[e], c->tmpl[e], c->timeout[e], c->claims[e], NULL};
        st->in[i] = (bg_rt_connection_in){c->id, c->svc, c->inst,    c->ver,
                                          c->up, i,      st->eps[i], (size_t)c->nep};
    }
}

/* The state dump without the generation (the two tables count differently). */
static json_t *eq_dump(const bg_rt *rt)
{
    char *text = NULL, err[BG_ERR_LEN];
    json_t *root;

    cr_assert_eq(bg_rt_snapshot_json(rt, &text, err), BG_OK, "%s", err);
    root = json_loads(text, 0, NULL);
    free(text);
    cr_assert_not_null(root);
    json_object_del(root, "generation");
    return root;
}

static int eq_same_match(const bg_rt_match *x, const bg_rt_match *y)
{
    if (x->status != y->status || strcmp(x->service, y->service) != 0 ||
        strcmp(x->endpoint, y->endpoint) != 0 || strcmp(x->claims, y->claims) != 0 ||
        x->timeout_ms != y->timeout_ms || x->allow_mask != y->allow_mask || x->nup != y->nup ||
        x->nparams != y->nparams)
        return 0;
    for (int i = 0; i < x->nparams; i++) {
        if (strcmp(x->params[i].name, y->params[i].name) != 0 ||
            x->params[i].off != y->params[i].off || x->params[i].len != y->params[i].len)
            return 0;
    }
    return 1;
}

/* Looks up every template of the state made into a path (and a few misses)
 * with a few methods in both tables. */
static void eq_compare_lookups(const eq_state *st, const bg_rt *a, const bg_rt *b, int step)
{
    static const char *const methods[] = {"GET", "HEAD", "POST", "DELETE"};
    char path[64];

    for (int i = 0; i < st->n; i++) {
        for (int e = 0; e < st->c[i].nep; e++) {
            const char *t = st->c[i].tmpl[e];
            size_t len = 0;
            for (; *t && len < sizeof(path) - 2; t++) /* {x} -> v, {p*} -> v/w */
                if (*t == '{') {
                    len += (size_t)snprintf(path + len, sizeof(path) - len, "%s",
                                            strchr(t, '*') ? "v/w" : "v");
                    t = strchr(t, '}');
                } else
                    path[len++] = *t;
            path[len] = '\0';
            for (int m = 0; m < 4; m++) {
                bg_rt_match x = look(a, methods[m], path), y = look(b, methods[m], path);
                cr_assert(eq_same_match(&x, &y), "step %d: %s %s: %d %s vs %d %s", step, methods[m],
                          path, x.status, x.endpoint, y.status, y.endpoint);
            }
        }
    }
}

/* Publishes the state to both tables and checks they agree; 1 = published. */
static int eq_check(eq_state *st, bg_rt *reused, int step)
{
    char ea[BG_ERR_LEN] = "", eb[BG_ERR_LEN] = "";
    bg_rt *fresh = bg_rt_create(&eq_limits, eb);
    int ra, rb;
    json_t *da, *db;

    cr_assert_not_null(fresh, "%s", eb);
    eq_fill(st);
    ra = bg_rt_publish(reused, st->in, (size_t)st->n, ea);
    rb = bg_rt_publish(fresh, st->in, (size_t)st->n, eb);
    cr_assert_eq(ra, rb, "step %d: %s / %s", step, ea, eb);
    cr_assert_str_eq(ea, eb, "step %d", step);
    if (ra == BG_OK) {
        da = eq_dump(reused);
        db = eq_dump(fresh);
        cr_assert(json_equal(da, db), "step %d: the state dumps differ", step);
        json_decref(da);
        json_decref(db);
        eq_compare_lookups(st, reused, fresh, step);
        memcpy(st->good, st->c, sizeof(st->c));
        st->ngood = st->n;
    } else if (eq_rand(st, 2) == 0) { /* as the master does: undo the change */
        memcpy(st->c, st->good, sizeof(st->c));
        st->n = st->ngood;
    }
    bg_rt_destroy(fresh);
    return ra == BG_OK;
}

Test(route_table, reused_build_equals_a_fresh_one)
{
    eq_state *st = calloc(1, sizeof(*st));
    char err[BG_ERR_LEN];
    bg_rt *rt = bg_rt_create(&eq_limits, err);
    int ok = 0;

    cr_assert_not_null(st);
    cr_assert_not_null(rt, "%s", err);
    st->rng = 0x2545f4914f6cdd1dull;
    for (int step = 0; step < EQ_STEPS; step++) {
        unsigned edits = eq_rand(st, 8) == 0 ? 1 + eq_rand(st, 6) : 1;
        for (unsigned i = 0; i < edits; i++)
            eq_edit(st);
        ok += eq_check(st, rt, step);
    }
    /* Both outcomes are exercised: the limits are tight on purpose. */
    cr_expect_gt(ok, EQ_STEPS / 2, "published %d of %d states", ok, EQ_STEPS);
    cr_expect_lt(ok, EQ_STEPS, "no state hit a limit or a duplicate id");
    bg_rt_destroy(rt);
    free(st);
}

/* ---- One writer, four readers: nobody ever sees a torn state ----
 *
 * Update k (published as generation k + 1) gives every endpoint a timeout and
 * claims computed from (k, service, endpoint), toggles liveness and an extra
 * route with k, and lets two connections' claims merge. A reader deduces k
 * from the claims it got and checks that everything else in the answer,
 * including the generation, belongs to that same k. */

#define CC_SERVICES 8
#define CC_READERS 4
#define CC_WAIT_MS 20000 /* bound on every wait: a hung reader fails, never hangs */

#if defined(__SANITIZE_ADDRESS__)
#define CC_UPDATES 20000 /* ASan makes each publish several times slower */
#else
#define CC_UPDATES 100000
#endif

typedef struct cc_shared {
    _Atomic int stop;
    _Atomic int ready;
    struct {
        _Atomic uint64_t verified, mismatches, busy, min_gen, max_gen;
    } r[CC_READERS];
    char first_mismatch[CC_READERS][256];
} cc_shared;

static const char *const cc_tmpls[] = {"/s%d/items/{id}", "/s%d/items/{id}/sub", "/s%d/files/{p*}",
                                       "/s%d/ping", "/s%d/odd/{x}"};
#define CC_NTMPL 5
#define CC_ODD 4 /* template index that exists only in odd updates */

static int64_t cc_timeout(uint64_t k, int s, int e)
{
    return 1 + (int64_t)((k * 131 + (uint64_t)s * 17 + (uint64_t)e * 7) % 100000);
}

static int cc_up(uint64_t k, int conn)
{
    return conn == 0 ? k % 3 != 0 : k % 5 != 0;
}

/* Strings for one update, kept alive while publish runs. */
typedef struct cc_state {
    char svc[CC_SERVICES][16], ids[CC_SERVICES][2][16];
    char tmpl[CC_SERVICES][CC_NTMPL][48], claims[CC_SERVICES][2][CC_NTMPL][64];
    bg_rt_endpoint_in eps[CC_SERVICES][2][CC_NTMPL];
    bg_rt_connection_in conns[CC_SERVICES * 2];
} cc_state;

static void cc_fill(cc_state *st, uint64_t k)
{
    for (int s = 0; s < CC_SERVICES; s++) {
        snprintf(st->svc[s], sizeof(st->svc[s]), "svc%d", s);
        for (int c = 0; c < 2; c++) {
            size_t n = 0;
            snprintf(st->ids[s][c], sizeof(st->ids[s][c]), "svc%d-c%d", s, c);
            for (int e = 0; e < CC_NTMPL; e++) {
                if (e == CC_ODD && (c == 1 || k % 2 == 0))
                    continue;
                snprintf(st->tmpl[s][e], sizeof(st->tmpl[s][e]), cc_tmpls[e], s);
                snprintf(st->claims[s][c][e], sizeof(st->claims[s][c][e]), "g%llu,s%de%d%s",
                         (unsigned long long)k, s, e, c ? ",c1" : "");
                st->eps[s][c][n++] = (bg_rt_endpoint_in){"GET", st->tmpl[s][e], cc_timeout(k, s, e),
                                                         st->claims[s][c][e], NULL};
            }
            st->conns[s * 2 + c] = (bg_rt_connection_in){
                st->ids[s][c], st->svc[s], "i", "1", cc_up(k, c), (int64_t)k, st->eps[s][c], n};
        }
    }
}

static uint64_t cc_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Checks one answer for path kind e of service s; returns NULL or what is wrong. */
static const char *cc_verify(const bg_rt_match *m, int s, int e, const char *path)
{
    static char tmpl[48], claims[64], svc[16];
    unsigned long long k;
    int nup;

    if (m->status == BG_RT_NOT_FOUND)
        return e == CC_ODD && (m->generation - 1) % 2 == 0 ? NULL : "unexpected 404";
    if (m->status != BG_RT_FOUND && m->status != BG_RT_NO_LIVE_INSTANCE)
        return "unexpected status";
    if (sscanf(m->claims, "g%llu,", &k) != 1)
        return "claims without generation";
    if (m->generation != k + 1)
        return "generation does not match the claims";
    if (e == CC_ODD && k % 2 == 0)
        return "odd-only route in an even update";
    snprintf(tmpl, sizeof(tmpl), cc_tmpls[e], s);
    snprintf(claims, sizeof(claims), "g%llu,s%de%d%s", k, s, e, e == CC_ODD ? "" : ",c1");
    snprintf(svc, sizeof(svc), "svc%d", s);
    nup = cc_up(k, 0) + (e == CC_ODD ? 0 : cc_up(k, 1));
    if (strcmp(m->endpoint, tmpl) != 0 || strcmp(m->claims, claims) != 0 ||
        strcmp(m->service, svc) != 0)
        return "template, claims or service torn";
    if (m->timeout_ms != cc_timeout(k, s, e) || m->nup != nup)
        return "timeout or liveness torn";
    if ((m->status == BG_RT_FOUND) != (nup > 0))
        return "status does not match liveness";
    if (e != 3 && (m->nparams != 1 || m->params[0].off + m->params[0].len > strlen(path)))
        return "parameter torn";
    return NULL;
}

static void cc_note(cc_shared *sh, int id, uint64_t gen)
{
    uint64_t lo = atomic_load(&sh->r[id].min_gen), hi = atomic_load(&sh->r[id].max_gen);

    if (gen < lo)
        atomic_store(&sh->r[id].min_gen, gen);
    if (gen > hi)
        atomic_store(&sh->r[id].max_gen, gen);
}

static void cc_reader(bg_rt *rt, cc_shared *sh, int id)
{
    char path[96], err[BG_ERR_LEN];
    uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(id + 1);
    int64_t deadline = bg_mono_ms() + 3 * CC_WAIT_MS;
    bg_rt_match m;

    /* Readers spin; on two cores they would starve the writer they test. */
    if (nice(10) == -1 || bg_rt_protect_readonly(rt, err) != BG_OK)
        _exit(2);
    atomic_store(&sh->r[id].min_gen, UINT64_MAX);
    atomic_fetch_add(&sh->ready, 1);
    while (!atomic_load(&sh->stop) && bg_mono_ms() < deadline) {
        int s = (int)(cc_rand(&x) % CC_SERVICES), e = (int)(cc_rand(&x) % CC_NTMPL);
        const char *why;
        snprintf(path, sizeof(path),
                 (const char *[]){"/s%d/items/%u", "/s%d/items/%u/sub", "/s%d/files/%u/b",
                                  "/s%d/ping", "/s%d/odd/%u"}[e],
                 s, (unsigned)(cc_rand(&x) % 1000));
        if (bg_rt_lookup(rt, "GET", path, strlen(path), &m) != BG_OK)
            _exit(3);
        if (m.status == BG_RT_BUSY) {
            atomic_fetch_add(&sh->r[id].busy, 1);
            continue;
        }
        why = cc_verify(&m, s, e, path);
        if (why != NULL && atomic_fetch_add(&sh->r[id].mismatches, 1) == 0)
            snprintf(sh->first_mismatch[id], sizeof(sh->first_mismatch[id]), "%s: %s (gen %llu)",
                     path, why, (unsigned long long)m.generation);
        atomic_fetch_add(&sh->r[id].verified, 1);
        cc_note(sh, id, m.generation);
    }
    _exit(0);
}

/* Waits (bounded) until every reader has verified an answer of generation >= gen. */
static int cc_wait_readers(cc_shared *sh, uint64_t gen)
{
    int64_t deadline = bg_mono_ms() + CC_WAIT_MS;

    for (;;) {
        int all = 1;
        for (int i = 0; i < CC_READERS; i++)
            all &= atomic_load(&sh->r[i].max_gen) >= gen;
        if (all)
            return 1;
        if (bg_mono_ms() > deadline)
            return 0;
        usleep(1000);
    }
}

Test(route_table, concurrent_readers_never_see_torn_state, .timeout = 120)
{
    bg_rt_limits lim = {.max_services = 64, .max_connections = 64, .max_endpoints = 1024};
    cc_shared *sh =
        mmap(NULL, sizeof(cc_shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cc_state *st = calloc(1, sizeof(*st));
    char err[BG_ERR_LEN];
    bg_rt *rt = bg_rt_create(&lim, err);
    pid_t pids[CC_READERS];
    int ok_mid, ok_end, status;

    cr_assert_neq(sh, MAP_FAILED);
    cr_assert_not_null(st);
    cr_assert_not_null(rt, "%s", err);
    cc_fill(st, 0);
    cr_assert_eq(bg_rt_publish(rt, st->conns, CC_SERVICES * 2, err), BG_OK, "%s", err);
    for (int i = 0; i < CC_READERS; i++) {
        pids[i] = fork();
        if (pids[i] == -1)
            atomic_store(&sh->stop, 1); /* the readers already forked end at once */
        cr_assert_neq(pids[i], -1, "fork failed");
        if (pids[i] == 0)
            cc_reader(rt, sh, i);
    }
    /* Every reader has seen generation 1 before the writer starts. */
    ok_mid = cc_wait_readers(sh, 1);
    for (uint64_t k = 1; k < CC_UPDATES && ok_mid; k++) {
        cc_fill(st, k);
        if (bg_rt_publish(rt, st->conns, CC_SERVICES * 2, err) != BG_OK)
            break;
        if (k == CC_UPDATES / 2)
            ok_mid = cc_wait_readers(sh, k + 1); /* readers overlap the writer */
    }
    ok_end = ok_mid && cc_wait_readers(sh, CC_UPDATES);
    atomic_store(&sh->stop, 1);
    for (int i = 0; i < CC_READERS; i++) {
        cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
        cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "reader %d status %#x", i, status);
    }
    cr_assert_eq(bg_rt_generation(rt), (uint64_t)CC_UPDATES, "writer stopped early: %s", err);
    cr_assert(ok_mid && ok_end, "readers did not keep up within %d ms", CC_WAIT_MS);
    for (int i = 0; i < CC_READERS; i++) {
        cr_expect_eq(atomic_load(&sh->r[i].mismatches), 0u, "reader %d: %s", i,
                     sh->first_mismatch[i]);
        cr_expect_gt(atomic_load(&sh->r[i].verified), 0u);
        cr_expect_lt(atomic_load(&sh->r[i].min_gen), atomic_load(&sh->r[i].max_gen),
                     "reader %d saw a single generation", i);
        cr_log_info("reader %d: %llu verified lookups, %llu busy, generations %llu..%llu", i,
                    (unsigned long long)atomic_load(&sh->r[i].verified),
                    (unsigned long long)atomic_load(&sh->r[i].busy),
                    (unsigned long long)atomic_load(&sh->r[i].min_gen),
                    (unsigned long long)atomic_load(&sh->r[i].max_gen));
    }
    bg_rt_destroy(rt);
    free(st);
    munmap(sh, sizeof(*sh));
}
