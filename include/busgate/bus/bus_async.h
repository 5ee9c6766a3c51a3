/* bus_async.h: asynchronous pipelined Valkey connection on a bg_ev loop, with reconnect. */
#ifndef BUSGATE_BUS_ASYNC_H
#define BUSGATE_BUS_ASYNC_H

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stddef.h>

#include "busgate/bus/bus.h" /* bg_bus_opts */
#include "busgate/common.h"
#include "busgate/core/ev.h"

/* Default cap on commands sent and not yet answered (bg_abus_set_max_inflight). */
#define BG_ABUS_MAX_INFLIGHT 4096

/* One async connection attached to one bg_ev loop.
 *
 * Commands issued during one loop iteration are flushed together in one
 * write just before the next poll, and every read parses as many replies as
 * it got, so callers pipeline simply by issuing many commands.
 *
 * A blocking command (XREADGROUP/XREAD ... BLOCK, BLPOP) holds the whole
 * connection until it returns and would delay every command queued behind it:
 * give each blocking reader its own bg_abus.
 *
 * Never share across fork(): the child must bg_abus_free nothing it inherited
 * (the sockets are close-on-exec, but the parent's context is not the
 * child's) and connect anew.
 *
 * The process must ignore SIGPIPE: hiredis and OpenSSL write with plain
 * send()/write(), so a connection reset during a write would kill it.
 * bg_abus_new logs a warning when SIGPIPE is not ignored. */
typedef struct bg_abus bg_abus;

/* reply is NULL when the command was not answered (disconnect, command
 * timeout, bg_abus_free): each callback runs exactly once. hiredis frees the
 * reply after the callback returns: copy what you keep. */
typedef void bg_abus_reply_fn(bg_abus *b, redisReply *reply, void *privdata);
/* connected = 1 after every successful connect + handshake (AUTH, SELECT,
 * CLIENT SETNAME, PING); 0 when such a connection is lost. Consumers
 * re-create their groups on 1. */
typedef void bg_abus_state_fn(bg_abus *b, int connected, void *arg);

/* Copies o and starts connecting (connect timeout, TLS, then the handshake
 * pipelined before any user command). Failures to reach the server are not
 * errors here: the connection retries by itself with exponential backoff and
 * jitter. NULL with err set only for bad options (TLS files) or no memory. */
bg_abus *bg_abus_new(bg_ev *loop, const bg_bus_opts *o, char *err);
/* Pending callbacks get NULL (now, or when the current callback returns). */
void bg_abus_free(bg_abus *b);
void bg_abus_set_state_hook(bg_abus *b, bg_abus_state_fn *fn, void *arg);

/* Queue a command. BG_ERR when there is no connection (waiting to retry),
 * the in-flight cap is reached, or the command is answered other than once
 * (SUBSCRIBE and friends, MONITOR: use bus_pubsub.h); fn is then never
 * called. While connecting, commands queue behind the handshake. */
int bg_abus_command_argv(bg_abus *b, bg_abus_reply_fn *fn, void *privdata, int argc,
                         const char **argv, const size_t *argvlen);
/* hiredis format: %s, %b (pointer + size_t length), printf conversions. */
int bg_abus_command(bg_abus *b, bg_abus_reply_fn *fn, void *privdata, const char *fmt, ...);

/* 1 once the handshake succeeded, until the connection is lost. */
int bg_abus_connected(const bg_abus *b);
size_t bg_abus_inflight(const bg_abus *b);
/* Past cap commands are refused so that a slow server pushes back instead of
 * growing our buffers. 0 = BG_ABUS_MAX_INFLIGHT. */
void bg_abus_set_max_inflight(bg_abus *b, size_t cap);
/* Successful connects after the first one. */
unsigned long bg_abus_reconnects(const bg_abus *b);
/* Why the last connect or handshake failed ("" if none): for logs and tests. */
const char *bg_abus_last_error(const bg_abus *b);
/* Socket write and read calls made so far (pipelining efficiency). */
void bg_abus_io_counts(const bg_abus *b, unsigned long *writes, unsigned long *reads);

/* The hiredis adapter underneath (bus_async_adapter.c), for code that drives
 * its own redisAsyncContext on a bg_ev loop. Output is flushed from a
 * before-poll hook; the command timeout counts from the oldest unanswered
 * command or the last read, whichever is later. io (may be NULL) counts
 * socket calls and must outlive ac. BG_ERR if ac is already attached. */
typedef struct bg_abus_io {
    unsigned long writes, reads;
} bg_abus_io;
int bg_abus_adapter_attach(redisAsyncContext *ac, bg_ev *loop, bg_abus_io *io, char *err);

#endif
