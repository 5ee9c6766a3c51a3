/* bus_conn.c: one blocking Valkey connection: TLS, AUTH, SELECT, timeouts, reconnect with backoff.
 */
#include "busgate/core/backoff.h"
#include "busgate/bus/bus.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "busgate/core/log.h"

#include "bus_cluster.h"
#include "bus_reply.h"
#include "bus_resp.h"
#include "bus_sentinel.h"
#include "bus_tls.h"

#define BUS_BACKOFF_MIN_MS 100
#define BUS_BACKOFF_MAX_MS 5000

struct bg_bus {
    bg_bus_opts opts; /* string members point at the copies below */
    char *tls_ca_file, *tls_cert_file, *tls_key_file, *tls_server_name, *client_name;
    char where[300];
    SSL_CTX *ssl_ctx;     /* shared by every connection of this bus */
    SSL *ssl;             /* of the current context, owned by hiredis */
    redisContext *ctx;    /* NULL while down */
    unsigned inflight;    /* appended, not yet read */
    unsigned failures;    /* consecutive failed attempts: drives the backoff */
    int64_t next_attempt; /* bg_mono_ms() before which no attempt is made */
    unsigned long reconnects, attempts;
    bg_bus_reconnect_fn *hook;
    void *hook_arg;
    int in_hook;
    int sentinel_first;       /* Sentinel mode: the sentinel to ask first (answered last time) */
    int64_t sentinel_checked; /* bg_mono_ms() of the last "did the primary move?" */
    int stale; /* Sentinel mode: a pipelined reply said READONLY/UNBLOCKED: drop when drained */
    bus_cluster *cluster; /* Cluster mode: the nodes' connections; ctx stays NULL */
    int fail_fast;        /* a cluster node: do not sleep out the backoff, say the node is down */
    char *wire;           /* reusable buffer for RESP-encoding pipelined commands */
    size_t wire_cap;
};

void bg_bus_opts_init(bg_bus_opts *o)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->addr.host, sizeof(o->addr.host), "localhost");
    o->addr.port = BG_VALKEY_DEFAULT_PORT;
    o->connect_timeout_ms = 2000;
    o->command_timeout_ms = 5000;
    o->tls_verify = 1;
}

int bg_bus_opts_from_url(bg_bus_opts *o, const char *url, char *err)
{
    bg_valkey_addr addr;

    if (bg_valkey_url_parse(url, &addr, err) != BG_OK)
        return BG_ERR;
    o->addr = addr;
    return BG_OK;
}

static int bus_set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

static char *bus_strdup_opt(const char *s, int *oom)
{
    char *copy;

    if (!bus_set(s))
        return NULL;
    copy = strdup(s);
    if (copy == NULL)
        *oom = 1;
    return copy;
}

static void bus_free_strings(bg_bus *bus)
{
    free(bus->tls_ca_file);
    free(bus->tls_cert_file);
    free(bus->tls_key_file);
    free(bus->tls_server_name);
    free(bus->client_name);
}

/* The caller's strings may not outlive the connect call: keep our own copies. */
static int bus_copy_opts(bg_bus *bus, const bg_bus_opts *o)
{
    int oom = 0;

    bus->opts = *o;
    bus->opts.tls_ca_file = bus->tls_ca_file = bus_strdup_opt(o->tls_ca_file, &oom);
    bus->opts.tls_cert_file = bus->tls_cert_file = bus_strdup_opt(o->tls_cert_file, &oom);
    bus->opts.tls_key_file = bus->tls_key_file = bus_strdup_opt(o->tls_key_file, &oom);
    bus->opts.tls_server_name = bus->tls_server_name = bus_strdup_opt(o->tls_server_name, &oom);
    bus->opts.client_name = bus->client_name = bus_strdup_opt(o->client_name, &oom);
    return oom ? BG_ERR : BG_OK;
}

static void bus_format_where(bg_bus *bus)
{
    const bg_valkey_addr *a = &bus->opts.addr;

    if (a->sentinel)
        bg_bus_sentinel_where(a, bus->where, sizeof(bus->where));
    else if (a->cluster)
        snprintf(bus->where, sizeof(bus->where), "cluster %s:%d%s", a->host, a->port,
                 a->nseeds > 1 ? ",..." : "");
    else if (a->is_unix)
        snprintf(bus->where, sizeof(bus->where), "unix:%s", a->unix_path);
    else if (strchr(a->host, ':') != NULL)
        snprintf(bus->where, sizeof(bus->where), "[%s]:%d", a->host, a->port);
    else
        snprintf(bus->where, sizeof(bus->where), "%s:%d", a->host, a->port);
}

static struct timeval bus_timeval(int64_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

static int bus_tls_start(bg_bus *bus, redisContext *c, char *err)
{
    SSL *ssl = bg_bus_tls_ssl_new(bus->ssl_ctx, &bus->opts, bus->where, err);

    if (ssl == NULL)
        return BG_ERR;
    if (redisInitiateSSL(c, ssl) != REDIS_OK) {
        bg_bus_tls_handshake_error(ssl, bus->where, c->errstr, err);
        SSL_free(ssl); /* redisInitiateSSL owns it only on success */
        ERR_clear_error();
        return BG_ERR;
    }
    bus->ssl = ssl;
    return BG_OK;
}

/* Describe a dead context: a timeout says how long we waited. */
static void bus_io_error(bg_bus *bus, const char *what, char *err)
{
    redisContext *c = bus->ctx;
    const char *why = c != NULL ? c->errstr : "not connected";

    if (c != NULL && (c->err == REDIS_ERR_TIMEOUT || strstr(why, "temporarily unavailable")))
        bg_set_error(err, "%s %s: timed out after %lld ms", what, bus->where,
                     (long long)bus->opts.command_timeout_ms);
    else
        bg_set_error(err, "%s %s: %s", what, bus->where, why[0] ? why : "connection lost");
}

static int bus_setup_cmd(bg_bus *bus, redisContext *c, const char *what, char *err, int argc,
                         const char **argv)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);

    if (r == NULL) {
        bg_set_error(err, "%s on %s: %s", what, bus->where, c->errstr);
        return BG_ERR;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        bg_set_error(err, "%s: %s", what, r->str);
        bg_bus_reply_free(r);
        return BG_ERR;
    }
    bg_bus_reply_free(r);
    return BG_OK;
}

static int bus_auth(bg_bus *bus, redisContext *c, char *err)
{
    const bg_valkey_addr *a = &bus->opts.addr;
    char what[200];

    if (a->user[0] != '\0') {
        const char *argv[] = {"AUTH", a->user, a->password};
        snprintf(what, sizeof(what), "AUTH failed for user '%s'", a->user);
        return bus_setup_cmd(bus, c, what, err, 3, argv);
    }
    if (a->password[0] != '\0') {
        const char *argv[] = {"AUTH", a->password};
        return bus_setup_cmd(bus, c, "AUTH failed for the default user", err, 2, argv);
    }
    return BG_OK;
}

static int bus_select(bg_bus *bus, redisContext *c, char *err)
{
    char db[16], what[64];
    const char *argv[] = {"SELECT", db};

    snprintf(db, sizeof(db), "%d", bus->opts.addr.db);
    snprintf(what, sizeof(what), "SELECT %d failed", bus->opts.addr.db);
    return bus_setup_cmd(bus, c, what, err, 2, argv);
}

/* Sentinel mode: what the sentinels named may have been demoted since they
 * answered (or they may not have noticed a failover yet); only a server that
 * says it is the master will take our writes. */
static int bus_check_role(bg_bus *bus, redisContext *c, char *err)
{
    redisReply *r = redisCommand(c, "ROLE");
    int ok;

    if (r == NULL) {
        bg_set_error(err, "ROLE on %s: %s", bus->where, c->errstr);
        return BG_ERR;
    }
    ok = bg_bus_sentinel_role_ok(r, bus->where, err);
    bg_bus_reply_free(r);
    return ok ? BG_OK : BG_ERR;
}

/* AUTH, SELECT and CLIENT SETNAME on a fresh context. When none of them is
 * needed a PING stands in, so that connect fails where the server cannot
 * serve us (NOAUTH, or not speaking our protocol) rather than the first command. */
static int bus_handshake(bg_bus *bus, redisContext *c, char *err)
{
    const bg_valkey_addr *a = &bus->opts.addr;
    int checked = a->user[0] != '\0' || a->password[0] != '\0';

    if (bus_auth(bus, c, err) != BG_OK)
        return BG_ERR;
    if (a->db != 0 && bus_select(bus, c, err) != BG_OK)
        return BG_ERR;
    checked |= a->db != 0;
    if (bus_set(bus->opts.client_name)) {
        const char *argv[] = {"CLIENT", "SETNAME", bus->opts.client_name};
        if (bus_setup_cmd(bus, c, "CLIENT SETNAME failed", err, 3, argv) != BG_OK)
            return BG_ERR;
        checked = 1;
    }
    if (a->sentinel)
        return bus_check_role(bus, c, err); /* answers, so it stands in for the PING too */
    if (!checked) {
        const char *argv[] = {"PING"};
        return bus_setup_cmd(bus, c, "PING failed", err, 1, argv);
    }
    return BG_OK;
}

static void bus_cloexec(int fd)
{
    int flags = fd >= 0 ? fcntl(fd, F_GETFD) : -1;

    if (flags >= 0)
        fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

/* Sentinel mode: every attempt asks where the primary is now, so that a
 * reconnect after a failover goes to the new one, not the old address. */
static int bus_discover(bg_bus *bus, char *err)
{
    bg_valkey_addr found;

    if (bg_bus_sentinel_discover(&bus->opts, bus->ssl_ctx, &found, &bus->sentinel_first, err) !=
        BG_OK)
        return BG_ERR;
    bus->opts.addr.port = found.port;
    memcpy(bus->opts.addr.host, found.host, sizeof(found.host));
    bus->sentinel_checked = bg_mono_ms();
    bus_format_where(bus);
    return BG_OK;
}

/* A new context, fully set up: connect, TLS, AUTH, SELECT, SETNAME. */
static redisContext *bus_open(bg_bus *bus, char *err)
{
    struct timeval ctv = bus_timeval(bus->opts.connect_timeout_ms);
    struct timeval cmdtv = bus_timeval(bus->opts.command_timeout_ms);
    redisOptions ro = {0};
    redisContext *c;

    if (bus->opts.addr.sentinel && bus_discover(bus, err) != BG_OK)
        return NULL;
    if (bus->opts.addr.is_unix)
        REDIS_OPTIONS_SET_UNIX(&ro, bus->opts.addr.unix_path);
    else
        REDIS_OPTIONS_SET_TCP(&ro, bus->opts.addr.host, bus->opts.addr.port);
    ro.connect_timeout = &ctv;
    ro.command_timeout = bus->opts.command_timeout_ms > 0 ? &cmdtv : NULL;
    bus->ssl = NULL;
    c = redisConnectWithOptions(&ro);
    if (c == NULL) {
        bg_set_error(err, "connect %s: out of memory", bus->where);
        return NULL;
    }
    bus_cloexec(c->fd);
    if (c->err) {
        bg_set_error(err, "connect %s: %s", bus->where, c->errstr);
        goto fail;
    }
    if (bus->opts.reply_blocks)
        bg_bus_reply_blocks(c);
    if (bus->ssl_ctx != NULL && bus_tls_start(bus, c, err) != BG_OK)
        goto fail;
    if (bus_handshake(bus, c, err) != BG_OK)
        goto fail;
    return c;
fail:
    bus->ssl = NULL;
    redisFree(c);
    return NULL;
}

/* One connection attempt, counted and scheduled; replaces bus->ctx on success. */
static int bus_attempt(bg_bus *bus, char *err)
{
    int64_t start = bg_mono_ms();
    redisContext *c;

    bus->attempts++;
    c = bus_open(bus, err);
    if (c == NULL) {
        bus->failures++;
        if (bus->opts.addr.sentinel)
            bg_bus_sentinel_next(&bus->opts.addr, &bus->sentinel_first);
        bus->next_attempt =
            start + bg_backoff_ms(bus->failures, BUS_BACKOFF_MIN_MS,
                                  bus->opts.addr.sentinel ? BG_SENTINEL_BACKOFF_MAX_MS
                                                          : BUS_BACKOFF_MAX_MS);
        return BG_ERR;
    }
    bus->next_attempt = start + BUS_BACKOFF_MIN_MS;
    if (bus->ctx != NULL)
        redisFree(bus->ctx);
    bus->ctx = c;
    bus->inflight = 0;
    return BG_OK;
}

bg_bus *bg_bus_connect(const bg_bus_opts *o, char *err)
{
    bg_bus *bus = calloc(1, sizeof(*bus));

    if (bus == NULL || bus_copy_opts(bus, o) != BG_OK) {
        bg_set_error(err, "bus connect: out of memory");
        goto fail;
    }
    bus_format_where(bus);
    if (bus->opts.addr.cluster) {
        bus->cluster = bg_bus_cluster_new(&bus->opts, err);
        if (bus->cluster == NULL)
            goto fail;
        return bus;
    }
    if (bus->opts.addr.tls && (bus->ssl_ctx = bg_bus_tls_ctx_new(&bus->opts, err)) == NULL)
        goto fail;
    if (bus_attempt(bus, err) != BG_OK)
        goto fail;
    bus->failures = 0;
    return bus;
fail:
    bg_bus_free(bus);
    return NULL;
}

void bg_bus_free(bg_bus *bus)
{
    if (bus == NULL)
        return;
    if (bus->ctx != NULL)
        redisFree(bus->ctx);
    bg_bus_cluster_free(bus->cluster);
    SSL_CTX_free(bus->ssl_ctx);
    bus_free_strings(bus);
    free(bus->wire);
    free(bus);
}

void bg_bus_set_reconnect_hook(bg_bus *bus, bg_bus_reconnect_fn *fn, void *arg)
{
    bus->hook = fn;
    bus->hook_arg = arg;
}

void bg_bus_set_command_timeout(bg_bus *bus, int64_t ms)
{
    bus->opts.command_timeout_ms = ms;
    if (bus->cluster != NULL)
        bg_bus_cluster_set_command_timeout(bus->cluster, ms);
    if (bus->ctx != NULL)
        redisSetTimeout(bus->ctx, bus_timeval(ms > 0 ? ms : 0)); /* 0: wait forever */
}

int64_t bg_bus_command_timeout(const bg_bus *bus)
{
    return bus->opts.command_timeout_ms;
}

/* Sleep on the monotonic clock until the backoff allows an attempt. A signal
 * cuts the wait short so that a shutdown request is not held up by it. */
static int bus_wait_backoff(bg_bus *bus, char *err)
{
    int64_t due = bus->next_attempt;
    struct timespec ts = {.tv_sec = due / 1000, .tv_nsec = (due % 1000) * 1000000};

    if (bg_mono_ms() >= due)
        return BG_OK;
    if (bus->fail_fast) {
        bg_set_error(err, "%s is down (next connection attempt in %lld ms)", bus->where,
                     (long long)(due - bg_mono_ms()));
        return BG_ERR;
    }
    if (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
        bg_set_error(err, "reconnect to %s: backoff wait interrupted by a signal", bus->where);
        return BG_ERR;
    }
    return BG_OK;
}

static void bus_run_hook(bg_bus *bus)
{
    bus->reconnects++;
    if (bus->hook != NULL) {
        bus->in_hook = 1;
        bus->hook(bus, bus->hook_arg);
        bus->in_hook = 0;
    }
}

int bg_bus_reconnect(bg_bus *bus, char *err)
{
    if (bus->in_hook) {
        bg_set_error(err, "reconnect to %s: not allowed inside the reconnect hook", bus->where);
        return BG_ERR;
    }
    if (bus->cluster != NULL) {
        if (bg_bus_cluster_reconnect(bus->cluster, err) != BG_OK)
            return BG_ERR;
        (void)bg_bus_cluster_take_reconnected(bus->cluster);
        bus_run_hook(bus);
        return BG_OK;
    }
    if (bus->ctx != NULL) {
        redisFree(bus->ctx); /* a reconnect is a new context (hiredis rule) */
        bus->ctx = NULL;
        bus->ssl = NULL;
        bus->inflight = 0;
    }
    if (bus_wait_backoff(bus, err) != BG_OK || bus_attempt(bus, err) != BG_OK)
        return BG_ERR;
    bus_run_hook(bus);
    return BG_OK;
}

/* Errors after which this server cannot serve us as we are: find the primary again. */
static int bus_reply_wants_reconnect(const redisReply *r)
{
    static const char *const prefixes[] = {"UNBLOCKED", "READONLY", "LOADING"};
    size_t i;

    if (r->type != REDIS_REPLY_ERROR)
        return 0;
    for (i = 0; i < BG_ARRAY_LEN(prefixes); i++)
        if (strncmp(r->str, prefixes[i], strlen(prefixes[i])) == 0)
            return 1;
    return 0;
}

static redisReply *bus_run(bg_bus *bus, const char *cmd, long long len, char *err);

/* Send one formatted command and read its reply; NULL means the context died. */
static redisReply *bus_roundtrip(bg_bus *bus, const char *cmd, long long len, char *err)
{
    void *reply = NULL;

    if (redisAppendFormattedCommand(bus->ctx, cmd, (size_t)len) != REDIS_OK ||
        redisGetReply(bus->ctx, &reply) != REDIS_OK) {
        bus_io_error(bus, "command on", err);
        if (reply != NULL)
            bg_bus_reply_free(reply);
        return NULL;
    }
    return reply;
}

/* Closes the connection; the next command or append reconnects. */
static void bus_drop(bg_bus *bus)
{
    if (bus->ctx != NULL)
        redisFree(bus->ctx);
    bus->ctx = NULL;
    bus->ssl = NULL;
    bus->inflight = 0;
    bus->stale = 0;
}

/* Sentinel mode, at most once per BG_SENTINEL_CHECK_MS: when the sentinels
 * have moved the primary, drop the connection so that the command below
 * reconnects to the new one instead of writing to a primary being demoted. */
static void bus_sentinel_check(bg_bus *bus)
{
    char why[BG_ERR_LEN];
    int64_t now = bg_mono_ms();

    if (!bus->opts.addr.sentinel || bus->in_hook || bus->ctx == NULL ||
        now - bus->sentinel_checked < BG_SENTINEL_CHECK_MS)
        return;
    bus->sentinel_checked = now;
    if (!bg_bus_sentinel_moved(&bus->opts, bus->ssl_ctx, &bus->sentinel_first, why))
        return;
    bg_notice("valkey: %s: reconnecting", why);
    bus_drop(bus);
    bus->next_attempt = 0; /* the new primary is known: no reason to wait */
}

void bg_bus_set_fail_fast(bg_bus *bus)
{
    bus->fail_fast = 1;
}

redisReply *bg_bus_run_formatted(bg_bus *bus, const char *cmd, size_t len, char *err)
{
    return bus_run(bus, cmd, (long long)len, err);
}

/* Cluster mode: the command goes to its slot's node; when a node's connection had to be
 * made again on the way, the owner's hook runs (on this bus: its commands are routed). */
static redisReply *bus_dispatch(bg_bus *bus, const char *cmd, long long len, char *err)
{
    redisReply *r;

    if (bus->cluster == NULL)
        return bus_run(bus, cmd, len, err);
    if (bg_bus_cluster_queued(bus->cluster) > 0) {
        bg_set_error(err, "command on %s: %zu pipelined replies not read yet", bus->where,
                     bg_bus_cluster_queued(bus->cluster));
        return NULL;
    }
    r = bg_bus_cluster_run(bus->cluster, cmd, (size_t)len, err);
    if (bg_bus_cluster_take_reconnected(bus->cluster) && !bus->in_hook)
        bus_run_hook(bus);
    return r;
}

static redisReply *bus_run(bg_bus *bus, const char *cmd, long long len, char *err)
{
    redisReply *r;
    int retried = 0;

    if (bus->inflight > 0) {
        bg_set_error(err, "command on %s: %u pipelined replies not read yet", bus->where,
                     bus->inflight);
        return NULL;
    }
    bus_sentinel_check(bus);
    if (bg_bus_is_broken(bus)) {
        if (bg_bus_reconnect(bus, err) != BG_OK)
            return NULL;
        retried = 1;
    }
    for (;;) {
        r = bus_roundtrip(bus, cmd, len, err);
        if (r != NULL && (!bus_reply_wants_reconnect(r) || retried || bus->in_hook))
            break;
        if (retried || bus->in_hook)
            return NULL;
        if (r != NULL)
            bg_bus_reply_free(r);
        retried = 1;
        if (bg_bus_reconnect(bus, err) != BG_OK)
            return NULL;
    }
    bus->failures = 0; /* the server answered: the next outage starts the backoff afresh */
    return r;
}

redisReply *bg_bus_command(bg_bus *bus, char *err, const char *fmt, ...)
{
    char *cmd = NULL;
    redisReply *r;
    va_list ap;
    int len;

    va_start(ap, fmt);
    len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0) {
        bg_set_error(err, "command: bad format string or out of memory");
        return NULL;
    }
    r = bus_dispatch(bus, cmd, len, err);
    redisFreeCommand(cmd);
    return r;
}

redisReply *bg_bus_command_argv(bg_bus *bus, int argc, const char **argv, const size_t *argvlen,
                                char *err)
{
    char stack[2048], *cmd = stack;
    size_t need = bg_bus_resp_size(argc, argv, argvlen), len;
    redisReply *r;

    /* Not bus->wire: a reconnect hook may run commands while this one waits to be retried. */
    if (need > sizeof(stack) && (cmd = malloc(need)) == NULL) {
        bg_set_error(err, "command: out of memory");
        return NULL;
    }
    len = bg_bus_resp_encode(cmd, argc, argv, argvlen);
    r = bus_dispatch(bus, cmd, (long long)len, err);
    if (cmd != stack)
        free(cmd);
    return r;
}

/* argv RESP-encoded into bus->wire; 0 when out of memory. */
static size_t bus_encode(bg_bus *bus, int argc, const char **argv, const size_t *argvlen)
{
    size_t need = bg_bus_resp_size(argc, argv, argvlen);

    if (need > bus->wire_cap) {
        char *w = realloc(bus->wire, need);
        if (w == NULL)
            return 0;
        bus->wire = w;
        bus->wire_cap = need;
    }
    return bg_bus_resp_encode(bus->wire, argc, argv, argvlen);
}

redisReply *bg_bus_command_formatted(bg_bus *bus, const char *cmd, size_t len, char *err)
{
    return bus_dispatch(bus, cmd, (long long)len, err);
}

int bg_bus_append_argv(bg_bus *bus, int argc, const char **argv, const size_t *argvlen, char *err)
{
    size_t len;

    if (bus->cluster != NULL)
        return bg_bus_cluster_append(bus->cluster, argc, argv, argvlen, err);
    if (bus->inflight >= BG_BUS_MAX_INFLIGHT) {
        bg_set_error(err, "pipeline on %s: %d replies in flight, read some first", bus->where,
                     BG_BUS_MAX_INFLIGHT);
        return BG_ERR;
    }
    if (bus->inflight == 0)
        bus_sentinel_check(bus);
    /* Nothing is in flight, so nothing is lost by connecting again first. */
    if (bg_bus_is_broken(bus) && (bus->inflight > 0 || bg_bus_reconnect(bus, err) != BG_OK)) {
        if (bus->inflight > 0)
            bus_io_error(bus, "pipeline on", err);
        return BG_ERR;
    }
    if ((len = bus_encode(bus, argc, argv, argvlen)) == 0 ||
        redisAppendFormattedCommand(bus->ctx, bus->wire, len) != REDIS_OK) {
        bg_set_error(err, "pipeline on %s: out of memory", bus->where);
        return BG_ERR;
    }
    bus->inflight++;
    return BG_OK;
}

int bg_bus_get_reply(bg_bus *bus, redisReply **reply, char *err)
{
    void *r = NULL;

    *reply = NULL;
    if (bus->cluster != NULL)
        return bg_bus_cluster_get_reply(bus->cluster, reply, err);
    if (bus->inflight == 0) {
        bg_set_error(err, "pipeline on %s: no reply pending", bus->where);
        return BG_ERR;
    }
    if (bus->ctx == NULL || redisGetReply(bus->ctx, &r) != REDIS_OK) {
        bus_io_error(bus, "pipeline on", err);
        bus->inflight = 0; /* the rest died with the connection */
        if (r != NULL)
            bg_bus_reply_free(r);
        return BG_ERR;
    }
    bus->inflight--;
    *reply = r;
    /* Sentinel mode: the caller sees this error; the connection goes once the rest of
     * the pipeline is read, so the next append reconnects to the primary. */
    if (bus->opts.addr.sentinel && !bus->stale && bus_reply_wants_reconnect(*reply)) {
        bg_notice("valkey %s: %.120s: asking the sentinels for the primary again", bus->where,
                  (*reply)->str);
        bus->stale = 1;
    }
    if (bus->stale && bus->inflight == 0)
        bus_drop(bus);
    return BG_OK;
}

unsigned long bg_bus_reconnect_count(const bg_bus *bus)
{
    return bus->reconnects;
}

unsigned long bg_bus_connect_attempts(const bg_bus *bus)
{
    return bus->attempts;
}

int64_t bg_bus_next_attempt_in_ms(const bg_bus *bus)
{
    int64_t left = bus->next_attempt - bg_mono_ms();

    return left > 0 ? left : 0;
}

int bg_bus_is_broken(const bg_bus *bus)
{
    if (bus->cluster != NULL)
        return bg_bus_cluster_broken(bus->cluster);
    return bus->ctx == NULL || bus->ctx->err != 0;
}

const char *bg_bus_where(const bg_bus *bus)
{
    return bus->where;
}

int bg_bus_tls_pending(bg_bus *bus)
{
    return bus->ssl != NULL && bus->ctx != NULL && SSL_pending(bus->ssl) > 0;
}

redisContext *bg_bus_context(bg_bus *bus)
{
    char ignored[BG_ERR_LEN];
    bg_bus *first;

    if (bus->cluster == NULL)
        return bus->ctx;
    first = bg_bus_cluster_node(bus->cluster, 0, ignored);
    return first != NULL ? bg_bus_context(first) : NULL;
}

size_t bg_bus_node_count(bg_bus *bus)
{
    return bus->cluster != NULL ? bg_bus_cluster_node_count(bus->cluster) : 1;
}

bg_bus *bg_bus_node(bg_bus *bus, size_t i, char *err)
{
    if (bus->cluster != NULL)
        return bg_bus_cluster_node(bus->cluster, i, err);
    if (i != 0) {
        bg_set_error(err, "%s: no node %zu", bus->where, i);
        return NULL;
    }
    return bus;
}

int bg_bus_is_cluster(const bg_bus *bus)
{
    return bus->cluster != NULL;
}

void bg_bus_close_on_exec(bg_bus *bus)
{
    if (bus->cluster != NULL)
        bg_bus_cluster_close_on_exec(bus->cluster);
    if (bus->ctx != NULL)
        bus_cloexec(bus->ctx->fd);
}
