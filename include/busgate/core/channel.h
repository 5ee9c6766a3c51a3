/* channel.h: fixed-size command messages between the master and one worker over a socketpair. */
#ifndef BUSGATE_CHANNEL_H
#define BUSGATE_CHANNEL_H

#include <stdint.h>

#include "busgate/common.h"

/*
 * One SOCK_SEQPACKET socketpair per worker slot (nginx's channel). Both ends
 * are non-blocking and close-on-exec. A message is always sent and received
 * whole, so there is no framing and no partial read.
 *   master -> worker: BG_CHAN_QUIT_GRACEFUL (stop accepting, drain in-flight
 *                     requests, exit 0; a newer generation takes over the
 *                     listening sockets), BG_CHAN_QUIT_FINAL (the same when
 *                     the gateway stops: no successor, so first accept what
 *                     waits in the listen backlog, which would otherwise be
 *                     reset when the last copy of the socket closes),
 *                     BG_CHAN_REOPEN_LOGS (the master
 *                     reopened its log files and passes the new descriptors
 *                     along, SCM_RIGHTS: a sandboxed worker cannot open files).
 *   worker -> master: BG_CHAN_RESYNC (admin resync; target_kind/target say
 *                     what to resync), BG_CHAN_READY (sent once, when the
 *                     worker accepts connections and its bus is connected:
 *                     on reload the master retires the old generation as soon
 *                     as every new worker is ready, at the latest after
 *                     connect_timeout + 1 s).
 * A worker sees end-of-file on its end when the master died.
 */

typedef enum {
    BG_CHAN_RESYNC = 1,
    BG_CHAN_QUIT_GRACEFUL,
    BG_CHAN_REOPEN_LOGS,
    BG_CHAN_READY,
    BG_CHAN_QUIT_FINAL,
} bg_chan_cmd;

/* target_kind of BG_CHAN_REOPEN_LOGS: a bitmask of the descriptors that come
 * with the message, in this order. */
#define BG_CHAN_LOG_ERROR 1
#define BG_CHAN_LOG_ACCESS 2

/* Most descriptors one message carries. */
#define BG_CHAN_MAX_FDS 4

/* target_kind of BG_CHAN_RESYNC */
#define BG_CHAN_TARGET_FLEET 0
#define BG_CHAN_TARGET_SERVICE 1
#define BG_CHAN_TARGET_CONNECTION 2

typedef struct bg_chan_msg {
    uint32_t cmd;         /* bg_chan_cmd */
    uint32_t target_kind; /* 0 fleet, 1 service, 2 connection */
    char target[160];     /* service name or connection id, NUL-terminated; "" for the fleet */
} bg_chan_msg;

/* Creates the pair: fds[0] for the master, fds[1] for the worker. */
int bg_chan_open(int fds[2], char *err);
/* Sends one message. Returns BG_OK, or BG_ERR with err set; a full socket
 * buffer (EAGAIN) is an error too ("channel full"): commands are rare. */
int bg_chan_send(int fd, const bg_chan_msg *m, char *err);
/* Sends one message with nfds (0..BG_CHAN_MAX_FDS) descriptors attached
 * (SCM_RIGHTS); the caller keeps its own copies. Errors as bg_chan_send. */
int bg_chan_send_fds(int fd, const bg_chan_msg *m, const int *fds, int nfds, char *err);
/* bg_chan_recv's answer when no message is waiting (EAGAIN). */
#define BG_CHAN_AGAIN 1

/* Receives one message. Returns BG_OK when one was read, BG_CHAN_AGAIN when
 * none is waiting, BG_ERR on end-of-file (err "channel closed"), a message of
 * the wrong size or a failure. Call it until it stops answering BG_OK.
 * Descriptors sent along are closed: none was expected. */
int bg_chan_recv(int fd, bg_chan_msg *m, char *err);
/* Receives one message and up to max descriptors sent with it (close-on-exec,
 * owned by the caller; *nfds says how many, in the sender's order); any beyond
 * max are closed. Returns as bg_chan_recv; BG_ERR too when the descriptors did
 * not all fit (MSG_CTRUNC, e.g. out of fds): what arrived is closed. */
int bg_chan_recv_fds(int fd, bg_chan_msg *m, int *fds, int max, int *nfds, char *err);
/* Closes both ends that are >= 0 and sets them to -1. */
void bg_chan_close(int fds[2]);

#endif
