/* ratelimit.c: rate limits before dispatch: the limit (an ini rule, else the route's declared
 * one), bucket keys, the local check in the shared table, and the answers (429 problem+json,
 * RateLimit headers). */
#include "ratelimit.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "busgate/core/log.h"
#include "busgate/metrics/metrics.h"
#include "busgate/routing/rate_table.h"
#include "dispatch.h"

#define RL_WARN_EVERY_MS 10000 /* fail-open warnings, at most one per worker this often */

/* HEAD is served by GET routes, so GET rules count it. */
static int rl_method_ok(const bg_rate_rule *r, const char *method)
{
    return strcmp(r->method, "*") == 0 || strcmp(r->method, method) == 0 ||
           (strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0);
}

/* By whole segments: "/orders" covers "/orders" and "/orders/{id}", not "/ordersx". */
static size_t rl_prefix_len(const bg_rate_rule *r, const char *tmpl)
{
    size_t n = strlen(r->prefix);

    if (n == 1)
        return 1; /* "/" covers every route */
    if (strncmp(tmpl, r->prefix, n) != 0 || (tmpl[n] != '\0' && tmpl[n] != '/'))
        return 0;
    return n;
}

const bg_rate_rule *bg_ratelimit_match(const bg_config *cfg, const char *method, const char *tmpl)
{
    const bg_rate_rule *best = NULL;
    size_t best_len = 0;

    for (int i = 0; i < cfg->ratelimit.nrules; i++) {
        const bg_rate_rule *r = &cfg->ratelimit.rules[i];
        size_t n = rl_method_ok(r, method) ? rl_prefix_len(r, tmpl) : 0;

        if (n == 0 || n < best_len)
            continue;
        if (n == best_len && (strcmp(r->method, "*") == 0 || strcmp(best->method, "*") != 0))
            continue;
        best = r;
        best_len = n;
    }
    return best;
}

static uint64_t rl_hash(uint64_t h, const void *p, size_t len)
{
    const unsigned char *s = p;

    for (size_t i = 0; i < len; i++)
        h = (h ^ s[i]) * 1099511628211ULL; /* FNV-1a 64 */
    return h;
}

static uint64_t rl_hash_str(uint64_t h, const char *s)
{
    return rl_hash(h, s, strlen(s) + 1); /* the NUL separates fields */
}

static uint64_t rl_hash_spec(uint64_t h, const bg_rate_spec *s)
{
    int64_t nums[4] = {s->count, s->per_ms, s->burst, (int64_t)s->key};

    h = rl_hash(h, nums, sizeof(nums));
    return rl_hash_str(h, s->key_name);
}

/* The limit as written, so that a reload keeps the counts of an unchanged rule (its
 * position may move) and starts a changed one afresh; a route's declared limit is
 * counted apart from any rule ("svc"), and afresh when its service changes it. */
static uint64_t rl_hash_limit(const bg_rate_rule *r, const bg_rate_spec *declared)
{
    uint64_t h = 14695981039346656037ULL;

    if (r == NULL)
        return rl_hash_spec(rl_hash_str(h, "svc"), declared);
    h = rl_hash_str(h, r->method);
    h = rl_hash_str(h, r->prefix);
    return rl_hash_spec(h, &r->spec);
}

/* Spreads FNV's low bits, which pick the table slot (splitmix64's finaliser). */
static uint64_t rl_mix(uint64_t h)
{
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

/* The claim's value as text: a string as it is, a number or boolean as JSON writes it;
 * NULL when the token lacks it (or there is no token) or it is an object or array. */
static const char *rl_claim(const json_t *claims, const char *name, char *buf, size_t len)
{
    const json_t *v = claims != NULL ? json_object_get(claims, name) : NULL;

    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v))
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, len, "%s", json_is_true(v) ? "true" : "false");
    else
        return NULL;
    return buf;
}

void bg_ratelimit_plan(bg_wk *wk, bg_xchg *x, const bg_http_request *req, const json_t *claims)
{
    const char *method = strcmp(x->method, "HEAD") == 0 ? "GET" : x->method;
    const bg_rate_rule *r = bg_ratelimit_match(wk->cfg, x->method, x->match.endpoint);
    const bg_rate_spec *s = r != NULL ? &r->spec : &x->match.rate;
    const bg_http_header *h = NULL;
    const char *claim = NULL;
    char num[32];
    uint64_t k;

    /* The operator's rule overrides what the service declared (parsed by the master when
     * the route table was built: nothing is parsed here). */
    if (s->count <= 0)
        return;
    k = rl_hash_limit(r, s);
    k = rl_hash_str(k, method); /* per route: method and template */
    k = rl_hash_str(k, x->match.endpoint);
    if (s->key == BG_RATE_KEY_HEADER)
        h = bg_http_header_find(req, s->key_name);
    else if (s->key == BG_RATE_KEY_CLAIM)
        claim = rl_claim(claims, s->key_name, num, sizeof(num));
    /* Without the header or the claim the client is counted by its address, in a space
     * of its own, so that requests without a key do not share one bucket. */
    if (h != NULL)
        k = rl_hash(rl_hash_str(k, "h"), h->value.ptr, h->value.len);
    else if (claim != NULL)
        k = rl_hash_str(rl_hash_str(k, "c"), claim);
    else
        k = rl_hash_str(rl_hash_str(k, "a"), x->client);
    x->rl_spec = s;
    x->rl_key = rl_mix(k);
}

void bg_ratelimit_policy(const bg_rate_spec *lim, bg_rl_policy *p)
{
    p->interval_us = lim->interval_us;
    p->burst = lim->burst;
}

/* RateLimit-* as draft-ietf-httpapi-ratelimit-headers: limit = the burst, reset = seconds
 * until the bucket is full again, the policy's window = how long a full bucket takes. */
static void rl_render(const bg_rate_spec *lim, const bg_rl_result *r, char *out, size_t len)
{
    snprintf(out, len,
             "RateLimit-Limit: %lld\r\nRateLimit-Remaining: %lld\r\nRateLimit-Reset: %lld\r\n"
             "RateLimit-Policy: %lld;w=%lld\r\n",
             (long long)r->limit, (long long)r->remaining, (long long)bg_rl_seconds(r->reset_us),
             (long long)lim->burst, (long long)bg_rl_seconds(lim->interval_us * lim->burst));
}

static void rl_count(bg_wk *wk, bg_metric_counter c)
{
    if (wk->ctx->metrics != NULL)
        bg_metrics_count(wk->ctx->metrics, wk->ctx->slot, c, 1);
}

static void rl_deny(bg_wk *wk, bg_xchg *x, const bg_rl_result *r)
{
    const bg_rate_spec *lim = x->rl_spec;
    static const char *const unit[] = {"second", "minute", "hour"};
    int u = lim->per_ms == 1000 ? 0 : lim->per_ms == 60000 ? 1 : 2;
    int64_t retry = bg_rl_seconds(r->retry_after_us);
    char extra[256], detail[160];
    int n;

    rl_count(wk, BG_METRIC_RATELIMIT_DENIED);
    n = snprintf(extra, sizeof(extra), "Retry-After: %lld\r\n", (long long)(retry > 0 ? retry : 1));
    rl_render(lim, r, extra + n, sizeof(extra) - (size_t)n);
    snprintf(detail, sizeof(detail),
             "rate limit exceeded: %lld requests per %s (burst %lld) per %s; retry after %lld s",
             (long long)lim->count, unit[u], (long long)lim->burst,
             lim->key != BG_RATE_KEY_CLIENT ? lim->key_name : "client address",
             (long long)(retry > 0 ? retry : 1));
    bg_xchg_problem(x, 429, detail, extra);
}

void bg_ratelimit_decided(bg_wk *wk, bg_xchg *x, const bg_rl_result *r)
{
    if (!r->allowed) {
        rl_deny(wk, x, r);
        return;
    }
    if (wk->cfg->ratelimit.headers)
        rl_render(x->rl_spec, r, x->rl_headers, sizeof(x->rl_headers));
    bg_dispatch_send(wk->dispatch, x);
}

void bg_ratelimit_fail_open(bg_wk *wk, bg_xchg *x, const char *why)
{
    static int64_t last_warn_ms;
    int64_t now = bg_mono_ms();

    rl_count(wk, BG_METRIC_RATELIMIT_FAILOPEN);
    if (last_warn_ms == 0 || now - last_warn_ms >= RL_WARN_EVERY_MS) {
        last_warn_ms = now;
        bg_warn("rate limit not checked for request %s (let through): %s", x->id, why);
    }
    bg_dispatch_send(wk->dispatch, x);
}

static void rl_local(bg_wk *wk, bg_xchg *x)
{
    bg_rl_policy p;
    bg_rl_result r;

    bg_ratelimit_policy(x->rl_spec, &p);
    if (bg_rtab_take(wk->ctx->ratetable, x->rl_key, &p, bg_mono_us(), &r) & BG_RTAB_EVICTED_LIVE)
        rl_count(wk, BG_METRIC_RATELIMIT_EVICTED);
    bg_ratelimit_decided(wk, x, &r);
}

void bg_ratelimit_route(bg_wk *wk, bg_xchg *x)
{
    if (x->rl_spec == NULL) {
        bg_dispatch_send(wk->dispatch, x);
        return;
    }
    if (wk->cfg->ratelimit.mode == BG_RATE_CLUSTER) {
        bg_ratelimit_cluster(wk, x);
        return;
    }
    if (wk->ctx->ratetable == NULL) {
        bg_ratelimit_fail_open(wk, x, "no rate limit table");
        return;
    }
    rl_local(wk, x);
}
