/* dispatch_int.h: the dispatcher's state, shared by dispatch.c and dispatch_reply.c. */
#ifndef BUSGATE_DISPATCH_INT_H
#define BUSGATE_DISPATCH_INT_H

#include "busgate/bus/bus_async.h"
#include "busgate/proto/frame.h"
#include "busgate/proto/keys.h"
#include "dispatch.h"
#include "exchange.h"
#include "inflight.h"
#include "reply_reader.h"

#define BG_DISPATCH_KEYS 16

struct bg_dispatch {
    bg_wk *wk;
    bg_abus *bus;
    bg_reply_reader *reader;
    bg_inflight table;
    bg_messaging_names names;
    char reply_key[BG_KEY_MAX + 1];
    bg_xchg *holding; /* streams with pieces left on the reply stream (dispatch_held.c) */
    /* request stream keys by service, direct-mapped: the name check and the template
     * are worked out once per service, not per request (the names never change in a
     * worker's life) */
    struct bg_dispatch_key {
        char service[BG_RT_SERVICE_MAX + 1]; /* "" = empty entry */
        char key[BG_KEY_MAX + 1];
    } keys[BG_DISPATCH_KEYS];
};

/* dispatch_guard.c: 1 when x may not go to its service now (stream full, backlog past
 * [limits], breaker open): x was answered 503 with Retry-After. Otherwise x holds its
 * breaker ticket, and bg_dispatch_guard_done must follow once. */
int bg_dispatch_guard(bg_dispatch *d, bg_xchg *x);
/* x's verdict for its breaker: the status the service answered, 502 for an invalid
 * RESPONSE, 504 for the deadline; 0 when there is none (client gone, bus error). Once. */
void bg_dispatch_guard_done(bg_dispatch *d, bg_xchg *x, int status);

/* Stops tracking x (table, deadline timer). */
void bg_dispatch_untrack(bg_dispatch *d, bg_xchg *x);
/* Sends x now (its Idempotency-Key, if any, is already ours). */
void bg_dispatch_send_now(bg_dispatch *d, bg_xchg *x);

/* dispatch_idem.c: claims x's Idempotency-Key, then sends, replays or refuses. */
void bg_dispatch_idem_begin(bg_dispatch *d, bg_xchg *x, int64_t timeout_ms);
/* x's answer is known: f, what the service sent (stored for replays when it is a success
 * that fits), or NULL (the request failed: the record goes). Once per exchange. Returns
 * 1 when x->out is sent to the client (bg_xchg_done) once Valkey has stored it; 0: the
 * caller answers x now. */
int bg_dispatch_idem_settle(bg_dispatch *d, bg_xchg *x, const bg_frame *f);
/* Answers x with a stored response, marked "Idempotent-Replayed: true". */
void bg_dispatch_answer_replay(bg_xchg *x, int status, bg_bytes meta, bg_bytes body);

/* CANCEL on x's service's cancel stream. */
void bg_dispatch_cancel(bg_dispatch *d, const bg_xchg *x, const char *reason);

/* dispatch_stream.c: a RESPONSE with stream 1 (decoded, checked, status line and headers
 * already in x->out) starts streaming x; BG_ERR (why set) means 502. */
int bg_dispatch_stream_begin(bg_dispatch *d, bg_xchg *x, const bg_frame *f, char *why, size_t wlen);
/* A RESPONSE_CHUNK entry for x: 1 taken (delete it), 0 held on the stream for later. */
int bg_dispatch_stream_chunk(bg_dispatch *d, bg_xchg *x, const char *entry_id,
                             const bg_field *fields, size_t n);
/* A piece fetched back from the stream (the oldest held one): written or the stream ends. */
void bg_dispatch_stream_take(bg_dispatch *d, bg_xchg *x, const bg_field *fields, size_t n);
/* The stream broke: log, stop tracking, CANCEL (reason; NULL = none), end the client's
 * connection once what was queued is written. x may be freed on return. */
void bg_dispatch_stream_abort(bg_dispatch *d, bg_xchg *x, const char *why, const char *reason);

/* dispatch_held.c: pieces left on the reply stream while x's client is slow. */
int bg_held_push(bg_dispatch *d, bg_xchg *x, const char *entry_id);
/* Fetches the oldest held pieces again when x's output ran low. */
void bg_held_fetch(bg_dispatch *d, bg_xchg *x);
/* x stops holding (ended, aborted, untracked); its held entries are deleted. */
void bg_held_forget(bg_dispatch *d, bg_xchg *x);
/* Millisecond part of the oldest held entry id of any stream; -1 when none (the reply
 * reader does not trim past it). */
int64_t bg_held_oldest_ms(void *arg);
/* XREAD COUNT for the reply reader: small while some stream holds pieces, since every
 * read carries held pieces (up to 64 KiB each from the C SDK) in full once more. */
int bg_held_read_count(void *arg);

/* The reply reader's entry callback: match by id, check, answer. */
int bg_dispatch_on_reply(void *arg, const char *entry_id, const bg_field *fields, size_t n);

#endif
