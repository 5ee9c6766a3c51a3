/* config_values.c: turn one ini value of a generic kind (text, path, number, unit, on/off)
 * into its field. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config_internal.h"

static void *field_ptr(bg_config_ctx *ctx, const bg_config_key *key)
{
    return (char *)ctx->cfg + key->offset;
}

static int char_allowed(bg_config_kind kind, unsigned char c)
{
    switch (kind) {
    case BG_CONFIG_IDENT:
        return isalnum(c) || c == '.' || c == '_' || c == ':' || c == '-';
    case BG_CONFIG_PATH:
        /* Paths may hold spaces and UTF-8; only control characters are refused. */
        return c >= 0x20 && c != 0x7f;
    default:
        return isgraph(c);
    }
}

int bg_config_valid_chars(const bg_config_key *key, const char *value, char *reason)
{
    size_t len = strlen(value), i;

    if ((int64_t)len < key->min || (int64_t)len > key->max) {
        bg_set_error(reason, "length %zu is out of range", len);
        return BG_ERR;
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)value[i];
        if (char_allowed(key->kind, c))
            continue;
        if (isgraph(c))
            bg_set_error(reason, "character '%c' is not allowed", c);
        else
            bg_set_error(reason, "character 0x%02x is not allowed", c);
        return BG_ERR;
    }
    return BG_OK;
}

int bg_config_resolve_path(const bg_config_ctx *ctx, const char *value, char *out, size_t size,
                           char *reason)
{
    int n;

    size_t dlen = strlen(ctx->dir);

    if (value[0] == '/' || dlen == 0)
        n = snprintf(out, size, "%s", value);
    else
        n = snprintf(out, size, "%s%s%s", ctx->dir, ctx->dir[dlen - 1] == '/' ? "" : "/", value);
    if (n < 0 || (size_t)n >= size) {
        bg_set_error(reason, "path too long once made absolute");
        return BG_ERR;
    }
    return BG_OK;
}

int bg_config_store_text(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                         char *reason)
{
    size_t len = strlen(value);

    if (len >= key->size) {
        bg_set_error(reason, "too long (%zu characters)", len);
        return BG_ERR;
    }
    memcpy(field_ptr(ctx, key), value, len + 1);
    return BG_OK;
}

static int parse_text(bg_config_ctx *ctx, const bg_config_key *key, const char *value, char *reason)
{
    if (bg_config_valid_chars(key, value, reason) != BG_OK)
        return BG_ERR;
    if (strlen(value) >= key->size) {
        bg_set_error(reason, "too long");
        return BG_ERR;
    }
    memcpy(field_ptr(ctx, key), value, strlen(value) + 1);
    return BG_OK;
}

static int parse_path(bg_config_ctx *ctx, const bg_config_key *key, const char *value, char *reason)
{
    char *field = field_ptr(ctx, key);

    if ((key->flags & BG_CONFIG_OFF_OK) && strcmp(value, "off") == 0) {
        field[0] = '\0';
        return BG_OK;
    }
    if ((key->flags & BG_CONFIG_STDERR_OK) && strcmp(value, "stderr") == 0) {
        snprintf(field, key->size, "stderr");
        return BG_OK;
    }
    if (bg_config_valid_chars(key, value, reason) != BG_OK)
        return BG_ERR;
    return bg_config_resolve_path(ctx, value, field, key->size, reason);
}

static int check_range(const bg_config_key *key, int64_t v, char *reason)
{
    if (v < key->min || v > key->max) {
        bg_set_error(reason, "out of range");
        return BG_ERR;
    }
    return BG_OK;
}

static int parse_number(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                        char *reason)
{
    void *field = field_ptr(ctx, key);
    int64_t v;
    size_t sz;

    if (key->kind == BG_CONFIG_SIZE) {
        if (bg_config_parse_size(value, &sz, reason) != BG_OK)
            return BG_ERR;
        if ((uint64_t)sz > (uint64_t)key->max && key->over_max != NULL) {
            bg_set_error(reason, "%s", key->over_max);
            return BG_ERR;
        }
        if ((uint64_t)sz > (uint64_t)key->max || (int64_t)sz < key->min) {
            bg_set_error(reason, "out of range");
            return BG_ERR;
        }
        *(size_t *)field = sz;
        return BG_OK;
    }
    if (key->kind == BG_CONFIG_DURATION ? bg_config_parse_duration(value, &v, reason)
                                        : bg_config_parse_int(value, &v, reason))
        return BG_ERR;
    if (check_range(key, v, reason) != BG_OK)
        return BG_ERR;
    if (key->size == sizeof(int))
        *(int *)field = (int)v;
    else
        *(int64_t *)field = v;
    return BG_OK;
}

int bg_config_parse_value(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                          char *reason)
{
    int b;

    switch (key->kind) {
    case BG_CONFIG_STRING:
    case BG_CONFIG_IDENT:
    case BG_CONFIG_KEYNAME:
        return parse_text(ctx, key, value, reason);
    case BG_CONFIG_PATH:
        return parse_path(ctx, key, value, reason);
    case BG_CONFIG_INT:
    case BG_CONFIG_DURATION:
    case BG_CONFIG_SIZE:
        return parse_number(ctx, key, value, reason);
    case BG_CONFIG_BOOL:
        if (bg_config_parse_bool(value, &b) != BG_OK) {
            bg_set_error(reason, "not a boolean");
            return BG_ERR;
        }
        *(int *)field_ptr(ctx, key) = b;
        return BG_OK;
    case BG_CONFIG_CUSTOM:
        return key->parse(ctx, key, value, reason);
    }
    bg_set_error(reason, "internal error: unknown key kind");
    return BG_ERR;
}
