/* bus_pubsub.h: event stream on Valkey pub/sub: publish, and subscribers on their own connection.
 */
#ifndef BUSGATE_BUS_PUBSUB_H
#define BUSGATE_BUS_PUBSUB_H

#include <stddef.h>
#include <stdint.h>

#include "busgate/bus.h"

/* Publish a binary-safe message; *receivers (may be NULL) gets how many
 * subscribers the server delivered it to. Pub/sub is fire-and-forget: a
 * subscriber that is disconnected at that moment never sees it. */
int bg_bus_publish(bg_bus *bus, const char *channel, const void *msg, size_t len,
                   long long *receivers, char *err);

typedef struct bg_pubsub bg_pubsub; /* a subscriber; owns its connection */

typedef struct bg_pubsub_msg {
    char *channel; /* NUL-terminated */
    char *pattern; /* the matching pattern for PSUBSCRIBE deliveries, else NULL */
    char *data;    /* binary-safe, NUL-terminated for convenience */
    size_t len;
} bg_pubsub_msg;

/* Open a subscriber connection (a subscribed connection can run no other command). */
bg_pubsub *bg_pubsub_open(const bg_bus_opts *o, char *err);
void bg_pubsub_free(bg_pubsub *ps);
/* Subscribe and wait for the server's confirmation, so that a publish made
 * after this returns is delivered. Subscriptions are renewed after a reconnect. */
int bg_pubsub_subscribe(bg_pubsub *ps, const char *channel, char *err);
int bg_pubsub_psubscribe(bg_pubsub *ps, const char *pattern, char *err);
int bg_pubsub_unsubscribe(bg_pubsub *ps, const char *channel, char *err);
/* Wait up to timeout_ms for one message. Returns 1 with *msg filled (free it with
 * bg_pubsub_msg_free), 0 on timeout, BG_ERR when the connection is down (it
 * reconnects on the backoff schedule without overrunning timeout_ms by more than
 * one connect attempt). Messages published while down are lost: treat a
 * reconnect (bg_pubsub_reconnect_count changes) as "something may have happened". */
int bg_pubsub_wait(bg_pubsub *ps, int64_t timeout_ms, bg_pubsub_msg *msg, char *err);
void bg_pubsub_msg_free(bg_pubsub_msg *msg);
unsigned long bg_pubsub_reconnect_count(const bg_pubsub *ps);
/* The underlying connection: for the socket (poll) and its counters only. */
bg_bus *bg_pubsub_bus(bg_pubsub *ps);

#endif
