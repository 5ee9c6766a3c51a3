/* http_path.c: request-target split, percent-decoding and path normalisation. */
#include "http_path.h"

#include <string.h>

#include "busgate/core/text.h"

void bg_http_target_split(const char *target, size_t len, bg_bytes *path, bg_bytes *query)
{
    const char *q = len > 0 ? memchr(target, '?', len) : NULL;

    path->ptr = target;
    path->len = q != NULL ? (size_t)(q - target) : len;
    query->ptr = q != NULL ? q + 1 : NULL;
    query->len = q != NULL ? len - path->len - 1 : 0;
}

/* Decodes the byte at path[*i] (a literal or a %XX escape) and advances *i. */
static int path_byte(const char *path, size_t len, size_t *i, unsigned char *out,
                     bg_http_error *err)
{
    int byte;

    if (path[*i] != '%') {
        *out = (unsigned char)path[(*i)++];
        return BG_OK;
    }
    byte = bg_pct_byte(path, len, *i);
    if (byte < 0) {
        *err = BG_HTTP_E_BAD_PERCENT;
        return BG_ERR;
    }
    *out = (unsigned char)byte;
    *i += 3;
    if (*out == '\0')
        *err = BG_HTTP_E_PATH_NUL;
    else if (*out == '/')
        *err = BG_HTTP_E_ENCODED_SLASH;
    else if (*out < 0x20 || *out == 0x7f)
        *err = BG_HTTP_E_PATH_CTL;
    else
        return BG_OK;
    return BG_ERR;
}

/* Removes the last segment of out[0..*o), which ends in '/', keeping the root. */
static void segment_pop(const char *out, size_t *o)
{
    if (*o <= 1)
        return;
    (*o)--;
    while (out[*o - 1] != '/')
        (*o)--;
}

/* Decodes one segment at path[*i] into out + *o; the dot-segment test runs on the
 * decoded bytes so that "%2e%2e" is resolved like "..". */
static int segment_copy(const char *path, size_t len, size_t *i, char *out, size_t *o,
                        bg_http_error *err)
{
    size_t seg = *o;
    unsigned char c;

    while (*i < len && path[*i] != '/') {
        if (path_byte(path, len, i, &c, err) != BG_OK)
            return BG_ERR;
        if (c < 0x20 || c == 0x7f) {
            *err = c == '\0' ? BG_HTTP_E_PATH_NUL : BG_HTTP_E_PATH_CTL;
            return BG_ERR;
        }
        out[(*o)++] = (char)c;
    }
    if (*o - seg == 1 && out[seg] == '.') {
        *o = seg;
    } else if (*o - seg == 2 && out[seg] == '.' && out[seg + 1] == '.') {
        *o = seg;
        segment_pop(out, o);
    } else if (*o > seg && *i < len) {
        out[(*o)++] = '/';
    }
    return BG_OK;
}

int bg_http_path_normalize(const char *path, size_t len, char *out, size_t outcap, size_t *outlen,
                           bg_http_error *err)
{
    bg_http_error e = BG_HTTP_E_NONE;
    size_t i = 1, o = 1;

    if (outcap < (len > 0 ? len : 1) + 1) {
        e = BG_HTTP_E_PATH_TOO_LONG;
        goto fail;
    }
    if (len > 0 && path[0] != '/') {
        e = BG_HTTP_E_BAD_PATH;
        goto fail;
    }
    out[0] = '/';
    /* Every output byte comes from at least one input byte, so out never overflows. */
    while (i < len) {
        if (path[i] == '/') {
            i++; /* an empty segment: "//" collapses */
            continue;
        }
        if (segment_copy(path, len, &i, out, &o, &e) != BG_OK)
            goto fail;
        if (i < len)
            i++;
    }
    out[o] = '\0';
    if (outlen != NULL)
        *outlen = o;
    return BG_OK;
fail:
    if (err != NULL)
        *err = e;
    return BG_ERR;
}
