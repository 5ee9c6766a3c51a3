/* rate_bucket.c: the token bucket as a theoretical arrival time (GCRA); pure arithmetic. */
#include "busgate/routing/rate_bucket.h"

int64_t bg_rl_take(const bg_rl_policy *p, int64_t tat, int64_t now, bg_rl_result *r)
{
    int64_t span = p->interval_us * p->burst; /* a full bucket, in time */
    int64_t base = tat > now ? tat : now;     /* a bucket does not fill past full */
    int64_t next = base + p->interval_us;

    r->limit = p->burst;
    if (next - now > span) {
        r->allowed = 0;
        r->remaining = 0;
        r->reset_us = base - now;
        r->retry_after_us = next - now - span;
        return tat;
    }
    r->allowed = 1;
    r->remaining = (span - (next - now)) / p->interval_us;
    r->reset_us = next - now;
    r->retry_after_us = 0;
    return next;
}

int64_t bg_rl_seconds(int64_t us)
{
    return us <= 0 ? 0 : (us + 999999) / 1000000;
}
