/* test_gateway_auth.c: end-to-end bearer-token authentication: busgated with [auth] (a JWKS
 * of RSA, EC P-256 and Ed25519 keys made by the openssl tool, and an HMAC secret file), the
 * orders example declaring orders:read / orders:write, and the echo example showing what a
 * service receives. Each refused token gets its exact status and challenge, and nothing of
 * it reaches the request stream. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gw_fixture.h"
#include "jwt_mint.h"

#define ISS "https://idp.test"
#define AUD "busgate-test"
#define SECRET "an-hmac-secret-of-at-least-32-bytes-for-hs256!"
#define REALM "Bearer realm=\"busgate\""
#define INVALID(why) REALM ", error=\"invalid_token\", error_description=\"" why "\""

static bgt_fix fix;
static pid_t orders_pid;
static EVP_PKEY *rsa, *rsa_other, *ec, *ec384, *ed;
static char keydir[320];

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    cr_assert_not_null(fp, "%s", path);
    fputs(text, fp);
    fclose(fp);
}

static EVP_PKEY *keygen(const char *name, const char *type)
{
    char path[400];

    cr_assert_eq(bgt_jwt_keygen(keydir, name, type), 0, "openssl genpkey %s", type);
    snprintf(path, sizeof(path), "%s/%s.key", keydir, name);
    return bgt_jwt_load_key(path, 1);
}

/* keydir: the keys, jwks.json (r1 RS256, p1 PS256 and r5 RS512 on the same RSA key, e1
 * ES256, e3 ES384, d1 EdDSA) and the HMAC secret file. */
static void make_keys(void)
{
    static const struct {
        const char *kid, *alg;
        int key; /* 0 rsa, 1 ec, 2 ec384, 3 ed */
    } jwks_keys[] = {{"r1", "RS256", 0}, {"p1", "PS256", 0}, {"r5", "RS512", 0},
                     {"e1", "ES256", 1}, {"e3", "ES384", 2}, {"d1", NULL, 3}};
    char path[400], jwks[16384] = "{\"keys\":[";
    size_t i;

    snprintf(keydir, sizeof(keydir), "/tmp/bg-test-auth-XXXXXX");
    cr_assert_not_null(mkdtemp(keydir));
    rsa = keygen("rsa", "rsa");
    rsa_other = keygen("rsa2", "rsa");
    ec = keygen("ec", "ec");
    ec384 = keygen("ec384", "ec384");
    ed = keygen("ed", "ed25519");
    for (i = 0; i < sizeof(jwks_keys) / sizeof(jwks_keys[0]); i++) {
        EVP_PKEY *k[] = {rsa, ec, ec384, ed};
        char *j = bgt_jwt_jwk(k[jwks_keys[i].key], jwks_keys[i].kid, jwks_keys[i].alg);
        snprintf(jwks + strlen(jwks), sizeof(jwks) - strlen(jwks), "%s%s", i ? "," : "", j);
        free(j);
    }
    snprintf(jwks + strlen(jwks), sizeof(jwks) - strlen(jwks), "]}");
    snprintf(path, sizeof(path), "%s/jwks.json", keydir);
    write_file(path, jwks);
    snprintf(path, sizeof(path), "%s/hmac.secret", keydir);
    write_file(path, SECRET "\n");
}

static int start_orders(void)
{
    char log[400];

    snprintf(log, sizeof(log), "%s/orders.log", fix.g.dir);
    orders_pid =
        bgt_spawn_built("orders-service", (const char *[]){"-c", fix.g.ini, "-n", "o1", NULL}, log);
    if (orders_pid < 0 || bgt_wait_file(log, "registered as orders/o1", 10000) != 0)
        return -1;
    return bgt_fix_wait_status(&fix, "/orders/none", 401, 10000) == 401 ? 0 : -1;
}

/* Valkey, busgated with extra_sections, one echo instance and the orders service. */
static void start_with(const char *extra_gateway, const char *extra_sections)
{
    bgt_gw_opts o = {0};
    char gw[1024], extra[4096];

    memset(&fix, 0, sizeof(fix));
    cr_assert_eq(bgt_valkey_start(&fix.v, NULL), 0);
    snprintf(gw, sizeof(gw), "instance_id = gw-auth\nrequest_timeout = 2s\n%s", extra_gateway);
    snprintf(extra, sizeof(extra), "%s%s", BGT_FIX_MESSAGING, extra_sections);
    o.valkey_url = fix.v.url;
    o.workers = 2;
    o.extra_gateway = gw;
    o.extra = extra;
    cr_assert_eq(bgt_gw_init(&fix.g, &o), 0);
    if (bgt_gw_start(&fix.g) != 0) {
        char *log = bgt_gw_log_text(&fix.g);
        cr_assert_fail("busgated did not start:\n%s", log);
    }
    fix.port = fix.g.port;
    cr_assert_eq(bgt_gw_wait_workers(&fix.g, 2, 10000), 2);
    cr_assert_eq(bgt_fix_echo_start(&fix, 0), 0);
    cr_assert_eq(start_orders(), 0, "orders-service did not come up");
}

static void setup(void)
{
    char sections[2048];

    make_keys();
    snprintf(sections, sizeof(sections),
             "[identity]\nclaim_headers = X-User-Email: email\n"
             "[auth]\njwks_file = %s/jwks.json\nhmac_secret_file = %s/hmac.secret\n"
             "algorithm = HS256\nissuer = " ISS "\naudience = " AUD "\n",
             keydir, keydir);
    /* A 100 KB token must get past the HTTP head limit to meet max_token_size. */
    start_with("max_header_size = 256k\n", sections);
}

static void teardown(void)
{
    char cmd[400];

    if (orders_pid > 0)
        bgt_stop_pid(orders_pid, 5000);
    orders_pid = 0;
    bgt_fix_stop(&fix);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(rsa_other);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(ec384);
    EVP_PKEY_free(ed);
    rsa = rsa_other = ec = ec384 = ed = NULL;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", keydir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", keydir);
}

TestSuite(gateway_auth, .init = setup, .fini = teardown, .timeout = 90);

static long long now_s(void)
{
    return (long long)time(NULL);
}

/* Claims with the right iss and aud, valid for an hour, plus extra members. */
static char *claims(const char *sub, const char *scope, const char *extra)
{
    char *p = malloc(1024);

    snprintf(p, 1024,
             "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"%s\",\"scope\":\"%s\","
             "\"exp\":%lld%s%s}",
             sub, scope, now_s() + 3600, extra ? "," : "", extra ? extra : "");
    return p;
}

static char *rs256(const char *payload)
{
    return bgt_jwt_make("RS256", "r1", rsa, NULL, 0, payload);
}

/* An RS256 token with claims(sub, scope, extra). */
static char *rs256_for(const char *sub, const char *scope, const char *extra)
{
    char *p = claims(sub, scope, extra), *tok = rs256(p);

    free(p);
    return tok;
}

static long orders_xlen(void)
{
    char out[64];

    cr_assert_eq(bgt_valkey_cmd(&fix.v, out, sizeof(out), "XLEN router:requests:{orders}"), 0);
    cr_assert_eq(out[0], ':', "%s", out);
    return atol(out + 1);
}

/* One request with an optional bearer token (and extra header lines). */
static int call(const char *method, const char *path, const char *token, const char *headers,
                const char *body, bgt_resp *r)
{
    size_t cap = (token ? strlen(token) : 0) + 4096, n;
    char *req = malloc(cap);
    int st;

    n = (size_t)snprintf(req, cap,
                         "%s %s HTTP/1.1\r\nHost: test\r\n%s%s%s%s"
                         "Content-Length: %zu\r\n\r\n%s",
                         method, path, token ? "Authorization: Bearer " : "", token ? token : "",
                         token ? "\r\n" : "", headers ? headers : "", body ? strlen(body) : 0,
                         body ? body : "");
    st = bgt_fix_request(&fix, req, n, r, 8000);
    free(req);
    return st;
}

/* status, WWW-Authenticate (NULL: none) and a problem+json body for a refusal. */
static void expect(const char *what, const char *method, const char *token, int status,
                   const char *challenge)
{
    char got[1024] = "", ctype[128] = "";
    long before = orders_xlen();
    bgt_resp r;

    cr_assert_eq(call(method, "/orders/o1", token, NULL, method[0] == 'P' ? "{}" : NULL, &r),
                 status, "%s: status %d, want %d\n%s", what, r.status, status, r.head);
    if (challenge != NULL) {
        cr_assert_eq(bgt_resp_header(&r, "WWW-Authenticate", got, sizeof(got)), 0, "%s", what);
        cr_assert_str_eq(got, challenge, "%s", what);
        cr_assert_eq(bgt_resp_header(&r, "Content-Type", ctype, sizeof(ctype)), 0);
        cr_assert_str_eq(ctype, "application/problem+json", "%s", what);
    }
    bgt_resp_free(&r);
    if (status == 401 || status == 403)
        cr_assert_eq(orders_xlen(), before, "%s: a refused request reached the request stream",
                     what);
}

Test(gateway_auth, orders_claims_anonymous_read_and_write_tokens)
{
    char *rd = rs256_for("reader", "orders:read", NULL);
    char *wr = rs256_for("writer", "orders:read orders:write", NULL);
    char *role = rs256_for("ops", "", "\"roles\":[\"orders:write\"]");
    bgt_resp r;

    expect("anonymous GET", "GET", NULL, 401, REALM);
    expect("anonymous PUT", "PUT", NULL, 401, REALM);
    expect("read token PUT", "PUT", rd, 403,
           REALM ", error=\"insufficient_scope\", scope=\"orders:write\"");
    cr_assert_eq(call("PUT", "/orders/o1", wr, NULL, "{\"qty\":1}", &r), 201, "%s", r.head);
    /* The service stored the sub it got in meta.claims (busgate_request_claim). */
    cr_assert(strstr(r.body, "\"owner\":\"writer\"") != NULL, "%s", r.body);
    bgt_resp_free(&r);
    cr_assert_eq(call("GET", "/orders/o1", rd, NULL, NULL, &r), 200, "%s", r.head);
    bgt_resp_free(&r);
    /* A claim held through the roles array, not the scope. */
    cr_assert_eq(call("PUT", "/orders/o2", role, NULL, "{}", &r), 201, "%s", r.head);
    bgt_resp_free(&r);
    free(rd);
    free(wr);
    free(role);
}

Test(gateway_auth, every_algorithm_and_every_refusal)
{
    char *ok = claims("alice", "orders:read", NULL), *tok, *big, pem[4096] = "", path[400];
    char payload[1024];
    FILE *fp;
    size_t pem_len;
    bgt_resp r;

    /* A known order, so valid tokens get 200 from the service itself. */
    tok = rs256_for("w", "orders:write", NULL);
    cr_assert_eq(call("PUT", "/orders/o1", tok, NULL, "{}", &r), 201, "%s", r.head);
    bgt_resp_free(&r);
    free(tok);

    tok = rs256(ok);
    expect("RS256", "GET", tok, 200, NULL);
    free(tok);
    tok = bgt_jwt_make("PS256", "p1", rsa, NULL, 0, ok);
    expect("PS256", "GET", tok, 200, NULL);
    free(tok);
    tok = bgt_jwt_make("RS512", "r5", rsa, NULL, 0, ok);
    expect("RS512", "GET", tok, 200, NULL);
    free(tok);
    tok = bgt_jwt_make("ES256", "e1", ec, NULL, 0, ok);
    expect("ES256", "GET", tok, 200, NULL);
    free(tok);
    tok = bgt_jwt_make("ES384", "e3", ec384, NULL, 0, ok);
    expect("ES384", "GET", tok, 200, NULL);
    free(tok);
    tok = bgt_jwt_make("EdDSA", "d1", ed, NULL, 0, ok);
    expect("EdDSA", "GET", tok, 200, NULL);
    free(tok);
    tok = bgt_jwt_make("HS256", NULL, NULL, SECRET, strlen(SECRET), ok);
    expect("HS256", "GET", tok, 200, NULL);
    free(tok);

    snprintf(payload, sizeof(payload),
             "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"scope\":\"orders:read\",\"exp\":%lld}",
             now_s() - 100);
    tok = rs256(payload);
    expect("expired", "GET", tok, 401, INVALID("the token has expired"));
    free(tok);
    snprintf(payload, sizeof(payload),
             "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"scope\":\"orders:read\",\"nbf\":%lld}",
             now_s() + 100);
    tok = rs256(payload);
    expect("not yet valid", "GET", tok, 401, INVALID("the token is not valid yet"));
    free(tok);
    tok = rs256("{\"iss\":\"https://evil\",\"aud\":\"" AUD "\",\"scope\":\"orders:read\"}");
    expect("wrong iss", "GET", tok, 401, INVALID("the token's issuer is not accepted"));
    free(tok);
    tok = rs256("{\"iss\":\"" ISS "\",\"aud\":\"other\",\"scope\":\"orders:read\"}");
    expect("wrong aud", "GET", tok, 401, INVALID("the token is not meant for this audience"));
    free(tok);
    tok = bgt_jwt_make("RS256", "r1", rsa_other, NULL, 0, ok);
    expect("bad signature", "GET", tok, 401, INVALID("the token's signature is not valid"));
    free(tok);
    tok = bgt_jwt_sign("none", NULL, NULL, 0, "{\"alg\":\"none\",\"kid\":\"r1\"}", ok);
    expect("alg none", "GET", tok, 401, INVALID("the token's algorithm is not the one of its key"));
    free(tok);

    snprintf(path, sizeof(path), "%s/rsa.pub", keydir);
    fp = fopen(path, "r");
    cr_assert_not_null(fp);
    pem_len = fread(pem, 1, sizeof(pem) - 1, fp);
    fclose(fp);
    tok = bgt_jwt_make("HS256", "r1", NULL, pem, pem_len, ok);
    expect("HS256 keyed with the RSA public key", "GET", tok, 401,
           INVALID("the token's algorithm is not the one of its key"));
    free(tok);
    tok = bgt_jwt_make("RS256", "r9", rsa, NULL, 0, ok);
    expect("unknown kid", "GET", tok, 401, INVALID("the token names no key the gateway knows"));
    free(tok);

    big = malloc(100 * 1024 + 1);
    memset(big, 'A', 100 * 1024);
    big[100 * 1024] = '\0';
    expect("100 KB token", "GET", big, 401,
           INVALID("the token is larger than the configured limit"));
    free(big);
    expect("garbage base64", "GET", "!!!.@@@.###", 401,
           INVALID("the token is not a signed JWT (three base64url parts of JSON)"));
    free(ok);
}

Test(gateway_auth, identity_headers_come_from_the_token_only)
{
    char *tok = rs256_for("alice", "x", "\"roles\":[\"admin\",\"ops\"],\"email\":\"a@x.test\"");
    bgt_resp r;

    /* Public route (echo has no claims): a forged identity is dropped, none is added. */
    cr_assert_eq(
        call("GET", "/echo/1", NULL, "X-User-Id: mallory\r\nX-User-Email: m@x\r\n", NULL, &r), 200);
    cr_assert(strstr(r.body, "mallory") == NULL && strstr(r.body, "m@x") == NULL, "%s", r.body);
    cr_assert(strstr(r.body, "X-User-Id") == NULL, "%s", r.body);
    bgt_resp_free(&r);

    cr_assert_eq(
        call("GET", "/echo/1", tok, "X-User-Id: mallory\r\nX-User-Roles: root\r\n", NULL, &r), 200);
    cr_assert(strstr(r.body, "mallory") == NULL && strstr(r.body, "root") == NULL, "%s", r.body);
    cr_assert(strstr(r.body, "[\"X-User-Id\",\"alice\"]") != NULL, "%s", r.body);
    cr_assert(strstr(r.body, "[\"X-User-Roles\",\"admin, ops\"]") != NULL, "%s", r.body);
    cr_assert(strstr(r.body, "[\"X-User-Email\",\"a@x.test\"]") != NULL, "%s", r.body);
    cr_assert(strstr(r.body, "[\"X-User-Claims\",\"{\\\"iss\\\":\\\"" ISS "\\\"") != NULL, "%s",
              r.body);
    bgt_resp_free(&r);

    /* A bad token is refused on a public route too. */
    tok[strlen(tok) - 2] = tok[strlen(tok) - 2] == 'A' ? 'B' : 'A';
    cr_assert_eq(call("GET", "/echo/1", tok, NULL, NULL, &r), 401);
    bgt_resp_free(&r);
    free(tok);
}

Test(gateway_auth, a_key_file_a_worker_cannot_use_fails_the_config_test)
{
    char path[400], out[4096];
    const char *args[] = {"-t", NULL};

    snprintf(path, sizeof(path), "%s/jwks.json", keydir);
    write_file(path, "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}]}");
    cr_assert_neq(bgt_gw_run(&fix.g, args, out, sizeof(out), 10000), 0, "%s", out);
    cr_assert(strstr(out, "jwks.json: keys[0]") != NULL, "%s", out);
}

Test(gateway_auth, refusals_keep_the_connection_and_skip_the_body)
{
    char *rd = rs256_for("reader", "orders:read", NULL), req[4096];
    bgt_conn c;
    bgt_resp r;
    int n;

    /* A refused PUT's body must be read past, not taken for the next request. */
    n = snprintf(req, sizeof(req),
                 "PUT /orders/k1 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
                 "Content-Length: 27\r\n\r\nGET /echo/smuggled HTTP/1.1"
                 "GET /orders/k1 HTTP/1.1\r\nHost: t\r\n\r\n",
                 rd);
    cr_assert_eq(bgt_conn_open(&c, fix.port), 0);
    cr_assert_eq(bgt_conn_send(&c, req, (size_t)n), 0);
    cr_assert_eq(bgt_conn_read(&c, &r, 0, 8000), 0);
    cr_assert_eq(r.status, 403, "%s", r.head);
    bgt_resp_free(&r);
    cr_assert_eq(bgt_conn_read(&c, &r, 0, 8000), 0);
    cr_assert_eq(r.status, 401, "%s", r.head);
    bgt_resp_free(&r);
    bgt_conn_close(&c);
    free(rd);
}

/* GET /orders/none with tok until it answers want (a reload starts new workers). */
static int wait_token_status(const char *tok, int want, int timeout_ms)
{
    long long until = bgt_now_ms() + timeout_ms;
    bgt_resp r;
    int st = -1;

    while (bgt_now_ms() < until) {
        st = call("GET", "/orders/none", tok, NULL, NULL, &r);
        bgt_resp_free(&r);
        if (st == want)
            return st;
        usleep(100 * 1000);
    }
    return st;
}

Test(gateway_auth, reload_rereads_the_keys_and_refuses_a_broken_file)
{
    char path[400], jwks[4096], *old_tok = rs256_for("a", "orders:read", NULL), *new_tok, *j;
    char *p = claims("a", "orders:read", NULL);
    EVP_PKEY *fresh = keygen("rsa3", "rsa");

    /* A broken file: the reload is refused, the running workers keep the old keys. */
    snprintf(path, sizeof(path), "%s/jwks.json", keydir);
    write_file(path, "{\"keys\":[{\"kty\":\"RSA\"}]}");
    cr_assert_eq(bgt_gw_signal(&fix.g, SIGHUP), 0);
    cr_assert_eq(bgt_gw_wait_log(&fix.g, "reload: [auth]", 1, 10000), 0);
    cr_assert_eq(wait_token_status(old_tok, 404, 2000), 404, "the old key stopped working");

    /* Rotation: r1 replaced by r2; after the reload only r2's tokens pass. */
    j = bgt_jwt_jwk(fresh, "r2", "RS256");
    snprintf(jwks, sizeof(jwks), "{\"keys\":[%s]}", j);
    write_file(path, jwks);
    new_tok = bgt_jwt_make("RS256", "r2", fresh, NULL, 0, p);
    cr_assert_eq(wait_token_status(new_tok, 401, 2000), 401, "r2 worked before the reload");
    cr_assert_eq(bgt_gw_signal(&fix.g, SIGHUP), 0);
    cr_assert_eq(wait_token_status(new_tok, 404, 15000), 404, "r2 never worked after the reload");
    cr_assert_eq(wait_token_status(old_tok, 401, 15000), 401, "r1 still works after the reload");
    free(j);
    free(p);
    free(old_tok);
    free(new_tok);
    EVP_PKEY_free(fresh);
}

/* Without [auth] nobody can prove a claim: such routes are closed, not open. */
static void setup_noauth(void)
{
    start_with("", "");
}

static void teardown_noauth(void)
{
    bgt_stop_pid(orders_pid, 5000);
    orders_pid = 0;
    bgt_fix_stop(&fix);
}

Test(gateway_auth, routes_with_claims_are_refused_without_auth, .init = setup_noauth,
     .fini = teardown_noauth)
{
    bgt_resp r;
    char got[512];

    cr_assert_eq(call("GET", "/orders/1", NULL, NULL, NULL, &r), 401);
    cr_assert_eq(bgt_resp_header(&r, "WWW-Authenticate", got, sizeof(got)), 0);
    cr_assert_str_eq(got, REALM);
    bgt_resp_free(&r);
    cr_assert_eq(call("GET", "/echo/1", NULL, NULL, NULL, &r), 200);
    bgt_resp_free(&r);
}
