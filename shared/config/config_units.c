/* config_units.c: parse and print the units of the ini file: integers, durations, sizes, on/off. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config_internal.h"

typedef struct unit {
    const char *suffix;
    uint64_t mult;
} unit;

/* Durations are case-sensitive so that "m" (minutes) never reads as a size. */
static const unit duration_units[] = {
    {"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 3600 * 1000},
};

static const unit size_units[] = {
    {"", 1},
    {"k", 1024},
    {"kb", 1024},
    {"m", 1024 * 1024},
    {"mb", 1024 * 1024},
    {"g", 1024 * 1024 * 1024},
    {"gb", 1024 * 1024 * 1024},
};

/* Leading decimal digits of s; *end points past them. */
static int parse_digits(const char *s, const char **end, uint64_t *out, char *reason)
{
    uint64_t n = 0;

    if (*s < '0' || *s > '9') {
        bg_set_error(reason, *s == '-' ? "negative" : "not a number");
        return BG_ERR;
    }
    for (; *s >= '0' && *s <= '9'; s++) {
        if (n > (UINT64_MAX - (uint64_t)(*s - '0')) / 10) {
            bg_set_error(reason, "too large");
            return BG_ERR;
        }
        n = n * 10 + (uint64_t)(*s - '0');
    }
    *end = s;
    *out = n;
    return BG_OK;
}

static int apply_unit(const char *s, const unit *units, size_t nunits, int icase, uint64_t max,
                      uint64_t *out, char *reason)
{
    const char *rest;
    uint64_t n;
    size_t i;

    if (parse_digits(s, &rest, &n, reason) != BG_OK)
        return BG_ERR;
    for (i = 0; i < nunits; i++) {
        if ((icase ? strcasecmp(rest, units[i].suffix) : strcmp(rest, units[i].suffix)) != 0)
            continue;
        if (n > max / units[i].mult) {
            bg_set_error(reason, "too large");
            return BG_ERR;
        }
        *out = n * units[i].mult;
        return BG_OK;
    }
    bg_set_error(reason, "unknown unit '%s'", rest);
    return BG_ERR;
}

int bg_config_parse_int(const char *s, int64_t *out, char *reason)
{
    const char *rest;
    uint64_t n;
    int neg = *s == '-';

    if (parse_digits(s + neg, &rest, &n, reason) != BG_OK)
        return BG_ERR;
    if (*rest != '\0') {
        bg_set_error(reason, "not an integer");
        return BG_ERR;
    }
    if (n > (uint64_t)INT64_MAX) {
        bg_set_error(reason, "too large");
        return BG_ERR;
    }
    *out = neg ? -(int64_t)n : (int64_t)n;
    return BG_OK;
}

int bg_config_parse_duration(const char *s, int64_t *out, char *reason)
{
    uint64_t ms;

    if (apply_unit(s, duration_units, BG_ARRAY_LEN(duration_units), 0, INT64_MAX, &ms, reason) !=
        BG_OK)
        return BG_ERR;
    *out = (int64_t)ms;
    return BG_OK;
}

int bg_config_parse_size(const char *s, size_t *out, char *reason)
{
    uint64_t n;

    if (apply_unit(s, size_units, BG_ARRAY_LEN(size_units), 1, SIZE_MAX, &n, reason) != BG_OK)
        return BG_ERR;
    *out = (size_t)n;
    return BG_OK;
}

int bg_config_parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"on", "yes", "true", "1"};
    static const char *const no[] = {"off", "no", "false", "0"};
    size_t i;

    for (i = 0; i < BG_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
            *out = strcasecmp(s, yes[i]) == 0;
            return BG_OK;
        }
    }
    return BG_ERR;
}

void bg_config_format_duration(int64_t ms, char *buf, size_t len)
{
    if (ms != 0 && ms % (3600 * 1000) == 0)
        snprintf(buf, len, "%" PRId64 "h", ms / (3600 * 1000));
    else if (ms != 0 && ms % (60 * 1000) == 0)
        snprintf(buf, len, "%" PRId64 "m", ms / (60 * 1000));
    else if (ms != 0 && ms % 1000 == 0)
        snprintf(buf, len, "%" PRId64 "s", ms / 1000);
    else
        snprintf(buf, len, "%" PRId64 "ms", ms);
}

void bg_config_format_size(uint64_t n, char *buf, size_t len)
{
    if (n != 0 && n % (1024 * 1024 * 1024) == 0)
        snprintf(buf, len, "%" PRIu64 "g", n / (1024 * 1024 * 1024));
    else if (n != 0 && n % (1024 * 1024) == 0)
        snprintf(buf, len, "%" PRIu64 "m", n / (1024 * 1024));
    else if (n != 0 && n % 1024 == 0)
        snprintf(buf, len, "%" PRIu64 "k", n / 1024);
    else
        snprintf(buf, len, "%" PRIu64, n);
}

int bg_parse_duration_ms(const char *s, int64_t *out)
{
    return bg_config_parse_duration(s, out, NULL);
}

int bg_parse_size(const char *s, size_t *out)
{
    return bg_config_parse_size(s, out, NULL);
}
