/* config_errors.c: collect config errors, one "FILE:LINE: ..." line each, into the caller's
 * buffer, hiding secrets and keeping a line for "N more errors". */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config_internal.h"

#define RESERVE 64  /* bytes kept free for the final "N more errors" line */
#define SHOW_MAX 96 /* characters of a bad value echoed back */

static void errors_append(bg_config_ctx *ctx, const char *text)
{
    size_t len = strlen(text), room;

    ctx->nerrors++;
    if (ctx->errors == NULL || ctx->errlen == 0)
        return;
    room = ctx->errlen > 2 * RESERVE ? ctx->errlen - RESERVE : ctx->errlen;
    if (ctx->used + len + 2 > room) {
        ctx->dropped++;
        return;
    }
    memcpy(ctx->errors + ctx->used, text, len);
    ctx->used += len;
    ctx->errors[ctx->used++] = '\n';
    ctx->errors[ctx->used] = '\0';
}

void bg_config_error(bg_config_ctx *ctx, int line, const char *fmt, ...)
{
    char text[BG_CONFIG_LINE_MAX];
    int n;
    va_list ap;

    if (line > 0)
        n = snprintf(text, sizeof(text), "%s:%d: ", ctx->file, line);
    else
        n = snprintf(text, sizeof(text), "%s: ", ctx->file);
    if (n < 0 || (size_t)n >= sizeof(text))
        n = 0;
    va_start(ap, fmt);
    vsnprintf(text + n, sizeof(text) - (size_t)n, fmt, ap);
    va_end(ap);
    errors_append(ctx, text);
}

/* Replaces the value of name=... in a url's query (up to '&' or the end) by "***",
 * within buf's len bytes. */
static void mask_query_secret(char *buf, size_t len, const char *name)
{
    char *v = strstr(buf, name), rest[1024];
    const char *amp;

    if (v == NULL)
        return;
    v += strlen(name);
    amp = strchr(v, '&');
    snprintf(rest, sizeof(rest), "%s", amp != NULL ? amp : "");
    snprintf(v, len - (size_t)(v - buf), "***%s", rest);
}

/* Masks the password of "scheme://user:password@host" (or a bare "password@host"). In the
 * Sentinel form the credentials end before the query, which may hold a secret too. */
static void mask_url(const char *value, char *buf, size_t len)
{
    const char *start = strstr(value, "://"), *end, *at = NULL, *p, *colon;

    if (start == NULL) {
        snprintf(buf, len, "%s", value);
        return;
    }
    end = strstr(value, "+sentinel://") != NULL && strchr(start, '?') != NULL
              ? strchr(start, '?')
              : value + strlen(value);
    for (p = start; p < end; p++)
        if (*p == '@')
            at = p;
    if (at == NULL) {
        snprintf(buf, len, "%s", value);
    } else {
        start += 3;
        colon = memchr(start, ':', (size_t)(at - start));
        start = colon ? colon + 1 : start;
        snprintf(buf, len, "%.*s***%s", (int)(start - value), value, at);
    }
    mask_query_secret(buf, len, "sentinel_password=");
}

static void shown_value(const bg_config_key *key, const char *value, char *buf, size_t len)
{
    char tmp[SHOW_MAX + 8];
    size_t i;

    if (key && (key->flags & BG_CONFIG_SECRET)) {
        snprintf(buf, len, "***");
        return;
    }
    if (key && (key->flags & BG_CONFIG_URL_SECRET))
        mask_url(value, tmp, sizeof(tmp));
    else
        snprintf(tmp, sizeof(tmp), "%s", value);
    if (strlen(value) > SHOW_MAX)
        memcpy(tmp + SHOW_MAX - 3, "...", 4);
    /* Control bytes would garble the terminal or the log line. */
    for (i = 0; tmp[i]; i++) {
        if ((unsigned char)tmp[i] < 0x20 || tmp[i] == 0x7f)
            tmp[i] = '?';
    }
    snprintf(buf, len, "%s", tmp);
}

void bg_config_key_error(bg_config_ctx *ctx, const bg_config_key *key, int line, const char *value,
                         const char *reason, const char *allowed)
{
    char shown[SHOW_MAX + 8], range[512];

    shown_value(key, value, shown, sizeof(shown));
    if (allowed == NULL) {
        bg_config_key_allowed(key, range, sizeof(range));
        allowed = range;
    }
    bg_config_error(ctx, line, "[%s] %s = '%s': %s (allowed: %s)", key->section, key->name, shown,
                    reason, allowed);
}

void bg_config_errors_finish(bg_config_ctx *ctx)
{
    if (ctx->errors == NULL || ctx->errlen == 0 || ctx->dropped == 0)
        return;
    snprintf(ctx->errors + ctx->used, ctx->errlen - ctx->used, "... %d more errors not shown\n",
             ctx->dropped);
}
