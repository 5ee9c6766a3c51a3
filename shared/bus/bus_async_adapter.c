/* bus_async_adapter.c: plugs a hiredis redisAsyncContext into a bg_ev loop. */
#include "busgate/bus/bus_async.h"

#include <stdlib.h>

#include "busgate/core/log.h"

typedef struct adapter {
    redisAsyncContext *ac; /* NULL once hiredis ran cleanup */
    bg_ev *loop;
    int fd;
    int reading, writing; /* EPOLLIN / EPOLLOUT registered: the hooks must be idempotent */
    int flush_pending;    /* output buffered, flushed by the before-poll hook */
    int in_flush, was_connected, broken;
    int read_progress; /* a read just happened: the next re-arm restarts the clock */
    int busy;          /* inside a call into hiredis: defer the free */
    bg_ev_hook *hook;
    bg_ev_timer *timer;
    int64_t deadline, timer_when; /* bg_mono_ms; 0 = not armed */
    bg_abus_io *io;
} adapter;

static void adapter_release(adapter *a)
{
    a->busy--;
    if (a->ac == NULL && a->busy == 0)
        free(a);
}

static void adapter_on_fd(bg_ev *loop, int fd, void *arg, int mask)
{
    adapter *a = arg;

    (void)loop;
    (void)fd;
    a->busy++;
    if ((mask & BG_EV_READABLE) && a->ac != NULL) {
        if (a->io != NULL)
            a->io->reads++;
        a->read_progress = 1;
        redisAsyncHandleRead(a->ac);
        a->read_progress = 0;
    }
    if ((mask & BG_EV_WRITABLE) && a->ac != NULL && a->writing) {
        if (a->io != NULL)
            a->io->writes++;
        redisAsyncHandleWrite(a->ac);
    }
    adapter_release(a);
}

/* An epoll_ctl failure (ENOMEM, max_user_watches) would leave the connection
 * silently deaf: mark it broken and let the hook close it from outside hiredis. */
static void adapter_watch(adapter *a, int mask, int *flag)
{
    char err[BG_ERR_LEN];

    if (*flag)
        return;
    if (bg_ev_file_add(a->loop, a->fd, mask, adapter_on_fd, a, err) != BG_OK) {
        bg_error("valkey connection fd %d: %s; closing it", a->fd, err);
        a->broken = 1;
        return;
    }
    *flag = 1;
}

static void adapter_add_read(void *privdata)
{
    adapter *a = privdata;

    adapter_watch(a, BG_EV_READABLE, &a->reading);
}

static void adapter_del_read(void *privdata)
{
    adapter *a = privdata;

    if (a->reading)
        bg_ev_file_del(a->loop, a->fd, BG_EV_READABLE);
    a->reading = 0;
}

/* A connected socket is written from the before-poll hook, so all commands of
 * one iteration leave in one write(). EPOLLOUT is only needed to see a
 * connect complete or a full socket buffer drain (addWrite during a flush). */
static void adapter_add_write(void *privdata)
{
    adapter *a = privdata;

    if ((a->ac->c.flags & REDIS_CONNECTED) && !a->in_flush) {
        a->flush_pending = 1;
        return;
    }
    adapter_watch(a, BG_EV_WRITABLE, &a->writing);
}

static void adapter_del_write(void *privdata)
{
    adapter *a = privdata;

    if (a->writing)
        bg_ev_file_del(a->loop, a->fd, BG_EV_WRITABLE);
    a->writing = 0;
    a->flush_pending = 0;
}

static void adapter_before_poll(bg_ev *loop, void *arg)
{
    adapter *a = arg;

    (void)loop;
    a->busy++;
    if (a->broken && a->ac != NULL) {
        redisAsyncFree(a->ac);
    } else if (a->flush_pending && !a->writing && a->ac != NULL) {
        a->flush_pending = 0;
        if (a->io != NULL)
            a->io->writes++;
        a->in_flush = 1;
        redisAsyncHandleWrite(a->ac);
        a->in_flush = 0;
    }
    adapter_release(a);
}

static int64_t adapter_on_timer(bg_ev *loop, bg_ev_timer *t, void *arg)
{
    adapter *a = arg;
    int64_t now = bg_mono_ms();

    (void)loop;
    (void)t;
    if (now < a->deadline) {
        a->timer_when = a->deadline;
        return a->deadline - now;
    }
    a->timer = NULL;
    a->deadline = a->timer_when = 0;
    a->busy++;
    if (a->ac != NULL)
        redisAsyncHandleTimeout(a->ac); /* returns at once when nothing is pending */
    adapter_release(a);
    return BG_EV_NOMORE;
}

/* hiredis re-arms on every command and every read, which would let a steady
 * trickle of new commands keep a frozen server from ever timing out. Restart
 * the clock only on progress: a read (once per read, not for every command
 * its callbacks issue), the connect completing, or a command sent when none
 * was pending. */
static int adapter_restarts_clock(adapter *a)
{
    redisAsyncContext *ac = a->ac;

    if (a->read_progress) {
        a->read_progress = 0;
        return 1;
    }
    if (!(ac->c.flags & REDIS_CONNECTED))
        return a->deadline == 0;
    if (!a->was_connected) {
        a->was_connected = 1;
        return 1;
    }
    return a->deadline == 0 || (ac->replies.head != NULL && ac->replies.head == ac->replies.tail);
}

static void adapter_schedule_timer(void *privdata, struct timeval tv)
{
    adapter *a = privdata;
    int64_t ms = (int64_t)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000;
    char err[BG_ERR_LEN];

    if (!adapter_restarts_clock(a))
        return;
    a->deadline = bg_mono_ms() + ms;
    if (a->timer != NULL && a->timer_when <= a->deadline)
        return; /* fires early and re-arms itself for the rest */
    if (a->timer != NULL) {
        bg_ev_timer_reset(a->loop, a->timer, ms);
    } else if ((a->timer = bg_ev_timer_add(a->loop, ms, adapter_on_timer, a, err)) == NULL) {
        bg_error("valkey connection fd %d: %s; closing it", a->fd, err);
        a->broken = 1;
        return;
    }
    a->timer_when = a->deadline;
}

static void adapter_cleanup(void *privdata)
{
    adapter *a = privdata;

    adapter_del_read(a);
    adapter_del_write(a);
    bg_ev_timer_del(a->loop, a->timer);
    bg_ev_hook_del(a->loop, a->hook);
    a->timer = NULL;
    a->hook = NULL;
    a->ac->ev.data = NULL;
    a->ac = NULL;
    if (a->busy == 0)
        free(a);
}

int bg_abus_adapter_attach(redisAsyncContext *ac, bg_ev *loop, bg_abus_io *io, char *err)
{
    adapter *a;

    if (ac->ev.data != NULL) {
        bg_set_error(err, "hiredis context already attached to an event loop");
        return BG_ERR;
    }
    a = calloc(1, sizeof(*a));
    if (a == NULL) {
        bg_set_error(err, "adapter: out of memory");
        return BG_ERR;
    }
    a->hook = bg_ev_hook_add(loop, adapter_before_poll, a, err);
    if (a->hook == NULL) {
        free(a);
        return BG_ERR;
    }
    a->ac = ac;
    a->loop = loop;
    a->fd = ac->c.fd;
    a->io = io;
    ac->ev.data = a;
    ac->ev.addRead = adapter_add_read;
    ac->ev.delRead = adapter_del_read;
    ac->ev.addWrite = adapter_add_write;
    ac->ev.delWrite = adapter_del_write;
    ac->ev.cleanup = adapter_cleanup;
    ac->ev.scheduleTimer = adapter_schedule_timer;
    return BG_OK;
}
