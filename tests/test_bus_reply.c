/* test_bus_reply.c: replies built in blocks (bg_bus_opts.reply_blocks, shared/bus/bus_reply.c)
 * against a private valkey-server: the same values as hiredict's own replies for every reply
 * shape a bus sees (nested stream replies, empty and 1 MiB strings, integers, nil, errors),
 * pipelined replies freed in any order, and bg_bus_reply_free taking hiredict's replies too. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busgate/bus/bus.h"
#include "valkey_harness.h"

static bgt_valkey server;

static void server_up(void)
{
    cr_assert_eq(bgt_valkey_start(&server, NULL), 0, "valkey-server did not start");
}

static void server_down(void)
{
    bgt_valkey_stop(&server);
}

static bg_bus *bus_open(int blocks)
{
    char err[BG_ERR_LEN] = "";
    bg_bus_opts o;
    bg_bus *bus;

    bg_bus_opts_init(&o);
    snprintf(o.addr.host, sizeof(o.addr.host), "127.0.0.1");
    o.addr.port = server.port;
    o.reply_blocks = blocks;
    bus = bg_bus_connect(&o, err);
    cr_assert_not_null(bus, "connect failed: %s", err);
    return bus;
}

/* Built in blocks: the root carries bus_reply.c's mark, which hiredict never writes. */
static int in_blocks(const redisReply *r)
{
    return r->type != REDIS_REPLY_VERB && memcmp(r->vtype, "bgA", 4) == 0;
}

static void same_reply(const redisReply *a, const redisReply *b, const char *where)
{
    cr_assert_eq(a->type, b->type, "%s: type %d against %d", where, a->type, b->type);
    switch (a->type) {
    case REDIS_REPLY_INTEGER:
        cr_assert_eq(a->integer, b->integer, "%s", where);
        break;
    case REDIS_REPLY_ARRAY:
        cr_assert_eq(a->elements, b->elements, "%s", where);
        for (size_t i = 0; i < a->elements; i++)
            same_reply(a->element[i], b->element[i], where);
        break;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        cr_assert_eq(a->len, b->len, "%s", where);
        cr_assert_eq(memcmp(a->str, b->str, a->len), 0, "%s", where);
        cr_assert_eq(a->str[a->len], '\0', "%s: not NUL-terminated", where);
        break;
    default:
        break;
    }
}

/* One command on both buses: the same reply, the blocks one built in blocks. */
static void both(bg_bus *plain, bg_bus *blocks, int argc, const char **argv, const size_t *len)
{
    char err[BG_ERR_LEN] = "";
    redisReply *a = bg_bus_command_argv(plain, argc, argv, len, err);
    redisReply *b = bg_bus_command_argv(blocks, argc, argv, len, err);

    cr_assert_not_null(a, "%s: %s", argv[0], err);
    cr_assert_not_null(b, "%s: %s", argv[0], err);
    cr_assert(!in_blocks(a), "%s: a plain bus's reply is hiredict's", argv[0]);
    cr_assert(in_blocks(b), "%s: the reply_blocks bus's reply is not built in blocks", argv[0]);
    same_reply(a, b, argv[0]);
    bg_bus_reply_free(a);
    bg_bus_reply_free(b);
}

TestSuite(bus_reply, .init = server_up, .fini = server_down, .timeout = 60);

Test(bus_reply, every_reply_shape_reads_like_hiredicts)
{
    bg_bus *plain = bus_open(0), *blocks = bus_open(1);
    size_t big = 1024 * 1024, mid = 20000;
    char *body = malloc(big), err[BG_ERR_LEN] = "";
    char field[32];

    cr_assert_not_null(body);
    for (size_t i = 0; i < big; i++)
        body[i] = (char)(i * 7 + 1);
    /* 300 entries: many fields (the blocks grow), an empty value, one a block of its own. */
    for (int i = 0; i < 300; i++) {
        snprintf(field, sizeof(field), "f%d", i);
        const char *argv[] = {"XADD", "s", "*", "v", "1", field, "x", "empty", "", "body", body};
        size_t len[] = {4, 1, 1, 1, 1, strlen(field), 1, 5, 0, 4, (size_t)(i % 50 == 0 ? mid : 40)};
        redisReply *r = bg_bus_command_argv(blocks, 11, argv, len, err);
        cr_assert_not_null(r, "%s", err);
        cr_assert(in_blocks(r));
        bg_bus_reply_free(r);
    }
    {
        const char *argv[] = {"SET", "big", body};
        size_t len[] = {3, 3, big};
        both(plain, blocks, 3, argv, len);
    }
    {
        const char *argv[] = {"GET", "big"};
        both(plain, blocks, 2, argv, NULL);
        const char *range[] = {"XRANGE", "s", "-", "+"};
        both(plain, blocks, 4, range, NULL);
        const char *read[] = {"XREAD", "COUNT", "1000", "STREAMS", "s", "0"};
        both(plain, blocks, 6, read, NULL);
        const char *incr[] = {"STRLEN", "big"};
        both(plain, blocks, 2, incr, NULL);
        const char *nil[] = {"GET", "missing"};
        both(plain, blocks, 2, nil, NULL);
        const char *empty[] = {"LRANGE", "nolist", "0", "-1"};
        both(plain, blocks, 4, empty, NULL);
        const char *error[] = {"XADD", "s"};
        both(plain, blocks, 2, error, NULL);
        const char *nested[] = {"XINFO", "STREAM", "s", "FULL"};
        both(plain, blocks, 4, nested, NULL);
    }
    free(body);
    bg_bus_free(plain);
    bg_bus_free(blocks);
}

Test(bus_reply, pipelined_replies_are_freed_in_any_order)
{
    bg_bus *bus = bus_open(1);
    char err[BG_ERR_LEN] = "";
    redisReply *r[40];

    for (int i = 0; i < 40; i++) {
        const char *argv[] = {"INCR", "c"};
        cr_assert_eq(bg_bus_append_argv(bus, 2, argv, NULL, err), BG_OK, "%s", err);
    }
    for (int i = 0; i < 40; i++) {
        cr_assert_eq(bg_bus_get_reply(bus, &r[i], err), BG_OK, "%s", err);
        cr_assert(in_blocks(r[i]));
    }
    for (int i = 39; i >= 0; i -= 2) /* every other one first, from the end */
        bg_bus_reply_free(r[i]);
    for (int i = 0; i < 40; i += 2) {
        cr_assert_eq(r[i]->type, REDIS_REPLY_INTEGER);
        cr_assert_eq(r[i]->integer, i + 1, "reply %d reads %lld", i, r[i]->integer);
        bg_bus_reply_free(r[i]);
    }
    bg_bus_free(bus);
}

Test(bus_reply, reply_free_takes_hiredicts_replies_and_null)
{
    char err[BG_ERR_LEN] = "";
    bg_bus *bus = bus_open(0);
    redisReply *r = bg_bus_command(bus, err, "XRANGE %s - +", "nothing");

    cr_assert_not_null(r, "%s", err);
    cr_assert(!in_blocks(r));
    bg_bus_reply_free(r); /* under ASan a wrong free is a failure */
    bg_bus_reply_free(NULL);
    bg_bus_free(bus);
}
