/* bus_cluster.h: the blocking client's cluster mode (bus_cluster.c), private to shared/bus:
 * a bg_bus whose url is valkey+cluster:// holds one of these instead of a context. */
#ifndef BUSGATE_BUS_CLUSTER_H
#define BUSGATE_BUS_CLUSTER_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "busgate/bus/bus.h"
#include "busgate/bus/bus_slot.h"

typedef struct bus_cluster bus_cluster;

/* Asks the seeds (then any node known) for the slot map and connects to every primary.
 * opts is the owning bg_bus's, borrowed: it must outlive the cluster. */
bus_cluster *bg_bus_cluster_new(const bg_bus_opts *opts, char *err);
void bg_bus_cluster_free(bus_cluster *c);
/* Runs one RESP-encoded command on the node owning its key's slot (a keyless one on any
 * node), following MOVED (new map, then again) and ASK (ASKING + the command, once, on
 * that node); after a connection error the map is asked again and the command retried
 * where the slot lives now. Same contract as bg_bus_command. */
redisReply *bg_bus_cluster_run(bus_cluster *c, const char *cmd, size_t len, char *err);
/* Pipelining: the commands of one pipeline may go to different nodes, so each runs at once
 * (as bg_bus_cluster_run) and its reply waits for bg_bus_cluster_get_reply. A command whose
 * node cannot be reached gets an error reply "CLUSTERDOWN <why>" of its own, so that the
 * rest of the pipeline still counts: one node down fails only what was meant for it. */
int bg_bus_cluster_append(bus_cluster *c, int argc, const char **argv, const size_t *argvlen,
                          char *err);
int bg_bus_cluster_get_reply(bus_cluster *c, redisReply **reply, char *err);
size_t bg_bus_cluster_queued(const bus_cluster *c); /* appended, not read yet */
/* Asks for the map again (dropping the replies not read) and reconnects every primary whose
 * connection is down. */
int bg_bus_cluster_reconnect(bus_cluster *c, char *err);
/* 1 once since the last call when some node's connection was made again. */
int bg_bus_cluster_take_reconnected(bus_cluster *c);
int bg_bus_cluster_broken(const bus_cluster *c);
size_t bg_bus_cluster_node_count(const bus_cluster *c);
/* Primary i's own connection (connected now if need be), NULL when it cannot be reached. */
bg_bus *bg_bus_cluster_node(bus_cluster *c, size_t i, char *err);
void bg_bus_cluster_set_command_timeout(bus_cluster *c, int64_t ms);
void bg_bus_cluster_close_on_exec(bus_cluster *c);

/* The slot map asked of the primaries in known (may be NULL), then the seeds of opts, each
 * on a short-lived connection of its own (for the async client, whose connections cannot
 * answer synchronously). BG_OK with out filled (free with bg_slot_map_free). */
int bg_bus_cluster_fetch_map(const bg_bus_opts *opts, const bg_slot_map *known, bg_slot_map *out,
                             char *err);

/* bus_conn.c: one formatted command on a plain bg_bus, with its retry rules. */
redisReply *bg_bus_run_formatted(bg_bus *bus, const char *cmd, size_t len, char *err);
/* A node of a cluster: while its backoff runs a command fails at once ("is down") instead
 * of sleeping, so that one dead node does not stall commands for the others. */
void bg_bus_set_fail_fast(bg_bus *bus);

#endif
