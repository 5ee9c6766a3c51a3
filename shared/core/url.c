/* url.c: parse a Valkey connection URL into host/port or socket path, credentials and db. */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "busgate/core/text.h"
#include "busgate/core/url.h"

#include "url_int.h"

typedef struct url_scheme {
    const char *name;
    int tls;
    int is_unix;
    int sentinel;
    int cluster;
} url_scheme;

static const url_scheme schemes[] = {
    {"valkey", 0, 0, 0, 0},
    {"redis", 0, 0, 0, 0},
    {"valkeys", 1, 0, 0, 0},
    {"rediss", 1, 0, 0, 0},
    {"unix", 0, 1, 0, 0},
    {"valkey+sentinel", 0, 0, 1, 0},
    {"redis+sentinel", 0, 0, 1, 0},
    {"valkeys+sentinel", 1, 0, 1, 0},
    {"rediss+sentinel", 1, 0, 1, 0},
    {"valkey+cluster", 0, 0, 0, 1},
    {"redis+cluster", 0, 0, 0, 1},
    {"valkeys+cluster", 1, 0, 0, 1},
    {"rediss+cluster", 1, 0, 0, 1},
};

static int url_scheme_parse(const char *url, bg_valkey_addr *out, const char **rest, char *err)
{
    const char *sep = strstr(url, "://");
    size_t len, i;

    if (sep == NULL) {
        bg_set_error(err, "missing scheme (expected valkey://host:port)");
        return BG_ERR;
    }
    len = (size_t)(sep - url);
    for (i = 0; i < BG_ARRAY_LEN(schemes); i++) {
        if (strlen(schemes[i].name) == len && strncasecmp(url, schemes[i].name, len) == 0) {
            out->tls = schemes[i].tls;
            out->is_unix = schemes[i].is_unix;
            out->sentinel = schemes[i].sentinel;
            out->cluster = schemes[i].cluster;
            *rest = sep + 3;
            return BG_OK;
        }
    }
    bg_set_error(err,
                 "unknown scheme '%.*s' (use valkey, valkeys, redis, rediss, unix or one of them"
                 " with +sentinel or +cluster)",
                 (int)(len > 32 ? 32 : len), url);
    return BG_ERR;
}

/* Percent-decodes s[0..len) into out (size bytes); what names the part in errors. */
int bg_url_decode(const char *s, size_t len, char *out, size_t size, const char *what, char *err)
{
    size_t i, n = 0;

    for (i = 0; i < len; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            c = bg_pct_byte(s, len, i);
            if (c < 0) {
                bg_set_error(err, "bad percent-escape in %s", what);
                return BG_ERR;
            }
            i += 2;
        }
        if (c == 0) {
            bg_set_error(err, "%s contains a NUL byte", what);
            return BG_ERR;
        }
        if (n + 1 >= size) {
            bg_set_error(err, "%s is too long (max %zu bytes)", what, size - 1);
            return BG_ERR;
        }
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return BG_OK;
}

/* "user:password", ":password" or "password" (as valkey-cli reads a userinfo without ':'). */
int bg_url_userinfo(const char *s, size_t len, bg_valkey_addr *out, char *err)
{
    const char *colon = memchr(s, ':', len);

    if (colon == NULL)
        return bg_url_decode(s, len, out->password, sizeof(out->password), "password", err);
    if (bg_url_decode(s, (size_t)(colon - s), out->user, sizeof(out->user), "user", err) != BG_OK)
        return BG_ERR;
    return bg_url_decode(colon + 1, len - (size_t)(colon - s) - 1, out->password,
                         sizeof(out->password), "password", err);
}

static int url_port(const char *s, size_t len, int *port, char *err)
{
    long v = 0;
    size_t i;

    if (len == 0) {
        bg_set_error(err, "missing port after ':'");
        return BG_ERR;
    }
    for (i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]) || v > 65535) {
            bg_set_error(err, "port '%.*s' is not 1..65535", (int)(len > 16 ? 16 : len), s);
            return BG_ERR;
        }
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > 65535) {
        bg_set_error(err, "port '%.*s' is not 1..65535", (int)(len > 16 ? 16 : len), s);
        return BG_ERR;
    }
    *port = (int)v;
    return BG_OK;
}

/* Host names: letters, digits, '.', '-', '_'; IPv6 literals: hex digits, ':' and '.'. */
static int chars_ok(const char *s, size_t len, int v6)
{
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (v6 ? !isxdigit(c) && c != ':' && c != '.' : !isalnum(c) && !strchr(".-_", c))
            return 0;
    }
    return 1;
}

static int url_host_set(const char *s, size_t len, int v6, bg_valkey_addr *out, char *err)
{
    if (len == 0) {
        bg_set_error(err, "missing host");
        return BG_ERR;
    }
    if (len >= sizeof(out->host)) {
        bg_set_error(err, "host is too long");
        return BG_ERR;
    }
    if (!chars_ok(s, len, v6)) {
        bg_set_error(err, v6 ? "bad IPv6 address '%.*s'" : "bad host name '%.*s'",
                     (int)(len > 64 ? 64 : len), s);
        return BG_ERR;
    }
    memcpy(out->host, s, len);
    out->host[len] = '\0';
    return BG_OK;
}

/* "host", "host:port", "[v6]" or "[v6]:port"; IPv6 is stored without brackets. */
int bg_url_host_port(const char *s, size_t len, bg_valkey_addr *out, char *err)
{
    const char *end = s + len, *close, *colon;

    out->port = BG_VALKEY_DEFAULT_PORT;
    if (len > 0 && s[0] == '[') {
        close = memchr(s, ']', len);
        if (close == NULL) {
            bg_set_error(err, "missing ']' after the IPv6 address");
            return BG_ERR;
        }
        if (url_host_set(s + 1, (size_t)(close - s - 1), 1, out, err) != BG_OK)
            return BG_ERR;
        if (close + 1 == end)
            return BG_OK;
        if (close[1] != ':') {
            bg_set_error(err, "unexpected text after the IPv6 address");
            return BG_ERR;
        }
        return url_port(close + 2, (size_t)(end - close - 2), &out->port, err);
    }
    colon = memchr(s, ':', len);
    if (colon != NULL && memchr(colon + 1, ':', (size_t)(end - colon - 1)) != NULL) {
        bg_set_error(err, "an IPv6 address needs brackets, e.g. valkey://[::1]:6379");
        return BG_ERR;
    }
    if (url_host_set(s, colon ? (size_t)(colon - s) : len, 0, out, err) != BG_OK)
        return BG_ERR;
    if (colon == NULL)
        return BG_OK;
    return url_port(colon + 1, (size_t)(end - colon - 1), &out->port, err);
}

int bg_url_db(const char *s, int *db, char *err)
{
    long v = 0;
    const char *p;

    for (p = s; *p; p++) {
        if (!isdigit((unsigned char)*p) || v > (INT_MAX - 9) / 10) {
            bg_set_error(err, "database '%.32s' is not a number", s);
            return BG_ERR;
        }
        v = v * 10 + (*p - '0');
    }
    if (p == s) {
        bg_set_error(err, "missing database number");
        return BG_ERR;
    }
    *db = (int)v;
    return BG_OK;
}

/* valkey://[userinfo@]host[:port][/db]. The last '@' ends the userinfo, so an unescaped '@'
 * or '/' in a password still parses. */
static int url_parse_tcp(const char *rest, bg_valkey_addr *out, char *err)
{
    const char *at = strrchr(rest, '@'), *host = at ? at + 1 : rest;
    size_t hlen = strcspn(host, "/?#");

    if (at && bg_url_userinfo(rest, (size_t)(at - rest), out, err) != BG_OK)
        return BG_ERR;
    if (bg_url_host_port(host, hlen, out, err) != BG_OK)
        return BG_ERR;
    if (host[hlen] == '?' || host[hlen] == '#') {
        bg_set_error(err, "query or fragment not supported (put the database in the path: /N)");
        return BG_ERR;
    }
    if (host[hlen] == '/' && host[hlen + 1] != '\0')
        return bg_url_db(host + hlen + 1, &out->db, err);
    return BG_OK;
}

static int url_unix_query(const char *q, bg_valkey_addr *out, char *err)
{
    if (strncmp(q, "db=", 3) != 0) {
        bg_set_error(err, "unknown query parameter in '%.32s' (allowed: db=N)", q);
        return BG_ERR;
    }
    return bg_url_db(q + 3, &out->db, err);
}

/* unix://[userinfo@]/absolute/path[?db=N] */
static int url_parse_unix(const char *rest, bg_valkey_addr *out, char *err)
{
    const char *path = rest, *q;

    if (rest[0] != '/') {
        const char *at = strstr(rest, "@/");
        if (at == NULL) {
            bg_set_error(err, "needs an absolute socket path (unix:///path/to/socket)");
            return BG_ERR;
        }
        if (bg_url_userinfo(rest, (size_t)(at - rest), out, err) != BG_OK)
            return BG_ERR;
        path = at + 1;
    }
    q = strchr(path, '?');
    if (bg_url_decode(path, q ? (size_t)(q - path) : strlen(path), out->unix_path,
                      sizeof(out->unix_path), "socket path", err) != BG_OK)
        return BG_ERR;
    if (strcmp(out->unix_path, "/") == 0) {
        bg_set_error(err, "missing socket path");
        return BG_ERR;
    }
    return q ? url_unix_query(q + 1, out, err) : BG_OK;
}

int bg_valkey_url_parse(const char *url, bg_valkey_addr *out, char *err)
{
    const char *rest, *p;

    memset(out, 0, sizeof(*out));
    for (p = url; *p; p++) {
        if (!isgraph((unsigned char)*p)) {
            bg_set_error(err, "contains whitespace or a control character");
            return BG_ERR;
        }
    }
    if (url_scheme_parse(url, out, &rest, err) != BG_OK)
        return BG_ERR;
    if (out->is_unix)
        return url_parse_unix(rest, out, err);
    if (out->sentinel)
        return bg_url_parse_sentinel(rest, out, err);
    if (out->cluster)
        return bg_url_parse_cluster(rest, out, err);
    return url_parse_tcp(rest, out, err);
}
