/* auth_identity.c: the identity headers a verified token gives the service: X-User-Id,
 * X-User-Roles, X-User-Claims and the [identity] claim_headers mapping. */
#include "auth.h"

#include <stdlib.h>
#include <string.h>

#define AUTH_ROLES_MAX 4096

/* RFC 9110 field-value: no control byte but HTAB (CR or LF would split the message). */
static int header_value_ok(const char *v, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
    }
    return 1;
}

/* A claim as header text: a string as it is, anything else as compact JSON (malloc'd). */
static char *claim_text(json_t *v)
{
    if (json_is_string(v)) /* a NUL inside would cut the value short: leave it out */
        return memchr(json_string_value(v), '\0', json_string_length(v)) != NULL
                   ? NULL
                   : strndup(json_string_value(v), json_string_length(v));
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

static int emit_text(bg_auth_emit_fn emit, void *arg, const char *name, size_t nlen, char *text)
{
    int rc = BG_OK;

    /* A value with a control byte (or NUL inside) cannot be a header: leave it out. */
    if (text != NULL && header_value_ok(text, strlen(text)))
        rc = emit(arg, name, nlen, text, strlen(text));
    free(text);
    return rc;
}

/* The roles array joined with ", " (a string claim as it is). */
static char *roles_text(json_t *v)
{
    char *out;
    size_t i, used = 0;
    json_t *e;

    if (json_is_string(v))
        return claim_text(v);
    if (!json_is_array(v) || json_array_size(v) == 0 || (out = malloc(AUTH_ROLES_MAX)) == NULL)
        return NULL;
    out[0] = '\0';
    json_array_foreach(v, i, e)
    {
        size_t len = json_string_length(e);
        if (!json_is_string(e) || used + len + 3 > AUTH_ROLES_MAX)
            continue;
        used += (size_t)snprintf(out + used, AUTH_ROLES_MAX - used, "%s%s", used ? ", " : "",
                                 json_string_value(e));
    }
    return out;
}

static int emit_mapped(const bg_config *cfg, json_t *claims, bg_auth_emit_fn emit, void *arg)
{
    const char *p = cfg->identity.claim_headers;

    while (*p != '\0') {
        const char *end = strchr(p, ','), *colon;
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        json_t *v;
        colon = memchr(p, ':', len);
        if (colon != NULL) {
            v = json_object_getn(claims, colon + 1, len - (size_t)(colon + 1 - p));
            if (v != NULL && emit_text(emit, arg, p, (size_t)(colon - p), claim_text(v)) != BG_OK)
                return BG_ERR;
        }
        p += len + (end != NULL);
    }
    return BG_OK;
}

int bg_auth_identity(const bg_config *cfg, json_t *claims, const char *text, bg_auth_emit_fn emit,
                     void *arg)
{
    json_t *sub = json_object_get(claims, "sub");
    json_t *roles = json_object_get(claims, cfg->auth.roles_claim);

    if (json_is_string(sub) && emit_text(emit, arg, "X-User-Id", 9, claim_text(sub)) != BG_OK)
        return BG_ERR;
    if (roles != NULL && emit_text(emit, arg, "X-User-Roles", 12, roles_text(roles)) != BG_OK)
        return BG_ERR;
    if (emit_text(emit, arg, "X-User-Claims", 13,
                  text != NULL ? strdup(text) : json_dumps(claims, JSON_COMPACT)) != BG_OK)
        return BG_ERR;
    return emit_mapped(cfg, claims, emit, arg);
}
