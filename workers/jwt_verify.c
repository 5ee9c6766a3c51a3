/* jwt_verify.c: one compact JWS token from untrusted bytes to verified claims: size, the
 * three parts, the header, the key (by kid, its algorithm fixed), the signature, then the
 * registered claims exp, nbf, iss and aud. */
#include "jwt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The decoded parts of one token; every pointer is into one allocation. */
typedef struct jwt_parts {
    const char *signing_input; /* header.payload, as sent: what was signed */
    size_t signing_len;
    json_t *header, *payload;
    unsigned char *sig;
    size_t sig_len;
    unsigned char *buf;
} jwt_parts;

static const char *const status_text[] = {
    [BG_JWT_OK] = "valid",
    [BG_JWT_E_SIZE] = "the token is larger than the configured limit",
    [BG_JWT_E_FORMAT] = "the token is not a signed JWT (three base64url parts of JSON)",
    [BG_JWT_E_ALG] = "the token's algorithm is not the one of its key",
    [BG_JWT_E_KID] = "the token names no key the gateway knows",
    [BG_JWT_E_SIGNATURE] = "the token's signature is not valid",
    [BG_JWT_E_EXPIRED] = "the token has expired",
    [BG_JWT_E_NOT_YET] = "the token is not valid yet",
    [BG_JWT_E_ISSUER] = "the token's issuer is not accepted",
    [BG_JWT_E_AUDIENCE] = "the token is not meant for this audience",
    [BG_JWT_E_CLAIMS] = "the token's claims are malformed",
    [BG_JWT_E_NOMEM] = "out of memory",
};

const char *bg_jwt_status_str(bg_jwt_status st)
{
    return st >= BG_JWT_OK && st <= BG_JWT_E_NOMEM ? status_text[st] : "invalid token";
}

/* Decodes a base64url part holding a JSON object. */
static json_t *part_json(const char *p, size_t len, unsigned char *scratch)
{
    size_t n;
    json_t *v;

    if (len == 0 || bg_b64url_decode(p, len, scratch, &n) != BG_OK)
        return NULL;
    v = json_loadb((const char *)scratch, n, JSON_REJECT_DUPLICATES, NULL);
    if (v != NULL && !json_is_object(v)) {
        json_decref(v);
        return NULL;
    }
    return v;
}

static bg_jwt_status parts_split(const char *tok, size_t len, jwt_parts *pt)
{
    const char *d1 = memchr(tok, '.', len), *d2;
    size_t hlen, plen, slen;

    if (d1 == NULL || (d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok))) == NULL ||
        memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)) != NULL)
        return BG_JWT_E_FORMAT;
    hlen = (size_t)(d1 - tok);
    plen = (size_t)(d2 - d1 - 1);
    slen = len - (size_t)(d2 + 1 - tok);
    if ((pt->buf = malloc(len + 1)) == NULL)
        return BG_JWT_E_NOMEM;
    pt->signing_input = tok;
    pt->signing_len = (size_t)(d2 - tok);
    if ((pt->header = part_json(tok, hlen, pt->buf)) == NULL ||
        (pt->payload = part_json(d1 + 1, plen, pt->buf)) == NULL)
        return BG_JWT_E_FORMAT;
    /* An empty signature decodes (to nothing): "alg":"none" is then refused for its alg. */
    pt->sig = pt->buf;
    if (bg_b64url_decode(d2 + 1, slen, pt->sig, &pt->sig_len) != BG_OK)
        return BG_JWT_E_FORMAT;
    return BG_JWT_OK;
}

/* Keys for a token's kid: those with that kid, else those without one. A token without a
 * kid may be checked with any key. Returns how many keys are candidates. */
static int key_candidate(const bg_jwt_keyset *ks, const bg_jwt_key *k, const char *kid)
{
    if (kid == NULL)
        return 1;
    if (k->kid[0] != '\0')
        return strcmp(k->kid, kid) == 0;
    for (size_t i = 0; i < ks->n; i++)
        if (strcmp(ks->keys[i].kid, kid) == 0)
            return 0; /* a key has the very kid: keys without a kid do not stand in */
    return 1;
}

static bg_jwt_status check_signature(const bg_jwt_keyset *ks, const jwt_parts *pt)
{
    json_t *alg_v = json_object_get(pt->header, "alg"), *kid_v = json_object_get(pt->header, "kid");
    const char *kid = json_string_value(kid_v);
    int candidates = 0, alg_ok = 0, kid_known = 0;
    bg_jwt_alg alg;

    /* "none" is no algorithm of ours: an unsigned token never gets this far. */
    if (!json_is_string(alg_v) || bg_jwt_alg_parse(json_string_value(alg_v), &alg) != BG_OK)
        return BG_JWT_E_ALG;
    if (kid_v != NULL && !json_is_string(kid_v))
        return BG_JWT_E_FORMAT;
    for (size_t i = 0; i < ks->n; i++) {
        const bg_jwt_key *k = &ks->keys[i];
        if (!key_candidate(ks, k, kid))
            continue;
        candidates++;
        kid_known |= kid != NULL && strcmp(k->kid, kid) == 0;
        /* The key decides the algorithm; a header naming another one is refused, so an
         * RSA public key can never be taken for an HMAC secret. */
        if (k->alg != alg)
            continue;
        alg_ok = 1;
        if (bg_jwt_sig_verify(k, (const unsigned char *)pt->signing_input, pt->signing_len, pt->sig,
                              pt->sig_len) == BG_OK)
            return BG_JWT_OK;
    }
    /* A kid nobody has, and no key without a kid that could stand in: unknown key. */
    if (candidates == 0 || (!alg_ok && kid != NULL && !kid_known))
        return BG_JWT_E_KID;
    return alg_ok ? BG_JWT_E_SIGNATURE : BG_JWT_E_ALG;
}

/* A NumericDate member: absent (1, *t untouched), a number (1), anything else (0). */
static int numeric_date(json_t *claims, const char *name, double *t)
{
    json_t *v = json_object_get(claims, name);

    if (v == NULL)
        return 1;
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
        return 0;
    *t = json_number_value(v);
    return 1;
}

static int audience_has(json_t *aud, const char *want)
{
    size_t i;
    json_t *v;

    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    json_array_foreach(aud, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
            return 1;
    }
    return 0;
}

static bg_jwt_status check_claims(const bg_jwt_policy *p, json_t *c, int64_t now_s)
{
    double exp = INFINITY, nbf = -INFINITY, iat = 0;
    const char *iss = json_string_value(json_object_get(c, "iss"));

    if (!numeric_date(c, "exp", &exp) || !numeric_date(c, "nbf", &nbf) ||
        !numeric_date(c, "iat", &iat))
        return BG_JWT_E_CLAIMS;
    if ((double)now_s >= exp + (double)p->leeway_s)
        return BG_JWT_E_EXPIRED;
    if ((double)now_s + (double)p->leeway_s < nbf)
        return BG_JWT_E_NOT_YET;
    if (p->issuer != NULL && p->issuer[0] != '\0' && (iss == NULL || strcmp(iss, p->issuer) != 0))
        return BG_JWT_E_ISSUER;
    if (p->audience != NULL && p->audience[0] != '\0' &&
        !audience_has(json_object_get(c, "aud"), p->audience))
        return BG_JWT_E_AUDIENCE;
    return BG_JWT_OK;
}

bg_jwt_status bg_jwt_verify(const bg_jwt_keyset *ks, const bg_jwt_policy *p, const char *tok,
                            size_t len, int64_t now_s, json_t **claims)
{
    jwt_parts pt = {0};
    bg_jwt_status st;

    *claims = NULL;
    if (p->max_size > 0 && len > p->max_size)
        return BG_JWT_E_SIZE;
    st = parts_split(tok, len, &pt);
    /* No extension is understood here, and RFC 7515 4.1.11 says refuse what is critical. */
    if (st == BG_JWT_OK && json_object_get(pt.header, "crit") != NULL)
        st = BG_JWT_E_FORMAT;
    if (st == BG_JWT_OK)
        st = check_signature(ks, &pt);
    if (st == BG_JWT_OK)
        st = check_claims(p, pt.payload, now_s);
    if (st == BG_JWT_OK) {
        *claims = pt.payload;
        pt.payload = NULL;
    }
    json_decref(pt.header);
    json_decref(pt.payload);
    free(pt.buf);
    return st;
}
