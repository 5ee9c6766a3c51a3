/* inflight.h: the worker's table of requests waiting for a RESPONSE, keyed by request id. */
#ifndef BUSGATE_INFLIGHT_H
#define BUSGATE_INFLIGHT_H

#include <stddef.h>
#include <stdint.h>

#include "busgate/common.h"

/* Open addressing with linear probing (FNV-1a of the id), grown at 50% load, deleted
 * by backward shift. Deadlines are not here: they are bg_ev timers (a heap), one per
 * request, owned by the dispatcher. */
typedef struct bg_inflight {
    struct bg_inflight_slot {
        const char *id; /* borrowed from the value; NULL = empty */
        void *value;
    } * slots;
    size_t cap, count;
} bg_inflight;

int bg_inflight_init(bg_inflight *t, char *err);
void bg_inflight_free(bg_inflight *t);
/* id must stay valid while the entry exists (it points into the value). */
int bg_inflight_put(bg_inflight *t, const char *id, void *value, char *err);
void *bg_inflight_get(const bg_inflight *t, const char *id, size_t len);
/* Removes and returns the value, NULL when absent. */
void *bg_inflight_take(bg_inflight *t, const char *id, size_t len);
size_t bg_inflight_count(const bg_inflight *t);

#endif
