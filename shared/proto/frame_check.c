/* frame_check.c: validation of single frame field values (scalars, names, paths, sizes). */
#include "frame_int.h"

#include <stdio.h>
#include <string.h>

static int is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int bg_http_token_ok(const char *p, size_t len)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";

    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!is_alnum(c) && (c == '\0' || strchr(extra, c) == NULL))
            return 0;
    }
    return 1;
}

int bg_param_name_ok(const char *p, size_t len)
{
    if (len == 0 || len > 64)
        return 0;
    if (!((p[0] >= 'a' && p[0] <= 'z') || (p[0] >= 'A' && p[0] <= 'Z') || p[0] == '_'))
        return 0;
    for (size_t i = 1; i < len; i++) {
        if (!is_alnum((unsigned char)p[i]) && p[i] != '_')
            return 0;
    }
    return 1;
}

/* Untrusted bytes quoted in an error message: printable, at most 32 of them. */
static const char *quote_safe(char *dst, const char *p, size_t len)
{
    size_t n = len > 32 ? 32 : len;

    for (size_t i = 0; i < n; i++)
        dst[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? p[i] : '?';
    dst[n] = '\0';
    return dst;
}

static int check_int(const bg_field_def *d, const char *p, size_t len, char *why)
{
    int64_t v;

    if (bg_parse_i64(p, len, &v) != BG_OK) {
        bg_set_error(why, "field '%s' is not an integer", d->name);
        return BG_ERR;
    }
    if (v < d->min || v > d->max) {
        bg_set_error(why, "field '%s' value %lld is outside %lld..%lld", d->name, (long long)v,
                     (long long)d->min, (long long)d->max);
        return BG_ERR;
    }
    return BG_OK;
}

static int check_length(const bg_field_def *d, size_t len, size_t max, char *why)
{
    if (len == 0) {
        bg_set_error(why, "field '%s' is empty", d->name);
        return BG_ERR;
    }
    if (len > max) {
        bg_set_error(why, "field '%s' is %zu bytes, limit %zu", d->name, len, max);
        return BG_ERR;
    }
    return BG_OK;
}

static int bad_byte(const bg_field_def *d, const char *p, size_t i, const char *allowed, char *why)
{
    bg_set_error(why, "field '%s' has byte 0x%02x at offset %zu, allowed %s", d->name,
                 (unsigned char)p[i], i, allowed);
    return BG_ERR;
}

static int check_ident(const bg_field_def *d, const char *p, size_t len, char *why)
{
    if (check_length(d, len, d->size - 1, why) != BG_OK)
        return BG_ERR;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!is_alnum(c) && c != '.' && c != '_' && c != ':' && c != '-')
            return bad_byte(d, p, i, "[A-Za-z0-9._:-]", why);
    }
    return BG_OK;
}

static int check_name(const bg_field_def *d, const char *p, size_t len, char *why)
{
    char inner[BG_ERR_LEN];

    if (bg_name_validate_bytes(d->name, p, len, inner) == BG_OK)
        return BG_OK;
    bg_set_error(why, "field '%s': %s", d->name, inner);
    return BG_ERR;
}

/* token: printable ASCII without space; text: anything but control bytes. */
static int check_printable(const bg_field_def *d, const char *p, size_t len, int allow_space,
                           char *why)
{
    if (check_length(d, len, d->size - 1, why) != BG_OK)
        return BG_ERR;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (allow_space ? (c < 0x20 || c == 0x7f) : (c <= 0x20 || c >= 0x7f))
            return bad_byte(d, p, i, allow_space ? "no control bytes" : "printable ASCII", why);
    }
    return BG_OK;
}

static int check_method(const bg_field_def *d, const char *p, size_t len, char *why)
{
    bg_method m;
    char q[33];

    if (bg_method_parse(p, len, &m) == BG_OK)
        return BG_OK;
    bg_set_error(why, "field '%s' '%s' is not one of GET HEAD POST PUT PATCH DELETE OPTIONS",
                 d->name, quote_safe(q, p, len));
    return BG_ERR;
}

/* A dot segment would let a service that maps paths to files escape its root. */
static int is_dot_segment(const char *p, size_t start, size_t end)
{
    size_t n = end - start;
    return (n == 1 && p[start] == '.') || (n == 2 && p[start] == '.' && p[start + 1] == '.');
}

static int check_path(const bg_field_def *d, const char *p, size_t len, char *why)
{
    size_t seg = 1;

    if (check_length(d, len, d->size, why) != BG_OK)
        return BG_ERR;
    if (p[0] != '/') {
        bg_set_error(why, "field '%s' does not start with '/'", d->name);
        return BG_ERR;
    }
    for (size_t i = 1; i <= len; i++) {
        if (i < len && p[i] == '\0')
            return bad_byte(d, p, i, "anything but NUL", why);
        if (i < len && p[i] != '/')
            continue;
        if (is_dot_segment(p, seg, i)) {
            bg_set_error(why, "field '%s' has a dot segment at offset %zu (not normalised)",
                         d->name, seg);
            return BG_ERR;
        }
        seg = i + 1;
    }
    return BG_OK;
}

static int check_query(const bg_field_def *d, const char *p, size_t len, char *why)
{
    if (len > d->size) {
        bg_set_error(why, "field '%s' is %zu bytes, limit %zu", d->name, len, d->size);
        return BG_ERR;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c <= 0x20 || c == 0x7f || c == '#')
            return bad_byte(d, p, i, "no space, control byte or '#'", why);
    }
    return BG_OK;
}

static int check_template(const bg_field_def *d, const char *p, size_t len, char *why)
{
    char inner[BG_ERR_LEN];

    if (bg_path_template_validate(p, len, inner) == BG_OK)
        return BG_OK;
    bg_set_error(why, "field '%s': %s", d->name, inner);
    return BG_ERR;
}

static int check_size(const bg_field_def *d, size_t len, char *why)
{
    if (len <= d->size)
        return BG_OK;
    bg_set_error(why, "%s: %zu bytes exceeds limit %zu", d->name, len, d->size);
    return BG_ERR;
}

int bg_field_check(bg_field_id fid, const char *p, size_t len, char *why)
{
    const bg_field_def *d = &bg_field_defs[fid];
    bg_frame_type t;
    char q[33];

    if (p == NULL && len > 0) {
        bg_set_error(why, "field '%s' has no data", d->name);
        return BG_ERR;
    }
    switch (d->kind) {
    case BG_K_INT:
        return check_int(d, p, len, why);
    case BG_K_TYPE:
        if (bg_frame_type_parse(p, len, &t) == BG_OK)
            return BG_OK;
        bg_set_error(why, "unknown type %s", quote_safe(q, p, len));
        return BG_ERR;
    case BG_K_IDENT:
        return check_ident(d, p, len, why);
    case BG_K_NAME:
        return check_name(d, p, len, why);
    case BG_K_TOKEN:
        return check_printable(d, p, len, 0, why);
    case BG_K_TEXT:
        return check_printable(d, p, len, 1, why);
    case BG_K_METHOD:
        return check_method(d, p, len, why);
    case BG_K_PATH:
        return check_path(d, p, len, why);
    case BG_K_QUERY:
        return check_query(d, p, len, why);
    case BG_K_TEMPLATE:
        return check_template(d, p, len, why);
    case BG_K_META:
    case BG_K_BODY:
        return check_size(d, len, why);
    }
    return BG_ERR;
}
