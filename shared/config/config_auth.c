/* config_auth.c: parsers for the [auth] keys with a syntax of their own (realm, algorithm,
 * require, claim lists) and [identity] claim_headers. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "busgate/core/text.h"

#include "config_internal.h"

/* The realm goes into WWW-Authenticate as a quoted-string: no quote, backslash or control. */
int bg_config_parse_realm(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                          char *reason)
{
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (*p < 0x20 || *p >= 0x7f || *p == '"' || *p == '\\') {
            bg_set_error(reason, "character 0x%02x is not allowed", *p);
            return BG_ERR;
        }
    }
    return bg_config_store_text(ctx, key, value, reason);
}

int bg_config_parse_jwt_alg(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                            char *reason)
{
    static const char *const algs[] = {"RS256", "RS384", "RS512", "PS256", "ES256",
                                       "ES384", "EdDSA", "HS256", "HS384", "HS512"};

    for (size_t i = 0; i < BG_ARRAY_LEN(algs); i++) {
        if (strcmp(value, algs[i]) == 0)
            return bg_config_store_text(ctx, key, value, reason);
    }
    bg_set_error(reason, "unknown algorithm");
    return BG_ERR;
}

int bg_config_parse_require(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                            char *reason)
{
    (void)key;
    if (strcmp(value, "claims") != 0 && strcmp(value, "all") != 0) {
        bg_set_error(reason, "neither claims nor all");
        return BG_ERR;
    }
    ctx->cfg->auth.require_all = value[0] == 'a';
    return BG_OK;
}

/* One item of a comma-separated list, trimmed: *p moves past it and its comma. */
static size_t list_item(const char **p, const char **start)
{
    const char *end = strchr(*p, ',');
    size_t len;

    end = end != NULL ? end : *p + strlen(*p);
    while (*p < end && isspace((unsigned char)**p))
        (*p)++;
    *start = *p;
    len = (size_t)(end - *p);
    while (len > 0 && isspace((unsigned char)(*start)[len - 1]))
        len--;
    *p = *end != '\0' ? end + 1 : end;
    return len;
}

static int claim_name_ok(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!isgraph((unsigned char)s[i]) || s[i] == ',')
            return 0;
    return 1;
}

/* Claim names, stored as "a,b,c" (no blanks) so readers split on ','. */
int bg_config_parse_claim_list(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                               char *reason)
{
    char out[512] = "";
    const char *p = value, *item;
    size_t used = 0, len;

    while (*p != '\0') {
        len = list_item(&p, &item);
        if (!claim_name_ok(item, len)) {
            bg_set_error(reason, "'%.*s' is not a claim name", (int)len, item);
            return BG_ERR;
        }
        if (used + len + 2 > sizeof(out)) {
            bg_set_error(reason, "too long");
            return BG_ERR;
        }
        used += (size_t)snprintf(out + used, sizeof(out) - used, "%s%.*s", used ? "," : "",
                                 (int)len, item);
    }
    return bg_config_store_text(ctx, key, out, reason);
}

/* "X-User-Email: email, X-Tenant: tid", stored as "X-User-Email:email,X-Tenant:tid". */
int bg_config_parse_claim_headers(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                                  char *reason)
{
    char out[1024] = "";
    const char *p = value, *item, *colon, *claim;
    size_t used = 0, len, hlen, clen;

    while (*p != '\0') {
        len = list_item(&p, &item);
        colon = memchr(item, ':', len);
        if (colon == NULL) {
            bg_set_error(reason, "'%.*s' is not 'Header: claim'", (int)len, item);
            return BG_ERR;
        }
        for (hlen = (size_t)(colon - item); hlen > 0 && isspace((unsigned char)item[hlen - 1]);)
            hlen--;
        for (claim = colon + 1; claim < item + len && isspace((unsigned char)*claim);)
            claim++;
        clen = (size_t)(item + len - claim);
        if (hlen == 0 || !bg_is_token(item, hlen) || !claim_name_ok(claim, clen)) {
            bg_set_error(reason, "'%.*s' is not 'Header: claim'", (int)len, item);
            return BG_ERR;
        }
        if (used + len + 2 > sizeof(out)) {
            bg_set_error(reason, "too long");
            return BG_ERR;
        }
        used += (size_t)snprintf(out + used, sizeof(out) - used, "%s%.*s:%.*s", used ? "," : "",
                                 (int)hlen, item, (int)clen, claim);
    }
    return bg_config_store_text(ctx, key, out, reason);
}
