/* ratelimit_lease.c: cluster-mode token leases. A worker takes several tokens from a Valkey
 * bucket with one script call and spends them locally, so most limited requests cost no bus
 * round trip. Tokens are only ever taken from the shared bucket before they are spent, so the
 * long-run rate is never exceeded; a lease that is not spent in time is forfeited (the bucket
 * is stricter, never looser). The cache is per worker process: no locking. */
#include "ratelimit.h"

#include <string.h>

#define LEASE_SLOTS 1024      /* direct-mapped by bucket key; a collision drops a lease */
#define LEASE_LIFE_US 1000000 /* a leased token is spent within 1 s or forfeited */
#define LEASE_AUTO_DIVISOR 16 /* auto: a sixteenth of the burst ... */
#define LEASE_AUTO_MAX 64     /* ... at most this many at once */

typedef struct rl_lease {
    uint64_t key;
    int64_t tokens;     /* left to spend */
    int64_t expires_us; /* monotonic */
    int64_t granted_us; /* when the script granted them */
    int64_t remaining;  /* the bucket's own remaining count at the grant (headers) */
    int64_t reset_us;   /* the bucket's reset at the grant (headers) */
    int fetching;       /* a call for a whole lease is on the bus */
} rl_lease;

static rl_lease leases[LEASE_SLOTS];

static rl_lease *lease_slot(uint64_t key)
{
    return &leases[key & (LEASE_SLOTS - 1)];
}

int64_t bg_rl_lease_size(const bg_config *cfg, const bg_rate_spec *s)
{
    int64_t n = cfg->ratelimit.lease;

    if (n <= 0) {
        n = s->burst / LEASE_AUTO_DIVISOR;
        if (n > LEASE_AUTO_MAX)
            n = LEASE_AUTO_MAX;
    }
    if (n > s->burst)
        n = s->burst;
    /* No more than the bucket refills while a lease lives: a forfeited lease then costs its
     * key at most that much (10/m with a burst of 100 is counted exactly). */
    if (s->interval_us > 0 && n > LEASE_LIFE_US / s->interval_us)
        n = LEASE_LIFE_US / s->interval_us;
    return n < 1 ? 1 : n;
}

int bg_rl_lease_take(uint64_t key, int64_t burst, int64_t now_us, bg_rl_result *r)
{
    rl_lease *l = lease_slot(key);
    int64_t since;

    if (l->key != key || l->tokens <= 0 || now_us >= l->expires_us)
        return 0;
    l->tokens--;
    since = now_us - l->granted_us;
    memset(r, 0, sizeof(*r));
    r->allowed = 1;
    r->limit = burst;
    /* What an exact count would show: the bucket's remaining plus the tokens held here. */
    r->remaining = l->remaining + l->tokens;
    r->reset_us = l->reset_us > since ? l->reset_us - since : 0;
    return 1;
}

int64_t bg_rl_lease_left(uint64_t key, int64_t now_us)
{
    const rl_lease *l = lease_slot(key);

    return l->key == key && now_us < l->expires_us ? l->tokens : 0;
}

void bg_rl_lease_put(uint64_t key, int64_t tokens, const bg_rl_result *r, int64_t now_us)
{
    rl_lease *l = lease_slot(key);
    int fetching = l->key == key ? l->fetching : 0;

    if (l->key == key && l->tokens > 0 && now_us < l->expires_us)
        tokens += l->tokens; /* a concurrent grant: keep both */
    l->key = key;
    l->tokens = tokens;
    l->granted_us = now_us;
    l->expires_us = now_us + LEASE_LIFE_US;
    l->remaining = r->remaining;
    l->reset_us = r->reset_us;
    l->fetching = fetching;
}

int bg_rl_lease_fetching(uint64_t key)
{
    const rl_lease *l = lease_slot(key);

    return l->key == key && l->fetching;
}

void bg_rl_lease_set_fetching(uint64_t key, int on)
{
    rl_lease *l = lease_slot(key);

    if (l->key != key) {
        if (!on)
            return; /* the slot went to another bucket meanwhile */
        memset(l, 0, sizeof(*l));
        l->key = key;
    }
    l->fetching = on;
}
