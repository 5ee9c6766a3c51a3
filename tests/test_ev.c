/* test_ev.c: the event loop: timer order and heap, fd readiness, removal in callbacks, stop,
 * wakeup. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "busgate/core/ev.h"

#define LOG_MAX 2048

typedef struct fire_log {
    int ids[LOG_MAX];
    int64_t at[LOG_MAX];
    int n;
} fire_log;

typedef struct tctx {
    fire_log *log;
    int id;
    int64_t due, due_hi;  /* bg_mono_ms bounds of its deadline (the clock may tick while adding) */
    int repeat;           /* how many more times to re-arm */
    int64_t every;        /* interval to return while repeating */
    bg_ev_timer **victim; /* a timer to delete from this callback */
    bg_ev_timer *self;
} tctx;

static bg_ev *new_loop(void)
{
    char err[BG_ERR_LEN] = "";
    bg_ev *loop = bg_ev_new(err);

    cr_assert_not_null(loop, "bg_ev_new: %s", err);
    return loop;
}

/* Run until cond() holds or limit_ms passes; bounded whatever happens. */
static void run_until(bg_ev *loop, int (*cond)(void *), void *arg, int64_t limit_ms)
{
    char err[BG_ERR_LEN] = "";
    int64_t end = bg_mono_ms() + limit_ms;

    while (!cond(arg) && bg_mono_ms() < end)
        cr_assert_neq(bg_ev_run_once(loop, 20, err), BG_ERR, "run_once: %s", err);
}

static int64_t record_fire(bg_ev *loop, bg_ev_timer *t, void *arg)
{
    tctx *c = arg;

    (void)t;
    cr_assert_lt(c->log->n, LOG_MAX);
    c->log->ids[c->log->n] = c->id;
    c->log->at[c->log->n++] = bg_mono_ms();
    if (c->victim != NULL && *c->victim != NULL) {
        bg_ev_timer_del(loop, *c->victim);
        *c->victim = NULL;
    }
    if (c->repeat > 0) {
        c->repeat--;
        c->due = bg_mono_ms() + c->every;
        return c->every;
    }
    return BG_EV_NOMORE;
}

static int timers_empty(void *arg)
{
    return bg_ev_timer_count(arg) == 0;
}

static bg_ev_timer *add_timer(bg_ev *loop, tctx *c, int64_t ms)
{
    char err[BG_ERR_LEN] = "";
    bg_ev_timer *t;

    c->due = bg_mono_ms() + ms;
    t = bg_ev_timer_add(loop, ms, record_fire, c, err);
    cr_assert_not_null(t, "timer_add: %s", err);
    c->due_hi = bg_mono_ms() + ms;
    c->self = t;
    return t;
}

Test(ev, timers_fire_in_deadline_order_ties_in_arm_order)
{
    bg_ev *loop = new_loop();
    fire_log log = {0};
    tctx c[5];
    int64_t delay[5] = {60, 20, 40, 20, 0};
    int expect[5] = {4, 1, 3, 2, 0};
    int i;

    for (i = 0; i < 5; i++) {
        c[i] = (tctx){.log = &log, .id = i};
        add_timer(loop, &c[i], delay[i]);
    }
    cr_assert_eq(bg_ev_timer_count(loop), 5);
    run_until(loop, timers_empty, loop, 5000);
    cr_assert_eq(log.n, 5);
    for (i = 0; i < 5; i++) {
        cr_expect_eq(log.ids[i], expect[i], "fire %d was timer %d", i, log.ids[i]);
        /* Never early on the monotonic clock (late is allowed: not a timing test). */
        cr_expect_geq(log.at[i], c[log.ids[i]].due);
    }
    bg_ev_free(loop);
}

Test(ev, periodic_timer_rearms_until_nomore)
{
    bg_ev *loop = new_loop();
    fire_log log = {0};
    tctx c = {.log = &log, .id = 7, .repeat = 3, .every = 5};

    add_timer(loop, &c, 5);
    run_until(loop, timers_empty, loop, 5000);
    cr_assert_eq(log.n, 4);
    cr_assert_eq(bg_ev_timer_count(loop), 0);
    bg_ev_free(loop);
}

Test(ev, timer_deleted_by_another_or_itself_never_fires_again)
{
    bg_ev *loop = new_loop();
    fire_log log = {0};
    tctx killer = {.log = &log, .id = 1}, victim = {.log = &log, .id = 2};
    tctx suicidal = {.log = &log, .id = 3};
    bg_ev_timer *vt;

    add_timer(loop, &killer, 5);
    vt = add_timer(loop, &victim, 30);
    killer.victim = &vt;
    /* Deletes itself while running, yet asks for a re-arm: deletion wins. */
    suicidal.repeat = 5;
    suicidal.every = 1;
    add_timer(loop, &suicidal, 10);
    suicidal.victim = &suicidal.self;
    run_until(loop, timers_empty, loop, 5000);
    cr_assert_eq(log.n, 2);
    cr_assert_eq(log.ids[0], 1);
    cr_assert_eq(log.ids[1], 3);
    cr_assert_null(vt);
    bg_ev_free(loop);
}

static int64_t zero_interval(bg_ev *loop, bg_ev_timer *t, void *arg)
{
    (void)loop;
    (void)t;
    ++*(int *)arg;
    return 0;
}

Test(ev, zero_interval_timer_fires_once_per_iteration)
{
    bg_ev *loop = new_loop();
    char err[BG_ERR_LEN] = "";
    int fired = 0, i;
    bg_ev_timer *t = bg_ev_timer_add(loop, 0, zero_interval, &fired, err);

    cr_assert_not_null(t);
    for (i = 1; i <= 5; i++) {
        cr_assert_eq(bg_ev_run_once(loop, 100, err), 1);
        cr_assert_eq(fired, i);
    }
    bg_ev_timer_del(loop, t);
    cr_assert_eq(bg_ev_timer_count(loop), 0);
    bg_ev_free(loop);
}

Test(ev, timer_reset_moves_deadline)
{
    bg_ev *loop = new_loop();
    fire_log log = {0};
    tctx a = {.log = &log, .id = 1}, b = {.log = &log, .id = 2};
    bg_ev_timer *ta = add_timer(loop, &a, 10);

    add_timer(loop, &b, 40);
    bg_ev_timer_reset(loop, ta, 80);
    a.due = bg_mono_ms() + 80;
    run_until(loop, timers_empty, loop, 5000);
    cr_assert_eq(log.n, 2);
    cr_assert_eq(log.ids[0], 2);
    cr_assert_eq(log.ids[1], 1);
    cr_assert_geq(log.at[1], a.due);
    bg_ev_free(loop);
}

/* Many timers with random deadlines, half deleted: the heap must fire the rest
 * in deadline order and never a deleted one. */
Test(ev, timer_heap_order_under_random_inserts_and_deletes)
{
    enum { N = 1000 };
    bg_ev *loop = new_loop();
    static fire_log log;
    static tctx c[N];
    static bg_ev_timer *t[N];
    int i, alive = 0;

    memset(&log, 0, sizeof(log));
    srand(12345);
    for (i = 0; i < N; i++) {
        c[i] = (tctx){.log = &log, .id = i};
        t[i] = add_timer(loop, &c[i], rand() % 50);
    }
    for (i = 0; i < N; i += 1 + rand() % 2) {
        bg_ev_timer_del(loop, t[i]);
        c[i].id = -1;
    }
    for (i = 0; i < N; i++)
        alive += c[i].id >= 0;
    cr_assert_eq(bg_ev_timer_count(loop), (size_t)alive);
    run_until(loop, timers_empty, loop, 10000);
    cr_assert_eq(log.n, alive);
    for (i = 0; i < log.n; i++) {
        cr_assert_geq(log.ids[i], 0, "a deleted timer fired");
        if (i > 0)
            cr_assert_geq(c[log.ids[i]].due_hi, c[log.ids[i - 1]].due, "out of order at %d", i);
    }
    bg_ev_free(loop);
}

/* ---- file events ---- */

typedef struct fctx {
    int calls, mask, fd_other;
    int del_self, del_other;
    char buf[16];
} fctx;

static void on_fd(bg_ev *loop, int fd, void *arg, int mask)
{
    fctx *f = arg;

    f->calls++;
    f->mask |= mask;
    if ((mask & BG_EV_READABLE) && read(fd, f->buf, sizeof(f->buf)) < 0)
        f->buf[0] = '\0';
    if (f->del_self)
        bg_ev_file_del(loop, fd, BG_EV_READABLE | BG_EV_WRITABLE);
    if (f->del_other)
        bg_ev_file_del(loop, f->fd_other, BG_EV_READABLE | BG_EV_WRITABLE);
}

static int make_pair(int sv[2])
{
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv);
}

Test(ev, fd_readable_and_writable)
{
    bg_ev *loop = new_loop();
    char err[BG_ERR_LEN] = "";
    fctx r = {0}, w = {0};
    int sv[2];

    cr_assert_eq(make_pair(sv), 0);
    cr_assert_eq(bg_ev_file_add(loop, sv[0], BG_EV_READABLE, on_fd, &r, err), BG_OK, "%s", err);
    cr_assert_eq(bg_ev_file_mask(loop, sv[0]), BG_EV_READABLE);
    bg_ev_run_once(loop, 0, err);
    cr_assert_eq(r.calls, 0, "not readable yet");
    cr_assert_eq(write(sv[1], "hi", 2), 2);
    bg_ev_run_once(loop, 1000, err);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.mask, BG_EV_READABLE);
    cr_assert_eq(memcmp(r.buf, "hi", 2), 0);

    cr_assert_eq(bg_ev_file_add(loop, sv[1], BG_EV_WRITABLE, on_fd, &w, err), BG_OK, "%s", err);
    bg_ev_run_once(loop, 1000, err);
    cr_assert_eq(w.calls, 1);
    cr_assert_eq(w.mask, BG_EV_WRITABLE);
    bg_ev_file_del(loop, sv[1], BG_EV_WRITABLE);
    cr_assert_eq(bg_ev_file_mask(loop, sv[1]), BG_EV_NONE);
    bg_ev_run_once(loop, 0, err);
    cr_assert_eq(w.calls, 1, "deleted handler ran");
    close(sv[0]);
    close(sv[1]);
    bg_ev_free(loop);
}

Test(ev, same_handler_both_directions_runs_once_per_event)
{
    bg_ev *loop = new_loop();
    char err[BG_ERR_LEN] = "";
    fctx f = {0};
    int sv[2];

    cr_assert_eq(make_pair(sv), 0);
    cr_assert_eq(write(sv[1], "x", 1), 1);
    cr_assert_eq(bg_ev_file_add(loop, sv[0], BG_EV_READABLE | BG_EV_WRITABLE, on_fd, &f, err),
                 BG_OK);
    f.del_self = 1;
    bg_ev_run_once(loop, 1000, err);
    cr_assert_eq(f.calls, 1);
    cr_assert_eq(f.mask, BG_EV_READABLE | BG_EV_WRITABLE);
    cr_assert_eq(bg_ev_file_mask(loop, sv[0]), BG_EV_NONE);
    close(sv[0]);
    close(sv[1]);
    bg_ev_free(loop);
}

/* Two fds ready in the same iteration; whichever runs first removes the
 * other, which must then not run. */
Test(ev, handler_removed_inside_another_callback_does_not_run)
{
    bg_ev *loop = new_loop();
    char err[BG_ERR_LEN] = "";
    fctx a = {0}, b = {0};
    int p[2], q[2];

    cr_assert_eq(make_pair(p), 0);
    cr_assert_eq(make_pair(q), 0);
    a.fd_other = q[0];
    b.fd_other = p[0];
    a.del_other = b.del_other = 1;
    cr_assert_eq(bg_ev_file_add(loop, p[0], BG_EV_READABLE, on_fd, &a, err), BG_OK);
    cr_assert_eq(bg_ev_file_add(loop, q[0], BG_EV_READABLE, on_fd, &b, err), BG_OK);
    cr_assert_eq(write(p[1], "1", 1), 1);
    cr_assert_eq(write(q[1], "2", 1), 1);
    bg_ev_run_once(loop, 1000, err);
    cr_assert_eq(a.calls + b.calls, 1, "a=%d b=%d", a.calls, b.calls);
    close(p[0]);
    close(p[1]);
    close(q[0]);
    close(q[1]);
    bg_ev_free(loop);
}

Test(ev, bad_fd_is_an_error)
{
    bg_ev *loop = new_loop();
    char err[BG_ERR_LEN] = "";
    fctx f = {0};

    cr_assert_eq(bg_ev_file_add(loop, 100000, BG_EV_READABLE, on_fd, &f, err), BG_ERR);
    cr_assert_neq(err[0], '\0');
    cr_assert_eq(bg_ev_file_add(loop, -1, BG_EV_READABLE, on_fd, &f, err), BG_ERR);
    bg_ev_free(loop);
}

/* ---- hooks, stop, wakeup ---- */

typedef struct hctx {
    int *order, *n, id;
    bg_ev_hook *self, **other;
} hctx;

static void on_hook(bg_ev *loop, void *arg)
{
    hctx *h = arg;

    h->order[(*h->n)++] = h->id;
    if (h->other != NULL && *h->other != NULL) {
        bg_ev_hook_del(loop, *h->other);
        *h->other = NULL;
    }
    if (h->self != NULL) {
        bg_ev_hook_del(loop, h->self);
        h->self = NULL;
    }
}

Test(ev, hooks_run_in_order_before_poll_and_can_remove_themselves)
{
    bg_ev *loop = new_loop();
    char err[BG_ERR_LEN] = "";
    int order[16], n = 0;
    hctx h1 = {.order = order, .n = &n, .id = 1};
    hctx h2 = {.order = order, .n = &n, .id = 2};
    hctx h3 = {.order = order, .n = &n, .id = 3};
    bg_ev_hook *k3;

    cr_assert_not_null(bg_ev_hook_add(loop, on_hook, &h1, err));
    h2.self = bg_ev_hook_add(loop, on_hook, &h2, err);
    k3 = bg_ev_hook_add(loop, on_hook, &h3, err);
    cr_assert_not_null(k3);
    bg_ev_run_once(loop, 0, err);
    cr_assert_eq(n, 3);
    cr_assert_eq(order[0], 1);
    cr_assert_eq(order[1], 2);
    cr_assert_eq(order[2], 3);
    h1.other = &k3; /* next time hook 1 removes hook 3 before it runs */
    bg_ev_run_once(loop, 0, err);
    cr_assert_eq(n, 4);
    cr_assert_eq(order[3], 1);
    bg_ev_free(loop);
}

static int64_t stop_timer(bg_ev *loop, bg_ev_timer *t, void *arg)
{
    (void)t;
    ++*(int *)arg;
    bg_ev_stop(loop);
    return 1000;
}

Test(ev, stop_ends_run_and_is_cleared)
{
    bg_ev *loop = new_loop();
    char err[BG_ERR_LEN] = "";
    int fired = 0;

    cr_assert_not_null(bg_ev_timer_add(loop, 5, stop_timer, &fired, err));
    cr_assert_eq(bg_ev_run(loop, err), BG_OK);
    cr_assert_eq(fired, 1);
    cr_assert_eq(bg_ev_stopped(loop), 0);
    /* A stop requested before run (e.g. a signal at start-up) is honoured. */
    bg_ev_stop(loop);
    cr_assert_eq(bg_ev_run(loop, err), BG_OK);
    cr_assert_eq(fired, 1);
    bg_ev_free(loop);
}

static void on_wake(bg_ev *loop, void *arg)
{
    ++*(int *)arg;
    bg_ev_stop(loop);
}

static void *wake_later(void *arg)
{
    usleep(20000);
    bg_ev_wakeup(arg);
    return NULL;
}

static int64_t fail_timer(bg_ev *loop, bg_ev_timer *t, void *arg)
{
    (void)t;
    ++*(int *)arg;
    bg_ev_stop(loop);
    return BG_EV_NOMORE;
}

Test(ev, wakeup_from_another_thread)
{
    bg_ev *loop = new_loop();
    char err[BG_ERR_LEN] = "";
    int woken = 0, timed_out = 0;
    pthread_t th;

    bg_ev_set_wakeup_handler(loop, on_wake, &woken);
    cr_assert_not_null(bg_ev_timer_add(loop, 10000, fail_timer, &timed_out, err));
    cr_assert_eq(pthread_create(&th, NULL, wake_later, loop), 0);
    cr_assert_eq(bg_ev_run(loop, err), BG_OK);
    pthread_join(th, NULL);
    cr_assert_eq(woken, 1);
    cr_assert_eq(timed_out, 0);
    bg_ev_free(loop);
}

static bg_ev *signal_loop;

static void on_sigusr1(int sig)
{
    (void)sig;
    bg_ev_wakeup(signal_loop);
}

Test(ev, wakeup_from_a_signal_handler)
{
    bg_ev *loop = new_loop();
    char err[BG_ERR_LEN] = "";
    struct sigaction sa = {0};
    int woken = 0, timed_out = 0;

    signal_loop = loop;
    sa.sa_handler = on_sigusr1;
    cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
    bg_ev_set_wakeup_handler(loop, on_wake, &woken);
    cr_assert_not_null(bg_ev_timer_add(loop, 10000, fail_timer, &timed_out, err));
    cr_assert_eq(raise(SIGUSR1), 0);
    cr_assert_eq(bg_ev_run(loop, err), BG_OK);
    cr_assert_eq(woken, 1);
    cr_assert_eq(timed_out, 0);
    cr_assert_geq(bg_ev_wakeup_fd(loop), 0);
    bg_ev_free(loop);
}
