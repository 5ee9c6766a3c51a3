/* test_bus_token.c: the atomic token store: set-if-absent races between processes,
 * compare-and-set / compare-and-delete semantics, TTLs and the EVAL fallback. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "busgate/bus_token.h"
#include "valkey_harness.h"

#define RACERS 8
#define ROUNDS 1000

static bgt_valkey server;
static bg_bus_opts opts;

static void server_up(void)
{
    cr_assert_eq(bgt_valkey_start(&server, NULL), 0, "valkey-server did not start");
    bg_bus_opts_init(&opts);
    snprintf(opts.addr.host, sizeof(opts.addr.host), "127.0.0.1");
    opts.addr.port = server.port;
}

static void server_down(void)
{
    bgt_valkey_stop(&server);
}

static bg_bytes bytes(const char *s)
{
    return (bg_bytes){.ptr = s, .len = strlen(s)};
}

static bg_bus *connect_or_fail(void)
{
    char err[BG_ERR_LEN] = "";
    bg_bus *bus = bg_bus_connect(&opts, err);

    cr_assert_not_null(bus, "connect: %s", err);
    return bus;
}

static long long pttl(bg_bus *bus, const char *key)
{
    char err[BG_ERR_LEN] = "";
    redisReply *r = bg_bus_command(bus, err, "PTTL %s", key);
    long long ttl;

    cr_assert(r != NULL && r->type == REDIS_REPLY_INTEGER, "PTTL: %s", err);
    ttl = r->integer;
    freeReplyObject(r);
    return ttl;
}

static void expect_value(bg_bus *bus, const char *key, const void *want, size_t wantlen)
{
    char err[BG_ERR_LEN] = "", *value = NULL;
    size_t len = 0;
    int found = -1;

    cr_assert_eq(bg_token_get(bus, key, &value, &len, &found, err), BG_OK, "%s", err);
    cr_assert_eq(found, want != NULL, "found=%d", found);
    if (want != NULL) {
        cr_assert_eq(len, wantlen);
        cr_assert_eq(memcmp(value, want, len), 0);
    }
    free(value);
}

TestSuite(bus_token, .init = server_up, .fini = server_down, .timeout = 60);

Test(bus_token, set_if_absent_has_one_owner_and_a_ttl)
{
    char err[BG_ERR_LEN] = "";
    bg_bus *bus = connect_or_fail();
    int won = -1;

    cr_assert_eq(bg_token_set_nx(bus, "idem:1", bytes("a"), 60000, &won, err), BG_OK, "%s", err);
    cr_assert_eq(won, 1);
    cr_assert_eq(bg_token_set_nx(bus, "idem:1", bytes("b"), 60000, &won, err), BG_OK, "%s", err);
    cr_assert_eq(won, 0, "a held token was taken over");
    expect_value(bus, "idem:1", "a", 1);
    cr_assert(pttl(bus, "idem:1") > 0 && pttl(bus, "idem:1") <= 60000);
    cr_assert_eq(bg_token_set_nx(bus, "idem:2", bytes("c"), 0, &won, err), BG_OK, "%s", err);
    cr_assert_eq(pttl(bus, "idem:2"), -1, "ttl 0 means no expiry");
    cr_assert_eq(bg_token_set_nx(bus, "idem:3", bytes("c"), -5, &won, err), BG_ERR);
    bg_bus_free(bus);
}

Test(bus_token, compare_and_set)
{
    static const char bin_old[] = "o\0ld", bin_new[] = "n\0ew";
    bg_bytes old = {bin_old, 4}, new = {bin_new, 4};
    char err[BG_ERR_LEN] = "";
    bg_bus *bus = connect_or_fail();
    int won, swapped = -1;

    cr_assert_eq(bg_token_cas(bus, "cas", old, new, 0, &swapped, err), BG_OK, "%s", err);
    cr_assert_eq(swapped, 0, "swapped a missing key");
    expect_value(bus, "cas", NULL, 0);
    cr_assert_eq(bg_token_set_nx(bus, "cas", old, 60000, &won, err), BG_OK, "%s", err);
    cr_assert_eq(bg_token_cas(bus, "cas", bytes("o"), new, 0, &swapped, err), BG_OK, "%s", err);
    cr_assert_eq(swapped, 0, "a prefix of the value must not match");
    expect_value(bus, "cas", bin_old, 4);
    cr_assert_eq(bg_token_cas(bus, "cas", old, new, 0, &swapped, err), BG_OK, "%s", err);
    cr_assert_eq(swapped, 1);
    expect_value(bus, "cas", bin_new, 4);
    cr_assert(pttl(bus, "cas") > 0, "ttl 0 must keep the TTL");
    cr_assert_eq(bg_token_cas(bus, "cas", new, old, 1000000, &swapped, err), BG_OK, "%s", err);
    cr_assert_eq(swapped, 1);
    cr_assert(pttl(bus, "cas") > 60000, "a new TTL must be applied");
    bg_bus_free(bus);
}

Test(bus_token, compare_and_delete)
{
    char err[BG_ERR_LEN] = "";
    bg_bus *bus = connect_or_fail();
    int won, deleted = -1;

    cr_assert_eq(bg_token_cad(bus, "lock", bytes("me"), &deleted, err), BG_OK, "%s", err);
    cr_assert_eq(deleted, 0);
    cr_assert_eq(bg_token_set_nx(bus, "lock", bytes("me"), 60000, &won, err), BG_OK, "%s", err);
    cr_assert_eq(bg_token_cad(bus, "lock", bytes("you"), &deleted, err), BG_OK, "%s", err);
    cr_assert_eq(deleted, 0, "deleted a token held by someone else");
    expect_value(bus, "lock", "me", 2);
    cr_assert_eq(bg_token_cad(bus, "lock", bytes("me"), &deleted, err), BG_OK, "%s", err);
    cr_assert_eq(deleted, 1);
    expect_value(bus, "lock", NULL, 0);
    bg_bus_free(bus);
}

static long long command_calls(bg_bus *bus, const char *name)
{
    char err[BG_ERR_LEN] = "", needle[64];
    redisReply *r = bg_bus_command(bus, err, "INFO commandstats");
    const char *p;
    long long calls = 0;

    cr_assert(r != NULL && r->type != REDIS_REPLY_ERROR, "INFO: %s", err);
    snprintf(needle, sizeof(needle), "cmdstat_%s:calls=", name);
    p = strstr(r->str, needle);
    if (p != NULL)
        calls = atoll(p + strlen(needle));
    freeReplyObject(r);
    return calls;
}

Test(bus_token, evalsha_falls_back_to_eval_after_script_flush)
{
    char err[BG_ERR_LEN] = "";
    bg_bus *bus = connect_or_fail();
    int won, swapped;

    cr_assert_eq(bg_token_set_nx(bus, "s", bytes("1"), 60000, &won, err), BG_OK, "%s", err);
    freeReplyObject(bg_bus_command(bus, err, "SCRIPT FLUSH"));
    freeReplyObject(bg_bus_command(bus, err, "CONFIG RESETSTAT"));
    cr_assert_eq(bg_token_cas(bus, "s", bytes("1"), bytes("2"), 0, &swapped, err), BG_OK, "%s",
                 err);
    cr_assert_eq(swapped, 1, "the EVAL fallback did not run the script");
    cr_assert_eq(bg_token_cas(bus, "s", bytes("2"), bytes("3"), 0, &swapped, err), BG_OK, "%s",
                 err);
    cr_assert_eq(swapped, 1);
    cr_assert_eq(command_calls(bus, "eval"), 1, "EVAL should run once, to reload the script");
    cr_assert_eq(command_calls(bus, "evalsha"), 2, "EVALSHA should be tried each time");
    expect_value(bus, "s", "3", 1);
    bg_bus_free(bus);
}

/* A racer: after the start signal, try every round's key once; record wins. */
static int racer(int id, int start_fd)
{
    char err[BG_ERR_LEN], key[32], me[16], c;
    bg_bus *bus;
    int r, won, wins = 0;

    if (read(start_fd, &c, 1) != 0)
        return 100; /* the start signal is the write end closing */
    if ((bus = bg_bus_connect(&opts, err)) == NULL)
        return 101;
    snprintf(me, sizeof(me), "racer-%d", id);
    for (r = 0; r < ROUNDS; r++) {
        snprintf(key, sizeof(key), "race:%d", r);
        if (bg_token_set_nx(bus, key, bytes(me), 60000, &won, err) != BG_OK)
            return 102;
        if (won) {
            redisReply *rep = bg_bus_command(bus, err, "HINCRBY wins %d 1", r);
            if (rep == NULL || rep->type != REDIS_REPLY_INTEGER)
                return 103;
            freeReplyObject(rep);
            wins++;
        }
    }
    bg_bus_free(bus);
    return wins > 99 ? 99 : wins; /* exit codes are small: the server holds the real count */
}

static void check_rounds(bg_bus *bus)
{
    char err[BG_ERR_LEN] = "";
    redisReply *r = bg_bus_command(bus, err, "HGETALL wins");
    size_t i;

    cr_assert(r != NULL && r->type == REDIS_REPLY_ARRAY, "HGETALL: %s", err);
    cr_assert_eq(r->elements, 2 * ROUNDS, "%zu rounds had a winner", r->elements / 2);
    for (i = 1; i < r->elements; i += 2)
        cr_assert_str_eq(r->element[i]->str, "1", "round %s had %s winners", r->element[i - 1]->str,
                         r->element[i]->str);
    freeReplyObject(r);
}

Test(bus_token, eight_processes_race_one_winner_per_round)
{
    int start[2], i, status;
    pid_t pids[RACERS];
    bg_bus *bus;

    cr_assert_eq(pipe(start), 0);
    for (i = 0; i < RACERS; i++) {
        pids[i] = fork();
        cr_assert_geq(pids[i], 0, "fork failed");
        if (pids[i] == 0) {
            close(start[1]);
            _exit(racer(i, start[0]));
        }
    }
    close(start[0]);
    close(start[1]); /* go */
    for (i = 0; i < RACERS; i++) {
        cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) < 100, "racer %d failed (status %d)", i,
                  status);
    }
    bus = connect_or_fail();
    check_rounds(bus);
    bg_bus_free(bus);
}
