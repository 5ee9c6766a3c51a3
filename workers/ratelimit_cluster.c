/* ratelimit_cluster.c: cluster-mode rate limits: the bucket kept in Valkey by one Lua
 * script per request, on the worker's pipelined dispatch connection. */
#include "ratelimit.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "busgate/bus/bus_async.h"
#include "busgate/core/text.h"
#include "dispatch.h"

/* bg_rl_take in Lua, on Valkey's own clock (TIME), so gateways with skewed clocks share
 * one bucket. ARGV: interval_us, burst. Returns {allowed, max(tat, now) - now}: the
 * worker recomputes the same answer from that with bg_rl_take for the headers. The TAT
 * is stored as a decimal string with an expiry of when the bucket is full again, so an
 * idle key leaves Valkey by itself. */
static const char rl_script[] = "local t = redis.call('TIME')\n"
                                "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
                                "local iv = tonumber(ARGV[1])\n"
                                "local span = iv * tonumber(ARGV[2])\n"
                                "local tat = tonumber(redis.call('GET', KEYS[1])) or now\n"
                                "if tat < now then tat = now end\n"
                                "local nxt = tat + iv\n"
                                "if nxt - now > span then return {0, tat - now} end\n"
                                "redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX',\n"
                                "           math.floor((nxt - now) / 1000) + 1)\n"
                                "return {1, tat - now}\n";

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

static void rl_on_reply(bg_abus *b, redisReply *reply, void *arg);
static void rl_on_eval(bg_abus *b, redisReply *reply, void *arg);

/* eval: the script itself (after NOSCRIPT: Valkey restarted or flushed its scripts). */
static int rl_send(bg_wk *wk, bg_xchg *x, int eval)
{
    char key[160], iv[24], burst[24];
    const char *argv[6];
    size_t argvlen[6];

    snprintf(key, sizeof(key), "%s:ratelimit:%016llx", wk->cfg->messaging.key_prefix,
             (unsigned long long)x->rl_key);
    snprintf(iv, sizeof(iv), "%lld", (long long)x->rl_spec->interval_us);
    snprintf(burst, sizeof(burst), "%lld", (long long)x->rl_spec->burst);
    argv[0] = eval ? "EVAL" : "EVALSHA";
    argv[1] = eval ? rl_script : rl_sha;
    argv[2] = "1";
    argv[3] = key;
    argv[4] = iv;
    argv[5] = burst;
    for (int i = 0; i < 6; i++)
        argvlen[i] = strlen(argv[i]);
    if (bg_abus_command_argv(bg_dispatch_bus(wk->dispatch), eval ? rl_on_eval : rl_on_reply, x, 6,
                             argv, argvlen) != BG_OK)
        return BG_ERR;
    bg_xchg_hold_bus(x); /* dropped by the callback, which always runs */
    return BG_OK;
}

/* {allowed, tat - now} into a result; BG_ERR for any other shape. */
static int rl_parse(const bg_xchg *x, const redisReply *reply, bg_rl_result *r)
{
    bg_rl_policy p;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER ||
        reply->element[1]->type != REDIS_REPLY_INTEGER || reply->element[1]->integer < 0)
        return BG_ERR;
    bg_ratelimit_policy(x->rl_spec, &p);
    /* The same arithmetic from the same state: "now" is 0, the TAT relative to it. */
    bg_rl_take(&p, reply->element[1]->integer, 0, r);
    r->allowed = reply->element[0]->integer == 1; /* the script's word is final */
    return BG_OK;
}

/* x is still held by its connection's queue (checked), so dropping the bus hold first
 * leaves it alive, and dispatch may take a hold of its own. */
static void rl_answer(bg_xchg *x, const redisReply *reply)
{
    bg_wk *wk = x->wk;
    bg_rl_result r;
    char why[160];

    bg_xchg_drop_bus(x);
    if (reply == NULL) {
        bg_ratelimit_fail_open(wk, x, "Valkey did not answer the rate limit script");
        return;
    }
    if (rl_parse(x, reply, &r) != BG_OK) {
        snprintf(why, sizeof(why), "rate limit script: unexpected reply%s%.100s",
                 reply->type == REDIS_REPLY_ERROR ? ": " : "",
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "");
        bg_ratelimit_fail_open(wk, x, why);
        return;
    }
    bg_ratelimit_decided(wk, x, &r);
}

static void rl_on_eval(bg_abus *b, redisReply *reply, void *arg)
{
    bg_xchg *x = arg;

    (void)b;
    if (x->conn == NULL) {
        bg_xchg_drop_bus(x); /* the client left: nothing to answer */
        return;
    }
    rl_answer(x, reply);
}

static void rl_on_reply(bg_abus *b, redisReply *reply, void *arg)
{
    bg_xchg *x = arg;

    (void)b;
    if (x->conn != NULL && reply != NULL && reply->type == REDIS_REPLY_ERROR &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        bg_xchg_drop_bus(x); /* the queue holds x; rl_send takes a new bus hold */
        if (rl_send(x->wk, x, 1) != BG_OK)
            bg_ratelimit_fail_open(x->wk, x, "the bus connection is down or full");
        return;
    }
    rl_on_eval(b, reply, arg);
}

void bg_ratelimit_cluster(bg_wk *wk, bg_xchg *x)
{
    if (rl_send(wk, x, 0) != BG_OK)
        bg_ratelimit_fail_open(wk, x, "the bus connection is down or full");
}
