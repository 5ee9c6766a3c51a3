/* config_reader.c: the line reader inih pulls the file through. It counts lines, checks each
 * one's syntax and section so every error is reported (inih only returns the first), and keeps
 * the whole line so values longer than inih's buffer are not cut. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config_internal.h"

/* First of chars in s, or of an inline comment (';' after a blank) as inih sees it. */
static char *find_delim(char *s, const char *chars)
{
    int was_space = 0;

    while (*s && strchr(chars, *s) == NULL && !(was_space && *s == ';')) {
        was_space = isspace((unsigned char)*s);
        s++;
    }
    return s;
}

static void bad_line(bg_config_ctx *ctx)
{
    ctx->bad_line = ctx->lineno;
}

static void scan_section(bg_config_ctx *ctx, char *p)
{
    char *end = find_delim(p + 1, "]"), *rest, *name = p + 1;
    char allowed[256];
    size_t len;

    ctx->section_ok = 0;
    snprintf(ctx->section, sizeof(ctx->section), "?");
    if (*end != ']') {
        bg_config_error(ctx, ctx->lineno, "'%.64s': section header without ']'", p);
        bad_line(ctx);
        return;
    }
    for (rest = end + 1; isspace((unsigned char)*rest); rest++)
        ;
    while (isspace((unsigned char)*name))
        name++;
    len = (size_t)(end - name);
    while (len > 0 && isspace((unsigned char)name[len - 1]))
        len--;
    if (*rest != '\0' && *rest != ';' && *rest != '#') {
        bg_config_error(ctx, ctx->lineno, "'%.64s': text after the section header", p);
        bad_line(ctx);
        return;
    }
    snprintf(ctx->section, sizeof(ctx->section), "%.*s", (int)len, name);
    if (ctx->bus_only) {
        /* Services share the gateway's file: everything but the bus sections is theirs. */
        ctx->section_ok = bg_config_section_bus(ctx->section);
        return;
    }
    ctx->section_ok = bg_config_section_known(ctx->section);
    if (!ctx->section_ok) {
        bg_config_section_list(allowed, sizeof(allowed));
        bg_config_error(ctx, ctx->lineno, "[%s]: unknown section (allowed: %s)", ctx->section,
                        allowed);
    }
}

static void scan_line(bg_config_ctx *ctx, char *p)
{
    char *delim;

    if (*p == '\0' || *p == ';' || *p == '#')
        return;
    if (*p == '[') {
        scan_section(ctx, p);
        return;
    }
    delim = find_delim(p, "=:");
    if (*delim != '=' && *delim != ':') {
        bg_config_error(ctx, ctx->lineno, "'%.64s': not a 'key = value' line", p);
        bad_line(ctx);
        return;
    }
    if (delim == p) {
        bg_config_error(ctx, ctx->lineno, "'%.64s': missing key name", p);
        bad_line(ctx);
        return;
    }
    if (ctx->section[0] == '\0') {
        bg_config_error(ctx, ctx->lineno, "'%.64s': key outside of any [section]", p);
        bad_line(ctx);
        return;
    }
}

/* Strips the BOM, blanks and line end in place; returns the text. */
static char *trim_line(bg_config_ctx *ctx, size_t n)
{
    char *p = ctx->line;

    if (ctx->lineno == 1 && n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3;
    n = strlen(p);
    while (n > 0 && isspace((unsigned char)p[n - 1]))
        p[--n] = '\0';
    /* Leading blanks go too: inih would read an indented line as a continuation of the
     * previous value, which in this file is always a mistake. */
    while (isspace((unsigned char)*p))
        p++;
    return p;
}

char *bg_config_read_line(char *str, int num, void *stream)
{
    bg_config_ctx *ctx = stream;
    ssize_t n = getline(&ctx->line, &ctx->linecap, ctx->fp);
    size_t len;

    if (n < 0 || num < 3)
        return NULL;
    ctx->lineno++;
    ctx->truncated = 0;
    if (memchr(ctx->line, '\0', (size_t)n) != NULL) {
        bg_config_error(ctx, ctx->lineno, "line contains a NUL byte");
        bad_line(ctx);
    }
    ctx->text = trim_line(ctx, (size_t)n);
    if (ctx->bad_line != ctx->lineno)
        scan_line(ctx, ctx->text);
    len = ctx->bad_line == ctx->lineno ? 0 : strlen(ctx->text);
    /* inih's buffer is num bytes; hand it a cut line ending in '\n' (else it would swallow
     * the next line as the rest of this one) and give the handler the whole value. */
    if (len > (size_t)num - 2) {
        len = (size_t)num - 2;
        ctx->truncated = 1;
    }
    memcpy(str, ctx->text, len);
    str[len] = '\n';
    str[len + 1] = '\0';
    return str;
}

const char *bg_config_line_value(bg_config_ctx *ctx)
{
    char *value = find_delim(ctx->text, "=:"), *end;
    size_t len;

    if (*value == '\0')
        return value;
    value++;
    end = find_delim(value, "");
    *end = '\0';
    while (isspace((unsigned char)*value))
        value++;
    len = strlen(value);
    while (len > 0 && isspace((unsigned char)value[len - 1]))
        value[--len] = '\0';
    return value;
}
