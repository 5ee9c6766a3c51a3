/* ev.c: the epoll event loop: fd handlers, a timer heap on the monotonic clock, hooks, wakeup. */
#include "busgate/core/ev.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define EV_MAX_EVENTS 256
#define EV_NOT_QUEUED ((size_t)-1)

typedef struct ev_file {
    int mask;
    bg_ev_file_fn *rfn, *wfn;
    void *arg;
} ev_file;

struct bg_ev_timer {
    int64_t when; /* bg_mono_ms() deadline */
    uint64_t seq; /* arm order: breaks ties, tells this pass's re-arms apart */
    size_t index; /* slot in the heap, EV_NOT_QUEUED when out of it */
    int running, deleted;
    bg_ev_timer_fn *fn;
    void *arg;
};

struct bg_ev_hook {
    bg_ev_hook_fn *fn;
    void *arg;
    int deleted;
    struct bg_ev_hook *next;
};

struct bg_ev {
    int epfd, wakefd;
    ev_file *files; /* indexed by fd */
    int nfiles;
    struct epoll_event events[EV_MAX_EVENTS];
    bg_ev_timer **heap; /* binary min-heap on (when, seq) */
    size_t nheap, capheap;
    uint64_t seq;
    bg_ev_hook *hooks;
    int hooks_running, hooks_dirty;
    bg_ev_hook_fn *wake_fn;
    void *wake_arg;
    volatile sig_atomic_t stop;
};

/* ---- timer heap ---- */

static int timer_before(const bg_ev_timer *a, const bg_ev_timer *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void heap_place(bg_ev *loop, size_t i, bg_ev_timer *t)
{
    loop->heap[i] = t;
    t->index = i;
}

static void heap_sift_up(bg_ev *loop, size_t i)
{
    bg_ev_timer *t = loop->heap[i];

    while (i > 0 && timer_before(t, loop->heap[(i - 1) / 2])) {
        heap_place(loop, i, loop->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_place(loop, i, t);
}

static void heap_sift_down(bg_ev *loop, size_t i)
{
    bg_ev_timer *t = loop->heap[i];

    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= loop->nheap)
            break;
        if (c + 1 < loop->nheap && timer_before(loop->heap[c + 1], loop->heap[c]))
            c++;
        if (!timer_before(loop->heap[c], t))
            break;
        heap_place(loop, i, loop->heap[c]);
        i = c;
    }
    heap_place(loop, i, t);
}

static int heap_push(bg_ev *loop, bg_ev_timer *t)
{
    if (loop->nheap == loop->capheap) {
        size_t cap = loop->capheap ? loop->capheap * 2 : 16;
        bg_ev_timer **h = realloc(loop->heap, cap * sizeof(*h));
        if (h == NULL)
            return BG_ERR;
        loop->heap = h;
        loop->capheap = cap;
    }
    heap_place(loop, loop->nheap++, t);
    heap_sift_up(loop, t->index);
    return BG_OK;
}

static void heap_remove(bg_ev *loop, bg_ev_timer *t)
{
    size_t i = t->index;
    bg_ev_timer *last;

    if (i == EV_NOT_QUEUED)
        return;
    t->index = EV_NOT_QUEUED;
    last = loop->heap[--loop->nheap];
    if (last == t)
        return;
    heap_place(loop, i, last);
    heap_sift_up(loop, i);
    heap_sift_down(loop, last->index);
}

/* Re-position t after its deadline changed. */
static void timer_arm(bg_ev *loop, bg_ev_timer *t, int64_t ms)
{
    t->when = bg_mono_ms() + (ms > 0 ? ms : 0);
    t->seq = loop->seq++;
    heap_sift_up(loop, t->index);
    heap_sift_down(loop, t->index);
}

bg_ev_timer *bg_ev_timer_add(bg_ev *loop, int64_t ms, bg_ev_timer_fn *fn, void *arg, char *err)
{
    bg_ev_timer *t = calloc(1, sizeof(*t));

    if (t == NULL) {
        bg_set_error(err, "timer: out of memory");
        return NULL;
    }
    t->fn = fn;
    t->arg = arg;
    t->when = bg_mono_ms() + (ms > 0 ? ms : 0);
    t->seq = loop->seq++;
    if (heap_push(loop, t) != BG_OK) {
        free(t);
        bg_set_error(err, "timer heap: out of memory");
        return NULL;
    }
    return t;
}

void bg_ev_timer_del(bg_ev *loop, bg_ev_timer *t)
{
    if (t == NULL)
        return;
    heap_remove(loop, t);
    /* A running timer is freed by the dispatcher once its callback returns. */
    if (t->running)
        t->deleted = 1;
    else
        free(t);
}

void bg_ev_timer_reset(bg_ev *loop, bg_ev_timer *t, int64_t ms)
{
    if (t->index == EV_NOT_QUEUED)
        return;
    timer_arm(loop, t, ms);
}

size_t bg_ev_timer_count(const bg_ev *loop)
{
    return loop->nheap;
}

/* Fire the timers due now. Timers armed during this pass (seq >= pass) wait
 * for the next iteration, so an interval of 0 cannot starve the poll. */
static int ev_process_timers(bg_ev *loop)
{
    uint64_t pass = loop->seq;
    int64_t now = bg_mono_ms();
    int fired = 0;

    while (loop->nheap > 0) {
        bg_ev_timer *t = loop->heap[0];
        int64_t next;

        if (t->when > now || t->seq >= pass)
            break;
        t->running = 1;
        next = t->fn(loop, t, t->arg);
        t->running = 0;
        fired++;
        if (t->deleted || next < 0) {
            heap_remove(loop, t);
            free(t);
            continue;
        }
        timer_arm(loop, t, next);
    }
    return fired;
}

/* ---- file events ---- */

static int ev_files_grow(bg_ev *loop, int fd, char *err)
{
    int n = loop->nfiles ? loop->nfiles : 64;
    ev_file *f;

    while (n <= fd)
        n *= 2;
    f = realloc(loop->files, (size_t)n * sizeof(*f));
    if (f == NULL) {
        bg_set_error(err, "event loop: out of memory for fd %d", fd);
        return BG_ERR;
    }
    memset(f + loop->nfiles, 0, (size_t)(n - loop->nfiles) * sizeof(*f));
    loop->files = f;
    loop->nfiles = n;
    return BG_OK;
}

static uint32_t ev_epoll_bits(int mask)
{
    return ((mask & BG_EV_READABLE) ? EPOLLIN : 0) | ((mask & BG_EV_WRITABLE) ? EPOLLOUT : 0);
}

int bg_ev_file_add(bg_ev *loop, int fd, int mask, bg_ev_file_fn *fn, void *arg, char *err)
{
    struct epoll_event ee = {0};
    int old, op;

    if (fd < 0) {
        bg_set_error(err, "event loop: bad fd %d", fd);
        return BG_ERR;
    }
    if (fd >= loop->nfiles && ev_files_grow(loop, fd, err) != BG_OK)
        return BG_ERR;
    old = loop->files[fd].mask;
    /* ADD the first time the fd is watched, MOD once it is in the set. */
    op = old == BG_EV_NONE ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    ee.events = ev_epoll_bits(old | mask);
    ee.data.fd = fd;
    if ((old | mask) != old && epoll_ctl(loop->epfd, op, fd, &ee) != 0) {
        bg_set_error(err, "epoll_ctl(fd %d): %s", fd, strerror(errno));
        return BG_ERR;
    }
    loop->files[fd].mask = old | mask;
    loop->files[fd].arg = arg;
    if (mask & BG_EV_READABLE)
        loop->files[fd].rfn = fn;
    if (mask & BG_EV_WRITABLE)
        loop->files[fd].wfn = fn;
    return BG_OK;
}

void bg_ev_file_del(bg_ev *loop, int fd, int mask)
{
    struct epoll_event ee = {0};
    ev_file *fe;
    int left;

    if (fd < 0 || fd >= loop->nfiles || (loop->files[fd].mask & mask) == 0)
        return;
    fe = &loop->files[fd];
    left = fe->mask & ~mask;
    ee.events = ev_epoll_bits(left);
    ee.data.fd = fd;
    /* Failure here only means the fd was closed first, which already took it
     * out of the epoll set: nothing is left to undo. */
    (void)epoll_ctl(loop->epfd, left ? EPOLL_CTL_MOD : EPOLL_CTL_DEL, fd, &ee);
    fe->mask = left;
    if (!(left & BG_EV_READABLE))
        fe->rfn = NULL;
    if (!(left & BG_EV_WRITABLE))
        fe->wfn = NULL;
}

int bg_ev_file_mask(const bg_ev *loop, int fd)
{
    if (fd < 0 || fd >= loop->nfiles)
        return BG_EV_NONE;
    return loop->files[fd].mask;
}

/* Re-read loop->files after each callback: it may have grown (realloc) or the
 * handler may have been removed. */
static int ev_dispatch_one(bg_ev *loop, const struct epoll_event *e)
{
    int fd = e->data.fd, fired = 0, mask = 0;
    bg_ev_file_fn *rfn = NULL;

    if (e->events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        mask |= BG_EV_READABLE;
    if (e->events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
        mask |= BG_EV_WRITABLE;
    if (fd >= loop->nfiles)
        return 0;
    if (loop->files[fd].mask & mask & BG_EV_READABLE) {
        rfn = loop->files[fd].rfn;
        rfn(loop, fd, loop->files[fd].arg, mask & loop->files[fd].mask);
        fired++;
    }
    if (fd < loop->nfiles && (loop->files[fd].mask & mask & BG_EV_WRITABLE) &&
        (!fired || loop->files[fd].wfn != rfn)) {
        loop->files[fd].wfn(loop, fd, loop->files[fd].arg, mask & loop->files[fd].mask);
        fired++;
    }
    return fired;
}

/* ---- hooks ---- */

bg_ev_hook *bg_ev_hook_add(bg_ev *loop, bg_ev_hook_fn *fn, void *arg, char *err)
{
    bg_ev_hook *h = calloc(1, sizeof(*h)), **tail = &loop->hooks;

    if (h == NULL) {
        bg_set_error(err, "hook: out of memory");
        return NULL;
    }
    h->fn = fn;
    h->arg = arg;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = h;
    return h;
}

static void ev_hooks_sweep(bg_ev *loop)
{
    bg_ev_hook **p = &loop->hooks;

    while (*p != NULL) {
        bg_ev_hook *h = *p;
        if (h->deleted) {
            *p = h->next;
            free(h);
        } else {
            p = &h->next;
        }
    }
    loop->hooks_dirty = 0;
}

void bg_ev_hook_del(bg_ev *loop, bg_ev_hook *h)
{
    if (h == NULL)
        return;
    /* Unlinking while the list is walked would break the walk: sweep later. */
    h->deleted = 1;
    loop->hooks_dirty = 1;
    if (!loop->hooks_running)
        ev_hooks_sweep(loop);
}

static int ev_run_hooks(bg_ev *loop)
{
    bg_ev_hook *h;
    int ran = 0;

    loop->hooks_running = 1;
    for (h = loop->hooks; h != NULL; h = h->next) {
        if (h->deleted)
            continue;
        h->fn(loop, h->arg);
        ran++;
    }
    loop->hooks_running = 0;
    if (loop->hooks_dirty)
        ev_hooks_sweep(loop);
    return ran;
}

/* ---- wakeup ---- */

void bg_ev_wakeup(bg_ev *loop)
{
    uint64_t one = 1;
    int saved = errno;

    /* The only possible failure is EAGAIN (counter saturated): the loop wakes
     * anyway. errno is restored because a signal handler may call this. */
    if (write(loop->wakefd, &one, sizeof(one)) < 0)
        errno = saved;
}

int bg_ev_wakeup_fd(const bg_ev *loop)
{
    return loop->wakefd;
}

void bg_ev_set_wakeup_handler(bg_ev *loop, bg_ev_hook_fn *fn, void *arg)
{
    loop->wake_fn = fn;
    loop->wake_arg = arg;
}

static void ev_on_wakeup(bg_ev *loop, int fd, void *arg, int mask)
{
    uint64_t count;

    (void)arg;
    (void)mask;
    /* Drain so level-triggered epoll stops reporting it; EAGAIN = already drained. */
    if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
        return;
    if (loop->wake_fn != NULL)
        loop->wake_fn(loop, loop->wake_arg);
}

/* ---- loop ---- */

bg_ev *bg_ev_new(char *err)
{
    bg_ev *loop = calloc(1, sizeof(*loop));

    if (loop == NULL) {
        bg_set_error(err, "event loop: out of memory");
        return NULL;
    }
    loop->wakefd = -1;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        bg_set_error(err, "epoll_create1: %s", strerror(errno));
        goto err;
    }
    loop->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->wakefd < 0) {
        bg_set_error(err, "eventfd: %s", strerror(errno));
        goto err;
    }
    if (bg_ev_file_add(loop, loop->wakefd, BG_EV_READABLE, ev_on_wakeup, NULL, err) != BG_OK)
        goto err;
    return loop;
err:
    bg_ev_free(loop);
    return NULL;
}

void bg_ev_free(bg_ev *loop)
{
    size_t i;

    if (loop == NULL)
        return;
    for (i = 0; i < loop->nheap; i++)
        free(loop->heap[i]);
    free(loop->heap);
    while (loop->hooks != NULL) {
        bg_ev_hook *h = loop->hooks;
        loop->hooks = h->next;
        free(h);
    }
    if (loop->wakefd >= 0)
        close(loop->wakefd);
    if (loop->epfd >= 0)
        close(loop->epfd);
    free(loop->files);
    free(loop);
}

/* How long the poll may sleep: until the nearest timer, capped by max_wait. */
static int ev_poll_timeout(const bg_ev *loop, int64_t max_wait_ms)
{
    int64_t wait = max_wait_ms;

    if (loop->nheap > 0) {
        int64_t d = loop->heap[0]->when - bg_mono_ms();
        if (d < 0)
            d = 0;
        if (wait < 0 || d < wait)
            wait = d;
    }
    if (wait > INT32_MAX)
        wait = INT32_MAX;
    return (int)wait;
}

int bg_ev_run_once(bg_ev *loop, int64_t max_wait_ms, char *err)
{
    int n, i, ran;

    ran = ev_run_hooks(loop);
    if (loop->stop)
        return ran;
    n = epoll_wait(loop->epfd, loop->events, EV_MAX_EVENTS, ev_poll_timeout(loop, max_wait_ms));
    if (n < 0) {
        if (errno != EINTR) {
            bg_set_error(err, "epoll_wait: %s", strerror(errno));
            return BG_ERR;
        }
        n = 0;
    }
    for (i = 0; i < n; i++)
        ran += ev_dispatch_one(loop, &loop->events[i]);
    return ran + ev_process_timers(loop);
}

/* stop is cleared on the way out, not on entry, so that a stop requested
 * before the loop started (a signal during start-up) is not lost. */
int bg_ev_run(bg_ev *loop, char *err)
{
    int rc = BG_OK;

    while (!loop->stop) {
        if (bg_ev_run_once(loop, -1, err) == BG_ERR) {
            rc = BG_ERR;
            break;
        }
    }
    loop->stop = 0;
    return rc;
}

void bg_ev_stop(bg_ev *loop)
{
    loop->stop = 1;
}

int bg_ev_stopped(const bg_ev *loop)
{
    return loop->stop;
}
