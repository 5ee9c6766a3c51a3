/* test_bus_pubsub.c: publish / subscribe through the bus against a private valkey-server. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "busgate/bus_pubsub.h"
#include "valkey_harness.h"

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

static bg_pubsub *subscriber(const char *channel)
{
    char err[BG_ERR_LEN] = "";
    bg_pubsub *ps = bg_pubsub_open(&opts, err);

    cr_assert_not_null(ps, "open: %s", err);
    cr_assert_eq(bg_pubsub_subscribe(ps, channel, err), BG_OK, "subscribe: %s", err);
    return ps;
}

static bg_bus *publisher(void)
{
    char err[BG_ERR_LEN] = "";
    bg_bus *bus = bg_bus_connect(&opts, err);

    cr_assert_not_null(bus, "connect: %s", err);
    return bus;
}

static void expect_message(bg_pubsub *ps, const char *channel, const void *data, size_t len)
{
    char err[BG_ERR_LEN] = "";
    bg_pubsub_msg msg;
    int rc = bg_pubsub_wait(ps, 5000, &msg, err);

    cr_assert_eq(rc, 1, "no message on %s (rc %d, %s)", channel, rc, err);
    cr_assert_str_eq(msg.channel, channel);
    cr_assert_eq(msg.len, len);
    cr_assert_eq(memcmp(msg.data, data, len), 0, "payload differs");
    bg_pubsub_msg_free(&msg);
}

TestSuite(bus_pubsub, .init = server_up, .fini = server_down, .timeout = 60);

Test(bus_pubsub, one_publish_reaches_two_subscribers)
{
    static const char payload[] = "wake\0up\xff";
    char err[BG_ERR_LEN] = "";
    bg_pubsub *a = subscriber("events"), *b = subscriber("events");
    bg_bus *pub = publisher();
    long long receivers = -1;

    cr_assert_eq(bg_bus_publish(pub, "events", payload, sizeof(payload), &receivers, err), BG_OK,
                 "%s", err);
    cr_assert_eq(receivers, 2);
    expect_message(a, "events", payload, sizeof(payload));
    expect_message(b, "events", payload, sizeof(payload));
    bg_pubsub_free(a);
    bg_pubsub_free(b);
    bg_bus_free(pub);
}

Test(bus_pubsub, wait_times_out_without_a_message)
{
    char err[BG_ERR_LEN] = "";
    bg_pubsub *ps = subscriber("quiet");
    bg_pubsub_msg msg;

    cr_assert_eq(bg_pubsub_wait(ps, 50, &msg, err), 0, "%s", err);
    cr_assert_null(msg.data);
    cr_assert_eq(bg_pubsub_wait(ps, 0, &msg, err), 0, "%s", err);
    bg_pubsub_free(ps);
}

Test(bus_pubsub, pattern_subscription_reports_the_pattern)
{
    char err[BG_ERR_LEN] = "";
    bg_pubsub *ps = bg_pubsub_open(&opts, err);
    bg_bus *pub = publisher();
    bg_pubsub_msg msg;

    cr_assert_not_null(ps, "%s", err);
    cr_assert_eq(bg_pubsub_psubscribe(ps, "svc.*", err), BG_OK, "%s", err);
    cr_assert_eq(bg_bus_publish(pub, "svc.orders", "hi", 2, NULL, err), BG_OK, "%s", err);
    cr_assert_eq(bg_pubsub_wait(ps, 5000, &msg, err), 1, "%s", err);
    cr_assert_str_eq(msg.channel, "svc.orders");
    cr_assert_str_eq(msg.pattern, "svc.*");
    cr_assert_str_eq(msg.data, "hi");
    bg_pubsub_msg_free(&msg);
    bg_pubsub_free(ps);
    bg_bus_free(pub);
}

/* Deliveries that arrive while a later SUBSCRIBE waits for its confirmation
 * are kept, in order, for the next wait. */
Test(bus_pubsub, keeps_messages_read_during_a_subscribe)
{
    char err[BG_ERR_LEN] = "", data[8];
    bg_pubsub *ps = subscriber("first");
    bg_bus *pub = publisher();
    int i;

    for (i = 0; i < 3; i++) {
        snprintf(data, sizeof(data), "m%d", i);
        cr_assert_eq(bg_bus_publish(pub, "first", data, strlen(data), NULL, err), BG_OK);
    }
    cr_assert_eq(bg_pubsub_subscribe(ps, "second", err), BG_OK, "%s", err);
    cr_assert_eq(bg_bus_publish(pub, "second", "s", 1, NULL, err), BG_OK);
    for (i = 0; i < 3; i++) {
        snprintf(data, sizeof(data), "m%d", i);
        expect_message(ps, "first", data, strlen(data));
    }
    expect_message(ps, "second", "s", 1);
    bg_pubsub_free(ps);
    bg_bus_free(pub);
}

Test(bus_pubsub, unsubscribe_stops_deliveries)
{
    char err[BG_ERR_LEN] = "";
    bg_pubsub *ps = subscriber("gone");
    bg_bus *pub = publisher();
    long long receivers = 1;
    bg_pubsub_msg msg;
    int i, rc;

    cr_assert_eq(bg_pubsub_unsubscribe(ps, "gone", err), BG_OK, "%s", err);
    /* The server handles UNSUBSCRIBE on its own time: poll, bounded. */
    for (i = 0; i < 500 && receivers != 0; i++)
        cr_assert_eq(bg_bus_publish(pub, "gone", "x", 1, &receivers, err), BG_OK, "%s", err);
    cr_assert_eq(receivers, 0, "still subscribed");
    for (i = 0; i < 600 && (rc = bg_pubsub_wait(ps, 100, &msg, err)) == 1; i++)
        bg_pubsub_msg_free(&msg); /* deliveries published before the server saw it */
    cr_assert_eq(rc, 0, "%s", err);
    bg_pubsub_free(ps);
    bg_bus_free(pub);
}

Test(bus_pubsub, resubscribes_after_server_restart)
{
    char err[BG_ERR_LEN] = "";
    bg_pubsub *ps = subscriber("wake");
    bg_bus *pub = publisher();
    bg_pubsub_msg msg;
    int i, got = 0;

    bgt_valkey_kill(&server);
    cr_assert_eq(bgt_valkey_restart(&server), 0);
    /* Publish until the subscriber is back: each wait lets it reconnect. */
    for (i = 0; i < 100 && !got; i++) {
        long long receivers = 0;
        if (bg_bus_publish(pub, "wake", "again", 5, &receivers, err) != BG_OK)
            receivers = 0;
        got = bg_pubsub_wait(ps, 200, &msg, err) == 1;
    }
    cr_assert(got, "no message after the restart: %s", err);
    cr_assert_str_eq(msg.data, "again");
    cr_assert_geq(bg_pubsub_reconnect_count(ps), 1);
    bg_pubsub_msg_free(&msg);
    bg_pubsub_free(ps);
    bg_bus_free(pub);
}

Test(bus_pubsub, wait_reports_a_dead_server_without_spinning)
{
    char err[BG_ERR_LEN] = "";
    bg_pubsub *ps = subscriber("down");
    bg_pubsub_msg msg;
    unsigned long before;
    int64_t start, elapsed;
    int i, errors = 0;

    bgt_valkey_kill(&server);
    before = bg_bus_connect_attempts(bg_pubsub_bus(ps));
    start = bg_mono_ms();
    for (i = 0; i < 10; i++)
        errors += bg_pubsub_wait(ps, 100, &msg, err) == BG_ERR;
    elapsed = bg_mono_ms() - start;
    cr_assert_eq(errors, 10, "waits on a dead server must fail (last: %s)", err);
    cr_assert(strstr(err, "127.0.0.1:") != NULL, "err: %s", err);
    cr_assert_leq(bg_bus_connect_attempts(bg_pubsub_bus(ps)) - before,
                  (unsigned long)(elapsed / 100 + 1));
    bg_pubsub_free(ps);
}
