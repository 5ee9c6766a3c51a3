/* test_gateway_admin.c: end-to-end operational and admin endpoints: /healthz, /readyz,
 * /metrics, the router state, and the token-protected resync reaching the instances. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "busgate/bus/bus.h"
#include "gw_fixture.h"

#define RESYNC "/api/v1/gateway/administration/router/resync"
#define STATE "/api/v1/gateway/administration/router/state"
#define BEARER "Authorization: Bearer " BGT_FIX_TOKEN "\r\n"

static bgt_fix fix;

static void setup(void)
{
    cr_assert_eq(bgt_fix_start(&fix, NULL, 2), 0, "fixture did not start");
}

static void teardown(void)
{
    bgt_fix_stop(&fix);
}

TestSuite(gateway_admin, .init = setup, .fini = teardown, .timeout = 60);

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

static int call(int port, const char *method, const char *path, const char *headers,
                const char *body, bgt_resp *r)
{
    char req[4096];
    size_t blen = body ? strlen(body) : 0;
    int n =
        snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: t\r\n%sContent-Length: %zu\r\n\r\n%s",
                 method, path, headers ? headers : "", blen, body ? body : "");
    bgt_fix tmp = fix;

    tmp.port = port;
    return bgt_fix_request(&tmp, req, (size_t)n, r, 5000);
}

static int admin(const char *method, const char *path, const char *headers, const char *body,
                 bgt_resp *r)
{
    return call(fix.port, method, path, headers, body, r);
}

/* ENDPOINTS_UPDATE frames answering a resync (resync_id set) from this instance so far. */
static int resync_answers(bg_bus *b, const char *instance)
{
    char err[BG_ERR_LEN];
    redisReply *r = bg_bus_command(b, err, "XRANGE router:control - +");
    int n = 0;

    for (size_t i = 0; r != NULL && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *kv = r->element[i]->element[1];
        int upd = 0, inst = 0, rsid = 0;
        for (size_t j = 0; j + 1 < kv->elements; j += 2) {
            const char *k = kv->element[j]->str, *v = kv->element[j + 1]->str;
            upd |= strcmp(k, "type") == 0 && strcmp(v, "ENDPOINTS_UPDATE") == 0;
            inst |= strcmp(k, "instance") == 0 && strcmp(v, instance) == 0;
            rsid |= strcmp(k, "resync_id") == 0;
        }
        n += upd && inst && rsid;
    }
    if (r != NULL)
        freeReplyObject(r);
    return n;
}

static int wait_more(bg_bus *b, const char *instance, int than)
{
    long long until = bgt_now_ms() + 5000;
    int n;

    while ((n = resync_answers(b, instance)) <= than && bgt_now_ms() < until)
        sleep_ms(50);
    return n;
}

static bg_bus *bus_open(void)
{
    bg_bus *b = bgt_fix_bus_open(&fix);

    cr_assert_not_null(b, "no bus connection to the fixture's valkey-server");
    return b;
}

Test(gateway_admin, health_ready_and_metrics)
{
    bgt_resp r;

    cr_assert_eq(admin("GET", "/healthz", NULL, NULL, &r), 200);
    cr_assert_not_null(strstr(r.body, "\"status\":\"ok\""));
    bgt_resp_free(&r);
    cr_assert_eq(admin("HEAD", "/healthz", NULL, NULL, &r), 200);
    bgt_resp_free(&r);
    cr_assert_eq(admin("POST", "/healthz", NULL, NULL, &r), 405);
    bgt_resp_free(&r);
    cr_assert_eq(admin("GET", "/readyz", NULL, NULL, &r), 200);
    cr_assert_not_null(strstr(r.body, "\"bus\":true"), "%s", r.body);
    bgt_resp_free(&r);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(admin("GET", "/echo/1", NULL, NULL, &r), 200);
        bgt_resp_free(&r);
    }
    cr_assert_eq(admin("GET", "/metrics", NULL, NULL, &r), 200);
    cr_assert_not_null(strstr(r.head, "text/plain; version=0.0.4"), "%s", r.head);
    cr_assert_not_null(strstr(r.body, "# TYPE busgate_requests_total counter"), "%s", r.body);
    cr_assert_not_null(
        strstr(r.body, "busgate_requests_total{service=\"echo\",code_class=\"2xx\"}"), "%s",
        r.body);
    cr_assert_not_null(strstr(r.body, "busgate_request_duration_seconds_bucket"), "%s", r.body);
    cr_assert_not_null(strstr(r.body, "busgate_inflight_requests"), "%s", r.body);
    bgt_resp_free(&r);
}

Test(gateway_admin, resync_needs_the_token)
{
    bgt_resp r;

    cr_assert_eq(admin("POST", RESYNC, NULL, NULL, &r), 401);
    cr_assert_not_null(strstr(r.head, "WWW-Authenticate: Bearer"), "%s", r.head);
    bgt_resp_free(&r);
    cr_assert_eq(admin("POST", RESYNC, "Authorization: Bearer not-the-token-at-all\r\n", NULL, &r),
                 403);
    bgt_resp_free(&r);
    cr_assert_eq(admin("POST", RESYNC, "Authorization: Basic Zm9vOmJhcg==\r\n", NULL, &r), 401);
    bgt_resp_free(&r);
    cr_assert_eq(admin("GET", STATE, NULL, NULL, &r), 401);
    bgt_resp_free(&r);
    cr_assert_eq(admin("GET", RESYNC, BEARER, NULL, &r), 405);
    bgt_resp_free(&r);
    cr_assert_eq(admin("POST", RESYNC, BEARER, "{\"service\":", &r), 400);
    cr_assert_not_null(strstr(r.body, "malformed JSON"), "%s", r.body);
    bgt_resp_free(&r);
    cr_assert_eq(admin("POST", RESYNC, BEARER, "{\"connectionId\":\"echo/nope\"}", &r), 400);
    cr_assert_not_null(strstr(r.body, "unknown connection"), "%s", r.body);
    bgt_resp_free(&r);
    cr_assert_eq(admin("POST", RESYNC, BEARER, "{\"service\":\"nope\"}", &r), 400);
    bgt_resp_free(&r);
    cr_assert_eq(admin("GET", "/api/v1/gateway/administration/other", BEARER, NULL, &r), 404);
    bgt_resp_free(&r);
}

Test(gateway_admin, resync_reaches_the_targeted_instances)
{
    bg_bus *b = bus_open();
    int e1 = resync_answers(b, "e1"), e2 = resync_answers(b, "e2");
    bgt_resp r;

    cr_assert_eq(admin("POST", RESYNC, BEARER, "{\"connectionId\":\"echo/e1\"}", &r), 202);
    cr_assert_not_null(strstr(r.body, "\"kind\":\"connection\""), "%s", r.body);
    cr_assert_not_null(strstr(r.body, "\"instance\":\"e1\""), "%s", r.body);
    cr_assert_null(strstr(r.body, "\"instance\":\"e2\""), "%s", r.body);
    bgt_resp_free(&r);
    cr_assert_gt(wait_more(b, "e1", e1), e1, "e1 did not re-send ENDPOINTS_UPDATE");
    e1 = resync_answers(b, "e1");
    e2 = resync_answers(b, "e2");

    /* Whole fleet: an empty body; both instances answer. */
    cr_assert_eq(admin("POST", RESYNC, BEARER, NULL, &r), 202);
    cr_assert_not_null(strstr(r.body, "\"kind\":\"fleet\""), "%s", r.body);
    cr_assert_not_null(strstr(r.body, "\"instance\":\"e1\""), "%s", r.body);
    cr_assert_not_null(strstr(r.body, "\"instance\":\"e2\""), "%s", r.body);
    bgt_resp_free(&r);
    cr_assert_gt(wait_more(b, "e1", e1), e1, "fleet resync did not reach e1");
    cr_assert_gt(wait_more(b, "e2", e2), e2, "fleet resync did not reach e2");

    cr_assert_eq(admin("POST", RESYNC, BEARER, "{\"service\":\"echo\"}", &r), 202);
    cr_assert_not_null(strstr(r.body, "\"kind\":\"service\""), "%s", r.body);
    bgt_resp_free(&r);
    bg_bus_free(b);
}

Test(gateway_admin, router_state)
{
    bgt_resp r;

    cr_assert_eq(admin("GET", STATE, BEARER, NULL, &r), 200);
    cr_assert_not_null(strstr(r.body, "\"generation\":"), "%s", r.body);
    cr_assert_not_null(strstr(r.body, "\"id\":\"echo/e1\""), "%s", r.body);
    cr_assert_not_null(strstr(r.body, "\"id\":\"echo/e2\""), "%s", r.body);
    bgt_resp_free(&r);
}

/* A second gateway on the same Valkey: no admin token, so no admin API; and one that
 * cannot reach Valkey at all is alive but not ready. */
Test(gateway_admin, without_token_or_bus)
{
    bgt_gw g2, g3;
    bgt_gw_opts o = {
        .valkey_url = fix.v.url, .workers = 1, .extra_gateway = "instance_id = gw-two"};
    bgt_gw_opts o3 = {.workers = 1, .extra_gateway = "instance_id = gw-three"};
    bgt_resp r;

    cr_assert_eq(bgt_gw_init(&g2, &o), 0);
    cr_assert_eq(bgt_gw_start(&g2), 0);
    cr_assert_eq(call(g2.port, "POST", RESYNC, BEARER, NULL, &r), 404);
    bgt_resp_free(&r);
    cr_assert_eq(call(g2.port, "GET", STATE, BEARER, NULL, &r), 404);
    bgt_resp_free(&r);
    bgt_gw_stop(&g2);

    cr_assert_eq(bgt_gw_init(&g3, &o3), 0);
    cr_assert_eq(bgt_gw_start(&g3), 0);
    cr_assert_eq(call(g3.port, "GET", "/healthz", NULL, NULL, &r), 200);
    bgt_resp_free(&r);
    cr_assert_eq(call(g3.port, "GET", "/readyz", NULL, NULL, &r), 503);
    cr_assert_not_null(strstr(r.body, "\"bus\":false"), "%s", r.body);
    bgt_resp_free(&r);
    bgt_gw_stop(&g3);
}
