/* jwt_mint.h: test-side JWT issuing: keys made with the openssl tool, tokens signed with
 * them (any JWS algorithm, also deliberately wrong ones), and JWKs of the public keys. */
#ifndef BUSGATE_TEST_JWT_MINT_H
#define BUSGATE_TEST_JWT_MINT_H

#include <openssl/evp.h>
#include <stddef.h>

/* `openssl genpkey` of type "rsa" (2048 bits), "ec" (P-256), "ec384" (P-384) or "ed25519"
 * into DIR/NAME.key, and its public half into DIR/NAME.pub (PEM). Returns 0 or -1. */
int bgt_jwt_keygen(const char *dir, const char *name, const char *type);
/* A PEM private or public key file. NULL on failure. */
EVP_PKEY *bgt_jwt_load_key(const char *path, int private_key);

/* header.payload signed with key (or secret, for HS*) as alg says; alg "none" gives an empty
 * signature. header and payload are JSON text, used verbatim. malloc'd token or NULL. */
char *bgt_jwt_sign(const char *alg, EVP_PKEY *key, const void *secret, size_t secret_len,
                   const char *header, const char *payload);
/* The same with the header {"alg":ALG,"typ":"JWT"[,"kid":KID]}. */
char *bgt_jwt_make(const char *alg, const char *kid, EVP_PKEY *key, const void *secret,
                   size_t secret_len, const char *payload);
/* The public JWK of key ({"kty":..,"kid":..,"alg":..,...}); kid/alg may be NULL. malloc'd. */
char *bgt_jwt_jwk(EVP_PKEY *key, const char *kid, const char *alg);

#endif
