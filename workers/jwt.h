/* jwt.h: JSON Web Token (RFC 7519, JWS compact RFC 7515) verification against a key set,
 * with OpenSSL 3 EVP for every signature and jansson for the JSON. */
#ifndef BUSGATE_JWT_H
#define BUSGATE_JWT_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "busgate/common.h"

/* The algorithms a key may be used with (RFC 7518, RFC 8037). "none" has no value here:
 * there is no way to configure it, so an unsigned token never has a key. */
typedef enum {
    BG_JWT_RS256 = 0,
    BG_JWT_RS384,
    BG_JWT_RS512,
    BG_JWT_PS256,
    BG_JWT_ES256,
    BG_JWT_ES384,
    BG_JWT_EDDSA,
    BG_JWT_HS256,
    BG_JWT_HS384,
    BG_JWT_HS512,
    BG_JWT_NALGS
} bg_jwt_alg;

#define BG_JWT_KID_MAX 127
#define BG_JWT_SECRET_MAX 1024

/* One verification key. Its algorithm is fixed here, when the key is loaded: a token's
 * header only has to agree with it and never chooses how the signature is checked. */
typedef struct bg_jwt_key {
    char kid[BG_JWT_KID_MAX + 1]; /* "" = no key id (a PEM file, a secret file) */
    bg_jwt_alg alg;
    EVP_PKEY *pkey;                          /* RS, PS, ES, EdDSA */
    unsigned char secret[BG_JWT_SECRET_MAX]; /* HS */
    size_t secret_len;
} bg_jwt_key;

typedef struct bg_jwt_keyset {
    bg_jwt_key *keys;
    size_t n, cap;
} bg_jwt_keyset;

/* What a verified token must also satisfy. NULL/empty issuer or audience: not checked. */
typedef struct bg_jwt_policy {
    const char *issuer;   /* iss must equal it */
    const char *audience; /* aud (a string or an array of strings) must contain it */
    int64_t leeway_s;     /* clock skew allowed on exp and nbf */
    size_t max_size;      /* longer tokens are refused before any decoding */
} bg_jwt_policy;

/* "RS256" ... "EdDSA" -> alg; BG_ERR for anything else, "none" included. */
int bg_jwt_alg_parse(const char *name, bg_jwt_alg *out);
const char *bg_jwt_alg_name(bg_jwt_alg alg);

/* The key set. Every add function refuses a key that does not fit its algorithm (an RSA
 * key for ES256, an HS secret shorter than the hash, ...). */
void bg_jwt_keyset_free(bg_jwt_keyset *ks);
/* A PEM public key (SubjectPublicKeyInfo) or certificate. alg NULL: derived where the key
 * type leaves no choice (EC P-256 ES256, P-384 ES384, Ed25519 EdDSA); RSA needs alg. */
int bg_jwt_keyset_add_pem(bg_jwt_keyset *ks, const char *pem, size_t len, const char *alg,
                          char *err);
/* A JWK Set ({"keys":[...]}, RSA, EC, OKP and oct keys). A key's own "alg" wins; without one
 * the one its key type allows (EC, Ed25519), else default_alg. Keys for encryption ("use":"enc")
 * are skipped. */
int bg_jwt_keyset_add_jwks(bg_jwt_keyset *ks, const char *json, size_t len, const char *default_alg,
                           char *err);
/* An HMAC secret (raw bytes) for HS256/384/512. */
int bg_jwt_keyset_add_secret(bg_jwt_keyset *ks, const void *secret, size_t len, const char *alg,
                             char *err);
/* Fetches every key's digest and signature method now: OpenSSL may read its configuration
 * on first use, which a sandboxed worker cannot. */
int bg_jwt_keyset_warm(const bg_jwt_keyset *ks, char *err);

/* jwt_keys.c helper for jwt_jwk.c: takes pkey (freed on failure). */
int bg_jwt_keyset_put(bg_jwt_keyset *ks, EVP_PKEY *pkey, const void *secret, size_t secret_len,
                      const char *kid, bg_jwt_alg alg, char *err);
/* jwt_keys.c: the algorithm named (NULL or "": the one the key type implies). */
int bg_jwt_key_alg(EVP_PKEY *pkey, const char *name, bg_jwt_alg *alg, char *err);
/* jwt_alg.c: 1 when pkey (or an HMAC secret when pkey is NULL) can serve alg. */
int bg_jwt_alg_fits(bg_jwt_alg alg, EVP_PKEY *pkey, size_t secret_len);
/* jwt_alg.c: checks sig over data with key (its own alg). BG_OK when valid. */
int bg_jwt_sig_verify(const bg_jwt_key *key, const unsigned char *data, size_t dlen,
                      const unsigned char *sig, size_t slen);
/* jwt_jwk.c: one JWK object to an EVP_PKEY (or a secret for "oct"). */
int bg_jwt_jwk_key(json_t *jwk, EVP_PKEY **pkey, unsigned char *secret, size_t *secret_len,
                   char *err);

/* base64url without padding (RFC 7515 section 2) into out (at least len * 3 / 4 + 1
 * bytes). BG_ERR on any other byte, padding, or an impossible length. */
int bg_b64url_decode(const char *in, size_t len, unsigned char *out, size_t *outlen);
/* base64url without padding of in into out (at least (len + 2) / 3 * 4 + 1 bytes),
 * NUL-terminated; returns the length. */
size_t bg_b64url_encode(const void *in, size_t len, char *out);

/* Why a token was refused, for the 401 detail (never the token itself). */
typedef enum {
    BG_JWT_OK = 0,
    BG_JWT_E_SIZE,      /* longer than max_size */
    BG_JWT_E_FORMAT,    /* not three base64url parts, not JSON objects */
    BG_JWT_E_ALG,       /* alg missing, "none", unknown or not the key's */
    BG_JWT_E_KID,       /* no key with that kid (or no key at all) */
    BG_JWT_E_SIGNATURE, /* no candidate key verified it */
    BG_JWT_E_EXPIRED,   /* exp + leeway is past */
    BG_JWT_E_NOT_YET,   /* nbf - leeway is ahead */
    BG_JWT_E_ISSUER,
    BG_JWT_E_AUDIENCE,
    BG_JWT_E_CLAIMS, /* exp/nbf/iat not numbers, crit present, ... */
    BG_JWT_E_NOMEM,
} bg_jwt_status;

const char *bg_jwt_status_str(bg_jwt_status st);

/* Verifies the compact token tok[0..len) at time now_s (Unix seconds): size, format, key
 * (by kid, the header alg equal to the key's), signature, then exp, nbf, iss and aud. On
 * BG_JWT_OK *claims holds the payload (the caller decrefs); otherwise it is NULL. */
bg_jwt_status bg_jwt_verify(const bg_jwt_keyset *ks, const bg_jwt_policy *p, const char *tok,
                            size_t len, int64_t now_s, json_t **claims);

#endif
