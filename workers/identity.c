/* identity.c: parses the reserved identity header list and answers "is this name reserved". */
#include "identity.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static int identity_add(bg_identity *id, const char *p, size_t len, char *err)
{
    if (len == 0)
        return BG_OK;
    if (id->n == BG_IDENTITY_MAX_NAMES || len > BG_IDENTITY_NAME_MAX) {
        bg_set_error(err, "reserved_headers: more than %d names or a name over %d bytes",
                     BG_IDENTITY_MAX_NAMES, BG_IDENTITY_NAME_MAX);
        return BG_ERR;
    }
    memcpy(id->names[id->n].name, p, len);
    id->names[id->n].name[len] = '\0';
    id->names[id->n].len = len;
    id->n++;
    return BG_OK;
}

int bg_identity_add(bg_identity *id, const char *name, size_t len, char *err)
{
    return identity_add(id, name, len, err);
}

int bg_identity_init(bg_identity *id, const char *list, const char *prefix, char *err)
{
    const char *p = list != NULL ? list : "";

    memset(id, 0, sizeof(*id));
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len;

        end = end != NULL ? end : p + strlen(p);
        while (p < end && isspace((unsigned char)*p))
            p++;
        len = (size_t)(end - p);
        while (len > 0 && isspace((unsigned char)p[len - 1]))
            len--;
        if (identity_add(id, p, len, err) != BG_OK)
            return BG_ERR;
        p = *end != '\0' ? end + 1 : end;
    }
    if (prefix != NULL && bg_strlcpy_checked(id->prefix, prefix, sizeof(id->prefix)) != BG_OK) {
        bg_set_error(err, "reserved_prefix: longer than %zu bytes", sizeof(id->prefix) - 1);
        return BG_ERR;
    }
    id->prefix_len = strlen(id->prefix);
    return BG_OK;
}

int bg_identity_reserved(const bg_identity *id, const char *name, size_t len)
{
    size_t i;

    if (id->prefix_len > 0 && len >= id->prefix_len &&
        strncasecmp(name, id->prefix, id->prefix_len) == 0)
        return 1;
    for (i = 0; i < id->n; i++)
        if (id->names[i].len == len && strncasecmp(name, id->names[i].name, len) == 0)
            return 1;
    return 0;
}
