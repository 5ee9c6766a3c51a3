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

struct bg_dispatch {
    bg_wk *wk;
    bg_abus *bus;
    bg_reply_reader *reader;
    bg_inflight table;
    bg_messaging_names names;
    char reply_key[BG_KEY_MAX + 1];
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

/* The reply reader's entry callback: match by id, check, answer. */
int bg_dispatch_on_reply(void *arg, const char *entry_id, const bg_field *fields, size_t n);

#endif
