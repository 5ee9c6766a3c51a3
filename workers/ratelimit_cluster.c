/* ratelimit_cluster.c: cluster-mode rate limits: the bucket kept in Valkey by a Lua script
 * on the worker's pipelined dispatch connection. One call may take several tokens at once
 * (a lease, ratelimit_lease.c), spent by the worker's next requests without a round trip. */
#include "ratelimit.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busgate/bus/bus_async.h"
#include "busgate/core/text.h"
#include "dispatch.h"

/* Takes up to ARGV[3] tokens at once, on Valkey's own clock (TIME), so gateways with skewed
 * clocks share one bucket. ARGV: interval_us, burst, want. The bucket is bg_rl_take's
 * theoretical arrival time (TAT). Returns {granted, max(tat, now) - now}: 0 granted is a
 * refusal, and the worker recomputes the headers from the TAT with bg_rl_take. The TAT is
 * stored as a decimal string with an expiry of when the bucket is full again, so an idle
 * key leaves Valkey by itself. */
static const char rl_script[] = "local t = redis.call('TIME')\n"
                                "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
                                "local iv = tonumber(ARGV[1])\n"
                                "local span = iv * tonumber(ARGV[2])\n"
                                "local want = tonumber(ARGV[3]) or 1\n"
                                "local tat = tonumber(redis.call('GET', KEYS[1])) or now\n"
                                "if tat < now then tat = now end\n"
                                "local n = math.floor((span - (tat - now)) / iv)\n"
                                "if n < 1 then return {0, tat - now} end\n"
                                "if n > want then n = want end\n"
                                "local nxt = tat + n * iv\n"
                                "redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX',\n"
                                "           math.floor((nxt - now) / 1000) + 1)\n"
                                "return {n, tat - now}\n";

static char rl_sha[41]; /* hex SHA1 of the script, for EVALSHA */

/* Before the sandbox: OpenSSL 3 may load its configuration file on first use. */
void bg_ratelimit_setup(void)
{
    unsigned char d[SHA_DIGEST_LENGTH];

    if (rl_sha[0] != '\0')
        return;
    SHA1((const unsigned char *)rl_script, sizeof(rl_script) - 1, d);
    bg_hex_encode(d, sizeof(d), rl_sha);
}

/* One script call: the bucket, its policy and how many tokens are wanted. */
typedef struct rl_call {
    bg_wk *wk;
    uint64_t key;
    bg_rl_policy policy;
    int64_t want;
} rl_call;

/* eval: the script itself (after NOSCRIPT: Valkey restarted or flushed its scripts). */
static int rl_send(const rl_call *c, int eval, bg_abus_reply_fn *fn, void *arg)
{
    char key[160], iv[24], burst[24], want[24];
    const char *argv[7];
    size_t argvlen[7];

    snprintf(key, sizeof(key), "%s:ratelimit:%016llx", c->wk->cfg->messaging.key_prefix,
             (unsigned long long)c->key);
    snprintf(iv, sizeof(iv), "%lld", (long long)c->policy.interval_us);
    snprintf(burst, sizeof(burst), "%lld", (long long)c->policy.burst);
    snprintf(want, sizeof(want), "%lld", (long long)c->want);
    argv[0] = eval ? "EVAL" : "EVALSHA";
    argv[1] = eval ? rl_script : rl_sha;
    argv[2] = "1";
    argv[3] = key;
    argv[4] = iv;
    argv[5] = burst;
    argv[6] = want;
    for (int i = 0; i < 7; i++)
        argvlen[i] = strlen(argv[i]);
    return bg_abus_command_argv(bg_dispatch_bus(c->wk->dispatch), fn, arg, 7, argv, argvlen);
}

static int rl_noscript(const redisReply *reply)
{
    return reply != NULL && reply->type == REDIS_REPLY_ERROR &&
           strncmp(reply->str, "NOSCRIPT", 8) == 0;
}

/* {granted, tat - now} into the tokens granted and the result of spending the last of
 * them; -1 for any other shape. */
static int64_t rl_parse(const rl_call *c, const redisReply *reply, bg_rl_result *r)
{
    int64_t granted, tat;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER ||
        reply->element[1]->type != REDIS_REPLY_INTEGER || reply->element[1]->integer < 0 ||
        reply->element[0]->integer < 0 || reply->element[0]->integer > c->want)
        return -1;
    granted = reply->element[0]->integer;
    tat = reply->element[1]->integer;
    /* The same arithmetic from the same state: "now" is 0, the TAT relative to it. */
    if (granted > 1)
        tat += (granted - 1) * c->policy.interval_us;
    bg_rl_take(&c->policy, tat, 0, r);
    r->allowed = granted > 0; /* the script's word is final */
    return granted;
}

static void rl_call_of(bg_wk *wk, const bg_xchg *x, int64_t want, rl_call *c)
{
    c->wk = wk;
    c->key = x->rl_key;
    bg_ratelimit_policy(x->rl_spec, &c->policy);
    c->want = want;
}

/* ---- a lease fetched ahead, with no request waiting on it ---- */

static void rl_on_prefetch_eval(bg_abus *b, redisReply *reply, void *arg)
{
    rl_call *c = arg;
    bg_rl_result r;
    int64_t granted = rl_parse(c, reply, &r);

    (void)b;
    bg_rl_lease_set_fetching(c->key, 0);
    if (granted > 0)
        bg_rl_lease_put(c->key, granted, &r, bg_mono_us());
    free(c);
}

static void rl_on_prefetch(bg_abus *b, redisReply *reply, void *arg)
{
    rl_call *c = arg;

    if (rl_noscript(reply) && rl_send(c, 1, rl_on_prefetch_eval, c) == BG_OK)
        return;
    rl_on_prefetch_eval(b, reply, arg);
}

/* Best effort: when it cannot be sent, the next request that finds the lease empty asks. */
static void rl_prefetch(const rl_call *from)
{
    rl_call *c = malloc(sizeof(*c));

    if (c == NULL)
        return;
    *c = *from;
    bg_rl_lease_set_fetching(c->key, 1);
    if (rl_send(c, 0, rl_on_prefetch, c) != BG_OK) {
        bg_rl_lease_set_fetching(c->key, 0);
        free(c);
    }
}

/* ---- a request waiting for its token ---- */

static void rl_on_eval(bg_abus *b, redisReply *reply, void *arg)
{
    bg_xchg *x = arg;
    rl_call c;
    bg_rl_result r;
    int64_t granted;
    int gone = x->conn == NULL;
    char why[160];

    (void)b;
    rl_call_of(x->wk, x, x->rl_want, &c);
    granted = rl_parse(&c, reply, &r);
    if (c.want > 1)
        bg_rl_lease_set_fetching(c.key, 0);
    /* The client may have left: its tokens are not lost, the next requests spend them. */
    if (gone && granted > 0)
        bg_rl_lease_put(c.key, granted, &r, bg_mono_us());
    else if (granted > 1) {
        bg_rl_lease_put(c.key, granted - 1, &r, bg_mono_us());
        r.remaining += granted - 1;
    }
    /* Without a connection this was x's last hold: x is freed here, not read again. With
     * one, its connection's queue still holds it. */
    bg_xchg_drop_bus(x);
    if (gone)
        return;
    if (reply == NULL) {
        bg_ratelimit_fail_open(x->wk, x, "Valkey did not answer the rate limit script");
        return;
    }
    if (granted < 0) {
        snprintf(why, sizeof(why), "rate limit script: unexpected reply%s%.100s",
                 reply->type == REDIS_REPLY_ERROR ? ": " : "",
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "");
        bg_ratelimit_fail_open(x->wk, x, why);
        return;
    }
    bg_ratelimit_decided(x->wk, x, &r);
}

static void rl_on_reply(bg_abus *b, redisReply *reply, void *arg)
{
    bg_xchg *x = arg;
    rl_call c;

    if (x->conn == NULL || !rl_noscript(reply)) {
        rl_on_eval(b, reply, arg);
        return;
    }
    bg_xchg_drop_bus(x); /* the queue holds x; a new bus hold follows */
    rl_call_of(x->wk, x, x->rl_want, &c);
    if (rl_send(&c, 1, rl_on_eval, x) == BG_OK) {
        bg_xchg_hold_bus(x);
        return;
    }
    if (c.want > 1)
        bg_rl_lease_set_fetching(c.key, 0);
    bg_ratelimit_fail_open(x->wk, x, "the bus connection is down or full");
}

void bg_ratelimit_cluster(bg_wk *wk, bg_xchg *x)
{
    int64_t lease = bg_rl_lease_size(wk->cfg, x->rl_spec), now = bg_mono_us();
    bg_rl_result r;
    rl_call c;

    if (lease > 1 && bg_rl_lease_take(x->rl_key, x->rl_spec->burst, now, &r)) {
        /* Half spent: fetch the next lease now, so that requests seldom wait for one. */
        if (bg_rl_lease_left(x->rl_key, now) <= lease / 2 && !bg_rl_lease_fetching(x->rl_key)) {
            rl_call_of(wk, x, lease, &c);
            rl_prefetch(&c);
        }
        bg_ratelimit_decided(wk, x, &r);
        return;
    }
    /* One lease call per bucket at a time; requests meanwhile take one token each. */
    x->rl_want = lease > 1 && !bg_rl_lease_fetching(x->rl_key) ? lease : 1;
    rl_call_of(wk, x, x->rl_want, &c);
    if (c.want > 1)
        bg_rl_lease_set_fetching(c.key, 1);
    if (rl_send(&c, 0, rl_on_reply, x) != BG_OK) {
        if (c.want > 1)
            bg_rl_lease_set_fetching(c.key, 0);
        bg_ratelimit_fail_open(wk, x, "the bus connection is down or full");
        return;
    }
    bg_xchg_hold_bus(x); /* dropped by the callback, which always runs */
}
