/* bus_queue_int.h: queue internals shared by bus_queue.c and bus_queue_reclaim.c. */
#ifndef BUSGATE_BUS_QUEUE_INT_H
#define BUSGATE_BUS_QUEUE_INT_H

#include <hiredis/hiredis.h>

#include "busgate/bus/bus.h"
#include "busgate/bus/bus_queue.h"

struct bg_queue {
    bg_bus *bus; /* not owned */
    char *stream;
    char *dead_stream;
    char *group;
    char *consumer; /* NULL: a producer-only queue */
    char *start_id;
    int64_t lease_ms;
    int max_deliveries;
    size_t maxlen;
    int64_t next_create_ms;       /* monotonic: earliest next XGROUP CREATE after NOGROUP */
    int need_group;               /* set by the reconnect hook: create before the next read */
    char cursor[BG_QUEUE_ID_LEN]; /* XAUTOCLAIM start for the next reclaim */
    int64_t pending_block_ms;     /* BLOCK of the read bg_queue_read_append left pending */
    unsigned long commands;
};

/* Send one command (lens NULL = strlen of each argument) and count it; what
 * names it in errors (NULL = argv[0]). Error replies come back as they are;
 * NULL with err set when the server is unreachable. */
redisReply *bg_queue_send(bg_queue *q, const char *what, int argc, const char **argv,
                          const size_t *lens, char *err);
/* Like bg_queue_send, but an error reply is freed and turned into NULL + err. */
redisReply *bg_queue_run(bg_queue *q, const char *what, int argc, const char **argv,
                         const size_t *lens, char *err);

/* Take ownership of reply and fill b from list, an array of [id, [field, value...]]
 * entries inside it (NULL or nil = empty). Entries whose fields are nil (deleted)
 * are skipped and counted in b->deleted. counts, when not NULL, is an array of
 * delivery counts parallel to list; without it every entry counts 1 delivery. */
int bg_queue_batch_fill(bg_queue_batch *b, redisReply *reply, const redisReply *list,
                        const redisReply *counts, char *err);

/* BG_ERR with err set when q has no consumer name, which what (an operation) needs. */
int bg_queue_need_consumer(const bg_queue *q, const char *what, char *err);

#endif
