/* auth_claims.c: whether a verified token holds a claim a route requires: a scope word, an
 * entry of an array claim, or "name=value". */
#include "auth.h"

#include <stdio.h>
#include <string.h>

static int str_is(json_t *v, const char *c, size_t len)
{
    return json_is_string(v) && json_string_length(v) == len &&
           memcmp(json_string_value(v), c, len) == 0;
}

/* A space-separated string (OAuth "scope"), or an array of strings (some issuers' "scp"). */
static int in_words(json_t *v, const char *c, size_t len)
{
    const char *p = json_string_value(v), *end;
    size_t i;
    json_t *e;

    if (json_is_array(v)) {
        json_array_foreach(v, i, e)
        {
            if (str_is(e, c, len))
                return 1;
        }
        return 0;
    }
    for (end = p != NULL ? p + json_string_length(v) : NULL; p != NULL && p < end;) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        size_t wlen = sp != NULL ? (size_t)(sp - p) : (size_t)(end - p);
        if (wlen == len && memcmp(p, c, len) == 0)
            return 1;
        p += wlen + 1;
    }
    return 0;
}

/* "name=value": the claim is that string, or the number or boolean written that way. */
static int claim_equals(json_t *claims, const char *name, size_t nlen, const char *value,
                        size_t vlen)
{
    json_t *v = json_object_getn(claims, name, nlen);
    char text[32];
    int n;

    if (json_is_string(v))
        return str_is(v, value, vlen);
    if (json_is_integer(v))
        n = snprintf(text, sizeof(text), "%lld", (long long)json_integer_value(v));
    else if (json_is_boolean(v))
        n = snprintf(text, sizeof(text), "%s", json_is_true(v) ? "true" : "false");
    else
        return 0;
    return (size_t)n == vlen && memcmp(text, value, vlen) == 0;
}

int bg_auth_claim_held(const bg_config *cfg, json_t *claims, const char *c, size_t len)
{
    const char *eq = memchr(c, '=', len), *p = cfg->auth.claim_arrays;

    if (eq != NULL)
        return claim_equals(claims, c, (size_t)(eq - c), eq + 1, len - (size_t)(eq - c) - 1);
    if (in_words(json_object_get(claims, "scope"), c, len) ||
        in_words(json_object_get(claims, "scp"), c, len))
        return 1;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t nlen = end != NULL ? (size_t)(end - p) : strlen(p);
        json_t *arr = json_object_getn(claims, p, nlen);
        if (json_is_array(arr) && in_words(arr, c, len))
            return 1;
        p += nlen + (end != NULL);
    }
    return 0;
}
