/* test_ratelimit.c: the token bucket arithmetic (GCRA) and the shared-memory bucket table
 * from raw inputs: burst, refill, header values, eviction, and counts shared across fork;
 * which [limits] rule counts a route; the rate grammar rules and declarations share. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "busgate/core/rate_spec.h"
#include "busgate/routing/rate_bucket.h"
#include "busgate/routing/rate_table.h"
#include "ratelimit.h"

#define SEC 1000000LL

/* ---- the bucket ---- */

Test(rl_bucket, burst_then_denied_then_refill)
{
    bg_rl_policy p = {.interval_us = SEC / 10, .burst = 5}; /* 10/s, burst 5 */
    bg_rl_result r;
    int64_t tat = 0, now = 1000 * SEC;

    for (int i = 0; i < 5; i++) {
        tat = bg_rl_take(&p, tat, now, &r);
        cr_assert_eq(r.allowed, 1, "request %d of the burst", i);
        cr_assert_eq(r.limit, 5);
        cr_assert_eq(r.remaining, 4 - i);
    }
    cr_assert_eq(bg_rl_take(&p, tat, now, &r), tat, "a denied request stores nothing");
    cr_assert_eq(r.allowed, 0);
    cr_assert_eq(r.remaining, 0);
    cr_assert_eq(r.retry_after_us, SEC / 10, "one token comes after one interval");
    cr_assert_eq(r.reset_us, SEC / 2, "full again after five intervals");
    now += SEC / 10 - 1;
    bg_rl_take(&p, tat, now, &r);
    cr_assert_eq(r.allowed, 0, "one microsecond early");
    cr_assert_eq(r.retry_after_us, 1);
    now += 1;
    tat = bg_rl_take(&p, tat, now, &r);
    cr_assert_eq(r.allowed, 1, "refilled one token");
    cr_assert_eq(r.remaining, 0);
    now += 100 * SEC;
    bg_rl_take(&p, tat, now, &r);
    cr_assert_eq(r.remaining, 4, "an idle bucket refills to its burst, no further");
}

Test(rl_bucket, past_tat_is_a_full_bucket)
{
    bg_rl_policy p = {.interval_us = 60 * SEC, .burst = 3}; /* 1/m, burst 3 */
    bg_rl_result a, b;

    bg_rl_take(&p, 0, 5 * SEC, &a);
    bg_rl_take(&p, 4 * SEC, 5 * SEC, &b);
    cr_assert_eq(a.allowed, b.allowed);
    cr_assert_eq(a.remaining, b.remaining);
    cr_assert_eq(a.remaining, 2);
    cr_assert_eq(a.reset_us, 60 * SEC, "full again one interval after one request");
}

Test(rl_bucket, burst_of_one_and_header_seconds)
{
    bg_rl_policy p = {.interval_us = SEC / 3, .burst = 1}; /* 3/s, no burst */
    bg_rl_result r;
    int64_t tat = bg_rl_take(&p, 0, 0, &r);

    cr_assert_eq(r.allowed, 1);
    cr_assert_eq(r.remaining, 0);
    bg_rl_take(&p, tat, 1, &r);
    cr_assert_eq(r.allowed, 0);
    cr_assert_eq(r.retry_after_us, SEC / 3 - 1);
    cr_assert_eq(bg_rl_seconds(r.retry_after_us), 1, "rounded up");
    cr_assert_eq(bg_rl_seconds(0), 0);
    cr_assert_eq(bg_rl_seconds(SEC), 1);
    cr_assert_eq(bg_rl_seconds(SEC + 1), 2);
}

Test(rl_bucket, large_values_do_not_overflow)
{
    bg_rl_policy p = {.interval_us = 3600 * SEC, .burst = 1000000}; /* 1/h, burst 1e6 */
    bg_rl_result r;
    int64_t now = 1700000000LL * SEC; /* a wall clock in µs, as Valkey's TIME gives */

    bg_rl_take(&p, 0, now, &r);
    cr_assert_eq(r.allowed, 1);
    cr_assert_eq(r.remaining, 999999);
}

/* ---- the table ---- */

Test(rl_table, sizes_round_up_and_keys_are_separate)
{
    char err[BG_ERR_LEN];
    bg_ratetable *t = bg_rtab_create(1000, err);
    bg_rl_policy p = {.interval_us = SEC, .burst = 2};
    bg_rl_result r;

    cr_assert_not_null(t, "%s", err);
    cr_assert_eq(bg_rtab_slots(t), 1024);
    cr_assert_geq(bg_rtab_mapping_size(t), 1024 * BG_RTAB_SLOT_BYTES);
    for (int i = 0; i < 2; i++) {
        bg_rtab_take(t, 42, &p, 10 * SEC, &r);
        cr_assert_eq(r.allowed, 1);
    }
    bg_rtab_take(t, 42, &p, 10 * SEC, &r);
    cr_assert_eq(r.allowed, 0, "key 42 spent its burst");
    bg_rtab_take(t, 43, &p, 10 * SEC, &r);
    cr_assert_eq(r.allowed, 1, "key 43 has its own bucket");
    bg_rtab_take(t, 0, &p, 10 * SEC, &r);
    cr_assert_eq(r.allowed, 1, "key 0 is stored as 1");
    cr_assert_eq(bg_rtab_used(t), 3);
    bg_rtab_take(t, 42, &p, 11 * SEC, &r);
    cr_assert_eq(r.allowed, 1, "refilled after one interval");
    bg_rtab_destroy(t);
    cr_assert_eq(bg_rtab_slots(t = bg_rtab_create(0, err)), BG_RTAB_PROBES);
    bg_rtab_destroy(t);
}

/* Every key hashes to the same neighbourhood: the ninth key must evict one. */
Test(rl_table, eviction_prefers_full_buckets_and_counts_live_ones)
{
    char err[BG_ERR_LEN];
    bg_ratetable *t = bg_rtab_create(64, err);
    bg_rl_policy p = {.interval_us = SEC, .burst = 1};
    bg_rl_result r;
    uint64_t base = 64; /* keys base*i all start at slot 0 */
    int flags;

    for (uint64_t i = 1; i <= BG_RTAB_PROBES; i++) {
        cr_assert_eq(bg_rtab_take(t, base * i, &p, 100 * SEC + (int64_t)i, &r), 0);
        cr_assert_eq(r.allowed, 1);
    }
    /* Long after: every bucket is full again, evicting one is free. */
    flags = bg_rtab_take(t, base * 100, &p, 200 * SEC, &r);
    cr_assert_eq(flags, 0, "a stale bucket is evicted silently");
    cr_assert_eq(r.allowed, 1);
    cr_assert_eq(bg_rtab_used(t), BG_RTAB_PROBES, "memory stays bounded");
    /* Now all are live (just used): the next new key evicts a live one and says so. */
    for (uint64_t i = 2; i <= BG_RTAB_PROBES; i++)
        bg_rtab_take(t, base * i, &p, 200 * SEC, &r);
    flags = bg_rtab_take(t, base * 101, &p, 200 * SEC, &r);
    cr_assert_eq(flags, BG_RTAB_EVICTED_LIVE);
    cr_assert_eq(r.allowed, 1, "the new key starts with a full bucket, not the old debt");
    bg_rtab_destroy(t);
}

/* Several processes on one mapping: the allowed total is exactly the burst. */
Test(rl_table, forked_workers_share_one_count)
{
    char err[BG_ERR_LEN];
    bg_ratetable *t = bg_rtab_create(4096, err);
    bg_rl_policy p = {.interval_us = 3600 * SEC, .burst = 1000}; /* no refill in the test */
    _Atomic int *allowed =
        mmap(NULL, sizeof(*allowed), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pid_t pids[4];
    int64_t now = 50 * SEC;

    cr_assert_not_null(t, "%s", err);
    cr_assert_neq(allowed, MAP_FAILED);
    atomic_store(allowed, 0);
    for (int w = 0; w < 4; w++) {
        pids[w] = fork();
        cr_assert_geq(pids[w], 0);
        if (pids[w] == 0) {
            bg_rl_result r;
            for (int i = 0; i < 2000; i++) {
                bg_rtab_take(t, 777, &p, now, &r);
                if (r.allowed)
                    atomic_fetch_add(allowed, 1);
            }
            _exit(0);
        }
    }
    for (int w = 0; w < 4; w++) {
        int st;
        cr_assert_eq(waitpid(pids[w], &st, 0), pids[w]);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    cr_assert_eq(atomic_load(allowed), 1000, "8000 tries over 4 processes, burst 1000");
    munmap(allowed, sizeof(*allowed));
    bg_rtab_destroy(t);
}

/* ---- which rule counts a request (workers/ratelimit.c) ---- */

static void add_rule(bg_config *cfg, const char *method, const char *prefix)
{
    bg_rate_rule *r = &cfg->ratelimit.rules[cfg->ratelimit.nrules++];

    snprintf(r->method, sizeof(r->method), "%s", method);
    snprintf(r->prefix, sizeof(r->prefix), "%s", prefix);
    r->line = cfg->ratelimit.nrules;
}

static int matched_line(const bg_config *cfg, const char *method, const char *tmpl)
{
    const bg_rate_rule *r = bg_ratelimit_match(cfg, method, tmpl);

    return r != NULL ? r->line : 0;
}

Test(rl_match, longest_prefix_then_method_then_order)
{
    static bg_config cfg;

    bg_config_defaults(&cfg);
    cr_assert_eq(matched_line(&cfg, "GET", "/orders"), 0, "no rules: nothing counts");
    add_rule(&cfg, "*", "/");                    /* 1 */
    add_rule(&cfg, "*", "/orders");              /* 2 */
    add_rule(&cfg, "GET", "/orders");            /* 3 */
    add_rule(&cfg, "POST", "/orders/{id}");      /* 4 */
    add_rule(&cfg, "GET", "/orders/{id}/items"); /* 5 */
    cr_assert_eq(matched_line(&cfg, "GET", "/health/{x}"), 1, "/ covers every route");
    cr_assert_eq(matched_line(&cfg, "GET", "/ordersx"), 1, "whole segments only");
    cr_assert_eq(matched_line(&cfg, "DELETE", "/orders"), 2);
    cr_assert_eq(matched_line(&cfg, "GET", "/orders"), 3, "a named method beats *");
    cr_assert_eq(matched_line(&cfg, "HEAD", "/orders"), 3, "HEAD is counted by GET rules");
    cr_assert_eq(matched_line(&cfg, "GET", "/orders/{id}"), 3, "POST rule 4 is not for GET");
    cr_assert_eq(matched_line(&cfg, "POST", "/orders/{id}"), 4, "the longer prefix wins");
    cr_assert_eq(matched_line(&cfg, "POST", "/orders/{id}/items"), 4);
    cr_assert_eq(matched_line(&cfg, "GET", "/orders/{id}/items"), 5);
    cr_assert_eq(matched_line(&cfg, "PUT", "/orders/{id}/items"), 2);
}

Test(rl_match, first_line_wins_a_tie)
{
    static bg_config cfg;

    bg_config_defaults(&cfg);
    add_rule(&cfg, "GET", "/a");
    add_rule(&cfg, "*", "/a");
    cr_assert_eq(matched_line(&cfg, "GET", "/a/{b}"), 1);
    cr_assert_eq(matched_line(&cfg, "PUT", "/a/{b}"), 2);
}

/* ---- the rate grammar (core/rate_spec.c) ---- */

static bg_rate_spec spec(const char *text)
{
    char why[BG_ERR_LEN] = "";
    bg_rate_spec s;

    cr_assert_eq(bg_rate_spec_parse(text, &s, why), BG_OK, "'%s': %s", text, why);
    return s;
}

Test(rate_spec, parse_format_round_trip)
{
    static const char *const canonical[] = {"10/s",
                                            "2/m",
                                            "5/h burst=1",
                                            "100/s burst=200",
                                            "3/m key=header:X-Api-Key",
                                            "5/s key=claim:sub",
                                            "1/s burst=4 key=header:X-Api-Key"};
    char out[BG_RATE_SPEC_TEXT_MAX + 1];
    bg_rate_spec s = spec("  2/m   burst=2 key=client ");

    cr_assert_eq(s.count, 2);
    cr_assert_eq(s.per_ms, 60000);
    cr_assert_eq(s.interval_us, 30000000);
    cr_assert_eq(s.burst, 2);
    cr_assert_eq(s.key, BG_RATE_KEY_CLIENT);
    bg_rate_spec_format(&s, out, sizeof(out));
    cr_assert_str_eq(out, "2/m", "defaults are not written");
    for (size_t i = 0; i < sizeof(canonical) / sizeof(canonical[0]); i++) {
        s = spec(canonical[i]);
        bg_rate_spec_format(&s, out, sizeof(out));
        cr_assert_str_eq(out, canonical[i]);
    }
    s.count = 0;
    bg_rate_spec_format(&s, out, sizeof(out));
    cr_assert_str_eq(out, "", "no limit");
}

Test(rate_spec, refused_with_reason)
{
    static const char *const bad[][2] = {
        {"", "'' is not a rate like 10/s"},
        {"+5/s", "the count must be 1..1000000"},
        {"1000001/s", "the count must be 1..1000000"},
        {"5/s burst=", "burst must be 1..1000000"},
        {"5/s burst=-1", "burst must be 1..1000000"},
        {"5/s key=header:Bad Name", "unknown option 'Name'"},
        {"5/s key=claim:", "is not client, header:<Name> or claim:<name>"},
        {"5/s key=cookie:sid", "is not client, header:<Name> or claim:<name>"},
    };
    char why[BG_ERR_LEN];
    bg_rate_spec s;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        cr_assert_eq(bg_rate_spec_parse(bad[i][0], &s, why), BG_ERR, "'%s' accepted", bad[i][0]);
        cr_assert_not_null(strstr(why, bad[i][1]), "'%s': '%s'", bad[i][0], why);
    }
}

/* Stricter: any limit over none, then the lower rate, then the smaller burst; a total
 * order, so that merging instances never depends on their order. */
Test(rate_spec, stricter_order)
{
    bg_rate_spec none = {0}, a = spec("60/m"), b = spec("1/s burst=10"), c = spec("59/m"),
                 d = spec("1/s key=header:X-K");

    cr_assert_lt(bg_rate_spec_cmp(&a, &none), 0);
    cr_assert_gt(bg_rate_spec_cmp(&none, &a), 0);
    cr_assert_eq(bg_rate_spec_cmp(&none, &none), 0);
    cr_assert_lt(bg_rate_spec_cmp(&c, &a), 0, "59/m is slower than 60/m");
    cr_assert_gt(bg_rate_spec_cmp(&a, &b), 0, "60/m is 1/s: the burst of 10 is stricter than 60");
    cr_assert_neq(bg_rate_spec_cmp(&a, &d), 0, "different keys are different limits");
    cr_assert_eq(bg_rate_spec_cmp(&a, &a), 0);
    cr_assert_eq(bg_rate_spec_cmp(&a, &d) < 0, bg_rate_spec_cmp(&d, &a) > 0, "antisymmetric");
}

/* ---- cluster-mode leases (workers/ratelimit_lease.c) ---- */

static bg_rate_spec lease_spec(const char *text)
{
    bg_rate_spec s;
    char err[BG_ERR_LEN] = "";

    cr_assert_eq(bg_rate_spec_parse(text, &s, err), BG_OK, "%s: %s", text, err);
    return s;
}

Test(ratelimit_lease, size_follows_burst_refill_and_setting)
{
    bg_config cfg;
    bg_rate_spec fast = lease_spec("1000000/s burst=1000000"), mid = lease_spec("100/s burst=200");
    bg_rate_spec slow = lease_spec("10/m burst=100"), small = lease_spec("1000/s burst=6");

    memset(&cfg, 0, sizeof(cfg));
    cr_assert_eq(bg_rl_lease_size(&cfg, &fast), 64, "auto: a sixteenth, at most 64");
    cr_assert_eq(bg_rl_lease_size(&cfg, &mid), 12, "auto: 200 / 16");
    cr_assert_eq(bg_rl_lease_size(&cfg, &slow), 1, "refills under one token a second: exact");
    cr_assert_eq(bg_rl_lease_size(&cfg, &small), 1, "a burst under 32: exact");
    cfg.ratelimit.lease = 1000;
    cr_assert_eq(bg_rl_lease_size(&cfg, &mid), 100, "set, but at most one second's refill");
    cr_assert_eq(bg_rl_lease_size(&cfg, &small), 6, "set, but at most the burst");
    cfg.ratelimit.lease = 1;
    cr_assert_eq(bg_rl_lease_size(&cfg, &fast), 1, "1: exact counting");
}

Test(ratelimit_lease, tokens_are_spent_once_and_expire)
{
    bg_rl_result got = {.remaining = 40, .reset_us = 5000000}, r;
    uint64_t key = 0xabcdef12345ULL, other = key + 1024; /* the same slot */
    int64_t now = 1000000000;

    cr_assert_eq(bg_rl_lease_take(key, 100, now, &r), 0, "nothing leased yet");
    bg_rl_lease_put(key, 3, &got, now);
    cr_assert_eq(bg_rl_lease_left(key, now), 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(bg_rl_lease_take(key, 100, now + 1000, &r), 1, "token %d", i);
        cr_assert(r.allowed);
        cr_assert_eq(r.limit, 100);
        cr_assert_eq(r.remaining, 40 + 2 - i, "the bucket's 40 and the tokens still held");
        cr_assert_eq(r.reset_us, 5000000 - 1000);
    }
    cr_assert_eq(bg_rl_lease_take(key, 100, now + 1000, &r), 0, "spent");
    bg_rl_lease_put(key, 2, &got, now);
    cr_assert_eq(bg_rl_lease_take(key, 100, now + 1000001, &r), 0, "forfeited after 1 s");
    now += 2000000;
    bg_rl_lease_put(key, 2, &got, now); /* the forfeited tokens are not added */
    bg_rl_lease_put(key, 5, &got, now + 10);
    cr_assert_eq(bg_rl_lease_left(key, now + 10), 7, "a second grant adds to the first");
    bg_rl_lease_set_fetching(key, 1);
    cr_assert(bg_rl_lease_fetching(key));
    bg_rl_lease_put(other, 1, &got, now);
    cr_assert_eq(bg_rl_lease_left(key, now), 0, "a key on the same slot took it");
    cr_assert_not(bg_rl_lease_fetching(other));
    bg_rl_lease_set_fetching(key, 0); /* the slot is other's now: nothing changes */
    cr_assert_eq(bg_rl_lease_left(other, now), 1);
}
