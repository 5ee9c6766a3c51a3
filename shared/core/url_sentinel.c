/* url_sentinel.c: the Sentinel URL form: a list of sentinels, the master name, parameters. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "busgate/common.h"
#include "busgate/core/url.h"

#include "url_int.h"

/* One "host[:port]" of the comma-separated list; the port defaults to 26379. */
static int sentinel_node(const char *s, size_t len, bg_valkey_node *node, char *err)
{
    bg_valkey_addr tmp;
    const char *close = len > 0 && s[0] == '[' ? memchr(s, ']', len) : NULL;
    int has_port = close != NULL ? close + 1 < s + len : memchr(s, ':', len) != NULL;

    memset(&tmp, 0, sizeof(tmp));
    if (bg_url_host_port(s, len, &tmp, err) != BG_OK)
        return BG_ERR;
    snprintf(node->host, sizeof(node->host), "%s", tmp.host);
    node->port = has_port ? tmp.port : BG_SENTINEL_DEFAULT_PORT;
    return BG_OK;
}

static int sentinel_list(const char *s, size_t len, bg_valkey_addr *out, char *err)
{
    const char *end = s + len;

    if (len == 0) {
        bg_set_error(err, "missing sentinel address (valkey+sentinel://host:26379/mymaster)");
        return BG_ERR;
    }
    while (s <= end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        size_t n = comma ? (size_t)(comma - s) : (size_t)(end - s);
        char why[BG_ERR_LEN];

        if (out->nsentinels == BG_SENTINEL_MAX) {
            bg_set_error(err, "more than %d sentinels", BG_SENTINEL_MAX);
            return BG_ERR;
        }
        if (n == 0) {
            bg_set_error(err, "empty sentinel address in the list (stray ',')");
            return BG_ERR;
        }
        if (sentinel_node(s, n, &out->sentinels[out->nsentinels], why) != BG_OK) {
            bg_set_error(err, "sentinel %d: %s", out->nsentinels + 1, why);
            return BG_ERR;
        }
        out->nsentinels++;
        s += n + 1;
    }
    return BG_OK;
}

/* Master names as sentinel.conf writes them: letters, digits, '.', '-', '_'. */
static int sentinel_master(const char *s, size_t len, bg_valkey_addr *out, char *err)
{
    size_t i;

    if (len == 0) {
        bg_set_error(err, "missing master name (valkey+sentinel://host:26379/mymaster)");
        return BG_ERR;
    }
    if (len >= sizeof(out->master_name)) {
        bg_set_error(err, "master name is too long (max %zu bytes)", sizeof(out->master_name) - 1);
        return BG_ERR;
    }
    for (i = 0; i < len; i++) {
        if (!isalnum((unsigned char)s[i]) && !strchr(".-_", s[i])) {
            bg_set_error(err, "bad master name '%.*s' (letters, digits, '.', '-', '_')",
                         (int)(len > 64 ? 64 : len), s);
            return BG_ERR;
        }
    }
    memcpy(out->master_name, s, len);
    out->master_name[len] = '\0';
    return BG_OK;
}

/* One "name=value" of the query. */
static int sentinel_param(const char *s, size_t len, bg_valkey_addr *out, char *err)
{
    const char *eq = memchr(s, '=', len);
    size_t nlen = eq ? (size_t)(eq - s) : len, vlen = eq ? len - nlen - 1 : 0;
    char db[16];

    if (eq != NULL && nlen == 2 && strncmp(s, "db", 2) == 0) {
        if (vlen >= sizeof(db)) {
            bg_set_error(err, "database '%.*s' is not a number", (int)(vlen > 32 ? 32 : vlen),
                         eq + 1);
            return BG_ERR;
        }
        memcpy(db, eq + 1, vlen);
        db[vlen] = '\0';
        return bg_url_db(db, &out->db, err);
    }
    if (eq != NULL && nlen == 13 && strncmp(s, "sentinel_user", 13) == 0)
        return bg_url_decode(eq + 1, vlen, out->sentinel_user, sizeof(out->sentinel_user),
                             "sentinel_user", err);
    if (eq != NULL && nlen == 17 && strncmp(s, "sentinel_password", 17) == 0)
        return bg_url_decode(eq + 1, vlen, out->sentinel_password, sizeof(out->sentinel_password),
                             "sentinel_password", err);
    bg_set_error(err,
                 "unknown query parameter '%.*s' (allowed: db, sentinel_user, "
                 "sentinel_password)",
                 (int)(nlen > 32 ? 32 : nlen), s);
    return BG_ERR;
}

static int sentinel_query(const char *q, bg_valkey_addr *out, char *err)
{
    while (*q != '\0') {
        size_t n = strcspn(q, "&");

        if (n > 0 && sentinel_param(q, n, out, err) != BG_OK)
            return BG_ERR;
        q += n + (q[n] == '&');
    }
    if (out->sentinel_password[0] == '\0' && out->sentinel_user[0] != '\0') {
        bg_set_error(err, "sentinel_user needs a sentinel_password");
        return BG_ERR;
    }
    return BG_OK;
}

/* [userinfo@]sentinels/master[?query]. Unlike the plain form the query may hold
 * secrets, so the userinfo ends at the last '@' before the first '?': a '?' in a
 * password must be percent-encoded here. */
int bg_url_parse_sentinel(const char *rest, bg_valkey_addr *out, char *err)
{
    const char *q = strchr(rest, '?'), *end = q ? q : rest + strlen(rest);
    const char *at = NULL, *p, *slash, *list;

    for (p = rest; p < end; p++)
        if (*p == '@')
            at = p;
    if (at && bg_url_userinfo(rest, (size_t)(at - rest), out, err) != BG_OK)
        return BG_ERR;
    list = at ? at + 1 : rest;
    slash = memchr(list, '/', (size_t)(end - list));
    if (slash == NULL) {
        bg_set_error(err, "missing '/master_name' after the sentinels");
        return BG_ERR;
    }
    if (strchr(list, '#') != NULL) {
        bg_set_error(err, "fragment not supported");
        return BG_ERR;
    }
    if (sentinel_list(list, (size_t)(slash - list), out, err) != BG_OK ||
        sentinel_master(slash + 1, (size_t)(end - slash - 1), out, err) != BG_OK)
        return BG_ERR;
    out->host[0] = '\0';
    out->port = 0;
    return q ? sentinel_query(q + 1, out, err) : BG_OK;
}
