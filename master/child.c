/* child.c: the worker side of fork(): drop what belongs to the master, then run bg_worker_main. */
#include <bsd/unistd.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "busgate/core/access_log.h"
#include "busgate/core/log.h"
#include "busgate/workers/worker.h"
#include "master.h"

static int fd_cmp(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

/* Closes every fd except keep[0..n): the master's epoll, signal and Valkey
 * sockets, other workers' channels, the pid file. hiredis sockets are not
 * close-on-exec, and this child never execs anyway. */
static void child_close_fds(int *keep, int n)
{
    unsigned first = 0;

    qsort(keep, (size_t)n, sizeof(int), fd_cmp);
    for (int i = 0; i < n; i++) {
        if (keep[i] < 0 || (unsigned)keep[i] < first)
            continue;
        if ((unsigned)keep[i] > first)
            close_range(first, (unsigned)keep[i] - 1, 0);
        first = (unsigned)keep[i] + 1;
    }
    close_range(first, ~0U, 0);
}

/* The worker must not outlive the master for long, nor die with it mid-answer: it
 * watches its channel, which closes when the master dies, then finishes what it holds
 * and exits (worker.c). So no PR_SET_PDEATHSIG, which could only kill. A master that
 * died before we got here closed the channel too, but check the parent anyway. */
/* worker_cpu_affinity auto: the lane-th CPU of those the master may use (round robin),
 * so a worker keeps its caches and its lane's connections stay on one core. */
static void child_pin(const bg_master *m, int lane)
{
    cpu_set_t allowed, one;
    int n, cpu;

    if (!m->cfg->gateway.cpu_affinity)
        return;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0 || (n = CPU_COUNT(&allowed)) < 1) {
        bg_warn("worker_cpu_affinity: sched_getaffinity(): %s", strerror(errno));
        return;
    }
    for (cpu = 0, n = lane % n;; cpu++) {
        if (CPU_ISSET(cpu, &allowed) && n-- == 0)
            break;
    }
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (sched_setaffinity(0, sizeof(one), &one) != 0)
        bg_warn("worker_cpu_affinity: CPU %d: %s", cpu, strerror(errno));
    else
        bg_info("bound to CPU %d", cpu);
}

static void child_check_parent(pid_t master)
{
    if (getppid() != master)
        _exit(BG_WORKER_EXIT_RUNTIME);
}

void bg_child_run(bg_master *m, int slot, int worker_chan)
{
    int keep[BG_MAX_LISTEN + 8], nkeep = 0, fds[BG_MAX_LISTEN], tls[BG_MAX_LISTEN], nfds;
    char ident[32];
    bg_worker_ctx ctx;

    bg_signals_reset();
    child_check_parent(m->pid);
    setproctitle("-%s", "busgate: worker process");
    snprintf(ident, sizeof(ident), "worker %d", slot);
    bg_log_set_ident(ident);
    child_pin(m, m->slots[slot].lane);
    nfds = bg_listen_fds(&m->listen, m->slots[slot].lane, fds, tls);
    for (int i = 0; i < nfds; i++)
        keep[nkeep++] = fds[i];
    keep[nkeep++] = STDIN_FILENO;
    keep[nkeep++] = STDOUT_FILENO;
    keep[nkeep++] = STDERR_FILENO;
    keep[nkeep++] = bg_log_fd();
    keep[nkeep++] = bg_access_log_fd(); /* -1 when off: skipped */
    keep[nkeep++] = worker_chan;
    child_close_fds(keep, nkeep);
    ctx = (bg_worker_ctx){.cfg = m->cfg,
                          .rt = m->rt,
                          .metrics = m->metrics,
                          .busview = m->busview,
                          .openapi = m->openapi,
                          .ratetable = m->ratetable,
                          .breaker = m->breaker,
                          .listen_fds = fds,
                          .listen_tls = tls,
                          .nlisten = nfds,
                          .tls = m->tls,
                          .channel_fd = worker_chan,
                          .slot = slot,
                          .generation = m->generation};
    _exit(bg_worker_main(&ctx));
}
