/* ratelimit.h: [limits] rate_limit in the worker: which bucket a request counts in, the
 * check before dispatch (local shared memory or a Valkey script), 429 and RateLimit headers. */
#ifndef BUSGATE_RATELIMIT_H
#define BUSGATE_RATELIMIT_H

#include <jansson.h>
#include <stdint.h>

#include "busgate/routing/rate_bucket.h"
#include "exchange.h"

/* The rule that counts method on the route with template tmpl, or NULL: the longest
 * prefix (whole segments) wins, then a named method over "*", then the earlier line. */
const bg_rate_rule *bg_ratelimit_match(const bg_config *cfg, const char *method, const char *tmpl);
/* At plan time (route FOUND): the limit of x, if any (the ini rule that covers it, else
 * the limit its route's service declared), and x's bucket key from the limit, the route
 * and the client key (address, or a header's value). */
void bg_ratelimit_plan(bg_wk *wk, bg_xchg *x, const bg_http_request *req, const json_t *claims);
/* The connection's route handler: x is complete. Takes a token and dispatches x, or
 * answers 429. In cluster mode the answer comes from Valkey first, on the loop. */
void bg_ratelimit_route(bg_wk *wk, bg_xchg *x);

/* ratelimit.c, for ratelimit_cluster.c: the limit's bucket, and acting on a decision. */
void bg_ratelimit_policy(const bg_rate_spec *rule, bg_rl_policy *p);
void bg_ratelimit_decided(bg_wk *wk, bg_xchg *x, const bg_rl_result *r);
/* Valkey did not answer: let x through uncounted, and say so (metric, rate-limited log). */
void bg_ratelimit_fail_open(bg_wk *wk, bg_xchg *x, const char *why);

/* ratelimit_cluster.c: EVALSHA (EVAL on NOSCRIPT) of the bucket script on the dispatch
 * connection; bg_ratelimit_decided or bg_ratelimit_fail_open follow from its reply. */
void bg_ratelimit_cluster(bg_wk *wk, bg_xchg *x);
/* Worker setup, before the sandbox: the script's SHA1 for EVALSHA. */
void bg_ratelimit_setup(void);

/* ratelimit_lease.c: tokens a worker took from a cluster bucket and has not spent yet. */
/* How many tokens one script call takes for a limit: [limits] rate_lease, or with 0 (auto)
 * a sixteenth of the burst, at most 64; never more than the burst or than the bucket refills
 * in a lease's life (1 s); 1 means exact counting, one call per request. */
int64_t bg_rl_lease_size(const bg_config *cfg, const bg_rate_spec *s);
/* 1 and the result to report when the bucket key's lease had a token (now spent). */
int bg_rl_lease_take(uint64_t key, int64_t burst, int64_t now_us, bg_rl_result *r);
/* Tokens left in the key's lease (0 when none or expired). */
int64_t bg_rl_lease_left(uint64_t key, int64_t now_us);
/* Adds granted tokens to the key's lease, renewing its life; r is the bucket's state after
 * the grant (for the headers of the requests that spend them). */
void bg_rl_lease_put(uint64_t key, int64_t tokens, const bg_rl_result *r, int64_t now_us);
/* Whether a call for a whole lease of the key is on the bus; set and cleared around it. */
int bg_rl_lease_fetching(uint64_t key);
void bg_rl_lease_set_fetching(uint64_t key, int on);

#endif
