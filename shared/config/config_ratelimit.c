/* config_ratelimit.c: the [limits] rate_* keys: rate_mode and the rate_limit rule lines. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "busgate/core/text.h"

#include "config_internal.h"

#define RATE_COUNT_MAX 1000000
#define RATE_BURST_MAX 1000000

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

/* The next blank-separated word of *p into out; "" at the end. */
static void rate_word(const char **p, char *out, size_t size)
{
    const char *s = *p;
    size_t len = 0;

    while (isspace((unsigned char)*s))
        s++;
    while (s[len] != '\0' && !isspace((unsigned char)s[len]))
        len++;
    snprintf(out, size, "%.*s", (int)(len < size ? len : size - 1), s);
    *p = s + len;
    if (len >= size)
        out[0] = '\x01'; /* too long: no valid word starts with 0x01 */
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

/* "<n>/s", "<n>/m" or "<n>/h". */
static int rate_rate(bg_rate_rule *r, const char *w, char *reason)
{
    const char *slash = strchr(w, '/');
    char num[16];
    int64_t n;

    if (slash == NULL || slash == w || (size_t)(slash - w) >= sizeof(num) || slash[1] == '\0' ||
        slash[2] != '\0' || strchr("smh", slash[1]) == NULL) {
        bg_set_error(reason, "'%.32s' is not a rate like 10/s, 100/m or 1000/h", w);
        return BG_ERR;
    }
    snprintf(num, sizeof(num), "%.*s", (int)(slash - w), w);
    if (bg_config_parse_int(num, &n, NULL) != BG_OK || n < 1 || n > RATE_COUNT_MAX) {
        bg_set_error(reason, "rate '%.32s': the count must be 1..%d", w, RATE_COUNT_MAX);
        return BG_ERR;
    }
    r->count = n;
    r->per_ms = slash[1] == 's' ? 1000 : slash[1] == 'm' ? 60 * 1000 : 3600 * 1000;
    r->interval_us = r->per_ms * 1000 / n; /* >= 1: n <= 1e6 and per_ms >= 1000 */
    r->burst = n;
    return BG_OK;
}

/* key=client | key=header:<Name> | key=claim:<name> (refused until JWT auth exists). */
static int rate_key(bg_rate_rule *r, const char *v, char *reason)
{
    const char *name = strchr(v, ':');

    if (strcmp(v, "client") == 0) {
        r->key = BG_RATE_KEY_CLIENT;
        return BG_OK;
    }
    if (name != NULL && strncmp(v, "claim:", 6) == 0) {
        bg_set_error(reason,
                     "key=%.40s: claims need verified JWT auth, which this build does "
                     "not have; use client or header:<Name>",
                     v);
        return BG_ERR;
    }
    if (name == NULL || strncmp(v, "header:", 7) != 0 || name[1] == '\0' ||
        !bg_is_token(name + 1, strlen(name + 1)) ||
        bg_strlcpy_checked(r->key_name, name + 1, sizeof(r->key_name)) != BG_OK) {
        bg_set_error(reason, "key=%.40s is not client or header:<Name>", v);
        return BG_ERR;
    }
    r->key = BG_RATE_KEY_HEADER;
    return BG_OK;
}

static int rate_option(bg_rate_rule *r, const char *w, char *reason)
{
    int64_t n;

    if (strncmp(w, "burst=", 6) == 0) {
        if (bg_config_parse_int(w + 6, &n, NULL) != BG_OK || n < 1 || n > RATE_BURST_MAX) {
            bg_set_error(reason, "%.32s: burst must be 1..%d", w, RATE_BURST_MAX);
            return BG_ERR;
        }
        r->burst = n;
        return BG_OK;
    }
    if (strncmp(w, "key=", 4) == 0)
        return rate_key(r, w + 4, reason);
    bg_set_error(reason, "unknown option '%.32s'", w);
    return BG_ERR;
}

static int rate_parse(bg_rate_rule *r, const char *value, char *reason)
{
    char w[BG_RATE_PREFIX_MAX + 2];
    const char *p = value;

    rate_word(&p, w, sizeof(w));
    if (rate_method(r, w, reason) != BG_OK)
        return BG_ERR;
    rate_word(&p, w, sizeof(w));
    if (rate_prefix(r, w, reason) != BG_OK)
        return BG_ERR;
    rate_word(&p, w, sizeof(w));
    if (rate_rate(r, w, reason) != BG_OK)
        return BG_ERR;
    for (rate_word(&p, w, sizeof(w)); w[0] != '\0'; rate_word(&p, w, sizeof(w)))
        if (rate_option(r, w, reason) != BG_OK)
            return BG_ERR;
    return BG_OK;
}

int bg_config_parse_rate_limit(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                               char *reason)
{
    bg_rate_rule r = {.key = BG_RATE_KEY_CLIENT, .line = ctx->lineno};
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
