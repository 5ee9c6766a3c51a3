/* test_bus_slot.c: hash slots, slot maps and redirections, from raw bytes and against a real
 * three-node Valkey Cluster; and the key audit: every key of one service is in one slot. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busgate/bus/bus_slot.h"
#include "busgate/proto/keys.h"
#include "cluster_harness.h"

#define SLOT(s) bg_slot_of((s), strlen(s))

Test(bus_slot, crc16_and_hash_tags)
{
    /* the cluster specification's check value: CRC16-XMODEM("123456789") = 0x31C3 */
    cr_assert_eq(SLOT("123456789"), 0x31C3 & (BG_SLOTS - 1));
    cr_assert_eq(SLOT("foo"), 12182);
    cr_assert_eq(SLOT("{user1000}.following"), SLOT("{user1000}.followers"));
    cr_assert_eq(SLOT("{user1000}.following"), SLOT("user1000"));
    /* an empty tag does not count: the whole key is hashed */
    cr_assert_eq(SLOT("foo{}{bar}"), bg_slot_of("foo{}{bar}", 10));
    cr_assert_neq(SLOT("foo{}{bar}"), SLOT("bar"));
    /* only the first tag counts */
    cr_assert_eq(SLOT("foo{{bar}}zap"), SLOT("{bar"));
    cr_assert_eq(SLOT("foo{bar}{zap}"), SLOT("bar"));
    cr_assert_eq(SLOT("{"), bg_slot_of("{", 1));
    cr_assert_lt(SLOT(""), BG_SLOTS);
}

Test(bus_slot, redirections)
{
    bg_slot_redirect r;
    const char moved[] = "MOVED 3999 127.0.0.1:6381", ask[] = "ASK 12182 ::1:7002";

    cr_assert_eq(bg_slot_redirect_parse(moved, strlen(moved), &r), BG_OK);
    cr_assert_eq(r.ask, 0);
    cr_assert_eq(r.slot, 3999);
    cr_assert_str_eq(r.to.host, "127.0.0.1");
    cr_assert_eq(r.to.port, 6381);
    cr_assert_eq(bg_slot_redirect_parse(ask, strlen(ask), &r), BG_OK);
    cr_assert_eq(r.ask, 1);
    cr_assert_eq(r.slot, 12182);
    cr_assert_str_eq(r.to.host, "::1");
    cr_assert_eq(r.to.port, 7002);
    const char *bad[] = {"ERR wrong",   "MOVED x 1.2.3.4:5", "MOVED 16384 h:1",
                         "MOVED 1 h:0", "MOVED 1 h:",        "MOVED 1 :80",
                         "ASK 1",       "MOVED 1 h:70000",   NULL};
    for (int i = 0; bad[i] != NULL; i++)
        cr_assert_eq(bg_slot_redirect_parse(bad[i], strlen(bad[i]), &r), BG_ERR, "%s", bad[i]);
}

/* Every key of one service carries its {service} hash tag: one slot, so every command and
 * script that touches a service's keys is single-slot. The fleet-wide keys (control,
 * broadcast, reply streams, gateway state) each stand alone. */
Test(bus_slot, a_service_keys_share_one_slot)
{
    bg_messaging_names m;
    char k[BG_KEY_MAX + 1], dead[BG_KEY_MAX + 1], err[BG_ERR_LEN] = "";
    const char *services[] = {"orders", "echo", "a", "billing-v2", NULL};

    bg_messaging_names_default(&m);
    m.instance_id = "gw1";
    for (int i = 0; services[i] != NULL; i++) {
        uint16_t want = SLOT(services[i]);
        cr_assert_eq(bg_key_request_stream(&m, services[i], k, sizeof(k), err), BG_OK, "%s", err);
        cr_assert_eq(SLOT(k), want, "%s", k);
        cr_assert_eq(bg_key_dead_letter(k, dead, sizeof(dead), err), BG_OK);
        cr_assert_eq(SLOT(dead), want, "%s", dead);
        cr_assert_eq(bg_key_cancel_stream(&m, services[i], k, sizeof(k), err), BG_OK);
        cr_assert_eq(SLOT(k), want, "%s", k);
        cr_assert_eq(bg_key_instance_stream(&m, services[i], "inst-1", k, sizeof(k), err), BG_OK);
        cr_assert_eq(SLOT(k), want, "%s", k);
        cr_assert_eq(bg_key_idempotency(&m, services[i], "ab01", k, sizeof(k), err), BG_OK);
        cr_assert_eq(SLOT(k), want, "%s", k);
    }
    /* a reply stream and its dead letters: one slot per worker */
    cr_assert_eq(bg_key_reply_stream(&m, "gw1", 2, k, sizeof(k), err), BG_OK);
    cr_assert_eq(bg_key_dead_letter(k, dead, sizeof(dead), err), BG_OK);
    cr_assert_neq(SLOT(k), SLOT(dead),
                  "a reply stream and its dead letters are separate keys "
                  "written by separate commands");
}

/* ---- against a real cluster ---- */

static bgt_cluster cluster;

static void cluster_up(void)
{
    const char *why = bgt_cluster_unavailable();

    if (why != NULL)
        return;
    cr_assert_eq(bgt_cluster_start(&cluster, 3), 0, "the cluster did not form");
}

static void cluster_down(void)
{
    bgt_cluster_stop(&cluster);
}

static redisReply *node_cmd(int port, const char *fmt, const char *arg)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    redisReply *r;

    cr_assert(c != NULL && c->err == 0, "cannot reach node %d", port);
    r = redisCommand(c, fmt, arg);
    redisFree(c);
    cr_assert_not_null(r);
    return r;
}

Test(bus_slot, matches_a_real_cluster, .init = cluster_up, .fini = cluster_down, .timeout = 60)
{
    char err[BG_ERR_LEN] = "", key[64];
    bg_slot_map map;
    redisReply *r;

    if (bgt_cluster_unavailable() != NULL)
        cr_skip_test("%s", bgt_cluster_unavailable());
    r = node_cmd(cluster.node[0].port, "CLUSTER SLOTS", NULL);
    cr_assert_eq(bg_slot_map_from_slots(&map, r, "127.0.0.1", err), BG_OK, "%s", err);
    freeReplyObject(r);
    cr_assert_eq(map.nnodes, 3u);
    cr_assert_eq(bg_slot_map_uncovered(&map), 0u);
    for (int i = 0; i < 300; i++) {
        const char *fmt = i % 3 == 0 ? "router:requests:{svc%d}" : i % 3 == 1 ? "k%d" : "{t%d}x";
        snprintf(key, sizeof(key), fmt, i);
        r = node_cmd(cluster.node[0].port, "CLUSTER KEYSLOT %s", key);
        cr_assert_eq(r->type, REDIS_REPLY_INTEGER);
        cr_assert_eq(r->integer, SLOT(key), "%s: server %lld, ours %u", key, r->integer, SLOT(key));
        freeReplyObject(r);
        /* the node the map names takes the write: no MOVED */
        const bg_slot_node *n = bg_slot_map_node(&map, SLOT(key));
        cr_assert_not_null(n);
        r = node_cmd(n->port, "SET %s 1", key);
        cr_assert_eq(r->type, REDIS_REPLY_STATUS, "%s on %d: %s", key, n->port,
                     r->type == REDIS_REPLY_ERROR ? r->str : "?");
        freeReplyObject(r);
    }
    /* another node answers MOVED, naming the owner */
    snprintf(key, sizeof(key), "router:requests:{orders}");
    const bg_slot_node *owner = bg_slot_map_node(&map, SLOT(key));
    int other = cluster.node[0].port == owner->port ? cluster.node[1].port : cluster.node[0].port;
    r = node_cmd(other, "GET %s", key);
    cr_assert_eq(r->type, REDIS_REPLY_ERROR);
    bg_slot_redirect red;
    cr_assert_eq(bg_slot_redirect_parse(r->str, r->len, &red), BG_OK, "%s", r->str);
    cr_assert_eq(red.ask, 0);
    cr_assert_eq(red.slot, SLOT(key));
    cr_assert_eq(red.to.port, owner->port);
    freeReplyObject(r);
    bg_slot_map_free(&map);
}

Test(bus_slot, malformed_slot_replies_are_refused)
{
    char err[BG_ERR_LEN] = "";
    bg_slot_map map;
    redisReply *el[3], range, *ranges[1], top, start = {.type = REDIS_REPLY_INTEGER, .integer = 5},
                                               end = {.type = REDIS_REPLY_INTEGER, .integer = 1},
                                               node = {.type = REDIS_REPLY_ARRAY};

    el[0] = &start;
    el[1] = &end;
    el[2] = &node;
    range = (redisReply){.type = REDIS_REPLY_ARRAY, .elements = 3, .element = el};
    ranges[0] = &range;
    top = (redisReply){.type = REDIS_REPLY_ARRAY, .elements = 1, .element = ranges};
    cr_assert_eq(bg_slot_map_from_slots(&map, &top, "h", err), BG_ERR);
    cr_assert(strstr(err, "malformed") != NULL, "%s", err);
    cr_assert_eq(bg_slot_map_uncovered(&map), (size_t)BG_SLOTS);
    top.type = REDIS_REPLY_NIL;
    cr_assert_eq(bg_slot_map_from_slots(&map, &top, "h", err), BG_ERR);
}

/* The slot of a formatted command, as the cluster clients route it. */
static int cmd_slot(uint16_t *slot, int argc, const char **argv)
{
    char *cmd = NULL;
    long long len = redisFormatCommandArgv(&cmd, argc, argv, NULL);
    int rc;

    cr_assert_gt(len, 0);
    rc = bg_slot_of_command(cmd, (size_t)len, slot);
    redisFreeCommand(cmd);
    return rc;
}

#define CMD_SLOT(slot, ...)                                                                        \
    cmd_slot((slot), (int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)),          \
             (const char *[]){__VA_ARGS__})

Test(bus_slot, key_of_each_command)
{
    uint16_t s = 0, want = SLOT("router:requests:{orders}");

    cr_assert_eq(CMD_SLOT(&s, "XADD", "router:requests:{orders}", "*", "a", "1"), 1);
    cr_assert_eq(s, want);
    cr_assert_eq(CMD_SLOT(&s, "xack", "router:requests:{orders}", "g", "1-0"), 1);
    cr_assert_eq(s, want, "command names are case-insensitive");
    cr_assert_eq(CMD_SLOT(&s, "XREADGROUP", "GROUP", "g", "c", "COUNT", "10", "BLOCK", "100",
                          "STREAMS", "router:requests:{orders}", ">"),
                 1);
    cr_assert_eq(s, want, "the key after STREAMS");
    cr_assert_eq(CMD_SLOT(&s, "XREAD", "BLOCK", "5", "STREAMS", "router:broadcast", "$"), 1);
    cr_assert_eq(s, SLOT("router:broadcast"));
    cr_assert_eq(CMD_SLOT(&s, "XGROUP", "CREATE", "router:control", "g", "$", "MKSTREAM"), 1);
    cr_assert_eq(s, SLOT("router:control"), "the key after XGROUP's subcommand");
    cr_assert_eq(CMD_SLOT(&s, "XINFO", "GROUPS", "router:requests:{orders}"), 1);
    cr_assert_eq(s, want);
    cr_assert_eq(CMD_SLOT(&s, "EVALSHA", "abc", "2", "router:requests:{orders}", "x"), 1);
    cr_assert_eq(s, want, "EVAL's first key");
    cr_assert_eq(CMD_SLOT(&s, "EVAL", "return 1", "0", "arg"), 0, "numkeys 0: no key");
    cr_assert_eq(CMD_SLOT(&s, "SET", "router:gateway:gw1:state", "{}", "PX", "3000"), 1);
    cr_assert_eq(s, SLOT("router:gateway:gw1:state"));
    cr_assert_eq(CMD_SLOT(&s, "PING"), 0);
    cr_assert_eq(CMD_SLOT(&s, "SCRIPT", "LOAD", "return 1"), 0);
    cr_assert_eq(CMD_SLOT(&s, "SCAN", "0", "MATCH", "router:*"), 0);
    cr_assert_eq(CMD_SLOT(&s, "CLUSTER", "SLOTS"), 0);
    cr_assert_eq(CMD_SLOT(&s, "XREAD", "STREAMS"), 0, "no key after STREAMS");
    cr_assert_eq(bg_slot_of_command("PING\r\n", 6, &s), -1, "not RESP");
    cr_assert_eq(bg_slot_of_command("*2\r\n$3\r\nGET\r\n$9\r\nab", 22, &s), -1, "cut short");
}
