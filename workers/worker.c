/* worker.c: the worker process: setup, sandbox, event loop, channel commands, graceful stop. */
#include "busgate/worker.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "busgate/bus.h"
#include "busgate/channel.h"
#include "busgate/log.h"
#include "busgate/metrics.h"
#include "dispatch.h"
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
} worker_state;

void bg_wk_request_id(bg_wk *wk, char out[33])
{
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)wk->id_prefix,
             (unsigned long long)++wk->id_seq);
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
static int worker_resolve(const bg_config *cfg, bg_bus_opts *o, char *tls_name, size_t tlen,
                          char *err)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    unsigned char probe[sizeof(struct in6_addr)];
    const void *a;
    int rc;

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

static const char *worker_opt(const char *s)
{
    return s[0] != '\0' ? s : NULL;
}

static int worker_bus_opts(worker_state *w, char *err)
{
    const bg_config *cfg = w->wk.cfg;
    bg_bus_opts *o = &w->bus;

    bg_bus_opts_init(o);
    o->addr = cfg->valkey.addr;
    o->connect_timeout_ms = cfg->valkey.connect_timeout_ms;
    o->command_timeout_ms = cfg->valkey.command_timeout_ms;
    o->tls_ca_file = worker_opt(cfg->valkey.tls_ca_file);
    o->tls_cert_file = worker_opt(cfg->valkey.tls_cert_file);
    o->tls_key_file = worker_opt(cfg->valkey.tls_key_file);
    o->tls_server_name = worker_opt(cfg->valkey.tls_server_name);
    o->tls_verify = cfg->valkey.tls_verify;
    snprintf(w->client_name, sizeof(w->client_name), "busgate-worker-%s-%d",
             cfg->gateway.instance_id, w->wk.ctx->slot);
    o->client_name = w->client_name;
    return worker_resolve(cfg, o, w->tls_name, sizeof(w->tls_name), err);
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

static void worker_drain(worker_state *w)
{
    bg_wk *wk = &w->wk;

    if (wk->draining)
        return;
    bg_notice("graceful stop: %zu connection(s), %zu request(s) in flight", wk->nconns,
              bg_dispatch_inflight(wk->dispatch));
    wk->draining = 1;
    w->drain_deadline_ms = bg_mono_ms() + wk->cfg->gateway.drain_timeout_ms;
    bg_server_stop(wk->server);
    bg_conn_drain_all(wk);
    bg_wk_check_drained(wk);
}

static void worker_reopen_logs(worker_state *w)
{
    char err[BG_ERR_LEN];

    /* Under seccomp opening a file for writing kills the process; without it we may. */
    if (w->wk.cfg->sandbox.seccomp) {
        bg_notice("log reopen: the sandboxed worker keeps its inherited log fd");
        return;
    }
    if (bg_log_reopen(err) != BG_OK)
        bg_error("cannot reopen the error log: %s", err);
}

static void worker_on_channel(bg_ev *loop, int fd, void *arg, int mask)
{
    worker_state *w = arg;
    char err[BG_ERR_LEN];
    bg_chan_msg m;
    int rc;

    (void)mask;
    while ((rc = bg_chan_recv(fd, &m, err)) == BG_OK) {
        if (m.cmd == BG_CHAN_QUIT_GRACEFUL)
            worker_drain(w);
        else if (m.cmd == BG_CHAN_REOPEN_LOGS)
            worker_reopen_logs(w);
        else
            bg_warn("channel: unexpected command %u", m.cmd);
    }
    if (rc == BG_ERR) {
        /* The master is gone (or the channel broke): nobody supervises us any more. */
        bg_error("channel to the master: %s; exiting", err);
        bg_ev_file_del(loop, fd, BG_EV_READABLE);
        w->exit_code = BG_WORKER_EXIT_RUNTIME;
        bg_ev_stop(loop);
    }
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

    if (bg_rt_protect_readonly(ctx->rt, err) != BG_OK)
        return BG_ERR;
    if ((wk->loop = bg_ev_new(err)) == NULL)
        return BG_ERR;
    if (bg_identity_init(&wk->identity, wk->cfg->identity.reserved_headers,
                         wk->cfg->identity.reserved_prefix, err) != BG_OK)
        return BG_ERR;
    worker_limits(wk);
    if (bg_random_bytes(&wk->id_prefix, sizeof(wk->id_prefix)) != BG_OK) {
        bg_set_error(err, "getrandom failed");
        return BG_ERR;
    }
    if (worker_bus_opts(w, err) != BG_OK)
        return BG_ERR;
    /* TLS files are loaded here, before the sandbox forbids opening them. */
    if ((wk->dispatch = bg_dispatch_new(wk, &w->bus, err)) == NULL)
        return BG_ERR;
    if ((wk->server = bg_server_new(wk, ctx->listen_fds, ctx->nlisten, err)) == NULL)
        return BG_ERR;
    if (bg_ev_file_add(wk->loop, ctx->channel_fd, BG_EV_READABLE, worker_on_channel, w, err) !=
        BG_OK)
        return BG_ERR;
    if ((w->tick = bg_ev_timer_add(wk->loop, WORKER_TICK_MS, worker_on_tick, w, err)) == NULL)
        return BG_ERR;
    return BG_OK;
}

static void worker_teardown(worker_state *w)
{
    bg_wk *wk = &w->wk;
    char err[BG_ERR_LEN];

    if (wk->loop == NULL)
        return;
    bg_server_free(wk->server);
    wk->server = NULL;
    bg_conn_close_all(wk);
    /* One more iteration flushes the CANCELs just queued for abandoned requests. */
    if (wk->dispatch != NULL && bg_ev_run_once(wk->loop, 0, err) < 0)
        bg_debug("final flush: %s", err);
    bg_dispatch_free(wk->dispatch);
    wk->dispatch = NULL;
    bg_ev_timer_del(wk->loop, w->tick);
    bg_ev_free(wk->loop);
    wk->loop = NULL;
}

int bg_worker_main(const bg_worker_ctx *ctx)
{
    worker_state *w = calloc(1, sizeof(*w));
    char err[BG_ERR_LEN];
    int code;

    if (w == NULL) {
        bg_crit("worker %d: out of memory", ctx->slot);
        return BG_WORKER_EXIT_RUNTIME;
    }
    w->wk.ctx = ctx;
    w->wk.cfg = ctx->cfg;
    signal(SIGPIPE, SIG_IGN); /* a client that leaves must not kill us mid-write */
    if (worker_setup(w, err) != BG_OK) {
        bg_error("worker %d: setup failed: %s", ctx->slot, err);
        w->exit_code = BG_WORKER_EXIT_RUNTIME;
        goto cleanup;
    }
    if (bg_sandbox_apply(ctx->cfg, err) != BG_OK) {
        bg_crit("worker %d: sandbox: %s", ctx->slot, err);
        w->exit_code = BG_WORKER_EXIT_CONFIG;
        goto cleanup;
    }
    bg_info("worker %d ready (generation %u, reply stream %s)", ctx->slot, ctx->generation,
            bg_dispatch_reply_key(w->wk.dispatch));
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
