/* ev.h: single-threaded epoll event loop: fd handlers, monotonic timers, before-poll hooks. */
#ifndef BUSGATE_EV_H
#define BUSGATE_EV_H

#include <stdint.h>

#include "busgate/common.h"

#define BG_EV_NONE 0
#define BG_EV_READABLE 1
#define BG_EV_WRITABLE 2

/* A timer callback returns its next interval in ms (0 = next iteration) or
 * BG_EV_NOMORE to be deleted. */
#define BG_EV_NOMORE -1

typedef struct bg_ev bg_ev;
typedef struct bg_ev_timer bg_ev_timer;
typedef struct bg_ev_hook bg_ev_hook;

/* mask says which of BG_EV_READABLE/BG_EV_WRITABLE fired. */
typedef void bg_ev_file_fn(bg_ev *loop, int fd, void *arg, int mask);
typedef int64_t bg_ev_timer_fn(bg_ev *loop, bg_ev_timer *t, void *arg);
typedef void bg_ev_hook_fn(bg_ev *loop, void *arg);

/* The loop owns an epoll fd and an eventfd (both close-on-exec). */
bg_ev *bg_ev_new(char *err);
void bg_ev_free(bg_ev *loop);

/* Register fn for the events in mask (ae semantics: one handler per
 * direction, arg shared by both). Adding an event already set is a no-op
 * apart from replacing fn/arg. */
int bg_ev_file_add(bg_ev *loop, int fd, int mask, bg_ev_file_fn *fn, void *arg, char *err);
/* Safe inside any callback, also for the fd being dispatched. */
void bg_ev_file_del(bg_ev *loop, int fd, int mask);
int bg_ev_file_mask(const bg_ev *loop, int fd);

/* One-shot or periodic timer due in ms on the monotonic clock; timers due at
 * the same ms fire in the order they were armed. The handle stays valid until
 * bg_ev_timer_del or until its callback returns BG_EV_NOMORE. */
bg_ev_timer *bg_ev_timer_add(bg_ev *loop, int64_t ms, bg_ev_timer_fn *fn, void *arg, char *err);
/* Safe inside any callback, including the timer's own. */
void bg_ev_timer_del(bg_ev *loop, bg_ev_timer *t);
/* Re-arm to fire ms from now (O(log n); for per-request deadlines). */
void bg_ev_timer_reset(bg_ev *loop, bg_ev_timer *t, int64_t ms);
size_t bg_ev_timer_count(const bg_ev *loop);

/* Hooks run in registration order before every poll; this is where buffered
 * output is flushed so that one iteration's commands leave in one write. */
bg_ev_hook *bg_ev_hook_add(bg_ev *loop, bg_ev_hook_fn *fn, void *arg, char *err);
/* Safe inside any callback, including the hook's own. */
void bg_ev_hook_del(bg_ev *loop, bg_ev_hook *h);

/* Async-signal-safe and thread-safe: makes the loop's poll return and run
 * the wakeup handler (in loop context). Another process holding the eventfd
 * (inherited or passed over a socket) wakes the loop by writing a uint64 1. */
void bg_ev_wakeup(bg_ev *loop);
int bg_ev_wakeup_fd(const bg_ev *loop);
void bg_ev_set_wakeup_handler(bg_ev *loop, bg_ev_hook_fn *fn, void *arg);

/* One iteration: hooks, poll (at most max_wait_ms; -1 = until the next timer
 * or event; skipped when a hook stopped the loop), fd handlers, due timers.
 * Returns the number of callbacks run or BG_ERR when epoll_wait failed (err
 * set; EINTR is not a failure). */
int bg_ev_run_once(bg_ev *loop, int64_t max_wait_ms, char *err);
/* Iterate until bg_ev_stop (then clear the stop flag); BG_ERR (err set) if
 * polling failed. */
int bg_ev_run(bg_ev *loop, char *err);
/* Makes bg_ev_run return after the current iteration. Async-signal-safe. */
void bg_ev_stop(bg_ev *loop);
int bg_ev_stopped(const bg_ev *loop);

#endif
