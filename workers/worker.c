/* worker.c: the worker process: setup, sandbox, event loop, channel commands, graceful stop. */
#include "busgate/workers/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "busgate/core/access_log.h"
#include "busgate/bus/bus.h"
#include "busgate/core/channel.h"
#include "busgate/core/log.h"
#include "busgate/metrics/metrics.h"
#include "busgate/routing/doc_shm.h"
#include "admin.h"
#include "dispatch.h"
#include "plan.h"
#include "ratelimit.h"
#include "http_conn.h"
#include "sandbox.h"
#include "server.h"
#include "worker_int.h"

#define WORKER_TICK_MS 1000

typedef struct worker_state {
    bg_wk wk;
    bg_bus_opts bus;
    char client_name[128];
    char tls_name[256];
    int exit_code;
    int64_t drain_deadline_ms;
    unsigned long reconnects_seen;
    bg_ev_timer *tick;
    bg_ev_hook *ready_hook;   /* until the bus is ready: checks before every poll */
    bg_ev_timer *ready_timer; /* bus still down: accept anyway */
} worker_state;

/* 16 lowercase hex digits of v (snprintf's cost showed in the per-request profile). */
static void worker_hex64(char *out, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";

    for (int i = 15; i >= 0; i--, v >>= 4)
        out[i] = digits[v & 0xf];
}

void bg_wk_request_id(bg_wk *wk, char out[33])
{
    worker_hex64(out, wk->id_prefix);
    worker_hex64(out + 16, ++wk->id_seq);
    out[32] = '\0';
}

void bg_wk_check_drained(bg_wk *wk)
{
    if (wk->draining && wk->nconns == 0 &&
        (wk->dispatch == NULL || bg_dispatch_inflight(wk->dispatch) == 0))
        bg_ev_stop(wk->loop);
}

/* ---- setup ---- */

/* The sandbox forbids opening files, so /etc/hosts and resolv.conf must be read now:
 * connect (and reconnect) by numeric address, and verify TLS against the name. */
/* The connection's way out to dispatch and admin (worker_int.h). */
static void worker_route(bg_wk *wk, bg_xchg *x)
{
    bg_ratelimit_route(wk, x); /* then bg_dispatch_send, or 429 */
}

static void worker_abandon(bg_wk *wk, bg_xchg *x)
{
    bg_dispatch_abandon(wk->dispatch, x);
}

static void worker_drained(bg_wk *wk, bg_xchg *x)
{
    bg_dispatch_stream_drained(wk->dispatch, x);
}

static const bg_conn_handlers worker_handlers = {
    .plan = bg_plan_request,
    .route = worker_route,
    .admin = bg_admin_handle,
    .abandon = worker_abandon,
    .drained = worker_drained,
};

static int worker_resolve(const bg_config *cfg, bg_bus_opts *o, char *tls_name, size_t tlen,
                          char *err)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    unsigned char probe[sizeof(struct in6_addr)];
    const void *a;
    int rc;

    if (o->addr.sentinel)
        return bg_bus_sentinel_resolve(&o->addr, err); /* the primary comes as an address */
    if (o->addr.cluster)
        return bg_bus_cluster_resolve(&o->addr, err); /* CLUSTER SLOTS gives addresses */
    if (o->addr.is_unix || inet_pton(AF_INET, o->addr.host, probe) == 1 ||
        inet_pton(AF_INET6, o->addr.host, probe) == 1)
        return BG_OK;
    rc = getaddrinfo(o->addr.host, NULL, &hints, &res);
    if (rc != 0 || res == NULL) {
        bg_set_error(err, "cannot resolve valkey host '%s': %s", o->addr.host, gai_strerror(rc));
        return BG_ERR;
    }
    a = res->ai_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
                                   : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
    if (o->addr.tls && (o->tls_server_name == NULL || o->tls_server_name[0] == '\0')) {
        snprintf(tls_name, tlen, "%s", cfg->valkey.addr.host);
        o->tls_server_name = tls_name;
    }
    inet_ntop(res->ai_family, a, o->addr.host, sizeof(o->addr.host));
    freeaddrinfo(res);
    return BG_OK;
}

static int worker_bus_opts(worker_state *w, char *err)
{
    const bg_config *cfg = w->wk.cfg;
    bg_bus_opts *o = &w->bus;

    snprintf(w->client_name, sizeof(w->client_name), "busgate-worker-%s-%d",
             cfg->gateway.instance_id, w->wk.ctx->slot);
    bg_bus_opts_from_config(o, cfg, w->client_name);
    return worker_resolve(cfg, o, w->tls_name, sizeof(w->tls_name), err);
}

/* Headers set from a token are reserved too, so a client can never send its own copy. */
static int worker_identity(bg_wk *wk, char *err)
{
    const bg_config *cfg = wk->cfg;
    const char *p = cfg->identity.claim_headers;

    if (bg_identity_init(&wk->identity, cfg->identity.reserved_headers,
                         cfg->identity.reserved_prefix, err) != BG_OK)
        return BG_ERR;
    while (*p != '\0') {
        const char *end = strchr(p, ','), *colon = strchr(p, ':');
        if (colon == NULL || bg_identity_add(&wk->identity, p, (size_t)(colon - p), err) != BG_OK)
            return BG_ERR;
        p = end != NULL ? end + 1 : p + strlen(p);
    }
    return BG_OK;
}

/* The key files are read now: the sandbox forbids opening them later. */
static int worker_auth(bg_wk *wk, char *err)
{
    if (!wk->cfg->auth.enabled)
        return BG_OK;
    if ((wk->auth = malloc(sizeof(*wk->auth))) == NULL) {
        bg_set_error(err, "out of memory");
        return BG_ERR;
    }
    if (bg_auth_init(wk->auth, wk->cfg, err) != BG_OK) {
        free(wk->auth);
        wk->auth = NULL;
        return BG_ERR;
    }
    bg_info("[auth]: %zu key(s) loaded", wk->auth->keys.n);
    return BG_OK;
}

static void worker_limits(bg_wk *wk)
{
    bg_http_limits_default(&wk->limits);
    wk->limits.max_header_size = wk->cfg->gateway.max_header_size;
    if (wk->limits.max_request_line > wk->limits.max_header_size)
        wk->limits.max_request_line = wk->limits.max_header_size;
    wk->limits.max_request_body = wk->cfg->gateway.max_request_body;
}

/* ---- channel from the master ---- */

/* take_backlog: nobody will accept what waits in the listen backlog after us (the
 * master is gone, or the gateway stops), so it is accepted and answered first. */
static void worker_drain(worker_state *w, int take_backlog)
{
    bg_wk *wk = &w->wk;

    if (wk->draining)
        return;
    bg_notice("graceful stop: %zu connection(s), %zu request(s) in flight", wk->nconns,
              bg_dispatch_inflight(wk->dispatch));
    wk->draining = 1;
    wk->drain_since_ms = bg_mono_ms();
    w->drain_deadline_ms = wk->drain_since_ms + wk->cfg->gateway.drain_timeout_ms;
    bg_server_stop(wk->server, take_backlog);
    bg_conn_drain_all(wk);
    bg_wk_check_drained(wk);
}

static void worker_close_fds(const int *fds, int nfds)
{
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
}

/* The master reopened the log files (SIGUSR1) and sent their descriptors: a
 * sandboxed worker may not open files, so it takes the master's (kinds: the
 * BG_CHAN_LOG_* bits, one descriptor each, in that order). */
static void worker_reopen_logs(uint32_t kinds, const int *fds, int nfds)
{
    int want = !!(kinds & BG_CHAN_LOG_ERROR) + !!(kinds & BG_CHAN_LOG_ACCESS), i = 0;
    char err[BG_ERR_LEN];

    if (nfds != want) {
        bg_error("log reopen: %d descriptor(s) came for log mask %u; keeping the current files",
                 nfds, kinds);
        worker_close_fds(fds, nfds);
        return;
    }
    if ((kinds & BG_CHAN_LOG_ERROR) && bg_log_adopt_fd(fds[i++]) != BG_OK)
        bg_error("log reopen: cannot take the new error log: dup3: %s", strerror(errno));
    if ((kinds & BG_CHAN_LOG_ACCESS) && bg_access_log_adopt(fds[i++], err) != BG_OK)
        bg_error("log reopen: cannot take the new access log: %s", err);
    bg_notice("log files taken over from the master");
}

static void worker_on_channel(bg_ev *loop, int fd, void *arg, int mask)
{
    worker_state *w = arg;
    int fds[BG_CHAN_MAX_FDS], nfds, rc;
    char err[BG_ERR_LEN];
    bg_chan_msg m;

    (void)mask;
    while ((rc = bg_chan_recv_fds(fd, &m, fds, BG_CHAN_MAX_FDS, &nfds, err)) == BG_OK) {
        if (m.cmd == BG_CHAN_REOPEN_LOGS) {
            worker_reopen_logs(m.target_kind, fds, nfds);
            continue;
        }
        worker_close_fds(fds, nfds); /* only REOPEN_LOGS carries descriptors */
        if (m.cmd == BG_CHAN_QUIT_GRACEFUL || m.cmd == BG_CHAN_QUIT_FINAL)
            worker_drain(w, m.cmd == BG_CHAN_QUIT_FINAL);
        else
            bg_warn("channel: unexpected command %u", m.cmd);
    }
    if (rc == BG_ERR) {
        /* The master is gone (or the channel broke): nobody supervises us any more.
         * Answer what we hold, then exit, so a supervisor can start a fresh master
         * on the port; serving on unsupervised would hide the failure. */
        bg_error("channel to the master: %s; finishing in-flight requests, then exiting", err);
        bg_ev_file_del(loop, fd, BG_EV_READABLE);
        w->exit_code = BG_WORKER_EXIT_RUNTIME;
        worker_drain(w, 1);
    }
}

/* ---- readiness: accept only once requests can reach the bus ---- */

static void worker_ready_done(worker_state *w)
{
    bg_ev_hook_del(w->wk.loop, w->ready_hook);
    w->ready_hook = NULL;
    bg_ev_timer_del(w->wk.loop, w->ready_timer);
    w->ready_timer = NULL;
}

/* Before every poll until the bus is up: start accepting and tell the master
 * once, so that on reload it retires the older workers only now. */
static void worker_on_ready_check(bg_ev *loop, void *arg)
{
    worker_state *w = arg;
    bg_chan_msg m = {.cmd = BG_CHAN_READY};
    char err[BG_ERR_LEN];

    (void)loop;
    if (!bg_dispatch_ready(w->wk.dispatch))
        return;
    worker_ready_done(w);
    if (w->wk.draining)
        return; /* told to quit before it was ready: nothing to announce */
    bg_server_start(w->wk.server);
    if (bg_chan_send(w->wk.ctx->channel_fd, &m, err) != BG_OK)
        bg_warn("cannot tell the master that this worker is ready: %s", err);
    bg_info("worker %d ready: the bus is connected, accepting connections", w->wk.ctx->slot);
}

/* The bus stays down: serve anyway (health endpoints answer, routed requests
 * get 503) rather than leave clients in the backlog. The ready check stays. */
static int64_t worker_on_ready_timeout(bg_ev *loop, bg_ev_timer *t, void *arg)
{
    worker_state *w = arg;

    (void)loop;
    (void)t;
    w->ready_timer = NULL;
    bg_warn("worker %d: the bus is not ready after %lld ms; accepting connections anyway",
            w->wk.ctx->slot, (long long)w->wk.cfg->valkey.connect_timeout_ms);
    bg_server_start(w->wk.server);
    return BG_EV_NOMORE;
}

static int worker_wait_ready(worker_state *w, char *err)
{
    bg_wk *wk = &w->wk;

    w->ready_hook = bg_ev_hook_add(wk->loop, worker_on_ready_check, w, err);
    if (w->ready_hook == NULL)
        return BG_ERR;
    w->ready_timer = bg_ev_timer_add(wk->loop, wk->cfg->valkey.connect_timeout_ms,
                                     worker_on_ready_timeout, w, err);
    return w->ready_timer != NULL ? BG_OK : BG_ERR;
}

/* ---- periodic work ---- */

static int64_t worker_on_tick(bg_ev *loop, bg_ev_timer *t, void *arg)
{
    worker_state *w = arg;
    unsigned long rc = bg_dispatch_reconnects(w->wk.dispatch);

    (void)t;
    if (rc > w->reconnects_seen && w->wk.ctx->metrics != NULL)
        bg_metrics_count(w->wk.ctx->metrics, w->wk.ctx->slot, BG_METRIC_BUS_RECONNECTS,
                         rc - w->reconnects_seen);
    w->reconnects_seen = rc;
    if (w->wk.draining && bg_mono_ms() >= w->drain_deadline_ms) {
        bg_warn("graceful stop: drain_timeout passed with %zu connection(s) open", w->wk.nconns);
        bg_ev_stop(loop);
    }
    return WORKER_TICK_MS;
}

/* ---- lifecycle ---- */

static int worker_setup(worker_state *w, char *err)
{
    bg_wk *wk = &w->wk;
    const bg_worker_ctx *ctx = wk->ctx;

    /* jansson seeds its hash function from /dev/urandom on first use: now,
     * while the sandbox still lets it open the file. */
    json_object_seed(0);
    if (bg_rt_protect_readonly(ctx->rt, err) != BG_OK)
        return BG_ERR;
    if (ctx->openapi != NULL && bg_doc_protect_readonly(ctx->openapi, err) != BG_OK)
        return BG_ERR;
    if ((wk->loop = bg_ev_new(err)) == NULL)
        return BG_ERR;
    if (worker_identity(wk, err) != BG_OK || worker_auth(wk, err) != BG_OK)
        return BG_ERR;
    worker_limits(wk);
    bg_ratelimit_setup();
    if (bg_dispatch_idem_setup(err) != BG_OK)
        return BG_ERR;
    if (bg_random_bytes(&wk->id_prefix, sizeof(wk->id_prefix)) != BG_OK) {
        bg_set_error(err, "getrandom failed");
        return BG_ERR;
    }
    if (worker_bus_opts(w, err) != BG_OK)
        return BG_ERR;
    /* TLS files are loaded here, before the sandbox forbids opening them. */
    if ((wk->dispatch = bg_dispatch_new(wk, &w->bus, err)) == NULL)
        return BG_ERR;
    wk->handlers = &worker_handlers;
    if ((wk->server = bg_server_new(wk, ctx->listen_fds, ctx->listen_tls, ctx->nlisten, err)) ==
        NULL)
        return BG_ERR;
    if (bg_ev_file_add(wk->loop, ctx->channel_fd, BG_EV_READABLE, worker_on_channel, w, err) !=
        BG_OK)
        return BG_ERR;
    if ((w->tick = bg_ev_timer_add(wk->loop, WORKER_TICK_MS, worker_on_tick, w, err)) == NULL)
        return BG_ERR;
    return worker_wait_ready(w, err);
}

static void worker_teardown(worker_state *w)
{
    bg_wk *wk = &w->wk;
    char err[BG_ERR_LEN];

    if (wk->loop == NULL)
        return;
    worker_ready_done(w);
    bg_server_free(wk->server);
    wk->server = NULL;
    bg_conn_close_all(wk);
    /* One more iteration flushes the CANCELs just queued for abandoned requests. */
    if (wk->dispatch != NULL && bg_ev_run_once(wk->loop, 0, err) < 0)
        bg_debug("final flush: %s", err);
    bg_dispatch_free(wk->dispatch);
    wk->dispatch = NULL;
    bg_xchg_cache_free(wk);
    bg_ev_timer_del(wk->loop, w->tick);
    bg_ev_free(wk->loop);
    wk->loop = NULL;
    free(wk->openapi_body);
    wk->openapi_body = NULL;
    bg_auth_free(wk->auth);
    free(wk->auth);
    wk->auth = NULL;
}

int bg_worker_main(const bg_worker_ctx *ctx)
{
    worker_state *w = calloc(1, sizeof(*w));
    char err[BG_ERR_LEN];
    int code, rc;

    if (w == NULL) {
        bg_crit("worker %d: out of memory", ctx->slot);
        return BG_WORKER_EXIT_RUNTIME;
    }
    w->wk.ctx = ctx;
    w->wk.cfg = ctx->cfg;
    signal(SIGPIPE, SIG_IGN); /* a client that leaves must not kill us mid-write */
    bg_bus_alloc_cached();    /* before any connection: every reply object is allocated */
    if (worker_setup(w, err) != BG_OK) {
        bg_error("worker %d: setup failed: %s", ctx->slot, err);
        w->exit_code = BG_WORKER_EXIT_RUNTIME;
        goto cleanup;
    }
    rc = bg_sandbox_apply(ctx->cfg, err);
    if (rc != BG_OK) {
        /* Only a configuration that cannot work stops the respawns. */
        w->exit_code = rc == BG_SANDBOX_ERR_CONFIG ? BG_WORKER_EXIT_CONFIG : BG_WORKER_EXIT_RUNTIME;
        bg_log(rc == BG_SANDBOX_ERR_CONFIG ? BG_LOG_CRIT : BG_LOG_ERROR, "worker %d: sandbox: %s",
               ctx->slot, err);
        goto cleanup;
    }
    bg_info("worker %d set up (generation %u, reply stream %s); accepting once the bus is ready",
            ctx->slot, ctx->generation, bg_dispatch_reply_key(w->wk.dispatch));
    if (bg_ev_run(w->wk.loop, err) != BG_OK) {
        bg_error("worker %d: event loop: %s", ctx->slot, err);
        w->exit_code = BG_WORKER_EXIT_RUNTIME;
    }
cleanup:
    worker_teardown(w);
    close(ctx->channel_fd);
    code = w->exit_code;
    free(w);
    return code;
}
