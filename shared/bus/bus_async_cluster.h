/* bus_async_cluster.h: the async client's cluster mode (bus_async_cluster.c), private to
 * shared/bus: a bg_abus whose url is valkey+cluster:// routes through one of these. */
#ifndef BUSGATE_BUS_ASYNC_CLUSTER_H
#define BUSGATE_BUS_ASYNC_CLUSTER_H

#include <stddef.h>

#include "busgate/bus/bus_async.h"

typedef struct abus_cluster abus_cluster;

/* Asks for the slot map (blocking, bounded by the connect timeout per node asked; again on
 * a timer while no node answers) and opens one plain bg_abus per primary. owner is the
 * bg_abus the callers hold: callbacks and the state hook see it. */
abus_cluster *bg_abus_cluster_new(bg_abus *owner, bg_ev *loop, const bg_bus_opts *o, char *err);
/* Frees the nodes' connections; every pending callback gets NULL, then (once none is left
 * and no callback of ours runs) bg_abus_owner_destroy(owner). */
void bg_abus_cluster_free(abus_cluster *c);
void bg_abus_cluster_set_state_hook(abus_cluster *c, bg_abus_state_fn *fn, void *arg);
/* A RESP-encoded command to its slot's node (cmd is copied: MOVED and ASK re-issue it). */
int bg_abus_cluster_send(abus_cluster *c, bg_abus_reply_fn *fn, void *privdata, const char *cmd,
                         size_t len);
int bg_abus_cluster_connected(const abus_cluster *c);
size_t bg_abus_cluster_inflight(const abus_cluster *c);
void bg_abus_cluster_set_max_inflight(abus_cluster *c, size_t cap);
unsigned long bg_abus_cluster_reconnects(const abus_cluster *c);
const char *bg_abus_cluster_last_error(const abus_cluster *c);
void bg_abus_cluster_io_counts(const abus_cluster *c, unsigned long *writes, unsigned long *reads);

/* bus_async.c: a RESP-encoded command on a plain bg_abus; frees a cluster-mode owner. */
int bg_abus_send_formatted(bg_abus *b, bg_abus_reply_fn *fn, void *privdata, const char *cmd,
                           size_t len);
void bg_abus_owner_destroy(bg_abus *owner);

#endif
