/* test_bus_cache.c: the cache store: overwrite, delete, binary values and TTL expiry. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "busgate/bus_cache.h"
#include "valkey_harness.h"

static bgt_valkey server;
static bg_bus *bus;

static void server_up(void)
{
    char err[BG_ERR_LEN] = "";
    bg_bus_opts o;

    cr_assert_eq(bgt_valkey_start(&server, NULL), 0, "valkey-server did not start");
    bg_bus_opts_init(&o);
    snprintf(o.addr.host, sizeof(o.addr.host), "127.0.0.1");
    o.addr.port = server.port;
    bus = bg_bus_connect(&o, err);
    cr_assert_not_null(bus, "connect: %s", err);
}

static void server_down(void)
{
    bg_bus_free(bus);
    bus = NULL;
    bgt_valkey_stop(&server);
}

static bg_bytes bytes(const char *s)
{
    return (bg_bytes){.ptr = s, .len = strlen(s)};
}

/* NULL want: expect the key to be missing. */
static void expect_value(const char *key, const void *want, size_t wantlen)
{
    char err[BG_ERR_LEN] = "", *value = NULL;
    size_t len = 99;
    int found = -1;

    cr_assert_eq(bg_cache_get(bus, key, &value, &len, &found, err), BG_OK, "%s", err);
    cr_assert_eq(found, want != NULL, "found=%d for %s", found, key);
    if (want == NULL) {
        cr_assert_null(value);
        cr_assert_eq(len, 0);
        return;
    }
    cr_assert_eq(len, wantlen);
    cr_assert_eq(memcmp(value, want, len), 0, "value of %s differs", key);
    cr_assert_eq(value[len], '\0', "value is not terminated");
    free(value);
}

static long long pttl(const char *key)
{
    char err[BG_ERR_LEN] = "";
    redisReply *r = bg_bus_command(bus, err, "PTTL %s", key);
    long long ttl;

    cr_assert(r != NULL && r->type == REDIS_REPLY_INTEGER, "PTTL: %s", err);
    ttl = r->integer;
    freeReplyObject(r);
    return ttl;
}

TestSuite(bus_cache, .init = server_up, .fini = server_down, .timeout = 60);

Test(bus_cache, set_get_overwrite_delete)
{
    char err[BG_ERR_LEN] = "";
    int deleted = -1;

    expect_value("c:1", NULL, 0);
    cr_assert_eq(bg_cache_set(bus, "c:1", bytes("first"), 0, err), BG_OK, "%s", err);
    expect_value("c:1", "first", 5);
    cr_assert_eq(bg_cache_set(bus, "c:1", bytes("second value"), 0, err), BG_OK, "%s", err);
    expect_value("c:1", "second value", 12);
    cr_assert_eq(bg_cache_set(bus, "c:1", bytes(""), 0, err), BG_OK, "%s", err);
    expect_value("c:1", "", 0);
    cr_assert_eq(bg_cache_del(bus, "c:1", &deleted, err), BG_OK, "%s", err);
    cr_assert_eq(deleted, 1);
    expect_value("c:1", NULL, 0);
    cr_assert_eq(bg_cache_del(bus, "c:1", &deleted, err), BG_OK, "%s", err);
    cr_assert_eq(deleted, 0);
    cr_assert_eq(bg_cache_del(bus, "c:1", NULL, err), BG_OK, "%s", err);
}

Test(bus_cache, binary_value_round_trip)
{
    char err[BG_ERR_LEN] = "";
    size_t len = 1 << 20, i;
    char *big = malloc(len);

    cr_assert_not_null(big);
    for (i = 0; i < len; i++)
        big[i] = (char)(i * 7 + i / 256); /* every byte value, NULs included */
    cr_assert_eq(bg_cache_set(bus, "bin", (bg_bytes){big, len}, 0, err), BG_OK, "%s", err);
    expect_value("bin", big, len);
    free(big);
}

Test(bus_cache, entry_is_gone_after_its_ttl)
{
    char err[BG_ERR_LEN] = "", *value;
    size_t len;
    int found = 1, i;
    long long ttl;

    cr_assert_eq(bg_cache_set(bus, "short", bytes("v"), 100, err), BG_OK, "%s", err);
    ttl = pttl("short");
    cr_assert(ttl != -1 && ttl <= 100, "PTTL %lld: no 100 ms TTL was set", ttl);
    for (i = 0; i < 500 && found; i++) {
        cr_assert_eq(bg_cache_get(bus, "short", &value, &len, &found, err), BG_OK, "%s", err);
        free(value);
        if (found)
            usleep(10000);
    }
    cr_assert_eq(found, 0, "still there after %d polls", i);
}

Test(bus_cache, set_without_ttl_clears_an_old_ttl)
{
    char err[BG_ERR_LEN] = "";

    cr_assert_eq(bg_cache_set(bus, "t", bytes("v"), 600000, err), BG_OK, "%s", err);
    cr_assert_gt(pttl("t"), 0);
    cr_assert_eq(bg_cache_set(bus, "t", bytes("w"), 0, err), BG_OK, "%s", err);
    cr_assert_eq(pttl("t"), -1);
    cr_assert_eq(bg_cache_set(bus, "t", bytes("w"), -1, err), BG_ERR, "negative TTL accepted");
}
