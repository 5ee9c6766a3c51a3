/* test_jwt.c: the JWT verifier from raw bytes: every algorithm with keys made by the openssl
 * tool, key sets from PEM, JWKS and secrets, and each way a token is refused. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jwt.h"
#include "jwt_mint.h"

#define NOW 1700000000LL
#define SECRET "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static char dir[] = "/tmp/bg-test-jwt-XXXXXX";
static EVP_PKEY *rsa, *ec, *ec384, *ed, *rsa2;
static char *rsa_pub_pem;
static size_t rsa_pub_len;

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "r");
    char *buf = calloc(1, 65536);

    cr_assert_not_null(fp, "%s", path);
    *len = fread(buf, 1, 65535, fp);
    fclose(fp);
    return buf;
}

static EVP_PKEY *make(const char *name, const char *type)
{
    char path[512];

    cr_assert_eq(bgt_jwt_keygen(dir, name, type), 0, "openssl genpkey %s", type);
    snprintf(path, sizeof(path), "%s/%s.key", dir, name);
    return bgt_jwt_load_key(path, 1);
}

static void setup(void)
{
    char path[512];

    cr_assert_not_null(mkdtemp(dir));
    rsa = make("rsa", "rsa");
    rsa2 = make("rsa2", "rsa");
    ec = make("ec", "ec");
    ec384 = make("ec384", "ec384");
    ed = make("ed", "ed25519");
    snprintf(path, sizeof(path), "%s/rsa.pub", dir);
    rsa_pub_pem = slurp(path, &rsa_pub_len);
}

static void teardown(void)
{
    char cmd[600];

    EVP_PKEY_free(rsa);
    EVP_PKEY_free(rsa2);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(ec384);
    EVP_PKEY_free(ed);
    free(rsa_pub_pem);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(jwt, .init = setup, .fini = teardown, .timeout = 60);

static const bg_jwt_policy open_policy = {.leeway_s = 30, .max_size = 8192};

static bg_jwt_status check(const bg_jwt_keyset *ks, const bg_jwt_policy *p, const char *tok)
{
    json_t *claims = NULL;
    bg_jwt_status st;

    cr_assert_not_null(tok);
    st = bg_jwt_verify(ks, p, tok, strlen(tok), NOW, &claims);
    cr_assert_eq(st == BG_JWT_OK, claims != NULL);
    json_decref(claims);
    return st;
}

/* A key set of one PEM public key. */
static void pem_set(bg_jwt_keyset *ks, const char *name, const char *alg)
{
    char path[512], err[BG_ERR_LEN];
    size_t len;
    char *pem;

    snprintf(path, sizeof(path), "%s/%s.pub", dir, name);
    pem = slurp(path, &len);
    memset(ks, 0, sizeof(*ks));
    cr_assert_eq(bg_jwt_keyset_add_pem(ks, pem, len, alg, err), BG_OK, "%s: %s", name, err);
    free(pem);
}

static const char *payload = "{\"sub\":\"alice\",\"exp\":1700000600,\"scope\":\"a b\"}";

Test(jwt, every_algorithm_verifies_with_its_key)
{
    static const struct {
        const char *alg, *key;
    } cases[] = {{"RS256", "rsa"}, {"RS384", "rsa"},   {"RS512", "rsa"}, {"PS256", "rsa"},
                 {"ES256", "ec"},  {"ES384", "ec384"}, {"EdDSA", "ed"}};
    EVP_PKEY *keys[] = {rsa, rsa, rsa, rsa, ec, ec384, ed};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bg_jwt_keyset ks;
        char *tok = bgt_jwt_make(cases[i].alg, NULL, keys[i], NULL, 0, payload);
        pem_set(&ks, cases[i].key, cases[i].key[0] == 'r' ? cases[i].alg : NULL);
        cr_assert_eq(ks.keys[0].alg, (bg_jwt_alg)i, "%s", cases[i].alg);
        cr_assert_eq(check(&ks, &open_policy, tok), BG_JWT_OK, "%s", cases[i].alg);
        free(tok);
        bg_jwt_keyset_free(&ks);
    }
}

Test(jwt, hmac_algorithms_and_short_secrets)
{
    static const char *algs[] = {"HS256", "HS384", "HS512"};
    char err[BG_ERR_LEN];

    for (size_t i = 0; i < 3; i++) {
        bg_jwt_keyset ks = {0};
        char *tok = bgt_jwt_make(algs[i], NULL, NULL, SECRET, 64, payload);
        cr_assert_eq(bg_jwt_keyset_add_secret(&ks, SECRET, 64, algs[i], err), BG_OK, "%s", err);
        cr_assert_eq(check(&ks, &open_policy, tok), BG_JWT_OK, "%s", algs[i]);
        free(tok);
        tok = bgt_jwt_make(algs[i], NULL, NULL, "wrong", 5, payload);
        cr_assert_eq(check(&ks, &open_policy, tok), BG_JWT_E_SIGNATURE);
        free(tok);
        bg_jwt_keyset_free(&ks);
    }
    /* RFC 7518 3.2: a secret shorter than the hash is refused when loading. */
    bg_jwt_keyset ks = {0};
    cr_assert_eq(bg_jwt_keyset_add_secret(&ks, SECRET, 31, "HS256", err), BG_ERR);
    cr_assert_eq(bg_jwt_keyset_add_secret(&ks, SECRET, 32, "RS256", err), BG_ERR);
    bg_jwt_keyset_free(&ks);
}

Test(jwt, alg_none_and_header_alg_never_choose)
{
    bg_jwt_keyset ks;
    char *tok;

    pem_set(&ks, "rsa", "RS256");
    tok = bgt_jwt_sign("none", NULL, NULL, 0, "{\"alg\":\"none\"}", payload);
    cr_assert_eq(check(&ks, &open_policy, tok), BG_JWT_E_ALG);
    free(tok);
    tok = bgt_jwt_sign("none", NULL, NULL, 0, "{\"alg\":\"NONE\"}", payload);
    cr_assert_eq(check(&ks, &open_policy, tok), BG_JWT_E_ALG);
    free(tok);
    /* The classic confusion: HS256 keyed with the RSA public key's PEM text. */
    tok = bgt_jwt_make("HS256", NULL, NULL, rsa_pub_pem, rsa_pub_len, payload);
    cr_assert_eq(check(&ks, &open_policy, tok), BG_JWT_E_ALG);
    free(tok);
    /* Signed correctly, but with another algorithm than the key's. */
    tok = bgt_jwt_make("RS384", NULL, rsa, NULL, 0, payload);
    cr_assert_eq(check(&ks, &open_policy, tok), BG_JWT_E_ALG);
    free(tok);
    tok = bgt_jwt_sign("RS256", rsa, NULL, 0, "{\"typ\":\"JWT\"}", payload);
    cr_assert_eq(check(&ks, &open_policy, tok), BG_JWT_E_ALG);
    free(tok);
    bg_jwt_keyset_free(&ks);
}

Test(jwt, signature_tampering)
{
    bg_jwt_keyset ks;
    char *tok, *dot;

    pem_set(&ks, "rsa", "RS256");
    tok = bgt_jwt_make("RS256", NULL, rsa2, NULL, 0, payload);
    cr_assert_eq(check(&ks, &open_policy, tok), BG_JWT_E_SIGNATURE);
    free(tok);
    tok = bgt_jwt_make("RS256", NULL, rsa, NULL, 0, payload);
    dot = strchr(tok, '.') + 1;
    *dot = *dot == 'e' ? 'f' : 'e'; /* one payload character */
    cr_assert_neq(check(&ks, &open_policy, tok), BG_JWT_OK);
    free(tok);
    bg_jwt_keyset_free(&ks);

    pem_set(&ks, "ec", NULL);
    tok = bgt_jwt_make("ES256", NULL, ec, NULL, 0, payload);
    tok[strlen(tok) - 3] = '\0'; /* R || S cut short */
    cr_assert_neq(check(&ks, &open_policy, tok), BG_JWT_OK);
    free(tok);
    bg_jwt_keyset_free(&ks);
}

static char *jwks_of(const char *a, const char *b)
{
    char *out = malloc(16384);

    snprintf(out, 16384, "{\"keys\":[%s%s%s]}", a, b ? "," : "", b ? b : "");
    return out;
}

Test(jwt, jwks_selects_by_kid)
{
    char *j1 = bgt_jwt_jwk(rsa, "r1", "RS256"), *j2 = bgt_jwt_jwk(ec, "e1", NULL);
    char *jwks = jwks_of(j1, j2), err[BG_ERR_LEN], *tok;
    bg_jwt_keyset ks = {0};

    cr_assert_eq(bg_jwt_keyset_add_jwks(&ks, jwks, strlen(jwks), NULL, err), BG_OK, "%s", err);
    cr_assert_eq(ks.n, 2);
    cr_assert_eq(ks.keys[1].alg, BG_JWT_ES256);
    tok = bgt_jwt_make("RS256", "r1", rsa, NULL, 0, payload);
    cr_assert_eq(check(&ks, &open_policy, tok), BG_JWT_OK);
    free(tok);
    tok = bgt_jwt_make("ES256", "e1", ec, NULL, 0, payload);
    cr_assert_eq(check(&ks, &open_policy, tok), BG_JWT_OK);
    free(tok);
    tok = bgt_jwt_make("RS256", "r9", rsa, NULL, 0, payload);
    cr_assert_eq(check(&ks, &open_policy, tok), BG_JWT_E_KID);
    free(tok);
    /* The right kid with the other key's algorithm. */
    tok = bgt_jwt_make("ES256", "r1", ec, NULL, 0, payload);
    cr_assert_eq(check(&ks, &open_policy, tok), BG_JWT_E_ALG);
    free(tok);
    /* No kid: any key whose algorithm matches may verify. */
    tok = bgt_jwt_make("ES256", NULL, ec, NULL, 0, payload);
    cr_assert_eq(check(&ks, &open_policy, tok), BG_JWT_OK);
    free(tok);
    bg_jwt_keyset_free(&ks);
    free(jwks);
    free(j1);
    free(j2);
}

Test(jwt, jwks_key_rules)
{
    char *rsa_noalg = bgt_jwt_jwk(rsa, "r", NULL), *ed_jwk = bgt_jwt_jwk(ed, "d", NULL);
    char *wrong = bgt_jwt_jwk(ec, "w", "RS256"), *jwks, err[BG_ERR_LEN], *tok;
    bg_jwt_keyset ks = {0};

    jwks = jwks_of(rsa_noalg, NULL);
    cr_assert_eq(bg_jwt_keyset_add_jwks(&ks, jwks, strlen(jwks), NULL, err), BG_ERR);
    cr_assert(strstr(err, "algorithm") != NULL, "%s", err);
    cr_assert_eq(bg_jwt_keyset_add_jwks(&ks, jwks, strlen(jwks), "PS256", err), BG_OK, "%s", err);
    cr_assert_eq(ks.keys[0].alg, BG_JWT_PS256);
    free(jwks);
    jwks = jwks_of(wrong, NULL);
    cr_assert_eq(bg_jwt_keyset_add_jwks(&ks, jwks, strlen(jwks), NULL, err), BG_ERR);
    free(jwks);
    jwks = jwks_of(ed_jwk, "{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"AQAB\",\"e\":\"AQAB\"}");
    cr_assert_eq(bg_jwt_keyset_add_jwks(&ks, jwks, strlen(jwks), NULL, err), BG_OK, "%s", err);
    cr_assert_eq(ks.n, 2, "the encryption key is skipped");
    tok = bgt_jwt_make("EdDSA", "d", ed, NULL, 0, payload);
    cr_assert_eq(check(&ks, &open_policy, tok), BG_JWT_OK);
    free(tok);
    cr_assert_eq(bg_jwt_keyset_add_jwks(&ks, "{\"keys\":{}}", 11, NULL, err), BG_ERR);
    cr_assert_eq(bg_jwt_keyset_add_jwks(&ks, "[", 1, NULL, err), BG_ERR);
    cr_assert_eq(bg_jwt_keyset_add_jwks(
                     &ks, "{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2hvcnQ\",\"alg\":\"HS256\"}]}", 52,
                     NULL, err),
                 BG_ERR);
    bg_jwt_keyset_free(&ks);
    free(jwks);
    free(rsa_noalg);
    free(ed_jwk);
    free(wrong);
}

Test(jwt, time_issuer_audience)
{
    bg_jwt_policy p = {
        .issuer = "https://idp", .audience = "api", .leeway_s = 30, .max_size = 8192};
    static const struct {
        const char *payload;
        bg_jwt_status want;
    } cases[] = {
        {"{\"iss\":\"https://idp\",\"aud\":\"api\",\"exp\":1700000600}", BG_JWT_OK},
        {"{\"iss\":\"https://idp\",\"aud\":[\"x\",\"api\"],\"exp\":1700000600}", BG_JWT_OK},
        {"{\"iss\":\"https://idp\",\"aud\":\"api\",\"exp\":1699999980}", BG_JWT_OK}, /* leeway */
        {"{\"iss\":\"https://idp\",\"aud\":\"api\",\"exp\":1699999970}", BG_JWT_E_EXPIRED},
        {"{\"iss\":\"https://idp\",\"aud\":\"api\",\"nbf\":1700000020}", BG_JWT_OK},
        {"{\"iss\":\"https://idp\",\"aud\":\"api\",\"nbf\":1700000031}", BG_JWT_E_NOT_YET},
        {"{\"iss\":\"https://evil\",\"aud\":\"api\"}", BG_JWT_E_ISSUER},
        {"{\"aud\":\"api\"}", BG_JWT_E_ISSUER},
        {"{\"iss\":\"https://idp\",\"aud\":\"other\"}", BG_JWT_E_AUDIENCE},
        {"{\"iss\":\"https://idp\",\"aud\":[]}", BG_JWT_E_AUDIENCE},
        {"{\"iss\":\"https://idp\",\"aud\":\"api\",\"exp\":\"soon\"}", BG_JWT_E_CLAIMS},
    };
    bg_jwt_keyset ks;

    pem_set(&ks, "ed", NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *tok = bgt_jwt_make("EdDSA", NULL, ed, NULL, 0, cases[i].payload);
        cr_assert_eq(check(&ks, &p, tok), cases[i].want, "%s", cases[i].payload);
        free(tok);
    }
    bg_jwt_keyset_free(&ks);
}

Test(jwt, malformed_tokens)
{
    static const char *const bad[] = {
        "",
        ".",
        "..",
        "a.b",
        "a.b.c.d",
        "!!!.e30.AA",
        "e30.e30",
        "e30..AA",
        "eyJhbGciOiJFZERTQSJ9.W10.AA",                       /* payload is an array */
        "eyJhbGciOiJFZERTQSJ9=.e30.AA",                      /* padding */
        "eyJhbGciOiJFZERTQSJ9.e30.A",                        /* impossible length */
        "eyJhbGciOiJFZERTQSIsImNyaXQiOlsiYjY0Il19.e30.AAAA", /* crit */
    };
    bg_jwt_keyset ks;

    pem_set(&ks, "ed", NULL);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(check(&ks, &open_policy, bad[i]), BG_JWT_E_FORMAT, "'%s'", bad[i]);
    bg_jwt_keyset_free(&ks);
}

Test(jwt, size_limit_before_parsing)
{
    bg_jwt_policy p = open_policy;
    char *big = malloc(100 * 1024 + 1);
    bg_jwt_keyset ks;

    memset(big, 'A', 100 * 1024);
    big[100 * 1024] = '\0';
    pem_set(&ks, "ed", NULL);
    cr_assert_eq(check(&ks, &p, big), BG_JWT_E_SIZE);
    p.max_size = 0;
    cr_assert_eq(check(&ks, &p, big), BG_JWT_E_FORMAT);
    bg_jwt_keyset_free(&ks);
    free(big);
}

Test(jwt, base64url_is_strict)
{
    unsigned char out[16];
    size_t n;
    char enc[32];

    cr_assert_eq(bg_b64url_decode("aGk", 3, out, &n), BG_OK);
    cr_assert_eq(n, 2);
    cr_assert_eq(memcmp(out, "hi", 2), 0);
    cr_assert_eq(bg_b64url_decode("aGl", 3, out, &n), BG_ERR, "non-zero trailing bits");
    cr_assert_eq(bg_b64url_decode("aG+", 3, out, &n), BG_ERR);
    cr_assert_eq(bg_b64url_decode("aGk=", 4, out, &n), BG_ERR);
    cr_assert_eq(bg_b64url_encode("\xfb\xff", 2, enc), 3);
    cr_assert_str_eq(enc, "-_8");
}

/* Members longer than a key part can be are refused before decoding (1368 characters
 * would decode to 1026 bytes). */
Test(jwt, jwks_oversized_members)
{
    static const char *const members[] = {
        "{\"kty\":\"RSA\",\"alg\":\"RS256\",\"e\":\"AQAB\",\"n\":\"",
        "{\"kty\":\"oct\",\"alg\":\"HS256\",\"k\":\""};
    char *doc = malloc(4096), err[BG_ERR_LEN];
    bg_jwt_keyset ks = {0};

    for (size_t i = 0; i < 2; i++) {
        int n = snprintf(doc, 4096, "{\"keys\":[%s", members[i]);
        memset(doc + n, 'A', 1368);
        snprintf(doc + n + 1368, 4096 - (size_t)n - 1368, "\"}]}");
        cr_assert_eq(bg_jwt_keyset_add_jwks(&ks, doc, strlen(doc), NULL, err), BG_ERR);
        cr_assert(strstr(err, "longer than") != NULL, "%s", err);
    }
    free(doc);
}

Test(jwt, pem_needs_alg_for_rsa_and_refuses_mismatch)
{
    bg_jwt_keyset ks = {0};
    char err[BG_ERR_LEN];

    cr_assert_eq(bg_jwt_keyset_add_pem(&ks, rsa_pub_pem, rsa_pub_len, NULL, err), BG_ERR);
    cr_assert_eq(bg_jwt_keyset_add_pem(&ks, rsa_pub_pem, rsa_pub_len, "ES256", err), BG_ERR);
    cr_assert_eq(bg_jwt_keyset_add_pem(&ks, rsa_pub_pem, rsa_pub_len, "none", err), BG_ERR);
    cr_assert_eq(bg_jwt_keyset_add_pem(&ks, "garbage", 7, "RS256", err), BG_ERR);
    cr_assert_eq(ks.n, 0);
    cr_assert_eq(bg_jwt_keyset_warm(&ks, err), BG_OK);
}
