/* bus_sentinel.h: find the primary behind a valkey+sentinel:// address (bus_conn.c, bus_async.c).
 */
#ifndef BUSGATE_BUS_SENTINEL_H
#define BUSGATE_BUS_SENTINEL_H

#include <hiredis/hiredis.h>
#include <openssl/ssl.h>

#include "busgate/bus/bus.h"

/* Longest wait for one sentinel (connect, and then its answer): discovery runs
 * inside a connect attempt, so a dead sentinel must not hold it for long. */
#define BG_SENTINEL_TIMEOUT_MS 500
/* Reconnect backoff ceiling in Sentinel mode: asking again is cheap and a
 * failover is over in about a second, so do not sleep the usual 5 s. */
#define BG_SENTINEL_BACKOFF_MAX_MS 500

/* How often a connected client asks the sentinels whether the primary moved.
 * After a manual SENTINEL FAILOVER the old primary keeps taking writes until
 * the sentinels demote it (seconds later), so errors alone would notice late. */
#define BG_SENTINEL_CHECK_MS 1000

/* Asks the sentinels of o->addr in turn, starting with *first (the one that
 * answered last time), `SENTINEL get-master-addr-by-name`; on success writes
 * the primary's host and port into out (a copy of o->addr) and moves *first to
 * the sentinel that answered. ssl_ctx: the bus's TLS context, NULL without TLS.
 * BG_ERR with every sentinel's reason in err when none knows the primary. */
int bg_bus_sentinel_discover(const bg_bus_opts *o, SSL_CTX *ssl_ctx, bg_valkey_addr *out,
                             int *first, char *err);

/* 1 when the sentinels now name a primary other than o->addr's host:port
 * (which is the one connected to), with the new address in why; 0 when one of
 * them still names it, they disagree, or none answers (no reason to drop a
 * working connection). A move needs two sentinels naming the same address. */
int bg_bus_sentinel_moved(const bg_bus_opts *o, SSL_CTX *ssl_ctx, int *first, char *why);

/* After a failed attempt: ask another sentinel first next time, so that one
 * whose view is stale (it names a dead or demoted server) is not asked forever. */
void bg_bus_sentinel_next(const bg_valkey_addr *a, int *first);

/* 1 when a ROLE reply says "master"; else 0 with the role found in err. */
int bg_bus_sentinel_role_ok(const redisReply *r, const char *where, char *err);

/* "127.0.0.1:6380" for a discovered primary, "sentinel master 'NAME'" before. */
void bg_bus_sentinel_where(const bg_valkey_addr *a, char *out, size_t len);

#endif
