/* process_stop.c: stopping workers (channel first, signals as fallback), drain deadlines. */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "busgate/core/channel.h"
#include "busgate/core/log.h"
#include "master.h"

static int64_t stop_on_deadline(bg_ev *loop, bg_ev_timer *t, void *arg);

/* One timer for all drain deadlines, re-armed to the earliest one. */
static void stop_arm_deadline(bg_master *m)
{
    int64_t next = bg_proc_enforce_deadlines(m);
    char err[BG_ERR_LEN];

    if (m->deadline_timer != NULL) {
        bg_ev_timer_del(m->loop, m->deadline_timer);
        m->deadline_timer = NULL;
    }
    if (next < 0)
        return;
    m->deadline_timer = bg_ev_timer_add(m->loop, next, stop_on_deadline, m, err);
    if (m->deadline_timer == NULL)
        bg_error("cannot arm the drain deadline timer: %s", err);
}

static int64_t stop_on_deadline(bg_ev *loop, bg_ev_timer *t, void *arg)
{
    bg_master *m = arg;
    int64_t next = bg_proc_enforce_deadlines(m);

    (void)loop;
    (void)t;
    if (next >= 0)
        return next;
    m->deadline_timer = NULL;
    return BG_EV_NOMORE;
}

static void stop_mark(bg_slot *s, int64_t drain_ms)
{
    s->exiting = 1;
    s->deadline_ms = bg_mono_ms() + (drain_ms > 0 ? drain_ms : 0);
}

/* Graceful quit of one worker: over the channel, SIGTERM when that fails. */
static void stop_quit_one(bg_master *m, int i, int64_t drain_ms, bg_chan_cmd cmd)
{
    bg_slot *s = &m->slots[i];
    bg_chan_msg msg = {.cmd = cmd};
    char err[BG_ERR_LEN] = "no channel";

    if (s->chan < 0 || bg_chan_send(s->chan, &msg, err) != BG_OK) {
        bg_warn("cannot tell worker %d (pid %ld) to quit over its channel (%s); sending SIGTERM", i,
                (long)s->pid, err);
        if (kill(s->pid, SIGTERM) != 0)
            bg_error("kill(%ld, SIGTERM) failed: %s", (long)s->pid, strerror(errno));
    }
    stop_mark(s, drain_ms);
}

static void stop_quit_where(bg_master *m, unsigned generation, int64_t drain_ms, bg_chan_cmd cmd)
{
    for (int i = 0; i < BG_MAX_WORKER_SLOTS; i++) {
        bg_slot *s = &m->slots[i];

        if (s->state == BG_SLOT_FREE || (generation != 0 && s->generation >= generation))
            continue;
        if (s->state == BG_SLOT_WAITING) {
            bg_ev_timer_del(m->loop, s->respawn_timer);
            memset(s, 0, sizeof(*s));
            s->chan = -1;
        } else if (!s->exiting) {
            stop_quit_one(m, i, drain_ms, cmd);
        }
    }
    stop_arm_deadline(m);
}

void bg_proc_quit_older(bg_master *m, unsigned generation, int64_t drain_ms)
{
    stop_quit_where(m, generation, drain_ms, BG_CHAN_QUIT_GRACEFUL);
}

void bg_proc_quit_all_final(bg_master *m, int64_t drain_ms)
{
    stop_quit_where(m, 0, drain_ms, BG_CHAN_QUIT_FINAL);
}

void bg_proc_signal_all(bg_master *m, int sig, int64_t drain_ms)
{
    for (int i = 0; i < BG_MAX_WORKER_SLOTS; i++) {
        bg_slot *s = &m->slots[i];

        if (s->state != BG_SLOT_RUNNING)
            continue;
        if (kill(s->pid, sig) != 0 && errno != ESRCH)
            bg_error("kill(%ld, %s) failed: %s", (long)s->pid, strsignal(sig), strerror(errno));
        /* A shorter deadline wins: a fast stop during a drain does not wait for it. */
        if (!s->exiting || s->deadline_ms > bg_mono_ms() + drain_ms)
            stop_mark(s, drain_ms);
    }
    stop_arm_deadline(m);
}

void bg_proc_broadcast(bg_master *m, const bg_chan_msg *msg, const int *fds, int nfds)
{
    char err[BG_ERR_LEN];

    for (int i = 0; i < BG_MAX_WORKER_SLOTS; i++) {
        bg_slot *s = &m->slots[i];

        if (s->state != BG_SLOT_RUNNING || s->chan < 0)
            continue;
        if (bg_chan_send_fds(s->chan, msg, fds, nfds, err) != BG_OK)
            bg_warn("cannot send command %u to worker %d (pid %ld): %s", msg->cmd, i, (long)s->pid,
                    err);
    }
}

int64_t bg_proc_enforce_deadlines(bg_master *m)
{
    int64_t now = bg_mono_ms(), next = -1;

    for (int i = 0; i < BG_MAX_WORKER_SLOTS; i++) {
        bg_slot *s = &m->slots[i];

        if (s->state != BG_SLOT_RUNNING || !s->exiting || s->killed || s->deadline_ms == 0)
            continue;
        if (now >= s->deadline_ms) {
            bg_warn("worker %d (pid %ld) still running after the drain time; sending SIGKILL", i,
                    (long)s->pid);
            if (kill(s->pid, SIGKILL) != 0 && errno != ESRCH)
                bg_error("kill(%ld, SIGKILL) failed: %s", (long)s->pid, strerror(errno));
            s->killed = 1;
        } else if (next < 0 || s->deadline_ms - now < next) {
            next = s->deadline_ms - now;
        }
    }
    return next;
}

int bg_proc_live(const bg_master *m)
{
    int n = 0;

    for (int i = 0; i < BG_MAX_WORKER_SLOTS; i++)
        n += m->slots[i].state == BG_SLOT_RUNNING;
    return n;
}

void bg_proc_cancel_respawns(bg_master *m)
{
    for (int i = 0; i < BG_MAX_WORKER_SLOTS; i++) {
        bg_slot *s = &m->slots[i];

        if (s->state != BG_SLOT_WAITING)
            continue;
        bg_ev_timer_del(m->loop, s->respawn_timer);
        memset(s, 0, sizeof(*s));
        s->chan = -1;
    }
}
