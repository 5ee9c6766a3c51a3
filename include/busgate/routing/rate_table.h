/* rate_table.h: the local-mode rate limit buckets, one shared-memory table for every worker
 * of a gateway. */
#ifndef BUSGATE_RATE_TABLE_H
#define BUSGATE_RATE_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "busgate/common.h"
#include "busgate/routing/rate_bucket.h"

/*
 * An anonymous MAP_SHARED mapping the master makes before the first fork, sized once
 * ([limits] rate_buckets, rounded up to a power of two). Workers take tokens without
 * locks and without the master: each slot is a 64-bit bucket key (a hash of rule, route
 * and client key; 0 = free) and the bucket's TAT, both updated by compare-and-swap.
 *
 * A key lives in one of BG_RTAB_PROBES slots from its hash (open addressing). When all
 * of them hold other keys, the one whose bucket is fullest is taken over: a bucket whose
 * TAT is past is full, the same as a new one, so evicting it loses nothing; evicting a
 * bucket that is still refilling hands its owner a full bucket on its next request
 * (counted: BG_RTAB_EVICTED_LIVE). Memory stays bounded whatever the clients send.
 *
 * Races cost precision, never memory or progress: a worker taking a token while another
 * evicts that slot can charge the request to the new key's bucket; two workers evicting
 * for the same new key at once may give it a second bucket until one is evicted (the
 * lookup finds the first). Both need every probe of a neighbourhood busy with buckets
 * still refilling, which busgate_ratelimit_evictions_total shows.
 */
typedef struct bg_ratetable bg_ratetable;

#define BG_RTAB_PROBES 8
#define BG_RTAB_SLOT_BYTES 16
/* bg_rtab_take flags */
#define BG_RTAB_EVICTED_LIVE 1 /* a bucket still refilling was evicted to make room */

/* nslots is rounded up to a power of two, at least BG_RTAB_PROBES. */
bg_ratetable *bg_rtab_create(size_t nslots, char *err);
void bg_rtab_destroy(bg_ratetable *t);
size_t bg_rtab_slots(const bg_ratetable *t);
size_t bg_rtab_mapping_size(const bg_ratetable *t);

/* Takes one token for key (0 is taken as 1) under policy p at now_us (monotonic).
 * Fills r; returns BG_RTAB_* flags. Never blocks; safe from any process mapping t. */
int bg_rtab_take(bg_ratetable *t, uint64_t key, const bg_rl_policy *p, int64_t now_us,
                 bg_rl_result *r);

/* Slots holding a key (tests, diagnostics: a snapshot, not exact under writes). */
size_t bg_rtab_used(const bg_ratetable *t);

#endif
