/* rate_spec.c: the "<n>/<unit> [burst=] [key=]" rate limit grammar: parse, canonical text,
 * and which of two limits is the stricter. */
#include "busgate/core/rate_spec.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "busgate/common.h"
#include "busgate/core/text.h"

void bg_rate_word(const char **p, char *out, size_t size)
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
        out[0] = '\x01';
}

/* Decimal digits only, 1..max (no sign, no blanks, no leading '+'). */
static int rs_number(const char *s, int64_t max, int64_t *out)
{
    int64_t n = 0;

    if (*s == '\0')
        return BG_ERR;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9' || n > max)
            return BG_ERR;
        n = n * 10 + (*s - '0');
    }
    if (n < 1 || n > max)
        return BG_ERR;
    *out = n;
    return BG_OK;
}

/* "<n>/s", "<n>/m" or "<n>/h". */
static int rs_rate(bg_rate_spec *r, const char *w, char *reason)
{
    const char *slash = strchr(w, '/');
    char num[16];

    if (slash == NULL || slash == w || (size_t)(slash - w) >= sizeof(num) || slash[1] == '\0' ||
        slash[2] != '\0' || strchr("smh", slash[1]) == NULL) {
        bg_set_error(reason, "'%.32s' is not a rate like 10/s, 100/m or 1000/h", w);
        return BG_ERR;
    }
    snprintf(num, sizeof(num), "%.*s", (int)(slash - w), w);
    if (rs_number(num, BG_RATE_COUNT_MAX, &r->count) != BG_OK) {
        bg_set_error(reason, "rate '%.32s': the count must be 1..%d", w, BG_RATE_COUNT_MAX);
        return BG_ERR;
    }
    r->per_ms = slash[1] == 's' ? 1000 : slash[1] == 'm' ? 60 * 1000 : 3600 * 1000;
    r->burst = r->count;
    return BG_OK;
}

/* key=client | key=header:<Name> | key=claim:<name> (a claim of the verified token). */
static int rs_key(bg_rate_spec *r, const char *v, char *reason)
{
    const char *name = strchr(v, ':');

    if (strcmp(v, "client") == 0) {
        r->key = BG_RATE_KEY_CLIENT;
        r->key_name[0] = '\0';
        return BG_OK;
    }
    if (name == NULL || name[1] == '\0' || !bg_is_token(name + 1, strlen(name + 1)) ||
        (strncmp(v, "header:", 7) != 0 && strncmp(v, "claim:", 6) != 0) ||
        bg_strlcpy_checked(r->key_name, name + 1, sizeof(r->key_name)) != BG_OK) {
        bg_set_error(reason, "key=%.40s is not client, header:<Name> or claim:<name>", v);
        return BG_ERR;
    }
    r->key = v[0] == 'h' ? BG_RATE_KEY_HEADER : BG_RATE_KEY_CLAIM;
    return BG_OK;
}

static int rs_option(bg_rate_spec *r, const char *w, char *reason)
{
    if (strncmp(w, "burst=", 6) == 0) {
        if (rs_number(w + 6, BG_RATE_BURST_MAX, &r->burst) != BG_OK) {
            bg_set_error(reason, "%.32s: burst must be 1..%d", w, BG_RATE_BURST_MAX);
            return BG_ERR;
        }
        return BG_OK;
    }
    if (strncmp(w, "key=", 4) == 0)
        return rs_key(r, w + 4, reason);
    bg_set_error(reason, "unknown option '%.32s'", w);
    return BG_ERR;
}

int bg_rate_spec_parse(const char *text, bg_rate_spec *out, char *reason)
{
    bg_rate_spec r = {.key = BG_RATE_KEY_CLIENT};
    char w[BG_RATE_SPEC_TEXT_MAX + 2];
    const char *p = text;

    bg_rate_word(&p, w, sizeof(w));
    if (rs_rate(&r, w, reason) != BG_OK)
        return BG_ERR;
    for (bg_rate_word(&p, w, sizeof(w)); w[0] != '\0'; bg_rate_word(&p, w, sizeof(w)))
        if (rs_option(&r, w, reason) != BG_OK)
            return BG_ERR;
    bg_rate_spec_finish(&r);
    *out = r;
    return BG_OK;
}

int bg_rate_spec_finish(bg_rate_spec *s)
{
    if (s->count < 1 || s->count > BG_RATE_COUNT_MAX ||
        (s->per_ms != 1000 && s->per_ms != 60000 && s->per_ms != 3600000) || s->burst < 1 ||
        s->burst > BG_RATE_BURST_MAX) {
        s->count = s->per_ms = s->interval_us = s->burst = 0;
        return BG_ERR;
    }
    s->interval_us = s->per_ms * 1000 / s->count; /* >= 1: count <= 1e6, per_ms >= 1000 */
    return BG_OK;
}

void bg_rate_spec_format(const bg_rate_spec *s, char *out, size_t size)
{
    char unit = s->per_ms == 1000 ? 's' : s->per_ms == 60000 ? 'm' : 'h';
    int n;

    if (size == 0)
        return;
    out[0] = '\0';
    if (s->count <= 0)
        return;
    n = snprintf(out, size, "%lld/%c", (long long)s->count, unit);
    if (s->burst != s->count && n >= 0 && (size_t)n < size)
        n += snprintf(out + n, size - (size_t)n, " burst=%lld", (long long)s->burst);
    if (s->key != BG_RATE_KEY_CLIENT && n >= 0 && (size_t)n < size)
        snprintf(out + n, size - (size_t)n, " key=%s:%s",
                 s->key == BG_RATE_KEY_HEADER ? "header" : "claim", s->key_name);
}

static int rs_sign(int64_t a, int64_t b)
{
    return (a > b) - (a < b);
}

int bg_rate_spec_cmp(const bg_rate_spec *a, const bg_rate_spec *b)
{
    int c;

    if (a->count <= 0 || b->count <= 0)
        return rs_sign(a->count <= 0, b->count <= 0); /* none is the loosest */
    /* a's rate count_a/per_a below b's: count_a * per_b < count_b * per_a (< 3.6e12) */
    if ((c = rs_sign(a->count * b->per_ms, b->count * a->per_ms)) != 0)
        return c;
    if ((c = rs_sign(a->burst, b->burst)) != 0)
        return c;
    if ((c = rs_sign((int64_t)a->key, (int64_t)b->key)) != 0)
        return c;
    return strcmp(a->key_name, b->key_name);
}
