/* test_auth.c: the worker's authentication policy from raw request heads: which token a
 * request carries, claims held by scope, scp, array claims and name=value, the RFC 6750
 * answers, the identity headers, and the verified-token cache re-checking the clock. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "jwt_mint.h"

#define SECRET "unit-test-secret-unit-test-secret-unit!!"
#define NOW 1700000000LL

static bg_config cfg;
static bg_auth *auth;
static char dir[] = "/tmp/bg-test-auth-XXXXXX";

static void setup(void)
{
    char path[300], err[BG_ERR_LEN];
    FILE *fp;

    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/secret", dir);
    fp = fopen(path, "w");
    cr_assert_not_null(fp);
    fputs(SECRET "\n", fp);
    fclose(fp);
    bg_config_defaults(&cfg);
    cfg.auth.enabled = 1;
    snprintf(cfg.auth.hmac_secret_file, sizeof(cfg.auth.hmac_secret_file), "%s", path);
    snprintf(cfg.auth.algorithm, sizeof(cfg.auth.algorithm), "HS256");
    snprintf(cfg.identity.claim_headers, sizeof(cfg.identity.claim_headers),
             "X-Tenant:tid,X-Level:level");
    auth = malloc(sizeof(*auth));
    cr_assert_eq(bg_auth_init(auth, &cfg, err), BG_OK, "%s", err);
}

static void teardown(void)
{
    char cmd[300];

    bg_auth_free(auth);
    free(auth);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(auth, .init = setup, .fini = teardown);

static bg_http_request req;

/* Parses a GET with the given header lines. */
static const bg_http_request *head(const char *lines)
{
    static char buf[8192];
    bg_http_parser p;
    bg_http_limits lim;
    bg_http_error e;
    int n = snprintf(buf, sizeof(buf), "GET /x HTTP/1.1\r\nHost: h\r\n%s\r\n", lines);

    bg_http_limits_default(&lim);
    bg_http_parser_init(&p);
    cr_assert_eq(bg_http_parse(&p, buf, (size_t)n, &lim, &req, &e), BG_HTTP_PARSE_DONE);
    return &req;
}

static int decide(const char *payload, const char *route_claims, int64_t now, bg_auth_result *r)
{
    char *tok = bgt_jwt_make("HS256", NULL, NULL, SECRET, strlen(SECRET), payload), line[4096];

    snprintf(line, sizeof(line), "Authorization: Bearer %s\r\n", tok);
    free(tok);
    bg_auth_request(auth, &cfg, head(line), route_claims, now, r);
    json_decref(r->claims);
    return r->status;
}

Test(auth, claims_by_scope_scp_arrays_and_values)
{
    bg_auth_result r;

    cr_assert_eq(decide("{\"scope\":\"a b:c d\"}", "b:c,d", NOW, &r), 0);
    cr_assert_eq(decide("{\"scope\":\"a b:cd\"}", "b:c", NOW, &r), 403);
    cr_assert_str_eq(r.challenge, "WWW-Authenticate: Bearer realm=\"busgate\", "
                                  "error=\"insufficient_scope\", scope=\"b:c\"\r\n");
    cr_assert_eq(decide("{\"scp\":[\"x\",\"y\"]}", "y", NOW, &r), 0);
    cr_assert_eq(decide("{\"scp\":\"x y\"}", "y", NOW, &r), 0);
    cr_assert_eq(decide("{\"roles\":[\"admin\"]}", "admin", NOW, &r), 0);
    cr_assert_eq(decide("{\"permissions\":[\"p1\"]}", "p1", NOW, &r), 0);
    cr_assert_eq(decide("{\"groups\":[\"admin\"]}", "admin", NOW, &r), 403, "not a claim array");
    cr_assert_eq(decide("{\"roles\":\"admin\"}", "admin", NOW, &r), 403, "a string is no array");
    cr_assert_eq(
        decide("{\"tid\":\"t1\",\"level\":3,\"ok\":true}", "tid=t1,level=3,ok=true", NOW, &r), 0);
    cr_assert_eq(decide("{\"tid\":\"t2\"}", "tid=t1", NOW, &r), 403);
    cr_assert_eq(decide("{\"scope\":\"tid=t1\"}", "tid=t1", NOW, &r), 403, "name=value is a value");
    cr_assert_eq(decide("{}", "", NOW, &r), 0, "public route, valid token");
}

Test(auth, which_token_a_request_carries)
{
    bg_auth_result r;

    bg_auth_request(auth, &cfg, head(""), "a", NOW, &r);
    cr_assert_eq(r.status, 401);
    cr_assert_str_eq(r.challenge, "WWW-Authenticate: Bearer realm=\"busgate\"\r\n");
    bg_auth_request(auth, &cfg, head(""), "", NOW, &r);
    cr_assert_eq(r.status, 0, "public and anonymous");
    cr_assert_null(r.claims);
    bg_auth_request(auth, &cfg, head("Authorization: Basic dTpw\r\n"), "a", NOW, &r);
    cr_assert_eq(r.status, 401);
    cr_assert_null(strstr(r.challenge, "error="), "another scheme is no token: %s", r.challenge);
    bg_auth_request(auth, &cfg, head("Authorization: Bearer\r\n"), "a", NOW, &r);
    cr_assert_eq(r.status, 401);
    cr_assert_not_null(strstr(r.challenge, "invalid_token"));
    bg_auth_request(auth, &cfg, head("Authorization: Bearer a.b.c\r\nAuthorization: Bearer x\r\n"),
                    "", NOW, &r);
    cr_assert_eq(r.status, 401, "two tokens");
    bg_auth_request(auth, &cfg, head("Authorization: Bearer not-a-jwt\r\n"), "", NOW, &r);
    cr_assert_eq(r.status, 401, "a bad token on a public route is refused too");
    cfg.auth.require_all = 1;
    bg_auth_request(auth, &cfg, head(""), "", NOW, &r);
    cr_assert_eq(r.status, 401, "require = all");
    cfg.auth.require_all = 0;
    bg_auth_request(NULL, &cfg, head(""), "a", NOW, &r);
    cr_assert_eq(r.status, 401, "no [auth]: routes with claims are closed");
    bg_auth_request(NULL, &cfg, head(""), "", NOW, &r);
    cr_assert_eq(r.status, 0);
}

/* mTLS without a token: the certificate's subject is the identity; a route's claims are
 * checked against {"sub": subject, "amr": ["mtls"]}. */
Test(auth, a_verified_client_certificate_identifies)
{
    bg_auth_result r;

    bg_auth_from_cert(&cfg, "CN=alice,O=Example", "", &r);
    cr_assert_eq(r.status, 0);
    cr_assert_str_eq(json_string_value(json_object_get(r.claims, "sub")), "CN=alice,O=Example");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(r.claims, "amr"), 0)),
                     "mtls");
    json_decref(r.claims);
    /* claims lists are comma-separated: a one-attribute subject can be named */
    bg_auth_from_cert(&cfg, "CN=alice", "sub=CN=alice", &r);
    cr_assert_eq(r.status, 0, "a sub=<subject> claim names one client: %s", r.detail);
    json_decref(r.claims);
    bg_auth_from_cert(&cfg, "CN=bob", "orders:read", &r);
    cr_assert_eq(r.status, 403, "a certificate holds no scopes");
    cr_assert_null(r.claims);
    cr_assert_not_null(strstr(r.challenge, "insufficient_scope"));
}

Test(auth, cache_rechecks_the_clock)
{
    bg_auth_result r;
    const char *p = "{\"sub\":\"s\",\"exp\":1700000100,\"scope\":\"a\"}";

    cr_assert_eq(decide(p, "a", NOW, &r), 0);
    cr_assert_eq(decide(p, "a", NOW + 50, &r), 0, "a hit");
    cr_assert_eq(decide(p, "a", NOW + 131, &r), 401, "expired past the leeway on a hit");
    cr_assert_str_eq(r.detail, "the token has expired");
    cr_assert_eq(decide(p, "b", NOW, &r), 403, "the route's claims apply to a cached token");
}

static int collect(void *arg, const char *name, size_t nlen, const char *value, size_t vlen)
{
    char *out = arg;
    size_t used = strlen(out);

    snprintf(out + used, 4096 - used, "%.*s=%.*s|", (int)nlen, name, (int)vlen, value);
    return BG_OK;
}

Test(auth, identity_headers)
{
    char out[4096] = "";
    json_t *c = json_loads("{\"sub\":\"u1\",\"roles\":[\"r1\",\"r2\"],\"tid\":\"t\",\"level\":3,"
                           "\"bad\":\"a\\nb\"}",
                           0, NULL);

    cr_assert_eq(bg_auth_identity(&cfg, c, NULL, collect, out), BG_OK);
    cr_assert_str_eq(out,
                     "X-User-Id=u1|X-User-Roles=r1, r2|X-User-Claims={\"sub\":\"u1\",\"roles\":"
                     "[\"r1\",\"r2\"],\"tid\":\"t\",\"level\":3,\"bad\":\"a\\nb\"}|"
                     "X-Tenant=t|X-Level=3|");
    json_decref(c);
    out[0] = '\0';
    c = json_loads("{\"sub\":\"a\\nb\"}", 0, NULL);
    cr_assert_eq(bg_auth_identity(&cfg, c, NULL, collect, out), BG_OK);
    cr_assert_null(strstr(out, "X-User-Id"), "a sub with a newline is left out: %s", out);
    json_decref(c);
}
