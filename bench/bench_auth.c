/* bench_auth.c: what bearer-token authentication costs a worker per request: the parsed
 * request's token verified (signature, claims), the route's claim checked and the identity
 * headers built, for RS256, ES256, EdDSA and HS256 keys made by the openssl tool. Prints
 * microseconds per request, "verified" with the worker's token cache emptied before each
 * (every request checks the signature) and "cached" (the same token again, as a client
 * with one token sends it); never passes or fails. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "jwt_mint.h"

#define SECRET "bench-secret-bench-secret-bench-secret!!"
#define MIN_SECONDS 1.0

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int count_header(void *arg, const char *name, size_t nlen, const char *value, size_t vlen)
{
    (void)name;
    (void)value;
    *(size_t *)arg += nlen + vlen;
    return BG_OK;
}

/* One request as a worker sees it: parsed head, then auth and the identity headers. */
static int bench_one(bg_auth *a, const bg_config *cfg, const char *head, size_t len)
{
    static bg_http_request req;
    bg_http_parser p;
    bg_http_limits lim;
    bg_http_error e;
    bg_auth_result r;
    size_t sink = 0;

    bg_http_limits_default(&lim);
    bg_http_parser_init(&p);
    if (bg_http_parse(&p, head, len, &lim, &req, &e) != BG_HTTP_PARSE_DONE)
        return BG_ERR;
    bg_auth_request(a, cfg, &req, "orders:read", (int64_t)time(NULL), &r);
    if (r.status != 0 || bg_auth_identity(cfg, r.claims, r.text, count_header, &sink) != BG_OK)
        return BG_ERR;
    json_decref(r.claims);
    return BG_OK;
}

static int bench_alg(const char *dir, const char *alg, const char *keyfile, EVP_PKEY *key)
{
    static bg_config cfg;
    char head[4096], payload[256], err[BG_ERR_LEN];
    bg_auth a;
    char *tok;
    long n = 0;
    double t0;
    int len;

    bg_config_defaults(&cfg);
    snprintf(cfg.auth.algorithm, sizeof(cfg.auth.algorithm), "%s", alg);
    if (key != NULL)
        snprintf(cfg.auth.public_key_file, sizeof(cfg.auth.public_key_file), "%s/%s", dir, keyfile);
    else
        snprintf(cfg.auth.hmac_secret_file, sizeof(cfg.auth.hmac_secret_file), "%s/%s", dir,
                 keyfile);
    cfg.auth.enabled = 1;
    if (bg_auth_init(&a, &cfg, err) != BG_OK) {
        fprintf(stderr, "bench_auth: %s: %s\n", alg, err);
        return BG_ERR;
    }
    snprintf(payload, sizeof(payload),
             "{\"sub\":\"bench-user\",\"scope\":\"orders:read orders:write\",\"exp\":%lld,"
             "\"roles\":[\"a\",\"b\"]}",
             (long long)time(NULL) + 3600);
    tok = bgt_jwt_make(alg, NULL, key, SECRET, strlen(SECRET), payload);
    len = snprintf(head, sizeof(head),
                   "GET /orders/42 HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer %s\r\n\r\n",
                   tok ? tok : "");
    for (int cached = 0; cached < 2 && tok != NULL; cached++) {
        n = 0;
        t0 = now_s();
        while (n % 256 != 0 || now_s() - t0 < MIN_SECONDS) {
            if (!cached)
                bg_auth_cache_clear(&a); /* every request pays for the signature */
            if (bench_one(&a, &cfg, head, (size_t)len) != BG_OK) {
                fprintf(stderr, "bench_auth: %s: the token was refused\n", alg);
                break;
            }
            n++;
        }
        if (n > 0)
            printf("auth %-6s %-9s %8.2f us per request (%ld in %.1f s, one core)\n", alg,
                   cached ? "cached" : "verified", (now_s() - t0) * 1e6 / (double)n, n,
                   now_s() - t0);
    }
    free(tok);
    bg_auth_free(&a);
    return n > 0 ? BG_OK : BG_ERR;
}

static EVP_PKEY *keygen(const char *dir, const char *name, const char *type)
{
    char path[512];

    if (bgt_jwt_keygen(dir, name, type) != 0)
        return NULL;
    snprintf(path, sizeof(path), "%s/%s.key", dir, name);
    return bgt_jwt_load_key(path, 1);
}

int main(void)
{
    char dir[] = "/tmp/busgate-bench-auth-XXXXXX", path[600], cmd[600];
    EVP_PKEY *rsa, *ec, *ed;
    FILE *fp;
    int rc = 0;

    if (mkdtemp(dir) == NULL)
        return 1;
    rsa = keygen(dir, "rsa", "rsa");
    ec = keygen(dir, "ec", "ec");
    ed = keygen(dir, "ed", "ed25519");
    snprintf(path, sizeof(path), "%s/hmac", dir);
    if ((fp = fopen(path, "w")) != NULL) {
        fputs(SECRET, fp);
        fclose(fp);
    }
    if (rsa == NULL || ec == NULL || ed == NULL || fp == NULL) {
        fprintf(stderr, "bench_auth: cannot make keys with the openssl tool\n");
        rc = 1;
    } else {
        rc |= bench_alg(dir, "RS256", "rsa.pub", rsa) != BG_OK;
        rc |= bench_alg(dir, "ES256", "ec.pub", ec) != BG_OK;
        rc |= bench_alg(dir, "EdDSA", "ed.pub", ed) != BG_OK;
        rc |= bench_alg(dir, "HS256", "hmac", NULL) != BG_OK;
    }
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(ed);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        rc = 1;
    return rc;
}
