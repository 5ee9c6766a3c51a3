/* bus_queue.h: a work queue on a Valkey stream consumer group (blocking API on bg_bus). */
#ifndef BUSGATE_BUS_QUEUE_H
#define BUSGATE_BUS_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "busgate/common.h"

/* Declared again here (C11 allows the repeat) so this header needs neither
 * bus.h nor hiredis.h; include busgate/bus.h to make a connection. */
typedef struct bg_bus bg_bus;
struct redisReply;

/* Suffix of the dead-letter stream: "<stream>:dead" keeps the hash tag of
 * "router:requests:{svc}", so both keys stay in one cluster slot. */
#define BG_QUEUE_DEAD_SUFFIX ":dead"
#define BG_QUEUE_ID_LEN 48
/* At most one XGROUP CREATE per this interval after NOGROUP: no hot loop. */
#define BG_QUEUE_GROUP_RETRY_MS 200

typedef struct bg_queue_opts {
    const char *stream;   /* required, e.g. "router:requests:{orders}" */
    const char *group;    /* required, e.g. "router-gateway" */
    const char *consumer; /* required for read/reclaim/extend, unique per process */
    int64_t lease_ms;     /* reclaim entries idle longer than this (default 5 min) */
    int max_deliveries;   /* dead-letter past this many deliveries; 0 = never (default 5) */
    /* XADD MAXLEN ~ maxlen on enqueue and dead letters; 0 = no trim. Trimming
     * drops entries read or not: keep it well above the largest backlog. */
    size_t maxlen;
    /* Where a newly created group starts: "0" replays what is there (default), "$" skips it. */
    const char *start_id;
} bg_queue_opts;

typedef struct bg_queue bg_queue;

/* One delivered entry. fields point into the batch's reply: valid until
 * bg_queue_batch_free; copy what must live longer. */
typedef struct bg_queue_entry {
    char id[BG_QUEUE_ID_LEN];
    bg_field *fields;
    size_t nfields;
    long deliveries; /* deliveries so far, this one included (1 on a first read) */
} bg_queue_entry;

/* A batch owns its entries and the reply they point into. Zero it before the
 * first use; every read/reclaim frees what the batch held before. */
typedef struct bg_queue_batch {
    bg_queue_entry *entries;
    size_t count;
    size_t deleted; /* reclaim: pending ids whose entry was trimmed away; acked */
    struct redisReply *reply;
    bg_field *field_pool;
} bg_queue_batch;

/* Defaults: lease 5 min, max_deliveries 5, no trim, start "0"; names NULL. */
void bg_queue_opts_init(bg_queue_opts *o);

/* The queue uses bus but does not own it. A consumer that blocks in
 * bg_queue_read needs a connection of its own (GUIDE section 2). NULL on error. */
bg_queue *bg_queue_new(bg_bus *bus, const bg_queue_opts *o, char *err);
void bg_queue_free(bg_queue *q);
const char *bg_queue_stream(const bg_queue *q);
const char *bg_queue_dead_stream(const bg_queue *q);

/* XGROUP CREATE stream group start_id MKSTREAM; BUSYGROUP counts as success.
 * Never cached: bg_queue_read calls it again after NOGROUP. */
int bg_queue_ensure_group(bg_queue *q, char *err);

/* XADD stream [MAXLEN ~ maxlen] * fields...; id_out (BG_QUEUE_ID_LEN bytes) may be NULL. */
int bg_queue_enqueue(bg_queue *q, const bg_field *fields, size_t n, char *id_out, char *err);
/* One-off XADD to any stream (a reply key, another service's requests). */
int bg_queue_enqueue_to(bg_bus *bus, const char *stream, size_t maxlen, const bg_field *fields,
                        size_t n, char *id_out, char *err);

/* XREADGROUP GROUP group consumer COUNT count [BLOCK block_ms] STREAMS stream >.
 * block_ms <= 0 does not block (Valkey's BLOCK 0 would wait forever). When the
 * connection's command timeout is shorter than block_ms + 1 s, it is raised for
 * this one command and restored after, so a quiet stream is no I/O error.
 * On NOGROUP it re-creates the group, at most once per BG_QUEUE_GROUP_RETRY_MS
 * (waiting for that if needed, even when not blocking), and reads again; if the
 * group cannot be made it returns BG_ERR after waiting out the interval, so a
 * caller that loops on errors cannot spin. An empty batch is BG_OK. */
int bg_queue_read(bg_queue *q, int count, int64_t block_ms, bg_queue_batch *out, char *err);
/* The same read, pipelined: appended (bg_bus_append_argv) behind commands whose replies are
 * still to be read, so that it shares their round trip; its reply, taken after theirs with
 * bg_queue_read_reply (which raises the command timeout as bg_queue_read does), fills out.
 * No retry, no group made here: after NOGROUP the batch is empty and the next
 * bg_queue_read makes the group. BG_ERR (nothing appended) while the group is known to be
 * missing. */
int bg_queue_read_append(bg_queue *q, int count, int64_t block_ms, char *err);
int bg_queue_read_reply(bg_queue *q, bg_queue_batch *out, char *err);

int bg_queue_ack(bg_queue *q, const char *id, char *err);
/* XACK of many ids in one command. */
int bg_queue_ack_ids(bg_queue *q, const char *const *ids, size_t n, char *err);

/* Reset the idle time of an entry this consumer holds (XCLAIM ... 0 id JUSTID,
 * which does not count a delivery), atomically only if it is still pending on
 * this consumer: BG_ERR with "lease lost" in err when another consumer took it
 * over or it was acked, so a slow worker never steals an entry back. */
int bg_queue_extend(bg_queue *q, const char *id, char *err);

/* Take over up to count entries idle longer than the lease (XAUTOCLAIM; a
 * cursor kept in q walks the pending list across calls). Their delivery count
 * is read back with XPENDING after the claim, so entry.deliveries includes the
 * delivery being made now, and the dead-letter decision uses that count: an
 * entry is handed out at most max_deliveries times. One whose count exceeds
 * it goes to the dead-letter stream instead of into out (counted in
 * *dead_lettered, may be NULL). Pending ids whose entries were trimmed are
 * acked and counted in out->deleted for the caller to log. */
int bg_queue_reclaim(bg_queue *q, int count, bg_queue_batch *out, size_t *dead_lettered, char *err);

/* Move e to "<stream>:dead" and XACK it on the source, atomically (one script):
 * the original fields plus dead_reason, dead_from_id, dead_deliveries,
 * dead_group, dead_consumer and dead_at_ms (wall clock). BG_ERR and nothing
 * moved when e is no longer pending (acked meanwhile): no duplicate dead letters. */
int bg_queue_dead_letter(bg_queue *q, const bg_queue_entry *e, const char *reason, char *err);

void bg_queue_batch_free(bg_queue_batch *b);

/* XGROUP DELCONSUMER every other consumer idle longer than idle_ms that has
 * nothing pending; the pending check and the delete are one atomic script, so
 * no entry is ever orphaned. Reclaim first. *deleted (may be NULL) counts them. */
int bg_queue_delete_idle_consumers(bg_queue *q, int64_t idle_ms, size_t *deleted, char *err);

/* A bg_bus_reconnect_fn (arg = the bg_queue): after a reconnect the next read
 * re-creates the group first, instead of waiting for NOGROUP. */
void bg_queue_reconnect_hook(bg_bus *bus, void *q);

/* Commands this queue has sent (for tests and metrics: proves no hot loop). */
unsigned long bg_queue_command_count(const bg_queue *q);

#endif
