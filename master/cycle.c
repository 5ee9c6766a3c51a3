/* cycle.c: the master loop: set up once, then flat "flag set -> clear -> act" blocks. */
#include <bsd/unistd.h>
#include <errno.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "busgate/core/access_log.h"
#include "busgate/core/channel.h"
#include "busgate/control/control.h"
#include "busgate/core/log.h"
#include "busgate/routing/breaker.h"
#include "busgate/routing/bus_view.h"
#include "busgate/routing/doc_shm.h"
#include "busgate/routing/rate_table.h"
#include "busgate/metrics/metrics.h"
#include "master.h"

static int cycle_create_rt(bg_master *m, char *err)
{
    bg_rt_limits lim = {.max_services = m->cfg->routing.max_services,
                        .max_connections = m->cfg->routing.max_connections,
                        .max_endpoints = m->cfg->routing.max_endpoints};

    /* Made before the first fork so every worker maps the same pages. */
    m->rt = bg_rt_create(&lim, err);
    if (m->rt == NULL)
        return BG_ERR;
    bg_info("routing table: %zu bytes of shared memory (%d services, %d connections, %d "
            "endpoints)",
            bg_rt_mapping_size(m->rt), lim.max_services, lim.max_connections, lim.max_endpoints);
    return BG_OK;
}

/* Made whether or not rules are set now: a reload may add rules, and the mapping is
 * sized once (rate_buckets needs a restart). */
static int cycle_create_ratetable(bg_master *m, char *err)
{
    m->ratetable = bg_rtab_create((size_t)m->cfg->ratelimit.buckets, err);
    if (m->ratetable == NULL)
        return BG_ERR;
    bg_info("rate limits: %d rule(s), %s mode; local table %zu bytes of shared memory (%zu "
            "buckets)",
            m->cfg->ratelimit.nrules,
            m->cfg->ratelimit.mode == BG_RATE_CLUSTER ? "cluster" : "local",
            bg_rtab_mapping_size(m->ratetable), bg_rtab_slots(m->ratetable));
    return BG_OK;
}

static int cycle_init(bg_master *m)
{
    char err[BG_ERR_LEN];

    m->pid = getpid();
    m->generation = 1;
    for (int i = 0; i < BG_MAX_WORKER_SLOTS; i++)
        m->slots[i].chan = -1;
    setproctitle("-%s", "busgate: master process");
    m->loop = bg_ev_new(err);
    if (m->loop == NULL || bg_signals_install(m->loop, err) != BG_OK)
        goto err;
    if (cycle_create_rt(m, err) != BG_OK)
        goto err;
    m->metrics = bg_metrics_create(BG_MAX_WORKER_SLOTS, err);
    if (m->metrics == NULL)
        goto err;
    m->control = bg_control_new(m->cfg, m->rt, m->loop, err);
    if (m->control == NULL)
        goto err;
    bg_control_set_metrics(m->control, m->metrics);
    m->busview = bg_bv_create(err);
    if (m->busview == NULL)
        goto err;
    bg_control_set_busview(m->control, m->busview);
    /* Sized once, like the routing table: [openapi] max_size needs a restart. */
    m->openapi = bg_doc_create(m->cfg->openapi.max_size, err);
    if (m->openapi == NULL)
        goto err;
    bg_control_set_openapi(m->control, m->openapi);
    if (cycle_create_ratetable(m, err) != BG_OK)
        goto err;
    /* Always made (128 KiB): a reload may turn the breakers on. */
    m->breaker = bg_brk_create(err);
    if (m->breaker == NULL)
        goto err;
    bg_control_set_breaker(m->control, m->breaker);
    if (bg_proc_spawn_generation(m, m->cfg->gateway.workers) == 0) {
        bg_crit("no worker started; stopping");
        return BG_ERR;
    }
    return BG_OK;
err:
    bg_crit("master setup failed: %s", err);
    return BG_ERR;
}

static void cycle_free(bg_master *m)
{
    bg_control_free(m->control);
    m->control = NULL;
    if (m->rt != NULL)
        bg_rt_destroy(m->rt);
    m->rt = NULL;
    if (m->metrics != NULL)
        bg_metrics_destroy(m->metrics);
    m->metrics = NULL;
    bg_bv_destroy(m->busview);
    m->busview = NULL;
    bg_doc_destroy(m->openapi);
    m->openapi = NULL;
    bg_rtab_destroy(m->ratetable);
    m->ratetable = NULL;
    bg_brk_destroy(m->breaker);
    m->breaker = NULL;
    if (m->loop != NULL)
        bg_ev_free(m->loop); /* frees the timers still armed */
    m->loop = NULL;
    m->deadline_timer = NULL;
}

/* kind 1: SIGTERM, graceful (drain); kind 2: SIGINT/SIGQUIT, fast. */
static void cycle_stop(bg_master *m, int kind)
{
    int64_t drain = m->cfg->gateway.drain_timeout_ms;

    if (m->stopping >= kind)
        return;
    m->stopping = kind;
    bg_reload_cancel(m);
    bg_proc_cancel_respawns(m);
    if (kind == 1) {
        bg_notice("graceful stop: %d workers draining for up to %lld ms", bg_proc_live(m),
                  (long long)drain);
        /* No generation follows: the master's copies of the listening sockets go first,
         * so that once every worker has taken its backlog and closed its own, new
         * clients are refused instead of queued and then reset at the last close. */
        bg_listen_close(&m->listen);
        bg_proc_quit_all_final(m, drain);
        return;
    }
    bg_notice("fast stop: %d workers", bg_proc_live(m));
    bg_proc_signal_all(m, SIGTERM, BG_FAST_STOP_MS);
}

/* SIGUSR1 (logrotate): the master reopens its files, then passes the new
 * descriptors to the workers, which may not open files under seccomp. */
static void cycle_reopen(bg_master *m)
{
    bg_chan_msg msg = {.cmd = BG_CHAN_REOPEN_LOGS};
    char err[BG_ERR_LEN];
    int fds[2], nfds = 0;

    if (bg_log_reopen(err) != BG_OK) {
        bg_error("cannot reopen the error log: %s", err);
    } else if (bg_log_fd() != STDERR_FILENO) {
        bg_notice("reopened the error log");
        msg.target_kind |= BG_CHAN_LOG_ERROR;
        fds[nfds++] = bg_log_fd();
    }
    if (bg_access_log_reopen(err) != BG_OK) {
        bg_error("cannot reopen the access log: %s", err);
    } else if (bg_access_log_fd() > STDERR_FILENO) {
        bg_notice("reopened the access log");
        msg.target_kind |= BG_CHAN_LOG_ACCESS;
        fds[nfds++] = bg_access_log_fd();
    }
    if (nfds > 0)
        bg_proc_broadcast(m, &msg, fds, nfds);
}

/* Without a working loop nothing can be awaited: SIGKILL and reap in place. */
static void cycle_kill_now(bg_master *m)
{
    m->stopping = 2;
    bg_proc_cancel_respawns(m);
    bg_proc_signal_all(m, SIGKILL, 0);
    while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
        ;
}

/* Acts on the flags the signal handlers set. Children first, so a reload or
 * stop sees the slot table as it is now. */
static void cycle_on_signals(bg_master *m)
{
    if (bg_sig.child) {
        bg_sig.child = 0;
        bg_proc_reap(m);
    }
    if (bg_sig.quit_fast) {
        bg_sig.quit_fast = 0;
        cycle_stop(m, 2);
    }
    if (bg_sig.terminate) {
        bg_sig.terminate = 0;
        cycle_stop(m, 1);
    }
    if (bg_sig.reopen) {
        bg_sig.reopen = 0;
        cycle_reopen(m);
    }
    if (bg_sig.reload) {
        bg_sig.reload = 0;
        if (m->stopping)
            bg_notice("reload ignored: stopping");
        else
            bg_master_reload(m);
    }
}

void bg_master_on_command(bg_master *m, int slot, const bg_chan_msg *msg)
{
    char err[BG_ERR_LEN];

    if (msg->cmd == BG_CHAN_READY) {
        bg_reload_on_ready(m, slot);
        return;
    }
    if (msg->cmd != BG_CHAN_RESYNC) {
        bg_warn("worker %d sent unknown command %u", slot, msg->cmd);
        return;
    }
    if (bg_control_resync(m->control, (int)msg->target_kind, msg->target, err) != BG_OK)
        bg_warn("resync requested by worker %d (target kind %u '%s') failed: %s", slot,
                msg->target_kind, msg->target, err);
    else
        bg_info("resync requested by worker %d (target kind %u '%s') sent", slot, msg->target_kind,
                msg->target);
}

int bg_master_run(bg_master *m)
{
    char err[BG_ERR_LEN];

    m->exit_code = 0;
    if (cycle_init(m) != BG_OK) {
        m->exit_code = 1;
        if (m->loop == NULL)
            return m->exit_code; /* nothing was started */
        cycle_stop(m, 2);
    }
    while (!(m->stopping && bg_proc_live(m) == 0)) {
        if (bg_ev_run_once(m->loop, -1, err) == BG_ERR) {
            bg_crit("event loop failed in the master: %s; killing the workers", err);
            m->exit_code = 1;
            cycle_kill_now(m);
            break;
        }
        cycle_on_signals(m);
    }
    bg_notice("exiting with code %d", m->exit_code);
    cycle_free(m);
    return m->exit_code;
}

void bg_master_log_lines(bg_log_level level, const char *prefix, const char *text)
{
    const char *line = text, *end;

    while (line != NULL && *line != '\0') {
        end = strchr(line, '\n');
        bg_log(level, "%s%.*s", prefix, end ? (int)(end - line) : (int)strlen(line), line);
        line = end ? end + 1 : NULL;
    }
}
