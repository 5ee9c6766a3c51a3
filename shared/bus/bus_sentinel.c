/* bus_sentinel.c: ask the sentinels where the primary is, and check that it says it is one. */
#include "busgate/bus/bus.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <hiredis/hiredis_ssl.h>
#include <openssl/err.h>

#include "bus_sentinel.h"
#include "bus_tls.h"

static void sentinel_node_where(const bg_valkey_node *n, char *out, size_t len)
{
    if (strchr(n->host, ':') != NULL)
        snprintf(out, len, "[%s]:%d", n->host, n->port);
    else
        snprintf(out, len, "%s:%d", n->host, n->port);
}

void bg_bus_sentinel_where(const bg_valkey_addr *a, char *out, size_t len)
{
    if (a->port == 0)
        snprintf(out, len, "sentinel master '%s'", a->master_name);
    else if (strchr(a->host, ':') != NULL)
        snprintf(out, len, "[%s]:%d", a->host, a->port);
    else
        snprintf(out, len, "%s:%d", a->host, a->port);
}

/* TLS on a sentinel connection: the same files and checks as the data nodes,
 * with the sentinel's own host as the name to verify (unless tls_server_name). */
static int sentinel_tls(const bg_bus_opts *o, SSL_CTX *ctx, const bg_valkey_node *n,
                        redisContext *c, const char *where, char *err)
{
    bg_bus_opts so = *o;
    SSL *ssl;

    snprintf(so.addr.host, sizeof(so.addr.host), "%s", n->host);
    if ((ssl = bg_bus_tls_ssl_new(ctx, &so, where, err)) == NULL)
        return BG_ERR;
    if (redisInitiateSSL(c, ssl) != REDIS_OK) {
        bg_bus_tls_handshake_error(ssl, where, c->errstr, err);
        SSL_free(ssl); /* hiredis owns it only on success */
        ERR_clear_error();
        return BG_ERR;
    }
    return BG_OK;
}

static redisContext *sentinel_connect(const bg_bus_opts *o, SSL_CTX *ctx, const bg_valkey_node *n,
                                      const char *where, char *err)
{
    int64_t ms = o->connect_timeout_ms > 0 && o->connect_timeout_ms < BG_SENTINEL_TIMEOUT_MS
                     ? o->connect_timeout_ms
                     : BG_SENTINEL_TIMEOUT_MS;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    redisOptions ro = {0};
    redisContext *c;

    REDIS_OPTIONS_SET_TCP(&ro, n->host, n->port);
    ro.connect_timeout = &tv;
    ro.command_timeout = &tv;
    c = redisConnectWithOptions(&ro);
    if (c == NULL) {
        bg_set_error(err, "%s: out of memory", where);
        return NULL;
    }
    if (c->err) {
        bg_set_error(err, "%s: %s", where, c->errstr);
        redisFree(c);
        return NULL;
    }
    if (ctx != NULL && sentinel_tls(o, ctx, n, c, where, err) != BG_OK) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* One command on a sentinel; an error reply is a failure too. */
static redisReply *sentinel_cmd(redisContext *c, const char *where, const char *what, int argc,
                                const char **argv, char *err)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);

    if (r == NULL) {
        bg_set_error(err, "%s: %s: %s", where, what, c->errstr[0] ? c->errstr : "no answer");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        bg_set_error(err, "%s: %s: %s", where, what, r->str);
        bg_bus_reply_free(r);
        return NULL;
    }
    return r;
}

static int sentinel_auth(redisContext *c, const bg_valkey_addr *a, const char *where, char *err)
{
    const char *argv[] = {"AUTH", a->sentinel_user, a->sentinel_password};
    redisReply *r;

    if (a->sentinel_password[0] == '\0')
        return BG_OK;
    if (a->sentinel_user[0] != '\0')
        r = sentinel_cmd(c, where, "AUTH", 3, argv, err);
    else
        r = sentinel_cmd(c, where, "AUTH", 2, (const char *[]){"AUTH", a->sentinel_password}, err);
    if (r == NULL)
        return BG_ERR;
    bg_bus_reply_free(r);
    return BG_OK;
}

/* The [ip, port] answer into out->host/port. */
static int sentinel_answer(const redisReply *r, bg_valkey_addr *out, const char *where, char *err)
{
    long port;
    char *end;

    if (r->type == REDIS_REPLY_NIL || (r->type == REDIS_REPLY_ARRAY && r->elements == 0)) {
        bg_set_error(err, "%s: does not monitor a master named '%s'", where, out->master_name);
        return BG_ERR;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING ||
        r->element[0]->len == 0 || r->element[0]->len >= sizeof(out->host)) {
        bg_set_error(err, "%s: unexpected answer to get-master-addr-by-name", where);
        return BG_ERR;
    }
    port = strtol(r->element[1]->str, &end, 10);
    if (*end != '\0' || port < 1 || port > 65535) {
        bg_set_error(err, "%s: bad port '%.16s' for the primary", where, r->element[1]->str);
        return BG_ERR;
    }
    memcpy(out->host, r->element[0]->str, r->element[0]->len);
    out->host[r->element[0]->len] = '\0';
    out->port = (int)port;
    return BG_OK;
}

/* Asks one sentinel. */
static int sentinel_ask(const bg_bus_opts *o, SSL_CTX *ctx, const bg_valkey_node *n,
                        bg_valkey_addr *out, char *err)
{
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name", out->master_name};
    char where[300];
    redisContext *c;
    redisReply *r;
    int rc = BG_ERR;

    snprintf(where, sizeof(where), "sentinel ");
    sentinel_node_where(n, where + 9, sizeof(where) - 9);
    if ((c = sentinel_connect(o, ctx, n, where, err)) == NULL)
        return BG_ERR;
    if (sentinel_auth(c, &o->addr, where, err) != BG_OK)
        goto done;
    if ((r = sentinel_cmd(c, where, "SENTINEL get-master-addr-by-name", 3, argv, err)) == NULL)
        goto done;
    rc = sentinel_answer(r, out, where, err);
    bg_bus_reply_free(r);
done:
    redisFree(c);
    return rc;
}

/* Appends one sentinel's reason to the list in err (BG_ERR_LEN bytes). */
static void sentinel_add_reason(char *err, const char *why)
{
    size_t used = strlen(err), room, n;

    if (used + 3 >= BG_ERR_LEN)
        return;
    if (used > 0) {
        memcpy(err + used, "; ", 3);
        used += 2;
    }
    room = BG_ERR_LEN - used - 1;
    n = strlen(why);
    if (n > room)
        n = room;
    memcpy(err + used, why, n);
    err[used + n] = '\0';
}

int bg_bus_sentinel_discover(const bg_bus_opts *o, SSL_CTX *ssl_ctx, bg_valkey_addr *out,
                             int *first, char *err)
{
    const bg_valkey_addr *a = &o->addr;
    int i, start = *first >= 0 && *first < a->nsentinels ? *first : 0;

    err[0] = '\0';
    *out = *a;
    for (i = 0; i < a->nsentinels; i++) {
        int k = (start + i) % a->nsentinels;
        char why[BG_ERR_LEN];

        if (sentinel_ask(o, ssl_ctx, &a->sentinels[k], out, why) == BG_OK) {
            *first = k;
            return BG_OK;
        }
        sentinel_add_reason(err, why);
    }
    if (a->nsentinels == 0)
        bg_set_error(err, "no sentinel configured for master '%s'", a->master_name);
    out->host[0] = '\0';
    out->port = 0;
    return BG_ERR;
}

static int sentinel_same(const bg_valkey_addr *a, const bg_valkey_addr *b)
{
    return a->port == b->port && strcmp(a->host, b->host) == 0;
}

/* One sentinel that still names our server is enough to stay (sentinels learn of a switch
 * within about a second of each other); a move needs two that name the same new address
 * (one with a single sentinel), so that one stale or partitioned sentinel cannot pull
 * every client off a working primary. */
int bg_bus_sentinel_moved(const bg_bus_opts *o, SSL_CTX *ssl_ctx, int *first, char *why)
{
    const bg_valkey_addr *a = &o->addr;
    bg_valkey_addr seen, now;
    int i, votes = 0, need = a->nsentinels > 1 ? 2 : 1;
    char err[BG_ERR_LEN], was[300];

    if (a->port == 0 || a->nsentinels == 0)
        return 0;
    for (i = 0; i < a->nsentinels && votes < need; i++) {
        int k = (*first + i) % a->nsentinels;

        now = *a;
        if (sentinel_ask(o, ssl_ctx, &a->sentinels[k], &now, err) != BG_OK)
            continue;
        if (sentinel_same(&now, a) || (votes > 0 && !sentinel_same(&now, &seen)))
            return 0;
        seen = now;
        votes++;
    }
    if (votes < need)
        return 0;
    bg_bus_sentinel_where(a, was, sizeof(was));
    bg_set_error(why, "the sentinels moved the primary of '%s' from %s to %s:%d", a->master_name,
                 was, seen.host, seen.port);
    return 1;
}

void bg_bus_sentinel_next(const bg_valkey_addr *a, int *first)
{
    if (a->nsentinels > 0)
        *first = (*first + 1) % a->nsentinels;
}

int bg_bus_sentinel_role_ok(const redisReply *r, const char *where, char *err)
{
    const redisReply *role;

    if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        bg_set_error(err, "ROLE on %s: %.160s", where, r->str); /* e.g. NOAUTH */
        return 0;
    }
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
        bg_set_error(err, "ROLE on %s: unexpected answer", where);
        return 0;
    }
    role = r->element[0];
    if ((role->type == REDIS_REPLY_STRING || role->type == REDIS_REPLY_STATUS) &&
        strcmp(role->str, "master") == 0)
        return 1;
    bg_set_error(err,
                 "%s is a %.32s, not the primary (a failover is under way): will ask the "
                 "sentinels again",
                 where, role->type == REDIS_REPLY_STRING ? role->str : "non-master");
    return 0;
}

/* One sentinel's host name to its first address, in place. */
static int sentinel_resolve_node(bg_valkey_node *n, char *err)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    unsigned char probe[sizeof(struct in6_addr)];
    const void *ip;
    int rc;

    if (inet_pton(AF_INET, n->host, probe) == 1 || inet_pton(AF_INET6, n->host, probe) == 1)
        return BG_OK;
    rc = getaddrinfo(n->host, NULL, &hints, &res);
    if (rc != 0 || res == NULL) {
        bg_set_error(err, "cannot resolve sentinel host '%s': %s", n->host, gai_strerror(rc));
        return BG_ERR;
    }
    ip = res->ai_family == AF_INET6
             ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
             : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
    inet_ntop(res->ai_family, ip, n->host, sizeof(n->host));
    freeaddrinfo(res);
    return BG_OK;
}

int bg_bus_sentinel_resolve(bg_valkey_addr *a, char *err)
{
    int i;

    for (i = 0; i < a->nsentinels; i++)
        if (sentinel_resolve_node(&a->sentinels[i], err) != BG_OK)
            return BG_ERR;
    return BG_OK;
}

int bg_bus_cluster_resolve(bg_valkey_addr *a, char *err)
{
    for (int i = 0; i < a->nseeds; i++)
        if (sentinel_resolve_node(&a->seeds[i], err) != BG_OK)
            return BG_ERR;
    return BG_OK;
}
