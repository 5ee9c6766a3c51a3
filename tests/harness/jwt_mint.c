/* jwt_mint.c: issue JWTs for the tests: keys from the openssl tool, signatures with EVP. */
#include "jwt_mint.h"

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jwt.h"

static int run_quiet(const char *const *argv)
{
    int status;
    pid_t pid = fork();

    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        dup2(fd, 2);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

int bgt_jwt_keygen(const char *dir, const char *name, const char *type)
{
    char key[512], pub[512];
    const char *algo = strcmp(type, "rsa") == 0       ? "RSA"
                       : strcmp(type, "ed25519") == 0 ? "ED25519"
                                                      : "EC";
    const char *opt = strcmp(type, "rsa") == 0     ? "rsa_keygen_bits:2048"
                      : strcmp(type, "ec") == 0    ? "ec_paramgen_curve:P-256"
                      : strcmp(type, "ec384") == 0 ? "ec_paramgen_curve:P-384"
                                                   : NULL;
    const char *gen[] = {
        "openssl", "genpkey", "-algorithm", algo, "-out", key, opt ? "-pkeyopt" : NULL, opt, NULL};
    const char *pubout[] = {"openssl", "pkey", "-in", key, "-pubout", "-out", pub, NULL};

    snprintf(key, sizeof(key), "%s/%s.key", dir, name);
    snprintf(pub, sizeof(pub), "%s/%s.pub", dir, name);
    if (run_quiet(gen) != 0 || run_quiet(pubout) != 0)
        return -1;
    return 0;
}

EVP_PKEY *bgt_jwt_load_key(const char *path, int private_key)
{
    FILE *fp = fopen(path, "r");
    EVP_PKEY *k;

    if (fp == NULL)
        return NULL;
    k = private_key ? PEM_read_PrivateKey(fp, NULL, NULL, NULL)
                    : PEM_read_PUBKEY(fp, NULL, NULL, NULL);
    fclose(fp);
    return k;
}

static const EVP_MD *mint_md(const char *alg)
{
    if (strcmp(alg + 2, "256") == 0)
        return EVP_sha256();
    if (strcmp(alg + 2, "384") == 0)
        return EVP_sha384();
    if (strcmp(alg + 2, "512") == 0)
        return EVP_sha512();
    return NULL;
}

/* DER ECDSA signature to the JWS form R || S, each half bytes. */
static size_t der_to_raw(const unsigned char *der, size_t len, unsigned char *out, int half)
{
    ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &der, (long)len);
    const BIGNUM *r, *sv;

    if (s == NULL)
        return 0;
    ECDSA_SIG_get0(s, &r, &sv);
    BN_bn2binpad(r, out, half);
    BN_bn2binpad(sv, out + half, half);
    ECDSA_SIG_free(s);
    return (size_t)(2 * half);
}

static size_t mint_pkey_sign(const char *alg, EVP_PKEY *key, const unsigned char *data, size_t dlen,
                             unsigned char *sig)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char der[1024];
    size_t slen = sizeof(der);
    int ok;

    ok = EVP_DigestSignInit(ctx, &pctx, strcmp(alg, "EdDSA") == 0 ? NULL : mint_md(alg), NULL,
                            key) == 1;
    if (ok && alg[0] == 'P')
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0;
    ok = ok && EVP_DigestSign(ctx, der, &slen, data, dlen) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return 0;
    if (alg[0] == 'E' && alg[1] == 'S')
        return der_to_raw(der, slen, sig, strcmp(alg, "ES256") == 0 ? 32 : 48);
    memcpy(sig, der, slen);
    return slen;
}

char *bgt_jwt_sign(const char *alg, EVP_PKEY *key, const void *secret, size_t secret_len,
                   const char *header, const char *payload)
{
    size_t hl = strlen(header), pl = strlen(payload), at, slen = 0;
    char *tok = malloc((hl + pl) * 2 + 2048);
    unsigned char sig[1024];
    unsigned int mlen = 0;

    if (tok == NULL)
        return NULL;
    at = bg_b64url_encode(header, hl, tok);
    tok[at++] = '.';
    at += bg_b64url_encode(payload, pl, tok + at);
    if (alg[0] == 'H') {
        HMAC(mint_md(alg), secret, (int)secret_len, (unsigned char *)tok, at, sig, &mlen);
        slen = mlen;
    } else if (strcmp(alg, "none") != 0) {
        slen = mint_pkey_sign(alg, key, (unsigned char *)tok, at, sig);
        if (slen == 0) {
            free(tok);
            return NULL;
        }
    }
    tok[at++] = '.';
    bg_b64url_encode(sig, slen, tok + at);
    return tok;
}

char *bgt_jwt_make(const char *alg, const char *kid, EVP_PKEY *key, const void *secret,
                   size_t secret_len, const char *payload)
{
    char header[256];

    if (kid != NULL)
        snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", alg,
                 kid);
    else
        snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
    return bgt_jwt_sign(alg, key, secret, secret_len, header, payload);
}

/* A key parameter as base64url (fixed width when pad > 0). */
static void jwk_bn(EVP_PKEY *key, const char *param, int pad, char *out)
{
    BIGNUM *bn = NULL;
    unsigned char buf[1024];
    int n;

    EVP_PKEY_get_bn_param(key, param, &bn);
    n = pad > 0 ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    bg_b64url_encode(buf, (size_t)n, out);
    BN_free(bn);
}

char *bgt_jwt_jwk(EVP_PKEY *key, const char *kid, const char *alg)
{
    char a[1500], b[1500], head[256], *out = malloc(4096);
    unsigned char raw[64];
    size_t rlen = sizeof(raw);

    snprintf(head, sizeof(head), "%s%s%s%s%s%s", kid ? "\"kid\":\"" : "", kid ? kid : "",
             kid ? "\"," : "", alg ? "\"alg\":\"" : "", alg ? alg : "", alg ? "\"," : "");
    if (EVP_PKEY_is_a(key, "RSA")) {
        jwk_bn(key, OSSL_PKEY_PARAM_RSA_N, 0, a);
        jwk_bn(key, OSSL_PKEY_PARAM_RSA_E, 0, b);
        snprintf(out, 4096, "{%s\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"}", head, a, b);
    } else if (EVP_PKEY_is_a(key, "EC")) {
        int p384 = EVP_PKEY_get_bits(key) == 384;
        jwk_bn(key, OSSL_PKEY_PARAM_EC_PUB_X, p384 ? 48 : 32, a);
        jwk_bn(key, OSSL_PKEY_PARAM_EC_PUB_Y, p384 ? 48 : 32, b);
        snprintf(out, 4096, "{%s\"kty\":\"EC\",\"crv\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"}", head,
                 p384 ? "P-384" : "P-256", a, b);
    } else {
        EVP_PKEY_get_raw_public_key(key, raw, &rlen);
        bg_b64url_encode(raw, rlen, a);
        snprintf(out, 4096, "{%s\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\"}", head, a);
    }
    return out;
}
