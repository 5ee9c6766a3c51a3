/* text.h: byte classes every parser here needs: hex digits (and hex output), percent-escapes,
 * RFC 9110 tokens. */
#ifndef BUSGATE_TEXT_H
#define BUSGATE_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* The value of hex digit c (either case), or -1. */
static inline int bg_hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* v in decimal at out (at most 20 characters, no NUL), without printf: for text written on
 * every request or command. Returns how many characters. */
static inline size_t bg_u64_decimal(uint64_t v, char *out)
{
    char tmp[20];
    size_t n = 0, len = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0)
        out[len++] = tmp[--n];
    return len;
}

/* Lowercase hex of in[0..n) into out (2n characters and a NUL). */
static inline void bg_hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* 1 when s is non-empty and all lowercase hex digits (what bg_hex_encode writes). */
static inline int bg_is_lower_hex(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s != '\0'; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return 0;
    return 1;
}

/* The byte of the percent-escape "%XX" at s[i] (s[i] is '%'), or -1 when fewer than two
 * hex digits follow within len. What a decoded byte may be is the caller's rule. */
static inline int bg_pct_byte(const char *s, size_t len, size_t i)
{
    int hi = i + 2 < len ? bg_hex_value((unsigned char)s[i + 1]) : -1;
    int lo = hi >= 0 ? bg_hex_value((unsigned char)s[i + 2]) : -1;

    return lo < 0 ? -1 : hi << 4 | lo;
}

/* An RFC 9110 tchar: what header field names and methods consist of. */
static inline int bg_is_tchar(int c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
        return 1;
    default:
        return 0;
    }
}

/* p[0..len) is a non-empty token. */
static inline int bg_is_token(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!bg_is_tchar((unsigned char)p[i]))
            return 0;
    return len > 0;
}

#endif
