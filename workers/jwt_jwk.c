/* jwt_jwk.c: JSON Web Keys (RFC 7517/7518/8037) to OpenSSL keys, built from their
 * parameters with EVP_PKEY_fromdata; and a JWK Set into a key set. */
#include "jwt.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <string.h>

#define JWK_PART_MAX 1024 /* decoded bytes of one parameter: a 8192-bit modulus */

/* Member name of jwk, base64url-decoded into out (JWK_PART_MAX bytes). */
static int jwk_bytes(json_t *jwk, const char *name, unsigned char *out, size_t *len, char *err)
{
    json_t *v = json_object_get(jwk, name);
    size_t slen = json_string_length(v);

    /* 4 characters carry 3 bytes: more than this could not fit out. */
    if (json_is_string(v) && slen / 4 * 3 + (slen % 4 ? slen % 4 - 1 : 0) > JWK_PART_MAX) {
        bg_set_error(err, "member '%s' is longer than %d bytes", name, JWK_PART_MAX);
        return BG_ERR;
    }
    if (!json_is_string(v) || slen == 0 ||
        bg_b64url_decode(json_string_value(v), slen, out, len) != BG_OK) {
        bg_set_error(err, "member '%s' is missing or not base64url", name);
        return BG_ERR;
    }
    return BG_OK;
}

static EVP_PKEY *jwk_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pkey = NULL;

    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    OSSL_PARAM_free(params);
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

static EVP_PKEY *jwk_rsa(json_t *jwk, char *err)
{
    unsigned char n[JWK_PART_MAX], e[JWK_PART_MAX];
    size_t nlen, elen;
    BIGNUM *bn = NULL, *be = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY *pkey = NULL;

    if (jwk_bytes(jwk, "n", n, &nlen, err) != BG_OK || jwk_bytes(jwk, "e", e, &elen, err) != BG_OK)
        return NULL;
    bn = BN_bin2bn(n, (int)nlen, NULL);
    be = BN_bin2bn(e, (int)elen, NULL);
    bld = OSSL_PARAM_BLD_new();
    if (bn != NULL && be != NULL && bld != NULL &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
        pkey = jwk_fromdata("RSA", bld);
    if (pkey == NULL)
        bg_set_error(err, "not a valid RSA public key");
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    return pkey;
}

/* The curve's OpenSSL name and coordinate size. */
static const char *jwk_curve(const char *crv, size_t *size)
{
    if (strcmp(crv, "P-256") == 0) {
        *size = 32;
        return "prime256v1";
    }
    if (strcmp(crv, "P-384") == 0) {
        *size = 48;
        return "secp384r1";
    }
    return NULL;
}

static EVP_PKEY *jwk_ec(json_t *jwk, const char *crv, char *err)
{
    unsigned char x[JWK_PART_MAX], y[JWK_PART_MAX], point[1 + 2 * 48];
    size_t xlen, ylen, size;
    const char *group = jwk_curve(crv, &size);
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY *pkey = NULL;

    if (group == NULL) {
        bg_set_error(err, "EC curve '%.16s' is not P-256 or P-384", crv);
        return NULL;
    }
    if (jwk_bytes(jwk, "x", x, &xlen, err) != BG_OK || jwk_bytes(jwk, "y", y, &ylen, err) != BG_OK)
        return NULL;
    if (xlen != size || ylen != size) {
        bg_set_error(err, "EC coordinates are not %zu bytes", size);
        return NULL;
    }
    /* An uncompressed point: 0x04 || x || y (SEC 1). */
    point[0] = 0x04;
    memcpy(point + 1, x, size);
    memcpy(point + 1 + size, y, size);
    if ((bld = OSSL_PARAM_BLD_new()) != NULL &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * size))
        pkey = jwk_fromdata("EC", bld);
    if (pkey == NULL)
        bg_set_error(err, "not a valid point on %s", crv);
    OSSL_PARAM_BLD_free(bld);
    return pkey;
}

static EVP_PKEY *jwk_okp(json_t *jwk, const char *crv, char *err)
{
    unsigned char x[JWK_PART_MAX];
    size_t xlen;
    EVP_PKEY *pkey;

    if (strcmp(crv, "Ed25519") != 0) {
        bg_set_error(err, "OKP curve '%.16s' is not Ed25519", crv);
        return NULL;
    }
    if (jwk_bytes(jwk, "x", x, &xlen, err) != BG_OK)
        return NULL;
    pkey = xlen == 32 ? EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, xlen) : NULL;
    if (pkey == NULL)
        bg_set_error(err, "not a valid Ed25519 public key");
    return pkey;
}

int bg_jwt_jwk_key(json_t *jwk, EVP_PKEY **pkey, unsigned char *secret, size_t *secret_len,
                   char *err)
{
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    const char *crv = json_string_value(json_object_get(jwk, "crv"));

    *pkey = NULL;
    *secret_len = 0;
    if (kty == NULL) {
        bg_set_error(err, "no \"kty\"");
        return BG_ERR;
    }
    if (strcmp(kty, "oct") == 0) {
        unsigned char buf[JWK_PART_MAX];
        _Static_assert(JWK_PART_MAX <= BG_JWT_SECRET_MAX, "a decoded k must fit a key's secret");
        if (jwk_bytes(jwk, "k", buf, secret_len, err) != BG_OK)
            return BG_ERR;
        memcpy(secret, buf, *secret_len);
        OPENSSL_cleanse(buf, sizeof(buf));
        return BG_OK;
    }
    if (strcmp(kty, "RSA") == 0)
        *pkey = jwk_rsa(jwk, err);
    else if ((strcmp(kty, "EC") == 0 || strcmp(kty, "OKP") == 0) && crv == NULL)
        bg_set_error(err, "no \"crv\"");
    else if (strcmp(kty, "EC") == 0)
        *pkey = jwk_ec(jwk, crv, err);
    else if (strcmp(kty, "OKP") == 0)
        *pkey = jwk_okp(jwk, crv, err);
    else
        bg_set_error(err, "kty '%.16s' is not RSA, EC, OKP or oct", kty);
    ERR_clear_error();
    return *pkey != NULL ? BG_OK : BG_ERR;
}

/* One member of "keys": skipped (BG_OK, nothing added) when it is for encryption. */
static int jwks_add_one(bg_jwt_keyset *ks, json_t *jwk, const char *default_alg, char *err)
{
    const char *use = json_string_value(json_object_get(jwk, "use"));
    const char *alg = json_string_value(json_object_get(jwk, "alg"));
    json_t *kid = json_object_get(jwk, "kid");
    unsigned char secret[BG_JWT_SECRET_MAX];
    size_t slen = 0;
    EVP_PKEY *pkey = NULL;
    bg_jwt_alg a;
    int rc = BG_ERR;

    if (!json_is_object(jwk) || (kid != NULL && !json_is_string(kid))) {
        bg_set_error(err, "not an object with a string \"kid\"");
        return BG_ERR;
    }
    if (use != NULL && strcmp(use, "sig") != 0)
        return BG_OK;
    if (bg_jwt_jwk_key(jwk, &pkey, secret, &slen, err) != BG_OK)
        goto cleanup;
    /* Without its own alg, a key whose type allows one algorithm takes it; the configured
     * default is for the rest (RSA), so one setting can serve a mixed set. */
    if ((alg != NULL || pkey == NULL || bg_jwt_key_alg(pkey, NULL, &a, err) != BG_OK) &&
        bg_jwt_key_alg(pkey, alg != NULL ? alg : default_alg, &a, err) != BG_OK) {
        EVP_PKEY_free(pkey);
        goto cleanup;
    }
    rc = bg_jwt_keyset_put(ks, pkey, secret, slen, json_string_value(kid), a, err);
cleanup:
    OPENSSL_cleanse(secret, sizeof(secret));
    return rc;
}

int bg_jwt_keyset_add_jwks(bg_jwt_keyset *ks, const char *json, size_t len, const char *default_alg,
                           char *err)
{
    json_error_t je;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je), *keys;
    char inner[BG_ERR_LEN];
    size_t i;
    int rc = BG_OK;

    if (doc == NULL) {
        bg_set_error(err, "not JSON: %s (line %d)", je.text, je.line);
        return BG_ERR;
    }
    keys = json_object_get(doc, "keys");
    if (!json_is_array(keys)) {
        bg_set_error(err, "not a JWK Set: no \"keys\" array");
        rc = BG_ERR;
    }
    for (i = 0; rc == BG_OK && i < json_array_size(keys); i++) {
        if ((rc = jwks_add_one(ks, json_array_get(keys, i), default_alg, inner)) != BG_OK)
            bg_set_error(err, "keys[%zu]: %s", i, inner);
    }
    json_decref(doc);
    return rc;
}
