/* reply_reader.h: reads this worker's reply stream with XREAD BLOCK on its own connection. */
#ifndef BUSGATE_REPLY_READER_H
#define BUSGATE_REPLY_READER_H

#include <stddef.h>
#include <stdint.h>

#include "busgate/bus/bus.h"
#include "busgate/common.h"
#include "busgate/core/ev.h"

typedef struct bg_reply_reader bg_reply_reader;

/* Called for every entry read (fields borrow from the reply: valid during the call).
 * Return 1 when the entry was for a request of ours (it is then deleted with XDEL),
 * 0 to leave it (another process may share the key during a reload; old entries go
 * by the periodic XTRIM MINID). */
typedef int bg_reply_entry_fn(void *arg, const char *entry_id, const bg_field *fields,
                              size_t nfields);

typedef struct bg_reply_opts {
    const char *key;      /* the reply stream */
    int64_t block_ms;     /* XREAD BLOCK; below the command timeout */
    int count;            /* XREAD COUNT */
    int64_t ttl_ms;       /* PEXPIRE of the key, refreshed every 5 s */
    int64_t keep_read_ms; /* entries older than this (by id) behind the newest are trimmed */
    /* Millisecond part of the oldest entry id still needed (-1 = none): entries left
     * unconsumed for later; trimming stops before it. NULL = none. */
    int64_t (*keep_fn)(void *arg);
    /* COUNT of the next XREAD when it returns > 0 (else count), e.g. smaller while
     * entries are left for later (each read carries them again); NULL = always count. */
    int (*count_fn)(void *arg);
    void *hook_arg; /* for keep_fn and count_fn */
} bg_reply_opts;

/* Connects (with reconnect) and starts reading after the stream's current last entry. */
bg_reply_reader *bg_reply_reader_new(bg_ev *loop, const bg_bus_opts *bus, const bg_reply_opts *o,
                                     bg_reply_entry_fn *fn, void *arg, char *err);
void bg_reply_reader_free(bg_reply_reader *r);
/* 1 when connected and positioned: a request sent now gets its reply read. */
int bg_reply_reader_ready(const bg_reply_reader *r);
unsigned long bg_reply_reader_reconnects(const bg_reply_reader *r);

#endif
