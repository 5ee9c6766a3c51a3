/* process.c: the worker slot table: spawn, reap, log the exit, respawn with backoff. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "busgate/core/channel.h"
#include "busgate/core/log.h"
#include "busgate/metrics/metrics.h"
#include "busgate/workers/worker.h"
#include "master.h"

static void proc_on_channel(bg_ev *loop, int fd, void *arg, int mask);
static int64_t proc_on_respawn(bg_ev *loop, bg_ev_timer *t, void *arg);

static int slot_by_pid(const bg_master *m, pid_t pid)
{
    for (int i = 0; i < BG_MAX_WORKER_SLOTS; i++) {
        if (m->slots[i].state == BG_SLOT_RUNNING && m->slots[i].pid == pid)
            return i;
    }
    return -1;
}

static void slot_close_channel(bg_master *m, bg_slot *s)
{
    if (s->chan < 0)
        return;
    bg_ev_file_del(m->loop, s->chan, BG_EV_READABLE);
    close(s->chan);
    s->chan = -1;
}

static void slot_free(bg_master *m, bg_slot *s)
{
    slot_close_channel(m, s);
    if (s->respawn_timer != NULL)
        bg_ev_timer_del(m->loop, s->respawn_timer);
    memset(s, 0, sizeof(*s));
    s->chan = -1;
}

static int proc_free_slots(const bg_master *m)
{
    int n = 0;

    for (int i = 0; i < BG_MAX_WORKER_SLOTS; i++)
        n += m->slots[i].state == BG_SLOT_FREE;
    return n;
}

/* Parent side of a successful fork(): the slot now holds the process. */
static int proc_adopt(bg_master *m, int i, pid_t pid, int chan)
{
    bg_slot *s = &m->slots[i];
    char err[BG_ERR_LEN];

    s->state = BG_SLOT_RUNNING;
    s->pid = pid;
    s->chan = chan;
    s->generation = m->generation;
    s->exiting = s->killed = s->ready = 0;
    s->started_ms = bg_mono_ms();
    s->deadline_ms = 0;
    if (bg_ev_file_add(m->loop, chan, BG_EV_READABLE, proc_on_channel, m, err) != BG_OK) {
        /* The worker still runs; it only cannot send admin commands. */
        bg_error("cannot watch the channel of worker %d (pid %ld): %s", i, (long)pid, err);
    }
    bg_info("started worker %d (pid %ld, generation %u)", i, (long)pid, m->generation);
    return BG_OK;
}

/* Forks the worker for slot i. Signals stay blocked across fork() so that
 * the child never runs the master's handlers. */
static int proc_spawn(bg_master *m, int i)
{
    char err[BG_ERR_LEN];
    int ch[2];
    sigset_t all, old;
    pid_t pid;

    if (bg_chan_open(ch, err) != BG_OK) {
        bg_error("cannot spawn worker %d: %s", i, err);
        return BG_ERR;
    }
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid = fork();
    if (pid == 0) {
        close(ch[0]);
        bg_child_run(m, i, ch[1]);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(ch[1]);
    if (pid < 0) {
        bg_error("fork() failed while spawning worker %d: %s", i, strerror(errno));
        close(ch[0]);
        return BG_ERR;
    }
    return proc_adopt(m, i, pid, ch[0]);
}

int bg_proc_spawn_generation(bg_master *m, int n)
{
    int started = 0;

    for (int i = 0; i < BG_MAX_WORKER_SLOTS && started < n; i++) {
        if (m->slots[i].state != BG_SLOT_FREE)
            continue;
        m->slots[i].lane = started; /* kept by its respawns */
        if (proc_spawn(m, i) != BG_OK)
            break;
        started++;
    }
    if (started < n)
        bg_error("%d of %d workers of generation %u started (%d slots in use or fork failed)",
                 started, n, m->generation, BG_MAX_WORKER_SLOTS - proc_free_slots(m));
    return started;
}

/* Delay before the next respawn of slot s, from how long its process lived. */
static int64_t proc_backoff(bg_slot *s, int64_t now)
{
    int64_t delay;

    if (now - s->started_ms >= BG_RESPAWN_QUICK_MS) {
        s->quick_deaths = 0;
        return 0;
    }
    s->quick_deaths++;
    delay = BG_RESPAWN_BASE_MS;
    for (int k = 1; k < s->quick_deaths && delay < BG_RESPAWN_MAX_MS; k++)
        delay *= 2;
    return delay < BG_RESPAWN_MAX_MS ? delay : BG_RESPAWN_MAX_MS;
}

/* Arms the respawn of slot i after delay ms (0: at the next loop iteration). */
static void proc_schedule_respawn(bg_master *m, int i, int64_t delay)
{
    bg_slot *s = &m->slots[i];
    char err[BG_ERR_LEN];

    s->state = BG_SLOT_WAITING;
    s->pid = 0;
    s->respawn_timer = bg_ev_timer_add(m->loop, delay, proc_on_respawn, m, err);
    if (s->respawn_timer == NULL) {
        bg_error("cannot arm the respawn of worker %d: %s; slot left empty", i, err);
        slot_free(m, s);
    }
}

static int64_t proc_on_respawn(bg_ev *loop, bg_ev_timer *t, void *arg)
{
    bg_master *m = arg;
    int i;

    (void)loop;
    for (i = 0; i < BG_MAX_WORKER_SLOTS && m->slots[i].respawn_timer != t; i++)
        ;
    if (i == BG_MAX_WORKER_SLOTS)
        return BG_EV_NOMORE;
    m->slots[i].respawn_timer = NULL; /* the loop drops the timer on NOMORE */
    if (proc_spawn(m, i) == BG_OK) {
        bg_metrics_count(m->metrics, BG_METRICS_MASTER_SLOT, BG_METRIC_WORKER_RESTARTS, 1);
        return BG_EV_NOMORE;
    }
    m->slots[i].started_ms = bg_mono_ms(); /* a failed fork counts as a quick death */
    proc_schedule_respawn(m, i, proc_backoff(&m->slots[i], bg_mono_ms()));
    return BG_EV_NOMORE;
}

/* "exited with code 1", "exited on signal 9", "killed by SIGSYS: seccomp violation" */
static void proc_describe(int status, char *buf, size_t len)
{
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS)
        snprintf(buf, len, "killed by SIGSYS: seccomp violation");
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "exited on signal %d%s", WTERMSIG(status),
                 WCOREDUMP(status) ? " (core dumped)" : "");
    else if (WEXITSTATUS(status) == BG_WORKER_EXIT_CONFIG)
        snprintf(buf, len, "exited with code %d (fatal configuration error)", WEXITSTATUS(status));
    else
        snprintf(buf, len, "exited with code %d", WEXITSTATUS(status));
}

/* A worker told to stop that ended cleanly is routine; anything else is not. */
static bg_log_level proc_exit_level(const bg_slot *s, int status)
{
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS)
        return BG_LOG_ERROR;
    if (WIFEXITED(status) && WEXITSTATUS(status) == BG_WORKER_EXIT_CONFIG)
        return BG_LOG_CRIT;
    if (s->exiting && !s->killed && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return BG_LOG_INFO;
    if (s->exiting && (WIFEXITED(status) || WTERMSIG(status) == SIGTERM))
        return BG_LOG_NOTICE;
    return s->exiting ? BG_LOG_WARN : BG_LOG_ERROR;
}

/* Whether the slot gets a new process: not when it was told to stop, belongs
 * to an old generation, the master is stopping, or the config is fatal. */
static int proc_wants_respawn(const bg_master *m, const bg_slot *s, int status)
{
    if (s->exiting || m->stopping || s->generation != m->generation)
        return 0;
    return !(WIFEXITED(status) && WEXITSTATUS(status) == BG_WORKER_EXIT_CONFIG);
}

/* Slots of the current generation that run or wait for a respawn. */
static int proc_current(const bg_master *m)
{
    int n = 0;

    for (int i = 0; i < BG_MAX_WORKER_SLOTS; i++)
        n += m->slots[i].state != BG_SLOT_FREE && m->slots[i].generation == m->generation;
    return n;
}

static void proc_on_exit(bg_master *m, int i, int status)
{
    bg_slot *s = &m->slots[i];
    bg_log_level level = proc_exit_level(s, status);
    pid_t pid = s->pid;
    char how[128];
    int64_t delay;

    proc_describe(status, how, sizeof(how));
    slot_close_channel(m, s);
    /* A dead worker cannot take back what it had in flight. */
    bg_metrics_slot_reset(m->metrics, i);
    if (!proc_wants_respawn(m, s, status)) {
        int fatal = WIFEXITED(status) && WEXITSTATUS(status) == BG_WORKER_EXIT_CONFIG;

        bg_log(level, "worker %d (pid %ld) %s%s", i, (long)pid, how,
               fatal && !s->exiting && !m->stopping ? "; not respawning" : "");
        slot_free(m, s);
        if (fatal && !m->stopping && proc_current(m) == 0)
            bg_crit("no worker of generation %u left running: fix the configuration and reload "
                    "(SIGHUP)",
                    m->generation);
        return;
    }
    delay = proc_backoff(s, bg_mono_ms());
    if (delay > 0)
        bg_log(level, "worker %d (pid %ld) %s; respawning in %lld ms", i, (long)pid, how,
               (long long)delay);
    else
        bg_log(level, "worker %d (pid %ld) %s; respawning", i, (long)pid, how);
    proc_schedule_respawn(m, i, delay);
}

void bg_proc_reap(bg_master *m)
{
    for (;;) {
        int status, i;
        pid_t pid = waitpid(-1, &status, WNOHANG);

        if (pid == 0)
            return;
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid < 0) {
            if (errno != ECHILD)
                bg_error("waitpid() failed: %s", strerror(errno));
            return;
        }
        i = slot_by_pid(m, pid);
        if (i < 0) {
            bg_warn("reaped unknown child process %ld", (long)pid);
            continue;
        }
        proc_on_exit(m, i, status);
    }
}

static void proc_on_channel(bg_ev *loop, int fd, void *arg, int mask)
{
    bg_master *m = arg;
    char err[BG_ERR_LEN];
    bg_chan_msg msg;
    int i, rc;

    (void)loop;
    (void)mask;
    for (i = 0; i < BG_MAX_WORKER_SLOTS && m->slots[i].chan != fd; i++)
        ;
    if (i == BG_MAX_WORKER_SLOTS) {
        bg_ev_file_del(m->loop, fd, BG_EV_READABLE);
        return;
    }
    while ((rc = bg_chan_recv(fd, &msg, err)) == BG_OK)
        bg_master_on_command(m, i, &msg);
    if (rc == BG_ERR) {
        /* End of file: the worker is gone; SIGCHLD brings the reaping. */
        if (strcmp(err, "channel closed") != 0)
            bg_warn("channel of worker %d (pid %ld): %s", i, (long)m->slots[i].pid, err);
        slot_close_channel(m, &m->slots[i]);
    }
}
