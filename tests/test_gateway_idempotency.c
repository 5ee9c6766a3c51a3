/* test_gateway_idempotency.c: Idempotency-Key end to end (real valkey-server, busgated and
 * echo-service): a retry of a finished request is replayed without reaching the service, a
 * retry while the first is in flight gets 409, a key reused for another request 422, a bad
 * key 400, and the record lives in Valkey with the configured time to live. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gw_fixture.h"

#define IDEM_SECTIONS "[idempotency]\nmethods = GET, POST\nttl = 1h\n"

static bgt_fix fix;

static void setup(void)
{
    cr_assert_eq(bgt_fix_start_ex(&fix, NULL, IDEM_SECTIONS, 1), 0, "fixture did not start");
}

static void teardown(void)
{
    bgt_fix_stop(&fix);
}

TestSuite(gateway_idempotency, .init = setup, .fini = teardown, .timeout = 60);

static redisReply *valkey(const char *fmt, const char *arg)
{
    char err[BG_ERR_LEN];
    bg_bus *b = bgt_fix_bus_open(&fix);
    redisReply *r;

    cr_assert_not_null(b, "cannot reach the test's valkey-server");
    r = bg_bus_command(b, err, fmt, arg);
    bg_bus_free(b);
    cr_assert_not_null(r, "%s", err);
    return r;
}

/* REQUEST frames on the echo stream whose path is path. */
static int requests_for(const char *path)
{
    redisReply *r = valkey("XRANGE %s - +", "router:requests:{echo}");
    int n = 0;

    for (size_t i = 0; i < r->elements; i++) {
        redisReply *kv = r->element[i]->element[1];
        for (size_t j = 0; j + 1 < kv->elements; j += 2)
            n += strcmp(kv->element[j]->str, "path") == 0 &&
                 strcmp(kv->element[j + 1]->str, path) == 0;
    }
    freeReplyObject(r);
    return n;
}

static int post(const char *path, const char *key, const char *body, bgt_resp *r)
{
    char raw[1024];
    int n = snprintf(raw, sizeof(raw),
                     "POST %s HTTP/1.1\r\nHost: t\r\nIdempotency-Key: %s\r\n"
                     "Content-Type: text/plain\r\nContent-Length: %zu\r\n\r\n%s",
                     path, key, strlen(body), body);

    return bgt_fix_request(&fix, raw, (size_t)n, r, 5000);
}

Test(gateway_idempotency, a_finished_request_is_replayed_not_run_again)
{
    char replayed[16] = "", rid1[64] = "", rid2[64] = "", ct1[64] = "", ct2[64] = "";
    bgt_resp first, again;

    cr_assert_eq(post("/echo/pay-1", "\"k-0001\"", "amount=5", &first), 200);
    cr_assert_neq(bgt_resp_header(&first, "Idempotent-Replayed", replayed, sizeof(replayed)), 0,
                  "a first answer is not a replay");
    cr_assert_eq(post("/echo/pay-1", "k-0001", "amount=5", &again), 200,
                 "bare or quoted: one key: %s", again.body);
    cr_assert_eq(bgt_resp_header(&again, "Idempotent-Replayed", replayed, sizeof(replayed)), 0);
    cr_assert_str_eq(replayed, "true");
    /* the service's headers too, not only its body */
    cr_assert_eq(bgt_resp_header(&first, "Content-Type", ct1, sizeof(ct1)), 0);
    cr_assert_eq(bgt_resp_header(&again, "Content-Type", ct2, sizeof(ct2)), 0,
                 "the replay lost the service's Content-Type");
    cr_assert_str_eq(ct2, ct1);
    /* the same answer, down to the first request's id the service echoed */
    cr_assert_eq(again.body_len, first.body_len);
    cr_assert_eq(memcmp(again.body, first.body, first.body_len), 0);
    cr_assert_eq(bgt_resp_header(&first, "X-Request-Id", rid1, sizeof(rid1)), 0);
    cr_assert_eq(bgt_resp_header(&again, "X-Request-Id", rid2, sizeof(rid2)), 0);
    cr_assert_str_neq(rid1, rid2, "the replay is its own exchange");
    cr_assert_eq(requests_for("/echo/pay-1"), 1, "the retry reached the service");
    bgt_resp_free(&first);
    bgt_resp_free(&again);
}

Test(gateway_idempotency, a_key_reused_for_another_request_is_422)
{
    bgt_resp r;

    cr_assert_eq(post("/echo/pay-2", "k-0002", "amount=5", &r), 200);
    bgt_resp_free(&r);
    cr_assert_eq(post("/echo/pay-2", "k-0002", "amount=6", &r), 422);
    bgt_resp_free(&r);
    cr_assert_eq(requests_for("/echo/pay-2"), 1);
    /* another route is another key space */
    cr_assert_eq(post("/echo/pay-3", "k-0002", "amount=6", &r), 200);
    bgt_resp_free(&r);
}

/* A retry while the first try is still with the service: 409 with Retry-After, and only
 * one REQUEST on the bus; the first try still gets its own answer (the service's 200, or
 * the gateway's 504 on a machine so loaded that the fixture's 2 s deadline passed). */
Test(gateway_idempotency, a_retry_in_flight_is_409)
{
    const char slow[] =
        "GET /echo/slow?ms=1500 HTTP/1.1\r\nHost: t\r\nIdempotency-Key: k-0003\r\n\r\n";
    char retry_after[16] = "";
    bgt_conn c;
    bgt_resp r, second;

    cr_assert_eq(bgt_conn_open(&c, fix.port), 0);
    cr_assert_eq(bgt_conn_send(&c, slow, sizeof(slow) - 1), 0);
    for (int i = 0; i < 500 && requests_for("/echo/slow") == 0; i++)
        usleep(10 * 1000);
    cr_assert_eq(requests_for("/echo/slow"), 1, "the first try never reached the bus");
    cr_assert_eq(bgt_fix_request(&fix, slow, sizeof(slow) - 1, &second, 5000), 409);
    cr_assert_eq(bgt_resp_header(&second, "Retry-After", retry_after, sizeof(retry_after)), 0);
    bgt_resp_free(&second);
    cr_assert_eq(bgt_conn_read(&c, &r, 0, 10000), 0);
    cr_assert(r.status == 200 || r.status == 504, "status %d", r.status);
    bgt_resp_free(&r);
    bgt_conn_close(&c);
    cr_assert_eq(requests_for("/echo/slow"), 1);
}

Test(gateway_idempotency, bad_keys_are_400_and_other_methods_untouched)
{
    char key[400];
    bgt_resp r;

    memset(key, 'a', 300);
    key[300] = '\0';
    cr_assert_eq(post("/echo/pay-4", key, "x", &r), 400);
    bgt_resp_free(&r);
    cr_assert_eq(post("/echo/pay-4", "\"\"", "x", &r), 400);
    bgt_resp_free(&r);
    cr_assert_eq(requests_for("/echo/pay-4"), 0);
    /* PUT is not in this gateway's methods: every try runs */
    for (int i = 0; i < 2; i++) {
        const char put[] = "PUT /echo/pay-5 HTTP/1.1\r\nHost: t\r\nIdempotency-Key: k-0005\r\n"
                           "Content-Length: 1\r\n\r\nx";
        cr_assert_eq(bgt_fix_request(&fix, put, sizeof(put) - 1, &r, 5000), 200);
        bgt_resp_free(&r);
    }
    cr_assert_eq(requests_for("/echo/pay-5"), 2);
}

/* One record per key and route, in the service's hash slot, expiring after ttl. */
Test(gateway_idempotency, the_record_expires_after_the_ttl)
{
    redisReply *keys, *ttl;
    bgt_resp r;

    cr_assert_eq(post("/echo/pay-6", "k-0006", "x", &r), 200);
    bgt_resp_free(&r);
    keys = valkey("KEYS %s", "router:idem:{echo}:*");
    cr_assert_eq(keys->elements, 1u);
    ttl = valkey("PTTL %s", keys->element[0]->str);
    cr_assert_eq(ttl->type, REDIS_REPLY_INTEGER);
    cr_assert(ttl->integer > 0 && ttl->integer <= 3600 * 1000, "PTTL %lld", ttl->integer);
    freeReplyObject(ttl);
    freeReplyObject(keys);
}

/* The answer replaces the in-flight record (SET XX): a record that vanished while the
 * request ran (an operator's DEL, a flush) is not brought back, so the next try with
 * the key runs again instead of replaying. */
Test(gateway_idempotency, a_record_deleted_in_flight_is_not_recreated)
{
    const char slow[] = "POST /echo/slow?ms=700 HTTP/1.1\r\nHost: t\r\nIdempotency-Key: k-0009\r\n"
                        "Content-Length: 1\r\n\r\nx";
    redisReply *keys;
    bgt_conn c;
    bgt_resp r;

    cr_assert_eq(bgt_conn_open(&c, fix.port), 0);
    cr_assert_eq(bgt_conn_send(&c, slow, sizeof(slow) - 1), 0);
    for (int i = 0; i < 500 && requests_for("/echo/slow") == 0; i++)
        usleep(10 * 1000);
    cr_assert_eq(requests_for("/echo/slow"), 1, "the request never reached the bus");
    keys = valkey("KEYS %s", "router:idem:*");
    cr_assert_eq(keys->elements, 1, "one in-flight record");
    freeReplyObject(valkey("DEL %s", keys->element[0]->str));
    cr_assert_eq(bgt_conn_read(&c, &r, 0, 10000), 0);
    cr_assert(r.status == 200 || r.status == 504, "status %d", r.status);
    bgt_resp_free(&r);
    bgt_conn_close(&c);
    freeReplyObject(keys);
    keys = valkey("KEYS %s", "router:idem:*");
    cr_assert_eq(keys->elements, 0, "the answer brought the record back");
    freeReplyObject(keys);
}
