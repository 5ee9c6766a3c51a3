/* config_ratelimit.c: the [limits] rate_* keys: rate_mode and the rate_limit rule lines (method
 * and prefix here, the rate itself in core/rate_spec.c). */
#include <stdio.h>
#include <string.h>

#include "busgate/core/text.h"

#include "config_internal.h"

int bg_config_parse_rate_mode(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                              char *reason)
{
    (void)key;
    if (strcmp(value, "local") == 0)
        ctx->cfg->ratelimit.mode = BG_RATE_LOCAL;
    else if (strcmp(value, "cluster") == 0)
        ctx->cfg->ratelimit.mode = BG_RATE_CLUSTER;
    else {
        bg_set_error(reason, "unknown mode");
        return BG_ERR;
    }
    return BG_OK;
}

static int rate_method(bg_rate_rule *r, const char *w, char *reason)
{
    if (strcmp(w, "*") != 0 && (w[0] == '\0' || !bg_is_token(w, strlen(w)))) {
        bg_set_error(reason, "'%.32s' is not a method or *", w);
        return BG_ERR;
    }
    return bg_strlcpy_checked(r->method, w, sizeof(r->method)) == BG_OK ? BG_OK : BG_ERR;
}

/* A template prefix, matched by whole segments: a trailing slash says nothing more. */
static int rate_prefix(bg_rate_rule *r, const char *w, char *reason)
{
    size_t len = strlen(w);

    if (w[0] != '/' || len > BG_RATE_PREFIX_MAX) {
        bg_set_error(reason, "the path prefix must start with '/' (up to %d characters)",
                     BG_RATE_PREFIX_MAX);
        return BG_ERR;
    }
    while (len > 1 && w[len - 1] == '/')
        len--;
    memcpy(r->prefix, w, len);
    r->prefix[len] = '\0';
    return BG_OK;
}

static int rate_parse(bg_rate_rule *r, const char *value, char *reason)
{
    char w[BG_RATE_PREFIX_MAX + 2];
    const char *p = value;

    bg_rate_word(&p, w, sizeof(w));
    if (rate_method(r, w, reason) != BG_OK)
        return BG_ERR;
    bg_rate_word(&p, w, sizeof(w));
    if (rate_prefix(r, w, reason) != BG_OK)
        return BG_ERR;
    return bg_rate_spec_parse(p, &r->spec, reason); /* the rest: what services declare too */
}

int bg_config_parse_rate_limit(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                               char *reason)
{
    bg_rate_rule r = {.line = ctx->lineno};
    bg_config *cfg = ctx->cfg;

    (void)key;
    if (rate_parse(&r, value, reason) != BG_OK)
        return BG_ERR;
    for (int i = 0; i < cfg->ratelimit.nrules; i++) {
        const bg_rate_rule *o = &cfg->ratelimit.rules[i];
        if (strcmp(o->method, r.method) == 0 && strcmp(o->prefix, r.prefix) == 0) {
            bg_set_error(reason, "same method and prefix as the rule on line %d", o->line);
            return BG_ERR;
        }
    }
    if (cfg->ratelimit.nrules >= BG_RATE_MAX_RULES) {
        bg_set_error(reason, "more than %d rate_limit lines", BG_RATE_MAX_RULES);
        return BG_ERR;
    }
    cfg->ratelimit.rules[cfg->ratelimit.nrules++] = r;
    return BG_OK;
}
