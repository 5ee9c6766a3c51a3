/* dispatch_int.h: the dispatcher's state, shared by dispatch.c and dispatch_reply.c. */
#ifndef BUSGATE_DISPATCH_INT_H
#define BUSGATE_DISPATCH_INT_H

#include "busgate/bus/bus_async.h"
#include "busgate/proto/keys.h"
#include "dispatch.h"
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

/* Stops tracking x (table, deadline timer). */
void bg_dispatch_untrack(bg_dispatch *d, bg_xchg *x);
/* The reply reader's entry callback: match by id, check, answer. */
int bg_dispatch_on_reply(void *arg, const char *entry_id, const bg_field *fields, size_t n);

#endif
