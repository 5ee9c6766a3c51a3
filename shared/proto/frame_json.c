/* frame_json.c: JSON string quoting for hand-built meta on the gateway's hot path. */
#include "frame_int.h"

/* Length of the valid UTF-8 sequence at p (1..4), or 0 (overlong, surrogate, > U+10FFFF,
 * truncated or a NUL byte). */
static size_t utf8_seq(const unsigned char *p, size_t rem)
{
    unsigned char c = p[0];
    size_t n;
    uint32_t cp;

    if (c == 0)
        return 0;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    if (rem < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* The character after '\\' for bytes with a two-byte escape, else 0. */
static char short_escape(unsigned char c)
{
    switch (c) {
    case '"':
        return '"';
    case '\\':
        return '\\';
    case '\b':
        return 'b';
    case '\f':
        return 'f';
    case '\n':
        return 'n';
    case '\r':
        return 'r';
    case '\t':
        return 't';
    default:
        return 0;
    }
}

/* Escaped form of an ASCII byte; returns its length (1, 2 or 6). */
static size_t escape_ascii(unsigned char c, char out[6])
{
    static const char hex[] = "0123456789abcdef";
    char e = short_escape(c);

    if (e != 0) {
        out[0] = '\\';
        out[1] = e;
        return 2;
    }
    if (c >= 0x20) {
        out[0] = (char)c;
        return 1;
    }
    out[0] = '\\', out[1] = 'u', out[2] = '0', out[3] = '0';
    out[4] = hex[c >> 4], out[5] = hex[c & 15];
    return 6;
}

/* Writes the quoted form of a string that is known to be valid UTF-8 without NUL. */
static size_t quote_write(char *dst, const unsigned char *u, size_t len)
{
    char *o = dst;
    size_t i = 0;

    *o++ = '"';
    while (i < len) {
        unsigned char c = u[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *o++ = (char)c; /* plain ASCII and UTF-8 bytes are copied as they are */
            i++;
            continue;
        }
        o += escape_ascii(c, o);
        i++;
    }
    *o++ = '"';
    return (size_t)(o - dst);
}

/* Bytes the quoted form needs, or (size_t)-1 when s is not UTF-8 without NUL. */
static size_t quote_measure(const unsigned char *u, size_t len)
{
    size_t need = 2, i = 0, n;
    char esc[6];

    while (i < len) {
        unsigned char c = u[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            need++;
            i++;
            continue;
        }
        if ((n = utf8_seq(u + i, len - i)) == 0)
            return (size_t)-1;
        need += n == 1 ? escape_ascii(c, esc) : n;
        i += n;
    }
    return need;
}

size_t bg_json_quote(char *dst, size_t cap, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t need = quote_measure(u, len);

    if (need == (size_t)-1 || dst == NULL || need > cap)
        return need;
    return quote_write(dst, u, len);
}
