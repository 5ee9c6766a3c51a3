/* config_custom.c: parsers for the ini keys with a syntax of their own (listen, workers, url,
 * stream template, header lists). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "busgate/core/text.h"

#include "config_internal.h"

#define BG_MAX_WORKERS 256

static int listen_port(const char *s, int *port, char *reason)
{
    int64_t v;

    if (*s == '\0') {
        bg_set_error(reason, "missing port");
        return BG_ERR;
    }
    if (bg_config_parse_int(s, &v, NULL) != BG_OK || v < 1 || v > 65535) {
        bg_set_error(reason, "port '%s' is not 1..65535", s);
        return BG_ERR;
    }
    *port = (int)v;
    return BG_OK;
}

static int host_chars_ok(const char *host, size_t len, const char *extra)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (!isalnum((unsigned char)host[i]) && strchr(extra, host[i]) == NULL)
            return 0;
    }
    return 1;
}

/* "[v6]:port": the address is stored without its brackets. */
static int listen_split_v6(const char *value, bg_listen_addr *out, char *reason)
{
    const char *end = strchr(value, ']');
    size_t len;

    if (end == NULL) {
        bg_set_error(reason, "missing ']' after the IPv6 address");
        return BG_ERR;
    }
    len = (size_t)(end - value - 1);
    if (len == 0 || len >= sizeof(out->host) || !host_chars_ok(value + 1, len, ":.")) {
        bg_set_error(reason, "bad IPv6 address");
        return BG_ERR;
    }
    if (end[1] != ':') {
        bg_set_error(reason, "missing port");
        return BG_ERR;
    }
    memcpy(out->host, value + 1, len);
    out->host[len] = '\0';
    return listen_port(end + 2, &out->port, reason);
}

static int listen_split(const char *value, bg_listen_addr *out, char *reason)
{
    const char *colon = strrchr(value, ':');
    size_t len;

    if (value[0] == '[')
        return listen_split_v6(value, out, reason);
    if (colon == NULL) {
        bg_set_error(reason, "missing port");
        return BG_ERR;
    }
    len = (size_t)(colon - value);
    if (memchr(value, ':', len) != NULL) {
        bg_set_error(reason, "an IPv6 address needs brackets, e.g. [::1]:8080");
        return BG_ERR;
    }
    if (len == 0 || (len == 1 && value[0] == '*')) {
        snprintf(out->host, sizeof(out->host), "0.0.0.0");
    } else if (len >= sizeof(out->host) || !host_chars_ok(value, len, ".-")) {
        bg_set_error(reason, "bad host");
        return BG_ERR;
    } else {
        memcpy(out->host, value, len);
        out->host[len] = '\0';
    }
    return listen_port(colon + 1, &out->port, reason);
}

/* What follows the address: "ssl" is the only option so far. */
static int listen_options(const char *p, bg_listen_addr *addr, char *reason)
{
    while (*p != '\0') {
        size_t len;

        while (isspace((unsigned char)*p))
            p++;
        len = strcspn(p, " \t");
        if (len == 3 && strncmp(p, "ssl", 3) == 0) {
            addr->tls = 1;
        } else if (len > 0) {
            bg_set_error(reason, "unknown option '%.*s' (only ssl)", (int)(len > 32 ? 32 : len), p);
            return BG_ERR;
        }
        p += len;
    }
    return BG_OK;
}

/* "host:port [ssl]": the address is split off first, so the option never reaches it. */
static int listen_parse(const char *value, bg_listen_addr *addr, char *reason)
{
    char where[sizeof(addr->host) + 16];
    size_t len = strcspn(value, " \t");

    memset(addr, 0, sizeof(*addr));
    if (len >= sizeof(where)) {
        bg_set_error(reason, "bad host");
        return BG_ERR;
    }
    memcpy(where, value, len);
    where[len] = '\0';
    if (listen_split(where, addr, reason) != BG_OK)
        return BG_ERR;
    return listen_options(value + len, addr, reason);
}

int bg_config_parse_listen(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                           char *reason)
{
    bg_config *cfg = ctx->cfg;
    bg_listen_addr addr;
    int i;

    (void)key;
    if (listen_parse(value, &addr, reason) != BG_OK)
        return BG_ERR;
    /* The first listen line replaces the built-in default instead of adding to it. */
    if (!ctx->listen_seen) {
        ctx->listen_seen = 1;
        cfg->gateway.nlisten = 0;
    }
    for (i = 0; i < cfg->gateway.nlisten; i++) {
        if (strcmp(cfg->gateway.listen[i].host, addr.host) == 0 &&
            cfg->gateway.listen[i].port == addr.port) {
            bg_set_error(reason, "address listed twice");
            return BG_ERR;
        }
    }
    if (cfg->gateway.nlisten >= BG_MAX_LISTEN) {
        bg_set_error(reason, "too many listen addresses");
        return BG_ERR;
    }
    ctx->listen_line[cfg->gateway.nlisten] = ctx->lineno;
    cfg->gateway.listen[cfg->gateway.nlisten++] = addr;
    return BG_OK;
}

int bg_config_parse_workers(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                            char *reason)
{
    long ncpu;
    int64_t v;

    (void)key;
    if (strcmp(value, "auto") == 0) {
        ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        ctx->cfg->gateway.workers = ncpu < 1 ? 1 : ncpu > BG_MAX_WORKERS ? BG_MAX_WORKERS : ncpu;
        ctx->cfg->gateway.workers_auto = 1;
        return BG_OK;
    }
    if (bg_config_parse_int(value, &v, reason) != BG_OK)
        return BG_ERR;
    if (v < 1 || v > BG_MAX_WORKERS) {
        bg_set_error(reason, "out of range");
        return BG_ERR;
    }
    ctx->cfg->gateway.workers = (int)v;
    ctx->cfg->gateway.workers_auto = 0;
    return BG_OK;
}

int bg_config_parse_affinity(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                             char *reason)
{
    (void)key;
    if (strcmp(value, "auto") != 0 && strcmp(value, "off") != 0) {
        bg_set_error(reason, "expected auto or off");
        return BG_ERR;
    }
    ctx->cfg->gateway.cpu_affinity = strcmp(value, "auto") == 0;
    return BG_OK;
}

int bg_config_parse_log_level(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                              char *reason)
{
    (void)key;
    if (bg_log_parse_level(value, &ctx->cfg->gateway.log_level) != BG_OK) {
        bg_set_error(reason, "unknown log level");
        return BG_ERR;
    }
    return BG_OK;
}

int bg_config_parse_url(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                        char *reason)
{
    bg_valkey_addr addr;

    if (bg_valkey_url_parse(value, &addr, reason) != BG_OK)
        return BG_ERR;
    if (bg_config_store_text(ctx, key, value, reason) != BG_OK)
        return BG_ERR;
    ctx->cfg->valkey.addr = addr;
    return BG_OK;
}

static int graph_only(const char *value, char *reason)
{
    const unsigned char *p;

    for (p = (const unsigned char *)value; *p; p++) {
        if (!isgraph(*p)) {
            bg_set_error(reason, "character 0x%02x is not allowed", *p);
            return BG_ERR;
        }
    }
    return BG_OK;
}

int bg_config_parse_template(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                             char *reason)
{
    const char *hit = strstr(value, "{service}");

    if (graph_only(value, reason) != BG_OK)
        return BG_ERR;
    if (hit == NULL) {
        bg_set_error(reason, "does not contain {service}");
        return BG_ERR;
    }
    if (strstr(hit + 1, "{service}") != NULL) {
        bg_set_error(reason, "contains {service} more than once");
        return BG_ERR;
    }
    return bg_config_store_text(ctx, key, value, reason);
}

int bg_config_parse_maxlen(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                           char *reason)
{
    int64_t v;

    (void)key;
    if (bg_config_parse_int(value, &v, reason) != BG_OK)
        return BG_ERR;
    if (v != 0 && (v < 100 || v > 1000000000)) {
        bg_set_error(reason, "out of range");
        return BG_ERR;
    }
    ctx->cfg->messaging.stream_maxlen = (size_t)v;
    return BG_OK;
}

static int header_name_ok(const char *s, size_t len)
{
    size_t i;

    if (len == 0)
        return 0;
    for (i = 0; i < len; i++) {
        if (!bg_is_tchar((unsigned char)s[i]))
            return 0;
    }
    return 1;
}

/* Stores the list normalised to "A, B, C" so readers can split on ','. */
int bg_config_parse_headers(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                            char *reason)
{
    char out[sizeof(ctx->cfg->identity.reserved_headers)] = "";
    const char *p = value;
    size_t used = 0;

    while (*p) {
        const char *end = strchr(p, ',');
        size_t len;

        end = end ? end : p + strlen(p);
        while (p < end && isspace((unsigned char)*p))
            p++;
        len = (size_t)(end - p);
        while (len > 0 && isspace((unsigned char)p[len - 1]))
            len--;
        if (!header_name_ok(p, len)) {
            bg_set_error(reason, "'%.*s' is not a header name", (int)len, p);
            return BG_ERR;
        }
        if (used + len + 3 > sizeof(out)) {
            bg_set_error(reason, "too long");
            return BG_ERR;
        }
        used += (size_t)snprintf(out + used, sizeof(out) - used, "%s%.*s", used ? ", " : "",
                                 (int)len, p);
        p = *end ? end + 1 : end;
    }
    return bg_config_store_text(ctx, key, out, reason);
}

int bg_config_parse_header_prefix(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                                  char *reason)
{
    if (!header_name_ok(value, strlen(value))) {
        bg_set_error(reason, "not a header name prefix");
        return BG_ERR;
    }
    return bg_config_store_text(ctx, key, value, reason);
}

int bg_config_parse_methods(bg_config_ctx *ctx, const bg_config_key *key, const char *value,
                            char *reason)
{
    static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
    char out[sizeof(ctx->cfg->idempotency.methods)] = "";
    const char *p = value;
    size_t used = 0, i, len;

    while (*p != '\0') {
        p += strspn(p, " ,\t");
        len = strcspn(p, " ,\t");
        if (len == 0)
            break;
        for (i = 0; i < BG_ARRAY_LEN(known); i++)
            if (strlen(known[i]) == len && strncasecmp(known[i], p, len) == 0)
                break;
        if (i == BG_ARRAY_LEN(known)) {
            bg_set_error(reason, "'%.*s' is not a method", (int)(len > 16 ? 16 : len), p);
            return BG_ERR;
        }
        used += (size_t)snprintf(out + used, sizeof(out) - used, "%s%s", used ? " " : "", known[i]);
        p += len;
    }
    return bg_config_store_text(ctx, key, out, reason);
}
