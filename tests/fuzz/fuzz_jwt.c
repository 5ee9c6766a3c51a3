/* fuzz_jwt.c: libFuzzer target for the bearer-token parser and verifier, and the JWK Set
 * loader (tokens and key files are untrusted bytes).
 *
 * Input: the first byte picks the target: even, a token verified against a fixed key set
 * (an HS256 secret the seeds are signed with, an Ed25519 key with kid "d1"); odd, a JWK
 * Set to load. A token that verifies must come with an object of claims. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../workers/jwt.h"

#define FUZZ_SECRET "fuzz-secret-fuzz-secret-fuzz-secret!!"

static bg_jwt_keyset keys;

static void keys_init(void)
{
    static const unsigned char ed_pub[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                             12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                             23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
    char err[BG_ERR_LEN];
    EVP_PKEY *ed = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, ed_pub, sizeof(ed_pub));

    if (bg_jwt_keyset_add_secret(&keys, FUZZ_SECRET, strlen(FUZZ_SECRET), "HS256", err) != BG_OK ||
        ed == NULL || bg_jwt_keyset_put(&keys, ed, NULL, 0, "d1", BG_JWT_EDDSA, err) != BG_OK) {
        fprintf(stderr, "fuzz_jwt: key set: %s\n", err);
        abort();
    }
}

static void fuzz_token(const char *tok, size_t len)
{
    bg_jwt_policy p = {.issuer = "iss", .audience = "aud", .leeway_s = 30, .max_size = 8192};
    json_t *claims = NULL;
    bg_jwt_status st = bg_jwt_verify(&keys, &p, tok, len, 1700000000, &claims);

    if ((st == BG_JWT_OK) != (claims != NULL && json_is_object(claims))) {
        fprintf(stderr, "fuzz_jwt: invariant failed: status %d with claims %p\n", st,
                (void *)claims);
        abort();
    }
    json_decref(claims);
}

static void fuzz_jwks(const char *json, size_t len)
{
    bg_jwt_keyset ks = {0};
    char err[BG_ERR_LEN];

    (void)bg_jwt_keyset_add_jwks(&ks, json, len, "RS256", err);
    bg_jwt_keyset_free(&ks);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;

    if (!ready) {
        keys_init();
        ready = 1;
    }
    if (size == 0)
        return 0;
    if (data[0] % 2 == 0)
        fuzz_token((const char *)data + 1, size - 1);
    else
        fuzz_jwks((const char *)data + 1, size - 1);
    return 0;
}
