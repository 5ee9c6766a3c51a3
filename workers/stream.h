/* stream.h: the worker's state of one streamed response: framing, sequence, idle clock and
 * the pieces left on the reply stream while the client is slow. */
#ifndef BUSGATE_STREAM_H
#define BUSGATE_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "http_response.h"

struct bg_xchg;

/* A stream entry id "ms-seq", kept as numbers: a held piece costs 16 bytes, not its body. */
typedef struct bg_held_id {
    uint64_t ms, seq;
} bg_held_id;

typedef struct bg_xstream {
    bg_stream_framing framing;
    int sse;        /* Content-Type text/event-stream: keep-alive comments when quiet */
    int final_seen; /* the last piece arrived (it may still be held) */
    int64_t seq;    /* last piece taken */
    int64_t left;   /* SIZED: bytes the service's Content-Length still owes */
    int64_t idle_ms;
    int64_t last_piece_ms, last_out_ms; /* monotonic: a piece arrived / bytes were queued */
    /* Pieces left on the reply stream, oldest first: held[hhead .. hhead + hcount). */
    bg_held_id *held;
    size_t hhead, hcount, hcap;
    int fetching;                  /* XRANGEs in flight for the oldest held pieces */
    struct bg_xchg *hprev, *hnext; /* the dispatcher's list of streams holding pieces */
    int linked;
} bg_xstream;

void bg_xstream_free(bg_xstream *st);

#endif
