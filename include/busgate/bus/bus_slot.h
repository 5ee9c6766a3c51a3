/* bus_slot.h: Valkey Cluster's key space: the hash slot of a key (CRC16 with hash tags), the
 * slot map of a cluster (CLUSTER SLOTS), and MOVED/ASK redirections. */
#ifndef BUSGATE_BUS_SLOT_H
#define BUSGATE_BUS_SLOT_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "busgate/common.h"

#define BG_SLOTS 16384
#define BG_SLOT_NONE 0xffff /* bg_slot_map.owner: no node serves the slot */
#define BG_SLOT_HOST_MAX 255

/* The slot of key: CRC16-XMODEM of the key, or of what is between its first "{" and the
 * next "}" when that is not empty (the hash tag), modulo 16384. */
uint16_t bg_slot_of(const char *key, size_t len);

typedef struct bg_slot_node {
    char host[BG_SLOT_HOST_MAX + 1];
    int port;
} bg_slot_node;

/* Which primary serves each slot. */
typedef struct bg_slot_map {
    uint16_t owner[BG_SLOTS]; /* index into nodes, or BG_SLOT_NONE */
    bg_slot_node *nodes;      /* the primaries, in the order the reply named them */
    size_t nnodes;
} bg_slot_map;

/* Builds m from a CLUSTER SLOTS reply (ranges of [start, end, [host, port, id], replicas...]);
 * the primaries become m's nodes. An empty host (a node that does not know its address)
 * is taken as seed_host, the address the question went to. BG_ERR with err set on a
 * malformed reply; m is then empty. Free with bg_slot_map_free. */
int bg_slot_map_from_slots(bg_slot_map *m, const redisReply *r, const char *seed_host, char *err);
void bg_slot_map_free(bg_slot_map *m);
/* The node serving slot, or NULL when none does (a cluster with uncovered slots). */
const bg_slot_node *bg_slot_map_node(const bg_slot_map *m, uint16_t slot);
/* Records that host:port serves slot now (after a MOVED), adding the node when new. */
int bg_slot_map_set(bg_slot_map *m, uint16_t slot, const char *host, int port);
/* Slots with no node: 0 for a cluster whose whole key space is served. */
size_t bg_slot_map_uncovered(const bg_slot_map *m);

/* An error reply "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>": what it says
 * (ask = 1 for ASK: ask that node once, after ASKING; MOVED: the map is stale). BG_ERR
 * when err_reply is neither. */
typedef struct bg_slot_redirect {
    int ask;
    uint16_t slot;
    bg_slot_node to;
} bg_slot_redirect;
int bg_slot_redirect_parse(const char *err_reply, size_t len, bg_slot_redirect *out);

/* The slot of a RESP-encoded command's key (what a cluster client routes by): the first key
 * of XREAD/XREADGROUP ... STREAMS, the key after the subcommand of XGROUP/XINFO, the first
 * key of EVAL/EVALSHA/FCALL (numkeys > 0), else the first argument. 1 with *slot set; 0 for
 * a command without a key (PING, SCRIPT, CLUSTER, SCAN, INFO, CLIENT, EVAL with numkeys 0,
 * ...): any node answers it; -1 when cmd is not a RESP array of bulk strings. Multi-key
 * commands are routed by their first key: the server refuses them (CROSSSLOT) when the
 * others lie in other slots. */
int bg_slot_of_command(const char *cmd, size_t len, uint16_t *slot);

#endif
