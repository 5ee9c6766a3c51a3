/* test_harness.c: the private valkey-server harness starts, answers and stops. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "busgate/common.h"
#include "valkey_harness.h"

Test(harness, starts_answers_and_stops)
{
    bgt_valkey v;
    char reply[64];
    struct stat st;

    cr_assert_eq(bgt_valkey_start(&v, NULL), 0, "server did not start");
    cr_assert_gt(v.port, 0);
    cr_assert_eq(bgt_valkey_cmd(&v, reply, sizeof(reply), "SET k v"), 0);
    cr_assert_str_eq(reply, "+OK");
    cr_assert_eq(bgt_valkey_cmd(&v, reply, sizeof(reply), "GET k"), 0);
    cr_assert_str_eq(reply, "$1");
    pid_t pid = v.pid;
    char dir[256];
    snprintf(dir, sizeof(dir), "%s", v.dir);
    bgt_valkey_stop(&v);
    cr_assert_neq(kill(pid, 0), 0, "server still running after stop");
    cr_assert_neq(stat(dir, &st), 0, "temp dir left behind");
}

Test(harness, restarts_empty_on_same_port)
{
    bgt_valkey v;
    char reply[64];

    cr_assert_eq(bgt_valkey_start(&v, NULL), 0);
    int port = v.port;
    cr_assert_eq(bgt_valkey_cmd(&v, reply, sizeof(reply), "SET k v"), 0);
    bgt_valkey_kill(&v);
    cr_assert_eq(bgt_valkey_restart(&v), 0);
    cr_assert_eq(v.port, port);
    cr_assert_eq(bgt_valkey_cmd(&v, reply, sizeof(reply), "EXISTS k"), 0);
    cr_assert_str_eq(reply, ":0");
    bgt_valkey_stop(&v);
}

Test(common, consttime_equal_and_random_ids)
{
    char a[33], b[33];

    cr_assert(bg_consttime_equal("secret", 6, "secret", 6));
    cr_assert_not(bg_consttime_equal("secret", 6, "secreT", 6));
    cr_assert_not(bg_consttime_equal("secret", 6, "secret1", 7));
    cr_assert_not(bg_consttime_equal("", 0, "x", 1));
    cr_assert_eq(bg_random_id(a), BG_OK);
    cr_assert_eq(bg_random_id(b), BG_OK);
    cr_assert_eq(strlen(a), 32);
    cr_assert_str_neq(a, b);
}
