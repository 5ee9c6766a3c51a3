/* jwt_keys.c: the verification key set: keys from a PEM file, a JWK Set or an HMAC secret,
 * each bound to one algorithm when it is loaded. */
#include "jwt.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

#define JWT_MAX_KEYS 1024

void bg_jwt_keyset_free(bg_jwt_keyset *ks)
{
    for (size_t i = 0; i < ks->n; i++) {
        EVP_PKEY_free(ks->keys[i].pkey);
        OPENSSL_cleanse(ks->keys[i].secret, sizeof(ks->keys[i].secret));
    }
    free(ks->keys);
    memset(ks, 0, sizeof(*ks));
}

static int keyset_grow(bg_jwt_keyset *ks, char *err)
{
    bg_jwt_key *grown;
    size_t cap = ks->cap ? ks->cap * 2 : 4;

    if (ks->n < ks->cap)
        return BG_OK;
    if (ks->n >= JWT_MAX_KEYS) {
        bg_set_error(err, "more than %d keys", JWT_MAX_KEYS);
        return BG_ERR;
    }
    grown = realloc(ks->keys, cap * sizeof(*grown));
    if (grown == NULL) {
        bg_set_error(err, "out of memory");
        return BG_ERR;
    }
    ks->keys = grown;
    ks->cap = cap;
    return BG_OK;
}

int bg_jwt_keyset_put(bg_jwt_keyset *ks, EVP_PKEY *pkey, const void *secret, size_t secret_len,
                      const char *kid, bg_jwt_alg alg, char *err)
{
    bg_jwt_key *k;

    if (!bg_jwt_alg_fits(alg, pkey, secret_len)) {
        bg_set_error(err, "the key cannot be used with %s (wrong type, curve or size)",
                     bg_jwt_alg_name(alg));
        goto fail;
    }
    if ((kid != NULL && strlen(kid) > BG_JWT_KID_MAX) || secret_len > BG_JWT_SECRET_MAX) {
        bg_set_error(err, "kid over %d bytes or secret over %d bytes", BG_JWT_KID_MAX,
                     BG_JWT_SECRET_MAX);
        goto fail;
    }
    if (keyset_grow(ks, err) != BG_OK)
        goto fail;
    k = &ks->keys[ks->n++];
    memset(k, 0, sizeof(*k));
    snprintf(k->kid, sizeof(k->kid), "%s", kid != NULL ? kid : "");
    k->alg = alg;
    k->pkey = pkey;
    if (secret_len > 0)
        memcpy(k->secret, secret, secret_len);
    k->secret_len = secret_len;
    return BG_OK;
fail:
    EVP_PKEY_free(pkey);
    return BG_ERR;
}

/* The only algorithm a key type allows, for keys that name none. */
static int alg_from_key(EVP_PKEY *pkey, bg_jwt_alg *alg)
{
    static const bg_jwt_alg implied[] = {BG_JWT_ES256, BG_JWT_ES384, BG_JWT_EDDSA};

    for (size_t i = 0; i < BG_ARRAY_LEN(implied); i++) {
        if (bg_jwt_alg_fits(implied[i], pkey, 0)) {
            *alg = implied[i];
            return BG_OK;
        }
    }
    return BG_ERR;
}

int bg_jwt_key_alg(EVP_PKEY *pkey, const char *name, bg_jwt_alg *alg, char *err)
{
    if (name != NULL && name[0] != '\0') {
        if (bg_jwt_alg_parse(name, alg) == BG_OK)
            return BG_OK;
        bg_set_error(err,
                     "algorithm '%.32s' is not one of RS256 RS384 RS512 PS256 ES256 ES384 "
                     "EdDSA HS256 HS384 HS512",
                     name);
        return BG_ERR;
    }
    if (pkey != NULL && alg_from_key(pkey, alg) == BG_OK)
        return BG_OK;
    bg_set_error(err, "the key needs an algorithm (an RSA key may serve RS256, RS384, RS512 or "
                      "PS256; an HMAC secret HS256, HS384 or HS512)");
    return BG_ERR;
}

/* A public key, or the key of a certificate. */
static EVP_PKEY *pem_public_key(const char *pem, size_t len)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *pkey = NULL;
    X509 *cert = NULL;

    if (bio == NULL)
        return NULL;
    pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    if (pkey == NULL && BIO_reset(bio) == 1 &&
        (cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
        pkey = X509_get_pubkey(cert);
    X509_free(cert);
    BIO_free(bio);
    ERR_clear_error();
    return pkey;
}

int bg_jwt_keyset_add_pem(bg_jwt_keyset *ks, const char *pem, size_t len, const char *alg,
                          char *err)
{
    EVP_PKEY *pkey;
    bg_jwt_alg a;

    if (len > (size_t)INT32_MAX || (pkey = pem_public_key(pem, len)) == NULL) {
        bg_set_error(err, "no PEM public key (BEGIN PUBLIC KEY) or certificate found");
        return BG_ERR;
    }
    if (bg_jwt_key_alg(pkey, alg, &a, err) != BG_OK) {
        EVP_PKEY_free(pkey);
        return BG_ERR;
    }
    return bg_jwt_keyset_put(ks, pkey, NULL, 0, NULL, a, err);
}

int bg_jwt_keyset_add_secret(bg_jwt_keyset *ks, const void *secret, size_t len, const char *alg,
                             char *err)
{
    bg_jwt_alg a;

    if (bg_jwt_key_alg(NULL, alg, &a, err) != BG_OK)
        return BG_ERR;
    if (a < BG_JWT_HS256) {
        bg_set_error(err, "a shared secret serves HS256, HS384 or HS512 only, not %s",
                     bg_jwt_alg_name(a));
        return BG_ERR;
    }
    return bg_jwt_keyset_put(ks, NULL, secret, len, NULL, a, err);
}
