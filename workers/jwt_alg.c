/* jwt_alg.c: the JWS algorithms: names, which key serves which, and the signature check
 * itself, each through OpenSSL's EVP interface (no signature arithmetic of our own). */
#include "jwt.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>
#include <string.h>

/* RFC 7518 3.3: RSA keys of at least 2048 bits. */
#define JWT_RSA_MIN_BITS 2048

static const char *const alg_names[BG_JWT_NALGS] = {
    "RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA", "HS256", "HS384", "HS512",
};

int bg_jwt_alg_parse(const char *name, bg_jwt_alg *out)
{
    for (int i = 0; i < BG_JWT_NALGS; i++) {
        if (strcmp(name, alg_names[i]) == 0) {
            *out = (bg_jwt_alg)i;
            return BG_OK;
        }
    }
    return BG_ERR;
}

const char *bg_jwt_alg_name(bg_jwt_alg alg)
{
    return alg >= 0 && alg < BG_JWT_NALGS ? alg_names[alg] : "?";
}

/* The hash of alg; NULL for EdDSA, which hashes inside the signature scheme. */
static const EVP_MD *alg_md(bg_jwt_alg alg)
{
    switch (alg) {
    case BG_JWT_RS256:
    case BG_JWT_PS256:
    case BG_JWT_ES256:
    case BG_JWT_HS256:
        return EVP_sha256();
    case BG_JWT_RS384:
    case BG_JWT_ES384:
    case BG_JWT_HS384:
        return EVP_sha384();
    case BG_JWT_RS512:
    case BG_JWT_HS512:
        return EVP_sha512();
    default:
        return NULL;
    }
}

static int ec_curve_is(EVP_PKEY *pkey, const char *curve)
{
    char name[64];
    size_t len = 0;

    if (!EVP_PKEY_is_a(pkey, "EC") ||
        !EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof(name), &len))
        return 0;
    return strcmp(name, curve) == 0;
}

int bg_jwt_alg_fits(bg_jwt_alg alg, EVP_PKEY *pkey, size_t secret_len)
{
    switch (alg) {
    case BG_JWT_RS256:
    case BG_JWT_RS384:
    case BG_JWT_RS512:
    case BG_JWT_PS256:
        return pkey != NULL && EVP_PKEY_is_a(pkey, "RSA") &&
               EVP_PKEY_get_bits(pkey) >= JWT_RSA_MIN_BITS;
    case BG_JWT_ES256:
        return pkey != NULL && ec_curve_is(pkey, SN_X9_62_prime256v1);
    case BG_JWT_ES384:
        return pkey != NULL && ec_curve_is(pkey, SN_secp384r1);
    case BG_JWT_EDDSA:
        return pkey != NULL && EVP_PKEY_is_a(pkey, "ED25519");
    case BG_JWT_HS256:
    case BG_JWT_HS384:
    case BG_JWT_HS512:
        /* RFC 7518 3.2: a key at least as long as the hash output. */
        return pkey == NULL && secret_len >= (size_t)EVP_MD_get_size(alg_md(alg));
    default:
        return 0;
    }
}

/* JWS carries an ECDSA signature as R || S, each the curve's size (RFC 7518 3.4);
 * OpenSSL verifies the DER form. Returns the DER length, 0 when sig cannot be one. */
static size_t ecdsa_raw_to_der(const unsigned char *sig, size_t slen, size_t half,
                               unsigned char **der)
{
    ECDSA_SIG *es = NULL;
    BIGNUM *r = NULL, *s = NULL;
    int n = 0;

    *der = NULL;
    if (slen != 2 * half)
        return 0;
    es = ECDSA_SIG_new();
    r = BN_bin2bn(sig, (int)half, NULL);
    s = BN_bin2bn(sig + half, (int)half, NULL);
    if (es == NULL || r == NULL || s == NULL || !ECDSA_SIG_set0(es, r, s))
        goto cleanup;
    r = s = NULL; /* es owns them now */
    n = i2d_ECDSA_SIG(es, der);
cleanup:
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return n > 0 ? (size_t)n : 0;
}

static int hmac_verify(const bg_jwt_key *key, const unsigned char *data, size_t dlen,
                       const unsigned char *sig, size_t slen)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mlen = 0;
    const EVP_MD *md = alg_md(key->alg);

    if (HMAC(md, key->secret, (int)key->secret_len, data, dlen, mac, &mlen) == NULL)
        return BG_ERR;
    /* Constant time: how many leading bytes matched must not show in the timing. */
    return slen == mlen && CRYPTO_memcmp(mac, sig, mlen) == 0 ? BG_OK : BG_ERR;
}

/* Padding and salt for PS256 (RFC 7518 3.5: salt as long as the hash, MGF1 with it). */
static int pss_setup(EVP_PKEY_CTX *pctx)
{
    return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
           EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0 &&
           EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) > 0;
}

static int pkey_verify(const bg_jwt_key *key, const unsigned char *data, size_t dlen,
                       const unsigned char *sig, size_t slen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char *der = NULL;
    int ok = 0;

    if (ctx == NULL || EVP_DigestVerifyInit(ctx, &pctx, alg_md(key->alg), NULL, key->pkey) != 1)
        goto cleanup;
    if (key->alg == BG_JWT_PS256 && !pss_setup(pctx))
        goto cleanup;
    if (key->alg == BG_JWT_ES256 || key->alg == BG_JWT_ES384) {
        slen = ecdsa_raw_to_der(sig, slen, key->alg == BG_JWT_ES256 ? 32 : 48, &der);
        if (slen == 0)
            goto cleanup;
        sig = der;
    }
    ok = EVP_DigestVerify(ctx, sig, slen, data, dlen) == 1;
cleanup:
    OPENSSL_free(der);
    EVP_MD_CTX_free(ctx);
    /* A refused signature leaves errors queued; the bus's TLS reads that queue. */
    ERR_clear_error();
    return ok ? BG_OK : BG_ERR;
}

int bg_jwt_sig_verify(const bg_jwt_key *key, const unsigned char *data, size_t dlen,
                      const unsigned char *sig, size_t slen)
{
    if (key->pkey == NULL)
        return hmac_verify(key, data, dlen, sig, slen);
    return pkey_verify(key, data, dlen, sig, slen);
}

int bg_jwt_keyset_warm(const bg_jwt_keyset *ks, char *err)
{
    static const unsigned char zero[64];

    for (size_t i = 0; i < ks->n; i++) {
        /* The outcome is a failed check; what counts is that the methods got fetched. */
        (void)bg_jwt_sig_verify(&ks->keys[i], zero, sizeof(zero), zero, sizeof(zero));
    }
    (void)err;
    return BG_OK;
}
