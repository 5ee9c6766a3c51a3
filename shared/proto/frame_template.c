/* frame_template.c: validation of endpoint path templates ("/orders/{id}", "/files/{rest*}"). */
#include "frame_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* RFC 3986 pchar without pct-encoded: templates match decoded paths, so '%' has no use. */
static int literal_char_ok(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("-._~!$&'()*+,;=:@", c) != NULL;
}

static int check_literal(const char *t, size_t start, size_t end, char *err)
{
    size_t n = end - start;

    if ((n == 1 && t[start] == '.') || (n == 2 && t[start] == '.' && t[start + 1] == '.')) {
        bg_set_error(err, "dot segment at offset %zu", start);
        return BG_ERR;
    }
    for (size_t i = start; i < end; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c == '{' || c == '}') {
            bg_set_error(err,
                         "'%c' inside a literal segment at offset %zu (a parameter must be "
                         "a whole segment)",
                         c, i);
            return BG_ERR;
        }
        if (!literal_char_ok(c)) {
            bg_set_error(err, "byte 0x%02x at offset %zu is not allowed in a template", c, i);
            return BG_ERR;
        }
    }
    return BG_OK;
}

typedef struct param_names {
    const char *ptr[BG_FRAME_PARAMS_MAX];
    size_t len[BG_FRAME_PARAMS_MAX];
    size_t n;
} param_names;

static int check_param(const char *t, size_t start, size_t end, int last, param_names *names,
                       char *err)
{
    size_t nstart = start + 1, nend = end - 1;
    int tail = 0;

    if (end - start < 3 || t[end - 1] != '}') {
        bg_set_error(err, "unterminated or empty parameter at offset %zu", start);
        return BG_ERR;
    }
    if (t[nend - 1] == '*') {
        tail = 1;
        nend--;
    }
    if (tail && !last) {
        bg_set_error(err, "tail parameter at offset %zu is not the last segment", start);
        return BG_ERR;
    }
    if (!bg_param_name_ok(t + nstart, nend - nstart)) {
        bg_set_error(err,
                     "invalid parameter name at offset %zu (allowed [A-Za-z_][A-Za-z0-9_]{0,63})",
                     nstart);
        return BG_ERR;
    }
    for (size_t i = 0; i < names->n; i++) {
        if (names->len[i] == nend - nstart &&
            memcmp(names->ptr[i], t + nstart, nend - nstart) == 0) {
            bg_set_error(err, "parameter '%.*s' appears twice", (int)(nend - nstart), t + nstart);
            return BG_ERR;
        }
    }
    if (names->n == BG_FRAME_PARAMS_MAX) {
        bg_set_error(err, "more than %d parameters", BG_FRAME_PARAMS_MAX);
        return BG_ERR;
    }
    names->ptr[names->n] = t + nstart;
    names->len[names->n++] = nend - nstart;
    return BG_OK;
}

int bg_path_template_validate(const char *tpl, size_t len, char *err)
{
    param_names names;
    size_t start = 1;

    names.n = 0;
    if (tpl == NULL || len == 0) {
        bg_set_error(err, "template is empty");
        return BG_ERR;
    }
    if (len > BG_FRAME_PATH_MAX) {
        bg_set_error(err, "template is %zu bytes, limit %d", len, BG_FRAME_PATH_MAX);
        return BG_ERR;
    }
    if (tpl[0] != '/') {
        bg_set_error(err, "template does not start with '/'");
        return BG_ERR;
    }
    if (len == 1)
        return BG_OK;
    while (start <= len) {
        size_t end = start;
        int rc;

        while (end < len && tpl[end] != '/')
            end++;
        if (end == start) {
            bg_set_error(err, "empty segment at offset %zu", start);
            return BG_ERR;
        }
        if (tpl[start] == '{')
            rc = check_param(tpl, start, end, end == len, &names, err);
        else
            rc = check_literal(tpl, start, end, err);
        if (rc != BG_OK)
            return BG_ERR;
        start = end + 1;
    }
    return BG_OK;
}
