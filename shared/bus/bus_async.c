/* bus_async.c: asynchronous Valkey connection: connect, handshake, reconnect, in-flight cap. */
#include "busgate/core/backoff.h"
#include "busgate/bus/bus_async.h"

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/hiredis_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "bus_async_cluster.h"
#include "bus_reply.h"
#include "bus_resp.h"
#include "bus_sentinel.h"
#include "bus_tls.h"
#include "busgate/core/log.h"

#define ABUS_BACKOFF_MIN_MS 100
#define ABUS_BACKOFF_MAX_MS 5000

enum { ABUS_DOWN, ABUS_CONNECTING, ABUS_UP };

/* What a user command carries through hiredis; recycled through a free list
 * so the hot path does not malloc one per command. */
typedef struct abus_cmd {
    bg_abus_reply_fn *fn;
    void *privdata;
    struct abus_cmd *next;
} abus_cmd;

struct bg_abus {
    bg_ev *loop;
    bg_bus_opts opts; /* string members point at the copies below */
    char *tls_ca_file, *tls_cert_file, *tls_key_file, *tls_server_name, *client_name;
    char where[300];
    SSL_CTX *ssl_ctx;
    SSL *ssl;              /* of the current context, owned by hiredis */
    redisAsyncContext *ac; /* NULL while waiting to retry */
    int state;
    int handshake_left;
    int dying;    /* the current context delivered a NULL reply: it is going away */
    int freeing;  /* bg_abus_free called: no retries, free with the context */
    int in_state; /* inside the state hook: bg_abus_free must defer */
    size_t inflight, max_inflight;
    unsigned long connects, reconnects;
    unsigned failures; /* consecutive failed attempts: drives the backoff */
    bg_ev_timer *retry;
    bg_abus_state_fn *state_fn;
    void *state_arg;
    abus_cmd *spare;
    char *wire; /* reusable buffer for RESP-encoding argv commands */
    size_t wire_cap;
    bg_abus_io io;
    char last_error[BG_ERR_LEN];
    int sentinel_first;          /* Sentinel mode: the sentinel to ask first (answered last time) */
    bg_ev_timer *sentinel_check; /* Sentinel mode: "did the primary move?" every second */
    int retry_now;         /* the connection was dropped for a known move: reconnect at once */
    abus_cluster *cluster; /* Cluster mode: the nodes' connections; ac stays NULL */
};

static void abus_schedule_retry(bg_abus *b);

/* ---- options and TLS ---- */

static int abus_set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

static char *abus_strdup_opt(const char *s, int *oom)
{
    char *copy;

    if (!abus_set(s))
        return NULL;
    copy = strdup(s);
    if (copy == NULL)
        *oom = 1;
    return copy;
}

/* The caller's strings need not outlive bg_abus_new: keep our own copies. */
static int abus_copy_opts(bg_abus *b, const bg_bus_opts *o)
{
    const bg_valkey_addr *a = &o->addr;
    int oom = 0;

    b->opts = *o;
    b->opts.tls_ca_file = b->tls_ca_file = abus_strdup_opt(o->tls_ca_file, &oom);
    b->opts.tls_cert_file = b->tls_cert_file = abus_strdup_opt(o->tls_cert_file, &oom);
    b->opts.tls_key_file = b->tls_key_file = abus_strdup_opt(o->tls_key_file, &oom);
    b->opts.tls_server_name = b->tls_server_name = abus_strdup_opt(o->tls_server_name, &oom);
    b->opts.client_name = b->client_name = abus_strdup_opt(o->client_name, &oom);
    if (a->sentinel)
        bg_bus_sentinel_where(a, b->where, sizeof(b->where));
    else if (a->cluster)
        snprintf(b->where, sizeof(b->where), "cluster %s:%d%s", a->host, a->port,
                 a->nseeds > 1 ? ",..." : "");
    else if (a->is_unix)
        snprintf(b->where, sizeof(b->where), "unix:%s", a->unix_path);
    else if (strchr(a->host, ':') != NULL)
        snprintf(b->where, sizeof(b->where), "[%s]:%d", a->host, a->port);
    else
        snprintf(b->where, sizeof(b->where), "%s:%d", a->host, a->port);
    return oom ? BG_ERR : BG_OK;
}

/* Starts TLS on a connecting socket; the handshake completes in the loop. */
static int abus_tls_start(bg_abus *b, redisAsyncContext *ac)
{
    SSL *ssl = bg_bus_tls_ssl_new(b->ssl_ctx, &b->opts, b->where, b->last_error);

    if (ssl == NULL)
        return BG_ERR;
    if (redisInitiateSSL(&ac->c, ssl) != REDIS_OK) {
        bg_set_error(b->last_error, "TLS with %s: %s", b->where, ac->c.errstr);
        SSL_free(ssl); /* hiredis owns it only on success */
        ERR_clear_error();
        return BG_ERR;
    }
    b->ssl = ssl;
    return BG_OK;
}

/* ---- state changes ---- */

static void abus_destroy(bg_abus *b)
{
    while (b->spare != NULL) {
        abus_cmd *c = b->spare;
        b->spare = c->next;
        free(c);
    }
    free(b->wire);
    bg_ev_timer_del(b->loop, b->retry);
    bg_ev_timer_del(b->loop, b->sentinel_check);
    SSL_CTX_free(b->ssl_ctx);
    free(b->tls_ca_file);
    free(b->tls_cert_file);
    free(b->tls_key_file);
    free(b->tls_server_name);
    free(b->client_name);
    free(b);
}

/* Runs the user's state hook; returns 1 if the hook freed b (then gone). */
static int abus_tell_state(bg_abus *b, int connected)
{
    if (b->state_fn == NULL)
        return 0;
    b->in_state++;
    b->state_fn(b, connected, b->state_arg);
    b->in_state--;
    if (b->freeing && b->in_state == 0 && b->ac == NULL) {
        abus_destroy(b);
        return 1;
    }
    return 0;
}

static void abus_went_up(bg_abus *b)
{
    b->state = ABUS_UP;
    b->failures = 0;
    b->last_error[0] = '\0';
    if (b->connects++ > 0) {
        b->reconnects++;
        bg_notice("valkey %s: reconnected", b->where);
    } else {
        bg_info("valkey %s: connected", b->where);
    }
    abus_tell_state(b, 1);
}

/* Why the context died, in words an operator can act on. */
static void abus_record_failure(bg_abus *b, const redisAsyncContext *ac)
{
    if (ac->c.err == 0)
        return; /* closed on purpose; the reason, if any, is already recorded */
    if (b->ssl != NULL && bg_bus_tls_cert_failed(b->ssl, b->where, b->last_error))
        return; /* says more than hiredis's errstr for the same failure */
    if (ac->c.err == REDIS_ERR_TIMEOUT)
        bg_set_error(b->last_error, "%s: timed out (%s)", b->where,
                     b->state == ABUS_UP ? "command" : "connect or handshake");
    else
        bg_set_error(b->last_error, "%s: %s", b->where, ac->c.errstr);
}

/* hiredis's dataCleanup: the one place every context ends (failed connect,
 * I/O error, timeout, handshake error, bg_abus_free). All its callbacks have
 * had their NULL reply by now. */
static void abus_on_context_gone(void *data)
{
    bg_abus *b = data;
    int was_up = b->state == ABUS_UP;

    abus_record_failure(b, b->ac);
    b->ac = NULL;
    b->ssl = NULL;
    b->state = ABUS_DOWN;
    b->dying = 0;
    if (b->freeing) {
        if (b->in_state == 0)
            abus_destroy(b);
        return;
    }
    if (was_up)
        bg_warn("valkey %s: connection lost: %s", b->where, b->last_error);
    else
        bg_warn("valkey %s: connect failed: %s", b->where, b->last_error);
    if (!was_up && b->opts.addr.sentinel)
        bg_bus_sentinel_next(&b->opts.addr, &b->sentinel_first);
    if (was_up && abus_tell_state(b, 0))
        return;
    abus_schedule_retry(b);
}

/* ---- connect and handshake ---- */

static void abus_on_handshake(redisAsyncContext *ac, void *r, void *privdata)
{
    bg_abus *b = ac->data;
    redisReply *reply = r;

    if (reply == NULL)
        return; /* the context is going away: abus_on_context_gone handles it */
    if (reply->type == REDIS_REPLY_ERROR) {
        bg_set_error(b->last_error, "%s: %s failed: %s", b->where, (const char *)privdata,
                     reply->str);
        redisAsyncFree(ac); /* deferred by hiredis until this callback returns */
        return;
    }
    if (--b->handshake_left == 0)
        abus_went_up(b);
}

static int abus_handshake_cmd(bg_abus *b, const char *what, int argc, const char **argv)
{
    if (redisAsyncCommandArgv(b->ac, abus_on_handshake, (void *)what, argc, argv, NULL) !=
        REDIS_OK) {
        bg_set_error(b->last_error, "%s: cannot queue %s: %s", b->where, what,
                     b->ac->errstr ? b->ac->errstr : "out of memory");
        return BG_ERR;
    }
    b->handshake_left++;
    return BG_OK;
}

/* Sentinel mode: only a server that says it is the master will take our
 * writes; what the sentinels named may be a replica again by now. */
static void abus_on_role(redisAsyncContext *ac, void *r, void *privdata)
{
    bg_abus *b = ac->data;

    (void)privdata;
    if (r == NULL)
        return; /* the context is going away: abus_on_context_gone handles it */
    if (!bg_bus_sentinel_role_ok(r, b->where, b->last_error)) {
        redisAsyncFree(ac); /* deferred by hiredis until this callback returns */
        return;
    }
    if (--b->handshake_left == 0)
        abus_went_up(b);
}

static int abus_queue_role(bg_abus *b)
{
    if (redisAsyncCommand(b->ac, abus_on_role, NULL, "ROLE") != REDIS_OK) {
        bg_set_error(b->last_error, "%s: cannot queue ROLE: %s", b->where,
                     b->ac->errstr ? b->ac->errstr : "out of memory");
        return BG_ERR;
    }
    b->handshake_left++;
    return BG_OK;
}

/* Queued before any user command, so they go first in the first write. The
 * closing PING makes "connected" mean the server answered, not just that
 * the kernel accepted the TCP connection. */
static int abus_queue_handshake(bg_abus *b)
{
    const bg_valkey_addr *a = &b->opts.addr;
    const char *auth[] = {"AUTH", a->user, a->password}, *select[] = {"SELECT", NULL};
    const char *setname[] = {"CLIENT", "SETNAME", b->opts.client_name}, *ping[] = {"PING"};
    char db[16];

    b->handshake_left = 0;
    snprintf(db, sizeof(db), "%d", a->db);
    select[1] = db;
    if (a->user[0] != '\0' && abus_handshake_cmd(b, "AUTH", 3, auth) != BG_OK)
        return BG_ERR;
    auth[1] = a->password; /* password alone: the default user */
    if (a->user[0] == '\0' && a->password[0] != '\0' &&
        abus_handshake_cmd(b, "AUTH", 2, auth) != BG_OK)
        return BG_ERR;
    if (a->db != 0 && abus_handshake_cmd(b, "SELECT", 2, select) != BG_OK)
        return BG_ERR;
    if (abus_set(b->opts.client_name) &&
        abus_handshake_cmd(b, "CLIENT SETNAME", 3, setname) != BG_OK)
        return BG_ERR;
    if (a->sentinel && abus_queue_role(b) != BG_OK)
        return BG_ERR;
    return abus_handshake_cmd(b, "PING", 1, ping);
}

static struct timeval abus_timeval(int64_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

static redisAsyncContext *abus_open(bg_abus *b)
{
    struct timeval ctv = abus_timeval(b->opts.connect_timeout_ms);
    struct timeval cmdtv = abus_timeval(b->opts.command_timeout_ms);
    redisOptions ro = {0};

    if (b->opts.addr.is_unix)
        REDIS_OPTIONS_SET_UNIX(&ro, b->opts.addr.unix_path);
    else
        REDIS_OPTIONS_SET_TCP(&ro, b->opts.addr.host, b->opts.addr.port);
    ro.connect_timeout = b->opts.connect_timeout_ms > 0 ? &ctv : NULL;
    ro.command_timeout = b->opts.command_timeout_ms > 0 ? &cmdtv : NULL;
    return redisAsyncConnectWithOptions(&ro);
}

/* hiredis sockets are not close-on-exec; children must not inherit them.
 * F_GETFD/F_SETFD cannot fail on an open descriptor. */
static void abus_cloexec(int fd)
{
    int flags = fd >= 0 ? fcntl(fd, F_GETFD) : -1;

    if (flags >= 0)
        (void)fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

/* TLS, the loop and the handshake on a fresh context. */
static int abus_prepare(bg_abus *b, redisAsyncContext *ac)
{
    char err[BG_ERR_LEN];

    if (ac->err != 0)
        return BG_ERR; /* abus_record_failure takes the reason from ac */
    if (b->ssl_ctx != NULL && abus_tls_start(b, ac) != BG_OK)
        return BG_ERR;
    if (bg_abus_adapter_attach(ac, b->loop, &b->io, err) != BG_OK) {
        bg_set_error(b->last_error, "%s: %s", b->where, err);
        return BG_ERR;
    }
    return abus_queue_handshake(b);
}

/* Sentinel mode: every attempt asks where the primary is now, so that a
 * reconnect after a failover goes to the new one. This is a blocking query
 * (bounded by BG_SENTINEL_TIMEOUT_MS per sentinel, microseconds on a LAN):
 * the loop stalls only while a sentinel is unreachable. */
static int abus_discover(bg_abus *b)
{
    bg_valkey_addr found;
    char err[BG_ERR_LEN];

    /* Into err first: on success last_error keeps why the previous connection ended. */
    if (bg_bus_sentinel_discover(&b->opts, b->ssl_ctx, &found, &b->sentinel_first, err) != BG_OK) {
        snprintf(b->last_error, sizeof(b->last_error), "%s", err);
        return BG_ERR;
    }
    b->opts.addr.port = found.port;
    memcpy(b->opts.addr.host, found.host, sizeof(found.host));
    bg_bus_sentinel_where(&b->opts.addr, b->where, sizeof(b->where));
    return BG_OK;
}

/* One attempt. A failure here or later ends in abus_on_context_gone, which
 * schedules the next attempt. */
static void abus_connect(bg_abus *b)
{
    redisAsyncContext *ac;

    if (b->opts.addr.sentinel && abus_discover(b) != BG_OK) {
        bg_warn("valkey %s: %s", b->where, b->last_error);
        bg_bus_sentinel_next(&b->opts.addr, &b->sentinel_first);
        abus_schedule_retry(b);
        return;
    }
    ac = abus_open(b);
    if (ac == NULL) {
        bg_set_error(b->last_error, "connect %s: out of memory", b->where);
        bg_error("valkey %s", b->last_error);
        abus_schedule_retry(b);
        return;
    }
    b->ac = ac;
    b->state = ABUS_CONNECTING;
    ac->data = b;
    ac->dataCleanup = abus_on_context_gone;
    abus_cloexec(ac->c.fd);
    bg_bus_reply_blocks(&ac->c); /* hiredict frees them through the reader, after each callback */
    if (abus_prepare(b, ac) != BG_OK)
        redisAsyncFree(ac);
}

static int64_t abus_on_retry(bg_ev *loop, bg_ev_timer *t, void *arg)
{
    bg_abus *b = arg;

    (void)loop;
    (void)t;
    b->retry = NULL;
    abus_connect(b);
    return BG_EV_NOMORE;
}

static void abus_schedule_retry(bg_abus *b)
{
    char err[BG_ERR_LEN];
    int64_t ms;

    if (b->retry != NULL)
        return;
    ms = bg_backoff_ms(b->failures++, ABUS_BACKOFF_MIN_MS,
                       b->opts.addr.sentinel ? BG_SENTINEL_BACKOFF_MAX_MS : ABUS_BACKOFF_MAX_MS);
    if (b->retry_now)
        ms = 0; /* once: every request meanwhile gets a 503, and the sentinels know where to go */
    b->retry_now = 0;
    b->retry = bg_ev_timer_add(b->loop, ms, abus_on_retry, b, err);
    if (b->retry == NULL)
        bg_crit("valkey %s: cannot schedule a reconnect: %s", b->where, err);
}

/* Sentinel mode: after a manual failover the old primary keeps taking our
 * writes until the sentinels demote it, seconds later; asking them every
 * second bounds that window. A drop ends in abus_on_context_gone, whose retry
 * asks the sentinels again. */
static int64_t abus_on_sentinel_check(bg_ev *loop, bg_ev_timer *t, void *arg)
{
    bg_abus *b = arg;
    char why[BG_ERR_LEN];

    (void)loop;
    (void)t;
    if (b->state != ABUS_UP || b->dying || b->freeing)
        return BG_SENTINEL_CHECK_MS;
    if (bg_bus_sentinel_moved(&b->opts, b->ssl_ctx, &b->sentinel_first, why)) {
        bg_notice("valkey %s: %s: reconnecting", b->where, why);
        snprintf(b->last_error, sizeof(b->last_error), "%s", why);
        b->dying = 1;
        b->failures = 0;
        b->retry_now = 1; /* the new primary is known */
        redisAsyncFree(b->ac);
    }
    return BG_SENTINEL_CHECK_MS;
}

/* ---- public API ---- */

static void abus_check_sigpipe(void)
{
    struct sigaction sa;

    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        bg_warn("SIGPIPE is not ignored: a Valkey connection reset during a write would kill "
                "this process");
}

bg_abus *bg_abus_new(bg_ev *loop, const bg_bus_opts *o, char *err)
{
    bg_abus *b = calloc(1, sizeof(*b));

    if (b == NULL) {
        bg_set_error(err, "bg_abus_new: out of memory");
        return NULL;
    }
    abus_check_sigpipe();
    b->loop = loop;
    b->max_inflight = BG_ABUS_MAX_INFLIGHT;
    if (abus_copy_opts(b, o) != BG_OK) {
        bg_set_error(err, "bg_abus_new: out of memory");
        goto fail;
    }
    if (b->opts.addr.cluster) {
        if ((b->cluster = bg_abus_cluster_new(b, loop, &b->opts, err)) == NULL)
            goto fail;
        return b;
    }
    if (b->opts.addr.tls && (b->ssl_ctx = bg_bus_tls_ctx_new(&b->opts, err)) == NULL)
        goto fail;
    if (b->opts.addr.sentinel &&
        (b->sentinel_check =
             bg_ev_timer_add(loop, BG_SENTINEL_CHECK_MS, abus_on_sentinel_check, b, err)) == NULL)
        goto fail;
    abus_connect(b);
    return b;
fail:
    abus_destroy(b);
    return NULL;
}

void bg_abus_free(bg_abus *b)
{
    if (b == NULL || b->freeing)
        return;
    b->freeing = 1;
    if (b->cluster != NULL) {
        bg_abus_cluster_free(b->cluster); /* b goes with it, once its callbacks are done */
        return;
    }
    bg_ev_timer_del(b->loop, b->retry);
    b->retry = NULL;
    bg_ev_timer_del(b->loop, b->sentinel_check);
    b->sentinel_check = NULL;
    if (b->ac != NULL)
        redisAsyncFree(b->ac); /* b goes in abus_on_context_gone, now or after the callback */
    else if (b->in_state == 0)
        abus_destroy(b);
}

void bg_abus_owner_destroy(bg_abus *owner)
{
    abus_destroy(owner);
}

void bg_abus_set_state_hook(bg_abus *b, bg_abus_state_fn *fn, void *arg)
{
    if (b->cluster != NULL)
        bg_abus_cluster_set_state_hook(b->cluster, fn, arg);
    b->state_fn = fn;
    b->state_arg = arg;
}

/* Sentinel mode: READONLY (we talk to a demoted primary) and UNBLOCKED (a
 * blocking read cut short by the role change) mean "find the primary again".
 * Plain mode has nowhere else to go, so there such replies reach the caller. */
static int abus_means_failover(const bg_abus *b, const redisReply *r)
{
    return b->opts.addr.sentinel && r != NULL && r->type == REDIS_REPLY_ERROR &&
           (strncmp(r->str, "READONLY", 8) == 0 || strncmp(r->str, "UNBLOCKED", 9) == 0);
}

/* Drops the connection (after the current callback: hiredis defers the free);
 * every pending command gets its NULL reply and abus_on_context_gone retries,
 * which asks the sentinels again. */
static void abus_failover(bg_abus *b, redisAsyncContext *ac, const redisReply *r)
{
    if (b->freeing || b->dying)
        return;
    bg_set_error(b->last_error, "%s: %.120s", b->where, r->str);
    bg_warn("valkey %s: %.120s: asking the sentinels for the primary again", b->where, r->str);
    b->dying = 1;
    b->retry_now = 1;
    redisAsyncFree(ac);
}

static void abus_on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    bg_abus *b = ac->data;
    abus_cmd *c = privdata;
    bg_abus_reply_fn *fn = c->fn;
    void *pd = c->privdata;

    c->next = b->spare;
    b->spare = c;
    b->inflight--;
    if (reply == NULL)
        b->dying = 1; /* hiredis only says NULL when the context is ending */
    if (fn != NULL)
        fn(b, reply, pd);
    if (abus_means_failover(b, reply))
        abus_failover(b, ac, reply);
}

/* Checked before any encoding work, so a refusal under load costs nothing. */
static int abus_accepting(const bg_abus *b)
{
    return b->ac != NULL && !b->dying && !b->freeing && b->inflight < b->max_inflight;
}

static abus_cmd *abus_cmd_get(bg_abus *b)
{
    abus_cmd *c = b->spare;

    if (!abus_accepting(b))
        return NULL;
    if (c != NULL)
        b->spare = c->next;
    else
        c = malloc(sizeof(*c));
    return c;
}

static int abus_cmd_sent(bg_abus *b, abus_cmd *c, int status)
{
    if (status != REDIS_OK) {
        c->next = b->spare;
        b->spare = c;
        return BG_ERR;
    }
    b->inflight++;
    return BG_OK;
}

/* RESP-encode argv into b->wire (bus_resp.c). */
static int abus_encode(bg_abus *b, int argc, const char **argv, const size_t *argvlen, size_t *len)
{
    size_t need = bg_bus_resp_size(argc, argv, argvlen);

    if (need > b->wire_cap) {
        char *w = realloc(b->wire, need);
        if (w == NULL)
            return BG_ERR;
        b->wire = w;
        b->wire_cap = need;
    }
    *len = bg_bus_resp_encode(b->wire, argc, argv, argvlen);
    return BG_OK;
}

/* Commands answered more than once (pub/sub, MONITOR) or not at all
 * (UNSUBSCRIBE) would break the one-reply-per-callback contract and the
 * recycling of abus_cmd; pub/sub has its own connection type. */
static int abus_is_push_command(const char *cmd, size_t len)
{
    static const char *const names[] = {"SUBSCRIBE",    "PSUBSCRIBE",   "SSUBSCRIBE", "UNSUBSCRIBE",
                                        "PUNSUBSCRIBE", "SUNSUBSCRIBE", "MONITOR"};
    const char *p = memchr(cmd, '$', len), *name, *end = cmd + len;
    size_t n, i;

    if (p == NULL || (name = memchr(p, '\n', (size_t)(end - p))) == NULL)
        return 0;
    n = strtoul(p + 1, NULL, 10);
    if (++name + n > end)
        return 0;
    for (i = 0; i < BG_ARRAY_LEN(names); i++)
        if (strlen(names[i]) == n && strncasecmp(name, names[i], n) == 0)
            return 1;
    return 0;
}

/* Queue one RESP-encoded command with its callback. */
static int abus_send(bg_abus *b, bg_abus_reply_fn *fn, void *privdata, const char *cmd, size_t len)
{
    abus_cmd *c;

    if (abus_is_push_command(cmd, len) || (c = abus_cmd_get(b)) == NULL)
        return BG_ERR;
    c->fn = fn;
    c->privdata = privdata;
    return abus_cmd_sent(b, c, redisAsyncFormattedCommand(b->ac, abus_on_reply, c, cmd, len));
}

int bg_abus_send_formatted(bg_abus *b, bg_abus_reply_fn *fn, void *privdata, const char *cmd,
                           size_t len)
{
    if (!abus_accepting(b))
        return BG_ERR;
    return abus_send(b, fn, privdata, cmd, len);
}

int bg_abus_command_argv(bg_abus *b, bg_abus_reply_fn *fn, void *privdata, int argc,
                         const char **argv, const size_t *argvlen)
{
    size_t len;

    if (b->cluster != NULL)
        return argc < 1 || abus_encode(b, argc, argv, argvlen, &len) != BG_OK ||
                       abus_is_push_command(b->wire, len)
                   ? BG_ERR
                   : bg_abus_cluster_send(b->cluster, fn, privdata, b->wire, len);

    if (argc < 1 || !abus_accepting(b) || abus_encode(b, argc, argv, argvlen, &len) != BG_OK)
        return BG_ERR;
    return abus_send(b, fn, privdata, b->wire, len);
}

int bg_abus_command(bg_abus *b, bg_abus_reply_fn *fn, void *privdata, const char *fmt, ...)
{
    char *cmd = NULL;
    va_list ap;
    int len, rc;

    if (b->cluster == NULL && !abus_accepting(b))
        return BG_ERR;
    va_start(ap, fmt);
    len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0)
        return BG_ERR;
    if (b->cluster != NULL)
        rc = abus_is_push_command(cmd, (size_t)len)
                 ? BG_ERR
                 : bg_abus_cluster_send(b->cluster, fn, privdata, cmd, (size_t)len);
    else
        rc = abus_send(b, fn, privdata, cmd, (size_t)len);
    redisFreeCommand(cmd);
    return rc;
}

int bg_abus_connected(const bg_abus *b)
{
    if (b->cluster != NULL)
        return bg_abus_cluster_connected(b->cluster);
    return b->state == ABUS_UP && !b->dying;
}

size_t bg_abus_inflight(const bg_abus *b)
{
    if (b->cluster != NULL)
        return bg_abus_cluster_inflight(b->cluster);
    return b->inflight;
}

void bg_abus_set_max_inflight(bg_abus *b, size_t cap)
{
    b->max_inflight = cap ? cap : BG_ABUS_MAX_INFLIGHT;
    if (b->cluster != NULL)
        bg_abus_cluster_set_max_inflight(b->cluster, b->max_inflight);
}

unsigned long bg_abus_reconnects(const bg_abus *b)
{
    if (b->cluster != NULL)
        return bg_abus_cluster_reconnects(b->cluster);
    return b->reconnects;
}

const char *bg_abus_last_error(const bg_abus *b)
{
    if (b->cluster != NULL)
        return bg_abus_cluster_last_error(b->cluster);
    return b->last_error;
}

void bg_abus_io_counts(const bg_abus *b, unsigned long *writes, unsigned long *reads)
{
    if (b->cluster != NULL) {
        bg_abus_cluster_io_counts(b->cluster, writes, reads);
        return;
    }
    *writes = b->io.writes;
    *reads = b->io.reads;
}
