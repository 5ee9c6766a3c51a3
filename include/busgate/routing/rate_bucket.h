/* rate_bucket.h: the token bucket of a rate limit, as one timestamp (GCRA), and the
 * header values it answers with. */
#ifndef BUSGATE_RATE_BUCKET_H
#define BUSGATE_RATE_BUCKET_H

#include <stdint.h>

/*
 * A token bucket holding up to `burst` tokens, refilled with one token every
 * `interval_us`, kept as a single number: the theoretical arrival time (TAT), the
 * moment the bucket will be full again. The bucket holds (burst*interval - (tat - now))
 * / interval tokens; a request takes one. This is the generic cell rate algorithm: one
 * word of state, so a compare-and-swap updates it, and a TAT in the past means a full
 * bucket, the same as a bucket never used (what makes stale buckets free to evict).
 * Times are microseconds on one clock (CLOCK_MONOTONIC locally, Valkey's TIME in the
 * cluster script); 0 is "never used".
 */
typedef struct bg_rl_policy {
    int64_t interval_us; /* one token per interval: 1 s / (requests per second) */
    int64_t burst;       /* tokens the bucket holds */
} bg_rl_policy;

/* What one request got, with everything the RateLimit headers say. */
typedef struct bg_rl_result {
    int allowed;
    int64_t limit;          /* = burst */
    int64_t remaining;      /* tokens left after this request */
    int64_t reset_us;       /* until the bucket is full again */
    int64_t retry_after_us; /* denied: until one token is there; allowed: 0 */
} bg_rl_result;

/* Takes one token from the bucket whose TAT is tat at time now. Returns the TAT to
 * store: tat itself when denied (a denied request costs nothing). */
int64_t bg_rl_take(const bg_rl_policy *p, int64_t tat, int64_t now, bg_rl_result *r);

/* Whole seconds for a header, rounded up (a client that waits this long is served). */
int64_t bg_rl_seconds(int64_t us);

#endif
