/* config_openapi.c: parsers of the [openapi] keys (path, access, title). */
#include <string.h>

#include "config_internal.h"

/* Workers compare the decoded, normalised request path with it byte for byte, so only a
 * path that normalisation leaves as it is can ever match. */
static int openapi_path_ok(const char *p)
{
    const char *seg;

    if (p[0] != '/' || p[1] == '\0')
        return 0;
    if (strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~/-") !=
        strlen(p))
        return 0;
    for (seg = p + 1; seg != NULL; seg = strchr(seg, '/') ? strchr(seg, '/') + 1 : NULL) {
        size_t n = strcspn(seg, "/");
        if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return 0;
    }
    return 1;
}

int bg_config_parse_openapi_path(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                                 char *reason)
{
    (void)key;
    if (strcmp(value, "off") == 0) {
        ctx->cfg->openapi.path[0] = '\0';
        return BG_OK;
    }
    if (strlen(value) >= sizeof(ctx->cfg->openapi.path) || !openapi_path_ok(value)) {
        bg_set_error(reason, "not an absolute path the gateway can match");
        return BG_ERR;
    }
    memcpy(ctx->cfg->openapi.path, value, strlen(value) + 1);
    return BG_OK;
}

int bg_config_parse_openapi_access(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                                   char *reason)
{
    (void)key;
    if (strcmp(value, "public") == 0)
        ctx->cfg->openapi.access = BG_OPENAPI_PUBLIC;
    else if (strcmp(value, "admin") == 0)
        ctx->cfg->openapi.access = BG_OPENAPI_ADMIN;
    else {
        bg_set_error(reason, "unknown access mode");
        return BG_ERR;
    }
    return BG_OK;
}

/* Free text (it ends up inside a JSON string): no control bytes. */
int bg_config_parse_text(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                         char *reason)
{
    size_t len = strlen(value);

    if (len == 0 || len >= key->size) {
        bg_set_error(reason, "length %zu is outside 1..%zu", len, key->size - 1);
        return BG_ERR;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f) {
            bg_set_error(reason, "control character at offset %zu", i);
            return BG_ERR;
        }
    }
    memcpy((char *)ctx->cfg + key->offset, value, len + 1);
    return BG_OK;
}
