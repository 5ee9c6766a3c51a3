/* reload.c: SIGHUP: re-read the ini, start a new worker generation, retire the old one. */
#include <stdlib.h>
#include <string.h>

#include "busgate/core/access_log.h"
#include "busgate/control/control.h"
#include "busgate/core/log.h"
#include "busgate/workers/worker.h"
#include "master.h"

#define RELOAD_ERRORS_LEN (64 * 1024)

/* Settings fixed for the life of the master: the shared mapping is sized once
 * and the consumer group and reply keys are named after the instance. */
static void reload_keep_fixed(const bg_config *cur, bg_config *next)
{
    if (memcmp(&cur->routing, &next->routing, sizeof(cur->routing)) != 0) {
        bg_warn("reload: [routing] capacities cannot change without a restart; keeping %d "
                "services, %d connections, %d endpoints",
                cur->routing.max_services, cur->routing.max_connections,
                cur->routing.max_endpoints);
        next->routing = cur->routing;
    }
    if (cur->ratelimit.buckets != next->ratelimit.buckets) {
        bg_warn("reload: [limits] rate_buckets cannot change without a restart; keeping %d",
                cur->ratelimit.buckets);
        next->ratelimit.buckets = cur->ratelimit.buckets;
    }
    if (strcmp(cur->gateway.instance_id, next->gateway.instance_id) != 0) {
        bg_warn("reload: instance_id cannot change without a restart; keeping '%s'",
                cur->gateway.instance_id);
        memcpy(next->gateway.instance_id, cur->gateway.instance_id,
               sizeof(next->gateway.instance_id));
    }
    if (cur->gateway.reuseport != next->gateway.reuseport) {
        bg_warn("reload: reuseport cannot change without a restart; keeping it %s",
                cur->gateway.reuseport ? "on" : "off");
        next->gateway.reuseport = cur->gateway.reuseport;
    }
    if (strcmp(cur->gateway.pid_file, next->gateway.pid_file) != 0) {
        bg_warn("reload: pid_file cannot change without a restart; keeping '%s'",
                cur->gateway.pid_file);
        memcpy(next->gateway.pid_file, cur->gateway.pid_file, sizeof(next->gateway.pid_file));
    }
}

/* The new workers inherit the access log from the master: open the new path
 * before they are forked. The older workers keep writing to their copy. */
static void reload_access_log(const bg_config *cur, bg_config *next)
{
    const char *path = next->gateway.access_log;
    char err[BG_ERR_LEN];

    if (strcmp(cur->gateway.access_log, path) == 0)
        return;
    if (bg_access_log_open(path, err) != BG_OK) {
        bg_error("reload: cannot open access_log %s (%s); the access log stays where it was", path,
                 err);
        /* So that the next reload tries the new path again. */
        memcpy(next->gateway.access_log, cur->gateway.access_log, sizeof(next->gateway.access_log));
        return;
    }
    bg_notice("reload: access log is now %s", path[0] != '\0' ? path : "off");
}

/* The master's own log follows the new file and level. */
static void reload_log(const bg_config *cur, bg_config *next)
{
    char err[BG_ERR_LEN];

    if (strcmp(cur->gateway.error_log, next->gateway.error_log) != 0) {
        if (bg_log_open(next->gateway.error_log, err) != BG_OK)
            bg_error("reload: cannot open error_log %s (%s); logging stays where it was",
                     next->gateway.error_log, err);
        else
            bg_notice("reload: error log is now %s", next->gateway.error_log);
    }
    bg_log_set_level(next->gateway.log_level);
    reload_access_log(cur, next);
}

/* Loads the file into a new config; on errors logs each and returns NULL. */
static bg_config *reload_load(const char *path)
{
    bg_config *next = malloc(sizeof(*next));
    char *errors = malloc(RELOAD_ERRORS_LEN);

    if (next == NULL || errors == NULL) {
        bg_error("reload: out of memory; keeping the running configuration");
        goto err;
    }
    if (bg_config_load(path, next, errors, RELOAD_ERRORS_LEN) != BG_OK) {
        bg_master_log_lines(BG_LOG_ERROR, "reload: ", errors);
        bg_error("reload: configuration file %s is invalid; keeping the running configuration",
                 path);
        goto err;
    }
    /* The workers read the key files; a file they could not use would leave no worker. */
    if (bg_worker_auth_check(next, errors) != BG_OK) {
        bg_error("reload: [auth]: %s; keeping the running configuration", errors);
        goto err;
    }
    free(errors);
    return next;
err:
    free(errors);
    free(next);
    return NULL;
}

/* Slots of the current generation: running, and ready among them. */
static void reload_count(const bg_master *m, int *running, int *ready)
{
    *running = *ready = 0;
    for (int i = 0; i < BG_MAX_WORKER_SLOTS; i++) {
        const bg_slot *s = &m->slots[i];

        if (s->state != BG_SLOT_RUNNING || s->generation != m->generation)
            continue;
        (*running)++;
        *ready += s->ready;
    }
}

static void reload_retire(bg_master *m)
{
    bg_reload_cancel(m);
    bg_proc_quit_older(m, m->generation, m->cfg->gateway.drain_timeout_ms);
}

/* The new generation had its time: retire the old one unless nothing of the
 * new one survived (a fatal configuration), in which case the old one serves on. */
static int64_t reload_on_ready_timeout(bg_ev *loop, bg_ev_timer *t, void *arg)
{
    bg_master *m = arg;
    int running, ready;

    (void)loop;
    (void)t;
    m->retire_timer = NULL;
    reload_count(m, &running, &ready);
    if (running == 0) {
        bg_crit("reload: no worker of generation %u is running; the older workers keep serving",
                m->generation);
        return BG_EV_NOMORE;
    }
    bg_warn("reload: %d of %d workers of generation %u reported ready in time; retiring the "
            "older workers anyway",
            ready, m->cfg->gateway.workers, m->generation);
    bg_proc_quit_older(m, m->generation, m->cfg->gateway.drain_timeout_ms);
    return BG_EV_NOMORE;
}

void bg_reload_on_ready(bg_master *m, int slot)
{
    int running, ready;

    m->slots[slot].ready = 1;
    bg_info("worker %d (pid %ld) is ready", slot, (long)m->slots[slot].pid);
    if (m->retire_timer == NULL || m->slots[slot].generation != m->generation)
        return;
    reload_count(m, &running, &ready);
    if (ready < m->cfg->gateway.workers)
        return;
    bg_notice("reload: generation %u ready; retiring the older workers", m->generation);
    reload_retire(m);
}

void bg_reload_cancel(bg_master *m)
{
    if (m->retire_timer != NULL)
        bg_ev_timer_del(m->loop, m->retire_timer);
    m->retire_timer = NULL;
}

/* Old workers keep serving until the new ones can: a new worker that cannot
 * reach the bus would otherwise answer 503 in their place. */
static void reload_retire_when_ready(bg_master *m)
{
    int64_t wait = m->cfg->valkey.connect_timeout_ms + BG_RELOAD_READY_SLACK_MS;
    char err[BG_ERR_LEN];

    bg_reload_cancel(m);
    m->retire_timer = bg_ev_timer_add(m->loop, wait, reload_on_ready_timeout, m, err);
    if (m->retire_timer == NULL) {
        bg_error("reload: cannot arm the readiness timer (%s); retiring the older workers now",
                 err);
        bg_proc_quit_older(m, m->generation, m->cfg->gateway.drain_timeout_ms);
    }
}

void bg_master_reload(bg_master *m)
{
    char err[BG_ERR_LEN];
    bg_config *next, *cur = m->cfg;
    SSL_CTX *tls;

    bg_notice("reload: reading %s", cur->path);
    next = reload_load(cur->path);
    if (next == NULL)
        return;
    reload_keep_fixed(cur, next);
    /* Renewed certificates are read here; the new workers serve with them while the
     * older ones finish their connections with the context they were forked with. */
    if (bg_master_tls_load(next, &tls, err) != BG_OK) {
        bg_error("reload: %s; keeping the running configuration", err);
        free(next);
        return;
    }
    if (bg_listen_update(&m->listen, next, err) != BG_OK) {
        bg_error("reload: %s; keeping the running configuration", err);
        SSL_CTX_free(tls);
        free(next);
        return;
    }
    reload_log(cur, next);
    if (bg_control_reconfigure(m->control, next, err) != BG_OK)
        bg_error("reload: control plane: %s", err);
    m->cfg = next;
    SSL_CTX_free(m->tls); /* workers forked with it keep their own copy */
    m->tls = tls;
    m->generation++;
    free(cur);
    if (bg_proc_spawn_generation(m, next->gateway.workers) == 0) {
        bg_error("reload: no worker of generation %u started; the older workers keep serving",
                 m->generation);
        return;
    }
    bg_notice("reload: generation %u started with %d workers; older workers retire when it is "
              "ready and drain for up to %lld ms",
              m->generation, next->gateway.workers, (long long)next->gateway.drain_timeout_ms);
    reload_retire_when_ready(m);
}
