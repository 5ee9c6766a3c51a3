/* auth_cache.c: tokens this worker verified lately, so a client that sends the same token on
 * every request pays for its signature once: a direct-mapped table keyed by the whole token,
 * whose hits only re-check exp and nbf against the clock. */
#include "auth.h"

#include <math.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

static size_t cache_slot(const char *tok, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a: spreads, nothing more is needed */

    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)tok[i]) * 1099511628211ull;
    return (size_t)(h % BG_AUTH_CACHE_SLOTS);
}

static void entry_clear(bg_auth_cache_entry *e)
{
    free(e->tok);
    free(e->text);
    json_decref(e->claims);
    memset(e, 0, sizeof(*e));
}

static double claim_time(json_t *claims, const char *name, double absent)
{
    json_t *v = json_object_get(claims, name);

    return json_is_number(v) ? json_number_value(v) : absent;
}

json_t *bg_auth_cache_get(bg_auth *a, const char *tok, size_t len, int64_t now_s, const char **text)
{
    bg_auth_cache_entry *e = &a->cache[cache_slot(tok, len)];
    double now = (double)now_s, leeway = (double)a->policy.leeway_s;

    /* Compared in constant time: how much of a cached token a guess matched stays hidden. */
    if (e->tok == NULL || e->len != len || CRYPTO_memcmp(e->tok, tok, len) != 0)
        return NULL;
    if (now >= e->exp + leeway || now + leeway < e->nbf) {
        entry_clear(e); /* verified again, so the answer says why it is refused */
        return NULL;
    }
    *text = e->text;
    json_incref(e->claims);
    return e->claims;
}

const char *bg_auth_cache_put(bg_auth *a, const char *tok, size_t len, json_t *claims)
{
    bg_auth_cache_entry *e = &a->cache[cache_slot(tok, len)];
    char *copy = malloc(len), *text = json_dumps(claims, JSON_COMPACT);

    entry_clear(e);
    if (copy == NULL || text == NULL) {
        free(copy);
        free(text);
        return NULL; /* only a cache */
    }
    memcpy(copy, tok, len);
    e->tok = copy;
    e->text = text;
    e->len = len;
    e->claims = json_incref(claims);
    e->exp = claim_time(claims, "exp", INFINITY);
    e->nbf = claim_time(claims, "nbf", -INFINITY);
    return text;
}

void bg_auth_cache_clear(bg_auth *a)
{
    for (size_t i = 0; i < BG_AUTH_CACHE_SLOTS; i++)
        entry_clear(&a->cache[i]);
}
